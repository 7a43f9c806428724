/* What every harness shares. A harness is one LLVMFuzzerTestOneInput(); it is
 * linked either with libFuzzer (make fuzz: clang, -fsanitize=fuzzer,address,
 * undefined) or with fuzz/replay.c (make check: the normal compiler, feeding
 * the committed corpus and regression inputs once each).
 *
 * Harnesses assert what the parser promises, not only that it returns:
 * FUZZ_CHECK() prints the failed condition and aborts, which libFuzzer
 * records as a crash and the replay driver turns into a failed test. */
#ifndef PD_FUZZ_H
#define PD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,     \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A NUL-terminated heap copy of the input up to its first NUL (the parsers
 * that take C strings never see bytes past one). Aborts on ENOMEM: a
 * harness has nothing better to do. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	size_t n = strnlen((const char *)data, size);
	char *s = malloc(n + 1);

	FUZZ_CHECK(s != NULL);
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* A heap copy of exactly size bytes (never NUL-terminated), so that a read
 * one past the end is an ASan report even when the caller's buffer had
 * slack. For size 0 it is malloc(0): any read of it is a report. */
static inline char *fuzz_exact(const uint8_t *data, size_t size)
{
	char *s = calloc(size, 1); /* (calloc: gcc cannot tell size 0 is never read) */

	FUZZ_CHECK(s != NULL || size == 0);
	if (size)
		memcpy(s, data, size);
	return s;
}

static inline int fuzz_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

#endif
