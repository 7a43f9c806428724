#include "config.h"

#include "lib/zstdout.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "lib/memcopy.h"
#include "lib/pdeflate.h"
#include "lib/spool.h"

#define IN_BUF	      (1u << 20)
#define ZERO_BUF      (1u << 20)
#define OUT_BUF	      (1u << 20)
#define PROGRESS_STEP (64u << 20)

static const unsigned char zeros[ZERO_BUF];

struct zw {
	const struct pd_zstd_opts *o;
	ZSTD_CCtx *cc;
	unsigned char *in, *out;
	uint64_t wpos; /* bytes of stream written */
	uint64_t done, reported;
	struct pd_spool_behind behind; /* in_fd, or -1 unless o->consume */
};

uint64_t pd_zstd_bound(uint64_t size)
{
	/* ZSTD_compressBound of size, in 64 bits, plus a frame's header,
	 * checksum and the blocks' headers. */
	return size + (size >> 8) + (128u << 10) + 64;
}

uint64_t pd_zstd_estimate(int fd, uint64_t size)
{
	struct stat st;
	uint64_t data = size;

	if (fstat(fd, &st) == 0 && (uint64_t)st.st_blocks * 512 < size)
		data = (uint64_t)st.st_blocks * 512;
	return pd_zstd_bound(data) + (size >> 17) * 8;
}

static int flush_out(struct zw *w, ZSTD_outBuffer *ob)
{
	int rc;

	if (!ob->pos)
		return 0;
	if (w->o->limit && (w->wpos > w->o->limit || ob->pos > w->o->limit - w->wpos))
		return -EFBIG;
	rc = pd_pwrite_all(w->o->out_fd, ob->dst, ob->pos, w->wpos);
	if (rc < 0)
		return rc;
	w->wpos += ob->pos;
	ob->pos = 0;
	return 0;
}

static int progress(struct zw *w, uint64_t n)
{
	w->done += n;
	if (w->o->progress && (w->done - w->reported >= PROGRESS_STEP || w->done == w->o->size)) {
		w->reported = w->done;
		if (w->o->progress(w->o->progress_arg, w->done, w->o->size))
			return -ECANCELED;
	}
	return 0;
}

/* Feeds len bytes at p (all of them), or ends the frame (end). */
static int feed(struct zw *w, const void *p, size_t len, bool end)
{
	ZSTD_inBuffer ib = {p, len, 0};
	ZSTD_EndDirective op = end ? ZSTD_e_end : ZSTD_e_continue;

	for (;;) {
		ZSTD_outBuffer ob = {w->out, OUT_BUF, 0};
		size_t left = ZSTD_compressStream2(w->cc, &ob, &ib, op);
		int rc;

		if (ZSTD_isError(left))
			return ZSTD_getErrorCode(left) == ZSTD_error_memory_allocation ? -ENOMEM
										       : -EIO;
		rc = flush_out(w, &ob);
		if (rc < 0)
			return rc;
		if (end ? left == 0 : ib.pos == ib.size)
			break;
	}
	return progress(w, len);
}

static int feed_zeros(struct zw *w, uint64_t len)
{
	while (len) {
		size_t n = len < ZERO_BUF ? (size_t)len : ZERO_BUF;
		int rc = feed(w, zeros, n, false);

		if (rc < 0)
			return rc;
		len -= n;
	}
	return 0;
}

static int feed_data(struct zw *w, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < IN_BUF ? (size_t)len : IN_BUF;
		ssize_t r = pread(w->o->in_fd, w->in, n, (off_t)off);
		int rc;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) /* the core shrank: it reads as zeros */
			return feed_zeros(w, len);
		rc = feed(w, w->in, (size_t)r, false);
		if (rc < 0)
			return rc;
		off += (uint64_t)r;
		len -= (uint64_t)r;
		/* libzstd copied what it was fed: those bytes are not read again. */
		pd_spool_behind(&w->behind, off, false);
	}
	return 0;
}

/* The next data at or after pos: [*data, *hole) (both <= size). */
static void next_region(int fd, uint64_t pos, uint64_t size, uint64_t *data, uint64_t *hole)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

	if (d < 0) {
		/* ENXIO: only a hole is left; else no SEEK_DATA: all is data. */
		*data = errno == ENXIO ? size : pos;
		*hole = size;
		return;
	}
	*data = (uint64_t)d < size ? (uint64_t)d : size;
	h = lseek(fd, d, SEEK_HOLE);
	*hole = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
}

static int set_params(struct zw *w)
{
	const struct pd_zstd_opts *o = w->o;
	unsigned threads = o->threads ? o->threads : pd_cpus();

	if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel,
						o->level ? o->level : 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(w->cc, o->size)))
		return -EINVAL;
	/* A libzstd built without threads refuses workers: one thread then. */
	ZSTD_CCtx_setParameter(w->cc, ZSTD_c_nbWorkers, (int)threads);
	return 0;
}

static int compress(struct zw *w)
{
	uint64_t pos = 0, size = w->o->size;
	int rc = set_params(w);

	while (rc == 0 && pos < size) {
		uint64_t data, hole;

		next_region(w->o->in_fd, pos, size, &data, &hole);
		rc = feed_zeros(w, data - pos);
		if (rc == 0)
			rc = feed_data(w, data, hole - data);
		pos = hole;
	}
	if (rc == 0)
		rc = feed(w, NULL, 0, true);
	if (rc == 0)
		pd_spool_behind(&w->behind, size, true);
	return rc;
}

int pd_zstd_write(const struct pd_zstd_opts *o, uint64_t *out_size)
{
	struct zw w = {.o = o, .behind = {.fd = -1}};
	int rc = -ENOMEM;

	w.cc = ZSTD_createCCtx();
	w.in = malloc(IN_BUF);
	w.out = malloc(OUT_BUF);
	if (o->consume)
		pd_spool_behind_start(&w.behind, o->in_fd, PD_SPOOL_BEHIND_STEP);
	if (w.cc && w.in && w.out)
		rc = compress(&w);
	pd_spool_behind_end(&w.behind);
	if (rc == 0 && ftruncate(o->out_fd, (off_t)w.wpos) < 0)
		rc = -errno;
	if (rc < 0 && ftruncate(o->out_fd, 0) < 0) {
		/* the caller drops the spool anyway */
	}
	if (out_size)
		*out_size = rc < 0 ? 0 : w.wpos;
	ZSTD_freeCCtx(w.cc);
	free(w.in);
	free(w.out);
	return rc;
}
