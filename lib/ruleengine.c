#include "config.h"

#include "lib/ruleengine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/numparse.h"
#include "lib/cgroupstat.h"
#include "lib/proc.h"
#include "lib/procfs.h"

#define MAX_ACTIONS 16

/* Per (rule, process). */
struct prs {
	int64_t hold_since; /* monotonic ms the condition holds since; -1: not */
	int64_t next_timer; /* timer rules: when it is due next; -1: not set */
	bool run_match;	    /* pd_rule_matches_run, cached for the run */
};

/* A process's cgroup as last read (only for processes a rule with a cgroup
 * filter or trigger matches; kept with its table entry, reused). */
struct cgcache {
	struct pd_proc_cgroup cg;
	int64_t at; /* monotonic ms of the read; INT64_MIN: read again */
	int rc;
	char why[128];
};
/* How long a process's cgroup is trusted: an exec (comm changes) reads it
 * again at once, a move of a running process is seen within this. */
#define CGROUP_RECHECK_MS 5000

/* One process (run) the sampler knows. */
struct ent {
	struct ent *next; /* hash chain, or the free list */
	int pid;
	uint64_t starttime;
	char comm[PD_COMM_MAX];
	uint64_t gen;	 /* the last tick that saw it */
	uint64_t ticks;	 /* utime + stime at t_ms */
	int64_t t_ms;	 /* monotonic ms of that sample */
	int64_t prev_ms; /* the sample before (the start of cpu's interval) */
	bool has_ticks;
	bool has_cpu;
	bool ignored; /* a kernel thread, a zombie, procdiag: never sampled */
	/* /proc/PID and /proc/PID/stat kept open: an fstat and a pread a pass
	 * (no path lookup); -1: none (both or neither) */
	int dirfd, statfd;
	uint32_t cpu; /* hundredths of % of one core over the last interval */
	struct cgcache *cgc; /* NULL until needed; survives the entry's reuse */
	struct prs r[];
};

/* An action: queued by the sampler, run by a worker. */
struct job {
	bool used;   /* queued or running */
	bool queued; /* not yet taken by a worker */
	size_t rule;
	struct pd_rule_firing f;
	struct pd_rule_result res;
};

/* Per rule, shared with the API (under mu). */
struct rstate {
	unsigned fired, running, matched, holding;
	int64_t last_fired_mono, last_fired_real;
	bool has_last, last_done;
	struct pd_rule_firing last;
	struct pd_rule_result last_result;
	char note[160];
};

struct pd_ruleengine {
	struct pd_ruleengine_opts o;
	size_t nrules;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC: stop, and an action's end */
	pthread_cond_t work; /* a job queued, or stop */
	bool stop;
	atomic_bool cancel; /* stop, for the running actions */
	pthread_t workers[MAX_ACTIONS];
	unsigned nworkers;
	uint64_t ticks;
	struct rstate *rs;
	unsigned actions_running;
	struct job jobs[MAX_ACTIONS];

	/* the sampler's own (no lock) */
	struct ent **bucket;
	size_t nbucket, nent;
	struct ent *free_ents;
	size_t ent_size;
	uint64_t gen;
	int procfd;
	DIR *procdir;
	struct pd_rule_procbuf facts;
	long clk_tck, pagesize;
	int ncpu;
	bool need_facts, need_site, need_cgroup;
	struct pd_cgroup_mounts cgm;
	bool cgm_open;
	struct strbuf cgscratch;
	char tick_note[160];
	unsigned nstatfds, max_statfds; /* processes with fds kept open, and the cap */
	unsigned *matched, *holding; /* per rule, this tick */
	char (*notes)[160];	     /* per rule, this tick */
};

static int64_t now_ms(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *pd_rule_status_name(enum pd_rule_status s)
{
	switch (s) {
	case PD_RULE_ARMED: return "armed";
	case PD_RULE_FIRING: return "firing";
	case PD_RULE_COOLING_DOWN: return "cooling_down";
	case PD_RULE_EXHAUSTED: return "exhausted";
	}
	return "armed";
}

void pd_centi_text(uint32_t centi, char *buf, size_t len)
{
	if (centi % 100 == 0)
		snprintf(buf, len, "%u%%", centi / 100);
	else if (centi % 10 == 0)
		snprintf(buf, len, "%u.%u%%", centi / 100, centi % 100 / 10);
	else
		snprintf(buf, len, "%u.%02u%%", centi / 100, centi % 100);
}

static bool sampled(const struct pd_rule *r)
{
	return r->trigger.kind != PD_TRIGGER_CRASH && r->trigger.kind != PD_TRIGGER_NONE;
}

static bool needs_cgroup(const struct pd_rule *r)
{
	return r->filter.cgroup || r->trigger.kind == PD_TRIGGER_CGROUP_MEMORY_ABOVE ||
	       (r->trigger.kind == PD_TRIGGER_PRESSURE_ABOVE && !r->trigger.system);
}

/* ---- the process table ----------------------------------------------- */

static struct ent *lookup(struct pd_ruleengine *e, int pid)
{
	for (struct ent *x = e->bucket[(unsigned)pid & (e->nbucket - 1)]; x; x = x->next)
		if (x->pid == pid)
			return x;
	return NULL;
}

static int grow(struct pd_ruleengine *e)
{
	size_t n = e->nbucket * 2;
	struct ent **b = calloc(n, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < e->nbucket; i++) {
		struct ent *x = e->bucket[i], *next;

		for (; x; x = next) {
			next = x->next;
			x->next = b[(unsigned)x->pid & (n - 1)];
			b[(unsigned)x->pid & (n - 1)] = x;
		}
	}
	free(e->bucket);
	e->bucket = b;
	e->nbucket = n;
	return 0;
}

static struct ent *insert(struct pd_ruleengine *e, int pid)
{
	struct ent *x;

	struct cgcache *cgc = NULL;

	if (e->nent >= e->nbucket && grow(e) < 0)
		return NULL;

	if (e->free_ents) {
		x = e->free_ents;
		e->free_ents = x->next;
		cgc = x->cgc;
	} else {
		x = malloc(e->ent_size);
		if (!x)
			return NULL;
	}
	memset(x, 0, e->ent_size);
	x->cgc = cgc;
	if (cgc)
		cgc->at = INT64_MIN;
	x->pid = pid;
	x->dirfd = x->statfd = -1;
	x->next = e->bucket[(unsigned)pid & (e->nbucket - 1)];
	e->bucket[(unsigned)pid & (e->nbucket - 1)] = x;
	e->nent++;
	return x;
}

static void drop_statfd(struct pd_ruleengine *e, struct ent *x)
{
	if (x->statfd >= 0) {
		close(x->statfd);
		close(x->dirfd);
		e->nstatfds--;
	}
	x->dirfd = x->statfd = -1;
}

/* Forgets the processes the tick did not see (gone, or out of scope). */
static void sweep(struct pd_ruleengine *e)
{
	for (size_t i = 0; i < e->nbucket; i++) {
		struct ent **pp = &e->bucket[i];

		while (*pp) {
			struct ent *x = *pp;

			if (x->gen == e->gen) {
				pp = &x->next;
				continue;
			}
			*pp = x->next;
			drop_statfd(e, x);
			x->next = e->free_ents;
			e->free_ents = x;
			e->nent--;
		}
	}
}

/* ---- reading one process ---------------------------------------------- */

/* /proc/PID/stat into buf: through x's kept fd (one pread: it reads the
 * same task's stat afresh, and fails once that task is gone), else opened
 * by name; fds[0], fds[1] then get the new /proc/PID and stat fds for the
 * caller to keep or close. */
static int read_stat(struct pd_ruleengine *e, struct ent *x, const char *pidname, char *buf,
		     size_t size, size_t *len, int fds[2])
{
	ssize_t n;

	fds[0] = fds[1] = -1;
	if (x && x->statfd >= 0) {
		n = pread(x->statfd, buf, size - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			*len = (size_t)n;
			return 0;
		}
		drop_statfd(e, x); /* its task is gone: the pid may be another's */
	}
	fds[0] = openat(e->procfd, pidname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fds[0] < 0)
		return -errno;
	fds[1] = openat(fds[0], "stat", O_RDONLY | O_CLOEXEC);
	if (fds[1] < 0)
		return -errno;
	n = pread(fds[1], buf, size - 1, 0);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	buf[n] = 0;
	*len = (size_t)n;
	return 0;
}

static void close_fds(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	fds[0] = fds[1] = -1;
}

/* Open fds of the process; -errno (lib/proc.h, pd_count_fds_at). */
static long count_fds(struct pd_ruleengine *e, const struct ent *x, const char *pidname)
{
	char path[32];
	struct stat st;

	if (x->dirfd >= 0)
		return pd_count_fds_at(x->dirfd, "fd", &st);
	snprintf(path, sizeof(path), "%s/fd", pidname);
	return pd_count_fds_at(e->procfd, path, &st);
}

/* The cached half of the filters, for a new run or after an exec. */
static void judge_run(struct pd_ruleengine *e, struct ent *x, const char *pidname,
		      const struct pd_stat *st)
{
	const struct pd_ruleset *rs = e->o.rules;
	struct pd_rule_proc p = { .pid = x->pid, .comm = x->comm, .exe_name = "", .cmdline = "",
				  .cgroup = "" };

	if (e->need_facts) {
		int dfd = openat(e->procfd, pidname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			pd_rule_proc_read(x->pid, dfd, &p, &e->facts);
			close(dfd);
		}
		/* comm from the same stat as the rest of this sample */
		p.comm = x->comm;
	}
	(void)st;
	for (size_t i = 0; i < e->nrules; i++)
		x->r[i].run_match = sampled(&rs->v[i]) && pd_rule_matches_run(&rs->v[i], &p);
}

/* ---- firing ------------------------------------------------------------ */

static void finish(struct pd_ruleengine *e, struct job *j, const struct pd_rule_result *res)
{
	struct rstate *s = &e->rs[j->rule];

	s->last = j->f;
	s->last.rule = NULL;
	s->last_result = *res;
	s->last_done = true;
	s->running--;
	e->actions_running--;
	j->used = j->queued = false;
	pthread_cond_broadcast(&e->cv);
}

/* The action workers: max_actions long-lived threads (the stacks helper
 * they start lives as long as the thread that started it). */
static void *worker_main(void *arg)
{
	struct pd_ruleengine *e = arg;
	struct pd_rule_result res;

	pthread_mutex_lock(&e->mu);
	for (;;) {
		struct job *j = NULL;

		for (size_t k = 0; k < MAX_ACTIONS && !j; k++)
			if (e->jobs[k].used && e->jobs[k].queued)
				j = &e->jobs[k];
		if (!j && e->stop)
			break;
		if (!j) {
			pthread_cond_wait(&e->work, &e->mu);
			continue;
		}
		j->queued = false;
		pthread_mutex_unlock(&e->mu);
		memset(&res, 0, sizeof(res));
		e->o.act(e->o.act_arg, &j->f, &res);
		pthread_mutex_lock(&e->mu);
		finish(e, j, &res);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* The condition of rule i has held long enough on x: fires if the limits
 * let it. Returns true when it fired. */
static bool try_fire(struct pd_ruleengine *e, size_t i, struct ent *x, uid_t uid,
		     const char *value, int64_t mono, int64_t real, char *note, size_t notelen)
{
	const struct pd_rule *r = &e->o.rules->v[i];
	struct rstate *s = &e->rs[i];
	struct job *j = NULL;
	bool fired = false;

	pthread_mutex_lock(&e->mu);
	if (r->count && s->fired >= r->count)
		goto out;
	if (s->fired && mono - s->last_fired_mono < (int64_t)r->interval_ms)
		goto out;
	for (size_t k = 0; k < MAX_ACTIONS; k++)
		if (e->jobs[k].used && e->jobs[k].f.pid == x->pid) {
			snprintf(note, notelen, "waiting: an action runs on process %d", x->pid);
			goto out;
		}
	if (e->actions_running >= e->o.max_actions) {
		snprintf(note, notelen, "waiting: max_actions (%u) actions run", e->o.max_actions);
		goto out;
	}
	for (size_t k = 0; k < MAX_ACTIONS && !j; k++)
		if (!e->jobs[k].used)
			j = &e->jobs[k];
	if (!j)
		goto out;
	memset(j, 0, sizeof(*j));
	j->used = j->queued = true;
	j->rule = i;
	j->f.rule = r;
	j->f.pid = x->pid;
	j->f.start_time = x->starttime;
	j->f.uid_known = true;
	j->f.uid = uid;
	snprintf(j->f.comm, sizeof(j->f.comm), "%s", x->comm);
	snprintf(j->f.value, sizeof(j->f.value), "%s", value);
	j->f.when_ms = real;
	j->f.cancel = &e->cancel;
	s->fired++;
	s->running++;
	s->last_fired_mono = mono;
	s->last_fired_real = real;
	s->has_last = true;
	s->last_done = false;
	s->last = j->f;
	s->last.rule = NULL;
	e->actions_running++;
	fired = true;
	pthread_cond_signal(&e->work);
out:
	pthread_mutex_unlock(&e->mu);
	return fired;
}

/* ---- one tick ------------------------------------------------------------ */

struct sample {
	const char *pidname;
	struct pd_stat st;
	long fds; /* -1: not counted yet */
	int64_t mono;
};

static const char *proc_cgroup_path(const struct pd_proc_cgroup *cg)
{
	return cg->has_v1mem ? cg->v1mem : cg->has_v2 ? cg->v2 : "";
}

/* x's cgroup: read when first needed, after an exec, and when older than
 * CGROUP_RECHECK_MS; x->cgc then holds it (and why it could not be read). */
static int read_cgroup(struct pd_ruleengine *e, struct ent *x, struct sample *sm)
{
	struct cgcache *c = x->cgc;

	if (!c) {
		c = x->cgc = malloc(sizeof(*c));
		if (!c)
			return -ENOMEM;
		c->at = INT64_MIN;
	}
	if (c->at == INT64_MIN || sm->mono - c->at >= CGROUP_RECHECK_MS) {
		c->why[0] = 0;
		c->rc = pd_cgroup_read_proc(x->pid, &e->cgscratch, &c->cg, c->why, sizeof(c->why));
		c->at = sm->mono;
	}
	return c->rc;
}

/* A note, unless the rule has one this pass already (note NULL). */
#define NOTE(...) ((void)(note && snprintf(note, notelen, __VA_ARGS__)))

/* Is rule i's condition true of x now? value: the text of what was
 * measured. note: why it cannot be judged (then false). */
static bool condition(struct pd_ruleengine *e, size_t i, struct ent *x, struct sample *sm,
		      struct pd_psi *sys, int *sys_rc, char *value, size_t vlen, char *note,
		      size_t notelen)
{
	const struct pd_rule_trigger *t = &e->o.rules->v[i].trigger;
	char pct[24], why[128] = "";

	switch (t->kind) {
	case PD_TRIGGER_CPU_ABOVE:
	case PD_TRIGGER_CPU_BELOW: {
		uint32_t v;

		if (!x->has_cpu)
			return false;
		v = t->machine ? x->cpu / (uint32_t)e->ncpu : x->cpu;
		if (value) {
			pd_centi_text(v, pct, sizeof(pct));
			snprintf(value, vlen, "cpu %s%s", pct, t->machine ? " of the machine" : "");
		}
		return t->kind == PD_TRIGGER_CPU_ABOVE ? v > t->centi : v < t->centi;
	}
	case PD_TRIGGER_RSS_ABOVE: {
		uint64_t rss = sm->st.rss > 0 ? (uint64_t)sm->st.rss * (uint64_t)e->pagesize : 0;

		if (value)
			snprintf(value, vlen, "rss %llu bytes (%llu MiB)", (unsigned long long)rss,
				 (unsigned long long)(rss >> 20));
		return rss > t->n;
	}
	case PD_TRIGGER_THREADS_ABOVE:
		if (value)
			snprintf(value, vlen, "threads %lld", (long long)sm->st.num_threads);
		return sm->st.num_threads > 0 && (uint64_t)sm->st.num_threads > t->n;
	case PD_TRIGGER_FDS_ABOVE:
		if (sm->fds < 0)
			sm->fds = count_fds(e, x, sm->pidname);
		if (sm->fds < 0) {
			NOTE("cannot count the fds of process %d: %s", x->pid,
				 strerror((int)-sm->fds));
			return false;
		}
		if (value)
			snprintf(value, vlen, "fds %ld", sm->fds);
		return (uint64_t)sm->fds > t->n;
	case PD_TRIGGER_CGROUP_MEMORY_ABOVE: {
		struct pd_cgroup_memory m;
		uint64_t centi;

		if (read_cgroup(e, x, sm) < 0) {
			NOTE("process %d: %s", x->pid, x->cgc ? x->cgc->why : "");
			return false;
		}
		if (pd_cgroup_memory_read(&e->cgm, &x->cgc->cg, &m, why, sizeof(why)) < 0) {
			NOTE("process %d: %s", x->pid, why);
			return false;
		}
		if (!m.limit) {
			NOTE("process %d: its cgroup has no memory limit",
				 x->pid);
			return false;
		}
		centi = m.usage >= m.limit ? 10000 : m.usage * 10000 / m.limit;
		if (value) {
			pd_centi_text((uint32_t)centi, pct, sizeof(pct));
			snprintf(value, vlen, "cgroup memory %s (%llu of %llu bytes)", pct,
				 (unsigned long long)m.usage, (unsigned long long)m.limit);
		}
		return centi > t->centi;
	}
	case PD_TRIGGER_PRESSURE_ABOVE: {
		struct pd_psi psi, *pp = &psi;
		uint32_t v;

		if (t->system) {
			/* once a tick for every process */
			if (*sys_rc == 1 && pd_psi_read_system(sys, why, sizeof(why)) < 0)
				*sys_rc = -1;
			else if (*sys_rc == 1)
				*sys_rc = 0;
			if (*sys_rc < 0) {
				NOTE("no system memory pressure: %s",
					 why[0] ? why : "unreadable");
				return false;
			}
			pp = sys;
		} else {
			if (read_cgroup(e, x, sm) < 0) {
				NOTE("process %d: %s", x->pid,
					 x->cgc ? x->cgc->why : "");
				return false;
			}
			if (pd_psi_read_cgroup(&e->cgm, &x->cgc->cg, &psi, why, sizeof(why)) < 0) {
				NOTE("process %d: %s", x->pid, why);
				return false;
			}
		}
		if (t->full && !pp->has_full) {
			NOTE("the kernel gives no 'full' memory pressure");
			return false;
		}
		v = t->full ? pp->full_avg10 : pp->some_avg10;
		if (value) {
			pd_centi_text(v, pct, sizeof(pct));
			snprintf(value, vlen, "pressure %s avg10 %s%s", t->full ? "full" : "some",
				 pct, t->system ? " (system)" : "");
		}
		return v > t->centi;
	}
	case PD_TRIGGER_TIMER:
	case PD_TRIGGER_CRASH:
	case PD_TRIGGER_NONE:
		break;
	}
	return false;
}

static void sample_process(struct pd_ruleengine *e, const char *name, int pid, int site_pid,
			   int64_t mono, int64_t real, struct pd_psi *sys, int *sys_rc)
{
	const struct pd_ruleset *rs = e->o.rules;
	struct sample sm = { .pidname = name, .fds = -1, .mono = mono };
	char buf[2048], value[64], note[160];
	struct stat dst;
	size_t len = 0;
	struct ent *x;
	bool fresh = false;
	int fds[2] = { -1, -1 };

	x = lookup(e, pid);
	/* the owner of /proc/PID: in scope? */
	if ((x && x->dirfd >= 0 ? fstat(x->dirfd, &dst) : fstatat(e->procfd, name, &dst, 0)) < 0 ||
	    !pd_scope_has(e->o.scope, dst.st_uid))
		return;
	if (read_stat(e, x, name, buf, sizeof(buf), &len, fds) < 0 ||
	    pd_parse_stat(buf, len, &sm.st) < 0) {
		close_fds(fds);
		return;
	}
	/* /proc/PID opened anew (a kept one's task died: the pid may be
	 * another process's now): its owner is judged again */
	if (fds[0] >= 0 && x && (fstat(fds[0], &dst) < 0 || !pd_scope_has(e->o.scope, dst.st_uid))) {
		close_fds(fds);
		return;
	}
	if (x && x->starttime != sm.st.starttime) {
		/* the pid was reused: a new run */
		struct ent *next = x->next;
		struct cgcache *cgc = x->cgc;

		drop_statfd(e, x);
		memset(x, 0, e->ent_size);
		x->next = next;
		x->pid = pid;
		x->dirfd = x->statfd = -1;
		x->cgc = cgc;
		if (cgc)
			cgc->at = INT64_MIN;
		fresh = true;
	}
	if (!x) {
		x = insert(e, pid);
		if (!x) {
			close_fds(fds);
			return;
		}
		fresh = true;
	}
	x->gen = e->gen;
	if (fds[1] >= 0 && x->statfd < 0 && e->nstatfds < e->max_statfds) {
		/* opened this pass: kept while the cap allows */
		x->dirfd = fds[0];
		x->statfd = fds[1];
		e->nstatfds++;
		fds[0] = fds[1] = -1;
	}
	close_fds(fds);
	if (fresh) {
		x->starttime = sm.st.starttime;
		x->ignored = pd_stat_is_kthread(&sm.st) || pd_proc_is_procdiag(pid, sm.st.ppid);
		for (size_t i = 0; i < e->nrules; i++)
			x->r[i].hold_since = x->r[i].next_timer = -1;
	}
	if (x->ignored || sm.st.state == 'Z' || sm.st.state == 'X')
		return;
	if (fresh || strcmp(x->comm, sm.st.comm)) {
		snprintf(x->comm, sizeof(x->comm), "%s", sm.st.comm);
		if (x->cgc)
			x->cgc->at = INT64_MIN; /* an exec: its cgroup may be another */
		judge_run(e, x, name, &sm.st);
	}
	/* CPU over the interval since the last sample, timed when this stat
	 * was read (a pass over /proc takes a while on a busy machine) */
	{
		uint64_t ticks = sm.st.utime + sm.st.stime;
		int64_t at = now_ms(CLOCK_MONOTONIC);

		if (x->has_ticks && at > x->t_ms && ticks >= x->ticks) {
			uint64_t d = ticks - x->ticks, dt = (uint64_t)(at - x->t_ms);

			x->cpu = (uint32_t)(d * 100 * 100 * 1000 / ((uint64_t)e->clk_tck * dt));
			x->has_cpu = true;
			x->prev_ms = x->t_ms;
		}
		x->ticks = ticks;
		x->t_ms = at;
		x->has_ticks = true;
	}
	for (size_t i = 0; i < e->nrules; i++) {
		const struct pd_rule *r = &rs->v[i];
		struct prs *ps = &x->r[i];
		struct pd_rule_proc p = { .pid = pid, .is_site = pid == site_pid,
					  .uid = dst.st_uid, .comm = x->comm, .exe_name = "",
					  .cmdline = "", .cgroup = "" };
		bool holds;

		if (!ps->run_match)
			continue;
		if (r->filter.cgroup) {
			if (read_cgroup(e, x, &sm) < 0) {
				ps->hold_since = -1;
				continue;
			}
			p.cgroup = proc_cgroup_path(&x->cgc->cg);
		}
		if (!pd_rule_matches_now(r, &p)) {
			ps->hold_since = ps->next_timer = -1;
			continue;
		}
		e->matched[i]++;
		value[0] = note[0] = 0;
		if (r->trigger.kind == PD_TRIGGER_TIMER) {
			if (ps->next_timer < 0)
				ps->next_timer = mono + (int64_t)r->trigger.n;
			holds = mono >= ps->next_timer;
		} else {
			/* no text made unless needed: a pass judges every process */
			holds = condition(e, i, x, &sm, sys, sys_rc, NULL, 0,
					  e->notes[i][0] ? NULL : note, sizeof(note));
		}
		if (note[0])
			snprintf(e->notes[i], sizeof(e->notes[i]), "%s", note);
		if (!holds) {
			ps->hold_since = -1;
			continue;
		}
		e->holding[i]++;
		if (ps->hold_since < 0) {
			bool cpu = r->trigger.kind == PD_TRIGGER_CPU_ABOVE ||
				   r->trigger.kind == PD_TRIGGER_CPU_BELOW;

			/* CPU % is a property of the interval it was measured over */
			ps->hold_since = cpu ? x->prev_ms : mono;
		}
		if (mono - ps->hold_since < (int64_t)r->for_ms)
			continue;
		note[0] = 0;
		/* the value that fires, as text */
		if (r->trigger.kind == PD_TRIGGER_TIMER)
			snprintf(value, sizeof(value), "timer %llu s",
				 (unsigned long long)(r->trigger.n / 1000));
		else
			condition(e, i, x, &sm, sys, sys_rc, value, sizeof(value), NULL, 0);
		if (try_fire(e, i, x, dst.st_uid, value, mono, real, note, sizeof(note))) {
			ps->hold_since = -1;
			if (r->trigger.kind == PD_TRIGGER_TIMER)
				ps->next_timer = mono + (int64_t)r->trigger.n;
		} else if (note[0]) {
			snprintf(e->notes[i], sizeof(e->notes[i]), "%s", note);
		}
	}
}

static void tick(struct pd_ruleengine *e)
{
	int64_t mono = now_ms(CLOCK_MONOTONIC), real = now_ms(CLOCK_REALTIME);
	int site_pid = -1, self = getpid(), sys_rc = 1;
	struct pd_psi sys;
	struct dirent *d;

	e->gen++;
	memset(e->matched, 0, e->nrules * sizeof(*e->matched));
	memset(e->holding, 0, e->nrules * sizeof(*e->holding));
	memset(e->notes, 0, e->nrules * sizeof(*e->notes));
	if (e->need_site && e->o.site_pid && e->o.site_pid(e->o.site_arg, &site_pid) < 0)
		site_pid = -1;
	rewinddir(e->procdir);
	while ((d = readdir(e->procdir))) {
		int pid;

		if (d->d_name[0] < '1' || d->d_name[0] > '9' ||
		    parse_pid(d->d_name, strlen(d->d_name), &pid) < 0 || pid == self)
			continue;
		sample_process(e, d->d_name, pid, site_pid, mono, real, &sys, &sys_rc);
	}
	sweep(e);
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->nrules; i++) {
		e->rs[i].matched = e->matched[i];
		e->rs[i].holding = e->holding[i];
		memcpy(e->rs[i].note, e->notes[i], sizeof(e->rs[i].note));
	}
	e->ticks++;
	pthread_mutex_unlock(&e->mu);
}

static void *sampler_main(void *arg)
{
	struct pd_ruleengine *e = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		pthread_mutex_unlock(&e->mu);
		tick(e);
		pthread_mutex_lock(&e->mu);
		next.tv_nsec += (long)(e->o.interval_ms % 1000) * 1000000;
		next.tv_sec += e->o.interval_ms / 1000 + next.tv_nsec / 1000000000;
		next.tv_nsec %= 1000000000;
		{
			/* a tick that overran: the next one from now, not a burst */
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > next.tv_sec ||
			    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
				next = now;
		}
		while (!e->stop && pthread_cond_timedwait(&e->cv, &e->mu, &next) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- life ------------------------------------------------------------------ */

static void engine_free(struct pd_ruleengine *e)
{
	for (size_t i = 0; i < e->nbucket; i++) {
		struct ent *x = e->bucket[i], *next;

		for (; x; x = next) {
			next = x->next;
			if (x->statfd >= 0)
				close(x->statfd), close(x->dirfd);
			free(x->cgc);
			free(x);
		}
	}
	while (e->free_ents) {
		struct ent *next = e->free_ents->next;

		free(e->free_ents->cgc);
		free(e->free_ents);
		e->free_ents = next;
	}
	free(e->bucket);
	if (e->procdir)
		closedir(e->procdir);
	if (e->cgm_open)
		pd_cgroup_mounts_close(&e->cgm);
	pd_rule_procbuf_release(&e->facts);
	strbuf_release(&e->cgscratch);
	free(e->rs);
	free(e->matched);
	free(e->holding);
	free(e->notes);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->work);
	free(e);
}

static int start_threads(struct pd_ruleengine *e);

int pd_ruleengine_start(const struct pd_ruleengine_opts *o, struct pd_ruleengine **out)
{
	struct pd_ruleengine *e = calloc(1, sizeof(*e));
	pthread_condattr_t ca;
	sigset_t block, old;
	bool any = false, need_cgm = false;
	int rc;

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->o = *o;
	if (e->o.max_actions < 1)
		e->o.max_actions = 1;
	if (e->o.max_actions > MAX_ACTIONS)
		e->o.max_actions = MAX_ACTIONS;
	if (e->o.interval_ms < 100)
		e->o.interval_ms = 100;
	e->nrules = o->rules->n;
	atomic_init(&e->cancel, false);
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&e->work, NULL);
	e->rs = calloc(e->nrules ? e->nrules : 1, sizeof(*e->rs));
	e->matched = calloc(e->nrules ? e->nrules : 1, sizeof(*e->matched));
	e->holding = calloc(e->nrules ? e->nrules : 1, sizeof(*e->holding));
	e->notes = calloc(e->nrules ? e->nrules : 1, sizeof(*e->notes));
	e->nbucket = 256;
	e->bucket = calloc(e->nbucket, sizeof(*e->bucket));
	if (!e->rs || !e->matched || !e->holding || !e->notes || !e->bucket) {
		engine_free(e);
		return -ENOMEM;
	}
	e->ent_size = sizeof(struct ent) + e->nrules * sizeof(struct prs);
	{
		/* processes whose two fds are kept: a quarter of our
		 * descriptors in all, at most 2 x 4096 */
		struct rlimit rl;
		rlim_t cap = 128;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			cap = rl.rlim_cur == RLIM_INFINITY ? 4096 : rl.rlim_cur / 8;
		e->max_statfds = (unsigned)(cap > 4096 ? 4096 : cap);
	}
	e->clk_tck = sysconf(_SC_CLK_TCK);
	e->pagesize = sysconf(_SC_PAGESIZE);
	e->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (e->clk_tck <= 0)
		e->clk_tck = 100;
	if (e->ncpu < 1)
		e->ncpu = 1;
	for (size_t i = 0; i < e->nrules; i++) {
		const struct pd_rule *r = &o->rules->v[i];

		if (!sampled(r))
			continue;
		any = true;
		e->need_facts |= pd_rule_needs_facts(r);
		e->need_site |= r->filter.site;
		need_cgm |= needs_cgroup(r);
	}
	if (!any) {
		*out = e; /* crash rules only: listed, nothing sampled */
		return 0;
	}
	if (!o->act) {
		engine_free(e);
		return -EINVAL;
	}
	if (need_cgm) {
		if (pd_cgroup_mounts_open(&e->cgm) == 0)
			e->cgm_open = true;
		else
			e->cgm.v2fd = e->cgm.v1memfd = -1, e->cgm_open = false;
	}
	e->procdir = opendir("/proc");
	if (!e->procdir) {
		rc = -errno;
		engine_free(e);
		return rc;
	}
	e->procfd = dirfd(e->procdir);
	/* The engine's threads take no signals: the server reads SIGTERM and
	 * SIGINT from a signalfd, which only works while every thread blocks
	 * them (a thread that did not would die of them). */
	sigfillset(&block);
	sigdelset(&block, SIGSEGV);
	sigdelset(&block, SIGBUS);
	sigdelset(&block, SIGFPE);
	sigdelset(&block, SIGILL);
	sigdelset(&block, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = start_threads(e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pd_ruleengine_stop(e);
		return -rc;
	}
	*out = e;
	return 0;
}

static int start_threads(struct pd_ruleengine *e)
{
	int rc;

	for (unsigned k = 0; k < e->o.max_actions; k++) {
		rc = pthread_create(&e->workers[k], NULL, worker_main, e);
		if (rc)
			return rc;
		e->nworkers++;
	}
	rc = pthread_create(&e->thread, NULL, sampler_main, e);
	if (rc)
		return rc;
	e->started = true;
	return 0;
}

void pd_ruleengine_stop(struct pd_ruleengine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	atomic_store(&e->cancel, true);
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	if (e->started)
		pthread_join(e->thread, NULL);
	/* Actions not begun are dropped; running ones are cancelled and end
	 * first (a dump job at its next progress tick). */
	pthread_mutex_lock(&e->mu);
	for (size_t k = 0; k < MAX_ACTIONS; k++)
		if (e->jobs[k].used && e->jobs[k].queued) {
			struct pd_rule_result res = { .kind = PD_RULE_SKIPPED };

			snprintf(res.detail, sizeof(res.detail), "the responder stopped first");
			finish(e, &e->jobs[k], &res);
		}
	pthread_cond_broadcast(&e->work);
	pthread_mutex_unlock(&e->mu);
	for (unsigned k = 0; k < e->nworkers; k++)
		pthread_join(e->workers[k], NULL);
	engine_free(e);
}

int pd_ruleengine_state(struct pd_ruleengine *e, size_t i, struct pd_rule_state *out)
{
	const struct pd_rule *r;
	const struct rstate *s;
	int64_t mono = now_ms(CLOCK_MONOTONIC);

	if (!e || i >= e->nrules)
		return -ENOENT;
	r = &e->o.rules->v[i];
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&e->mu);
	s = &e->rs[i];
	out->sampled = sampled(r);
	out->fired = s->fired;
	out->running = s->running;
	out->matched = s->matched;
	out->holding = s->holding;
	out->last_fired_ms = s->has_last ? s->last_fired_real : 0;
	out->has_last = s->has_last;
	out->last = s->last;
	out->last_result = s->last_result;
	out->last_done = s->last_done;
	snprintf(out->note, sizeof(out->note), "%s", s->note);
	if (s->running)
		out->status = PD_RULE_FIRING;
	else if (r->count && s->fired >= r->count)
		out->status = PD_RULE_EXHAUSTED;
	else if (s->fired && mono - s->last_fired_mono < (int64_t)r->interval_ms) {
		out->status = PD_RULE_COOLING_DOWN;
		out->cooldown_until_ms =
			s->last_fired_real + (int64_t)r->interval_ms;
	} else
		out->status = PD_RULE_ARMED;
	pthread_mutex_unlock(&e->mu);
	return 0;
}

uint64_t pd_ruleengine_ticks(struct pd_ruleengine *e)
{
	uint64_t n;

	if (!e)
		return 0;
	pthread_mutex_lock(&e->mu);
	n = e->ticks;
	pthread_mutex_unlock(&e->mu);
	return n;
}
