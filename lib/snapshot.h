/* A snapshot of every process: the one scan of /proc that the list, the
 * parent/children links and kill share.
 *
 * pd_snapshot_get() implements single-flight sharing: if a scan is in
 * progress, the caller waits for it and shares its result; otherwise it
 * starts a new scan. So an answer is never older than the time one scan takes
 * (~2 ms for 260 processes), and N concurrent requests cost one scan.
 * Snapshots are reference counted and immutable once published. */
#ifndef PD_SNAPSHOT_H
#define PD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/procfs.h"

struct pd_proc_entry {
	int pid;
	int ppid;
	uid_t uid; /* owner of /proc/PID */
	char state;
	uint64_t starttime; /* ticks since boot */
	int64_t num_threads;
	int64_t rss_pages;
	uint64_t utime, stime;
	char comm[PD_COMM_MAX]; /* raw bytes, comm_len of them */
	size_t comm_len;
};

struct pd_snapshot {
	int64_t taken_ns;  /* CLOCK_REALTIME when the scan started */
	int64_t scan_ns;   /* how long the scan took */
	size_t n;
	struct pd_proc_entry *procs; /* sorted by pid */
};

/* A new snapshot owned by the caller (refcount 1). */
int pd_snapshot_scan(struct pd_snapshot **out);
/* An empty snapshot (refcount 1, n 0) with room for cap entries, for a
 * reader that scans /proc its own way (lib/top.c keeps fds): it fills
 * procs[0..n) in pid order and sets taken_ns and scan_ns. NULL: no memory. */
struct pd_snapshot *pd_snapshot_new(size_t cap);
/* The shared one, see above; release with pd_snapshot_unref(). */
int pd_snapshot_get(struct pd_snapshot **out);
/* Like pd_snapshot_get(), but the latest snapshot is answered without a
 * scan while it is at most max_age_ns old (counted from the start of its
 * scan); 0 is pd_snapshot_get(). Bounds the scanning a flood of requests
 * can cause, at the price of answers up to max_age_ns older. */
int pd_snapshot_get_within(int64_t max_age_ns, struct pd_snapshot **out);
void pd_snapshot_ref(struct pd_snapshot *s);
void pd_snapshot_unref(struct pd_snapshot *s);
/* Binary search by pid; NULL when absent. */
const struct pd_proc_entry *pd_snapshot_find(const struct pd_snapshot *s, int pid);

/* The one rule that chooses a process by name (`procdiag dump -n`,
 * dotnet-monitor's ?name=): e's name as the process lists give it (comm, or
 * the command line's program where comm may have been cut: pd_proc_cmd_name)
 * equals name without regard to case (dotnet-monitor's OrdinalIgnoreCase).
 * scratch is the caller's buffer (reset here). 1 (it is), 0 (it is not), or
 * -ENOMEM. */
struct strbuf;
int pd_entry_named(const struct pd_proc_entry *e, const char *name, struct strbuf *scratch);
/* The comparison of that rule, for a name already read. */
bool pd_name_matches(const char *have, size_t len, const char *want);
/* pd_entry_named() on e's name, appended to sb: 0 or -ENOMEM. */
int pd_entry_name(const struct pd_proc_entry *e, struct strbuf *sb);

#endif
