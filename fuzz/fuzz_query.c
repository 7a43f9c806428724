/* fcgi/query.h: the query string of every request.
 * Invariants: the result is 0, -EINVAL (with *bad inside the input), -E2BIG
 * or -ENOMEM; on success the stored pairs are exactly those of an
 * independent split-and-decode (in order, names non-empty and NUL-free,
 * value_len counting a decoded %00), every name looks up (case-insensitively)
 * to the value of its first occurrence, and release empties the struct. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fcgi/query.h"
#include "fuzz/fuzz.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)fuzz_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Reference decoder: -1 on a bad escape, else the decoded length. */
static long ref_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return -1;
			if (hexval((unsigned char)s[i + 1]) < 0 || hexval((unsigned char)s[i + 2]) < 0)
				return -1;
			out[o++] = (char)(hexval((unsigned char)s[i + 1]) << 4 |
					  hexval((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	return (long)o;
}

static bool ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (fuzz_lower((unsigned char)*a) != fuzz_lower((unsigned char)*b))
			return false;
	return *a == *b;
}

/* Walks the pairs as the parser should and compares each stored one.
 * Returns the expected result code. */
static int reference(const char *qs, const struct pd_query *q, bool check)
{
	const char *s = qs, *end = qs + strlen(qs);
	size_t stored = 0;
	char *name = malloc(end - s + 1), *value = malloc(end - s + 1);

	FUZZ_CHECK(name && value);
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		size_t plen = amp ? (size_t)(amp - s) : (size_t)(end - s);
		const char *eq = memchr(s, '=', plen);
		size_t nlen = eq ? (size_t)(eq - s) : plen;
		long n, v;

		if (plen == 0)
			goto next;
		n = ref_decode(s, nlen, name);
		v = eq ? ref_decode(eq + 1, plen - nlen - 1, value) : 0;
		if (n < 0 || v < 0 || memchr(name, '\0', (size_t)n)) {
			free(name);
			free(value);
			return -EINVAL;
		}
		if (n == 0)
			goto next;
		if (stored == PD_QUERY_MAX_PARAMS) {
			free(name);
			free(value);
			return -E2BIG;
		}
		if (check) {
			FUZZ_CHECK(strlen(q->p[stored].name) == (size_t)n);
			FUZZ_CHECK(memcmp(q->p[stored].name, name, (size_t)n) == 0);
			FUZZ_CHECK(q->p[stored].value_len == (size_t)v);
			FUZZ_CHECK(memcmp(q->p[stored].value, value, (size_t)v) == 0);
			FUZZ_CHECK(q->p[stored].value[v] == '\0');
		}
		stored++;
	next:
		s += plen + 1;
	}
	if (check)
		FUZZ_CHECK(q->n == stored);
	free(name);
	free(value);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *qs = fuzz_cstr(data, size);
	size_t len = strlen(qs);
	struct pd_query q = PD_QUERY_INIT;
	const char *bad = NULL;
	size_t bad_len = 0;
	int rc = pd_query_parse(qs, &q, &bad, &bad_len);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
	if (rc != -ENOMEM)
		FUZZ_CHECK(rc == reference(qs, &q, rc == 0));
	if (rc == -EINVAL) {
		/* The offending pair's raw name, inside the input. */
		FUZZ_CHECK(bad != NULL && bad >= qs && bad + bad_len <= qs + len);
		FUZZ_CHECK(!memchr(bad, '&', bad_len));
	}
	if (rc < 0) {
		FUZZ_CHECK(q.n == 0 && q.buf == NULL);
		free(qs);
		return 0;
	}
	FUZZ_CHECK(q.n <= PD_QUERY_MAX_PARAMS);
	for (size_t i = 0; i < q.n; i++) {
		const char *name = q.p[i].name;
		char *upper = strdup(name);
		const char *first = NULL;

		FUZZ_CHECK(upper != NULL);
		FUZZ_CHECK(*name != '\0');
		FUZZ_CHECK(strlen(q.p[i].value) <= q.p[i].value_len);
		for (size_t j = 0; j <= i && !first; j++)
			if (ieq(q.p[j].name, name))
				first = q.p[j].value;
		FUZZ_CHECK(pd_query_get(&q, name) == first);
		for (char *c = upper; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		FUZZ_CHECK(pd_query_get(&q, upper) == first);
		free(upper);
	}
	/* Lookups of names that are not there, and of the whole input. */
	pd_query_get(&q, qs);
	FUZZ_CHECK(pd_query_get(&q, "") == NULL);

	/* The decoder alone, into a buffer of exactly len + 1 bytes. */
	{
		char *dst = malloc(len + 1);
		long n;

		FUZZ_CHECK(dst != NULL);
		n = pd_percent_decode(qs, len, dst, size > 0 && (data[0] & 1));
		FUZZ_CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= len && dst[n] == '\0'));
		free(dst);
	}
	pd_query_release(&q);
	FUZZ_CHECK(q.n == 0 && q.buf == NULL);
	free(qs);
	return 0;
}
