/* See fcgi/wipe.h. */
#include "config.h"

#include "fcgi/wipe.h"

#include <stdint.h>
#include <string.h>

/* libfcgi (2.4) keeps a stream's buffer in the stream's private data,
 * whose first members are these; fcgiapp.h declares only the stream. The
 * layout has not changed since 1996. The pointers are checked against the
 * stream's public ones before any byte is written, so a libfcgi that laid
 * them out otherwise is left alone rather than written through. */
struct fcgx_stream_data_head {
	unsigned char *buff;	 /* the buffer */
	int bufflen;		 /* its size */
	unsigned char *mBuff;	 /* as returned by malloc */
	unsigned char *buffStop; /* end of the bytes of the last fill */
};

static void wipe_read_bytes(FCGX_Stream *in)
{
	struct fcgx_stream_data_head *d;
	unsigned char *end;

	if (!in || !in->isReader || !in->data)
		return;
	d = in->data;
	if (!d->buff || d->bufflen <= 0 || d->bufflen > (1 << 20) || d->mBuff > d->buff ||
	    d->buff - d->mBuff >= 8)
		return;
	end = d->buff + d->bufflen;
	if (in->rdNext < d->buff || in->rdNext > in->stop || in->stop > d->buffStop ||
	    d->buffStop > end)
		return;
	/* Read (records, parameters) and stale (an earlier, longer fill). */
	explicit_bzero(d->buff, (size_t)(in->rdNext - d->buff));
	explicit_bzero(d->buffStop, (size_t)(end - d->buffStop));
}

void pd_fcgx_wipe_param(FCGX_Request *req, const char *name)
{
	char *v = FCGX_GetParam(name, req->envp);

	/* libfcgi's own copy: "NAME=value", malloc'd, freed unwiped. */
	if (v)
		explicit_bzero(v, strlen(v));
	wipe_read_bytes(req->in);
}
