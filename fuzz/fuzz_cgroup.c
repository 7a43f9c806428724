/* lib/cgroupstat.h's parsers. The first byte chooses the parser (its value
 * mod 5), the rest is its text:
 *   0 pd_cgroup_parse_proc       /proc/PID/cgroup
 *   1 pd_cgroup_parse_mountinfo  /proc/self/mountinfo
 *   2 pd_psi_parse               memory.pressure, /proc/pressure/memory
 *   3 pd_cgroup_parse_limit      memory.max, memory.limit_in_bytes
 *   4 pd_cgroup_parse_usage      memory.current, memory.usage_in_bytes
 * Invariants: on failure the output is untouched and the error is -EINVAL
 * or -ERANGE; on success what was found is checked against an independent
 * reading of the same text (paths: the first matching line's; PSI: the
 * first "some" line's avg10; numbers: a plain decimal parse). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz/fuzz.h"
#include "lib/cgroupstat.h"

static bool all_complete_lines(const char *s, size_t n)
{
	return n == 0 || s[n - 1] == '\n';
}

/* The path of the first complete line that starts with prefix (a v2 line
 * "0::"), or NULL. */
static const char *first_line_after(const char *s, size_t n, const char *prefix, size_t *pn)
{
	size_t k = strlen(prefix);
	const char *p = s, *end = s + n;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			return NULL;
		if ((size_t)(nl - p) >= k && memcmp(p, prefix, k) == 0) {
			*pn = (size_t)(nl - p) - k;
			return p + k;
		}
		p = nl + 1;
	}
	return NULL;
}

static void check_path(const char *path)
{
	size_t n = strnlen(path, PD_CG_PATH_MAX);

	FUZZ_CHECK(n > 0 && n < PD_CG_PATH_MAX);
	FUZZ_CHECK(path[0] == '/');
}

static void fuzz_proc(const char *buf, size_t size)
{
	static struct pd_proc_cgroup pc;
	const char *want;
	size_t wn = 0;
	int r;

	memset(&pc, 0x5a, sizeof(pc));
	r = pd_cgroup_parse_proc(buf, size, &pc);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ERANGE);
		FUZZ_CHECK(((unsigned char *)&pc)[0] == 0x5a);
		return;
	}
	FUZZ_CHECK(all_complete_lines(buf, size));
	want = first_line_after(buf, size, "0::", &wn);
	FUZZ_CHECK(pc.has_v2 == (want != NULL));
	if (pc.has_v2) {
		check_path(pc.v2);
		FUZZ_CHECK(strlen(pc.v2) == wn && memcmp(pc.v2, want, wn) == 0);
	}
	if (pc.has_v1mem) {
		check_path(pc.v1mem);
		FUZZ_CHECK(memmem(buf, size, "memory", 6) != NULL);
	}
}

static void fuzz_mountinfo(const char *buf, size_t size)
{
	static struct pd_cgroup_mountinfo mi;
	int r;

	memset(&mi, 0x5a, sizeof(mi));
	r = pd_cgroup_parse_mountinfo(buf, size, &mi);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ERANGE);
		FUZZ_CHECK(((unsigned char *)&mi)[0] == 0x5a);
		return;
	}
	FUZZ_CHECK(all_complete_lines(buf, size));
	if (mi.v2.found) {
		check_path(mi.v2.dir);
		check_path(mi.v2.root);
		FUZZ_CHECK(memmem(buf, size, " - cgroup2 ", 11) != NULL);
	}
	if (mi.v1mem.found) {
		check_path(mi.v1mem.dir);
		check_path(mi.v1mem.root);
		FUZZ_CHECK(memmem(buf, size, " - cgroup ", 10) != NULL);
	}
}

/* "D+.DD" -> hundredths, or -1. */
static int64_t ref_centi(const char *s, size_t n)
{
	int64_t v = 0;
	size_t i = 0;

	if (n < 4 || s[n - 3] != '.')
		return -1;
	for (; i < n - 3; i++) {
		if (s[i] < '0' || s[i] > '9' || v > 100000000000LL)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	for (i = n - 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static void fuzz_psi(const char *buf, size_t size)
{
	struct pd_psi p;
	const char *some;
	size_t sn = 0;
	int r;

	memset(&p, 0x5a, sizeof(p));
	r = pd_psi_parse(buf, size, &p);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ERANGE);
		FUZZ_CHECK(((unsigned char *)&p)[0] == 0x5a);
		return;
	}
	FUZZ_CHECK(all_complete_lines(buf, size));
	FUZZ_CHECK(p.has_some);
	some = first_line_after(buf, size, "some avg10=", &sn);
	FUZZ_CHECK(some != NULL);
	{
		const char *sp = memchr(some, ' ', sn);

		FUZZ_CHECK(sp != NULL);
		FUZZ_CHECK(ref_centi(some, (size_t)(sp - some)) == (int64_t)p.some_avg10);
	}
	if (p.has_full)
		FUZZ_CHECK(memmem(buf, size, "full avg10=", 11) != NULL);
}

static int ref_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static void fuzz_number(const char *buf, size_t size, bool limit)
{
	uint64_t v = 42, want = 0;
	bool one_line = size > 0 && buf[size - 1] == '\n' && !memchr(buf, '\n', size - 1);
	bool is_max = size == 4 && memcmp(buf, "max\n", 4) == 0;
	int ref = one_line ? ref_u64(buf, size - 1, &want) : -1;
	int r = limit ? pd_cgroup_parse_limit(buf, size, &v) : pd_cgroup_parse_usage(buf, size, &v);

	if (limit && is_max) {
		FUZZ_CHECK(r == 0 && v == 0);
		return;
	}
	if (ref < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ERANGE);
		FUZZ_CHECK(v == 42);
		return;
	}
	FUZZ_CHECK(r == 0);
	if (!limit)
		FUZZ_CHECK(v == want);
	else if (want >= PD_CG_V1_UNLIMITED)
		FUZZ_CHECK(v == 0);
	else
		FUZZ_CHECK(v == (want ? want : 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf;

	if (size == 0)
		return 0;
	buf = fuzz_exact(data + 1, size - 1);
	switch (data[0] % 5) {
	case 0: fuzz_proc(buf, size - 1); break;
	case 1: fuzz_mountinfo(buf, size - 1); break;
	case 2: fuzz_psi(buf, size - 1); break;
	case 3: fuzz_number(buf, size - 1, true); break;
	default: fuzz_number(buf, size - 1, false); break;
	}
	free(buf);
	return 0;
}
