/* lib/dumprun: the status protocol of CONTRACT §2, and what pd_dump_run
 * does when the binary it runs does not speak it (real binaries: the
 * protocol itself is tested end to end with the real helper in
 * tests/e2e/test_dump.py). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/dumpjob.h"
#include "lib/dumprun.h"

#define S(lit) (lit), sizeof(lit) - 1

static int parse(const char *line, size_t len, struct pd_dumprun_result *res, uint64_t *done,
		 uint64_t *total)
{
	return pd_dumprun_parse_line(line, len, res, done, total);
}

static void test_progress(void **state)
{
	struct pd_dumprun_result res = {.size = 99};
	uint64_t done = 1, total = 2;

	(void)state;
	assert_int_equal(parse(S("{\"event\":\"progress\",\"done\":4096,\"total\":1048576}"), &res,
			       &done, &total),
			 PD_STATUS_PROGRESS);
	assert_true(done == 4096 && total == 1048576);
	assert_true(res.size == 99); /* untouched */
	/* Missing or negative numbers are not the protocol. */
	assert_int_equal(parse(S("{\"event\":\"progress\",\"done\":1}"), &res, &done, &total),
			 -EPROTO);
	assert_int_equal(
		parse(S("{\"event\":\"progress\",\"done\":-1,\"total\":5}"), &res, &done, &total),
		-EPROTO);
	assert_int_equal(parse(S("{\"event\":\"progress\",\"done\":\"1\",\"total\":5}"), &res,
			       &done, &total),
			 -EPROTO);
}

static void test_done(void **state)
{
	struct pd_dumprun_result res;
	uint64_t done = 0, total = 0;
	const char line[] = "{\"event\":\"done\",\"size\":123456,\"stopped_us\":789,"
			    "\"threads\":5,\"mappings\":42,\"dumped_bytes\":65536}";

	(void)state;
	memset(&res, 0xff, sizeof(res));
	assert_int_equal(parse(S(line), &res, &done, &total), PD_STATUS_FINAL);
	assert_int_equal(res.error, PD_DUMP_OK);
	assert_true(res.size == 123456);
	assert_true(res.stopped_us == 789);
	assert_true(res.threads == 5);
	assert_true(res.mappings == 42);
	assert_true(res.dumped_bytes == 65536);
	assert_string_equal(res.code, "");
	/* Every field is required. */
	assert_int_equal(parse(S("{\"event\":\"done\",\"size\":1,\"stopped_us\":2,\"threads\":3,"
				 "\"mappings\":4}"),
			       &res, &done, &total),
			 -EPROTO);
}

static void test_errors(void **state)
{
	static const struct {
		const char *code;
		enum pd_dump_error e;
	} codes[] = {
		{"gone", PD_DUMP_GONE},
		{"zombie", PD_DUMP_ZOMBIE},
		{"kernel_thread", PD_DUMP_KERNEL_THREAD},
		{"not_permitted", PD_DUMP_NOT_PERMITTED},
		{"timeout", PD_DUMP_TIMEOUT},
		{"busy", PD_DUMP_BUSY},
		{"no_space", PD_DUMP_NO_SPACE},
		{"io", PD_DUMP_IO},
		{"internal", PD_DUMP_INTERNAL},
		{"changed", PD_DUMP_CHANGED},
	};
	struct pd_dumprun_result res;
	uint64_t done = 0, total = 0;
	char line[256];

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		int n = snprintf(
			line, sizeof(line),
			"{\"event\":\"error\",\"error\":\"%s\",\"detail\":\"thread 7 \\u00e9\"}",
			codes[i].code);

		memset(&res, 0, sizeof(res));
		assert_int_equal(parse(line, (size_t)n, &res, &done, &total), PD_STATUS_FINAL);
		assert_int_equal(res.error, codes[i].e);
		assert_string_equal(res.code, codes[i].code);
		assert_string_equal(res.detail, "thread 7 \xc3\xa9");
		assert_string_equal(pd_dump_error_code(codes[i].e), codes[i].code);
	}
	/* A code this build does not know is an internal error, kept. */
	assert_int_equal(
		parse(S("{\"event\":\"error\",\"error\":\"quantum\"}"), &res, &done, &total),
		PD_STATUS_FINAL);
	assert_int_equal(res.error, PD_DUMP_INTERNAL);
	assert_string_equal(res.code, "quantum");
	assert_string_equal(res.detail, "quantum");
	assert_int_equal(parse(S("{\"event\":\"error\"}"), &res, &done, &total), -EPROTO);
}

/* The one errno map: what the helper reports and what the server answers
 * for its own reads before the helper runs. */
static void test_errno_map(void **state)
{
	(void)state;
	assert_int_equal(pd_dump_error_from_errno(-ESRCH, false), PD_DUMP_GONE);
	assert_int_equal(pd_dump_error_from_errno(-ENOENT, false), PD_DUMP_GONE);
	assert_int_equal(pd_dump_error_from_errno(-EACCES, false), PD_DUMP_NOT_PERMITTED);
	assert_int_equal(pd_dump_error_from_errno(-EPERM, false), PD_DUMP_NOT_PERMITTED);
	assert_int_equal(pd_dump_error_from_errno(-EBUSY, false), PD_DUMP_BUSY);
	assert_int_equal(pd_dump_error_from_errno(-ETIMEDOUT, false), PD_DUMP_TIMEOUT);
	assert_int_equal(pd_dump_error_from_errno(-EOWNERDEAD, false), PD_DUMP_ZOMBIE);
	assert_int_equal(pd_dump_error_from_errno(-EOPNOTSUPP, false), PD_DUMP_KERNEL_THREAD);
	assert_int_equal(pd_dump_error_from_errno(-ENOMEM, false), PD_DUMP_INTERNAL);
	assert_int_equal(pd_dump_error_from_errno(-ENOSPC, true), PD_DUMP_NO_SPACE);
	assert_int_equal(pd_dump_error_from_errno(-EACCES, true), PD_DUMP_IO);
	assert_int_equal(pd_dump_error_from_errno(-EAGAIN, false), PD_DUMP_CHANGED);
	assert_int_equal(pd_dump_error_from_errno(-EIO, false), PD_DUMP_INTERNAL);
	assert_int_equal(pd_dump_error_from_errno(-ENOSPC, false), PD_DUMP_INTERNAL);
}

/* The one table, read both ways: a word a helper sends stands for the errno
 * the other helper's reader gets back, and that errno maps to the same
 * word (the stacks helper speaks errnos, the dump helper kinds). */
static void test_words_round_trip(void **state)
{
	static const char *const words[] = {"gone", "zombie", "kernel_thread", "not_permitted",
					     "timeout", "busy", "changed", "internal"};

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		enum pd_dump_error e = pd_dump_error_from_code(words[i]);
		int rc = pd_dump_error_errno(e);

		assert_string_equal(pd_dump_error_code(e), words[i]);
		assert_true(rc < 0);
		assert_string_equal(pd_dump_error_code(pd_dump_error_from_errno(rc, false)),
				    words[i]);
	}
	assert_int_equal(pd_dump_error_errno(pd_dump_error_from_code("quantum")), -EIO);
	assert_int_equal(pd_dump_error_errno(PD_DUMP_NO_SPACE), -ENOSPC);
}

/* The optional figures of "done": defaults when absent, kept when present,
 * and a wrong type is not the protocol. */
static void test_done_figures(void **state)
{
	struct pd_dumprun_result res;
	uint64_t done = 0, total = 0;
	const char base[] = "{\"event\":\"done\",\"size\":1,\"stopped_us\":700,"
			    "\"threads\":1,\"mappings\":1,\"dumped_bytes\":4096";
	char line[512];
	int n;

	(void)state;
	n = snprintf(line, sizeof(line), "%s}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), PD_STATUS_FINAL);
	assert_string_equal(res.fig.method, "stop");
	assert_string_equal(res.fig.reason, "");
	assert_true(res.fig.frozen_us == 700 && res.fig.copied_bytes == 4096);
	assert_true(res.fig.freezing_us == 0 && res.fig.copy_us == 0 && res.fig.extra_memory == 0);
	assert_true(res.fig.zero_bytes == 0);
	assert_string_equal(res.fig.zero_method, "none");

	n = snprintf(line, sizeof(line),
		     "%s,\"method\":\"clone\",\"reason\":\"\",\"freezing_us\":11,"
		     "\"frozen_us\":22,\"copy_us\":33,\"copied_bytes\":44,"
		     "\"extra_memory\":55,\"zero_bytes\":66,\"zero_method\":\"move_pages\"}",
		     base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), PD_STATUS_FINAL);
	assert_string_equal(res.fig.method, "clone");
	assert_true(res.fig.freezing_us == 11 && res.fig.frozen_us == 22 && res.fig.copy_us == 33 &&
		    res.fig.copied_bytes == 44 && res.fig.extra_memory == 55 &&
		    res.fig.zero_bytes == 66);
	assert_string_equal(res.fig.zero_method, "move_pages");

	n = snprintf(line, sizeof(line), "%s,\"method\":\"stop\",\"reason\":\"cgroup "
		     "headroom 12 MiB\"}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), PD_STATUS_FINAL);
	assert_string_equal(res.fig.reason, "cgroup headroom 12 MiB");

	n = snprintf(line, sizeof(line), "%s,\"method\":\"teleport\"}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), -EPROTO);
	n = snprintf(line, sizeof(line), "%s,\"copy_us\":\"5\"}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), -EPROTO);
	n = snprintf(line, sizeof(line), "%s,\"reason\":7}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), -EPROTO);
	n = snprintf(line, sizeof(line), "%s,\"zero_method\":7}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), -EPROTO);
	n = snprintf(line, sizeof(line), "%s,\"zero_method\":\"a-name-far-too-long\"}", base);
	assert_int_equal(parse(line, (size_t)n, &res, &done, &total), -EPROTO);
}

static void test_garbage(void **state)
{
	struct pd_dumprun_result res = {0};
	uint64_t done = 0, total = 0;

	(void)state;
	assert_int_equal(parse(S(""), &res, &done, &total), -EPROTO);
	assert_int_equal(parse(S("hello"), &res, &done, &total), -EPROTO);
	assert_int_equal(parse(S("[1,2]"), &res, &done, &total), -EPROTO);
	assert_int_equal(parse(S("{\"done\":1}"), &res, &done, &total), -EPROTO);
	assert_int_equal(parse(S("{\"event\":7}"), &res, &done, &total), -EPROTO);
	assert_int_equal(
		parse(S("{\"event\":\"progress\",\"event\":\"done\"}"), &res, &done, &total),
		-EPROTO);
	/* Two objects on one line. */
	assert_int_equal(parse(S("{\"event\":\"x\"}{\"event\":\"y\"}"), &res, &done, &total),
			 -EPROTO);
	/* Unknown events are ignored, so the helper may add some. */
	assert_int_equal(parse(S("{\"event\":\"frozen\",\"threads\":3}"), &res, &done, &total),
			 PD_STATUS_OTHER);
}

/* Counts its calls and asks to stop at the first. */
static int cancel_at_first_tick(void *arg, uint64_t done, uint64_t total)
{
	(*(int *)arg)++;
	assert_true(done == 0 && total == 0); /* no progress line came */
	return 1;
}

/* Cancels once the helper said it is ready (a progress line). */
static int cancel_after_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)done;
	if (!total)
		return 0;
	(*(int *)arg)++;
	return 1;
}

/* A binary that exits without a word: -EPROTO, reaped, status kept. */
static void test_helper_without_result(void **state)
{
	struct pd_dumprun_result res;
	int fd = memfd_create("t", MFD_CLOEXEC);
	struct pd_dumprun_opts o = {
		.helper = "/bin/false",
		.pid = getpid(),
		.out_fd = fd,
	};

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(pd_dump_run(&o, &res), -EPROTO);
	assert_true(WIFEXITED(res.wait_status) && WEXITSTATUS(res.wait_status) == 1);
	assert_non_null(strstr(res.detail, "without a result"));
	/* It was reaped: no child is left. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	close(fd);
}

/* A helper that says nothing and never exits: the first tick that asks to
 * stop ends the run with -ECANCELED, and the helper is told to stop
 * (SIGTERM: a helper with a clone cleans it up), killed when it does not
 * (here: it ignores SIGTERM), and reaped. */
static void tick_cancels(const char *script, int sig,
			 int (*tick)(void *arg, uint64_t done, uint64_t total))
{
	char dir[] = "/tmp/pd-dumprun-XXXXXX", path[64];
	struct pd_dumprun_result res;
	int ticks = 0, fd = memfd_create("t", MFD_CLOEXEC);
	struct pd_dumprun_opts o = {
		.helper = path,
		.pid = getpid(),
		.out_fd = fd,
		.tick = tick,
		.arg = &ticks,
		.tick_ms = 1,
	};
	FILE *f;

	assert_true(fd >= 0);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/helper", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(script, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0700), 0);
	assert_int_equal(pd_dump_run(&o, &res), -ECANCELED);
	assert_int_equal(ticks, 1);
	assert_true(WIFSIGNALED(res.wait_status) && WTERMSIG(res.wait_status) == sig);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	unlink(path);
	rmdir(dir);
	close(fd);
}

static void test_tick_cancels(void **state)
{
	(void)state;
	tick_cancels("#!/bin/sh\nexec sleep 600\n", SIGTERM, cancel_at_first_tick);
}

static void test_tick_cancels_deaf_helper(void **state)
{
	(void)state;
	tick_cancels("#!/bin/sh\ntrap '' TERM\n"
		     "while [ $# -gt 0 ]; do [ \"$1\" = --status-fd ] && fd=$2; shift; done\n"
		     "eval \"echo '{\\\"event\\\":\\\"progress\\\",\\\"done\\\":0,"
		     "\\\"total\\\":1}' >&$fd\"\n"
		     "exec sleep 600\n",
		     SIGKILL, cancel_after_progress);
}

static void test_helper_missing(void **state)
{
	struct pd_dumprun_result res;
	int fd = memfd_create("t", MFD_CLOEXEC);
	struct pd_dumprun_opts o = {
		.helper = "/nonexistent/procdiag",
		.pid = getpid(),
		.out_fd = fd,
	};
	int rc;

	(void)state;
	rc = pd_dump_run(&o, &res);
	/* glibc reports exec failures of posix_spawn as its result. */
	assert_int_equal(rc, -ENOENT);
	assert_non_null(strstr(res.detail, "cannot start"));
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	close(fd);
}

static void test_bad_out_fd(void **state)
{
	struct pd_dumprun_result res;
	struct pd_dumprun_opts o = {.helper = "/bin/false", .pid = getpid(), .out_fd = 12345};

	(void)state;
	assert_int_equal(pd_dump_run(&o, &res), -EBADF);
}

/* ---- lib/dumpjob: the job's failures leave no file open ----------------- */

struct job_probe {
	int opened[4], n; /* fds open_out gave */
	int fail_with;	  /* open_out's -errno, 0: a memfd */
	int cancel_in;	  /* progress cancels when it enters this phase (-1: never) */
	enum pd_dump_phase phases[16];
	int nphases;
};

static int probe_open(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit)
{
	struct job_probe *pr = arg;
	int fd;

	(void)which;
	(void)estimate;
	*limit = 0;
	if (pr->fail_with)
		return pr->fail_with;
	fd = memfd_create("job", MFD_CLOEXEC);
	assert_true(fd >= 0 && pr->n < 4);
	pr->opened[pr->n++] = fd;
	return fd;
}

static int probe_progress(void *arg, enum pd_dump_phase ph, uint64_t done, uint64_t total)
{
	struct job_probe *pr = arg;

	(void)done;
	(void)total;
	if (pr->nphases < 16 && (!pr->nphases || pr->phases[pr->nphases - 1] != ph))
		pr->phases[pr->nphases++] = ph;
	return (int)ph == pr->cancel_in;
}

static void run_job(struct job_probe *pr, pid_t pid, const char *helper,
		    struct pd_dumpjob_result *res)
{
	struct pd_dumpjob_opts o = {
		.pid = pid,
		.open_out = probe_open,
		.progress = probe_progress,
		.arg = pr,
		.helper = helper,
	};

	assert_int_equal(pd_dumpjob_run(&o, res), -1);
	assert_int_equal(res->fd, -1);
	for (int i = 0; i < pr->n; i++)
		assert_int_equal(fcntl(pr->opened[i], F_GETFD), -1); /* closed by the job */
}

static void test_job_failures(void **state)
{
	struct pd_dumpjob_result res;
	struct job_probe pr = {.cancel_in = -1};
	pid_t gone;

	(void)state;
	/* Cancelled as it begins: nothing opened, nothing run. */
	pr.cancel_in = PD_PHASE_PREPARE;
	run_job(&pr, getpid(), "/bin/false", &res);
	assert_int_equal(res.error, PD_DUMP_CANCELLED);
	assert_int_equal(res.phase, PD_PHASE_PREPARE);
	assert_int_equal(pr.n, 0);

	/* No file for the core: no space, in prepare, the errno kept. */
	pr = (struct job_probe){.cancel_in = -1, .fail_with = -ENOSPC};
	run_job(&pr, getpid(), "/bin/false", &res);
	assert_int_equal(res.error, PD_DUMP_NO_SPACE);
	assert_int_equal(res.rc, -ENOSPC);
	assert_true(res.estimate > 0);

	/* A helper without a result: internal, in copy; the core's file is
	 * closed. */
	pr = (struct job_probe){.cancel_in = -1};
	run_job(&pr, getpid(), "/bin/false", &res);
	assert_int_equal(res.error, PD_DUMP_INTERNAL);
	assert_int_equal(res.phase, PD_PHASE_COPY);
	assert_int_equal(res.rc, -EPROTO);
	assert_int_equal(pr.n, 1);
	assert_true(pr.nphases == 2 && pr.phases[0] == PD_PHASE_PREPARE &&
		    pr.phases[1] == PD_PHASE_COPY);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* the helper was reaped */

	/* Cancelled when the copy begins: the file is closed. */
	pr = (struct job_probe){.cancel_in = PD_PHASE_COPY};
	run_job(&pr, getpid(), "/bin/false", &res);
	assert_int_equal(res.error, PD_DUMP_CANCELLED);
	assert_int_equal(pr.n, 1);

	/* A process that is gone: gone, before any file. */
	gone = fork();
	if (gone == 0)
		_exit(0);
	assert_true(gone > 0 && waitpid(gone, NULL, 0) == gone);
	pr = (struct job_probe){.cancel_in = -1};
	run_job(&pr, gone, "/bin/false", &res);
	assert_int_equal(res.error, PD_DUMP_GONE);
	assert_int_equal(pr.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_done),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_errno_map),
		cmocka_unit_test(test_words_round_trip),
		cmocka_unit_test(test_done_figures),
		cmocka_unit_test(test_job_failures),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_helper_without_result),
		cmocka_unit_test(test_tick_cancels),
		cmocka_unit_test(test_tick_cancels_deaf_helper),
		cmocka_unit_test(test_helper_missing),
		cmocka_unit_test(test_bad_out_fd),
	};

	return cmocka_run_group_tests_name("dumprun", tests, NULL, NULL);
}
