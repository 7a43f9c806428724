/* Side by side, in one run: the cost per process of procdiag's /proc scan
 * (pd_snapshot_scan) and of a bare loop doing the least a list needs
 * (open+read+close of /proc/PID/stat and one stat() of /proc/PID).
 * Prints "name ns_per_scan procs ns_per_proc" lines; bench/list.sh reads them. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/snapshot.h"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t bare_loop(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	size_t n = 0;
	char path[300], buf[1024];

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;
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
		snprintf(path, sizeof(path), "/proc/%s", de->d_name);
		stat(path, &st);
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	int64_t best_bare = INT64_MAX, best_scan = INT64_MAX;
	size_t nbare = 0, nscan = 0;

	if (rounds < 1)
		rounds = 1;
	/* Interleaved, best of N: both see the same process set and caches. */
	for (int i = 0; i < rounds; i++) {
		struct pd_snapshot *s;
		int64_t t0 = now_ns(), t1, t2;

		nbare = bare_loop();
		t1 = now_ns();
		if (pd_snapshot_scan(&s) < 0) {
			fprintf(stderr, "scan failed\n");
			return 1;
		}
		t2 = now_ns();
		nscan = s->n;
		pd_snapshot_unref(s);
		if (t1 - t0 < best_bare)
			best_bare = t1 - t0;
		if (t2 - t1 < best_scan)
			best_scan = t2 - t1;
	}
	printf("bare_loop %lld %zu %lld\n", (long long)best_bare, nbare,
	       (long long)(nbare ? best_bare / (int64_t)nbare : 0));
	printf("pd_snapshot_scan %lld %zu %lld\n", (long long)best_scan, nscan,
	       (long long)(nscan ? best_scan / (int64_t)nscan : 0));
	return 0;
}
