/* lib/coreread.h: the headers and notes of a core file, and the build-id
 * note of an ELF image found in target memory.
 *
 * Worth fuzzing although procdiag reads only cores it wrote (or gdb's):
 * the NT_FILE paths are whatever names the target mapped, and
 * pd_mem_build_id() parses bytes of the target's own memory, which the
 * target controls entirely. The input is the whole core file (a memfd).
 * Invariants: on success the loads are sorted by address and the file
 * entries have start <= end and paths inside the core's own strings;
 * pd_core_read() returns the file's bytes at each load's offset or
 * -EFAULT, never anything else; pd_core_auxv() agrees with a scan of the
 * raw auxv; a build-id fits its buffer. */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "lib/coreread.h"
#include "lib/modules.h"

static void check_core(const struct pd_core *c, const uint8_t *data, size_t size)
{
	unsigned char got[64];

	for (size_t i = 0; i < c->nload; i++) {
		const struct pd_core_load *l = &c->load[i];
		size_t n = l->filesz < sizeof(got) ? (size_t)l->filesz : sizeof(got);
		int r;

		if (i > 0)
			FUZZ_CHECK(c->load[i - 1].vaddr <= l->vaddr);
		if (n == 0 || l->memsz == 0)
			continue;
		if (n > l->memsz)
			n = (size_t)l->memsz;
		/* Overlapping loads: the lookup may pick another one. */
		if (pd_core_load_at(c, l->vaddr) != l)
			continue;
		r = pd_core_read(c, l->vaddr, got, n);
		FUZZ_CHECK(r == 0 || r == -EFAULT);
		if (r == 0) {
			FUZZ_CHECK(l->offset <= size && n <= size - l->offset);
			FUZZ_CHECK(memcmp(got, data + l->offset, n) == 0);
		} else {
			FUZZ_CHECK(l->offset > size || l->filesz > size - l->offset ||
				   l->vaddr + n < l->vaddr);
		}
	}
	for (size_t i = 0; i < c->nfile; i++) {
		const struct pd_core_file *f = &c->file[i];

		FUZZ_CHECK(f->start <= f->end);
		FUZZ_CHECK(f->path >= c->file_strings);
		(void)strlen(f->path); /* ASan: NUL-terminated inside the block */
	}
	for (size_t off = 0; off + 16 <= c->auxv_len; off += 16) {
		uint64_t kv[2], v;

		memcpy(kv, c->auxv + off, sizeof(kv));
		if (kv[0] == 0)
			break;
		FUZZ_CHECK(pd_core_auxv(c, kv[0], &v) == 0);
		/* The first entry of that type wins. */
		if (v != kv[1]) {
			int earlier = 0;

			for (size_t o = 0; o < off; o += 16)
				earlier |= memcmp(c->auxv + o, &kv[0], 8) == 0;
			FUZZ_CHECK(earlier);
		}
	}
	/* An address no core maps in practice. */
	FUZZ_CHECK(pd_core_read(c, UINT64_MAX - 7, got, 8) == -EFAULT || c->nload > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pd_core c = PD_CORE_INIT;
	unsigned char id[64];
	size_t idlen = 99;
	int fd, rc;

	fd = memfd_create("fuzz-core", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	rc = pd_core_open(fd, &c);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -EIO);
	if (rc == 0)
		check_core(&c, data, size);
	else
		FUZZ_CHECK(c.load == NULL && c.file == NULL && c.auxv == NULL && c.nload == 0);
	pd_core_release(&c);
	close(fd);

	/* The same bytes as an image in memory (its first pages). */
	if (size) {
		char *img = fuzz_exact(data, size);

		rc = pd_mem_build_id(img, size, id, sizeof(id), &idlen);
		FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
		FUZZ_CHECK(rc == 0 ? idlen > 0 && idlen <= sizeof(id) : idlen == 0);
		rc = pd_mem_build_id(img, size, id, 4, &idlen);
		FUZZ_CHECK(rc < 0 || (idlen > 0 && idlen <= 4));
		free(img);
	}
	return 0;
}
