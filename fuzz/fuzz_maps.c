/* lib/procfs.h pd_parse_maps(): /proc/PID/maps, whose paths are any file
 * name a process can create or map.
 * Invariants: on success there is one mapping per line, start <= end, the
 * permissions are "[r-][w-][x-][ps]", a path is NUL-terminated, non-empty,
 * lies in the pd_maps' own storage and appears on its line; on failure the
 * struct is empty. */
#include "config.h"

#include "fuzz/fuzz.h"
#include "lib/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_exact(data, size);
	struct pd_maps m = PD_MAPS_INIT;
	const char *line = buf;
	size_t lines = 0;
	int rc;

	for (size_t i = 0; i < size; i++)
		lines += buf[i] == '\n';
	rc = pd_parse_maps(buf, size, &m);
	if (rc < 0) {
		FUZZ_CHECK(m.n == 0 && m.v == NULL && m.strings == NULL);
		free(buf);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size == 0 || buf[size - 1] == '\n');
	FUZZ_CHECK(m.n == lines);
	for (size_t i = 0; i < m.n; i++) {
		const struct pd_map *p = &m.v[i];
		const char *nl = memchr(line, '\n', size - (size_t)(line - buf));

		FUZZ_CHECK(nl != NULL);
		FUZZ_CHECK(p->start <= p->end);
		FUZZ_CHECK(strlen(p->perms) == 4 && strchr("r-", p->perms[0]) &&
			   strchr("w-", p->perms[1]) && strchr("x-", p->perms[2]) &&
			   strchr("ps", p->perms[3]));
		if (p->path) {
			size_t plen = strlen(p->path), llen = (size_t)(nl - line);

			FUZZ_CHECK(p->path >= m.strings && p->path + plen < m.strings + size + 1);
			FUZZ_CHECK(plen > 0 && plen < llen);
			/* The path is the line's tail, less " (deleted)". */
			FUZZ_CHECK(memmem(line, llen, p->path, plen) != NULL);
			if (p->deleted)
				FUZZ_CHECK(llen >= plen + 10 &&
					   memcmp(nl - 10, " (deleted)", 10) == 0);
		} else {
			FUZZ_CHECK(!p->deleted);
		}
		line = nl + 1;
	}
	pd_maps_release(&m);
	FUZZ_CHECK(m.n == 0 && m.v == NULL && m.strings == NULL);
	free(buf);
	return 0;
}
