#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/procfs.h"
#include "lib/scope.h"
#include "lib/sysclock.h"
#include "lib/users.h"

#define S(lit) (lit), sizeof(lit) - 1

/* A real stat line (52 fields, Linux 6.x), with a few values changed so
 * that every field we extract is distinct. */
#define STAT_TAIL                                                                                  \
	" R 7100 7101 2909 0 -1 4194304 99 0 1 0 12 34 0 0 15 -5 3 0 552221 3133440 359 "          \
	"18446744073709551615 93845796421632 93845796441513 140728850407120 0 0 0 0 0 0 0 0 0 17 " \
	"6 0 0 0 0 0 93845796457520 93845796459136 93846259933184 140728850414211 "                \
	"140728850414231 140728850414231 140728850415595 0\n"
static const char stat_line[] = "7107 (cat)" STAT_TAIL;

/* The bytes of lit in a heap block of exactly their size, so that a read
 * one past the end is caught by valgrind or ASan. */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static int parse_stat_exact(const char *s, size_t len, struct pd_stat *st)
{
	char *p = exact(s, len);
	int r = pd_parse_stat(p, len, st);

	free(p);
	return r;
}

/* ---- stat ---------------------------------------------------------------- */

static void test_stat_fields(void **state)
{
	struct pd_stat st;

	(void)state;
	assert_int_equal(parse_stat_exact(S(stat_line), &st), 0);
	assert_int_equal(st.pid, 7107);
	assert_string_equal(st.comm, "cat");
	assert_int_equal(st.comm_len, 3);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, 7100);
	assert_int_equal(st.pgrp, 7101);
	assert_int_equal(st.session, 2909);
	assert_true(st.flags == 4194304);
	assert_true(st.utime == 12);
	assert_true(st.stime == 34);
	assert_true(st.priority == 15);
	assert_true(st.nice == -5);
	assert_true(st.num_threads == 3);
	assert_true(st.starttime == 552221);
	assert_true(st.vsize == 3133440);
	assert_true(st.rss == 359);
	assert_int_equal(st.processor, 6);
}

/* The line of a task reaped while it was being read, as Linux 6.18 wrote
 * it for a child that exited and was waited for between the open of its
 * /proc/PID/stat and the read (do_task_stat without the sighand: state X,
 * ppid 0, pgrp and session -1, no threads). Such a line, read by a dump
 * of the exec loop's shell as it was reaped, was answered in CI with a 500
 * "Numerical result out of range" (tests/e2e/test_attack_exec.py). */
static void test_stat_reaped(void **state)
{
	static const char reaped[] = "27490 (repro) X 0 -1 -1 0 -1 4227148 28 0 0 0 0 0 0 0 20 0 0 "
				     "0 6011889 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 17 0 0 0 0 0 0 0 0 0 "
				     "0 0 0 0 0\n";
	struct pd_stat st;

	(void)state;
	assert_int_equal(parse_stat_exact(S(reaped), &st), 0);
	assert_int_equal(st.pid, 27490);
	assert_string_equal(st.comm, "repro");
	assert_int_equal(st.state, 'X');
	assert_int_equal(st.ppid, 0);
	assert_int_equal(st.pgrp, -1);
	assert_int_equal(st.session, -1);
	assert_true(st.num_threads == 0);
	assert_true(st.starttime == 6011889);
	/* -1 is the one negative the kernel leaves there. */
	assert_int_equal(parse_stat_exact(S("1 (x) X 0 -2 -1 0 -1 0 0 0 0 0 0 0 0 0 "
					    "20 0 0 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
					  &st),
			 -ERANGE);
	assert_int_equal(parse_stat_exact(S("1 (x) X 0 -1 -2 0 -1 0 0 0 0 0 0 0 0 0 "
					    "20 0 0 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
					  &st),
			 -ERANGE);
}

static void test_stat_hostile_comm(void **state)
{
	static const char paren[] = "42 (a) b (c)" STAT_TAIL;
	static const char fake[] = "42 () S 1 2 3)" STAT_TAIL;
	static const char blanks[] = "42 (x\n y\xff\t)" STAT_TAIL;
	static const char empty[] = "42 ()" STAT_TAIL;
	static const char parens[] = "42 (()))" STAT_TAIL;
	struct pd_stat st;

	(void)state;
	/* Kudu's regex stopped at the first ") ": we must not. */
	assert_int_equal(parse_stat_exact(S(paren), &st), 0);
	assert_string_equal(st.comm, "a) b (c");
	assert_int_equal(st.comm_len, 7);
	assert_int_equal(st.pid, 42);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, 7100);
	assert_int_equal(st.processor, 6);

	/* A comm that looks like the start of the fields. */
	assert_int_equal(parse_stat_exact(S(fake), &st), 0);
	assert_string_equal(st.comm, ") S 1 2 3");
	assert_int_equal(st.ppid, 7100);

	assert_int_equal(parse_stat_exact(S(blanks), &st), 0);
	assert_int_equal(st.comm_len, 6);
	assert_memory_equal(st.comm, "x\n y\xff\t", 6);
	assert_int_equal(st.comm[6], 0);
	assert_true(st.starttime == 552221);

	assert_int_equal(parse_stat_exact(S(empty), &st), 0);
	assert_int_equal(st.comm_len, 0);
	assert_string_equal(st.comm, "");

	assert_int_equal(parse_stat_exact(S(parens), &st), 0);
	assert_string_equal(st.comm, "())");
}

static void test_stat_long_comm_is_cut(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_stat st;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "9 ("), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(strbuf_addch(&sb, (char)('A' + i % 26)), 0);
	assert_int_equal(strbuf_addstr(&sb, ")" STAT_TAIL), 0);
	assert_int_equal(parse_stat_exact(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.comm_len, PD_COMM_MAX - 1);
	assert_int_equal(strlen(st.comm), PD_COMM_MAX - 1);
	assert_memory_equal(st.comm, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCD", 30);
	assert_int_equal(st.ppid, 7100);
	strbuf_release(&sb);
}

/* Every prefix of a valid line is a short read: none may crash or read out
 * of bounds, and none but the whole line may parse. */
static void test_stat_every_prefix(void **state)
{
	static const char hostile[] = "42 (a) b (c)" STAT_TAIL;
	struct pd_stat st;

	(void)state;
	for (size_t k = 0; k < sizeof(stat_line) - 1; k++)
		if (parse_stat_exact(stat_line, k, &st) == 0)
			fail_msg("prefix of %zu bytes parsed", k);
	for (size_t k = 0; k < sizeof(hostile) - 1; k++)
		if (parse_stat_exact(hostile, k, &st) == 0)
			fail_msg("hostile prefix of %zu bytes parsed", k);
	assert_int_equal(parse_stat_exact(S(hostile), &st), 0);
}

static void test_stat_huge_values(void **state)
{
	struct pd_stat st = {.pid = -99};

	(void)state;
	/* 2^64 in utime; 2^31 in ppid; a giant pid; 2^64 in a skipped field. */
	assert_int_equal(pd_parse_stat(S("1 (x) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 0 0 0 "
					 "20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -ERANGE);
	assert_int_equal(pd_parse_stat(S("1 (x) R 2147483648 1 1 0 -1 0 0 0 0 0 0 0 0 0 "
					 "20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -ERANGE);
	assert_int_equal(pd_parse_stat(S("99999999999999999999999 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 "
					 "0 0 20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -ERANGE);
	assert_int_equal(pd_parse_stat(S("1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
					 "99999999999999999999 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -ERANGE);
	/* Negative where the kernel never writes one. */
	assert_int_equal(pd_parse_stat(S("1 (x) R -1 1 1 0 -1 0 0 0 0 0 0 0 0 0 "
					 "20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -ERANGE);
	/* Not numbers at all. */
	assert_int_equal(pd_parse_stat(S("1 (x) R 1 1 1 0 -1 0 0 0 0 0 1e5 0 0 0 "
					 "20 0 1 0 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
				       &st),
			 -EINVAL);
	assert_int_equal(st.pid, -99); /* out untouched on failure */
	/* The largest legal values do parse. */
	assert_int_equal(
		pd_parse_stat(S("2147483647 (x) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 "
				"0 0 0 20 0 1 0 18446744073709551615 0 -9223372036854775808 "
				"0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n"),
			      &st),
		0);
	assert_int_equal(st.pid, INT_MAX);
	assert_true(st.utime == UINT64_MAX);
	assert_true(st.starttime == UINT64_MAX);
	assert_true(st.rss == INT64_MIN);
}

static void test_stat_malformed(void **state)
{
	/* processor is field 39: 38 fields is an incomplete line. */
	static const char f38[] = "1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
				  "0 0 0 0 0 0 0 0 0 0 0 0 0 17\n";
	static const char f39[] = "1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
				  "0 0 0 0 0 0 0 0 0 0 0 0 0 17 3\n";
	struct pd_stat st;

	(void)state;
	assert_int_equal(pd_parse_stat(S(f38), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S(f39), &st), 0); /* old kernels stop here */
	assert_int_equal(st.processor, 3);
	assert_int_equal(pd_parse_stat(NULL, 0, &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S(""), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("()\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S(")(\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1 (x) R\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1 (x) R \n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("x (cat)" STAT_TAIL), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("(cat)" STAT_TAIL), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1(cat)" STAT_TAIL), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1  (cat)" STAT_TAIL), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1 (cat) 7 0 0\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_stat(S("1 (cat)  R 1 1\n"), &st), -EINVAL);
	/* Double space, trailing space, or no final newline. */
	assert_int_equal(pd_parse_stat(S("1 (x) R 1  1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
					 "0 0 0 0 0 0 0 0 0 0 0 0 0 17 3\n"),
				       &st),
			 -EINVAL);
	assert_int_equal(pd_parse_stat(S("1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
					 "0 0 0 0 0 0 0 0 0 0 0 0 0 17 3 \n"),
				       &st),
			 -EINVAL);
	assert_int_equal(pd_parse_stat(stat_line, sizeof(stat_line) - 2, &st), -EINVAL);
	/* Something after the line. */
	assert_int_equal(pd_parse_stat(S("1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
					 "0 0 0 0 0 0 0 0 0 0 0 0 0 17 3\nX\n"),
				       &st),
			 -EINVAL);
}

/* The kernel's own output: pid and ppid as the test process knows them. */
static void test_stat_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT, comm = STRBUF_INIT;
	struct pd_stat st;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/stat", &sb, 4096), 0);
	assert_int_equal(pd_parse_stat(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.ppid, getppid());
	assert_int_equal(st.pgrp, getpgrp());
	assert_int_equal(st.session, getsid(0));
	assert_int_equal(st.state, 'R');
	assert_true(st.num_threads >= 1);
	assert_true(st.starttime > 0);
	assert_true(st.vsize > 0);
	assert_true(st.rss > 0);
	assert_true(st.processor >= 0);
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/comm", &comm, 4096), 0);
	assert_true(comm.len > 1);
	assert_int_equal(st.comm_len, comm.len - 1); /* comm ends with "\n" */
	assert_memory_equal(st.comm, comm.buf, st.comm_len);
	strbuf_release(&sb);
	strbuf_release(&comm);
}

/* Real kernel output for hostile names: this thread renames itself. */
static void test_real_hostile_names(void **state)
{
	static const char names[][16] = {"a) b (c", "x\\y\nz", "\tlead", "\xff\xfe)) R 1"};
	struct strbuf sb = STRBUF_INIT;
	struct pd_status status;
	struct pd_stat st;
	char saved[17] = {0};

	(void)state;
	assert_int_equal(prctl(PR_GET_NAME, saved), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);

		assert_int_equal(prctl(PR_SET_NAME, names[i]), 0);
		strbuf_reset(&sb);
		assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/thread-self/stat", &sb, 4096), 0);
		assert_int_equal(pd_parse_stat(sb.buf, sb.len, &st), 0);
		assert_int_equal(st.comm_len, n);
		assert_memory_equal(st.comm, names[i], n);
		assert_int_equal(st.ppid, getppid());

		strbuf_reset(&sb);
		assert_int_equal(
			pd_read_file_at(AT_FDCWD, "/proc/thread-self/status", &sb, 1 << 16), 0);
		assert_int_equal(pd_parse_status(sb.buf, sb.len, &status), 0);
		assert_int_equal(status.name_len, n);
		assert_memory_equal(status.name, names[i], n);
		assert_int_equal(status.ppid, getppid());
	}
	assert_int_equal(prctl(PR_SET_NAME, saved), 0);
	strbuf_release(&sb);
}

/* ---- status -------------------------------------------------------------- */

static const char status_text[] = "Name:\tnginx\n"
				  "Umask:\t0022\n"
				  "State:\tS (sleeping)\n"
				  "Tgid:\t812\n"
				  "Pid:\t812\n"
				  "PPid:\t1\n"
				  "TracerPid:\t4711\n"
				  "Uid:\t33\t33\t33\t34\n"
				  "Gid:\t33\t35\t33\t33\n"
				  "FDSize:\t64\n"
				  "Groups:\t \n"
				  "VmPeak:\t   12000 kB\n"
				  "VmSize:\t   11000 kB\n"
				  "VmLck:\t       0 kB\n"
				  "VmPin:\t       0 kB\n"
				  "VmHWM:\t    5000 kB\n"
				  "VmRSS:\t    4000 kB\n"
				  "RssAnon:\t    1000 kB\n"
				  "RssFile:\t    2900 kB\n"
				  "RssShmem:\t     100 kB\n"
				  "VmData:\t     800 kB\n"
				  "VmStk:\t     132 kB\n"
				  "VmExe:\t     900 kB\n"
				  "VmLib:\t    3000 kB\n"
				  "VmPTE:\t      60 kB\n"
				  "VmSwap:\t       7 kB\n"
				  "untag_mask:\t0xffffffffffffffff\n"
				  "Threads:\t4\n"
				  "SigQ:\t0/96365\n"
				  "Cpus_allowed_list:\t0-1\n"
				  "voluntary_ctxt_switches:\t150\n"
				  "nonvoluntary_ctxt_switches:\t3\n";

static int parse_status_exact(const char *s, size_t len, struct pd_status *st)
{
	char *p = exact(s, len);
	int r = pd_parse_status(p, len, st);

	free(p);
	return r;
}

static void test_status_fields(void **state)
{
	struct pd_status st;

	(void)state;
	assert_int_equal(parse_status_exact(S(status_text), &st), 0);
	assert_string_equal(st.name, "nginx");
	assert_int_equal(st.name_len, 5);
	assert_int_equal(st.state, 'S');
	assert_int_equal(st.ppid, 1);
	assert_true(st.uid[0] == 33 && st.uid[1] == 33 && st.uid[2] == 33 && st.uid[3] == 34);
	assert_true(st.gid[0] == 33 && st.gid[1] == 35 && st.gid[2] == 33 && st.gid[3] == 33);
	assert_int_equal(st.ngroups, 0);
	assert_true(st.vm_peak == 12000 * 1024);
	assert_true(st.vm_size == 11000 * 1024);
	assert_true(st.vm_lck == 0);
	assert_true(st.vm_hwm == 5000 * 1024);
	assert_true(st.vm_rss == 4000 * 1024);
	assert_true(st.rss_anon == 1000 * 1024);
	assert_true(st.rss_file == 2900 * 1024);
	assert_true(st.rss_shmem == 100 * 1024);
	assert_true(st.vm_data == 800 * 1024);
	assert_true(st.vm_stk == 132 * 1024);
	assert_true(st.vm_exe == 900 * 1024);
	assert_true(st.vm_lib == 3000 * 1024);
	assert_true(st.vm_pte == 60 * 1024);
	assert_true(st.vm_swap == 7 * 1024);
	assert_true(st.threads == 4);
	assert_true(st.tracer_pid == 4711);
	assert_true(st.voluntary_ctxt_switches == 150);
	assert_true(st.nonvoluntary_ctxt_switches == 3);
}

static void check_name(const char *status, size_t len, const char *want, size_t want_len)
{
	struct pd_status st;

	assert_int_equal(parse_status_exact(status, len, &st), 0);
	assert_int_equal(st.name_len, want_len);
	assert_memory_equal(st.name, want, want_len);
	assert_int_equal(st.name[want_len], 0);
}

#define NAME(esc, want) check_name(S("Name:\t" esc "\nState:\tR\nPPid:\t0\n"), S(want))

static void test_status_escaped_names(void **state)
{
	(void)state;
	NAME("a\\nb", "a\nb");
	NAME("a\\\\nb", "a\\nb"); /* an escaped backslash, then a plain 'n' */
	NAME("\\\\\\\\", "\\\\");
	NAME("\\012x", "\nx");	  /* octal, as older kernels wrote it */
	NAME("\\\\012", "\\012"); /* escaped backslash before digits: no octal */
	NAME("tail\\", "tail\\"); /* a lone backslash is kept */
	NAME("\\q", "\\q");
	NAME("\tlead", "\tlead"); /* only the first tab separates */
	NAME("", "");
	NAME("sp ace\xff)", "sp ace\xff)");
	NAME("a) b (c", "a) b (c");
}

static void test_status_long_name_is_cut(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_status st;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "Name:\t"), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(strbuf_addstr(&sb, "\\n"), 0);
	assert_int_equal(strbuf_addstr(&sb, "\nState:\tS\nPPid:\t2\n"), 0);
	assert_int_equal(parse_status_exact(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.name_len, PD_COMM_MAX - 1);
	for (size_t i = 0; i < st.name_len; i++)
		assert_int_equal(st.name[i], '\n');
	assert_int_equal(st.name[PD_COMM_MAX - 1], 0);
	strbuf_release(&sb);
}

/* A kernel thread has no memory lines: they read as -1, not 0. */
static void test_status_kernel_thread(void **state)
{
	static const char kthread[] = "Name:\tkworker/0:1-events\n"
				      "State:\tI (idle)\n"
				      "PPid:\t2\n"
				      "Uid:\t0\t0\t0\t0\n"
				      "Gid:\t0\t0\t0\t0\n"
				      "Threads:\t1\n";
	struct pd_status st;

	(void)state;
	assert_int_equal(parse_status_exact(S(kthread), &st), 0);
	assert_string_equal(st.name, "kworker/0:1-events");
	assert_int_equal(st.state, 'I');
	assert_int_equal(st.ppid, 2);
	assert_true(st.uid[0] == 0 && st.gid[3] == 0);
	assert_true(st.vm_peak == -1 && st.vm_size == -1 && st.vm_rss == -1 && st.vm_swap == -1);
	assert_true(st.rss_anon == -1 && st.vm_pte == -1);
	assert_true(st.threads == 1);
	assert_true(st.voluntary_ctxt_switches == -1);

	/* No Uid/Gid lines at all. */
	assert_int_equal(parse_status_exact(S("Name:\tx\nState:\tR\nPPid:\t0\n"), &st), 0);
	for (int i = 0; i < 4; i++)
		assert_true(st.uid[i] == -1 && st.gid[i] == -1);
}

static void test_status_malformed(void **state)
{
	struct pd_status st = {.ppid = -42};

	(void)state;
	assert_int_equal(pd_parse_status(NULL, 0, &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("\n"), &st), -EINVAL);
	/* Name, State and PPid are always there. */
	assert_int_equal(pd_parse_status(S("State:\tR\nPPid:\t0\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nPPid:\t0\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:x\nState:\tR\nPPid:\t0\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\t?\nPPid:\t0\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\nno colon\n"), &st),
			 -EINVAL);
	/* Values that are not what the kernel writes. */
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\tone\n"), &st), -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\nVmRSS:\t12\n"), &st),
			 -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\nVmRSS:\t12 MB\n"), &st),
			 -EINVAL);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\nUid:\t1\t2\t3\n"), &st),
			 -EINVAL);
	assert_int_equal(
		pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\nUid:\t1\t2\t3\t4\t5\n"), &st),
		-EINVAL);
	assert_int_equal(st.ppid, -42);
}

static void test_status_huge_values(void **state)
{
	struct pd_status st;

	(void)state;
	/* 2^53 kB is 2^63 bytes: one past INT64_MAX. */
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "VmRSS:\t9007199254740992 kB\n"),
					 &st),
			 -ERANGE);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "VmRSS:\t9007199254740991 kB\n"),
					 &st),
			 0);
	assert_true(st.vm_rss == INT64_C(9007199254740991) * 1024);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "VmSize:\t18446744073709551616 kB\n"),
					 &st),
			 -ERANGE);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t4294967296\n"), &st),
			 -ERANGE);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "Uid:\t0\t4294967296\t0\t0\n"),
					 &st),
			 -ERANGE);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "Threads:\t99999999999999999999\n"),
					 &st),
			 -ERANGE);
	assert_int_equal(pd_parse_status(S("Name:\tx\nState:\tR\nPPid:\t0\n"
					   "Uid:\t4294967295\t0\t0\t0\n"),
					 &st),
			 0);
	assert_true(st.uid[0] == 4294967295LL); /* the overflow uid is a value */
}

/* A cut inside a line is always caught; a cut between lines leaves the
 * later fields absent. */
static void test_status_every_prefix(void **state)
{
	struct pd_status st;
	size_t ppid_end = (size_t)(strstr(status_text, "PPid:\t1\n") - status_text) + 8;

	(void)state;
	for (size_t k = 0; k < sizeof(status_text) - 1; k++) {
		int r = parse_status_exact(status_text, k, &st);

		if (k >= ppid_end && status_text[k - 1] == '\n') {
			assert_int_equal(r, 0);
			assert_int_equal(st.ppid, 1);
		} else if (r == 0) {
			fail_msg("status prefix of %zu bytes parsed", k);
		}
	}
}

/* Groups: kept in order, the first PD_STATUS_GROUPS_MAX only (a check
 * that misses the rest grants less); a bad number is a bad file. */
static void test_status_groups(void **state)
{
	static const char head[] = "Name:\tx\nState:\tS (sleeping)\nPPid:\t1\nGroups:\t";
	struct strbuf sb = STRBUF_INIT;
	struct pd_status st;

	(void)state;
	assert_int_equal(strbuf_addf(&sb, "%s4 24 65534 \n", head), 0);
	assert_int_equal(pd_parse_status(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.ngroups, 3);
	assert_true(st.groups[0] == 4 && st.groups[1] == 24 && st.groups[2] == 65534);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_addstr(&sb, head), 0);
	for (int i = 0; i < PD_STATUS_GROUPS_MAX + 10; i++)
		assert_int_equal(strbuf_addf(&sb, "%d ", 1000 + i), 0);
	assert_int_equal(strbuf_addch(&sb, '\n'), 0);
	assert_int_equal(pd_parse_status(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.ngroups, PD_STATUS_GROUPS_MAX);
	assert_true(st.groups[PD_STATUS_GROUPS_MAX - 1] == 1000 + PD_STATUS_GROUPS_MAX - 1);
	strbuf_reset(&sb);
	assert_int_equal(strbuf_addf(&sb, "%s4 x\n", head), 0);
	assert_int_equal(pd_parse_status(sb.buf, sb.len, &st), -EINVAL);
	strbuf_release(&sb);
}

static void test_status_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_status st;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/status", &sb, 1 << 16), 0);
	assert_int_equal(pd_parse_status(sb.buf, sb.len, &st), 0);
	assert_int_equal(st.ppid, getppid());
	assert_int_equal(st.state, 'R');
	assert_true(st.uid[0] == getuid() && st.uid[1] == geteuid());
	assert_true(st.gid[0] == getgid() && st.gid[1] == getegid());
	assert_true(st.vm_rss > 0 && st.vm_rss % 1024 == 0);
	assert_true(st.vm_size >= st.vm_rss);
	assert_true(st.vm_peak >= st.vm_size);
	assert_true(st.threads >= 1);
	assert_true(st.voluntary_ctxt_switches >= 0);
	assert_true(st.name_len > 0);
	strbuf_release(&sb);
}

/* ---- smaps_rollup ---------------------------------------------------------- */

static const char rollup_text[] =
	"55a337b1b000-7ffc66993000 ---p 00000000 00:00 0                          [rollup]\n"
	"Rss:                1736 kB\n"
	"Pss:                 453 kB\n"
	"Pss_Dirty:           116 kB\n"
	"Shared_Clean:       1556 kB\n"
	"Shared_Dirty:          8 kB\n"
	"Private_Clean:        64 kB\n"
	"Private_Dirty:       116 kB\n"
	"Referenced:         1700 kB\n"
	"Anonymous:           120 kB\n"
	"LazyFree:              0 kB\n"
	"Swap:                 12 kB\n"
	"SwapPss:               6 kB\n"
	"Locked:                4 kB\n";

static void test_rollup_fields(void **state)
{
	struct pd_rollup ru;
	char *p = exact(S(rollup_text));

	(void)state;
	assert_int_equal(pd_parse_smaps_rollup(p, sizeof(rollup_text) - 1, &ru), 0);
	free(p);
	assert_true(ru.rss == 1736 * 1024);
	assert_true(ru.pss == 453 * 1024);
	assert_true(ru.shared_clean == 1556 * 1024);
	assert_true(ru.shared_dirty == 8 * 1024);
	assert_true(ru.private_clean == 64 * 1024);
	assert_true(ru.private_dirty == 116 * 1024);
	assert_true(ru.referenced == 1700 * 1024);
	assert_true(ru.anonymous == 120 * 1024);
	assert_true(ru.swap == 12 * 1024);
	assert_true(ru.swap_pss == 6 * 1024);
	assert_true(ru.locked == 4 * 1024);
}

static void test_rollup_absent_and_malformed(void **state)
{
	struct pd_rollup ru;

	(void)state;
	/* Nothing at all: every field absent. */
	assert_int_equal(pd_parse_smaps_rollup(NULL, 0, &ru), 0);
	assert_true(ru.rss == -1 && ru.pss == -1 && ru.swap_pss == -1 && ru.locked == -1);
	/* An older kernel without SwapPss. */
	assert_int_equal(pd_parse_smaps_rollup(S("0-1 ---p 00000000 00:00 0 [rollup]\n"
						 "Rss:  8 kB\nSwap:  0 kB\n"),
					       &ru),
			 0);
	assert_true(ru.rss == 8192 && ru.swap == 0 && ru.swap_pss == -1);

	assert_int_equal(pd_parse_smaps_rollup(S("Rss:  18014398509481984 kB\n"), &ru), -ERANGE);
	assert_int_equal(pd_parse_smaps_rollup(S("Rss:  99999999999999999999999 kB\n"), &ru),
			 -ERANGE);
	assert_int_equal(pd_parse_smaps_rollup(S("Rss:  8\n"), &ru), -EINVAL);
	assert_int_equal(pd_parse_smaps_rollup(S("Rss:  -8 kB\n"), &ru), -EINVAL);
	assert_int_equal(pd_parse_smaps_rollup(S("Rss:  8 kB"), &ru), -EINVAL); /* no '\n' */
	assert_int_equal(pd_parse_smaps_rollup(S("hdr\nRss: 8 kB\ngarbage here\n"), &ru), -EINVAL);
	assert_int_equal(pd_parse_smaps_rollup(S("hdr\nhdr2\n"), &ru), -EINVAL);
}

static void test_rollup_every_prefix(void **state)
{
	struct pd_rollup ru;

	(void)state;
	for (size_t k = 0; k < sizeof(rollup_text) - 1; k++) {
		char *p = exact(rollup_text, k);
		int r = pd_parse_smaps_rollup(p, k, &ru);

		free(p);
		/* Only a cut between lines may parse. */
		if (r == 0 && k > 0 && rollup_text[k - 1] != '\n')
			fail_msg("rollup prefix of %zu bytes parsed", k);
	}
}

static void test_rollup_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_rollup ru;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/smaps_rollup", &sb, 1 << 16), 0);
	assert_int_equal(pd_parse_smaps_rollup(sb.buf, sb.len, &ru), 0);
	assert_true(ru.rss > 0 && ru.rss % 1024 == 0);
	assert_true(ru.pss > 0 && ru.pss <= ru.rss);
	assert_true(ru.private_dirty > 0);
	assert_true(ru.shared_clean + ru.shared_dirty + ru.private_clean + ru.private_dirty ==
		    ru.rss);
	strbuf_release(&sb);
}

/* ---- maps ------------------------------------------------------------------ */

static const char maps_text[] =
	"55d4a0e00000-55d4a0e28000 r--p 00000000 fd:01 1048602                    /usr/bin/cat\n"
	"55d4a2000000-55d4a2021000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f0000000000-7f0000001000 rw-s 00000000 00:00 0 \n"
	"7f0000001000-7f0000002000 ---p 00000000 00:00 0\n"
	"7f1000000000-7f1000010000 r-xp 00002000 103:1a 42                        "
	"/tmp/my dir/lib foo.so\n"
	"7f2000000000-7f2000001000 r--p 00000000 08:01 77                         "
	"/opt/app/old lib.so (deleted)\n"
	"7f3000000000-7f3000001000 rw-s 00000000 00:01 1025                       "
	"/memfd:jit (deleted)\n"
	"7f4000000000-7f4000001000 r--p 00000000 08:01 78                         "
	"/x (deleted) (deleted)\n"
	"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static void test_maps_fields(void **state)
{
	struct pd_maps m = PD_MAPS_INIT;
	char *p = exact(S(maps_text));

	(void)state;
	assert_int_equal(pd_parse_maps(p, sizeof(maps_text) - 1, &m), 0);
	/* The paths live in m, not in the input. */
	memset(p, 'X', sizeof(maps_text) - 1);
	free(p);
	assert_int_equal(m.n, 10);

	assert_true(m.v[0].start == 0x55d4a0e00000ULL && m.v[0].end == 0x55d4a0e28000ULL);
	assert_string_equal(m.v[0].perms, "r--p");
	assert_true(m.v[0].offset == 0);
	assert_int_equal(m.v[0].dev_major, 0xfd);
	assert_int_equal(m.v[0].dev_minor, 1);
	assert_true(m.v[0].inode == 1048602);
	assert_string_equal(m.v[0].path, "/usr/bin/cat");
	assert_false(m.v[0].deleted);

	assert_string_equal(m.v[1].path, "[heap]");
	/* Anonymous, with and without the kernel's trailing space. */
	assert_null(m.v[2].path);
	assert_string_equal(m.v[2].perms, "rw-s");
	assert_null(m.v[3].path);
	assert_string_equal(m.v[3].perms, "---p");

	assert_string_equal(m.v[4].path, "/tmp/my dir/lib foo.so");
	assert_true(m.v[4].offset == 0x2000);
	assert_int_equal(m.v[4].dev_major, 0x103);
	assert_int_equal(m.v[4].dev_minor, 0x1a);
	assert_false(m.v[4].deleted);

	assert_string_equal(m.v[5].path, "/opt/app/old lib.so");
	assert_true(m.v[5].deleted);
	assert_string_equal(m.v[6].path, "/memfd:jit");
	assert_true(m.v[6].deleted);
	/* Only the kernel's one suffix is removed. */
	assert_string_equal(m.v[7].path, "/x (deleted)");
	assert_true(m.v[7].deleted);

	assert_string_equal(m.v[8].path, "[stack]");
	assert_true(m.v[9].start == 0xffffffffff600000ULL);
	assert_true(m.v[9].end == 0xffffffffff601000ULL);
	assert_string_equal(m.v[9].path, "[vsyscall]");

	pd_maps_release(&m);
	assert_int_equal(m.n, 0);
	assert_null(m.v);
	pd_maps_release(&m); /* twice is harmless */
}

static void maps_bad(const char *s, size_t len, int err)
{
	struct pd_maps m = {99, (struct pd_map *)1, (char *)1};
	char *p = exact(s, len);

	assert_int_equal(pd_parse_maps(p, len, &m), err);
	free(p);
	/* "On failure out is left empty." */
	assert_int_equal(m.n, 0);
	assert_null(m.v);
	assert_null(m.strings);
}

static void test_maps_malformed(void **state)
{
	(void)state;
	maps_bad(S("00400000-00452000 r-xq 00000000 08:02 173521 /bin/x\n"), -EINVAL);
	maps_bad(S("00400000-00452000 r-x 00000000 08:02 173521 /bin/x\n"), -EINVAL);
	maps_bad(S("00452000-00400000 r-xp 00000000 08:02 173521 /bin/x\n"), -EINVAL);
	maps_bad(S("00400000 r-xp 00000000 08:02 173521 /bin/x\n"), -EINVAL);
	maps_bad(S("00400000-00452000 r-xp 00000000 0802 173521 /bin/x\n"), -EINVAL);
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02\n"), -EINVAL);
	maps_bad(S("00400000-00452000  r-xp 00000000 08:02 1 /bin/x\n"), -EINVAL);
	maps_bad(S("0x400000-00452000 r-xp 00000000 08:02 1 /bin/x\n"), -EINVAL);
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 -1 /bin/x\n"), -EINVAL);
	maps_bad(S("\n"), -EINVAL);
	/* The second line is bad: what the first built is freed, not leaked. */
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 1 /bin/x\nbad\n"), -EINVAL);
	/* Out of range: 17 hex digits, a 2^64 inode, a 2^32 device. */
	maps_bad(S("10000000000000000-10000000000000001 r-xp 00000000 08:02 1\n"), -ERANGE);
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 18446744073709551616\n"), -ERANGE);
	maps_bad(S("00400000-00452000 r-xp 00000000 100000000:02 1\n"), -ERANGE);
	/* Cut short: no final newline. */
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x"), -EINVAL);
	/* A NUL in the path (found by fuzz/fuzz_maps.c): no file name has one. */
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 1 /bin/\0x\n"), -EINVAL);
	maps_bad(S("00400000-00452000 r-xp 00000000 08:02 1 \0\n"), -EINVAL);
}

static void test_maps_empty(void **state)
{
	struct pd_maps m = PD_MAPS_INIT;

	(void)state;
	/* A kernel thread's maps is empty. */
	assert_int_equal(pd_parse_maps("", 0, &m), 0);
	assert_int_equal(m.n, 0);
	pd_maps_release(&m);
}

static void test_maps_every_prefix(void **state)
{
	struct pd_maps m = PD_MAPS_INIT;

	(void)state;
	for (size_t k = 0; k < sizeof(maps_text) - 1; k++) {
		char *p = exact(maps_text, k);
		int r = pd_parse_maps(p, k, &m);
		size_t lines = 0;

		free(p);
		for (size_t i = 0; i < k; i++)
			lines += maps_text[i] == '\n';
		if (k == 0 || maps_text[k - 1] == '\n') {
			assert_int_equal(r, 0);
			assert_int_equal(m.n, lines);
		} else if (r == 0) {
			fail_msg("maps prefix of %zu bytes parsed", k);
		}
		pd_maps_release(&m);
	}
}

static void test_maps_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_maps m = PD_MAPS_INIT;
	uintptr_t code = (uintptr_t)&test_maps_real_self, stack = (uintptr_t)&sb;
	bool found_code = false, found_stack = false;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/maps", &sb, 64 << 20), 0);
	assert_int_equal(pd_parse_maps(sb.buf, sb.len, &m), 0);
	assert_true(m.n > 5);
	for (size_t i = 0; i < m.n; i++) {
		const struct pd_map *e = &m.v[i];

		assert_true(e->start < e->end);
		if (i)
			assert_true(e->start >= m.v[i - 1].end);
		if (code >= e->start && code < e->end) {
			found_code = true;
			assert_non_null(e->path);
			assert_non_null(strstr(e->path, "test_procfs"));
			assert_int_equal(e->perms[2], 'x');
			assert_true(e->inode > 0);
		}
		if (stack >= e->start && stack < e->end) {
			found_stack = true;
			/* valgrind runs us on a stack of its own making */
			if (e->path)
				assert_string_equal(e->path, "[stack]");
			assert_int_equal(e->perms[1], 'w');
		}
	}
	assert_true(found_code);
	assert_true(found_stack);
	pd_maps_release(&m);
	strbuf_release(&sb);
}

/* ---- NUL-separated lists ----------------------------------------------------- */

static void test_nulsep(void **state)
{
	struct pd_strv sv = PD_STRV_INIT;

	(void)state;
	assert_int_equal(pd_parse_nulsep(S("nginx\0-g\0daemon off;\0"), &sv), 0);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "nginx");
	assert_string_equal(sv.v[1], "-g");
	assert_string_equal(sv.v[2], "daemon off;");
	assert_int_equal(sv.len[2], 11);
	pd_strv_release(&sv);
	assert_int_equal(sv.n, 0);
	assert_null(sv.v);

	/* A rewritten argv may lose its final NUL. */
	assert_int_equal(pd_parse_nulsep(S("a\0bc"), &sv), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[1], "bc");
	assert_int_equal(sv.len[1], 2);
	pd_strv_release(&sv);

	assert_int_equal(pd_parse_nulsep(NULL, 0, &sv), 0);
	assert_int_equal(sv.n, 0);
	pd_strv_release(&sv);

	/* Empty items are items. */
	assert_int_equal(pd_parse_nulsep(S("\0"), &sv), 0);
	assert_int_equal(sv.n, 1);
	assert_int_equal(sv.len[0], 0);
	assert_string_equal(sv.v[0], "");
	pd_strv_release(&sv);
	assert_int_equal(pd_parse_nulsep(S("a\0\0b\0"), &sv), 0);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[1], "");
	assert_string_equal(sv.v[2], "b");
	pd_strv_release(&sv);

	/* Raw bytes are kept. */
	assert_int_equal(pd_parse_nulsep(S("K=\xff\n\\\0"), &sv), 0);
	assert_int_equal(sv.n, 1);
	assert_int_equal(sv.len[0], 5);
	assert_memory_equal(sv.v[0], "K=\xff\n\\", 6);
	pd_strv_release(&sv);
}

static void test_nulsep_every_prefix(void **state)
{
	static const char text[] = "PATH=/usr/bin\0HOME=/root\0\0X=\xff\0";
	struct pd_strv sv = PD_STRV_INIT;

	(void)state;
	for (size_t k = 0; k <= sizeof(text) - 1; k++) {
		char *p = exact(text, k);
		size_t total = 0;

		assert_int_equal(pd_parse_nulsep(p, k, &sv), 0);
		free(p);
		/* Items and their NULs account for every input byte. */
		for (size_t i = 0; i < sv.n; i++) {
			assert_int_equal(strlen(sv.v[i]), sv.len[i]);
			total += sv.len[i] + 1;
		}
		assert_true(total == k || total == k + 1);
		pd_strv_release(&sv);
	}
}

static void test_nulsep_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_strv sv = PD_STRV_INIT;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/cmdline", &sb, 1 << 20), 0);
	assert_int_equal(pd_parse_nulsep(sb.buf, sb.len, &sv), 0);
	assert_true(sv.n >= 1);
	assert_non_null(strstr(sv.v[0], "test_procfs"));
	pd_strv_release(&sv);
	strbuf_release(&sb);
}

/* ---- /proc/stat ---------------------------------------------------------------- */

static void test_btime(void **state)
{
	int64_t bt = 5;

	(void)state;
	assert_int_equal(pd_parse_btime(S("cpu  1 2 3\nintr 1 2\nctxt 99\nbtime 1700000000\n"
					  "processes 5\n"),
					&bt),
			 0);
	assert_true(bt == 1700000000);
	assert_int_equal(pd_parse_btime(S("btime 0\n"), &bt), 0);
	assert_true(bt == 0);
	bt = 5;
	assert_int_equal(pd_parse_btime(NULL, 0, &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("cpu 1\nxbtime 7\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("cpu 1 btime 7\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("btime\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("btime \n"), &bt), -EINVAL);
	/* The kernel prints an unsigned number: no sign, not even on 0. */
	assert_int_equal(pd_parse_btime(S("btime -1\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("btime -0\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("btime 12x\n"), &bt), -EINVAL);
	assert_int_equal(pd_parse_btime(S("btime 99999999999999999999\n"), &bt), -ERANGE);
	/* "btime 17" could be the start of "btime 1700000000". */
	assert_int_equal(pd_parse_btime(S("cpu 1\nbtime 17"), &bt), -EINVAL);
	assert_true(bt == 5);
}

static void test_btime_real(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int64_t bt;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/stat", &sb, 4 << 20), 0);
	assert_int_equal(pd_parse_btime(sb.buf, sb.len, &bt), 0);
	assert_true(bt > 0);
	assert_true(bt <= (int64_t)time(NULL));
	strbuf_release(&sb);
}

/* ---- pd_read_file_at ---------------------------------------------------------------- */

static char tmpdir[64];

static void make_file(const char *name, size_t size)
{
	char path[128], *data = malloc(size + 1);
	int fd;

	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (char)('0' + i % 10);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	free(data);
}

static int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd_test_procfs.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
	static const char *const names[] = {"ten", "empty", "big"};
	int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	(void)state;
	if (dirfd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlinkat(dirfd, names[i], 0);
	close(dirfd);
	return rmdir(tmpdir);
}

static void test_read_file_limits(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int dirfd;

	(void)state;
	make_file("ten", 10);
	make_file("empty", 0);
	make_file("big", 100000);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);

	/* Appends to what is there. */
	assert_int_equal(strbuf_addstr(&sb, "pre:"), 0);
	assert_int_equal(pd_read_file_at(dirfd, "ten", &sb, 10), 0); /* exactly max */
	assert_string_equal(sb.buf, "pre:0123456789");

	/* One byte too many: -EFBIG, and sb as it was. */
	assert_int_equal(pd_read_file_at(dirfd, "ten", &sb, 9), -EFBIG);
	assert_string_equal(sb.buf, "pre:0123456789");
	assert_int_equal(pd_read_file_at(dirfd, "big", &sb, 65536), -EFBIG);
	assert_int_equal(sb.len, 14);
	strbuf_reset(&sb);
	assert_int_equal(pd_read_file_at(dirfd, "big", &sb, 100000), 0);
	assert_int_equal(sb.len, 100000);
	assert_int_equal(sb.buf[99999], '9');

	strbuf_reset(&sb);
	assert_int_equal(pd_read_file_at(dirfd, "empty", &sb, 0), 0);
	assert_int_equal(sb.len, 0);
	assert_int_equal(pd_read_file_at(dirfd, "ten", &sb, 0), -EFBIG);

	assert_int_equal(pd_read_file_at(dirfd, "missing", &sb, 100), -ENOENT);
	assert_int_equal(pd_read_file_at(dirfd, ".", &sb, 100), -EISDIR);
	assert_int_equal(sb.len, 0);
	close(dirfd);
	strbuf_release(&sb);
}

/* A process that is gone reads as -ESRCH or -ENOENT, never as data. */
static void test_read_file_gone(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char path[32];
	int dirfd, r;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	r = pd_read_file_at(dirfd, "stat", &sb, 4096);
	assert_true(r == -ESRCH || r == -ENOENT);
	r = pd_read_file_at(dirfd, "status", &sb, 4096);
	assert_true(r == -ESRCH || r == -ENOENT);
	assert_int_equal(sb.len, 0);
	close(dirfd);

	/* Relative to a live /proc/PID directory it works. */
	dirfd = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dirfd >= 0);
	assert_int_equal(pd_read_file_at(dirfd, "stat", &sb, 4096), 0);
	assert_true(sb.len > 0 && sb.buf[sb.len - 1] == '\n');
	close(dirfd);
	strbuf_release(&sb);
}

/* ---- sysclock ------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void test_sysclock(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_stat st;
	int64_t boot, boot2, start, bt;
	long hz = pd_ticks_per_sec();

	(void)state;
	assert_int_equal(hz, sysconf(_SC_CLK_TCK));
	assert_true(pd_ticks_to_ns(0) == 0);
	assert_true(pd_ticks_to_ns((uint64_t)hz) == 1000000000);
	assert_true(pd_ticks_to_ns((uint64_t)hz * 3600 + 1) == 3600000000000LL + 1000000000 / hz);
	assert_true(pd_ticks_to_ns(UINT64_MAX) == INT64_MAX); /* saturates */

	assert_int_equal(pd_boot_time_ns(&boot), 0);
	assert_int_equal(pd_boot_time_ns(&boot2), 0);
	assert_true(boot == boot2); /* cached */
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/stat", &sb, 4 << 20), 0);
	assert_int_equal(pd_parse_btime(sb.buf, sb.len, &bt), 0);
	assert_true(boot >= (bt - 1) * 1000000000 && boot < (bt + 2) * 1000000000);
	assert_true(boot < now_ns());

	/* This process started after boot and not long before now. */
	strbuf_reset(&sb);
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/stat", &sb, 4096), 0);
	assert_int_equal(pd_parse_stat(sb.buf, sb.len, &st), 0);
	assert_int_equal(pd_start_time_ns(st.starttime, &start), 0);
	assert_true(start >= boot);
	assert_true(start <= now_ns() + 1000000000 / hz);
	assert_true(now_ns() - start < 3600 * INT64_C(1000000000));
	assert_int_equal(pd_start_time_ns(UINT64_MAX, &start), -ERANGE);
	strbuf_release(&sb);
}

/* ---- users and scope ------------------------------------------------------------------- */

static void test_user_name(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(pd_user_name(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "root");
	assert_int_equal(pd_user_name(0, buf, sizeof(buf)), 0); /* from the cache */
	assert_string_equal(buf, "root");
	assert_int_equal(pd_user_name(0, buf, 5), 0);
	assert_int_equal(pd_user_name(0, buf, 4), -ENOSPC);
	assert_int_equal(pd_user_name(0, buf, 0), -ENOSPC);
	/* No passwd entry: the number. */
	assert_int_equal(pd_user_name(4000000000u, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "4000000000");
	assert_int_equal(pd_user_name(4000000000u, buf, 10), -ENOSPC);
}

static void test_user_lookup(void **state)
{
	uid_t uid = 77;

	(void)state;
	assert_int_equal(pd_user_lookup("root", &uid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(pd_user_lookup("1234", &uid), 0);
	assert_int_equal(uid, 1234);
	uid = 77;
	assert_int_equal(pd_user_lookup("pd-no-such-user", &uid), -ENOENT);
	assert_int_equal(pd_user_lookup("", &uid), -ENOENT);
	assert_int_equal(pd_user_lookup(NULL, &uid), -ENOENT);
	assert_int_equal(pd_user_lookup("4294967295", &uid), -ENOENT); /* (uid_t)-1 */
	assert_int_equal(pd_user_lookup("99999999999999999999", &uid), -ENOENT);
	assert_int_equal(uid, 77);
}

static void *name_worker(void *arg)
{
	uintptr_t ok = 1;

	(void)arg;
	for (unsigned i = 0; i < 2000; i++) {
		/* 700 distinct uids > the cache size: evictions under load. */
		uid_t uid = i % 2 ? 0 : 3000000000u + (i / 2) % 700;
		char buf[32], want[32];

		if (uid)
			snprintf(want, sizeof(want), "%u", (unsigned)uid);
		else
			snprintf(want, sizeof(want), "root");
		if (pd_user_name(uid, buf, sizeof(buf)) != 0 || strcmp(buf, want) != 0)
			ok = 0;
	}
	return (void *)ok;
}

static void test_user_name_threads(void **state)
{
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, name_worker, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ok;

		assert_int_equal(pthread_join(t[i], &ok), 0);
		assert_true(ok == (void *)1);
	}
}

static void test_scope(void **state)
{
	struct pd_scope s = PD_SCOPE_INIT;

	(void)state;
	assert_false(pd_scope_has(&s, getuid()));
	assert_int_equal(pd_scope_init_self(&s), 0);
	assert_int_equal(s.n, 1);
	assert_true(pd_scope_has(&s, getuid()));
	assert_false(pd_scope_has(&s, 4000000000u));
	pd_scope_release(&s);
	assert_int_equal(s.n, 0);

	assert_int_equal(pd_scope_parse(&s, "all"), 0);
	assert_true(s.all);
	assert_true(pd_scope_has(&s, 4000000000u));
	pd_scope_release(&s);

	assert_int_equal(pd_scope_parse(&s, " root , 1000,self,1000 "), 0);
	assert_false(s.all);
	assert_int_equal(s.n, getuid() == 0 || getuid() == 1000 ? 2 : 3); /* duplicates merged */
	assert_true(pd_scope_has(&s, 0));
	assert_true(pd_scope_has(&s, 1000));
	assert_true(pd_scope_has(&s, getuid()));
	assert_false(pd_scope_has(&s, 1001));
	pd_scope_release(&s);

	assert_int_equal(pd_scope_parse(&s, "self"), 0);
	assert_int_equal(s.n, 1);
	assert_true(pd_scope_has(&s, getuid()));
	pd_scope_release(&s);
}

static void test_scope_bad(void **state)
{
	static const char *bad[] = {"",		  " ",	      "root,,1000", "root,",
				    ",root",	  "all,root", "root,all",   "pd-no-such-user",
				    "4294967295", "allx"};
	struct pd_scope s;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s.all = true;
		if (pd_scope_parse(&s, bad[i]) != -EINVAL)
			fail_msg("scope \"%s\" accepted", bad[i]);
		/* Left empty, so releasing it is safe and it grants nothing. */
		assert_false(s.all);
		assert_int_equal(s.n, 0);
		assert_false(pd_scope_has(&s, 0));
		pd_scope_release(&s);
	}
	assert_int_equal(pd_scope_parse(&s, NULL), -EINVAL);
	assert_false(pd_scope_has(NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_fields),
		cmocka_unit_test(test_stat_reaped),
		cmocka_unit_test(test_stat_hostile_comm),
		cmocka_unit_test(test_stat_long_comm_is_cut),
		cmocka_unit_test(test_stat_every_prefix),
		cmocka_unit_test(test_stat_huge_values),
		cmocka_unit_test(test_stat_malformed),
		cmocka_unit_test(test_stat_real_self),
		cmocka_unit_test(test_real_hostile_names),
		cmocka_unit_test(test_status_fields),
		cmocka_unit_test(test_status_escaped_names),
		cmocka_unit_test(test_status_long_name_is_cut),
		cmocka_unit_test(test_status_kernel_thread),
		cmocka_unit_test(test_status_malformed),
		cmocka_unit_test(test_status_huge_values),
		cmocka_unit_test(test_status_every_prefix),
		cmocka_unit_test(test_status_groups),
		cmocka_unit_test(test_status_real_self),
		cmocka_unit_test(test_rollup_fields),
		cmocka_unit_test(test_rollup_absent_and_malformed),
		cmocka_unit_test(test_rollup_every_prefix),
		cmocka_unit_test(test_rollup_real_self),
		cmocka_unit_test(test_maps_fields),
		cmocka_unit_test(test_maps_malformed),
		cmocka_unit_test(test_maps_empty),
		cmocka_unit_test(test_maps_every_prefix),
		cmocka_unit_test(test_maps_real_self),
		cmocka_unit_test(test_nulsep),
		cmocka_unit_test(test_nulsep_every_prefix),
		cmocka_unit_test(test_nulsep_real_self),
		cmocka_unit_test(test_btime),
		cmocka_unit_test(test_btime_real),
		cmocka_unit_test_setup_teardown(test_read_file_limits, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_read_file_gone),
		cmocka_unit_test(test_sysclock),
		cmocka_unit_test(test_user_name),
		cmocka_unit_test(test_user_lookup),
		cmocka_unit_test(test_user_name_threads),
		cmocka_unit_test(test_scope),
		cmocka_unit_test(test_scope_bad),
	};

	return cmocka_run_group_tests_name("procfs", tests, NULL, NULL);
}
