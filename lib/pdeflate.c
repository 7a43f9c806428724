#include "config.h"

#include "lib/pdeflate.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/spool.h"

#define CHUNK	    PD_PDEFLATE_CHUNK
#define DICT	    32768u
#define MAX_WORKERS 64

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

/* One chunk in flight: slot i % nslots holds chunk i. */
struct slot {
	enum slot_state state;
	uint64_t index;
	unsigned char *out; /* its deflated bytes (or the shared zero block) */
	size_t out_len;
	uint32_t crc;
	size_t in_len;
	int err;	    /* -errno */
	unsigned char *buf; /* owned output buffer */
	size_t cap;
};

struct pd_pdeflate {
	struct pd_pdeflate_opts o;
	uint64_t nchunks;
	pthread_mutex_t mu;
	pthread_cond_t space; /* a slot was freed, or stop */
	pthread_cond_t done;  /* a chunk finished */
	uint64_t next_claim;  /* the next chunk a worker takes */
	uint64_t delivered;   /* chunks read out completely */
	bool stop;
	struct slot *slots;
	unsigned nslots;
	pthread_t *tids;
	unsigned nthreads;
	/* One chunk of zeros, deflated without a dictionary and sync-flushed. */
	unsigned char *zero_out;
	size_t zero_len;
	uint32_t zero_crc;
	/* The reader's side. */
	struct slot *cur;
	size_t cur_pos;
	uint32_t crc;
	uint64_t in_done, out_size;
	int err;
	struct pd_spool_behind behind; /* fd -1 unless o.consume */
};

unsigned pd_cpus(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && (n = CPU_COUNT(&set)) > 0)
		return (unsigned)n;
	n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static size_t out_cap(void)
{
	/* deflateBound of a chunk plus the sync flush's empty stored block. */
	return CHUNK + (CHUNK >> 12) + (CHUNK >> 14) + (CHUNK >> 25) + 64;
}

/* Deflates in[0..len) into out (cap bytes) with dictionary dict (dlen may
 * be 0); last: finish the stream, else end with a sync flush. */
static int deflate_chunk(z_stream *z, const unsigned char *dict, size_t dlen,
			 const unsigned char *in, size_t len, bool last, unsigned char *out,
			 size_t cap, size_t *out_len)
{
	int zr;

	if (deflateReset(z) != Z_OK)
		return -EINVAL;
	if (dlen && deflateSetDictionary(z, dict, (uInt)dlen) != Z_OK)
		return -EINVAL;
	z->next_in = (unsigned char *)in;
	z->avail_in = (uInt)len;
	z->next_out = out;
	z->avail_out = (uInt)cap;
	zr = deflate(z, last ? Z_FINISH : Z_SYNC_FLUSH);
	if (last ? zr != Z_STREAM_END : (zr != Z_OK || z->avail_out == 0 || z->avail_in))
		return -ENOBUFS; /* cannot happen with cap >= deflateBound */
	*out_len = cap - z->avail_out;
	return 0;
}

static ssize_t pread_full(int fd, unsigned char *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* the file shrank: the rest reads as zeros */
			memset(buf + got, 0, len - got);
			break;
		}
		got += (size_t)n;
	}
	return (ssize_t)len;
}

/* Whether [off, off + len) of fd is a hole (no data). Where SEEK_DATA is
 * not supported, nothing is. */
static bool is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	if (d < 0)
		return errno == ENXIO;
	return (uint64_t)d >= off + len;
}

/* Fills slot s with chunk i. in has room for DICT + CHUNK bytes. */
static void do_chunk(struct pd_pdeflate *p, z_stream *z, unsigned char *in, struct slot *s,
		     uint64_t i)
{
	uint64_t off = i * CHUNK;
	size_t len = (size_t)(p->o.size - off < CHUNK ? p->o.size - off : CHUNK);
	size_t dlen = i ? DICT : 0;
	bool last = i + 1 == p->nchunks;
	ssize_t n;

	s->in_len = len;
	s->err = 0;
	if (!last && len == CHUNK && is_hole(p->o.fd, off, len)) {
		s->out = p->zero_out;
		s->out_len = p->zero_len;
		s->crc = p->zero_crc;
		return;
	}
	n = pread_full(p->o.fd, in, dlen + len, off - dlen);
	if (n < 0) {
		s->err = (int)n;
		return;
	}
	if (!last && len == CHUNK && all_zero(in + dlen, len)) {
		s->out = p->zero_out;
		s->out_len = p->zero_len;
		s->crc = p->zero_crc;
		return;
	}
	s->crc = (uint32_t)crc32(0, in + dlen, (uInt)len);
	s->out = s->buf;
	s->err = deflate_chunk(z, in, dlen, in + dlen, len, last, s->buf, s->cap, &s->out_len);
}

static void *worker(void *arg)
{
	struct pd_pdeflate *p = arg;
	unsigned char *in = malloc(DICT + CHUNK);
	z_stream z;
	bool zok;

	memset(&z, 0, sizeof(z));
	zok = in && deflateInit2(&z, p->o.level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		uint64_t i;
		struct slot *s;

		while (!p->stop && p->next_claim < p->nchunks &&
		       p->next_claim >= p->delivered + p->nslots)
			pthread_cond_wait(&p->space, &p->mu);
		if (p->stop || p->next_claim >= p->nchunks)
			break;
		i = p->next_claim++;
		s = &p->slots[i % p->nslots];
		s->state = SLOT_BUSY;
		s->index = i;
		pthread_mutex_unlock(&p->mu);
		if (zok)
			do_chunk(p, &z, in, s, i);
		else
			s->err = -ENOMEM;
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	if (zok)
		deflateEnd(&z);
	free(in);
	return NULL;
}

/* The zero block: a whole chunk of zeros, sync-flushed. */
static int make_zero_block(struct pd_pdeflate *p)
{
	unsigned char *zeros = calloc(1, CHUNK);
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	p->zero_out = malloc(out_cap());
	if (!zeros || !p->zero_out ||
	    deflateInit2(&z, p->o.level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(zeros);
		return -ENOMEM;
	}
	rc = deflate_chunk(&z, NULL, 0, zeros, CHUNK, false, p->zero_out, out_cap(), &p->zero_len);
	p->zero_crc = (uint32_t)crc32(0, zeros, CHUNK);
	deflateEnd(&z);
	free(zeros);
	return rc;
}

int pd_pdeflate_start(const struct pd_pdeflate_opts *o, struct pd_pdeflate **out)
{
	struct pd_pdeflate *p;
	int rc;

	*out = NULL;
	if (o->level < 1 || o->level > 9)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *o;
	p->nchunks = o->size ? (o->size + CHUNK - 1) / CHUNK : 1;
	p->nthreads = o->threads ? o->threads : pd_cpus();
	if (p->nthreads > MAX_WORKERS)
		p->nthreads = MAX_WORKERS;
	if (p->nthreads > p->nchunks)
		p->nthreads = (unsigned)p->nchunks;
	p->nslots = 2 * p->nthreads;
	p->crc = 0;
	p->behind.fd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->done, NULL);
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	p->tids = calloc(p->nthreads, sizeof(*p->tids));
	rc = p->slots && p->tids ? make_zero_block(p) : -ENOMEM;
	for (unsigned k = 0; rc == 0 && k < p->nslots; k++) {
		p->slots[k].cap = out_cap();
		p->slots[k].buf = malloc(p->slots[k].cap);
		if (!p->slots[k].buf)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		p->nthreads = 0;
		pd_pdeflate_free(p);
		return rc;
	}
	for (unsigned k = 0; k < p->nthreads; k++) {
		rc = pthread_create(&p->tids[k], NULL, worker, p);
		if (rc) {
			p->nthreads = k;
			pd_pdeflate_free(p);
			return -rc;
		}
	}
	if (o->consume)
		pd_spool_behind_start(&p->behind, o->fd, PD_SPOOL_BEHIND_STEP);
	*out = p;
	return 0;
}

/* Waits for the next chunk in order; 0, 1 at the end, or -errno. */
static int next_chunk(struct pd_pdeflate *p)
{
	uint64_t i = p->delivered;
	struct slot *s;

	if (i >= p->nchunks)
		return 1;
	s = &p->slots[i % p->nslots];
	pthread_mutex_lock(&p->mu);
	while (!(s->state == SLOT_DONE && s->index == i))
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	if (s->err)
		return s->err;
	p->cur = s;
	p->cur_pos = 0;
	p->crc = i ? (uint32_t)crc32_combine(p->crc, s->crc, (z_off_t)s->in_len) : s->crc;
	return 0;
}

static void release_chunk(struct pd_pdeflate *p)
{
	p->in_done += p->cur->in_len;
	pthread_mutex_lock(&p->mu);
	p->cur->state = SLOT_FREE;
	p->delivered++;
	pthread_cond_broadcast(&p->space);
	pthread_mutex_unlock(&p->mu);
	p->cur = NULL;
	/* Chunks below delivered are deflated; the next one reads from 32 KiB
	 * before its start (its dictionary), every later one from further on. */
	if (p->delivered < p->nchunks)
		pd_spool_behind(&p->behind, p->delivered * CHUNK - DICT, false);
	else
		pd_spool_behind(&p->behind, p->o.size, true);
	if (p->o.progress && p->o.progress(p->o.progress_arg, p->in_done, p->o.size))
		p->err = -ECANCELED;
}

ssize_t pd_pdeflate_read(struct pd_pdeflate *p, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len && !p->err) {
		size_t n;

		if (!p->cur) {
			int rc = next_chunk(p);

			if (rc == 1)
				break;
			if (rc < 0) {
				p->err = rc;
				break;
			}
		}
		n = p->cur->out_len - p->cur_pos;
		if (n > len - got)
			n = len - got;
		memcpy((char *)buf + got, p->cur->out + p->cur_pos, n);
		p->cur_pos += n;
		got += n;
		p->out_size += n;
		if (p->cur_pos == p->cur->out_len)
			release_chunk(p);
	}
	if (p->err && !got)
		return p->err;
	return (ssize_t)got;
}

uint32_t pd_pdeflate_crc(const struct pd_pdeflate *p)
{
	return p->crc;
}

uint64_t pd_pdeflate_out_size(const struct pd_pdeflate *p)
{
	return p->out_size;
}

void pd_pdeflate_free(struct pd_pdeflate *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->space);
	pthread_mutex_unlock(&p->mu);
	for (unsigned k = 0; k < p->nthreads; k++)
		pthread_join(p->tids[k], NULL);
	pd_spool_behind_end(&p->behind);
	for (unsigned k = 0; p->slots && k < p->nslots; k++)
		free(p->slots[k].buf);
	free(p->slots);
	free(p->tids);
	free(p->zero_out);
	pthread_cond_destroy(&p->space);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
