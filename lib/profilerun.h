/* The server's side of a profile (lib/profile.h): each profile runs in its
 * own helper, `procdiag profile-helper --fd 3` exec'd from /proc/self/exe
 * (lib/helper.h), so that a profile of up to a minute holds neither the
 * stacks helper nor a ptrace stop in the server, and a helper that dies
 * (a crash in the unwinder) costs that one answer only.
 *
 * Limits: one profile of a process at a time (-EBUSY for a second one),
 * PD_PROFILES_AT_ONCE profiles in the whole server (-EUSERS past that).
 * The helper gets seconds + 30 s to answer, then is killed; it dies with
 * the thread that started it (PR_SET_PDEATHSIG), and a target it profiles
 * is never stopped by perf (ptrace: the kernel detaches it).
 *
 * Protocol (newline-delimited JSON on the socket, one request, one answer):
 *   -> {"pid":N,"start_time":T,"seconds":N,"hz":N,"method":"perf"|"ptrace",
 *       "scope":"all"|"UID,..."}
 *   <- {"ok":true,"profile":{...lib/profile.h's document...}}
 *   <- {"ok":false,"error":CODE,"detail":"text"}    (lib/helper.h's words) */
#ifndef PD_PROFILERUN_H
#define PD_PROFILERUN_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/profile.h"

#define PD_PROFILES_AT_ONCE 2

/* helper: the procdiag binary (NULL: /proc/self/exe). Errors: lib/profile.h's,
 * -EBUSY, -EUSERS as above, -EIO the helper failed (detail in err). */
int pd_profilerun(const char *helper, pid_t pid, uint64_t start_time,
		  const struct pd_profile_opts *o, json_t **out, char *err, size_t errlen);

/* The helper's main: one request from fd, its answer, then exit. */
int pd_profile_helper_serve(int fd);

#endif
