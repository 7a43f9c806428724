/* What a handler may ask of a request. struct pd_req is owned by the server
 * for the duration of one request; everything these return lives until the
 * handler returns. */
#ifndef PD_REQUEST_H
#define PD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct pd_req;

bool pd_req_is_head(const struct pd_req *r);
/* A raw FastCGI parameter ("HTTP_ACCEPT", "REMOTE_ADDR"), or NULL. */
const char *pd_req_env(const struct pd_req *r, const char *name);
/* A decoded query parameter (case-insensitive name, first occurrence), or
 * NULL when absent. */
const char *pd_req_query(const struct pd_req *r, const char *name);
/* A "{name}" capture of the matched route, or NULL. */
const char *pd_req_param(const struct pd_req *r, const char *name);
/* The matched route's base ("/api/processes"). */
const char *pd_req_base(const struct pd_req *r);
/* What every absolute link starts with: "scheme://host[:port]" from the
 * request (fcgi/origin.c says how; never a host that is not a plain
 * host[:port]), or the configured public_url, path prefix included. No
 * trailing '/'. */
const char *pd_req_origin(const struct pd_req *r);
/* Does the Accept header prefer mime (e.g. "text/plain") over JSON? */
bool pd_req_accepts(const struct pd_req *r, const char *mime);
/* How the Accept header names mime, whatever the q (unless 0): 3 by a range
 * of exactly that type, 2 by "type/" and a star, 1 by the full wildcard,
 * 0 not at all (also with no Accept header). For negotiation that, like
 * dotnet-monitor's, ranks by how a type is named rather than by q. */
int pd_req_accept_match(const struct pd_req *r, const char *mime);
/* The opaque pointer the server was given (the handlers' context). */
void *pd_req_app(const struct pd_req *r);
/* Has the client gone away? True once a write failed, or when the web
 * server closed (or half-closed) its FastCGI connection, as nginx does when
 * the client aborts: a handler that works long before it writes (a dump)
 * asks now and then, and stops. Never blocks. */
bool pd_req_client_gone(struct pd_req *r);
/* The strong entity tag of If-Range (the bytes between its quotes) into
 * tag when the request also has a Range header: what a client resuming a
 * download sends (RFC 9110, 13.1.5). NULL otherwise, or when the tag is
 * weak, a date, or longer than size - 1. */
const char *pd_req_if_range(const struct pd_req *r, char *tag, size_t size);
/* The single byte range Range asks of a body of size bytes: "bytes=F-L",
 * "bytes=F-" or "bytes=-N". 1 with [*first, *last] clamped to the body,
 * -ERANGE when no byte of it is in the body (416), 0 when there is no
 * Range header or one this does not take (several ranges, another unit,
 * bad syntax): RFC 9110 lets a server answer those with the whole body. */
int pd_req_range(const struct pd_req *r, unsigned long long size, unsigned long long *first,
		 unsigned long long *last);
/* Was the response cut by procdiag itself (send_timeout,
 * download_min_rate) rather than left by its client? */
bool pd_req_was_cut(const struct pd_req *r);
/* Adds a note to the request's log line (e.g. "stopped_ms=12"). */
void pd_req_log_note(struct pd_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
