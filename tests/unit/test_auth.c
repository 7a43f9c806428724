/* fcgi/auth.c: header parsing, hash checks, key generation. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi/auth.h"

/* SHA-256("secret-key-1"), computed independently with sha256sum. */
#define KEY1	 "secret-key-1"
#define KEY1_HEX "a6c1eaef9d5f23f4e13d9b574cbbe07ae877227d92be87d077005dc6776bcdcc"

static int keyset_setup(void **state)
{
	static struct pd_keyset ks = PD_KEYSET_INIT;
	char hex[65];

	assert_int_equal(pd_sha256_hex("another", 7, hex), 0);
	assert_int_equal(pd_keyset_add_hex(&ks, hex), 0);
	assert_int_equal(pd_keyset_add_hex(&ks, KEY1_HEX), 0);
	*state = &ks;
	return 0;
}

static int keyset_teardown(void **state)
{
	pd_keyset_release(*state);
	return 0;
}

static bool header_ok(const struct pd_keyset *ks, const char *header)
{
	char key[PD_KEY_MAX + 1];

	return pd_auth_parse_header(header, key, sizeof(key)) == 0 && pd_auth_check(ks, key);
}

static void test_sha256_hex(void **state)
{
	char hex[65];

	assert_int_equal(pd_sha256_hex(KEY1, strlen(KEY1), hex), 0);
	assert_string_equal(hex, KEY1_HEX);
	/* The FIPS 180-2 test vector. */
	assert_int_equal(pd_sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_bearer(void **state)
{
	const struct pd_keyset *ks = *state;
	char key[PD_KEY_MAX + 1];

	assert_int_equal(pd_auth_parse_header("Bearer " KEY1, key, sizeof(key)), 0);
	assert_string_equal(key, KEY1);
	assert_true(pd_auth_check(ks, key));
	/* Scheme names are case-insensitive (RFC 9110 11.1); spaces around
	 * the credentials are not part of them. */
	assert_true(header_ok(ks, "bearer " KEY1));
	assert_true(header_ok(ks, "BEARER \t" KEY1 "  "));
	assert_true(header_ok(ks, "Bearer another"));

	assert_int_equal(pd_auth_parse_header("Bearer wrong-key", key, sizeof(key)), 0);
	assert_false(pd_auth_check(ks, key));
	assert_false(header_ok(ks, "Bearer " KEY1 "x"));
	assert_false(header_ok(ks, "Bearer secret-key-"));

	assert_int_equal(pd_auth_parse_header("Bearer", key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header("Bearer   ", key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header("", key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header(NULL, key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header("Bearer a b", key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header("Token " KEY1, key, sizeof(key)), -EINVAL);
	assert_int_equal(pd_auth_parse_header("Bearerx " KEY1, key, sizeof(key)), -EINVAL);
	assert_false(pd_auth_check(ks, ""));
}

static void test_basic(void **state)
{
	const struct pd_keyset *ks = *state;
	char key[PD_KEY_MAX + 1];

	/* base64("user:secret-key-1") */
	assert_int_equal(pd_auth_parse_header("Basic dXNlcjpzZWNyZXQta2V5LTE=", key, sizeof(key)),
			 0);
	assert_string_equal(key, KEY1);
	assert_true(pd_auth_check(ks, key));
	/* ":secret-key-1": any user name, even none; "basic" in any case. */
	assert_true(header_ok(ks, "basic OnNlY3JldC1rZXktMQ=="));
	/* "u:a:b": split on the first ':', the password keeps the rest. */
	assert_int_equal(pd_auth_parse_header("Basic dTphOmI=", key, sizeof(key)), 0);
	assert_string_equal(key, "a:b");
	/* "user:wrong" */
	assert_int_equal(pd_auth_parse_header("Basic dXNlcjp3cm9uZw==", key, sizeof(key)), 0);
	assert_false(pd_auth_check(ks, key));

	/* "secret-key-1", no colon at all. */
	assert_int_equal(pd_auth_parse_header("Basic c2VjcmV0LWtleS0x", key, sizeof(key)), -EINVAL);
	/* "user:" has an empty password. */
	assert_int_equal(pd_auth_parse_header("Basic dXNlcjo=", key, sizeof(key)), -EINVAL);
}

static void test_bad_base64(void **state)
{
	char key[PD_KEY_MAX + 1];
	const char *bad[] = {
		"Basic dXNlcjpzZWNyZXQta2V5LTE",   /* length not a multiple of 4 */
		"Basic dXNlcjpz*WNyZXQta2V5LTE=",  /* not in the alphabet */
		"Basic dXNl=jpzZWNyZXQta2V5LTE=",  /* padding in the middle */
		"Basic dXNlcjpzZWNyZXQta2V5LT===", /* three pad characters */
		"Basic ====",
		"Basic",
		"Basic dXNlcjpz ZWNyZXQta2V5LTE=", /* a space inside */
		"Basic dTphAGI=",		   /* "u:a\0b": a NUL inside */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(key, "untouched");
		assert_int_equal(pd_auth_parse_header(bad[i], key, sizeof(key)), -EINVAL);
		/* No part of a rejected credential is left behind. */
		assert_string_equal(key, "");
	}
	/* Padding is not counted as key bytes: "u:ab" decodes to 4 bytes. */
	assert_int_equal(pd_auth_parse_header("Basic dTphYg==", key, sizeof(key)), 0);
	assert_string_equal(key, "ab");
	assert_int_equal(strlen(key), 2);
}

static void test_key_too_long(void **state)
{
	char header[PD_KEY_MAX + 32], key[PD_KEY_MAX + 1];

	strcpy(header, "Bearer ");
	memset(header + 7, 'k', PD_KEY_MAX);
	header[7 + PD_KEY_MAX] = '\0';
	assert_int_equal(pd_auth_parse_header(header, key, sizeof(key)), 0);
	assert_int_equal(strlen(key), PD_KEY_MAX);

	strcat(header, "k");
	assert_int_equal(pd_auth_parse_header(header, key, sizeof(key)), -EINVAL);
	/* Nor may a key overflow a smaller buffer than PD_KEY_MAX + 1. */
	assert_int_equal(pd_auth_parse_header("Bearer 12345678", key, 8), -EINVAL);
	assert_int_equal(pd_auth_parse_header("Bearer 1234567", key, 8), 0);
}

static void test_genkey(void **state)
{
	struct pd_keyset ks = PD_KEYSET_INIT;
	char key[64], key2[64], hex[65], again[65], header[96];

	assert_int_equal(pd_auth_genkey(key, sizeof(key), hex), 0);
	assert_int_equal(strlen(key), 3 + 43);
	assert_memory_equal(key, "pd_", 3);
	assert_int_equal(strspn(key + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					 "0123456789-_"),
			 43);
	assert_int_equal(strlen(hex), 64);
	assert_int_equal(pd_sha256_hex(key, strlen(key), again), 0);
	assert_string_equal(hex, again);

	/* What genkey prints is what the server accepts, both ways. */
	assert_int_equal(pd_keyset_add_hex(&ks, hex), 0);
	assert_true(pd_auth_check(&ks, key));
	snprintf(header, sizeof(header), "Bearer %s", key);
	assert_true(header_ok(&ks, header));

	assert_int_equal(pd_auth_genkey(key2, sizeof(key2), again), 0);
	assert_string_not_equal(key, key2);
	assert_false(pd_auth_check(&ks, key2));
	assert_int_equal(pd_auth_genkey(key2, 46, again), -EINVAL);
	pd_keyset_release(&ks);
	assert_int_equal(ks.n, 0);
	assert_false(pd_auth_check(&ks, key));
}

static void test_keyset_add_hex(void **state)
{
	struct pd_keyset ks = PD_KEYSET_INIT;
	const char *bad[] = {
		"",
		"abc",
		/* 63 and 65 digits */
		"a9c6a7ba2b8a40a86ab1f4b6a7f9bd62463c48a3cfc9e07ce1a2da33e0dbb1a",
		"a9c6a7ba2b8a40a86ab1f4b6a7f9bd62463c48a3cfc9e07ce1a2da33e0dbb1ad0",
		/* a 'g', a space, a "0x" prefix */
		"g9c6a7ba2b8a40a86ab1f4b6a7f9bd62463c48a3cfc9e07ce1a2da33e0dbb1ad",
		"a9c6a7ba2b8a40a86ab1f4b6a7f9bd62463c48a3cfc9e07ce1a2da33e0dbb1 d",
		"0xc6a7ba2b8a40a86ab1f4b6a7f9bd62463c48a3cfc9e07ce1a2da33e0dbb1ad",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pd_keyset_add_hex(&ks, bad[i]), -EINVAL);
	assert_int_equal(pd_keyset_add_hex(&ks, NULL), -EINVAL);
	assert_int_equal(ks.n, 0);
	assert_false(pd_auth_check(&ks, KEY1));

	/* Upper-case hex is the same hash. */
	assert_int_equal(pd_keyset_add_hex(&ks, "A6C1EAEF9D5F23F4E13D9B574CBBE07AE877227D92BE87D0"
						"77005DC6776BCDCC"),
			 0);
	assert_int_equal(ks.n, 1);
	assert_int_equal(ks.hash[0][0], 0xa6);
	assert_int_equal(ks.hash[0][31], 0xcc);
	assert_true(pd_auth_check(&ks, KEY1));
	pd_keyset_release(&ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_hex),
		cmocka_unit_test_setup_teardown(test_bearer, keyset_setup, keyset_teardown),
		cmocka_unit_test_setup_teardown(test_basic, keyset_setup, keyset_teardown),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_key_too_long),
		cmocka_unit_test(test_genkey),
		cmocka_unit_test(test_keyset_add_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
