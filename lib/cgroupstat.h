/* cgroupstat: a process's cgroup, its memory against its limit, and memory
 * pressure (PSI), for the rule engine's `cgroup_memory_above` and
 * `pressure_above` triggers (docs/TRIGGERS.md).
 *
 * Two layers, like lib/procfs:
 *  - pure parsers over (buf, len): never touch the file system, bound every
 *    read by len (buf need not be NUL-terminated), return 0, -EINVAL (not
 *    what the kernel writes) or -ERANGE (a number or path too large), and
 *    leave out untouched on failure. fuzz/fuzz_cgroup.c feeds them.
 *  - thin readers: open the files relative to directory fds opened once
 *    (pd_cgroup_mounts_open reads /proc/self/mountinfo once; cgroupfs is
 *    wherever it is mounted, /sys/fs/cgroup is never assumed), read into
 *    the caller's buffers and never allocate, so the rule engine may call
 *    them every period for every process.
 *
 * Hierarchies: cgroup v2 ("0::/path"), v1 (the memory controller's line
 * and mount) and hybrid (v1 memory + v2 unified for PSI) all work. Memory
 * uses the hierarchy that holds the memory controller: v1 when a v1 memory
 * hierarchy is mounted and the process has a line for it, else v2.
 * Pressure of a cgroup exists only in v2 (memory.pressure); of the system
 * in /proc/pressure/memory. */
#ifndef PD_CGROUPSTAT_H
#define PD_CGROUPSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

/* Cgroup paths and mount points are kept in fixed arrays (no allocation);
 * a longer one is -ERANGE. */
#define PD_CG_PATH_MAX 1024

/* ---- where cgroupfs is mounted ------------------------------------------ */

/* One hierarchy: its mount point and the cgroup path that is the mount's
 * root ("/" normally; a subtree when a container got a bind mount). */
struct pd_cgroup_mount {
	bool found;
	char dir[PD_CG_PATH_MAX];  /* mount point, unescaped */
	char root[PD_CG_PATH_MAX]; /* the cgroup the mount point shows, unescaped */
};
struct pd_cgroup_mountinfo {
	struct pd_cgroup_mount v2;    /* fstype cgroup2 */
	struct pd_cgroup_mount v1mem; /* fstype cgroup with "memory" in its super options */
};
/* /proc/PID/mountinfo text. The first cgroup2 mount whose root is "/" wins,
 * else the first cgroup2 mount; likewise for the v1 memory hierarchy.
 * Finding neither is not an error (found stays false). */
int pd_cgroup_parse_mountinfo(const char *buf, size_t len, struct pd_cgroup_mountinfo *out);

/* ---- a process's cgroup ------------------------------------------------- */

/* Paths as /proc/PID/cgroup writes them: relative to the reader's cgroup
 * namespace, starting with '/'. */
struct pd_proc_cgroup {
	bool has_v2, has_v1mem;
	char v2[PD_CG_PATH_MAX];    /* the "0::" line */
	char v1mem[PD_CG_PATH_MAX]; /* the line whose controllers include "memory" */
};
/* /proc/PID/cgroup text: lines "ID:CONTROLLERS:PATH". Neither line being
 * there is not an error (has_* false); a malformed line is. */
int pd_cgroup_parse_proc(const char *buf, size_t len, struct pd_proc_cgroup *out);

/* ---- memory ------------------------------------------------------------- */

/* v1 writes "no limit" as the page counter's maximum in bytes
 * (0x7ffffffffffff000 with 4 KiB pages, another value with other page
 * sizes); every value at or above this one means no limit. */
#define PD_CG_V1_UNLIMITED ((uint64_t)1 << 62)

/* A limit file's text: v2 memory.max ("max\n" or bytes), v1
 * memory.limit_in_bytes (bytes; PD_CG_V1_UNLIMITED and above: none).
 * *limit is 0 for no limit. A usage file (memory.current,
 * memory.usage_in_bytes): one decimal number and '\n'. */
int pd_cgroup_parse_limit(const char *buf, size_t len, uint64_t *limit);
int pd_cgroup_parse_usage(const char *buf, size_t len, uint64_t *usage);

/* ---- pressure ------------------------------------------------------------- */

/* avg10 of the "some" and "full" lines in hundredths of a percent (the
 * kernel prints two decimals: "avg10=12.34" is 1234). */
struct pd_psi {
	bool has_some, has_full;
	uint32_t some_avg10, full_avg10;
	uint64_t some_total, full_total; /* microseconds stalled, since boot */
};
/* memory.pressure or /proc/pressure/memory: lines
 * "some avg10=A.BB avg60=A.BB avg300=A.BB total=N". The first "some" line
 * is required (a "full" line is optional: /proc/pressure/cpu had none
 * before Linux 5.13); other lines are ignored. */
int pd_psi_parse(const char *buf, size_t len, struct pd_psi *out);

/* ---- readers -------------------------------------------------------------- */

struct pd_cgroup_memory {
	int version;     /* 1 or 2: the hierarchy read */
	uint64_t limit;  /* bytes; 0: no limit on the cgroup nor any ancestor */
	uint64_t usage;  /* bytes charged to the cgroup that has the limit (or,
			    without one, to the process's own cgroup) */
	unsigned levels; /* how far up the limit was found: 0 the cgroup itself */
};

/* A reading of one cgroup kept for a moment: processes that share a
 * cgroup (a service's workers, every process of a container) are read once
 * per sampling pass, not once each. */
#define PD_CG_MEMO_N 8
struct pd_cgroup_memo {
	int kind; /* 0: empty, 1: memory, 2: pressure */
	int rc;
	int64_t at_ms; /* CLOCK_MONOTONIC */
	char path[PD_CG_PATH_MAX];
	union {
		struct pd_cgroup_memory mem;
		struct pd_psi psi;
	} v;
	char why[192];
};

/* What a process's readers need, opened once: the two hierarchies' mount
 * points as O_PATH directory fds (-1 when absent), the mountinfo that
 * found them, and the memo of the last readings (memo_ms: how long a
 * reading of a cgroup is reused, 50 ms from pd_cgroup_mounts_open, shorter
 * than any sampling period; 0: never). The readers write the memo: one
 * struct per thread. */
struct pd_cgroup_mounts {
	struct pd_cgroup_mountinfo mi;
	int v2fd, v1memfd;
	unsigned memo_ms;
	unsigned memo_next;
	struct pd_cgroup_memo memo[PD_CG_MEMO_N];
};
/* Reads /proc/self/mountinfo (the caller's mount namespace is the one the
 * paths of /proc/PID/cgroup are resolved in). 0, or -errno. Finding no
 * cgroupfs is not an error: the readers then say so. */
int pd_cgroup_mounts_open(struct pd_cgroup_mounts *m);
void pd_cgroup_mounts_close(struct pd_cgroup_mounts *m);

/* Every reader below: 0, or -errno with a sentence in why (when why is not
 * NULL) that a rule's state can show as is:
 *   -ESRCH       the process is gone
 *   -ENOENT      the file or cgroup is gone (or never was: e.g. the root)
 *   -EOPNOTSUPP  not available on this machine: no cgroup hierarchy with
 *                the memory controller, no cgroup v2 for a cgroup's
 *                pressure, no PSI in the kernel (no /proc/pressure, or
 *                booted with psi=0)
 *   -EXDEV       the process's cgroup is outside this cgroup namespace or
 *                this mount (its path has "..", or is not under the
 *                mount's root)
 *   -EINVAL / -ERANGE  a file's text was not what the kernel writes. */

/* /proc/PID/cgroup into out. scratch is the caller's buffer (reset, then
 * reused: no allocation once it has grown to the file's size). */
int pd_cgroup_read_proc(int pid, struct strbuf *scratch, struct pd_proc_cgroup *out, char *why,
			size_t whylen);

/* The memory of the process's cgroup: the nearest cgroup, walking up from
 * the process's own, with a limit (v2 memory.max other than "max"; v1
 * memory.limit_in_bytes below PD_CG_V1_UNLIMITED), and that cgroup's usage
 * (v2 memory.current, v1 memory.usage_in_bytes): the usage that meets the
 * limit when the OOM killer acts. */
int pd_cgroup_memory_read(struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
			  struct pd_cgroup_memory *out, char *why, size_t whylen);

/* memory.pressure of the process's v2 cgroup. */
int pd_psi_read_cgroup(struct pd_cgroup_mounts *m, const struct pd_proc_cgroup *cg,
		       struct pd_psi *out, char *why, size_t whylen);
/* /proc/pressure/memory. */
int pd_psi_read_system(struct pd_psi *out, char *why, size_t whylen);

#endif
