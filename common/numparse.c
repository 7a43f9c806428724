#include "config.h"

#include "common/numparse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

int parse_bytes(const char *s, uint64_t *out)
{
	size_t len = strlen(s);
	unsigned shift = 0;
	uint64_t n;
	int r;

	if (len > 1) {
		switch (s[len - 1]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		}
		if (shift)
			len--;
	}
	r = parse_u64(s, len, UINT64_MAX >> shift, &n);
	if (r < 0)
		return r;
	*out = n << shift;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		      { "d", 86400000 } };
	size_t len = strlen(s), digits = len;
	uint64_t mult = 1000, n;
	int r;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t sl = strlen(units[i].suffix);

		if (len > sl && !strcmp(s + len - sl, units[i].suffix)) {
			digits = len - sl;
			mult = units[i].ms;
			break;
		}
	}
	r = parse_u64(s, digits, max_ms / mult, &n);
	if (r < 0)
		return r;
	*out = n * mult;
	return 0;
}

void format_bytes(uint64_t v, bool iec, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	double x = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(buf, size, iec ? "%u B" : "%u", (unsigned)v);
		return;
	}
	while (x >= 1024 && u < 5) {
		x /= 1024;
		u++;
	}
	/* 9.96 KiB would print as "10.0": one decimal only below 9.95. */
	snprintf(buf, size, x < 9.95 ? "%.1f%s%c%s" : "%.0f%s%c%s", x, iec ? " " : "", units[u],
		 iec ? "iB" : "");
}
