/* Range-checked number parsing for untrusted text (query strings, /proc,
 * config files). Unlike strtol, these reject empty input, leading spaces or
 * signs that were not asked for, trailing garbage, and overflow. */
#ifndef PD_NUMPARSE_H
#define PD_NUMPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses all of s[0..len) as a decimal number in [min, max].
 * 0, or -EINVAL (not a number, or trailing bytes), -ERANGE (out of range). */
int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);
int parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);
/* Lower- or upper-case hex digits only, no "0x" prefix; at most 16 digits. */
int parse_hex_u64(const char *s, size_t len, uint64_t *out);
/* A pid: decimal, 0..4194304 (PID_MAX_LIMIT), no sign, no leading zeros
 * except "0" itself. */
int parse_pid(const char *s, size_t len, int *out);
/* A byte count: digits, optionally followed by K, M, G or T (powers of
 * 1024, either case). 0, -EINVAL, -ERANGE (past 2^64). */
int parse_bytes(const char *s, uint64_t *out);
/* The other way, for people: v in binary units with one decimal below 10
 * ("1.5 KiB", "12 MiB"; iec false: "1.5K", "12M"), below 1024 in bytes
 * ("512 B"; "512"). size >= 16. */
void format_bytes(uint64_t v, bool iec, char *buf, size_t size);
/* A duration: digits, optionally followed by ms, s, m, h or d; bare digits
 * are seconds. *out gets milliseconds, at most max_ms. 0, -EINVAL, -ERANGE. */
int parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);
/* The value of one hex digit (either case), or -1. */
int hex_digit(unsigned char c);
/* n bytes as 2n lower-case hex digits and a NUL into out (2n + 1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

#endif
