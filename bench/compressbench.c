/* compressbench: procdiag's compression of a core alone, for
 * bench/compress.sh (internal, not installed).
 *
 *   compressbench zstd CORE OUT      lib/zstdout: CORE as one zstd stream
 *   compressbench zip PID CORE OUT   lib/bundle: the zip bundle of CORE,
 *                                    dumped from the live process PID
 *
 * Prints one line: "<seconds> <bytes written>"; exit status 0, or 1 with
 * the error on stderr. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/bundle.h"
#include "lib/zstdout.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int zip = argc == 5 && strcmp(argv[1], "zip") == 0;
	const char *core = argv[zip ? 3 : 2], *out = argv[zip ? 4 : 3];
	int in, ofd, rc;
	uint64_t size = 0;
	struct stat st;
	double t0;

	if (!zip && !(argc == 4 && strcmp(argv[1], "zstd") == 0)) {
		fprintf(stderr, "usage: compressbench zstd CORE OUT | zip PID CORE OUT\n");
		return 2;
	}
	in = open(core, O_RDONLY | O_CLOEXEC);
	ofd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || ofd < 0 || fstat(in, &st) < 0) {
		perror("compressbench");
		return 1;
	}
	t0 = now();
	if (zip) {
		struct pd_bundle_opts o = {.pid = atoi(argv[2]),
					   .core_fd = in,
					   .core_name = "core",
					   .dump_type = "Full"};
		struct pd_bundle_result r;
		char err[256];

		rc = pd_bundle_write(&o, ofd, &r, err, sizeof(err));
		size = r.size;
		if (rc < 0)
			fprintf(stderr, "compressbench: %s\n", err);
	} else {
		struct pd_zstd_opts o = {.in_fd = in, .size = (uint64_t)st.st_size, .out_fd = ofd};

		rc = pd_zstd_write(&o, &size);
		if (rc < 0)
			fprintf(stderr, "compressbench: %s\n", strerror(-rc));
	}
	if (rc < 0)
		return 1;
	printf("%.3f %llu\n", now() - t0, (unsigned long long)size);
	return 0;
}
