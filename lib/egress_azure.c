/* The azureBlobStorage egress provider: block blobs over libcurl
 * (lib/egress_azure.h says what it promises). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/strbuf.h"
#include "lib/egress_azure.h"
#include "lib/memcopy.h" /* pd_pwrite_all */

#define AZ_API_VERSION "2021-08-06"
#define AZ_TRIES 3
#define AZ_BLOCK_MIN 1024u
#define AZ_BLOCK_MAX (4000u << 20) /* Put Block's limit since API version 2019-12-12 */
#define AZ_PARALLEL_MAX 64u
#define AZ_BLOCKS_MAX 50000u /* a block blob's limit */

/* --- the account: what every request needs --------------------------------- */

struct az_account {
	char *base;         /* scheme://host[:port][/ACCOUNT] without a trailing '/' */
	char *account;      /* the account name */
	bool path_style;    /* the account is the first path segment */
	unsigned char *key; /* decoded account key, NULL with a SAS */
	size_t keylen;
	char *sas;          /* the SAS query without '?', NULL with a key */
	const char *secret_key, *secret_sas; /* the provider's, for redaction only */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Removes every occurrence of the secrets (the key, the SAS token and its
 * sig value) from err: a last guard, the messages are built without them. */
static void redact(const struct az_account *a, char *err)
{
	const char *secrets[3] = {a ? a->secret_key : NULL, a ? a->secret_sas : NULL, NULL};
	char sig[256] = "";
	const char *s;
	int i;

	if (a && a->sas && (s = strstr(a->sas, "sig="))) {
		size_t n = strcspn(s + 4, "&");

		if (n && n < sizeof(sig)) {
			memcpy(sig, s + 4, n);
			sig[n] = 0;
			secrets[2] = sig;
		}
	}
	for (i = 0; i < 3; i++) {
		char *p;
		size_t n;

		/* "[redacted]" must not be longer than what it replaces */
		if (!secrets[i] || strlen(secrets[i]) < 10)
			continue;
		n = strlen(secrets[i]);
		while ((p = strstr(err, secrets[i])))
			memmove(p + 10, p + n, strlen(p + n) + 1), memcpy(p, "[redacted]", 10);
	}
}

static void account_free(struct az_account *a)
{
	if (!a)
		return;
	free(a->base);
	free(a->account);
	if (a->key)
		OPENSSL_cleanse(a->key, a->keylen);
	free(a->key);
	if (a->sas)
		OPENSSL_cleanse(a->sas, strlen(a->sas));
	free(a->sas);
	memset(a, 0, sizeof(*a));
}

static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *buf;
	int m;

	while (n && isspace((unsigned char)in[n - 1]))
		n--;
	if (n == 0 || n % 4)
		return -EINVAL;
	if (in[n - 1] == '=')
		pad++;
	if (n > 1 && in[n - 2] == '=')
		pad++;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	m = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if (m < 0 || (size_t)m < pad) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = (size_t)m - pad;
	return 0;
}

static void b64_encode(const unsigned char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int account_init(const struct pd_egress_provider *p, struct az_account *a, char *err,
			size_t errlen)
{
	const char *url = p->account_url, *host, *slash;
	size_t n;

	memset(a, 0, sizeof(*a));
	pthread_once(&curl_once, curl_init_once);
	if (!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))) {
		snprintf(err, errlen, "egress %s: account_url must be an http(s) URL", p->name);
		return -EINVAL;
	}
	if (!p->container || !*p->container) {
		snprintf(err, errlen, "egress %s: no container", p->name);
		return -EINVAL;
	}
	n = strlen(url);
	while (n && url[n - 1] == '/')
		n--;
	a->base = strndup(url, n);
	if (!a->base)
		return -ENOMEM;
	host = strstr(a->base, "://") + 3;
	slash = strchr(host, '/');
	if (slash && slash[1]) {
		/* path-style: http://127.0.0.1:10000/devstoreaccount1 */
		size_t an = strcspn(slash + 1, "/?");

		if (slash[1 + an]) {
			snprintf(err, errlen,
				 "egress %s: account_url must be the account's URL, with no path after the account name",
				 p->name);
			return -EINVAL;
		}
		a->account = strndup(slash + 1, an);
		a->path_style = true;
	} else {
		/* host-style: https://ACCOUNT.blob.core.windows.net */
		a->account = strndup(host, strcspn(host, ".:/"));
	}
	if (!a->account)
		return -ENOMEM;
	if (!*a->account) {
		snprintf(err, errlen, "egress %s: no account name in account_url", p->name);
		return -EINVAL;
	}
	a->secret_key = p->account_key;
	a->secret_sas = p->sas_token;
	if (p->account_key && *p->account_key) {
		if (b64_decode(p->account_key, &a->key, &a->keylen) < 0 || a->keylen == 0) {
			snprintf(err, errlen, "egress %s: account_key is not base64", p->name);
			return -EINVAL;
		}
	} else if (p->sas_token && *p->sas_token) {
		const char *s = p->sas_token[0] == '?' ? p->sas_token + 1 : p->sas_token;

		a->sas = strdup(s);
		if (!a->sas)
			return -ENOMEM;
		if (!strstr(a->sas, "sig=")) {
			snprintf(err, errlen, "egress %s: sas_token has no sig= parameter", p->name);
			return -EINVAL;
		}
	} else {
		snprintf(err, errlen, "egress %s: neither account_key nor sas_token is set", p->name);
		return -EINVAL;
	}
	return 0;
}

/* Appends s percent-encoded (unreserved characters and, keep_slash, '/'
 * kept). */
static int add_escaped(struct strbuf *sb, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
			strbuf_addch(sb, (char)c);
		else {
			strbuf_addch(sb, '%');
			strbuf_addch(sb, hex[c >> 4]);
			strbuf_addch(sb, hex[c & 15]);
		}
	}
	return sb->failed ? -ENOMEM : 0;
}

/* --- one request ------------------------------------------------------------ */

struct az_query {
	const char *name, *value; /* value unescaped */
};

struct az_hdr {
	const char *name, *value; /* name lower-case, x-ms-* */
};

struct az_resp {
	long status;
	struct strbuf body;  /* error bodies, listings */
	int fd;              /* >= 0: a 2xx body goes here (Get Blob) */
	uint64_t off;
	int write_rc;
	char code[128];      /* x-ms-error-code */
};

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct az_resp *r = arg;
	size_t len = size * n;
	static const char name[] = "x-ms-error-code:";

	if (len > sizeof(name) - 1 && !strncasecmp(buf, name, sizeof(name) - 1)) {
		const char *v = buf + sizeof(name) - 1;
		size_t vl = len - (sizeof(name) - 1);

		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && isspace((unsigned char)v[vl - 1]))
			vl--;
		if (vl >= sizeof(r->code))
			vl = sizeof(r->code) - 1;
		memcpy(r->code, v, vl);
		r->code[vl] = 0;
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct az_resp *r = arg;
	size_t len = size * n;

	if (r->fd >= 0 && r->status >= 200 && r->status < 300) {
		int rc = pd_pwrite_all(r->fd, buf, len, r->off);

		if (rc < 0) {
			r->write_rc = rc;
			return 0;
		}
		r->off += len;
		return len;
	}
	if (r->body.len < (1u << 20))
		strbuf_add(&r->body, buf, len);
	return len;
}

/* The status line is known before the body: on_body needs it. */
static size_t on_header_status(char *buf, size_t size, size_t n, void *arg)
{
	struct az_resp *r = arg;

	if (size * n > 9 && !strncmp(buf, "HTTP/", 5)) {
		const char *sp = memchr(buf, ' ', size * n);

		if (sp)
			r->status = strtol(sp + 1, NULL, 10);
		r->code[0] = 0;
		strbuf_reset(&r->body);
	}
	return on_header(buf, size, n, arg);
}

static int cmp_query(const void *x, const void *y)
{
	return strcmp(((const struct az_query *)x)->name, ((const struct az_query *)y)->name);
}

static int cmp_hdr(const void *x, const void *y)
{
	return strcmp(((const struct az_hdr *)x)->name, ((const struct az_hdr *)y)->name);
}

/* The text between <tag> and </tag> in xml, entity-decoded, or "". */
static void xml_text(const char *xml, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *s, *e;
	size_t o = 0;

	out[0] = 0;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	s = strstr(xml, open);
	if (!s)
		return;
	s += strlen(open);
	e = strstr(s, close);
	if (!e)
		return;
	while (s < e && o + 1 < outlen) {
		static const struct {
			const char *ent;
			char c;
		} ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
		size_t i;

		for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
			if (!strncmp(s, ents[i].ent, strlen(ents[i].ent)))
				break;
		if (i < sizeof(ents) / sizeof(ents[0])) {
			out[o++] = ents[i].c;
			s += strlen(ents[i].ent);
		} else
			out[o++] = *s++;
	}
	out[o] = 0;
}

/* err from a failed answer: the service's code and message. */
static void answer_error(const struct az_account *a, const char *what, const struct az_resp *r,
			 char *err, size_t errlen)
{
	char msg[512], code[128];

	xml_text(r->body.buf, "Message", msg, sizeof(msg));
	msg[strcspn(msg, "\r\n")] = 0; /* Azure's message goes on with RequestId and Time */
	snprintf(code, sizeof(code), "%s", r->code);
	if (!*code)
		xml_text(r->body.buf, "Code", code, sizeof(code));
	if (r->status == 403 && !strncmp(code, "Authorization", 13) &&
	    strstr(code, "Mismatch"))
		/* AuthorizationPermissionMismatch, ...ResourceTypeMismatch, ...:
		 * a valid SAS that does not cover this request */
		snprintf(err, errlen,
			 "%s: the SAS token does not permit this operation (HTTP 403 %s): %s", what,
			 code, *msg ? msg : "no message");
	else if (r->status == 403 && (!*code || !strcmp(code, "AuthenticationFailed") ||
				      !strncmp(code, "AuthorizationFailure", 20)))
		snprintf(err, errlen,
			 "%s: the account key or SAS token was refused (HTTP 403 %s): %s", what,
			 *code ? code : "AuthenticationFailed", *msg ? msg : "no message");
	else
		snprintf(err, errlen, "%s: HTTP %ld %s%s%s", what, r->status, *code ? code : "",
			 *msg ? ": " : "", msg);
	redact(a, err);
}

static bool retryable(CURLcode cc, long status)
{
	if (cc != CURLE_OK)
		return cc == CURLE_COULDNT_CONNECT || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
		       cc == CURLE_GOT_NOTHING || cc == CURLE_PARTIAL_FILE ||
		       cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		       cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_HTTP2 ||
		       cc == CURLE_HTTP2_STREAM || cc == CURLE_READ_ERROR;
	return status == 408 || status == 429 || status >= 500;
}

/* One request to path (already escaped, starting with '/', after the
 * account) with query q (unescaped values), extra x-ms-* headers h, a body;
 * retried AZ_TRIES times when retryable. 0 on a 2xx answer; else -EIO
 * (-EACCES on 403, -ENOENT on 404) with err set. */
static int az_request(const struct az_account *a, const char *method, const char *path,
		      struct az_query *q, size_t nq, struct az_hdr *h, size_t nh, const void *body,
		      size_t bodylen, const char *content_type, const char *if_none_match,
		      struct az_resp *r, const char *what, char *err, size_t errlen)
{
	struct strbuf url, sts, auth;
	struct curl_slist *hl = NULL;
	char date[64], cerr[CURL_ERROR_SIZE], clen[32] = "";
	CURL *c = NULL;
	int rc = -EIO, try;
	size_t i;

	strbuf_init(&url);
	strbuf_init(&sts);
	strbuf_init(&auth);
	if (nq)
		qsort(q, nq, sizeof(*q), cmp_query);
	if (nh)
		qsort(h, nh, sizeof(*h), cmp_hdr);
	strbuf_addstr(&url, a->base);
	strbuf_addstr(&url, path);
	for (i = 0; i < nq; i++) {
		strbuf_addch(&url, i ? '&' : '?');
		strbuf_addstr(&url, q[i].name);
		strbuf_addch(&url, '=');
		add_escaped(&url, q[i].value, false);
	}
	if (a->sas) {
		strbuf_addch(&url, nq ? '&' : '?');
		strbuf_addstr(&url, a->sas);
	}
	if (url.failed) {
		rc = -ENOMEM;
		goto out;
	}
	c = curl_easy_init();
	if (!c) {
		rc = -ENOMEM;
		goto out;
	}
	if (bodylen)
		snprintf(clen, sizeof(clen), "%zu", bodylen);
	for (try = 1; try <= AZ_TRIES; try++) {
		struct tm tm;
		time_t now = time(NULL);
		CURLcode cc;

		curl_slist_free_all(hl);
		hl = NULL;
		strbuf_reset(&sts);
		strbuf_reset(&auth);
		strbuf_reset(&r->body);
		r->status = 0;
		r->code[0] = 0;
		r->off = 0;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (a->key) {
			unsigned char mac[EVP_MAX_MD_SIZE];
			unsigned maclen = 0;
			char sig[EVP_MAX_MD_SIZE * 2];
			bool dated = false;

			/* VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date,
			 * If-Modified-Since, If-Match, If-None-Match,
			 * If-Unmodified-Since, Range; then the x-ms-* headers sorted
			 * and the canonicalized resource. */
			strbuf_addf(&sts, "%s\n\n\n%s\n\n%s\n\n\n\n%s\n\n\n", method, clen,
				    content_type ? content_type : "",
				    if_none_match ? if_none_match : "");
			for (i = 0; i < nh; i++) {
				if (!dated && strcmp(h[i].name, "x-ms-date") > 0) {
					strbuf_addf(&sts, "x-ms-date:%s\n", date);
					dated = true;
				}
				strbuf_addf(&sts, "%s:%s\n", h[i].name, h[i].value);
				if (!strcmp(h[i].name, "x-ms-date"))
					dated = true;
			}
			if (!dated)
				strbuf_addf(&sts, "x-ms-date:%s\n", date);
			/* x-ms-version sorts after every x-ms-meta-* and x-ms-date;
			 * callers pass no x-ms-version of their own. */
			strbuf_addstr(&sts, "x-ms-version:" AZ_API_VERSION "\n");
			strbuf_addf(&sts, "/%s%s%s", a->account,
				    a->path_style ? "/" : "", a->path_style ? a->account : "");
			strbuf_addstr(&sts, path);
			for (i = 0; i < nq; i++)
				strbuf_addf(&sts, "\n%s:%s", q[i].name, q[i].value);
			if (sts.failed) {
				rc = -ENOMEM;
				goto out;
			}
			if (!HMAC(EVP_sha256(), a->key, (int)a->keylen, (const unsigned char *)sts.buf,
				  sts.len, mac, &maclen)) {
				snprintf(err, errlen, "%s: HMAC-SHA256 failed", what);
				rc = -EIO;
				goto out;
			}
			b64_encode(mac, maclen, sig);
			strbuf_addf(&auth, "Authorization: SharedKey %s:%s", a->account, sig);
			OPENSSL_cleanse(mac, sizeof(mac));
			hl = curl_slist_append(hl, auth.buf);
		}
		{
			char line[600];

			snprintf(line, sizeof(line), "x-ms-date: %s", date);
			hl = curl_slist_append(hl, line);
			hl = curl_slist_append(hl, "x-ms-version: " AZ_API_VERSION);
			for (i = 0; i < nh; i++) {
				snprintf(line, sizeof(line), "%s: %s", h[i].name, h[i].value);
				hl = curl_slist_append(hl, line);
			}
			if (content_type) {
				snprintf(line, sizeof(line), "Content-Type: %s", content_type);
				hl = curl_slist_append(hl, line);
			} else
				hl = curl_slist_append(hl, "Content-Type:");
			hl = curl_slist_append(hl, "Expect:");
			if (if_none_match) {
				snprintf(line, sizeof(line), "If-None-Match: %s", if_none_match);
				hl = curl_slist_append(hl, line);
			}
		}
		if (!hl) {
			rc = -ENOMEM;
			goto out;
		}
		curl_easy_reset(c);
		cerr[0] = 0;
		curl_easy_setopt(c, CURLOPT_URL, url.buf);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (!strcmp(method, "PUT")) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
		} else if (!strcmp(method, "HEAD"))
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header_status);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
		/* a stalled connection: under 1 byte/s for 60 s */
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		cc = curl_easy_perform(c);
		if (cc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		if (cc == CURLE_WRITE_ERROR && r->write_rc) {
			snprintf(err, errlen, "%s: writing: %s", what, strerror(-r->write_rc));
			rc = r->write_rc;
			goto out;
		}
		if (cc == CURLE_OK && r->status >= 200 && r->status < 300) {
			rc = 0;
			goto out;
		}
		if (cc != CURLE_OK) {
			/* curl's message names host and port, never the query */
			snprintf(err, errlen, "%s: %s (try %d of %d)", what,
				 *cerr ? cerr : curl_easy_strerror(cc), try, AZ_TRIES);
			redact(a, err);
		} else
			answer_error(a, what, r, err, errlen);
		if (!retryable(cc, r->status) || try == AZ_TRIES)
			break;
		usleep(try == 1 ? 1000000 : 4000000); /* 1 s, then 4 s */
	}
	rc = r->status == 403 ? -EACCES : r->status == 404 ? -ENOENT : -EIO;
out:
	curl_slist_free_all(hl);
	if (c)
		curl_easy_cleanup(c);
	if (auth.buf && auth.alloc)
		OPENSSL_cleanse(auth.buf, auth.len);
	if (url.buf && url.alloc)
		OPENSSL_cleanse(url.buf, url.len);
	strbuf_release(&url);
	strbuf_release(&sts);
	strbuf_release(&auth);
	return rc;
}

/* --- the upload -------------------------------------------------------------- */

struct az_slot {
	struct pd_egress_upload *u;
	char *buf;
	size_t len;
	unsigned index;
	bool busy;    /* a thread uploads it */
	bool joined;  /* no thread to join */
	pthread_t th;
};

struct pd_egress_upload {
	struct pd_egress_upload_head head; /* first: lib/egress.c dispatches on it */
	struct az_account a;
	char name[65];    /* the provider's, for messages */
	char *blob;       /* the full blob name */
	char *path;       /* "/{container}/{blob escaped}" */
	size_t block_size;
	unsigned parallel;
	struct az_hdr meta[8];
	char *metaval[8];
	size_t nmeta;
	struct az_slot *slots; /* parallel + 1: the one being filled */
	struct az_slot *fill;
	unsigned nblocks;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int failed; /* first error of a block, -errno */
	char ferr[512];
};

static void block_id(unsigned index, char out[32])
{
	char raw[16];

	/* 15 bytes: base64 without padding, the same length for every block */
	snprintf(raw, sizeof(raw), "pdblk%010u", index);
	b64_encode((const unsigned char *)raw, 15, out);
}

static void *block_thread(void *arg)
{
	struct az_slot *s = arg;
	struct pd_egress_upload *u = s->u;
	struct az_resp r = {.fd = -1};
	char id[32], what[96], err[512] = "";
	struct az_query q[2] = {{"comp", "block"}, {"blockid", id}};
	int rc;

	block_id(s->index, id);
	snprintf(what, sizeof(what), "egress %s: Put Block %u", u->name, s->index);
	strbuf_init(&r.body);
	rc = az_request(&u->a, "PUT", u->path, q, 2, NULL, 0, s->buf, s->len, NULL, NULL, &r, what, err,
			sizeof(err));
	strbuf_release(&r.body);
	pthread_mutex_lock(&u->mu);
	if (rc < 0 && !u->failed) {
		u->failed = rc;
		snprintf(u->ferr, sizeof(u->ferr), "%s", err);
	}
	s->busy = false;
	s->len = 0;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	return NULL;
}

/* Joins the finished threads of free slots; waits for one free slot (not
 * the one being filled) when wait_one, for all when !wait_one. Called with
 * u->mu held. */
static struct az_slot *wait_slots(struct pd_egress_upload *u, bool all)
{
	for (;;) {
		struct az_slot *freeone = NULL;
		bool busy = false, unlocked = false;
		unsigned i;

		for (i = 0; i <= u->parallel; i++) {
			struct az_slot *s = &u->slots[i];

			if (s->busy) {
				busy = true;
				continue;
			}
			if (!s->joined) {
				pthread_mutex_unlock(&u->mu);
				pthread_join(s->th, NULL);
				pthread_mutex_lock(&u->mu);
				s->joined = true;
				unlocked = true;
			}
			if (s != u->fill && !freeone)
				freeone = s;
		}
		if (all ? !busy : freeone != NULL)
			return freeone;
		/* A block that ended while the lock was let go for a join
		 * broadcast to nobody: look again before waiting. */
		if (!unlocked)
			pthread_cond_wait(&u->cv, &u->mu);
	}
}

/* Sends the filled slot on its thread; a new fill slot. */
static int submit(struct pd_egress_upload *u, char *err, size_t errlen)
{
	struct az_slot *s = u->fill;
	int rc;

	if (u->nblocks >= AZ_BLOCKS_MAX) {
		snprintf(err, errlen, "egress %s: more than %u blocks of %zu bytes: raise block_size",
			 u->name, AZ_BLOCKS_MAX, u->block_size);
		return -EFBIG;
	}
	pthread_mutex_lock(&u->mu);
	/* parallel blocks in flight at most: the (parallel + 1)th buffer is
	 * the one being filled while they go */
	for (;;) {
		unsigned i, busy = 0;

		for (i = 0; i <= u->parallel; i++)
			busy += u->slots[i].busy;
		if (busy < u->parallel)
			break;
		pthread_cond_wait(&u->cv, &u->mu);
	}
	s->index = u->nblocks++;
	s->busy = true;
	s->joined = false;
	rc = pthread_create(&s->th, NULL, block_thread, s);
	if (rc) {
		s->busy = false;
		s->joined = true;
		pthread_mutex_unlock(&u->mu);
		snprintf(err, errlen, "egress %s: cannot start a thread: %s", u->name, strerror(rc));
		return -rc;
	}
	u->fill = wait_slots(u, false);
	rc = u->failed;
	if (rc)
		snprintf(err, errlen, "%s", u->ferr);
	pthread_mutex_unlock(&u->mu);
	return rc;
}

/* A header-safe metadata value: printable ASCII, at most 200 bytes. */
static char *meta_value(const char *v)
{
	char *s = strndup(v, 200), *p;

	if (!s)
		return NULL;
	for (p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '_';
	while (p > s && p[-1] == ' ')
		*--p = 0;
	return s;
}

static const char *safe_segment(const char *s, const char *dflt)
{
	return s && *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') ? s : dflt;
}

int pd_egress_azure_begin(const struct pd_egress_provider *p, const char *name,
			  const struct pd_egress_meta *m, struct pd_egress_upload **out,
			  char *err, size_t errlen)
{
	struct pd_egress_upload *u;
	struct strbuf sb;
	char host[256] = "", pid[24];
	unsigned i;
	int rc;

	*out = NULL;
	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
		snprintf(err, errlen, "egress %s: bad file name", p->name);
		return -EINVAL;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->head.type = PD_EGRESS_AZURE_BLOB;
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	snprintf(u->name, sizeof(u->name), "%s", p->name);
	u->block_size = p->block_size ? p->block_size : PD_EGRESS_BLOCK_SIZE_DEFAULT;
	u->parallel = p->parallel ? p->parallel : PD_EGRESS_PARALLEL_DEFAULT;
	if (u->block_size < AZ_BLOCK_MIN || u->block_size > AZ_BLOCK_MAX ||
	    u->parallel > AZ_PARALLEL_MAX) {
		snprintf(err, errlen,
			 "egress %s: block_size must be 1 KiB to 4000 MiB and parallel 1 to %u",
			 p->name, AZ_PARALLEL_MAX);
		rc = -EINVAL;
		goto fail;
	}
	rc = account_init(p, &u->a, err, errlen);
	if (rc < 0)
		goto fail;
	if (m && m->host && *m->host)
		snprintf(host, sizeof(host), "%s", m->host);
	else if (gethostname(host, sizeof(host) - 1) < 0 || !*host)
		snprintf(host, sizeof(host), "unknown-host");
	strbuf_init(&sb);
	if (p->blob_prefix && *p->blob_prefix) {
		size_t n = strlen(p->blob_prefix);

		while (n && p->blob_prefix[n - 1] == '/')
			n--;
		strbuf_add(&sb, p->blob_prefix, n);
		strbuf_addch(&sb, '/');
	}
	strbuf_addf(&sb, "%s/%s/%s", safe_segment(host, "unknown-host"),
		    safe_segment(m ? m->site : NULL, "default"), name);
	if (sb.failed) {
		strbuf_release(&sb);
		rc = -ENOMEM;
		goto fail;
	}
	u->blob = strbuf_detach(&sb, NULL);
	strbuf_init(&sb);
	strbuf_addch(&sb, '/');
	add_escaped(&sb, p->container, false);
	strbuf_addch(&sb, '/');
	add_escaped(&sb, u->blob, true);
	if (sb.failed) {
		strbuf_release(&sb);
		rc = -ENOMEM;
		goto fail;
	}
	u->path = strbuf_detach(&sb, NULL);
	if (m) {
		const struct {
			const char *name, *value;
		} mv[] = {{"x-ms-meta-host", host},	    {"x-ms-meta-site", m->site},
			  {"x-ms-meta-process", m->process}, {"x-ms-meta-dumptype", m->dump_type},
			  {"x-ms-meta-method", m->method},   {"x-ms-meta-trigger", m->trigger},
			  {"x-ms-meta-rule", m->rule},	    {"x-ms-meta-pid", pid}};

		snprintf(pid, sizeof(pid), "%d", m->pid);
		for (i = 0; i < sizeof(mv) / sizeof(mv[0]); i++) {
			if (!mv[i].value || !*mv[i].value)
				continue;
			u->metaval[u->nmeta] = meta_value(mv[i].value);
			if (!u->metaval[u->nmeta]) {
				rc = -ENOMEM;
				goto fail;
			}
			u->meta[u->nmeta].name = mv[i].name;
			u->meta[u->nmeta].value = u->metaval[u->nmeta];
			u->nmeta++;
		}
	}
	u->slots = calloc(u->parallel + 1, sizeof(*u->slots));
	if (!u->slots) {
		rc = -ENOMEM;
		goto fail;
	}
	for (i = 0; i <= u->parallel; i++) {
		u->slots[i].u = u;
		u->slots[i].joined = true;
		u->slots[i].buf = malloc(u->block_size);
		if (!u->slots[i].buf) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	u->fill = &u->slots[0];
	*out = u;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "egress %s: out of memory", p->name);
	pd_egress_azure_abort(u);
	return rc;
}

int pd_egress_azure_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err,
			  size_t errlen)
{
	const char *p = buf;

	while (n) {
		size_t take = u->block_size - u->fill->len;
		int rc;

		if (take > n)
			take = n;
		memcpy(u->fill->buf + u->fill->len, p, take);
		u->fill->len += take;
		p += take;
		n -= take;
		if (u->fill->len == u->block_size) {
			rc = submit(u, err, errlen);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int pd_egress_azure_commit(struct pd_egress_upload *u, char *location, size_t loclen,
			   char *err, size_t errlen)
{
	struct az_query q[1] = {{"comp", "blocklist"}};
	struct az_resp r = {.fd = -1};
	struct az_hdr h[10];
	struct strbuf xml;
	char what[96];
	unsigned i;
	int rc = 0;

	if (u->fill->len)
		rc = submit(u, err, errlen);
	pthread_mutex_lock(&u->mu);
	wait_slots(u, true);
	if (!rc && u->failed) {
		rc = u->failed;
		snprintf(err, errlen, "%s", u->ferr);
	}
	pthread_mutex_unlock(&u->mu);
	if (rc < 0)
		return rc;
	strbuf_init(&xml);
	strbuf_addstr(&xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
	for (i = 0; i < u->nblocks; i++) {
		char id[32];

		block_id(i, id);
		strbuf_addf(&xml, "<Latest>%s</Latest>", id);
	}
	strbuf_addstr(&xml, "</BlockList>");
	if (xml.failed) {
		strbuf_release(&xml);
		snprintf(err, errlen, "egress %s: out of memory", u->name);
		return -ENOMEM;
	}
	/* If-None-Match: *: never replaces a blob of the same name (409
	 * BlobAlreadyExists): names never collide, and if they did the first
	 * dump would stay. */
	memcpy(h, u->meta, u->nmeta * sizeof(h[0]));
	h[u->nmeta].name = "x-ms-blob-content-type";
	h[u->nmeta].value = "application/octet-stream";
	snprintf(what, sizeof(what), "egress %s: Put Block List", u->name);
	strbuf_init(&r.body);
	rc = az_request(&u->a, "PUT", u->path, q, 1, h, u->nmeta + 1, xml.buf, xml.len,
			"application/xml", "*", &r, what, err, errlen);
	strbuf_release(&r.body);
	strbuf_release(&xml);
	if (rc < 0)
		return rc;
	if (location && loclen)
		snprintf(location, loclen, "%s%s", u->a.base, u->path);
	pd_egress_azure_abort(u); /* frees: the blob is committed, nothing to undo */
	return 0;
}

void pd_egress_azure_abort(struct pd_egress_upload *u)
{
	unsigned i;

	if (!u)
		return;
	if (u->slots) {
		pthread_mutex_lock(&u->mu);
		wait_slots(u, true);
		pthread_mutex_unlock(&u->mu);
		for (i = 0; i <= u->parallel; i++)
			free(u->slots[i].buf);
		free(u->slots);
	}
	for (i = 0; i < u->nmeta; i++)
		free(u->metaval[i]);
	account_free(&u->a);
	free(u->blob);
	free(u->path);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}

/* --- list and get (procdiag dumps --egress) ---------------------------------- */

int pd_egress_azure_list(const struct pd_egress_provider *p, json_t **out, char *err,
			 size_t errlen)
{
	struct az_account a;
	struct az_resp r = {.fd = -1};
	char marker[1024] = "", prefix[512] = "", path[600];
	json_t *arr = json_array();
	int rc;

	*out = NULL;
	if (!arr)
		return -ENOMEM;
	rc = account_init(p, &a, err, errlen);
	if (rc < 0) {
		account_free(&a);
		json_decref(arr);
		return rc;
	}
	if (p->blob_prefix && *p->blob_prefix) {
		size_t n = strlen(p->blob_prefix);

		while (n && p->blob_prefix[n - 1] == '/')
			n--;
		snprintf(prefix, sizeof(prefix), "%.*s/", (int)n, p->blob_prefix);
	}
	{
		struct strbuf sb;

		strbuf_init(&sb);
		strbuf_addch(&sb, '/');
		add_escaped(&sb, p->container, false);
		snprintf(path, sizeof(path), "%s", sb.buf);
		strbuf_release(&sb);
	}
	strbuf_init(&r.body);
	do {
		struct az_query q[5] = {{"restype", "container"}, {"comp", "list"},
					{"include", "metadata"}, {"prefix", prefix},
					{"marker", marker}};
		size_t nq = *marker ? 5 : 4;
		const char *s;
		char what[96];

		if (!*prefix) {
			q[3] = q[4];
			nq--;
		}
		snprintf(what, sizeof(what), "egress %s: List Blobs", p->name);
		rc = az_request(&a, "GET", path, q, nq, NULL, 0, NULL, 0, NULL, NULL, &r, what,
				err, errlen);
		if (rc < 0)
			break;
		for (s = r.body.buf; (s = strstr(s, "<Blob>")); s += 6) {
			const char *e = strstr(s, "</Blob>");
			char *one, name[1024], size[32], mod[64];
			json_t *o, *md;
			const char *mds, *mde;

			if (!e)
				break;
			one = strndup(s, (size_t)(e - s));
			if (!one) {
				rc = -ENOMEM;
				break;
			}
			xml_text(one, "Name", name, sizeof(name));
			xml_text(one, "Content-Length", size, sizeof(size));
			xml_text(one, "Last-Modified", mod, sizeof(mod));
			md = json_object();
			mds = strstr(one, "<Metadata>");
			mde = mds ? strstr(mds, "</Metadata>") : NULL;
			if (mds && mde) {
				const char *t = mds + 10;

				while (t < mde && *t == '<' && t[1] != '/') {
					char tag[64], val[256];
					size_t tl = strcspn(t + 1, ">");

					if (tl >= sizeof(tag))
						break;
					memcpy(tag, t + 1, tl);
					tag[tl] = 0;
					xml_text(t, tag, val, sizeof(val));
					json_object_set_new(md, tag, json_string(val));
					t = strstr(t, "</");
					if (!t)
						break;
					t = strchr(t, '>');
					if (!t)
						break;
					t++;
				}
			}
			o = json_pack("{s:s, s:I, s:s, s:o}", "name", name, "size",
				      (json_int_t)strtoll(size, NULL, 10), "lastModified", mod,
				      "metadata", md ? md : json_object());
			free(one);
			if (!o || json_array_append_new(arr, o) < 0) {
				rc = -ENOMEM;
				break;
			}
			s = e;
		}
		xml_text(r.body.buf, "NextMarker", marker, sizeof(marker));
	} while (rc == 0 && *marker);
	strbuf_release(&r.body);
	account_free(&a);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

int pd_egress_azure_get(const struct pd_egress_provider *p, const char *blob, int fd, char *err,
			size_t errlen)
{
	struct az_account a;
	struct az_resp r = {.fd = fd};
	struct strbuf path;
	char what[96];
	int rc;

	rc = account_init(p, &a, err, errlen);
	if (rc < 0) {
		account_free(&a);
		return rc;
	}
	strbuf_init(&path);
	strbuf_addch(&path, '/');
	add_escaped(&path, p->container, false);
	strbuf_addch(&path, '/');
	add_escaped(&path, blob, true);
	strbuf_init(&r.body);
	snprintf(what, sizeof(what), "egress %s: Get Blob", p->name);
	rc = path.failed ? -ENOMEM
			 : az_request(&a, "GET", path.buf, NULL, 0, NULL, 0, NULL, 0, NULL, NULL,
				      &r, what, err, errlen);
	strbuf_release(&r.body);
	strbuf_release(&path);
	account_free(&a);
	return rc;
}
