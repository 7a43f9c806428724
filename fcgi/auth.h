/* API-key authentication. Keys are random; only their SHA-256 is stored
 * (config: api_key_sha256 = <64 hex>). A key arrives as
 * "Authorization: Bearer <key>" or as the password of HTTP Basic (any user
 * name), so browsers can log in. */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define PD_SHA256_LEN 32
#define PD_KEY_MAX 256

struct pd_keyset {
	size_t n;
	unsigned char (*hash)[PD_SHA256_LEN]; /* owned */
};
#define PD_KEYSET_INIT { 0, NULL }

/* Extracts the key from an Authorization header value into key (NUL-
 * terminated). 0, or -EINVAL (absent, unknown scheme, bad base64, no ':' in
 * Basic, empty key, longer than PD_KEY_MAX); on -EINVAL with a key buffer,
 * key is left empty. */
int pd_auth_parse_header(const char *header, char *key, size_t keylen);
/* SHA-256 of the key compared in constant time against every stored hash
 * (all of them, always). */
bool pd_auth_check(const struct pd_keyset *ks, const char *key);
/* Adds a hash given as 64 hex digits. 0, -EINVAL, -ENOMEM. */
int pd_keyset_add_hex(struct pd_keyset *ks, const char *hex);
void pd_keyset_release(struct pd_keyset *ks);
/* A new random key (base64url of 32 random bytes, 43 characters, prefix
 * "pd_") and the hex SHA-256 of it. key needs 64 bytes, hex 65. */
int pd_auth_genkey(char *key, size_t keylen, char hex[65]);
/* Hex SHA-256 of a string (used by genkey and tests). */
int pd_sha256_hex(const char *s, size_t len, char hex[65]);

#endif
