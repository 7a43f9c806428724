/* The copy engine: what a frozen process's memory looks like (smaps), which
 * pages of it must be read (pagemap), reading them fast (process_vm_readv
 * with large batches of iovecs, /proc/PID/mem for what only it can read),
 * and writing them to a sparse file (all-zero pages become holes).
 *
 * Rules it keeps:
 * - never fault in a page the target never touched: a private anonymous
 *   range is checked against /proc/PID/pagemap and pages neither present nor
 *   swapped are holes, never read (file-backed and shared pages are always
 *   read: their content lives in the page cache or the file);
 * - never read the kernel's zero page either (pd_copy_zero_pages): it is
 *   what a debugger's read of an untouched page leaves mapped;
 * - a page that cannot be read is zeros of the same length, so no offset
 *   ever moves;
 * - the caller gives exact file offsets; nothing here decides layout. */
#ifndef PD_MEMCOPY_H
#define PD_MEMCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/freeze.h"
#include "lib/procfs.h"

/* VmFlags of smaps that the dump rules look at. */
#define PD_VM_DD 0x1u  /* dd: VM_DONTDUMP (madvise(MADV_DONTDUMP), [vvar]) */
#define PD_VM_IO 0x2u  /* io: VM_IO, device memory */
#define PD_VM_HT 0x4u  /* ht: hugetlb */
#define PD_VM_PF 0x8u  /* pf: VM_PFNMAP */
#define PD_VM_SH 0x10u /* sh: VM_SHARED */
#define PD_VM_DC 0x20u /* dc: VM_DONTCOPY (madvise(MADV_DONTFORK)) */
#define PD_VM_WF 0x40u /* wf: VM_WIPEONFORK (madvise(MADV_WIPEONFORK)) */
#define PD_VM_ALL 0x7fu /* every bit above */

/* Bits of a /proc/PID/pagemap entry. */
#define PD_PM_PRESENT	(1ull << 63)
#define PD_PM_SWAPPED	(1ull << 62)
#define PD_PM_FILE	(1ull << 61) /* file page or shared anonymous */
#define PD_PM_EXCLUSIVE (1ull << 56) /* mapped by this process only (Linux >= 4.2) */

/* How pages mapping the kernel's shared zero page are told from data
 * (pd_copy_zero_pages), best first; a method the kernel refuses gives way
 * to the next for the rest of the dump. */
enum pd_zero_method {
	PD_ZERO_SCAN,	    /* ioctl PAGEMAP_SCAN, PAGE_IS_PFNZERO (Linux >= 6.7) */
	PD_ZERO_MOVE_PAGES, /* move_pages(2) query: -EFAULT for the zero page */
	PD_ZERO_NONE,	    /* neither: every present page is read */
};
/* "pagemap_scan", "move_pages", "none". */
const char *pd_zero_method_name(enum pd_zero_method m);

/* One mapping as /proc/PID/smaps shows it. Sizes in bytes. */
struct pd_vma {
	const struct pd_map *map; /* start, end, offset, perms, path, ... */
	uint64_t rss, swap, anonymous;
	unsigned vmflags; /* PD_VM_* */
};
struct pd_vmas {
	size_t n;
	struct pd_vma *v;
	struct pd_maps maps; /* owns the pd_map entries and paths */
};
#define PD_VMAS_INIT                                                                               \
	{                                                                                          \
		0, NULL, PD_MAPS_INIT                                                              \
	}
/* Parses smaps text (header lines as in maps, then "Key: value" lines).
 * 0, -EINVAL or -ENOMEM; on failure out is empty. */
int pd_parse_smaps(const char *buf, size_t len, struct pd_vmas *out);
void pd_vmas_release(struct pd_vmas *v);

/* A page-aligned stretch of target memory to copy to a file offset. */
struct pd_run {
	uint64_t addr, len, off;
};
struct pd_runs {
	size_t n, alloc;
	struct pd_run *v;
	uint64_t bytes; /* sum of len */
};
#define PD_RUNS_INIT                                                                               \
	{                                                                                          \
		0, 0, NULL, 0                                                                      \
	}
void pd_runs_release(struct pd_runs *r);

struct pd_copy {
	struct pd_freeze *fz; /* the frozen target (io_tid, procfd) */
	/* Where memory is read from when not the target: its copy-on-write
	 * clone (lib/cowclone.h); 0 and -1: the target. */
	pid_t src;
	int srcmem;	      /* /proc/SRC/mem */
	int pagemapfd;	      /* task/IO_TID/pagemap, opened lazily */
	uint64_t *pm;	      /* pagemap buffer */
	size_t page;
	uint64_t unreadable; /* pages that read as zeros because they failed */
	pid_t pm_tid;	     /* whose pagemap pagemapfd is */
	enum pd_zero_method zero_method;
	uint64_t zero_pages; /* pages pd_copy_zero_pages() found, summed */
	void *zbuf;	     /* its buffers, allocated on first use */
};
void pd_copy_init(struct pd_copy *c, struct pd_freeze *fz);
/* Opens task/IO_TID/pagemap (c->pagemapfd) if not yet open. 0 or -errno. */
int pd_copy_open_pagemap(struct pd_copy *c);
void pd_copy_release(struct pd_copy *c);

/* Of the n pagemap entries pm[] of the pages from va (n <= 8192): clears
 * PD_PM_PRESENT in those that map the kernel's shared zero page, so they
 * are holes like pages never touched. A read of never-written anonymous
 * memory maps it (a debugger, gcore, any reader of /proc/PID/mem): present
 * in pagemap, but not data, and not in smaps' Rss. Only a page the kernel
 * names the zero page is cleared; when it cannot tell (no method left,
 * an error) the page stays and is read. Adds to c->zero_pages and returns
 * how many it cleared. */
size_t pd_copy_zero_pages(struct pd_copy *c, uint64_t va, size_t n, uint64_t *pm);

/* Adds the pages of [addr, addr + len) to runs, to land at file offset
 * off + (page - addr). With pagemap, pages neither present nor swapped
 * and pages of the zero page are left out (they are holes: zeros).
 * Adjacent runs merge. 0 or -errno. */
int pd_copy_plan(struct pd_copy *c, uint64_t addr, uint64_t len, uint64_t off, bool pagemap,
		 struct pd_runs *runs);

/* Reads runs[0..n) into dst, packed in order (dst holds their total
 * length). Pages that cannot be read are zeros. 0 or -ENOMEM. */
int pd_copy_read(struct pd_copy *c, const struct pd_run *runs, size_t n, char *dst);

/* Reads runs[0..n) each to base + its file offset (base: the output file
 * mapped MAP_SHARED). Pages that cannot be read are zeroed like above. */
int pd_copy_read_at(struct pd_copy *c, const struct pd_run *runs, size_t n, char *base);

/* Makes holes of the output's [off, off + len): FALLOC_FL_PUNCH_HOLE; 0 when
 * the file system cannot (the zeros stay), else -errno. */
int pd_punch(int fd, uint64_t off, uint64_t len);

/* Progress: called with bytes done so far (of the runs' total). */
struct pd_progress {
	void (*fn)(void *arg, uint64_t done, uint64_t total);
	void *arg;
	uint64_t done, total, last;
};

/* After pd_copy_read_at(): punches the stretches of all-zero pages of
 * runs[0..n) at least min_hole long out of fd (mapped at base) and adds
 * the bytes left in the file to *written. */
int pd_copy_holes(int fd, const struct pd_run *runs, size_t n, const char *base,
		  uint64_t min_hole, uint64_t *written, struct pd_progress *pr);

/* Writes the packed data of runs[0..n) (as pd_copy_read left it) at their
 * offsets in fd, leaving every all-zero page a hole. *written grows by the
 * bytes actually written. 0 or -errno of the failed write (-ENOSPC, ...). */
int pd_copy_write(int fd, const struct pd_run *runs, size_t n, const char *src, uint64_t *written,
		  struct pd_progress *pr);

/* Reads and writes runs through a bounded buffer (bufsize bytes): for when
 * the whole copy does not fit in memory. *written as above. 0 or -errno
 * (write errors; *write_failed tells them from -ENOMEM). */
int pd_copy_direct(struct pd_copy *c, const struct pd_runs *runs, int fd, size_t bufsize,
		   uint64_t *written, struct pd_progress *pr, bool *write_failed);

/* Writes len bytes at off, all of them (short writes retried). 0 or -errno. */
int pd_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

#endif
