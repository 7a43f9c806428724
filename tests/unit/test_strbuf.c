#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"

static void test_init_is_empty_string(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct strbuf sb2;

	(void)state;
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	strbuf_init(&sb2);
	assert_int_equal(sb2.len, 0);
	assert_int_equal(sb2.alloc, 0);
	assert_string_equal(sb2.buf, "");
	/* Releasing a never-grown buffer must not free the shared empty string. */
	strbuf_release(&sb);
	strbuf_release(&sb2);
	assert_string_equal(sb.buf, "");
	/* reset/setlen on an unallocated buffer leave it usable. */
	strbuf_reset(&sb);
	strbuf_setlen(&sb, 0);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
}

static void test_add_keeps_nul_terminated(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "abc"), 0);
	assert_int_equal(strbuf_addch(&sb, '-'), 0);
	assert_int_equal(strbuf_add(&sb, "xyz", 2), 0);
	assert_int_equal(strbuf_add(&sb, NULL, 0), 0);
	assert_int_equal(sb.len, 6);
	assert_string_equal(sb.buf, "abc-xy");
	assert_true(sb.alloc > sb.len);
	strbuf_release(&sb);
	assert_int_equal(sb.len, 0);
	assert_int_equal(sb.alloc, 0);
}

static void test_binary_data(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	static const char bin[] = {'a', 0, (char)0xff, 0, 'b'};

	(void)state;
	assert_int_equal(strbuf_add(&sb, bin, sizeof(bin)), 0);
	assert_int_equal(sb.len, sizeof(bin));
	assert_memory_equal(sb.buf, bin, sizeof(bin));
	assert_int_equal(sb.buf[sb.len], 0);
	strbuf_release(&sb);
}

static void test_growth_preserves_content(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	for (int i = 0; i < 10000; i++)
		assert_int_equal(strbuf_addch(&sb, (char)('a' + i % 26)), 0);
	assert_int_equal(sb.len, 10000);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(sb.buf[i], 'a' + i % 26);
	assert_int_equal(sb.buf[10000], 0);
	strbuf_release(&sb);
}

static void test_addf(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char big[300];

	(void)state;
	assert_int_equal(strbuf_addf(&sb, "%d-%s", 42, "x"), 0);
	assert_string_equal(sb.buf, "42-x");
	/* Longer than the first guess: exercises the second vsnprintf. */
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(strbuf_addf(&sb, "[%s]", big), 0);
	assert_int_equal(sb.len, 4 + 2 + sizeof(big) - 1);
	assert_int_equal(sb.buf[4], '[');
	assert_int_equal(sb.buf[sb.len - 1], ']');
	assert_int_equal(sb.buf[sb.len], 0);
	assert_int_equal(strbuf_addf(&sb, "%s", ""), 0);
	assert_int_equal(sb.len, 4 + 2 + sizeof(big) - 1);
	strbuf_release(&sb);
}

static void test_setlen_reset(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "hello world"), 0);
	strbuf_setlen(&sb, 5);
	assert_int_equal(sb.len, 5);
	assert_string_equal(sb.buf, "hello");
	strbuf_reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	assert_true(sb.alloc > 0); /* reset keeps the allocation for reuse */
	strbuf_release(&sb);
}

static void test_detach(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len = 99;
	char *s;

	(void)state;
	/* Even an empty buffer detaches to something the caller can free. */
	s = strbuf_detach(&sb, &len);
	assert_non_null(s);
	assert_int_equal(len, 0);
	assert_string_equal(s, "");
	free(s);

	assert_int_equal(strbuf_addstr(&sb, "owned"), 0);
	s = strbuf_detach(&sb, &len);
	assert_int_equal(len, 5);
	assert_string_equal(s, "owned");
	assert_int_equal(sb.len, 0);
	assert_int_equal(sb.alloc, 0);
	assert_string_equal(sb.buf, "");
	free(s);
}

static void test_grow_overflow_is_enomem(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "keep"), 0);
	assert_false(sb.failed);
	assert_int_equal(strbuf_grow(&sb, SIZE_MAX), -ENOMEM);
	/* The failure is remembered, for callers that check once at the end. */
	assert_true(sb.failed);
	assert_int_equal(strbuf_addstr(&sb, ""), 0);
	assert_true(sb.failed);
	assert_int_equal(strbuf_grow(&sb, SIZE_MAX - 2), -ENOMEM);
	assert_int_equal(strbuf_add(&sb, "x", SIZE_MAX), -ENOMEM);
	/* Failure leaves the previous contents intact. */
	assert_int_equal(sb.len, 4);
	assert_string_equal(sb.buf, "keep");
	strbuf_release(&sb);
	assert_false(sb.failed);
}

/* A pipe with n bytes written and the write end closed. */
static int pipe_with(size_t n)
{
	int fds[2];
	char chunk[512];

	assert_int_equal(pipe(fds), 0);
	memset(chunk, 'z', sizeof(chunk));
	while (n) {
		size_t k = n < sizeof(chunk) ? n : sizeof(chunk);

		assert_int_equal(write(fds[1], chunk, k), (ssize_t)k);
		n -= k;
	}
	close(fds[1]);
	return fds[0];
}

static void test_read_fd(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int fd;

	(void)state;
	/* More than one 4096-byte read, fits in the pipe buffer. */
	fd = pipe_with(10000);
	assert_int_equal(strbuf_addstr(&sb, "pre"), 0);
	assert_int_equal(strbuf_read_fd(&sb, fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(sb.len, 10003);
	assert_memory_equal(sb.buf, "prezzz", 6);
	assert_int_equal(sb.buf[sb.len], 0);
	strbuf_release(&sb);

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(strbuf_read_fd(&sb, fd, 100), 0);
	assert_int_equal(sb.len, 0);
	close(fd);
	strbuf_release(&sb);
}

static void test_read_fd_limit(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int fd;

	(void)state;
	fd = pipe_with(5000);
	assert_int_equal(strbuf_read_fd(&sb, fd, 1000), -EFBIG);
	close(fd);
	/* What was read is kept, and never more than the limit. */
	assert_int_equal(sb.len, 1000);
	assert_int_equal(sb.buf[999], 'z');
	assert_int_equal(sb.buf[1000], 0);
	strbuf_release(&sb);

	fd = pipe_with(999);
	assert_int_equal(strbuf_read_fd(&sb, fd, 1000), 0);
	assert_int_equal(sb.len, 999);
	close(fd);
	strbuf_release(&sb);
}

static void test_read_fd_error(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	int fd;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "x"), 0);
	assert_int_equal(strbuf_read_fd(&sb, -1, 100), -EBADF);
	/* A directory opens but does not read. */
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(strbuf_read_fd(&sb, fd, 100), -EISDIR);
	close(fd);
	assert_string_equal(sb.buf, "x");
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_is_empty_string),
		cmocka_unit_test(test_add_keeps_nul_terminated),
		cmocka_unit_test(test_binary_data),
		cmocka_unit_test(test_growth_preserves_content),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_setlen_reset),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_grow_overflow_is_enomem),
		cmocka_unit_test(test_read_fd),
		cmocka_unit_test(test_read_fd_limit),
		cmocka_unit_test(test_read_fd_error),
	};

	return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
