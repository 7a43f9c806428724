/* Which processes the responder may show and act on. A process is in scope
 * when the owner of its /proc/PID directory is one of the scope's uids (the
 * kernel makes that the effective uid, or root for non-dumpable processes).
 * Out-of-scope processes must look exactly like nonexistent ones. */
#ifndef PD_SCOPE_H
#define PD_SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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

#endif
