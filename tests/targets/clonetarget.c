/* clonetarget: a process for the copy-on-write clone tests (test_clone.py).
 *
 *   clonetarget [gen MIB] [anon MIB] [threads N] [seccomp] [dontfork]
 *               [block pause|read|sleep|sigsuspend]
 *
 * It forks once: the parent stays as the target's parent and only counts
 * the SIGCHLDs it gets; the child is the target. The target
 *   - has pthread_atfork handlers that count their runs (none may run:
 *     the dump's clone is no fork(3));
 *   - counts the SIGCHLDs it gets (none may come: the clone's exit
 *     signal is 0);
 *   gen MIB   runs a thread that writes the generation number g into the
 *             first 8 bytes of every page of a MIB buffer, in page order
 *             from both ends at once (page i, then page N-1-i, i from 0
 *             to N/2), then g+1, ... for ever (the point-in-time test: a
 *             copy read in address order while it runs sees page i and
 *             page N-1-i differ);
 *   anon MIB  touches MIB more of anonymous memory (a cgroup's usage);
 *   threads N N more threads parked in pause();
 *   seccomp   installs a seccomp filter that fails clone (but threads)
 *             with EPERM and clone3 with ENOSYS, before any thread;
 *   dontfork  one page with MADV_DONTFORK and one with MADV_WIPEONFORK,
 *             each holding "PDDONTFORK" / "PDWIPEONFORK";
 *   block K   what the main thread (the leader: the one a dump injects its
 *             calls into) blocks in, for ever: pause (default), read of a
 *             pipe nobody writes, nanosleep of an hour, sigsuspend with
 *             SIGUSR2 let through. Each return not caused by a SIGUSR2
 *             (its handler sets a flag) counts as a bad wake-up: a system
 *             call that was not restarted as the kernel would; after a
 *             sigsuspend the thread's mask must be what it was before
 *             (else a bad mask). SIGUSR2 wakes it on purpose.
 * Then it prints
 *
 *   ready PID parent=PPID gen=ADDR pages=N dontfork=ADDR wipeonfork=ADDR
 *
 * (addresses 0x0 when not asked for). SIGUSR1 to the target makes it print
 * "target sigchld=N atfork=M gen=G wakes=W badwake=B badmask=K" (a thread of its
 * own waits for SIGUSR1, blocked everywhere else), SIGUSR1 to the parent
 * makes it print
 * "parent sigchld=N" (the target's own exit excepted: it does not exit). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static volatile sig_atomic_t sigchld, atforks, want_report, woke, wakes, badwake, badmask;
static volatile uint64_t *gen_buf;
static volatile uint64_t gen;
static size_t gen_pages;

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

static void on_usr1(int sig)
{
	(void)sig;
	want_report = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	woke = 1;
}

static void *reporter(void *arg)
{
	sigset_t usr1;
	int sig;

	(void)arg;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	for (;;) {
		if (sigwait(&usr1, &sig) != 0)
			continue;
		printf("target sigchld=%d atfork=%d gen=%llu wakes=%d badwake=%d badmask=%d\n",
		       (int)sigchld, (int)atforks, (unsigned long long)gen, (int)wakes,
		       (int)badwake, (int)badmask);
		fflush(stdout);
	}
	return NULL;
}

/* The main thread's wait, for ever (block K above). */
static void block_forever(const char *kind)
{
	sigset_t before, now, susp;
	int pfd[2];
	char c;

	if (pipe(pfd) < 0)
		exit(1);
	pthread_sigmask(SIG_BLOCK, NULL, &before);
	susp = before;
	sigdelset(&susp, SIGUSR2);
	for (;;) {
		woke = 0;
		if (!strcmp(kind, "read"))
			(void)!read(pfd[0], &c, 1);
		else if (!strcmp(kind, "sleep"))
			nanosleep(&(struct timespec){3600, 0}, NULL);
		else if (!strcmp(kind, "sigsuspend"))
			sigsuspend(&susp);
		else
			pause();
		if (!woke)
			badwake++;
		else
			wakes++;
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		if (sigismember(&now, SIGUSR2) != sigismember(&before, SIGUSR2))
			badmask++;
	}
}

static void atfork_prepare(void)
{
	atforks++;
}

static void *writer(void *arg)
{
	size_t step = (size_t)sysconf(_SC_PAGESIZE) / sizeof(uint64_t);

	(void)arg;
	for (;;) {
		uint64_t g = gen + 1;

		for (size_t i = 0; i < gen_pages / 2; i++) {
			gen_buf[i * step] = g;
			gen_buf[(gen_pages - 1 - i) * step] = g;
		}
		gen = g;
	}
	return NULL;
}

static void *parked(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void install_seccomp(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("seccomp");
		exit(1);
	}
}

static void *special_page(int advice, const char *text)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || madvise(p, page, advice) < 0) {
		perror("madvise");
		exit(1);
	}
	strcpy(p, text);
	return p;
}

/* SIGCHLD counted, and sig to handler (no SA_RESTART). */
static void catch_signals(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = handler;
	sigaction(sig, &sa, NULL);
}

static void parent_loop(pid_t child)
{
	sigset_t none;

	(void)child;
	catch_signals(SIGUSR1, on_usr1);
	sigemptyset(&none);
	for (;;) {
		sigsuspend(&none);
		if (want_report) {
			want_report = 0;
			printf("parent sigchld=%d\n", (int)sigchld);
			fflush(stdout);
		}
	}
}

int main(int argc, char **argv)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), gen_mib = 0, anon_mib = 0;
	int nthreads = 0;
	int use_seccomp = 0, dontfork = 0;
	const char *block = "pause";
	sigset_t mask;
	void *df = NULL, *wf = NULL;
	pthread_t th;
	pid_t child;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "gen") && i + 1 < argc)
			gen_mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "anon") && i + 1 < argc)
			anon_mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "seccomp"))
			use_seccomp = 1;
		else if (!strcmp(argv[i], "dontfork"))
			dontfork = 1;
		else if (!strcmp(argv[i], "block") && i + 1 < argc)
			block = argv[++i];
		else {
			fprintf(stderr, "clonetarget: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	child = fork();
	if (child < 0)
		return 1;
	if (child > 0)
		parent_loop(child);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	catch_signals(SIGUSR2, on_usr2);
	/* SIGUSR1 for the reporter thread alone; SIGUSR2 for the main
	 * thread's sigsuspend alone (the others inherit both blocked). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	pthread_create(&th, NULL, reporter, NULL);
	if (strcmp(block, "sigsuspend")) {
		sigemptyset(&mask);
		sigaddset(&mask, SIGUSR2);
		pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	}
	pthread_atfork(atfork_prepare, atfork_prepare, atfork_prepare);
	if (use_seccomp)
		install_seccomp();
	if (dontfork) {
		df = special_page(MADV_DONTFORK, "PDDONTFORK");
		wf = special_page(MADV_WIPEONFORK, "PDWIPEONFORK");
	}
	if (anon_mib) {
		char *a = mmap(NULL, anon_mib << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (a == MAP_FAILED)
			return 1;
		for (size_t i = 0; i < anon_mib << 20; i += page)
			a[i] = (char)(i / page) | 1;
	}
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th, NULL, parked, NULL);
	if (gen_mib) {
		gen_pages = (gen_mib << 20) / page;
		gen_buf = mmap(NULL, gen_mib << 20, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (gen_buf == MAP_FAILED)
			return 1;
		for (size_t i = 0; i < gen_pages; i++)
			gen_buf[i * (page / sizeof(uint64_t))] = 0;
		pthread_create(&th, NULL, writer, NULL);
	}
	printf("ready %d parent=%d gen=%#lx pages=%zu dontfork=%#lx wipeonfork=%#lx\n",
	       (int)getpid(), (int)getppid(), (unsigned long)gen_buf, gen_pages, (unsigned long)df,
	       (unsigned long)wf);
	fflush(stdout);
	block_forever(block);
}
