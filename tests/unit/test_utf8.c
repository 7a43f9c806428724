#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/utf8.h"

#define U(lit) (const unsigned char *)(lit), sizeof(lit) - 1
#define V(lit) (lit), sizeof(lit) - 1

/* Encodes cp in n bytes the naive way, overlong forms included. */
static size_t encode(uint32_t cp, size_t n, unsigned char *out)
{
	static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};

	if (n == 1) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	for (size_t i = n - 1; i > 0; i--) {
		out[i] = (unsigned char)(0x80 | (cp & 0x3F));
		cp >>= 6;
	}
	out[0] = (unsigned char)(lead[n] | cp);
	return n;
}

static size_t shortest(uint32_t cp)
{
	return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void test_seqlen_valid(void **state)
{
	(void)state;
	assert_int_equal(utf8_seqlen(U("A")), 1);
	assert_int_equal(utf8_seqlen(U("\\")), 1);
	assert_int_equal(utf8_seqlen(U("\x7f")), 1);
	assert_int_equal(utf8_seqlen(U("\xc2\x80")), 2);	 /* U+0080 */
	assert_int_equal(utf8_seqlen(U("\xc3\xa9")), 2);	 /* é */
	assert_int_equal(utf8_seqlen(U("\xdf\xbf")), 2);	 /* U+07FF */
	assert_int_equal(utf8_seqlen(U("\xe0\xa0\x80")), 3);	 /* U+0800 */
	assert_int_equal(utf8_seqlen(U("\xe2\x82\xac")), 3);	 /* € */
	assert_int_equal(utf8_seqlen(U("\xed\x9f\xbf")), 3);	 /* U+D7FF */
	assert_int_equal(utf8_seqlen(U("\xee\x80\x80")), 3);	 /* U+E000 */
	assert_int_equal(utf8_seqlen(U("\xef\xbf\xbf")), 3);	 /* U+FFFF */
	assert_int_equal(utf8_seqlen(U("\xf0\x90\x80\x80")), 4); /* U+10000 */
	assert_int_equal(utf8_seqlen(U("\xf0\x9f\x98\x80")), 4); /* 😀 */
	assert_int_equal(utf8_seqlen(U("\xf4\x8f\xbf\xbf")), 4); /* U+10FFFF */
	/* Only the first sequence counts. */
	assert_int_equal(utf8_seqlen(U("\xc3\xa9\xff")), 2);
}

static void test_seqlen_invalid(void **state)
{
	(void)state;
	assert_int_equal(utf8_seqlen(U("")), 0);
	assert_int_equal(utf8_seqlen(U("\0")), 0);   /* NUL is escaped, not passed */
	assert_int_equal(utf8_seqlen(U("\x80")), 0); /* lone continuation */
	assert_int_equal(utf8_seqlen(U("\xbf")), 0);
	assert_int_equal(utf8_seqlen(U("\xc0\x80")), 0);	 /* overlong NUL */
	assert_int_equal(utf8_seqlen(U("\xc1\xbf")), 0);	 /* overlong U+007F */
	assert_int_equal(utf8_seqlen(U("\xe0\x80\x80")), 0);	 /* overlong */
	assert_int_equal(utf8_seqlen(U("\xe0\x9f\xbf")), 0);	 /* overlong U+07FF */
	assert_int_equal(utf8_seqlen(U("\xed\xa0\x80")), 0);	 /* U+D800 */
	assert_int_equal(utf8_seqlen(U("\xed\xbf\xbf")), 0);	 /* U+DFFF */
	assert_int_equal(utf8_seqlen(U("\xf0\x80\x80\x80")), 0); /* overlong */
	assert_int_equal(utf8_seqlen(U("\xf0\x8f\xbf\xbf")), 0); /* overlong U+FFFF */
	assert_int_equal(utf8_seqlen(U("\xf4\x90\x80\x80")), 0); /* U+110000 */
	assert_int_equal(utf8_seqlen(U("\xf5\x80\x80\x80")), 0);
	assert_int_equal(utf8_seqlen(U("\xf8\x88\x80\x80\x80")), 0); /* 5-byte form */
	assert_int_equal(utf8_seqlen(U("\xfe")), 0);
	assert_int_equal(utf8_seqlen(U("\xff")), 0);
	/* Truncated: the length bounds the look-ahead, whatever follows. */
	assert_int_equal(utf8_seqlen((const unsigned char *)"\xc3\xa9", 1), 0);
	assert_int_equal(utf8_seqlen((const unsigned char *)"\xe2\x82\xac", 2), 0);
	assert_int_equal(utf8_seqlen((const unsigned char *)"\xf0\x9f\x98\x80", 3), 0);
	/* Bad continuation bytes. */
	assert_int_equal(utf8_seqlen(U("\xc3\x41")), 0);
	assert_int_equal(utf8_seqlen(U("\xe2\x82\x41")), 0);
	assert_int_equal(utf8_seqlen(U("\xf0\x9f\x98\xc0")), 0);
}

/* Every code point in every encoding length: only the shortest encoding of
 * a non-surrogate scalar value is accepted. */
static void test_seqlen_exhaustive(void **state)
{
	unsigned char b[4];

	(void)state;
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;

		for (size_t n = shortest(cp); n <= 4; n++) {
			size_t want = (n == shortest(cp) && !surrogate && cp != 0) ? n : 0;

			encode(cp, n, b);
			if (utf8_seqlen(b, n) != want)
				fail_msg("U+%04X in %zu bytes: got %zu, want %zu", (unsigned)cp, n,
					 utf8_seqlen(b, n), want);
			/* Any truncation of it is never accepted. */
			for (size_t k = 1; n > 1 && k < n; k++)
				assert_int_equal(utf8_seqlen(b, k), 0);
		}
	}
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(utf8_valid(V("")));
	assert_true(utf8_valid(V("plain ascii \\ back")));
	assert_true(utf8_valid(V("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));
	assert_false(utf8_valid(V("a\0b")));
	assert_false(utf8_valid(V("a\xff")));
	assert_false(utf8_valid(V("\xed\xa0\x80")));
	/* A sequence cut by the length is invalid even if the bytes go on. */
	assert_false(utf8_valid("caf\xc3\xa9", 4));
}

static void check_escape(const char *in, size_t len, const char *want)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(utf8_escape(&sb, in, len), 0);
	assert_string_equal(sb.buf, want);
	assert_int_equal(sb.len, strlen(want));
	assert_true(utf8_valid(sb.buf, sb.len));
	strbuf_release(&sb);
}

#define ESC(lit, want) check_escape(lit, sizeof(lit) - 1, want)

static void test_escape(void **state)
{
	(void)state;
	ESC("", "");
	ESC("nginx: worker", "nginx: worker");
	ESC("caf\xc3\xa9 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xf0\x9f\x98\x80");
	ESC("a\\b", "a\\b"); /* a backslash passes unchanged */
	ESC("a\xff"
	    "b",
	    "a\\xFFb");
	ESC("\0", "\\x00");
	ESC("a\0b\0", "a\\x00b\\x00");
	ESC("\xc0\x80", "\\xC0\\x80");
	ESC("\xed\xa0\x80", "\\xED\\xA0\\x80");
	ESC("\xf4\x90\x80\x80", "\\xF4\\x90\\x80\\x80");
	/* Truncated sequence: its bytes are escaped, the next char survives. */
	ESC("\xe2\x82"
	    "A",
	    "\\xE2\\x82A");
	ESC("x\xf0\x9f\x98", "x\\xF0\\x9F\\x98");
	/* A valid sequence right after an invalid byte is kept. */
	ESC("\x80\xc3\xa9", "\\x80\xc3\xa9");
	ESC("\x0a\x09", "\n\t"); /* control chars are valid UTF-8: JSON escapes them */
}

static void test_escape_appends(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(strbuf_addstr(&sb, "name="), 0);
	assert_int_equal(utf8_escape(&sb,
				     "\xfe"
				     "ok",
				     3),
			 0);
	assert_string_equal(sb.buf, "name=\\xFEok");
	strbuf_release(&sb);
}

/* All one- and two-byte inputs: the output is always valid, valid input
 * comes out unchanged, and each invalid byte becomes exactly 4 bytes. */
static void test_escape_all_pairs(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	for (unsigned v = 0; v < 0x10000; v++) {
		char in[2] = {(char)(v >> 8), (char)v};

		for (size_t len = 1; len <= 2; len++) {
			bool valid = utf8_valid(in, len);

			strbuf_reset(&sb);
			assert_int_equal(utf8_escape(&sb, in, len), 0);
			assert_true(utf8_valid(sb.buf, sb.len));
			if (valid)
				assert_memory_equal(sb.buf, in, len);
			assert_true(sb.len == len || sb.len == len + 3 || sb.len == len * 4);
			assert_int_equal(sb.len == len, valid);
		}
	}
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seqlen_valid),
		cmocka_unit_test(test_seqlen_invalid),
		cmocka_unit_test(test_seqlen_exhaustive),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_appends),
		cmocka_unit_test(test_escape_all_pairs),
	};

	return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
