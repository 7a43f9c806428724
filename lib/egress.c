/* Egress: dispatch on the provider's type, and the upload of a whole file. */
#include "config.h"

#include "lib/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/egress_azure.h"
#include "lib/spool.h"

#define HEAD(u) (((const struct pd_egress_upload_head *)(const void *)(u))->type)

const char *pd_egress_type_name(enum pd_egress_type t)
{
	return t == PD_EGRESS_AZURE_BLOB ? "azureBlobStorage" : "filesystem";
}

int pd_egress_type_parse(const char *s, enum pd_egress_type *t)
{
	if (!strcmp(s, "filesystem"))
		*t = PD_EGRESS_FILESYSTEM;
	else if (!strcmp(s, "azureBlobStorage"))
		*t = PD_EGRESS_AZURE_BLOB;
	else
		return -EINVAL;
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		volatile char *v = s;

		while (*v)
			*v++ = 0;
		free(s);
	}
}

void pd_egress_provider_release(struct pd_egress_provider *p)
{
	free(p->directory);
	free(p->account_url);
	free(p->container);
	free(p->blob_prefix);
	wipe_free(p->account_key);
	wipe_free(p->sas_token);
	p->directory = p->account_url = p->container = p->blob_prefix = NULL;
	p->account_key = p->sas_token = NULL;
}

int pd_egress_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
		    struct pd_egress_upload **out, char *err, size_t errlen)
{
	*out = NULL;
	if (p->type == PD_EGRESS_AZURE_BLOB)
		return pd_egress_azure_begin(p, name, m, out, err, errlen);
	return pd_egress_fs_begin(p, name, m, out, err, errlen);
}

int pd_egress_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen)
{
	if (HEAD(u) == PD_EGRESS_AZURE_BLOB)
		return pd_egress_azure_write(u, buf, n, err, errlen);
	return pd_egress_fs_write(u, buf, n, err, errlen);
}

int pd_egress_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen)
{
	if (HEAD(u) == PD_EGRESS_AZURE_BLOB)
		return pd_egress_azure_commit(u, location, loclen, err, errlen);
	return pd_egress_fs_commit(u, location, loclen, err, errlen);
}

void pd_egress_abort(struct pd_egress_upload *u)
{
	if (!u)
		return;
	if (HEAD(u) == PD_EGRESS_AZURE_BLOB)
		pd_egress_azure_abort(u);
	else
		pd_egress_fs_abort(u);
}

int pd_egress_upload_fd(const struct pd_egress_provider *p, int fd, const char *name, const struct pd_egress_meta *m,
			int (*cancelled)(void *), void *arg, char *location, size_t loclen, char *err, size_t errlen)
{
	struct pd_egress_tail *t;
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "the dump's spool: %s", strerror(-r));
		return r;
	}
	/* The whole file is there: the tail's uploader sends it at once. */
	r = pd_egress_tail_start(p, fd, name, m, 0, cancelled, arg, &t, err, errlen);
	if (r < 0)
		return r;
	return pd_egress_tail_finish(t, (unsigned long long)st.st_size, location, loclen, err, errlen);
}

/* --- the tail: uploading a file while it is written ------------------------ */

#define TAIL_WAIT_MS 200 /* the longest the uploader sleeps without a poke */

struct pd_egress_tail {
	struct pd_egress_upload *u;
	int fd;		 /* the uploader's dup of the file */
	size_t block;	 /* bytes per read: the provider's block_size */
	char *buf;
	int (*cancelled)(void *);
	void *carg;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu */
	bool poked, end, stop;
	struct pd_spool_behind behind; /* fd -1 without PD_EGRESS_TAIL_PUNCH */
	uint64_t final;	 /* the file's size once end */
	uint64_t sent;
	int rc;		 /* the uploader's failure, -errno */
	char err[512];
};

static void tail_fail(struct pd_egress_tail *t, int rc, const char *err)
{
	pthread_mutex_lock(&t->mu);
	if (!t->rc) {
		t->rc = rc;
		snprintf(t->err, sizeof(t->err), "%s", err);
	}
	pthread_mutex_unlock(&t->mu);
}

/* Waits for a block's worth beyond sent (or the end, or a stop); returns
 * how far the file may be read now (0: stop). *end says it is the last. */
static uint64_t tail_wait(struct pd_egress_tail *t, bool *end)
{
	uint64_t avail = 0;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		struct stat st;
		struct timespec until;

		if (t->stop || t->rc || (t->cancelled && t->cancelled(t->carg)))
			break;
		if (t->end) {
			avail = t->final;
			*end = true;
			break;
		}
		if (fstat(t->fd, &st) == 0 && (uint64_t)st.st_size >= t->sent + t->block) {
			avail = (uint64_t)st.st_size;
			break;
		}
		if (!t->poked) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += TAIL_WAIT_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&t->cv, &t->mu, &until);
		}
		t->poked = false;
	}
	pthread_mutex_unlock(&t->mu);
	return avail;
}

static void *tail_thread(void *arg)
{
	struct pd_egress_tail *t = arg;
	uint64_t sent = 0;
	char err[512] = "";
	bool end = false;

	while (!end) {
		uint64_t avail = tail_wait(t, &end);

		if (!avail && !end)
			break;
		/* whole blocks while the file grows; all of it at the end */
		while (sent < avail && (end || avail - sent >= t->block)) {
			size_t want = avail - sent < t->block ? (size_t)(avail - sent) : t->block;
			size_t have = 0;
			int rc;

			while (have < want) {
				ssize_t got = pread(t->fd, t->buf + have, want - have, (off_t)(sent + have));

				if (got < 0 && errno == EINTR)
					continue;
				if (got <= 0) {
					rc = got < 0 ? -errno : -EIO;
					snprintf(err, sizeof(err), "reading the dump's spool: %s",
						 got < 0 ? strerror(-rc) : "it ended early");
					tail_fail(t, rc, err);
					goto out;
				}
				have += (size_t)got;
			}
			if (t->cancelled && t->cancelled(t->carg))
				goto out;
			rc = pd_egress_write(t->u, t->buf, want, err, sizeof(err));
			if (rc < 0) {
				tail_fail(t, rc, err);
				goto out;
			}
			sent += want;
			pthread_mutex_lock(&t->mu);
			t->sent = sent;
			pthread_mutex_unlock(&t->mu);
		}
		/* What was handed over is in the provider's buffers or sent: its
		 * disk blocks go (an unsupported punch only costs room). */
		pd_spool_behind(&t->behind, sent, false);
	}
out:
	return NULL;
}

int pd_egress_tail_start(const struct pd_egress_provider *p, int fd, const char *name,
			 const struct pd_egress_meta *m, unsigned flags, int (*cancelled)(void *), void *arg,
			 struct pd_egress_tail **out, char *err, size_t errlen)
{
	struct pd_egress_tail *t = calloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->block = p->block_size ? p->block_size : PD_EGRESS_BLOCK_SIZE_DEFAULT;
	t->cancelled = cancelled;
	t->carg = arg;
	t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	t->behind.fd = flags & PD_EGRESS_TAIL_PUNCH ? t->fd : -1;
	t->buf = malloc(t->block);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (t->fd < 0 || !t->buf) {
		rc = t->fd < 0 ? -errno : -ENOMEM;
		snprintf(err, errlen, "the dump's spool: %s", strerror(-rc));
		goto fail;
	}
	rc = pd_egress_begin(p, name, m, &t->u, err, errlen);
	if (rc < 0)
		goto fail;
	rc = -pthread_create(&t->th, NULL, tail_thread, t);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(-rc));
		pd_egress_abort(t->u);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
	return rc;
}

int pd_egress_tail_poke(struct pd_egress_tail *t)
{
	int rc;

	pthread_mutex_lock(&t->mu);
	t->poked = true;
	rc = t->rc;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

unsigned long long pd_egress_tail_sent(struct pd_egress_tail *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = t->sent;
	pthread_mutex_unlock(&t->mu);
	return n;
}

/* Ends the uploader (end: the file is whole at final bytes; else stop) and
 * joins it; its failure, if any, in err. */
static int tail_join(struct pd_egress_tail *t, bool end, uint64_t final, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&t->mu);
	if (end) {
		t->end = true;
		t->final = final;
	} else
		t->stop = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->th, NULL);
	rc = t->rc;
	if (rc && err && errlen)
		snprintf(err, errlen, "%s", t->err);
	return rc;
}

static void tail_free(struct pd_egress_tail *t)
{
	close(t->fd);
	free(t->buf);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

int pd_egress_tail_finish(struct pd_egress_tail *t, unsigned long long size, char *location,
			  size_t loclen, char *err, size_t errlen)
{
	int rc = tail_join(t, true, size, err, errlen);

	if (!rc && t->sent != size) {
		/* the uploader stopped short: cancelled */
		snprintf(err, errlen, "cancelled");
		rc = -ECANCELED;
	}
	if (!rc && t->cancelled && t->cancelled(t->carg)) {
		snprintf(err, errlen, "cancelled");
		rc = -ECANCELED;
	}
	if (!rc)
		rc = pd_egress_commit(t->u, location, loclen, err, errlen);
	if (rc < 0)
		pd_egress_abort(t->u);
	tail_free(t);
	return rc;
}

int pd_egress_tail_abort(struct pd_egress_tail *t, char *err, size_t errlen)
{
	int rc;

	if (!t)
		return 0;
	rc = tail_join(t, false, 0, err, errlen);
	pd_egress_abort(t->u);
	tail_free(t);
	return rc;
}
