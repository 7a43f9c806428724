/* Files read on a target's behalf, as its owner could read them.
 *
 * procdiag holds CAP_DAC_READ_SEARCH: every open it makes passes the
 * kernel's file permission checks. A file it picks by a name the target
 * controls (a debug file beside the binary, a .gnu_debuglink, a library
 * beside libcoreclr.so) must not let a process owner read what they could
 * not read themselves. procdiag cannot drop to the owner's ids (it has no
 * CAP_SETUID), so it walks the path itself and checks as the kernel would:
 *   - the path is resolved inside a root directory (the target's
 *     /proc/PID/root, or "/"): symlinks are followed as their text says,
 *     an absolute one from that root, ".." never climbs above it, no
 *     /proc magic link is ever crossed (its text is resolved instead);
 *   - every directory on the way must be searchable, and the file itself
 *     readable, by the owner: mode bits against the owner's uid, gid and
 *     supplementary groups, for both its real and its filesystem ids; a
 *     file or directory with a POSIX ACL is refused (not evaluated);
 *   - the file must be a regular file, and it is opened only once that
 *     is known (no device or FIFO is ever opened).
 * See docs/OPERATIONS.md, "Files read on a target's behalf". */
#ifndef PD_OWNERFILE_H
#define PD_OWNERFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "lib/proc.h"

struct pd_owner {
	uint32_t uid[2], gid[2]; /* real and filesystem ids */
	uint32_t groups[PD_STATUS_GROUPS_MAX];
	size_t ngroups;
};

/* The owner's credentials from /proc/PID/status. 0 or -errno. */
int pd_owner_of(struct pd_proc *p, struct pd_owner *o);

/* Opens the regular file at path (absolute or not, taken from rootfd)
 * read-only (O_CLOEXEC, O_NONBLOCK), resolved as above; *st (may be NULL)
 * gets its fstat. o NULL: no permission check, only the resolution inside
 * rootfd (for a file the process has mapped, checked by inode). Returns
 * the fd or -errno: -EACCES (the owner could not), -ENOENT, -ENOTDIR,
 * -ELOOP (more than 40 links), -ENAMETOOLONG, -EISDIR, -EINVAL (not a
 * regular file). */
int pd_owner_open(const struct pd_owner *o, int rootfd, const char *path, struct stat *st);

#endif
