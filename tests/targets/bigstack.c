/* bigstack: threads whose stacks reach deep, for the spool bound tests.
 *
 *   bigstack N MB
 *
 * Starts N threads (N <= 64), each of which moves its stack pointer MB MiB
 * down (alloca, one byte touched) and pauses: a mini dump, which holds
 * each thread's stack from its stack pointer up, is then about N * MB MiB
 * while the process stays small. Prints "ready PID" once every thread
 * stands there, then pauses until killed. Exit status 2: bad arguments. */
#include <alloca.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static size_t depth;
static pthread_barrier_t ready;

static void *deep(void *arg)
{
	volatile char *p = alloca(depth);

	(void)arg;
	p[0] = 1;
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_attr_t attr;
	long n, mb;

	if (argc != 3 || (n = atol(argv[1])) < 1 || n > 64 || (mb = atol(argv[2])) < 1 ||
	    mb > 256) {
		fprintf(stderr, "usage: bigstack N MB\n");
		return 2;
	}
	depth = (size_t)mb << 20;
	pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, depth + (1u << 20));
	for (long i = 0; i < n; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, deep, NULL))
			return 1;
	}
	pthread_barrier_wait(&ready);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
