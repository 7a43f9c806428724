/* Spawning the dump helper, reading its status lines, reaping it. */
#include "config.h"

#include "lib/dumprun.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/sysclock.h"

extern char **environ;

/* A status line is a small JSON object; anything longer is not the
 * protocol. */
#define LINE_MAX_BYTES	4096
#define HELPER_GRACE_MS 2000 /* see stop_helper() */

static const char *const codes[] = {
	[PD_DUMP_OK] = "",
	[PD_DUMP_GONE] = "gone",
	[PD_DUMP_ZOMBIE] = "zombie",
	[PD_DUMP_KERNEL_THREAD] = "kernel_thread",
	[PD_DUMP_NOT_PERMITTED] = "not_permitted",
	[PD_DUMP_TIMEOUT] = "timeout",
	[PD_DUMP_BUSY] = "busy",
	[PD_DUMP_NO_SPACE] = "no_space",
	[PD_DUMP_IO] = "io",
	[PD_DUMP_INTERNAL] = "internal",
};

const char *pd_dump_error_code(enum pd_dump_error e)
{
	if ((size_t)e < sizeof(codes) / sizeof(codes[0]))
		return codes[e];
	return "internal";
}

enum pd_dump_error pd_dump_error_from_errno(int rc, bool write_failed)
{
	if (write_failed)
		return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG ? PD_DUMP_NO_SPACE
								      : PD_DUMP_IO;
	switch (rc) {
	case -ESRCH:
	case -ENOENT: return PD_DUMP_GONE;
	case -EOWNERDEAD: return PD_DUMP_ZOMBIE;
	case -EOPNOTSUPP: return PD_DUMP_KERNEL_THREAD;
	case -EPERM:
	case -EACCES: return PD_DUMP_NOT_PERMITTED;
	case -EBUSY: return PD_DUMP_BUSY;
	case -ETIMEDOUT: return PD_DUMP_TIMEOUT;
	default: return PD_DUMP_INTERNAL;
	}
}

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

static int parse_final_error(json_t *o, struct pd_dumprun_result *res)
{
	const char *code = json_string_value(json_object_get(o, "error"));
	const char *detail = json_string_value(json_object_get(o, "detail"));

	if (!code)
		return -EPROTO;
	res->error = PD_DUMP_INTERNAL;
	for (size_t i = 1; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(code, codes[i]) == 0)
			res->error = (enum pd_dump_error)i;
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
		    get_u64(o, "dumped_bytes", &r.dumped_bytes)) {
			const char *m = json_string_value(json_object_get(o, "method"));
			const char *why = json_string_value(json_object_get(o, "reason"));

			/* Optional: a helper of another build may not send them. */
			snprintf(r.method, sizeof(r.method), "%s",
				 m && (!strcmp(m, "clone") || !strcmp(m, "stop")) ? m : "");
			snprintf(r.reason, sizeof(r.reason), "%s", why ? why : "");
			get_u64(o, "freezing_us", &r.freezing_us);
			get_u64(o, "frozen_us", &r.frozen_us);
			get_u64(o, "copy_us", &r.copy_us);
			get_u64(o, "copied_bytes", &r.copied_bytes);
			get_u64(o, "extra_memory", &r.extra_memory);
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

/* Starts the helper with stdin /dev/null, stdout on stderr (it must never
 * write into a stream that may be a dump), stderr inherited, out_fd and
 * status_fd inherited at their numbers (both are > 2), and no other fd.
 * Signals: default dispositions and an empty mask, whatever the server's
 * threads block or ignore. posix_spawn uses CLONE_VFORK: safe from a
 * threaded server. */
static int spawn_helper(const struct pd_dumprun_opts *o, int out_fd, int status_fd, pid_t *pid)
{
	static const int dfl[] = {SIGPIPE, SIGTERM, SIGINT,  SIGHUP, SIGQUIT,
				  SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct argv_buf a;
	sigset_t none, def;
	int rc, top = out_fd > status_fd ? out_fd : status_fd;

	rc = build_argv(&a, o, out_fd, status_fd);
	if (rc < 0) {
		strbuf_release(&a.scope);
		return rc;
	}
	sigemptyset(&none);
	sigemptyset(&def);
	for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
		sigaddset(&def, dfl[i]);
	rc = posix_spawn_file_actions_init(&fa);
	if (rc) {
		strbuf_release(&a.scope);
		return -rc;
	}
	rc = posix_spawnattr_init(&at);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		strbuf_release(&a.scope);
		return -rc;
	}
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, 2, 1);
	/* dup2 onto itself clears FD_CLOEXEC in the child (POSIX 2024,
	 * glibc >= 2.29): the only two fds it inherits besides 0-2. */
	rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, out_fd, out_fd);
	rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, status_fd, status_fd);
	rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);
	rc = rc ? rc
		: posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
	rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &def);
	if (!rc)
		rc = posix_spawn(pid, o->helper ? o->helper : "/proc/self/exe", &fa, &at, a.v,
				 environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	strbuf_release(&a.scope);
	return -rc;
}

static int reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			*status = 0;
			return -errno;
		}
	}
	return 0;
}

/* SIGTERM first: with a clone, the helper kills it and has the target
 * reap it (cli/dumphelper.c); without, it dies at once. SIGKILL after
 * HELPER_GRACE_MS all the same. */
static void stop_helper(pid_t pid)
{
	uint64_t until = pd_mono_ns() + (uint64_t)HELPER_GRACE_MS * 1000000u;
	siginfo_t si;

	kill(pid, SIGTERM);
	while (pd_mono_ns() < until) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
			return;
		nanosleep(&(struct timespec){0, 2000000}, NULL);
	}
	kill(pid, SIGKILL);
}

/* A helper killed after it cloned the target left the clone dead under
 * the target (PTRACE_O_EXITKILL killed it; nobody reaps it): one short
 * helper run has the target reap it (lib/cowclone.h, pd_cow_reap). */
static void reap_clone(const struct pd_dumprun_opts *o, pid_t clone_pid)
{
	char pid[24], start[24], cl[24];
	char *argv[] = {"procdiag", "dump-helper",  "--pid", pid, "--start-time",
			start,	    "--reap-clone", cl,	     NULL};
	posix_spawn_file_actions_t fa;
	pid_t h;
	int st;

	snprintf(pid, sizeof(pid), "%d", (int)o->pid);
	snprintf(start, sizeof(start), "%llu", (unsigned long long)o->start_time);
	snprintf(cl, sizeof(cl), "%d", (int)clone_pid);
	if (posix_spawn_file_actions_init(&fa))
		return;
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) == 0 &&
	    posix_spawn_file_actions_adddup2(&fa, 2, 1) == 0 &&
	    posix_spawn_file_actions_addclosefrom_np(&fa, 3) == 0 &&
	    posix_spawn(&h, o->helper ? o->helper : "/proc/self/exe", &fa, NULL, argv, environ) ==
		    0)
		reap(h, &st);
	posix_spawn_file_actions_destroy(&fa);
}

static void describe_exit(struct pd_dumprun_result *res, const char *what, int st)
{
	if (WIFSIGNALED(st))
		snprintf(res->detail, sizeof(res->detail),
			 "the dump helper %s and was killed by %s", what, strsignal(WTERMSIG(st)));
	else
		snprintf(res->detail, sizeof(res->detail),
			 "the dump helper %s and exited with status %d", what,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* Reads status lines until the helper closes its end (it exits), or tick
 * asks to stop. Returns 1 when a final line was seen, 0 at EOF without
 * one, -ECANCELED, -EPROTO, -errno. */
static int read_status(const struct pd_dumprun_opts *o, int fd, struct pd_dumprun_result *res)
{
	struct strbuf buf = STRBUF_INIT;
	uint64_t done = 0, total = 0;
	unsigned tick_ms = o->tick_ms ? o->tick_ms : 100;
	long long next_tick = (long long)(pd_mono_ns() / 1000000) + tick_ms;
	int final = 0, rc = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long wait = next_tick - (long long)(pd_mono_ns() / 1000000);
		char chunk[4096];
		ssize_t n;

		if (wait < 0)
			wait = 0;
		n = poll(&p, 1, o->tick ? (int)wait : -1);
		if (n < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (o->tick && (long long)(pd_mono_ns() / 1000000) >= next_tick) {
			next_tick = (long long)(pd_mono_ns() / 1000000) + tick_ms;
			if (o->tick(o->arg, done, total)) {
				rc = -ECANCELED;
				break;
			}
		}
		if (n <= 0)
			continue;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		if (strbuf_add(&buf, chunk, (size_t)n) < 0) {
			rc = -ENOMEM;
			break;
		}
		for (char *nl; (nl = memchr(buf.buf, '\n', buf.len));) {
			size_t len = (size_t)(nl - buf.buf);
			int kind = final ? -EPROTO
					 : pd_dumprun_parse_line(buf.buf, len, res, &done, &total);

			if (kind < 0) {
				snprintf(res->detail, sizeof(res->detail),
					 "the dump helper sent an unexpected status line: %.*s",
					 (int)(len > 120 ? 120 : len), buf.buf);
				rc = -EPROTO;
				goto out;
			}
			if (kind == PD_STATUS_FINAL)
				final = 1;
			if (kind == PD_STATUS_PROGRESS && o->tick && o->tick(o->arg, done, total)) {
				rc = -ECANCELED;
				goto out;
			}
			memmove(buf.buf, nl + 1, buf.len - len - 1);
			strbuf_setlen(&buf, buf.len - len - 1);
		}
		if (buf.len > LINE_MAX_BYTES) {
			snprintf(res->detail, sizeof(res->detail),
				 "the dump helper sent a status line longer than %d bytes",
				 LINE_MAX_BYTES);
			rc = -EPROTO;
			break;
		}
	}
out:
	strbuf_release(&buf);
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
	/* Numbers above 2, so that the child's stdio set-up cannot clobber
	 * them (a caller with a closed stdin may hold fd 0). */
	out_fd = fcntl(o->out_fd, F_DUPFD_CLOEXEC, 3);
	if (out_fd < 0) {
		rc = -errno;
		goto out_close;
	}
	if (sp[1] < 3) {
		int w = fcntl(sp[1], F_DUPFD_CLOEXEC, 3);

		if (w < 0) {
			rc = -errno;
			goto out_close;
		}
		close(sp[1]);
		sp[1] = w;
	}
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
	/* Given up on: the kernel resumes a target whose tracer dies. */
	if (rc < 0)
		stop_helper(pid);
	if (rc == -ECANCELED)
		snprintf(res->detail, sizeof(res->detail), "the dump was cancelled");
	reap(pid, &st);
	res->wait_status = st;
	if (res->clone_pid && WIFSIGNALED(st))
		reap_clone(o, res->clone_pid);
	if (rc == 0) {
		describe_exit(res, "ended without a result", st);
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
			describe_exit(res, "reported success", st);
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
