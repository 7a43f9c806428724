#include "config.h"

#include "common/utf8.h"

#include <errno.h>

static bool cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* The table of RFC 3629 section 4: the second byte's range depends on the
 * first, which is what rules out overlong forms, surrogates and code points
 * above U+10FFFF without decoding. */
size_t utf8_seqlen(const unsigned char *s, size_t len)
{
	unsigned char c, lo = 0x80, hi = 0xBF;
	size_t n;

	if (len == 0)
		return 0;
	c = s[0];
	if (c == 0)
		return 0; /* valid UTF-8, but never what a name should carry */
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0; /* stray continuation byte, or overlong C0/C1 lead */
	if (c < 0xE0) {
		n = 2;
	} else if (c < 0xF0) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c < 0xF5) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (!cont(s[i]))
			return 0;
	return n;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seqlen(p + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

int utf8_escape(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t orig = sb->len, run = 0, i = 0;

	if (len == 0)
		return 0;
	/* Most input is valid: reserve for that, and copy valid runs whole. */
	if (strbuf_grow(sb, len) < 0)
		return -ENOMEM;
	while (i < len) {
		size_t n = utf8_seqlen(p + i, len - i);
		char esc[4];

		if (n) {
			i += n;
			continue;
		}
		esc[0] = '\\';
		esc[1] = 'x';
		esc[2] = hex[p[i] >> 4];
		esc[3] = hex[p[i] & 0xF];
		if (strbuf_add(sb, s + run, i - run) < 0 || strbuf_add(sb, esc, sizeof(esc)) < 0)
			goto nomem;
		run = ++i;
	}
	if (strbuf_add(sb, s + run, len - run) < 0)
		goto nomem;
	return 0;
nomem:
	/* All or nothing: a half-escaped name must not reach the output. */
	strbuf_setlen(sb, orig);
	return -ENOMEM;
}
