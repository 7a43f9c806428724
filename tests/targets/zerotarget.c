/* zerotarget: a process whose memory mixes the kernel's zero page with data
 * that looks like it to pagemap, for tests/e2e/test_zeropages.py.
 *
 *   zerotarget THREADS UNTOUCHED_MIB FILE
 *
 * Each region is its own mapping (a PROT_NONE page after each keeps the
 * kernel from merging them):
 *   zt_untouched  UNTOUCHED_MIB MiB of anonymous memory never written: a
 *                 reader of /proc/PID/mem (gcore) maps the zero page there
 *                 (or, on a kernel that never maps it, zeroed pages that
 *                 KSM with use_zero_pages maps to it: MADV_MERGEABLE)
 *   zt_mixed      64 pages, the even ones written with "ZT-MIXED-PID-i",
 *                 the odd ones never written (zero pages once read);
 *                 MADV_MERGEABLE too
 *   zt_forked     16 pages written with "ZT-FORKED-PID-i" before a fork():
 *                 the child sleeps and never writes, so every page is
 *                 shared with it (not PM_MMAP_EXCLUSIVE, like the zero page)
 *   zt_ksm        16 identical pages "ZT-KSM-PID", madvise(MADV_MERGEABLE):
 *                 one KSM page once ksmd runs
 *   zt_file       FILE mapped MAP_PRIVATE and read (page cache pages); its
 *                 second page written (a private copy)
 * THREADS threads each park with "ZT-THREAD-PID-n" in a stack buffer.
 * Prints one line
 *   ready PID CHILD untouched=ADDR mixed=ADDR forked=ADDR ksm=ADDR file=ADDR
 *   thread=ADDR,ADDR,...
 * (the threads' buffers, at most 8 listed) and sleeps. The child dies with
 * it (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MIXED_PAGES  64
#define FORKED_PAGES 16
#define KSM_PAGES    16
#define LISTED	     8

char *zt_untouched, *zt_mixed, *zt_forked, *zt_ksm, *zt_file;
static long page;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started;
static char *marks[LISTED];

/* len bytes of anonymous memory, then a PROT_NONE page. */
static char *region(size_t len)
{
	char *p = mmap(NULL, len + (size_t)page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || mprotect(p + len, (size_t)page, PROT_NONE) < 0) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void *park(void *arg)
{
	volatile char mark[64];
	long n = (long)(intptr_t)arg;
	char text[64];

	snprintf(text, sizeof(text), "ZT-THREAD-%d-%ld", (int)getpid(), n);
	for (size_t i = 0; i < sizeof(text); i++)
		mark[i] = text[i];
	pthread_mutex_lock(&mu);
	if (n < LISTED)
		marks[n] = (char *)mark;
	started++;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads, fd;
	size_t untouched;
	pid_t pid = getpid(), child;
	pthread_attr_t attr;

	if (argc != 4) {
		fprintf(stderr, "usage: zerotarget THREADS UNTOUCHED_MIB FILE\n");
		return 2;
	}
	page = sysconf(_SC_PAGESIZE);
	nthreads = atoi(argv[1]);
	untouched = (size_t)atol(argv[2]) << 20;
	zt_untouched = region(untouched);
	zt_mixed = region(MIXED_PAGES * (size_t)page);
	/* Where a read allocates zeroed pages instead of mapping the zero page
	 * (some VM guests), KSM with use_zero_pages maps it for them. EINVAL
	 * without KSM. */
	madvise(zt_untouched, untouched, MADV_MERGEABLE);
	madvise(zt_mixed, MIXED_PAGES * (size_t)page, MADV_MERGEABLE);
	for (int i = 0; i < MIXED_PAGES; i += 2)
		snprintf(zt_mixed + i * page, (size_t)page, "ZT-MIXED-%d-%d", (int)pid, i);
	zt_forked = region(FORKED_PAGES * (size_t)page);
	for (int i = 0; i < FORKED_PAGES; i++)
		snprintf(zt_forked + i * page, (size_t)page, "ZT-FORKED-%d-%d", (int)pid, i);
	zt_ksm = region(KSM_PAGES * (size_t)page);
	for (int i = 0; i < KSM_PAGES; i++)
		snprintf(zt_ksm + i * page, (size_t)page, "ZT-KSM-%d", (int)pid);
	madvise(zt_ksm, KSM_PAGES * (size_t)page, MADV_MERGEABLE); /* EINVAL without KSM */
	fd = open(argv[3], O_RDONLY | O_CLOEXEC);
	zt_file = fd < 0 ? MAP_FAILED
			 : mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (zt_file == MAP_FAILED) {
		perror(argv[3]);
		return 1;
	}
	close(fd);
	(void)*(volatile char *)zt_file; /* the file's page, read */
	snprintf(zt_file + page, (size_t)page, "ZT-FILECOPY-%d", (int)pid);

	child = fork();
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != pid)
			_exit(0);
		for (;;)
			pause();
	}
	if (child < 0) {
		perror("fork");
		return 1;
	}

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	for (long i = 0; i < nthreads; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, park, (void *)(intptr_t)i) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	pthread_mutex_lock(&mu);
	while (started < nthreads)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);

	printf("ready %d %d untouched=%p mixed=%p forked=%p ksm=%p file=%p thread=", (int)pid,
	       (int)child, (void *)zt_untouched, (void *)zt_mixed, (void *)zt_forked,
	       (void *)zt_ksm, (void *)zt_file);
	for (int i = 0; i < nthreads && i < LISTED; i++)
		printf("%s%p", i ? "," : "", (void *)marks[i]);
	printf("\n");
	fflush(stdout);
	for (;;)
		pause();
}
