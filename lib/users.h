/* uid -> user name, cached (getpwuid_r is slow with NSS). Thread-safe. */
#ifndef PD_USERS_H
#define PD_USERS_H

#include <stddef.h>
#include <sys/types.h>

/* Writes the user name of uid into buf (NUL-terminated). When the uid has
 * no passwd entry, writes the number. Returns 0, or -ENOSPC if buf is small. */
int pd_user_name(uid_t uid, char *buf, size_t buflen);
/* name or decimal uid -> uid. 0 or -ENOENT. */
int pd_user_lookup(const char *name, uid_t *out);

#endif
