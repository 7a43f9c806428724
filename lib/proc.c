#include "config.h"

#include "lib/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Caps on what we buffer from one /proc file. They are far above what the
 * kernel writes for sane processes; beyond them the read fails (-EFBIG)
 * instead of letting one hostile process make us allocate without bound. */
#define STAT_MAX   4096
#define STATUS_MAX (64u << 10)
#define ROLLUP_MAX (64u << 10)
#define MAPS_MAX   (64u << 20)
/* argv and envp together are bounded by a quarter of the stack rlimit at
 * exec (2 MiB by default), but a process may rewrite them later; 4 MiB
 * covers raised rlimits without being unbounded. */
#define STRV_MAX (4u << 20)

/* A stat file that is missing under a live /proc/PID means the process is
 * gone; callers expect -ESRCH for that. */
static int gone(int rc)
{
	return rc == -ENOENT ? -ESRCH : rc;
}

int pd_read_stat_at(int dirfd, const char *path, struct pd_stat *out)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	/* A line the parser refuses may be one of a process that changed under
	 * the read (lib/procfs.h, struct pd_stat: a reaped one): it is read
	 * once more, and a process gone by then is -ESRCH, not a parse error
	 * (which the dump and the stacks would answer with a 500). */
	for (int tries = 0; tries < 2; tries++) {
		strbuf_reset(&sb);
		rc = pd_read_file_at(dirfd, path, &sb, STAT_MAX);
		if (rc == 0)
			rc = pd_parse_stat(sb.buf, sb.len, out);
		if (rc != -EINVAL && rc != -ERANGE)
			break;
	}
	strbuf_release(&sb);
	return gone(rc);
}

/* /proc/TID opens fine for any thread id although readdir lists only
 * thread-group leaders. pidfd_open() without PIDFD_THREAD refuses a
 * non-leader (EINVAL before Linux 6.9, ENOENT since), which is the cheapest
 * test we have. Where the syscall is missing or filtered we cannot tell,
 * and accept the pid. */
static int check_leader(int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EINVAL || errno == ENOENT || errno == ESRCH)
		return -ESRCH;
	return 0;
}

int pd_proc_open(int pid, struct pd_proc *p)
{
	char path[32];
	struct stat st;
	int rc;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->dirfd = -1;
	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d", pid);
	p->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (fstat(p->dirfd, &st) < 0) {
		rc = -errno;
		goto err;
	}
	p->uid = st.st_uid;
	rc = pd_read_stat_at(p->dirfd, "stat", &p->stat);
	if (rc < 0)
		goto err;
	rc = check_leader(pid);
	if (rc < 0)
		goto err;
	return 0;
err:
	pd_proc_close(p);
	p->pid = pid;
	return rc;
}

void pd_proc_close(struct pd_proc *p)
{
	if (p->dirfd >= 0)
		close(p->dirfd);
	p->dirfd = -1;
}

int pd_proc_status(struct pd_proc *p, struct pd_status *out)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	rc = pd_read_file_at(p->dirfd, "status", &sb, STATUS_MAX);
	if (rc == 0)
		rc = pd_parse_status(sb.buf, sb.len, out);
	strbuf_release(&sb);
	return gone(rc);
}

int pd_read_creds_at(int dirfd, const char *path, struct pd_creds *out)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_status st;
	struct stat sb_owner;
	int fd, rc;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gone(-errno);
	rc = fstat(fd, &sb_owner) < 0 ? -errno : strbuf_read_fd(&sb, fd, STATUS_MAX + 1);
	close(fd);
	if (rc == 0)
		rc = pd_parse_status(sb.buf, sb.len, &st);
	strbuf_release(&sb);
	if (rc < 0)
		return gone(rc);
	for (int i = 0; i < 3; i++) {
		if (st.uid[i] < 0 || st.gid[i] < 0)
			return -EINVAL;
		out->uid[i] = (uid_t)st.uid[i];
		out->gid[i] = (gid_t)st.gid[i];
	}
	/* The owner was set from the task's state when the open looked the
	 * file up (pid_revalidate), as the ids are read after it. */
	out->dumpable = sb_owner.st_uid == out->uid[1] && sb_owner.st_gid == out->gid[1];
	return 0;
}

int pd_proc_rollup(struct pd_proc *p, struct pd_rollup *out)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	rc = pd_read_file_at(p->dirfd, "smaps_rollup", &sb, ROLLUP_MAX);
	if (rc == 0)
		rc = pd_parse_smaps_rollup(sb.buf, sb.len, out);
	strbuf_release(&sb);
	return rc;
}

int pd_proc_maps(struct pd_proc *p, struct pd_maps *out)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	out->n = 0;
	out->v = NULL;
	out->strings = NULL;
	rc = pd_read_file_at(p->dirfd, "maps", &sb, MAPS_MAX);
	if (rc == 0)
		rc = pd_parse_maps(sb.buf, sb.len, out);
	strbuf_release(&sb);
	return rc;
}

static int read_strv(struct pd_proc *p, const char *name, struct pd_strv *out)
{
	struct strbuf sb = STRBUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = pd_read_file_at(p->dirfd, name, &sb, STRV_MAX);
	if (rc == 0)
		rc = pd_parse_nulsep(sb.buf, sb.len, out);
	strbuf_release(&sb);
	return rc;
}

int pd_proc_cmdline(struct pd_proc *p, struct pd_strv *out)
{
	return read_strv(p, "cmdline", out);
}

/* A kernel thread or a zombie has no memory to read an environment from:
 * the kernel says ESRCH while the pid is still there. */
static bool has_no_memory(struct pd_proc *p)
{
	struct pd_stat now;

	if (pd_stat_is_kthread(&p->stat))
		return true;
	return pd_proc_task(p, p->pid, &now) == 0 && now.state == 'Z';
}

int pd_proc_environ(struct pd_proc *p, struct pd_strv *out)
{
	int rc = read_strv(p, "environ", out);

	return rc == -ESRCH && has_no_memory(p) ? 0 : rc;
}

int pd_proc_cmd_name(struct pd_proc *p, struct strbuf *sb)
{
	struct pd_strv argv = PD_STRV_INIT;
	const char *name = p->stat.comm;
	size_t len = p->stat.comm_len;
	int rc;

	if (!pd_comm_may_be_cut(len))
		return strbuf_add(sb, name, len);
	rc = pd_proc_cmdline(p, &argv);
	if (rc == -ESRCH || rc == -ENOMEM) {
		pd_strv_release(&argv);
		return rc;
	}
	if (rc == 0 && argv.n > 0) {
		const char *slash = memrchr(argv.v[0], '/', argv.len[0]);
		const char *base = slash ? slash + 1 : argv.v[0];
		size_t blen = argv.len[0] - (size_t)(base - argv.v[0]);

		if (blen > len && !memcmp(base, name, len)) {
			name = base;
			len = blen;
		}
	}
	rc = strbuf_add(sb, name, len);
	pd_strv_release(&argv);
	return rc;
}

/* readlinkat() into sb, growing until the target fits (readlink truncates
 * silently, so a full buffer means "try bigger"). */
static int readlink_sb(int dirfd, const char *name, struct strbuf *sb)
{
	size_t room = 256;

	for (;;) {
		ssize_t n;

		if (strbuf_grow(sb, room) < 0)
			return -ENOMEM;
		n = readlinkat(dirfd, name, sb->buf + sb->len, room);
		if (n < 0)
			return -errno;
		if ((size_t)n < room) {
			strbuf_setlen(sb, sb->len + (size_t)n);
			return 0;
		}
		if (room >= (1u << 20))
			return -ENAMETOOLONG;
		room *= 4;
	}
}

int pd_proc_exe(struct pd_proc *p, struct strbuf *sb)
{
	return readlink_sb(p->dirfd, "exe", sb);
}

/* Parses a /proc directory entry name as a decimal id (fd 0 included);
 * anything else ("." and "..", odd names) is -1. */
static int entry_id(const char *name)
{
	long v = 0;

	if (*name < '0' || *name > '9' || (name[0] == '0' && name[1]))
		return -1;
	for (; *name; name++) {
		if (*name < '0' || *name > '9')
			return -1;
		v = v * 10 + (*name - '0');
		if (v > (1L << 30))
			return -1;
	}
	return (int)v;
}

static int cmp_fd(const void *a, const void *b)
{
	const struct pd_fd *x = a, *y = b;

	return (x->fd > y->fd) - (x->fd < y->fd);
}

static DIR *open_subdir(struct pd_proc *p, const char *name, int *err)
{
	int fd = openat(p->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	d = fdopendir(fd);
	if (!d) {
		*err = -errno;
		close(fd);
	}
	return d;
}

int pd_proc_fds(struct pd_proc *p, struct pd_fds *out)
{
	struct strbuf sb = STRBUF_INIT;
	struct dirent *de;
	size_t alloc = 0;
	int rc = 0;
	DIR *d;

	out->n = 0;
	out->v = NULL;
	d = open_subdir(p, "fd", &rc);
	if (!d)
		return rc;
	while ((errno = 0, de = readdir(d))) {
		int fd = entry_id(de->d_name);

		if (fd < 0)
			continue;
		strbuf_reset(&sb);
		rc = readlink_sb(dirfd(d), de->d_name, &sb);
		if (rc == -ENOENT) {
			rc = 0; /* closed while we listed */
			continue;
		}
		if (rc < 0)
			goto err;
		if (out->n == alloc) {
			size_t na = alloc ? 2 * alloc : 16;
			struct pd_fd *nv = realloc(out->v, na * sizeof(*nv));

			if (!nv)
				goto oom;
			out->v = nv;
			alloc = na;
		}
		out->v[out->n].fd = fd;
		out->v[out->n].target = strbuf_detach(&sb, NULL);
		if (!out->v[out->n].target)
			goto oom;
		out->n++;
	}
	if (errno) {
		rc = -errno;
		goto err;
	}
	closedir(d);
	if (out->n > 1) /* (qsort of a NULL array is undefined, even empty) */
		qsort(out->v, out->n, sizeof(*out->v), cmp_fd);
	return 0;
oom:
	rc = -ENOMEM;
err:
	closedir(d);
	strbuf_release(&sb);
	pd_fds_release(out);
	return rc;
}

void pd_fds_release(struct pd_fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].target);
	free(f->v);
	f->n = 0;
	f->v = NULL;
}

static int cmp_task(const void *a, const void *b)
{
	const struct pd_stat *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int pd_proc_tasks(struct pd_proc *p, struct pd_tasks *out)
{
	struct dirent *de;
	size_t alloc = 0;
	int rc = 0;
	DIR *d;

	out->n = 0;
	out->v = NULL;
	d = open_subdir(p, "task", &rc);
	if (!d)
		return gone(rc);
	while ((errno = 0, de = readdir(d))) {
		int tid = entry_id(de->d_name);
		char path[32];

		if (tid <= 0)
			continue;
		if (out->n == alloc) {
			size_t na = alloc ? 2 * alloc : 16;
			struct pd_stat *nv = realloc(out->v, na * sizeof(*nv));

			if (!nv) {
				rc = -ENOMEM;
				goto err;
			}
			out->v = nv;
			alloc = na;
		}
		snprintf(path, sizeof(path), "%d/stat", tid);
		rc = pd_read_stat_at(dirfd(d), path, &out->v[out->n]);
		if (rc == -ESRCH) {
			rc = 0; /* the thread exited while we listed */
			continue;
		}
		if (rc < 0)
			goto err;
		out->n++;
	}
	if (errno) {
		rc = -errno;
		goto err;
	}
	closedir(d);
	if (out->n == 0) { /* even a zombie leader keeps its own task entry */
		pd_tasks_release(out);
		return -ESRCH;
	}
	qsort(out->v, out->n, sizeof(*out->v), cmp_task);
	return 0;
err:
	closedir(d);
	pd_tasks_release(out);
	return rc;
}

int pd_proc_task(struct pd_proc *p, int tid, struct pd_stat *out)
{
	char path[48];

	if (tid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "task/%d/stat", tid);
	return pd_read_stat_at(p->dirfd, path, out);
}

void pd_tasks_release(struct pd_tasks *t)
{
	free(t->v);
	t->n = 0;
	t->v = NULL;
}

void pd_protected_read(struct pd_protected *pr)
{
	int cur = getppid();

	pr->n = 0;
	pr->pid[pr->n++] = getpid();
	/* The bound stops a loop on an inconsistent read. */
	while (cur > 1 && pr->n < PD_ANCESTORS_MAX) {
		char path[32];
		struct pd_stat st;

		pr->pid[pr->n++] = cur;
		snprintf(path, sizeof(path), "/proc/%d/stat", cur);
		if (pd_read_stat_at(AT_FDCWD, path, &st) < 0)
			break;
		cur = st.ppid;
	}
}

bool pd_proc_is_procdiag(int pid, int ppid)
{
	int self = getpid();

	return pid == self || ppid == self;
}

bool pd_protected_has(const struct pd_protected *pr, int pid)
{
	/* 0 and negative pids mean process groups or "everyone" to kill(2):
	 * never a target. */
	if (pid <= 1)
		return true;
	for (int i = 0; i < pr->n; i++)
		if (pr->pid[i] == pid)
			return true;
	return false;
}

bool pd_proc_is_protected(int pid)
{
	struct pd_protected pr;

	if (pid <= 1)
		return true;
	pd_protected_read(&pr);
	return pd_protected_has(&pr, pid);
}

/* The open descriptors of a process: the size of its fd directory (path,
 * relative to dfd), which Linux 6.2 and later give as the count (one
 * system call); before, the size is 0 and the entries are counted
 * (getdents64, no readlink). *st: what stat said. -errno when path cannot
 * be stat'ed. */
int pd_count_fds_at(int dfd, const char *path, struct stat *st)
{
	char buf[4096];
	long got;
	int fd, n = 0;

	if (fstatat(dfd, path, st, 0) < 0)
		return -errno;
	if (st->st_size > 0)
		return st->st_size > INT_MAX ? INT_MAX : (int)st->st_size;
	fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			const struct pd_dirent64 *d = (const void *)(buf + off);

			if (d->name[0] != '.')
				n++;
			off += d->reclen;
		}
	}
	if (got < 0)
		n = -errno;
	close(fd);
	return n;
}
