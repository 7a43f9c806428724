/* lib/procfs.h pd_parse_status(): /proc/PID/status (Name: is the comm).
 * Invariants: on success the text is whole lines, the name is cut to
 * PD_COMM_MAX - 1 and NUL-terminated, the state is a letter, every memory
 * value is -1 (absent) or a non-negative multiple of 1024, ids are -1 or
 * 32-bit; on failure out is untouched. */
#include "config.h"

#include <ctype.h>

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

static void check_kb(int64_t v)
{
	FUZZ_CHECK(v == -1 || (v >= 0 && v % 1024 == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_status st, poison;
	int rc;

	memset(&poison, 0x5A, sizeof(poison));
	st = poison;
	rc = pd_parse_status(buf, size, &st);
	if (rc < 0) {
		FUZZ_CHECK(memcmp(&st, &poison, sizeof(st)) == 0);
	} else {
		const int64_t kb[] = {st.vm_peak, st.vm_size, st.vm_lck,  st.vm_hwm,
				      st.vm_rss,  st.rss_anon, st.rss_file, st.rss_shmem,
				      st.vm_data, st.vm_stk,  st.vm_exe,  st.vm_lib,
				      st.vm_pte,  st.vm_swap};

		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(size > 0 && buf[size - 1] == '\n');
		FUZZ_CHECK(st.name_len < PD_COMM_MAX && st.name[st.name_len] == '\0');
		FUZZ_CHECK(isalpha((unsigned char)st.state) && st.ppid >= 0);
		for (size_t i = 0; i < sizeof(kb) / sizeof(kb[0]); i++)
			check_kb(kb[i]);
		for (int i = 0; i < 4; i++) {
			FUZZ_CHECK(st.uid[i] >= -1 && st.uid[i] <= (int64_t)UINT32_MAX);
			FUZZ_CHECK(st.gid[i] >= -1 && st.gid[i] <= (int64_t)UINT32_MAX);
		}
		FUZZ_CHECK(st.threads >= -1 && st.voluntary_ctxt_switches >= -1 &&
			   st.nonvoluntary_ctxt_switches >= -1);
	}
	free(buf);
	return 0;
}
