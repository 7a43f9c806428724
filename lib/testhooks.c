/* The test build's hooks (lib/testhooks.h). Compiled only into
 * tests/procdiag-hooked (Makefile.am), never into procdiag. */
#include "config.h"

#include "lib/testhooks.h"

#ifndef PD_TEST_HOOKS
#error "lib/testhooks.c belongs to the test build only (PD_TEST_HOOKS)"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/numparse.h"
#include "lib/memcopy.h"

static uint64_t env_u64(const char *name, uint64_t max, uint64_t dflt)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s || parse_u64(s, strlen(s), max, &v) < 0)
		return dflt;
	return v;
}

void pd_hook_frozen(enum pd_hook_point where)
{
	const char *fifo = where == PD_HOOK_DUMP ? getenv("PD_TEST_FROZEN_WAIT") : NULL;
	uint64_t ms = env_u64(where == PD_HOOK_DUMP ? "PD_TEST_FROZEN_SLEEP_MS"
						    : "PD_TEST_STACKS_FROZEN_SLEEP_MS",
			      600000, 0);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	if (fifo) {
		int fd = open(fifo, O_RDONLY | O_CLOEXEC);
		char buf[64];

		if (fd < 0)
			return;
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));

			if (n == 0 || (n < 0 && errno != EINTR))
				break;
		}
		close(fd);
		return;
	}
	while (ms && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void pd_hook_cloned(volatile int *cancel)
{
	uint64_t ms = env_u64("PD_TEST_CLONED_SLEEP_MS", 600000, 0);

	for (; ms && !(cancel && *cancel); ms -= ms < 10 ? ms : 10)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
}

uint64_t pd_hook_mem_budget(uint64_t budget)
{
	return budget ? budget : env_u64("PD_TEST_MEM_BUDGET", UINT64_MAX, 0);
}

unsigned pd_hook_freeze_rounds(unsigned max)
{
	return (unsigned)env_u64("PD_TEST_FREEZE_ROUNDS", max, max);
}

int pd_hook_zero_method(int m)
{
	const char *s = getenv("PD_TEST_ZERO_PAGES");

	if (s && !strcmp(s, "move_pages"))
		return PD_ZERO_MOVE_PAGES;
	if (s && !strcmp(s, "none"))
		return PD_ZERO_NONE;
	return m;
}

void pd_hook_compress_hold(int (*stop)(void *), void *arg)
{
	const char *path = getenv("PD_TEST_COMPRESS_HOLD");
	char held[4096];
	int fd;

	if (!path || access(path, F_OK) < 0)
		return;
	snprintf(held, sizeof(held), "%s.held", path);
	fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	while (access(path, F_OK) == 0 && !(stop && stop(arg)))
		nanosleep(&(struct timespec){0, 10000000}, NULL);
}
