/* Egress: dispatch on the provider's type, and the upload of a whole file. */
#include "config.h"

#include "lib/egress.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/egress_azure.h"

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

#define CHUNK (1u << 20)

int pd_egress_upload_fd(const struct pd_egress_provider *p, int fd, const char *name, const struct pd_egress_meta *m,
			int (*cancelled)(void *), void *arg, char *location, size_t loclen, char *err, size_t errlen)
{
	struct pd_egress_upload *u;
	struct stat st;
	uint64_t off = 0, size;
	size_t chunk = p->block_size ? p->block_size : CHUNK;
	char *buf;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "the dump's spool: %s", strerror(-r));
		return r;
	}
	size = (uint64_t)st.st_size;
	buf = malloc(chunk);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = pd_egress_begin(p, name, m, &u, err, errlen);
	if (r < 0) {
		free(buf);
		return r;
	}
	while (off < size) {
		size_t want = size - off < chunk ? (size_t)(size - off) : chunk;
		ssize_t got;

		if (cancelled && cancelled(arg)) {
			snprintf(err, errlen, "cancelled");
			r = -ECANCELED;
			goto fail;
		}
		got = pread(fd, buf, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			snprintf(err, errlen, "reading the dump's spool: %s",
				 got < 0 ? strerror(-r) : "it ended early");
			goto fail;
		}
		r = pd_egress_write(u, buf, (size_t)got, err, errlen);
		if (r < 0)
			goto fail;
		off += (uint64_t)got;
	}
	if (cancelled && cancelled(arg)) {
		snprintf(err, errlen, "cancelled");
		r = -ECANCELED;
		goto fail;
	}
	r = pd_egress_commit(u, location, loclen, err, errlen);
	if (r < 0)
		goto fail;
	free(buf);
	return 0;
fail:
	pd_egress_abort(u);
	free(buf);
	return r;
}
