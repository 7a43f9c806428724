/* The floor of a rule engine, for bench/rules.sh: once per period, the
 * least any sampler of per-process triggers must do: list /proc and read
 * every process's /proc/PID/stat (open+read+close). Run beside procdiag's
 * rule engine for the same time, its own CPU is the anchor.
 *
 *   rulesfloor PERIOD_MS SECONDS
 * Prints "rulesfloor CPU_SECONDS PROCS" (its own user+system time, from
 * getrusage, and the processes of its last period) when done. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t one_period(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[300], buf[1024];
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (read(fd, buf, sizeof(buf)) > 0)
			n++;
		close(fd);
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	long period_ms = argc > 1 ? atol(argv[1]) : 1000;
	double secs = argc > 2 ? atof(argv[2]) : 30, end = now_s() + secs, next = now_s();
	struct rusage ru;
	size_t n = 0;

	if (period_ms <= 0 || secs <= 0) {
		fprintf(stderr, "usage: rulesfloor PERIOD_MS SECONDS\n");
		return 2;
	}
	while (now_s() < end) {
		struct timespec ts;
		double wait;

		n = one_period();
		next += period_ms / 1000.0;
		wait = next - now_s();
		if (wait > 0) {
			ts.tv_sec = (time_t)wait;
			ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("rulesfloor %.4f %zu\n",
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		       ru.ru_stime.tv_usec / 1e6,
	       n);
	return 0;
}
