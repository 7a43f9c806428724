/* The dotnet-monitor-style routes: GET /processes, /process, /env, /info
 * (and the selection that /dump and /stacks share). Their field names, their
 * process names and their errors are dotnet-monitor's: a selection that
 * matches no process, or several, is a 400 naming the parameter, as
 * dotnet-monitor's DiagnosticServices answers (ProcessTests.cs). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/instance.h"
#include "lib/proc.h"
#include "lib/snapshot.h"

static const struct pd_context *ctx_of(struct pd_req *r)
{
	return pd_req_app(r);
}

/* .NET's names for the machine (RuntimeInformation.ProcessArchitecture). */
static const char *architecture(void)
{
	static const struct {
		const char *uname, *dotnet;
	} names[] = {
		{ "x86_64", "x64" }, { "aarch64", "arm64" }, { "i686", "x86" }, { "i386", "x86" },
		{ "armv7l", "arm" }, { "s390x", "s390x" }, { "ppc64le", "ppc64le" },
		{ "riscv64", "riscv64" }, { "loongarch64", "loongarch64" },
	};
	static __thread char other[65];
	struct utsname u;

	if (uname(&u) < 0)
		return NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(u.machine, names[i].uname))
			return names[i].dotnet;
	snprintf(other, sizeof(other), "%s", u.machine);
	return other;
}

static json_t *uid_json(int pid, uint64_t starttime)
{
	char uid[PD_UID_LEN + 1];

	pd_instance_uid(pid, starttime, uid);
	return json_string(uid);
}

/* A process chosen by pid (and checked against uid and name when given). */
static int select_by_pid(struct pd_req *r, const char *spid, const char *uid, const char *name,
			 struct pd_proc *p)
{
	const struct pd_context *ctx = ctx_of(r);
	struct strbuf have = STRBUF_INIT;
	char have_uid[PD_UID_LEN + 1];
	int pid, rc;

	if (parse_pid(spid, strlen(spid), &pid) < 0 || pid == 0)
		return pd_resp_problem(r, 400, "pid", "pid must be a process id (1 to 4194304), not '%s'.",
				       spid),
		       -1;
	rc = pd_h_open_visible(ctx, pid, 0, p);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory."), -1;
	if (rc < 0)
		return pd_resp_problem(
			       r, 400, "pid",
			       "Unable to discover a target process: no process has pid %d.", pid),
		       -1;
	if (uid) {
		pd_instance_uid(p->pid, p->stat.starttime, have_uid);
		if (strcasecmp(uid, have_uid)) {
			pd_proc_close(p);
			return pd_resp_problem(
				       r, 400, "uid",
				       "Unable to discover a target process: process %d is not "
				       "the instance with uid %s.",
				       pid, uid),
			       -1;
		}
	}
	if (name) {
		rc = pd_proc_cmd_name(p, &have);
		if (rc == 0 && !pd_name_matches(have.buf, have.len, name))
			rc = -ESRCH;
		strbuf_release(&have);
		if (rc < 0) {
			pd_proc_close(p);
			if (rc == -ENOMEM)
				return pd_resp_problem(r, 500, NULL, "Out of memory."), -1;
			return pd_resp_problem(
				       r, 400, "name",
				       "Unable to discover a target process: process %d is not "
				       "named '%s'.",
				       pid, name),
			       -1;
		}
	}
	return 0;
}

/* The one in-scope process that has uid and/or name; -1 after answering. */
static int select_by_uid_or_name(struct pd_req *r, const char *uid, const char *name,
				 struct pd_proc *p)
{
	const struct pd_context *ctx = ctx_of(r);
	const char *param = uid ? "uid" : "name";
	struct pd_snapshot *snap = NULL;
	struct strbuf pids = STRBUF_INIT, have = STRBUF_INIT;
	json_t *list;
	size_t n = 0;
	uint64_t found_start = 0;
	int found = 0, rc;

	rc = pd_snapshot_get(&snap);
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc)), -1;
	list = json_array();
	for (size_t i = 0; list && i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];
		char have_uid[PD_UID_LEN + 1];

		if (!pd_scope_has(&ctx->config->scope, e->uid))
			continue;
		if (uid) {
			pd_instance_uid(e->pid, e->starttime, have_uid);
			if (strcasecmp(uid, have_uid))
				continue;
		}
		if (name) {
			int named = pd_entry_named(e, name, &have);

			if (named < 0) {
				json_decref(list);
				list = NULL;
				break;
			}
			if (!named)
				continue;
		}
		found = e->pid;
		found_start = e->starttime;
		n++;
		json_array_append_new(list, json_integer(e->pid));
		strbuf_addf(&pids, "%s%d", n > 1 ? ", " : "", e->pid);
	}
	pd_snapshot_unref(snap);
	strbuf_release(&have);
	if (!list || pids.failed) {
		json_decref(list);
		strbuf_release(&pids);
		return pd_resp_problem(r, 500, NULL, "Out of memory."), -1;
	}
	if (n == 0) {
		json_decref(list);
		strbuf_release(&pids);
		if (uid)
			return pd_resp_problem(
				       r, 400, "uid",
				       "Unable to discover a target process: no process has "
				       "uid %s%s%s%s.",
				       uid, name ? " and is named '" : "", name ? name : "",
				       name ? "'" : ""),
			       -1;
		return pd_resp_problem(r, 400, "name",
				       "Unable to discover a target process: no process is named "
				       "'%s'.",
				       name),
		       -1;
	}
	if (n > 1) {
		/* Only a name can match several. */
		pd_resp_problem_ext(r, 400, param, json_pack("{s:o}", "pids", list),
				    "Unable to select a single target process: %zu processes are "
				    "named '%s' (pids %s); choose one with pid or uid.",
				    n, name, pids.buf);
		strbuf_release(&pids);
		return -1;
	}
	json_decref(list);
	strbuf_release(&pids);
	/* The process the scan matched, not a later one under its pid. */
	rc = pd_h_open_visible(ctx, found, found_start, p);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory."), -1;
	if (rc < 0)
		return pd_resp_problem(r, 400, param,
				       "Unable to discover a target process: process %d exited.",
				       found),
		       -1;
	return 0;
}

int pd_h_select_process(struct pd_req *r, struct pd_proc *p)
{
	const struct pd_context *ctx = ctx_of(r);
	const char *spid = pd_req_query(r, "pid"), *uid = pd_req_query(r, "uid");
	const char *name = pd_req_query(r, "name");
	int site;

	/* An empty parameter is an absent one (dotnet-monitor's GetProcessKey). */
	if (spid && !*spid)
		spid = NULL;
	if (uid && !*uid)
		uid = NULL;
	if (name && !*name)
		name = NULL;
	if (uid && !pd_instance_uid_valid(uid))
		return pd_resp_problem(r, 400, "uid",
				       "uid must be a process instance id as /processes gives it "
				       "(8-4-4-4-12 hex digits), not '%s'.",
				       uid),
		       -1;
	if (spid)
		return select_by_pid(r, spid, uid, name, p);
	if (uid || name)
		return select_by_uid_or_name(r, uid, name, p);
	site = pd_h_site_pid(ctx);
	if (site && pd_h_open_visible(ctx, site, 0, p) == 0)
		return 0;
	return pd_resp_problem(r, 400, NULL,
			       "Unable to discover a target process: none was given (pid, uid or "
			       "name) and the default process, the site process, is not running "
			       "or not configured (site_pid_file)."),
	       -1;
}

int h_mon_processes(struct pd_req *r)
{
	const struct pd_context *ctx = ctx_of(r);
	struct pd_snapshot *snap = NULL;
	struct strbuf name = STRBUF_INIT;
	uid_t self_uid = getuid(), site_uid;
	int site = pd_h_site_pid(ctx), rc;
	json_t *arr;

	rc = pd_snapshot_get_within((int64_t)ctx->config->list_max_age_ms * 1000000, &snap);
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	site_uid = pd_h_site_uid(snap, site);
	arr = json_array();
	for (size_t i = 0; arr && i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];
		json_t *o = NULL;

		if (!pd_h_listed(ctx, false, self_uid, site_uid, e))
			continue;
		strbuf_reset(&name);
		if (pd_entry_name(e, &name) == 0)
			o = json_pack("{s:i, s:o, s:o, s:b}", "pid", e->pid, "uid",
				      uid_json(e->pid, e->starttime), "name",
				      pd_json_bytes(name.buf, name.len), "isDefault",
				      e->pid == site);
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	pd_snapshot_unref(snap);
	strbuf_release(&name);
	if (!arr)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, arr, "Processes");
}

int h_mon_process(struct pd_req *r)
{
	struct strbuf name = STRBUF_INIT;
	struct pd_proc p;
	const char *arch = architecture();
	json_t *o = NULL;
	int rc, pid;

	if (pd_h_select_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_cmd_name(&p, &name);
	if (rc == -ESRCH) {
		pd_proc_close(&p);
		return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 0, "pid", "Process %d exited.", pid);
	}
	if (rc == 0)
		o = json_pack("{s:i, s:o, s:o, s:o, s:s, s:o}", "pid", p.pid, "uid",
			      uid_json(p.pid, p.stat.starttime), "name",
			      pd_json_bytes(name.buf, name.len), "commandLine", pd_cmdline_json(&p),
			      "operatingSystem", "linux", "processArchitecture",
			      pd_json_cstr(arch));
	pd_proc_close(&p);
	strbuf_release(&name);
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, o, "Process");
}

int h_mon_env(struct pd_req *r)
{
	struct pd_strv env = PD_STRV_INIT;
	struct pd_proc p;
	json_t *o;
	int rc, pid;

	if (pd_h_select_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_environ(&p, &env);
	pd_proc_close(&p);
	if (rc == -EACCES) {
		pd_strv_release(&env);
		return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 0, "pid",
				       "The environment of process %d cannot be read (the kernel "
				       "refuses it).",
				       pid);
	}
	if (rc == -ESRCH) {
		pd_strv_release(&env);
		return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 0, "pid", "Process %d exited.", pid);
	}
	/* A kernel thread or a zombie has an empty environment: {}. */
	o = rc == 0 ? pd_environ_json(&env, NULL) : NULL;
	pd_strv_release(&env);
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Cannot read the environment of %d.", pid);
	return pd_h_reply(r, o, "Environment");
}

/* dotnet-monitor's capability names (MonitorCapabilityConstants), all of
 * them, as its /info lists them: a client looks a name up. procdiag has the
 * call stacks; the others are in-process .NET features it does not have. */
static json_t *capabilities(void)
{
	static const struct {
		const char *name;
		bool enabled;
	} caps[] = {
		{"exceptions", false}, {"parameters", false},  {"call_stacks", true},
		{"metrics", false},    {"http_egress", false},
	};
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (json_array_append_new(arr, json_pack("{s:s, s:b}", "name", caps[i].name,
							 "enabled", caps[i].enabled)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

/* DotnetMonitorInfo: no .NET runtime, so no runtimeVersion; procdiag goes
 * to the processes as dotnet-monitor's Connect mode does, with no port
 * name. */
int h_mon_info(struct pd_req *r)
{
	const char *arch = architecture();
	json_t *o = json_pack("{s:s, s:n, s:s, s:n, s:o, s:s, s:o, s:o}", "version",
			      PACKAGE_VERSION, "runtimeVersion", "diagnosticPortMode", "Connect",
			      "diagnosticPortName", "capabilities", capabilities(),
			      "operatingSystem", "linux", "processArchitecture", pd_json_cstr(arch),
			      "machineName", json_string(ctx_of(r)->machine_name));

	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, o, "procdiag");
}

void pd_h_mon_stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char secs[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(secs, sizeof(secs), "%Y%m%d_%H%M%S", &tm);
	snprintf(buf, len, "%s_%03ld", secs, ts.tv_nsec / 1000000);
}
