/* Spawning the dump helper, reading its status lines, reaping it. */
#include "config.h"

#include "lib/dumprun.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/helper.h"
#include "lib/sysclock.h"

enum pd_dump_error pd_dump_precheck(struct pd_proc *p)
{
	struct pd_tasks tasks = PD_TASKS_INIT;
	enum pd_dump_error e = PD_DUMP_ZOMBIE;

	if (pd_stat_is_kthread(&p->stat))
		return PD_DUMP_KERNEL_THREAD;
	if (p->stat.state != 'Z' && p->stat.state != 'X')
		return PD_DUMP_OK;
	/* The leader is dead; the process lives while one thread does. */
	if (pd_proc_tasks(p, &tasks) < 0)
		return PD_DUMP_GONE;
	for (size_t i = 0; i < tasks.n; i++)
		if (tasks.v[i].state != 'Z' && tasks.v[i].state != 'X')
			e = PD_DUMP_OK;
	pd_tasks_release(&tasks);
	return e;
}

static bool get_u64(json_t *o, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* The optional figures of "done" (struct pd_dump_figures): absent ones get
 * their defaults; present ones of the wrong type are not the protocol. */
static bool parse_figures(json_t *o, struct pd_dumprun_result *r)
{
	struct pd_dump_figures *f = &r->fig;
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
		{"freezing_us", offsetof(struct pd_dump_figures, freezing_us)},
		{"frozen_us", offsetof(struct pd_dump_figures, frozen_us)},
		{"copy_us", offsetof(struct pd_dump_figures, copy_us)},
		{"copied_bytes", offsetof(struct pd_dump_figures, copied_bytes)},
		{"extra_memory", offsetof(struct pd_dump_figures, extra_memory)},
		{"zero_bytes", offsetof(struct pd_dump_figures, zero_bytes)},
	};
	json_t *m = json_object_get(o, "method"), *why = json_object_get(o, "reason");
	json_t *zm = json_object_get(o, "zero_method");

	snprintf(f->method, sizeof(f->method), "stop");
	snprintf(f->zero_method, sizeof(f->zero_method), "none");
	f->frozen_us = r->stopped_us;
	f->copied_bytes = r->dumped_bytes;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (json_object_get(o, nums[i].key) &&
		    !get_u64(o, nums[i].key, (uint64_t *)((char *)f + nums[i].off)))
			return false;
	if (m) {
		const char *v = json_string_value(m);

		if (!v || (strcmp(v, "clone") && strcmp(v, "stop")))
			return false;
		snprintf(f->method, sizeof(f->method), "%s", v);
	}
	if (zm) {
		const char *v = json_string_value(zm);

		if (!v || strlen(v) >= sizeof(f->zero_method))
			return false;
		snprintf(f->zero_method, sizeof(f->zero_method), "%s", v);
	}
	if (why) {
		if (!json_is_string(why))
			return false;
		snprintf(f->reason, sizeof(f->reason), "%s", json_string_value(why));
	}
	return true;
}

static int parse_final_error(json_t *o, struct pd_dumprun_result *res)
{
	const char *code = json_string_value(json_object_get(o, "error"));
	const char *detail = json_string_value(json_object_get(o, "detail"));

	if (!code)
		return -EPROTO;
	res->error = pd_dump_error_from_code(code);
	snprintf(res->code, sizeof(res->code), "%s", code);
	snprintf(res->detail, sizeof(res->detail), "%s", detail ? detail : code);
	return PD_STATUS_FINAL;
}

int pd_dumprun_parse_line(const char *line, size_t len, struct pd_dumprun_result *res,
			  uint64_t *done, uint64_t *total)
{
	json_error_t jerr;
	json_t *o;
	const char *ev;
	int rc = -EPROTO;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o))
		goto out;
	ev = json_string_value(json_object_get(o, "event"));
	if (!ev)
		goto out;
	if (strcmp(ev, "progress") == 0) {
		uint64_t d, t;

		if (get_u64(o, "done", &d) && get_u64(o, "total", &t)) {
			*done = d;
			*total = t;
			rc = PD_STATUS_PROGRESS;
		}
	} else if (strcmp(ev, "done") == 0) {
		struct pd_dumprun_result r = {.error = PD_DUMP_OK};

		if (get_u64(o, "size", &r.size) && get_u64(o, "stopped_us", &r.stopped_us) &&
		    get_u64(o, "threads", &r.threads) && get_u64(o, "mappings", &r.mappings) &&
		    get_u64(o, "dumped_bytes", &r.dumped_bytes) && parse_figures(o, &r)) {
			r.clone_pid = res->clone_pid;
			*res = r;
			rc = PD_STATUS_FINAL;
		}
	} else if (strcmp(ev, "error") == 0) {
		struct pd_dumprun_result r = {0};

		rc = parse_final_error(o, &r);
		r.clone_pid = res->clone_pid;
		if (rc == PD_STATUS_FINAL)
			*res = r;
	} else if (strcmp(ev, "clone") == 0) {
		uint64_t c;

		if (get_u64(o, "pid", &c) && c > 0 && c < INT32_MAX)
			res->clone_pid = (pid_t)c;
		rc = PD_STATUS_OTHER;
	} else {
		rc = PD_STATUS_OTHER;
	}
out:
	json_decref(o);
	return rc;
}

/* The helper's command line. Numbers live in the caller's buffers. */
struct argv_buf {
	char pid[24], start[24], content[24], out[16], status[16], deadline[24], budget[24];
	struct strbuf scope;
	char out_max[24];
	char *v[24];
};

static int build_argv(struct argv_buf *a, const struct pd_dumprun_opts *o, int out_fd,
		      int status_fd)
{
	size_t n = 0;

	snprintf(a->pid, sizeof(a->pid), "%d", (int)o->pid);
	snprintf(a->start, sizeof(a->start), "%llu", (unsigned long long)o->start_time);
	snprintf(a->content, sizeof(a->content), "%u", o->content);
	snprintf(a->out, sizeof(a->out), "%d", out_fd);
	snprintf(a->status, sizeof(a->status), "%d", status_fd);
	a->v[n++] = "procdiag";
	a->v[n++] = "dump-helper";
	a->v[n++] = "--pid";
	a->v[n++] = a->pid;
	a->v[n++] = "--start-time";
	a->v[n++] = a->start;
	a->v[n++] = "--content";
	a->v[n++] = a->content;
	a->v[n++] = "--out-fd";
	a->v[n++] = a->out;
	a->v[n++] = "--status-fd";
	a->v[n++] = a->status;
	if (o->deadline_ms) {
		snprintf(a->deadline, sizeof(a->deadline), "%u", o->deadline_ms);
		a->v[n++] = "--deadline-ms";
		a->v[n++] = a->deadline;
	}
	if (o->mem_budget) {
		snprintf(a->budget, sizeof(a->budget), "%llu", (unsigned long long)o->mem_budget);
		a->v[n++] = "--mem-budget";
		a->v[n++] = a->budget;
	}
	strbuf_init(&a->scope);
	if (o->scope) {
		if (pd_scope_format(o->scope, &a->scope) < 0)
			return -ENOMEM;
		a->v[n++] = "--scope";
		a->v[n++] = a->scope.buf;
	}
	if (o->out_max) {
		snprintf(a->out_max, sizeof(a->out_max), "%llu", (unsigned long long)o->out_max);
		a->v[n++] = "--out-max";
		a->v[n++] = a->out_max;
	}
	a->v[n] = NULL;
	return 0;
}

/* A status line is a small JSON object; anything longer is not the
 * protocol. */
#define LINE_MAX_BYTES 4096
/* How long a helper told to stop may take to kill and reap its clone. */
#define HELPER_GRACE_MS 2000

static int spawn_helper(const struct pd_dumprun_opts *o, int out_fd, int status_fd, pid_t *pid)
{
	struct argv_buf a;
	int keep[2] = {out_fd, status_fd};
	int rc = build_argv(&a, o, out_fd, status_fd);

	if (rc == 0)
		rc = pd_helper_spawn(o->helper, a.v, keep, 2, pid);
	strbuf_release(&a.scope);
	return rc;
}

/* A helper killed after it cloned the target left the clone dead under
 * the target (PTRACE_O_EXITKILL killed it; nobody reaps it): one short
 * helper run has the target reap it (lib/cowclone.h, pd_cow_reap). */
static void reap_clone(const struct pd_dumprun_opts *o, pid_t clone_pid)
{
	char pid[24], start[24], cl[24];
	char *argv[] = {"procdiag", "dump-helper",  "--pid", pid, "--start-time",
			start,	    "--reap-clone", cl,	     NULL};
	pid_t h;
	int st;

	snprintf(pid, sizeof(pid), "%d", (int)o->pid);
	snprintf(start, sizeof(start), "%llu", (unsigned long long)o->start_time);
	snprintf(cl, sizeof(cl), "%d", (int)clone_pid);
	if (pd_helper_spawn(o->helper, argv, NULL, 0, &h) == 0)
		pd_helper_reap(h, &st);
}

/* Reads status lines until the helper closes its end (it exits), or tick
 * asks to stop. Returns 1 when a final line was seen, 0 at EOF without
 * one, -ECANCELED, -EPROTO, -errno. */
static int read_status(const struct pd_dumprun_opts *o, int fd, struct pd_dumprun_result *res)
{
	struct pd_helper_lines lines = {STRBUF_INIT, LINE_MAX_BYTES};
	struct strbuf line = STRBUF_INIT;
	uint64_t done = 0, total = 0;
	unsigned tick_ms = o->tick_ms ? o->tick_ms : 100;
	uint64_t next_tick = pd_mono_ns() + (uint64_t)tick_ms * 1000000u;
	int final = 0, rc;

	for (;;) {
		uint64_t now = pd_mono_ns();
		int kind;

		if (o->tick && now >= next_tick) {
			next_tick = now + (uint64_t)tick_ms * 1000000u;
			if (o->tick(o->arg, done, total)) {
				rc = -ECANCELED;
				break;
			}
		}
		rc = pd_helper_lines(&lines, fd, o->tick ? (int)((next_tick - now) / 1000000u) : -1,
				     &line);
		if (rc == -ETIME)
			continue;
		if (rc == -EFBIG) {
			snprintf(res->detail, sizeof(res->detail),
				 "the dump helper sent a status line longer than %d bytes",
				 LINE_MAX_BYTES);
			rc = -EPROTO;
		}
		if (rc <= 0)
			break;
		kind = final ? -EPROTO
			     : pd_dumprun_parse_line(line.buf, line.len, res, &done, &total);
		if (kind < 0) {
			snprintf(res->detail, sizeof(res->detail),
				 "the dump helper sent an unexpected status line: %.*s",
				 (int)(line.len > 120 ? 120 : line.len), line.buf);
			rc = -EPROTO;
			break;
		}
		if (kind == PD_STATUS_FINAL)
			final = 1;
		if (kind == PD_STATUS_PROGRESS && o->tick && o->tick(o->arg, done, total)) {
			rc = -ECANCELED;
			break;
		}
	}
	strbuf_release(&line);
	pd_helper_lines_release(&lines);
	return rc < 0 ? rc : final;
}

int pd_dump_run(const struct pd_dumprun_opts *o, struct pd_dumprun_result *res)
{
	int sp[2], out_fd = -1, rc, st = 0;
	pid_t pid;
	struct stat sb;

	memset(res, 0, sizeof(*res));
	res->error = PD_DUMP_INTERNAL;
	if (pipe2(sp, O_CLOEXEC) < 0)
		return -errno;
	out_fd = pd_helper_fd_above_stdio(o->out_fd, false);
	if (out_fd < 0) {
		rc = out_fd;
		goto out_close;
	}
	rc = pd_helper_fd_above_stdio(sp[1], true);
	if (rc < 0)
		goto out_close;
	sp[1] = rc;
	rc = spawn_helper(o, out_fd, sp[1], &pid);
	close(sp[1]);
	sp[1] = -1;
	close(out_fd);
	out_fd = -1;
	if (rc < 0) {
		snprintf(res->detail, sizeof(res->detail), "cannot start the dump helper: %s",
			 strerror(-rc));
		goto out_close;
	}
	rc = read_status(o, sp[0], res);
	/* Given up on: the kernel resumes a target whose tracer dies. SIGTERM
	 * first: with a clone, the helper kills it and has the target reap
	 * it (cli/dumphelper.c). */
	if (rc < 0)
		pd_helper_stop(pid, HELPER_GRACE_MS, &st);
	else
		pd_helper_reap(pid, &st);
	if (rc == -ECANCELED)
		snprintf(res->detail, sizeof(res->detail), "the dump was cancelled");
	res->wait_status = st;
	if (res->clone_pid && WIFSIGNALED(st))
		reap_clone(o, res->clone_pid);
	if (res->clone_pid && WIFSIGNALED(st))
		reap_clone(o, res->clone_pid);
	if (rc == 0) {
		pd_helper_describe_exit(res->detail, sizeof(res->detail), "dump", "ended without a result", st);
		rc = -EPROTO;
	} else if (rc == 1) {
		rc = 0;
		if (res->error == PD_DUMP_OK && fstat(o->out_fd, &sb) < 0)
			sb.st_size = -1;
		if (res->error == PD_DUMP_OK && (uint64_t)sb.st_size != res->size) {
			snprintf(res->detail, sizeof(res->detail),
				 "the dump helper reported %llu bytes, the spool holds %lld",
				 (unsigned long long)res->size, (long long)sb.st_size);
			res->error = PD_DUMP_INTERNAL;
			rc = -EPROTO;
		} else if (res->error == PD_DUMP_OK && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			pd_helper_describe_exit(res->detail, sizeof(res->detail), "dump", "reported success",
						st);
			res->error = PD_DUMP_INTERNAL;
			rc = -EPROTO;
		}
	}
out_close:
	if (out_fd >= 0)
		close(out_fd);
	if (sp[1] >= 0)
		close(sp[1]);
	close(sp[0]);
	return rc;
}
