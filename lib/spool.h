/* Spools: where a dump (and a zip bundle) is written before it is sent.
 *
 * A spool is an unnamed file: an O_TMPFILE in the configured directory, or
 * a memfd for small dumps. Nobody else can open it, and closing the fd
 * frees it, on every path (a crash included): never a named temp file.
 * The caller owns the returned fd and closes it. */
#ifndef PD_SPOOL_H
#define PD_SPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/proc.h"

/* Opens an empty, seekable, read-write spool (O_CLOEXEC) for about
 * estimate bytes: a memfd when estimate <= mem_max, else an O_TMPFILE in
 * dir, after checking the file system has room for estimate bytes
 * (fstatvfs, the space an unprivileged writer may use). *in_memory (may be
 * NULL) says which. Returns the fd or -errno:
 *   -ENOSPC      not enough room in dir for the estimate
 *   -EOPNOTSUPP  dir's file system has no O_TMPFILE (tmpfs, ext4, xfs and
 *                btrfs do)
 *   -ENOENT, -ENOTDIR, -EACCES, ...  dir is unusable */
int pd_spool_open(const char *dir, uint64_t mem_max, uint64_t estimate, bool *in_memory);

/* Whether fd's bytes are held in RAM: a memfd or a file on tmpfs. */
bool pd_spool_in_memory(int fd);

/* Bytes an unprivileged writer may still add to the file system of fd. */
int pd_spool_room(int fd, uint64_t *avail);

/* Punching behind a reader: a spool read once, front to back, and dropped
 * after (a core being compressed, a stream being uploaded) loses its front
 * as soon as that is read for good: FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, so its
 * dirty pages go without being written back, its blocks are freed (and, on
 * a file system mounted `discard`, discarded) while the reading goes on
 * instead of all in the final close(), and its page cache (a memfd's RAM)
 * is freed early. docs/DUMPS.md, "Where the core waits". Never for a file
 * that is kept: a punched range reads as zeros.
 *
 * The punches are made by the caller of pd_spool_behind (a zeroed struct
 * with fd and step set: the egress uploader, a thread of its own), or by a
 * thread of b's own (pd_spool_behind_start), so that a compressor is not
 * held while the file system frees and discards what was written back. */
struct pd_spool_behind {
	int fd;		  /* not owned; -1: punch nothing */
	uint64_t step;	  /* punch once this many bytes more are read; 0: any page */
	uint64_t punched; /* [0, punched) is done (by the punching thread) */
	bool threaded;	  /* punched by th */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t want; /* under mu: th punches up to here */
	bool end;      /* under mu: th punches what is wanted, then ends */
};

#define PD_SPOOL_BEHIND_STEP (8u << 20)

/* b punches fd (which must stay open until pd_spool_behind_end) in steps of
 * step bytes from a thread of its own; without a thread (none could be
 * started) in pd_spool_behind's caller, as a zeroed struct does. */
void pd_spool_behind_start(struct pd_spool_behind *b, int fd, uint64_t step);

/* [0, upto) of b->fd will never be read again: punched (down to a page)
 * once that is b->step bytes past the last punch; with all, upto is the
 * file's size and all of it goes (its last partial page too). A failed
 * punch only costs room: it is not an error (the bytes stay). */
void pd_spool_behind(struct pd_spool_behind *b, uint64_t upto, bool all);

/* Waits for b's thread to punch what it was given, and ends it. A b without
 * a thread: nothing. */
void pd_spool_behind_end(struct pd_spool_behind *b);

/* What a dump of p with the content mask (PD_DC_*) will take on disk, at
 * most (the core is sparse: pages never touched are holes). From
 * /proc/PID/status and maps: resident and swapped anonymous and shmem
 * memory for the memory bits, the sizes of written private file mappings
 * for PD_DC_FILE_DATA, and for the mini base a page per mapping and a
 * generous stack per thread. 0 or -errno (-ESRCH: gone). */
int pd_dump_estimate(struct pd_proc *p, unsigned content, uint64_t *bytes);

#endif
