/* Kill a process and all its descendants.
 *
 * From one snapshot of parent links, the tree under pid is ordered leaves
 * first. Each member is opened as a pidfd, its start time re-read from
 * /proc and compared with the snapshot's (a reused pid is never signalled),
 * then sent SIGKILL through the pidfd. Descendants whose owner is outside the
 * scope, and protected pids (lib/proc.h), are never signalled. The call then
 * waits (up to wait_ms) for every signalled process to exit. */
#ifndef PD_KILLTREE_H
#define PD_KILLTREE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/scope.h"
#include "lib/snapshot.h"

struct pd_kill_result {
	size_t nsignalled;
	size_t nalive;  /* signalled (or not signallable) but still running */
	int *alive;     /* owned; pids left alive */
	size_t nskipped;
	int *skipped;   /* owned; out-of-scope or protected descendants, not signalled */
};
#define PD_KILL_RESULT_INIT { 0, 0, NULL, 0, NULL }

/* starttime: the target's start time as the caller saw it (0: take the
 * snapshot's). Returns 0 when the whole tree is gone (res may still list
 * skipped pids), -ESRCH if the target itself is gone or reused, -EPERM if the
 * target is protected, -EBUSY when some pids are left alive (res->alive),
 * other -errno (-ENOSYS without pidfd support: Linux < 5.3, or valgrind).
 * scope NULL means no scope restriction (the kernel's permission checks
 * still apply). On -EBUSY and 0, release res; on other errors it is empty. */
int pd_kill_tree(const struct pd_snapshot *snap, int pid, uint64_t starttime,
		 const struct pd_scope *scope, int wait_ms, struct pd_kill_result *res);
void pd_kill_result_release(struct pd_kill_result *res);

#endif
