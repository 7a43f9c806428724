/* lib/memcopy and lib/freeze on a real child process: smaps parsing,
 * pagemap planning (untouched pages are never read), batched reads with
 * zeros for what cannot be read, sparse writes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "lib/freeze.h"
#include "lib/memcopy.h"

#define S(lit) (lit), sizeof(lit) - 1

static const char smaps_text[] =
	"55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n"
	"Size:                132 kB\n"
	"Rss:                   8 kB\n"
	"Anonymous:             8 kB\n"
	"Swap:                  4 kB\n"
	"VmFlags: rd wr mr mw me ac sd \n"
	"7f0000000000-7f0000002000 r--p 00001000 fe:00 1234                       /usr/lib/libx.so "
	"(deleted)\n"
	"Rss:                   4 kB\n"
	"Anonymous:            12 kB\n"
	"VmFlags: rd mr mw me dd sd \n"
	"7ffd00000000-7ffd00004000 r--p 00000000 00:00 0                          [vvar]\n"
	"Rss:                   0 kB\n"
	"VmFlags: rd mr pf io de dd \n";

static void test_smaps_parse(void **state)
{
	struct pd_vmas v = PD_VMAS_INIT;

	(void)state;
	assert_int_equal(pd_parse_smaps(S(smaps_text), &v), 0);
	assert_int_equal(v.n, 3);
	assert_int_equal(v.v[0].map->start, 0x55d0c0a00000ull);
	assert_string_equal(v.v[0].map->path, "[heap]");
	assert_int_equal(v.v[0].rss, 8192);
	assert_int_equal(v.v[0].swap, 4096);
	assert_int_equal(v.v[0].anonymous, 8192);
	assert_int_equal(v.v[0].vmflags, 0);
	assert_string_equal(v.v[1].map->path, "/usr/lib/libx.so");
	assert_true(v.v[1].map->deleted);
	assert_int_equal(v.v[1].anonymous, 12288);
	assert_int_equal(v.v[1].vmflags, PD_VM_DD);
	assert_int_equal(v.v[2].vmflags, PD_VM_DD | PD_VM_IO | PD_VM_PF);
	pd_vmas_release(&v);
}

static void test_smaps_every_prefix(void **state)
{
	(void)state;
	for (size_t n = 0; n <= sizeof(smaps_text) - 1; n++) {
		char *b = malloc(n ? n : 1);
		struct pd_vmas v = PD_VMAS_INIT;
		int rc;

		memcpy(b, smaps_text, n);
		rc = pd_parse_smaps(b, n, &v);
		/* A cut inside a line is an error; a cut between lines parses. */
		if (n == 0 || smaps_text[n - 1] == '\n')
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, -EINVAL);
		if (rc < 0)
			assert_int_equal(v.n, 0);
		pd_vmas_release(&v);
		free(b);
	}
}

static void test_smaps_real_self(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_vmas v = PD_VMAS_INIT;
	uintptr_t here = (uintptr_t)&sb;
	bool found = false;

	(void)state;
	assert_int_equal(pd_read_file_at(AT_FDCWD, "/proc/self/smaps", &sb, 64 << 20), 0);
	assert_int_equal(pd_parse_smaps(sb.buf, sb.len, &v), 0);
	assert_true(v.n > 3);
	for (size_t i = 0; i < v.n; i++) {
		if (i)
			assert_true(v.v[i].map->start >= v.v[i - 1].map->end);
		if (here >= v.v[i].map->start && here < v.v[i].map->end) {
			found = true;
			assert_true(v.v[i].rss > 0); /* our stack is resident */
		}
	}
	assert_true(found);
	pd_vmas_release(&v);
	strbuf_release(&sb);
}

/* A child holding: a pattern region, a never-touched anonymous region, and
 * an unmapped hole between two mapped pages. It inherits our addresses. */
struct kid {
	pid_t pid;
	char *pattern;	 /* 16 pages, page i filled with 'a' + i; page 3 zeros */
	char *untouched; /* 64 pages, never touched */
	char *gap;	 /* 3 pages: the middle one unmapped */
	size_t page;
};

static void start_kid(struct kid *k)
{
	int p[2];
	char c;

	k->page = (size_t)sysconf(_SC_PAGESIZE);
	k->pattern = mmap(NULL, 16 * k->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	k->untouched = mmap(NULL, 64 * k->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	k->gap =
		mmap(NULL, 3 * k->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(k->pattern != MAP_FAILED && k->untouched != MAP_FAILED && k->gap != MAP_FAILED);
	for (size_t i = 0; i < 16; i++)
		memset(k->pattern + i * k->page, i == 3 ? 0 : 'a' + (int)i, k->page);
	memset(k->gap, 'x', 3 * k->page);
	assert_int_equal(munmap(k->gap + k->page, k->page), 0);
	assert_int_equal(pipe(p), 0);
	k->pid = fork();
	assert_true(k->pid >= 0);
	if (k->pid == 0) {
		close(p[0]);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
}

static void stop_kid(struct kid *k)
{
	kill(k->pid, SIGKILL);
	waitpid(k->pid, NULL, 0);
	munmap(k->pattern, 16 * k->page);
	munmap(k->untouched, 64 * k->page);
	munmap(k->gap, k->page);
	munmap(k->gap + 2 * k->page, k->page);
}

static void test_copy_child(void **state)
{
	struct kid k;
	struct pd_freeze fz;
	struct pd_copy c;
	struct pd_runs runs = PD_RUNS_INIT;
	char *buf, tmpl[] = "/tmp/pd-memcopy-XXXXXX";
	uint64_t written = 0;
	struct stat st;
	int fd;

	(void)state;
	start_kid(&k);
	assert_int_equal(pd_freeze_open(&fz, k.pid, 0, NULL), 0);
	assert_int_equal(pd_freeze_stop(&fz, 2000), 0);
	assert_int_equal(fz.n, 1);
	assert_int_equal(fz.threads[0].tid, k.pid);
	assert_true(fz.threads[0].regs.rsp != 0);
	pd_copy_init(&c, &fz);

	/* Untouched anonymous pages: planned away, nothing to read. */
	assert_int_equal(pd_copy_plan(&c, (uintptr_t)k.untouched, 64 * k.page, 0, true, &runs), 0);
	assert_int_equal(runs.n, 0);
	/* The pattern at offset 0, the gap (3 pages) after it; without
	 * pagemap every page is planned. */
	assert_int_equal(pd_copy_plan(&c, (uintptr_t)k.pattern, 16 * k.page, 0, true, &runs), 0);
	assert_int_equal(runs.bytes, 16 * k.page);
	assert_int_equal(pd_copy_plan(&c, (uintptr_t)k.gap, 3 * k.page, 16 * k.page, false, &runs),
			 0);
	assert_int_equal(runs.bytes, 19 * k.page);

	buf = malloc(runs.bytes);
	assert_non_null(buf);
	assert_int_equal(pd_copy_read(&c, runs.v, runs.n, buf), 0);
	assert_int_equal(memcmp(buf, k.pattern, 16 * k.page), 0);
	assert_true(buf[16 * k.page] == 'x' && buf[18 * k.page] == 'x');
	for (size_t i = 0; i < k.page; i++)
		assert_int_equal(buf[17 * k.page + i], 0); /* the unmapped page */
	assert_int_equal(c.unreadable, 1);

	/* Written sparse: zero pages are holes, data lands at its offsets. */
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(pd_copy_write(fd, runs.v, runs.n, buf, &written, NULL), 0);
	assert_int_equal(written, 17 * k.page); /* 19 pages minus two zero pages */
	assert_int_equal(ftruncate(fd, (off_t)(19 * k.page)), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 <= 18 * k.page);
	{
		char p[8];

		assert_int_equal(pread(fd, p, 1, (off_t)(5 * k.page)), 1);
		assert_int_equal(p[0], 'a' + 5);
		assert_int_equal(pread(fd, p, 1, (off_t)(3 * k.page)), 1);
		assert_int_equal(p[0], 0);
	}
	close(fd);
	free(buf);
	pd_runs_release(&runs);
	pd_copy_release(&c);

	/* Thawed: the child runs (sleeps) again, not traced-stopped. */
	pd_freeze_thaw(&fz);
	assert_true(pd_freeze_stopped_us(&fz) > 0);
	pd_freeze_close(&fz);
	{
		char path[64], st_buf[512];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)k.pid);
		f = fopen(path, "r");
		assert_non_null(f);
		assert_non_null(fgets(st_buf, sizeof(st_buf), f));
		fclose(f);
		assert_true(strrchr(st_buf, ')')[2] != 't');
	}
	stop_kid(&k);
}

static void test_freeze_errors(void **state)
{
	struct pd_freeze fz;
	siginfo_t si;
	pid_t z;

	(void)state;
	assert_int_equal(pd_freeze_open(&fz, 0, 0, NULL), -ESRCH);
	assert_int_equal(pd_freeze_open(&fz, 2, 0, NULL), -EOPNOTSUPP); /* kthreadd */
	z = fork();
	assert_true(z >= 0);
	if (z == 0)
		_exit(0);
	/* Until reaped it is a zombie: wait for its exit without reaping. */
	assert_int_equal(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(pd_freeze_open(&fz, z, 0, NULL), -EOWNERDEAD);
	waitpid(z, NULL, 0);
	assert_int_equal(pd_freeze_open(&fz, z, 0, NULL), -ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smaps_parse),	cmocka_unit_test(test_smaps_every_prefix),
		cmocka_unit_test(test_smaps_real_self), cmocka_unit_test(test_copy_child),
		cmocka_unit_test(test_freeze_errors),
	};

	return cmocka_run_group_tests_name("memcopy", tests, NULL, NULL);
}
