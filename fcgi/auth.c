/* API keys: parsing the Authorization header, checking a key against the
 * stored SHA-256 hashes, and making new keys. */
#include "config.h"

#include "common/numparse.h"
#include "fcgi/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* A Basic credential is "user:key"; the user name is ignored but may be
 * long, so allow for one as long as the key. */
#define BASIC_DECODED_MAX (2 * PD_KEY_MAX + 2)
#define BASIC_ENCODED_MAX ((BASIC_DECODED_MAX + 2) / 3 * 4)

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool scheme_is(const char *s, size_t len, const char *scheme)
{
	return len == strlen(scheme) && strncasecmp(s, scheme, len) == 0;
}

static int copy_key(const char *s, size_t len, char *key, size_t keylen)
{
	if (len == 0 || len > PD_KEY_MAX || len >= keylen)
		return -EINVAL;
	memcpy(key, s, len);
	key[len] = '\0';
	return 0;
}

static bool is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* EVP_DecodeBlock neither checks padding placement nor subtracts the
 * zero bytes it emits for '=', so both are done here. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t outlen)
{
	size_t pad = 0;
	int n;

	if (len == 0 || len % 4 != 0 || len > BASIC_ENCODED_MAX || len / 4 * 3 > outlen)
		return -EINVAL;
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!is_b64((unsigned char)s[i]))
			return -EINVAL;
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -EINVAL;
	return n - (int)pad;
}

static int parse_basic(const char *s, size_t len, char *key, size_t keylen)
{
	unsigned char dec[BASIC_ENCODED_MAX / 4 * 3 + 1];
	const char *colon;
	int n, rc = -EINVAL;

	n = b64_decode(s, len, dec, sizeof(dec) - 1);
	if (n < 0)
		return -EINVAL;
	dec[n] = '\0';
	/* An embedded NUL would make the key look shorter than it is. */
	if (memchr(dec, '\0', (size_t)n))
		goto out;
	/* The user name cannot hold ':' (RFC 7617), the password may. */
	colon = memchr(dec, ':', (size_t)n);
	if (colon)
		rc = copy_key(colon + 1, (size_t)n - (size_t)(colon + 1 - (char *)dec), key,
			      keylen);
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	return rc;
}

int pd_auth_parse_header(const char *header, char *key, size_t keylen)
{
	const char *scheme, *cred;
	size_t slen, clen;

	if (!header || !key || keylen == 0)
		return -EINVAL;
	key[0] = '\0';
	while (is_space(*header))
		header++;
	scheme = header;
	while (*header && !is_space(*header))
		header++;
	slen = (size_t)(header - scheme);
	while (is_space(*header))
		header++;
	cred = header;
	clen = strlen(cred);
	while (clen > 0 && is_space(cred[clen - 1]))
		clen--;
	/* Credentials are one token: no inner spaces, no control bytes. */
	for (size_t i = 0; i < clen; i++)
		if ((unsigned char)cred[i] <= ' ' || (unsigned char)cred[i] >= 0x7f)
			return -EINVAL;
	if (scheme_is(scheme, slen, "Bearer"))
		return copy_key(cred, clen, key, keylen);
	if (scheme_is(scheme, slen, "Basic"))
		return parse_basic(cred, clen, key, keylen);
	return -EINVAL;
}

static int sha256(const void *data, size_t len, unsigned char md[PD_SHA256_LEN])
{
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != PD_SHA256_LEN)
		return -EIO;
	return 0;
}

bool pd_auth_check(const struct pd_keyset *ks, const char *key)
{
	unsigned char md[PD_SHA256_LEN];
	int match = 0;

	if (!ks || !key || !*key || sha256(key, strlen(key), md) < 0)
		return false;
	/* No early exit: the time taken must not tell which hash (or how
	 * many bytes of one) matched. */
	for (size_t i = 0; i < ks->n; i++)
		match |= CRYPTO_memcmp(md, ks->hash[i], PD_SHA256_LEN) == 0;
	OPENSSL_cleanse(md, sizeof(md));
	return match != 0;
}

int pd_keyset_add_hex(struct pd_keyset *ks, const char *hex)
{
	unsigned char h[PD_SHA256_LEN];
	unsigned char(*nh)[PD_SHA256_LEN];

	if (!hex || strlen(hex) != 2 * PD_SHA256_LEN)
		return -EINVAL;
	for (size_t i = 0; i < PD_SHA256_LEN; i++) {
		int hi = hex_digit((unsigned char)hex[2 * i]), lo = hex_digit((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		h[i] = (unsigned char)(hi << 4 | lo);
	}
	nh = realloc(ks->hash, (ks->n + 1) * sizeof(*nh));
	if (!nh)
		return -ENOMEM;
	memcpy(nh[ks->n], h, PD_SHA256_LEN);
	ks->hash = nh;
	ks->n++;
	return 0;
}

void pd_keyset_release(struct pd_keyset *ks)
{
	free(ks->hash);
	ks->hash = NULL;
	ks->n = 0;
}

int pd_sha256_hex(const char *s, size_t len, char hex[65])
{
	unsigned char md[PD_SHA256_LEN];

	if (sha256(s, len, md) < 0)
		return -EIO;
	hex_encode(md, PD_SHA256_LEN, hex);
	return 0;
}

int pd_auth_genkey(char *key, size_t keylen, char hex[65])
{
	unsigned char raw[32], enc[45];
	size_t n = 0;
	int rc = -EIO;

	/* "pd_" + 43 characters + NUL */
	if (keylen < 3 + 43 + 1)
		return -EINVAL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	EVP_EncodeBlock(enc, raw, sizeof(raw));
	/* base64url without padding: safe in URLs, config files and shells. */
	memcpy(key, "pd_", 3);
	for (size_t i = 0; enc[i] && enc[i] != '='; i++)
		key[3 + n++] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : (char)enc[i];
	key[3 + n] = '\0';
	rc = pd_sha256_hex(key, 3 + n, hex);
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(enc, sizeof(enc));
	return rc;
}
