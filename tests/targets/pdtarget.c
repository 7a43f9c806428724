/* pdtarget: a real process for the e2e tests to look at and kill.
 *
 *   pdtarget [open PATH]... [threads N] [tree DEPTH] [zombie]
 *
 * Steps run in this order, whatever the order on the command line:
 *   open PATH    open PATH read-only and keep it open (repeatable)
 *   threads N    start N extra threads, each blocked in pause()
 *   zombie       fork a child that exits at once and is never reaped
 *   tree DEPTH   fork a chain: this process, its child, ... DEPTH processes in
 *                all (DEPTH >= 1); only the first one has the threads, files
 *                and zombie
 * Then one line goes to stdout, from the deepest process of the tree:
 *   ready PID... [zombie ZPID]
 * listing the chain top down (one pid without `tree`), and every process
 * pauses until it is killed. Exit status 2: bad arguments; 1: a step failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DEPTH 64

static void usage(void)
{
	fprintf(stderr, "usage: pdtarget [open PATH]... [threads N] [tree DEPTH] [zombie]\n");
	exit(2);
}

static long number(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		usage();
	return v;
}

static void *blocked(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void forever(void)
{
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	long nthreads = 0, depth = 1;
	pid_t chain[MAX_DEPTH], zombie = 0;
	int want_zombie = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "open") && i + 1 < argc) {
			if (open(argv[++i], O_RDONLY) < 0) {
				perror(argv[i]);
				return 1;
			}
		} else if (!strcmp(argv[i], "threads") && i + 1 < argc) {
			nthreads = number(argv[++i], 10000);
		} else if (!strcmp(argv[i], "tree") && i + 1 < argc) {
			depth = number(argv[++i], MAX_DEPTH);
			if (depth < 1)
				usage();
		} else if (!strcmp(argv[i], "zombie")) {
			want_zombie = 1;
		} else {
			usage();
		}
	}

	for (long i = 0; i < nthreads; i++) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, blocked, NULL);

		if (rc) {
			fprintf(stderr, "pdtarget: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	if (want_zombie) {
		zombie = fork();
		if (zombie < 0) {
			perror("fork");
			return 1;
		}
		if (zombie == 0)
			_exit(0);
		/* Wait until it is a zombie, without reaping it. */
		siginfo_t si;
		if (waitid(P_PID, (id_t)zombie, &si, WEXITED | WNOWAIT) < 0) {
			perror("waitid");
			return 1;
		}
	}

	chain[0] = getpid();
	for (long level = 1; level < depth; level++) {
		pid_t child = fork();

		if (child < 0) {
			perror("fork");
			return 1;
		}
		if (child > 0)
			forever(); /* every level but the deepest just waits */
		chain[level] = getpid();
	}

	for (long i = 0; i < depth; i++)
		printf(i ? " %d" : "ready %d", (int)chain[i]);
	if (zombie)
		printf(" zombie %d", (int)zombie);
	printf("\n");
	if (fflush(stdout) != 0)
		return 1;
	forever();
	return 0;
}
