/* One live process, read through /proc.
 *
 * pd_proc_open() opens /proc/PID as a directory fd and reads stat and the
 * owner uid; every later read goes through that fd, so a reused pid cannot
 * swap the process under us mid-request (reads of a dead process fail with
 * -ESRCH / -ENOENT). The caller owns the struct and closes it with
 * pd_proc_close(). All functions return 0 or -errno:
 *   -ESRCH   the process does not exist (or exited while being read)
 *   -EACCES  the kernel refuses (ptrace access mode); callers emit null
 *   -ENOMEM, -EINVAL (the kernel wrote something unparseable) */
#ifndef PD_PROC_H
#define PD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "lib/procfs.h"

struct pd_proc {
	int pid;
	int dirfd; /* /proc/PID, O_DIRECTORY|O_CLOEXEC */
	uid_t uid; /* owner of /proc/PID, see lib/scope.h */
	struct pd_stat stat;
};

/* A thread id that is not a thread-group leader is not a process: -ESRCH.
 * On failure p holds no fd (pd_proc_close() is harmless but not needed). */
int pd_proc_open(int pid, struct pd_proc *p);
/* Reads and parses a stat file relative to dirfd ("stat", "task/TID/stat",
 * or an absolute path with AT_FDCWD); -ESRCH when the process is gone. A
 * line that does not parse is read again: -ESRCH if the file is gone by
 * then, else the second read's result (-EINVAL, -ERANGE for a bad line). */
int pd_read_stat_at(int dirfd, const char *path, struct pd_stat *out);
void pd_proc_close(struct pd_proc *p);

int pd_proc_status(struct pd_proc *p, struct pd_status *out);
int pd_proc_rollup(struct pd_proc *p, struct pd_rollup *out);
int pd_proc_maps(struct pd_proc *p, struct pd_maps *out);
int pd_proc_cmdline(struct pd_proc *p, struct pd_strv *out);
/* A kernel thread or a zombie has an empty environment (0, out empty). */
int pd_proc_environ(struct pd_proc *p, struct pd_strv *out);
/* The process's name as dotnet-monitor gives it: the file name of the
 * executable its command line starts with (ProcessInfoImpl takes argv[0]
 * after its last '/'), so "peer-target-longname" where comm, cut by the
 * kernel at 15 bytes, says "peer-target-lon". argv[0]'s file name is used
 * only where it is the name the kernel knows (comm is cut and is its
 * start); everywhere else comm is the name: a process that rewrote its
 * command line ("php-fpm: pool www", "sshd: alice@pts/0", nginx's
 * "nginx: worker process") would otherwise be named by its title, and a
 * kernel thread or a zombie has no command line. Raw bytes appended to sb;
 * 0, -ESRCH or -ENOMEM. */
int pd_proc_cmd_name(struct pd_proc *p, struct strbuf *sb);
/* Whether a comm of this length may have been cut by the kernel: only then
 * does pd_proc_cmd_name() read the command line (comm is the name else). */
static inline bool pd_comm_may_be_cut(size_t comm_len)
{
	return comm_len == 15; /* the kernel's TASK_COMM_LEN - 1 */
}
/* readlink of /proc/PID/exe into sb (raw bytes; " (deleted)" kept). */
int pd_proc_exe(struct pd_proc *p, struct strbuf *sb);

/* Open file descriptors: fd number and readlink target (raw bytes,
 * "socket:[123]", "pipe:[..]", "/path"). Sorted by fd. */
struct pd_fd {
	int fd;
	char *target;
};
struct pd_fds {
	size_t n;
	struct pd_fd *v;
};
#define PD_FDS_INIT { 0, NULL }
int pd_proc_fds(struct pd_proc *p, struct pd_fds *out);
void pd_fds_release(struct pd_fds *f);

/* Threads: the stat of each task (comm = the thread's name), sorted by tid.
 * A task that exits while being listed is left out. */
struct pd_tasks {
	size_t n;
	struct pd_stat *v;
};
#define PD_TASKS_INIT { 0, NULL }
int pd_proc_tasks(struct pd_proc *p, struct pd_tasks *out);
/* One task's stat; -ESRCH when tid is not a thread of this process. */
int pd_proc_task(struct pd_proc *p, int tid, struct pd_stat *out);
void pd_tasks_release(struct pd_tasks *t);

/* What the kernel's own ptrace access check weighs of a task
 * (kernel/ptrace.c, __ptrace_may_access): its real, effective and saved
 * uids and gids, and whether its memory is dumpable. */
struct pd_creds {
	uid_t uid[3]; /* real, effective, saved */
	gid_t gid[3];
	bool dumpable;
};
/* Reads them from a status file relative to dirfd ("status",
 * "task/TID/status", or an absolute path with AT_FDCWD): the Uid: and Gid:
 * lines, and the owner of that very file, which the kernel makes the
 * effective ids for a dumpable process and root (of the process's user
 * namespace) for one that is not (fs/proc/base.c, task_dump_owner; the
 * /proc/PID directory itself is exempt). A root process (euid and egid 0)
 * thus reads as dumpable either way. -ESRCH when gone, -EINVAL when the
 * lines are missing, -errno. */
int pd_read_creds_at(int dirfd, const char *path, struct pd_creds *out);
/* One record of getdents64(2), which glibc 2.36 does not declare; the
 * /proc readers list directories with it (no DIR *, no allocation). */
struct pd_dirent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* The open descriptors of a process: the size of its fd directory (path
 * relative to dfd: "fd" under a /proc/PID dirfd, "/proc/PID/fd" with
 * AT_FDCWD), which Linux 6.2 and later give as the count (one system call);
 * before, the size is 0 and the entries are counted (getdents64, no
 * readlink). *st: what stat said. -errno when path cannot be stat'ed. */
int pd_count_fds_at(int dfd, const char *path, struct stat *st);
/* Is this process procdiag itself or one of its helpers (dump-helper,
 * stacks-helper: every child of the responder is one)? Their memory holds
 * other clients' requests, so the server never dumps, unwinds or kills
 * them. ppid: the process's parent, from the same read of its stat as its
 * pid. */
bool pd_proc_is_procdiag(int pid, int ppid);

/* The pids never to signal: pid 1 (and 0, negative: groups to kill(2)), the
 * calling process and its ancestors, read from /proc when asked (a cache
 * could miss a reparenting). A kill of a tree reads them once. (The
 * server's helpers are refused as targets before: pd_proc_is_procdiag.) */
#define PD_ANCESTORS_MAX 1024
struct pd_protected {
	int n;
	int pid[PD_ANCESTORS_MAX]; /* us, our parent, ... */
};
void pd_protected_read(struct pd_protected *pr);
bool pd_protected_has(const struct pd_protected *pr, int pid);
/* pd_protected_read() then pd_protected_has(). */
bool pd_proc_is_protected(int pid);

#endif
