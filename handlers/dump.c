/* GET /processes/{id}/dump?dumpType=N&format=raw|zip&compress=none|zstd
 *
 * Validate, take a slot (max_dumps), run the dump job (lib/dumpjob.h) with
 * spools for its files, then stream the spool with its exact length. The
 * spool is an unnamed file: whatever happens - a client that goes away, an
 * error, a crash - closing it leaves nothing behind. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "lib/dumpjob.h"
#include "lib/dumptype.h"
#include "lib/modules.h"
#include "lib/proc.h"
#include "lib/spool.h"
#include "lib/spoolkeep.h"
#include "lib/store.h"
#include "lib/operations.h"

/* Seconds a client told "too many dumps" or "busy" should wait: about the
 * time a mini dump and its download take. */
#define DUMP_RETRY_AFTER   10
#define DUMP_RETRY_AFTER_S "10"


struct dump_req {
	struct pd_req *r;
	struct pd_context *ctx;
	struct pd_dumptype type;
	bool zip;
	bool zstd; /* compress=zstd */
	struct pd_proc p;
	char comm[PD_COMM_MAX];
	time_t when;
	int fd;	       /* the job's final file (core or zip) */
	bool slot;     /* holds one of max_dumps */
	int spool_rc;  /* a spool that could not be opened: -errno */
	uint64_t spool_avail, spool_wanted; /* ... for lack of room */
	unsigned core_spools; /* spools the job asked for its core */
	struct pd_dumpjob_result res;
	char mon_name[48]; /* dotnet-monitor's route: its file name */
	bool resumed;	   /* a kept spool, asked for by If-Range */
	bool store;	   /* store=true: the dump is kept in the dump store too */
	struct pd_store_new *sn;       /* its entry while the job runs */
	struct pd_store_dumpout sout;  /* the job's open_out into it */
	int store_rc;		       /* the store's failure: -errno */
	char store_id[PD_STORE_ID_MAX]; /* the entry, once committed */
	char etag[PD_SPOOL_TOKEN_LEN + 1]; /* its token; "" when not resumable */
	/* an operation (docs/OPERATIONS-API.md): egressProvider=NAME, or
	 * async=true (into the store) */
	const struct pd_egress_provider *egress;
	bool async;
};

static void release_slot(struct dump_req *d)
{
	if (d->slot)
		atomic_fetch_sub(&d->ctx->dumps_running, 1);
	d->slot = false;
}

static void close_spool(struct dump_req *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

static const char *spool_dir(const struct pd_context *ctx)
{
	return ctx->config->spool_dir ? ctx->config->spool_dir : PD_SPOOL_DIR_DEFAULT;
}

/* egressProvider=NAME (an [egress NAME] section) or async=true: the dump
 * runs as an operation (docs/OPERATIONS-API.md), answered 202. */
static int parse_operation(struct dump_req *d)
{
	if (pd_h_parse_operation(d->r, &d->egress, &d->async) < 0)
		return -1;
	if (d->store && (d->egress || d->async)) {
		pd_resp_problem(d->r, 400, "store",
				"store=true is for a dump answered in the response; an operation "
				"goes to its egressProvider, or with async=true to the store.");
		return -1;
	}
	return 0;
}

/* store=true|false (docs/STORE.md): keep the dump in the dump store too. */
static int parse_store(struct dump_req *d)
{
	if (pd_h_query_bool(d->r, "store", false, &d->store) < 0)
		return -1;
	if (d->store && !d->ctx->store) {
		pd_resp_problem(d->r, 400, "store",
				"store=true needs the dump store, and no store_dir is configured.");
		return -1;
	}
	return parse_operation(d);
}

/* format (raw or zip) and compress (none or zstd; not with a zip, which
 * is deflate for every unzip: docs/DUMPS.md, "Compression"). */
static int parse_format(struct dump_req *d)
{
	const char *fmt = pd_req_query(d->r, "format");
	const char *comp = pd_req_query(d->r, "compress");

	if (!fmt || !*fmt || !strcasecmp(fmt, "raw")) {
		d->zip = false;
	} else if (!strcasecmp(fmt, "zip")) {
		d->zip = true;
	} else {
		pd_resp_problem(d->r, 400, "format", "format must be raw or zip, not '%s'.", fmt);
		return -1;
	}
	if (!comp || !*comp || !strcasecmp(comp, "none")) {
		d->zstd = false;
	} else if (!strcasecmp(comp, "zstd")) {
		d->zstd = true;
	} else {
		pd_resp_problem(d->r, 400, "compress", "compress must be none or zstd, not '%s'.",
				comp);
		return -1;
	}
	if (d->zip && d->zstd) {
		pd_resp_problem(d->r, 400, "compress",
				"compress=zstd is for the raw core; a zip bundle is always deflated "
				"(every unzip reads it). Ask for format=zip or compress=zstd.");
		return -1;
	}
	return parse_store(d);
}

static enum pd_dump_format dump_format(const struct dump_req *d)
{
	return d->zip ? PD_DUMP_FORMAT_ZIP : d->zstd ? PD_DUMP_FORMAT_ZSTD : PD_DUMP_FORMAT_RAW;
}

static const char *content_type(const struct dump_req *d)
{
	return d->zip ? "application/zip" : d->zstd ? "application/zstd" : "application/octet-stream";
}

/* Kudu's dumpType (MINIDUMP_TYPE bits or a name; mini when absent) and
 * format. */
static int parse_params(struct dump_req *d)
{
	struct pd_req *r = d->r;
	const char *dt = pd_req_query(r, "dumpType");
	uint32_t bad = 0;
	int rc;

	rc = pd_dumptype_parse(dt, &d->type, &bad);
	if (rc == -ERANGE) {
		char hex[16];

		snprintf(hex, sizeof(hex), "0x%x", bad);
		pd_resp_problem_ext(
			r, 400, "dumpType", json_pack("{s:s}", "undefinedBits", hex),
			"dumpType %s has bits no MINIDUMP_TYPE defines (%s); the defined "
			"bits are 0x%x.",
			dt, hex, PD_MINIDUMP_VALID);
		return -1;
	}
	if (rc < 0) {
		pd_resp_problem(r, 400, "dumpType",
				"dumpType must be a MINIDUMP_TYPE number (0, 1, 2, 0x200, ...) or "
				"one of Mini, Triage, Heap, WithHeap, Full, not '%s'.",
				dt);
		return -1;
	}
	return parse_format(d);
}

/* A name safe in a header and a file name: [A-Za-z0-9._-], others '_'. */
static void safe_name(char *dst, size_t size, const char *src, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n + 1 < size && n < 32; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[n++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '-')
				   ? (char)c
				   : '_';
	}
	if (n == 0 && size > 8) {
		memcpy(dst, "process", 7);
		n = 7;
	}
	dst[n] = '\0';
}

/* Kudu's GetResponseFileName: NAME-INSTANCE-MM-dd-HH-mm-ss.dmp or .zip, the
 * time in UTC; INSTANCE is the first 6 characters of the machine name
 * (Kudu's short instance id outside Azure). compress=zstd adds .zst. */
static void kudu_file_name(const struct dump_req *d, const struct tm *tm, char *value, size_t size)
{
	char instance[8], stamp[32];

	safe_name(instance, sizeof(instance), d->ctx->machine_name,
		  strnlen(d->ctx->machine_name, 6));
	strftime(stamp, sizeof(stamp), "%m-%d-%H-%M-%S", tm);
	snprintf(value, size, "attachment; filename=\"%s-%s-%s.%s\"", d->comm, instance, stamp,
		 d->zip ? "zip" : d->zstd ? "dmp.zst" : "dmp");
}

/* How the memory was copied and what it cost (lib/dumprun.h's figures). */
static int set_figures(struct pd_req *r, const struct pd_dumprun_result *res)
{
	const struct pd_dump_figures *f = &res->fig;
	const struct {
		const char *name;
		uint64_t v;
	} nums[] = {
		{"X-Dump-Stopped-Us", res->stopped_us},
		{"X-Dump-Threads", res->threads},
		{"X-Dump-Freezing-Us", f->freezing_us},
		{"X-Dump-Frozen-Us", f->frozen_us},
		{"X-Dump-Copy-Us", f->copy_us},
		{"X-Dump-Copied-Bytes", f->copied_bytes},
		{"X-Dump-Extra-Memory", f->extra_memory},
		{"X-Dump-Zero-Bytes", f->zero_bytes},
	};
	char value[32];
	int rc = pd_resp_header(r, "X-Dump-Method", f->method);

	if (f->reason[0])
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Method-Reason", f->reason);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Zero-Method", f->zero_method);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		snprintf(value, sizeof(value), "%llu", (unsigned long long)nums[i].v);
		rc = rc ? rc : pd_resp_header(r, nums[i].name, value);
	}
	return rc;
}

/* The file name is the peer's of the route: dotnet-monitor's when
 * mon_name is set, else Kudu's. */
static int set_headers(struct dump_req *d)
{
	struct pd_req *r = d->r;
	char value[160], names[512];
	struct tm tm;
	int rc;

	gmtime_r(&d->when, &tm);
	if (d->mon_name[0])
		snprintf(value, sizeof(value), "attachment; filename=\"%s%s\"", d->mon_name,
			 d->zip ? ".zip" : d->zstd ? ".zst" : "");
	else
		kudu_file_name(d, &tm, value, sizeof(value));
	rc = pd_resp_header(r, "Content-Disposition", value);
	snprintf(value, sizeof(value), "0x%x", d->type.bits);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Type", value);
	snprintf(value, sizeof(value), "0x%x", d->type.ignored);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Ignored-Bits", value);
	if (d->type.ignored) {
		pd_dumpbits_names(d->type.ignored, names, sizeof(names));
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Ignored", names);
	}
	if (d->store_id[0])
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Store-Id", d->store_id);
	if (pd_req_is_head(r) || d->resumed)
		return rc; /* no dump was taken now */
	return rc ? rc : set_figures(r, &d->res.dump);
}

/* The job's files: a spool for about estimate bytes, memory up to
 * spool_memory_max, else disk when spool_dir has the room. *limit gets what
 * the spool may hold while it is written: spool_memory_max for memory, 0
 * for disk (its file system's free space bounds it). */
static int open_spool(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit)
{
	struct dump_req *d = arg;
	const struct pd_config *c = d->ctx->config;
	bool mem = false;
	int rc;

	if (d->sn) { /* store=true: the job's files are the entry's */
		rc = pd_store_dump_open_out(&d->sout, which, estimate, limit);
		if (rc < 0)
			d->store_rc = rc;
		return rc;
	}
	if (which == PD_DUMPJOB_CORE && d->core_spools++)
		pd_req_log_note(d->r, "spool=memory_full");
	rc = pd_spool_open(spool_dir(d->ctx), c->spool_memory_max, estimate, &mem);
	if (rc >= 0) {
		*limit = mem ? c->spool_memory_max : 0;
		pd_req_log_note(d->r, "spool=%s", mem ? "memory" : "disk");
		return rc;
	}
	d->spool_rc = rc;
	d->spool_wanted = estimate;
	if (rc == -ENOSPC) {
		int probe = open(spool_dir(d->ctx), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (probe >= 0) {
			pd_spool_room(probe, &d->spool_avail);
			close(probe);
		}
		pd_req_log_note(d->r, "spool=full");
	}
	return rc;
}

/* A spool that could not be opened, answered. */
static void spool_failed(struct dump_req *d)
{
	int rc = d->spool_rc;

	if (rc == -ENOSPC)
		pd_resp_problem(d->r, 507, NULL,
				"The spool directory has %llu bytes free; this dump needs about "
				"%llu. Free space there, or set spool_dir to a larger file system.",
				(unsigned long long)d->spool_avail,
				(unsigned long long)d->spool_wanted);
	else if (rc == -EOPNOTSUPP)
		pd_resp_problem(d->r, 500, NULL,
				"The file system of spool_dir does not support unnamed temporary "
				"files (O_TMPFILE); choose another spool_dir.");
	else
		pd_resp_problem(d->r, 500, NULL, "Cannot open a spool in spool_dir: %s.",
				strerror(-rc));
}

static int progress(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total)
{
	struct dump_req *d = arg;

	(void)phase;
	(void)done;
	(void)total;
	return pd_req_client_gone(d->r);
}

/* Turns a failed job into its answer: the text is the route's, the status
 * the one map's (handlers/problem.c). The spool and the slot go back
 * first (the job closed its files), so the client's next request never
 * finds them still taken (a 429). */
static void dump_failed(struct dump_req *d)
{
	struct pd_req *r = d->r;
	const struct pd_dumpjob_result *res = &d->res;
	const char *param = NULL;
	char text[512];
	int pid = d->p.pid;

	release_slot(d);
	if (res->error == PD_DUMP_CANCELLED) {
		pd_req_log_note(r, "dump=cancelled phase=%s", pd_dump_phase_name(res->phase));
		return;
	}
	if (d->spool_rc) {
		spool_failed(d);
		return;
	}
	if (d->store_rc) {
		pd_req_log_note(r, "store_error=%d", -d->store_rc);
		pd_resp_problem(r, d->store_rc == -ENOSPC || d->store_rc == -EDQUOT ? 507 : 500,
				"store", "Cannot write the dump into the dump store: %s.",
				strerror(-d->store_rc));
		return;
	}
	pd_req_log_note(r, "dump_error=%s phase=%s", pd_dump_error_code(res->error),
			pd_dump_phase_name(res->phase));
	switch (res->error) {
	case PD_DUMP_GONE:
		snprintf(text, sizeof(text), "Process %d exited while it was being dumped (%s).",
			 pid, res->detail);
		break;
	case PD_DUMP_ZOMBIE:
		snprintf(text, sizeof(text), "Process %d is a zombie: it has no memory to dump.",
			 pid);
		break;
	case PD_DUMP_KERNEL_THREAD:
		snprintf(text, sizeof(text),
			 "Process %d is a kernel thread: it has no user memory.", pid);
		break;
	case PD_DUMP_TIMEOUT:
		snprintf(text, sizeof(text),
			 "Process %d could not be stopped: %s. It was resumed; try again later.",
			 pid, res->detail);
		break;
	case PD_DUMP_BUSY:
		snprintf(text, sizeof(text),
			 "Process %d is already traced by another process (a debugger, or "
			 "another dump in progress). Try again later.",
			 pid);
		break;
	case PD_DUMP_NOT_PERMITTED:
		param = "id";
		snprintf(text, sizeof(text),
			 "The system does not allow process %d to be traced: %s.", pid,
			 res->detail);
		break;
	case PD_DUMP_NO_SPACE:
		snprintf(text, sizeof(text),
			 "The spool ran out of space while dumping process %d: %s.", pid,
			 res->detail);
		break;
	default:
		snprintf(text, sizeof(text), "The dump of process %d failed: %s.", pid,
			 res->detail);
		break;
	}
	pd_h_problem_kind(r, res->error, DUMP_RETRY_AFTER, param, "%s", text);
}

/* store=true: the finished dump committed as an entry (trigger manual);
 * d->store_id its id. A dump that cannot be kept is answered (nothing of
 * it stays in the store) and the spool closed. */
static int store_dump(struct dump_req *d)
{
	enum pd_dump_format fmt = d->sout.format;
	char comm[PD_COMM_MAX + 1];
	struct stat st;
	uint64_t bytes = 0;
	json_t *meta;
	int rc;

	snprintf(comm, sizeof(comm), "%.*s", (int)d->p.stat.comm_len, d->p.stat.comm);
	meta = pd_store_dump_meta(&d->res, &d->type, fmt, d->p.pid, comm, "manual", NULL);
	if (!meta) /* a name that is not UTF-8: its safe form */
		meta = pd_store_dump_meta(&d->res, &d->type, fmt, d->p.pid, d->comm, "manual", NULL);
	if (fstat(d->fd, &st) == 0)
		bytes = (uint64_t)st.st_blocks * 512u;
	rc = pd_store_commit(d->sn, meta, d->store_id);
	d->sn = NULL;
	if (rc == 0) {
		pd_req_log_note(d->r, "store_id=%s", d->store_id);
		return 0;
	}
	close_spool(d);
	release_slot(d);
	pd_req_log_note(d->r, "store_error=%d", -rc);
	if (rc == -EDQUOT)
		return pd_resp_problem(
			d->r, 507, "store",
			"The dump takes %llu bytes on disk, more than store_max_bytes (%llu): it was "
			"not stored, and nothing of it is kept. Ask without store=true to only "
			"download it.",
			(unsigned long long)bytes,
			(unsigned long long)pd_store_get_limits(d->ctx->store)->max_bytes);
	return pd_resp_problem(d->r, rc == -ENOSPC ? 507 : 500, "store",
			       "Cannot keep the dump in the dump store: %s.", strerror(-rc));
}

/* The job, its spools from spool_dir (store=true: its files in a new
 * entry of the dump store); d->fd the final file. */
static int take_dump(struct dump_req *d)
{
	struct pd_dumpjob_opts o = {
		.pid = d->p.pid,
		.start_time = d->p.stat.starttime,
		.type = d->type,
		.format = dump_format(d),
		.scope = &d->ctx->config->scope,
		.open_out = open_spool,
		.progress = progress,
		.arg = d,
	};
	const struct pd_dumprun_result *dr = &d->res.dump;
	int rc;

	if (d->store) {
		rc = pd_store_begin(d->ctx->store, d->p.pid, &d->sn);
		if (rc < 0) {
			release_slot(d);
			pd_resp_problem(d->r, rc == -ENOSPC ? 507 : 500, "store",
					"Cannot begin an entry in the dump store: %s.", strerror(-rc));
			return -1;
		}
		d->sout = (struct pd_store_dumpout){.n = d->sn, .format = o.format, .pid = d->p.pid};
	}
	if (pd_dumpjob_run(&o, &d->res) < 0) {
		pd_store_abort(d->sn);
		d->sn = NULL;
		dump_failed(d);
		return -1;
	}
	d->fd = d->res.fd;
	pd_req_log_note(d->r, "stopped_us=%llu threads=%llu core_bytes=%llu method=%s",
			(unsigned long long)dr->stopped_us, (unsigned long long)dr->threads,
			(unsigned long long)dr->size, dr->fig.method);
	if (d->zip)
		pd_req_log_note(d->r,
				"zip_bytes=%llu zip_bound=%llu modules=%u binaries=%u debug_files=%u",
				(unsigned long long)d->res.bundle.size,
				(unsigned long long)d->res.bundle.bound, d->res.bundle.modules,
				d->res.bundle.binaries, d->res.bundle.debug_files);
	if (d->zstd)
		pd_req_log_note(d->r, "zstd_bytes=%llu", (unsigned long long)d->res.size);
	if (d->sn && store_dump(d) < 0)
		return -1;
	if (d->store && !d->store_id[0])
		return -1; /* answered by store_dump */
	return 0;
}

/* What a kept spool must be asked for with: the process, the dump type
 * and the format. */
static struct pd_spool_key spool_key(const struct dump_req *d)
{
	return (struct pd_spool_key){
		.pid = d->p.pid,
		.start_time = d->p.stat.starttime,
		.kind = (uint64_t)d->type.content << 34 | (uint64_t)d->zstd << 33 |
			(uint64_t)d->zip << 32 | d->type.bits,
	};
}

/* A download its client broke off: the spool is kept for a resume
 * (resume_timeout), else closed as always. */
static void keep_spool(struct dump_req *d)
{
	struct pd_spool_key key = spool_key(d);

	if (!d->etag[0] || pd_req_was_cut(d->r) || !d->ctx->config->resume_timeout)
		return;
	pd_req_log_note(d->r, "spool=kept");
	pd_spool_keep(d->fd, d->etag, &key, (unsigned)d->ctx->config->resume_timeout,
		      (unsigned)d->ctx->max_dumps);
	d->fd = -1;
}

/* pd_h_send_file's end of the file: kept (keep_it and the route keeps
 * it), else closed; then the route's release. */
static void send_done(struct pd_h_send *s, bool keep_it)
{
	if (!(keep_it && s->keep && s->keep(s->arg, s->fd)))
		close(s->fd);
	s->fd = -1;
	if (s->release)
		s->release(s->arg);
}

/* The one download path (handlers.h): the file (the range asked for, else
 * all of it) but its last byte; then the file is closed (or kept) and the
 * route's release runs, and only then the last byte goes out: a client
 * that has the whole file and asks for the next dump finds the slot free
 * and the spool's space back. */
int pd_h_send_file(struct pd_h_send *s)
{
	struct pd_req *r = s->r;
	unsigned long long first = 0, last;
	char last_byte, etag[PD_H_ETAG_MAX + 3];
	bool part = false, tagged = s->etag && s->etag[0];
	struct stat st;
	int rc = 0;

	if (fstat(s->fd, &st) < 0) {
		rc = -errno;
		send_done(s, false);
		return pd_resp_problem(r, 500, NULL, "Cannot read the %s: %s.", s->what,
				       strerror(-rc));
	}
	last = (unsigned long long)st.st_size - 1;
	if (s->range && st.st_size > 0)
		rc = pd_req_range(r, (unsigned long long)st.st_size, &first, &last);
	if (rc == -ERANGE) {
		/* Kept and the slot given back before the answer leaves: the
		 * client's next Range must find both (not a 429). */
		send_done(s, true);
		return pd_resp_range_unsatisfiable(r, (unsigned long long)st.st_size);
	}
	part = rc == 1;
	if (st.st_size > 0 && pread(s->fd, &last_byte, 1, (off_t)last) != 1) {
		send_done(s, false);
		return pd_resp_problem(r, 500, NULL, "The %s cannot be read back.", s->what);
	}
	snprintf(etag, sizeof(etag), "\"%s\"", tagged ? s->etag : "");
	rc = s->headers ? s->headers(s->arg) : 0;
	if (!rc && tagged)
		rc = pd_resp_header(r, "ETag", etag);
	if (!rc && tagged)
		rc = pd_resp_header(r, "Accept-Ranges", "bytes");
	if (rc < 0) {
		send_done(s, false);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	if (part) {
		pd_req_log_note(r, "range=%llu-%llu", first, last);
		rc = pd_resp_begin_range(r, s->ctype, first, last, (unsigned long long)st.st_size);
	} else {
		rc = pd_resp_begin(r, 200, s->ctype, (long long)st.st_size);
	}
	if (st.st_size < 1) {
		send_done(s, false);
		return rc;
	}
	if (!rc)
		rc = pd_resp_write_fd(r, s->fd, first, last - first);
	send_done(s, rc == -EPIPE);
	if (!rc)
		rc = pd_resp_write(r, &last_byte, 1);
	if (rc == -EIO)
		pd_req_log_note(r, "%s_read_error", strcmp(s->what, "spool") ? "file" : "spool");
	return rc;
}

static int spool_headers(void *arg)
{
	return set_headers(arg);
}

static bool spool_keep(void *arg, int fd)
{
	struct dump_req *d = arg;

	d->fd = fd;
	keep_spool(d); /* sets d->fd to -1 when it kept the spool */
	if (d->fd < 0)
		return true;
	d->fd = -1;
	return false;
}

static void spool_release(void *arg)
{
	release_slot(arg);
}

/* The spool through the one download path; a new dump's whole, a
 * resume's range. */
static int send_spool(struct dump_req *d)
{
	struct pd_h_send s = {
		.r = d->r,
		.fd = d->fd,
		.what = "spool",
		.ctype = content_type(d),
		.etag = d->etag,
		.range = d->resumed,
		.headers = spool_headers,
		.keep = spool_keep,
		.release = spool_release,
		.arg = d,
	};

	if (!d->etag[0] && d->ctx->config->resume_timeout && pd_spool_token(d->etag) < 0)
		d->etag[0] = '\0';
	d->fd = -1;
	return pd_h_send_file(&s);
}

/* GET with Range and If-Range naming a spool kept for this very dump:
 * the rest of it, without a new dump. 1 when answered, 0 when this is no
 * resume (or the spool is gone: RFC 9110 then wants the whole, new,
 * representation). */
static int resume(struct dump_req *d, int *rc)
{
	struct pd_spool_key key = spool_key(d);
	int fd;

	if (!pd_req_if_range(d->r, d->etag, sizeof(d->etag))) {
		d->etag[0] = '\0';
		return 0;
	}
	fd = pd_spool_take(d->etag, &key);
	if (fd < 0) {
		pd_req_log_note(d->r, "resume=unknown");
		d->etag[0] = '\0';
		return 0;
	}
	d->slot = true;
	if (atomic_fetch_add(&d->ctx->dumps_running, 1) >= d->ctx->max_dumps) {
		release_slot(d);
		pd_spool_keep(fd, d->etag, &key, (unsigned)d->ctx->config->resume_timeout,
			      (unsigned)d->ctx->max_dumps);
		pd_resp_header(d->r, "Retry-After", DUMP_RETRY_AFTER_S);
		*rc = pd_resp_problem(d->r, 429, NULL,
				      "%d dump(s) already running or downloading, the most this "
				      "server takes at once (max_dumps). Try again later.",
				      d->ctx->max_dumps);
		return 1;
	}
	d->resumed = true;
	d->when = time(NULL);
	pd_req_log_note(d->r, "resume=kept");
	d->fd = fd;
	*rc = send_spool(d);
	return 1;
}

/* A HEAD would stop the process for a body nobody reads: it gets the
 * headers a GET would start with, without a length or a dump. */
static int answer_head(struct dump_req *d)
{
	d->when = time(NULL);
	if (set_headers(d) < 0)
		return pd_resp_problem(d->r, 500, NULL, "Out of memory.");
	return pd_resp_begin(d->r, 200, content_type(d),
			     -1);
}

int pd_h_take_dump_slot(struct pd_req *r)
{
	struct pd_context *ctx = pd_req_app(r);

	if (atomic_fetch_add(&ctx->dumps_running, 1) < ctx->max_dumps)
		return 0;
	atomic_fetch_sub(&ctx->dumps_running, 1);
	pd_req_log_note(r, "dump=busy");
	pd_resp_header(r, "Retry-After", DUMP_RETRY_AFTER_S);
	pd_resp_problem(r, 429, NULL,
			"%d dump(s) or stacks operation(s) already running, the most this server "
			"takes at once (max_dumps). Try again later.",
			ctx->max_dumps);
	return -1;
}

/* The dump of d->p (open); closes it. */
static int dump_process(struct dump_req *d)
{
	struct pd_req *r = d->r;
	enum pd_dump_error e;
	int rc = 0;

	if (pd_h_refuse_procdiag(r, &d->p) < 0)
		goto out;
	safe_name(d->comm, sizeof(d->comm), d->p.stat.comm, d->p.stat.comm_len);
	if (!pd_req_is_head(r) && resume(d, &rc))
		goto out;
	e = pd_dump_precheck(&d->p);
	if (e != PD_DUMP_OK) {
		/* Refused before anything is stopped: answered as a failed dump. */
		d->res.error = e;
		if (e == PD_DUMP_GONE)
			snprintf(d->res.detail, sizeof(d->res.detail), "before it could be stopped");
		dump_failed(d);
		goto out;
	}
	if (pd_req_is_head(r)) {
		rc = answer_head(d);
		goto out;
	}
	if (pd_h_take_dump_slot(r) < 0)
		goto out;
	d->slot = true;
	d->when = time(NULL);
	pd_req_log_note(r, "dump_type=0x%x", d->type.bits);
	if (d->egress || d->async) {
		char comm[PD_COMM_MAX + 1];
		struct pd_op_request rq = {
			.pid = d->p.pid,
			.start_time = d->p.stat.starttime,
			.type = d->type,
			.format = dump_format(d),
			.process = comm,
			.uid_known = true,
			.uid = d->p.uid,
			.egress = d->egress,
			.tags = pd_req_query(r, "tags"),
			.slot = &d->ctx->dumps_running,
		};

		snprintf(comm, sizeof(comm), "%.*s", (int)d->p.stat.comm_len, d->p.stat.comm);
		if (pd_h_operation_start(r, &rq) == 0)
			d->slot = false; /* the operation gives it back */
		goto out;
	}
	if (take_dump(d) == 0 && !pd_req_client_gone(r))
		rc = send_spool(d);
out:
	close_spool(d);
	release_slot(d);
	pd_proc_close(&d->p);
	return rc;
}

int h_process_dump(struct pd_req *r)
{
	struct dump_req d = {.r = r, .ctx = pd_req_app(r), .fd = -1};

	if (parse_params(&d) < 0)
		return 0;
	if (pd_h_open_process(r, &d.p) < 0)
		return 0;
	return dump_process(&d);
}

/* dotnet-monitor's GET /dump?pid=&uid=&name=&type=: the same dump, the
 * process chosen as /process chooses it, `type` its DumpType (WithHeap by
 * default), the file named as DumpOperation names it: core_{stamp}, the
 * time the request was taken. */
int h_mon_dump(struct pd_req *r)
{
	struct dump_req d = {.r = r, .ctx = pd_req_app(r), .fd = -1};
	const char *type = pd_req_query(r, "type");
	char stamp[32];

	pd_h_mon_stamp(stamp, sizeof(stamp));
	snprintf(d.mon_name, sizeof(d.mon_name), "core_%s", stamp);
	if (pd_dumptype_parse_monitor(type, &d.type) < 0) {
		pd_resp_problem(r, 400, "type",
				"type must be a DumpType: Full, Mini, WithHeap or Triage (any "
				"case), or its number 1 to 4, not '%s'.",
				type);
		return 0;
	}
	if (parse_format(&d) < 0)
		return 0;
	if (pd_h_select_process(r, &d.p) < 0)
		return 0;
	return dump_process(&d);
}
