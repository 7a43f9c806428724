/* lib/procfs.h pd_parse_nulsep(): /proc/PID/cmdline and environ, which a
 * process may rewrite with anything.
 * Invariants: never fails but for memory; one item per NUL, plus one when
 * the last NUL is missing; len[i] == strlen(v[i]); joining the items with
 * NULs gives the input back. */
#include "config.h"

#include <errno.h>

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_strv sv = PD_STRV_INIT;
	size_t want = 0, o = 0;
	int rc;

	for (size_t i = 0; i < size; i++)
		want += buf[i] == '\0';
	if (size && buf[size - 1] != '\0')
		want++;
	rc = pd_parse_nulsep(buf, size, &sv);
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
	if (rc == 0) {
		FUZZ_CHECK(sv.n == want);
		for (size_t i = 0; i < sv.n; i++) {
			FUZZ_CHECK(strlen(sv.v[i]) == sv.len[i]);
			FUZZ_CHECK(o + sv.len[i] <= size);
			FUZZ_CHECK(memcmp(buf + o, sv.v[i], sv.len[i]) == 0);
			o += sv.len[i];
			FUZZ_CHECK(o == size || buf[o] == '\0');
			o++;
		}
		FUZZ_CHECK(o == size || o == size + 1);
	}
	pd_strv_release(&sv);
	FUZZ_CHECK(sv.n == 0 && sv.v == NULL && sv.buf == NULL);
	free(buf);
	return 0;
}
