#include "config.h"

#include "lib/cgroupstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/numparse.h"
#include "lib/procfs.h"

/* ---- text helpers ------------------------------------------------------- */

/* The next ' '-separated field of s[0..n): 1 with it, 0 when none is left.
 * Fields are separated by exactly one space (the kernel's format). */
static int next_field(const char **s, size_t *n, const char **f, size_t *fn)
{
	const char *sp;

	if (*n == 0)
		return 0;
	sp = memchr(*s, ' ', *n);
	*f = *s;
	*fn = sp ? (size_t)(sp - *s) : *n;
	*s += *fn + (sp != NULL);
	*n -= *fn + (sp != NULL);
	return 1;
}

static bool item_in_list(const char *s, size_t n, const char *item)
{
	size_t in = strlen(item);

	while (n) {
		const char *c = memchr(s, ',', n);
		size_t len = c ? (size_t)(c - s) : n;

		if (len == in && memcmp(s, item, in) == 0)
			return true;
		if (!c)
			break;
		s = c + 1;
		n -= len + 1;
	}
	return false;
}

/* A path of a cgroup file: at least "/", no NUL, shorter than the array. */
static int copy_path(char dst[PD_CG_PATH_MAX], const char *s, size_t n)
{
	if (n == 0 || s[0] != '/' || memchr(s, '\0', n))
		return -EINVAL;
	if (n >= PD_CG_PATH_MAX)
		return -ERANGE;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static bool is_octal(char c)
{
	return c >= '0' && c <= '7';
}

/* mountinfo escapes ' ', '\t', '\n' and '\\' in paths as \ooo (seq_file's
 * mangle); other bytes are raw. */
static int unescape_path(char dst[PD_CG_PATH_MAX], const char *s, size_t n)
{
	size_t o = 0;

	if (n == 0 || s[0] != '/')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\\') {
			unsigned v;

			if (n - i < 4 || !is_octal(s[i + 1]) || !is_octal(s[i + 2]) ||
			    !is_octal(s[i + 3]))
				return -EINVAL;
			v = (unsigned)(s[i + 1] - '0') * 64 + (unsigned)(s[i + 2] - '0') * 8 +
			    (unsigned)(s[i + 3] - '0');
			if (v == 0 || v > 255)
				return -EINVAL;
			c = (char)v;
			i += 3;
		} else if (c == '\0') {
			return -EINVAL;
		}
		if (o + 1 >= PD_CG_PATH_MAX)
			return -ERANGE;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return 0;
}

/* ---- mountinfo ------------------------------------------------------------ */

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...]
 * - FSTYPE SOURCE SUPEROPTS". Sets *which to 2 (cgroup2), 1 (cgroup v1
 * with the memory controller) or 0, with root and dir unescaped. */
static int mountinfo_line(const char *s, size_t n, int *which, struct pd_cgroup_mount *mnt)
{
	const char *f[6], *fs = NULL, *super = NULL, *x;
	size_t fn[6], fsn = 0, supern = 0, xn;
	int r;

	for (int i = 0; i < 6; i++)
		if (!next_field(&s, &n, &f[i], &fn[i]) || fn[i] == 0)
			return -EINVAL;
	/* Optional fields up to the lone "-". */
	for (;;) {
		if (!next_field(&s, &n, &x, &xn) || xn == 0)
			return -EINVAL;
		if (xn == 1 && x[0] == '-')
			break;
	}
	if (!next_field(&s, &n, &fs, &fsn) || fsn == 0 || !next_field(&s, &n, &x, &xn))
		return -EINVAL;
	/* The super options are the rest (a source may be empty; the rest
	 * has no space). */
	if (!next_field(&s, &n, &super, &supern) || n != 0)
		return -EINVAL;
	*which = 0;
	if (fsn == 7 && memcmp(fs, "cgroup2", 7) == 0)
		*which = 2;
	else if (fsn == 6 && memcmp(fs, "cgroup", 6) == 0 && item_in_list(super, supern, "memory"))
		*which = 1;
	if (*which == 0)
		return 0;
	r = unescape_path(mnt->root, f[3], fn[3]);
	if (r == 0)
		r = unescape_path(mnt->dir, f[4], fn[4]);
	return r;
}

int pd_cgroup_parse_mountinfo(const char *buf, size_t len, struct pd_cgroup_mountinfo *out)
{
	struct pd_lines it = {buf, buf + len};
	const char *line;
	size_t n;
	int r, which;
	bool v2_slash = false, v1_slash = false;

	/* Two passes, so that out stays untouched on failure without a
	 * second struct this size: the first checks every line, the second
	 * fills out. */

	while ((r = pd_lines_next(&it, &line, &n)) == 1) {
		struct pd_cgroup_mount tmp;

		tmp.found = true;
		r = mountinfo_line(line, n, &which, &tmp);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	/* Second pass: every line parses, now fill out. */
	memset(out, 0, sizeof(*out));
	it.p = buf;
	while (pd_lines_next(&it, &line, &n) == 1) {
		struct pd_cgroup_mount tmp;
		struct pd_cgroup_mount *dst;
		bool *slash;

		tmp.found = true;
		(void)mountinfo_line(line, n, &which, &tmp);
		if (which == 0)
			continue;
		dst = which == 2 ? &out->v2 : &out->v1mem;
		slash = which == 2 ? &v2_slash : &v1_slash;
		if (*slash)
			continue;
		if (dst->found && strcmp(tmp.root, "/") != 0)
			continue;
		*dst = tmp;
		*slash = strcmp(tmp.root, "/") == 0;
	}
	return 0;
}

/* ---- /proc/PID/cgroup ------------------------------------------------------ */

int pd_cgroup_parse_proc(const char *buf, size_t len, struct pd_proc_cgroup *out)
{
	struct pd_lines it = {buf, buf + len};
	const char *line, *v2 = NULL, *v1 = NULL;
	size_t n, v2n = 0, v1n = 0;
	int r;

	while ((r = pd_lines_next(&it, &line, &n)) == 1) {
		const char *c1 = memchr(line, ':', n), *c2, *ctl, *path;
		size_t ctln, pathn;
		uint64_t id;

		if (!c1)
			return -EINVAL;
		r = parse_u64(line, (size_t)(c1 - line), UINT32_MAX, &id);
		if (r < 0)
			return -EINVAL;
		ctl = c1 + 1;
		c2 = memchr(ctl, ':', (size_t)(line + n - ctl));
		if (!c2)
			return -EINVAL;
		ctln = (size_t)(c2 - ctl);
		/* The path is the rest: it may hold ':'. */
		path = c2 + 1;
		pathn = (size_t)(line + n - path);
		if (pathn == 0 || path[0] != '/' || memchr(path, '\0', pathn))
			return -EINVAL;
		if (pathn >= PD_CG_PATH_MAX)
			return -ERANGE;
		/* The kernel writes the v2 line as "0::PATH" exactly. */
		if (id == 0 && ctln == 0 && c1 - line == 1) {
			if (!v2) {
				v2 = path;
				v2n = pathn;
			}
		} else if (id != 0 && item_in_list(ctl, ctln, "memory")) {
			if (!v1) {
				v1 = path;
				v1n = pathn;
			}
		}
	}
	if (r < 0)
		return r;
	out->has_v2 = v2 != NULL;
	out->has_v1mem = v1 != NULL;
	out->v2[0] = out->v1mem[0] = '\0';
	if (v2)
		(void)copy_path(out->v2, v2, v2n);
	if (v1)
		(void)copy_path(out->v1mem, v1, v1n);
	return 0;
}

/* ---- memory files ---------------------------------------------------------- */

/* The text of a one-number file, without its '\n'. */
static int one_line(const char *buf, size_t len, size_t *n)
{
	if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1))
		return -EINVAL;
	*n = len - 1;
	return 0;
}

int pd_cgroup_parse_usage(const char *buf, size_t len, uint64_t *usage)
{
	size_t n;
	int r = one_line(buf, len, &n);

	return r < 0 ? r : parse_u64(buf, n, UINT64_MAX, usage);
}

int pd_cgroup_parse_limit(const char *buf, size_t len, uint64_t *limit)
{
	uint64_t v;
	size_t n;
	int r = one_line(buf, len, &n);

	if (r < 0)
		return r;
	if (n == 3 && memcmp(buf, "max", 3) == 0) {
		*limit = 0;
		return 0;
	}
	r = parse_u64(buf, n, UINT64_MAX, &v);
	if (r < 0)
		return r;
	/* A v2 memory.max of 0 is a real limit (nothing may be charged);
	 * 0 means "no limit" here, so it becomes 1 byte: full at once. */
	*limit = v >= PD_CG_V1_UNLIMITED ? 0 : v == 0 ? 1 : v;
	return 0;
}

/* ---- PSI ------------------------------------------------------------------- */

/* "D+.DD" in hundredths, at most UINT32_MAX. */
static int parse_centi(const char *s, size_t n, uint32_t *out)
{
	const char *dot = memchr(s, '.', n);
	uint64_t whole, frac;
	int r;

	if (!dot || (size_t)(s + n - dot) != 3)
		return -EINVAL;
	r = parse_u64(s, (size_t)(dot - s), UINT32_MAX / 100, &whole);
	if (r < 0)
		return r;
	r = parse_u64(dot + 1, 2, 99, &frac);
	if (r < 0)
		return r;
	if (whole * 100 + frac > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)(whole * 100 + frac);
	return 0;
}

/* "avg10=A.BB avg60=A.BB avg300=A.BB total=N": all four, in this order. */
static int psi_line(const char *s, size_t n, uint32_t *avg10, uint64_t *total)
{
	static const char *const keys[] = {"avg10=", "avg60=", "avg300=", "total="};
	const char *f;
	size_t fn;
	uint32_t centi;
	int r;

	for (int i = 0; i < 4; i++) {
		size_t kn = strlen(keys[i]);

		if (!next_field(&s, &n, &f, &fn) || fn < kn || memcmp(f, keys[i], kn) != 0)
			return -EINVAL;
		if (i < 3) {
			r = parse_centi(f + kn, fn - kn, &centi);
			if (r < 0)
				return r;
			if (i == 0)
				*avg10 = centi;
		} else {
			r = parse_u64(f + kn, fn - kn, UINT64_MAX, total);
			if (r < 0)
				return r;
		}
	}
	return n == 0 ? 0 : -EINVAL;
}

int pd_psi_parse(const char *buf, size_t len, struct pd_psi *out)
{
	struct pd_lines it = {buf, buf + len};
	struct pd_psi p = {0};
	const char *line;
	size_t n;
	int r;

	while ((r = pd_lines_next(&it, &line, &n)) == 1) {
		bool some = n >= 5 && memcmp(line, "some ", 5) == 0;
		bool full = n >= 5 && memcmp(line, "full ", 5) == 0;

		if ((some && p.has_some) || (full && p.has_full) || (!some && !full))
			continue;
		r = psi_line(line + 5, n - 5, some ? &p.some_avg10 : &p.full_avg10,
			     some ? &p.some_total : &p.full_total);
		if (r < 0)
			return r;
		if (some)
			p.has_some = true;
		else
			p.has_full = true;
	}
	if (r < 0)
		return r;
	if (!p.has_some)
		return -EINVAL;
	*out = p;
	return 0;
}

/* ---- readers --------------------------------------------------------------- */

/* Says why into the caller's buffer and gives err. */
#define SAY(err, ...) (pd_seterr(why, whylen, __VA_ARGS__), (err))

static int open_dir(const struct pd_cgroup_mount *mnt)
{
	return mnt->found ? open(mnt->dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
}

int pd_cgroup_mounts_open(struct pd_cgroup_mounts *m)
{
	struct strbuf sb = STRBUF_INIT;
	int r;

	memset(m, 0, sizeof(*m));
	m->v2fd = m->v1memfd = -1;
	m->memo_ms = 50;
	r = pd_read_file_at(AT_FDCWD, "/proc/self/mountinfo", &sb, 16u << 20);
	if (r == 0)
		r = pd_cgroup_parse_mountinfo(sb.buf, sb.len, &m->mi);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	/* A mount point we cannot open is as good as absent. */
	m->v2fd = open_dir(&m->mi.v2);
	m->mi.v2.found = m->v2fd >= 0;
	m->v1memfd = open_dir(&m->mi.v1mem);
	m->mi.v1mem.found = m->v1memfd >= 0;
	return 0;
}

void pd_cgroup_mounts_close(struct pd_cgroup_mounts *m)
{
	if (m->v2fd >= 0)
		close(m->v2fd);
	if (m->v1memfd >= 0)
		close(m->v1memfd);
	m->v2fd = m->v1memfd = -1;
}

int pd_cgroup_read_proc(int pid, struct strbuf *scratch, struct pd_proc_cgroup *out, char *why,
			size_t whylen)
{
	char path[32];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	strbuf_reset(scratch);
	r = pd_read_file_at(AT_FDCWD, path, scratch, 64u << 10);
	if (r == -ENOENT || r == -ESRCH)
		return SAY(-ESRCH, "process %d is gone", pid);
	if (r < 0)
		return SAY(r, "cannot read %s: %s", path, strerror(-r));
	r = pd_cgroup_parse_proc(scratch->buf, scratch->len, out);
	if (r < 0)
		return SAY(r, "%s: not what the kernel writes", path);
	return 0;
}

/* The cgroup path relative to the mount point, into rel (no leading '/';
 * "" for the mount's root). -EXDEV when it is not under the mount's root
 * or has a ".." component. */
static int relative(const struct pd_cgroup_mount *mnt, const char *path, char rel[PD_CG_PATH_MAX])
{
	size_t rootn = strlen(mnt->root);
	const char *p = path;

	if (strcmp(mnt->root, "/") != 0) {
		if (strncmp(path, mnt->root, rootn) != 0 || (path[rootn] != '/' && path[rootn]))
			return -EXDEV;
		p = path + rootn;
	}
	while (*p == '/')
		p++;
	for (const char *c = p; *c;) {
		size_t cn = strcspn(c, "/");

		if ((cn == 2 && c[0] == '.' && c[1] == '.') || (cn == 1 && c[0] == '.'))
			return -EXDEV;
		c += cn;
		while (*c == '/')
			c++;
	}
	snprintf(rel, PD_CG_PATH_MAX, "%s", p);
	/* Trailing slashes off: rel + "/file" must name the file. */
	for (size_t n = strlen(rel); n && rel[n - 1] == '/'; n--)
		rel[n - 1] = '\0';
	return 0;
}

/* Reads a small file dirfd/rel/name into buf (cap bytes): 0 with *n, or
 * -errno (-EFBIG if it does not fit). */
static int read_small(int dirfd, const char *rel, const char *name, char *buf, size_t cap,
		      size_t *n)
{
	char path[PD_CG_PATH_MAX + 64];
	ssize_t got;
	size_t len = 0;
	int fd, e;

	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", name) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	while (len < cap) {
		got = read(fd, buf + len, cap - len);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			close(fd);
			return -e;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	if (len == cap)
		return -EFBIG;
	*n = len;
	return 0;
}

/* The parent of rel in place: false at the root. */
static bool up(char *rel)
{
	char *slash = strrchr(rel, '/');

	if (!*rel)
		return false;
	if (slash)
		*slash = '\0';
	else
		rel[0] = '\0';
	return true;
}

static int memory_read(const struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
		       struct pd_cgroup_memory *out, char *why, size_t whylen)
{
	char rel[PD_CG_PATH_MAX], own[PD_CG_PATH_MAX], buf[64];
	const struct pd_cgroup_mount *mnt;
	const char *path, *usage_file, *limit_file;
	struct pd_cgroup_memory res = {0};
	size_t n;
	int dirfd, r;

	if (m->v1memfd >= 0 && cg->has_v1mem) {
		res.version = 1;
		mnt = &m->mi.v1mem, dirfd = m->v1memfd, path = cg->v1mem;
	} else if (m->v2fd >= 0 && cg->has_v2) {
		res.version = 2;
		mnt = &m->mi.v2, dirfd = m->v2fd, path = cg->v2;
	} else {
		return SAY(-EOPNOTSUPP,
			   "no cgroup hierarchy with the memory controller for this process "
			   "(none mounted, or the process has no cgroup in it)");
	}
	usage_file = res.version == 1 ? "memory.usage_in_bytes" : "memory.current";
	limit_file = res.version == 1 ? "memory.limit_in_bytes" : "memory.max";
	r = relative(mnt, path, rel);
	if (r < 0)
		return SAY(r, "cgroup %s is outside this cgroup namespace or mount",
			   path);
	snprintf(own, sizeof(own), "%s", rel);
	for (;;) {
		uint64_t limit;

		r = read_small(dirfd, rel, limit_file, buf, sizeof(buf), &n);
		if (r == -ENOENT && !*rel)
			break; /* the root cgroup has no limit file */
		if (r == -ENOENT && res.levels == 0 && faccessat(dirfd, rel, F_OK, 0) != 0)
			return SAY(-ENOENT, "cgroup %s is gone", path);
		if (r == -ENOENT && res.levels == 0 && res.version == 2)
			return SAY(-EOPNOTSUPP,
				   "cgroup %s has no %s: the memory controller is not enabled "
				   "for it (cgroup.subtree_control of its parent)",
				   path, limit_file);
		if (r < 0)
			return SAY(r, "cgroup %s: cannot read %s: %s", path,
				   limit_file, strerror(-r));
		r = pd_cgroup_parse_limit(buf, n, &limit);
		if (r < 0)
			return SAY(r, "cgroup %s: %s is not what the kernel writes",
				   path, limit_file);
		if (limit) {
			res.limit = limit;
			break;
		}
		if (!up(rel))
			break;
		res.levels++;
	}
	/* Usage: of the limited cgroup, else of the process's own. */
	if (!res.limit) {
		snprintf(rel, sizeof(rel), "%s", own);
		res.levels = 0;
	}
	r = read_small(dirfd, rel, usage_file, buf, sizeof(buf), &n);
	if (r == -ENOENT && !*rel) {
		/* v2's root has no memory.current: nothing to compare. */
		res.usage = 0;
	} else if (r < 0) {
		return SAY(r, "cgroup %s: cannot read %s: %s", path, usage_file,
			   strerror(-r));
	} else {
		r = pd_cgroup_parse_usage(buf, n, &res.usage);
		if (r < 0)
			return SAY(r, "cgroup %s: %s is not what the kernel writes",
				   path, usage_file);
	}
	*out = res;
	return 0;
}

static int psi_read(int dirfd, const char *rel, const char *name, const char *what,
		    struct pd_psi *out, char *why, size_t whylen)
{
	char buf[256];
	size_t n;
	int r = read_small(dirfd, rel, name, buf, sizeof(buf), &n);

	/* Booted with psi=0: the files are there but reads fail. */
	if (r == -EOPNOTSUPP)
		return SAY(-EOPNOTSUPP,
			   "%s: PSI is disabled in this kernel (booted with psi=0)", what);
	if (r < 0)
		return SAY(r, "%s: cannot read: %s", what, strerror(-r));
	r = pd_psi_parse(buf, n, out);
	if (r < 0)
		return SAY(r, "%s: not what the kernel writes", what);
	return 0;
}

int pd_psi_read_system(struct pd_psi *out, char *why, size_t whylen)
{
	if (access("/proc/pressure", F_OK) != 0)
		return SAY(-EOPNOTSUPP,
			   "no /proc/pressure: this kernel has no PSI (CONFIG_PSI) or it is "
			   "disabled (psi=0)");
	return psi_read(AT_FDCWD, "", "/proc/pressure/memory", "/proc/pressure/memory", out, why,
			whylen);
}

static int psi_cgroup(const struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
		      struct pd_psi *out, char *why, size_t whylen)
{
	char rel[PD_CG_PATH_MAX], what[PD_CG_PATH_MAX + 32];
	int r;

	if (m->v2fd < 0)
		return SAY(-EOPNOTSUPP,
			   "no cgroup v2 mounted: a cgroup's memory pressure (memory.pressure) "
			   "exists only in cgroup v2");
	if (!cg->has_v2)
		return SAY(-EOPNOTSUPP,
			   "the process has no cgroup v2 (no \"0::\" line in /proc/PID/cgroup)");
	r = relative(&m->mi.v2, cg->v2, rel);
	if (r < 0)
		return SAY(r, "cgroup %s is outside this cgroup namespace or mount",
			   cg->v2);
	snprintf(what, sizeof(what), "cgroup %s memory.pressure", cg->v2);
	r = psi_read(m->v2fd, rel, "memory.pressure", what, out, why, whylen);
	/* Kernels before 6.x have no pressure files in the root cgroup: its
	 * pressure is the system's. */
	if (r == -ENOENT && !*rel && access("/proc/pressure", F_OK) == 0)
		return pd_psi_read_system(out, why, whylen);
	if (r == -ENOENT && access("/proc/pressure", F_OK) != 0)
		return SAY(-EOPNOTSUPP,
			   "no /proc/pressure: this kernel has no PSI (CONFIG_PSI) or it is "
			   "disabled (psi=0)");
	return r;
}

/* ---- the memo ------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The key of a reading: which hierarchy and path (memory reads v1 or v2,
 * pressure always v2). */
static const char *memo_path(const struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
			     int kind)
{
	if (kind == 1 && m->v1memfd >= 0 && cg->has_v1mem)
		return cg->v1mem;
	return cg->has_v2 ? cg->v2 : NULL;
}

static struct pd_cgroup_memo *memo_find(struct pd_cgroup_mounts *m, int kind, const char *path,
					int64_t now)
{
	for (size_t i = 0; i < PD_CG_MEMO_N; i++) {
		struct pd_cgroup_memo *e = &m->memo[i];

		if (e->kind == kind && now - e->at_ms < (int64_t)m->memo_ms &&
		    now >= e->at_ms && strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

static struct pd_cgroup_memo *memo_slot(struct pd_cgroup_mounts *m, int kind, const char *path,
					int64_t now, int rc, const char *why)
{
	struct pd_cgroup_memo *e = &m->memo[m->memo_next++ % PD_CG_MEMO_N];

	e->kind = kind;
	e->rc = rc;
	e->at_ms = now;
	snprintf(e->path, sizeof(e->path), "%s", path);
	snprintf(e->why, sizeof(e->why), "%s", rc < 0 && why ? why : "");
	return e;
}

/* A reading through the memo: kind 1 memory, 2 pressure. */
static int memoized(struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg, int kind,
		    void *out, char *why, size_t whylen)
{
	const char *path = m->memo_ms ? memo_path(m, cg, kind) : NULL;
	struct pd_cgroup_memo *e;
	char mywhy[192] = "";
	int64_t now;
	int r;

	if (kind == 2 && m->v2fd < 0)
		path = NULL;
	if (!path)
		return kind == 1 ? memory_read(m, cg, out, why, whylen)
				 : psi_cgroup(m, cg, out, why, whylen);
	now = mono_ms();
	e = memo_find(m, kind, path, now);
	if (!e) {
		union { struct pd_cgroup_memory mem; struct pd_psi psi; } v;

		r = kind == 1 ? memory_read(m, cg, &v.mem, mywhy, sizeof(mywhy))
			      : psi_cgroup(m, cg, &v.psi, mywhy, sizeof(mywhy));
		e = memo_slot(m, kind, path, now, r, mywhy);
		if (r == 0)
			memcpy(&e->v, &v, sizeof(v));
	}
	if (e->rc < 0)
		return SAY(e->rc, "%s", e->why);
	if (kind == 1)
		*(struct pd_cgroup_memory *)out = e->v.mem;
	else
		*(struct pd_psi *)out = e->v.psi;
	return 0;
}

int pd_cgroup_memory_read(struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
			  struct pd_cgroup_memory *out, char *why, size_t whylen)
{
	return memoized(m, cg, 1, out, why, whylen);
}

int pd_psi_read_cgroup(struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
		       struct pd_psi *out, char *why, size_t whylen)
{
	return memoized(m, cg, 2, out, why, whylen);
}
