/* fcgi/request.c and fcgi/origin.c: what a request is made of, from the
 * FastCGI parameters a web server (or anyone who reaches the socket) sends.
 * Most cases fill a request from a parameter list with pd_req_init(); the
 * last ones speak FastCGI over a real socket to pd_req_serve(), so that the
 * answer itself (status line, Location, body) is what is checked. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "fcgi/origin.h"
#include "fcgi/request_int.h"
#include "fcgi/response.h"
#include "fcgi/server.h"

#define MAXENV 16

/* A request filled from "NAME=value" strings (NULL-terminated). */
struct fixture {
	FCGX_Request fcgx;
	char *envp[MAXENV + 1];
	struct pd_server_opts opts;
	struct pd_req r;
	int rc;
};

static void fill(struct fixture *f, const char *const *env)
{
	size_t n = 0;

	memset(&f->fcgx, 0, sizeof(f->fcgx));
	for (; env[n]; n++) {
		assert_true(n < MAXENV);
		f->envp[n] = (char *)env[n];
	}
	f->envp[n] = NULL;
	f->fcgx.envp = f->envp;
	f->fcgx.ipcFd = -1;
	f->rc = pd_req_init(&f->r, &f->fcgx, &f->opts);
}

static void done(struct fixture *f)
{
	pd_req_release(&f->r);
}

/* The origin made from env, with trust_proxy and public_url as given. */
static void expect_origin(const char *want, bool trust, const char *const *env)
{
	struct fixture f = {.opts = {.trust_proxy = trust}};

	fill(&f, env);
	assert_int_equal(f.rc, 0);
	assert_string_equal(pd_req_origin(&f.r), want);
	/* Without public_url, the origin has no path: all of it is the site. */
	assert_int_equal(f.r.origin_site_len, strlen(want));
	done(&f);
}

#define ENV(...) ((const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/", __VA_ARGS__, NULL})

static void test_host_and_server_port(void **state)
{
	/* Debian's $host has no port: SERVER_PORT is added unless default. */
	expect_origin("http://example.com:8080", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=8080"));
	expect_origin("http://example.com", false, ENV("HTTP_HOST=example.com", "SERVER_PORT=80"));
	expect_origin("http://example.com", false, ENV("HTTP_HOST=example.com"));
	/* A port in the host wins (nginx >= 1.30: $host$is_request_port$request_port). */
	expect_origin("http://example.com:9000", false,
		      ENV("HTTP_HOST=example.com:9000", "SERVER_PORT=8080"));
	expect_origin("http://example.com", false,
		      ENV("HTTP_HOST=example.com:80", "SERVER_PORT=8080"));
	/* RFC 3986 allows an empty port: it means none. */
	expect_origin("http://example.com:8080", false,
		      ENV("HTTP_HOST=example.com:", "SERVER_PORT=8080"));
	/* The default depends on the scheme. */
	expect_origin("https://example.com", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=443", "REQUEST_SCHEME=https"));
	expect_origin("https://example.com:80", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=80", "HTTPS=on"));
	expect_origin("http://example.com:443", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=443"));
	/* IPv6, IPv4, names with '_'. */
	expect_origin("http://[::1]:8080", false, ENV("HTTP_HOST=[::1]", "SERVER_PORT=8080"));
	expect_origin("http://[2001:db8::7]:8443", false, ENV("HTTP_HOST=[2001:db8::7]:8443"));
	expect_origin("http://10.1.2.3:8080", false, ENV("HTTP_HOST=10.1.2.3", "SERVER_PORT=8080"));
	expect_origin("http://my_service", false, ENV("HTTP_HOST=my_service"));
	/* A SERVER_PORT that is no port is left out, never copied. */
	expect_origin("http://example.com", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=80\r\nX: y"));
	expect_origin("http://example.com", false, ENV("HTTP_HOST=example.com", "SERVER_PORT=0"));
	expect_origin("http://example.com", false,
		      ENV("HTTP_HOST=example.com", "SERVER_PORT=65536"));
}

static void test_scheme(void **state)
{
	expect_origin("https://h", false, ENV("HTTP_HOST=h", "REQUEST_SCHEME=https"));
	expect_origin("https://h", false, ENV("HTTP_HOST=h", "HTTPS=on"));
	expect_origin("https://h", false, ENV("HTTP_HOST=h", "HTTPS=ON"));
	expect_origin("http://h", false, ENV("HTTP_HOST=h", "HTTPS=off"));
	/* Anything but http/https is not a scheme of ours. */
	expect_origin("http://h", false, ENV("HTTP_HOST=h", "REQUEST_SCHEME=javascript"));
	expect_origin("http://h", false, ENV("HTTP_HOST=h", "REQUEST_SCHEME=HTTPS"));
}

static const char *const hostile[] = {
	"evil.example\r\nSet-Cookie: a=b",
	"evil.example\n",
	"evil example",
	"evil.example\"><script>",
	"evil.example'",
	"user@evil.example",
	"evil.example/path",
	"evil.example\\x",
	"evil.example?x",
	"evil.example#x",
	"h\xc3\xa9llo.example",
	"\xff",
	"",
	":8080",
	"_",
	"*.example.com",
	"-evil.example",
	".evil.example",
	"~evil",
	"evil.example:0",
	"evil.example:65536",
	"evil.example:99999999999999999999",
	"evil.example:8o",
	"evil.example:+80",
	"evil.example: 80",
	"a:b:c",
	"::1",
	"[::1",
	"[::1]x",
	"[zz::1]",
	"[fe80::1%eth0]",
	"[fe80::1%25eth0]",
	"[v1.fe80::a+en1]",
	"[]",
	"[1.2.3.4]",
	NULL,
};

static void test_hostile_host_falls_back(void **state)
{
	char env_host[400], overlong[300], want[300];

	memset(overlong, 'a', sizeof(overlong) - 1);
	overlong[sizeof(overlong) - 1] = '\0';
	for (size_t i = 0; hostile[i] || i == 0; i++) {
		const char *h = hostile[i] ? hostile[i] : overlong;

		snprintf(env_host, sizeof(env_host), "HTTP_HOST=%s", h);
		/* SERVER_NAME first, with SERVER_PORT. */
		expect_origin("http://server.example:8080", false,
			      ENV(env_host, "SERVER_NAME=server.example", "SERVER_PORT=8080"));
		/* The same value as a trusted X-Forwarded-Host is passed over too. */
		snprintf(env_host, sizeof(env_host), "HTTP_X_FORWARDED_HOST=%s", h);
		expect_origin("http://good.example:8080", true,
			      ENV(env_host, "HTTP_HOST=good.example", "SERVER_PORT=8080"));
	}
	/* A 253-byte name is a host; 254 bytes are not. */
	memset(overlong, 'a', 253);
	overlong[253] = '\0';
	snprintf(env_host, sizeof(env_host), "HTTP_HOST=%s", overlong);
	snprintf(want, sizeof(want), "http://%.253s", overlong);
	expect_origin(want, false, ENV(env_host, "SERVER_NAME=s"));
	overlong[253] = 'a';
	overlong[254] = '\0';
	snprintf(env_host, sizeof(env_host), "HTTP_HOST=%s", overlong);
	expect_origin("http://s", false, ENV(env_host, "SERVER_NAME=s"));
}

static void test_fallbacks(void **state)
{
	/* nginx's catch-all server_name "_": the address, IPv6 bracketed. */
	expect_origin("http://[::1]:8080", false,
		      ENV("HTTP_HOST=a b", "SERVER_NAME=_", "SERVER_ADDR=::1", "SERVER_PORT=8080"));
	expect_origin("http://10.0.0.1", false,
		      ENV("SERVER_NAME=_", "SERVER_ADDR=10.0.0.1", "SERVER_PORT=80"));
	expect_origin("http://[fe80::1]", false, ENV("SERVER_NAME=*.x", "SERVER_ADDR=fe80::1"));
	/* Nothing usable at all. */
	expect_origin("http://localhost", false, ENV("HTTP_HOST=\r\n", "SERVER_ADDR=x y"));
	expect_origin("http://localhost:81", false, ENV("SERVER_PORT=81"));
	expect_origin("https://localhost", false, ENV("HTTPS=on"));
}

static void test_trust_proxy(void **state)
{
#define FWD "HTTP_X_FORWARDED_PROTO=https", "HTTP_X_FORWARDED_HOST=diag.example"
	/* Off: the forwarded headers are not looked at. */
	expect_origin("http://example.com:8080", false,
		      ENV(FWD, "HTTP_X_FORWARDED_PORT=8443", "HTTP_HOST=example.com",
			  "SERVER_PORT=8080"));
	/* On: they build the link; nginx's own port is not the proxy's. */
	expect_origin("https://diag.example", true,
		      ENV(FWD, "HTTP_HOST=example.com", "SERVER_PORT=8080"));
	expect_origin("https://diag.example:8443", true,
		      ENV(FWD, "HTTP_X_FORWARDED_PORT=8443", "HTTP_HOST=example.com",
			  "SERVER_PORT=8080"));
	expect_origin("https://diag.example:9443", true,
		      ENV("HTTP_X_FORWARDED_PROTO=https", "HTTP_X_FORWARDED_HOST=diag.example:9443",
			  "HTTP_X_FORWARDED_PORT=8443"));
	expect_origin("https://diag.example", true,
		      ENV("HTTP_X_FORWARDED_PROTO=https", "HTTP_X_FORWARDED_HOST=diag.example",
			  "HTTP_X_FORWARDED_PORT=443"));
	/* A list: the first element (the client's side), trimmed. */
	expect_origin("https://a.example", true,
		      ENV("HTTP_X_FORWARDED_PROTO= HTTPS , http",
			  "HTTP_X_FORWARDED_HOST=\ta.example , b.example"));
	/* Only the proto: the request's host, and no SERVER_PORT. */
	expect_origin(
		"https://example.com", true,
		ENV("HTTP_X_FORWARDED_PROTO=https", "HTTP_HOST=example.com", "SERVER_PORT=8080"));
	/* Only the port. */
	expect_origin(
		"http://example.com:8000", true,
		ENV("HTTP_X_FORWARDED_PORT=8000", "HTTP_HOST=example.com", "SERVER_PORT=8080"));
	/* Bad values are ignored, one by one. */
	expect_origin("http://example.com:8080", true,
		      ENV("HTTP_X_FORWARDED_PROTO=gopher", "HTTP_X_FORWARDED_PORT=0",
			  "HTTP_HOST=example.com", "SERVER_PORT=8080"));
	expect_origin(
		"http://example.com:8080", true,
		ENV("HTTP_X_FORWARDED_PORT=80x", "HTTP_HOST=example.com", "SERVER_PORT=8080"));
	expect_origin("https://example.com", true,
		      ENV("HTTP_X_FORWARDED_PROTO=https", "HTTP_X_FORWARDED_HOST=evil/x",
			  "HTTP_HOST=example.com", "SERVER_PORT=8080"));
#undef FWD
}

static void test_public_url_wins(void **state)
{
	struct fixture f = {.opts = {.trust_proxy = true, .public_url = "https://gw.example/pd"}};

	fill(&f, ENV("HTTP_HOST=evil.example", "HTTP_X_FORWARDED_HOST=evil2.example",
		     "SERVER_PORT=8080"));
	assert_int_equal(f.rc, 0);
	assert_string_equal(pd_req_origin(&f.r), "https://gw.example/pd");
	assert_int_equal(f.r.origin_site_len, strlen("https://gw.example"));
	done(&f);
}

static void expect_url(const char *in, const char *want)
{
	char out[PD_PUBLIC_URL_MAX + 1];
	const char *why = NULL;

	assert_int_equal(pd_public_url_parse(in, out, sizeof(out), &why), 0);
	assert_string_equal(out, want);
}

static void test_public_url_parse(void **state)
{
	static const char *const bad[] = {
		"",
		"example.com",
		"ftp://example.com",
		"http:/example.com",
		"http://",
		"http:///x",
		"http://a b",
		"http://user@example.com",
		"http://user:pw@example.com",
		"http://example.com:0",
		"http://example.com:65536",
		"http://example.com:x",
		"http://example.com/a?b",
		"http://example.com?b",
		"http://example.com/#f",
		"http://example.com/../x",
		"http://example.com/a/./b",
		"http://example.com/a/..",
		"http://example.com/a//b",
		"http://example.com/a b",
		"http://example.com/a\"b",
		"http://example.com/a<b",
		"http://example.com/%zz",
		"http://example.com/%4",
		"http://example.com/a\r\nb",
		"http://ex\xc3\xa4mple.com/",
		"http://[::1",
		"http://[fe80::1%25eth0]/",
		"http://_/",
		"http://example.com/a;b",
		"http://example.com/a@b",
		"http://example.com\\@evil.example",
		NULL,
	};
	char out[PD_PUBLIC_URL_MAX + 1], big[PD_PUBLIC_URL_MAX + 2];
	const char *why;

	expect_url("http://example.com", "http://example.com");
	expect_url("HTTPS://Example.com:443/", "https://Example.com");
	expect_url("https://example.com:8443/pd/", "https://example.com:8443/pd");
	expect_url("http://example.com:80/a/b~c/%2F//", "http://example.com/a/b~c/%2F");
	expect_url("http://[::1]:8080/x", "http://[::1]:8080/x");
	expect_url("http://10.0.0.1:", "http://10.0.0.1");
	for (size_t i = 0; bad[i]; i++) {
		why = NULL;
		if (pd_public_url_parse(bad[i], out, sizeof(out), &why) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
	}
	memcpy(big, "http://e.com/", 13);
	memset(big + 13, 'a', sizeof(big) - 14);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(pd_public_url_parse(big, out, sizeof(out), &why), -EINVAL);
	big[sizeof(big) - 2] = '\0'; /* exactly PD_PUBLIC_URL_MAX bytes */
	assert_int_equal(pd_public_url_parse(big, out, sizeof(out), &why), 0);
	assert_string_equal(out, big);
}

/* The path pd_req_init makes of REQUEST_URI alone (another web server, or
 * a bare FastCGI client), or the error. */
static int path_of(const char *uri, char *path, size_t len)
{
	struct fixture f = {0};
	char *env_uri = malloc(strlen(uri) + 13);
	int rc;

	assert_non_null(env_uri);
	sprintf(env_uri, "REQUEST_URI=%s", uri);
	fill(&f, (const char *const[]){"REQUEST_METHOD=GET", env_uri, NULL});
	rc = f.rc;
	snprintf(path, len, "%s", f.r.path);
	done(&f);
	free(env_uri);
	return rc;
}

static void expect_path(const char *uri, const char *want)
{
	char path[8192];

	if (path_of(uri, path, sizeof(path)) != 0)
		fail_msg("refused: %s", uri);
	assert_string_equal(path, want);
}

static void expect_bad_path(const char *uri, int err)
{
	char path[8192];

	assert_int_equal(path_of(uri, path, sizeof(path)), err);
	assert_string_equal(path, "");
}

static void test_path_from_uri(void **state)
{
	char *uri = malloc(PD_PATH_MAX + 2);

	/* Percent-decoded, the query and fragment cut off. */
	expect_path("/api/processes", "/api/processes");
	expect_path("/api/processes%2F12%2fthreads", "/api/processes/12/threads");
	expect_path("/api/%70rocesses?allUsers=true&x=%zz", "/api/processes");
	expect_path("/api/processes#frag?", "/api/processes");
	expect_path("/a%3Fb", "/a?b");
	expect_path("/a+b", "/a+b");
	/* Dot segments and repeated slashes, as nginx makes DOCUMENT_URI. */
	expect_path("/a/./b/../c", "/a/c");
	expect_path("/a//b///c", "/a/b/c");
	expect_path("/a/b/", "/a/b/");
	expect_path("/a/b/.", "/a/b/");
	expect_path("/a/b/..", "/a/");
	expect_path("/a/..", "/");
	expect_path("/", "/");
	expect_path("//", "/");
	expect_path("/a/%2e%2e/b", "/b");
	expect_path("/.a/..b/...", "/.a/..b/...");
	/* Refused: a 400. */
	expect_bad_path("/..", -EINVAL);
	expect_bad_path("/a/../..", -EINVAL);
	expect_bad_path("/%2e%2e/etc", -EINVAL);
	expect_bad_path("/%2e%2E/", -EINVAL);
	expect_bad_path("/x%zz", -EINVAL);
	expect_bad_path("/x%4", -EINVAL);
	expect_bad_path("/x%00y", -EINVAL);
	expect_bad_path("x", -EINVAL);
	expect_bad_path("http://example.com/x", -EINVAL);
	expect_bad_path("?x=1", -EINVAL);
	/* Overlong: 414, counted before decoding. */
	assert_non_null(uri);
	uri[0] = '/';
	memset(uri + 1, 'a', PD_PATH_MAX - 1);
	uri[PD_PATH_MAX] = '\0';
	{
		char *path = malloc(PD_PATH_MAX + 1);

		assert_non_null(path);
		assert_int_equal(path_of(uri, path, PD_PATH_MAX + 1), 0);
		assert_int_equal(strlen(path), PD_PATH_MAX);
		free(path);
	}
	strcat(uri, "a");
	expect_bad_path(uri, -E2BIG);
	free(uri);
}

static void test_path_sources(void **state)
{
	struct fixture f = {0};

	/* nginx's DOCUMENT_URI first, then SCRIPT_NAME, then REQUEST_URI. */
	fill(&f, (const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/doc",
				       "SCRIPT_NAME=/script", "REQUEST_URI=/uri", NULL});
	assert_int_equal(f.rc, 0);
	assert_string_equal(f.r.path, "/doc");
	done(&f);
	fill(&f, (const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=", "SCRIPT_NAME=/script",
				       "REQUEST_URI=/uri", NULL});
	assert_string_equal(f.r.path, "/script");
	done(&f);
	/* A path from nginx that does not start with '/' is refused too. */
	fill(&f, (const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=doc", NULL});
	assert_int_equal(f.rc, -EINVAL);
	done(&f);
	/* No path at all. */
	fill(&f, (const char *const[]){"REQUEST_METHOD=GET", NULL});
	assert_int_equal(f.rc, -EINVAL);
	done(&f);
}

static void test_no_method(void **state)
{
	struct fixture f = {0};

	fill(&f, (const char *const[]){"DOCUMENT_URI=/x", NULL});
	assert_int_equal(f.rc, -EINVAL);
	assert_string_equal(f.r.method, "-"); /* what the log line shows */
	done(&f);
	fill(&f, (const char *const[]){"REQUEST_METHOD=", "DOCUMENT_URI=/x", NULL});
	assert_int_equal(f.rc, -EINVAL);
	done(&f);
	fill(&f, (const char *const[]){"REQUEST_METHOD=HEAD", "DOCUMENT_URI=/x", NULL});
	assert_int_equal(f.rc, 0);
	assert_true(pd_req_is_head(&f.r));
	done(&f);
}

/* -- whole requests over a real socket -------------------------------------- */

/* The one route of these tests: 303 to origin + "/there", the origin as body. */
static int h_echo(struct pd_req *r)
{
	char loc[PD_PUBLIC_URL_MAX + 16];

	snprintf(loc, sizeof(loc), "%s/there", pd_req_origin(r));
	pd_resp_header(r, "Location", loc);
	return pd_resp_bytes(r, 303, "text/plain", pd_req_origin(r), strlen(pd_req_origin(r)));
}

/* The file route's file (a temp file), the part it sends and the length
 * it promises. */
static struct {
	int fd;
	unsigned long long offset, length;
	long long promised;
	int rc;
} file_route;

/* The body from file_route's fd through pd_resp_write_fd(). */
static int h_file(struct pd_req *r)
{
	int rc = pd_resp_begin(r, 200, "application/octet-stream", file_route.promised);

	if (!rc)
		rc = pd_resp_write_fd(r, file_route.fd, file_route.offset, file_route.length);
	file_route.rc = rc;
	return rc;
}

static const struct pd_route routes[] = {
	{"GET", "", "/here", h_echo, 0},
	{"GET", "", "/file", h_file, 0},
};

static void put_record(struct strbuf *sb, int type, const void *data, size_t len)
{
	unsigned char h[8] = {
		1, (unsigned char)type, 0, 1, (unsigned char)(len >> 8), (unsigned char)len, 0, 0};

	assert_true(len < 65536);
	strbuf_add(sb, h, 8);
	strbuf_add(sb, data, len);
}

static void put_len(struct strbuf *sb, size_t n)
{
	if (n < 128) {
		strbuf_addch(sb, (char)n);
	} else {
		unsigned char b[4] = {(unsigned char)(0x80 | n >> 24), (unsigned char)(n >> 16),
				      (unsigned char)(n >> 8), (unsigned char)n};

		strbuf_add(sb, b, 4);
	}
}

/* Sends env (NAME=value strings) as one FastCGI request, has pd_req_serve()
 * answer it, and returns the CGI response (headers and body) it wrote. */
static char *serve(const char *const *env, const struct pd_server_opts *extra)
{
	static bool init;
	char dir[] = "/tmp/pd-test-request-XXXXXX", spec[128];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct strbuf req = STRBUF_INIT, params = STRBUF_INIT, out = STRBUF_INIT;
	static const unsigned char begin[8] = {0, 1, 0}; /* FCGI_RESPONDER, no keep-alive */
	struct pd_server_opts opts = *extra;
	FCGX_Request fcgx;
	int lfd, cfd;
	unsigned char buf[65536 + 8];
	size_t have = 0;
	ssize_t n;

	if (!init) {
		assert_int_equal(FCGX_Init(), 0);
		init = true;
	}
	assert_non_null(mkdtemp(dir));
	snprintf(spec, sizeof(spec), "unix:%s/s.sock", dir);
	lfd = pd_server_listen(spec);
	assert_true(lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s.sock", dir);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

	for (size_t i = 0; env[i]; i++) {
		const char *eq = strchr(env[i], '=');

		put_len(&params, (size_t)(eq - env[i]));
		put_len(&params, strlen(eq + 1));
		strbuf_add(&params, env[i], (size_t)(eq - env[i]));
		strbuf_addstr(&params, eq + 1);
	}
	put_record(&req, 1, begin, 8);
	put_record(&req, 4, params.buf, params.len);
	put_record(&req, 4, "", 0);
	put_record(&req, 5, "", 0);
	assert_false(req.failed || params.failed);
	assert_int_equal(write(cfd, req.buf, req.len), (ssize_t)req.len);

	/* One thread: the request waits in the socket, the small answer in
	 * the other direction's buffer. */
	opts.no_auth = true;
	opts.routes = routes;
	opts.nroutes = sizeof(routes) / sizeof(routes[0]);
	assert_int_equal(FCGX_InitRequest(&fcgx, lfd, 0), 0);
	assert_true(FCGX_Accept_r(&fcgx) >= 0);
	pd_req_serve(&opts, &fcgx);
	FCGX_Finish_r(&fcgx);
	FCGX_Free(&fcgx, 1);

	/* The FCGI_STDOUT records, put together. */
	while ((n = read(cfd, buf + have, sizeof(buf) - have)) > 0) {
		have += (size_t)n;
		while (have >= 8) {
			size_t clen = (size_t)buf[4] << 8 | buf[5], total = 8 + clen + buf[6];

			if (have < total)
				break;
			if (buf[1] == 6)
				strbuf_add(&out, buf + 8, clen);
			memmove(buf, buf + total, have - total);
			have -= total;
		}
	}
	close(cfd);
	close(lfd);
	snprintf(spec, sizeof(spec), "%s/s.sock", dir);
	unlink(spec);
	rmdir(dir);
	strbuf_release(&req);
	strbuf_release(&params);
	assert_false(out.failed);
	return strbuf_detach(&out, NULL);
}

/* A file of n printable bytes whose pattern changes every record's
 * worth, so that a record lost, doubled or out of order shows. */
static int pattern_file(char *data, size_t n)
{
	char path[] = "/tmp/pd-test-file-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('A' + (i * 7 + i / 65528) % 26);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	return fd;
}

/* pd_resp_write_fd: the file's bytes (all, or a part from an offset) in
 * FastCGI records that serve() puts together: more than one record's
 * worth, so the split between records is crossed. */
static void test_write_fd_sends_the_file(void **state)
{
	static char data[100000];
	struct pd_server_opts o = {0};
	const char *const env[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/file", NULL};
	char *out, *body;

	(void)state;
	file_route.fd = pattern_file(data, sizeof(data));
	file_route.offset = 0;
	file_route.length = file_route.promised = sizeof(data);
	out = serve(env, &o);
	assert_int_equal(file_route.rc, 0);
	assert_non_null(strstr(out, "Content-Length: 100000\r\n"));
	body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_int_equal(strlen(body), sizeof(data));
	assert_memory_equal(body, data, sizeof(data));
	free(out);

	/* A part across the first record's end, from an odd offset. */
	file_route.offset = 1001;
	file_route.length = file_route.promised = 70001;
	out = serve(env, &o);
	assert_int_equal(file_route.rc, 0);
	body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_int_equal(strlen(body), 70001);
	assert_memory_equal(body, data + 1001, 70001);
	free(out);
	close(file_route.fd);
}

/* A file shorter than the length promised: the response ends short
 * (-EIO) instead of going on with bytes that are not the file's. */
static void test_write_fd_short_file_cuts(void **state)
{
	static char data[30000];
	struct pd_server_opts o = {0};
	char *out, *body;

	(void)state;
	file_route.fd = pattern_file(data, sizeof(data));
	file_route.offset = 0;
	file_route.length = file_route.promised = 90000;
	out = serve((const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/file", NULL}, &o);
	assert_int_equal(file_route.rc, -EIO);
	body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_true(strlen(body) < 90000);
	assert_memory_equal(body, data, strlen(body));
	free(out);
	close(file_route.fd);
}

static void test_no_method_is_400(void **state)
{
	struct pd_server_opts o = {0};
	char *out = serve((const char *const[]){"DOCUMENT_URI=/here", "HTTP_HOST=h", NULL}, &o);

	assert_non_null(strstr(out, "Status: 400 Bad Request\r\n"));
	assert_non_null(strstr(out, "Content-Type: application/problem+json"));
	assert_non_null(strstr(out, "no usable method or path"));
	free(out);
	/* And a path from REQUEST_URI that is no path. */
	out = serve((const char *const[]){"REQUEST_METHOD=GET", "REQUEST_URI=/../here", NULL}, &o);
	assert_non_null(strstr(out, "Status: 400 Bad Request\r\n"));
	free(out);
}

static void test_overlong_path_is_414(void **state)
{
	struct pd_server_opts o = {0};
	char *uri = malloc(PD_PATH_MAX + 32), *out;

	assert_non_null(uri);
	strcpy(uri, "REQUEST_URI=/");
	memset(uri + 13, 'a', PD_PATH_MAX);
	uri[13 + PD_PATH_MAX] = '\0';
	out = serve((const char *const[]){"REQUEST_METHOD=GET", uri, NULL}, &o);
	assert_non_null(strstr(out, "Status: 414 URI Too Long\r\n"));
	free(out);
	free(uri);
}

static void test_hostile_host_never_reaches_the_answer(void **state)
{
	struct pd_server_opts o = {0};
	char env_host[400];

	for (size_t i = 0; hostile[i]; i++) {
		char *out;

		snprintf(env_host, sizeof(env_host), "HTTP_HOST=%s", hostile[i]);
		out = serve((const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/here",
						  env_host, "SERVER_NAME=_",
						  "SERVER_ADDR=127.0.0.1", "SERVER_PORT=8080",
						  NULL},
			    &o);
		assert_non_null(strstr(out, "Status: 303 See Other\r\n"));
		if (!strstr(out, "Location: http://127.0.0.1:8080/there\r\n"))
			fail_msg("Host %s: %s", hostile[i], out);
		assert_non_null(strstr(out, "\r\n\r\nhttp://127.0.0.1:8080"));
		/* (":8080" is in the answer, as the fallback's port) */
		if (strlen(hostile[i]) > 3 && !strstr("http://127.0.0.1:8080", hostile[i]) &&
		    strstr(out, hostile[i]))
			fail_msg("Host %s is in the answer: %s", hostile[i], out);
		free(out);
	}
}

static void test_public_url_in_the_answer(void **state)
{
	struct pd_server_opts o = {.public_url = "https://gw.example:8443/pd"};
	char *out = serve((const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/here",
						"HTTP_HOST=evil.example", NULL},
			  &o);

	assert_non_null(strstr(out, "Location: https://gw.example:8443/pd/there\r\n"));
	assert_null(strstr(out, "evil"));
	free(out);
}

/* Range and If-Range as a resuming client sends them (fcgi/request.h). */
static void expect_range(const char *range, unsigned long long size, int want,
			 unsigned long long first, unsigned long long last)
{
	char buf[128];
	const char *env[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/x", buf, NULL};
	unsigned long long a = 7, b = 7;
	struct fixture f = {0};

	snprintf(buf, sizeof(buf), "HTTP_RANGE=%s", range);
	fill(&f,
	     range ? env : (const char *const[]){"REQUEST_METHOD=GET", "DOCUMENT_URI=/x", NULL});
	assert_int_equal(f.rc, 0);
	assert_int_equal(pd_req_range(&f.r, size, &a, &b), want);
	if (want == 1) {
		assert_true(a == first);
		assert_true(b == last);
	}
	done(&f);
}

static void test_range(void **state)
{
	(void)state;
	expect_range(NULL, 100, 0, 0, 0);
	expect_range("bytes=10-", 100, 1, 10, 99);
	expect_range("bytes=10-19", 100, 1, 10, 19);
	expect_range("bytes=10-1000", 100, 1, 10, 99);
	expect_range("bytes=99-", 100, 1, 99, 99);
	expect_range("bytes=-30", 100, 1, 70, 99);
	expect_range("bytes=-300", 100, 1, 0, 99);
	expect_range("BYTES= 0-", 100, 1, 0, 99);
	expect_range("bytes=100-", 100, -ERANGE, 0, 0);
	expect_range("bytes=-0", 100, -ERANGE, 0, 0);
	/* Not taken: the whole body. */
	expect_range("bytes=0-1,5-6", 100, 0, 0, 0);
	expect_range("bytes=20-10", 100, 0, 0, 0);
	expect_range("bytes=x-", 100, 0, 0, 0);
	expect_range("bytes=", 100, 0, 0, 0);
	expect_range("items=0-", 100, 0, 0, 0);
	expect_range("bytes=+1-", 100, 0, 0, 0);
}

static void expect_if_range(const char *if_range, bool with_range, const char *want)
{
	char buf[128], tag[8];
	const char *env[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/x", buf,
			     with_range ? "HTTP_RANGE=bytes=1-" : NULL, NULL};
	const char *got;
	struct fixture f = {0};

	snprintf(buf, sizeof(buf), "HTTP_IF_RANGE=%s", if_range);
	fill(&f, env);
	got = pd_req_if_range(&f.r, tag, sizeof(tag));
	if (want)
		assert_string_equal(got, want);
	else
		assert_null(got);
	done(&f);
}

static void test_if_range(void **state)
{
	(void)state;
	expect_if_range("\"abc\"", true, "abc");
	expect_if_range("\"abc\"", false, NULL);
	expect_if_range("W/\"abc\"", true, NULL);
	expect_if_range("Fri, 04 Dec 2026 18:00:00 GMT", true, NULL);
	expect_if_range("\"abc", true, NULL);
	expect_if_range("\"abc\"x", true, NULL);
	expect_if_range("\"\"", true, NULL);
	expect_if_range("\"1234567\"", true, "1234567");
	expect_if_range("\"12345678\"", true, NULL); /* longer than tag holds */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_and_server_port),
		cmocka_unit_test(test_scheme),
		cmocka_unit_test(test_hostile_host_falls_back),
		cmocka_unit_test(test_fallbacks),
		cmocka_unit_test(test_trust_proxy),
		cmocka_unit_test(test_public_url_wins),
		cmocka_unit_test(test_public_url_parse),
		cmocka_unit_test(test_path_from_uri),
		cmocka_unit_test(test_path_sources),
		cmocka_unit_test(test_no_method),
		cmocka_unit_test(test_no_method_is_400),
		cmocka_unit_test(test_write_fd_sends_the_file),
		cmocka_unit_test(test_write_fd_short_file_cuts),
		cmocka_unit_test(test_overlong_path_is_414),
		cmocka_unit_test(test_hostile_host_never_reaches_the_answer),
		cmocka_unit_test(test_public_url_in_the_answer),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_if_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
