/* Query-string parsing: one allocation holds every decoded name and value,
 * so a request frees its whole query with one pd_query_release(). */
#include "config.h"

#include "common/numparse.h"
#include "fcgi/query.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

long pd_percent_decode(const char *src, size_t len, char *dst, int plus_space)
{
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char c = (unsigned char)src[i];

		if (c == '%') {
			int hi, lo;

			/* "%4" at the end and "%zz" are both malformed: never
			 * guess what the client meant. */
			if (len - i < 3)
				return -EINVAL;
			hi = hex_digit((unsigned char)src[i + 1]);
			lo = hex_digit((unsigned char)src[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			dst[o++] = (char)(hi << 4 | lo);
			i += 3;
		} else {
			dst[o++] = (plus_space && c == '+') ? ' ' : (char)c;
			i++;
		}
	}
	dst[o] = '\0';
	return (long)o;
}

void pd_query_release(struct pd_query *q)
{
	free(q->buf);
	memset(q, 0, sizeof(*q));
}

/* ASCII-only, so the answer never depends on the process locale. */
static bool name_eq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
		if (!x)
			return true;
	}
}

const char *pd_query_get(const struct pd_query *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (name_eq(q->p[i].name, name))
			return q->p[i].value;
	return NULL;
}

/* Decodes one raw pair [s, s+len) into *out, appending to the buffer. */
static int parse_pair(struct pd_query *q, const char *s, size_t len, char **out)
{
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;
	size_t vlen = eq ? len - nlen - 1 : 0;
	char *name = *out, *value;
	long n, v;

	n = pd_percent_decode(s, nlen, name, 1);
	if (n < 0)
		return -EINVAL;
	/* A NUL inside a name can only be an attempt to make two names look
	 * alike; no client needs it. */
	if (strlen(name) != (size_t)n)
		return -EINVAL;
	value = name + n + 1;
	v = pd_percent_decode(eq ? eq + 1 : "", vlen, value, 1);
	if (v < 0)
		return -EINVAL;
	*out = value + v + 1;
	/* "=x" has no name to look it up by: valid, but not stored. */
	if (n == 0)
		return 0;
	if (q->n == PD_QUERY_MAX_PARAMS)
		return -E2BIG;
	q->p[q->n].name = name;
	q->p[q->n].value = value;
	q->p[q->n].value_len = (size_t)v;
	q->n++;
	return 0;
}

int pd_query_parse(const char *qs, struct pd_query *q, const char **bad, size_t *bad_len)
{
	size_t len = qs ? strlen(qs) : 0;
	const char *s = qs, *end = qs + len;
	char *out;

	memset(q, 0, sizeof(*q));
	if (bad)
		*bad = NULL;
	if (bad_len)
		*bad_len = 0;
	/* Decoding never grows a pair; each stored pair adds at most two NULs
	 * (name and value), and unstored ones end the walk or add one. */
	q->buf = malloc(len + 2 * (PD_QUERY_MAX_PARAMS + 1) + 1);
	if (!q->buf)
		return -ENOMEM;
	out = q->buf;
	while (s && s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		size_t plen = amp ? (size_t)(amp - s) : (size_t)(end - s);
		int rc = 0;

		if (plen > 0)
			rc = parse_pair(q, s, plen, &out);
		if (rc < 0) {
			if (rc == -EINVAL) {
				const char *eq = memchr(s, '=', plen);

				if (bad)
					*bad = s;
				if (bad_len)
					*bad_len = eq ? (size_t)(eq - s) : plen;
			}
			pd_query_release(q);
			return rc;
		}
		s += plen + 1;
	}
	return 0;
}
