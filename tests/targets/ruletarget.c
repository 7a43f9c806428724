/* A target for the rule engine's tests (tests/e2e/test_rules.py): it
 * prints "ready PID", waits DELAY_MS, then does one thing and prints
 * "go REALTIME_MS" (the wall clock when it began, in ms), then holds:
 *
 *   ruletarget DELAY_MS spin            one thread spins on the CPU
 *   ruletarget DELAY_MS idle            nothing (sleeps)
 *   ruletarget DELAY_MS alloc MIB       allocates and touches MIB MiB
 *   ruletarget DELAY_MS threads N       starts N sleeping threads
 *   ruletarget DELAY_MS fds N           opens N more fds (dups of /dev/null)
 *   ruletarget DELAY_MS duty PERCENT    uses about PERCENT % of one core
 *
 * Arguments after those are ignored (the tests add a tag their rules'
 * cmdline filter matches). RT_COMM_HEX in the environment: its comm
 * becomes those bytes (prctl PR_SET_NAME; any bytes, not only UTF-8). It
 * holds until killed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

static long long now_ms(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: ruletarget DELAY_MS spin|idle|alloc MIB|threads N|fds N|"
			"duty PERCENT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long delay, n = 0;
	const char *what;

	if (argc < 3)
		usage();
	delay = atol(argv[1]);
	what = argv[2];
	if (strcmp(what, "spin") && strcmp(what, "idle")) {
		if (argc < 4)
			usage();
		n = atol(argv[3]);
	}
	if (getenv("RT_COMM_HEX")) {
		const char *h = getenv("RT_COMM_HEX");
		char name[16] = "";

		for (size_t i = 0; i < 15 && h[2 * i] && h[2 * i + 1]; i++) {
			unsigned v;

			sscanf(h + 2 * i, "%2x", &v);
			name[i] = (char)v;
		}
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	usleep((useconds_t)delay * 1000);
	printf("go %lld\n", now_ms(CLOCK_REALTIME));
	fflush(stdout);
	if (!strcmp(what, "spin")) {
		for (;;)
			sink++;
	} else if (!strcmp(what, "alloc")) {
		size_t len = (size_t)n << 20;
		char *p = malloc(len);

		if (!p)
			return 1;
		for (size_t i = 0; i < len; i += 4096)
			p[i] = (char)i | 1;
		sink = (unsigned long)p[len / 2];
	} else if (!strcmp(what, "threads")) {
		for (long i = 0; i < n; i++) {
			pthread_t t;

			if (pthread_create(&t, NULL, sleeper, NULL))
				return 1;
		}
	} else if (!strcmp(what, "fds")) {
		for (long i = 0; i < n; i++)
			if (open("/dev/null", O_RDONLY) < 0)
				return 1;
	} else if (!strcmp(what, "duty")) {
		/* n % of one core, in 100 ms slices */
		for (;;) {
			long long t0 = now_ms(CLOCK_MONOTONIC);

			while (now_ms(CLOCK_MONOTONIC) - t0 < n)
				sink++;
			usleep((useconds_t)(100 - n) * 1000);
		}
	} else if (strcmp(what, "idle")) {
		usage();
	}
	for (;;)
		pause();
}
