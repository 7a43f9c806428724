/* GET /processes/{id}/stacks (three prefixes) and GET /stacks?pid=
 * (dotnet-monitor style): native stacks of every thread, unwound by the
 * stacks helper (lib/stacksrun.h). The Kudu-side routes answer procdiag's
 * own document (JSON by default, eu-stack-like text for Accept: text/plain);
 * /stacks answers dotnet-monitor's formats (monstacks.c). docs/API.md,
 * "Stacks". */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/fold.h"
#include "lib/proc.h"
#include "lib/profile.h"
#include "lib/procfs.h"
#include "lib/scope.h"
#include "lib/operations.h"
#include "lib/stacksrun.h"

int pd_h_stacks_problem(struct pd_req *r, int rc, int pid, const char *err)
{
	char text[1024];

	switch (rc) {
	case -ESRCH: return pd_h_not_running(r, pid);
	case -EOWNERDEAD:
		snprintf(text, sizeof(text), "Process %d is a zombie: it has no stacks.", pid);
		break;
	case -EOPNOTSUPP:
		snprintf(text, sizeof(text), "Process %d is a kernel thread: it has no user stacks.",
			 pid);
		break;
	case -EAGAIN:
		snprintf(text, sizeof(text), "%s; try again.",
			 err[0] ? err : "The process changed while it was being read");
		break;
	case -EBUSY:
		snprintf(text, sizeof(text),
			 "Process %d is already traced by another process (a debugger, or a dump "
			 "in progress); its stacks cannot be taken now.",
			 pid);
		break;
	case -EPERM:
		snprintf(text, sizeof(text),
			 "procdiag may not trace process %d: the kernel refuses (see "
			 "kernel.yama.ptrace_scope and CAP_SYS_PTRACE), or the process is not "
			 "dumpable or holds ids other than its user's.",
			 pid);
		break;
	case -ETIMEDOUT:
		snprintf(text, sizeof(text), "%s (uninterruptible sleep?); try again.",
			 err[0] ? err : "A thread did not stop in time");
		break;
	case -ENOMEM: snprintf(text, sizeof(text), "Out of memory."); break;
	default:
		snprintf(text, sizeof(text), "Stacks of process %d failed: %s.", pid,
			 err[0] ? err : strerror(-rc));
		break;
	}
	return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 1, NULL, "%s", text);
}

/* State letters become the words of the threads routes. */
static void state_words(json_t *doc)
{
	json_t *threads = json_object_get(doc, "threads"), *t;
	size_t i;

	json_array_foreach(threads, i, t) {
		const char *st = json_string_value(json_object_get(t, "state"));

		if (st)
			json_object_set_new(t, "state", json_string(pd_state_name(st[0])));
	}
}

/* ... and the process gets its link, under the prefix the client used. */
static int decorate(struct pd_req *r, json_t *doc, int pid)
{
	state_words(doc);
	return json_object_set_new(doc, "process", pd_json_href(r, "/%d", pid));
}

/* ?source=false: no file:line (no DWARF is loaded: a cold request costs
 * what eu-stack does). -1 after answering 400. */
static int parse_source(struct pd_req *r, struct pd_stacks_opts *o)
{
	bool source;

	if (pd_h_query_bool(r, "source", true, &source) < 0)
		return -1;
	o->no_source = !source;
	return 0;
}

/* ?egressProvider=NAME or ?async=true: the stacks run as an operation
 * (docs/OPERATIONS-API.md): 1 when answered (202, or a 4xx), 0 when this
 * is a plain request. p is still open; render(fmt) makes the upload. */
static int as_operation(struct pd_req *r, struct pd_proc *p, bool no_source,
			pd_op_stacks_render render, int fmt, const char *ext, const char *fmt_name)
{
	const struct pd_egress_provider *egress;
	struct pd_context *ctx = pd_req_app(r);
	char comm[PD_COMM_MAX + 1];
	bool async;

	if (pd_h_parse_operation(r, &egress, &async) < 0)
		return 1;
	/* a HEAD starts nothing in the background (it gets what a plain
	 * request's headers would be) */
	if ((!egress && !async) || pd_req_is_head(r))
		return 0;
	if (pd_h_take_dump_slot(r) < 0)
		return 1;
	snprintf(comm, sizeof(comm), "%.*s", (int)p->stat.comm_len, p->stat.comm);
	{
		struct pd_op_request rq = {
			.pid = p->pid,
			.start_time = p->stat.starttime,
			.process = comm,
			.uid_known = true,
			.uid = p->uid,
			.egress = egress,
			.tags = pd_req_query(r, "tags"),
			.slot = &ctx->dumps_running,
			.kind = PD_OP_STACKS,
			.render = render,
			.fmt = fmt,
			.ext = ext,
			.fmt_name = fmt_name,
			.no_source = no_source,
		};

		if (pd_h_operation_start(r, &rq) < 0)
			atomic_fetch_sub(&ctx->dumps_running, 1);
	}
	return 1;
}

/* The stacks document of p (open; closed here: the helper opens the
 * process itself, checking its start time), or an operation started
 * (as_operation); NULL after answering. */
static json_t *collect(struct pd_req *r, struct pd_proc *p, pd_op_stacks_render render, int fmt,
		       const char *ext, const char *fmt_name)
{
	const struct pd_context *ctx = pd_req_app(r);
	struct pd_stacks_opts o = { .scope = &ctx->config->scope };
	uint64_t start_time = p->stat.starttime;
	int pid = p->pid, rc;
	json_t *doc = NULL;
	char err[512];

	rc = pd_h_refuse_procdiag(r, p);
	if (rc == 0)
		rc = parse_source(r, &o);
	if (rc == 0 && as_operation(r, p, o.no_source, render, fmt, ext, fmt_name))
		rc = -1;
	pd_proc_close(p);
	if (rc < 0)
		return NULL;
	rc = pd_stacksrun(NULL, pid, start_time, &o, 0, &doc, err, sizeof(err));
	if (rc < 0) {
		pd_h_stacks_problem(r, rc, pid, err);
		return NULL;
	}
	pd_req_log_note(r, "stopped_us=%lld cached_modules=%lld",
			(long long)json_integer_value(json_object_get(doc, "stopped_us")),
			(long long)json_integer_value(json_object_get(doc, "cached_modules")));
	return doc;
}

/* Kudu's formats: procdiag's document (JSON) or its eu-stack-like text. */
enum { KUDU_JSON, KUDU_TEXT };

/* A pd_op_stacks_render: what the route answers, without the links (an
 * upload is read far from this responder). */
static int kudu_render(const json_t *doc, int fmt, char **bytes, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *copy;

	if (fmt == KUDU_TEXT) {
		if (pd_stacks_text(doc, pd_state_name, &sb) < 0) {
			strbuf_release(&sb);
			return -ENOMEM;
		}
		*bytes = strbuf_detach(&sb, len);
		return *bytes ? 0 : -ENOMEM;
	}
	copy = json_deep_copy(doc);
	if (copy)
		state_words(copy);
	*bytes = pd_json_render(copy, len);
	return *bytes ? 0 : -ENOMEM;
}

/* ?format=json|text (procdiag's), else Accept: text/plain is text. */
static int kudu_format(struct pd_req *r)
{
	const char *v = pd_req_query(r, "format");

	if (!v || !*v)
		return pd_req_accepts(r, "text/plain") ? KUDU_TEXT : KUDU_JSON;
	if (!strcasecmp(v, "json"))
		return KUDU_JSON;
	if (!strcasecmp(v, "text"))
		return KUDU_TEXT;
	pd_resp_problem(r, 400, "format", "format must be json or text, not '%s'.", v);
	return -1;
}

int pd_h_reply_text(struct pd_req *r, int rc, struct strbuf *sb)
{
	if (rc == 0 && !sb->failed)
		rc = pd_resp_bytes(r, 200, "text/plain; charset=utf-8", sb->buf, sb->len);
	else
		rc = pd_resp_problem(r, 500, NULL, "Out of memory.");
	strbuf_release(sb);
	return rc;
}

/* The stacks page: every thread's stack merged into a flame graph (each
 * thread one sample), above the document's tables. */
static int flame_page(struct pd_req *r, json_t *doc)
{
	struct pd_fold *f = pd_fold_new();
	json_t *ss = NULL;

	if (f && pd_profile_fold_stacks(f, doc) >= 0)
		ss = pd_fold_speedscope(f, json_string_value(json_object_get(doc, "name")));
	pd_fold_free(f);
	if (!ss) {
		json_decref(doc);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	return pd_h_reply_flame(r, ss, doc, "Stacks");
}

int h_process_stacks(struct pd_req *r)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_proc p;
	json_t *doc;
	int pid, rc, fmt = kudu_format(r);

	if (fmt < 0)
		return 0;
	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	doc = collect(r, &p, kudu_render, fmt, fmt == KUDU_TEXT ? "txt" : "json",
		      fmt == KUDU_TEXT ? "text" : "procdiag");
	if (!doc)
		return 0;
	if (fmt == KUDU_TEXT) {
		rc = pd_stacks_text(doc, pd_state_name, &sb);
		json_decref(doc);
		return pd_h_reply_text(r, rc, &sb);
	}
	if (decorate(r, doc, pid) < 0) {
		json_decref(doc);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	if (pd_h_wants_html(r))
		return flame_page(r, doc);
	return pd_h_reply(r, doc, "Stacks");
}

/* dotnet-monitor's GET /stacks?pid=&uid=&name=: the process chosen as
 * /process chooses it (none of them: the site process), the answer in
 * dotnet-monitor's formats. */
int h_stacks_query(struct pd_req *r)
{
	struct pd_proc p;
	char stamp[32];
	json_t *doc;
	int pid, fmt = pd_h_mon_stacks_format(r);

	if (fmt < 0)
		return 0;
	/* dotnet-monitor names the file when the request is taken. */
	pd_h_mon_stamp(stamp, sizeof(stamp));
	if (pd_h_select_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	doc = collect(r, &p, pd_h_mon_stacks_render, fmt, pd_h_mon_stacks_ext(fmt),
		      pd_h_mon_stacks_format_name(fmt));
	if (!doc)
		return 0;
	return pd_h_mon_stacks_reply(r, doc, pid, fmt, stamp);
}
