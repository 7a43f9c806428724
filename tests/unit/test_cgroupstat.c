/* lib/cgroupstat: the parsers on real and hostile text, the readers on a
 * cgroupfs-shaped directory tree (walking up to the limit, v1 and v2) and on
 * this machine's own /proc and cgroupfs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cgroupstat.h"

#define S(lit) (lit), sizeof(lit) - 1

/* The bytes in a heap block of exactly their size (a read past the end is
 * a valgrind/ASan report). */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

/* A parser called on an exact copy of s[0..n). */
#define EXACT(parser, s, n, out)                                                                   \
	({                                                                                         \
		char *p_ = exact((s), (n));                                                        \
		int r_ = parser(p_, (n), (out));                                                   \
		free(p_);                                                                          \
		r_;                                                                                \
	})

/* ---- mountinfo ------------------------------------------------------------ */

/* This machine's (hybrid: v1 controllers and the v2 "unified" hierarchy). */
static const char mi_hybrid[] =
	"22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw\n"
	"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

/* A systemd v2 host, with optional fields, and a container's bind mount
 * of a subtree first. */
static const char mi_v2[] =
	"25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"26 25 0:23 /docker/abc /mnt/sub\\040dir rw shared:5 master:2 - cgroup2 cgroup2 rw\n"
	"27 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n";

static const char mi_v1[] = "35 30 0:32 / /cg/mem rw - cgroup cgroup rw,memory,memsw\n"
			    "36 30 0:33 / /cg/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";

static int parse_mi(const char *s, size_t n, struct pd_cgroup_mountinfo *mi)
{
	return EXACT(pd_cgroup_parse_mountinfo, s, n, mi);
}

static void test_mountinfo(void **state)
{
	static struct pd_cgroup_mountinfo mi;

	(void)state;
	assert_int_equal(parse_mi(S(mi_hybrid), &mi), 0);
	assert_true(mi.v2.found);
	assert_string_equal(mi.v2.dir, "/sys/fs/cgroup/unified");
	assert_string_equal(mi.v2.root, "/");
	assert_true(mi.v1mem.found);
	assert_string_equal(mi.v1mem.dir, "/sys/fs/cgroup/memory");

	/* The root-"/" mount wins over an earlier subtree bind mount. */
	assert_int_equal(parse_mi(S(mi_v2), &mi), 0);
	assert_true(mi.v2.found);
	assert_string_equal(mi.v2.dir, "/sys/fs/cgroup");
	assert_false(mi.v1mem.found);

	/* Only a subtree: taken, with its root and the escaped space. */
	assert_int_equal(parse_mi(S("26 25 0:23 /docker/abc /mnt/sub\\040dir rw shared:5 - "
				    "cgroup2 cgroup2 rw\n"),
			      &mi),
			 0);
	assert_string_equal(mi.v2.dir, "/mnt/sub dir");
	assert_string_equal(mi.v2.root, "/docker/abc");

	/* "memory" is an item of the super options, not a substring. */
	assert_int_equal(parse_mi(S(mi_v1), &mi), 0);
	assert_true(mi.v1mem.found);
	assert_string_equal(mi.v1mem.dir, "/cg/mem");
	assert_false(mi.v2.found);
	assert_int_equal(parse_mi(S("35 30 0:32 / /x rw - cgroup cgroup rw,nomemory\n"), &mi), 0);
	assert_false(mi.v1mem.found);

	/* Nothing there is not an error. */
	assert_int_equal(parse_mi(S(""), &mi), 0);
	assert_false(mi.v2.found || mi.v1mem.found);
}

static void test_mountinfo_bad(void **state)
{
	static struct pd_cgroup_mountinfo mi;
	static const char *const bad[] = {
		"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw", /* cut */
		"40 30 0:37 / /u rw,relatime cgroup2 cgroup2 rw\n",                 /* no "-" */
		"40 30 0:37 / /u rw -\n",                                         /* no fstype */
		"40 30 0:37 / /u\\04 rw - cgroup2 cgroup2 rw\n",                  /* cut escape */
		"40 30 0:37 / /u\\000 rw - cgroup2 cgroup2 rw\n",                 /* NUL */
		"40 30 0:37 / u rw - cgroup2 cgroup2 rw\n",                       /* relative */
		"40 30 0:37 / /u rw - cgroup2 cgroup2 rw extra\n",
		"40  30 0:37 / /u rw - cgroup2 cgroup2 rw\n", /* empty field */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&mi, 0x5a, sizeof(mi));
		assert_int_equal(parse_mi(bad[i], strlen(bad[i]), &mi), -EINVAL);
		assert_int_equal(((unsigned char *)&mi)[0], 0x5a); /* untouched */
	}
}

/* ---- /proc/PID/cgroup ------------------------------------------------------ */

static int parse_pc(const char *s, size_t n, struct pd_proc_cgroup *pc)
{
	return EXACT(pd_cgroup_parse_proc, s, n, pc);
}

static void test_proc_cgroup(void **state)
{
	static struct pd_proc_cgroup pc;

	(void)state;
	/* v2 only. */
	assert_int_equal(parse_pc(S("0::/system.slice/php-fpm.service\n"), &pc), 0);
	assert_true(pc.has_v2);
	assert_false(pc.has_v1mem);
	assert_string_equal(pc.v2, "/system.slice/php-fpm.service");

	/* Hybrid, as this machine writes it. */
	assert_int_equal(parse_pc(S("9:name=systemd:/\n8:pids:/\n"
				    "4:memory:/process_api/abb71db0\n3:cpuset:/\n0::/\n"),
			      &pc),
			 0);
	assert_true(pc.has_v2 && pc.has_v1mem);
	assert_string_equal(pc.v2, "/");
	assert_string_equal(pc.v1mem, "/process_api/abb71db0");

	/* v1 only, memory co-mounted; a ':' in the path is part of it. */
	assert_int_equal(parse_pc(S("5:cpu,memory:/a:b/c\n"), &pc), 0);
	assert_false(pc.has_v2);
	assert_true(pc.has_v1mem);
	assert_string_equal(pc.v1mem, "/a:b/c");

	/* Out of the reader's cgroup namespace: kept as written, the
	 * readers refuse it (test_readers_tree). */
	assert_int_equal(parse_pc(S("0::/../../x\n"), &pc), 0);
	assert_string_equal(pc.v2, "/../../x");

	assert_int_equal(parse_pc(S(""), &pc), 0);
	assert_false(pc.has_v2 || pc.has_v1mem);
}

static void test_proc_cgroup_bad(void **state)
{
	static struct pd_proc_cgroup pc;
	static const char *const bad[] = {
		"0::/x",     /* cut */
		"0:/x\n",    /* one colon */
		"x::/x\n",   /* id */
		"0::x\n",    /* relative */
		"0::\n",     /* empty */
		"-1::/x\n",
	};
	char big[PD_CG_PATH_MAX + 8];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&pc, 0x5a, sizeof(pc));
		assert_int_equal(parse_pc(bad[i], strlen(bad[i]), &pc), -EINVAL);
		assert_int_equal(((unsigned char *)&pc)[0], 0x5a);
	}
	assert_int_equal(parse_pc(S("0::/a\0b\n"), &pc), -EINVAL);
	/* Too long a path. */
	memcpy(big, "0::/", 4);
	memset(big + 4, 'a', sizeof(big) - 5);
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(parse_pc(big, sizeof(big), &pc), -ERANGE);
}

/* ---- memory and PSI text ---------------------------------------------------- */

static void test_limit_usage(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(pd_cgroup_parse_limit(S("max\n"), &v), 0);
	assert_true(v == 0);
	assert_int_equal(pd_cgroup_parse_limit(S("268435456\n"), &v), 0);
	assert_true(v == 268435456);
	/* v1's "unlimited", 4 KiB and 64 KiB pages. */
	assert_int_equal(pd_cgroup_parse_limit(S("9223372036854771712\n"), &v), 0);
	assert_true(v == 0);
	assert_int_equal(pd_cgroup_parse_limit(S("9223372036854710272\n"), &v), 0);
	assert_true(v == 0);
	/* memory.max 0 is a limit nothing fits under. */
	assert_int_equal(pd_cgroup_parse_limit(S("0\n"), &v), 0);
	assert_true(v == 1);
	v = 7;
	assert_int_equal(pd_cgroup_parse_limit(S("max"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_limit(S("Max\n"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_limit(S("1\n2\n"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_limit(S("-1\n"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_limit(S("99999999999999999999\n"), &v), -ERANGE);
	assert_true(v == 7);

	assert_int_equal(pd_cgroup_parse_usage(S("12345\n"), &v), 0);
	assert_true(v == 12345);
	assert_int_equal(pd_cgroup_parse_usage(S("max\n"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_usage(S("\n"), &v), -EINVAL);
	assert_int_equal(pd_cgroup_parse_usage(S(""), &v), -EINVAL);
}

static int parse_psi(const char *s, size_t n, struct pd_psi *p)
{
	return EXACT(pd_psi_parse, s, n, p);
}

static void test_psi(void **state)
{
	struct pd_psi p;

	(void)state;
	assert_int_equal(parse_psi(S("some avg10=12.34 avg60=0.50 avg300=0.00 total=443\n"
				     "full avg10=100.00 avg60=0.00 avg300=0.00 total=119\n"),
			       &p),
			 0);
	assert_true(p.has_some && p.has_full);
	assert_int_equal(p.some_avg10, 1234);
	assert_int_equal(p.full_avg10, 10000);
	assert_true(p.some_total == 443 && p.full_total == 119);

	/* No full line (cpu before 5.13); unknown lines are skipped. */
	assert_int_equal(parse_psi(S("some avg10=0.07 avg60=0.00 avg300=0.00 total=1\n"
				     "other stuff\n"),
			       &p),
			 0);
	assert_true(p.has_some && !p.has_full);
	assert_int_equal(p.some_avg10, 7);

	memset(&p, 0x5a, sizeof(p));
	assert_int_equal(parse_psi(S(""), &p), -EINVAL);
	assert_int_equal(parse_psi(S("full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=1.00 avg60=0.00 avg300=0.00 total=1"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=1.0 avg60=0.00 avg300=0.00 total=1\n"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=1 avg60=0.00 avg300=0.00 total=1\n"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=.00 avg60=0.00 avg300=0.00 total=1\n"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg60=0.00 avg10=1.00 avg300=0.00 total=1\n"), &p),
			 -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=1.00 avg60=0.00 avg300=0.00\n"), &p), -EINVAL);
	assert_int_equal(parse_psi(S("some avg10=1.00 avg60=0.00 avg300=0.00 total=1 x=1\n"), &p),
			 -EINVAL);
	assert_int_equal(
		parse_psi(S("some avg10=99999999999.00 avg60=0.00 avg300=0.00 total=1\n"), &p),
		-ERANGE);
	assert_int_equal(((unsigned char *)&p)[0], 0x5a);
}

/* Every prefix of valid text that ends mid-line is a short read. */
static void test_every_prefix(void **state)
{
	static const char psi[] = "some avg10=12.34 avg60=0.50 avg300=0.00 total=443\n"
				  "full avg10=1.00 avg60=0.00 avg300=0.00 total=119\n";
	static struct pd_cgroup_mountinfo mi;
	static struct pd_proc_cgroup pc;
	struct pd_psi p;

	(void)state;
	for (size_t n = 0; n < sizeof(psi) - 1; n++) {
		int r = parse_psi(psi, n, &p);

		/* Whole when it ends after the first line; "some" is required. */
		assert_true(n > 0 && psi[n - 1] == '\n' ? r == 0 : r == -EINVAL);
	}
	for (size_t n = 0; n < sizeof(mi_hybrid) - 1; n++) {
		int r = parse_mi(mi_hybrid, n, &mi);

		assert_true(n == 0 || mi_hybrid[n - 1] == '\n' ? r == 0 : r == -EINVAL);
	}
	for (size_t n = 0; n < sizeof("0::/a/b\n4:memory:/c\n") - 1; n++) {
		int r = parse_pc("0::/a/b\n4:memory:/c\n", n, &pc);

		assert_true(n == 0 || n == 8 ? r == 0 : r == -EINVAL);
	}
}

/* ---- readers on a tree shaped like cgroupfs --------------------------------- */

static char tmpdir[64];

static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void dir(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int setup_tree(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pd-cgtest-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown_tree(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A mounts struct whose hierarchy is the tree: version 2 or 1. */
static void tree_mounts(struct pd_cgroup_mounts *m, int version, const char *root)
{
	struct pd_cgroup_mount *mnt = version == 2 ? &m->mi.v2 : &m->mi.v1mem;
	int fd = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	memset(m, 0, sizeof(*m));
	m->v2fd = m->v1memfd = -1;
	mnt->found = true;
	snprintf(mnt->dir, sizeof(mnt->dir), "%s", tmpdir);
	snprintf(mnt->root, sizeof(mnt->root), "%s", root);
	if (version == 2)
		m->v2fd = fd;
	else
		m->v1memfd = fd;
}

static void test_readers_tree_v2(void **state)
{
	static struct pd_cgroup_mounts m;
	static struct pd_proc_cgroup pc;
	struct pd_cgroup_memory mem;
	struct pd_psi p;
	char why[256];

	(void)state;
	/* root (no memory.max) / a (limit 1000) / b (max) / c (max), and
	 * d beside b with no memory controller. */
	dir("a");
	dir("a/b");
	dir("a/b/c");
	dir("a/d");
	put("a/memory.max", "1000\n");
	put("a/memory.current", "700\n");
	put("a/b/memory.max", "max\n");
	put("a/b/memory.current", "300\n");
	put("a/b/c/memory.max", "max\n");
	put("a/b/c/memory.current", "100\n");
	put("a/b/c/memory.pressure", "some avg10=3.25 avg60=0.00 avg300=0.00 total=9\n"
				     "full avg10=1.50 avg60=0.00 avg300=0.00 total=4\n");
	tree_mounts(&m, 2, "/");

	/* Two levels up to the limit; its usage, not the process's own. */
	pc.has_v2 = true;
	pc.has_v1mem = false;
	strcpy(pc.v2, "/a/b/c");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_int_equal(mem.version, 2);
	assert_true(mem.limit == 1000 && mem.usage == 700);
	assert_int_equal(mem.levels, 2);

	/* A limit of its own. */
	put("a/b/c/memory.max", "500\n");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.limit == 500 && mem.usage == 100 && mem.levels == 0);

	/* No limit anywhere: the process's own usage, limit 0. */
	put("a/b/c/memory.max", "max\n");
	put("a/memory.max", "max\n");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.limit == 0 && mem.usage == 100 && mem.levels == 0);

	/* PSI of the cgroup. */
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), 0);
	assert_true(p.some_avg10 == 325 && p.full_avg10 == 150);

	/* No memory controller on d: said so. */
	strcpy(pc.v2, "/a/d");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "memory controller is not enabled"));
	/* A cgroup removed meanwhile. */
	strcpy(pc.v2, "/a/gone");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "gone"));
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), -ENOENT);

	/* Out of the namespace: refused, never opened. */
	strcpy(pc.v2, "/a/../../etc");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -EXDEV);
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), -EXDEV);

	/* A bind mount of /a: paths under it are found, others refused. */
	close(m.v2fd);
	tree_mounts(&m, 2, "/x");
	strcpy(pc.v2, "/x/a/b/c");
	put("a/memory.max", "2000\n");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.limit == 2000 && mem.usage == 700 && mem.levels == 2);
	strcpy(pc.v2, "/xa/b/c");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -EXDEV);

	/* Garbage in a file: -EINVAL, said. */
	strcpy(pc.v2, "/x/a/b/c");
	put("a/b/c/memory.max", "lots\n");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "memory.max"));

	/* No v2 at all: the cgroup's PSI says why. */
	pd_cgroup_mounts_close(&m);
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "cgroup v2"));
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), -EOPNOTSUPP);
}

/* Processes of one cgroup are read once per memo_ms; another cgroup, or a
 * later reading, goes to the files. */
static void test_memo(void **state)
{
	static struct pd_cgroup_mounts m;
	static struct pd_proc_cgroup pc;
	struct pd_cgroup_memory mem;
	struct pd_psi p;
	char why[256];

	(void)state;
	dir("a");
	dir("b");
	put("a/memory.max", "1000\n");
	put("a/memory.current", "100\n");
	put("b/memory.max", "1000\n");
	put("b/memory.current", "200\n");
	put("a/memory.pressure", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1\n");
	tree_mounts(&m, 2, "/");
	m.memo_ms = 600000;
	pc.has_v2 = true;
	pc.has_v1mem = false;
	strcpy(pc.v2, "/a");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.usage == 100);
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), 0);
	assert_int_equal(p.some_avg10, 100);
	put("a/memory.current", "150\n");
	put("a/memory.pressure", "some avg10=2.00 avg60=0.00 avg300=0.00 total=1\n");
	/* Within memo_ms: the same reading. */
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.usage == 100);
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), 0);
	assert_int_equal(p.some_avg10, 100);
	/* Another cgroup is its own. */
	strcpy(pc.v2, "/b");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.usage == 200);
	/* Errors are kept with their sentence. */
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), -ENOENT);
	why[0] = '\0';
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "/b memory.pressure"));
	/* Once memo_ms is over, the files again. */
	m.memo_ms = 0;
	strcpy(pc.v2, "/a");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.usage == 150);
	assert_int_equal(pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why)), 0);
	assert_int_equal(p.some_avg10, 200);
	pd_cgroup_mounts_close(&m);
}

static void test_readers_tree_v1(void **state)
{
	static struct pd_cgroup_mounts m;
	static struct pd_proc_cgroup pc;
	struct pd_cgroup_memory mem;
	char why[256];

	(void)state;
	/* v1's root has the files too, unlimited. */
	dir("p");
	dir("p/q");
	put("memory.limit_in_bytes", "9223372036854771712\n");
	put("memory.usage_in_bytes", "5000000\n");
	put("p/memory.limit_in_bytes", "4096000\n");
	put("p/memory.usage_in_bytes", "4000000\n");
	put("p/q/memory.limit_in_bytes", "9223372036854771712\n");
	put("p/q/memory.usage_in_bytes", "1000\n");
	tree_mounts(&m, 1, "/");
	pc.has_v2 = true;
	strcpy(pc.v2, "/");
	pc.has_v1mem = true;
	strcpy(pc.v1mem, "/p/q/");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_int_equal(mem.version, 1);
	assert_true(mem.limit == 4096000 && mem.usage == 4000000 && mem.levels == 1);

	/* None: the root's unlimited, and the own usage. */
	put("p/memory.limit_in_bytes", "9223372036854771712\n");
	assert_int_equal(pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why)), 0);
	assert_true(mem.limit == 0 && mem.usage == 1000);
	pd_cgroup_mounts_close(&m);
}

/* ---- this machine -------------------------------------------------------------- */

static void test_real_self(void **state)
{
	static struct pd_cgroup_mounts m;
	static struct pd_proc_cgroup pc;
	struct strbuf sb = STRBUF_INIT;
	struct pd_cgroup_memory mem;
	struct pd_psi p;
	char why[256];
	size_t alloc;
	int r;

	(void)state;
	assert_int_equal(pd_cgroup_mounts_open(&m), 0);
	assert_int_equal(pd_cgroup_read_proc(getpid(), &sb, &pc, why, sizeof(why)), 0);
	assert_true(pc.has_v2 || pc.has_v1mem);
	/* The scratch buffer is reused: a second read does not grow it. */
	alloc = sb.alloc;
	assert_int_equal(pd_cgroup_read_proc(getpid(), &sb, &pc, why, sizeof(why)), 0);
	assert_true(sb.alloc == alloc);
	assert_int_equal(pd_cgroup_read_proc(-5, &sb, &pc, why, sizeof(why)), -ESRCH);
	assert_non_null(strstr(why, "gone"));

	/* Whatever this machine has, an answer or a reason. */
	why[0] = '\0';
	r = pd_cgroup_memory_read(&m, &pc, &mem, why, sizeof(why));
	print_message("# memory: %d (%s) v%d usage %llu limit %llu\n", r, why, mem.version,
		      (unsigned long long)(r ? 0 : mem.usage),
		      (unsigned long long)(r ? 0 : mem.limit));
	assert_true(r == 0 || (r == -EOPNOTSUPP && why[0]));
	if (r == 0 && mem.limit)
		assert_true(mem.usage > 0);

	why[0] = '\0';
	r = pd_psi_read_system(&p, why, sizeof(why));
	if (access("/proc/pressure/memory", R_OK) == 0) {
		assert_int_equal(r, 0);
		assert_true(p.has_some && p.has_full);
	} else {
		assert_int_equal(r, -EOPNOTSUPP);
		assert_non_null(strstr(why, "PSI"));
	}
	why[0] = '\0';
	r = pd_psi_read_cgroup(&m, &pc, &p, why, sizeof(why));
	print_message("# cgroup psi: %d (%s)\n", r, why);
	assert_true(r == 0 || (r == -EOPNOTSUPP && why[0]));
	pd_cgroup_mounts_close(&m);
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_mountinfo_bad),
		cmocka_unit_test(test_proc_cgroup),
		cmocka_unit_test(test_proc_cgroup_bad),
		cmocka_unit_test(test_limit_usage),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test_setup_teardown(test_readers_tree_v2, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_readers_tree_v1, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_memo, setup_tree, teardown_tree),
		cmocka_unit_test(test_real_self),
	};

	return cmocka_run_group_tests_name("cgroupstat", tests, NULL, NULL);
}
