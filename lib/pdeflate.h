/* Parallel deflate of a (sparse) file: pigz's method.
 *
 * The input is cut into chunks of PD_PDEFLATE_CHUNK bytes, each deflated
 * by one of several worker threads on its own: primed with the 32 KiB
 * before it as the dictionary, ended on a byte boundary with a sync flush
 * (an empty stored block), the last one finished. Their concatenation is
 * one valid raw deflate stream (RFC 1951) of the whole input, read here in
 * order; the CRC-32 of the input is the chunks' CRCs joined with
 * crc32_combine. A chunk that is all zeros (a hole of the file, found with
 * SEEK_DATA and never read, or zeros read) is not compressed again: it
 * gets one block made once, without a dictionary.
 *
 * At most 2 chunks per worker are in flight (input, output and the zero
 * block: about 3 MiB per worker). See docs/DUMPS.md, "Compression". */
#ifndef PD_PDEFLATE_H
#define PD_PDEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PD_PDEFLATE_CHUNK (1u << 20)

struct pd_pdeflate_opts {
	int fd;		  /* read with pread and lseek(SEEK_DATA); not owned */
	uint64_t size;	  /* bytes of fd to deflate, from offset 0 */
	int level;	  /* zlib level, 1..9 */
	unsigned threads; /* workers; 0: the CPUs this process may run on */
	/* Called by the reading thread as the stream is read, with the input
	 * bytes whose deflated form was read so far; nonzero stops the stream
	 * (-ECANCELED). NULL: none. */
	int (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	/* fd is a spool dropped after this one stream (a core waiting for its
	 * zip): each chunk, once its deflated form is read and the next chunk
	 * no longer needs its last 32 KiB as the dictionary, is punched out of
	 * fd (lib/spool.h, pd_spool_behind), in steps of PD_SPOOL_BEHIND_STEP;
	 * the rest once the stream ends. fd cannot be read again after: never
	 * set for a file the caller keeps. */
	bool consume;
};

struct pd_pdeflate;

/* Starts the workers; *out is owned by the caller (pd_pdeflate_free).
 * 0 or -errno (-ENOMEM, -EINVAL for a bad level, -EAGAIN: no thread). */
int pd_pdeflate_start(const struct pd_pdeflate_opts *o, struct pd_pdeflate **out);

/* Copies up to len bytes of the stream, in order. Returns the bytes copied,
 * 0 at the end of the stream, or -errno of a failed read of the input
 * (-EIO, ...), -ENOMEM or -ECANCELED (progress said stop); after an error
 * every call returns it again. */
ssize_t pd_pdeflate_read(struct pd_pdeflate *p, void *buf, size_t len);

/* After pd_pdeflate_read returned 0: the CRC-32 of the input and the
 * length of the stream. */
uint32_t pd_pdeflate_crc(const struct pd_pdeflate *p);
uint64_t pd_pdeflate_out_size(const struct pd_pdeflate *p);

/* Stops the workers (at any point) and frees p. NULL is fine. */
void pd_pdeflate_free(struct pd_pdeflate *p);

/* CPUs this process may run on (sched_getaffinity), at least 1. */
unsigned pd_cpus(void);

#endif
