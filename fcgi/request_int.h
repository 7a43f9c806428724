/* The private side of struct pd_req, shared by server.c, request.c and
 * response.c only. Handlers see the accessors of fcgi/request.h. */
#ifndef PD_REQUEST_INT_H
#define PD_REQUEST_INT_H

#include <fcgiapp.h>
#include <stdbool.h>
#include <time.h>

#include "common/strbuf.h"
#include "fcgi/query.h"
#include "fcgi/request.h"
#include "fcgi/route.h"
#include "fcgi/server.h"

/* "https://" + a 253-byte host + ":65535" + NUL, rounded up. */
#define PD_ORIGIN_MAX 280
/* Longer paths are answered 414. */
#define PD_PATH_MAX 4096

struct pd_req {
	FCGX_Request *fcgx; /* the worker's; valid for this request */
	const struct pd_server_opts *opts;
	const char *method;	     /* REQUEST_METHOD */
	const char *path;	     /* DOCUMENT_URI, or path_buf */
	char *path_buf;		     /* owned: a path decoded by us */
	struct pd_query query;	     /* parsed after routing */
	struct pd_route_match match; /* match.route is NULL until routed */
	struct strbuf headers;	     /* extra "Name: value\r\n" lines */
	struct strbuf notes;	     /* " key=value" notes for the log */
	struct timespec start;	     /* CLOCK_MONOTONIC */
	unsigned long long bytes;    /* body bytes handed to libfcgi */
	long long length;	     /* promised Content-Length, -1 unknown */
	long long send_limit_ms;     /* SO_SNDTIMEO now, 0: opts->send_timeout_ms */
	long long deadline_ms;	     /* cut the response then (elapsed), 0: never */
	int status;		     /* 0 until a response has begun */
	bool is_head;
	bool client_gone; /* a write failed: stop writing */
	bool cut;	  /* procdiag cut the response (a timeout, a rate) */
	bool own_cache_control; /* the handler set Cache-Control: no default */
	bool own_csp;		/* the handler set Content-Security-Policy (a page's) */
	const char *origin;	     /* origin_buf, or opts->public_url */
	size_t origin_site_len;	     /* of origin: scheme://host[:port] */
	char origin_buf[PD_ORIGIN_MAX];
};

/* Fills r from the FastCGI parameters. 0, -EINVAL (no usable method or
 * path: the caller answers 400 once r is set up), -E2BIG (a path longer
 * than PD_PATH_MAX: 414), -ENOMEM. r must be released either way. */
int pd_req_init(struct pd_req *r, FCGX_Request *fcgx, const struct pd_server_opts *opts);
void pd_req_release(struct pd_req *r);
/* origin.c: sets r->origin (fcgi/request.h, pd_req_origin). */
void pd_req_origin_init(struct pd_req *r);
/* Milliseconds since pd_req_init. */
long long pd_req_elapsed_ms(const struct pd_req *r);

/* Answers one accepted request: authentication, routing, the handler,
 * the log line. Never fails: whatever goes wrong becomes a response. */
void pd_req_serve(const struct pd_server_opts *opts, FCGX_Request *fcgx);

/* server.c: sets SO_RCVTIMEO or SO_SNDTIMEO (which) of a connection, in
 * milliseconds (at least 1). 0 or -errno. */
int pd_conn_timeout(int fd, int which, long long ms);

/* response.c: pushes buffered output to the web server so that a client
 * that went away is noticed. 0 or -EPIPE. */
int pd_resp_flush(struct pd_req *r);

#endif
