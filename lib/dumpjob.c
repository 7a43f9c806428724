/* The one dump job (lib/dumpjob.h). */
#include "config.h"

#include "lib/dumpjob.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/proc.h"
#include "lib/spool.h"
#include "lib/zstdout.h"

static const char *const phase_names[] = {
	[PD_PHASE_PREPARE] = "prepare",	  [PD_PHASE_COPY] = "copy", [PD_PHASE_BUNDLE] = "bundle",
	[PD_PHASE_COMPRESS] = "compress", [PD_PHASE_DONE] = "done",
};

const char *pd_dump_phase_name(enum pd_dump_phase ph)
{
	if ((size_t)ph < sizeof(phase_names) / sizeof(phase_names[0]))
		return phase_names[ph];
	return "unknown";
}

const char *pd_dumpjob_type_name(const struct pd_dumptype *t, char *buf, size_t size)
{
	if (t->name)
		return t->name;
	snprintf(buf, size, "0x%x", t->bits);
	return buf;
}

struct job {
	const struct pd_dumpjob_opts *o;
	struct pd_dumpjob_result *res;
	enum pd_dump_phase phase;
	uint64_t start_time; /* the run of the process dumped: o's, or the one
				found when none was given */
	uint64_t core_size;  /* for the compress phase's figures */
	int core_fd;
};

/* A failure of the job: its kind, errno and sentence. Returns -1. */
static int fail(struct job *j, enum pd_dump_error e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct job *j, enum pd_dump_error e, int rc, const char *fmt, ...)
{
	va_list ap;

	j->res->error = e;
	j->res->rc = rc;
	j->res->phase = j->phase;
	va_start(ap, fmt);
	vsnprintf(j->res->detail, sizeof(j->res->detail), fmt, ap);
	va_end(ap);
	return -1;
}

static int progress(struct job *j, uint64_t done, uint64_t total)
{
	return j->o->progress ? j->o->progress(j->o->arg, j->phase, done, total) : 0;
}

static int enter(struct job *j, enum pd_dump_phase ph)
{
	j->phase = ph;
	if (progress(j, 0, 0))
		return fail(j, PD_DUMP_CANCELLED, -ECANCELED, "the dump was cancelled");
	return 0;
}

/* A file from the caller; its failure is the job's. */
static int open_file(struct job *j, enum pd_dumpjob_file which, uint64_t estimate, int *fd)
{
	int rc = j->o->open_out(j->o->arg, which, estimate, &j->res->limit);

	if (rc < 0)
		return fail(j, rc == -ENOSPC || rc == -EDQUOT ? PD_DUMP_NO_SPACE : PD_DUMP_IO, rc,
			    "cannot open a file for the %s: %s",
			    which == PD_DUMPJOB_CORE  ? "core"
			    : which == PD_DUMPJOB_ZIP ? "zip bundle"
						      : "zstd stream",
			    strerror(-rc));
	*fd = rc;
	return 0;
}

static int copy_tick(void *arg, uint64_t done, uint64_t total)
{
	struct job *j = arg;

	return progress(j, done, total);
}

/* Steps 1 and 2: the process checked, its core estimated. */
static int prepare(struct job *j, uint64_t *estimate)
{
	const struct pd_dumpjob_opts *o = j->o;
	struct pd_proc p;
	enum pd_dump_error e;
	int rc;

	rc = pd_proc_open(o->pid, &p);
	if (rc == 0 && o->start_time && p.stat.starttime != o->start_time) {
		pd_proc_close(&p);
		rc = -ESRCH;
	}
	if (rc < 0)
		return fail(j, pd_dump_error_from_errno(rc, false), rc, "%s",
			    rc == -ESRCH ? "no such process" : strerror(-rc));
	j->start_time = p.stat.starttime; /* the helper and the bundle check it */
	e = pd_dump_precheck(&p);
	rc = e == PD_DUMP_OK ? pd_dump_estimate(&p, o->type.content, estimate) : 0;
	pd_proc_close(&p);
	if (e == PD_DUMP_GONE)
		return fail(j, e, -ESRCH, "before it could be stopped");
	if (e != PD_DUMP_OK)
		return fail(j, e, 0, "%s",
			    e == PD_DUMP_ZOMBIE ? "a zombie has no memory to dump"
						: "a kernel thread has no user memory");
	/* What is read here fails as the helper's reads would: one errno map,
	 * one answer for each error. */
	if (rc < 0)
		return fail(j, pd_dump_error_from_errno(rc, false), rc,
			    "reading it before the dump: %s", strerror(-rc));
	j->res->estimate = *estimate;
	return 0;
}

/* Step 3: the helper writes the core into j->core_fd. */
static int copy(struct job *j, uint64_t estimate)
{
	const struct pd_dumpjob_opts *o = j->o;
	struct pd_dumpjob_result *res = j->res;
	struct pd_dumprun_opts ro = {
		.helper = o->helper,
		.pid = o->pid,
		.start_time = j->start_time,
		.content = o->type.content,
		.deadline_ms = o->deadline_ms,
		.mem_budget = o->mem_budget,
		.scope = o->scope,
		.tick = copy_tick,
		.arg = j,
		.tick_ms = o->tick_ms,
	};
	int rc;

	for (int attempt = 0;; attempt++) {
		if (open_file(j, PD_DUMPJOB_CORE, estimate, &j->core_fd) < 0)
			return -1;
		if (enter(j, PD_PHASE_COPY) < 0)
			return -1;
		ro.out_fd = j->core_fd;
		ro.out_max = res->limit;
		rc = pd_dump_run(&ro, &res->dump);
		if (!(rc == 0 && res->limit && res->dump.error == PD_DUMP_NO_SPACE && attempt == 0))
			break;
		/* The estimate was short and the core met its file's limit (a
		 * memory spool's): once more, in a file for more than that. */
		close(j->core_fd);
		j->core_fd = -1;
		j->phase = PD_PHASE_PREPARE;
		if (estimate <= res->limit)
			estimate = res->limit + 1;
	}
	if (rc == -ECANCELED)
		return fail(j, PD_DUMP_CANCELLED, rc, "the dump was cancelled");
	if (rc < 0)
		return fail(j, PD_DUMP_INTERNAL, rc, "%s",
			    res->dump.detail[0] ? res->dump.detail : strerror(-rc));
	if (res->dump.error != PD_DUMP_OK)
		return fail(j, res->dump.error, 0, "%s", res->dump.detail);
	j->core_size = res->dump.size;
	return 0;
}

static int zip_progress(void *arg, double fraction)
{
	struct job *j = arg;

	if (j->phase != PD_PHASE_COMPRESS)
		j->phase = PD_PHASE_COMPRESS;
	return progress(j, (uint64_t)(fraction * (double)j->core_size), j->core_size);
}

/* The zstd stream's compress phase: bytes of the core compressed so far. */
static int zstd_progress(void *arg, uint64_t done, uint64_t total)
{
	struct job *j = arg;

	return progress(j, done, total);
}

/* Whether the core's file is punched behind the compressor (lib/spool.h,
 * pd_spool_behind): it is the job's own, closed once compressed, on every
 * path. Only a core held in RAM (a memfd spool, a spool_dir on tmpfs): its
 * memory goes as the compression goes. On disk it was measured to gain
 * nothing (docs/DUMPS.md, "Where the core waits"), so it is left whole. */
static bool consume_core(struct job *j)
{
	return pd_spool_in_memory(j->core_fd);
}

static int zip_open_out(void *arg, uint64_t bytes, uint64_t *limit)
{
	struct job *j = arg;

	int fd = j->o->open_out(j->o->arg, PD_DUMPJOB_ZIP, bytes, limit);

	if (fd >= 0) {
		j->res->fd = fd;
		j->res->limit = *limit;
	}
	return fd;
}

/* The zip bundle (lib/bundle.h), phases BUNDLE then COMPRESS. On success
 * res->fd is the bundle and the core's file is closed. */
static int dumpjob_bundle(struct job *j)
{
	const struct pd_dumpjob_opts *o = j->o;
	struct pd_dumpjob_result *res = j->res;
	char dtype[16], err[256] = "";
	struct pd_bundle_opts bo = {
		.pid = o->pid,
		.start_time = j->start_time,
		.core_fd = j->core_fd,
		.core_name = res->core_name,
		.dump_type = pd_dumpjob_type_name(&o->type, dtype, sizeof(dtype)),
		.stopped_us = res->dump.stopped_us,
		.figures = &res->dump.fig,
		.open_out = zip_open_out,
		.out_arg = j,
		.progress = zip_progress,
		.progress_arg = j,
		.consume_core = consume_core(j),
	};
	int rc;

	if (enter(j, PD_PHASE_BUNDLE) < 0)
		return -1;
	res->limit = 0;
	rc = pd_bundle_write(&bo, -1, &res->bundle, err, sizeof(err));
	if (rc == -ECANCELED)
		return fail(j, PD_DUMP_CANCELLED, rc, "the dump was cancelled");
	if (rc == -EFBIG)
		return fail(j, PD_DUMP_NO_SPACE, rc,
			    "the zip bundle would pass its spool's limit (%llu bytes) although "
			    "its bound (%llu bytes) did not: %s",
			    (unsigned long long)res->limit, (unsigned long long)res->bundle.bound,
			    err[0] ? err : strerror(-rc));
	if (rc == -ENOSPC || rc == -EDQUOT)
		return fail(j, PD_DUMP_NO_SPACE, rc, "no space for the zip bundle: %s",
			    err[0] ? err : strerror(-rc));
	if (rc == -ESRCH)
		return fail(j, PD_DUMP_GONE, rc, "it exited before its files could be bundled");
	if (rc < 0)
		return fail(j, PD_DUMP_INTERNAL, rc, "the zip bundle could not be written: %s",
			    err[0] ? err : strerror(-rc));
	res->size = res->bundle.size;
	/* The core is in the zip: its file goes before the zip is sent. */
	close(j->core_fd);
	j->core_fd = -1;
	return 0;
}

/* Step 4 for PD_DUMP_FORMAT_ZSTD: the core as one zstd stream, phase COMPRESS.
 * On success res->fd is the stream and the core's file is closed. */
static int dumpjob_zstd(struct job *j)
{
	struct pd_dumpjob_result *res = j->res;
	struct pd_zstd_opts zo = {
		.in_fd = j->core_fd,
		.size = j->core_size,
		.progress = zstd_progress,
		.progress_arg = j,
	};
	uint64_t estimate = pd_zstd_estimate(j->core_fd, j->core_size);
	int rc;

	if (enter(j, PD_PHASE_COMPRESS) < 0)
		return -1;
	for (int attempt = 0;; attempt++) {
		if (open_file(j, PD_DUMPJOB_ZSTD, estimate, &res->fd) < 0)
			return -1;
		zo.out_fd = res->fd;
		zo.limit = res->limit;
		/* Not an attempt that may be retried (a bounded spool's first):
		 * the retry reads the core again. */
		zo.consume = consume_core(j) && !(res->limit && attempt == 0);
		rc = pd_zstd_write(&zo, &res->size);
		if (!(rc == -EFBIG && res->limit && attempt == 0))
			break;
		/* The estimate was short for a memory spool: once more, in a
		 * file for more than its limit (as the core's own retry). */
		close(res->fd);
		res->fd = -1;
		if (estimate <= res->limit)
			estimate = res->limit + 1;
	}
	if (rc == -ECANCELED)
		return fail(j, PD_DUMP_CANCELLED, rc, "the dump was cancelled");
	if (rc == -EFBIG)
		return fail(j, PD_DUMP_NO_SPACE, rc,
			    "the zstd stream would pass its spool's limit (%llu bytes)",
			    (unsigned long long)res->limit);
	if (rc == -ENOSPC || rc == -EDQUOT)
		return fail(j, PD_DUMP_NO_SPACE, rc, "no space for the zstd stream: %s",
			    strerror(-rc));
	if (rc < 0)
		return fail(j, PD_DUMP_INTERNAL, rc, "the zstd stream could not be written: %s",
			    strerror(-rc));
	close(j->core_fd);
	j->core_fd = -1;
	return 0;
}

/* Step 4, the one place a finished core becomes the file the caller asked
 * for, by its format; a new format (a compression) is a case here. */
static int finish(struct job *j)
{
	switch (j->o->format) {
	case PD_DUMP_FORMAT_ZIP: return dumpjob_bundle(j);
	case PD_DUMP_FORMAT_ZSTD: return dumpjob_zstd(j);
	case PD_DUMP_FORMAT_RAW: break;
	}
	j->res->fd = j->core_fd;
	j->res->size = j->res->dump.size;
	j->core_fd = -1;
	return 0;
}

/* The job's end: success (res->fd the final file) ... */
static int done(struct job *j)
{
	j->phase = j->res->phase = PD_PHASE_DONE;
	progress(j, j->res->size, j->res->size);
	j->res->error = PD_DUMP_OK;
	return 0;
}

/* ... or failure: no fd left open. */
static int undo(struct job *j)
{
	if (j->core_fd >= 0)
		close(j->core_fd);
	if (j->res->fd >= 0)
		close(j->res->fd);
	j->res->fd = -1;
	return -1;
}

int pd_dumpjob_run(const struct pd_dumpjob_opts *o, struct pd_dumpjob_result *res)
{
	struct job j = {.o = o, .res = res, .phase = PD_PHASE_PREPARE, .core_fd = -1};
	uint64_t estimate = 0;

	memset(res, 0, sizeof(*res));
	res->fd = -1;
	snprintf(res->core_name, sizeof(res->core_name), "core.%d", (int)o->pid);
	if (enter(&j, PD_PHASE_PREPARE) < 0 || prepare(&j, &estimate) < 0 || copy(&j, estimate) < 0)
		goto fail;
	if (finish(&j) < 0)
		goto fail;
	return done(&j);
fail:
	return undo(&j);
}

int pd_dumpjob_finish(const struct pd_dumpjob_opts *o, int core_fd, uint64_t core_size,
		      const struct pd_dump_figures *figures, struct pd_dumpjob_result *res)
{
	struct job j = {.o = o,
			.res = res,
			.phase = PD_PHASE_BUNDLE,
			.start_time = o->start_time,
			.core_size = core_size,
			.core_fd = core_fd};

	memset(res, 0, sizeof(*res));
	res->fd = -1;
	res->dump.size = core_size;
	if (figures)
		res->dump.fig = *figures;
	snprintf(res->core_name, sizeof(res->core_name), "core.%d", (int)o->pid);
	return finish(&j) < 0 ? undo(&j) : done(&j);
}

json_t *pd_dumpjob_result_json(const struct pd_dumpjob_result *res)
{
	const struct pd_dumprun_result *d = &res->dump;
	const struct pd_dump_figures *f = &d->fig;
	bool ok = res->error == PD_DUMP_OK;

	return json_pack(
		"{s:b,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,"
		"s:I,s:s}",
		"ok", ok, "error", pd_dump_error_code(res->error), "phase",
		pd_dump_phase_name(res->phase), "detail", ok ? "" : res->detail, "method",
		f->method[0] ? f->method : "stop", "method_reason", f->reason, "stopped_us",
		(json_int_t)d->stopped_us, "freezing_us", (json_int_t)f->freezing_us, "frozen_us",
		(json_int_t)f->frozen_us, "copy_us", (json_int_t)f->copy_us, "copied_bytes",
		(json_int_t)f->copied_bytes, "extra_memory", (json_int_t)f->extra_memory,
		"zero_bytes", (json_int_t)f->zero_bytes, "zero_method",
		f->zero_method[0] ? f->zero_method : "none", "dumped_bytes", (json_int_t)d->dumped_bytes, "threads", (json_int_t)d->threads,
		"mappings", (json_int_t)d->mappings, "core_size", (json_int_t)d->size, "size",
		(json_int_t)res->size, "core_name", res->core_name);
}
