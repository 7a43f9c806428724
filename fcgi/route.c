/* Route matching: paths and patterns are walked segment by segment in place,
 * nothing is allocated, so a lookup cannot fail for want of memory. */
#include "config.h"

#include "fcgi/route.h"

#include <stdbool.h>
#include <string.h>

/* A '/'-separated string with its trailing slashes ignored. */
struct segs {
	const char *s;
	size_t len, pos;
};

static void segs_init(struct segs *it, const char *s)
{
	it->s = s ? s : "";
	it->len = strlen(it->s);
	while (it->len > 0 && it->s[it->len - 1] == '/')
		it->len--;
	/* The leading '/' starts the first segment rather than being one. */
	it->pos = it->len > 0 && it->s[0] == '/' ? 1 : 0;
}

static bool segs_next(struct segs *it, const char **seg, size_t *len)
{
	const char *slash;

	if (it->pos > it->len || it->len == 0)
		return false;
	*seg = it->s + it->pos;
	slash = memchr(*seg, '/', it->len - it->pos);
	*len = slash ? (size_t)(slash - *seg) : it->len - it->pos;
	it->pos += *len + 1;
	return true;
}

/* base + pattern, walked as one sequence of segments. */
struct route_segs {
	struct segs part[2];
	int i;
};

static bool route_next(struct route_segs *rs, const char **seg, size_t *len)
{
	while (rs->i < 2) {
		if (segs_next(&rs->part[rs->i], seg, len))
			return true;
		rs->i++;
	}
	return false;
}

static bool path_matches(const struct pd_route *rt, const char *path, struct pd_route_match *m)
{
	struct route_segs rs = {.i = 0};
	struct segs ps;
	const char *want = NULL, *got = NULL;
	size_t wlen = 0, glen = 0;

	segs_init(&rs.part[0], rt->base);
	segs_init(&rs.part[1], rt->pattern);
	segs_init(&ps, path);
	m->nparams = 0;
	for (;;) {
		bool more_route = route_next(&rs, &want, &wlen);
		bool more_path = segs_next(&ps, &got, &glen);

		if (!more_route || !more_path)
			return more_route == more_path;
		/* Captures only come from the pattern: base is a literal. */
		if (rs.i == 1 && wlen >= 2 && want[0] == '{' && want[wlen - 1] == '}') {
			/* An empty or over-long segment is no id of anything;
			 * truncating it could make it match something else. */
			if (glen == 0 || glen >= PD_ROUTE_MAX_VALUE ||
			    m->nparams == PD_ROUTE_MAX_PARAMS)
				return false;
			m->params[m->nparams].name = want + 1;
			m->params[m->nparams].name_len = wlen - 2;
			memcpy(m->params[m->nparams].value, got, glen);
			m->params[m->nparams].value[glen] = '\0';
			m->nparams++;
		} else if (wlen != glen || memcmp(want, got, glen) != 0) {
			return false;
		}
	}
}

static bool method_matches(const char *route_method, const char *method)
{
	if (strcmp(route_method, method) == 0)
		return true;
	return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Appends one method to the Allow list unless it is there already; a name
 * that does not fit is left out whole rather than cut. */
static void allow_add(char *allow, size_t allowlen, const char *method)
{
	size_t used = strlen(allow), mlen = strlen(method);
	const char *p = allow;

	while ((p = strstr(p, method)) != NULL) {
		bool start = p == allow || p[-1] == ' ';
		bool end = p[mlen] == ',' || p[mlen] == '\0';

		if (start && end)
			return;
		p += mlen;
	}
	if (used + (used ? 2 : 0) + mlen + 1 > allowlen)
		return;
	if (used) {
		memcpy(allow + used, ", ", 2);
		used += 2;
	}
	memcpy(allow + used, method, mlen + 1);
}

int pd_route_find(const struct pd_route *table, size_t n, const char *method, const char *path,
		  struct pd_route_match *m, char *allow, size_t allowlen)
{
	struct pd_route_match scratch;
	bool path_known = false;

	memset(m, 0, sizeof(*m));
	if (allow && allowlen)
		allow[0] = '\0';
	if (!path || path[0] != '/' || !method)
		return PD_ROUTE_NOT_FOUND;
	for (size_t i = 0; i < n; i++) {
		if (!path_matches(&table[i], path, &scratch))
			continue;
		if (method_matches(table[i].method, method)) {
			*m = scratch;
			m->route = &table[i];
			return PD_ROUTE_FOUND;
		}
		path_known = true;
		if (allow && allowlen) {
			allow_add(allow, allowlen, table[i].method);
			if (strcmp(table[i].method, "GET") == 0)
				allow_add(allow, allowlen, "HEAD");
		}
	}
	return path_known ? PD_ROUTE_BAD_METHOD : PD_ROUTE_NOT_FOUND;
}

const char *pd_route_param(const struct pd_route_match *m, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < m->nparams; i++)
		if (m->params[i].name_len == len && memcmp(m->params[i].name, name, len) == 0)
			return m->params[i].value;
	return NULL;
}
