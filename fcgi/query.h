/* application/x-www-form-urlencoded query strings, parsed ourselves (never
 * trusted to be well-formed): '&'-separated name=value pairs, '+' is a
 * space, %XX decoded. Names compare case-insensitively, as ASP.NET (Kudu)
 * binds them. A malformed escape ("%4", "%zz") is an error the caller turns
 * into a 400 naming the parameter. */
#ifndef PD_QUERY_H
#define PD_QUERY_H

#include <stddef.h>

#define PD_QUERY_MAX_PARAMS 32

struct pd_query {
	size_t n;
	struct {
		char *name;  /* decoded, NUL-terminated, owned by buf */
		char *value; /* decoded; "" for "name" and "name=" */
		size_t value_len; /* a %00 makes strlen() shorter than this */
	} p[PD_QUERY_MAX_PARAMS];
	char *buf;
};
#define PD_QUERY_INIT { 0 }

/* 0, -EINVAL (bad escape: *bad points at the raw offending pair's name),
 * -E2BIG (more than PD_QUERY_MAX_PARAMS pairs), -ENOMEM. */
int pd_query_parse(const char *qs, struct pd_query *q, const char **bad, size_t *bad_len);
void pd_query_release(struct pd_query *q);
/* The first value of name, or NULL. */
const char *pd_query_get(const struct pd_query *q, const char *name);
/* Percent-decodes src[0..len) into dst (at least len+1 bytes); plus_space
 * turns '+' into ' '. Returns the decoded length or -EINVAL. */
long pd_percent_decode(const char *src, size_t len, char *dst, int plus_space);

#endif
