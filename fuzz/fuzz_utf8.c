/* common/utf8.h: escaping of untrusted bytes for JSON.
 * Invariants: the output is valid UTF-8 without NUL; valid input passes
 * unchanged; every escaped byte costs exactly 3 extra bytes; without a
 * backslash in the input, decoding every "\xNN" gives the input back; a
 * prefix already in the buffer is kept; utf8_valid() agrees with an
 * independent decoder (RFC 3629: shortest form, no surrogates, <= U+10FFFF). */
#include "config.h"

#include <stdbool.h>

#include "common/utf8.h"
#include "fuzz/fuzz.h"

/* Decodes one scalar value the long way and checks it afterwards. */
static size_t ref_seqlen(const unsigned char *s, size_t len)
{
	uint32_t cp;
	size_t n;

	if (len == 0 || s[0] == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0) {
		n = 2;
		cp = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		n = 3;
		cp = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
		return 0; /* overlong */
	if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return n;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prefix[] = "prefix\\x";
	const unsigned char *p = data;
	struct strbuf sb = STRBUF_INIT;
	size_t i, escaped = 0, outlen;
	bool ref_valid = true, backslash = memchr(data, '\\', size) != NULL;
	char *in = fuzz_exact(data, size);

	/* The reference walk: how many bytes the escaper must escape. */
	for (i = 0; i < size;) {
		size_t n = ref_seqlen(p + i, size - i);

		FUZZ_CHECK(utf8_seqlen(p + i, size - i) == n);
		if (n == 0) {
			ref_valid = false;
			escaped++;
			i++;
		} else {
			i += n;
		}
	}
	FUZZ_CHECK(utf8_valid(in, size) == ref_valid);

	FUZZ_CHECK(strbuf_addstr(&sb, prefix) == 0);
	FUZZ_CHECK(utf8_escape(&sb, in, size) == 0);
	FUZZ_CHECK(sb.buf[sb.len] == '\0');
	FUZZ_CHECK(memcmp(sb.buf, prefix, sizeof(prefix) - 1) == 0);
	outlen = sb.len - (sizeof(prefix) - 1);
	FUZZ_CHECK(outlen == size + 3 * escaped);
	FUZZ_CHECK(utf8_valid(sb.buf, sb.len));
	if (ref_valid)
		FUZZ_CHECK(outlen == size && memcmp(sb.buf + sizeof(prefix) - 1, in, size) == 0);

	/* Round trip: with no backslash in the input every one in the output
	 * starts an escape. */
	if (!backslash) {
		const char *o = sb.buf + sizeof(prefix) - 1;
		size_t j = 0;

		for (i = 0; i < outlen; j++) {
			FUZZ_CHECK(j < size);
			if (o[i] == '\\') {
				int hi, lo;

				FUZZ_CHECK(i + 4 <= outlen && o[i + 1] == 'x');
				hi = hexval(o[i + 2]);
				lo = hexval(o[i + 3]);
				FUZZ_CHECK(hi >= 0 && lo >= 0);
				FUZZ_CHECK(p[j] == (unsigned char)(hi << 4 | lo));
				i += 4;
			} else {
				FUZZ_CHECK((unsigned char)o[i] == p[j]);
				i++;
			}
		}
		FUZZ_CHECK(j == size);
	}
	strbuf_release(&sb);
	free(in);
	return 0;
}
