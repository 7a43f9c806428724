/* Reading a finished ELF core (ours or gdb's gcore): its PT_LOADs, the file
 * mappings of NT_FILE, the auxiliary vector of NT_AUXV, and the target's
 * memory as far as the core holds it. Used by the zip bundle to learn which
 * files were mapped where, what build-id each one had in memory, and the
 * dynamic linker's names for them (the r_debug / link_map chain).
 *
 * Only 64-bit little-endian cores of the machine we run on are read; the
 * core is read with pread (libelf ELF_C_READ), never mapped. */
#ifndef PD_COREREAD_H
#define PD_COREREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_core_load {
	uint64_t vaddr, memsz;	 /* the mapping */
	uint64_t offset, filesz; /* its bytes in the core: filesz may be < memsz */
	uint32_t flags;		 /* PF_R | PF_W | PF_X */
};

/* One NT_FILE entry. pgoff is in bytes. path is raw bytes, NUL-terminated,
 * as the dumper wrote it (the kernel and gdb may append " (deleted)"). */
struct pd_core_file {
	uint64_t start, end, pgoff;
	const char *path;
};

struct pd_core {
	int fd; /* not owned */
	uint64_t size;
	size_t nload;
	struct pd_core_load *load; /* sorted by vaddr */
	size_t nfile;
	struct pd_core_file *file; /* in the note's order (address order) */
	char *file_strings;
	unsigned char *auxv; /* raw NT_AUXV, pairs of uint64 */
	size_t auxv_len;
};
#define PD_CORE_INIT                                                                               \
	{                                                                                          \
		-1, 0, 0, NULL, 0, NULL, NULL, NULL, 0                                             \
	}

/* Reads the program headers and notes of the core open at fd. 0, -EINVAL
 * (not an ELF core of this machine, or a malformed note), -ENOMEM, -EIO.
 * Release with pd_core_release() on every path. */
int pd_core_open(int fd, struct pd_core *c);
void pd_core_release(struct pd_core *c);

/* Copies len bytes of target memory at vaddr out of the core. -EFAULT when
 * any of them is not in the core (no PT_LOAD, or beyond its p_filesz). */
int pd_core_read(const struct pd_core *c, uint64_t vaddr, void *buf, size_t len);

/* The value of auxv entry type (AT_PHDR, ...): 0 or -ENOENT. */
int pd_core_auxv(const struct pd_core *c, uint64_t type, uint64_t *val);

/* The PT_LOAD covering vaddr, or NULL. */
const struct pd_core_load *pd_core_load_at(const struct pd_core *c, uint64_t vaddr);


#endif
