/* Operations: background dumps, their records and the state file
 * (lib/operations.h). */
#include "config.h"

#include "lib/operations.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* memfd_create */
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonstr.h"
#include "lib/instance.h"
#include "lib/memcopy.h" /* pd_pwrite_all */
#include "lib/rules.h"
#include "lib/spool.h"
#include "lib/stacksrun.h"
#include "lib/store.h"
#include "lib/testhooks.h"

#define STATE_NAME ".operations.json"

struct op {
	char id[PD_OP_ID_LEN + 1];
	json_t *rec;	    /* under ops->lock */
	bool running;	    /* its thread has not ended */
	unsigned waiters;   /* pd_ops_cancel calls waiting on it: not trimmed */
	atomic_int cancel;  /* 1: DELETE, 2: the responder stops */
	struct pd_ops *ops;
	/* the request, owned */
	struct pd_op_request rq;
	char *process, *tags, *trigger, *rule;
	char *store_id, *store_file, *ext, *fmt_name; /* the other kinds' */
	json_int_t created_ms;
};

struct pd_ops {
	struct pd_ops_opts o;
	char *state_dir, *spool_dir, *host, *site, *helper;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an operation ended */
	struct op **v;
	size_t n, cap;
	unsigned running;
	bool closing;
};

bool pd_op_id_valid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (!s || strlen(s) != PD_OP_ID_LEN)
		return false;
	for (i = 0; i < PD_OP_ID_LEN; i++) {
		char c = s[i];

		if (shape[i] == '-') {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return true;
}

static int new_uuid(char out[PD_OP_ID_LEN + 1])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, PD_OP_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

static json_int_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-12-05T08:30:00.123Z" */
static void iso_ms(json_int_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	char s[32] = "";

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03dZ", s, (int)(ms % 1000));
}

const char *pd_egress_dump_name(enum pd_dump_format format, int pid, const char *tag, char *buf,
				size_t size)
{
	time_t t = time(NULL);
	char stamp[32] = "";
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(buf, size, "core.%d.%s%s%.8s%s", pid, stamp, tag ? "." : "", tag ? tag : "",
		 format == PD_DUMP_FORMAT_ZIP	 ? ".zip"
		 : format == PD_DUMP_FORMAT_ZSTD ? ".zst"
						 : "");
	return buf;
}

/* --- the state file -------------------------------------------------------- */

/* Rewrites state_dir/.operations.json (under ops->lock): a temp file,
 * fsync'd, renamed over it. A failure is only reported on stderr. */
static void save(struct pd_ops *ops)
{
	char tmp[4096], path[4096];
	json_t *a;
	int fd, rc = 0;
	char *text;

	if (!ops->state_dir)
		return;
	a = json_array();
	for (size_t i = 0; a && i < ops->n; i++)
		json_array_append(a, ops->v[i]->rec);
	text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!text)
		return;
	snprintf(path, sizeof(path), "%s/" STATE_NAME, ops->state_dir);
	snprintf(tmp, sizeof(tmp), "%s/" STATE_NAME ".tmp", ops->state_dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
	} else {
		size_t len = strlen(text), off = 0;

		while (off < len) {
			ssize_t w = write(fd, text + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = w < 0 ? -errno : -EIO;
				break;
			}
			off += (size_t)w;
		}
		if (rc == 0 && (write(fd, "\n", 1) != 1 || fsync(fd) < 0))
			rc = -errno ? -errno : -EIO;
		close(fd);
		if (rc == 0 && rename(tmp, path) < 0)
			rc = -errno;
		if (rc < 0)
			unlink(tmp);
	}
	if (rc < 0)
		fprintf(stderr, "procdiag: cannot write %s: %s\n", path, strerror(-rc));
	free(text);
}

static int add(struct pd_ops *ops, struct op *op)
{
	if (ops->n == ops->cap) {
		size_t cap = ops->cap ? ops->cap * 2 : 16;
		struct op **v = realloc(ops->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ops->v = v;
		ops->cap = cap;
	}
	ops->v[ops->n++] = op;
	return 0;
}

static void op_free(struct op *op)
{
	if (!op)
		return;
	json_decref(op->rec);
	free(op->process);
	free(op->tags);
	free(op->trigger);
	free(op->rule);
	free(op->store_id);
	free(op->store_file);
	free(op->ext);
	free(op->fmt_name);
	free(op);
}

/* Past PD_OPS_KEEP records, the oldest finished ones go. */
static void trim(struct pd_ops *ops)
{
	size_t i = 0;

	while (ops->n > PD_OPS_KEEP && i < ops->n) {
		if (ops->v[i]->running || ops->v[i]->waiters) {
			i++;
			continue;
		}
		op_free(ops->v[i]);
		memmove(&ops->v[i], &ops->v[i + 1], (ops->n - i - 1) * sizeof(ops->v[0]));
		ops->n--;
	}
}

static json_t *error_json(int status, const char *title, const char *detail)
{
	char code[16];

	snprintf(code, sizeof(code), "%d", status);
	/* dotnet-monitor's OperationError {code, message}, and problem details */
	return json_pack("{s:s, s:s, s:s, s:s, s:i}", "code", code, "message", detail, "title",
			 title, "detail", detail, "status", status);
}

static void load(struct pd_ops *ops)
{
	char path[4096];
	json_error_t je;
	json_t *a, *r;
	size_t i;
	bool changed = false;

	snprintf(path, sizeof(path), "%s/" STATE_NAME, ops->state_dir);
	if (access(path, F_OK) < 0)
		return;
	a = json_load_file(path, 0, &je);
	if (!a || !json_is_array(a)) {
		char bad[4200];

		snprintf(bad, sizeof(bad), "%s.bad", path);
		fprintf(stderr, "procdiag: %s is not an operations list; kept as %s\n", path, bad);
		rename(path, bad);
		json_decref(a);
		return;
	}
	json_array_foreach(a, i, r) {
		const char *id = json_string_value(json_object_get(r, "operationId"));
		const char *st = json_string_value(json_object_get(r, "status"));
		struct op *op;

		if (!json_is_object(r) || !pd_op_id_valid(id) || !st)
			continue;
		op = calloc(1, sizeof(*op));
		if (!op)
			break;
		snprintf(op->id, sizeof(op->id), "%s", id);
		op->rec = json_deep_copy(r);
		op->ops = ops;
		if (!strcmp(st, "Running") || !strcmp(st, "Starting")) {
			json_object_set_new(op->rec, "status", json_string("Failed"));
			json_object_set_new(op->rec, "isStoppable", json_false());
			json_object_set_new(op->rec, "error",
					    error_json(500, "Interrupted",
						       "interrupted by a restart: the responder "
						       "stopped while the operation ran"));
			changed = true;
		}
		if (!op->rec || add(ops, op) < 0) {
			op_free(op);
			break;
		}
	}
	json_decref(a);
	trim(ops);
	if (changed)
		save(ops);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int pd_ops_open(const struct pd_ops_opts *o, struct pd_ops **out)
{
	struct pd_ops *ops = calloc(1, sizeof(*ops));

	*out = NULL;
	if (!ops)
		return -ENOMEM;
	ops->o = *o;
	ops->state_dir = dup_or_null(o->state_dir);
	ops->spool_dir = strdup(o->spool_dir ? o->spool_dir : "/var/tmp");
	ops->host = strdup(o->host ? o->host : "localhost");
	ops->site = strdup(o->site ? o->site : "default");
	ops->helper = dup_or_null(o->helper);
	ops->o.state_dir = ops->state_dir;
	ops->o.spool_dir = ops->spool_dir;
	ops->o.host = ops->host;
	ops->o.site = ops->site;
	ops->o.helper = ops->helper;
	if (!ops->o.cancel_wait_ms)
		ops->o.cancel_wait_ms = 30000;
	pthread_mutex_init(&ops->lock, NULL);
	pthread_cond_init(&ops->cond, NULL);
	if (!ops->spool_dir || !ops->host || !ops->site || (o->state_dir && !ops->state_dir) ||
	    (o->helper && !ops->helper)) {
		pd_ops_close(ops);
		return -ENOMEM;
	}
	if (ops->state_dir)
		load(ops);
	*out = ops;
	return 0;
}

void pd_ops_close(struct pd_ops *ops)
{
	if (!ops)
		return;
	pthread_mutex_lock(&ops->lock);
	ops->closing = true;
	for (size_t i = 0; i < ops->n; i++)
		if (ops->v[i]->running)
			atomic_store(&ops->v[i]->cancel, 2);
	while (ops->running)
		pthread_cond_wait(&ops->cond, &ops->lock);
	pthread_mutex_unlock(&ops->lock);
	for (size_t i = 0; i < ops->n; i++)
		op_free(ops->v[i]);
	free(ops->v);
	pthread_mutex_destroy(&ops->lock);
	pthread_cond_destroy(&ops->cond);
	free(ops->state_dir);
	free(ops->spool_dir);
	free(ops->host);
	free(ops->site);
	free(ops->helper);
	free(ops);
}

/* --- the work -------------------------------------------------------------- */

/* An egress job's files and progress (pd_egress_dump_job). */
struct egress_job {
	const char *dir;
	const struct pd_egress_provider *p;
	const struct pd_dumpjob_result *jr; /* its method, once copied */
	struct pd_egress_meta *m;
	const char *name;
	int (*cancelled)(void *);
	void *carg;
	int rc;				/* a spool that could not be opened */
	struct pd_egress_tail *tail;	/* a zstd stream's upload, while written */
	int tail_rc;			/* its failure, -errno, with tail_err */
	char tail_err[512];
	bool ended;			/* the job's DONE: m->streamed taken */
};

/* Every file of an egress job goes to disk (an O_TMPFILE in the spool
 * directory), never a memfd: nothing of the dump's size in memory. The zstd
 * stream's upload starts as soon as its file exists. */
static int egress_out(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit)
{
	struct egress_job *e = arg;
	int fd;

	fd = pd_spool_open(e->dir, 0, estimate ? estimate : 1, NULL);
	if (fd < 0) {
		e->rc = fd;
		return fd;
	}
	*limit = 0;
	if (which == PD_DUMPJOB_ZSTD && !e->tail && !e->tail_rc) {
		e->m->method = e->jr->dump.fig.method;
		e->tail_rc = pd_egress_tail_start(e->p, fd, e->name, e->m, PD_EGRESS_TAIL_PUNCH,
						  e->cancelled, e->carg, &e->tail, e->tail_err,
						  sizeof(e->tail_err));
	}
	return fd;
}

static int egress_cancelled(struct egress_job *e)
{
	return e->cancelled && e->cancelled(e->carg);
}

static int hold_stop(void *arg)
{
	return egress_cancelled(arg);
}

/* Wakes the uploader at each step of the job; an upload that failed stops
 * the job (as a cancel: the job's own error is then the upload's). */
static int egress_progress(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total)
{
	struct egress_job *e = arg;

	(void)total;
	if (e->tail) {
		int rc = pd_egress_tail_poke(e->tail);

		if (rc < 0 && !e->tail_rc) {
			pd_egress_tail_abort(e->tail, e->tail_err, sizeof(e->tail_err));
			e->tail = NULL;
			e->tail_rc = rc;
		}
		if (phase == PD_PHASE_DONE && e->tail && !e->ended) {
			/* the stream is whole: what went up while it was written */
			e->m->streamed = pd_egress_tail_sent(e->tail);
			e->ended = true;
		}
	}
	if (phase == PD_PHASE_COMPRESS && done)
		pd_hook_compress_hold(hold_stop, e);
	return e->tail_rc || egress_cancelled(e);
}

/* The upload's failure as the detail (the providers name themselves in most
 * of their errors: once only). */
static void upload_detail(const struct pd_egress_provider *p, const char *err, char *detail,
			  size_t detlen)
{
	if (!strncmp(err, "egress ", 7))
		snprintf(detail, detlen, "%s", err);
	else
		snprintf(detail, detlen, "egress '%s': %s", p->name, err);
}

int pd_egress_dump_job(const struct pd_egress_provider *p, struct pd_dumpjob_opts *o,
		       const char *spool_dir, uint64_t spool_memory_max, int (*cancelled)(void *),
		       void *carg, struct pd_egress_meta *m, const char *name,
		       struct pd_dumpjob_result *jr, char *location, size_t loclen, char *detail,
		       size_t detlen)
{
	struct egress_job e = { .dir = spool_dir ? spool_dir : "/var/tmp",
				.p = p,
				.jr = jr,
				.m = m,
				.cancelled = cancelled,
				.carg = carg };
	char nbuf[128], err[512] = "";
	int rc;

	(void)spool_memory_max; /* an egress job's spool is on disk: egress_out */
	memset(jr, 0, sizeof(*jr));
	jr->fd = -1;
	m->streamed = 0;
	if (loclen)
		location[0] = 0;
	if (!name)
		name = pd_egress_dump_name(o->format, o->pid, NULL, nbuf, sizeof(nbuf));
	e.name = name;
	o->open_out = egress_out;
	o->progress = egress_progress;
	o->arg = &e;
	if (pd_dumpjob_run(o, jr) < 0) {
		int trc = pd_egress_tail_abort(e.tail, err, sizeof(err));

		if (!e.tail_rc && trc < 0)
			e.tail_rc = trc, snprintf(e.tail_err, sizeof(e.tail_err), "%s", err);
		if (e.tail_rc && jr->error == PD_DUMP_CANCELLED && !egress_cancelled(&e)) {
			/* the upload failed and stopped the job: the dump did not */
			upload_detail(p, e.tail_err, detail, detlen);
			jr->error = PD_DUMP_OK;
			return e.tail_rc;
		}
		if (e.rc)
			snprintf(detail, detlen, "dump: cannot open a spool in %s: %s", e.dir,
				 strerror(-e.rc));
		else
			snprintf(detail, detlen, "dump: %.200s (%s, phase %s)", jr->detail,
				 pd_dump_error_code(jr->error), pd_dump_phase_name(jr->phase));
		return jr->error == PD_DUMP_CANCELLED ? -ECANCELED : jr->rc ? jr->rc : -EIO;
	}
	m->method = jr->dump.fig.method;
	if (e.tail)
		/* zstd: most of it went up while it was written; the rest now */
		rc = pd_egress_tail_finish(e.tail, jr->size, location, loclen, err, sizeof(err));
	else if (e.tail_rc) {
		rc = e.tail_rc;
		snprintf(err, sizeof(err), "%s", e.tail_err);
	} else
		/* raw and zip: their headers are written last, the upload follows */
		rc = pd_egress_upload_fd(p, jr->fd, name, m, cancelled, carg, location, loclen,
					 err, sizeof(err));
	close(jr->fd);
	jr->fd = -1;
	if (rc < 0)
		upload_detail(p, err, detail, detlen);
	return rc;
}

static int op_cancelled(void *arg)
{
	return atomic_load(&((struct op *)arg)->cancel) != 0;
}

static int op_progress(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total)
{
	(void)phase, (void)done, (void)total;
	return op_cancelled(arg);
}

/* --- the other kinds of operation: stacks, store copies ------------------ */

/* How one of them ended, for op_thread's record: a failure's status and
 * title (NULL: op_thread's own), the figures merged into rec[member]. */
struct op_kind_end {
	int status;
	const char *title;
	const char *member;
	json_t *figures;
};

/* len bytes of buf uploaded as name (a memfd: pd_egress_upload_fd's one
 * path, cancel and abort included). */
static int upload_bytes(const struct pd_egress_provider *p, const char *name,
			const struct pd_egress_meta *m, const char *buf, size_t len,
			int (*cancelled)(void *), void *carg, char *location, size_t loclen,
			char *err, size_t errlen)
{
	int fd = memfd_create("procdiag-upload", MFD_CLOEXEC), rc;

	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "memfd_create: %s", strerror(-rc));
		return rc;
	}
	rc = pd_pwrite_all(fd, buf, len, 0);
	if (rc < 0)
		snprintf(err, errlen, "writing the upload's buffer: %s", strerror(-rc));
	else
		rc = pd_egress_upload_fd(p, fd, name, m, cancelled, carg, location, loclen, err,
					 errlen);
	close(fd);
	return rc;
}

/* dotnet-monitor's StacksOperation file name, "{stamp}_{pid}.stacks.{ext}",
 * its stamp yyyyMMdd_HHmmss_fff of the time the request was taken. */
static void stacks_name(const struct op *op, char *buf, size_t size)
{
	time_t t = (time_t)(op->created_ms / 1000);
	char stamp[32] = "";
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d_%H%M%S", &tm);
	snprintf(buf, size, "%s_%03d_%d.stacks.%s", stamp, (int)(op->created_ms % 1000),
		 op->rq.pid, op->rq.ext ? op->rq.ext : "json");
}

static int op_run_stacks(struct op *op, struct op_kind_end *ke, char *location, size_t loclen,
			 char *sid, char *detail, size_t detlen)
{
	struct pd_ops *ops = op->ops;
	const struct pd_op_request *rq = &op->rq;
	struct pd_stacks_opts so = { .scope = ops->o.scope, .no_source = rq->no_source };
	json_t *doc = NULL;
	char err[512] = "", *bytes = NULL;
	size_t len = 0;
	int rc;

	ke->member = "stacks";
	rc = pd_stacksrun(ops->helper, rq->pid, rq->start_time, &so, 0, &doc, err, sizeof(err));
	/* this thread ends soon: a helper it started must not die with it */
	pd_stacksrun_thread_end();
	if (rc < 0) {
		ke->status = rc == -ESRCH ? 404 : rc == -EBUSY ? 409 : 500;
		ke->title = "Stacks failed";
		snprintf(detail, detlen, "stacks: %s", err[0] ? err : strerror(-rc));
		return rc;
	}
	ke->figures = json_pack(
		"{s:I, s:I}", "threads", (json_int_t)json_array_size(json_object_get(doc, "threads")),
		"stopped_us", json_integer_value(json_object_get(doc, "stopped_us")));
	if (op_cancelled(op)) {
		rc = -ECANCELED;
	} else if (rq->egress) {
		struct pd_egress_meta m = {
			.host = ops->host,
			.site = ops->site,
			.process = rq->process,
			.dump_type = "stacks",
			.trigger = rq->trigger ? rq->trigger : "manual",
			.rule = rq->rule,
			.pid = rq->pid,
		};
		char name[128];

		ke->status = 502;
		ke->title = "Upload failed";
		stacks_name(op, name, sizeof(name));
		rc = rq->render(doc, rq->fmt, &bytes, &len);
		if (rc < 0)
			snprintf(err, sizeof(err), "out of memory");
		else
			rc = upload_bytes(rq->egress, name, &m, bytes, len, op_cancelled, op,
					  location, loclen, err, sizeof(err));
		if (rc < 0 && !strncmp(err, "egress ", 7))
			snprintf(detail, detlen, "%s", err);
		else if (rc < 0)
			snprintf(detail, detlen, "egress '%s': %s", rq->egress->name, err);
	} else if (ops->o.store) {
		ke->status = 500;
		ke->title = "Store failed";
		/* the uid judged when it was asked for, not the pid's owner
		 * now (the process may have exited since the snapshot) */
		rc = pd_store_stacks(ops->o.store, rq->pid, doc,
				     json_pack("{s:s?, s:s, s:s?, s:o?}", "process", rq->process,
					       "trigger", rq->trigger ? rq->trigger : "manual",
					       "rule", rq->rule, "uid",
					       rq->uid_known ? json_integer((json_int_t)rq->uid)
							     : NULL),
				     sid, detail, detlen);
		bytes = NULL;
	} else {
		snprintf(detail, detlen, "no store_dir is configured");
		rc = -ENOENT;
	}
	if (rc == 0 && ke->figures)
		json_object_set_new(ke->figures, "bytes",
				    json_integer((json_int_t)(rq->egress ? len : 0)));
	if (rc == -EDQUOT || rc == -ENOSPC)
		ke->status = 507;
	free(bytes);
	json_decref(doc);
	return rc;
}

static int op_run_copy(struct op *op, struct op_kind_end *ke, char *location, size_t loclen,
		       char *detail, size_t detlen)
{
	struct pd_ops *ops = op->ops;
	uint64_t bytes = 0;
	int rc;

	ke->member = "copy";
	ke->title = "Upload failed";
	ke->status = 502;
	if (!ops->o.store) {
		snprintf(detail, detlen, "no store_dir is configured");
		return -ENOENT;
	}
	rc = pd_store_push(ops->o.store, op->rq.egress, op->rq.store_id, op->rq.store_file,
			   ops->host, ops->site, op_cancelled, op, location, loclen, &bytes, detail,
			   detlen);
	if (rc == -ENOENT || rc == -EINVAL) {
		ke->status = 404;
		ke->title = "Not found";
	} else if (rc == -EDQUOT || rc == -ENOSPC) {
		ke->status = 507;
	}
	if (rc == 0)
		ke->figures = json_pack("{s:I}", "bytes", (json_int_t)bytes);
	return rc;
}

static int op_run_kind(struct op *op, struct op_kind_end *ke, char *location, size_t loclen,
		       char *sid, char *detail, size_t detlen)
{
	if (op->rq.kind == PD_OP_STACKS)
		return op_run_stacks(op, ke, location, loclen, sid, detail, detlen);
	return op_run_copy(op, ke, location, loclen, detail, detlen);
}

int pd_store_push(struct pd_store *s, const struct pd_egress_provider *p, const char *id,
		  const char *file, const char *host, const char *site, int (*cancelled)(void *),
		  void *carg, char *location, size_t loclen, uint64_t *bytes, char *err,
		  size_t errlen)
{
	char name[PD_STORE_ID_MAX + PD_STORE_NAME_MAX + 2], e2[512] = "";
	struct pd_egress_meta m = { .host = host, .site = site };
	const char *main_file;
	json_t *meta = NULL;
	struct stat st;
	int fd, rc;

	rc = pd_store_open_entry(s, id, file, &fd, &meta);
	if (rc < 0) {
		if (rc == -ENOENT || rc == -EINVAL)
			snprintf(err, errlen, "store entry %s: no such entry%s%s", id,
				 file ? " or file " : "", file ? file : "");
		else
			snprintf(err, errlen, "store entry %s: %s", id, strerror(-rc));
		return rc;
	}
	main_file = json_string_value(json_object_get(meta, "file"));
	snprintf(name, sizeof(name), "%s-%s", id, file ? file : main_file ? main_file : "file");
	m.process = json_string_value(json_object_get(meta, "process"));
	m.dump_type = json_string_value(json_object_get(meta, "dumpType"));
	if (!m.dump_type && json_string_value(json_object_get(meta, "kind")))
		m.dump_type = json_string_value(json_object_get(meta, "kind"));
	m.method = json_string_value(json_object_get(meta, "method"));
	m.trigger = json_string_value(json_object_get(meta, "trigger"));
	m.rule = json_string_value(json_object_get(meta, "rule"));
	m.pid = (int)json_integer_value(json_object_get(meta, "pid"));
	if (bytes)
		*bytes = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	rc = pd_egress_upload_fd(p, fd, name, &m, cancelled, carg, location, loclen, e2,
				 sizeof(e2));
	close(fd);
	json_decref(meta);
	if (rc < 0 && !strncmp(e2, "egress ", 7))
		snprintf(err, errlen, "%s", e2);
	else if (rc < 0)
		snprintf(err, errlen, "egress '%s': %s", p->name, e2);
	return rc;
}

static void *op_thread(void *arg)
{
	struct op *op = arg;
	struct pd_ops *ops = op->ops;
	const struct pd_op_request *rq = &op->rq;
	struct pd_dumpjob_opts o = {
		.pid = rq->pid,
		.start_time = rq->start_time,
		.type = rq->type,
		.format = rq->format,
		.scope = ops->o.scope,
		.helper = ops->helper,
	};
	struct pd_dumpjob_result jr;
	char location[1024] = "", detail[768] = "", sid[PD_STORE_ID_MAX] = "", tname[16];
	char when[40];
	int rc, cancel;
	unsigned long long streamed = 0;
	json_t *dump;
	/* --- opsmore: the other kinds (op_run_kind, below) --- */
	struct op_kind_end ke = { 0 };

	if (rq->kind != PD_OP_DUMP) {
		memset(&jr, 0, sizeof(jr));
		rc = op_run_kind(op, &ke, location, sizeof(location), sid, detail, sizeof(detail));
	} else
	/* --- end opsmore --- */
	if (rq->egress) {
		struct pd_egress_meta m = {
			.host = ops->host,
			.site = ops->site,
			.process = rq->process,
			.dump_type = pd_dumpjob_type_name(&rq->type, tname, sizeof(tname)),
			.trigger = rq->trigger ? rq->trigger : "manual",
			.rule = rq->rule,
			.pid = rq->pid,
		};
		char name[128];

		pd_egress_dump_name(rq->format, rq->pid, op->id, name, sizeof(name));
		rc = pd_egress_dump_job(rq->egress, &o, ops->spool_dir, ops->o.spool_memory_max,
					op_cancelled, op, &m, name, &jr, location, sizeof(location),
					detail, sizeof(detail));
		streamed = m.streamed;
	} else if (ops->o.store) {
		rc = pd_store_dump_job(ops->o.store, &o, op_progress, op, rq->process,
				       rq->trigger ? rq->trigger : "manual", rq->rule, NULL, NULL, &jr,
				       sid, detail, sizeof(detail));
		if (rc < 0 && jr.error == PD_DUMP_CANCELLED)
			rc = -ECANCELED;
	} else {
		memset(&jr, 0, sizeof(jr));
		snprintf(detail, sizeof(detail), "no store_dir is configured");
		rc = -ENOENT;
	}
	if (rq->slot)
		atomic_fetch_sub(rq->slot, 1);

	pthread_mutex_lock(&ops->lock);
	cancel = atomic_load(&op->cancel);
	json_object_set_new(op->rec, "isStoppable", json_false());
	if (rc == 0) {
		json_object_set_new(op->rec, "status", json_string("Succeeded"));
		if (location[0])
			json_object_set_new(op->rec, "resourceLocation", json_string(location));
		if (sid[0])
			json_object_set_new(op->rec, "storeId", json_string(sid));
	} else if (cancel == 1) {
		json_object_set_new(op->rec, "status", json_string("Cancelled"));
	} else if (cancel == 2) {
		json_object_set_new(op->rec, "status", json_string("Failed"));
		json_object_set_new(op->rec, "error",
				    error_json(503, "Interrupted",
					       "interrupted: the responder stopped while the "
					       "operation ran"));
	} else {
		int status = jr.error != PD_DUMP_OK ? 500 : 502;

		if (jr.error == PD_DUMP_GONE)
			status = 404;
		else if (rc == -EDQUOT || rc == -ENOSPC)
			status = 507;
		json_object_set_new(op->rec, "status", json_string("Failed"));
		json_object_set_new(op->rec, "error",
				    error_json(status,
					       jr.error != PD_DUMP_OK ? "Dump failed"
					       : rq->egress	      ? "Upload failed"
								      : "Store failed",
					       detail));
		if (ke.title) /* opsmore: the other kinds say their own */
			json_object_set_new(op->rec, "error",
					    error_json(ke.status, ke.title, detail));
	}
	if (ke.figures) /* opsmore */
		json_object_update(json_object_get(op->rec, ke.member), ke.figures);
	json_decref(ke.figures);
	dump = json_object_get(op->rec, "dump");
	if (dump && jr.dump.fig.method[0]) {
		json_object_set_new(dump, "method", json_string(jr.dump.fig.method));
		json_object_set_new(dump, "stopped_us", json_integer((json_int_t)jr.dump.stopped_us));
		json_object_set_new(dump, "bytes", json_integer((json_int_t)jr.size));
		if (rq->egress)
			json_object_set_new(dump, "uploaded_while_writing",
					    json_integer((json_int_t)streamed));
	}
	iso_ms(now_ms(), when, sizeof(when));
	json_object_set_new(op->rec, "endedDateTime", json_string(when));
	op->running = false;
	ops->running--;
	save(ops);
	trim(ops);
	pthread_cond_broadcast(&ops->cond);
	pthread_mutex_unlock(&ops->lock);
	return NULL;
}

static json_t *tags_json(const char *tags)
{
	json_t *a = json_array();
	const char *p = tags;

	while (a && p && *p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		const char *s = p, *e = p + n;
		json_t *t;
		size_t i;
		bool dup = false;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s) {
			t = json_stringn(s, (size_t)(e - s));
			for (i = 0; t && i < json_array_size(a); i++)
				if (json_equal(json_array_get(a, i), t))
					dup = true;
			if (t && !dup)
				json_array_append(a, t);
			json_decref(t);
		}
		p = c ? c + 1 : NULL;
	}
	return a;
}

/* The record's kind, and the other kinds' members instead of "dump";
 * their strings owned by op. 0 or -ENOMEM. */
static int op_kind_record(struct op *op)
{
	struct pd_op_request *rq = &op->rq;
	json_t *rec = op->rec, *k = NULL;

	if (rq->kind == PD_OP_DUMP)
		return json_object_set_new(rec, "kind", json_string("dump"));
	op->store_id = dup_or_null(rq->store_id);
	op->store_file = dup_or_null(rq->store_file);
	op->ext = dup_or_null(rq->ext);
	op->fmt_name = dup_or_null(rq->fmt_name);
	rq->store_id = op->store_id;
	rq->store_file = op->store_file;
	rq->ext = op->ext;
	rq->fmt_name = op->fmt_name;
	if ((rq->store_id && !op->store_id) || (rq->store_file && !op->store_file) ||
	    (rq->ext && !op->ext) || (rq->fmt_name && !op->fmt_name))
		return -ENOMEM;
	json_object_del(rec, "dump");
	if (rq->kind == PD_OP_STACKS) {
		k = json_pack("{s:s}", "format",
			      rq->egress ? (rq->fmt_name ? rq->fmt_name : "json") : "store");
		if (json_object_set_new(rec, "kind", json_string("stacks")) < 0 ||
		    json_object_set_new(rec, "stacks", k) < 0)
			return -ENOMEM;
		return 0;
	}
	/* a store copy: nothing runs in the process; its uid is not known */
	k = json_pack("{s:s, s:s?}", "storeId", rq->store_id, "file", rq->store_file);
	if (json_object_set_new(rec, "kind", json_string("copy")) < 0 ||
	    json_object_set_new(rec, "copy", k) < 0 ||
	    json_object_set_new(json_object_get(rec, "process"), "uid", json_null()) < 0)
		return -ENOMEM;
	return 0;
}

int pd_ops_start(struct pd_ops *ops, const struct pd_op_request *rq, char id[PD_OP_ID_LEN + 1],
		 char *err, size_t errlen)
{
	struct op *op = calloc(1, sizeof(*op));
	char when[40], uid[PD_UID_LEN + 1], tname[16];
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (!op || new_uuid(op->id) < 0) {
		free(op);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	op->ops = op->ops ? op->ops : ops;
	op->rq = *rq;
	op->process = dup_or_null(rq->process);
	op->tags = dup_or_null(rq->tags);
	op->trigger = dup_or_null(rq->trigger);
	op->rule = dup_or_null(rq->rule);
	op->rq.process = op->process;
	op->rq.tags = op->tags;
	op->rq.trigger = op->trigger;
	op->rq.rule = op->rule;
	op->created_ms = now_ms();
	iso_ms(op->created_ms, when, sizeof(when));
	pd_instance_uid(rq->pid, rq->start_time, uid);
	op->rec = json_pack(
		"{s:s, s:s, s:s, s:{s:i, s:s, s:o}, s:o, s:b, s:o, s:n, s:n, s:{s:s, s:s, s:s?}}",
		"operationId", op->id, "createdDateTime", when, "status", "Running", "process", "pid",
		rq->pid, "uid", uid, "name", rq->process ? pd_json_cstr(rq->process) : json_null(),
		"egressProviderName", rq->egress ? json_string(rq->egress->name) : json_null(),
		"isStoppable", 0, "tags", tags_json(rq->tags), "resourceLocation", "error", "dump",
		"dumpType", pd_dumpjob_type_name(&rq->type, tname, sizeof(tname)), "format",
		pd_dump_format_name(rq->format), "trigger", rq->trigger ? rq->trigger : "manual");
	if (op->rec &&
	    json_object_set_new(op->rec, "ownerUid",
				rq->uid_known ? json_integer((json_int_t)rq->uid) : json_null()) < 0) {
		json_decref(op->rec);
		op->rec = NULL;
	}
	if (op->rec && op_kind_record(op) < 0) {
		json_decref(op->rec);
		op->rec = NULL;
	}
	if (!op->rec || (rq->process && !op->process) || (rq->tags && !op->tags) ||
	    (rq->trigger && !op->trigger) || (rq->rule && !op->rule)) {
		op_free(op);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&ops->lock);
	if (ops->closing) {
		pthread_mutex_unlock(&ops->lock);
		op_free(op);
		snprintf(err, errlen, "the responder is stopping");
		return -ESHUTDOWN;
	}
	rc = add(ops, op);
	if (rc < 0) {
		pthread_mutex_unlock(&ops->lock);
		op_free(op);
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	op->running = true;
	ops->running++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = -pthread_create(&t, &attr, op_thread, op);
	pthread_attr_destroy(&attr);
	if (rc < 0) {
		ops->n--;
		ops->running--;
		pthread_mutex_unlock(&ops->lock);
		op_free(op);
		snprintf(err, errlen, "cannot start a thread: %s", strerror(-rc));
		return rc;
	}
	snprintf(id, PD_OP_ID_LEN + 1, "%s", op->id);
	save(ops);
	trim(ops);
	pthread_mutex_unlock(&ops->lock);
	return 0;
}

/* Is rec's process in the scope now (lib/operations.h, "Scope")? No
 * scope (a caller that judges nothing) sees every record; scope "all"
 * every record, with or without an ownerUid; any other scope only the
 * records whose ownerUid it has. */
static bool visible(const struct pd_ops *ops, json_t *rec)
{
	json_t *u = json_object_get(rec, "ownerUid");

	return pd_scope_has_recorded(ops->o.scope, json_is_integer(u),
				     (long long)json_integer_value(u));
}

/* The record of id, when it is in the scope (under ops->lock). */
static struct op *find(struct pd_ops *ops, const char *id)
{
	for (size_t i = 0; i < ops->n; i++)
		if (!strcasecmp(ops->v[i]->id, id))
			return visible(ops, ops->v[i]->rec) ? ops->v[i] : NULL;
	return NULL;
}

static const char *summary_keys[] = { "operationId", "createdDateTime", "status", "process",
				      "egressProviderName", "isStoppable", "tags" };

static bool has_tags(json_t *rec, json_t *want)
{
	json_t *have = json_object_get(rec, "tags"), *w;
	size_t i, j;

	json_array_foreach(want, i, w) {
		bool found = false;

		for (j = 0; j < json_array_size(have); j++)
			if (json_equal(json_array_get(have, j), w))
				found = true;
		if (!found)
			return false;
	}
	return true;
}

json_t *pd_ops_list(struct pd_ops *ops, int pid, const char *tags)
{
	json_t *a = json_array(), *want = tags_json(tags);

	if (!a || !want) {
		json_decref(a);
		json_decref(want);
		return NULL;
	}
	pthread_mutex_lock(&ops->lock);
	for (size_t i = 0; i < ops->n; i++) {
		json_t *rec = ops->v[i]->rec, *s;
		json_t *pr = json_object_get(rec, "process");

		if (!visible(ops, rec))
			continue;
		if (pid >= 0 && json_integer_value(json_object_get(pr, "pid")) != pid)
			continue;
		if (!has_tags(rec, want))
			continue;
		s = json_object();
		for (size_t k = 0; s && k < sizeof(summary_keys) / sizeof(summary_keys[0]); k++) {
			json_t *v = json_object_get(rec, summary_keys[k]);

			json_object_set_new(s, summary_keys[k], v ? json_deep_copy(v) : json_null());
		}
		if (!s || json_array_append_new(a, s) < 0) {
			json_decref(a);
			a = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&ops->lock);
	json_decref(want);
	return a;
}

json_t *pd_ops_get(struct pd_ops *ops, const char *id)
{
	json_t *r = NULL;
	struct op *op;

	pthread_mutex_lock(&ops->lock);
	op = find(ops, id);
	if (op)
		r = json_deep_copy(op->rec);
	pthread_mutex_unlock(&ops->lock);
	return r;
}

int pd_ops_cancel(struct pd_ops *ops, const char *id)
{
	struct timespec until;
	struct op *op;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ops->o.cancel_wait_ms / 1000;
	until.tv_nsec += (long)(ops->o.cancel_wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ops->lock);
	op = find(ops, id);
	if (!op) {
		pthread_mutex_unlock(&ops->lock);
		return -ENOENT;
	}
	if (!op->running) {
		pthread_mutex_unlock(&ops->lock);
		return -EALREADY;
	}
	atomic_store(&op->cancel, 1);
	op->waiters++; /* op stays in the table while it is waited on */
	while (op->running && rc == 0)
		rc = -pthread_cond_timedwait(&ops->cond, &ops->lock, &until);
	if (op->running) {
		rc = -ETIMEDOUT;
	} else {
		const char *st = json_string_value(json_object_get(op->rec, "status"));

		rc = st && !strcmp(st, "Cancelled") ? 0 : -EALREADY;
	}
	op->waiters--;
	pthread_mutex_unlock(&ops->lock);
	return rc;
}
