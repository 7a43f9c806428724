/* Crash capture (lib/crashcap.h, docs/CRASH.md). */
#include "config.h"

#include "lib/crashcap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonstr.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "lib/corepattern.h"
#include "lib/dumpjob.h"
#include "lib/proc.h"

volatile sig_atomic_t pd_crash_timed_out;

#define BLOCK	      4096u
#define CHUNK	      (1u << 20)
#define FAILURES_KEPT 32

/* ---- the log: one line per event, on stderr (the kernel's handler has
 * /dev/kmsg there: cli/crashhandler.c) ---- */

static void crash_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void crash_log(const char *fmt, ...)
{
	char line[768];
	int n = snprintf(line, sizeof(line), "procdiag crash-handler[%d]: ", (int)getpid());
	va_list ap;

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	/* One write: one record in /dev/kmsg, one line in a shared log. */
	if (write(2, line, (size_t)n) < 0) {
		/* nowhere else to say it */
	}
}

/* A comm for a log line: its control bytes as '?' (a comm may hold any
 * byte but NUL; a newline would forge a second line in the kernel log). */
static const char *printable(const char *in, char *out, size_t size)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < size; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = 0;
	return out;
}

static void on_alarm(int sig)
{
	(void)sig;
	pd_crash_timed_out = 1;
}

/* ---- the core: sparse copy, drain ---- */

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* Fills buf from fd (a pipe gives what it has): the bytes read, 0 at EOF,
 * or -errno; -ECANCELED when a signal interrupted it and *stop is set. */
static ssize_t fill(int fd, unsigned char *buf, size_t size, volatile sig_atomic_t *stop)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n;

		if (stop && *stop)
			return -ECANCELED;
		n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return got ? (ssize_t)got : -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int pwrite_all(int fd, const unsigned char *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int pd_crash_copy_sparse(int in_fd, int out_fd, uint64_t limit, volatile sig_atomic_t *stop,
			 uint64_t *size)
{
	unsigned char *buf = malloc(CHUNK);
	uint64_t off = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = fill(in_fd, buf, CHUNK, stop);

		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		if (limit && off + (uint64_t)n > limit) {
			rc = -EFBIG;
			break;
		}
		/* The runs of blocks with data, each in one write; a block of
		 * zeros is a hole (never written: the file's end makes it). */
		for (size_t i = 0; i < (size_t)n && rc == 0;) {
			size_t len = (size_t)n - i < BLOCK ? (size_t)n - i : BLOCK, j;

			if (all_zero(buf + i, len)) {
				i += len;
				continue;
			}
			for (j = i + len; j < (size_t)n; j += len) {
				len = (size_t)n - j < BLOCK ? (size_t)n - j : BLOCK;
				if (all_zero(buf + j, len))
					break;
			}
			rc = pwrite_all(out_fd, buf + i, j - i, off + i);
			i = j;
		}
		if (rc < 0)
			break;
		off += (uint64_t)n;
	}
	free(buf);
	if (size)
		*size = off;
	if (rc == 0 && ftruncate(out_fd, (off_t)off) < 0)
		rc = -errno;
	return rc;
}

void pd_crash_drain(int fd)
{
	static char buf[1 << 16];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
	}
}

/* ---- the facts of the dying process ---- */

struct facts {
	struct pd_proc p;
	bool open;
	struct pd_status st;
	bool have_status;
	char exe[4096];
};

static void facts_read(pid_t pid, struct facts *f)
{
	struct strbuf sb = STRBUF_INIT;

	memset(f, 0, sizeof(*f));
	if (pd_proc_open(pid, &f->p) < 0)
		return;
	f->open = true;
	f->have_status = pd_proc_status(&f->p, &f->st) == 0;
	if (pd_proc_exe(&f->p, &sb) == 0 && sb.len < sizeof(f->exe))
		memcpy(f->exe, sb.buf, sb.len + 1);
	strbuf_release(&sb);
}

static void facts_release(struct facts *f)
{
	if (f->open)
		pd_proc_close(&f->p);
	f->open = false;
}

/* ---- the previous handler (crash_chain) ---- */

static int argv_add(char ***argv, size_t *n, struct strbuf *arg)
{
	char **v = realloc(*argv, (*n + 2) * sizeof(**argv));

	if (!v)
		return -ENOMEM;
	*argv = v;
	if (!(v[*n] = strdup(arg->buf)))
		return -ENOMEM;
	v[++*n] = NULL;
	strbuf_reset(arg);
	return 0;
}

void pd_crash_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* The innermost pid of a line "NSpid:\t1234\t5" of a status file; *levels
 * gets the count. */
static long nspid_inner(const char *status, int *levels)
{
	const char *l = strstr(status, "\nNSpid:");
	long v = -1;

	*levels = 0;
	if (!l)
		return -1;
	l += 7;
	while (*l && *l != '\n') {
		char *end;

		while (*l == '\t' || *l == ' ')
			l++;
		if (*l == '\n' || !*l)
			break;
		v = strtol(l, &end, 10);
		if (end == l)
			break;
		l = end;
		(*levels)++;
	}
	return v;
}

/* %I: the crashing thread's id in the initial namespace, from %i (its id
 * in its own): the task whose innermost NSpid is %i. */
static long tid_global(const struct pd_crash_args *a)
{
	char path[128];
	struct strbuf sb = STRBUF_INIT;
	int levels = 0;
	long found = a->tid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)a->pid);
	if (pd_read_file_at(AT_FDCWD, path, &sb, 1 << 16) == 0)
		nspid_inner(sb.buf, &levels);
	strbuf_reset(&sb);
	if (levels > 1) {
		char dir[64];
		DIR *d;

		snprintf(dir, sizeof(dir), "/proc/%d/task", (int)a->pid);
		if ((d = opendir(dir))) {
			struct dirent *e;

			while ((e = readdir(d))) {
				if (e->d_name[0] < '0' || e->d_name[0] > '9')
					continue;
				snprintf(path, sizeof(path), "%s/%.16s/status", dir, e->d_name);
				strbuf_reset(&sb);
				if (pd_read_file_at(AT_FDCWD, path, &sb, 1 << 16) == 0 &&
				    nspid_inner(sb.buf, &levels) == a->tid) {
					found = strtol(e->d_name, NULL, 10);
					break;
				}
			}
			closedir(d);
		}
	}
	strbuf_release(&sb);
	return found;
}

/* %c: the soft RLIMIT_CORE, as the kernel prints it (%lu; unlimited is
 * ~0UL). */
static void core_limit(pid_t pid, struct strbuf *out)
{
	char path[64];
	struct strbuf sb = STRBUF_INIT;
	const char *l;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	if (pd_read_file_at(AT_FDCWD, path, &sb, 1 << 16) == 0 &&
	    (l = strstr(sb.buf, "Max core file size"))) {
		l += strlen("Max core file size");
		while (*l == ' ')
			l++;
		if (!strncmp(l, "unlimited", 9))
			strbuf_addf(out, "%lu", ~0UL);
		else
			strbuf_addf(out, "%lu", strtoul(l, NULL, 10));
	} else {
		strbuf_addstr(out, "0");
	}
	strbuf_release(&sb);
}

int pd_crash_expand(const char *pattern, const struct pd_crash_args *a, char ***argv, int *pidfd)
{
	struct strbuf arg = STRBUF_INIT, status = STRBUF_INIT;
	char path[64], exe[4096] = "";
	char **v = NULL;
	size_t n = 0;
	bool in_arg = false;
	int levels, rc = 0;
	ssize_t el;

	*pidfd = -1;
	if (*pattern == '|')
		pattern++;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)a->pid);
	pd_read_file_at(AT_FDCWD, path, &status, 1 << 16);
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)a->pid);
	if ((el = readlink(path, exe, sizeof(exe) - 1)) > 0)
		exe[el] = 0;
	/* The kernel splits the pattern at spaces first, then expands each
	 * argument (since 5.7): a value with spaces stays one argument. */
	for (const char *p = pattern; *p && rc == 0; p++) {
		if (*p == ' ') {
			if (in_arg)
				rc = argv_add(&v, &n, &arg);
			in_arg = false;
			continue;
		}
		in_arg = true;
		if (*p != '%') {
			strbuf_addch(&arg, *p);
			continue;
		}
		if (!*++p)
			break;
		switch (*p) {
		case '%': strbuf_addch(&arg, '%'); break;
		case 'P': strbuf_addf(&arg, "%d", (int)a->pid); break;
		case 'p': {
			long inner = nspid_inner(status.buf, &levels);

			strbuf_addf(&arg, "%ld", inner > 0 ? inner : (long)a->pid);
			break;
		}
		case 'i': strbuf_addf(&arg, "%d", (int)a->tid); break;
		case 'I': strbuf_addf(&arg, "%ld", tid_global(a)); break;
		case 's': strbuf_addf(&arg, "%d", a->sig); break;
		case 't': strbuf_addf(&arg, "%lld", (long long)a->time); break;
		case 'e': strbuf_addstr(&arg, a->comm); break;
		case 'E':
			for (const char *e = exe; *e; e++)
				strbuf_addch(&arg, *e == '/' ? '!' : *e);
			break;
		case 'f': {
			const char *slash = strrchr(exe, '/');

			strbuf_addstr(&arg, slash ? slash + 1 : exe);
			break;
		}
		case 'u':
		case 'g': {
			const char *l = strstr(status.buf, *p == 'u' ? "\nUid:" : "\nGid:");

			strbuf_addf(&arg, "%lu", l ? strtoul(l + 5, NULL, 10) : 0ul);
			break;
		}
		case 'c': core_limit(a->pid, &arg); break;
		case 'h': {
			struct utsname u;

			if (uname(&u) == 0)
				strbuf_addstr(&arg, u.nodename);
			break;
		}
		case 'd': {
			/* The dump mode is not in /proc: a process whose ids
			 * differ dumps only under suid_dumpable 2, else 1. */
			const char *u = strstr(status.buf, "\nUid:");
			unsigned long r = 0, e = 0;

			if (u)
				sscanf(u + 5, "%lu %lu", &r, &e);
			strbuf_addstr(&arg, r != e ? "2" : "1");
			break;
		}
		case 'F':
			/* pidfd_open sets close-on-exec; the handler
			 * exec'd next must have it, as from the kernel. */
			if (*pidfd < 0 && (*pidfd = (int)syscall(SYS_pidfd_open, a->pid, 0)) >= 0)
				fcntl(*pidfd, F_SETFD, 0);
			strbuf_addf(&arg, "%d", *pidfd);
			break;
		default: break; /* the kernel drops what it does not know */
		}
	}
	if (rc == 0 && in_arg)
		rc = argv_add(&v, &n, &arg);
	if (rc == 0 && (arg.failed || status.failed))
		rc = -ENOMEM;
	strbuf_release(&arg);
	strbuf_release(&status);
	if (rc == 0 && n == 0)
		rc = -EINVAL;
	if (rc < 0) {
		pd_crash_argv_free(v);
		if (*pidfd >= 0)
			close(*pidfd);
		*pidfd = -1;
		return rc;
	}
	*argv = v;
	return 0;
}

/* Execs the previous core_pattern's handler with stdin untouched. Returns
 * only when that cannot be done (after logging why). */
static void chain(const struct pd_crash_opts *o)
{
	struct pd_core_paths paths = {.saved = o->saved};
	struct pd_core_saved s;
	char **argv = NULL;
	int pidfd = -1, r = pd_core_saved_read(&paths, &s);

	if (r < 0) {
		crash_log("crash_chain: no previous core_pattern remembered (%s): the core of "
			  "pid %d is dropped",
			  r == -ENOENT ? "not installed with --install" : strerror(-r),
			  (int)o->a.pid);
		return;
	}
	if (s.pattern[0] != '|') {
		crash_log("crash_chain: the previous core_pattern '%s' is a file name, not a "
			  "handler; the core of pid %d is dropped (docs/CRASH.md)",
			  s.pattern, (int)o->a.pid);
		return;
	}
	if (strstr(s.pattern, " crash-handler")) {
		crash_log("crash_chain: the previous core_pattern is procdiag's own handler; "
			  "not chained (a loop)");
		return;
	}
	if ((r = pd_crash_expand(s.pattern, &o->a, &argv, &pidfd)) < 0) {
		crash_log("crash_chain: cannot expand '%s': %s", s.pattern, strerror(-r));
		return;
	}
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	/* Its environment is the one the kernel gave: this process's. */
	execv(argv[0], argv);
	crash_log("crash_chain: cannot run %s: %s; the core of pid %d is dropped", argv[0],
		  strerror(errno), (int)o->a.pid);
	pd_crash_argv_free(argv);
	if (pidfd >= 0)
		close(pidfd);
}

/* After the release nobody waits for the handler, but it must end: what
 * follows (a zstd stream, the commit, the record) gets this long, at least
 * 30 s however short crash_timeout is. */
static unsigned after_release_s(const struct pd_crash_opts *o)
{
	return o->timeout_s > 30 ? o->timeout_s : 30;
}

/* ---- the state file ---- */

struct state {
	int dirfd;
	int lockfd;
	json_t *root;
};

/* Takes the state's lock (interrupted by the alarm: -ECANCELED) and reads
 * it (a missing or damaged file is an empty state). */
static int state_open(const char *dir, struct state *s, bool wait)
{
	json_t *root = NULL;
	int fd;

	s->root = NULL;
	s->lockfd = -1;
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return -errno;
	s->lockfd = openat(s->dirfd, PD_CRASH_STATE_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			   0600);
	if (s->lockfd < 0)
		goto err;
	while (flock(s->lockfd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR && !pd_crash_timed_out)
			continue;
		if (errno == EINTR)
			errno = ECANCELED;
		goto err;
	}
	if ((fd = openat(s->dirfd, PD_CRASH_STATE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		root = json_loadfd(fd, 0, NULL);
		close(fd);
	}
	if (!json_is_object(root)) {
		json_decref(root);
		root = json_object();
	}
	if (!json_is_object(json_object_get(root, "rules")))
		json_object_set_new(root, "rules", json_object());
	if (!json_is_array(json_object_get(root, "failures")))
		json_object_set_new(root, "failures", json_array());
	s->root = root;
	return 0;
err : {
	int e = errno;

	if (s->lockfd >= 0)
		close(s->lockfd);
	close(s->dirfd);
	s->lockfd = s->dirfd = -1;
	return -e;
}
}

json_t *pd_crash_state_load(const char *store_dir)
{
	char path[4200];
	json_t *root;

	/* Replaced by rename: a reader sees one whole version, no lock. */
	snprintf(path, sizeof(path), "%s/%s", store_dir, PD_CRASH_STATE);
	root = json_load_file(path, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		root = json_pack("{s:{},s:[]}", "rules", "failures");
	}
	return root;
}

/* Writes the state (temporary file, rename) and lets the lock go. */
static int state_close(struct state *s, bool write_it)
{
	int rc = 0;

	if (write_it && s->root) {
		char *text = json_dumps(s->root, JSON_INDENT(1) | JSON_SORT_KEYS);
		int fd = text ? openat(s->dirfd, PD_CRASH_STATE ".new",
				       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)
			      : -1;
		size_t len = text ? strlen(text) : 0;

		if (!text)
			rc = -ENOMEM;
		else if (fd < 0)
			rc = -errno;
		else if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
			rc = errno ? -errno : -EIO;
		if (fd >= 0 && close(fd) < 0 && rc == 0)
			rc = -errno;
		if (rc == 0 &&
		    renameat(s->dirfd, PD_CRASH_STATE ".new", s->dirfd, PD_CRASH_STATE) < 0)
			rc = -errno;
		if (rc < 0 && fd >= 0)
			unlinkat(s->dirfd, PD_CRASH_STATE ".new", 0);
		free(text);
	}
	json_decref(s->root);
	s->root = NULL;
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->lockfd = s->dirfd = -1;
	return rc;
}

static json_t *state_rule(struct state *s, const char *name)
{
	json_t *rules = json_object_get(s->root, "rules"), *r = json_object_get(rules, name);

	if (!json_is_object(r)) {
		r = json_object();
		json_object_set_new(rules, name, r);
	}
	return r;
}

/* ---- one crash ---- */

struct crash {
	const struct pd_crash_opts *o;
	bool released;	   /* stdin drained and closed: the process went */
	uint64_t start_ns; /* when the handler began */
	uint64_t held_ms;  /* how long the process waited for it */
	bool reserved;
	char id[PD_STORE_ID_MAX];
	const struct pd_rule *rule;
	struct facts f;
	const char *error; /* a code for the failure record */
	char detail[512];
	/* the reservation of the rule's limits, given back on failure */
	json_int_t prev_count, prev_last, reserved_at;
	struct pd_store *store;
	struct pd_store_new *entry;
};

static void failed(struct crash *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failed(struct crash *c, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (c->error)
		return; /* the first failure is the one said */
	c->error = code;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
}

static const char *sig_name(int sig, char *buf, size_t size)
{
	const char *n = sigabbrev_np(sig);

	if (n)
		return n;
	snprintf(buf, size, "%d", sig);
	return buf;
}

/* The rule's limits (count, interval) held across crashes: checked and
 * reserved under the state's lock. 1: fire; 0: a limit holds it back;
 * -errno: the state could not be had (timeout included). */
static int reserve(struct crash *c)
{
	struct state s;
	json_t *r;
	json_int_t count, last, now = (json_int_t)time(NULL);
	int rc = state_open(c->o->store_dir, &s, true);

	if (rc < 0)
		return rc;
	r = state_rule(&s, c->rule->name);
	count = json_integer_value(json_object_get(r, "count"));
	last = json_integer_value(json_object_get(r, "last"));
	if (c->rule->count && (uint64_t)count >= c->rule->count) {
		crash_log("rule %s: crash of pid %d not captured: its count (%llu) is used up",
			  c->rule->name, (int)c->o->a.pid, (unsigned long long)count);
		state_close(&s, false);
		return 0;
	}
	if (json_object_get(r, "last") && (uint64_t)(now - last) * 1000 < c->rule->interval_ms) {
		crash_log("rule %s: crash of pid %d not captured: %llds since the last one, "
			  "interval %llums",
			  c->rule->name, (int)c->o->a.pid, (long long)(now - last),
			  (unsigned long long)c->rule->interval_ms);
		state_close(&s, false);
		return 0;
	}
	c->prev_count = count;
	c->prev_last = json_object_get(r, "last") ? last : -1;
	c->reserved_at = now;
	json_object_set_new(r, "count", json_integer(count + 1));
	json_object_set_new(r, "last", json_integer(now));
	rc = state_close(&s, true);
	return rc < 0 ? rc : 1;
}

/* After the crash: the failure recorded (and the reservation given back),
 * or the entry's id noted. Never waits longer than the lock's own alarm. */
static void record(struct crash *c)
{
	struct state s;
	json_t *r, *fails;
	char sb[16];
	int rc;

	if (!c->o->store_dir)
		return;
	pd_crash_timed_out = 0;
	alarm(after_release_s(c->o));
	rc = state_open(c->o->store_dir, &s, true);
	alarm(0);
	if (rc < 0) {
		crash_log("the state file in %s could not be updated: %s", c->o->store_dir,
			  strerror(-rc));
		return;
	}
	if (c->rule && c->reserved) {
		r = state_rule(&s, c->rule->name);
		if (c->error) {
			json_int_t count = json_integer_value(json_object_get(r, "count"));

			json_object_set_new(r, "count", json_integer(count > 0 ? count - 1 : 0));
			/* The last firing is ours again only if no other crash of
			 * the rule reserved one since. */
			if (json_integer_value(json_object_get(r, "last")) == c->reserved_at) {
				if (c->prev_last >= 0)
					json_object_set_new(r, "last", json_integer(c->prev_last));
				else
					json_object_del(r, "last");
			}
		} else if (c->id[0]) {
			json_object_set_new(r, "last_id", json_string(c->id));
		}
	}
	if (c->error) {
		fails = json_object_get(s.root, "failures");
		json_array_append_new(
			fails, json_pack("{s:I,s:I,s:i,s:o,s:i,s:s,s:s?,s:s,s:s,s:I}", "time",
					 (json_int_t)time(NULL), "crash_time",
					 (json_int_t)c->o->a.time, "pid", (int)c->o->a.pid, "name",
					 pd_json_cstr(c->o->a.comm), "signal", c->o->a.sig,
					 "signal_name", sig_name(c->o->a.sig, sb, sizeof(sb)),
					 "rule", c->rule ? c->rule->name : NULL, "error", c->error,
					 "detail", c->detail, "held_ms", (json_int_t)c->held_ms));
		while (json_array_size(fails) > FAILURES_KEPT)
			json_array_remove(fails, 0);
	}
	if ((rc = state_close(&s, true)) < 0)
		crash_log("the state file in %s could not be written: %s", c->o->store_dir,
			  strerror(-rc));
}

/* The site process, when the configuration names its pid file. */
static bool is_site(const struct pd_crash_opts *o)
{
	struct strbuf sb = STRBUF_INIT;
	int pid = -1;

	if (o->site_pid_file && pd_read_file_at(AT_FDCWD, o->site_pid_file, &sb, 64) == 0) {
		while (sb.len && (sb.buf[sb.len - 1] == '\n' || sb.buf[sb.len - 1] == ' '))
			sb.buf[--sb.len] = 0;
		if (parse_pid(sb.buf, sb.len, &pid) < 0)
			pid = -1;
	}
	strbuf_release(&sb);
	return pid == (int)o->a.pid;
}

/* The first crash rule (in file order) that covers the signal and whose
 * filter takes the dying process, read from /proc/PID while the kernel
 * keeps it. */
static const struct pd_rule *find_rule(struct crash *c)
{
	const struct pd_crash_opts *o = c->o;
	struct pd_rule_procbuf b = PD_RULE_PROCBUF_INIT;
	struct pd_rule_proc p;
	const struct pd_rule *found = NULL;
	bool have = false;

	for (size_t i = 0; o->rules && i < o->rules->n && !found; i++) {
		const struct pd_rule *r = &o->rules->v[i];

		if (!pd_rule_crash_signal(r, o->a.sig))
			continue;
		if (!have) {
			if (pd_rule_proc_read(o->a.pid, c->f.open ? c->f.p.dirfd : -1, &p, &b) < 0)
				break;
			p.is_site = is_site(o);
			have = true;
		}
		if (pd_rule_matches(r, &p))
			found = r;
	}
	pd_rule_procbuf_release(&b);
	return found;
}

/* What a failure's errno is called in the record. */
static const char *error_code(int rc)
{
	switch (rc) {
	case -ECANCELED: return "timeout";
	case -ENOSPC: return "no_space";
	case -EDQUOT:
	case -EFBIG: return "quota";
	case -ESRCH: return "gone";
	case -ENOMEM: return "no_memory";
	default: return "io";
	}
}

/* About the core's size, for the store's quota check before a byte is
 * written: the anonymous, shared and swapped memory the kernel dumps (its
 * default coredump_filter), plus headers. Not a bound. */
static uint64_t core_estimate(const struct facts *f)
{
	uint64_t e = 1u << 20;

	if (!f->have_status)
		return e;
	if (f->st.rss_anon > 0)
		e += (uint64_t)f->st.rss_anon;
	if (f->st.rss_shmem > 0)
		e += (uint64_t)f->st.rss_shmem;
	if (f->st.vm_swap > 0)
		e += (uint64_t)f->st.vm_swap;
	return e;
}

static int job_progress(void *arg, enum pd_dump_phase ph, uint64_t done, uint64_t total)
{
	(void)arg, (void)ph, (void)done, (void)total;
	return pd_crash_timed_out ? 1 : 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The rest of the core read and thrown away, the pipe closed: the kernel
 * lets the process go. */
static void release(struct crash *c)
{
	if (c->released)
		return;
	pd_crash_drain(c->o->stdin_fd);
	close(c->o->stdin_fd);
	c->released = true;
	c->held_ms = (now_ns() - c->start_ns) / 1000000u;
	if (!pd_crash_timed_out)
		alarm(after_release_s(c->o));
}

/* The core read from stdin into the store entry (raw), or into a scratch
 * file of the entry and from there through the dump job's last step (zip,
 * zstd) into the entry's file. */
static int capture(struct crash *c)
{
	const struct pd_crash_opts *o = c->o;
	enum pd_dump_format format = c->rule->action.format;
	char name[PD_STORE_NAME_MAX], sb[16];
	uint64_t estimate = core_estimate(&c->f), size = 0;
	struct pd_dumpjob_result res;
	json_t *meta;
	int fd, rc;

	if ((rc = pd_store_begin(c->store, (int)o->a.pid, &c->entry)) < 0) {
		failed(c, error_code(rc), "a new entry in the store %s: %s", o->store_dir,
		       strerror(-rc));
		return rc;
	}
	pd_store_dump_name(format, (int)o->a.pid, name, sizeof(name));
	struct pd_store_dumpout out = {
		.n = c->entry, .format = format, .name = name, .pid = (int)o->a.pid};
	if (format == PD_DUMP_FORMAT_RAW)
		fd = pd_store_file(c->entry, name, estimate);
	else
		fd = pd_store_scratch(c->entry);
	if (fd < 0) {
		failed(c, error_code(fd), "no file for the core (about %llu bytes): %s",
		       (unsigned long long)estimate, strerror(-fd));
		return fd;
	}
	rc = pd_crash_copy_sparse(o->stdin_fd, fd, 0, &pd_crash_timed_out, &size);
	if (rc < 0) {
		close(fd);
		failed(c, error_code(rc), "writing the core (%llu bytes read): %s",
		       (unsigned long long)size,
		       rc == -ECANCELED ? "crash_timeout passed" : strerror(-rc));
		return rc;
	}
	/* The same last step as every dump: the zip bundle reads the binaries
	 * from /proc/PID/map_files, there while stdin stays open; a core or
	 * a zstd stream needs the process no more. */
	if (format != PD_DUMP_FORMAT_ZIP)
		release(c);
	struct pd_dump_figures fig = {.method = "kernel"};
	struct pd_dumpjob_opts jo = {
		.pid = o->a.pid,
		.start_time = c->f.open ? c->f.p.stat.starttime : 0,
		.type = c->rule->action.type,
		.format = format,
		.open_out = pd_store_dump_open_out,
		.progress = job_progress,
		.arg = &out,
	};

	if (pd_dumpjob_finish(&jo, fd, size, &fig, &res) < 0) {
		rc = res.rc ? res.rc : -EIO;
		if (res.error == PD_DUMP_CANCELLED)
			rc = -ECANCELED;
		failed(c, error_code(rc), "%s%s", res.detail,
		       rc == -ESRCH && pd_core_pipe_limit(NULL) == 0
			       ? " (kernel.core_pipe_limit is 0: the kernel did not keep the "
				 "process for the handler; procdiag crash-handler --install sets "
				 "it)"
			       : "");
		return rc;
	}
	close(res.fd); /* the store has its own reference */
	release(c);
	/* The meta every dump entry has (figures: the kernel's core, method
	 * "kernel"), and what only a crash says. */
	meta = pd_store_dump_meta(&res, &jo.type, format, (int)o->a.pid, NULL, "crash",
				  c->rule->name);
	if (meta)
		json_object_update_new(
			meta,
			json_pack("{s:o,s:i,s:i,s:s,s:I,s:I,s:o}", "process",
				  pd_json_cstr(o->a.comm), "tid", (int)o->a.tid, "signal", o->a.sig,
				  "signal_name", sig_name(o->a.sig, sb, sizeof(sb)), "crash_time",
				  (json_int_t)o->a.time, "held_ms", (json_int_t)c->held_ms, "exe",
				  pd_json_cstr(c->f.exe[0] ? c->f.exe : NULL)));
	if (!meta) {
		failed(c, "no_memory", "the entry's meta: out of memory");
		return -ENOMEM;
	}
	rc = pd_store_commit(c->entry, meta, c->id);
	c->entry = NULL; /* freed by the commit on every path */
	if (rc < 0) {
		c->id[0] = 0;
		failed(c, error_code(rc), "the entry could not be added to the store: %s",
		       rc == -EDQUOT ? "bigger than store_max_bytes" : strerror(-rc));
		return rc;
	}
	return 0;
}

/* Is the dying process procdiag (the responder, a helper, another
 * handler): the same executable as this one? Its memory holds other
 * clients' keys and dumps; its unit's LimitCORE=0 says no core, which the
 * kernel does not apply to pipes, so the handler does. */
static bool is_procdiag(pid_t pid)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	return stat("/proc/self/exe", &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

static int handle(struct crash *c)
{
	const struct pd_crash_opts *o = c->o;
	char cb[64];
	int rc;

	facts_read(o->a.pid, &c->f);
	if (is_procdiag(o->a.pid)) {
		crash_log("pid %d (%s) is procdiag: its core is not stored (its memory holds "
			  "other clients' keys and dumps)",
			  (int)o->a.pid, printable(o->a.comm, cb, sizeof(cb)));
		if (o->chain)
			chain(o);
		return 0;
	}
	c->rule = find_rule(c);
	if (!c->rule) {
		/* No rule wants it: nothing is written here. */
		if (o->chain)
			chain(o); /* returns only when the previous handler cannot run */
		return 0;
	}
	if (!o->store_dir) {
		failed(c, "no_store", "no store_dir in the configuration");
		return -1;
	}
	if ((rc = pd_store_open(o->store_dir, &o->limits, &c->store)) < 0) {
		failed(c, error_code(rc), "the store %s: %s", o->store_dir, strerror(-rc));
		return rc;
	}
	rc = reserve(c);
	if (rc < 0) {
		failed(c, error_code(rc), "the state file %s/%s: %s", o->store_dir, PD_CRASH_STATE,
		       rc == -ECANCELED ? "its lock was not had within crash_timeout"
					: strerror(-rc));
		return rc;
	}
	if (rc == 0)
		return 0;
	c->reserved = true;
	rc = capture(c);
	pd_store_abort(c->entry);
	c->entry = NULL;
	return rc;
}

int pd_crash_handle(const struct pd_crash_opts *o)
{
	struct crash c = {.o = o};
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: reads end */
	char sb[16], cb[64];
	int rc;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	pd_crash_timed_out = 0;
	c.start_ns = now_ns();
	/* A bigger pipe: fewer switches between the kernel's writes and our
	 * reads (/proc/sys/fs/pipe-max-size bounds it; a failure costs only
	 * speed). */
	fcntl(o->stdin_fd, F_SETPIPE_SZ, 1 << 20);
	alarm(o->timeout_s);
	rc = handle(&c);
	/* Every path: the rest of the core read and thrown away, the pipe
	 * closed; the kernel lets the process go now. */
	release(&c);
	alarm(0);
	facts_release(&c.f);
	pd_store_close(c.store);
	if (c.error) {
		crash_log("pid %d (%s), signal %s%s%s: not captured: %s: %s", (int)o->a.pid,
			  printable(o->a.comm, cb, sizeof(cb)), sig_name(o->a.sig, sb, sizeof(sb)),
			  c.rule ? ", rule " : "", c.rule ? c.rule->name : "", c.error, c.detail);
		record(&c);
		return 1;
	}
	if (c.id[0]) {
		crash_log("pid %d (%s), signal %s, rule %s: stored as %s", (int)o->a.pid,
			  printable(o->a.comm, cb, sizeof(cb)), sig_name(o->a.sig, sb, sizeof(sb)),
			  c.rule->name, c.id);
		record(&c);
	}
	(void)rc;
	return 0;
}
