/* The process table's sampler: see lib/top.h. */
#include "config.h"

#include "lib/top.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/cgroupstat.h"
#include "lib/sysclock.h"

/* The memory limit of procdiag's own cgroup (in a container: the
 * container's), 0 when none or unknown. Read when the readings turn over. */
static uint64_t read_mem_limit(void)
{
	struct pd_cgroup_mounts m;
	struct pd_proc_cgroup *cg = malloc(sizeof(*cg));
	struct pd_cgroup_memory mem;
	struct strbuf scratch = STRBUF_INIT;
	uint64_t limit = 0;

	if (!cg)
		return 0;
	if (pd_cgroup_mounts_open(&m) == 0) {
		if (pd_cgroup_read_proc(getpid(), &scratch, cg, NULL, 0) == 0 &&
		    pd_cgroup_memory_read(&m, cg, &mem, NULL, 0) == 0)
			limit = mem.limit;
		pd_cgroup_mounts_close(&m);
	}
	strbuf_release(&scratch);
	free(cg);
	return limit;
}

int pd_count_fds(int pid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	return pd_count_fds_at(AT_FDCWD, path, &st);
}

/* /proc/PID/cmdline, NULs as spaces, at most PD_TOP_CMD_MAX bytes; "" when
 * unreadable. malloc'd (NULL: out of memory). */
static char *read_cmd(int dfd, const char *path, size_t *len)
{
	char *s = malloc(PD_TOP_CMD_MAX + 1);
	ssize_t got = 0;
	int fd;

	if (!s)
		return NULL;
	fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		got = read(fd, s, PD_TOP_CMD_MAX);
		close(fd);
	}
	if (got < 0)
		got = 0;
	while (got > 0 && s[got - 1] == '\0')
		got--;
	for (ssize_t i = 0; i < got; i++)
		if (s[i] == '\0')
			s[i] = ' ';
	s[got] = '\0';
	*len = (size_t)got;
	return s;
}

/* ---- the table's readings ------------------------------------------------ */

/* A process run (pid and start time) the table has seen, kp from one
 * reading to the next: its /proc/PID (O_PATH) and /proc/PID/stat stay open
 * while the bound allows, so a reading costs a pread of stat and an
 * fstatat of "fd" under the kp directory per process, no path walk from
 * /proc. A kp stat fd reads its own task afresh and fails (ESRCH) once
 * that task is gone, so a pid reused by another process never reads through
 * it. Its command line is read once. */
struct kept {
	int pid;
	uint64_t starttime;
	int dirfd, statfd; /* -1: not kp (both or neither) */
	uid_t uid;	   /* the owner when they were opened */
	char *cmd;	   /* NULL: not read yet */
	size_t cmd_len;
};

/* Per entry of a reading's snapshot, the figures the scan adds. */
struct extra {
	int64_t fds;
	size_t cmd_off, cmd_len; /* in the reading's cmds */
};

/* One reading: immutable once published, shared by every poll that finds it
 * young enough; the last user frees it. */
struct pd_top_reading {
	atomic_long refs;
	int64_t mono_ns; /* CLOCK_MONOTONIC when the scan started */
	int64_t boot_ns; /* CLOCK_BOOTTIME then (uptimes are at the reading) */
	uint64_t seq;	 /* readings made before it, + 1 */
	uint64_t mem_limit;
	struct pd_snapshot *snap;
	struct extra *x; /* snap->n of them */
	struct strbuf cmds;
};

/* scan_lock: one scan at a time (who waits for it then finds the reading it
 * made young enough: single flight), the kp processes and the two
 * readings. lock: the watched processes below. */
static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pd_top_reading *r_cur, *r_prev;
static struct kept *kp, *kp_next; /* by pid; the next reading's built in the other */
static size_t nkept, kept_alloc;
static unsigned nkeptfds, max_keptfds; /* processes whose fds are kp, the bound */
static int procfd = -1;
static int *pids;
static size_t pids_alloc;
static uint64_t mem_limit;
static int64_t mem_limit_at;
static uint64_t readings;

static int64_t mono_now(void)
{
	return (int64_t)pd_mono_ns();
}

static void reading_unref(struct pd_top_reading *r)
{
	if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	pd_snapshot_unref(r->snap);
	free(r->x);
	strbuf_release(&r->cmds);
	free(r);
}

static void reading_ref(struct pd_top_reading *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

static void drop_fds(struct kept *k)
{
	if (k->statfd >= 0) {
		close(k->statfd);
		close(k->dirfd);
		nkeptfds--;
	}
	k->statfd = k->dirfd = -1;
}

static void forget(struct kept *k)
{
	drop_fds(k);
	free(k->cmd);
	k->cmd = NULL;
}

/* The bound on processes whose fds are kp: two fds each, a quarter of
 * the descriptors we may open in all (an eighth of RLIMIT_NOFILE in
 * processes), at most PD_TOP_KEEP_MAX. Read once, at the first reading. */
static unsigned keep_bound(void)
{
	struct rlimit rl;
	rlim_t cap = 128;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		cap = rl.rlim_cur == RLIM_INFINITY ? PD_TOP_KEEP_MAX : rl.rlim_cur / 8;
	return (unsigned)(cap > PD_TOP_KEEP_MAX ? PD_TOP_KEEP_MAX : cap);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* The pids /proc lists, ascending, into pids: how many, or -errno. */
static ssize_t list_pids(void)
{
	char buf[32768];
	size_t n = 0;
	bool sorted = true;
	long got;

	if (procfd < 0) {
		procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (procfd < 0)
			return -errno;
		max_keptfds = keep_bound();
	}
	if (lseek(procfd, 0, SEEK_SET) < 0)
		return -errno;
	while ((got = syscall(SYS_getdents64, procfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			const struct pd_dirent64 *d = (const void *)(buf + off);
			const char *p = d->name;
			long v = 0;

			off += d->reclen;
			if (*p < '1' || *p > '9')
				continue;
			while (*p >= '0' && *p <= '9' && v <= INT_MAX / 10)
				v = v * 10 + (*p++ - '0');
			if (*p || v > INT_MAX)
				continue;
			if (n == pids_alloc) {
				size_t na = pids_alloc ? 2 * pids_alloc : 1024;
				int *nv = realloc(pids, na * sizeof(*nv));

				if (!nv)
					return -ENOMEM;
				pids = nv;
				pids_alloc = na;
			}
			if (n && v <= pids[n - 1])
				sorted = false;
			pids[n++] = (int)v;
		}
	}
	if (got < 0)
		return -errno;
	if (!sorted)
		qsort(pids, n, sizeof(*pids), cmp_int);
	return (ssize_t)n;
}

/* One process of a scan into e and x: false when it is gone (or its stat
 * unreadable). k: what was kp of this pid (pid set, no fds when new). */
static bool read_one(struct pd_top_reading *r, struct kept *k, struct pd_proc_entry *e,
		     struct extra *x)
{
	char name[16], buf[4096];
	struct pd_stat st;
	struct stat sb;
	ssize_t n = -1;
	int dirfd = -1, statfd = -1, fds;

	snprintf(name, sizeof(name), "%d", k->pid);
	if (k->statfd >= 0) {
		n = pread(k->statfd, buf, sizeof(buf) - 1, 0);
		if (n <= 0) {
			/* its task is gone (ESRCH): the pid may be another's now,
			 * even one started within the same clock tick */
			forget(k);
			k->starttime = 0;
		}
	}
	if (k->statfd < 0) {
		dirfd = openat(procfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			return false;
		statfd = openat(dirfd, "stat", O_RDONLY | O_CLOEXEC | O_NOCTTY);
		n = statfd < 0 ? -1 : pread(statfd, buf, sizeof(buf) - 1, 0);
	}
	if (n <= 0 || (size_t)n >= sizeof(buf) - 1 || pd_parse_stat(buf, (size_t)n, &st) < 0 ||
	    st.pid != k->pid)
		goto gone;
	if (st.starttime != k->starttime) {
		/* a new run of the pid (or the first sight of it) */
		free(k->cmd);
		k->cmd = NULL;
		k->starttime = st.starttime;
	}
	/* The owner, read afresh each reading: the lookup of "fd" revalidates
	 * it, and it is owned as /proc/PID/stat is (task_dump_owner: the
	 * process's euid, root when it is not dumpable), the list's rule. The
	 * same stat gives the descriptors' count. */
	fds = pd_count_fds_at(statfd >= 0 ? dirfd : k->dirfd, "fd", &sb);
	if (fds == -ENOENT || fds == -ESRCH)
		goto gone;
	if (fds < 0 && fstatat(statfd >= 0 ? dirfd : k->dirfd, "stat", &sb, 0) < 0)
		goto gone;
	if (k->statfd >= 0 && k->uid != sb.st_uid)
		drop_fds(k); /* kp fds never outlive a change of owner */
	if (statfd >= 0) {
		if (nkeptfds < max_keptfds) {
			k->dirfd = dirfd;
			k->statfd = statfd;
			k->uid = sb.st_uid;
			nkeptfds++;
		} else {
			close(statfd);
			close(dirfd);
		}
		statfd = dirfd = -1;
	}
	if (!k->cmd) {
		char path[32];

		snprintf(path, sizeof(path), "%s/cmdline", name);
		k->cmd = read_cmd(procfd, path, &k->cmd_len);
		if (!k->cmd)
			return false;
	}
	*e = (struct pd_proc_entry){.pid = st.pid,
				    .ppid = st.ppid,
				    .uid = sb.st_uid,
				    .state = st.state,
				    .starttime = st.starttime,
				    .num_threads = st.num_threads,
				    .rss_pages = st.rss,
				    .utime = st.utime,
				    .stime = st.stime,
				    .comm_len = st.comm_len};
	memcpy(e->comm, st.comm, sizeof(e->comm));
	x->fds = fds >= 0 ? fds : -1;
	x->cmd_off = r->cmds.len;
	x->cmd_len = k->cmd_len;
	return strbuf_add(&r->cmds, k->cmd, k->cmd_len) == 0;
gone:
	if (statfd >= 0)
		close(statfd);
	if (dirfd >= 0)
		close(dirfd);
	return false;
}

/* A new reading of every process. Under scan_lock. */
static int scan(struct pd_top_reading **out)
{
	struct pd_top_reading *r;
	struct timespec rt;
	ssize_t np;
	size_t j = 0, nn = 0;
	int64_t t0 = mono_now();

	*out = NULL;
	np = list_pids();
	if (np < 0)
		return (int)np;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	atomic_init(&r->refs, 1);
	strbuf_init(&r->cmds);
	clock_gettime(CLOCK_REALTIME, &rt);
	r->mono_ns = t0;
	r->seq = ++readings;
	{
		struct timespec boot;

		clock_gettime(CLOCK_BOOTTIME, &boot);
		r->boot_ns = (int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec;
	}
	r->snap = pd_snapshot_new((size_t)np);
	r->x = malloc((np ? (size_t)np : 1) * sizeof(*r->x));
	if ((size_t)np > kept_alloc) {
		struct kept *a = realloc(kp_next, (size_t)np * sizeof(*a));

		if (a) {
			kp_next = a;
			a = realloc(kp, (size_t)np * sizeof(*a));
			if (a) {
				kp = a;
				kept_alloc = (size_t)np;
			}
		}
	}
	if (!r->snap || !r->x || (size_t)np > kept_alloc ||
	    strbuf_grow(&r->cmds, nkept ? 64 * nkept : 4096) < 0) {
		reading_unref(r);
		return -ENOMEM;
	}
	r->snap->taken_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
	for (size_t i = 0; i < (size_t)np; i++) {
		struct kept k = {.pid = pids[i], .dirfd = -1, .statfd = -1};
		struct pd_proc_entry *e = &r->snap->procs[r->snap->n];

		while (j < nkept && kp[j].pid < pids[i])
			forget(&kp[j++]); /* gone */
		if (j < nkept && kp[j].pid == pids[i])
			k = kp[j++];
		if (!read_one(r, &k, e, &r->x[r->snap->n])) {
			forget(&k);
			continue;
		}
		r->snap->n++;
		kp_next[nn++] = k;
	}
	while (j < nkept)
		forget(&kp[j++]);
	{
		struct kept *t = kp;

		kp = kp_next;
		kp_next = t;
		nkept = nn;
	}
	if (!mem_limit_at || t0 - mem_limit_at >= PD_TOP_LIMIT_RECHECK_NS) {
		mem_limit = read_mem_limit();
		mem_limit_at = t0;
	}
	r->mem_limit = mem_limit;
	r->snap->scan_ns = mono_now() - t0;
	*out = r;
	return 0;
}

static double cpu_of(const struct pd_top *t, const struct pd_proc_entry *e)
{
	const struct pd_proc_entry *was = t->prev ? pd_snapshot_find(t->prev, e->pid) : NULL;
	uint64_t now = e->utime + e->stime, then;

	if (!was || was->starttime != e->starttime || t->interval_ns <= 0)
		return -1;
	then = was->utime + was->stime;
	if (now < then)
		return -1;
	return 100.0 * (double)pd_ticks_to_ns(now - then) / (double)t->interval_ns;
}

int pd_top_read(int64_t max_age_ns,
		bool (*keep)(const struct pd_snapshot *snap, const struct pd_proc_entry *e, void *arg),
		void *arg, struct pd_top *out)
{
	struct pd_top_reading *r;
	struct sysinfo si;
	long page = sysconf(_SC_PAGESIZE);
	int64_t now;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (max_age_ns < PD_TOP_MIN_GAP_NS)
		max_age_ns = PD_TOP_MIN_GAP_NS;
	pthread_mutex_lock(&scan_lock);
	if (!r_cur || mono_now() - r_cur->mono_ns >= max_age_ns) {
		rc = scan(&r);
		if (rc == 0) {
			reading_unref(r_prev);
			r_prev = r_cur;
			r_cur = r;
		}
	}
	if (rc == 0) {
		reading_ref(r_cur);
		out->cur_r = r_cur;
		if (r_prev) {
			reading_ref(r_prev);
			out->prev_r = r_prev;
		}
	}
	pthread_mutex_unlock(&scan_lock);
	if (rc < 0)
		return rc;
	out->cur = out->cur_r->snap;
	if (out->prev_r) {
		out->prev = out->prev_r->snap;
		out->interval_ns = out->cur_r->mono_ns - out->prev_r->mono_ns;
	}
	out->mem_limit = out->cur_r->mem_limit;
	now = out->cur_r->boot_ns;
	out->seq = out->cur_r->seq;
	out->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (out->ncpu < 1)
		out->ncpu = 1;
	if (sysinfo(&si) == 0)
		out->mem_total = (uint64_t)si.totalram * si.mem_unit;
	out->rows = malloc((out->cur->n ? out->cur->n : 1) * sizeof(*out->rows));
	if (!out->rows) {
		pd_top_release(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < out->cur->n; i++) {
		const struct pd_proc_entry *e = &out->cur->procs[i];
		const struct extra *x = &out->cur_r->x[i];
		struct pd_top_row *row = &out->rows[out->n];

		if (!keep(out->cur, e, arg))
			continue;
		row->e = e;
		row->cpu = cpu_of(out, e);
		row->rss = e->rss_pages >= 0 ? e->rss_pages * page : -1;
		row->fds = x->fds;
		row->uptime_ns = now - pd_ticks_to_ns(e->starttime);
		if (row->uptime_ns < 0)
			row->uptime_ns = 0;
		row->cmd = out->cur_r->cmds.buf + x->cmd_off;
		row->cmd_len = x->cmd_len;
		out->n++;
	}
	return 0;
}

void pd_top_release(struct pd_top *t)
{
	free(t->rows);
	reading_unref(t->cur_r);
	reading_unref(t->prev_r);
	memset(t, 0, sizeof(*t));
}

/* ---- threads of watched processes ---------------------------------------- */

struct watched {
	int pid; /* 0: free */
	uint64_t proc_ticks; /* the process's utime + stime at the last point */
	int64_t point_ns;    /* CLOCK_MONOTONIC of that point, 0: none yet */
	size_t npoints, next; /* the ring */
	struct pd_top_point ring[PD_TOP_HISTORY];
	uint64_t starttime;
	uint64_t used;	  /* when last asked for (a counter) */
	int64_t taken_ns; /* CLOCK_MONOTONIC of the reading */
	int64_t interval_ns;
	size_t n;
	int *tids;	 /* sorted, as pd_proc_tasks gives them */
	uint64_t *ticks; /* utime + stime */
	double *cpu;	 /* the figures computed at that reading */
};
static struct watched watched[PD_TOP_WATCHED];
static uint64_t watched_clock;

static ssize_t find_tid(const struct watched *w, int tid)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->tids[mid] == tid)
			return (ssize_t)mid;
		if (w->tids[mid] < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static struct watched *watched_slot(int pid, uint64_t starttime)
{
	struct watched *w = NULL;

	for (int i = 0; i < PD_TOP_WATCHED; i++)
		if (watched[i].pid == pid && watched[i].starttime == starttime)
			return &watched[i];
	for (int i = 0; i < PD_TOP_WATCHED; i++)
		if (!w || watched[i].used < w->used)
			w = &watched[i];
	free(w->tids);
	free(w->ticks);
	free(w->cpu);
	*w = (struct watched){.pid = pid, .starttime = starttime};
	return w;
}

int pd_top_threads_cpu(int pid, uint64_t starttime, const struct pd_tasks *tasks, double *cpu,
		       int64_t *interval_ns)
{
	int64_t now = (int64_t)pd_mono_ns();
	struct watched *w;
	int *tids;
	uint64_t *ticks;
	double *kept;
	bool fresh;
	size_t n = tasks->n;

	pthread_mutex_lock(&lock);
	w = watched_slot(pid, starttime);
	w->used = ++watched_clock;
	fresh = !w->tids || now - w->taken_ns >= PD_TOP_MIN_GAP_NS;
	for (size_t i = 0; i < n; i++) {
		ssize_t j = find_tid(w, tasks->v[i].pid);

		cpu[i] = -1;
		if (j < 0)
			continue;
		if (!fresh) {
			cpu[i] = w->cpu[j];
		} else if (now > w->taken_ns) {
			uint64_t t = tasks->v[i].utime + tasks->v[i].stime;

			if (t >= w->ticks[j])
				cpu[i] = 100.0 * (double)pd_ticks_to_ns(t - w->ticks[j]) /
					 (double)(now - w->taken_ns);
		}
	}
	if (!fresh) {
		*interval_ns = w->interval_ns;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	*interval_ns = w->tids ? now - w->taken_ns : 0;
	tids = malloc((n ? n : 1) * sizeof(*tids));
	ticks = malloc((n ? n : 1) * sizeof(*ticks));
	kept = malloc((n ? n : 1) * sizeof(*kept));
	if (!tids || !ticks || !kept) {
		free(tids);
		free(ticks);
		free(kept);
		pthread_mutex_unlock(&lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		tids[i] = tasks->v[i].pid;
		ticks[i] = tasks->v[i].utime + tasks->v[i].stime;
		kept[i] = cpu[i];
	}
	free(w->tids);
	free(w->ticks);
	free(w->cpu);
	w->tids = tids;
	w->ticks = ticks;
	w->cpu = kept;
	w->n = n;
	w->taken_ns = now;
	w->interval_ns = *interval_ns;
	pthread_mutex_unlock(&lock);
	return 0;
}

void pd_top_record(int pid, const struct pd_stat *st, size_t ntasks)
{
	int64_t now = (int64_t)pd_mono_ns();
	uint64_t ticks = st->utime + st->stime;
	struct watched *w = NULL;
	struct timespec rt;
	int fds;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < PD_TOP_WATCHED && !w; i++)
		if (watched[i].pid == pid && watched[i].starttime == st->starttime)
			w = &watched[i];
	if (!w || (w->point_ns && now - w->point_ns < PD_TOP_MIN_GAP_NS)) {
		pthread_mutex_unlock(&lock);
		return; /* not watched, or too close to the last point */
	}
	if (w->point_ns && ticks >= w->proc_ticks) {
		struct pd_top_point *pt = &w->ring[w->next];

		clock_gettime(CLOCK_REALTIME, &rt);
		fds = pd_count_fds(pid);
		*pt = (struct pd_top_point){
			(int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000,
			100.0 * (double)pd_ticks_to_ns(ticks - w->proc_ticks) / (double)(now - w->point_ns),
			st->rss >= 0 ? st->rss * sysconf(_SC_PAGESIZE) : -1, (int64_t)ntasks,
			fds >= 0 ? fds : -1};
		w->next = (w->next + 1) % PD_TOP_HISTORY;
		if (w->npoints < PD_TOP_HISTORY)
			w->npoints++;
	}
	w->proc_ticks = ticks;
	w->point_ns = now;
	pthread_mutex_unlock(&lock);
}

size_t pd_top_history(int pid, uint64_t starttime, struct pd_top_point *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < PD_TOP_WATCHED; i++) {
		const struct watched *w = &watched[i];

		if (w->pid != pid || w->starttime != starttime)
			continue;
		for (size_t k = w->npoints > max ? w->npoints - max : 0; k < w->npoints; k++)
			out[n++] = w->ring[(w->next + PD_TOP_HISTORY - w->npoints + k) % PD_TOP_HISTORY];
		break;
	}
	pthread_mutex_unlock(&lock);
	return n;
}
