/* GET /processes/{id}/profile?seconds=N&hz=H (three prefixes): a CPU
 * profile of every thread (lib/profile.h), run by a profile helper
 * (lib/profilerun.h), answered as folded stacks (text/plain, the default),
 * a speedscope file (Accept: application/json or
 * application/speedscope+json) or the flame graph page (text/html).
 * docs/API.md, "Profile". */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "lib/fold.h"
#include "lib/proc.h"
#include "lib/profilerun.h"

#define DEFAULT_SECONDS 10
#define DEFAULT_HZ	49

/* ?NAME=1..max (def when absent); -1 after answering 400. */
static int parse_bounded(struct pd_req *r, const char *name, unsigned max, unsigned def,
			 unsigned *out)
{
	const char *v = pd_req_query(r, name);
	uint64_t n;

	if (!v) {
		*out = def;
		return 0;
	}
	if (parse_u64(v, strlen(v), max, &n) < 0 || n < 1) {
		pd_resp_problem(r, 400, name, "%s must be a whole number from 1 to %u.", name, max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int parse_opts(struct pd_req *r, struct pd_profile_opts *o)
{
	const char *m = pd_req_query(r, "method");
	int v;

	if (parse_bounded(r, "seconds", PD_PROFILE_SECONDS_MAX, DEFAULT_SECONDS, &o->seconds) < 0 ||
	    parse_bounded(r, "hz", PD_PROFILE_HZ_MAX, DEFAULT_HZ, &o->hz) < 0)
		return -1;
	if (m) {
		v = pd_profile_method_parse(m);
		if (v < 0) {
			pd_resp_problem(r, 400, "method", "method must be auto, perf or ptrace.");
			return -1;
		}
		o->method = (enum pd_profile_method)v;
	}
	return 0;
}

static int problem(struct pd_req *r, int rc, int pid, const char *err)
{
	if (rc == -EUSERS) {
		pd_resp_header(r, "Retry-After", "10");
		return pd_resp_problem(r, 429, NULL,
				       "%d profiles are already running, the most this server "
				       "takes at once. Try again later.",
				       PD_PROFILES_AT_ONCE);
	}
	if (rc == -EBUSY && strstr(err, "profile")) {
		pd_resp_header(r, "Retry-After", "10");
		return pd_resp_problem(r, 409, NULL, "A profile of process %d is already running.",
				       pid);
	}
	return pd_h_stacks_problem(r, rc, pid, err);
}

static void meta_headers(struct pd_req *r, const json_t *meta)
{
	char v[32];

	snprintf(v, sizeof(v), "%lld", (long long)json_integer_value(json_object_get(meta, "samples")));
	pd_resp_header(r, "X-Profile-Samples", v);
	snprintf(v, sizeof(v), "%lld", (long long)json_integer_value(json_object_get(meta, "threads")));
	pd_resp_header(r, "X-Profile-Threads", v);
	pd_resp_header(r, "X-Profile-Method", json_string_value(json_object_get(meta, "method")));
	pd_resp_header(r, "X-Profile-Complete",
		       json_is_true(json_object_get(meta, "complete")) ? "true" : "false");
}

int h_process_profile(struct pd_req *r)
{
	const struct pd_context *ctx = pd_req_app(r);
	struct pd_profile_opts o = { .scope = &ctx->config->scope };
	struct strbuf sb = STRBUF_INIT;
	struct pd_proc p;
	uint64_t start_time;
	json_t *doc = NULL, *meta;
	char err[512];
	int pid, rc;

	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	start_time = p.stat.starttime;
	rc = pd_h_refuse_procdiag(r, &p);
	pd_proc_close(&p);
	if (rc < 0 || parse_opts(r, &o) < 0)
		return 0;
	rc = pd_profilerun(NULL, pid, start_time, &o, &doc, err, sizeof(err));
	if (rc < 0)
		return problem(r, rc, pid, err);
	meta = json_object_get(doc, "procdiag");
	pd_req_log_note(r, "samples=%lld method=%s",
			(long long)json_integer_value(json_object_get(meta, "samples")),
			json_string_value(json_object_get(meta, "method")));
	meta_headers(r, meta);
	if (pd_h_wants_html(r)) {
		const char *name = json_string_value(json_object_get(meta, "name"));

		strbuf_addf(&sb, "Profile of %s (%d)", name ? name : "?", pid);
		meta = json_incref(meta);
		json_object_del(doc, "procdiag");
		if (sb.failed) {
			json_decref(doc);
			json_decref(meta);
			strbuf_release(&sb);
			return pd_resp_problem(r, 500, NULL, "Out of memory.");
		}
		rc = pd_h_reply_flame(r, doc, meta, sb.buf);
		strbuf_release(&sb);
		return rc;
	}
	if (pd_req_accept_match(r, "application/json") > 0 ||
	    pd_req_accept_match(r, "application/speedscope+json") > 0) {
		char *js;

		if (pd_req_accept_match(r, "application/speedscope+json") != 3)
			return pd_resp_json(r, 200, doc);
		js = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
		if (!js)
			return pd_resp_problem(r, 500, NULL, "Out of memory.");
		rc = pd_resp_bytes(r, 200, "application/speedscope+json", js, strlen(js));
		free(js);
		return rc;
	}
	rc = pd_fold_speedscope_folded(doc, &sb);
	json_decref(doc);
	return pd_h_reply_text(r, rc, &sb);
}
