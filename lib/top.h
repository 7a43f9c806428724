/* The process table (the browser's live list, GET /api/processes?view=table):
 * per process the few figures `top` shows, read cheaply enough to be polled
 * every two seconds by any number of open pages.
 *
 * Readings. The table scans /proc itself (not lib/snapshot.h's shared scan:
 * it reads its own way, below) into a reading, immutable once made and
 * shared by reference. A poll that finds the last reading younger than
 * max(PD_TOP_MIN_GAP_NS, list_max_age_ms) answers from it; otherwise it
 * scans, one scan at a time (whoever waits for a scan then finds it young
 * enough: single flight). So N pages polling every 2 s cost at most one
 * scan per 250 ms between them, and in practice one per poll interval.
 * CPU % compares the last reading with the one before it (at least that
 * age apart); no per-request state is kept.
 *
 * What a scan reads, in one pass over the pids /proc lists (getdents64 on
 * a kept /proc fd): per process a pread of /proc/PID/stat and one fstatat
 * of "fd" under /proc/PID, whose owner is the row's uid (read afresh each
 * reading: the lookup revalidates it; owned as /proc/PID/stat is, the
 * list's rule, so scope is judged exactly as the list judges it) and whose
 * size is the count of open descriptors (Linux >= 6.2; before, the entries
 * are counted). /proc/PID (O_PATH) and its stat stay open from reading to
 * reading, keyed by pid and start time, so that pass walks no path from
 * /proc: a kept stat fd reads its own task afresh and fails (ESRCH) once
 * that task is gone, so a reused pid never reads through it; both are
 * closed then, when the process is no longer listed, and when its owner
 * changes. At most PD_TOP_KEEP_MAX processes, and an eighth of
 * RLIMIT_NOFILE, are kept (the responder raises its soft limit at start,
 * cli/serve.c); past that, processes are opened by name each reading. The
 * command line (for the filter) is read once per process run and kept.
 * Memory figures come from stat's rss. Nothing heavy (smaps, maps,
 * environ) is read. No allocation per row: a reading is a few arrays. */
#ifndef PD_TOP_H
#define PD_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/proc.h"
#include "lib/snapshot.h"

/* A poll that finds the last reading younger than this (or than
 * list_max_age_ms, if longer) answers from it without scanning. */
#define PD_TOP_MIN_GAP_NS (250 * 1000000LL)
/* The command line kept for a process: at most this many bytes. */
#define PD_TOP_CMD_MAX 1024

/* At most this many processes have their fds kept between readings (two
 * each), and at most an eighth of RLIMIT_NOFILE; past that, processes are
 * opened by name each reading, as correct and slower. */
#define PD_TOP_KEEP_MAX 4096
/* How long the memory limit of procdiag's cgroup is trusted. */
#define PD_TOP_LIMIT_RECHECK_NS (10 * 1000000000LL)

struct pd_top_reading;
struct pd_top_row {
	const struct pd_proc_entry *e; /* in cur */
	double cpu;	   /* % of one core over the interval; < 0: unknown (no
			      earlier reading of this process) */
	int64_t rss;	   /* resident bytes (stat's rss) */
	int64_t fds;	   /* open descriptors; -1 when not readable */
	int64_t uptime_ns; /* since the process started, at the reading */
	const char *cmd;   /* arguments joined by spaces (at most PD_TOP_CMD_MAX
			      bytes); "" when none (a kernel thread, a zombie) or
			      unreadable */
	size_t cmd_len;	   /* (cmd lives in the reading: valid until
			      pd_top_release) */
};

struct pd_top {
	struct pd_snapshot *cur, *prev; /* prev: NULL at the first reading */
	int64_t interval_ns;		/* cur - prev; 0 without prev */
	uint64_t seq;			/* which reading cur is (1, 2, ...): two
					   answers of the same seq read the same */
	long ncpu;			/* online CPUs */
	uint64_t mem_total;		/* MemTotal (sysinfo) */
	uint64_t mem_limit;		/* procdiag's cgroup's memory limit, 0: none */
	size_t n;
	struct pd_top_row *rows; /* in cur's (pid) order */
	struct pd_top_reading *cur_r, *prev_r; /* private: what cur and prev belong to */
};
#define PD_TOP_INIT { 0 }

/* The rows of the last reading's entries keep(cur, e, arg) says yes to; a
 * new reading first when the last is max(max_age_ns, PD_TOP_MIN_GAP_NS)
 * old or older. 0 or -errno (-ENOMEM, the scan's error). */
int pd_top_read(int64_t max_age_ns,
		bool (*keep)(const struct pd_snapshot *snap, const struct pd_proc_entry *e, void *arg),
		void *arg, struct pd_top *out);
void pd_top_release(struct pd_top *t);

/* Per-thread CPU % of a process someone is watching (its page is open):
 * the responder keeps the last reading of the threads' CPU times of at
 * most PD_TOP_WATCHED processes (the least recently asked for is
 * forgotten; no other process is ever sampled). cpu[i] (tasks->n of them)
 * becomes the % of one core tasks->v[i] used since the last reading at
 * least PD_TOP_MIN_GAP_NS earlier (a closer call answers that last
 * reading's figures again), or -1 when unknown (the first reading, a new
 * thread). *interval_ns: the interval measured, 0 when none. 0 or -ENOMEM. */
#define PD_TOP_WATCHED 8
int pd_top_threads_cpu(int pid, uint64_t starttime, const struct pd_tasks *tasks, double *cpu,
		       int64_t *interval_ns);

/* The history of a watched process: each reading of pd_top_threads_cpu()
 * that measured an interval also records the process's CPU % (st: its
 * stat read with the tasks, all threads that ever ran), resident bytes,
 * threads and open descriptors, in a ring of the last PD_TOP_HISTORY
 * readings (at 2 s a poll: 4 minutes). pd_top_history() copies them out,
 * oldest first: how many (0 for a process nobody watches). */
#define PD_TOP_HISTORY 120
struct pd_top_point {
	int64_t t_ms; /* CLOCK_REALTIME, milliseconds */
	double cpu;   /* % of one core since the reading before */
	int64_t rss;  /* bytes */
	int64_t threads, fds; /* fds -1: not readable */
};
void pd_top_record(int pid, const struct pd_stat *st, size_t ntasks);
size_t pd_top_history(int pid, uint64_t starttime, struct pd_top_point *out, size_t max);

/* The number of open descriptors of pid, or -errno. */
int pd_count_fds(int pid);

#endif
