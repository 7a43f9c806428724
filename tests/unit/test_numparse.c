#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/numparse.h"

#define S(lit) (lit), sizeof(lit) - 1

static void u64_ok(const char *s, size_t len, uint64_t max, uint64_t want)
{
	uint64_t v = 12345;

	assert_int_equal(parse_u64(s, len, max, &v), 0);
	assert_true(v == want);
}

static void u64_err(const char *s, size_t len, uint64_t max, int err)
{
	uint64_t v = 777;

	assert_int_equal(parse_u64(s, len, max, &v), err);
	assert_true(v == 777); /* untouched on failure */
}

static void test_u64(void **state)
{
	(void)state;
	u64_ok(S("0"), UINT64_MAX, 0);
	u64_ok(S("123"), UINT64_MAX, 123);
	u64_ok(S("007"), UINT64_MAX, 7);
	u64_ok(S("18446744073709551615"), UINT64_MAX, UINT64_MAX);
	u64_ok(S("256"), 256, 256);
	u64_err(S("257"), 256, -ERANGE);
	u64_err(S("18446744073709551616"), UINT64_MAX, -ERANGE); /* 2^64 */
	u64_err(S("36893488147419103232"), UINT64_MAX, -ERANGE); /* 2^65 */
	u64_err(S("99999999999999999999999999999999"), UINT64_MAX, -ERANGE);
	u64_err(S(""), UINT64_MAX, -EINVAL);
	u64_err(NULL, 0, UINT64_MAX, -EINVAL);
	u64_err(S(" 1"), UINT64_MAX, -EINVAL);
	u64_err(S("1 "), UINT64_MAX, -EINVAL);
	u64_err(S("+1"), UINT64_MAX, -EINVAL);
	u64_err(S("-1"), UINT64_MAX, -EINVAL);
	u64_err(S("-0"), UINT64_MAX, -EINVAL);
	u64_err(S("1a"), UINT64_MAX, -EINVAL);
	u64_err(S("0x10"), UINT64_MAX, -EINVAL);
	u64_err(S("1\n"), UINT64_MAX, -EINVAL);
	u64_err(S("1\0"), UINT64_MAX, -EINVAL);
	/* Garbage after an overflowing prefix is still "not a number". */
	u64_err(S("99999999999999999999999x"), UINT64_MAX, -EINVAL);
	/* The length bounds the parse: no NUL needed, nothing read past. */
	u64_ok("123456", 3, UINT64_MAX, 123);
}

static void i64_ok(const char *s, size_t len, int64_t min, int64_t max, int64_t want)
{
	int64_t v = 12345;

	assert_int_equal(parse_i64(s, len, min, max, &v), 0);
	assert_true(v == want);
}

static void i64_err(const char *s, size_t len, int64_t min, int64_t max, int err)
{
	int64_t v = 777;

	assert_int_equal(parse_i64(s, len, min, max, &v), err);
	assert_true(v == 777);
}

static void test_i64(void **state)
{
	(void)state;
	i64_ok(S("0"), INT64_MIN, INT64_MAX, 0);
	i64_ok(S("-0"), INT64_MIN, INT64_MAX, 0);
	i64_ok(S("-42"), INT64_MIN, INT64_MAX, -42);
	i64_ok(S("9223372036854775807"), INT64_MIN, INT64_MAX, INT64_MAX);
	i64_ok(S("-9223372036854775808"), INT64_MIN, INT64_MAX, INT64_MIN);
	i64_err(S("9223372036854775808"), INT64_MIN, INT64_MAX, -ERANGE);
	i64_err(S("-9223372036854775809"), INT64_MIN, INT64_MAX, -ERANGE);
	i64_err(S("18446744073709551616"), INT64_MIN, INT64_MAX, -ERANGE);
	i64_err(S("-18446744073709551616"), INT64_MIN, INT64_MAX, -ERANGE);
	i64_ok(S("-5"), -5, 5, -5);
	i64_ok(S("5"), -5, 5, 5);
	i64_err(S("-6"), -5, 5, -ERANGE);
	i64_err(S("6"), -5, 5, -ERANGE);
	i64_err(S("-1"), 0, INT64_MAX, -ERANGE);
	i64_err(S(""), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(NULL, 0, INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S("-"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S("--1"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S("+1"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S(" -1"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S("- 1"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_err(S("1-"), INT64_MIN, INT64_MAX, -EINVAL);
	i64_ok("-12x", 3, INT64_MIN, INT64_MAX, -12);
}

static void hex_ok(const char *s, size_t len, uint64_t want)
{
	uint64_t v = 1;

	assert_int_equal(parse_hex_u64(s, len, &v), 0);
	assert_true(v == want);
}

static void hex_err(const char *s, size_t len, int err)
{
	uint64_t v = 777;

	assert_int_equal(parse_hex_u64(s, len, &v), err);
	assert_true(v == 777);
}

static void test_hex(void **state)
{
	(void)state;
	hex_ok(S("0"), 0);
	hex_ok(S("7f00abcd"), 0x7f00abcd);
	hex_ok(S("7F00ABCD"), 0x7f00abcd);
	hex_ok(S("55a337b1b000"), 0x55a337b1b000ULL);
	hex_ok(S("ffffffffffffffff"), UINT64_MAX);
	hex_ok(S("0000000000000001"), 1);
	hex_err(S("10000000000000000"), -ERANGE); /* 2^64 */
	hex_err(S("00000000000000001"), -ERANGE); /* more than 16 digits */
	hex_err(S(""), -EINVAL);
	hex_err(S("0x10"), -EINVAL);
	hex_err(S("g"), -EINVAL);
	hex_err(S("-1"), -EINVAL);
	hex_err(S(" a"), -EINVAL);
	hex_err(S("a "), -EINVAL);
	hex_err(S("xxxxxxxxxxxxxxxxxxxx"), -EINVAL);
	hex_ok("abz", 2, 0xab);
}

static void pid_ok(const char *s, size_t len, int want)
{
	int v = -7;

	assert_int_equal(parse_pid(s, len, &v), 0);
	assert_int_equal(v, want);
}

static void pid_err(const char *s, size_t len, int err)
{
	int v = -7;

	assert_int_equal(parse_pid(s, len, &v), err);
	assert_int_equal(v, -7);
}

static void test_pid(void **state)
{
	(void)state;
	pid_ok(S("0"), 0);
	pid_ok(S("1"), 1);
	pid_ok(S("31337"), 31337);
	pid_ok(S("4194304"), 4194304);
	pid_err(S("4194305"), -ERANGE);
	pid_err(S("2147483648"), -ERANGE);
	pid_err(S("99999999999999999999"), -ERANGE);
	pid_err(S("01"), -EINVAL);
	pid_err(S("00"), -EINVAL);
	pid_err(S("-1"), -EINVAL);
	pid_err(S("+1"), -EINVAL);
	pid_err(S(""), -EINVAL);
	pid_err(S("1.0"), -EINVAL);
	pid_err(S("12 "), -EINVAL);
	pid_err(S("0x1"), -EINVAL);
	pid_err(S("abc"), -EINVAL);
	pid_ok("123/", 3, 123);
}

static void test_bytes_and_durations(void **state)
{
	uint64_t v;

	assert_int_equal(parse_bytes("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_bytes("512M", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(parse_bytes("3k", &v), 0);
	assert_int_equal(v, 3072);
	assert_int_equal(parse_bytes("2T", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(parse_bytes("M", &v), -EINVAL);
	assert_int_equal(parse_bytes("5X", &v), -EINVAL);
	assert_int_equal(parse_bytes("-1", &v), -EINVAL);
	assert_int_equal(parse_bytes("16777216T", &v), -ERANGE);

	assert_int_equal(parse_duration_ms("10", 1000000, &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(parse_duration_ms("1500ms", 1000000, &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("2m", 1000000, &v), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(parse_duration_ms("1h", 86400000, &v), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(parse_duration_ms("7d", 7 * 86400000ull, &v), 0);
	assert_int_equal(v, 7 * 86400000ull);
	assert_int_equal(parse_duration_ms("8d", 7 * 86400000ull, &v), -ERANGE);
	assert_int_equal(parse_duration_ms("s", 1000, &v), -EINVAL);
	assert_int_equal(parse_duration_ms("1.5s", 100000, &v), -EINVAL);
	assert_int_equal(parse_duration_ms("5 s", 100000, &v), -EINVAL);
}

static void test_format_bytes(void **state)
{
	char b[16];

	(void)state;
	format_bytes(0, true, b, sizeof(b));
	assert_string_equal(b, "0 B");
	format_bytes(1023, true, b, sizeof(b));
	assert_string_equal(b, "1023 B");
	format_bytes(1024, true, b, sizeof(b));
	assert_string_equal(b, "1.0 KiB");
	format_bytes(1536, false, b, sizeof(b));
	assert_string_equal(b, "1.5K");
	format_bytes(10189, true, b, sizeof(b)); /* 9.95 KiB */
	assert_string_equal(b, "10 KiB");
	format_bytes(12ull << 20, true, b, sizeof(b));
	assert_string_equal(b, "12 MiB");
	format_bytes(3ull << 40, false, b, sizeof(b));
	assert_string_equal(b, "3.0T");
	format_bytes(UINT64_MAX, true, b, sizeof(b));
	assert_string_equal(b, "16 EiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_i64),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_pid),
		cmocka_unit_test(test_bytes_and_durations),
		cmocka_unit_test(test_format_bytes),
	};

	return cmocka_run_group_tests_name("numparse", tests, NULL, NULL);
}
