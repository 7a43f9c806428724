#include "config.h"

#include "common/numparse.h"

#include <errno.h>
#include <stdbool.h>

/* PID_MAX_LIMIT on 64-bit kernels; no pid can be larger. */
#define PD_PID_MAX 4194304

/* Digits only, no sign; saturates so that callers can tell "too big"
 * (-ERANGE) from "not a number" (-EINVAL) even past 2^64. */
static int digits_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	bool over = false;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int r;

	r = digits_u64(s, len, &v);
	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
	bool neg;
	uint64_t mag;
	int64_t v;
	int r;

	if (len == 0)
		return -EINVAL;
	neg = s[0] == '-';
	r = digits_u64(s + neg, len - neg, &mag);
	if (r < 0)
		return r;
	if (neg) {
		/* -2^63 has no positive counterpart; build it without overflow. */
		if (mag > (uint64_t)INT64_MAX + 1)
			return -ERANGE;
		v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		if (mag > (uint64_t)INT64_MAX)
			return -ERANGE;
		v = (int64_t)mag;
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int parse_hex_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (hex_digit((unsigned char)s[i]) < 0)
			return -EINVAL;
	/* Checked after the syntax, so "x" * 17 is -EINVAL, not -ERANGE. */
	if (len > 16)
		return -ERANGE;
	for (size_t i = 0; i < len; i++)
		v = v << 4 | (uint64_t)hex_digit((unsigned char)s[i]);
	*out = v;
	return 0;
}

int parse_pid(const char *s, size_t len, int *out)
{
	uint64_t v;
	int r;

	/* "007" would name the same process as "7": one spelling per pid keeps
	 * URLs canonical. */
	if (len > 1 && s[0] == '0')
		return -EINVAL;
	r = parse_u64(s, len, PD_PID_MAX, &v);
	if (r < 0)
		return r;
	*out = (int)v;
	return 0;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}
