/* A stable identity for one run of a process: the pid alone is reused, the
 * pid and start time are unique only until the next boot. dotnet-monitor
 * calls this the process's `uid` (a GUID); ours is derived, not random, so
 * every procdiag on the host gives the same process the same uid:
 *
 *   uid = a version-8 UUID (RFC 9562) whose 122 free bits are a hash of
 *         /proc/sys/kernel/random/boot_id, the pid and the start time
 *
 * It changes with each new process and each boot, and never names a process
 * it was not derived from (up to hash collisions of 122 bits). */
#ifndef PD_INSTANCE_H
#define PD_INSTANCE_H

#include <stdbool.h>
#include <stdint.h>

#define PD_UID_LEN 36 /* 8-4-4-4-12 hex digits and dashes */

/* Writes the uid and a NUL into out (PD_UID_LEN + 1 bytes). */
void pd_instance_uid(int pid, uint64_t starttime, char *out);
/* Is s shaped like a uid (36 characters, dashes at 8, 13, 18, 23, hex
 * elsewhere, either case)? Says nothing of whether a process has it. */
bool pd_instance_uid_valid(const char *s);

#endif
