/* lib/crashcap and lib/corepattern: the sparse copy, the expansion of a
 * chained handler's pattern, install and uninstall on plain files standing
 * for /proc/sys/kernel/core_pattern and core_pipe_limit. The kernel's side
 * is tests/e2e/test_crash.py. */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/corepattern.h"
#include "lib/crashcap.h"

static char dir[] = "/tmp/pd-test-crash-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A pipe holding data, its write end closed: what the kernel hands over. */
static int pipe_of(const unsigned char *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/in", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void test_sparse_copy_leaves_holes(void **state)
{
	size_t len = (4u << 20) + 100; /* a tail shorter than a block */
	unsigned char *data = calloc(1, len), *back = malloc(len);
	char path[256];
	uint64_t size = 0;
	struct stat st;
	int in, out;

	(void)state;
	memset(data + 8192, 0xab, 4096);	 /* one block of data */
	memset(data + (2u << 20) + 1, 0x11, 10); /* inside a block */
	memset(data + len - 50, 0x22, 50);	 /* the tail */
	in = pipe_of(data, len);
	snprintf(path, sizeof(path), "%s/out", dir);
	out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(pd_crash_copy_sparse(in, out, 0, NULL, &size), 0);
	assert_int_equal(size, len);
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal(st.st_size, (off_t)len);
	/* 3 blocks with data, a little more for the file system's own. */
	assert_true((uint64_t)st.st_blocks * 512 <= 64 * 1024);
	assert_int_equal(pread(out, back, len, 0), (ssize_t)len);
	assert_memory_equal(back, data, len);
	close(in);
	close(out);

	/* Past the limit: -EFBIG. */
	in = pipe_of(data, len);
	out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(pd_crash_copy_sparse(in, out, 1 << 20, NULL, &size), -EFBIG);
	close(in);
	close(out);

	/* Stopped: -ECANCELED before a byte is read. */
	volatile sig_atomic_t stop = 1;

	in = pipe_of(data, len);
	out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(pd_crash_copy_sparse(in, out, 0, &stop, &size), -ECANCELED);
	close(in);
	close(out);
	free(data);
	free(back);
}

static void test_expand_as_the_kernel(void **state)
{
	struct pd_crash_args a = {.pid = getpid(), .tid = getpid(), .sig = 11, .time = 1765000000};
	char **argv = NULL, want[64];
	int pidfd = -1;

	(void)state;
	strcpy(a.comm, "my prog");
	assert_int_equal(pd_crash_expand("|/bin/h  %P x%s%% %e %t %q %", &a, &argv, &pidfd), 0);
	snprintf(want, sizeof(want), "%d", (int)getpid());
	assert_string_equal(argv[0], "/bin/h");
	assert_string_equal(argv[1], want);
	assert_string_equal(argv[2], "x11%");
	assert_string_equal(argv[3], "my prog"); /* one argument: split before expansion */
	assert_string_equal(argv[4], "1765000000");
	assert_string_equal(argv[5], ""); /* %q: unknown, dropped */
	assert_string_equal(argv[6], ""); /* a lone % at the end: an empty one, as */
	assert_null(argv[7]);		  /* the kernel starts the argument first */
	assert_int_equal(pidfd, -1);
	pd_crash_argv_free(argv);

	assert_int_equal(pd_crash_expand("|/bin/h %F", &a, &argv, &pidfd), 0);
	assert_true(pidfd >= 0);
	assert_int_equal(fcntl(pidfd, F_GETFD) & FD_CLOEXEC, 0);
	snprintf(want, sizeof(want), "%d", pidfd);
	assert_string_equal(argv[1], want);
	close(pidfd);
	pd_crash_argv_free(argv);
	assert_int_equal(pd_crash_expand("|", &a, &argv, &pidfd), -EINVAL);
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void get(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = 0;
	close(fd);
}

static void test_install_uninstall(void **state)
{
	char pat[256], lim[256], saved[256], buf[512], err[256];
	struct pd_core_paths p = {.pattern = pat, .pipe_limit = lim, .saved = saved};
	struct pd_core_saved s, was;
	char longp[200];

	(void)state;
	snprintf(pat, sizeof(pat), "%s/core_pattern", dir);
	snprintf(lim, sizeof(lim), "%s/core_pipe_limit", dir);
	snprintf(saved, sizeof(saved), "%s/sub/saved", dir);
	put(pat, "|/usr/lib/systemd/systemd-coredump %P %u  %g\n");
	put(lim, "0\n");
	assert_int_equal(pd_core_uninstall(&p, false, err, sizeof(err)), -ENOENT);

	assert_int_equal(pd_core_install(&p, "|/x/pd crash-handler %P", &was, err, sizeof(err)), 0);
	assert_string_equal(was.pattern, "|/usr/lib/systemd/systemd-coredump %P %u  %g");
	get(pat, buf, sizeof(buf));
	assert_string_equal(buf, "|/x/pd crash-handler %P");
	get(lim, buf, sizeof(buf));
	assert_string_equal(buf, "16\n");
	/* Twice, even with another pattern: the original stays remembered. */
	assert_int_equal(pd_core_install(&p, "|/y/pd crash-handler %P", &was, err, sizeof(err)), 0);
	assert_int_equal(pd_core_saved_read(&p, &s), 0);
	assert_string_equal(s.pattern, "|/usr/lib/systemd/systemd-coredump %P %u  %g");
	assert_string_equal(s.installed, "|/y/pd crash-handler %P");
	assert_int_equal(s.pipe_limit, 0);
	assert_true(s.pipe_limit_set);

	/* Too long for the kernel: refused, nothing changed. */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '|';
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(pd_core_install(&p, longp, NULL, err, sizeof(err)), -ENAMETOOLONG);
	get(pat, buf, sizeof(buf));
	assert_string_equal(buf, "|/y/pd crash-handler %P");

	/* Changed by someone else since: refused without force. */
	put(pat, "core\n");
	assert_int_equal(pd_core_uninstall(&p, false, err, sizeof(err)), -EBUSY);
	put(pat, "|/y/pd crash-handler %P\n");
	assert_int_equal(pd_core_uninstall(&p, false, err, sizeof(err)), 0);
	get(pat, buf, sizeof(buf));
	assert_string_equal(buf, "|/usr/lib/systemd/systemd-coredump %P %u  %g");
	get(lim, buf, sizeof(buf));
	assert_string_equal(buf, "0\n");
	assert_int_equal(access(saved, F_OK), -1);

	/* A limit somebody raised by hand stays as they set it. */
	put(pat, "core\n");
	put(lim, "4\n");
	assert_int_equal(pd_core_install(&p, "|/x/pd crash-handler %P", &was, err, sizeof(err)), 0);
	get(lim, buf, sizeof(buf));
	assert_string_equal(buf, "4\n");
	assert_int_equal(pd_core_uninstall(&p, false, err, sizeof(err)), 0);
	get(pat, buf, sizeof(buf));
	assert_string_equal(buf, "core");
	get(lim, buf, sizeof(buf));
	assert_string_equal(buf, "4\n");

	/* A saved file that is not ours is not trusted. */
	put(saved, "something else\n");
	assert_int_equal(pd_core_saved_read(&p, &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sparse_copy_leaves_holes),
		cmocka_unit_test(test_expand_as_the_kernel),
		cmocka_unit_test(test_install_uninstall),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
