/* stacktarget: threads parked in distinctly named functions, for the stacks
 * tests and bench/stacks.sh. Built with -g -O0 (frames with source lines);
 * libstkpark.so beside it is stripped (frames without).
 *
 *   stacktarget park     main in main_parked_here(); threads "pd-alpha"
 *                        (alpha_outer -> alpha_parked_here, in pause()),
 *                        "pd-beta" (beta_parked_here -> nodebug_outer ->
 *                        nodebug_parked_here in the stripped library),
 *                        "pd-gamma" (gamma_parked_here, in read() of a pipe)
 *   stacktarget churn    main parked; one thread creates and joins
 *                        short-lived threads without pause
 *   stacktarget bench N  N threads in bench_parked_here() plus a heartbeat
 *                        thread that wakes every millisecond and records the
 *                        longest gap between two wake-ups: SIGUSR1 makes the
 *                        main thread print "gap_us N" (the longest gap since
 *                        the last report) and start over
 *
 * Each mode prints "ready PID TID..." (the tids of the threads it made) once
 * every thread is parked. */
/* A distribution build (dpkg-buildpackage) adds -O2 -D_FORTIFY_SOURCE=2:
 * read() would become an inline wrapper from <bits/unistd.h>, and the frame
 * of gamma_parked_here would report that header's line. The target must
 * look the same whatever flags build it. */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_barrier_t ready;
static pid_t tids[64];
static void (*nodebug_parked)(void);
static void (*nodebug_outer)(void (*)(void));
static int gamma_pipe[2];

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

__attribute__((noinline)) void alpha_parked_here(void)
{
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
}

__attribute__((noinline)) void alpha_outer(void)
{
	alpha_parked_here();
	__asm__ volatile("" ::: "memory");
}

static void *alpha_main(void *arg)
{
	tids[(intptr_t)arg] = gettid_();
	alpha_outer();
	return NULL;
}

__attribute__((noinline)) void beta_then(void)
{
	pthread_barrier_wait(&ready);
	nodebug_parked();
}

__attribute__((noinline)) void beta_parked_here(void)
{
	nodebug_outer(beta_then);
	__asm__ volatile("" ::: "memory");
}

static void *beta_main(void *arg)
{
	tids[(intptr_t)arg] = gettid_();
	beta_parked_here();
	return NULL;
}

__attribute__((noinline)) void gamma_parked_here(void)
{
	char c;

	pthread_barrier_wait(&ready);
	for (;;)
		if (read(gamma_pipe[0], &c, 1) == 0)
			pause();
}

static void *gamma_main(void *arg)
{
	tids[(intptr_t)arg] = gettid_();
	gamma_parked_here();
	return NULL;
}

__attribute__((noinline)) void main_parked_here(void)
{
	for (;;)
		pause();
}

static void *short_lived(void *arg)
{
	struct timespec ts = { 0, 100000 };

	nanosleep(&ts, NULL);
	return arg;
}

static void *churn_main(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;) {
		pthread_t t[4];

		for (int i = 0; i < 4; i++)
			if (pthread_create(&t[i], NULL, short_lived, NULL) != 0)
				t[i] = 0;
		for (int i = 0; i < 4; i++)
			if (t[i])
				pthread_join(t[i], NULL);
	}
	return NULL;
}

__attribute__((noinline)) void bench_parked_here(void)
{
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
}

static void *bench_main(void *arg)
{
	tids[(intptr_t)arg] = gettid_();
	bench_parked_here();
	return NULL;
}

static volatile int64_t max_gap_ns;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *heartbeat_main(void *arg)
{
	struct timespec ms = { 0, 1000000 };
	int64_t last;

	(void)arg;
	pthread_barrier_wait(&ready);
	last = now_ns();
	for (;;) {
		int64_t t;

		nanosleep(&ms, NULL);
		t = now_ns();
		if (t - last > max_gap_ns)
			max_gap_ns = t - last;
		last = t;
	}
	return NULL;
}

static void load_nodebug(const char *argv0)
{
	char exe[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;
	void *h;

	(void)argv0;
	if (n <= 0)
		exit(1);
	exe[n] = 0;
	slash = strrchr(exe, '/');
	*slash = 0;
	snprintf(path, sizeof(path), "%s/libstkpark.so", exe);
	h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "stacktarget: %s\n", dlerror());
		exit(1);
	}
	nodebug_parked = (void (*)(void))dlsym(h, "nodebug_parked_here");
	nodebug_outer = (void (*)(void (*)(void)))dlsym(h, "nodebug_outer");
	if (!nodebug_parked || !nodebug_outer)
		exit(1);
}

static void start(void *(*fn)(void *), intptr_t i, const char *name)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, (void *)i) != 0)
		exit(1);
	pthread_setname_np(t, name);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "park";
	int n = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "park")) {
		load_nodebug(argv[0]);
		if (pipe(gamma_pipe) < 0)
			return 1;
		pthread_barrier_init(&ready, NULL, 4);
		start(alpha_main, 0, "pd-alpha");
		start(beta_main, 1, "pd-beta");
		start(gamma_main, 2, "pd-gamma");
		n = 3;
	} else if (!strcmp(mode, "churn")) {
		pthread_barrier_init(&ready, NULL, 2);
		start(churn_main, 0, "pd-churn");
	} else if (!strcmp(mode, "bench") && argc > 2) {
		n = atoi(argv[2]);
		if (n < 1 || n > 60)
			return 2;
		sigset_t usr1;

		/* Before any thread exists, so that all of them block it. */
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr1, NULL);
		pthread_barrier_init(&ready, NULL, (unsigned)n + 2);
		for (int i = 0; i < n; i++)
			start(bench_main, i, "pd-bench");
		start(heartbeat_main, 0, "pd-heartbeat");
	} else {
		fprintf(stderr, "usage: stacktarget park|churn|bench N\n");
		return 2;
	}
	pthread_barrier_wait(&ready);
	printf("ready %d", (int)getpid());
	for (int i = 0; i < n && strcmp(mode, "churn"); i++)
		printf(" %d", (int)tids[i]);
	printf("\n");
	if (!strcmp(mode, "bench")) {
		sigset_t set;
		int sig;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		for (;;) {
			if (sigwait(&set, &sig) != 0)
				continue;
			printf("gap_us %lld\n", (long long)(max_gap_ns / 1000));
			max_gap_ns = 0;
		}
	}
	main_parked_here();
	return 0;
}
