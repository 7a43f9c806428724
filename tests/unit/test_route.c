/* fcgi/route.c against a small table shaped like handlers/routes.c. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi/route.h"

/* Distinct handlers so a test can tell which route matched. */
static int h_index(struct pd_req *r)
{
	return 1;
}
static int h_list(struct pd_req *r)
{
	return 2;
}
static int h_detail(struct pd_req *r)
{
	return 3;
}
static int h_kill(struct pd_req *r)
{
	return 4;
}
static int h_thread(struct pd_req *r)
{
	return 5;
}
static int h_dump(struct pd_req *r)
{
	return 6;
}

static const struct pd_route table[] = {
	{"GET", "", "/", h_index, 0},
	{"GET", "/api/processes", "", h_list, 0},
	{"GET", "/api/processes", "/{id}", h_detail, 0},
	{"DELETE", "/api/processes", "/{id}", h_kill, 0},
	{"POST", "/api/processes", "/{id}/stop", h_kill, 0},
	{"GET", "/api/processes", "/{id}/threads/{tid}", h_thread, 0},
	{"GET", "/diagnostics/processes", "/{id}", h_detail, 0},
	{"GET", "/api/processes", "/{id}/dump", h_dump, PD_ROUTE_STREAM},
};
#define NT (sizeof(table) / sizeof(table[0]))

static int find(const char *method, const char *path, struct pd_route_match *m, char *allow,
		size_t allowlen)
{
	return pd_route_find(table, NT, method, path, m, allow, allowlen);
}

static void test_matches_and_captures(void **state)
{
	struct pd_route_match m;
	char allow[64];

	assert_int_equal(find("GET", "/api/processes", &m, allow, sizeof(allow)), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[1]);
	assert_int_equal(m.nparams, 0);

	assert_int_equal(find("GET", "/api/processes/42", &m, allow, sizeof(allow)),
			 PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_detail);
	assert_string_equal(m.route->base, "/api/processes");
	assert_string_equal(pd_route_param(&m, "id"), "42");
	assert_null(pd_route_param(&m, "tid"));
	assert_null(pd_route_param(&m, "i"));

	assert_int_equal(find("GET", "/api/processes/7/threads/99", &m, allow, sizeof(allow)),
			 PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_thread);
	assert_int_equal(m.nparams, 2);
	assert_string_equal(pd_route_param(&m, "id"), "7");
	assert_string_equal(pd_route_param(&m, "tid"), "99");

	/* Same pattern, other base: the base tells handlers which prefix. */
	assert_int_equal(find("GET", "/diagnostics/processes/0", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[6]);
	assert_string_equal(pd_route_param(&m, "id"), "0");

	assert_int_equal(find("POST", "/api/processes/3/stop", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_kill);
	assert_int_equal(find("GET", "/api/processes/3/dump", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_true(m.route->flags & PD_ROUTE_STREAM);
	/* Captures take whatever the segment holds: handlers validate. */
	assert_int_equal(find("GET", "/api/processes/abc", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_string_equal(pd_route_param(&m, "id"), "abc");
}

static void test_trailing_slash_and_root(void **state)
{
	struct pd_route_match m;

	assert_int_equal(find("GET", "/api/processes/", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_list);
	assert_int_equal(find("GET", "/api/processes/5/", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_string_equal(pd_route_param(&m, "id"), "5");
	assert_int_equal(find("GET", "/api/processes/5/threads/6//", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_string_equal(pd_route_param(&m, "tid"), "6");

	/* The index: base "" + pattern "/". */
	assert_int_equal(find("GET", "/", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_index);
	assert_int_equal(m.nparams, 0);
	assert_int_equal(find("HEAD", "/", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_index);

	/* The base is a whole-segment prefix, not a string prefix. */
	assert_int_equal(find("GET", "/api/processesX", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "/api", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_null(m.route);
}

static void test_head_is_get(void **state)
{
	struct pd_route_match m;

	assert_int_equal(find("HEAD", "/api/processes/9", &m, NULL, 0), PD_ROUTE_FOUND);
	assert_ptr_equal(m.route->handler, h_detail);
	assert_string_equal(m.route->method, "GET");
	assert_string_equal(pd_route_param(&m, "id"), "9");
	/* ...but not the other way round, and methods are case-sensitive. */
	assert_int_equal(find("get", "/api/processes/9", &m, NULL, 0), PD_ROUTE_BAD_METHOD);
}

static void test_method_not_allowed(void **state)
{
	struct pd_route_match m;
	char allow[64];

	assert_int_equal(find("PUT", "/api/processes/9", &m, allow, sizeof(allow)),
			 PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "GET, HEAD, DELETE");
	assert_null(m.route);

	assert_int_equal(find("GET", "/api/processes/9/stop", &m, allow, sizeof(allow)),
			 PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "POST");
	assert_int_equal(find("HEAD", "/api/processes/9/stop/", &m, allow, sizeof(allow)),
			 PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "POST");

	assert_int_equal(find("DELETE", "/api/processes", &m, allow, sizeof(allow)),
			 PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "GET, HEAD");

	/* Truncated to whole names; never cut one. */
	assert_int_equal(find("PUT", "/api/processes/9", &m, allow, 12), PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "GET, HEAD");
	assert_int_equal(find("PUT", "/api/processes/9", &m, allow, 4), PD_ROUTE_BAD_METHOD);
	assert_string_equal(allow, "GET");
}

static void test_not_found(void **state)
{
	struct pd_route_match m;
	char allow[64] = "junk";

	assert_int_equal(find("GET", "/nope", &m, allow, sizeof(allow)), PD_ROUTE_NOT_FOUND);
	assert_string_equal(allow, "");
	assert_int_equal(find("GET", "/api/processes/1/threads", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "/api/processes/1/threads/2/3", &m, NULL, 0),
			 PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "api/processes", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_int_equal(pd_route_find(table, 0, "GET", "/", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
}

static void test_segment_limits(void **state)
{
	char path[32 + PD_ROUTE_MAX_VALUE + 8];
	struct pd_route_match m;
	size_t base = strlen("/api/processes/");

	/* An empty segment captures nothing. */
	assert_int_equal(find("GET", "/api/processes//threads/1", &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "/api/processes/1/threads//", &m, NULL, 0),
			 PD_ROUTE_NOT_FOUND);
	assert_int_equal(find("GET", "//api/processes/1", &m, NULL, 0), PD_ROUTE_NOT_FOUND);

	/* The longest capture that fits, with its NUL. */
	strcpy(path, "/api/processes/");
	memset(path + base, '7', PD_ROUTE_MAX_VALUE - 1);
	path[base + PD_ROUTE_MAX_VALUE - 1] = '\0';
	assert_int_equal(find("GET", path, &m, NULL, 0), PD_ROUTE_FOUND);
	assert_int_equal(strlen(pd_route_param(&m, "id")), PD_ROUTE_MAX_VALUE - 1);

	/* One more byte: not found, rather than matched truncated. */
	memset(path + base, '7', PD_ROUTE_MAX_VALUE);
	path[base + PD_ROUTE_MAX_VALUE] = '\0';
	assert_int_equal(find("GET", path, &m, NULL, 0), PD_ROUTE_NOT_FOUND);
	assert_null(m.route);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_and_captures),
		cmocka_unit_test(test_trailing_slash_and_root),
		cmocka_unit_test(test_head_is_get),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_segment_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
