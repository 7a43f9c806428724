/* Clock facts needed to turn /proc tick counts into times. */
#ifndef PD_SYSCLOCK_H
#define PD_SYSCLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t pd_mono_ns(void);
/* sysconf(_SC_CLK_TCK), cached. */
long pd_ticks_per_sec(void);
/* Boot time in nanoseconds since the epoch (btime of /proc/stat, refined
 * with CLOCK_BOOTTIME so it has sub-second precision), cached.
 * 0 or -errno. */
int pd_boot_time_ns(int64_t *out);
/* A process start time (ticks since boot, field 22 of stat) as nanoseconds
 * since the epoch. */
int pd_start_time_ns(uint64_t starttime_ticks, int64_t *out);
/* Ticks to nanoseconds (for CPU times). */
int64_t pd_ticks_to_ns(uint64_t ticks);

#endif
