/* Responses: CGI-style headers ("Status: 200 OK"), then the body, through
 * the request's FastCGI stream. Every write is checked: when the web server
 * or the client has gone, the request is marked and the handler gets
 * -EPIPE, so it can stop work it no longer needs to do. */
#include "config.h"

#include "fcgi/response.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fastcgi.h>

#include "common/strbuf.h"
#include "common/jsonstr.h"
#include "common/utf8.h"
#include "fcgi/request_int.h"

/* Indented: the API is read by people (browsers, curl) as much as by
 * programs, and the bytes saved by compact output are few next to a
 * process list. Insertion order keeps fields in the order the handlers
 * (and Kudu's documents) list them. */
#define PD_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

static const struct {
	int status;
	const char *reason;
} reasons[] = {
	{200, "OK"},
	{201, "Created"},
	{202, "Accepted"},
	{204, "No Content"},
	{206, "Partial Content"},
	{301, "Moved Permanently"},
	{302, "Found"},
	{303, "See Other"},
	{304, "Not Modified"},
	{307, "Temporary Redirect"},
	{308, "Permanent Redirect"},
	{400, "Bad Request"},
	{401, "Unauthorized"},
	{403, "Forbidden"},
	{404, "Not Found"},
	{405, "Method Not Allowed"},
	{406, "Not Acceptable"},
	{408, "Request Timeout"},
	{409, "Conflict"},
	{410, "Gone"},
	{411, "Length Required"},
	{413, "Content Too Large"},
	{414, "URI Too Long"},
	{415, "Unsupported Media Type"},
	{416, "Range Not Satisfiable"},
	{422, "Unprocessable Content"},
	{429, "Too Many Requests"},
	{500, "Internal Server Error"},
	{501, "Not Implemented"},
	{502, "Bad Gateway"},
	{503, "Service Unavailable"},
	{504, "Gateway Timeout"},
	{507, "Insufficient Storage"},
};

const char *pd_status_reason(int status)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

/* RFC 9110 token characters: no separators, spaces or controls. */
static bool is_tchar(unsigned char c)
{
	return c > ' ' && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static bool value_ok(const char *v)
{
	for (; *v; v++)
		if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
			return false;
	return true;
}

int pd_resp_header(struct pd_req *r, const char *name, const char *value)
{
	size_t len = r->headers.len;

	if (r->status)
		return -EALREADY;
	if (!name || !*name || !value || !value_ok(value))
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return -EINVAL;
	/* These frame the response; the response functions own them. */
	if (!strcasecmp(name, "Status") || !strcasecmp(name, "Content-Type") ||
	    !strcasecmp(name, "Content-Length"))
		return -EINVAL;
	if (strbuf_addf(&r->headers, "%s: %s\r\n", name, value) < 0) {
		strbuf_setlen(&r->headers, len);
		return -ENOMEM;
	}
	if (!strcasecmp(name, "Cache-Control"))
		r->own_cache_control = true;
	if (!strcasecmp(name, "Content-Security-Policy"))
		r->own_csp = true;
	return 0;
}

/* Cuts the response: the connection is shut down, so nothing more is
 * written on it (libfcgi's END_REQUEST included), and the web server
 * passes the cut on to its client. */
static void cut(struct pd_req *r, const char *why)
{
	pd_req_log_note(r, "cut=%s", why);
	shutdown(r->fcgx->ipcFd, SHUT_RDWR);
	r->client_gone = true;
	r->cut = true;
}

/* Before each write: past the download deadline the response is cut;
 * short of it, the write may wait until then (SO_SNDTIMEO), also longer
 * than send_timeout: nginx passes a download on at its client's pace and
 * may hold megabytes for it, so one write can wait long for a client that
 * still keeps to download_min_rate. */
static bool past_deadline(struct pd_req *r)
{
	long long left, limit;

	if (!r->deadline_ms)
		return false;
	left = r->deadline_ms - pd_req_elapsed_ms(r);
	if (left <= 0) {
		cut(r, "download_min_rate");
		return true;
	}
	limit = left;
	/* Now and then, not before every write: 50 ms late is no matter. */
	if (!r->send_limit_ms || limit < r->send_limit_ms - 50 || limit > r->send_limit_ms) {
		pd_conn_timeout(r->fcgx->ipcFd, SO_SNDTIMEO, limit);
		r->send_limit_ms = limit;
	}
	return false;
}

/* Did the write begun at t0 (pd_req_elapsed_ms) wait out SO_SNDTIMEO?
 * libfcgi takes a write cut short by it for a whole one, so the stream
 * may have lost bytes: nothing more may go out. A piece of at most
 * PUT_PIECE bytes costs libfcgi one write() at most, so a piece that took
 * the whole limit is taken for one that timed out. */
static bool stalled(struct pd_req *r, long long t0)
{
	long long limit = r->send_limit_ms ? r->send_limit_ms : r->opts->send_timeout_ms;
	long long now = pd_req_elapsed_ms(r);

	if (limit <= 0 || now - t0 < limit - 10)
		return false;
	cut(r, r->deadline_ms ? "download_min_rate" : "send_timeout");
	return true;
}

/* Less than libfcgi's 8 KiB output buffer. */
#define PUT_PIECE 4096

static int put(struct pd_req *r, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0 && !r->client_gone && !past_deadline(r)) {
		int chunk = len > PUT_PIECE ? PUT_PIECE : (int)len;
		long long t0 = pd_req_elapsed_ms(r);

		if (FCGX_PutStr(p, chunk, r->fcgx->out) != chunk)
			r->client_gone = true;
		else
			stalled(r, t0);
		p += chunk;
		len -= (size_t)chunk;
	}
	return r->client_gone ? -EPIPE : 0;
}

int pd_resp_flush(struct pd_req *r)
{
	long long t0 = pd_req_elapsed_ms(r);

	if (r->client_gone || past_deadline(r))
		return -EPIPE;
	if (FCGX_FFlush(r->fcgx->out) < 0)
		r->client_gone = true;
	else
		stalled(r, t0);
	return r->client_gone ? -EPIPE : 0;
}

/* Status line and headers. The status is recorded before writing so that
 * a failed write still counts as "responded": never two responses. */
static int begin(struct pd_req *r, int status, const char *ctype, long long length)
{
	struct strbuf h = STRBUF_INIT;
	int rc;

	if (r->status)
		return -EALREADY;
	if (status < 200 || status > 599 || length < -1 || (ctype && !value_ok(ctype)))
		return -EINVAL;
	rc = strbuf_addf(&h, "Status: %d %s\r\n", status, pd_status_reason(status));
	if (!rc && ctype)
		rc = strbuf_addf(&h, "Content-Type: %s\r\n", ctype);
	if (!rc && length >= 0)
		rc = strbuf_addf(&h, "Content-Length: %lld\r\n", length);
	/* no-store unless the handler says otherwise (GET /assets/...). */
	if (!rc && !r->own_cache_control)
		rc = strbuf_addstr(&h, "Cache-Control: no-store\r\n");
	if (!rc)
		rc = strbuf_addstr(&h, "X-Content-Type-Options: nosniff\r\n");
	/* What a browser may do with any answer (docs/SECURITY.md): nothing
	 * framed (the kill button, under another site's page), no Referer
	 * beyond procdiag, and an answer that is not a page (JSON, text, a
	 * problem, a script) loads nothing and runs nothing if a browser ever
	 * renders it. A page sends its own policy (handlers/html.c). */
	if (!rc)
		rc = strbuf_addstr(&h, "X-Frame-Options: DENY\r\nReferrer-Policy: same-origin\r\n");
	if (!rc && !r->own_csp)
		rc = strbuf_addstr(&h, "Content-Security-Policy: " PD_RESP_DEFAULT_CSP "\r\n");
	/* Dumps are gigabytes: nginx should pass them on, not spool them.
	 * Every other resource has several representations (JSON, a page,
	 * text) chosen by Accept. */
	if (!rc && r->match.route && (r->match.route->flags & PD_ROUTE_STREAM))
		rc = strbuf_addstr(&h, "X-Accel-Buffering: no\r\n");
	else if (!rc && r->match.route)
		rc = strbuf_addstr(&h, "Vary: Accept\r\n");
	if (!rc)
		rc = strbuf_add(&h, r->headers.buf, r->headers.len);
	if (!rc)
		rc = strbuf_addstr(&h, "\r\n");
	if (!rc) {
		r->status = status;
		r->length = length;
		rc = put(r, h.buf, h.len);
	}
	strbuf_release(&h);
	return rc;
}

int pd_resp_begin(struct pd_req *r, int status, const char *content_type, long long length)
{
	return begin(r, status, content_type, length);
}

int pd_resp_begin_range(struct pd_req *r, const char *content_type, unsigned long long first,
			unsigned long long last, unsigned long long size)
{
	char v[80];
	int rc;

	if (first > last || last >= size)
		return -EINVAL;
	snprintf(v, sizeof(v), "bytes %llu-%llu/%llu", first, last, size);
	rc = pd_resp_header(r, "Content-Range", v);
	return rc ? rc : begin(r, 206, content_type, (long long)(last - first + 1));
}

int pd_resp_range_unsatisfiable(struct pd_req *r, unsigned long long size)
{
	char v[40];

	snprintf(v, sizeof(v), "bytes */%llu", size);
	pd_resp_header(r, "Content-Range", v);
	return pd_resp_problem(r, 416, "Range",
			       "The Range header asks for no byte of the %llu this resource has.",
			       size);
}

int pd_resp_write(struct pd_req *r, const void *buf, size_t len)
{
	if (!r->status)
		return -EINVAL;
	if (r->client_gone)
		return -EPIPE;
	/* More than promised would corrupt the framing nginx relies on. */
	if (r->length >= 0 && len > (unsigned long long)r->length - r->bytes)
		return -EINVAL;
	if (r->is_head)
		return 0;
	r->bytes += len;
	return put(r, buf, len);
}

/* FastCGI's largest record body, rounded down to 8 bytes so that no
 * record needs padding. */
#define RECORD_MAX (FCGI_MAX_LENGTH & ~7u)
/* Records sent by one sendmsg(): a MiB a system call. */
#define BATCH_RECORDS 16u

/* The download bound: send_timeout plus length at download_min_rate,
 * from now (pd_req_elapsed_ms); 0 when there is none. */
static long long download_deadline(const struct pd_req *r, unsigned long long length)
{
	unsigned long long rate = r->opts->download_min_rate;

	if (!rate)
		return 0;
	return pd_req_elapsed_ms(r) + r->opts->send_timeout_ms +
	       (long long)(length / rate * 1000 + length % rate * 1000 / rate);
}

static void record_header(unsigned char h[8], int id, size_t len)
{
	h[0] = FCGI_VERSION_1;
	h[1] = FCGI_STDOUT;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0; /* no padding */
	h[7] = 0;
}

/* All of iov (cnt entries, modified) on the connection, in as few
 * system calls as the socket takes. A write that waits out SO_SNDTIMEO
 * (EAGAIN) cuts the response; any other error means the web server went
 * away. */
static int send_all(struct pd_req *r, struct iovec *iov, size_t cnt)
{
	while (cnt > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = cnt};
		ssize_t n;

		if (past_deadline(r))
			return -EPIPE;
		n = sendmsg(r->fcgx->ipcFd, &m, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			cut(r, r->deadline_ms ? "download_min_rate" : "send_timeout");
			return -EPIPE;
		}
		if (n < 0) {
			r->client_gone = true;
			return -EPIPE;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* One record's body, len bytes of fd from offset, by sendfile(): the
 * kernel hands the file's pages to the socket, and since Linux 6.5 an
 * AF_UNIX or TCP socket takes them without a copy (MSG_SPLICE_PAGES), so
 * procdiag copies nothing. 0 when all of it went; 1 when nothing went
 * because the file or the socket cannot do it (the caller copies instead);
 * else -EPIPE as send_all(), or -EIO when the file is short. */
static int send_body(struct pd_req *r, int fd, unsigned long long offset, size_t len)
{
	size_t done = 0;

	while (done < len) {
		off_t at = (off_t)(offset + done);
		ssize_t n;

		if (past_deadline(r))
			return -EPIPE;
		n = sendfile(r->fcgx->ipcFd, fd, &at, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && done == 0 && (errno == EINVAL || errno == ENOSYS))
			return 1;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			cut(r, r->deadline_ms ? "download_min_rate" : "send_timeout");
			return -EPIPE;
		}
		if (n <= 0) {
			/* A short file (0) or a failed read (EIO) cannot keep
			 * the promised length; anything else is the socket. */
			r->client_gone = true;
			return n == 0 || errno == EIO ? -EIO : -EPIPE;
		}
		done += (size_t)n;
	}
	return 0;
}

/* len bytes of fd from offset into buf; -EIO when the file is short or
 * cannot be read: the promised length cannot be kept, so the response
 * ends there rather than send a wrong one. */
static int read_at(struct pd_req *r, int fd, char *buf, size_t len, unsigned long long offset)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(offset + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->client_gone = true;
			return -EIO;
		}
		got += (size_t)n;
	}
	return 0;
}

/* The copying way: a MiB pread() into buf, sent as 16 records by one
 * sendmsg(). For a file or socket sendfile() cannot take. */
static int copy_records(struct pd_req *r, int fd, unsigned long long offset,
			unsigned long long length, char *buf)
{
	unsigned char hdr[BATCH_RECORDS][8];
	struct iovec iov[2 * BATCH_RECORDS];
	int rc = 0;

	while (length > 0 && !rc) {
		size_t want = (size_t)RECORD_MAX * BATCH_RECORDS, got, cnt = 0;

		if (want > length)
			want = (size_t)length;
		rc = read_at(r, fd, buf, want, offset);
		if (rc)
			break;
		got = want;
		for (size_t at = 0; at < got; at += RECORD_MAX, cnt++) {
			size_t len = got - at < RECORD_MAX ? got - at : RECORD_MAX;

			record_header(hdr[cnt], r->fcgx->requestId, len);
			iov[2 * cnt] = (struct iovec){hdr[cnt], 8};
			iov[2 * cnt + 1] = (struct iovec){buf + at, len};
		}
		rc = send_all(r, iov, 2 * cnt);
		if (!rc) {
			r->bytes += got;
			offset += got;
			length -= got;
		}
	}
	return rc;
}

/* The bytes go around libfcgi, whose records carry 8 KiB at most: once
 * its buffer is flushed, the stream is ours until the next libfcgi write.
 * FCGI_STDOUT records of 64 KiB, each an 8-byte header by send() and its
 * body by sendfile() from the file (docs/DUMPS.md, "Downloads"); where
 * sendfile() cannot, the body is copied, a MiB a sendmsg(). */
int pd_resp_write_fd(struct pd_req *r, int fd, unsigned long long offset,
		     unsigned long long length)
{
	unsigned char hdr[8];
	char *buf;
	int rc = 0;

	if (!r->status)
		return -EINVAL;
	if (r->client_gone)
		return -EPIPE;
	if (r->length >= 0 && length > (unsigned long long)r->length - r->bytes)
		return -EINVAL;
	if (r->is_head || length == 0)
		return pd_resp_flush(r);
	rc = pd_resp_flush(r);
	if (rc)
		return rc;
	/* Kept for the rest of the response (its last bytes, libfcgi's
	 * END_REQUEST): put() and pd_resp_flush() watch it. */
	r->deadline_ms = download_deadline(r, length);
	while (length > 0) {
		size_t len = length < RECORD_MAX ? (size_t)length : RECORD_MAX;
		struct iovec h = {hdr, sizeof(hdr)};

		record_header(hdr, r->fcgx->requestId, len);
		rc = send_all(r, &h, 1);
		if (!rc)
			rc = send_body(r, fd, offset, len);
		if (rc)
			break;
		r->bytes += len;
		offset += len;
		length -= len;
	}
	if (rc != 1)
		return rc;
	/* sendfile() refused at the first byte of a record whose header is
	 * out: that record's body copied alone, then the rest in batches. */
	buf = malloc((size_t)RECORD_MAX * BATCH_RECORDS);
	if (!buf)
		return -ENOMEM;
	{
		size_t len = length < RECORD_MAX ? (size_t)length : RECORD_MAX;
		struct iovec body = {buf, len};

		rc = read_at(r, fd, buf, len, offset);
		if (!rc)
			rc = send_all(r, &body, 1);
		if (!rc) {
			r->bytes += len;
			rc = copy_records(r, fd, offset + len, length - len, buf);
		}
	}
	free(buf);
	return rc;
}

/* The last resort when a JSON document cannot be built or rendered (a
 * handler's json_pack() that failed, on memory or on bytes that are not
 * UTF-8): a fixed body that needs no allocation. */
static int send_unbuildable(struct pd_req *r)
{
	static const char body[] =
		"{\"type\":\"about:blank\",\"title\":\"Internal Server Error\","
		"\"status\":500,\"detail\":\"The response could not be built.\"}\n";
	int rc;

	pd_req_log_note(r, "unbuildable_json");
	rc = begin(r, 500, "application/problem+json", sizeof(body) - 1);
	if (!rc)
		rc = pd_resp_write(r, body, sizeof(body) - 1);
	if (!rc)
		rc = pd_resp_flush(r);
	return rc < 0 ? rc : -ENOMEM;
}

char *pd_json_render(json_t *doc, size_t *len)
{
	char *s = doc ? json_dumps(doc, PD_JSON_FLAGS) : NULL;
	size_t n;
	char *t;

	json_decref(doc);
	if (!s)
		return NULL;
	n = strlen(s);
	t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*len = n + 1;
	return t;
}

static int send_bytes(struct pd_req *r, int status, const char *ctype, const char *s, size_t len)
{
	int rc;

	if (r->status)
		return -EALREADY;
	rc = begin(r, status, ctype, (long long)len);
	if (!rc)
		rc = pd_resp_write(r, s, len);
	if (!rc)
		rc = pd_resp_flush(r);
	return rc;
}

static int send_doc(struct pd_req *r, int status, const char *ctype, json_t *doc)
{
	char *s;
	size_t len;
	int rc;

	if (r->status) {
		json_decref(doc);
		return -EALREADY;
	}
	s = pd_json_render(doc, &len);
	if (!s)
		return send_unbuildable(r);
	rc = send_bytes(r, status, ctype, s, len);
	free(s);
	return rc;
}

int pd_resp_json_bytes(struct pd_req *r, int status, const char *s, size_t len)
{
	return send_bytes(r, status, "application/json; charset=utf-8", s, len);
}

int pd_resp_bytes(struct pd_req *r, int status, const char *ctype, const char *s, size_t len)
{
	return send_bytes(r, status, ctype, s, len);
}

int pd_resp_json(struct pd_req *r, int status, json_t *body)
{
	return send_doc(r, status, "application/json; charset=utf-8", body);
}

static int problem_v(struct pd_req *r, int status, const char *param, json_t *ext, const char *fmt,
		     va_list ap)
{
	struct strbuf detail = STRBUF_INIT;
	json_t *doc = NULL;
	int err;

	if (r->status) {
		json_decref(ext);
		return -EALREADY;
	}
	err = strbuf_vaddf(&detail, fmt, ap) < 0 || !(doc = json_object());
	err = err || json_object_set_new(doc, "type", json_string("about:blank"));
	err = err || json_object_set_new(doc, "title", json_string(pd_status_reason(status)));
	err = err || json_object_set_new(doc, "status", json_integer(status));
	err = err || json_object_set_new(doc, "detail", pd_json_bytes(detail.buf, detail.len));
	err = err || json_object_set_new(doc, "instance", pd_json_bytes(r->path, strlen(r->path)));
	if (param)
		err = err ||
		      json_object_set_new(doc, "parameter", pd_json_bytes(param, strlen(param)));
	/* Extra members add to the document; they never replace the
	 * standard ones, which must agree with the HTTP status. */
	if (ext && json_is_object(ext))
		err = err || json_object_update_missing(doc, ext);
	json_decref(ext);
	strbuf_release(&detail);
	if (err) {
		json_decref(doc);
		doc = NULL;
	}
	return send_doc(r, status, "application/problem+json", doc);
}

int pd_resp_problem(struct pd_req *r, int status, const char *param, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = problem_v(r, status, param, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

int pd_resp_problem_ext(struct pd_req *r, int status, const char *param, json_t *ext,
			const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = problem_v(r, status, param, ext, fmt, ap);
	va_end(ap);
	return rc;
}

int pd_resp_no_content(struct pd_req *r)
{
	int rc = begin(r, 204, NULL, -1);

	return rc ? rc : pd_resp_flush(r);
}
