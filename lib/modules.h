/* Mapped ELF objects of a process (Kudu's "modules").
 *
 * A module is a file-backed mapping set of one (dev, inode) with at least one
 * executable mapping, or the main executable; base is the lowest start
 * address among its mappings (the load base for PIE/DSO: the mapping with
 * offset 0), size the span from base to the end of its last mapping.
 * Pseudo-files ([vdso] included) are left out, except "[vdso]" itself which
 * is reported with path "[vdso]". Sorted by file name (basename), then base.
 * build_id is read from the file through /proc/PID/map_files (the mapped
 * inode even when the path was replaced), falling back to the path; it is
 * cached per (dev, inode, mtime), thread-safe. */
#ifndef PD_MODULES_H
#define PD_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include "lib/proc.h"

#define PD_BUILD_ID_MAX 64 /* bytes; hex form is twice that */

struct pd_module {
	uint64_t base;
	uint64_t size;
	char *path;      /* raw bytes, owned */
	const char *name; /* basename, points into path */
	unsigned char build_id[PD_BUILD_ID_MAX];
	size_t build_id_len; /* 0 when unknown */
	uint64_t dev, inode;
	bool deleted;
};
struct pd_modules {
	size_t n;
	struct pd_module *v;
};
#define PD_MODULES_INIT { 0, NULL }

/* Fills out from the maps (pass maps you already read, or NULL to read them).
 * with_build_ids: false skips opening files (list views). */
int pd_proc_modules(struct pd_proc *p, const struct pd_maps *maps, bool with_build_ids,
		    struct pd_modules *out);
void pd_modules_release(struct pd_modules *m);
/* Reads the GNU build-id note of the ELF file open at fd. 0, -ENOENT (no
 * note), -EINVAL (not ELF). */
int pd_elf_build_id(int fd, unsigned char *id, size_t idmax, size_t *idlen);
/* The same for an ELF image that starts at buf (the first page(s) of a
 * mapping at file offset 0): -ENOENT also when the note is not within len,
 * -EINVAL for a note longer than idmax. */
int pd_mem_build_id(const void *buf, size_t len, unsigned char *id, size_t idmax, size_t *idlen);

#endif
