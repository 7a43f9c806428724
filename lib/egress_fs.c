/* The filesystem egress provider: a directory (a network mount too).
 *
 * A file is written unnamed (O_TMPFILE) in its final directory and linked
 * in at commit; on a file system without O_TMPFILE (NFS, CIFS) it is
 * written as ".NAME.tmp-XXXXXX" and renamed at commit. An abort (or a
 * failure) leaves nothing: the unnamed file goes with its fd, the dot-temp
 * is unlinked. Names: DIRECTORY/{host}/{site}/NAME (blob_prefix, if set,
 * goes first: DIRECTORY/{prefix}/{host}/{site}/NAME); the directories are
 * created (0750). A name that exists already is not replaced (EEXIST).
 *
 * Retention (max_count, max_bytes, max_age of the section): the store's
 * rules (lib/store.h pd_quota_*), applied at commit under an flock on the
 * upload's directory, to the files procdiag names there (egress_fs_ours)
 * and nothing else: once the new file is linked in, those past max_age go,
 * then the oldest (by mtime) until it fits beside them; a file larger than
 * max_bytes alone is refused (EDQUOT) before anything is linked or
 * evicted. */
#include "config.h"

#include "lib/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/store.h" /* the quota rules, ids and names of entries */

struct pd_egress_upload {
	enum pd_egress_type type; /* first: lib/egress.c dispatches on it */
	int fd;
	int dirfd;
	char dir[PATH_MAX];
	char name[NAME_MAX + 1];
	char tmp[NAME_MAX + 1]; /* "" with O_TMPFILE */
	char pname[65];		/* the provider's name, for errors */
	struct pd_store_limits lim;
	uint64_t bytes; /* the file's allocated bytes, at commit */
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
	snprintf(u->pname, sizeof(u->pname), "%s", p->name);
	u->lim.max_count = p->max_count;
	u->lim.max_bytes = p->max_bytes;
	u->lim.max_age_s = p->max_age_s;
	component(m ? m->host : NULL, host, sizeof(host));
	/* no site: "default", as the Azure provider names it */
	component(m && m->site && *m->site ? m->site : "default", site, sizeof(site));
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

/* n digits at *s (advanced past them); n 0: one or more. */
static bool digits(const char **s, size_t n)
{
	size_t i = 0;

	while ((*s)[i] >= '0' && (*s)[i] <= '9' && (!n || i < n))
		i++;
	if (!i || (n && i != n))
		return false;
	*s += i;
	return true;
}

static bool lit(const char **s, const char *w)
{
	size_t n = strlen(w);

	if (strncmp(*s, w, n))
		return false;
	*s += n;
	return true;
}

/* A name procdiag gives a file here, and so one retention may count and
 * evict: a dump's "core.PID.YYYYMMDDTHHMMSSZ[.TAG8][.zip|.zst]"
 * (pd_egress_dump_name), stacks' "yyyyMMdd_HHmmss_fff_PID.stacks.txt|json"
 * (lib/operations.c), a store copy's "{entry id}-{file}" (pd_store_push).
 * Anything else (a temp ".NAME.tmp-*", another tool's file) is foreign. */
static bool egress_fs_ours(const char *name)
{
	const char *s = name, *dash;

	if (lit(&s, "core.") && digits(&s, 0) && lit(&s, ".") && digits(&s, 8) && lit(&s, "T") &&
	    digits(&s, 6) && lit(&s, "Z")) {
		if (*s == '.' && strspn(s + 1, "0123456789abcdef") == 8)
			s += 9;
		return !*s || !strcmp(s, ".zip") || !strcmp(s, ".zst");
	}
	s = name;
	if (digits(&s, 8) && lit(&s, "_") && digits(&s, 6) && lit(&s, "_") && digits(&s, 3) &&
	    lit(&s, "_") && digits(&s, 0) && lit(&s, ".stacks."))
		return !strcmp(s, "txt") || !strcmp(s, "json");
	for (dash = strchr(name, '-'); dash; dash = strchr(dash + 1, '-')) {
		char id[PD_STORE_ID_MAX];

		if ((size_t)(dash - name) >= sizeof(id))
			break;
		snprintf(id, sizeof(id), "%.*s", (int)(dash - name), name);
		if (pd_store_id_valid(id) && pd_store_name_valid(dash + 1))
			return true;
	}
	return false;
}

/* The files of ours in u's directory but the new one, oldest first. */
static int scan_ours(struct pd_egress_upload *u, struct pd_quota_item **out, size_t *count)
{
	int fd = openat(u->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct pd_quota_item *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;

	if (!d) {
		int r = -errno;

		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, u->name) || !egress_fs_ours(e->d_name) ||
		    fstatat(u->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			struct pd_quota_item *nv = realloc(v, (cap ? cap * 2 : 32) * sizeof(*v));

			if (!nv) {
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = cap ? cap * 2 : 32;
		}
		memset(&v[n], 0, sizeof(v[n]));
		snprintf(v[n].name, sizeof(v[n].name), "%s", e->d_name);
		v[n].created_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
				  (uint64_t)st.st_mtim.tv_nsec;
		v[n].bytes = (uint64_t)st.st_blocks * 512u;
		n++;
	}
	closedir(d);
	pd_quota_sort(v, n);
	*out = v;
	*count = n;
	return 0;
}

/* -EDQUOT (err set) when the file can never fit: nothing is evicted and
 * it is not linked in. */
static int too_big(struct pd_egress_upload *u, char *err, size_t errlen)
{
	struct stat st;
	uint64_t bytes;

	if (fstat(u->fd, &st) < 0) {
		int r = -errno;

		snprintf(err, errlen, "egress '%s': %s/%s: %s", u->pname, u->dir, u->name,
			 strerror(-r));
		return r;
	}
	bytes = (uint64_t)st.st_blocks * 512u;
	u->bytes = bytes;
	if (!pd_quota_too_big(&u->lim, bytes))
		return 0;
	snprintf(err, errlen,
		 "egress '%s': the file's %llu bytes are more than max_bytes (%llu); nothing was "
		 "written or evicted",
		 u->pname, (unsigned long long)bytes, (unsigned long long)u->lim.max_bytes);
	return -EDQUOT;
}

/* Retention once the new file is in (the directory flocked by the
 * caller): the files of ours but it that the rules say go are removed.
 * A failure to read the directory leaves them (reported on stderr). */
static void make_room(struct pd_egress_upload *u)
{
	struct pd_quota_item *v = NULL;
	struct timespec now;
	size_t n = 0;
	int r = scan_ours(u, &v, &n);

	if (r < 0) {
		fprintf(stderr, "procdiag: egress '%s': retention: reading %s: %s\n", u->pname,
			u->dir, strerror(-r));
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	pd_quota_mark(&u->lim, v, n,
		      (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec, true, u->bytes);
	for (size_t i = 0; i < n; i++)
		if (v[i].evict)
			(void)unlinkat(u->dirfd, v[i].name, 0);
	free(v);
}

/* The upload's directory flocked (a new open file description: threads and
 * processes, hosts sharing it over NFS too, exclude each other), or -errno. */
static int lock_dir(struct pd_egress_upload *u)
{
	int fd = openat(u->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	while (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;

			close(fd);
			return r;
		}
	}
	return fd < 0 ? -errno : fd;
}

static bool has_limits(const struct pd_egress_upload *u)
{
	return u->lim.max_count || u->lim.max_bytes || u->lim.max_age_s;
}

static int link_file(struct pd_egress_upload *u);

int pd_egress_fs_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen)
{
	int r, lk = -1;

	if (fsync(u->fd) < 0) {
		r = -errno;
		snprintf(err, errlen, "writing %s/%s: %s", u->dir, u->name, strerror(-r));
		return r;
	}
	if (has_limits(u)) {
		lk = lock_dir(u);
		if (lk < 0) {
			snprintf(err, errlen, "egress '%s': locking %s: %s", u->pname, u->dir,
				 strerror(-lk));
			return lk;
		}
		r = too_big(u, err, errlen);
		if (r < 0) {
			close(lk);
			return r;
		}
	}
	r = link_file(u);
	if (r == 0 && lk >= 0)
		make_room(u);
	if (lk >= 0)
		close(lk);
	if (r < 0) {
		snprintf(err, errlen, "linking %s/%s: %s", u->dir, u->name, strerror(-r));
		return r;
	}
	(void)fsync(u->dirfd);
	if (location && loclen)
		snprintf(location, loclen, "%s/%s", u->dir, u->name);
	fs_free(u);
	return 0;
}

/* The written file linked in under its name: 0 or -errno. */
static int link_file(struct pd_egress_upload *u)
{
	int r;

	if (u->tmp[0]) {
		/* link(2) does not replace an existing name; then the temp goes. */
		if (linkat(u->dirfd, u->tmp, u->dirfd, u->name, 0) < 0) {
			r = -errno;
			if (r != -EPERM && r != -ENOTSUP && r != -EOPNOTSUPP)
				return r;
			if (renameat(u->dirfd, u->tmp, u->dirfd, u->name) < 0)
				return -errno;
		} else {
			(void)unlinkat(u->dirfd, u->tmp, 0);
		}
		u->tmp[0] = 0;
	} else {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", u->fd);
		if (linkat(AT_FDCWD, proc, u->dirfd, u->name, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
	}
	return 0;
}

void pd_egress_fs_abort(struct pd_egress_upload *u)
{
	if (!u)
		return;
	if (u->tmp[0])
		(void)unlinkat(u->dirfd, u->tmp, 0);
	fs_free(u);
}
