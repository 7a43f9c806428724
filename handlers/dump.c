/* GET /processes/{id}/dump?dumpType=N&format=raw|zip
 *
 * Validate, take a slot (max_dumps), spool, run the dump helper (which
 * stops the target only while it copies), then stream the spool with its
 * exact length. The spool is an unnamed file: whatever happens - a client
 * that goes away, an error, a crash - closing it leaves nothing behind. */
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
#include "lib/dumprun.h"
#include "lib/dumptype.h"
#include "lib/modules.h"
#include "lib/proc.h"
#include "lib/spool.h"
#include "lib/spoolkeep.h"
#include "lib/bundle.h"

/* Seconds a client told "too many dumps" should wait: about the time a
 * mini dump and its download take. */
#define RETRY_AFTER "10"

struct dump_req {
	struct pd_req *r;
	struct pd_context *ctx;
	struct pd_dumptype type;
	bool zip;
	struct pd_proc p;
	char comm[PD_COMM_MAX];
	time_t when;
	int core_fd, zip_fd;
	bool slot;     /* holds one of max_dumps */
	bool answered; /* an error answer went out from a callback */
	struct pd_dumprun_result res;
	char mon_name[48]; /* dotnet-monitor's route: its file name */
	bool resumed;	   /* a kept spool, asked for by If-Range */
	char etag[PD_SPOOL_TOKEN_LEN + 1]; /* its token; "" when not resumable */
};

static void release_slot(struct dump_req *d)
{
	if (d->slot)
		atomic_fetch_sub(&d->ctx->dumps_running, 1);
	d->slot = false;
}

static void close_spools(struct dump_req *d);

/* Before an error answer: the spool and the slot go back first, so the
 * client's next request never finds them still taken (a 429). */
static void give_back(struct dump_req *d)
{
	close_spools(d);
	release_slot(d);
}

static const char *spool_dir(const struct pd_context *ctx)
{
	return ctx->config->spool_dir ? ctx->config->spool_dir : PD_SPOOL_DIR_DEFAULT;
}

static int parse_format(struct dump_req *d)
{
	const char *fmt = pd_req_query(d->r, "format");

	if (!fmt || !*fmt || !strcasecmp(fmt, "raw")) {
		d->zip = false;
	} else if (!strcasecmp(fmt, "zip")) {
		d->zip = true;
	} else {
		pd_resp_problem(d->r, 400, "format", "format must be raw or zip, not '%s'.", fmt);
		return -1;
	}
	return 0;
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
 * (Kudu's short instance id outside Azure). */
static void kudu_file_name(const struct dump_req *d, const struct tm *tm, char *value, size_t size)
{
	char instance[8], stamp[32];

	safe_name(instance, sizeof(instance), d->ctx->machine_name,
		  strnlen(d->ctx->machine_name, 6));
	strftime(stamp, sizeof(stamp), "%m-%d-%H-%M-%S", tm);
	snprintf(value, size, "attachment; filename=\"%s-%s-%s.%s\"", d->comm, instance, stamp,
		 d->zip ? "zip" : "dmp");
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
			 d->zip ? ".zip" : "");
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
	if (pd_req_is_head(r) || d->resumed)
		return rc; /* no dump was taken now */
	snprintf(value, sizeof(value), "%llu", (unsigned long long)d->res.stopped_us);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Stopped-Us", value);
	snprintf(value, sizeof(value), "%llu", (unsigned long long)d->res.threads);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Threads", value);
	return rc;
}

/* A spool for about estimate bytes: memory up to spool_memory_max, else
 * disk when spool_dir has the room. *limit gets what the spool may hold
 * while it is written: spool_memory_max for memory, 0 for disk (its file
 * system's free space bounds it). */
static int open_spool(struct dump_req *d, uint64_t estimate, int *fd, uint64_t *limit)
{
	const struct pd_config *c = d->ctx->config;
	bool mem = false;
	uint64_t avail = 0;
	int rc;

	rc = pd_spool_open(spool_dir(d->ctx), c->spool_memory_max, estimate, &mem);
	if (rc >= 0) {
		*fd = rc;
		*limit = mem ? c->spool_memory_max : 0;
		pd_req_log_note(d->r, "spool=%s", mem ? "memory" : "disk");
		return 0;
	}
	if (rc == -ENOSPC) {
		int probe = open(spool_dir(d->ctx), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (probe >= 0) {
			pd_spool_room(probe, &avail);
			close(probe);
		}
		pd_req_log_note(d->r, "spool=full");
		give_back(d);
		pd_resp_problem(d->r, 507, NULL,
				"The spool directory has %llu bytes free; this dump needs about "
				"%llu. Free space there, or set spool_dir to a larger file system.",
				(unsigned long long)avail, (unsigned long long)estimate);
	} else if (rc == -EOPNOTSUPP) {
		give_back(d);
		pd_resp_problem(d->r, 500, NULL,
				"The file system of spool_dir does not support unnamed temporary "
				"files (O_TMPFILE); choose another spool_dir.");
	} else {
		give_back(d);
		pd_resp_problem(d->r, 500, NULL, "Cannot open a spool in spool_dir: %s.",
				strerror(-rc));
	}
	return -1;
}

static int tick(void *arg, uint64_t done, uint64_t total)
{
	(void)done;
	(void)total;
	return pd_req_client_gone(arg);
}

/* Turns a failed dump into its answer. */
static void dump_failed(struct dump_req *d, int rc)
{
	struct pd_req *r = d->r;
	const struct pd_dumprun_result *res = &d->res;
	int pid = d->p.pid;

	give_back(d);
	if (rc == -ECANCELED) {
		pd_req_log_note(r, "dump=cancelled");
		return;
	}
	if (rc < 0) {
		pd_req_log_note(r, "dump=failed");
		pd_resp_problem(r, 500, NULL, "The dump of process %d failed: %s.", pid,
				res->detail[0] ? res->detail : strerror(-rc));
		return;
	}
	pd_req_log_note(r, "dump_error=%s", pd_dump_error_code(res->error));
	switch (res->error) {
	case PD_DUMP_GONE:
		pd_resp_problem(r, 409, NULL, "Process %d exited while it was being dumped (%s).",
				pid, res->detail);
		break;
	case PD_DUMP_ZOMBIE:
		pd_resp_problem(r, 409, NULL, "Process %d is a zombie: it has no memory to dump.",
				pid);
		break;
	case PD_DUMP_KERNEL_THREAD:
		pd_resp_problem(r, 409, NULL,
				"Process %d is a kernel thread: it has no user memory.", pid);
		break;
	case PD_DUMP_TIMEOUT:
		pd_resp_problem(
			r, 409, NULL,
			"Process %d could not be stopped: %s. It was resumed; try again later.",
			pid, res->detail);
		break;
	case PD_DUMP_BUSY:
		pd_resp_header(r, "Retry-After", RETRY_AFTER);
		pd_resp_problem(r, 409, NULL,
				"Process %d is already traced by another process (a debugger, or "
				"another dump in progress). Try again later.",
				pid);
		break;
	case PD_DUMP_NOT_PERMITTED:
		pd_resp_problem(r, 403, "id",
				"The system does not allow process %d to be traced: %s.", pid,
				res->detail);
		break;
	case PD_DUMP_NO_SPACE:
		pd_resp_problem(r, 507, NULL,
				"The spool ran out of space while dumping process %d: %s.", pid,
				res->detail);
		break;
	default:
		pd_resp_problem(r, 500, NULL, "The dump of process %d failed: %s.", pid,
				res->detail);
		break;
	}
}

static int take_dump(struct dump_req *d)
{
	struct pd_dumprun_opts o = {
		.pid = d->p.pid,
		.start_time = d->p.stat.starttime,
		.content = d->type.content,
		.scope = &d->ctx->config->scope,
		.tick = tick,
		.arg = d->r,
	};
	uint64_t estimate;
	int rc;

	rc = pd_dump_estimate(&d->p, d->type.content, &estimate);
	if (rc < 0) {
		/* What the server reads itself fails as the helper's reads would:
		 * one errno map, one answer for each error. */
		d->res.error = pd_dump_error_from_errno(rc, false);
		snprintf(d->res.detail, sizeof(d->res.detail), "reading it before the dump: %s",
			 strerror(-rc));
		dump_failed(d, 0);
		return -1;
	}
	if (open_spool(d, estimate, &d->core_fd, &o.out_max) < 0)
		return -1;
	o.out_fd = d->core_fd;
	rc = pd_dump_run(&o, &d->res);
	if (rc == 0 && o.out_max && d->res.error == PD_DUMP_NO_SPACE) {
		/* The estimate was short and the core met spool_memory_max (the
		 * helper's file size limit): once more, on disk. */
		pd_req_log_note(d->r, "spool=memory_full");
		close(d->core_fd);
		d->core_fd = -1;
		if (estimate <= d->ctx->config->spool_memory_max)
			estimate = d->ctx->config->spool_memory_max + 1;
		if (open_spool(d, estimate, &d->core_fd, &o.out_max) < 0)
			return -1;
		o.out_fd = d->core_fd;
		rc = pd_dump_run(&o, &d->res);
	}
	if (rc < 0 || d->res.error != PD_DUMP_OK) {
		dump_failed(d, rc);
		return -1;
	}
	pd_req_log_note(d->r, "stopped_us=%llu threads=%llu core_bytes=%llu",
			(unsigned long long)d->res.stopped_us, (unsigned long long)d->res.threads,
			(unsigned long long)d->res.size);
	return 0;
}

/* The zip's spool, opened by the bundle once it knows every entry: the
 * bound counts the core, the binaries, the debug files and the rest. */
static int zip_spool(void *arg, uint64_t bytes, uint64_t *limit)
{
	struct dump_req *d = arg;

	if (open_spool(d, bytes, &d->zip_fd, limit) < 0) {
		d->answered = true;
		return -ECANCELED;
	}
	return d->zip_fd;
}

static int make_zip(struct dump_req *d)
{
	char core_name[32], dtype[16], err[256] = "";
	struct pd_bundle_result br = {0};
	struct pd_bundle_opts bo = {
		.pid = d->p.pid,
		.start_time = d->p.stat.starttime,
		.core_fd = d->core_fd,
		.core_name = core_name,
		.dump_type = d->type.name ? d->type.name : dtype,
		.stopped_us = d->res.stopped_us,
		.open_out = zip_spool,
		.out_arg = d,
	};
	int rc;

	snprintf(core_name, sizeof(core_name), "core.%d", d->p.pid);
	snprintf(dtype, sizeof(dtype), "0x%x", d->type.bits);
	rc = pd_bundle_write(&bo, -1, &br, err, sizeof(err));
	if (d->answered)
		return -1;
	if (rc == -EFBIG) {
		give_back(d);
		pd_resp_problem(d->r, 507, NULL,
				"The zip bundle would pass spool_memory_max (%llu bytes) although "
				"its bound (%llu bytes) did not: %s.",
				(unsigned long long)d->ctx->config->spool_memory_max,
				(unsigned long long)br.bound, err[0] ? err : strerror(-rc));
		return -1;
	}
	if (rc == -ENOSPC || rc == -EDQUOT) {
		give_back(d);
		pd_resp_problem(d->r, 507, NULL,
				"The spool ran out of space for the zip bundle: %s.",
				err[0] ? err : strerror(-rc));
		return -1;
	}
	if (rc == -ESRCH) {
		give_back(d);
		pd_resp_problem(d->r, 409, NULL,
				"Process %d exited before its files could be bundled.", d->p.pid);
		return -1;
	}
	if (rc < 0) {
		give_back(d);
		pd_resp_problem(d->r, 500, NULL, "The zip bundle could not be written: %s.",
				err[0] ? err : strerror(-rc));
		return -1;
	}
	pd_req_log_note(d->r, "zip_bytes=%llu zip_bound=%llu modules=%u binaries=%u debug_files=%u",
			(unsigned long long)br.size, (unsigned long long)br.bound, br.modules,
			br.binaries, br.debug_files);
	return 0;
}

static void close_spools(struct dump_req *d)
{
	if (d->zip_fd >= 0)
		close(d->zip_fd);
	if (d->core_fd >= 0)
		close(d->core_fd);
	d->zip_fd = d->core_fd = -1;
}

/* What a kept spool must be asked for with: the process, the dump type
 * and the format. */
static struct pd_spool_key spool_key(const struct dump_req *d)
{
	return (struct pd_spool_key){
		.pid = d->p.pid,
		.start_time = d->p.stat.starttime,
		.kind = (uint64_t)d->type.content << 33 | (uint64_t)d->zip << 32 | d->type.bits,
	};
}

/* A download its client broke off: the spool is kept for a resume
 * (resume_timeout), else closed with the others. */
static void keep_spool(struct dump_req *d, int *fd)
{
	struct pd_spool_key key = spool_key(d);

	if (!d->etag[0] || pd_req_was_cut(d->r) || !d->ctx->config->resume_timeout)
		return;
	pd_req_log_note(d->r, "spool=kept");
	pd_spool_keep(*fd, d->etag, &key, (unsigned)d->ctx->config->resume_timeout,
		      (unsigned)d->ctx->max_dumps);
	*fd = -1;
}

/* The spool (the range a resume asks for, else all of it) but its last
 * byte; then the spool is closed and the slot given back, and only then
 * the last byte goes out: a client that has the whole file and asks for
 * the next dump finds the slot free and the spool's space back. */
static int send_spool(struct dump_req *d, int *fd)
{
	unsigned long long first = 0, last;
	const char *ctype = d->zip ? "application/zip" : "application/octet-stream";
	char last_byte, etag[PD_SPOOL_TOKEN_LEN + 3];
	struct stat st;
	bool part = false;
	int rc = 0;

	if (fstat(*fd, &st) < 0)
		return pd_resp_problem(d->r, 500, NULL, "Cannot read the spool: %s.",
				       strerror(errno));
	last = (unsigned long long)st.st_size - 1;
	if (d->resumed)
		rc = pd_req_range(d->r, (unsigned long long)st.st_size, &first, &last);
	if (rc == -ERANGE) {
		keep_spool(d, fd);
		return pd_resp_range_unsatisfiable(d->r, (unsigned long long)st.st_size);
	}
	part = rc == 1;
	if (st.st_size < 1 || pread(*fd, &last_byte, 1, (off_t)last) != 1)
		return pd_resp_problem(d->r, 500, NULL, "The spool cannot be read back.");
	if (!d->etag[0] && d->ctx->config->resume_timeout && pd_spool_token(d->etag) < 0)
		d->etag[0] = '\0';
	snprintf(etag, sizeof(etag), "\"%s\"", d->etag);
	rc = set_headers(d);
	if (!rc && d->etag[0])
		rc = pd_resp_header(d->r, "ETag", etag);
	if (!rc && d->etag[0])
		rc = pd_resp_header(d->r, "Accept-Ranges", "bytes");
	if (rc < 0)
		return pd_resp_problem(d->r, 500, NULL, "Out of memory.");
	if (rc == 0 && part) {
		pd_req_log_note(d->r, "range=%llu-%llu", first, last);
		rc = pd_resp_begin_range(d->r, ctype, first, last, (unsigned long long)st.st_size);
	} else {
		rc = pd_resp_begin(d->r, 200, ctype, (long long)st.st_size);
	}
	if (!rc)
		rc = pd_resp_write_fd(d->r, *fd, first, last - first);
	if (rc == -EPIPE)
		keep_spool(d, fd);
	close_spools(d);
	release_slot(d);
	if (!rc)
		rc = pd_resp_write(d->r, &last_byte, 1);
	if (rc == -EIO)
		pd_req_log_note(d->r, "spool_read_error");
	return rc;
}

/* GET with Range and If-Range naming a spool kept for this very dump:
 * the rest of it, without a new dump. 1 when answered, 0 when this is no
 * resume (or the spool is gone: RFC 9110 then wants the whole, new,
 * representation). */
static int resume(struct dump_req *d, int *rc)
{
	struct pd_spool_key key = spool_key(d);
	int fd, *spool;

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
		pd_resp_header(d->r, "Retry-After", RETRY_AFTER);
		*rc = pd_resp_problem(d->r, 429, NULL,
				      "%d dump(s) already running or downloading, the most this "
				      "server takes at once (max_dumps). Try again later.",
				      d->ctx->max_dumps);
		return 1;
	}
	d->resumed = true;
	d->when = time(NULL);
	pd_req_log_note(d->r, "resume=kept");
	spool = d->zip ? &d->zip_fd : &d->core_fd;
	*spool = fd;
	*rc = send_spool(d, spool);
	return 1;
}

/* A HEAD would stop the process for a body nobody reads: it gets the
 * headers a GET would start with, without a length or a dump. */
static int answer_head(struct dump_req *d)
{
	d->when = time(NULL);
	if (set_headers(d) < 0)
		return pd_resp_problem(d->r, 500, NULL, "Out of memory.");
	return pd_resp_begin(d->r, 200, d->zip ? "application/zip" : "application/octet-stream",
			     -1);
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
		dump_failed(d, 0);
		goto out;
	}
	if (pd_req_is_head(r)) {
		rc = answer_head(d);
		goto out;
	}
	d->slot = true;
	if (atomic_fetch_add(&d->ctx->dumps_running, 1) >= d->ctx->max_dumps) {
		release_slot(d);
		pd_req_log_note(r, "dump=busy");
		pd_resp_header(r, "Retry-After", RETRY_AFTER);
		rc = pd_resp_problem(
			r, 429, NULL,
			"%d dump(s) already running, the most this server takes at once "
			"(max_dumps). Try again later.",
			d->ctx->max_dumps);
		goto out;
	}
	d->when = time(NULL);
	pd_req_log_note(r, "dump_type=0x%x", d->type.bits);
	if (take_dump(d) == 0) {
		if (d->zip && !pd_req_client_gone(r) && make_zip(d) < 0)
			goto out;
		if (d->zip) {
			/* The core is in the zip: free its spool before sending. */
			close(d->core_fd);
			d->core_fd = -1;
		}
		if (!pd_req_client_gone(r))
			rc = send_spool(d, d->zip ? &d->zip_fd : &d->core_fd);
	}
out:
	close_spools(d);
	release_slot(d);
	pd_proc_close(&d->p);
	return rc;
}

int h_process_dump(struct pd_req *r)
{
	struct dump_req d = {.r = r, .ctx = pd_req_app(r), .core_fd = -1, .zip_fd = -1};

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
	struct dump_req d = {.r = r, .ctx = pd_req_app(r), .core_fd = -1, .zip_fd = -1};
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
