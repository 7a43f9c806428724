#include "config.h"

#include "lib/freeze.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/proc.h"
#include "lib/procfs.h"
#include "lib/sysclock.h"
#include "lib/testhooks.h"

#define DEFAULT_DEADLINE   2000u
#define XSTATE_PROBE_BYTES (64u << 10)
#ifndef NT_X86_SHSTK
#define NT_X86_SHSTK 0x204
#endif
/* A process adding threads faster than we can seize them would keep the
 * listing from ever being stable; give up (as a timeout) after this many
 * rounds. */
#define MAX_ROUNDS 1000

static bool task_is_dead(int procfd, pid_t tid)
{
	char path[48];
	struct pd_stat st;

	snprintf(path, sizeof(path), "task/%d/stat", (int)tid);
	if (pd_read_stat_at(procfd, path, &st) < 0)
		return true;
	return st.state == 'Z' || st.state == 'X' || st.state == 'x';
}

/* Does another tracer hold tid? (Why PTRACE_SEIZE said EPERM.) */
static bool traced(int procfd, pid_t tid)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_status st;
	char path[48];
	bool r = false;

	snprintf(path, sizeof(path), "task/%d/status", (int)tid);
	if (pd_read_file_at(procfd, path, &sb, 64u << 10) == 0 &&
	    pd_parse_status(sb.buf, sb.len, &st) == 0)
		r = st.tracer_pid > 0;
	strbuf_release(&sb);
	return r;
}

/* The tids under /proc/PID/task, unsorted. */
static int list_tids(int procfd, pid_t **out, size_t *n)
{
	size_t alloc = 0;
	pid_t *v = NULL;
	struct dirent *de;
	DIR *d;
	int fd;

	*n = 0;
	fd = openat(procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char *end;
		long t = strtol(de->d_name, &end, 10);

		if (*end || t <= 0)
			continue;
		if (*n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			pid_t *nv = realloc(v, na * sizeof(*v));

			if (!nv) {
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			alloc = na;
		}
		v[(*n)++] = (pid_t)t;
	}
	closedir(d);
	*out = v;
	return 0;
}

int pd_freeze_open(struct pd_freeze *fz, pid_t pid, uint64_t start_time,
		   const struct pd_scope *scope)
{
	struct pd_stat st;
	char path[32];
	int rc;

	memset(fz, 0, sizeof(*fz));
	fz->pidfd = fz->procfd = fz->memfd = -1;
	fz->pid = pid;
	fz->scope = scope;
	if (pid <= 0)
		return -ESRCH;
	/* The pidfd first: if the start time read afterwards matches, the pidfd
	 * names that very process, whatever happens to the pid later. */
	fz->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fz->pidfd < 0) {
		rc = errno;
		if (rc == ESRCH || rc == EINVAL || rc == ENOENT)
			return -ESRCH;
		if (rc != ENOSYS)
			return -rc;
	}
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	fz->procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fz->procfd < 0) {
		rc = errno == ENOENT ? -ESRCH : -errno;
		goto err;
	}
	rc = pd_read_stat_at(fz->procfd, "stat", &st);
	if (rc < 0)
		goto err;
	if (start_time && st.starttime != start_time) {
		rc = -ESRCH;
		goto err;
	}
	fz->start_time = st.starttime;
	if (pd_stat_is_kthread(&st)) {
		rc = -EOPNOTSUPP;
		goto err;
	}
	if (st.state == 'Z' || st.state == 'X' || st.state == 'x') {
		/* A zombie leader with live threads is a live process. */
		pid_t *tids = NULL;
		size_t n = 0;
		bool live = false;

		rc = list_tids(fz->procfd, &tids, &n);
		if (rc < 0)
			goto err;
		for (size_t i = 0; i < n && !live; i++)
			live = !task_is_dead(fz->procfd, tids[i]);
		free(tids);
		if (!live) {
			rc = -EOWNERDEAD;
			goto err;
		}
	}
	return 0;
err:
	pd_freeze_close(fz);
	return rc;
}

static struct pd_thread *find_thread(struct pd_freeze *fz, pid_t tid)
{
	for (size_t i = 0; i < fz->n; i++)
		if (fz->threads[i].tid == tid && !fz->threads[i].gone)
			return &fz->threads[i];
	return NULL;
}

static struct pd_thread *add_thread(struct pd_freeze *fz, pid_t tid)
{
	struct pd_thread *t;

	if (fz->n == fz->alloc) {
		size_t na = fz->alloc ? fz->alloc * 2 : 64;
		struct pd_thread *nv = realloc(fz->threads, na * sizeof(*nv));

		if (!nv)
			return NULL;
		fz->threads = nv;
		fz->alloc = na;
	}
	t = &fz->threads[fz->n++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	return t;
}

static void drop_thread(struct pd_thread *t)
{
	t->gone = true;
	t->stopped = false;
	t->attached = false;
}

/* One waitpid() for a thread we interrupted. Returns true once it is settled
 * (stopped or gone). */
static bool poll_thread(struct pd_thread *t)
{
	int st;
	pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);

	if (r == 0)
		return false;
	if (r < 0) {
		if (errno == EINTR)
			return false;
		drop_thread(t); /* ECHILD: it exited and was reaped */
		return true;
	}
	if (WIFEXITED(st) || WIFSIGNALED(st)) {
		drop_thread(t);
		return true;
	}
	if (!WIFSTOPPED(st))
		return false;
	t->stopped = true;
	if ((st >> 16) == 0) {
		/* A signal-delivery-stop came before our interrupt: hold the
		 * signal and give it back at detach. */
		t->pending_sig = WSTOPSIG(st);
		t->have_siginfo = ptrace(PTRACE_GETSIGINFO, t->tid, 0, &t->siginfo) == 0;
	}
	return true;
}

/* Waits until every interrupted thread stopped or the deadline passed. */
static int wait_stopped(struct pd_freeze *fz, uint64_t deadline_ns)
{
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		bool pending = false;
		uint64_t now;
		struct timespec ts;

		for (size_t i = 0; i < fz->n; i++) {
			struct pd_thread *t = &fz->threads[i];

			if (t->attached && !t->stopped && !t->gone && !poll_thread(t))
				pending = true;
		}
		if (!pending)
			return 0;
		now = pd_mono_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		/* Every ptrace stop sends us SIGCHLD (blocked): sleep until one
		 * comes, but not past the deadline. */
		ts.tv_sec = (time_t)((deadline_ns - now) / 1000000000u);
		ts.tv_nsec = (long)((deadline_ns - now) % 1000000000u);
		if (ts.tv_sec == 0 && ts.tv_nsec > 2000000)
			ts.tv_nsec = 2000000;
		else if (ts.tv_sec > 0) {
			ts.tv_sec = 0;
			ts.tv_nsec = 2000000;
		}
		sigtimedwait(&chld, NULL, &ts);
	}
}

/* A regset of variable size, read into xbuf (XSTATE_PROBE_BYTES) and kept
 * in a malloc'd copy: *out stays NULL when the kernel has none for tid. */
static int read_regset(pid_t tid, int type, void *xbuf, void **out, size_t *size)
{
	struct iovec iov = {xbuf, XSTATE_PROBE_BYTES};

	if (ptrace(PTRACE_GETREGSET, tid, (void *)(long)type, &iov) < 0 || !iov.iov_len)
		return 0;
	*out = malloc(iov.iov_len);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, xbuf, iov.iov_len);
	*size = iov.iov_len;
	return 0;
}

static int read_regs(struct pd_thread *t, void *xbuf)
{
	struct iovec iov;

	iov.iov_base = &t->regs;
	iov.iov_len = sizeof(t->regs);
	if (ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	iov.iov_base = &t->fpregs;
	iov.iov_len = sizeof(t->fpregs);
	t->have_fpregs = ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_PRFPREG, &iov) == 0 &&
			 iov.iov_len == sizeof(t->fpregs);
	/* The kernel's core has NT_386_IOPERM and NT_X86_SHSTK only where the
	 * thread uses them (arch/x86/kernel/ptrace.c: ioperm_active,
	 * ssp_active), and GETREGSET fails exactly there (-ENXIO, -ENODEV;
	 * -EINVAL where the kernel has no such regset). */
	if (read_regset(t->tid, NT_X86_XSTATE, xbuf, &t->xstate, &t->xstate_size) < 0 ||
	    read_regset(t->tid, NT_386_IOPERM, xbuf, &t->ioperm, &t->ioperm_size) < 0)
		return -ENOMEM;
	iov.iov_base = &t->ssp;
	iov.iov_len = sizeof(t->ssp);
	t->have_ssp = ptrace(PTRACE_GETREGSET, t->tid, (void *)NT_X86_SHSTK, &iov) == 0 &&
		      iov.iov_len == sizeof(t->ssp);
	return 0;
}

static void free_regs(struct pd_thread *t)
{
	free(t->xstate);
	free(t->ioperm);
	t->xstate = t->ioperm = NULL;
}

static int cmp_thread(const void *a, const void *b, void *arg)
{
	const struct pd_thread *x = a, *y = b;
	pid_t leader = *(const pid_t *)arg;

	if (x->tid == y->tid)
		return 0;
	if (x->tid == leader)
		return -1;
	if (y->tid == leader)
		return 1;
	return x->tid < y->tid ? -1 : 1;
}

/* Keeps the stopped threads only, leader first. */
static void compact(struct pd_freeze *fz)
{
	size_t k = 0;

	for (size_t i = 0; i < fz->n; i++) {
		if (fz->threads[i].stopped && !fz->threads[i].gone)
			fz->threads[k++] = fz->threads[i];
		else
			free_regs(&fz->threads[i]);
	}
	fz->n = k;
	qsort_r(fz->threads, fz->n, sizeof(*fz->threads), cmp_thread, &fz->pid);
}

/* With every thread stopped: the same process (start time), and still one
 * the key may act on, thread by thread, as the kernel's check is per task
 * (lib/freeze.h). A thread killed while stopped is skipped; it is dropped
 * when its registers are read. */
static int recheck(struct pd_freeze *fz)
{
	struct pd_stat st;
	char path[48];
	bool any = false;
	int rc;

	rc = pd_read_stat_at(fz->procfd, "stat", &st);
	if (rc < 0)
		return rc;
	if (st.starttime != fz->start_time)
		return -ESRCH;
	if (!fz->scope)
		return 0;
	for (size_t i = 0; i < fz->n; i++) {
		struct pd_thread *t = &fz->threads[i];

		if (!t->stopped || t->gone)
			continue;
		snprintf(path, sizeof(path), "task/%d/status", (int)t->tid);
		rc = pd_scope_may_act(fz->scope, fz->procfd, path);
		if (rc == -ESRCH)
			continue;
		if (rc == -EACCES) /* out of scope now: as if not there */
			return -ESRCH;
		if (rc < 0)
			return rc;
		any = true;
	}
	return any ? 0 : -ESRCH;
}

int pd_freeze_stop(struct pd_freeze *fz, unsigned deadline_ms)
{
	sigset_t chld, old;
	uint64_t deadline;
	void *xbuf = NULL;
	int rc = 0;

	if (!deadline_ms)
		deadline_ms = DEFAULT_DEADLINE;
	deadline = pd_mono_ns() + (uint64_t)deadline_ms * 1000000u;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	fz->frozen = true;

	for (unsigned round = 0, max_rounds = pd_hook_freeze_rounds(MAX_ROUNDS);; round++) {
		pid_t *tids = NULL;
		size_t ntids = 0, added = 0;

		if (round == max_rounds) {
			rc = -ETIMEDOUT;
			goto fail;
		}
		rc = list_tids(fz->procfd, &tids, &ntids);
		if (rc < 0)
			goto fail;
		/* Seize everything new first (that stops nothing), then
		 * interrupt them back to back: the stop begins as late as it
		 * can and is as short as it can be. */
		for (size_t i = 0; i < ntids; i++) {
			struct pd_thread *t;

			if (find_thread(fz, tids[i]))
				continue;
			t = add_thread(fz, tids[i]);
			if (!t) {
				free(tids);
				rc = -ENOMEM;
				goto fail;
			}
			if (ptrace(PTRACE_SEIZE, t->tid, 0, 0) == 0) {
				t->attached = true;
				added++;
				continue;
			}
			rc = -errno;
			if (rc == -EPERM && traced(fz->procfd, t->tid))
				rc = -EBUSY;
			if (rc == -ESRCH || task_is_dead(fz->procfd, t->tid)) {
				/* Exited, or a zombie leader: remembered as gone
				 * so that it is not tried again. */
				t->gone = true;
				rc = 0;
				continue;
			}
			free(tids);
			goto fail;
		}
		free(tids);
		if (!added)
			break;
		if (!fz->t_first_stop_ns)
			fz->t_first_stop_ns = pd_mono_ns();
		for (size_t i = 0; i < fz->n; i++) {
			struct pd_thread *t = &fz->threads[i];

			if (t->attached && !t->stopped && !t->gone &&
			    ptrace(PTRACE_INTERRUPT, t->tid, 0, 0) < 0 && errno == ESRCH)
				drop_thread(t);
		}
		rc = wait_stopped(fz, deadline);
		if (rc < 0)
			goto fail;
	}

	fz->t_all_stopped_ns = pd_mono_ns();
	rc = recheck(fz);
	if (rc < 0)
		goto fail;
	xbuf = malloc(XSTATE_PROBE_BYTES);
	if (!xbuf) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < fz->n; i++) {
		struct pd_thread *t = &fz->threads[i];

		if (!t->stopped || t->gone)
			continue;
		rc = read_regs(t, xbuf);
		if (rc == -ESRCH) {
			/* Killed while stopped (SIGKILL wakes a tracee). */
			drop_thread(t);
			rc = 0;
		} else if (rc < 0) {
			goto fail;
		}
	}
	free(xbuf);
	xbuf = NULL;
	/* The gone ones were bookkeeping only; from here on the array holds
	 * exactly the stopped threads. None left: it exited meanwhile. */
	compact(fz);
	if (!fz->n) {
		rc = -ESRCH;
		goto fail;
	}
	fz->io_tid = fz->threads[0].tid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return 0;
fail:
	free(xbuf);
	pd_freeze_thaw(fz);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

bool pd_freeze_gone(struct pd_freeze *fz)
{
	struct pollfd p = {.fd = fz->pidfd, .events = POLLIN};
	bool live = false;

	if (fz->pidfd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
		return true;
	if (fz->pidfd < 0 && kill(fz->pid, 0) < 0 && errno == ESRCH)
		return true;
	/* A stopped tracee that is killed exits but stays a zombie for us to
	 * reap, and until we do the pidfd does not say so: ask each one. */
	for (size_t i = 0; i < fz->n; i++) {
		struct pd_thread *t = &fz->threads[i];
		int st;

		if (t->gone)
			continue;
		if (t->attached && waitpid(t->tid, &st, __WALL | WNOHANG) == t->tid &&
		    (WIFEXITED(st) || WIFSIGNALED(st))) {
			drop_thread(t);
			continue;
		}
		live = true;
	}
	return fz->n && !live;
}

static int open_mem(struct pd_freeze *fz)
{
	char path[48];

	if (fz->memfd >= 0)
		return 0;
	snprintf(path, sizeof(path), "task/%d/mem", (int)fz->io_tid);
	fz->memfd = openat(fz->procfd, path, O_RDONLY | O_CLOEXEC);
	return fz->memfd < 0 ? -errno : 0;
}

ssize_t pd_freeze_read(struct pd_freeze *fz, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = {buf, len}, r = {(void *)(uintptr_t)addr, len};
	ssize_t n = 0, m;
	int err = EFAULT;

	if (!len)
		return 0;
	m = process_vm_readv(fz->io_tid ? fz->io_tid : fz->pid, &l, 1, &r, 1, 0);
	if (m > 0)
		n = m;
	else if (m < 0)
		err = errno;
	if ((size_t)n == len)
		return n;
	/* /proc/PID/mem reads with FOLL_FORCE what process_vm_readv cannot
	 * (e.g. mappings without PROT_READ). The file offset is the address;
	 * the mem file takes "negative" offsets for the top half. */
	if (open_mem(fz) == 0) {
		while ((size_t)n < len) {
			m = pread(fz->memfd, (char *)buf + n, len - (size_t)n,
				  (off_t)(addr + (uint64_t)n));
			if (m <= 0) {
				if (m < 0 && errno == EINTR)
					continue;
				if (m < 0)
					err = errno;
				break;
			}
			n += m;
		}
	}
	return n > 0 ? n : -err;
}

void pd_freeze_thaw(struct pd_freeze *fz)
{
	if (!fz->frozen)
		return;
	for (size_t i = 0; i < fz->n; i++) {
		struct pd_thread *t = &fz->threads[i];

		if (t->attached && t->stopped && !t->gone)
			ptrace(PTRACE_DETACH, t->tid, 0, (void *)(uintptr_t)t->pending_sig);
		t->stopped = false;
		t->attached = false;
	}
	fz->t_thawed_ns = pd_mono_ns();
	fz->frozen = false;
}

uint64_t pd_freeze_stopped_us(const struct pd_freeze *fz)
{
	uint64_t end;

	if (!fz->t_first_stop_ns)
		return 0;
	end = fz->frozen ? pd_mono_ns() : fz->t_thawed_ns;
	return end > fz->t_first_stop_ns ? (end - fz->t_first_stop_ns) / 1000u : 0;
}

uint64_t pd_freeze_freezing_us(const struct pd_freeze *fz)
{
	if (!fz->t_first_stop_ns || fz->t_all_stopped_ns < fz->t_first_stop_ns)
		return 0;
	return (fz->t_all_stopped_ns - fz->t_first_stop_ns) / 1000u;
}

void pd_freeze_close(struct pd_freeze *fz)
{
	pd_freeze_thaw(fz);
	for (size_t i = 0; i < fz->n; i++)
		free_regs(&fz->threads[i]);
	free(fz->threads);
	fz->threads = NULL;
	fz->n = fz->alloc = 0;
	if (fz->memfd >= 0)
		close(fz->memfd);
	if (fz->procfd >= 0)
		close(fz->procfd);
	if (fz->pidfd >= 0)
		close(fz->pidfd);
	fz->memfd = fz->procfd = fz->pidfd = -1;
}
