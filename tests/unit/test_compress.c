/* lib/pdeflate and lib/zstdout on real sparse files: the parallel deflate
 * stream inflates to the input with its CRC, the zstd stream decompresses
 * to it, holes included, and a bounded output fails with EFBIG, empty.
 * With consume (a spool dropped after), the input is punched behind the
 * compressor, during the stream, and holds no blocks at its end while the
 * output stays byte-exact; without it, the input is left as it was. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "lib/dumpjob.h"
#include "lib/pdeflate.h"
#include "lib/spool.h"
#include "lib/zipfd.h"
#include "lib/zstdout.h"

#define CH PD_PDEFLATE_CHUNK

static int tmpfile_fd(void)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	return fd;
}

/* A file of size bytes: pieces of text, holes, zeros written as data and
 * bytes that do not compress, a third of a chunk each (in whole pages), so that pieces
 * straddle chunk bounds (text continues into the next chunk: a wrong
 * dictionary shows); past 2 chunks, [2, 4) chunks are a hole, chunk 4 is
 * zeros written, and chunk 5 zeros but for its last byte. The content is
 * also returned in memory. */
static unsigned char *make_input(int fd, size_t size)
{
	const size_t piece = (CH / 3 + 4095) / 4096 * 4096; /* page-aligned holes */
	unsigned char *m = calloc(1, size ? size : 1);
	uint32_t x = 12345;

	assert_non_null(m);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		unsigned kind = (unsigned)(off / piece) % 4;

		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			m[off + i] = kind == 0	 ? (unsigned char)("procdiag core "[i % 14])
				     : kind == 3 ? (unsigned char)(x >> 24)
						 : 0;
		}
	}
	if (size >= 6 * CH) {
		memset(m + 2 * CH, 0, 4 * CH);
		m[6 * CH - 1] = 1;
	}
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		if ((off / piece) % 4 == 1) /* a hole */
			continue;
		assert_int_equal(pwrite(fd, m + off, n, (off_t)off), (ssize_t)n);
	}
	if (size >= 6 * CH) {
		assert_int_equal(
			fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * CH, 2 * CH),
			0);
		assert_int_equal(pwrite(fd, m + 4 * CH, 2 * CH, 4 * CH), 2 * CH);
	}
	return m;
}

static void inflate_check(const unsigned char *z, size_t zlen, const unsigned char *want,
			  size_t size)
{
	unsigned char *got = malloc(size + 1);
	z_stream s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(inflateInit2(&s, -15), Z_OK);
	s.next_in = (unsigned char *)z;
	s.avail_in = (uInt)zlen;
	s.next_out = got;
	s.avail_out = (uInt)size + 1;
	assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
	assert_int_equal(s.avail_in, 0); /* the stream ends where the data does */
	assert_int_equal(s.total_out, size);
	assert_memory_equal(got, want, size);
	inflateEnd(&s);
	free(got);
}

static void pdeflate_one(size_t size, unsigned threads, int level)
{
	int fd = tmpfile_fd();
	unsigned char *m = make_input(fd, size);
	struct pd_pdeflate_opts o = {.fd = fd, .size = size, .level = level, .threads = threads};
	struct pd_pdeflate *p;
	size_t cap = size + size / 8 + 4096, zlen = 0;
	unsigned char *z = malloc(cap);
	ssize_t n;

	assert_int_equal(pd_pdeflate_start(&o, &p), 0);
	/* Odd read sizes: a read may end anywhere inside a chunk. */
	while ((n = pd_pdeflate_read(p, z + zlen, zlen + 7777 < cap ? 7777 : cap - zlen)) > 0)
		zlen += (size_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(pd_pdeflate_out_size(p), zlen);
	assert_int_equal(pd_pdeflate_crc(p), (uint32_t)crc32(0, m, (uInt)size));
	inflate_check(z, zlen, m, size);
	pd_pdeflate_free(p);
	free(z);
	free(m);
	close(fd);
}

static void test_pdeflate_sizes(void **state)
{
	(void)state;
	pdeflate_one(0, 2, 1);
	pdeflate_one(1, 2, 1);
	pdeflate_one(CH - 1, 2, 1);
	pdeflate_one(CH, 2, 6);
	pdeflate_one(CH + 1, 1, 1);
	pdeflate_one(7 * CH + 12345, 3, 1);
	pdeflate_one(9 * CH, 0, 1);
}

/* Freed before the stream is read to its end: the workers stop. */
static void test_pdeflate_early_free(void **state)
{
	int fd = tmpfile_fd();
	unsigned char *m = make_input(fd, 20 * CH);
	struct pd_pdeflate_opts o = {.fd = fd, .size = 20 * CH, .level = 1, .threads = 2};
	struct pd_pdeflate *p;
	char buf[100];

	(void)state;
	assert_int_equal(pd_pdeflate_start(&o, &p), 0);
	assert_true(pd_pdeflate_read(p, buf, sizeof(buf)) > 0);
	pd_pdeflate_free(p);
	o.level = 0;
	assert_int_equal(pd_pdeflate_start(&o, &p), -EINVAL);
	free(m);
	close(fd);
}

/* A read error of the input reaches the reader. */
static void test_pdeflate_read_error(void **state)
{
	int fd = open("/tmp", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600); /* not readable */
	struct pd_pdeflate_opts o = {.fd = fd, .size = 3 * CH, .level = 1, .threads = 2};
	struct pd_pdeflate *p;
	char buf[4096];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 0), 1);
	assert_int_equal(ftruncate(fd, 3 * CH), 0);
	assert_int_equal(pd_pdeflate_start(&o, &p), 0);
	assert_int_equal(pd_pdeflate_read(p, buf, sizeof(buf)), -EBADF);
	assert_int_equal(pd_pdeflate_read(p, buf, sizeof(buf)), -EBADF);
	pd_pdeflate_free(p);
	close(fd);
}

static void zstd_one(size_t size)
{
	int in = tmpfile_fd(), out = tmpfile_fd();
	unsigned char *m = make_input(in, size);
	struct pd_zstd_opts o = {.in_fd = in, .size = size, .out_fd = out};
	uint64_t zlen = 0;
	struct stat st;
	unsigned char *z, *got = malloc(size + 1);

	assert_int_equal(pwrite(out, "stale bytes", 11, 0), 11);
	assert_int_equal(pd_zstd_write(&o, &zlen), 0);
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal((uint64_t)st.st_size, zlen);
	assert_true(zlen <= pd_zstd_bound(size));
	/* The estimate counts the holes next to nothing, and is enough here. */
	assert_true(zlen <= pd_zstd_estimate(in, size));
	z = malloc(zlen);
	assert_int_equal(pread(out, z, zlen, 0), (ssize_t)zlen);
	assert_int_equal(ZSTD_getFrameContentSize(z, zlen), size);
	assert_int_equal(ZSTD_decompress(got, size + 1, z, zlen), size);
	assert_memory_equal(got, m, size);
	free(z);
	free(got);
	free(m);
	close(in);
	close(out);
}

static void test_zstd_sizes(void **state)
{
	(void)state;
	zstd_one(0);
	zstd_one(CH - 3);
	zstd_one(11 * CH + 5);
}

/* A file of 1 GiB with 1 MiB of data: the estimate is about the data's. */
static void test_zstd_estimate_sparse(void **state)
{
	int fd = tmpfile_fd();
	static char data[CH];

	(void)state;
	memset(data, 'x', sizeof(data));
	assert_int_equal(ftruncate(fd, 1 << 30), 0);
	assert_int_equal(pwrite(fd, data, sizeof(data), 512 << 20), sizeof(data));
	assert_true(pd_zstd_estimate(fd, 1 << 30) < 2 * CH);
	assert_true(pd_zstd_estimate(fd, 1 << 30) >= pd_zstd_bound(CH));
	close(fd);
}

static void test_zstd_limit(void **state)
{
	int in = tmpfile_fd(), out = tmpfile_fd();
	unsigned char *m = make_input(in, 8 * CH);
	struct pd_zstd_opts o = {.in_fd = in, .size = 8 * CH, .out_fd = out, .limit = 4096};
	uint64_t zlen = 1;
	struct stat st;

	(void)state;
	assert_int_equal(pd_zstd_write(&o, &zlen), -EFBIG);
	assert_int_equal(zlen, 0);
	assert_int_equal(fstat(out, &st), 0);
	assert_int_equal(st.st_size, 0);
	free(m);
	close(in);
	close(out);
}

/* ---- consume: punched behind the compressor ------------------------------- */

/* Where the input waits: an O_TMPFILE on disk, or a memfd (shmem punches
 * holes too). */
static int spool_fd(bool memfd)
{
	int fd = memfd ? memfd_create("pd-test-spool", MFD_CLOEXEC) : tmpfile_fd();

	assert_true(fd >= 0);
	return fd;
}

static uint64_t blocks_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* A file that is all data (no holes): make_input's pieces, then every hole
 * written as zeros, so its allocation is its size. */
static unsigned char *make_dense(int fd, size_t size)
{
	unsigned char *m = make_input(fd, size);

	assert_int_equal(pwrite(fd, m, size, 0), (ssize_t)size);
	assert_int_equal(fsync(fd), 0); /* blocks counted for delayed allocation too */
	return m;
}

/* The input is still there, byte for byte, with all its blocks. */
static void untouched(int fd, const unsigned char *m, size_t size, uint64_t blocks)
{
	unsigned char *got = malloc(size + 1);

	assert_int_equal(pread(fd, got, size, 0), (ssize_t)size);
	assert_memory_equal(got, m, size);
	assert_int_equal(blocks_of(fd), blocks);
	free(got);
}

struct watch {
	int fd;
	uint64_t at;	 /* look when this many input bytes are done */
	uint64_t bound;	 /* ... for the input's allocation to be at most this */
	uint64_t blocks; /* what it was then; UINT64_MAX: not looked yet */
};

/* The punches are made by a thread of their own: the compressor, held
 * here, waits (up to 10 s) for the allocation to fall to the bound. */
static int watch_progress(void *arg, uint64_t done, uint64_t total)
{
	struct watch *w = arg;

	(void)total;
	if (w->blocks != UINT64_MAX || done < w->at)
		return 0;
	for (int i = 0; i < 10000; i++) {
		w->blocks = blocks_of(w->fd);
		if (w->blocks <= w->bound)
			break;
		usleep(1000);
	}
	return 0;
}

static void pdeflate_consume(bool consume, bool memfd)
{
	const size_t size = 40 * CH + 4321;
	int fd = spool_fd(memfd);
	unsigned char *m = make_dense(fd, size);
	uint64_t before = blocks_of(fd);
	/* With 30 of 40 chunks done, all but the last step and the chunks
	 * ahead are gone; without consume, nothing is. */
	struct watch w = {.fd = fd,
			  .at = 30 * CH,
			  .bound = consume ? size - 30 * CH + PD_SPOOL_BEHIND_STEP + CH : before,
			  .blocks = UINT64_MAX};
	struct pd_pdeflate_opts o = {.fd = fd,
				     .size = size,
				     .level = 1,
				     .threads = 2,
				     .progress = watch_progress,
				     .progress_arg = &w,
				     .consume = consume};
	struct pd_pdeflate *p;
	size_t cap = size + size / 8 + 4096, zlen = 0;
	unsigned char *z = malloc(cap);
	ssize_t n;

	assert_true(before >= size - 4096);
	assert_int_equal(pd_pdeflate_start(&o, &p), 0);
	while ((n = pd_pdeflate_read(p, z + zlen, zlen + 65536 < cap ? 65536 : cap - zlen)) > 0)
		zlen += (size_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(pd_pdeflate_crc(p), (uint32_t)crc32(0, m, (uInt)size));
	inflate_check(z, zlen, m, size);
	pd_pdeflate_free(p);
	assert_true(w.blocks != UINT64_MAX);
	if (consume) {
		/* behind the deflate while it ran, all of it at its end */
		assert_true(w.blocks <= w.bound);
		assert_int_equal(blocks_of(fd), 0);
		/* the size stays (KEEP_SIZE): it reads as zeros now */
		struct stat st;

		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal((uint64_t)st.st_size, size);
	} else {
		assert_int_equal(w.blocks, before);
		untouched(fd, m, size, before);
	}
	free(z);
	free(m);
	close(fd);
}

static void test_pdeflate_consume(void **state)
{
	(void)state;
	pdeflate_consume(true, false);
	pdeflate_consume(true, true);
	pdeflate_consume(false, false);
	pdeflate_consume(false, true);
}

static void zstd_consume(bool consume, bool memfd)
{
	const size_t size = 40 * CH + 4321;
	int in = spool_fd(memfd), out = tmpfile_fd();
	unsigned char *m = make_dense(in, size);
	uint64_t before = blocks_of(in), zlen = 0;
	/* zstdout reports progress every 64 MiB and at the end: the look is
	 * at the end, before the last piece's punch. */
	struct watch w = {.fd = in,
			  .at = 30 * CH,
			  .bound = consume ? PD_SPOOL_BEHIND_STEP + CH + 4096 : before,
			  .blocks = UINT64_MAX};
	struct pd_zstd_opts o = {.in_fd = in,
				 .size = size,
				 .out_fd = out,
				 .threads = 2,
				 .progress = watch_progress,
				 .progress_arg = &w,
				 .consume = consume};
	unsigned char *z, *got = malloc(size + 1);

	assert_int_equal(pd_zstd_write(&o, &zlen), 0);
	z = malloc(zlen);
	assert_int_equal(pread(out, z, zlen, 0), (ssize_t)zlen);
	assert_int_equal(ZSTD_decompress(got, size + 1, z, zlen), size);
	assert_memory_equal(got, m, size);
	assert_true(w.blocks != UINT64_MAX);
	if (consume) {
		assert_true(w.blocks <= w.bound);
		assert_int_equal(blocks_of(in), 0);
	} else {
		assert_int_equal(w.blocks, before);
		untouched(in, m, size, before);
	}
	free(z);
	free(got);
	free(m);
	close(in);
	close(out);
}

static void test_zstd_consume(void **state)
{
	(void)state;
	zstd_consume(true, false);
	zstd_consume(true, true);
	zstd_consume(false, false);
	zstd_consume(false, true);
}

/* The zip's source of a consumed core: its stream read once is the core's
 * deflate; opened again, it fails rather than deflate the holes. A source
 * that does not consume reads the same stream twice. */
static void zfile_once(bool consume)
{
	const size_t size = 12 * CH;
	int fd = tmpfile_fd();
	unsigned char *m = make_dense(fd, size);
	struct pd_zfile *f = pd_zfile_from_fd(fcntl(fd, F_DUPFD_CLOEXEC, 3), size, 0);
	zip_error_t ze;
	zip_source_t *src;
	unsigned char *z = malloc(2 * size);
	zip_int64_t n, zlen = 0;

	assert_non_null(f);
	zip_error_init(&ze);
	src = pd_zfile_deflated_source(f, 1, consume, &ze);
	assert_non_null(src);
	pd_zfile_unref(f);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && consume) {
			assert_int_equal(zip_source_open(src), -1);
			assert_int_equal(zip_error_code_zip(zip_source_error(src)), ZIP_ER_INTERNAL);
			break;
		}
		assert_int_equal(zip_source_open(src), 0);
		zlen = 0;
		while ((n = zip_source_read(src, z + zlen, 65536)) > 0)
			zlen += n;
		assert_int_equal(n, 0);
		assert_int_equal(zip_source_close(src), 0);
		inflate_check(z, (size_t)zlen, m, size);
	}
	if (consume)
		assert_int_equal(blocks_of(fd), 0);
	else
		untouched(fd, m, size, blocks_of(fd));
	zip_source_free(src);
	zip_error_fini(&ze);
	free(z);
	free(m);
	close(fd);
}

static void test_zfile_consume_once(void **state)
{
	(void)state;
	zfile_once(true);
	zfile_once(false);
}

/* The dump job's choice: a core held in RAM (a memfd spool) is punched
 * behind the compressor, a core on disk is left whole (docs/DUMPS.md,
 * "Where the core waits"); the stream is the core either way. The test
 * keeps a dup of the core the job closes, to look at it after. */
static int zstd_open(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit)
{
	(void)arg;
	(void)estimate;
	assert_int_equal(which, PD_DUMPJOB_ZSTD);
	*limit = 0;
	return tmpfile_fd();
}

static void job_consume(bool memfd)
{
	const size_t size = 24 * CH + 999;
	int core = spool_fd(memfd);
	unsigned char *m = make_dense(core, size), *z, *got = malloc(size + 1);
	int keep = dup(core);
	uint64_t before = blocks_of(keep);
	struct pd_dumpjob_opts o = {
		.pid = getpid(), .format = PD_DUMP_FORMAT_ZSTD, .open_out = zstd_open};
	struct pd_dumpjob_result res;

	assert_true(keep >= 0);
	assert_int_equal(pd_dumpjob_finish(&o, core, size, NULL, &res), 0);
	z = malloc(res.size);
	assert_int_equal(pread(res.fd, z, res.size, 0), (ssize_t)res.size);
	assert_int_equal(ZSTD_decompress(got, size + 1, z, res.size), size);
	assert_memory_equal(got, m, size);
	if (memfd)
		assert_int_equal(blocks_of(keep), 0);
	else
		untouched(keep, m, size, before);
	close(res.fd);
	close(keep);
	free(z);
	free(got);
	free(m);
}

static void test_job_consumes_memory_cores_only(void **state)
{
	(void)state;
	job_consume(true);
	job_consume(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pdeflate_sizes),
		cmocka_unit_test(test_pdeflate_early_free),
		cmocka_unit_test(test_pdeflate_read_error),
		cmocka_unit_test(test_zstd_sizes),
		cmocka_unit_test(test_zstd_estimate_sparse),
		cmocka_unit_test(test_zstd_limit),
		cmocka_unit_test(test_pdeflate_consume),
		cmocka_unit_test(test_zstd_consume),
		cmocka_unit_test(test_zfile_consume_once),
		cmocka_unit_test(test_job_consumes_memory_cores_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
