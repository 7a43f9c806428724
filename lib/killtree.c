#include "config.h"

#include "lib/killtree.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/proc.h"
#include "lib/sysclock.h"

/* The tree under the target, in signalling order (leaves first, the target
 * last), and the work lists of one call. */
struct tree {
	const struct pd_snapshot *snap;
	const struct pd_scope *scope; /* NULL: no restriction (the CLI) */
	size_t *order, norder;	      /* snapshot indices */
	struct pollfd *wait;	      /* pidfds of signalled processes */
	int *wait_pid;		      /* their pids, same index */
	size_t nwait;
	struct pd_kill_result *res;
	struct pd_protected prot; /* read once per kill */
};

static int cmp_by_parent(const void *a, const void *b, void *arg)
{
	const struct pd_snapshot *s = arg;
	const struct pd_proc_entry *x = &s->procs[*(const size_t *)a];
	const struct pd_proc_entry *y = &s->procs[*(const size_t *)b];

	if (x->ppid != y->ppid)
		return (x->ppid > y->ppid) - (x->ppid < y->ppid);
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Position in byparent of the first entry whose ppid is >= pid. */
static size_t first_child(const struct pd_snapshot *s, const size_t *byparent, int pid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->procs[byparent[mid]].ppid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool in_scope(const struct tree *t, uid_t uid)
{
	return !t->scope || pd_scope_has(t->scope, uid);
}

/* Post-order walk from the target over the snapshot's parent links. A
 * protected descendant (pid 1, us, an ancestor of ours: only possible with
 * a stale snapshot) is skipped with its whole subtree, which holds us. An
 * out-of-scope one is skipped alone: its children are still the target's
 * descendants. The visited marks guard against a cycle that a snapshot
 * taken across a pid reuse could contain. */
static int collect(struct tree *t, size_t target)
{
	const struct pd_snapshot *s = t->snap;
	struct frame {
		size_t ix, next;
	} *stack = NULL;
	size_t *byparent = NULL, depth = 0;
	bool *seen = NULL;
	int rc = -ENOMEM;

	byparent = malloc((s->n ? s->n : 1) * sizeof(*byparent));
	seen = calloc(s->n ? s->n : 1, sizeof(*seen));
	stack = malloc((s->n ? s->n : 1) * sizeof(*stack));
	t->order = malloc((s->n ? s->n : 1) * sizeof(*t->order));
	t->res->skipped = malloc((s->n ? s->n : 1) * sizeof(*t->res->skipped));
	if (!byparent || !seen || !stack || !t->order || !t->res->skipped)
		goto out;
	for (size_t i = 0; i < s->n; i++)
		byparent[i] = i;
	qsort_r(byparent, s->n, sizeof(*byparent), cmp_by_parent, (void *)s);

	seen[target] = true;
	stack[depth++] = (struct frame){target, first_child(s, byparent, s->procs[target].pid)};
	while (depth) {
		struct frame *f = &stack[depth - 1];
		const struct pd_proc_entry *pe = &s->procs[f->ix];
		size_t c;

		if (f->next >= s->n || s->procs[byparent[f->next]].ppid != pe->pid) {
			t->order[t->norder++] = f->ix;
			depth--;
			continue;
		}
		c = byparent[f->next++];
		if (seen[c])
			continue;
		seen[c] = true;
		if (pd_protected_has(&t->prot, s->procs[c].pid)) {
			t->res->skipped[t->res->nskipped++] = s->procs[c].pid;
			continue;
		}
		stack[depth++] = (struct frame){c, first_child(s, byparent, s->procs[c].pid)};
	}
	rc = 0;
out:
	free(byparent);
	free(seen);
	free(stack);
	return rc;
}

/* Opens a pidfd for e->pid and proves it is the process of the snapshot:
 * the pidfd pins whichever process had the pid when it was opened, so if
 * /proc/PID/stat read afterwards still shows the snapshot's start time,
 * the pidfd is that process (a reused pid would show a later start time).
 * The owner is re-read as well: an exec of a setuid binary since the
 * snapshot may have taken the process out of scope. Returns the pidfd,
 * -ESRCH (gone or reused), -EACCES (now out of scope), or -errno. */
static int open_verified(const struct tree *t, const struct pd_proc_entry *e)
{
	char path[32], buf[4096];
	struct pd_stat st;
	struct stat sb;
	ssize_t n;
	int pidfd, fd, rc = 0;

	pidfd = (int)syscall(SYS_pidfd_open, e->pid, 0);
	if (pidfd < 0) /* EINVAL/ENOENT: the pid is now a mere thread */
		return errno == EINVAL || errno == ENOENT ? -ESRCH : -errno;
	snprintf(path, sizeof(path), "/proc/%d/stat", e->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? -ESRCH : -errno;
		goto err;
	}
	if (fstat(fd, &sb) < 0)
		sb.st_uid = (uid_t)-1;
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		goto err;
	if (n == 0 || pd_parse_stat(buf, (size_t)n, &st) < 0 || st.starttime != e->starttime) {
		rc = -ESRCH;
		goto err;
	}
	if (!in_scope(t, sb.st_uid)) {
		rc = -EACCES;
		goto err;
	}
	return pidfd;
err:
	close(pidfd);
	return rc;
}

static void add_alive(struct tree *t, int pid)
{
	t->res->alive[t->res->nalive++] = pid;
}

/* Sends SIGKILL through the verified pidfd; it joins the wait list. */
static void kill_one(struct tree *t, const struct pd_proc_entry *e, int pidfd)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0) {
		if (errno != ESRCH) /* ESRCH: it has exited meanwhile */
			add_alive(t, e->pid);
		close(pidfd);
		return;
	}
	t->res->nsignalled++;
	t->wait[t->nwait].fd = pidfd;
	t->wait[t->nwait].events = POLLIN;
	t->wait[t->nwait].revents = 0;
	t->wait_pid[t->nwait] = e->pid;
	t->nwait++;
}

/* A pidfd polls readable once its process has exited (a zombie counts:
 * reaping is its parent's business). What is still running at the deadline
 * is reported alive. */
static void wait_exit(struct tree *t, int wait_ms)
{
	int64_t deadline = (int64_t)(pd_mono_ns() / 1000000) + (wait_ms > 0 ? wait_ms : 0);

	while (t->nwait) {
		int64_t left = deadline - (int64_t)(pd_mono_ns() / 1000000);
		size_t j = 0;
		int n;

		n = poll(t->wait, t->nwait, left > 0 ? (int)left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (size_t i = 0; i < t->nwait; i++) {
			if (t->wait[i].revents) {
				close(t->wait[i].fd);
				continue;
			}
			t->wait_pid[j] = t->wait_pid[i];
			t->wait[j++] = t->wait[i];
		}
		t->nwait = j;
		if (left <= 0)
			break;
	}
	for (size_t i = 0; i < t->nwait; i++) {
		add_alive(t, t->wait_pid[i]);
		close(t->wait[i].fd);
	}
	t->nwait = 0;
}

static int check_target(const struct tree *t, const struct pd_proc_entry *e, uint64_t starttime)
{
	if (!e || (starttime && e->starttime != starttime))
		return -ESRCH;
	/* Out of scope must look like nonexistent. */
	if (!in_scope(t, e->uid))
		return -ESRCH;
	if (pd_protected_has(&t->prot, e->pid))
		return -EPERM;
	return 0;
}

int pd_kill_tree(const struct pd_snapshot *snap, int pid, uint64_t starttime,
		 const struct pd_scope *scope, int wait_ms, struct pd_kill_result *res)
{
	const struct pd_proc_entry *te = pd_snapshot_find(snap, pid);
	struct tree t = {.snap = snap, .scope = scope, .res = res};
	size_t cap = snap->n ? snap->n : 1;
	int tfd, rc;

	memset(res, 0, sizeof(*res));
	pd_protected_read(&t.prot);
	rc = check_target(&t, te, starttime);
	if (rc < 0)
		return rc;
	/* The target is proven first, so a gone or reused target signals
	 * nobody; it is killed last, after its descendants. */
	tfd = open_verified(&t, te);
	if (tfd < 0)
		return tfd == -EACCES ? -ESRCH : tfd;
	res->alive = malloc(cap * sizeof(*res->alive));
	t.wait = malloc(cap * sizeof(*t.wait));
	t.wait_pid = malloc(cap * sizeof(*t.wait_pid));
	if (!res->alive || !t.wait || !t.wait_pid || collect(&t, (size_t)(te - snap->procs)) < 0) {
		close(tfd);
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < t.norder; i++) {
		const struct pd_proc_entry *e = &snap->procs[t.order[i]];
		int fd;

		if (e == te) {
			kill_one(&t, e, tfd);
			continue;
		}
		if (!in_scope(&t, e->uid)) {
			res->skipped[res->nskipped++] = e->pid;
			continue;
		}
		fd = open_verified(&t, e);
		if (fd == -EACCES) {
			res->skipped[res->nskipped++] = e->pid;
			continue;
		}
		if (fd == -ESRCH) /* exited, or the pid now belongs to another */
			continue;
		if (fd < 0) { /* e.g. out of fds: cannot signal it safely */
			add_alive(&t, e->pid);
			continue;
		}
		kill_one(&t, e, fd);
	}
	wait_exit(&t, wait_ms);
	rc = res->nalive ? -EBUSY : 0;
out:
	for (size_t i = 0; i < t.nwait; i++)
		close(t.wait[i].fd);
	free(t.order);
	free(t.wait);
	free(t.wait_pid);
	if (rc < 0 && rc != -EBUSY)
		pd_kill_result_release(res);
	return rc;
}

void pd_kill_result_release(struct pd_kill_result *res)
{
	free(res->alive);
	free(res->skipped);
	memset(res, 0, sizeof(*res));
}
