/* compressbench: procdiag's compression of a core alone, for
 * bench/compress.sh (internal, not installed).
 *
 *   compressbench zstd CORE OUT      lib/zstdout: CORE as one zstd stream
 *   compressbench zip PID CORE OUT   lib/bundle: the zip bundle of CORE,
 *                                    dumped from the live process PID
 *   compressbench punch CORE [ROUNDS]  a memory spool punched behind the
 *                                    compressor or not (docs/DUMPS.md,
 *                                    "Where the core waits"): CORE copied
 *                                    into a memfd for each run, then
 *                                    lib/zstdout and lib/pdeflate with
 *                                    consume off and on, alternating
 *
 * Prints one line: "<seconds> <bytes written>" (punch: one line a run);
 * exit status 0, or 1 with the error on stderr. */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/bundle.h"
#include "lib/pdeflate.h"
#include "lib/zstdout.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Shmem of /proc/meminfo, MiB: what memfds (and tmpfs) hold. */
static long shmem_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "Shmem:", 6) == 0)
			v = atol(line + 6) / 1024;
	if (f)
		fclose(f);
	return v;
}

/* CORE in a fresh memfd. */
static int memfd_copy(int src, uint64_t size)
{
	int fd = memfd_create("compressbench-core", MFD_CLOEXEC);
	static char buf[1 << 20];

	for (uint64_t off = 0; fd >= 0 && off < size;) {
		ssize_t n = pread(src, buf, sizeof(buf), (off_t)off);

		if (n <= 0 || pwrite(fd, buf, (size_t)n, (off_t)off) != n) {
			close(fd);
			return -1;
		}
		off += (uint64_t)n;
	}
	return fd;
}

static int punch(const char *core, int rounds)
{
	int src = open(core, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (src < 0 || fstat(src, &st) < 0) {
		perror("compressbench");
		return 1;
	}
	for (int r = 0; r < 2 * rounds; r++) {
		for (int pdeflate = 0; pdeflate < 2; pdeflate++) {
			bool consume = (r + pdeflate) % 2;
			uint64_t size = (uint64_t)st.st_size, out = 0;
			int fd = memfd_copy(src, size), rc = 0;
			long before = shmem_mib(), after;
			double t0 = now(), t1, t2;

			if (fd < 0) {
				perror("compressbench: memfd");
				return 1;
			}
			if (pdeflate) {
				struct pd_pdeflate_opts o = {
					.fd = fd, .size = size, .level = 1, .consume = consume};
				struct pd_pdeflate *p;
				static char buf[1 << 16];
				ssize_t n;

				rc = pd_pdeflate_start(&o, &p);
				if (rc == 0) {
					while (rc == 0 && (n = pd_pdeflate_read(p, buf, sizeof(buf))) != 0) {
						if (n < 0)
							rc = (int)n;
						else
							out += (uint64_t)n;
					}
					pd_pdeflate_free(p);
				}
			} else {
				int ofd = memfd_create("compressbench-out", MFD_CLOEXEC);
				struct pd_zstd_opts o = {
					.in_fd = fd, .size = size, .out_fd = ofd, .consume = consume};

				rc = ofd < 0 ? -1 : pd_zstd_write(&o, &out);
				if (ofd >= 0)
					close(ofd);
			}
			t1 = now();
			after = shmem_mib();
			close(fd);
			t2 = now();
			if (rc < 0) {
				fprintf(stderr, "compressbench: %s\n", strerror(-rc));
				return 1;
			}
			printf("%s consume=%d: compress %.2f s, close %.3f s, sum %.2f s; Shmem %ld MiB "
			       "before, %ld MiB when compressed\n",
			       pdeflate ? "pdeflate" : "zstd", consume, t1 - t0, t2 - t1, t2 - t0,
			       before, after);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int zip = argc == 5 && strcmp(argv[1], "zip") == 0;
	const char *core, *out;
	int in, ofd, rc;
	uint64_t size = 0;
	struct stat st;
	double t0;

	if ((argc == 3 || argc == 4) && strcmp(argv[1], "punch") == 0)
		return punch(argv[2], argc == 4 ? atoi(argv[3]) : 3);
	if (!zip && !(argc == 4 && strcmp(argv[1], "zstd") == 0)) {
		fprintf(stderr,
			"usage: compressbench zstd CORE OUT | zip PID CORE OUT | punch CORE [ROUNDS]\n");
		return 2;
	}
	core = argv[zip ? 3 : 2];
	out = argv[zip ? 4 : 3];
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
