#include "config.h"

#include "lib/sysclock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/procfs.h"

#define NS_PER_SEC 1000000000LL
/* /proc/stat has a line per CPU and one long "intr" line; a few MiB cover
 * thousands of CPUs and interrupts. */
#define PROC_STAT_MAX (4u << 20)
/* The boot time moves when the wall clock is stepped (NTP's first sync
 * often comes after we start), so the cached value is only trusted for
 * this long. */
#define BOOT_TTL_NS (60 * NS_PER_SEC)

static pthread_once_t hz_once = PTHREAD_ONCE_INIT;
static long hz;

static void hz_init(void)
{
	hz = sysconf(_SC_CLK_TCK);
	/* Linux has reported 100 to user space on every architecture for
	 * decades; a failing sysconf must not become a division by zero. */
	if (hz <= 0)
		hz = 100;
}

uint64_t pd_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long pd_ticks_per_sec(void)
{
	pthread_once(&hz_once, hz_init);
	return hz;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec;
}

/* btime has one-second resolution. REALTIME - BOOTTIME is the same quantity
 * to the nanosecond (the kernel derives btime from it), so use that unless
 * it disagrees with btime, which would mean the clocks are not what we think
 * (e.g. a time namespace that only /proc/stat accounts for). */
static int compute_boot_ns(int64_t *out)
{
	struct strbuf sb = STRBUF_INIT;
	struct timespec r1, b, r2;
	int64_t btime, est;
	int r;

	r = pd_read_file_at(AT_FDCWD, "/proc/stat", &sb, PROC_STAT_MAX);
	if (r == 0)
		r = pd_parse_btime(sb.buf, sb.len, &btime);
	strbuf_release(&sb);
	if (r < 0)
		return r;
	if (btime > INT64_MAX / NS_PER_SEC - 2)
		return -ERANGE;
	if (clock_gettime(CLOCK_REALTIME, &r1) < 0 || clock_gettime(CLOCK_BOOTTIME, &b) < 0 ||
	    clock_gettime(CLOCK_REALTIME, &r2) < 0)
		return -errno;
	est = ts_ns(&r1) + (ts_ns(&r2) - ts_ns(&r1)) / 2 - ts_ns(&b);
	if (est >= (btime - 1) * NS_PER_SEC && est < (btime + 2) * NS_PER_SEC)
		*out = est;
	else
		*out = btime * NS_PER_SEC;
	return 0;
}

static pthread_mutex_t boot_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t boot_ns, boot_at; /* boot_at: CLOCK_MONOTONIC of the reading */
static bool boot_valid;

int pd_boot_time_ns(int64_t *out)
{
	struct timespec now;
	int64_t mono, v = 0;
	int r = 0;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return -errno;
	mono = ts_ns(&now);
	pthread_mutex_lock(&boot_lock);
	if (!boot_valid || mono - boot_at > BOOT_TTL_NS) {
		/* Errors are not cached: the next call tries again. */
		r = compute_boot_ns(&v);
		if (r == 0) {
			boot_ns = v;
			boot_at = mono;
			boot_valid = true;
		}
	}
	if (r == 0)
		*out = boot_ns;
	pthread_mutex_unlock(&boot_lock);
	return r;
}

/* ticks * 1e9 / hz without overflowing the intermediate product. */
static int ticks_ns(uint64_t ticks, int64_t *out)
{
	uint64_t h = (uint64_t)pd_ticks_per_sec();
	uint64_t sec = ticks / h, rem = ticks % h;

	if (sec > (uint64_t)(INT64_MAX / NS_PER_SEC) - 1)
		return -ERANGE;
	*out = (int64_t)sec * NS_PER_SEC + (int64_t)(rem * NS_PER_SEC / h);
	return 0;
}

int pd_start_time_ns(uint64_t starttime_ticks, int64_t *out)
{
	int64_t boot, since;
	int r;

	r = ticks_ns(starttime_ticks, &since);
	if (r < 0)
		return r;
	r = pd_boot_time_ns(&boot);
	if (r < 0)
		return r;
	if (boot > 0 && since > INT64_MAX - boot)
		return -ERANGE;
	*out = boot + since;
	return 0;
}

int64_t pd_ticks_to_ns(uint64_t ticks)
{
	int64_t ns;

	/* No error channel: saturate; only a corrupt tick count gets here. */
	return ticks_ns(ticks, &ns) < 0 ? INT64_MAX : ns;
}
