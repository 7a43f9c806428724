/* dumptarget: a process for the dump tests to freeze and dump.
 *
 *   dumptarget [threads N] [churn] [zombie-leader] [vfork] [ioperm]
 *
 *   threads N      N extra threads (N <= 8), thread i blocked in its own
 *                  function park_thread_<i>() (names gdb must show)
 *   churn          one more thread that creates and joins short-lived
 *                  threads without pause (the freeze must catch them all)
 *   zombie-leader  the main thread calls pthread_exit() once ready: the
 *                  thread-group leader is a zombie, the others run on
 *   vfork          one more thread vfork()s a child that never execs: that
 *                  thread sleeps uninterruptibly (it never stops for ptrace)
 *   ioperm         the main thread alone (after the others started) calls
 *                  ioperm(0x80, 1, 1): it has an I/O bitmap, and so the
 *                  kernel's core an NT_386_IOPERM for it (needs root); the
 *                  ready line ends " ioperm=1", or " ioperm=0" where the
 *                  kernel has no ioperm(2) (ENOSYS)
 *
 * It fills a global (pd_global, .bss, written at run time) and a heap buffer
 * (pd_heap) with known patterns, then prints one line
 *
 *   ready PID global=ADDR heap=ADDR pattern=PDPAT-PID
 *
 * and the main thread parks in park_main(). The global holds
 * "PDGLOBAL-PID", the heap "PDHEAP-PID" (then more of the same pattern).
 * SIGUSR1 increments pd_usr1; SIGUSR2 makes the main thread print
 * "usr1 COUNT": a test checks that a signal sent during a freeze is
 * delivered once the target runs again. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_THREADS 8
#define HEAP_BYTES  (64 * 1024)

char pd_global[256];
char *pd_heap;
volatile sig_atomic_t pd_usr1;
static volatile sig_atomic_t want_report;

static void on_usr1(int sig)
{
	(void)sig;
	pd_usr1++;
}

static void on_usr2(int sig)
{
	(void)sig;
	want_report = 1;
}

/* Each parked function must stay a frame of its own: noinline, and the
 * asm after the loop keeps the call from becoming a tail call. */
#define PARK(name)                                                                                 \
	__attribute__((noinline)) static void name(void)                                           \
	{                                                                                          \
		for (;;)                                                                           \
			pause();                                                                   \
		__asm__ volatile("");                                                              \
	}
PARK(park_thread_0)
PARK(park_thread_1)
PARK(park_thread_2)
PARK(park_thread_3)
PARK(park_thread_4)
PARK(park_thread_5)
PARK(park_thread_6)
PARK(park_thread_7)

static void (*const parks[MAX_THREADS])(void) = {
	park_thread_0, park_thread_1, park_thread_2, park_thread_3,
	park_thread_4, park_thread_5, park_thread_6, park_thread_7,
};

__attribute__((noinline)) static void park_main(void)
{
	for (;;) {
		pause();
		if (want_report) {
			want_report = 0;
			printf("usr1 %d\n", (int)pd_usr1);
			fflush(stdout);
		}
	}
	__asm__ volatile("");
}

static void *parked(void *arg)
{
	parks[(long)arg]();
	return NULL;
}

static void *short_lived(void *arg)
{
	return arg;
}

static void *churn(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_t t;

		if (pthread_create(&t, NULL, short_lived, NULL) == 0)
			pthread_join(t, NULL);
	}
	return NULL;
}

__attribute__((noinline)) static void park_vfork(void)
{
	pid_t c = vfork();

	if (c == 0) {
		/* The child shares our memory and never execs: the parent
		 * thread waits in the kernel, uninterruptibly. Only raw
		 * syscalls here. */
		for (;;)
			syscall(SYS_pause);
	}
	for (;;)
		pause();
	__asm__ volatile("");
}

static void *vforker(void *arg)
{
	(void)arg;
	park_vfork();
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: dumptarget [threads N] [churn] [zombie-leader] [vfork] [ioperm]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long nthreads = 0;
	int want_churn = 0, zombie_leader = 0, want_vfork = 0, want_ioperm = 0;
	int have_ioperm = 0;
	pthread_t t;
	sigset_t usr;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "threads") && i + 1 < argc) {
			nthreads = strtol(argv[++i], NULL, 10);
			if (nthreads < 0 || nthreads > MAX_THREADS)
				usage();
		} else if (!strcmp(argv[i], "churn")) {
			want_churn = 1;
		} else if (!strcmp(argv[i], "zombie-leader")) {
			zombie_leader = 1;
		} else if (!strcmp(argv[i], "vfork")) {
			want_vfork = 1;
		} else if (!strcmp(argv[i], "ioperm")) {
			want_ioperm = 1;
		} else {
			usage();
		}
	}
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	/* Both signals go to the main thread alone: the other threads are
	 * created with them blocked, so "usr1 COUNT" never races a handler
	 * running on another thread. */
	sigemptyset(&usr);
	sigaddset(&usr, SIGUSR1);
	sigaddset(&usr, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr, NULL);
	snprintf(pd_global, sizeof(pd_global), "PDGLOBAL-%d", (int)getpid());
	pd_heap = malloc(HEAP_BYTES);
	if (!pd_heap)
		return 1;
	for (size_t off = 0; off + 32 <= HEAP_BYTES; off += 32)
		snprintf(pd_heap + off, 32, "PDHEAP-%d%*s", (int)getpid(), 20, "");
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&t, NULL, parked, (void *)i) != 0)
			return 1;
	if (want_churn && pthread_create(&t, NULL, churn, NULL) != 0)
		return 1;
	if (want_vfork && pthread_create(&t, NULL, vforker, NULL) != 0)
		return 1;
	pthread_sigmask(SIG_UNBLOCK, &usr, NULL);
	/* A kernel without CONFIG_X86_IOPL_IOPERM says ENOSYS: "ioperm=0". */
	if (want_ioperm) {
		have_ioperm = ioperm(0x80, 1, 1) == 0;
		if (!have_ioperm && errno != ENOSYS) {
			perror("ioperm");
			return 1;
		}
	}
	printf("ready %d global=%p heap=%p pattern=PDHEAP-%d", (int)getpid(), (void *)pd_global,
	       (void *)pd_heap, (int)getpid());
	if (want_ioperm)
		printf(" ioperm=%d", have_ioperm);
	printf("\n");
	fflush(stdout);
	if (zombie_leader)
		pthread_exit(NULL);
	park_main();
	return 0;
}
