/* Integration tests of lib/proc, lib/modules, lib/snapshot, lib/killtree and
 * lib/spoolkeep
 * against real child processes (no mocked /proc). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/killtree.h"
#include "lib/modules.h"
#include "lib/ownerfile.h"
#include "lib/proc.h"
#include "lib/scope.h"
#include "lib/snapshot.h"
#include "lib/spoolkeep.h"

/* ---- helpers ---------------------------------------------------------------- */

static void write_int(int fd, int v)
{
	ssize_t n = write(fd, &v, sizeof(v));

	(void)n;
}

static int read_int(int fd)
{
	int v = -1;

	assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
	return v;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A child that runs nthreads extra threads, says so, and waits to die. */
static pid_t spawn_child(int nthreads)
{
	int pfd[2];
	pid_t pid;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < nthreads; i++) {
			pthread_t t;

			if (pthread_create(&t, NULL, idle_thread, NULL))
				_exit(1);
		}
		write_int(pfd[1], (int)syscall(SYS_gettid));
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read_int(pfd[0]), pid);
	close(pfd[0]);
	return pid;
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static bool is_alive(pid_t pid)
{
	return kill(pid, 0) == 0;
}

/* Kill needs pidfds; valgrind (3.19) answers ENOSYS to them. */
static bool have_pidfd(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Valgrind does not give its guest a vDSO. */
static bool have_vdso(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, "[vdso]") != NULL;
	if (f)
		fclose(f);
	return found;
}

/* ---- proc ----------------------------------------------------------------------- */

static void test_tasks(void **state)
{
	struct pd_tasks tasks = PD_TASKS_INIT;
	struct pd_proc p, q;
	struct pd_stat st;
	pid_t pid = spawn_child(3);

	(void)state;
	assert_int_equal(pd_proc_open(pid, &p), 0);
	assert_int_equal(p.stat.pid, pid);
	assert_int_equal(p.stat.ppid, getpid());
	assert_int_equal(pd_proc_tasks(&p, &tasks), 0);
	assert_int_equal(tasks.n, 4);
	assert_int_equal(tasks.v[0].pid, pid); /* sorted: the leader has the lowest tid */
	for (size_t i = 1; i < tasks.n; i++)
		assert_true(tasks.v[i].pid > tasks.v[i - 1].pid);
	assert_int_equal(pd_proc_task(&p, tasks.v[2].pid, &st), 0);
	assert_int_equal(st.pid, tasks.v[2].pid);
	assert_int_equal(pd_proc_task(&p, getpid(), &st), -ESRCH);
	/* A thread id is not a process (told apart with pidfd_open). */
	if (have_pidfd())
		assert_int_equal(pd_proc_open(tasks.v[1].pid, &q), -ESRCH);
	pd_tasks_release(&tasks);

	kill_and_reap(pid);
	assert_int_equal(pd_proc_status(&p, &(struct pd_status){0}), -ESRCH);
	assert_int_equal(pd_proc_tasks(&p, &tasks), -ESRCH);
	pd_proc_close(&p);
	assert_int_equal(pd_proc_open(pid, &p), -ESRCH);
	assert_int_equal(pd_proc_open(0, &p), -ESRCH);
}

/* A stat line that does not parse, then no file: the writer of the FIFO
 * unlinks it before it closes, so the second open can only fail. */
struct vanishing {
	const char *fifo;
	const char *line;
};

static void *write_then_vanish(void *arg)
{
	struct vanishing *v = arg;
	int fd = open(v->fifo, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = write(fd, v->line, strlen(v->line));

		(void)n;
		unlink(v->fifo);
		close(fd);
	}
	return NULL;
}

/* A stat line that does not parse is read once more (lib/proc.h): a
 * process gone by then is -ESRCH, not the parser's -ERANGE, which a dump
 * answered with a 500; a file that stays bad keeps its error. */
static void test_stat_gone_after_bad_line(void **state)
{
	static const char bad[] = "77 (x) S 0 -7 -1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 "
				  "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n";
	static const char reaped[] = "77 (x) X 0 -1 -1 0 -1 4227148 0 0 0 0 0 0 0 0 20 0 0 0 5 0 0 "
				     "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 0\n";
	char dir[] = "/tmp/pd-unit-stat-XXXXXX", path[64];
	struct vanishing v = {path, bad};
	struct pd_stat st;
	pthread_t t;
	int dfd, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	snprintf(path, sizeof(path), "%s/stat", dir);

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(pthread_create(&t, NULL, write_then_vanish, &v), 0);
	assert_int_equal(pd_read_stat_at(dfd, "stat", &st), -ESRCH);
	pthread_join(t, NULL);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
	assert_int_equal(pd_read_stat_at(dfd, "stat", &st), -ERANGE);
	/* The kernel's line of a reaped task parses; its state says so. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, reaped, sizeof(reaped) - 1, 0), (ssize_t)(sizeof(reaped) - 1));
	assert_int_equal(pd_read_stat_at(dfd, "stat", &st), 0);
	assert_int_equal(st.state, 'X');
	assert_int_equal(st.pgrp, -1);
	close(fd);
	unlink(path);
	close(dfd);
	rmdir(dir);
}

/* exec a known command line and environment, then read them back. */
static void test_exec_views(void **state)
{
	char *argv[] = {"sleep", "30", NULL};
	char *envp[] = {"PD_TEST=one", "B=two words", NULL};
	struct pd_strv sv = PD_STRV_INIT;
	struct strbuf sb = STRBUF_INIT;
	struct pd_proc p;
	int pfd[2];
	char c;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execve("/bin/sleep", argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 0); /* EOF: exec closed it */
	close(pfd[0]);

	assert_int_equal(pd_proc_open(pid, &p), 0);
	assert_int_equal(pd_proc_cmdline(&p, &sv), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "sleep");
	assert_string_equal(sv.v[1], "30");
	pd_strv_release(&sv);
	assert_int_equal(pd_proc_environ(&p, &sv), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "PD_TEST=one");
	assert_string_equal(sv.v[1], "B=two words");
	pd_strv_release(&sv);
	assert_int_equal(pd_proc_exe(&p, &sb), 0);
	assert_non_null(strstr(sb.buf, "sleep"));
	assert_int_equal(sb.buf[0], '/');
	strbuf_release(&sb);
	pd_proc_close(&p);
	kill_and_reap(pid);
}

static void test_self_files(void **state)
{
	struct pd_fds fds = PD_FDS_INIT;
	struct pd_status status;
	struct pd_rollup ru;
	struct pd_maps maps = PD_MAPS_INIT;
	struct pd_proc p;
	bool found = false;
	int fd;

	(void)state;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pd_proc_open(getpid(), &p), 0);
	assert_int_equal(p.uid, geteuid());
	assert_int_equal(pd_proc_status(&p, &status), 0);
	assert_int_equal(status.ppid, getppid());
	assert_true(status.vm_rss > 0);
	assert_int_equal(pd_proc_rollup(&p, &ru), 0);
	assert_true(ru.rss > 0);
	assert_int_equal(pd_proc_maps(&p, &maps), 0);
	assert_true(maps.n > 5);
	pd_maps_release(&maps);

	assert_int_equal(pd_proc_fds(&p, &fds), 0);
	for (size_t i = 0; i < fds.n; i++) {
		if (i)
			assert_true(fds.v[i].fd > fds.v[i - 1].fd);
		if (fds.v[i].fd == fd) {
			assert_string_equal(fds.v[i].target, "/dev/null");
			found = true;
		}
	}
	assert_true(found);
	pd_fds_release(&fds);
	pd_proc_close(&p);
	close(fd);
}

static void test_protected(void **state)
{
	pid_t pid = spawn_child(0);

	(void)state;
	assert_true(pd_proc_is_protected(getpid()));
	assert_true(pd_proc_is_protected(1));
	assert_true(pd_proc_is_protected(getppid()));
	assert_true(pd_proc_is_protected(0));
	assert_false(pd_proc_is_protected(pid));
	/* To the server, a child of its own is one of its helpers; the same
	 * pid with another parent is somebody else's. */
	assert_true(pd_proc_is_procdiag(getpid(), getppid()));
	assert_true(pd_proc_is_procdiag(pid, getpid()));
	assert_false(pd_proc_is_procdiag(pid, 1));
	kill_and_reap(pid);
}

/* ---- modules -------------------------------------------------------------------- */

/* What eu-readelf -n says, as bytes; 0 when it says none (or is missing:
 * elfutils is a build dependency of the tests, so that fails too). */
static size_t readelf_build_id(const char *path, unsigned char *id)
{
	char cmd[512], line[512];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "eu-readelf -n '%s' 2>/dev/null", path);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *h = strstr(line, "Build ID: ");
		unsigned v;

		if (!h || n)
			continue;
		for (h += 10; sscanf(h, "%2x", &v) == 1 && n < PD_BUILD_ID_MAX; h += 2)
			id[n++] = (unsigned char)v;
	}
	pclose(f);
	return n;
}

static void test_modules_self(void **state)
{
	struct pd_modules mods = PD_MODULES_INIT, again = PD_MODULES_INIT;
	unsigned char id[PD_BUILD_ID_MAX], rid[PD_BUILD_ID_MAX];
	const struct pd_module *libc = NULL;
	bool vdso = false;
	size_t idlen = 0, rlen;
	struct pd_proc p;
	int fd;

	(void)state;
	assert_int_equal(pd_proc_open(getpid(), &p), 0);
	assert_int_equal(pd_proc_modules(&p, NULL, true, &mods), 0);
	assert_true(mods.n >= 3);
	for (size_t i = 0; i < mods.n; i++) {
		const struct pd_module *m = &mods.v[i];

		if (i)
			assert_true(strcmp(mods.v[i - 1].name, m->name) <= 0);
		if (!strcmp(m->name, "libc.so.6"))
			libc = m;
		if (!strcmp(m->path, "[vdso]"))
			vdso = true;
		assert_true(m->size > 0);
		assert_true(m->path[0] == '/' || m->path[0] == '[');
	}
	assert_true(vdso == have_vdso());
	assert_non_null(libc);
	assert_int_equal(libc->build_id_len, 20);

	fd = open(libc->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pd_elf_build_id(fd, id, sizeof(id), &idlen), 0);
	close(fd);
	assert_int_equal(idlen, 20);
	assert_memory_equal(id, libc->build_id, 20);
	rlen = readelf_build_id(libc->path, rid);
	assert_int_equal(rlen, 20);
	assert_memory_equal(rid, libc->build_id, 20);

	/* Second time from the cache: same answers. */
	assert_int_equal(pd_proc_modules(&p, NULL, true, &again), 0);
	assert_int_equal(again.n, mods.n);
	for (size_t i = 0; i < mods.n; i++) {
		assert_int_equal(again.v[i].base, mods.v[i].base);
		assert_int_equal(again.v[i].build_id_len, mods.v[i].build_id_len);
		assert_memory_equal(again.v[i].build_id, mods.v[i].build_id,
				    mods.v[i].build_id_len);
	}
	pd_modules_release(&again);
	pd_modules_release(&mods);

	/* Not ELF, and ELF without a note are told apart. */
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	assert_int_equal(pd_elf_build_id(fd, id, sizeof(id), &idlen), -EINVAL);
	close(fd);
	pd_proc_close(&p);
}

static void test_modules_child(void **state)
{
	struct pd_modules mods = PD_MODULES_INIT;
	struct pd_proc p;
	pid_t pid = spawn_child(1);
	bool libc = false;

	(void)state;
	assert_int_equal(pd_proc_open(pid, &p), 0);
	assert_int_equal(pd_proc_modules(&p, NULL, false, &mods), 0);
	for (size_t i = 0; i < mods.n; i++) {
		assert_int_equal(mods.v[i].build_id_len, 0);
		libc |= !strcmp(mods.v[i].name, "libc.so.6");
	}
	assert_true(libc);
	pd_modules_release(&mods);
	pd_proc_close(&p);
	kill_and_reap(pid);
}

/* ---- snapshot --------------------------------------------------------------------- */

static void test_snapshot(void **state)
{
	pid_t a = spawn_child(0), b = spawn_child(2);
	const struct pd_proc_entry *e;
	struct pd_snapshot *s;
	int kids[16];
	size_t n = 0;

	(void)state;
	assert_int_equal(pd_snapshot_scan(&s), 0);
	assert_true(s->n > 3);
	assert_true(s->scan_ns > 0);
	for (size_t i = 1; i < s->n; i++)
		assert_true(s->procs[i].pid > s->procs[i - 1].pid);
	e = pd_snapshot_find(s, getpid());
	assert_non_null(e);
	assert_int_equal(e->ppid, getppid());
	assert_int_equal(e->uid, geteuid());
	assert_int_equal(e->state, 'R');
	e = pd_snapshot_find(s, b);
	assert_non_null(e);
	assert_int_equal(e->num_threads, 3);
	assert_null(pd_snapshot_find(s, 0));
	for (size_t i = 0; i < s->n; i++)
		if (s->procs[i].ppid == getpid() && n < 16)
			kids[n++] = s->procs[i].pid;
	assert_int_equal(n, 2);
	assert_int_equal(kids[0], a < b ? a : b);
	assert_int_equal(kids[1], a < b ? b : a);
	fprintf(stderr, "# scan: %zu processes in %lld us (%.1f us/process)\n", s->n,
		(long long)(s->scan_ns / 1000), (double)s->scan_ns / 1000.0 / (double)s->n);
	pd_snapshot_unref(s);
	kill_and_reap(a);
	kill_and_reap(b);
}

#define NGETTERS 8
static pthread_barrier_t getters_go;

static void *getter(void *arg)
{
	struct pd_snapshot **out = arg;

	pthread_barrier_wait(&getters_go);
	if (pd_snapshot_get(out) < 0)
		*out = NULL;
	return NULL;
}

static void test_snapshot_concurrent(void **state)
{
	size_t shared = 0;

	(void)state;
	for (int round = 0; round < 20; round++) {
		struct pd_snapshot *got[NGETTERS];
		pthread_t t[NGETTERS];

		pthread_barrier_init(&getters_go, NULL, NGETTERS);
		for (int i = 0; i < NGETTERS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, getter, &got[i]), 0);
		for (int i = 0; i < NGETTERS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&getters_go);
		for (int i = 0; i < NGETTERS; i++) {
			assert_non_null(got[i]);
			assert_non_null(pd_snapshot_find(got[i], getpid()));
			for (int j = 0; j < i; j++)
				if (got[j] == got[i]) {
					shared++;
					break;
				}
		}
		for (int i = 0; i < NGETTERS; i++)
			pd_snapshot_unref(got[i]);
	}
	fprintf(stderr, "# concurrent get: %zu of %d results shared a scan\n", shared,
		20 * NGETTERS);
	/* Eight getters released at once, twenty times: some join a scan in
	 * flight (a scan takes milliseconds; about 135 of 160 do on the 2-core
	 * VM). None would mean there is no single flight. */
	assert_true(shared > 0);
}

/* ---- kill ------------------------------------------------------------------------- */

/* A fork chain: top -> mid -> leaf, all reporting their pids on fd. */
static pid_t spawn_chain(int depth, int fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		write_int(fd, getpid());
		if (depth > 1 && fork() == 0) {
			write_int(fd, getpid());
			if (depth > 2 && fork() == 0)
				write_int(fd, getpid());
		}
		for (;;)
			pause();
	}
	return pid;
}

/* We are a subreaper, so the whole chain ends up ours to reap. */
static size_t reap_all(pid_t *pids, size_t max)
{
	size_t n = 0;
	pid_t w;

	while ((w = waitpid(-1, NULL, 0)) > 0)
		if (n < max)
			pids[n++] = w;
	return n;
}

static bool contains(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

/* pd_owner_open: resolution inside a root and the owner's permissions, on a
 * tree of this test's own files judged for another owner (mode bits only:
 * it works as root and as anyone). */
static void mkfile(int dfd, const char *name, mode_t mode, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int owner_read(const struct pd_owner *o, int root, const char *path, char *buf, size_t n)
{
	int fd = pd_owner_open(o, root, path, NULL);
	ssize_t got;

	if (fd < 0)
		return fd;
	got = read(fd, buf, n - 1);
	close(fd);
	buf[got > 0 ? got : 0] = '\0';
	return 0;
}

static const char *const owner_files[] = {
	"pub/open",	"pub/secret", "pub/grp",  "pub/abs",	 "pub/up",
	"pub/tosecret", "pub/loop",   "pub/fifo", "priv/inside",
};

static void test_owner_open(void **state)
{
	char dir[] = "/tmp/pd-owner-XXXXXX", buf[64];
	struct pd_owner other = {.uid = {getuid() + 4242, getuid() + 4242},
				 .gid = {getgid() + 4242, getgid() + 4242}};
	struct pd_owner group = other;
	int root, d;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	assert_int_equal(mkdirat(root, "pub", 0755), 0);
	assert_int_equal(mkdirat(root, "priv", 0700), 0);
	d = openat(root, "pub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	mkfile(d, "open", 0644, "open");
	mkfile(d, "secret", 0600, "secret");
	mkfile(d, "grp", 0640, "grp");
	/* absolute: from the root; "..": stops at it */
	assert_int_equal(symlinkat("/pub/open", d, "abs"), 0);
	assert_int_equal(symlinkat("../../../pub/open", d, "up"), 0);
	assert_int_equal(symlinkat("secret", d, "tosecret"), 0);
	assert_int_equal(symlinkat("loop", d, "loop"), 0);
	assert_int_equal(mkfifoat(d, "fifo", 0644), 0);
	close(d);
	d = openat(root, "priv", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	mkfile(d, "inside", 0644, "inside");
	close(d);

	assert_int_equal(owner_read(&other, root, "/pub/open", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "open");
	assert_int_equal(owner_read(&other, root, "pub//./abs", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "open");
	assert_int_equal(owner_read(&other, root, "/../../pub/up", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "open");
	assert_int_equal(owner_read(&other, root, "/pub/secret", buf, sizeof(buf)), -EACCES);
	assert_int_equal(owner_read(&other, root, "/pub/tosecret", buf, sizeof(buf)), -EACCES);
	assert_int_equal(owner_read(&other, root, "/priv/inside", buf, sizeof(buf)), -EACCES);
	assert_int_equal(owner_read(&other, root, "/pub/grp", buf, sizeof(buf)), -EACCES);
	group.groups[group.ngroups++] = getegid(); /* a supplementary group */
	assert_int_equal(owner_read(&group, root, "/pub/grp", buf, sizeof(buf)), 0);
	assert_int_equal(owner_read(&other, root, "/pub/loop", buf, sizeof(buf)), -ELOOP);
	assert_int_equal(owner_read(&other, root, "/pub/fifo", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(owner_read(&other, root, "/pub", buf, sizeof(buf)), -EISDIR);
	assert_int_equal(owner_read(&other, root, "/pub/open/x", buf, sizeof(buf)), -ENOTDIR);
	assert_int_equal(owner_read(&other, root, "/pub/none", buf, sizeof(buf)), -ENOENT);
	/* No owner: resolved the same way, no permission check. */
	assert_int_equal(owner_read(NULL, root, "/pub/tosecret", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "secret");

	for (size_t i = 0; i < sizeof(owner_files) / sizeof(owner_files[0]); i++)
		unlinkat(root, owner_files[i], 0);
	unlinkat(root, "pub", AT_REMOVEDIR);
	unlinkat(root, "priv", AT_REMOVEDIR);
	close(root);
	rmdir(dir);
}

static void test_kill_tree(void **state)
{
	struct pd_kill_result res = PD_KILL_RESULT_INIT;
	struct pd_scope scope = PD_SCOPE_INIT;
	struct pd_snapshot *s;
	pid_t pids[3], reaped[8];
	int pfd[2];
	size_t n;

	(void)state;
	if (!have_pidfd())
		skip();
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	spawn_chain(3, pfd[1]);
	for (int i = 0; i < 3; i++)
		pids[i] = read_int(pfd[0]);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(pd_scope_init_self(&scope), 0);
	assert_int_equal(pd_snapshot_scan(&s), 0);
	assert_int_equal(pd_snapshot_find(s, pids[2])->ppid, pids[1]);
	assert_int_equal(pd_kill_tree(s, pids[0], 0, &scope, 2000, &res), 0);
	assert_int_equal(res.nsignalled, 3);
	assert_int_equal(res.nalive, 0);
	assert_int_equal(res.nskipped, 0);
	pd_kill_result_release(&res);
	pd_snapshot_unref(s);

	n = reap_all(reaped, 8);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		char path[32];

		assert_true(contains(reaped, n, pids[i]));
		assert_false(is_alive(pids[i]));
		snprintf(path, sizeof(path), "/proc/%d", pids[i]);
		assert_int_equal(access(path, F_OK), -1);
	}
	pd_scope_release(&scope);
}

/* The scope as the helpers are told it: numbers only, round trip. */
static void test_scope_ids(void **state)
{
	struct pd_scope s = PD_SCOPE_INIT, t = PD_SCOPE_INIT;
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	assert_int_equal(pd_scope_parse(&s, "0, 65534,33"), 0);
	assert_int_equal(pd_scope_format(&s, &sb), 0);
	assert_string_equal(sb.buf, "0,65534,33");
	assert_int_equal(pd_scope_parse_ids(&t, sb.buf), 0);
	assert_int_equal(t.n, 3);
	assert_true(pd_scope_has(&t, 65534) && pd_scope_has(&t, 0) && !pd_scope_has(&t, 1));
	pd_scope_release(&t);
	pd_scope_release(&s);
	strbuf_setlen(&sb, 0);
	assert_int_equal(pd_scope_parse(&s, "all"), 0);
	assert_int_equal(pd_scope_format(&s, &sb), 0);
	assert_string_equal(sb.buf, "all");
	assert_int_equal(pd_scope_parse_ids(&t, sb.buf), 0);
	assert_true(t.all);
	pd_scope_release(&t);
	pd_scope_release(&s);
	strbuf_release(&sb);
	/* No names (a helper reads no passwd file), no gaps, no (uid_t)-1. */
	assert_int_equal(pd_scope_parse_ids(&t, "root"), -EINVAL);
	assert_int_equal(pd_scope_parse_ids(&t, ""), -EINVAL);
	assert_int_equal(pd_scope_parse_ids(&t, "1,,2"), -EINVAL);
	assert_int_equal(pd_scope_parse_ids(&t, "1,"), -EINVAL);
	assert_int_equal(pd_scope_parse_ids(&t, "4294967295"), -EINVAL);
	assert_int_equal(t.n, 0);
}

/* pd_scope_may_act on a real child: one uid in all three places and
 * dumpable passes; the kernel's non-dumpable mark (set by its own credential
 * change) refuses until the child makes itself dumpable again. */
static void test_scope_may_act(void **state)
{
	struct pd_scope nobody = PD_SCOPE_INIT, other = PD_SCOPE_INIT, all = PD_SCOPE_INIT;
	int go[2], ready[2], st;
	char path[48], c;
	pid_t pid;

	(void)state;
	if (getuid() != 0)
		skip(); /* the child must change its uid */
	assert_int_equal(pd_scope_parse_ids(&nobody, "65534"), 0);
	assert_int_equal(pd_scope_parse_ids(&other, "65533"), 0);
	assert_int_equal(pd_scope_parse_ids(&all, "all"), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Changing credentials makes the process non-dumpable. */
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(1);
		/* After the change, which clears it: a failed assertion in
		 * the parent must not leave us waiting. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		if (write(ready[1], "1", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		prctl(PR_SET_DUMPABLE, 1);
		if (write(ready[1], "2", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(pd_scope_may_act(&nobody, AT_FDCWD, path), -EPERM);
	assert_int_equal(pd_scope_may_act(&other, AT_FDCWD, path), -EACCES);
	assert_int_equal(pd_scope_may_act(&all, AT_FDCWD, path), 0);
	assert_int_equal(pd_scope_may_act(NULL, AT_FDCWD, path), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(pd_scope_may_act(&nobody, AT_FDCWD, path), 0);
	assert_int_equal(pd_scope_may_act(&other, AT_FDCWD, path), -EACCES);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(pd_scope_may_act(&nobody, AT_FDCWD, path), -ESRCH);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	pd_scope_release(&nobody);
	pd_scope_release(&other);
	pd_scope_release(&all);
}

static void test_kill_refuses_reuse(void **state)
{
	struct pd_kill_result res = PD_KILL_RESULT_INIT;
	struct pd_snapshot *s, fake;
	struct pd_proc_entry *copy;
	pid_t pids[3], reaped[8];
	int pfd[2];
	size_t n;

	(void)state;
	if (!have_pidfd())
		skip();
	/* The target's start time is not the one the caller saw. */
	pids[0] = spawn_child(0);
	assert_int_equal(pd_snapshot_scan(&s), 0);
	assert_int_equal(pd_kill_tree(s, pids[0], pd_snapshot_find(s, pids[0])->starttime + 1, NULL,
				      1000, &res),
			 -ESRCH);
	assert_int_equal(res.nsignalled, 0);
	assert_true(is_alive(pids[0]));
	assert_int_equal(waitpid(pids[0], NULL, WNOHANG), 0);
	pd_kill_result_release(&res);
	assert_int_equal(pd_kill_tree(s, getpid(), 0, NULL, 1000, &res), -EPERM);
	pd_kill_result_release(&res);
	assert_int_equal(pd_kill_tree(s, 0x3fffffff, 0, NULL, 1000, &res), -ESRCH);
	pd_kill_result_release(&res);
	pd_snapshot_unref(s);
	kill_and_reap(pids[0]);

	/* A descendant whose start time differs from the snapshot's (as if
	 * its pid had been reused) is never signalled. */
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	spawn_chain(3, pfd[1]);
	for (int i = 0; i < 3; i++)
		pids[i] = read_int(pfd[0]);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(pd_snapshot_scan(&s), 0);
	copy = malloc(s->n * sizeof(*copy));
	assert_non_null(copy);
	memcpy(copy, s->procs, s->n * sizeof(*copy));
	fake = *s;
	fake.procs = copy;
	for (size_t i = 0; i < fake.n; i++)
		if (copy[i].pid == pids[1])
			copy[i].starttime += 7;
	assert_int_equal(pd_kill_tree(&fake, pids[0], 0, NULL, 2000, &res), 0);
	assert_int_equal(res.nsignalled, 2);
	pd_kill_result_release(&res);
	assert_true(is_alive(pids[1]));
	free(copy);
	pd_snapshot_unref(s);

	/* The top is ours; the leaf is a zombie under mid, which lives on. */
	assert_int_equal(waitpid(pids[0], NULL, 0), pids[0]);
	assert_true(is_alive(pids[1]));
	kill(pids[1], SIGKILL);
	n = reap_all(reaped, 8);
	assert_int_equal(n, 2);
	assert_true(contains(reaped, n, pids[1]));
	assert_true(contains(reaped, n, pids[2]));
}

/* Is fd open (a kept spool still held)? */
static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int new_spool(void)
{
	int fd = memfd_create("test-spool", MFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* lib/spoolkeep: taken only with its token and key, once; the oldest goes
 * past max; time 0 keeps nothing; expiry closes it. */
static void test_spool_keep(void **state)
{
	struct pd_spool_key key = {.pid = 42, .start_time = 7, .kind = 3}, other = key;
	char t1[PD_SPOOL_TOKEN_LEN + 1], t2[PD_SPOOL_TOKEN_LEN + 1], t3[PD_SPOOL_TOKEN_LEN + 1];
	int a = new_spool(), b, c, fd;

	(void)state;
	assert_int_equal(pd_spool_token(t1), 0);
	assert_int_equal(pd_spool_token(t2), 0);
	assert_int_equal(pd_spool_token(t3), 0);
	assert_int_equal((int)strlen(t1), PD_SPOOL_TOKEN_LEN);
	assert_true(strcmp(t1, t2) != 0);
	assert_int_equal(pd_spool_keep(a, t1, &key, 600, 2), 0);
	other.kind = 4;
	assert_int_equal(pd_spool_take(t1, &other), -ENOENT);
	assert_int_equal(pd_spool_take(t2, &key), -ENOENT);
	assert_int_equal(pd_spool_take("short", &key), -ENOENT);
	fd = pd_spool_take(t1, &key);
	assert_int_equal(fd, a);
	assert_int_equal(pd_spool_take(t1, &key), -ENOENT);
	/* Three kept with room for two: the first is closed. */
	b = new_spool();
	c = new_spool();
	assert_int_equal(pd_spool_keep(a, t1, &key, 600, 2), 0);
	assert_int_equal(pd_spool_keep(b, t2, &key, 600, 2), 0);
	assert_int_equal(pd_spool_keep(c, t3, &key, 600, 2), 0);
	assert_int_equal(pd_spool_take(t1, &key), -ENOENT);
	assert_int_equal(pd_spool_take(t3, &key), c);
	assert_int_equal(pd_spool_take(t2, &key), b);
	close(b);
	close(c);
	/* No time: closed at once. */
	a = new_spool();
	assert_int_equal(pd_spool_keep(a, t1, &key, 0, 2), 0);
	assert_false(fd_open(a));
	/* Expired: closed by the module's thread. */
	a = new_spool();
	assert_int_equal(pd_spool_keep(a, t1, &key, 1, 2), 0);
	for (int i = 0; i < 1000 && fd_open(a); i++)
		usleep(10 * 1000);
	assert_int_equal(pd_spool_take(t1, &key), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tasks),
		cmocka_unit_test(test_stat_gone_after_bad_line),
		cmocka_unit_test(test_exec_views),
		cmocka_unit_test(test_self_files),
		cmocka_unit_test(test_protected),
		cmocka_unit_test(test_modules_self),
		cmocka_unit_test(test_modules_child),
		cmocka_unit_test(test_owner_open),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_snapshot_concurrent),
		cmocka_unit_test(test_kill_tree),
		cmocka_unit_test(test_kill_refuses_reuse),
		cmocka_unit_test(test_scope_ids),
		cmocka_unit_test(test_scope_may_act),
		cmocka_unit_test(test_spool_keep),
	};

	/* Orphans of the fork chains are re-parented to us, so every pid
	 * the tests create is reaped by the tests. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* A failed assertion can leave a child behind that reap_all() would
	 * wait for forever: fail loudly instead of hanging the suite. */
	alarm(120);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
