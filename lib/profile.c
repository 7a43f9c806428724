/* The CPU profiler: see lib/profile.h. */
#include "config.h"

#include "lib/profile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/jsonstr.h"
#include "common/strbuf.h"
#include "lib/fold.h"
#include "lib/proc.h"
#include "lib/procfs.h"
#include "lib/stacks.h"
#include "lib/sysclock.h"

/* Data pages per thread's ring (a power of two): 64 KiB, three samples of a
 * 16 KiB stack copy, drained every DRAIN_MS (two samples at 99 Hz). The
 * rings count against the locked-memory limit (perf_event_mlock_kb, then
 * RLIMIT_MEMLOCK) without CAP_IPC_LOCK: a thread whose ring no longer fits
 * is not sampled (unsampled_threads). */
#define RING_PAGES   16u
#define MAX_THREADS  1024u /* threads sampled at once */
#define RESCAN_NS    1000000000ull
#define DRAIN_MS     20
/* PERF_REG_X86_{AX..IP} (bits 0-8) and R8..R15 (bits 16-23). */
#define REGS_MASK    (0x1ffull | (0xffull << 16))
#define NREGS_SAMPLE 17

const char *pd_profile_method_name(enum pd_profile_method m)
{
	return m == PD_PROFILE_PTRACE ? "ptrace" : m == PD_PROFILE_PERF ? "perf" : "auto";
}

int pd_profile_method_parse(const char *s)
{
	if (!strcmp(s, "auto"))
		return PD_PROFILE_AUTO;
	if (!strcmp(s, "perf"))
		return PD_PROFILE_PERF;
	if (!strcmp(s, "ptrace"))
		return PD_PROFILE_PTRACE;
	return -1;
}

/* ---- what both methods share ----------------------------------------------------- */

struct job {
	pid_t pid;
	const struct pd_profile_opts *o;
	struct pd_fold *fold;
	uint64_t samples, lost;
	uint64_t unsampled; /* threads whose ring did not fit */
	uint64_t stopped_us; /* ptrace: the process stopped, all ticks */
	pid_t *seen; /* threads sampled at least once */
	size_t nseen, aseen;
	bool exited;
	/* perf: a thread exec'd (its ring's PERF_RECORD_COMM with
	 * PERF_RECORD_MISC_COMM_EXEC), or a scan found the process no longer
	 * the scope's to read: nothing from then on is folded, the profile
	 * ends, and pd_profile_run judges the scope again. */
	bool execed;
};

static void saw_thread(struct job *j, pid_t tid)
{
	for (size_t i = 0; i < j->nseen; i++)
		if (j->seen[i] == tid)
			return;
	if (j->nseen == j->aseen) {
		size_t na = j->aseen ? j->aseen * 2 : 16;
		pid_t *nv = realloc(j->seen, na * sizeof(*nv));

		if (!nv)
			return;
		j->seen = nv;
		j->aseen = na;
	}
	j->seen[j->nseen++] = tid;
}

/* A frame's name: its symbol, else [its module's file name], else
 * [unknown]. */
static int64_t frame_of(struct pd_fold *f, const char *sym, const char *module)
{
	struct strbuf sb = STRBUF_INIT;
	const char *slash;
	int64_t ix;

	if (sym && *sym)
		return pd_fold_frame(f, sym, module);
	if (!module)
		return pd_fold_frame(f, "[unknown]", NULL);
	slash = strrchr(module, '/');
	strbuf_addf(&sb, "[%s]", slash && slash[1] ? slash + 1 : module);
	ix = sb.failed ? -1 : pd_fold_frame(f, sb.buf, module);
	strbuf_release(&sb);
	return ix;
}

/* ---- perf ------------------------------------------------------------------------ */

struct pthread_ev {
	pid_t tid;
	int fd;
	void *ring; /* 1 + RING_PAGES pages */
	char comm[PD_COMM_MAX];
	bool alive;
};

struct perf_state {
	struct job *j;
	struct pd_proc *p;
	struct pd_stacks_live *live;
	struct pthread_ev *ev;
	size_t nev, aev;
	size_t page;
	unsigned char *rec; /* a record that wraps the ring, copied */
	uint64_t pcs[PD_PROFILE_MAX_FRAMES];
	bool exact[PD_PROFILE_MAX_FRAMES];
	uint32_t stack[PD_PROFILE_MAX_FRAMES + 1];
	bool stop; /* j->execed: every ring's records are dropped from now on */
};

/* 0 sampled (or gone), 1 left out, -errno. */
static int perf_open_thread(struct perf_state *ps, pid_t tid, const struct pd_stat *st)
{
	struct perf_event_attr a;
	struct pthread_ev *e;
	int fd;

	for (size_t i = 0; i < ps->nev; i++)
		if (ps->ev[i].tid == tid) {
			memcpy(ps->ev[i].comm, st->comm, st->comm_len);
			ps->ev[i].comm[st->comm_len] = 0;
			return 0;
		}
	if (ps->nev >= MAX_THREADS)
		return 1;
	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_TASK_CLOCK;
	a.sample_period = 1000000000ull / ps->j->o->hz;
	a.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	a.sample_regs_user = REGS_MASK;
	a.sample_stack_user = PD_PROFILE_STACK_COPY;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	a.exclude_callchain_kernel = 1;
	/* Events survive an exec, a setuid one too: the exec's COMM record,
	 * in order with the samples of that ring, is where they stop counting
	 * (perf_drain). */
	a.comm = 1;
	a.comm_exec = 1;
	fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno; /* a thread that just exited */
	if (ps->nev == ps->aev) {
		size_t na = ps->aev ? ps->aev * 2 : 16;
		struct pthread_ev *nv = realloc(ps->ev, na * sizeof(*nv));

		if (!nv) {
			close(fd);
			return -ENOMEM;
		}
		ps->ev = nv;
		ps->aev = na;
	}
	e = &ps->ev[ps->nev];
	e->ring = mmap(NULL, (1 + RING_PAGES) * ps->page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (e->ring == MAP_FAILED) {
		int rc = -errno;

		close(fd);
		if (ps->nev && (rc == -EPERM || rc == -ENOMEM))
			return 1; /* the locked-memory limit: the others go on */
		return rc;
	}
	e->tid = tid;
	e->fd = fd;
	e->alive = true;
	memcpy(e->comm, st->comm, st->comm_len);
	e->comm[st->comm_len] = 0;
	ps->nev++;
	return 0;
}

/* Is the process still the scope's to read (lib/scope.h)? If not, the
 * profile stops as after an exec. */
static bool perf_in_scope(struct perf_state *ps)
{
	const struct pd_scope *s = ps->j->o->scope;

	if (s && pd_scope_may_act(s, ps->p->dirfd, "status") < 0) {
		ps->j->execed = true;
		ps->stop = true;
	}
	return !ps->stop;
}

/* Every thread now: an event for each new one; those left out (MAX_THREADS,
 * the locked-memory limit) are counted. 0 or -errno. A thread is opened
 * only between two scope checks, after the listing that named it: one of
 * an image that a setuid exec brought in is never given an event unless
 * the process is back in the scope (a thread listed before the exec is
 * gone by then, de_thread; the exec'ing one has the pid, whose event
 * already exists and saw the exec's COMM record). */
static int perf_scan(struct perf_state *ps)
{
	struct pd_tasks tasks = PD_TASKS_INIT;
	int rc = pd_proc_tasks(ps->p, &tasks);
	uint64_t skipped = 0;

	if (rc >= 0 && !perf_in_scope(ps))
		rc = 0, tasks.n = 0;
	for (size_t i = 0; rc >= 0 && i < tasks.n; i++) {
		rc = perf_open_thread(ps, tasks.v[i].pid, &tasks.v[i]);
		skipped += rc == 1;
	}
	pd_tasks_release(&tasks);
	if (rc >= 0)
		perf_in_scope(ps);
	if (skipped > ps->j->unsampled)
		ps->j->unsampled = skipped;
	return rc < 0 ? rc : 0;
}

static uint64_t rd64(const unsigned char **p)
{
	uint64_t v;

	memcpy(&v, *p, sizeof(v));
	*p += sizeof(v);
	return v;
}

static void perf_sample(struct perf_state *ps, const struct pthread_ev *e, const unsigned char *p,
			const unsigned char *end)
{
	struct pd_stack_copy sc = { 0 };
	uint64_t r[NREGS_SAMPLE], abi, size, dyn = 0;
	size_t n = 0, k = 0;
	const void *data = NULL;
	int64_t ix;
	uint32_t tid;

	if (end - p < 16)
		return;
	memcpy(&tid, p + 4, sizeof(tid));
	p += 8;
	abi = rd64(&p);
	if (abi) {
		if ((size_t)(end - p) < sizeof(r) + 8)
			return;
		for (size_t i = 0; i < NREGS_SAMPLE; i++)
			r[i] = rd64(&p);
	}
	if (end - p < 8)
		return;
	size = rd64(&p);
	if (size) {
		if ((uint64_t)(end - p) < size + 8)
			return;
		data = p;
		p += size;
		dyn = rd64(&p);
		if (dyn > size)
			dyn = size;
	}
	ps->j->samples++;
	saw_thread(ps->j, (pid_t)tid);
	if (abi && data) {
		/* perf's order (ax bx cx dx si di bp sp ip r8..r15) to DWARF's. */
		uint64_t dw[17] = { r[0], r[3], r[2], r[1], r[4],  r[5],  r[6],	 r[7], r[9],
				    r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[8] };

		sc.tid = (pid_t)tid;
		memcpy(sc.regs, dw, sizeof(dw));
		sc.sp = r[7];
		sc.stack = data;
		sc.stack_len = (size_t)dyn;
		n = pd_stacks_live_unwind(ps->live, &sc, ps->pcs, ps->exact, PD_PROFILE_MAX_FRAMES);
	}
	ix = pd_fold_frame(ps->j->fold, e->comm[0] ? e->comm : "[thread]", NULL);
	if (ix < 0)
		return;
	ps->stack[k++] = (uint32_t)ix;
	for (size_t i = n; i-- > 0;) {
		const char *sym, *mod;

		pd_stacks_live_symbol(ps->live, ps->pcs[i], ps->exact[i], &sym, &mod);
		ix = frame_of(ps->j->fold, sym, mod);
		if (ix < 0)
			return;
		ps->stack[k++] = (uint32_t)ix;
	}
	pd_fold_add(ps->j->fold, ps->stack, k, 1);
}

/* The records of one ring, consumed. */
static void perf_drain(struct perf_state *ps, struct pthread_ev *e)
{
	struct perf_event_mmap_page *mp = e->ring;
	uint64_t head = __atomic_load_n(&mp->data_head, __ATOMIC_ACQUIRE);
	uint64_t tail = mp->data_tail;
	size_t size = RING_PAGES * ps->page;
	unsigned char *base = (unsigned char *)e->ring + ps->page;

	while (tail + sizeof(struct perf_event_header) <= head) {
		struct perf_event_header h;
		size_t off = (size_t)(tail % size);
		const unsigned char *rec;

		if (off + sizeof(h) <= size) {
			memcpy(&h, base + off, sizeof(h));
		} else {
			size_t first = size - off;

			memcpy(&h, base + off, first);
			memcpy((unsigned char *)&h + first, base, sizeof(h) - first);
		}
		if (h.size < sizeof(h) || tail + h.size > head)
			break;
		if (off + h.size <= size) {
			rec = base + off;
		} else {
			size_t first = size - off;

			memcpy(ps->rec, base + off, first);
			memcpy(ps->rec + first, base, h.size - first);
			rec = ps->rec;
		}
		if (ps->stop) {
			/* after an exec: dropped, whatever the ring */
		} else if (h.type == PERF_RECORD_COMM && (h.misc & PERF_RECORD_MISC_COMM_EXEC)) {
			ps->j->execed = true;
			ps->stop = true;
		} else if (h.type == PERF_RECORD_SAMPLE) {
			perf_sample(ps, e, rec + sizeof(h), rec + h.size);
		} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof(h) + 16) {
			const unsigned char *q = rec + sizeof(h) + 8;

			ps->j->lost += rd64(&q);
		}
		tail += h.size;
	}
	__atomic_store_n(&mp->data_tail, tail, __ATOMIC_RELEASE);
}

static void perf_close_all(struct perf_state *ps)
{
	for (size_t i = 0; i < ps->nev; i++) {
		ioctl(ps->ev[i].fd, PERF_EVENT_IOC_DISABLE, 0);
		perf_drain(ps, &ps->ev[i]);
		munmap(ps->ev[i].ring, (1 + RING_PAGES) * ps->page);
		close(ps->ev[i].fd);
	}
	free(ps->ev);
	ps->ev = NULL;
	ps->nev = 0;
}

/* Exited (a zombie, reaped, or its /proc gone)? */
static bool gone(struct pd_proc *p)
{
	struct pd_stat st;

	return pd_read_stat_at(p->dirfd, "stat", &st) < 0 || st.state == 'Z' || st.state == 'X';
}

static int run_perf(struct job *j, struct pd_proc *p, int pidfd, struct pd_stacks_cache *cache,
		    char *err, size_t errlen)
{
	struct perf_state ps = { .j = j, .p = p };
	uint64_t t0 = pd_mono_ns(), end = t0 + (uint64_t)j->o->seconds * 1000000000ull;
	uint64_t next_scan = t0 + RESCAN_NS;
	int rc;

	ps.page = (size_t)sysconf(_SC_PAGESIZE);
	ps.rec = malloc(65536);
	if (!ps.rec)
		return -ENOMEM;
	rc = pd_stacks_live_open(cache, j->pid, p->stat.starttime, &ps.live, err, errlen);
	if (rc == 0) {
		rc = perf_scan(&ps);
		if (rc < 0)
			pd_seterr(err, errlen, "perf_event_open on process %d: %s", (int)j->pid,
				  strerror(-rc));
		if (rc == -EACCES)
			rc = -EPERM;
		else if (rc < 0 && rc != -EPERM && rc != -ENOMEM)
			rc = -EIO;
	}
	while (rc == 0 && !ps.stop) {
		struct pollfd pf = { pidfd, POLLIN, 0 };
		uint64_t now = pd_mono_ns();

		if (now >= end)
			break;
		if (pidfd >= 0 ? poll(&pf, 1, DRAIN_MS) > 0 && (pf.revents & (POLLIN | POLLHUP))
			       : (poll(NULL, 0, DRAIN_MS), gone(p))) {
			j->exited = true;
			break;
		}
		for (size_t i = 0; i < ps.nev; i++)
			perf_drain(&ps, &ps.ev[i]);
		if (ps.stop)
			break;
		if (pd_mono_ns() >= next_scan) {
			next_scan += RESCAN_NS;
			perf_scan(&ps); /* a thread's failure: it was not there long */
		}
	}
	perf_close_all(&ps);
	pd_stacks_live_close(ps.live);
	free(ps.rec);
	return rc;
}

/* ---- ptrace: the stacks path hz times a second ------------------------------------ */

int pd_profile_fold_stacks(struct pd_fold *f, const json_t *doc)
{
	const json_t *t, *fr;
	size_t i, k;
	uint32_t stack[PD_PROFILE_MAX_FRAMES + 1];

	json_array_foreach(json_object_get(doc, "threads"), i, t) {
		const json_t *frames = json_object_get(t, "frames");
		const char *name = json_string_value(json_object_get(t, "name"));
		size_t n = json_array_size(frames), m = 0;
		int64_t ix = pd_fold_frame(f, name && *name ? name : "[thread]", NULL);

		if (ix < 0)
			return -ENOMEM;
		stack[m++] = (uint32_t)ix;
		if (n > PD_PROFILE_MAX_FRAMES)
			n = PD_PROFILE_MAX_FRAMES;
		for (k = n; k-- > 0;) {
			fr = json_array_get(frames, k);
			ix = frame_of(f, json_string_value(json_object_get(fr, "symbol")),
				      json_string_value(json_object_get(fr, "module")));
			if (ix < 0)
				return -ENOMEM;
			stack[m++] = (uint32_t)ix;
		}
		if (pd_fold_add(f, stack, m, 1) < 0)
			return -ENOMEM;
	}
	return (int)i;
}

static int fold_doc(struct job *j, const json_t *doc)
{
	const json_t *t;
	size_t i;
	int n = pd_profile_fold_stacks(j->fold, doc);

	if (n < 0)
		return n;
	j->samples += (uint64_t)n;
	json_array_foreach(json_object_get(doc, "threads"), i, t)
		saw_thread(j, (pid_t)json_integer_value(json_object_get(t, "id")));
	return 0;
}

static int run_ptrace(struct job *j, struct pd_proc *p, struct pd_stacks_cache *cache, char *err,
		      size_t errlen)
{
	struct pd_stacks_opts so = { .no_source = true, .scope = j->o->scope };
	uint64_t period = 1000000000ull / j->o->hz, t0 = pd_mono_ns();
	uint64_t end = t0 + (uint64_t)j->o->seconds * 1000000000ull;
	int rc = 0;

	for (uint64_t next = t0; next < end; next += period) {
		uint64_t now = pd_mono_ns();
		json_t *doc = NULL;

		if (now < next) {
			struct timespec ts = { (time_t)((next - now) / 1000000000ull),
					       (long)((next - now) % 1000000000ull) };

			nanosleep(&ts, NULL);
		} else if (now - next > period) {
			continue; /* behind: that tick is skipped */
		}
		rc = pd_stacks_collect(cache, j->pid, p->stat.starttime, &so, &doc, err, errlen);
		if (rc == -ESRCH || rc == -EOWNERDEAD) {
			j->exited = true;
			rc = j->samples ? 0 : rc;
			break;
		}
		if (rc == -EAGAIN || rc == -ETIMEDOUT) {
			rc = 0; /* that tick had no stacks */
			continue;
		}
		if (rc < 0)
			break;
		j->stopped_us += (uint64_t)json_integer_value(json_object_get(doc, "stopped_us"));
		rc = fold_doc(j, doc);
		json_decref(doc);
		if (rc < 0)
			break;
	}
	return rc;
}

/* ---- the job ----------------------------------------------------------------------- */

static int proc_error(int rc, pid_t pid, char *err, size_t errlen)
{
	if (rc == -ESRCH || rc == -ENOENT || rc == -EACCES) {
		pd_seterr(err, errlen, "process %d is not running", (int)pid);
		return -ESRCH;
	}
	if (rc == -EPERM)
		pd_seterr(err, errlen, "procdiag may not profile process %d", (int)pid);
	return rc;
}

int pd_profile_run(pid_t pid, uint64_t start_time, const struct pd_profile_opts *o, json_t **out,
		   char *err, size_t errlen)
{
	struct job j = { .pid = pid, .o = o };
	struct pd_stacks_cache *cache = NULL;
	uint64_t t0 = pd_mono_ns();
	struct pd_proc p;
	int rc, pidfd = -1;
	json_t *doc = NULL, *meta;
	char name[PD_COMM_MAX];
	struct pd_stat st;
	enum pd_profile_method method;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!o->seconds || o->seconds > PD_PROFILE_SECONDS_MAX || !o->hz || o->hz > PD_PROFILE_HZ_MAX) {
		pd_seterr(err, errlen, "seconds must be 1..%d and hz 1..%d", PD_PROFILE_SECONDS_MAX,
			  PD_PROFILE_HZ_MAX);
		return -EINVAL;
	}
	rc = pd_proc_open(pid, &p);
	if (rc < 0)
		return proc_error(rc, pid, err, errlen);
	if (start_time && p.stat.starttime != start_time) {
		pd_proc_close(&p);
		return proc_error(-ESRCH, pid, err, errlen);
	}
	memcpy(name, p.stat.comm, p.stat.comm_len);
	name[p.stat.comm_len] = 0;
	if (p.stat.state == 'Z') {
		pd_seterr(err, errlen, "process %d is a zombie", (int)pid);
		rc = -EOWNERDEAD;
		goto out;
	}
	if (pd_stat_is_kthread(&p.stat)) {
		pd_seterr(err, errlen, "process %d is a kernel thread", (int)pid);
		rc = -EOPNOTSUPP;
		goto out;
	}
	/* Pinned: its exit is seen, a reused pid is not it (start time checked
	 * again with the pidfd held). */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno == ESRCH) {
		rc = proc_error(-ESRCH, pid, err, errlen);
		goto out;
	}
	/* pidfd_open unknown (Linux < 5.3, valgrind): its exit is seen in
	 * /proc alone (run_perf reads the stat every drain). */
	if (pd_read_stat_at(p.dirfd, "stat", &st) < 0 ||
	    st.starttime != p.stat.starttime || st.state == 'Z' || st.state == 'X') {
		rc = proc_error(-ESRCH, pid, err, errlen);
		goto out;
	}
	if (o->scope && (rc = pd_scope_may_act(o->scope, p.dirfd, "status")) < 0) {
		rc = proc_error(rc, pid, err, errlen);
		goto out;
	}
	j.fold = pd_fold_new();
	cache = pd_stacks_cache_new();
	if (!j.fold || !cache) {
		rc = -ENOMEM;
		goto out;
	}
	method = o->method == PD_PROFILE_PTRACE ? PD_PROFILE_PTRACE : PD_PROFILE_PERF;
	if (method == PD_PROFILE_PERF) {
		rc = run_perf(&j, &p, pidfd, cache, err, errlen);
		/* Refused by the kernel before the first sample: the stacks path. */
		if (rc == -EPERM && o->method == PD_PROFILE_AUTO && !j.samples && !j.exited) {
			method = PD_PROFILE_PTRACE;
			if (err && errlen)
				err[0] = 0;
			rc = run_ptrace(&j, &p, cache, err, errlen);
		}
	} else {
		rc = run_ptrace(&j, &p, cache, err, errlen);
	}
	if (rc < 0)
		goto out;
	/* Still the scope's to read, or nothing of it is answered (an exec of
	 * a setuid program during the profile). An exited process was judged
	 * when the profile began, unless it exec'd first (perf: what it had
	 * before the exec is all there is; it is answered only if the process,
	 * now, is still the scope's, or is gone). */
	if (o->scope && (!j.exited || j.execed) &&
	    (rc = pd_scope_may_act(o->scope, p.dirfd, "status")) < 0) {
		if (rc == -ESRCH) {
			j.exited = true;
			rc = 0;
		} else {
			rc = proc_error(rc, pid, err, errlen);
			goto out;
		}
	}
	if (j.exited && !j.samples) {
		rc = proc_error(-ESRCH, pid, err, errlen);
		goto out;
	}
	{
		struct strbuf title = STRBUF_INIT;

		strbuf_addf(&title, "%s (%d)", name, (int)pid);
		doc = title.failed ? NULL : pd_fold_speedscope(j.fold, title.buf);
		strbuf_release(&title);
	}
	meta = json_pack("{s:i,s:o,s:s,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:o}", "pid", (int)pid, "name",
			 pd_json_bytes(p.stat.comm, p.stat.comm_len), "method",
			 pd_profile_method_name(method), "seconds", (int)o->seconds, "hz",
			 (int)o->hz, "samples", (json_int_t)j.samples, "threads",
			 (json_int_t)j.nseen, "unsampled_threads", (json_int_t)j.unsampled, "lost",
			 (json_int_t)j.lost, "stopped_us",
			 (json_int_t)j.stopped_us, "elapsed_ms",
			 (json_int_t)((pd_mono_ns() - t0) / 1000000), "complete", !j.exited && !j.execed,
			 "ended", j.execed ? json_string("exec") : j.exited ? json_string("exited") : json_null());
	if (!doc || !meta || json_object_set_new(doc, "procdiag", meta) < 0) {
		if (!doc)
			json_decref(meta);
		rc = -ENOMEM;
		goto out;
	}
	*out = doc;
	doc = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && err && !err[0])
		pd_seterr(err, errlen, "out of memory");
	json_decref(doc);
	pd_fold_free(j.fold);
	pd_stacks_cache_free(cache);
	free(j.seen);
	if (pidfd >= 0)
		close(pidfd);
	pd_proc_close(&p);
	return rc;
}
