/* lib/procfs.h pd_parse_smaps_rollup(): /proc/PID/smaps_rollup.
 * Invariants: on success the text is whole lines and every value is -1
 * (absent) or a non-negative multiple of 1024; on failure out is
 * untouched. */
#include "config.h"

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_rollup ru, poison;
	int rc;

	memset(&poison, 0x3C, sizeof(poison));
	ru = poison;
	rc = pd_parse_smaps_rollup(buf, size, &ru);
	if (rc < 0) {
		FUZZ_CHECK(memcmp(&ru, &poison, sizeof(ru)) == 0);
	} else {
		const int64_t v[] = {ru.rss, ru.pss, ru.shared_clean, ru.shared_dirty,
				     ru.private_clean, ru.private_dirty, ru.referenced,
				     ru.anonymous, ru.swap, ru.swap_pss, ru.locked};

		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(size == 0 || buf[size - 1] == '\n');
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			FUZZ_CHECK(v[i] == -1 || (v[i] >= 0 && v[i] % 1024 == 0));
	}
	free(buf);
	return 0;
}
