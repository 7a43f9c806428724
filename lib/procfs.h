/* Parsers for /proc text. Pure functions over a buffer: they never touch
 * the file system, so unit tests and fuzzers feed them hostile bytes.
 * All of them bound every read by len; buf need not be NUL-terminated.
 * Return 0, or -EINVAL when the text is not what the kernel writes, or
 * -ERANGE when a number does not fit; on failure out is untouched (maps
 * and lists: left empty). The kernel ends every line of its text files
 * with '\n': a last line without one is a short read, and -EINVAL (a cut
 * between lines cannot be seen). */
#ifndef PD_PROCFS_H
#define PD_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"

/* Iterates over the '\n'-terminated lines of kernel text: 1 with a line
 * (without its '\n'), 0 at the end, -EINVAL when the last line has no
 * '\n' (a cut read). Start with { buf, buf + len }. */
struct pd_lines {
	const char *p, *end;
};
int pd_lines_next(struct pd_lines *it, const char **line, size_t *n);

/* comm is at most 15 bytes from the kernel; a hostile or future kernel is
 * cut at PD_COMM_MAX - 1 bytes. comm holds raw bytes (may be non-UTF-8 and
 * may contain ") ", spaces, newlines); comm_len says how many. */
#define PD_COMM_MAX 64

/* /proc/PID/stat and /proc/PID/task/TID/stat. Times are in clock ticks.
 * A task reaped between the open's lookup and the kernel's print of the
 * line (fs/proc/array.c, do_task_stat: lock_task_sighand() fails once
 * release_task() cleared its sighand) reads as state 'X', ppid 0, and pgrp
 * and session -1, which is what they are left as then: such a line parses,
 * and the state says the process is gone. */
struct pd_stat {
	int pid;
	char comm[PD_COMM_MAX];
	size_t comm_len;
	char state;
	int ppid;
	int pgrp;    /* -1: reaped (above) */
	int session; /* -1: reaped */
	uint64_t flags;
	uint64_t utime;
	uint64_t stime;
	int64_t priority;
	int64_t nice;
	int64_t num_threads;
	uint64_t starttime;
	uint64_t vsize;  /* bytes */
	int64_t rss;     /* pages */
	int processor;
};
/* The comm is everything between the first '(' and the LAST ')' followed by
 * the state field, so names like "a) b (c" parse right (Kudu's regex did
 * not). Fields after processor are optional (older kernels). */
int pd_parse_stat(const char *buf, size_t len, struct pd_stat *out);

/* PF_KTHREAD in the stat flags (include/linux/sched.h): a kernel thread,
 * which has no memory map, no command line and ignores SIGKILL. */
#define PD_PF_KTHREAD 0x00200000u
static inline int pd_stat_is_kthread(const struct pd_stat *st)
{
	return (st->flags & PD_PF_KTHREAD) != 0;
}

/* /proc/PID/status. Memory values in bytes, -1 when the line is absent
 * (kernel threads have no Vm* lines); so are threads and the ctxt counts.
 * Name, State and PPid are required. */
#define PD_STATUS_GROUPS_MAX 64
struct pd_status {
	char name[PD_COMM_MAX]; /* unescaped: the kernel escapes '\n' and '\\' */
	size_t name_len;
	char state;
	int ppid;
	int64_t uid[4]; /* real, effective, saved, fs; -1 if absent */
	int64_t gid[4];
	/* Supplementary groups, the first PD_STATUS_GROUPS_MAX of them (a
	 * permission check that misses the rest only grants less). */
	uint32_t groups[PD_STATUS_GROUPS_MAX];
	size_t ngroups;
	int64_t vm_peak, vm_size, vm_lck, vm_hwm, vm_rss;
	int64_t rss_anon, rss_file, rss_shmem;
	int64_t vm_data, vm_stk, vm_exe, vm_lib, vm_pte, vm_swap;
	int64_t threads;
	int64_t voluntary_ctxt_switches, nonvoluntary_ctxt_switches;
	int64_t tracer_pid; /* who holds it under ptrace, 0: nobody */
};
int pd_parse_status(const char *buf, size_t len, struct pd_status *out);

/* /proc/PID/smaps_rollup, bytes, -1 when absent (empty text: all -1). */
struct pd_rollup {
	int64_t rss, pss, shared_clean, shared_dirty, private_clean, private_dirty;
	int64_t referenced, anonymous, swap, swap_pss, locked;
};
int pd_parse_smaps_rollup(const char *buf, size_t len, struct pd_rollup *out);

/* /proc/PID/maps. path is NULL for anonymous mappings, else a NUL-terminated
 * string owned by the pd_maps (pseudo paths like "[heap]" included; a
 * trailing " (deleted)" is removed and sets deleted). The path is as the
 * kernel wrote it: a '\n' in a file name stays escaped as "\012". */
struct pd_map {
	uint64_t start, end, offset;
	char perms[5]; /* "r-xp" */
	unsigned dev_major, dev_minor;
	uint64_t inode;
	const char *path;
	bool deleted;
};
struct pd_maps {
	size_t n;
	struct pd_map *v;
	char *strings; /* storage for the paths */
};
#define PD_MAPS_INIT { 0, NULL, NULL }
/* On failure out is left empty. Release with pd_maps_release(). */
int pd_parse_maps(const char *buf, size_t len, struct pd_maps *out);
void pd_maps_release(struct pd_maps *m);

/* NUL-separated lists: cmdline, environ. A missing final NUL still ends the
 * last item. Items keep their raw bytes; v[i] is NUL-terminated and len[i]
 * is its length. */
struct pd_strv {
	size_t n;
	char **v;
	size_t *len;
	char *buf;
};
#define PD_STRV_INIT { 0, NULL, NULL, NULL }
int pd_parse_nulsep(const char *buf, size_t len, struct pd_strv *out);
void pd_strv_release(struct pd_strv *sv);

/* /proc/stat's "btime" line: boot time in seconds since the epoch. */
int pd_parse_btime(const char *buf, size_t len, int64_t *out);

/* Reads a whole file relative to dirfd (AT_FDCWD for absolute paths) into
 * sb (appended), at most max bytes. 0 or -errno (-ENOENT/-ESRCH when the
 * process is gone, -EACCES when not allowed, -EFBIG when larger than max).
 * On failure sb is as it was: nothing of a partial read is appended. */
int pd_read_file_at(int dirfd, const char *path, struct strbuf *sb, size_t max);

#endif
