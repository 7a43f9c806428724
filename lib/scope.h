/* Which processes the responder may show and act on. A process is in scope
 * when the owner of its /proc/PID directory is one of the scope's uids (the
 * kernel makes that the effective uid; the files inside turn root's for a
 * non-dumpable process, the directory does not). Out-of-scope processes
 * must look exactly like nonexistent ones. Acting on one (a dump, stacks, a
 * kill) is judged again, just before, by pd_scope_may_act() below. */
#ifndef PD_SCOPE_H
#define PD_SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/strbuf.h"

struct pd_scope {
	bool all;
	size_t n;
	uid_t *uids; /* owned */
};
#define PD_SCOPE_INIT { false, 0, NULL }

/* Default: only getuid(). 0 or -ENOMEM. */
int pd_scope_init_self(struct pd_scope *s);
/* Parses "self", "all", or a comma-separated list of user names / uids
 * ("www-data,1000"). 0, -EINVAL (unknown user or bad syntax), -ENOMEM. */
int pd_scope_parse(struct pd_scope *s, const char *spec);
void pd_scope_release(struct pd_scope *s);
bool pd_scope_has(const struct pd_scope *s, uid_t uid);
/* A record about a process that may be gone (an operation, a store entry):
 * in scope when its recorded uid (the owner of /proc/PID when it was made)
 * is. Scope "all" passes every record, one without a uid (known false: a
 * record older than the uid) too; any other scope passes no such record.
 * s NULL (a caller that judges nothing, as the CLI) passes everything. */
bool pd_scope_has_recorded(const struct pd_scope *s, bool known, long long uid);

/* The scope as the helpers are told it (lib/dumprun.c, lib/stacksrun.c):
 * "all", or the uids in decimal, comma-separated ("65534,33"). Appended to
 * sb; 0 or -ENOMEM. The parser takes that text only (no user names: a
 * helper never reads the passwd file or the configuration); 0, -EINVAL,
 * -ENOMEM. */
int pd_scope_format(const struct pd_scope *s, struct strbuf *sb);
int pd_scope_parse_ids(struct pd_scope *s, const char *spec);

/* May a key of scope s act on (signal, stop, read) the process or thread
 * whose status file is path under dirfd ("/proc/PID/status" with
 * AT_FDCWD, "task/TID/status" under /proc/PID), now? The one check the
 * kill path and the freeze both make, modelled on the kernel's own
 * (kernel/ptrace.c, __ptrace_may_access), with the scope's uids in the
 * caller's place:
 *   - real, effective and saved uid are one uid, and it is in the scope;
 *   - real, effective and saved gid are one gid (the scope names users,
 *     not groups: a process holding a group through a setgid exec is the
 *     kernel's "gids differ" case);
 *   - its memory is dumpable (lib/proc.h, pd_read_creds_at): an exec of a
 *     setuid or setgid program, or a change of credentials, clears that.
 * Scope "all" stands for CAP_SYS_PTRACE and passes every process, as the
 * kernel lets a holder of it past both rules; s NULL (the CLI: the kernel
 * judges) does not even read. Returns 0; -EACCES when its effective uid
 * (the owner of its /proc/PID, what decides whether the key sees it at
 * all) is not in the scope; -EPERM when it is but the rules above refuse
 * (the key sees the process and may not read it); -ESRCH (gone), -errno. */
int pd_scope_may_act(const struct pd_scope *s, int dirfd, const char *path);

#endif
