#include "config.h"

#include "lib/ruleaction.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonstr.h"
#include "common/strbuf.h"
#include "lib/dumpjob.h"
#include "lib/stacksrun.h"
#include "lib/store.h"
#include "lib/egress.h"
#include "lib/operations.h"

/* What every entry of a firing says besides its kind's own members: the
 * rule, what fired, when; the process name escaped as every name from a
 * process is (common/jsonstr.h: a comm need not be UTF-8). m is stolen;
 * NULL when out of memory. */
static json_t *firing_meta(json_t *m, const struct pd_rule_firing *f)
{
	struct strbuf trig = STRBUF_INIT;

	if (m && pd_rule_trigger_format(&f->rule->trigger, &trig) == 0 &&
	    json_object_set_new(m, "process", pd_json_cstr(f->comm)) == 0 &&
	    json_object_set_new(m, "value", json_string(f->value)) == 0 &&
	    json_object_set_new(m, "trigger_text", json_string(trig.buf)) == 0 &&
	    json_object_set_new(m, "fired_ms", json_integer((json_int_t)f->when_ms)) == 0 &&
	    (!f->uid_known ||
	     json_object_set_new(m, "uid", json_integer((json_int_t)f->uid)) == 0)) {
		strbuf_release(&trig);
		return m;
	}
	strbuf_release(&trig);
	json_decref(m);
	return NULL;
}

static int do_stacks(const struct pd_ruleaction_ctx *c, const struct pd_rule_firing *f,
		     struct pd_rule_result *res, int k)
{
	struct pd_stacks_opts o = { .scope = c->scope };
	json_t *doc = NULL;
	char err[256] = "";
	int rc;

	rc = pd_stacksrun(c->helper, f->pid, f->start_time, &o, 0, &doc, err, sizeof(err));
	if (rc < 0) {
		snprintf(res->detail, sizeof(res->detail), "stacks: %s",
			 err[0] ? err : strerror(-rc));
		return rc;
	}
	/* the one way a stacks snapshot is stored (lib/store.h) */
	rc = pd_store_stacks(c->store, f->pid, doc,
			     firing_meta(json_pack("{s:s, s:s}", "trigger", "rule", "rule",
						   f->rule->name),
					 f),
			     res->ids[k], res->detail, sizeof(res->detail));
	json_decref(doc);
	return rc;
}

/* The dump job's progress: nonzero cancels it (the responder stops). */
static int progress(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total)
{
	const struct pd_rule_firing *f = arg;

	(void)phase, (void)done, (void)total;
	return f->cancel && atomic_load(f->cancel);
}

static json_t *dump_meta_hook(json_t *m, void *arg)
{
	return firing_meta(m, arg);
}

static int firing_cancelled(void *arg)
{
	const struct pd_rule_firing *f = arg;

	return f->cancel && atomic_load(f->cancel);
}

/* egress = NAME: the dump into a spool, then uploaded (instead of stored). */
static int do_egress(const struct pd_ruleaction_ctx *c, const struct pd_rule_firing *f,
		     struct pd_dumpjob_opts *o, struct pd_rule_result *res)
{
	const struct pd_rule_action *a = &f->rule->action;
	const struct pd_egress_provider *p = NULL;
	struct pd_dumpjob_result jr;
	char tname[16], loc[512], detail[512];
	struct pd_egress_meta m = {
		.host = c->host,
		.site = c->site,
		.process = f->comm,
		.dump_type = pd_dumpjob_type_name(&a->type, tname, sizeof(tname)),
		.trigger = "rule",
		.rule = f->rule->name,
		.pid = f->pid,
	};
	int rc;

	for (size_t i = 0; i < c->negress; i++)
		if (!strcmp(c->egress[i].name, a->egress))
			p = &c->egress[i];
	if (!p) {
		snprintf(res->detail, sizeof(res->detail), "dump: no [egress %s] configured",
			 a->egress);
		return -ENOENT;
	}
	rc = pd_egress_dump_job(p, o, c->spool_dir, c->spool_memory_max, firing_cancelled,
				(void *)f, &m, NULL, &jr, loc, sizeof(loc), detail, sizeof(detail));
	if (rc < 0)
		snprintf(res->detail, sizeof(res->detail), "%.*s", (int)sizeof(res->detail) - 1,
			 detail);
	else
		snprintf(res->detail, sizeof(res->detail), "egress %s: %.180s", p->name, loc);
	return rc;
}

static int do_dump(const struct pd_ruleaction_ctx *c, const struct pd_rule_firing *f,
		   struct pd_rule_result *res, int k)
{
	const struct pd_rule_action *a = &f->rule->action;
	struct pd_dumpjob_opts o = {
		.pid = f->pid,
		.start_time = f->start_time,
		.type = a->type,
		.format = a->format,
		.scope = c->scope,
		.helper = c->helper,
	};
	struct pd_dumpjob_result jr;

	if (a->egress[0])
		return do_egress(c, f, &o, res);
	if (!c->store) {
		snprintf(res->detail, sizeof(res->detail), "no store_dir configured");
		return -ENOENT;
	}
	/* the meta every dump entry has (lib/store.h), and the firing's */
	return pd_store_dump_job(c->store, &o, progress, (void *)f, NULL, "rule", f->rule->name,
				 dump_meta_hook, (void *)f, &jr, res->ids[k], res->detail,
				 sizeof(res->detail));
}

void pd_ruleaction_run(void *arg, const struct pd_rule_firing *f, struct pd_rule_result *res)
{
	const struct pd_ruleaction_ctx *c = arg;
	const struct pd_rule_action *a = &f->rule->action;
	int k = 0, rc = 0, skipped = 0;

	memset(res, 0, sizeof(*res));
	if (!c->store && (a->stacks || !a->egress[0])) {
		res->kind = PD_RULE_FAILED;
		snprintf(res->detail, sizeof(res->detail), "no store_dir configured");
		return;
	}
	if (a->stacks) {
		rc = do_stacks(c, f, res, k);
		if (rc == 0)
			k++;
		skipped |= rc == -EDQUOT;
	}
	if (a->dump) {
		int r2;
		char first[PD_RULE_RESULT_MAX];

		snprintf(first, sizeof(first), "%s", res->detail);
		r2 = do_dump(c, f, res, k);
		skipped |= r2 == -EDQUOT;
		if (r2 < 0 && rc < 0 && first[0]) {
			/* both failed: both reasons */
			char second[PD_RULE_RESULT_MAX];

			memcpy(second, res->detail, sizeof(second));
			snprintf(res->detail, sizeof(res->detail), "%.120s; %.120s", first, second);
		}
		if (r2 < 0)
			rc = r2;
	}
	res->kind = rc == 0 ? PD_RULE_STORED : skipped ? PD_RULE_SKIPPED : PD_RULE_FAILED;
}
