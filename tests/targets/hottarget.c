/* hottarget: CPU-bound threads in known functions, for the profile tests
 * and bench/profile.sh.
 *
 *   hottarget pair NAME_A NAME_B  two threads named NAME_A and NAME_B (cut
 *                                 to 15 bytes, the kernel's limit), the
 *                                 first spinning in hot_alpha_spin(), the
 *                                 second in hot_beta_spin() (called through
 *                                 hot_beta_outer()); main sleeps
 *   hottarget bench N             N threads spinning in hot_alpha_spin():
 *                                 SIGUSR1 makes the main thread print
 *                                 "work TOTAL" (the iterations all threads
 *                                 made so far)
 *
 * Each mode prints "ready PID TID..." once every thread runs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_THREADS 1024

struct slot {
	_Atomic uint64_t work;
	volatile uint64_t sink; /* keeps mix()'s result alive */
	pid_t tid;
	const char *name;
	char pad[64];
};

static struct slot slots[MAX_THREADS];
static pthread_barrier_t ready;

/* A unit of work the compiler cannot drop. */
__attribute__((noinline)) static uint64_t mix(uint64_t x)
{
	for (int i = 0; i < 1000; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return x;
}

__attribute__((noinline)) void hot_alpha_spin(struct slot *s)
{
	uint64_t x = (uint64_t)s->tid;

	for (;;) {
		x = mix(x);
		s->sink = x;
		atomic_fetch_add_explicit(&s->work, 1, memory_order_relaxed);
	}
}

__attribute__((noinline)) void hot_beta_spin(struct slot *s)
{
	uint64_t x = (uint64_t)s->tid * 7;

	for (;;) {
		x = mix(x);
		s->sink = x;
		atomic_fetch_add_explicit(&s->work, 1, memory_order_relaxed);
	}
}

__attribute__((noinline)) void hot_beta_outer(struct slot *s)
{
	hot_beta_spin(s);
}

static void *worker(void *arg)
{
	struct slot *s = arg;

	s->tid = (pid_t)syscall(SYS_gettid);
	if (s->name)
		prctl(PR_SET_NAME, s->name);
	pthread_barrier_wait(&ready);
	if (s == &slots[1] && slots[1].name)
		hot_beta_outer(s);
	else
		hot_alpha_spin(s);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int n;

	if (argc == 4 && !strcmp(argv[1], "pair")) {
		n = 2;
		slots[0].name = argv[2];
		slots[1].name = argv[3];
	} else if (argc == 3 && !strcmp(argv[1], "bench")) {
		n = atoi(argv[2]);
		if (n < 1 || n > MAX_THREADS)
			return 2;
	} else {
		fprintf(stderr, "usage: hottarget pair NAME_A NAME_B | hottarget bench N\n");
		return 2;
	}
	sigset_t usr1;

	/* SIGUSR1 blocked in every thread (the workers inherit the mask) and
	 * taken by the main thread alone, with sigwait. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++)
		if (pthread_create(&t, NULL, worker, &slots[i]) != 0)
			return 1;
	pthread_barrier_wait(&ready);
	printf("ready %d", (int)getpid());
	for (int i = 0; i < n; i++)
		printf(" %d", (int)slots[i].tid);
	printf("\n");
	fflush(stdout);
	for (;;) {
		uint64_t sum = 0;
		int sig;

		if (sigwait(&usr1, &sig) != 0)
			continue;
		for (int i = 0; i < n; i++)
			sum += atomic_load_explicit(&slots[i].work, memory_order_relaxed);
		printf("work %llu\n", (unsigned long long)sum);
		fflush(stdout);
	}
}
