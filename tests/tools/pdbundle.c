/* pdbundle: runs pd_bundle_write() for the tests (internal, not installed).
 *
 *   pdbundle --pid PID --core FILE -o ZIP [--type NAME] [--stopped-us N]
 *
 * The zip is written, as the server does, into an unnamed O_TMPFILE in ZIP's
 * directory, which is then given its name (linkat through /proc/self/fd);
 * where O_TMPFILE is refused, into ZIP itself. Prints one JSON line:
 *   {"rc":0,"size":N,"modules":N,"binaries":N,"debug_files":N,"ms":N}
 * or {"rc":-28,"error":"..."}; exit status 0 on success, 1 on failure,
 * 2 on bad arguments. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/bundle.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: pdbundle --pid PID [--start-time T] --core FILE -o ZIP [--type NAME] [--stopped-us N]\n");
	exit(2);
}

static int open_out(const char *path, int *tmp)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return -1;
	fd = open(dirname(copy), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	free(copy);
	*tmp = fd >= 0;
	if (fd < 0)
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	return fd;
}

int main(int argc, char **argv)
{
	struct pd_bundle_opts o = {.dump_type = "gcore"};
	struct pd_bundle_result res;
	const char *core = NULL, *out = NULL;
	char err[512], name[64], fdpath[64];
	struct timespec t0, t1;
	int fd, tmp, rc;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--pid"))
			o.pid = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--core"))
			core = argv[++i];
		else if (!strcmp(argv[i], "-o"))
			out = argv[++i];
		else if (!strcmp(argv[i], "--type"))
			o.dump_type = argv[++i];
		else if (!strcmp(argv[i], "--start-time"))
			o.start_time = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--stopped-us"))
			o.stopped_us = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (o.pid <= 0 || !core || !out)
		usage();
	o.core_fd = open(core, O_RDONLY | O_CLOEXEC);
	if (o.core_fd < 0) {
		perror(core);
		return 1;
	}
	snprintf(name, sizeof(name), "core.%d", (int)o.pid);
	o.core_name = name;
	fd = open_out(out, &tmp);
	if (fd < 0) {
		perror(out);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = pd_bundle_write(&o, fd, &res, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc == 0 && tmp) {
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
		unlink(out);
		if (linkat(AT_FDCWD, fdpath, AT_FDCWD, out, AT_SYMLINK_FOLLOW) < 0) {
			rc = -errno;
			snprintf(err, sizeof(err), "linkat: %s", strerror(errno));
		}
	}
	if (rc < 0) {
		printf("{\"rc\":%d,\"error\":\"", rc);
		for (const char *p = err; *p; p++)
			printf(*p == '"' || *p == '\\'	  ? "\\%c"
			       : (unsigned char)*p < 0x20 ? "?"
							  : "%c",
			       *p);
		printf("\"}\n");
		return 1;
	}
	printf("{\"rc\":0,\"size\":%llu,\"modules\":%u,\"binaries\":%u,\"debug_files\":%u,"
	       "\"ms\":%.1f}\n",
	       (unsigned long long)res.size, res.modules, res.binaries, res.debug_files,
	       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	return 0;
}
