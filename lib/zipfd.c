#include "config.h"

#include "lib/zipfd.h"

#include "lib/pdeflate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the archive: a seekable read/write source over an fd ----------------- */

static zip_int64_t fail(zip_error_t *ze, int zerr, int sys)
{
	zip_error_set(ze, zerr, sys);
	return -1;
}

static zip_int64_t sink_write(struct pd_zsink *s, const void *data, zip_uint64_t len)
{
	const char *p = data;
	zip_uint64_t left = len;

	if (s->limit && (s->wpos > s->limit || len > s->limit - s->wpos)) {
		if (!s->err)
			s->err = EFBIG;
		return fail(&s->ze, ZIP_ER_WRITE, EFBIG);
	}
	while (left) {
		ssize_t n = pwrite(s->fd, p, left, (off_t)s->wpos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			if (!s->err)
				s->err = e;
			return fail(&s->ze, ZIP_ER_WRITE, e);
		}
		p += n;
		left -= (zip_uint64_t)n;
		s->wpos += (uint64_t)n;
		if (s->wpos > s->wlen)
			s->wlen = s->wpos;
	}
	return (zip_int64_t)len;
}

static zip_int64_t sink_truncate(struct pd_zsink *s, uint64_t len)
{
	if (ftruncate(s->fd, (off_t)len) < 0) {
		if (!s->err)
			s->err = errno;
		return fail(&s->ze, ZIP_ER_WRITE, errno);
	}
	return 0;
}

static zip_int64_t sink_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct pd_zsink *s = ud;
	zip_int64_t off;

	switch (cmd) {
	case ZIP_SOURCE_SUPPORTS: return ZIP_SOURCE_SUPPORTS_WRITABLE;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &s->ze);

		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = s->len;
		st->valid |= ZIP_STAT_SIZE;
		return sizeof(*st);
	}
	case ZIP_SOURCE_OPEN: s->rpos = 0; return 0;
	case ZIP_SOURCE_READ: {
		ssize_t n;

		if (s->rpos >= s->len)
			return 0;
		if (len > s->len - s->rpos)
			len = s->len - s->rpos;
		do
			n = pread(s->fd, data, len, (off_t)s->rpos);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return fail(&s->ze, ZIP_ER_READ, errno);
		s->rpos += (uint64_t)n;
		return n;
	}
	case ZIP_SOURCE_CLOSE: return 0;
	case ZIP_SOURCE_SEEK:
		off = zip_source_seek_compute_offset(s->rpos, s->len, data, len, &s->ze);
		if (off < 0)
			return -1;
		s->rpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL: return (zip_int64_t)s->rpos;
	case ZIP_SOURCE_BEGIN_WRITE: s->wpos = s->wlen = 0; return 0;
	case ZIP_SOURCE_WRITE: return sink_write(s, data, len);
	case ZIP_SOURCE_SEEK_WRITE:
		off = zip_source_seek_compute_offset(s->wpos, s->wlen, data, len, &s->ze);
		if (off < 0)
			return -1;
		s->wpos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL_WRITE: return (zip_int64_t)s->wpos;
	case ZIP_SOURCE_COMMIT_WRITE:
		/* The fd may have held more before: cut it to the zip. */
		if (sink_truncate(s, s->wlen) < 0)
			return -1;
		s->len = s->wlen;
		return 0;
	case ZIP_SOURCE_ROLLBACK_WRITE:
	case ZIP_SOURCE_REMOVE: s->wpos = s->wlen = s->len = 0; return sink_truncate(s, 0);
	case ZIP_SOURCE_ERROR: return zip_error_to_data(&s->ze, data, len);
	case ZIP_SOURCE_FREE: return 0; /* s belongs to the caller */
	default: return fail(&s->ze, ZIP_ER_OPNOTSUPP, 0);
	}
}

zip_source_t *pd_zsink_source(struct pd_zsink *s, int fd, zip_error_t *ze)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	zip_error_init(&s->ze);
	return zip_source_function_create(sink_cb, s, ze);
}

/* ---- input files ------------------------------------------------------------ */

struct pd_zfile {
	int refs;
	int fd;	   /* -1 while a lazy file is closed */
	bool lazy; /* reopened through open(arg, name) */
	pd_zfile_open_fn open;
	void *arg; /* not owned */
	char *name;
	dev_t dev;
	ino_t ino;
	uint64_t size;
	time_t mtime;
	pd_zfile_watch_fn watch; /* told of each read; NULL: none */
	void *watch_arg;
};

/* One libzip source: its own read position on the shared file. */
struct zsrc {
	struct pd_zfile *f;
	uint64_t pos;
	bool opened_here; /* a lazy file this source opened */
	zip_error_t ze;
};

struct pd_zfile *pd_zfile_from_fd(int fd, uint64_t size, time_t mtime)
{
	struct pd_zfile *f = calloc(1, sizeof(*f));

	if (!f) {
		close(fd);
		return NULL;
	}
	f->refs = 1;
	f->fd = fd;
	f->size = size;
	f->mtime = mtime;
	return f;
}

struct pd_zfile *pd_zfile_lazy(pd_zfile_open_fn open, void *arg, const char *name, dev_t dev,
			       ino_t ino, uint64_t size, time_t mtime)
{
	struct pd_zfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->name = strdup(name);
	if (!f->name) {
		free(f);
		return NULL;
	}
	f->refs = 1;
	f->fd = -1;
	f->lazy = true;
	f->open = open;
	f->arg = arg;
	f->dev = dev;
	f->ino = ino;
	f->size = size;
	f->mtime = mtime;
	return f;
}

uint64_t pd_zfile_watch(struct pd_zfile *f, pd_zfile_watch_fn fn, void *arg)
{
	f->watch = fn;
	f->watch_arg = arg;
	return f->size;
}

void pd_zfile_unref(struct pd_zfile *f)
{
	if (!f || --f->refs > 0)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->name);
	free(f);
}

uint64_t pd_zfile_size(const struct pd_zfile *f)
{
	return f->size;
}

static zip_int64_t zsrc_open(struct zsrc *z)
{
	struct pd_zfile *f = z->f;
	struct stat st;
	int fd;

	z->pos = 0;
	if (f->fd >= 0)
		return 0;
	fd = f->open(f->arg, f->name);
	if (fd < 0)
		return fail(&z->ze, ZIP_ER_OPEN, -fd);
	if (fstat(fd, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
		close(fd);
		return fail(&z->ze, ZIP_ER_CHANGED, 0); /* not the file we checked */
	}
	f->fd = fd;
	z->opened_here = true;
	return 0;
}

static void zsrc_close(struct zsrc *z)
{
	if (z->opened_here && z->f->fd >= 0) {
		close(z->f->fd);
		z->f->fd = -1;
	}
	z->opened_here = false;
}

/* A file that shrank since it was checked reads as zeros past its end:
 * the entry keeps the size its STAT promised (the core writer does the
 * same with pages it cannot read). */
static zip_int64_t zsrc_read(struct zsrc *z, void *data, zip_uint64_t len)
{
	ssize_t n;

	if (z->pos >= z->f->size)
		return 0;
	if (len > z->f->size - z->pos)
		len = z->f->size - z->pos;
	do
		n = pread(z->f->fd, data, len, (off_t)z->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail(&z->ze, ZIP_ER_READ, errno);
	if (n == 0) {
		memset(data, 0, len);
		n = (ssize_t)len;
	}
	z->pos += (uint64_t)n;
	if (z->f->watch && z->f->watch(z->f->watch_arg, (uint64_t)n))
		return fail(&z->ze, ZIP_ER_CANCELLED, 0);
	return n;
}

static zip_int64_t zsrc_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct zsrc *z = ud;
	zip_int64_t off;

	switch (cmd) {
	case ZIP_SOURCE_SUPPORTS: return ZIP_SOURCE_SUPPORTS_SEEKABLE;
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &z->ze);

		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = z->f->size;
		st->mtime = z->f->mtime;
		st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
		return sizeof(*st);
	}
	case ZIP_SOURCE_OPEN: return zsrc_open(z);
	case ZIP_SOURCE_READ: return zsrc_read(z, data, len);
	case ZIP_SOURCE_CLOSE: zsrc_close(z); return 0;
	case ZIP_SOURCE_SEEK:
		off = zip_source_seek_compute_offset(z->pos, z->f->size, data, len, &z->ze);
		if (off < 0)
			return -1;
		z->pos = (uint64_t)off;
		return 0;
	case ZIP_SOURCE_TELL: return (zip_int64_t)z->pos;
	case ZIP_SOURCE_ERROR: return zip_error_to_data(&z->ze, data, len);
	case ZIP_SOURCE_FREE:
		zsrc_close(z);
		pd_zfile_unref(z->f);
		zip_error_fini(&z->ze);
		free(z);
		return 0;
	default: return fail(&z->ze, ZIP_ER_OPNOTSUPP, 0);
	}
}

zip_source_t *pd_zfile_source(struct pd_zfile *f, zip_error_t *ze)
{
	struct zsrc *z = calloc(1, sizeof(*z));
	zip_source_t *src;

	if (!z) {
		zip_error_set(ze, ZIP_ER_MEMORY, 0);
		return NULL;
	}
	z->f = f;
	zip_error_init(&z->ze);
	src = zip_source_function_create(zsrc_cb, z, ze);
	if (!src) {
		free(z);
		return NULL;
	}
	f->refs++;
	return src;
}

/* ---- pre-deflated input ----------------------------------------------------- */

struct zdef {
	struct zsrc z; /* the file, opened as a plain source opens it */
	struct pd_pdeflate_opts o;
	struct pd_pdeflate *p; /* while open */
	bool have_crc;
	uint32_t crc;
	uint64_t comp_size;
	uint64_t told; /* input bytes the file's watch was told of */
	bool opened;   /* once: a consumed file is never read twice */
};

/* pdeflate's progress (bytes of input done) as the file's watch wants it:
 * the bytes since the last call; nonzero stops the stream. */
static int zdef_progress(void *arg, uint64_t done, uint64_t total)
{
	struct zdef *d = arg;
	uint64_t n = done - d->told;

	(void)total;
	d->told = done;
	return d->z.f->watch ? d->z.f->watch(d->z.f->watch_arg, n) : 0;
}

static zip_int64_t zdef_open(struct zdef *d)
{
	int rc;

	pd_pdeflate_free(d->p);
	d->p = NULL;
	d->have_crc = false;
	d->told = 0;
	if (d->o.consume && d->opened)
		return fail(&d->z.ze, ZIP_ER_INTERNAL, 0); /* its front is punched */
	d->opened = true;
	if (zsrc_open(&d->z) < 0)
		return -1;
	d->o.fd = d->z.f->fd;
	rc = pd_pdeflate_start(&d->o, &d->p);
	if (rc < 0) {
		zsrc_close(&d->z);
		return fail(&d->z.ze, rc == -ENOMEM ? ZIP_ER_MEMORY : ZIP_ER_INTERNAL, -rc);
	}
	return 0;
}

static zip_int64_t zdef_read(struct zdef *d, void *data, zip_uint64_t len)
{
	ssize_t n = pd_pdeflate_read(d->p, data, len);

	if (n < 0)
		return fail(&d->z.ze,
			    n == -ECANCELED ? ZIP_ER_CANCELLED
			    : n == -ENOMEM  ? ZIP_ER_MEMORY
					    : ZIP_ER_READ,
			    n == -ECANCELED ? 0 : (int)-n);
	if (n == 0 && len) {
		d->have_crc = true;
		d->crc = pd_pdeflate_crc(d->p);
		d->comp_size = pd_pdeflate_out_size(d->p);
	}
	return n;
}

static zip_int64_t zdef_cb(void *ud, void *data, zip_uint64_t len, zip_source_cmd_t cmd)
{
	struct zdef *d = ud;

	switch (cmd) {
	case ZIP_SOURCE_SUPPORTS:
		return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ,
						      ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
						      ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
	case ZIP_SOURCE_STAT: {
		zip_stat_t *st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &d->z.ze);

		if (!st)
			return -1;
		zip_stat_init(st);
		st->size = d->z.f->size;
		st->mtime = d->z.f->mtime;
		st->comp_method = ZIP_CM_DEFLATE;
		st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME | ZIP_STAT_COMP_METHOD;
		if (d->have_crc) {
			st->crc = d->crc;
			st->comp_size = d->comp_size;
			st->valid |= ZIP_STAT_CRC | ZIP_STAT_COMP_SIZE;
		}
		return sizeof(*st);
	}
	case ZIP_SOURCE_OPEN: return zdef_open(d);
	case ZIP_SOURCE_READ: return zdef_read(d, data, len);
	case ZIP_SOURCE_CLOSE:
		pd_pdeflate_free(d->p);
		d->p = NULL;
		zsrc_close(&d->z);
		return 0;
	case ZIP_SOURCE_ERROR: return zip_error_to_data(&d->z.ze, data, len);
	case ZIP_SOURCE_FREE:
		pd_pdeflate_free(d->p);
		zsrc_close(&d->z);
		pd_zfile_unref(d->z.f);
		zip_error_fini(&d->z.ze);
		free(d);
		return 0;
	default: return fail(&d->z.ze, ZIP_ER_OPNOTSUPP, 0);
	}
}

zip_source_t *pd_zfile_deflated_source(struct pd_zfile *f, int level, bool consume,
				       zip_error_t *ze)
{
	struct zdef *d = calloc(1, sizeof(*d));
	zip_source_t *src;

	if (!d) {
		zip_error_set(ze, ZIP_ER_MEMORY, 0);
		return NULL;
	}
	d->z.f = f;
	d->o = (struct pd_pdeflate_opts){
		.size = f->size,
		.level = level,
		.progress = zdef_progress,
		.progress_arg = d,
		.consume = consume};
	zip_error_init(&d->z.ze);
	src = zip_source_function_create(zdef_cb, d, ze);
	if (!src) {
		zip_error_fini(&d->z.ze);
		free(d);
		return NULL;
	}
	f->refs++;
	return src;
}
