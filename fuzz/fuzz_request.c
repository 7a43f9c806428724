/* fcgi/request.c and fcgi/origin.c: a request made of FastCGI parameters,
 * which anyone who reaches the socket, and through nginx any client, sends.
 *
 * Input: lines. "NAME=value" is a parameter (as libfcgi hands them over);
 * "#trust" turns trust_proxy on; "#public=URL" is given to
 * pd_public_url_parse() and, when accepted, used as public_url.
 *
 * Invariants: pd_req_init returns 0, -EINVAL, -E2BIG or -ENOMEM; the link
 * root is http:// or https:// followed only by bytes a link may carry (no
 * CR, LF, space, quote, '@', '?', '#', nothing outside ASCII), its
 * authority has no '/', and its host is "localhost" or was sent in one of
 * the parameters links may be made from; an accepted public_url is in
 * normal form (parsing it again gives it back) and is the link root; an
 * accepted path starts with '/', is at most PD_PATH_MAX bytes, and when
 * made from REQUEST_URI has no empty, "." or ".." segment; the Accept
 * matcher returns for any header. Each parameter is a heap copy of its
 * exact size, so a read past its NUL is an ASan report. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fcgi/origin.h"
#include "fcgi/request_int.h"
#include "fuzz/fuzz.h"

#define MAXENV 32

static bool link_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-._~:/[]%", c) != NULL;
}

static const char *param(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; *envp; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* Was host[0..len) sent in a parameter links may be built from? */
static bool sent(char **envp, const char *host, size_t len)
{
	static const char *const names[] = {"HTTP_HOST", "HTTP_X_FORWARDED_HOST", "SERVER_NAME",
					    "SERVER_ADDR"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = param(envp, names[i]);

		/* (an IPv6 SERVER_ADDR is sent without the brackets) */
		if (v && (memmem(v, strlen(v), host, len) ||
			  (len > 2 && host[0] == '[' && memmem(v, strlen(v), host + 1, len - 2))))
			return true;
	}
	return len == 9 && !memcmp(host, "localhost", 9);
}

static void check_origin(const struct pd_req *r, char **envp, const char *public_url)
{
	const char *o = pd_req_origin(r), *auth, *end;
	size_t len;

	FUZZ_CHECK(o != NULL);
	len = strlen(o);
	FUZZ_CHECK(!strncmp(o, "http://", 7) || !strncmp(o, "https://", 8));
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(link_byte(o[i]));
	FUZZ_CHECK(r->origin_site_len <= len);
	FUZZ_CHECK(o[r->origin_site_len] == '\0' || o[r->origin_site_len] == '/');
	auth = strstr(o, "://") + 3;
	end = o + r->origin_site_len;
	FUZZ_CHECK(end > auth && !memchr(auth, '/', (size_t)(end - auth)));
	if (public_url) {
		FUZZ_CHECK(!strcmp(o, public_url));
		return;
	}
	FUZZ_CHECK(r->origin_site_len == len && len < PD_ORIGIN_MAX);
	/* The host: up to the port's ':' (after a "]" for IPv6). */
	{
		const char *h_end = memchr(auth, auth[0] == '[' ? ']' : ':', (size_t)(end - auth));

		if (auth[0] == '[')
			FUZZ_CHECK(h_end++ != NULL);
		else if (!h_end)
			h_end = end;
		FUZZ_CHECK(sent(envp, auth, (size_t)(h_end - auth)));
	}
}

static void check_public_url(const char *in, char *out)
{
	char again[PD_PUBLIC_URL_MAX + 1];
	const char *why = NULL;
	int rc = pd_public_url_parse(in, out, PD_PUBLIC_URL_MAX + 1, &why);

	FUZZ_CHECK(rc == 0 || (rc == -EINVAL && why != NULL));
	if (rc < 0) {
		out[0] = '\0';
		return;
	}
	FUZZ_CHECK(strlen(out) <= PD_PUBLIC_URL_MAX);
	for (const char *p = out; *p; p++)
		FUZZ_CHECK(link_byte(*p));
	FUZZ_CHECK(pd_public_url_parse(out, again, sizeof(again), &why) == 0);
	FUZZ_CHECK(!strcmp(again, out));
	FUZZ_CHECK(out[strlen(out) - 1] != '/');
}

static void check_path(const struct pd_req *r, char **envp)
{
	const char *p = r->path, *v;
	size_t len = strlen(p);

	FUZZ_CHECK(p[0] == '/' && len <= PD_PATH_MAX);
	if (((v = param(envp, "DOCUMENT_URI")) && *v) || ((v = param(envp, "SCRIPT_NAME")) && *v))
		return;
	/* From REQUEST_URI: every segment but a trailing empty one is a name. */
	for (size_t i = 0; i < len;) {
		size_t s = i + 1, n = strcspn(p + s, "/");

		FUZZ_CHECK(!(n == 1 && p[s] == '.') && !(n == 2 && p[s] == '.' && p[s + 1] == '.'));
		FUZZ_CHECK(n > 0 || s == len);
		i = s + n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *envp[MAXENV + 1], public_url[PD_PUBLIC_URL_MAX + 1] = "";
	struct pd_server_opts opts = {0};
	FCGX_Request fcgx = {.ipcFd = -1, .envp = envp};
	const char *s = (const char *)data, *end = s + size;
	struct pd_req r;
	size_t n = 0;
	int rc;

	while (s < end && n < MAXENV) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = (size_t)((nl ? nl : end) - s);
		char *line = malloc(len + 1);

		FUZZ_CHECK(line != NULL);
		memcpy(line, s, len);
		line[len] = '\0';
		s += len + 1;
		if (strlen(line) != len) { /* a NUL: C strings stop there anyway */
			free(line);
			continue;
		}
		if (!strcmp(line, "#trust")) {
			opts.trust_proxy = true;
			free(line);
		} else if (!strncmp(line, "#public=", 8)) {
			check_public_url(line + 8, public_url);
			free(line);
		} else {
			envp[n++] = line;
		}
	}
	envp[n] = NULL;
	opts.public_url = public_url[0] ? public_url : NULL;

	rc = pd_req_init(&r, &fcgx, &opts);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
	check_origin(&r, envp, opts.public_url);
	if (rc == 0) {
		check_path(&r, envp);
		FUZZ_CHECK(r.method && *r.method);
		/* The Accept matcher: any header, any of the types we offer. */
		pd_req_accepts(&r, "text/plain");
		pd_req_accepts(&r, "text/html; charset=utf-8");
		pd_req_accepts(&r, "application/speedscope+json");
	} else if (rc == -EINVAL) {
		FUZZ_CHECK(r.path[0] != '/' || !strcmp(r.method, "-"));
	}
	pd_req_release(&r);
	for (size_t i = 0; i < n; i++)
		free(envp[i]);
	return 0;
}
