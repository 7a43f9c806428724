/* fcgi/auth.h: the Authorization header of every request.
 * Invariants: a key comes out only for "Bearer <token>" (the token itself)
 * or "Basic <base64>" (what an independent strict base64 decoder finds
 * after the first ':'), never empty, never longer than PD_KEY_MAX or than
 * the buffer; a key checks against a keyset holding its hash and not
 * against an empty one. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <strings.h>

#include "fcgi/auth.h"
#include "fuzz/fuzz.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict RFC 4648 decoding with padding; -1 if malformed. */
static long ref_b64(const char *s, size_t n, unsigned char *out)
{
	size_t o = 0, pad = 0;

	if (n == 0 || n % 4)
		return -1;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;

		for (size_t k = 0; k < 4; k++) {
			int d = i + k >= n - pad ? 0 : b64val((unsigned char)s[i + k]);

			if (d < 0)
				return -1;
			v = v << 6 | (uint32_t)d;
		}
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	return (long)(o - pad);
}

/* What the key must be, into want; -1 when no key may come out. */
static long reference(const char *h, char *want)
{
	const char *scheme, *cred;
	size_t slen, clen;

	while (blank(*h))
		h++;
	scheme = h;
	while (*h && !blank(*h))
		h++;
	slen = (size_t)(h - scheme);
	while (blank(*h))
		h++;
	cred = h;
	clen = strlen(cred);
	while (clen && blank(cred[clen - 1]))
		clen--;
	for (size_t i = 0; i < clen; i++)
		if ((unsigned char)cred[i] <= ' ' || (unsigned char)cred[i] >= 0x7f)
			return -1;
	if (slen == 6 && strncasecmp(scheme, "Bearer", 6) == 0) {
		memcpy(want, cred, clen);
		return (long)clen;
	}
	if (slen == 5 && strncasecmp(scheme, "Basic", 5) == 0) {
		/* The parser's bound: a user name as long as the longest key. */
		const size_t max_encoded = (2 * PD_KEY_MAX + 2 + 2) / 3 * 4;
		unsigned char *dec = malloc(clen / 4 * 3 + 3);
		long n = ref_b64(cred, clen, dec);
		const unsigned char *colon;

		FUZZ_CHECK(dec != NULL);
		if (clen > max_encoded || n < 0 || memchr(dec, 0, (size_t)n) ||
		    !(colon = memchr(dec, ':', (size_t)n))) {
			free(dec);
			return -1;
		}
		n -= colon + 1 - dec;
		memcpy(want, colon + 1, (size_t)n);
		free(dec);
		return n;
	}
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *h = fuzz_cstr(data, size);
	char key[PD_KEY_MAX + 1], *want = malloc(size + 4);
	size_t keylen = sizeof(key);
	long wlen;
	int rc;

	FUZZ_CHECK(want != NULL);
	memset(key, 'X', sizeof(key));
	rc = pd_auth_parse_header(h, key, keylen);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	wlen = reference(h, want);
	if (wlen <= 0 || wlen > PD_KEY_MAX) {
		FUZZ_CHECK(rc == -EINVAL);
	} else {
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(strlen(key) == (size_t)wlen && memcmp(key, want, (size_t)wlen) == 0);
	}

	if (rc == 0) {
		struct pd_keyset ks = PD_KEYSET_INIT, none = PD_KEYSET_INIT;
		char hex[65], other[65], shorter[PD_KEY_MAX + 1];
		size_t klen = strlen(key);

		FUZZ_CHECK(pd_sha256_hex(key, klen, hex) == 0);
		FUZZ_CHECK(pd_sha256_hex("not the key", 11, other) == 0);
		FUZZ_CHECK(pd_keyset_add_hex(&ks, other) == 0);
		FUZZ_CHECK(!pd_auth_check(&ks, key) || strcmp(key, "not the key") == 0);
		FUZZ_CHECK(pd_keyset_add_hex(&ks, hex) == 0);
		FUZZ_CHECK(pd_auth_check(&ks, key));
		FUZZ_CHECK(!pd_auth_check(&none, key));
		pd_keyset_release(&ks);

		/* A buffer one byte too short for the key: refused, and
		 * nothing written past it. */
		memset(shorter, 'Y', sizeof(shorter));
		FUZZ_CHECK(pd_auth_parse_header(h, shorter, klen) == -EINVAL);
		FUZZ_CHECK(shorter[klen] == 'Y');
	}
	free(want);
	free(h);
	return 0;
}
