/* Where absolute links point. Every part comes from the web server's
 * parameters or the configuration, and every part a client can choose is
 * checked to be a plain host[:port] before it is used: a Host header that
 * is anything else (CR/LF, spaces, quotes, '@', '/', non-ASCII, too long)
 * never reaches an answer or a Location header.
 *
 * In order (docs/CONFIGURATION.md, "Links"):
 *   public_url, when configured: every link starts with it, nothing of the
 *     request is used.
 *   scheme: X-Forwarded-Proto when trust_proxy, else REQUEST_SCHEME, else
 *     HTTPS=on, else http.
 *   host: X-Forwarded-Host when trust_proxy, else HTTP_HOST (Debian's
 *     fastcgi_params sends nginx's $host: the request line's host or the
 *     Host header's, without a port), else SERVER_NAME, else SERVER_ADDR,
 *     else localhost; the first that is a valid host[:port] wins.
 *   port: the one the host carries; else X-Forwarded-Port when trust_proxy;
 *     else SERVER_PORT, but only when no X-Forwarded-* header was used (the
 *     port nginx accepted on says nothing of the proxy in front). Left out
 *     when it is the scheme's default. */
#include "config.h"

#include "fcgi/origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/numparse.h"
#include "fcgi/request_int.h"

/* A DNS name is at most 253 bytes; "[" IPv6 "]" at most 47. */
#define HOST_MAX 253

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1..65535 from s[0..len), or 0. */
static unsigned parse_port(const char *s, size_t len)
{
	uint64_t p;

	if (len == 0 || len > 5 || parse_u64(s, len, 65535, &p) < 0)
		return 0;
	return (unsigned)p;
}

/* RFC 3986's host, the part of it a link needs: a name or IPv4 address
 * (letters, digits, '-', '.', '_', starting with a letter or digit: this
 * leaves out nginx's catch-all server_name "_" and its wildcards), or an
 * IPv6 address in brackets (no zone, no IPvFuture). */
static bool valid_host(const char *s, size_t len)
{
	char v6[48];
	struct in6_addr a;

	if (len == 0 || len > HOST_MAX)
		return false;
	if (s[0] == '[') {
		if (len < 4 || len > sizeof(v6) || s[len - 1] != ']')
			return false;
		memcpy(v6, s + 1, len - 2);
		v6[len - 2] = '\0';
		/* inet_pton also takes "::ffff:1.2.3.4"; nothing else it takes
		 * has a byte a link must not carry. */
		return inet_pton(AF_INET6, v6, &a) == 1;
	}
	if (!is_alnum(s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return false;
	return true;
}

/* host[:port] → the host's length, and *port (0 when absent or empty, as
 * RFC 3986 allows "host:"), or -1 when it is not a valid one. */
static long host_port_len(const char *s, size_t len, unsigned *port)
{
	const char *colon;
	size_t h;

	*port = 0;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		h = close ? (size_t)(close - s) + 1 : len + 1;
		if (h > len || (h < len && s[h] != ':'))
			return -1;
	} else {
		colon = memchr(s, ':', len);
		h = colon ? (size_t)(colon - s) : len;
	}
	if (!valid_host(s, h))
		return -1;
	if (h + 1 < len && !(*port = parse_port(s + h + 1, len - h - 1)))
		return -1;
	return (long)h;
}

/* The first element of a comma-separated proxy header, trimmed. */
static const char *first_elem(const char *v, size_t *len)
{
	const char *end;

	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strcspn(v, ",");
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - v);
	return v;
}

/* A trusted proxy header's first element, or NULL. */
static const char *forwarded(const struct pd_req *r, const char *name, size_t *len)
{
	const char *v = r->opts->trust_proxy ? pd_req_env(r, name) : NULL;

	return v ? first_elem(v, len) : NULL;
}

static const char *origin_scheme(const struct pd_req *r, bool *fwd)
{
	size_t len;
	const char *v = forwarded(r, "HTTP_X_FORWARDED_PROTO", &len);

	if (v && len == 5 && strncasecmp(v, "https", 5) == 0)
		return *fwd = true, "https";
	if (v && len == 4 && strncasecmp(v, "http", 4) == 0)
		return *fwd = true, "http";
	v = pd_req_env(r, "REQUEST_SCHEME");
	if (v && (strcmp(v, "http") == 0 || strcmp(v, "https") == 0))
		return v;
	v = pd_req_env(r, "HTTPS");
	return v && strcasecmp(v, "on") == 0 ? "https" : "http";
}

/* The first candidate that is a valid host[:port]: *hlen is the host's
 * length, *port its port or 0. */
static const char *origin_host(const struct pd_req *r, long *hlen, unsigned *port, bool *fwd,
			       char v6[48])
{
	static const char *const params[] = {"HTTP_HOST", "SERVER_NAME"};
	const char *v;
	size_t len;

	v = forwarded(r, "HTTP_X_FORWARDED_HOST", &len);
	if (v && (*hlen = host_port_len(v, len, port)) >= 0)
		return *fwd = true, v;
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		v = pd_req_env(r, params[i]);
		if (v && (*hlen = host_port_len(v, strlen(v), port)) >= 0)
			return v;
	}
	*port = 0;
	/* nginx's $server_addr: an IPv6 address comes without brackets. */
	v = pd_req_env(r, "SERVER_ADDR");
	if (v && valid_host(v, *hlen = (long)strlen(v)))
		return v;
	if (v && strchr(v, ':') && (len = strlen(v)) < 46) {
		snprintf(v6, 48, "[%s]", v);
		if (valid_host(v6, *hlen = (long)len + 2))
			return v6;
	}
	*hlen = 9;
	return "localhost";
}

void pd_req_origin_init(struct pd_req *r)
{
	const char *scheme, *host, *v;
	char v6[48];
	bool fwd = false;
	unsigned port, dflt;
	long hlen;
	size_t len;
	int n;

	if (r->opts->public_url) {
		r->origin = r->opts->public_url;
		v = strstr(r->origin, "://");
		r->origin_site_len = v ? strcspn(v + 3, "/") + (size_t)(v + 3 - r->origin) : 0;
		return;
	}
	scheme = origin_scheme(r, &fwd);
	host = origin_host(r, &hlen, &port, &fwd, v6);
	if (!port && (v = forwarded(r, "HTTP_X_FORWARDED_PORT", &len)) &&
	    (port = parse_port(v, len)))
		fwd = true;
	if (!port && !fwd && (v = pd_req_env(r, "SERVER_PORT")))
		port = parse_port(v, strlen(v));
	dflt = strcmp(scheme, "https") == 0 ? 443 : 80;
	if (port && port != dflt)
		n = snprintf(r->origin_buf, sizeof(r->origin_buf), "%s://%.*s:%u", scheme,
			     (int)hlen, host, port);
	else
		n = snprintf(r->origin_buf, sizeof(r->origin_buf), "%s://%.*s", scheme, (int)hlen,
			     host);
	r->origin = r->origin_buf;
	r->origin_site_len = n > 0 ? (size_t)n : 0;
}

/* A path prefix: '/'-separated segments of unreserved characters and %XX
 * escapes, none empty, "." or "..". A reserved character would change what
 * the links mean; a quote or a space could break out of where they are
 * written. */
static bool valid_prefix(const char *p, size_t len)
{
	size_t i = 0, seg;

	if (len && p[0] != '/')
		return false;
	while (i < len) {
		seg = ++i;
		while (i < len && p[i] != '/') {
			char c = p[i];

			if (c == '%' && i + 2 < len && hex_digit((unsigned char)p[i + 1]) >= 0 &&
			    hex_digit((unsigned char)p[i + 2]) >= 0)
				i += 3;
			else if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
				i++;
			else
				return false;
		}
		if (i == seg || (i - seg == 1 && p[seg] == '.') ||
		    (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
			return false;
	}
	return true;
}

int pd_public_url_parse(const char *in, char *out, size_t outlen, const char **why)
{
	const char *scheme, *auth, *path;
	size_t len = strlen(in), alen, plen;
	unsigned port, dflt;
	long hlen;

	if (len > PD_PUBLIC_URL_MAX)
		return *why = "is longer than 512 bytes", -EINVAL;
	if (strncasecmp(in, "https://", 8) == 0)
		scheme = "https", auth = in + 8, dflt = 443;
	else if (strncasecmp(in, "http://", 7) == 0)
		scheme = "http", auth = in + 7, dflt = 80;
	else
		return *why = "must start with http:// or https://", -EINVAL;
	alen = strcspn(auth, "/?#");
	path = auth + alen;
	if (strpbrk(path, "?#"))
		return *why = "must not have a query or a fragment", -EINVAL;
	hlen = host_port_len(auth, alen, &port);
	if (hlen < 0)
		return *why = "needs a host (a DNS name, an IPv4 address or an [IPv6] address), "
			      "optionally with a :port from 1 to 65535",
		       -EINVAL;
	plen = strlen(path);
	while (plen && path[plen - 1] == '/')
		plen--;
	/* (the trailing '/' is left out: links append "/api/...") */
	if (!valid_prefix(path, plen))
		return *why = "may have a path only of letters, digits, '-', '.', '_', '~', %XX "
			      "escapes and '/', without empty, '.' or '..' segments",
		       -EINVAL;
	if (port && port != dflt)
		snprintf(out, outlen, "%s://%.*s:%u%.*s", scheme, (int)hlen, auth, port, (int)plen,
			 path);
	else
		snprintf(out, outlen, "%s://%.*s%.*s", scheme, (int)hlen, auth, (int)plen, path);
	return 0;
}
