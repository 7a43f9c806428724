/* Route matching. fcgi/ knows nothing of what routes mean: it matches a
 * method and a path against whatever table it is given (handlers/routes.c).
 *
 * A route matches base + pattern. pattern segments are literals or "{name}"
 * captures of one non-empty path segment. base is any literal prefix
 * ("/api/processes"); handlers read it back to build links under the prefix
 * the client used. HEAD matches every GET route. Trailing slashes are
 * ignored ("/api/processes/" == "/api/processes"). */
#ifndef PD_ROUTE_H
#define PD_ROUTE_H

#include <stddef.h>

struct pd_req;
typedef int (*pd_handler)(struct pd_req *req);

enum pd_route_flags {
	PD_ROUTE_STREAM = 1 << 0, /* long-running download (dumps): no buffering */
	/* A GET with a side effect (it stops the process: dumps, stacks):
	 * refused from another site's page, as a DELETE is. */
	PD_ROUTE_ACTS = 1 << 1,
};

struct pd_route {
	const char *method;
	const char *base;
	const char *pattern;
	pd_handler handler;
	unsigned flags;
};

#define PD_ROUTE_MAX_PARAMS 4
#define PD_ROUTE_MAX_VALUE 256

struct pd_route_match {
	const struct pd_route *route;
	size_t nparams;
	struct {
		const char *name; /* points into the pattern */
		size_t name_len;
		char value[PD_ROUTE_MAX_VALUE];
	} params[PD_ROUTE_MAX_PARAMS];
};

enum pd_route_result {
	PD_ROUTE_FOUND = 0,
	PD_ROUTE_NOT_FOUND = -1,     /* no route has this path: 404 */
	PD_ROUTE_BAD_METHOD = -2,    /* the path exists with other methods: 405 */
};

/* Finds the first route matching method and path. On PD_ROUTE_BAD_METHOD,
 * allow receives the methods the path does accept, comma-separated, HEAD
 * included where GET is ("GET, HEAD, DELETE"), truncated to allowlen. */
int pd_route_find(const struct pd_route *table, size_t n, const char *method,
		  const char *path, struct pd_route_match *m, char *allow, size_t allowlen);
/* The capture named name, or NULL. */
const char *pd_route_param(const struct pd_route_match *m, const char *name);

#endif
