/* Writing a response into the FastCGI stream. Each function writes the
 * status line and headers (and, except for HEAD, the body) once; a second
 * response on the same request is refused. Return 0, or -EPIPE when the
 * client went away (the handler should just return), -ENOMEM.
 * Misuse is -EINVAL (a status outside 200..599, CR/LF or a framing header
 * such as Content-Length in pd_resp_header, writing past the announced
 * length) or -EALREADY (a response was already begun).
 * All errors are RFC 9457 problem documents. Every response carries
 * Cache-Control: no-store (unless the handler set its own with
 * pd_resp_header) and X-Content-Type-Options: nosniff, X-Frame-Options:
 * DENY, Referrer-Policy: same-origin and Content-Security-Policy:
 * PD_RESP_DEFAULT_CSP (unless the handler set its own, as a page does);
 * a route with PD_ROUTE_STREAM also X-Accel-Buffering: no. On HEAD, headers
 * (Content-Length included) are written and body bytes are dropped. */
#ifndef PD_RESPONSE_H
#define PD_RESPONSE_H

#include <jansson.h>
#include <stddef.h>

struct pd_req;

/* The policy of every answer that is not a page: load nothing, be framed
 * by nothing. */
#define PD_RESP_DEFAULT_CSP "default-src 'none'; frame-ancestors 'none'"

/* Extra header for the response about to be written (Retry-After, Allow,
 * Content-Disposition, ...). name and value are copied; CR/LF refused. */
int pd_resp_header(struct pd_req *r, const char *name, const char *value);
/* body: any JSON value; the reference is stolen, even on failure.
 * Content-Type application/json; charset=utf-8, Content-Length set. */
int pd_resp_json(struct pd_req *r, int status, json_t *body);
/* A JSON document rendered the way pd_resp_json() sends it (indented, a
 * final newline); doc is stolen. malloc'd, NUL-terminated; *len excludes
 * the NUL. NULL when out of memory or doc is NULL. */
char *pd_json_render(json_t *doc, size_t *len);
/* Sends bytes made by pd_json_render() (e.g. kept in a cache). */
int pd_resp_json_bytes(struct pd_req *r, int status, const char *s, size_t len);
/* A whole body of the given type (text/html, text/plain...). */
int pd_resp_bytes(struct pd_req *r, int status, const char *ctype, const char *s, size_t len);
/* An application/problem+json error: {type, title, status, detail,
 * instance} plus "parameter": param when param is not NULL. title is the
 * status's reason phrase; detail is printf-formatted. */
int pd_resp_problem(struct pd_req *r, int status, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like pd_resp_problem, with extra members merged into the document (stolen). */
int pd_resp_problem_ext(struct pd_req *r, int status, const char *param, json_t *ext,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 204 No Content. */
int pd_resp_no_content(struct pd_req *r);
/* A body of known type and length (-1: unknown, chunked by nginx); then
 * pd_resp_write() the bytes. */
int pd_resp_begin(struct pd_req *r, int status, const char *content_type, long long length);
int pd_resp_write(struct pd_req *r, const void *buf, size_t len);
/* 206 Partial Content: bytes first..last of a body of size bytes
 * (Content-Range, and Content-Length last - first + 1); then the bytes. */
int pd_resp_begin_range(struct pd_req *r, const char *content_type, unsigned long long first,
			unsigned long long last, unsigned long long size);
/* 416 for a Range no byte of a body of size bytes is in: a problem
 * document with Content-Range: bytes * / size. */
int pd_resp_range_unsatisfiable(struct pd_req *r, unsigned long long size);
/* Streams length bytes of fd from offset (pread: fd's file position is
 * left alone) as body, after pd_resp_begin() or pd_resp_begin_range().
 * For large files (dumps): the bytes never sit in memory all at once (a
 * MiB at a time), and go out in FastCGI records of 64 KiB written around
 * libfcgi's 8 KiB ones, so that nginx passes them on at about the speed it
 * serves a file (docs/DUMPS.md, "Downloads"). -EPIPE when
 * the client went away, -EIO when fd ends early or cannot be read (the
 * response is then cut short: the connection is marked so that no more is
 * written), -EINVAL past the announced length. Bounded: the whole body
 * gets send_timeout plus its length at download_min_rate (struct
 * pd_server_opts); past that, or when one write waits send_timeout, the
 * response is cut (the connection shut down, "cut=..." in the log line)
 * and -EPIPE returned. */
int pd_resp_write_fd(struct pd_req *r, int fd, unsigned long long offset,
		     unsigned long long length);
/* The reason phrase of a status ("Not Found"). */
const char *pd_status_reason(int status);

#endif
