/* Opening a file as a target's owner could: see lib/ownerfile.h. */
#include "config.h"

#include "lib/ownerfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/strbuf.h"

#define LINKS_MAX 40 /* the kernel's MAXSYMLINKS */
#define DEPTH_MAX 128

int pd_owner_of(struct pd_proc *p, struct pd_owner *o)
{
	struct pd_status st;
	int rc = pd_proc_status(p, &st);

	if (rc < 0)
		return rc;
	if (st.uid[0] < 0 || st.uid[3] < 0 || st.gid[0] < 0 || st.gid[3] < 0)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->uid[0] = (uint32_t)st.uid[0];
	o->uid[1] = (uint32_t)st.uid[3];
	o->gid[0] = (uint32_t)st.gid[0];
	o->gid[1] = (uint32_t)st.gid[3];
	memcpy(o->groups, st.groups, st.ngroups * sizeof(st.groups[0]));
	o->ngroups = st.ngroups;
	return 0;
}

static bool in_group(const struct pd_owner *o, int k, gid_t g)
{
	if (o->gid[k] == g)
		return true;
	for (size_t i = 0; i < o->ngroups; i++)
		if (o->groups[i] == g)
			return true;
	return false;
}

/* A POSIX ACL on the inode behind fd (an O_PATH fd: through its
 * /proc/self/fd link, the only way to read its xattrs). Unknown: true. */
static bool has_acl(int fd)
{
	char link[32];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = getxattr(link, "system.posix_acl_access", NULL, 0);
	if (n < 0)
		return errno != ENODATA && errno != EOPNOTSUPP;
	return n > 0;
}

/* generic_permission() without capabilities, for the real and the
 * filesystem ids: want is 4 (read) or 1 (search). */
static bool may(const struct pd_owner *o, int fd, const struct stat *st, unsigned want)
{
	for (int k = 0; k < 2; k++) {
		unsigned bits = st->st_mode;

		if (o->uid[k] == st->st_uid)
			bits >>= 6;
		else if (in_group(o, k, st->st_gid))
			bits >>= 3;
		if ((bits & want) != want)
			return false;
	}
	return !has_acl(fd);
}

struct walk {
	const struct pd_owner *o;
	int fds[DEPTH_MAX]; /* fds[0]: the root, not owned */
	size_t depth;
	struct strbuf rest; /* what is left to resolve */
	unsigned links;
};

static int cur(const struct walk *w)
{
	return w->fds[w->depth];
}

static void pop(struct walk *w, size_t to)
{
	while (w->depth > to)
		close(w->fds[w->depth--]);
}

/* Replaces the resolved part of rest (up to off) by the text of the
 * symlink at fd. */
static int follow(struct walk *w, int fd, size_t off)
{
	char target[PATH_MAX];
	struct strbuf sb = STRBUF_INIT;
	ssize_t n;

	if (++w->links > LINKS_MAX)
		return -ELOOP;
	n = readlinkat(fd, "", target, sizeof(target));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	if (n == 0)
		return -ENOENT;
	if (target[0] == '/')
		pop(w, 0);
	if (strbuf_add(&sb, target, (size_t)n) < 0 || strbuf_addch(&sb, '/') < 0 ||
	    strbuf_addstr(&sb, w->rest.buf + off) < 0) {
		strbuf_release(&sb);
		return -ENOMEM;
	}
	strbuf_release(&w->rest);
	w->rest = sb;
	return 0;
}

/* The regular file at fd (O_PATH), opened for reading: through its
 * /proc/self/fd link, so it is the inode that was checked. */
static int reopen(int fd, const struct stat *st, struct stat *out)
{
	char link[32];
	struct stat now;
	int rfd;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	rfd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (rfd < 0)
		return -errno;
	if (fstat(rfd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
		close(rfd);
		return -ESTALE;
	}
	if (out)
		*out = now;
	return rfd;
}

enum { STEP_FILE, STEP_NEXT, STEP_RESTART };

/* One step: the component [name, name+len) of rest, which ends at off.
 * STEP_NEXT: go on after it; STEP_RESTART: rest was rewritten by a
 * symlink; STEP_FILE: *fdout is the opened file; or -errno. */
static int step(struct walk *w, const char *name, size_t len, size_t off, bool last,
		struct stat *out, int *fdout)
{
	char comp[NAME_MAX + 1];
	struct stat st;
	int fd, rc;

	if (len == 1 && name[0] == '.')
		return STEP_NEXT;
	if (len == 2 && name[0] == '.' && name[1] == '.') {
		pop(w, w->depth ? w->depth - 1 : 0); /* the root's ".." is itself */
		return STEP_NEXT;
	}
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(comp, name, len);
	comp[len] = '\0';
	fd = openat(cur(w), comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
	} else if (S_ISLNK(st.st_mode)) {
		rc = follow(w, fd, off);
		rc = rc < 0 ? rc : STEP_RESTART;
	} else if (S_ISDIR(st.st_mode)) {
		rc = last ? -EISDIR : w->depth + 1 >= DEPTH_MAX ? -ENAMETOOLONG : STEP_NEXT;
		if (rc == STEP_NEXT && w->o && !may(w->o, fd, &st, 1))
			rc = -EACCES;
		if (rc == STEP_NEXT) {
			w->fds[++w->depth] = fd;
			return STEP_NEXT;
		}
	} else if (!last) {
		rc = -ENOTDIR;
	} else if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
	} else if (w->o && !may(w->o, fd, &st, 4)) {
		rc = -EACCES;
	} else {
		*fdout = reopen(fd, &st, out);
		rc = *fdout < 0 ? *fdout : STEP_FILE;
	}
	close(fd);
	return rc;
}

int pd_owner_open(const struct pd_owner *o, int rootfd, const char *path, struct stat *st)
{
	struct walk w = {.o = o, .rest = STRBUF_INIT};
	struct stat root;
	int rc, fd = -1;

	w.fds[0] = rootfd;
	if (fstat(rootfd, &root) < 0)
		return -errno;
	if (o && !may(o, rootfd, &root, 1))
		return -EACCES;
	if (strbuf_addstr(&w.rest, path) < 0)
		return -ENOMEM;
	for (size_t p = 0;;) {
		const char *s = w.rest.buf, *e;
		size_t end;

		while (s[p] == '/')
			p++;
		if (!s[p]) {
			rc = -EISDIR; /* the path names a directory */
			break;
		}
		e = strchrnul(s + p, '/');
		end = (size_t)(e - s);
		while (*e == '/')
			e++;
		rc = step(&w, s + p, end - p, end, !*e, st, &fd);
		if (rc == STEP_RESTART) {
			p = 0;
			continue;
		}
		if (rc != STEP_NEXT)
			break;
		p = end;
	}
	pop(&w, 0);
	strbuf_release(&w.rest);
	return rc == STEP_FILE ? fd : rc;
}
