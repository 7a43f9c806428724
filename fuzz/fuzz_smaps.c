/* lib/memcopy.h pd_parse_smaps(): /proc/PID/smaps, which the dump engine
 * plans a core from (maps header lines, paths included, then fields).
 * Invariants: on success one pd_vma per header line, each pointing at its
 * own pd_map, sizes in whole KiB; on failure everything is empty; release
 * leaves nothing behind (LeakSanitizer found a leak here first). */
#include "config.h"

#include <errno.h>

#include "fuzz/fuzz.h"
#include "lib/memcopy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_vmas v = PD_VMAS_INIT;
	int rc = pd_parse_smaps(buf, size, &v);

	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE || rc == -ENOMEM);
	if (rc < 0) {
		FUZZ_CHECK(v.n == 0 && v.v == NULL && v.maps.n == 0 && v.maps.v == NULL);
	} else {
		FUZZ_CHECK(size == 0 || buf[size - 1] == '\n');
		FUZZ_CHECK(v.n == v.maps.n);
		for (size_t i = 0; i < v.n; i++) {
			FUZZ_CHECK(v.v[i].map == &v.maps.v[i]);
			FUZZ_CHECK(v.v[i].rss % 1024 == 0 && v.v[i].swap % 1024 == 0 &&
				   v.v[i].anonymous % 1024 == 0);
			FUZZ_CHECK((v.v[i].vmflags & ~PD_VM_ALL) == 0);
		}
	}
	pd_vmas_release(&v);
	FUZZ_CHECK(v.n == 0 && v.v == NULL);
	free(buf);
	return 0;
}
