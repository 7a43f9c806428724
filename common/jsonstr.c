/* JSON strings from untrusted bytes: see common/jsonstr.h. */
#include "config.h"

#include "common/jsonstr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/utf8.h"

json_t *pd_json_bytes(const char *s, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *j;

	if (utf8_valid(s, len))
		return json_stringn(s, len);
	if (utf8_escape(&sb, s, len) < 0)
		return NULL;
	j = json_stringn(sb.buf ? sb.buf : "", sb.len);
	strbuf_release(&sb);
	return j;
}

json_t *pd_json_cstr(const char *s)
{
	return s ? pd_json_bytes(s, strlen(s)) : json_null();
}

/* Valid UTF-8 in, quoted and escaped as jansson escapes (", \\, and the
 * control characters; nothing else). */
static int add_quoted(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t run = 0;

	if (strbuf_grow(sb, len + 2) < 0 || strbuf_add(sb, "\"", 1) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t n = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (strbuf_add(sb, s + run, i - run) < 0)
			return -ENOMEM;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		}
		if (strbuf_add(sb, esc, n) < 0)
			return -ENOMEM;
	}
	if (strbuf_add(sb, s + run, len - run) < 0 || strbuf_add(sb, "\"", 1) < 0)
		return -ENOMEM;
	return 0;
}

int pd_json_add_bytes(struct strbuf *sb, const char *s, size_t len)
{
	struct strbuf esc = STRBUF_INIT;
	int rc;

	if (utf8_valid(s, len))
		return add_quoted(sb, s, len);
	if (utf8_escape(&esc, s, len) < 0)
		return -ENOMEM;
	rc = add_quoted(sb, esc.buf ? esc.buf : "", esc.len);
	strbuf_release(&esc);
	return rc;
}

int pd_json_add_real(struct strbuf *sb, double v)
{
	char buf[40];
	int n = snprintf(buf, sizeof(buf) - 2, "%.6g", v);

	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return -ENOMEM;
	char *e = strchr(buf, 'e');

	if (!strpbrk(buf, ".eE")) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	if (e) {
		/* as jansson: no '+' and no leading zeros in the exponent */
		char *from = e + 1, *to = e + 1;

		if (*to == '-')
			to++, from++;
		else if (*from == '+')
			from++;
		while (*from == '0' && from[1])
			from++;
		memmove(to, from, strlen(from) + 1);
		n = (int)strlen(buf);
	}
	return strbuf_add(sb, buf, (size_t)n);
}
