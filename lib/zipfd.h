/* libzip sources over file descriptors, for the zip bundle.
 *
 * The archive sink writes the zip into a caller's fd (an O_TMPFILE spool)
 * with pwrite from offset 0: libzip's own file sources would want a path
 * and a named temporary file beside it, which a spool never has.
 *
 * An input file is read with pread. It is either held open (the fd, owned)
 * or reopened on each ZIP_SOURCE_OPEN relative to a directory fd and
 * checked to be the same inode, so a bundle of a process with thousands of
 * mapped files does not need thousands of fds at once. One file may back
 * several zip entries (a library stored under two names): it is reference
 * counted, each libzip source holds one reference. */
#ifndef PD_ZIPFD_H
#define PD_ZIPFD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <zip.h>

struct pd_zsink {
	int fd;	       /* not owned */
	uint64_t wpos; /* write position */
	uint64_t wlen; /* bytes written so far (the high-water mark) */
	uint64_t len;  /* committed length: what STAT and READ see */
	uint64_t rpos;
	uint64_t limit; /* the most the fd may hold; 0: no limit but the fs's */
	int err;	/* first errno of a failed write or truncate, else 0 */
	zip_error_t ze;
};

/* A read/write libzip source over s (which must outlive it), writing to fd
 * from offset 0 (fd may be set in s->fd later, before the first write). A
 * write past s->limit fails with EFBIG before anything is written. COMMIT
 * truncates fd to what was written; ROLLBACK and REMOVE truncate it to 0.
 * NULL (ze set) without memory. */
zip_source_t *pd_zsink_source(struct pd_zsink *s, int fd, zip_error_t *ze);

struct pd_zfile;

/* Takes ownership of fd (closed on the last unref, or now on failure). */
struct pd_zfile *pd_zfile_from_fd(int fd, uint64_t size, time_t mtime);
/* Opens name for reading: an fd or -errno. */
typedef int (*pd_zfile_open_fn)(void *arg, const char *name);
/* Reopened on demand: open(arg, name) must give inode (dev, ino) again.
 * arg must stay valid while any source of the file exists. */
struct pd_zfile *pd_zfile_lazy(pd_zfile_open_fn open, void *arg, const char *name, dev_t dev,
			       ino_t ino, uint64_t size, time_t mtime);
void pd_zfile_unref(struct pd_zfile *f);
uint64_t pd_zfile_size(const struct pd_zfile *f);
/* Calls fn(arg, n) after each read of n bytes from f, by any of its
 * sources (arg must outlive them); nonzero fails the read (ZIP_ER_CANCELLED:
 * zip_close stops there). Returns f's size. */
typedef int (*pd_zfile_watch_fn)(void *arg, uint64_t n);
uint64_t pd_zfile_watch(struct pd_zfile *f, pd_zfile_watch_fn fn, void *arg);
/* A seekable read source of the file; takes its own reference. */
zip_source_t *pd_zfile_source(struct pd_zfile *f, zip_error_t *ze);

/* A read source of f's bytes already deflated, on every CPU
 * (lib/pdeflate.h): its STAT says ZIP_CM_DEFLATE with the size and, once
 * read to the end, the CRC, so libzip (zip_close's add_data) copies the
 * stream as the entry's data instead of compressing it again. f's watch
 * (pd_zfile_watch) is told of the input bytes as their deflated form is
 * read; its nonzero answer fails the read. Takes its own reference of f.
 * consume: f is a spool dropped after the zip (the dump job's core), punched
 * behind the deflate (pd_pdeflate_opts.consume); a second ZIP_SOURCE_OPEN
 * then fails (ZIP_ER_INTERNAL) instead of reading the holes. */
zip_source_t *pd_zfile_deflated_source(struct pd_zfile *f, int level, bool consume,
				       zip_error_t *ze);

#endif
