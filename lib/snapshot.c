#include "config.h"

#include "lib/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/proc.h"
#include "lib/sysclock.h"

/* The refcount lives beside the public struct so the header stays plain. */
struct snap_box {
	atomic_long refs;
	struct pd_snapshot s;
};

static struct snap_box *box_of(struct pd_snapshot *s)
{
	return (struct snap_box *)((char *)s - offsetof(struct snap_box, s));
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "123" -> "123/stat" in out; 0 when name is not a pid. */
static size_t stat_path(const char *name, char *out, size_t outlen)
{
	size_t n = 0;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	while (name[n]) {
		if (name[n] < '0' || name[n] > '9' || n >= 10)
			return 0;
		n++;
	}
	if (n + sizeof("/stat") > outlen)
		return 0;
	memcpy(out, name, n);
	memcpy(out + n, "/stat", sizeof("/stat"));
	return n;
}

/* Reads one process. Any failure means "leave it out": it exited between
 * readdir and open, or the kernel wrote something we do not understand;
 * neither should fail the whole list. */
static bool read_entry(int procfd, const char *path, struct pd_proc_entry *e)
{
	char buf[4096]; /* a stat line is ~300 bytes; 52 fields of 20 digits fit */
	struct pd_stat st;
	struct stat sb;
	ssize_t n;
	int fd;

	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return false;
	/* The stat file's owner is the owner of /proc/PID (task_dump_owner). */
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return false;
	}
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return false;
	if (pd_parse_stat(buf, (size_t)n, &st) < 0)
		return false;
	e->pid = st.pid;
	e->ppid = st.ppid;
	e->uid = sb.st_uid;
	e->state = st.state;
	e->starttime = st.starttime;
	e->num_threads = st.num_threads;
	e->rss_pages = st.rss;
	e->utime = st.utime;
	e->stime = st.stime;
	memcpy(e->comm, st.comm, sizeof(e->comm));
	e->comm_len = st.comm_len;
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct pd_proc_entry *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

struct pd_snapshot *pd_snapshot_new(size_t cap)
{
	struct snap_box *box = calloc(1, sizeof(*box));

	if (!box)
		return NULL;
	box->s.procs = malloc((cap ? cap : 1) * sizeof(*box->s.procs));
	if (!box->s.procs) {
		free(box);
		return NULL;
	}
	atomic_init(&box->refs, 1);
	return &box->s;
}

int pd_snapshot_scan(struct pd_snapshot **out)
{
	struct snap_box *box;
	struct pd_snapshot *s;
	struct dirent *de;
	size_t alloc = 0;
	bool sorted = true;
	int64_t t0;
	int procfd, rc = 0;
	DIR *d;

	*out = NULL;
	box = calloc(1, sizeof(*box));
	if (!box)
		return -ENOMEM;
	atomic_init(&box->refs, 1);
	s = &box->s;
	s->taken_ns = realtime_ns();
	t0 = (int64_t)pd_mono_ns();
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0) {
		rc = -errno;
		free(box);
		return rc;
	}
	d = fdopendir(procfd);
	if (!d) {
		rc = -errno;
		close(procfd);
		free(box);
		return rc;
	}
	while ((errno = 0, de = readdir(d))) {
		char path[32];

		if (!stat_path(de->d_name, path, sizeof(path)))
			continue;
		if (s->n == alloc) {
			size_t na = alloc ? 2 * alloc : 512;
			struct pd_proc_entry *nv = realloc(s->procs, na * sizeof(*nv));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			s->procs = nv;
			alloc = na;
		}
		if (!read_entry(procfd, path, &s->procs[s->n]))
			continue;
		if (s->n && s->procs[s->n].pid <= s->procs[s->n - 1].pid)
			sorted = false;
		s->n++;
	}
	if (!rc && errno)
		rc = -errno;
	closedir(d);
	if (rc < 0) {
		free(s->procs);
		free(box);
		return rc;
	}
	/* The kernel lists pids in ascending order; sort only if it did not. */
	if (!sorted)
		qsort(s->procs, s->n, sizeof(*s->procs), cmp_entry);
	s->scan_ns = (int64_t)pd_mono_ns() - t0;
	*out = s;
	return 0;
}

void pd_snapshot_ref(struct pd_snapshot *s)
{
	atomic_fetch_add_explicit(&box_of(s)->refs, 1, memory_order_relaxed);
}

void pd_snapshot_unref(struct pd_snapshot *s)
{
	struct snap_box *box;

	if (!s)
		return;
	box = box_of(s);
	if (atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(s->procs);
	free(box);
}

/* Single flight: one scan at a time; whoever arrives while it runs waits
 * for it and shares its result. The flight is on the heap because waiters
 * may still be reading it after the scanner has returned; its last user
 * frees it. */
struct flight {
	bool done;
	int rc;
	size_t users;		  /* the scanner and every waiter not yet gone */
	struct pd_snapshot *snap; /* one reference, owned by the flight */
};

static pthread_mutex_t sf_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sf_done = PTHREAD_COND_INITIALIZER;
static struct flight *sf_cur; /* the scan in progress, or NULL */
static struct pd_snapshot *sf_last; /* the latest scan that succeeded (a reference) */
static int64_t sf_last_start;	    /* CLOCK_MONOTONIC ns when it started */

/* Called with sf_lock held; returns the snapshot reference to drop after
 * unlocking, if this was the flight's last user. */
static struct pd_snapshot *leave_flight(struct flight *f, struct pd_snapshot **out, int *rc)
{
	struct pd_snapshot *drop = NULL;

	*rc = f->rc;
	if (f->rc == 0) {
		pd_snapshot_ref(f->snap);
		*out = f->snap;
	}
	if (--f->users == 0) {
		drop = f->snap;
		free(f);
	}
	return drop;
}

int pd_snapshot_get(struct pd_snapshot **out)
{
	return pd_snapshot_get_within(0, out);
}

int pd_snapshot_get_within(int64_t max_age_ns, struct pd_snapshot **out)
{
	struct pd_snapshot *snap = NULL, *drop, *old = NULL;
	struct flight *f;
	int64_t start;
	int rc;

	*out = NULL;
	pthread_mutex_lock(&sf_lock);
	if (max_age_ns > 0 && sf_last && (int64_t)pd_mono_ns() - sf_last_start <= max_age_ns) {
		pd_snapshot_ref(sf_last);
		*out = sf_last;
		pthread_mutex_unlock(&sf_lock);
		return 0;
	}
	f = sf_cur;
	if (f) {
		f->users++;
		while (!f->done)
			pthread_cond_wait(&sf_done, &sf_lock);
		drop = leave_flight(f, out, &rc);
		pthread_mutex_unlock(&sf_lock);
		pd_snapshot_unref(drop);
		return rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		/* No memory to share: still answer, just alone. */
		pthread_mutex_unlock(&sf_lock);
		return pd_snapshot_scan(out);
	}
	f->users = 1;
	sf_cur = f;
	pthread_mutex_unlock(&sf_lock);

	start = (int64_t)pd_mono_ns();
	rc = pd_snapshot_scan(&snap);

	pthread_mutex_lock(&sf_lock);
	if (rc == 0) {
		old = sf_last;
		pd_snapshot_ref(snap);
		sf_last = snap;
		sf_last_start = start;
	}
	f->rc = rc;
	f->snap = snap;
	f->done = true;
	sf_cur = NULL;
	pthread_cond_broadcast(&sf_done);
	drop = leave_flight(f, out, &rc);
	pthread_mutex_unlock(&sf_lock);
	pd_snapshot_unref(drop);
	pd_snapshot_unref(old);
	return rc;
}

const struct pd_proc_entry *pd_snapshot_find(const struct pd_snapshot *s, int pid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int p = s->procs[mid].pid;

		if (p == pid)
			return &s->procs[mid];
		if (p < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}


int pd_entry_name(const struct pd_proc_entry *e, struct strbuf *sb)
{
	struct pd_proc p;
	int rc;

	if (pd_comm_may_be_cut(e->comm_len) && pd_proc_open(e->pid, &p) == 0) {
		rc = p.stat.starttime == e->starttime ? pd_proc_cmd_name(&p, sb) : -ESRCH;
		pd_proc_close(&p);
		if (rc != -ESRCH)
			return rc;
	}
	return strbuf_add(sb, e->comm, e->comm_len);
}

bool pd_name_matches(const char *have, size_t len, const char *want)
{
	return len == strlen(want) && !strncasecmp(have, want, len);
}

int pd_entry_named(const struct pd_proc_entry *e, const char *name, struct strbuf *scratch)
{
	strbuf_reset(scratch);
	if (pd_entry_name(e, scratch) < 0)
		return -ENOMEM;
	return pd_name_matches(scratch->buf, scratch->len, name);
}
