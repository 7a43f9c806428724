/* fcgi/route.h against the real table (handlers/routes.c).
 * Input: "METHOD PATH" (the method is everything before the first space).
 * Invariants: a match's route accepts the method (HEAD for GET) and
 * base + pattern with the captures put back is the path without its
 * trailing slashes; captures are non-empty, shorter than
 * PD_ROUTE_MAX_VALUE, hold no '/', and pd_route_param() finds each. On 405
 * every method in Allow matches the path and the asked one is not there;
 * on 404 no method matches. A short Allow buffer holds whole names only. */
#include "config.h"

#include <stdbool.h>

#include "fcgi/route.h"
#include "fuzz/fuzz.h"
#include "handlers/handlers.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS"};

/* base + pattern with each {name} replaced by its capture. */
static void rebuild(const struct pd_route_match *m, char *out, size_t outlen)
{
	const char *parts[2] = {m->route->base, m->route->pattern};
	size_t o = 0, cap = 0;

	for (int k = 0; k < 2; k++) {
		for (const char *s = parts[k]; *s;) {
			if (k == 1 && *s == '{') {
				const char *close = strchr(s, '}');
				const char *v;

				FUZZ_CHECK(close && cap < m->nparams);
				FUZZ_CHECK((size_t)(close - s - 1) == m->params[cap].name_len);
				v = m->params[cap++].value;
				FUZZ_CHECK(o + strlen(v) < outlen);
				memcpy(out + o, v, strlen(v));
				o += strlen(v);
				s = close + 1;
			} else {
				FUZZ_CHECK(o + 1 < outlen);
				out[o++] = *s++;
			}
		}
	}
	FUZZ_CHECK(cap == m->nparams);
	while (o > 0 && out[o - 1] == '/')
		o--;
	out[o] = '\0';
}

static bool listed(const char *allow, const char *method)
{
	size_t n = strlen(method);

	if (n == 0)
		return false;
	for (const char *p = allow; (p = strstr(p, method)) != NULL; p += n)
		if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_cstr(data, size);
	char *sp = strchr(in, ' ');
	const char *method = in, *path = sp ? sp + 1 : "";
	struct pd_route_match m, m2;
	char allow[64], small[16];
	size_t smalllen;
	int rc;

	if (sp)
		*sp = '\0';
	rc = pd_route_find(pd_routes, pd_nroutes, method, path, &m, allow, sizeof(allow));
	FUZZ_CHECK(rc == PD_ROUTE_FOUND || rc == PD_ROUTE_NOT_FOUND || rc == PD_ROUTE_BAD_METHOD);
	FUZZ_CHECK(strlen(allow) < sizeof(allow));

	if (rc == PD_ROUTE_FOUND) {
		size_t plen = strlen(path);
		char *want = malloc(plen + 1), *got = malloc(plen + 2 * PD_ROUTE_MAX_VALUE + 256);

		FUZZ_CHECK(want && got);
		FUZZ_CHECK(m.route >= pd_routes && m.route < pd_routes + pd_nroutes);
		FUZZ_CHECK(strcmp(m.route->method, method) == 0 ||
			   (strcmp(method, "HEAD") == 0 && strcmp(m.route->method, "GET") == 0));
		FUZZ_CHECK(m.nparams <= PD_ROUTE_MAX_PARAMS);
		for (size_t i = 0; i < m.nparams; i++) {
			char name[64];
			size_t vlen = strlen(m.params[i].value);

			FUZZ_CHECK(vlen > 0 && vlen < PD_ROUTE_MAX_VALUE);
			FUZZ_CHECK(!strchr(m.params[i].value, '/'));
			FUZZ_CHECK(m.params[i].name_len < sizeof(name));
			memcpy(name, m.params[i].name, m.params[i].name_len);
			name[m.params[i].name_len] = '\0';
			FUZZ_CHECK(pd_route_param(&m, name) != NULL);
		}
		memcpy(want, path, plen + 1);
		while (plen > 0 && want[plen - 1] == '/')
			want[--plen] = '\0';
		rebuild(&m, got, plen + 2 * PD_ROUTE_MAX_VALUE + 256);
		FUZZ_CHECK(strcmp(want, got) == 0);
		free(want);
		free(got);
	} else if (rc == PD_ROUTE_BAD_METHOD) {
		FUZZ_CHECK(allow[0] != '\0');
		FUZZ_CHECK(!listed(allow, method));
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
			int r = pd_route_find(pd_routes, pd_nroutes, methods[i], path, &m2, NULL, 0);

			FUZZ_CHECK((r == PD_ROUTE_FOUND) == listed(allow, methods[i]));
			FUZZ_CHECK(r != PD_ROUTE_NOT_FOUND);
		}
	} else {
		FUZZ_CHECK(allow[0] == '\0');
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
			FUZZ_CHECK(pd_route_find(pd_routes, pd_nroutes, methods[i], path, &m2, NULL,
						 0) == PD_ROUTE_NOT_FOUND);
	}

	/* The same lookup with an Allow buffer too short for the list. */
	smalllen = size % sizeof(small) + 1;
	FUZZ_CHECK(pd_route_find(pd_routes, pd_nroutes, method, path, &m2, small, smalllen) == rc);
	FUZZ_CHECK(strlen(small) < smalllen);
	if (rc == PD_ROUTE_BAD_METHOD) {
		/* Every name in the short list is a whole name of the long one. */
		char copy[sizeof(small)];

		memcpy(copy, small, strlen(small) + 1);
		for (char *tok = strtok(copy, ", "); tok; tok = strtok(NULL, ", "))
			FUZZ_CHECK(listed(allow, tok));
	}
	free(in);
	return 0;
}
