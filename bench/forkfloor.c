/* The physical floor of a copy-on-write clone: how long a bare fork() of a
 * process with the same memory takes (the kernel copies its page tables
 * and write-protects every page; bench/dump.sh compares the target's stop
 * under procdiag's clone dump with it).
 *
 *   forkfloor THREADS HEAP_MIB [RUNS]
 *
 * Builds the same process as bench/hbtarget (THREADS parked threads,
 * HEAP_MIB of heap from malloc, written the same way, so that it is backed
 * the same, huge pages or not), then forks RUNS times (default 9): the
 * child _exits at once, the parent times fork() itself. Prints
 * "fork_us BEST MEDIAN". */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *parked(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 32;
	long heap_mib = argc > 2 ? atol(argv[2]) : 64;
	long runs = argc > 3 ? atol(argv[3]) : 9;
	size_t len = (size_t)heap_mib << 20;
	unsigned char *heap = len ? malloc(len) : NULL;
	int64_t *t;

	if (threads < 0 || heap_mib < 0 || runs < 1 || runs > 1000 || (len && !heap)) {
		fprintf(stderr, "usage: forkfloor THREADS HEAP_MIB [RUNS]\n");
		return 2;
	}
	t = calloc((size_t)runs, sizeof(*t));
	if (!t)
		return 1;
	for (size_t i = 0; i < len; i += 64)
		heap[i] = (unsigned char)(i / 4096 * 7 + 1);
	for (long i = 0; i < threads; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, parked, NULL))
			return 1;
	}
	for (long r = 0; r < runs; r++) {
		int64_t t0 = now_us();
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		t[r] = now_us() - t0;
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			return 1;
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp);
	printf("fork_us %lld %lld\n", (long long)t[0], (long long)t[runs / 2]);
	return 0;
}
