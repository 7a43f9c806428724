/* The handlers, one file per resource family. Each translates a request into
 * lib/ calls and the answer into JSON. The route table is handlers/routes.c. */
#ifndef PD_HANDLERS_H
#define PD_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fcgi/route.h"

extern const struct pd_route pd_routes[];
extern const size_t pd_nroutes;

struct pd_req;

/* index.c */
int h_index(struct pd_req *r);
/* handlers/top.c: the live table's JSON (?view=table) and its page. */
int pd_h_top_json(struct pd_req *r, bool all);
int pd_h_top_page(struct pd_req *r, bool all);
/* GET /assets/{name}: handlers/assets.c. */
int h_asset(struct pd_req *r);
/* processes.c */
int h_process_list(struct pd_req *r);
int h_process_detail(struct pd_req *r);
int h_process_kill(struct pd_req *r);
/* threads.c */
int h_thread_list(struct pd_req *r);
int h_thread_detail(struct pd_req *r);
/* modules.c */
int h_module_list(struct pd_req *r);
int h_module_detail(struct pd_req *r);
/* stacks.c */
int h_process_stacks(struct pd_req *r);
int h_process_profile(struct pd_req *r);
int h_stacks_query(struct pd_req *r);
/* monstacks.c: a stacks document (lib/stacks.h; stolen) in the format the
 * Accept header chooses as dotnet-monitor's /stacks does: text/plain (also
 * with no Accept or the full wildcard), application/json (CallStackResult) or
 * application/speedscope+json; an attachment named
 * {stamp}_{pid}.stacks.{txt|json}, stamp as pd_h_mon_stamp. */
struct json_t;
int pd_h_mon_stacks_reply(struct pd_req *r, struct json_t *doc, int pid, int fmt,
			  const char *stamp);
/* The format of /stacks: ?format=json|text|speedscope (procdiag's), else
 * the Accept header's as above; -1 after answering 400 naming format. */
int pd_h_mon_stacks_format(struct pd_req *r);
const char *pd_h_mon_stacks_format_name(int fmt);
const char *pd_h_mon_stacks_ext(int fmt); /* "txt" or "json" */
/* The document (borrowed) in format fmt: a pd_op_stacks_render
 * (lib/operations.h) for /stacks?egressProvider=. */
int pd_h_mon_stacks_render(const struct json_t *doc, int fmt, char **bytes, size_t *len);
/* environ.c */
int h_environment(struct pd_req *r);
/* dump.c */
int h_process_dump(struct pd_req *r);
/* dump.c: the one download path of a dump's file, for a live dump's spool
 * and a stored entry's file (dumps.c): its length, ETag and
 * Accept-Ranges (when etag is set), the route's headers, a Range (when
 * range: 206, or 416), the body streamed by pd_resp_write_fd, the last
 * byte held back until the file is closed and release has run. The file
 * is closed on every path, unless keep takes it (a download its client
 * broke off, or a 416: the live route keeps its spool for a resume). */
#define PD_H_ETAG_MAX 128
struct pd_h_send {
	struct pd_req *r;
	int fd;		   /* the file; pd_h_send_file closes it (or keep takes it) */
	const char *what;  /* "spool", "stored file": for messages and the log */
	const char *ctype; /* Content-Type */
	const char *etag;  /* a strong tag without its quotes (< PD_H_ETAG_MAX); NULL or "": none */
	bool range;	   /* honour a Range header */
	int (*headers)(void *arg);	  /* the route's headers; < 0 out of memory */
	bool (*keep)(void *arg, int fd);  /* true: it took fd */
	void (*release)(void *arg);	  /* the file closed, before its last byte */
	void *arg;
};
int pd_h_send_file(struct pd_h_send *s);
/* dumps.c: the dump store's routes. */
int h_dumps_list(struct pd_req *r);
int h_dumps_get(struct pd_req *r);
int h_dumps_delete(struct pd_req *r);
/* rules.c: GET /api/rules; and one rule's configuration as its JSON
 * (name, filter, trigger, trigger_kind, for, for_ms, action, limits),
 * shared with `procdiag rules --json`. NULL when out of memory. */
int h_rules(struct pd_req *r);
struct pd_rule;
struct json_t *pd_rule_config_json(const struct pd_rule *rule);

/* processes.c: shared by the handlers of one process. Resolves the "{id}"
 * capture (0 = the site process), opens the process and checks the scope.
 * On failure it has already answered (400 bad id, 404 unknown/out of scope)
 * and returns -1; else 0 with p open (caller closes it). */
struct pd_proc;
int pd_h_open_process(struct pd_req *r, struct pd_proc *p);
/* processes.c: opens pid if it is in the scope (and, when starttime is not
 * 0, still the same run of a process); else -ESRCH, like a missing one. */
struct pd_context;
int pd_h_open_visible(const struct pd_context *ctx, int pid, uint64_t starttime,
		      struct pd_proc *p);

/* processes.c: answers 403 and returns -1 when p is procdiag itself or one
 * of its helpers (lib/proc.h pd_proc_is_procdiag); else 0. Every route that
 * stops or reads the memory of a process asks it first. */
int pd_h_refuse_procdiag(struct pd_req *r, const struct pd_proc *p);

/* processes.c: which processes a list shows. The site's: those of the
 * responder's uid and of the site process's uid (pd_h_site_uid); with
 * all, every process in scope. */
struct pd_proc_entry;
struct pd_snapshot;
bool pd_h_listed(const struct pd_context *ctx, bool all, uid_t self_uid, uid_t site_uid,
		 const struct pd_proc_entry *e);
/* The site process's pid (site_pid_file), 0 when none is configured or it
 * cannot be read; and its uid in snap (the responder's when absent). */
int pd_h_site_pid(const struct pd_context *ctx);
uid_t pd_h_site_uid(const struct pd_snapshot *snap, int site_pid);

/* monitor.c: dotnet-monitor's process selection by the query parameters
 * pid, uid and name (none: the site process, id 0). Exactly one process
 * must match: none or several is a 400 naming the parameter, as
 * dotnet-monitor answers. On failure it has already answered and returns
 * -1; else 0 with p open (caller closes it). */
int pd_h_select_process(struct pd_req *r, struct pd_proc *p);
/* monitor.c: the UTC time now as dotnet-monitor stamps its file names
 * (yyyyMMdd_HHmmss_fff, Utilities.GetFileNameTimeStampUtcNow). len >= 24. */
void pd_h_mon_stamp(char *buf, size_t len);
/* monitor.c: the dotnet-monitor-style routes */
int h_mon_processes(struct pd_req *r);
int h_mon_process(struct pd_req *r);
int h_mon_env(struct pd_req *r);
int h_mon_info(struct pd_req *r);
/* dump.c */
int h_mon_dump(struct pd_req *r);

/* problem.c: the one map from what went wrong in lib/ to an HTTP status,
 * for every handler. The kinds are lib/helper.h's (an errno of reading,
 * stopping or signalling a process becomes one through
 * pd_dump_error_from_errno): gone 404 (as a process that was never there);
 * zombie, kernel thread, busy, changed 409; not permitted 403; timeout
 * 503; no space 507; cancelled 499 (nobody reads it); io, internal 500.
 * A process not found when the request is resolved is 404 the same. */
#include "lib/helper.h"
int pd_h_kind_status(enum pd_dump_error e);
/* A problem answer with the kind's status and the detail; busy, changed
 * and timeout also with Retry-After: retry_after seconds (0: none), about
 * the time the operation takes. */
int pd_h_problem_kind(struct pd_req *r, enum pd_dump_error e, unsigned retry_after,
		      const char *param, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Kudu's answer for a process that is not there (gone, 404). */
int pd_h_not_running(struct pd_req *r, int pid);
/* stacks.c: a failed stacks (or profile) request of pid: lib/stacks.h's
 * errno, the text this route gives it, the status the map above gives
 * (with Retry-After: 1 where it applies). */
int pd_h_stacks_problem(struct pd_req *r, int rc, int pid, const char *err);
/* stacks.c: sb as a 200 text/plain answer when rc is 0 (what made it), else
 * a 500 (out of memory); sb is released. */
struct strbuf;
int pd_h_reply_text(struct pd_req *r, int rc, struct strbuf *sb);

/* operations.c: dotnet-monitor's /operations routes, and the 202 +
 * Location of a dump that runs as an operation: 0 when started (the
 * request's dump slot is the operation's now), -1 when a problem was
 * answered (the slot is still the caller's). */
struct pd_op_request;
int pd_h_operation_start(struct pd_req *r, const struct pd_op_request *rq);
/* egressProvider=NAME (*egress), async=true|false (*async; true without
 * egressProvider needs a store) and tags (at most 1024 bytes): whether the
 * request asks for an operation. 0, or -1 after answering 400 naming the
 * parameter. */
struct pd_egress_provider;
int pd_h_parse_operation(struct pd_req *r, const struct pd_egress_provider **egress,
			 bool *async);
/* dump.c: one of the max_dumps slots taken (0; give it back by
 * decrementing ctx->dumps_running), or -1 after answering 429 with
 * Retry-After: a dump, a stacks operation, share the cap. */
int pd_h_take_dump_slot(struct pd_req *r);
/* problem.c: the one parser of a true|false query parameter: true or 1,
 * false or 0 (true and false in any case); absent or empty, def. -1 after
 * answering 400 naming it for any other value. */
int pd_h_query_bool(struct pd_req *r, const char *name, bool def, bool *out);
/* dumps.c: POST /api/dumps/{id}/egress?egressProvider=NAME[&file=][&tags=]. */
int h_dumps_egress(struct pd_req *r);
int h_operations_list(struct pd_req *r);
int h_operation_get(struct pd_req *r);
int h_operation_delete(struct pd_req *r);

#endif
