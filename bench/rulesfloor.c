/* The floor of a rule engine, for bench/rules.sh: once per period, the
 * least any sampler of per-process triggers must do: list /proc and read
 * every process's /proc/PID/stat (open+read+close). Run beside procdiag's
 * rule engine for the same time, its own CPU is the anchor.
 *
 * With "keep", each /proc/PID/stat stays open from period to period and is
 * read again with pread (opened when its pid appears, closed when it
 * goes): what a sampler that keeps fds could reach.
 *
 * With "table", also /proc/PID is kept open (O_PATH) and "fd" under it is
 * stat'ed each period (the owner and, on Linux >= 6.2, the count of open
 * descriptors): the least the live process table (lib/top.c) can read.
 *
 *   rulesfloor PERIOD_MS SECONDS [keep|table]
 * Prints "rulesfloor CPU_SECONDS PROCS" (its own user+system time, from
 * getrusage, and the processes of its last period) when done. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* keep: the pids seen last period (ascending, as /proc lists them) and
 * their open stat fds. */
static int *kpid, *kfd, *npid, *nfd, *kdir, *ndir;
static size_t kn, kcap;
static int table;

static void close_kept(size_t j)
{
	close(kfd[j]);
	if (table)
		close(kdir[j]);
}

static int kept_fd(int pid, size_t *j, int *dir)
{
	char path[64];

	while (*j < kn && kpid[*j] < pid)
		close_kept((*j)++); /* gone */
	if (*j < kn && kpid[*j] == pid) {
		*dir = table ? kdir[*j] : -1;
		return kfd[(*j)++];
	}
	*dir = -1;
	if (table) {
		snprintf(path, sizeof(path), "/proc/%d", pid);
		*dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (*dir < 0)
			return -1;
		int fd = openat(*dir, "stat", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			close(*dir);
		return fd;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static size_t one_period_keep(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char buf[1024];
	size_t n = 0, j = 0;
	int *t;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct stat st;
		int pid, fd, dir;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		pid = atoi(de->d_name);
		fd = kept_fd(pid, &j, &dir);
		if (fd < 0)
			continue;
		if (pread(fd, buf, sizeof(buf), 0) <= 0 ||
		    (table && fstatat(dir, "fd", &st, 0) < 0)) {
			close(fd);
			if (table)
				close(dir);
			continue;
		}
		if (n == kcap)
			break; /* more processes than the table: the rest unread */
		npid[n] = pid;
		if (table)
			ndir[n] = dir;
		nfd[n++] = fd;
	}
	closedir(d);
	while (j < kn)
		close_kept(j++);
	t = kpid, kpid = npid, npid = t;
	t = kfd, kfd = nfd, nfd = t;
	t = kdir, kdir = ndir, ndir = t;
	kn = n;
	return n;
}

int main(int argc, char **argv)
{
	long period_ms = argc > 1 ? atol(argv[1]) : 1000;
	double secs = argc > 2 ? atof(argv[2]) : 30, end = now_s() + secs, next = now_s();
	int keep = argc > 3 && (strcmp(argv[3], "keep") == 0 || strcmp(argv[3], "table") == 0);
	struct rusage ru;
	size_t n = 0;

	if (period_ms <= 0 || secs <= 0) {
		fprintf(stderr, "usage: rulesfloor PERIOD_MS SECONDS\n");
		return 2;
	}
	if (keep) {
		struct rlimit rl;

		kcap = 1 << 16;
		kpid = malloc(kcap * sizeof(int));
		kfd = malloc(kcap * sizeof(int));
		npid = malloc(kcap * sizeof(int));
		nfd = malloc(kcap * sizeof(int));
		table = strcmp(argv[3], "table") == 0;
		kdir = malloc(kcap * sizeof(int));
		ndir = malloc(kcap * sizeof(int));
		if (!kpid || !kfd || !npid || !nfd || !kdir || !ndir)
			return 1;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	while (now_s() < end) {
		struct timespec ts;
		double wait;

		n = keep ? one_period_keep() : one_period();
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
