/* fcgi/query.c: the query string is the most attacker-shaped input we parse. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi/query.h"

static void test_plus_and_percent(void **state)
{
	struct pd_query q;

	assert_int_equal(pd_query_parse("name=a+b%20c%2Bd&path=%2Fproc%2f1", &q, NULL, NULL), 0);
	assert_int_equal(q.n, 2);
	assert_string_equal(pd_query_get(&q, "name"), "a b c+d");
	assert_string_equal(pd_query_get(&q, "path"), "/proc/1");
	assert_int_equal(q.p[0].value_len, 7);
	pd_query_release(&q);

	/* '+' is a space in names too; "%41" is 'A'. */
	assert_int_equal(pd_query_parse("a+b=1&%41=2", &q, NULL, NULL), 0);
	assert_string_equal(pd_query_get(&q, "a b"), "1");
	assert_string_equal(pd_query_get(&q, "A"), "2");
	pd_query_release(&q);
}

static void test_nul_byte(void **state)
{
	struct pd_query q;
	const char *bad = NULL;
	size_t bad_len = 0;

	/* In a value: kept, and value_len tells it from the end. */
	assert_int_equal(pd_query_parse("v=a%00b", &q, NULL, NULL), 0);
	assert_int_equal(q.n, 1);
	assert_int_equal(q.p[0].value_len, 3);
	assert_int_equal(strlen(q.p[0].value), 1);
	assert_memory_equal(q.p[0].value, "a\0b", 4);
	pd_query_release(&q);

	/* In a name: refused, that name reported. */
	assert_int_equal(pd_query_parse("ok=1&x%00y=2", &q, &bad, &bad_len), -EINVAL);
	assert_non_null(bad);
	assert_int_equal(bad_len, 5);
	assert_memory_equal(bad, "x%00y", 5);
	assert_int_equal(q.n, 0);
	assert_null(q.buf);
}

static void expect_bad(const char *qs, const char *name)
{
	struct pd_query q;
	const char *bad = NULL;
	size_t bad_len = 99;

	assert_int_equal(pd_query_parse(qs, &q, &bad, &bad_len), -EINVAL);
	assert_non_null(bad);
	assert_int_equal(bad_len, strlen(name));
	assert_memory_equal(bad, name, bad_len);
	/* Nothing half-parsed is left behind. */
	assert_int_equal(q.n, 0);
	assert_null(q.buf);
	pd_query_release(&q);
}

static void test_bad_escapes(void **state)
{
	expect_bad("dumpType=%4", "dumpType");
	expect_bad("pid=1&dumpType=%zz&format=zip", "dumpType");
	expect_bad("a=1&b=%", "b");
	expect_bad("a=%4g", "a");
	/* A bad escape in the name itself: the raw name is reported. */
	expect_bad("x=1&na%zme=2", "na%zme");
	expect_bad("flag%", "flag%");
	/* The first bad pair is the one named. */
	expect_bad("first=%q1&second=%zz", "first");

	char out[8];

	assert_int_equal(pd_percent_decode("%4", 2, out, 0), -EINVAL);
	assert_int_equal(pd_percent_decode("a+%41", 5, out, 0), 3);
	assert_string_equal(out, "a+A");
	assert_int_equal(pd_percent_decode("a+%41", 5, out, 1), 3);
	assert_string_equal(out, "a A");
}

static void test_empty_pairs_and_no_equals(void **state)
{
	struct pd_query q;

	assert_int_equal(pd_query_parse("&&a=1&&&b&c=&&", &q, NULL, NULL), 0);
	assert_int_equal(q.n, 3);
	assert_string_equal(pd_query_get(&q, "a"), "1");
	/* "b" and "c=" are present with an empty value: not NULL. */
	assert_non_null(pd_query_get(&q, "b"));
	assert_string_equal(pd_query_get(&q, "b"), "");
	assert_string_equal(pd_query_get(&q, "c"), "");
	assert_null(pd_query_get(&q, "d"));
	pd_query_release(&q);

	/* Nameless pairs can never be asked for; they are skipped. */
	assert_int_equal(pd_query_parse("=x&=&a==b", &q, NULL, NULL), 0);
	assert_int_equal(q.n, 1);
	assert_string_equal(pd_query_get(&q, "a"), "=b");
	pd_query_release(&q);

	for (int i = 0; i < 3; i++) {
		const char *empty[] = {"", "&", NULL};

		assert_int_equal(pd_query_parse(empty[i], &q, NULL, NULL), 0);
		assert_int_equal(q.n, 0);
		assert_null(pd_query_get(&q, "a"));
		pd_query_release(&q);
	}
}

static void test_duplicates_and_case(void **state)
{
	struct pd_query q;

	assert_int_equal(pd_query_parse("pid=1&PID=2&Pid=3&allUsers=true", &q, NULL, NULL), 0);
	assert_int_equal(q.n, 4);
	/* First wins, whatever case the lookup uses (ASP.NET binding). */
	assert_string_equal(pd_query_get(&q, "pid"), "1");
	assert_string_equal(pd_query_get(&q, "PiD"), "1");
	assert_string_equal(pd_query_get(&q, "ALLUSERS"), "true");
	assert_string_equal(pd_query_get(&q, "allusers"), "true");
	/* Only ASCII letters fold; a prefix is not a match. */
	assert_null(pd_query_get(&q, "pi"));
	assert_null(pd_query_get(&q, "pidx"));
	pd_query_release(&q);
}

static void test_too_many(void **state)
{
	char qs[PD_QUERY_MAX_PARAMS * 8 + 16] = "";
	struct pd_query q;
	size_t len = 0;
	int i;

	for (i = 0; i < PD_QUERY_MAX_PARAMS; i++)
		len += (size_t)sprintf(qs + len, "p%d=%d&", i, i);
	assert_int_equal(pd_query_parse(qs, &q, NULL, NULL), 0);
	assert_int_equal(q.n, PD_QUERY_MAX_PARAMS);
	assert_string_equal(pd_query_get(&q, "p31"), "31");
	pd_query_release(&q);

	/* Empty pairs do not count; one more real pair does. */
	strcat(qs, "&&&");
	assert_int_equal(pd_query_parse(qs, &q, NULL, NULL), 0);
	pd_query_release(&q);
	strcat(qs, "one=more");
	assert_int_equal(pd_query_parse(qs, &q, NULL, NULL), -E2BIG);
	assert_int_equal(q.n, 0);
	assert_null(q.buf);
}

static void test_very_long(void **state)
{
	size_t n = 1 << 20;
	char *qs = malloc(n + 16);
	struct pd_query q;
	const char *v;

	assert_non_null(qs);
	memcpy(qs, "k=", 2);
	/* "%41" repeated: a megabyte of escapes decoding to 'A's. */
	for (size_t i = 0; i < n / 3; i++)
		memcpy(qs + 2 + 3 * i, "%41", 3);
	qs[2 + n / 3 * 3] = '\0';
	assert_int_equal(pd_query_parse(qs, &q, NULL, NULL), 0);
	v = pd_query_get(&q, "k");
	assert_non_null(v);
	assert_int_equal(strlen(v), n / 3);
	assert_int_equal(v[0], 'A');
	assert_int_equal(v[n / 3 - 1], 'A');
	pd_query_release(&q);

	/* Many short pairs, each without '=': the worst case for the
	 * decoded buffer's size. */
	for (size_t i = 0; i < 2 * (PD_QUERY_MAX_PARAMS - 1); i += 2)
		memcpy(qs + i, "x&", 2);
	qs[2 * (PD_QUERY_MAX_PARAMS - 1)] = 'y';
	qs[2 * (PD_QUERY_MAX_PARAMS - 1) + 1] = '\0';
	assert_int_equal(pd_query_parse(qs, &q, NULL, NULL), 0);
	assert_int_equal(q.n, PD_QUERY_MAX_PARAMS);
	assert_string_equal(pd_query_get(&q, "y"), "");
	pd_query_release(&q);
	free(qs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plus_and_percent),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_bad_escapes),
		cmocka_unit_test(test_empty_pairs_and_no_equals),
		cmocka_unit_test(test_duplicates_and_case),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_very_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
