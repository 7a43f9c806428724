/* A core as one zstd stream, compressed on every core.
 *
 * The core (a sparse file: holes where memory was never touched) is read
 * region by region with SEEK_DATA/SEEK_HOLE; a hole is fed to the encoder
 * as zeros from one small buffer, never read nor held whole in memory. The
 * result is a standard zstd frame (content size and checksum in it, as the
 * zstd tool writes): `zstd -d` gives the core back byte for byte. libzstd's
 * worker threads (ZSTD_c_nbWorkers) compress while this thread reads.
 * See docs/DUMPS.md, "Compression". */
#ifndef PD_ZSTDOUT_H
#define PD_ZSTDOUT_H

#include <stdbool.h>
#include <stdint.h>

struct pd_zstd_opts {
	int in_fd;	  /* the core, read with pread from offset 0; not owned */
	uint64_t size;	  /* its length */
	int out_fd;	  /* written with pwrite from offset 0; not owned */
	uint64_t limit;	  /* the most out_fd may hold; 0: no bound but its fs's */
	int level;	  /* zstd level; 0: 1, zstd -1's */
	unsigned threads; /* workers; 0: the CPUs this process may run on */
	/* Called with the core's bytes compressed so far; nonzero stops
	 * (-ECANCELED). NULL: none. */
	int (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	/* in_fd is a spool dropped after this one stream: what libzstd has
	 * taken is punched out of it (lib/spool.h, pd_spool_behind), in steps
	 * of PD_SPOOL_BEHIND_STEP. in_fd cannot be compressed again after, so
	 * never set for a file the caller keeps nor for an attempt that may be
	 * retried. */
	bool consume;
};

/* The most a stream of size bytes of input can take (ZSTD_compressBound). */
uint64_t pd_zstd_bound(uint64_t size);

/* About what the stream of a sparse file fd of size bytes takes: the bound
 * of its allocated bytes (st_blocks; data does not compress worse than
 * that) plus a few bytes per 128 KiB block of holes (zeros are RLE
 * blocks). For choosing and sizing its spool; not a bound (a block that
 * mixes data and zeros may take more than its data), so the writer's limit
 * still holds. */
uint64_t pd_zstd_estimate(int fd, uint64_t size);

/* Compresses o->in_fd into o->out_fd and truncates out_fd to the stream;
 * *out_size (may be NULL) gets its length. 0 or -errno: -ENOSPC/-EDQUOT
 * (out_fd's file system is full), -EFBIG (past o->limit; nothing past it is
 * written), -EIO or another read error of in_fd, -ENOMEM, -ECANCELED. On failure
 * out_fd is truncated to 0. */
int pd_zstd_write(const struct pd_zstd_opts *o, uint64_t *out_size);

#endif
