/* The filesystem egress provider: a directory (a network mount too).
 *
 * A file is written unnamed (O_TMPFILE) in its final directory and linked
 * in at commit; on a file system without O_TMPFILE (NFS, CIFS) it is
 * written as ".NAME.tmp-XXXXXX" and renamed at commit. An abort (or a
 * failure) leaves nothing: the unnamed file goes with its fd, the dot-temp
 * is unlinked. Names: DIRECTORY/{host}/{site}/NAME (blob_prefix, if set,
 * goes first: DIRECTORY/{prefix}/{host}/{site}/NAME); the directories are
 * created (0750). A name that exists already is not replaced (EEXIST). */
#include "config.h"

#include "lib/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pd_egress_upload {
	enum pd_egress_type type; /* first: lib/egress.c dispatches on it */
	int fd;
	int dirfd;
	char dir[PATH_MAX];
	char name[NAME_MAX + 1];
	char tmp[NAME_MAX + 1]; /* "" with O_TMPFILE */
};

/* One path component from a host, site or prefix part: '/' and NUL-free,
 * not "." or "..", at most 128 bytes; "-" for an empty one. */
static void component(const char *s, char *out, size_t size)
{
	size_t i = 0;

	if (!s || !*s)
		s = "-";
	for (; *s && i + 1 < size && i < 128; s++)
		out[i++] = (*s == '/' || (unsigned char)*s < 0x20) ? '_' : *s;
	out[i] = 0;
	if (out[0] == '.')
		out[0] = '_';
}

static int mkdir_p(char *path)
{
	char *p;

	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0750) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int pd_egress_fs_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
		       struct pd_egress_upload **out, char *err, size_t errlen)
{
	struct pd_egress_upload *u;
	char host[160], site[160], prefix[160];
	int n, r;

	*out = NULL;
	if (!p->directory || p->directory[0] != '/') {
		snprintf(err, errlen, "egress '%s' has no absolute directory", p->name);
		return -EINVAL;
	}
	if (!name || !*name || strchr(name, '/') || name[0] == '.' || strlen(name) > 200) {
		snprintf(err, errlen, "bad file name for egress '%s'", p->name);
		return -EINVAL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	u->type = PD_EGRESS_FILESYSTEM;
	u->fd = u->dirfd = -1;
	component(m ? m->host : NULL, host, sizeof(host));
	component(m ? m->site : NULL, site, sizeof(site));
	if (p->blob_prefix && *p->blob_prefix) {
		component(p->blob_prefix, prefix, sizeof(prefix));
		n = snprintf(u->dir, sizeof(u->dir), "%s/%s/%s/%s", p->directory, prefix, host, site);
	} else {
		n = snprintf(u->dir, sizeof(u->dir), "%s/%s/%s", p->directory, host, site);
	}
	if (n < 0 || (size_t)n >= sizeof(u->dir)) {
		snprintf(err, errlen, "egress '%s': the path is too long", p->name);
		free(u);
		return -ENAMETOOLONG;
	}
	snprintf(u->name, sizeof(u->name), "%s", name);
	r = mkdir_p(u->dir);
	if (r < 0) {
		snprintf(err, errlen, "egress '%s': creating %s: %s", p->name, u->dir, strerror(-r));
		free(u);
		return r;
	}
	u->dirfd = open(u->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (u->dirfd < 0) {
		r = -errno;
		snprintf(err, errlen, "egress '%s': %s: %s", p->name, u->dir, strerror(-r));
		free(u);
		return r;
	}
	if (faccessat(u->dirfd, u->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(err, errlen, "egress '%s': %s/%s exists", p->name, u->dir, u->name);
		close(u->dirfd);
		free(u);
		return -EEXIST;
	}
	u->fd = openat(u->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
	if (u->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		char path[PATH_MAX];

		snprintf(u->tmp, sizeof(u->tmp), ".%.200s.tmp-XXXXXX", u->name);
		n = snprintf(path, sizeof(path), "%s/%s", u->dir, u->tmp);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			errno = ENAMETOOLONG;
		} else {
			u->fd = mkostemp(path, O_CLOEXEC);
			if (u->fd >= 0) {
				snprintf(u->tmp, sizeof(u->tmp), "%s", strrchr(path, '/') + 1);
				(void)fchmod(u->fd, 0640);
			}
		}
		if (u->fd < 0)
			u->tmp[0] = 0;
	}
	if (u->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "egress '%s': creating a file in %s: %s", p->name, u->dir, strerror(-r));
		close(u->dirfd);
		free(u);
		return r;
	}
	*out = u;
	return 0;
}

int pd_egress_fs_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen)
{
	const char *b = buf;

	while (n) {
		ssize_t w = write(u->fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int r = w < 0 ? -errno : -EIO;

			snprintf(err, errlen, "writing %s/%s: %s", u->dir, u->name, strerror(-r));
			return r;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void fs_free(struct pd_egress_upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->dirfd >= 0)
		close(u->dirfd);
	free(u);
}

int pd_egress_fs_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen)
{
	int r;

	if (fsync(u->fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "writing %s/%s: %s", u->dir, u->name, strerror(-r));
		return r;
	}
	if (u->tmp[0]) {
		/* link(2) does not replace an existing name; then the temp goes. */
		if (linkat(u->dirfd, u->tmp, u->dirfd, u->name, 0) < 0) {
			r = -errno;
			if (r != -EPERM && r != -ENOTSUP && r != -EOPNOTSUPP)
				goto fail;
			if (renameat(u->dirfd, u->tmp, u->dirfd, u->name) < 0) {
				r = -errno;
				goto fail;
			}
		} else {
			(void)unlinkat(u->dirfd, u->tmp, 0);
		}
		u->tmp[0] = 0;
	} else {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", u->fd);
		if (linkat(AT_FDCWD, proc, u->dirfd, u->name, AT_SYMLINK_FOLLOW) < 0) {
			r = -errno;
			goto fail;
		}
	}
	(void)fsync(u->dirfd);
	if (location && loclen)
		snprintf(location, loclen, "%s/%s", u->dir, u->name);
	fs_free(u);
	return 0;
fail:
	snprintf(err, errlen, "linking %s/%s: %s", u->dir, u->name, strerror(-r));
	return r;
}

void pd_egress_fs_abort(struct pd_egress_upload *u)
{
	if (!u)
		return;
	if (u->tmp[0])
		(void)unlinkat(u->dirfd, u->tmp, 0);
	fs_free(u);
}
