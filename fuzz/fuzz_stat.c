/* lib/procfs.h pd_parse_stat(): /proc/PID/stat, whose comm any process sets.
 * Invariants: on success the text ends in '\n', comm is the bytes between
 * the first '(' and the last ')' cut to PD_COMM_MAX - 1, NUL-terminated,
 * the state is a letter right after ") ", pid and ppid are not negative;
 * parsing is deterministic; on failure out is untouched. */
#include "config.h"

#include <ctype.h>

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_stat st, again, poison;
	int rc;

	memset(&poison, 0xA5, sizeof(poison));
	st = poison;
	rc = pd_parse_stat(buf, size, &st);
	if (rc < 0) {
		FUZZ_CHECK(memcmp(&st, &poison, sizeof(st)) == 0);
	} else {
		const char *lp = memchr(buf, '(', size), *rp = memrchr(buf, ')', size);
		size_t want;

		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(size > 0 && buf[size - 1] == '\n');
		FUZZ_CHECK(lp && rp && lp < rp);
		want = (size_t)(rp - lp - 1);
		if (want > PD_COMM_MAX - 1)
			want = PD_COMM_MAX - 1;
		FUZZ_CHECK(st.comm_len == want);
		FUZZ_CHECK(memcmp(st.comm, lp + 1, want) == 0 && st.comm[want] == '\0');
		FUZZ_CHECK(rp + 3 < buf + size && rp[1] == ' ' && rp[2] == st.state);
		FUZZ_CHECK(isalpha((unsigned char)st.state));
		FUZZ_CHECK(st.pid >= 0 && st.ppid >= 0 && st.pgrp >= -1 && st.session >= -1);
		FUZZ_CHECK(st.num_threads >= 0 && st.processor >= 0);
		FUZZ_CHECK(pd_stat_is_kthread(&st) == ((st.flags & PD_PF_KTHREAD) != 0));
		memset(&again, 0, sizeof(again));
		FUZZ_CHECK(pd_parse_stat(buf, size, &again) == 0);
		FUZZ_CHECK(memcmp(&st, &again, sizeof(st)) == 0);
	}
	free(buf);
	return 0;
}
