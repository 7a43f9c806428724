#include "config.h"

#include "lib/corepattern.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/strbuf.h"

#define SAVED_MAGIC "procdiag-core-pattern 1"

static const char *pattern_path(const struct pd_core_paths *p)
{
	return p && p->pattern ? p->pattern : "/proc/sys/kernel/core_pattern";
}

static const char *limit_path(const struct pd_core_paths *p)
{
	return p && p->pipe_limit ? p->pipe_limit : "/proc/sys/kernel/core_pipe_limit";
}

static const char *saved_path(const struct pd_core_paths *p)
{
	return p && p->saved ? p->saved : PD_CORE_PATTERN_SAVED;
}

static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int read_small(const char *path, char *buf, size_t size)
{
	struct strbuf sb = STRBUF_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int r;

	if (fd < 0)
		return -errno;
	r = strbuf_read_fd(&sb, fd, size - 1);
	close(fd);
	if (r == 0) {
		memcpy(buf, sb.buf, sb.len);
		buf[sb.len] = 0;
		r = (int)sb.len;
	}
	strbuf_release(&sb);
	return r;
}

/* One write of the whole value, as sysctl(8) does. */
static int write_small(const char *path, const char *val, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_TRUNC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (close(fd) < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int pd_core_pattern_read(const struct pd_core_paths *p, char *buf, size_t size)
{
	int n = read_small(pattern_path(p), buf, size);

	if (n < 0)
		return n;
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	return memchr(buf, '\n', (size_t)n) ? -EINVAL : 0;
}

long pd_core_pipe_limit(const struct pd_core_paths *p)
{
	char buf[32];
	uint64_t v;
	int n = read_small(limit_path(p), buf, sizeof(buf));

	if (n < 0)
		return n;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	if (parse_u64(buf, (size_t)n, 0x7fffffff, &v) < 0)
		return -EINVAL;
	return (long)v;
}

/* The value after "key " on the line that starts with it. */
static const char *field(const char *text, const char *key, size_t *len)
{
	size_t kl = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, key, kl) && l[kl] == ' ') {
			const char *v = l + kl + 1, *e = strchr(v, '\n');

			*len = e ? (size_t)(e - v) : strlen(v);
			return v;
		}
	}
	return NULL;
}

int pd_core_saved_read(const struct pd_core_paths *p, struct pd_core_saved *out)
{
	char text[3 * (PD_CORE_PATTERN_MAX + 32) + 64];
	const char *v, *sp;
	size_t len;
	uint64_t n;
	int r = read_small(saved_path(p), text, sizeof(text));

	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	if (strncmp(text, SAVED_MAGIC "\n", sizeof(SAVED_MAGIC)))
		return -EINVAL;
	if (!(v = field(text, "pattern", &len)) || len > PD_CORE_PATTERN_MAX)
		return -EINVAL;
	memcpy(out->pattern, v, len);
	if (!(v = field(text, "installed", &len)) || len > PD_CORE_PATTERN_MAX)
		return -EINVAL;
	memcpy(out->installed, v, len);
	if (!(v = field(text, "pipe_limit", &len)) || !(sp = memchr(v, ' ', len)))
		return -EINVAL;
	if (parse_u64(v, (size_t)(sp - v), 0x7fffffff, &n) < 0)
		return -EINVAL;
	out->pipe_limit = (unsigned long)n;
	sp++;
	len -= (size_t)(sp - v);
	if (len == 1 && *sp == '-')
		return 0;
	if (parse_u64(sp, len, 0x7fffffff, &n) < 0)
		return -EINVAL;
	out->pipe_limit_set = true;
	out->pipe_limit_ours = (unsigned long)n;
	return 0;
}

/* Writes the saved file: a temporary in its directory, fsync, rename. */
static int saved_write(const struct pd_core_paths *p, const struct pd_core_saved *s, char *err,
		       size_t errlen)
{
	const char *path = saved_path(p);
	char dirbuf[4096], tmp[4200], lim[32];
	struct strbuf sb = STRBUF_INIT;
	int fd, r = 0;

	if (strlen(path) >= sizeof(dirbuf))
		return say(err, errlen, -ENAMETOOLONG, "%s: name too long", path);
	strcpy(dirbuf, path);
	/* Its directory (/var/lib/procdiag) may not exist yet: made root-only. */
	if (mkdir(dirname(dirbuf), 0700) < 0 && errno != EEXIST)
		return say(err, errlen, -errno, "%s: %s", dirbuf, strerror(errno));
	if (s->pipe_limit_set)
		snprintf(lim, sizeof(lim), "%lu", s->pipe_limit_ours);
	else
		strcpy(lim, "-");
	strbuf_addf(&sb, SAVED_MAGIC "\npattern %s\npipe_limit %lu %s\ninstalled %s\n", s->pattern,
		    s->pipe_limit, lim, s->installed);
	if (sb.failed)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = say(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, sb.buf, sb.len) != (ssize_t)sb.len || fsync(fd) < 0) {
		r = say(err, errlen, errno ? -errno : -EIO, "%s: %s", tmp,
			strerror(errno ? errno : EIO));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		r = say(err, errlen, -errno, "%s: %s", path, strerror(errno));
		unlink(tmp);
	}
out:
	strbuf_release(&sb);
	return r;
}

int pd_core_install(const struct pd_core_paths *p, const char *pattern, struct pd_core_saved *was,
		    char *err, size_t errlen)
{
	struct pd_core_saved s, old;
	char cur[PD_CORE_PATTERN_MAX + 2], back[PD_CORE_PATTERN_MAX + 2];
	size_t len = strlen(pattern);
	long lim;
	int r;

	if (len > PD_CORE_PATTERN_MAX || strchr(pattern, '\n'))
		return say(err, errlen, -ENAMETOOLONG,
			   "the pattern is %zu bytes; the kernel takes at most %d (a shorter path "
			   "for the binary or the config, e.g. a symlink, makes it fit)",
			   len, PD_CORE_PATTERN_MAX);
	if ((r = pd_core_pattern_read(p, cur, sizeof(cur))) < 0)
		return say(err, errlen, r, "%s: %s", pattern_path(p), strerror(-r));
	if ((lim = pd_core_pipe_limit(p)) < 0)
		return say(err, errlen, (int)lim, "%s: %s", limit_path(p), strerror((int)-lim));
	memset(&s, 0, sizeof(s));
	r = pd_core_saved_read(p, &old);
	if (r == 0 && !strcmp(cur, old.installed)) {
		/* Installed already: the original stays the one remembered. */
		s = old;
	} else if (r < 0 && r != -ENOENT && r != -EINVAL) {
		return say(err, errlen, r, "%s: %s", saved_path(p), strerror(-r));
	} else {
		/* Nothing saved, or saved for a pattern since replaced by
		 * someone else: what is there now is the previous one. */
		strcpy(s.pattern, cur);
		s.pipe_limit = (unsigned long)lim;
		if (lim == 0) {
			s.pipe_limit_set = true;
			s.pipe_limit_ours = PD_CORE_PIPE_LIMIT;
		}
	}
	if (was)
		*was = s;
	strcpy(s.installed, pattern);
	/* Saved before anything changes: a failure below leaves the original
	 * recoverable by --uninstall. */
	if ((r = saved_write(p, &s, err, errlen)) < 0)
		return r;
	if (lim == 0 && s.pipe_limit_set) {
		char v[32];
		int n = snprintf(v, sizeof(v), "%lu\n", s.pipe_limit_ours);

		if ((r = write_small(limit_path(p), v, (size_t)n)) < 0)
			return say(err, errlen, r, "%s: %s", limit_path(p), strerror(-r));
	}
	if ((r = write_small(pattern_path(p), pattern, len)) < 0)
		return say(err, errlen, r, "%s: %s", pattern_path(p), strerror(-r));
	if ((r = pd_core_pattern_read(p, back, sizeof(back))) < 0 || strcmp(back, pattern))
		return say(err, errlen, r < 0 ? r : -EIO,
			   "%s reads back '%s', not the pattern written", pattern_path(p),
			   r < 0 ? "" : back);
	return 0;
}

int pd_core_uninstall(const struct pd_core_paths *p, bool force, char *err, size_t errlen)
{
	struct pd_core_saved s;
	char cur[PD_CORE_PATTERN_MAX + 2], back[PD_CORE_PATTERN_MAX + 2];
	size_t len;
	int r = pd_core_saved_read(p, &s);

	if (r == -ENOENT)
		return say(err, errlen, r, "not installed: %s does not exist", saved_path(p));
	if (r < 0)
		return say(err, errlen, r, "%s: %s", saved_path(p),
			   r == -EINVAL ? "not a saved core_pattern of procdiag" : strerror(-r));
	if ((r = pd_core_pattern_read(p, cur, sizeof(cur))) < 0)
		return say(err, errlen, r, "%s: %s", pattern_path(p), strerror(-r));
	if (strcmp(cur, s.installed) && !force)
		return say(err, errlen, -EBUSY,
			   "core_pattern is no longer the one --install wrote (someone changed it "
			   "since); --force puts the saved one back anyway");
	if (s.pipe_limit_set && pd_core_pipe_limit(p) == (long)s.pipe_limit_ours) {
		char v[32];
		int n = snprintf(v, sizeof(v), "%lu\n", s.pipe_limit);

		if ((r = write_small(limit_path(p), v, (size_t)n)) < 0)
			return say(err, errlen, r, "%s: %s", limit_path(p), strerror(-r));
	}
	len = strlen(s.pattern);
	/* An empty pattern is written as "\n": a write of no bytes changes
	 * nothing. */
	r = len ? write_small(pattern_path(p), s.pattern, len)
		: write_small(pattern_path(p), "\n", 1);
	if (r < 0)
		return say(err, errlen, r, "%s: %s", pattern_path(p), strerror(-r));
	if ((r = pd_core_pattern_read(p, back, sizeof(back))) < 0 || strcmp(back, s.pattern))
		return say(err, errlen, r < 0 ? r : -EIO,
			   "%s reads back something else than the saved pattern", pattern_path(p));
	if (unlink(saved_path(p)) < 0)
		return say(err, errlen, -errno, "%s: %s", saved_path(p), strerror(errno));
	return 0;
}
