/* struct pd_req: set up from the FastCGI parameters, and the accessors
 * handlers use. Everything a client sends is checked before it is used to
 * build links (origin) or to choose a representation (Accept). */
#include "config.h"

#include "fcgi/request_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/numparse.h"
#include "fcgi/auth.h"
#include "fcgi/response.h"
#include "fcgi/wipe.h"

bool pd_req_is_head(const struct pd_req *r)
{
	return r->is_head;
}

const char *pd_req_env(const struct pd_req *r, const char *name)
{
	return FCGX_GetParam(name, r->fcgx->envp);
}

const char *pd_req_query(const struct pd_req *r, const char *name)
{
	return pd_query_get(&r->query, name);
}

const char *pd_req_param(const struct pd_req *r, const char *name)
{
	return pd_route_param(&r->match, name);
}

const char *pd_req_base(const struct pd_req *r)
{
	return r->match.route && r->match.route->base ? r->match.route->base : "";
}

const char *pd_req_origin(const struct pd_req *r)
{
	return r->origin;
}

void *pd_req_app(const struct pd_req *r)
{
	return r->opts->app;
}

void pd_req_log_note(struct pd_req *r, const char *fmt, ...)
{
	size_t from = r->notes.len;
	va_list ap;

	if (strbuf_addch(&r->notes, ' ') < 0)
		return;
	va_start(ap, fmt);
	if (strbuf_vaddf(&r->notes, fmt, ap) < 0)
		strbuf_setlen(&r->notes, from);
	va_end(ap);
	/* One request, one log line, whatever a note holds. */
	for (size_t i = from; i < r->notes.len; i++)
		if ((unsigned char)r->notes.buf[i] < ' ' || r->notes.buf[i] == 0x7f)
			r->notes.buf[i] = '?';
}

bool pd_req_client_gone(struct pd_req *r)
{
	/* POLLRDHUP, not POLLIN: the rest of the request (an empty
	 * FCGI_STDIN) may still be unread, which is no hang-up. */
	struct pollfd p = {.fd = r->fcgx->ipcFd, .events = POLLRDHUP};

	if (r->client_gone)
		return true;
	if (p.fd < 0)
		return false;
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
		r->client_gone = true;
	return r->client_gone;
}

long long pd_req_elapsed_ms(const struct pd_req *r)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(now.tv_sec - r->start.tv_sec) * 1000 +
	       (now.tv_nsec - r->start.tv_nsec) / 1000000;
}

/* One media range of an Accept header against mime: 3 for type/subtype,
 * 2 for a "type/" wildcard, 1 for the full wildcard, 0 for no match. */
static int range_match(const char *range, size_t rlen, const char *mime, size_t mlen)
{
	const char *slash = memchr(mime, '/', mlen);
	size_t tlen = slash ? (size_t)(slash - mime) : mlen;

	if (rlen == 3 && memcmp(range, "*/*", 3) == 0)
		return 1;
	if (rlen == tlen + 2 && strncasecmp(range, mime, tlen) == 0 &&
	    memcmp(range + tlen, "/*", 2) == 0)
		return 2;
	return rlen == mlen && strncasecmp(range, mime, mlen) == 0 ? 3 : 0;
}

/* A qvalue ("0", "0.5", "1.000") in thousandths, or -1. */
static int parse_q(const char *s, size_t len)
{
	int q, scale = 100;
	size_t i;

	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = (s[0] - '0') * 1000;
	if (len == 1)
		return q;
	if (s[1] != '.' || len > 5)
		return -1;
	for (i = 2; i < len; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		q += (s[i] - '0') * scale;
	}
	return q <= 1000 ? q : -1;
}

/* The q the Accept header gives mime: that of the most specific range
 * that matches it (RFC 9110 12.5.1), 0 when none does; *spec gets that
 * range's range_match(). */
static int accept_q(const char *accept, const char *mime, size_t mlen, int *spec_out)
{
	int best_spec = 0, best_q = 0;
	const char *p = accept;

	while (*p) {
		size_t elen = strcspn(p, ","), rlen;
		const char *e = p, *end = p + elen, *semi;
		int spec, q = 1000;

		p = *end ? end + 1 : end;
		while (e < end && (*e == ' ' || *e == '\t'))
			e++;
		semi = memchr(e, ';', (size_t)(end - e));
		rlen = (size_t)((semi ? semi : end) - e);
		while (rlen > 0 && (e[rlen - 1] == ' ' || e[rlen - 1] == '\t'))
			rlen--;
		while (semi && semi < end) {
			const char *prm = semi + 1, *next = memchr(prm, ';', (size_t)(end - prm));
			const char *pend = next ? next : end;

			while (prm < pend && (*prm == ' ' || *prm == '\t'))
				prm++;
			while (pend > prm && (pend[-1] == ' ' || pend[-1] == '\t'))
				pend--;
			if (pend - prm >= 2 && (prm[0] == 'q' || prm[0] == 'Q') && prm[1] == '=')
				q = parse_q(prm + 2, (size_t)(pend - prm - 2));
			semi = next;
		}
		spec = q < 0 ? 0 : range_match(e, rlen, mime, mlen);
		if (spec > best_spec || (spec && spec == best_spec && q > best_q)) {
			best_spec = spec;
			best_q = q;
		}
	}
	*spec_out = best_spec;
	return best_q;
}

bool pd_req_accepts(const struct pd_req *r, const char *mime)
{
	const char *accept = pd_req_env(r, "HTTP_ACCEPT");
	int spec;

	if (!accept || !mime)
		return false;
	/* JSON wins ties: no Accept, or only the full wildcard, means JSON. */
	return accept_q(accept, mime, strcspn(mime, "; "), &spec) >
	       accept_q(accept, "application/json", 16, &spec);
}

int pd_req_accept_match(const struct pd_req *r, const char *mime)
{
	const char *accept = pd_req_env(r, "HTTP_ACCEPT");
	int spec;

	if (!accept || !mime)
		return 0;
	return accept_q(accept, mime, strlen(mime), &spec) > 0 ? spec : 0;
}

/* RFC 3986's remove_dot_segments on a decoded path that starts with '/',
 * in place, as nginx does for DOCUMENT_URI: "." segments and repeated
 * slashes go, ".." takes the previous segment away, and a ".." above the
 * root is an error (nginx answers 400 too). A path that ended in a dot
 * segment or a slash keeps its trailing slash. */
static int remove_dot_segments(char *p)
{
	size_t i = 0, o = 0; /* o <= i: the output never overtakes the input */
	bool dir = false;

	while (p[i]) {
		size_t s = i + 1, n = strcspn(p + s, "/");

		dir = n == 0 || (n == 1 && p[s] == '.') ||
		      (n == 2 && p[s] == '.' && p[s + 1] == '.');
		if (n == 2 && dir) {
			if (o == 0)
				return -EINVAL;
			while (p[--o] != '/')
				;
		} else if (!dir) {
			p[o++] = '/';
			memmove(p + o, p + s, n);
			o += n;
		}
		i = s + n;
	}
	if (dir || o == 0)
		p[o++] = '/';
	p[o] = '\0';
	return 0;
}

/* What nginx would have sent as DOCUMENT_URI, made from REQUEST_URI: the
 * path part, percent-decoded, dot segments removed. A bad escape, a NUL,
 * no leading '/' or a ".." above the root leave r->path empty: a 400. */
static int path_from_uri(struct pd_req *r, const char *uri)
{
	size_t len = strcspn(uri, "?#");
	long n;

	if (len > PD_PATH_MAX)
		return -E2BIG;
	r->path_buf = malloc(len + 1);
	if (!r->path_buf)
		return -ENOMEM;
	n = pd_percent_decode(uri, len, r->path_buf, 0);
	if (n < 0 || strlen(r->path_buf) != (size_t)n || r->path_buf[0] != '/' ||
	    remove_dot_segments(r->path_buf) < 0)
		return -EINVAL;
	r->path = r->path_buf;
	return 0;
}

int pd_req_init(struct pd_req *r, FCGX_Request *fcgx, const struct pd_server_opts *opts)
{
	const char *v;
	int rc;

	memset(r, 0, sizeof(*r));
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->fcgx = fcgx;
	r->opts = opts;
	r->path = "";
	r->length = -1;
	strbuf_init(&r->headers);
	strbuf_init(&r->notes);
	pd_req_origin_init(r);
	r->method = pd_req_env(r, "REQUEST_METHOD");
	if (!r->method || !*r->method) {
		r->method = "-";
		return -EINVAL;
	}
	r->is_head = strcmp(r->method, "HEAD") == 0;
	if ((v = pd_req_env(r, "DOCUMENT_URI")) && *v)
		r->path = v;
	else if ((v = pd_req_env(r, "SCRIPT_NAME")) && *v)
		r->path = v;
	else if ((v = pd_req_env(r, "REQUEST_URI")) && *v && (rc = path_from_uri(r, v)) != 0 &&
		 rc != -EINVAL)
		return rc;
	if (strlen(r->path) > PD_PATH_MAX)
		return -E2BIG;
	return r->path[0] == '/' ? 0 : -EINVAL;
}

void pd_req_release(struct pd_req *r)
{
	pd_query_release(&r->query);
	strbuf_release(&r->headers);
	strbuf_release(&r->notes);
	free(r->path_buf);
	r->path_buf = NULL;
}

/* Anything a client sent, made safe for a one-line log: no spaces (they
 * separate fields), no control or non-ASCII bytes. */
static int add_log_field(struct strbuf *sb, const char *s)
{
	int rc = 0;

	if (!*s)
		return strbuf_addch(sb, '-');
	for (; *s && !rc; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '\\')
			rc = strbuf_addf(sb, "\\x%02X", c);
		else
			rc = strbuf_addch(sb, (char)c);
	}
	return rc;
}

/* Path only: query values may hold secrets, and the Authorization header
 * is never looked at here. */
static void log_request(const struct pd_req *r)
{
	struct strbuf line = STRBUF_INIT;
	bool trouble = !r->status || r->status >= 500 || r->client_gone;
	int rc;

	if (!r->opts->log_requests && !trouble)
		return;
	rc = add_log_field(&line, r->method);
	if (!rc)
		rc = strbuf_addch(&line, ' ');
	if (!rc)
		rc = add_log_field(&line, r->path);
	if (!rc)
		rc = strbuf_addf(&line, " status=%d bytes=%llu ms=%lld%s%s\n", r->status, r->bytes,
				 pd_req_elapsed_ms(r), r->client_gone ? " client_gone" : "",
				 r->notes.buf);
	/* One fwrite: stdio's lock keeps concurrent lines whole. */
	if (!rc)
		fwrite(line.buf, 1, line.len, stderr);
	strbuf_release(&line);
}

static bool authorized(struct pd_req *r)
{
	const char *h = pd_req_env(r, "HTTP_AUTHORIZATION");
	char key[PD_KEY_MAX + 1];
	bool ok;

	ok = h && pd_auth_parse_header(h, key, sizeof(key)) == 0 &&
	     pd_auth_check(r->opts->keys, key);
	explicit_bzero(key, sizeof(key));
	if (ok)
		return true;
	pd_req_log_note(r, "auth=%s", h ? "rejected" : "missing");
	/* One challenge per header line: RFC 9110 allows a list in one line,
	 * but Chromium reads only the first challenge of a line and then
	 * ignores it, so a browser would never offer its login prompt. */
	pd_resp_header(r, "WWW-Authenticate", "Basic realm=\"procdiag\", charset=\"UTF-8\"");
	pd_resp_header(r, "WWW-Authenticate", "Bearer realm=\"procdiag\"");
	pd_resp_problem(r, 401, NULL,
			h ? "The API key is not valid."
			  : "An API key is required: 'Authorization: Bearer <key>', or the key as "
			    "the password of HTTP Basic authentication.");
	return false;
}

/* The query is parsed only for a routed request, so that 401/404/405 come
 * first and a malformed parameter is named in a 400. */
static bool parse_query(struct pd_req *r)
{
	const char *bad;
	char name[65];
	size_t bad_len;
	int rc;

	rc = pd_query_parse(pd_req_env(r, "QUERY_STRING"), &r->query, &bad, &bad_len);
	if (rc == -E2BIG) {
		pd_resp_problem(r, 400, NULL, "More than %d query parameters.",
				PD_QUERY_MAX_PARAMS);
		return false;
	}
	if (rc == -EINVAL) {
		snprintf(name, sizeof(name), "%.*s", (int)(bad_len < 64 ? bad_len : 64), bad);
		pd_resp_problem(r, 400, name,
				"The query parameter '%s' is malformed: a '%%' must "
				"be followed by two hex digits.",
				name);
		return false;
	}
	if (rc < 0) {
		pd_resp_problem(r, 500, NULL, "Out of memory.");
		return false;
	}
	/* No value here is binary: a NUL could only cut one short. */
	for (size_t i = 0; i < r->query.n; i++) {
		if (strlen(r->query.p[i].value) != r->query.p[i].value_len) {
			pd_resp_problem(r, 400, r->query.p[i].name,
					"The query parameter '%s' contains a NUL byte.",
					r->query.p[i].name);
			return false;
		}
	}
	return true;
}

/* A browser that holds procdiag's Basic credentials sends them with any
 * request to it, also one that another site's page makes it send (a form
 * posted to /api/processes/123/stop). Such requests carry an Origin header
 * that is not ours, or Sec-Fetch-Site: cross-site; a method that changes
 * something, and a GET that stops a process (PD_ROUTE_ACTS: an <img> on
 * another site would start a dump), is refused for them. Clients that are
 * not browsers send neither header and are not affected. */
static bool cross_site(struct pd_req *r)
{
	const char *origin = pd_req_env(r, "HTTP_ORIGIN");
	const char *site = pd_req_env(r, "HTTP_SEC_FETCH_SITE");

	if ((!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD")) &&
	    !(r->match.route->flags & PD_ROUTE_ACTS))
		return false;
	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return true;
	/* An Origin is scheme://host[:port]: public_url's path is not in it. */
	return origin && (strlen(origin) != r->origin_site_len ||
			  strncmp(origin, r->origin, r->origin_site_len) != 0);
}

static void dispatch(struct pd_req *r)
{
	const struct pd_server_opts *o = r->opts;
	bool ok = o->no_auth || authorized(r);
	char allow[128];
	int rc;

	/* Checked: no copy of the credential is kept (a core of the responder
	 * must not hold other clients' keys). */
	pd_fcgx_wipe_param(r->fcgx, "HTTP_AUTHORIZATION");
	if (!ok)
		return;
	rc = pd_route_find(o->routes, o->nroutes, r->method, r->path, &r->match, allow,
			   sizeof(allow));
	if (rc == PD_ROUTE_NOT_FOUND) {
		pd_resp_problem(r, 404, NULL, "There is no resource at this path.");
		return;
	}
	if (rc == PD_ROUTE_BAD_METHOD) {
		pd_resp_header(r, "Allow", allow);
		pd_resp_problem(r, 405, NULL, "This resource allows %s only.", allow);
		return;
	}
	if (cross_site(r)) {
		pd_req_log_note(r, "cross_site");
		pd_resp_problem(r, 403, NULL,
				"A %s from another site's page (Origin or Sec-Fetch-Site) is refused.",
				r->method);
		return;
	}
	if (!parse_query(r) || !r->match.route->handler)
		return;
	rc = r->match.route->handler(r);
	if (rc < 0 && !r->status)
		pd_req_log_note(r, "handler_error=%d", -rc);
}

void pd_req_serve(const struct pd_server_opts *opts, FCGX_Request *fcgx)
{
	struct pd_req r;
	int rc;

	rc = pd_req_init(&r, fcgx, opts);
	if (rc == -EINVAL)
		pd_resp_problem(&r, 400, NULL, "The request has no usable method or path.");
	else if (rc == -E2BIG)
		pd_resp_problem(&r, 414, NULL, "The path is longer than %d bytes.", PD_PATH_MAX);
	else if (rc < 0)
		pd_resp_problem(&r, 500, NULL, "Out of memory.");
	else
		dispatch(&r);
	/* A handler that returned without answering still gets an answer. */
	if (!r.status && !r.client_gone) {
		pd_req_log_note(&r, "no_response");
		pd_resp_problem(&r, 500, NULL, "The request was not answered.");
	}
	pd_resp_flush(&r);
	log_request(&r);
	pd_req_release(&r);
}

bool pd_req_was_cut(const struct pd_req *r)
{
	return r->cut;
}

const char *pd_req_if_range(const struct pd_req *r, char *tag, size_t size)
{
	const char *v = pd_req_env(r, "HTTP_IF_RANGE");
	size_t len;

	if (!v || !pd_req_env(r, "HTTP_RANGE") || v[0] != '"')
		return NULL;
	len = strcspn(v + 1, "\"");
	if (v[1 + len] != '"' || v[2 + len] != '\0' || len == 0 || len + 1 > size)
		return NULL;
	memcpy(tag, v + 1, len);
	tag[len] = '\0';
	return tag;
}

int pd_req_range(const struct pd_req *r, unsigned long long size, unsigned long long *first,
		 unsigned long long *last)
{
	const char *v = pd_req_env(r, "HTTP_RANGE");
	const char *dash;
	uint64_t a = 0, b = UINT64_MAX;

	if (!v || strncasecmp(v, "bytes=", 6))
		return 0;
	v += 6;
	v += strspn(v, " \t");
	dash = strchr(v, '-');
	if (!dash || strchr(v, ','))
		return 0;
	if (dash == v) {
		/* The last N bytes. */
		if (parse_u64(dash + 1, strlen(dash + 1), UINT64_MAX, &b) < 0)
			return 0;
		if (b == 0 || size == 0)
			return -ERANGE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (parse_u64(v, (size_t)(dash - v), UINT64_MAX, &a) < 0)
		return 0;
	if (dash[1] && parse_u64(dash + 1, strlen(dash + 1), UINT64_MAX, &b) < 0)
		return 0;
	if (b < a)
		return 0;
	if (a >= size)
		return -ERANGE;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}
