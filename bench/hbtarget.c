/* A benchmark target that measures, from the inside, how long it was stopped.
 *
 *   hbtarget THREADS HEAP_MIB [STACK_KIB [WRITE_MBPS]]
 *
 * Starts THREADS threads parked in a condition wait (each with a touched
 * stack page; stacks of STACK_KIB, default the system's, 8 MiB usually), allocates HEAP_MIB MiB of
 * heap and writes every page of it (with non-zero, varying bytes so no page is a hole), then prints
 * "ready PID" on stdout. A heartbeat thread wakes every millisecond and
 * records the longest gap between two wake-ups. Each SIGUSR1 makes it print
 * "gap_us N" (the longest gap since the previous SIGUSR1, minus the 1 ms
 * period) on stdout and start over; a dumper that stops every thread shows
 * up as a gap as long as the stop. With WRITE_MBPS, one more thread writes
 * one byte into each page of the heap, in order and round again, at that
 * many MB (10^6 bytes) of pages a second: what a clone dump's copy-on-write
 * costs for a process that keeps writing (bench/dump.sh).
 * With HB_FILL=mixed the heap is partly compressible, as a real one
 * (fill_mixed; bench/egress.sh). With HB_KSM=1 in the environment all its anonymous memory is KSM-mergeable
 * (PR_SET_MEMORY_MERGE, Linux 6.4): bench/zeropages.sh uses it where the
 * kernel never maps the zero page, so that KSM's use_zero_pages maps it. */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static volatile sig_atomic_t report;

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *parked(void *arg)
{
	volatile char stack[4096];

	memset((char *)stack, (int)(uintptr_t)arg, sizeof(stack));
	pthread_mutex_lock(&park_lock);
	for (;;)
		pthread_cond_wait(&park_cond, &park_lock);
	return NULL;
}

/* HB_FILL=mixed: pages as a real heap has them, partly compressible (zstd -1
 * takes it to about 45%): of every 4 pages, one of random bytes, one of text
 * (random letters and spaces), one of 64-byte records that differ in a
 * counter and a random word, one of a few bytes among zeros. */
static void fill_mixed(unsigned char *heap, size_t len)
{
	static const char text[] = "etaoinshrdlu cmfwypvbgkqjxz ETAOINSHRD";
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t p = 0; p < len; p += 4096) {
		unsigned char *pg = heap + p;
		size_t n = len - p < 4096 ? len - p : 4096;

		for (size_t i = 0; i < n; i += 8) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			switch (p / 4096 % 4) {
			case 0: memcpy(pg + i, &x, n - i < 8 ? n - i : 8); break;
			case 1:
				for (size_t k = 0; k < 8 && i + k < n; k++)
					pg[i + k] = (unsigned char)text[(x >> (k * 5)) % (sizeof(text) - 1)];
				break;
			case 2:
				if (i % 64 == 0)
					memset(pg + i, 0x20, n - i < 64 ? n - i : 64),
					memcpy(pg + i, &p, sizeof(p) < n - i ? sizeof(p) : n - i);
				if (i % 64 == 16)
					memcpy(pg + i, &x, 4);
				break;
			default:
				if (i % 64 == 0)
					pg[i] = (unsigned char)(p / 4096 * 7 + 1);
			}
		}
	}
}

static unsigned char *wheap;
static size_t wlen;
static long write_mbps;

static void *writer(void *arg)
{
	/* Pages per millisecond at write_mbps MB/s of pages. */
	size_t per_ms = (size_t)write_mbps * 1000000 / 4096 / 1000, at = 0;
	struct timespec ms = {0, 1000 * 1000};

	(void)arg;
	if (!per_ms)
		per_ms = 1;
	for (unsigned char n = 1;; n++) {
		for (size_t k = 0; k < per_ms; k++) {
			wheap[at] = n;
			at = at + 4096 < wlen ? at + 4096 : 0;
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	report = 1;
}

int main(int argc, char **argv)
{
	struct timespec tick = {0, 1000 * 1000};
	long threads = argc > 1 ? atol(argv[1]) : 32;
	long heap_mib = argc > 2 ? atol(argv[2]) : 64;
	int64_t last, max_gap = 0;
	struct sigaction sa;
	size_t len = (size_t)heap_mib << 20;
	unsigned char *heap = len ? malloc(len) : NULL;
	pthread_attr_t attr;

	if (threads < 0 || heap_mib < 0 || (len && !heap)) {
		fprintf(stderr, "usage: hbtarget THREADS HEAP_MIB [STACK_KIB [WRITE_MBPS]]\n");
		return 2;
	}
	if (getenv("HB_KSM") && !strcmp(getenv("HB_KSM"), "1"))
		prctl(67 /* PR_SET_MEMORY_MERGE */, 1, 0, 0, 0);
	if (getenv("HB_FILL") && !strcmp(getenv("HB_FILL"), "mixed"))
		fill_mixed(heap, len);
	else
		for (size_t i = 0; i < len; i += 64)
			heap[i] = (unsigned char)(i / 4096 * 7 + 1);
	pthread_attr_init(&attr);
	if (argc > 3 && atol(argv[3]) > 0)
		pthread_attr_setstacksize(&attr, (size_t)atol(argv[3]) * 1024);
	for (long i = 0; i < threads; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, parked, (void *)(uintptr_t)(i + 1))) {
			fprintf(stderr, "hbtarget: thread %ld: cannot create\n", i);
			return 1;
		}
	}
	write_mbps = argc > 4 ? atol(argv[4]) : 0;
	if (write_mbps > 0 && len) {
		pthread_t t;

		wheap = heap;
		wlen = len;
		if (pthread_create(&t, NULL, writer, NULL))
			return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	/* The heartbeat is the main thread. */
	last = now_us();
	for (;;) {
		int64_t t;

		nanosleep(&tick, NULL);
		t = now_us();
		if (t - last > max_gap)
			max_gap = t - last;
		last = t;
		if (report) {
			report = 0;
			printf("gap_us %lld\n", (long long)(max_gap > 1000 ? max_gap - 1000 : 0));
			fflush(stdout);
			max_gap = 0;
			last = now_us();
		}
	}
}
