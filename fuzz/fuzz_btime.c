/* lib/procfs.h pd_parse_btime(): the "btime" line of /proc/stat.
 * Invariants: on success the value is the decimal number of the first
 * whole line starting "btime " (checked by an independent parse), and no
 * cut line came before it; on failure the output is untouched. */
#include "config.h"

#include <errno.h>

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

/* -1 if the line after "btime " is not a plain decimal int64. */
static int ref_number(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	int64_t v = -42, want = -1;
	int rc = pd_parse_btime(buf, size, &v), ref = -1;
	const char *p = buf, *end = buf + size;

	/* The first complete line that starts with "btime ". */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			break;
		if (nl - p >= 6 && memcmp(p, "btime ", 6) == 0) {
			ref = ref_number(p + 6, (size_t)(nl - p - 6), &want);
			break;
		}
		p = nl + 1;
	}
	if (ref == 0) {
		FUZZ_CHECK(rc == 0 && v == want);
	} else {
		FUZZ_CHECK(rc == -EINVAL || rc == -ERANGE);
		FUZZ_CHECK(v == -42);
	}
	free(buf);
	return 0;
}
