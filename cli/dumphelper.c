/* procdiag dump-helper: the single-threaded process that freezes a target
 * and writes its core (CONTRACT.md §2, docs/DUMPS.md). The server and the
 * CLI never ptrace; they exec this (lib/dumprun.c) with two fds:
 *
 *   procdiag dump-helper --pid PID --start-time TICKS --content MASK \
 *                        --out-fd N --status-fd M [--deadline-ms MS] [--mem-budget BYTES]
 *                        [--scope all|UID,UID...] [--out-max BYTES]
 *                        [--trace]
 *
 * --scope is the server's scope, which the helper judges the process by once
 * every thread is stopped (lib/freeze.h); without it, the kernel alone
 * judges (the CLI). fd N receives the core, fd M newline-terminated JSON events. Internal: not
 * listed in `procdiag --help`. Exit 0 after "done", 1 after "error", 2 for
 * bad arguments. --trace prints each phase and its time on stderr (for
 * whoever profiles the engine; the server never passes it). It reads no
 * environment variable: the test build's hooks are in lib/testhooks.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "lib/corefile.h"
#include "lib/dumprun.h"
#include "lib/scope.h"
#include "lib/testhooks.h"

#define CONTENT_ALL (PD_DC_FILE_DATA | PD_DC_ANON | PD_DC_SHARED | PD_DC_FULL)

static int status_fd = -1;
static bool status_broken;

/* One JSON object and a newline on the status fd. A reader that went away
 * (EPIPE) does not stop the dump: the core is still written. */
static void emit(json_t *obj)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	size_t len, off = 0;

	json_decref(obj);
	if (!s || status_broken)
		goto out;
	len = strlen(s);
	s[len++] = '\n'; /* json_dumps' NUL becomes the newline */
	while (off < len) {
		ssize_t w = write(status_fd, s + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			status_broken = true;
			break;
		}
		off += (size_t)w;
	}
out:
	free(s);
}

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	emit(json_pack("{s:s,s:I,s:I}", "event", "progress", "done", (json_int_t)done, "total",
		       (json_int_t)total));
}

static int usage(void)
{
	fprintf(stderr, "usage: procdiag dump-helper --pid PID --start-time TICKS --content MASK\n"
			"                            --out-fd N --status-fd M [--deadline-ms MS]\n"
			"                            [--mem-budget BYTES] [--scope all|UID,...]\n"
			"                            [--out-max BYTES] [--trace]\n"
			"(internal: run by procdiag itself; see docs/DUMPS.md)\n");
	return 2;
}

static bool open_fd(int fd)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0;
}

int cmd_dump_helper(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"start-time", required_argument, NULL, 's'},
		{"content", required_argument, NULL, 'c'},
		{"out-fd", required_argument, NULL, 'o'},
		{"status-fd", required_argument, NULL, 'S'},
		{"deadline-ms", required_argument, NULL, 'd'},
		{"mem-budget", required_argument, NULL, 'm'},
		{"out-max", required_argument, NULL, 'M'},
		{"trace", no_argument, NULL, 't'},
		{"scope", required_argument, NULL, 'u'},
		{NULL, 0, NULL, 0},
	};
	struct pd_core_opts o;
	struct pd_core_result res;
	struct pd_scope scope = PD_SCOPE_INIT;
	uint64_t v, seen = 0, out_max = 0;
	char err[512];
	int c, rc, pid = -1;

	memset(&o, 0, sizeof(o));
	o.out_fd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		const char *a = optarg;
		size_t n = a ? strlen(a) : 0;

		switch (c) {
		case 'p':
			if (parse_pid(a, n, &pid) < 0 || pid <= 0)
				return usage();
			break;
		case 's':
			if (parse_u64(a, n, UINT64_MAX, &o.start_time) < 0)
				return usage();
			break;
		case 'c':
			if (parse_u64(a, n, CONTENT_ALL, &v) < 0)
				return usage();
			o.content = (unsigned)v;
			break;
		case 'o':
		case 'S':
			if (parse_u64(a, n, 1u << 30, &v) < 0)
				return usage();
			if (c == 'o')
				o.out_fd = (int)v;
			else
				status_fd = (int)v;
			break;
		case 'd':
			if (parse_u64(a, n, 3600000, &v) < 0)
				return usage();
			o.deadline_ms = (unsigned)v;
			break;
		case 'm':
			if (parse_u64(a, n, UINT64_MAX, &o.mem_budget) < 0)
				return usage();
			break;
		case 'M':
			if (parse_u64(a, n, UINT64_MAX, &out_max) < 0 || !out_max)
				return usage();
			break;
		case 't': o.trace = true; break;
		case 'u':
			pd_scope_release(&scope);
			if (pd_scope_parse_ids(&scope, a) < 0)
				return usage();
			o.scope = &scope;
			break;
		default: return usage();
		}
		seen |= 1u << (c & 31);
	}
	if (optind != argc || pid <= 0 || !(seen & (1u << ('s' & 31))) ||
	    !(seen & (1u << ('c' & 31))) || !open_fd(o.out_fd) || !open_fd(status_fd) ||
	    o.out_fd == status_fd)
		return usage();
	o.pid = pid;
	o.progress = on_progress;

	/* A dead parent must not leave us (and a frozen target) behind; if the
	 * parent died before the prctl, we notice it here. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	if (out_max) {
		/* The spool's bound, kept by the kernel: a write or truncate of
		 * the core past it fails with EFBIG (its signal ignored), whatever
		 * way the engine writes (pwrite, ftruncate before an mmap). */
		struct rlimit rl = {out_max, out_max};

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
			emit(json_pack("{s:s,s:s,s:s}", "event", "error", "error", "internal",
				       "detail", "cannot limit the output's size"));
			return 1;
		}
	}
	o.mem_budget = pd_hook_mem_budget(o.mem_budget);

	rc = pd_core_dump(&o, &res, err, sizeof(err));
	pd_scope_release(&scope);
	if (rc < 0) {
		emit(json_pack("{s:s,s:s,s:s}", "event", "error", "error",
			       pd_dump_error_code(pd_dump_error_from_errno(rc, res.write_failed)),
			       "detail", err[0] ? err : strerror(-rc)));
		return 1;
	}
	emit(json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "event", "done", "size", (json_int_t)res.size,
		       "stopped_us", (json_int_t)res.stopped_us, "threads", (json_int_t)res.threads,
		       "mappings", (json_int_t)res.mappings, "dumped_bytes",
		       (json_int_t)res.dumped_bytes));
	return 0;
}
