/* GET /api/rules: the configured rules (filters, trigger, action, limits)
 * and each one's state from the rule engine, read-only (docs/API.md,
 * "Rules"); a browser gets the Rules page. `procdiag rules --json` prints
 * the same configuration part. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "lib/ruleengine.h"
#include "lib/rules.h"

static int set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, pd_json_cstr(v));
}

json_t *pd_rule_config_json(const struct pd_rule *r)
{
	const struct pd_rule_filter *f = &r->filter;
	struct strbuf sb = STRBUF_INIT;
	json_t *o = json_object(), *filter = json_object(), *action = json_object();
	char d[32];
	int rc = 0;

	if (!o || !filter || !action)
		goto fail;
	if (f->site)
		rc |= json_object_set_new(filter, "site", json_true());
	if (f->name)
		rc |= set_str(filter, "name", f->name);
	if (f->cmdline)
		rc |= set_str(filter, "cmdline", f->cmdline);
	if (f->cmdline_regex)
		rc |= set_str(filter, "cmdline_regex", f->cmdline_regex);
	if (f->has_uid)
		rc |= json_object_set_new(filter, "uid", json_integer(f->uid));
	if (f->cgroup)
		rc |= set_str(filter, "cgroup", f->cgroup);
	rc |= json_object_set_new(o, "name", json_string(r->name));
	rc |= json_object_set_new(o, "filter", filter);
	filter = NULL;
	if (pd_rule_trigger_format(&r->trigger, &sb) < 0)
		goto fail;
	rc |= json_object_set_new(o, "trigger", json_string(sb.buf));
	rc |= json_object_set_new(o, "trigger_kind",
				  json_string(pd_trigger_name(r->trigger.kind)));
	pd_duration_text(r->for_ms, d, sizeof(d));
	rc |= json_object_set_new(o, "for", json_string(d));
	rc |= json_object_set_new(o, "for_ms", json_integer((json_int_t)r->for_ms));
	rc |= json_object_set_new(action, "kind", json_string(pd_rule_action_name(&r->action)));
	if (r->action.dump) {
		rc |= json_object_set_new(action, "dump_type", json_string(r->action.type_text));
		rc |= json_object_set_new(action, "format",
					  json_string(pd_dump_format_name(r->action.format)));
		rc |= json_object_set_new(action, "egress",
					  r->action.egress[0] ? json_string(r->action.egress)
							      : json_null());
	}
	rc |= json_object_set_new(o, "action", action);
	action = NULL;
	pd_duration_text(r->interval_ms, d, sizeof(d));
	rc |= json_object_set_new(o, "limits",
				  json_pack("{s:i, s:s, s:I}", "count", (int)r->count, "interval", d,
					    "interval_ms", (json_int_t)r->interval_ms));
	strbuf_release(&sb);
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
fail:
	strbuf_release(&sb);
	json_decref(o);
	json_decref(filter);
	json_decref(action);
	return NULL;
}

static const char *result_name(int kind)
{
	return kind == PD_RULE_STORED ? "stored" : kind == PD_RULE_SKIPPED ? "skipped" : "failed";
}

static json_t *state_json(struct pd_req *r, const struct pd_rule_state *s)
{
	json_t *o, *last = json_null();

	if (s->has_last) {
		json_t *ids = json_array(), *hrefs = json_array();

		last = json_pack("{s:i, s:o, s:s, s:o}", "pid", s->last.pid, "process",
				 pd_json_cstr(s->last.comm), "value", s->last.value, "at",
				 pd_json_iso8601(s->last.when_ms * 1000000));
		if (!last || !ids || !hrefs) {
			json_decref(last), json_decref(ids), json_decref(hrefs);
			return NULL;
		}
		if (s->last_done) {
			for (int k = 0; k < 2; k++)
				if (s->last_result.ids[k][0]) {
					json_array_append_new(ids, json_string(s->last_result.ids[k]));
					json_array_append_new(
						hrefs, pd_json_href(r, "/api/dumps/%s",
								    s->last_result.ids[k]));
				}
			json_object_set_new(last, "result",
					    json_string(result_name(s->last_result.kind)));
			json_object_set_new(last, "ids", ids);
			json_object_set_new(last, "hrefs", hrefs);
			json_object_set_new(last, "detail",
					    s->last_result.detail[0]
						    ? pd_json_cstr(s->last_result.detail)
						    : json_null());
		} else {
			json_decref(ids), json_decref(hrefs);
			json_object_set_new(last, "result", json_string("running"));
		}
	}
	o = json_pack("{s:s, s:b, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o}", "status",
		      pd_rule_status_name(s->status), "sampled", s->sampled, "fired", s->fired,
		      "running", s->running, "matched", s->matched, "holding", s->holding,
		      "last_fired",
		      s->last_fired_ms ? pd_json_iso8601(s->last_fired_ms * 1000000) : json_null(),
		      "cooldown_until",
		      s->cooldown_until_ms ? pd_json_iso8601(s->cooldown_until_ms * 1000000)
					   : json_null(),
		      "last", last, "note", s->note[0] ? pd_json_cstr(s->note) : json_null());
	return o;
}

int h_rules(struct pd_req *r)
{
	const struct pd_context *ctx = pd_req_app(r);
	const struct pd_ruleset *set = &ctx->config->rules;
	json_t *doc, *arr = json_array();

	if (!arr)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	for (size_t i = 0; i < set->n; i++) {
		const struct pd_rule *rule = &set->v[i];
		json_t *o = pd_rule_config_json(rule), *st;
		struct pd_rule_state s;

		if (!o)
			goto oom;
		if (pd_ruleengine_state(ctx->rules, i, &s) == 0) {
			st = state_json(r, &s);
		} else {
			/* no engine: the rules are configured but not sampled */
			st = json_pack("{s:s, s:b, s:i}", "status",
				       rule->trigger.kind == PD_TRIGGER_CRASH ? "armed" : "stopped",
				       "sampled", false, "fired", 0);
		}
		if (!st || json_object_set_new(o, "state", st) < 0 ||
		    json_array_append_new(arr, o) < 0) {
			json_decref(o);
			goto oom;
		}
	}
	doc = json_pack("{s:i, s:i, s:o}", "interval_ms", ctx->config->rules_interval_ms,
			"max_actions", ctx->config->max_actions, "rules", arr);
	if (!doc)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, doc, "Rules");
oom:
	json_decref(arr);
	return pd_resp_problem(r, 500, NULL, "Out of memory.");
}
