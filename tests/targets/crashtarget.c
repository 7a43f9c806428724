/* crashtarget: a process that dies of a fatal signal when told to, for the
 * crash handler's tests (tests/e2e/test_crash.py).
 *
 *   crashtarget segv|abrt [mib N] [threads N] [comm HEX]
 *
 * It fills N MiB of heap with bytes that are not zero (random, so they do
 * not compress away) and starts N extra threads parked in park_thread(),
 * prints "ready PID", then reads one line from stdin and crashes: "segv"
 * writes through a null pointer in crash_by_segv(), the frame gdb must
 * show on top; "abrt" calls abort() from crash_by_abort(). RLIMIT_CORE is
 * raised to its hard limit first (a pipe handler gets the core whatever
 * it is, but a limit of 1 would stop it). "comm HEX" sets its comm to the
 * bytes HEX spells (PR_SET_NAME: any byte but NUL, a newline included). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

char *pd_heap;

static void *park_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((noinline)) void crash_by_segv(volatile int *where)
{
	*where = 42;
}

__attribute__((noinline)) void crash_by_abort(void)
{
	abort();
}

int main(int argc, char **argv)
{
	unsigned long mib = 0, threads = 0;
	struct rlimit rl;
	char line[64];

	if (argc < 2 || (strcmp(argv[1], "segv") && strcmp(argv[1], "abrt"))) {
		fprintf(stderr, "usage: crashtarget segv|abrt [mib N] [threads N]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "mib"))
			mib = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "threads"))
			threads = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "comm")) {
			char name[16] = "";
			const char *h = argv[i + 1];

			for (size_t j = 0; j < 15 && h[2 * j] && h[2 * j + 1]; j++) {
				char two[3] = {h[2 * j], h[2 * j + 1], 0};

				name[j] = (char)strtoul(two, NULL, 16);
			}
			prctl(PR_SET_NAME, name);
		}
	}
	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_CORE, &rl);
	}
	if (mib) {
		size_t n = mib << 20;

		pd_heap = malloc(n);
		if (!pd_heap)
			return 1;
		srandom((unsigned)getpid());
		for (size_t i = 0; i < n; i += sizeof(long))
			*(long *)(pd_heap + i) = random() | 1;
	}
	for (unsigned long i = 0; i < threads && i < 8; i++) {
		pthread_t t;

		pthread_create(&t, NULL, park_thread, NULL);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 3;
	if (!strcmp(argv[1], "segv"))
		crash_by_segv(NULL);
	else
		crash_by_abort();
	return 4;
}
