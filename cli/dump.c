/* procdiag dump -p PID [--type Mini|Heap|Full|N] [--zip|--zstd] [-o FILE] [--json]
 *
 * The same dump job the server runs (lib/dumpjob.h): this file parses the
 * command line into its options and presents its result. The file appears only
 * when it is complete: it is written as an unnamed O_TMPFILE in the
 * output's directory and linked to its name at the end, so an interrupted
 * dump leaves nothing behind. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "handlers/conffile.h"
#include "lib/dumpjob.h"
#include "lib/dumptype.h"
#include "lib/proc.h"
#include "lib/snapshot.h"
#include "lib/spool.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void dump_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag dump -p PID|-n NAME [--type Mini|Triage|Heap|Full|N]\n"
		"                     [--zip|--zstd] [-o FILE] [--json]\n\n"
		"  -p, --process-id, --pid PID\n"
		"                   the process to dump\n"
		"  -n, --name NAME  the process named NAME (as `procdiag ps` names it, any\n"
		"                   case); it must be the only one\n"
		"  -t, --type T     what the dump holds: a MINIDUMP_TYPE number (0 mini,\n"
		"                   1 +data segments, 0x200 +heap, 2 full; docs/DUMPS.md) or\n"
		"                   Mini, Triage, Heap (WithHeap), Full. Default: Mini.\n"
		"                   Numbers are MINIDUMP_TYPE bits, as Kudu's dumpType, not\n"
		"                   dotnet-monitor's DumpType (where 2 is Mini); the names\n"
		"                   mean the same dump everywhere\n"
		"  -z, --zip        a zip bundle: the core, the mapped binaries and their\n"
		"                   debug files, and a gdb script to open it elsewhere\n"
		"      --zstd       the core as one zstd stream, compressed on every CPU\n"
		"                   (`zstd -d` gives the core back); not with --zip\n"
		"  -o, --output F   where to write (default ./core_YYYYMMDD_HHMMSS, UTC,\n"
		"                   plus .zip with --zip, .zst with --zstd); an existing\n"
		"                   file is not replaced\n"
		"  -q, --quiet      no progress bar and no summary\n"
		"      --json       the result as one JSON object on stdout (how the memory\n"
		"                   was copied, the figures, the file; docs/DUMPS.md)\n");
}

/* The command's state, the job's callbacks' argument. */
struct cli_dump {
	const char *out, *dir;
	bool compressed, named; /* the core is a step: a zip or zstd follows */
	bool bar;
	int last_pct;
	enum pd_dump_phase last_phase;
};

static void draw_bar(struct cli_dump *c, enum pd_dump_phase ph, uint64_t done, uint64_t total)
{
	int pct, width = 30;

	pct = total == 0 ? 0 : done >= total ? 100 : (int)(done * 100 / total);
	if (pct == c->last_pct && ph == c->last_phase)
		return;
	c->last_pct = pct;
	c->last_phase = ph;
	if (total == 0) {
		fprintf(stderr, "\r%-60s\r%s...", "", pd_dump_phase_name(ph));
	} else {
		fprintf(stderr, "\r%-8s [%-*.*s] %3d%% %8.1f / %.1f MiB", pd_dump_phase_name(ph),
			width, width * pct / 100, "##############################", pct,
			(double)done / 1048576.0, (double)total / 1048576.0);
	}
	fflush(stderr);
}

/* The job's progress: the bar through every phase (copy, bundle,
 * compress), and the cancel on SIGINT/SIGTERM. */
static int progress(void *arg, enum pd_dump_phase ph, uint64_t done, uint64_t total)
{
	struct cli_dump *c = arg;

	if (interrupted)
		return 1;
	if (c->bar && ph != PD_PHASE_PREPARE && ph != PD_PHASE_DONE)
		draw_bar(c, ph, done, total);
	return 0;
}

static void end_bar(struct cli_dump *c)
{
	if (c->bar && c->last_pct >= 0) {
		fprintf(stderr, "\r%*s\r", 70, "");
		fflush(stderr);
	}
	c->last_pct = -1;
}

/* The directory part of path ("." when there is none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	d = strndup(path, (size_t)(slash - path));
	return d;
}

/* An unnamed file in dir for the final output; *named is set when the file
 * system has no O_TMPFILE and the file had to be created under its name. */
static int open_output(const char *dir, const char *path, uint64_t estimate, bool *named)
{
	int fd = pd_spool_open(dir, 0, estimate, NULL);

	*named = false;
	if (fd != -EOPNOTSUPP)
		return fd;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	*named = true;
	return fd;
}

/* Gives the unnamed file its name; EEXIST when something took it meanwhile. */
static int publish(int fd, const char *path)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	return 0;
}

/* The job's files: the final one beside the output, unnamed until it is
 * complete; a core that is only a step towards a zip or a zstd stream in
 * memory when small, else an unnamed file beside the output. */
static int open_out(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit)
{
	struct cli_dump *c = arg;

	*limit = 0;
	if (which == PD_DUMPJOB_CORE && c->compressed)
		return pd_spool_open(c->dir, PD_SPOOL_MEMORY_MAX_DEFAULT, estimate, NULL);
	return open_output(c->dir, c->out, estimate, &c->named);
}

/* dotnet-dump collect -n: the one process with this name (the rule of
 * lib/snapshot.h). 0, or the exit status (1: none or several, listed on
 * stderr). */
static int pid_by_name(const char *name, int *pid)
{
	struct pd_snapshot *snap = NULL;
	struct strbuf all = STRBUF_INIT, scratch = STRBUF_INIT;
	size_t n = 0;
	int rc = pd_snapshot_scan(&snap);

	if (rc < 0) {
		fprintf(stderr, "procdiag: cannot read /proc: %s\n", strerror(-rc));
		return 1;
	}
	for (size_t i = 0; rc >= 0 && i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];

		rc = pd_entry_named(e, name, &scratch);
		if (rc <= 0)
			continue;
		*pid = e->pid;
		strbuf_addf(&all, "%s%d", n++ ? ", " : "", e->pid);
	}
	pd_snapshot_unref(snap);
	strbuf_release(&scratch);
	if (rc < 0 || all.failed) {
		fprintf(stderr, "procdiag: out of memory\n");
		rc = 1;
	} else if (n == 0) {
		fprintf(stderr, "procdiag: no process is named '%s'\n", name);
		rc = 1;
	} else if (n > 1) {
		fprintf(stderr, "procdiag: %zu processes are named '%s' (%s): choose one with -p\n",
			n, name, all.buf);
		rc = 1;
	} else {
		rc = 0;
	}
	strbuf_release(&all);
	return rc;
}

/* The job's failure, as the CLI says it. */
static void say_failure(int pid, const struct pd_dumpjob_result *res)
{
	switch (res->error) {
	case PD_DUMP_CANCELLED:
		fprintf(stderr, "procdiag: dump of process %d interrupted; the process was resumed\n",
			pid);
		break;
	case PD_DUMP_KERNEL_THREAD:
		fprintf(stderr, "procdiag: process %d is a kernel thread: nothing to dump\n", pid);
		break;
	case PD_DUMP_ZOMBIE:
		fprintf(stderr, "procdiag: process %d is a zombie: nothing to dump\n", pid);
		break;
	default:
		fprintf(stderr, "procdiag: dump of process %d failed (%s, %s): %s%s\n", pid,
			pd_dump_error_code(res->error), pd_dump_phase_name(res->phase),
			res->detail,
			res->rc == -ENOSPC && res->phase == PD_PHASE_PREPARE
				? " (the dump needs about that much room)"
				: "");
		break;
	}
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"process-id", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'},
		{"type", required_argument, NULL, 't'},
		{"zip", no_argument, NULL, 'z'},
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, 'j'},
		{"zstd", no_argument, NULL, 'Z'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *pid_s = NULL, *type_s = NULL, *out = NULL, *name = NULL;
	bool zip = false, zstd = false, quiet = false, json = false;
	struct pd_dumpjob_opts jo = {0};
	struct pd_dumpjob_result res;
	struct cli_dump cd = {.last_pct = -1};
	struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
	char defname[64], *dir = NULL;
	uint32_t bad;
	int c, pid, rc, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:n:t:zo:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pid_s = optarg; break;
		case 'n': name = optarg; break;
		case 't': type_s = optarg; break;
		case 'z': zip = true; break;
		case 'o': out = optarg; break;
		case 'q': quiet = true; break;
		case 'j': json = true; break;
		case 'Z': zstd = true; break;
		case 'h': dump_usage(stdout); return 0;
		default: dump_usage(stderr); return 2;
		}
	}
	if (optind != argc || !pid_s == !name) {
		dump_usage(stderr);
		return 2;
	}
	if (zip && zstd) {
		fprintf(stderr, "procdiag: --zstd compresses the core alone; a --zip is deflated "
				"(docs/DUMPS.md, \"Compression\"): choose one\n");
		return 2;
	}
	rc = pd_dumptype_parse(type_s, &jo.type, &bad);
	if (rc == -ERANGE) {
		fprintf(stderr, "procdiag: --type %s has bits no MINIDUMP_TYPE defines (0x%x)\n",
			type_s, bad);
		return 2;
	}
	if (rc < 0) {
		fprintf(stderr,
			"procdiag: --type must be a MINIDUMP_TYPE number or one of Mini, "
			"Triage, Heap, WithHeap, Full, not '%s'\n",
			type_s);
		return 2;
	}
	if (name) {
		rc = pid_by_name(name, &pid);
		if (rc)
			return rc;
	} else if (parse_pid(pid_s, strlen(pid_s), &pid) < 0 || pid == 0) {
		fprintf(stderr, "procdiag: --pid must be a process id, not '%s'\n", pid_s);
		return 2;
	}
	if (!out) {
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(defname, sizeof(defname), "core_%Y%m%d_%H%M%S", &tm);
		if (zip)
			strcat(defname, ".zip");
		else if (zstd)
			strcat(defname, ".zst");
		out = defname;
	}
	if (access(out, F_OK) == 0) {
		fprintf(stderr, "procdiag: %s exists; not replacing it\n", out);
		return 1;
	}
	if (jo.type.ignored && !quiet) {
		char names[512];

		pd_dumpbits_names(jo.type.ignored, names, sizeof(names));
		fprintf(stderr, "procdiag: ignoring dump type bits with no Linux meaning: %s\n",
			names);
	}
	dir = dir_of(out);
	if (!dir) {
		fprintf(stderr, "procdiag: out of memory\n");
		return 1;
	}
	cd.out = out;
	cd.dir = dir;
	cd.compressed = zip || zstd;
	cd.bar = !quiet && isatty(STDERR_FILENO);
	jo.pid = pid;
	jo.format = zip ? PD_DUMP_FORMAT_ZIP : zstd ? PD_DUMP_FORMAT_ZSTD : PD_DUMP_FORMAT_RAW;
	jo.open_out = open_out;
	jo.progress = progress;
	jo.arg = &cd;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = pd_dumpjob_run(&jo, &res);
	end_bar(&cd);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (rc < 0) {
		say_failure(pid, &res);
		goto out;
	}
	if (!cd.named) {
		rc = publish(res.fd, out);
		if (rc < 0) {
			fprintf(stderr, "procdiag: cannot create %s: %s\n", out, strerror(-rc));
			goto out;
		}
	} else if (fsync(res.fd) < 0) {
		fprintf(stderr, "procdiag: %s: %s\n", out, strerror(errno));
		goto out;
	}
	if (!quiet) {
		const struct pd_dumprun_result *d = &res.dump;

		fprintf(stderr,
			"procdiag: wrote %s: core of %llu bytes, %llu threads, %llu mappings; "
			"process %d was stopped for %.3f ms (method %s%s%s, %llu bytes copied)\n",
			out, (unsigned long long)d->size, (unsigned long long)d->threads,
			(unsigned long long)d->mappings, pid, (double)d->stopped_us / 1000.0,
			d->fig.method, d->fig.reason[0] ? ": " : "", d->fig.reason,
			(unsigned long long)d->fig.copied_bytes);
	}
	if (json) {
		json_t *o = pd_dumpjob_result_json(&res);
		char *text;

		if (o)
			json_object_set_new(o, "file", json_string(out));
		text = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
			free(text);
			fprintf(stderr, "procdiag: cannot write the JSON result\n");
			goto out;
		}
		free(text);
	}
	ret = 0;
out:
	if (ret != 0 && cd.named)
		unlink(out); /* a half-written file that had to have a name */
	if (res.fd >= 0)
		close(res.fd);
	free(dir);
	return ret;
}
