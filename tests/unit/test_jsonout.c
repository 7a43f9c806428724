#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"

static void test_timespan(void **state)
{
	char buf[48];

	pd_format_timespan(0, buf, sizeof(buf));
	assert_string_equal(buf, "00:00:00.0000000");
	pd_format_timespan(1234567800LL, buf, sizeof(buf));
	assert_string_equal(buf, "00:00:01.2345678");
	pd_format_timespan((3600LL + 2 * 60 + 3) * 1000000000LL + 400, buf, sizeof(buf));
	assert_string_equal(buf, "01:02:03.0000004");
	/* a day and more: "d.hh:mm:ss.fffffff" as .NET's TimeSpan prints */
	pd_format_timespan((2 * 86400LL + 5 * 3600) * 1000000000LL, buf, sizeof(buf));
	assert_string_equal(buf, "2.05:00:00.0000000");
}

static void test_iso8601(void **state)
{
	char buf[48];

	pd_format_iso8601(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.0000000Z");
	pd_format_iso8601(1795513007120000000LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-24T09:36:47.1200000Z");
}

static void test_bytes_escape_and_validate(void **state)
{
	json_t *j = pd_json_bytes("a) b\xff(c", 7);
	char *dump;

	assert_non_null(j);
	assert_string_equal(json_string_value(j), "a) b\\xFF(c");
	dump = json_dumps(j, JSON_ENCODE_ANY);
	assert_string_equal(dump, "\"a) b\\\\xFF(c\"");
	free(dump);
	json_decref(j);

	j = pd_json_bytes("caf\xc3\xa9", 5);
	assert_string_equal(json_string_value(j), "caf\xc3\xa9");
	json_decref(j);

	j = pd_json_cstr(NULL);
	assert_true(json_is_null(j));
	json_decref(j);
	/* Kudu's fallback for a size that could not be read. */
	j = pd_json_size(-5);
	assert_int_equal(json_integer_value(j), -1);
	json_decref(j);
	j = pd_json_size(4096);
	assert_int_equal(json_integer_value(j), 4096);
	json_decref(j);
}

static void test_environ_filter(void **state)
{
	char raw[] = "PATH=/bin\0path_extra=x\0HOME=/root\0PATH=/dup\0NOVALUE\0=empty\0";
	char *v[] = { raw, raw + 10, raw + 23, raw + 34, raw + 44, raw + 52 };
	size_t len[] = { 9, 12, 10, 9, 7, 6 };
	struct pd_strv sv = { 6, v, len, NULL };
	json_t *o = pd_environ_json(&sv, NULL);

	assert_int_equal(json_object_size(o), 4);
	assert_string_equal(json_string_value(json_object_get(o, "PATH")), "/bin");
	assert_string_equal(json_string_value(json_object_get(o, "NOVALUE")), "");
	json_decref(o);

	o = pd_environ_json(&sv, "pAtH");
	assert_int_equal(json_object_size(o), 2);
	assert_non_null(json_object_get(o, "path_extra"));
	assert_null(json_object_get(o, "HOME"));
	json_decref(o);
}

static void test_state_names(void **state)
{
	assert_string_equal(pd_state_name('R'), "Running");
	assert_string_equal(pd_state_name('Z'), "Zombie");
	assert_string_equal(pd_state_name('?'), "Unknown");
}

/* The live table writes its JSON without jansson (handlers/top.c): strings
 * and reals come out byte for byte as jansson's dump of the tree would. */
static void test_direct_writers_match_jansson(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} strs[] = {
		{"", 0},
		{"plain", 5},
		{"q\"uote \\ back/slash", 19},
		{"\b\f\n\r\t\x01\x1f\x7f end", 13},
		{"nul\0in", 6},
		{"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80", 15},
		{"bad \xff\xc3( \"x\"", 11},
		{"<img src=x onerror=alert(1)>", 28},
	};
	static const double reals[] = {0, 1, 12, 12.3, 99.9, 100, 0.1, 399.5, 123456.7, 1234567, 3.25e-5};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		struct strbuf sb = STRBUF_INIT;
		json_t *j = pd_json_bytes(strs[i].s, strs[i].len);
		char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);

		assert_int_equal(pd_json_add_bytes(&sb, strs[i].s, strs[i].len), 0);
		assert_string_equal(sb.buf, want);
		free(want);
		json_decref(j);
		strbuf_release(&sb);
	}
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		struct strbuf sb = STRBUF_INIT;
		json_t *j = json_real(reals[i]);
		char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6));

		assert_int_equal(pd_json_add_real(&sb, reals[i]), 0);
		assert_string_equal(sb.buf, want);
		free(want);
		json_decref(j);
		strbuf_release(&sb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timespan),
		cmocka_unit_test(test_iso8601),
		cmocka_unit_test(test_bytes_escape_and_validate),
		cmocka_unit_test(test_direct_writers_match_jansson),
		cmocka_unit_test(test_environ_filter),
		cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
