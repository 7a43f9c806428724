/* The process table's sampler: see lib/top.h. */
#include "config.h"

#include "lib/top.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/cgroupstat.h"
#include "lib/sysclock.h"

/* The sampler's two readings and what goes with them. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct pd_snapshot *s_prev, *s_cur;
static uint64_t s_mem_limit;

/* The command lines kept, by pid (sorted) and start time. Replaced by each
 * reading with the processes it listed. */
struct cmd_entry {
	int pid;
	uint64_t starttime;
	char *cmd;
	size_t len;
};
static struct cmd_entry *cmds;
static size_t ncmds;

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
	char path[32], buf[4096];
	struct stat st;
	long got;
	int fd, n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	/* Linux 6.2 and later give the count as the directory's size: one
	 * system call. Before, the size is 0: count the entries. */
	if (stat(path, &st) < 0)
		return -errno;
	if (st.st_size > 0)
		return st.st_size > INT_MAX ? INT_MAX : (int)st.st_size;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got;) {
			const struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (const void *)(buf + off);

			if (d->name[0] != '.')
				n++;
			off += d->reclen;
		}
	}
	if (got < 0)
		n = -errno;
	close(fd);
	return n;
}

/* /proc/PID/cmdline, NULs as spaces, at most PD_TOP_CMD_MAX bytes; "" when
 * unreadable. malloc'd (NULL: out of memory). */
static char *read_cmd(int pid, size_t *len)
{
	char path[32], *s = malloc(PD_TOP_CMD_MAX + 1);
	ssize_t got = 0;
	int fd;

	if (!s)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
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

static const struct cmd_entry *find_cmd(int pid, uint64_t starttime)
{
	size_t lo = 0, hi = ncmds;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmds[mid].pid == pid)
			return cmds[mid].starttime == starttime ? &cmds[mid] : NULL;
		if (cmds[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The rows' command lines: kept ones copied, others read; then the kept
 * set becomes the rows'. Under lock. */
static int fill_cmds(struct pd_top *t)
{
	struct cmd_entry *next = malloc((t->n ? t->n : 1) * sizeof(*next));

	if (!next)
		return -ENOMEM;
	for (size_t i = 0; i < t->n; i++) {
		struct pd_top_row *row = &t->rows[i];
		const struct cmd_entry *c = find_cmd(row->e->pid, row->e->starttime);

		if (c) {
			row->cmd = malloc(c->len + 1);
			if (row->cmd) {
				memcpy(row->cmd, c->cmd, c->len + 1);
				row->cmd_len = c->len;
			}
		} else {
			row->cmd = read_cmd(row->e->pid, &row->cmd_len);
		}
		next[i] = (struct cmd_entry){row->e->pid, row->e->starttime,
					     row->cmd ? strdup(row->cmd) : NULL, row->cmd_len};
		if (!row->cmd || !next[i].cmd) {
			for (size_t j = 0; j <= i; j++)
				free(next[j].cmd);
			free(next);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < ncmds; i++)
		free(cmds[i].cmd);
	free(cmds);
	cmds = next;
	ncmds = t->n;
	return 0;
}

/* Takes snap (a reference) into the sampler; answers the pair to use. */
static void sample(struct pd_snapshot *snap, struct pd_top *t)
{
	if (!s_cur) {
		s_cur = snap;
		s_mem_limit = read_mem_limit();
	} else if (snap != s_cur && snap->taken_ns - s_cur->taken_ns >= PD_TOP_MIN_GAP_NS) {
		if (s_prev)
			pd_snapshot_unref(s_prev);
		s_prev = s_cur;
		s_cur = snap;
		s_mem_limit = read_mem_limit();
	} else {
		pd_snapshot_unref(snap); /* the same reading, or one too close to it */
	}
	pd_snapshot_ref(s_cur);
	t->cur = s_cur;
	if (s_prev) {
		pd_snapshot_ref(s_prev);
		t->prev = s_prev;
		t->interval_ns = s_cur->taken_ns - s_prev->taken_ns;
	}
	t->mem_limit = s_mem_limit;
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
	struct pd_snapshot *snap;
	struct sysinfo si;
	struct timespec boot;
	long page = sysconf(_SC_PAGESIZE);
	int64_t now;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = pd_snapshot_get_within(max_age_ns, &snap);
	if (rc < 0)
		return rc;
	clock_gettime(CLOCK_BOOTTIME, &boot);
	now = (int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec;
	out->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (out->ncpu < 1)
		out->ncpu = 1;
	if (sysinfo(&si) == 0)
		out->mem_total = (uint64_t)si.totalram * si.mem_unit;
	pthread_mutex_lock(&lock);
	sample(snap, out);
	pthread_mutex_unlock(&lock);
	out->rows = calloc(out->cur->n ? out->cur->n : 1, sizeof(*out->rows));
	if (!out->rows) {
		pd_top_release(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < out->cur->n; i++) {
		const struct pd_proc_entry *e = &out->cur->procs[i];
		struct pd_top_row *row = &out->rows[out->n];
		int fds;

		if (!keep(out->cur, e, arg))
			continue;
		row->e = e;
		row->cpu = cpu_of(out, e);
		row->rss = e->rss_pages >= 0 ? e->rss_pages * page : -1;
		fds = pd_count_fds(e->pid);
		row->fds = fds >= 0 ? fds : -1;
		row->uptime_ns = now - pd_ticks_to_ns(e->starttime);
		if (row->uptime_ns < 0)
			row->uptime_ns = 0;
		out->n++;
	}
	pthread_mutex_lock(&lock);
	rc = fill_cmds(out);
	pthread_mutex_unlock(&lock);
	if (rc < 0)
		pd_top_release(out);
	return rc;
}

void pd_top_release(struct pd_top *t)
{
	for (size_t i = 0; t->rows && i < t->n; i++)
		free(t->rows[i].cmd);
	free(t->rows);
	if (t->cur)
		pd_snapshot_unref(t->cur);
	if (t->prev)
		pd_snapshot_unref(t->prev);
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
