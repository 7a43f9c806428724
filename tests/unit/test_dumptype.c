/* lib/dumptype: MINIDUMP_TYPE bits and names to the content mask. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/dumptype.h"

static struct pd_dumptype ok(const char *s)
{
	struct pd_dumptype t;
	uint32_t bad = 0xdead;

	memset(&t, 0xa5, sizeof(t));
	assert_int_equal(pd_dumptype_parse(s, &t, &bad), 0);
	assert_true(bad == 0xdead); /* only set on -ERANGE */
	return t;
}

static void test_kudu_numbers(void **state)
{
	struct pd_dumptype t;

	(void)state;
	t = ok(NULL);
	assert_int_equal(t.bits, 0);
	assert_int_equal(t.content, 0);
	assert_int_equal(t.ignored, 0);
	assert_null(t.name);
	t = ok("");
	assert_int_equal(t.content, 0);
	t = ok("0");
	assert_int_equal(t.content, 0);
	assert_int_equal(t.ignored, 0);
	t = ok("1");
	assert_int_equal(t.content, PD_DC_FILE_DATA);
	assert_int_equal(t.ignored, 0);
	t = ok("2");
	assert_int_equal(t.content, PD_DC_FULL);
	t = ok("512");
	assert_int_equal(t.content, PD_DC_ANON);
	t = ok("0x200");
	assert_int_equal(t.bits, 0x200);
	assert_int_equal(t.content, PD_DC_ANON);
	t = ok("0X201");
	assert_int_equal(t.content, PD_DC_ANON | PD_DC_FILE_DATA);
	/* Copy-on-write memory is file data. */
	t = ok("0x10000");
	assert_int_equal(t.content, PD_DC_FILE_DATA);
}

static void test_ignored_and_base_bits(void **state)
{
	struct pd_dumptype t;

	(void)state;
	/* WithHandleData (ignored) | WithThreadInfo (always there). */
	t = ok("0x1004");
	assert_int_equal(t.content, 0);
	assert_int_equal(t.ignored, 0x4);
	/* Kudu's "full" as some clients send it: FullMemory | HandleData |
	 * FullMemoryInfo | ThreadInfo | TokenInformation. */
	t = ok("0x41806");
	assert_int_equal(t.content, PD_DC_FULL);
	assert_int_equal(t.ignored, 0x40004);
	/* Every valid bit: content is all of it, ignored is exactly the
	 * table's ignored bits. */
	t = ok("0x1ffffff");
	assert_int_equal(t.content, PD_DC_FILE_DATA | PD_DC_ANON | PD_DC_FULL);
	{
		size_t n;
		const struct pd_dumpbit *b = pd_dumpbits(&n);
		uint32_t all = 0, ign = 0;

		assert_int_equal(n, 25);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(b[i].bit & (b[i].bit - 1), 0); /* one bit each */
			assert_true(b[i].bit > all);			/* in order */
			all |= b[i].bit;
			if (b[i].kind == PD_DUMPBIT_IGNORED)
				ign |= b[i].bit;
			assert_true((b[i].kind == PD_DUMPBIT_CONTENT) == (b[i].content != 0));
		}
		assert_int_equal(all, PD_MINIDUMP_VALID);
		assert_int_equal(t.ignored, ign);
	}
}

static void test_names(void **state)
{
	struct pd_dumptype t;

	(void)state;
	t = ok("Mini");
	assert_int_equal(t.content, 0);
	assert_string_equal(t.name, "Mini");
	t = ok("normal");
	assert_int_equal(t.content, 0);
	t = ok("TRIAGE");
	assert_int_equal(t.content, 0);
	assert_int_equal(t.ignored, 0x100000); /* no redaction is done */
	t = ok("Heap");
	assert_int_equal(t.content, PD_DC_ANON | PD_DC_FILE_DATA);
	assert_int_equal(t.ignored, 0);
	t = ok("withheap");
	assert_int_equal(t.content, PD_DC_ANON | PD_DC_FILE_DATA);
	assert_string_equal(t.name, "WithHeap");
	t = ok("Full");
	assert_int_equal(t.content, PD_DC_FULL);
	assert_int_equal(t.bits, 2);
}

static void bad(const char *s, int err, uint32_t want_bad)
{
	struct pd_dumptype t = {.bits = 77};
	uint32_t b = 0;

	assert_int_equal(pd_dumptype_parse(s, &t, &b), err);
	assert_int_equal(t.bits, 77); /* untouched */
	if (err == -ERANGE)
		assert_int_equal(b, want_bad);
}

static void test_errors(void **state)
{
	(void)state;
	bad("abc", -EINVAL, 0);
	bad("-1", -EINVAL, 0);
	bad(" 1", -EINVAL, 0);
	bad("1 ", -EINVAL, 0);
	bad("0x", -EINVAL, 0);
	bad("0xg", -EINVAL, 0);
	bad("Minis", -EINVAL, 0);
	bad("1.0", -EINVAL, 0);
	bad("0x80000000", -ERANGE, 0x80000000);
	bad("2147483648", -ERANGE, 0x80000000);
	bad("0x2000000", -ERANGE, 0x2000000);
	bad("0x3000002", -ERANGE, 0x2000000);
	bad("4294967296", -ERANGE, 0xfe000000);
	bad("99999999999999999999999", -ERANGE, 0xfe000000);
	bad("0x11111111111111111", -ERANGE, 0xfe000000);
}

static void test_bit_names(void **state)
{
	char buf[200];

	(void)state;
	pd_dumpbits_names(0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	pd_dumpbits_names(0x40004, buf, sizeof(buf));
	assert_string_equal(buf, "MiniDumpWithHandleData,MiniDumpWithTokenInformation");
	/* Truncation keeps whole names and a terminated string. */
	pd_dumpbits_names(0x40004, buf, 30);
	assert_string_equal(buf, "MiniDumpWithHandleData");
	pd_dumpbits_names(0x40004, buf, 5);
	assert_string_equal(buf, "");
}

/* dotnet-monitor's DumpType: its own numbers, not MINIDUMP_TYPE's. */
static void test_monitor_types(void **state)
{
	static const struct {
		const char *in, *name;
		uint32_t bits;
	} cases[] = {
		{NULL, "WithHeap", 0x201},
		{"", "WithHeap", 0x201},
		{"1", "Full", 0x2},
		{"2", "Mini", 0},
		{"3", "WithHeap", 0x201},
		{"4", "Triage", 0x100000},
		{"full", "Full", 0x2},
		{"MINI", "Mini", 0},
		{"withHeap", "WithHeap", 0x201},
		{"Triage", "Triage", 0x100000},
	};
	static const char *const refused[] = {
		"0",  "5",  "0x2", "Heap",	"Normal",
		"-1", " 1", "1.0", "Full,Mini", "18446744073709551617"};
	struct pd_dumptype t;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&t, 0xa5, sizeof(t));
		assert_int_equal(pd_dumptype_parse_monitor(cases[i].in, &t), 0);
		assert_string_equal(t.name, cases[i].name);
		assert_int_equal(t.bits, cases[i].bits);
	}
	/* Mini is a mini dump here (type=2), Full all memory (type=1). */
	assert_int_equal(pd_dumptype_parse_monitor("2", &t), 0);
	assert_int_equal(t.content, 0);
	assert_int_equal(pd_dumptype_parse_monitor("1", &t), 0);
	assert_int_equal(t.content, PD_DC_FULL);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_int_equal(pd_dumptype_parse_monitor(refused[i], &t), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kudu_numbers), cmocka_unit_test(test_ignored_and_base_bits),
		cmocka_unit_test(test_names),	     cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bit_names),    cmocka_unit_test(test_monitor_types),
	};

	return cmocka_run_group_tests_name("dumptype", tests, NULL, NULL);
}
