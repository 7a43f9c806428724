/* procdiag dump -p PID [--type Mini|Heap|Full|N] [--zip] [-o FILE]
 *
 * The same helper the server runs (lib/dumprun.h). The file appears only
 * when it is complete: it is written as an unnamed O_TMPFILE in the
 * output's directory and linked to its name at the end, so an interrupted
 * dump leaves nothing behind. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include "lib/dumprun.h"
#include "lib/dumptype.h"
#include "lib/proc.h"
#include "lib/snapshot.h"
#include "lib/spool.h"
#include "lib/bundle.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void dump_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag dump -p PID|-n NAME [--type Mini|Triage|Heap|Full|N] [--zip] [-o FILE]\n\n"
		"  -p, --process-id, --pid PID\n"
		"                   the process to dump\n"
		"  -n, --name NAME  the process named NAME (its comm); it must be the only one\n"
		"  -t, --type T     what the dump holds: a MINIDUMP_TYPE number (0 mini,\n"
		"                   1 +data segments, 0x200 +heap, 2 full; docs/DUMPS.md) or\n"
		"                   Mini, Triage, Heap (WithHeap), Full. Default: Mini.\n"
		"                   Numbers are MINIDUMP_TYPE bits, as Kudu's dumpType, not\n"
		"                   dotnet-monitor's DumpType (where 2 is Mini); the names\n"
		"                   mean the same dump everywhere\n"
		"  -z, --zip        a zip bundle: the core, the mapped binaries and their\n"
		"                   debug files, and a gdb script to open it elsewhere\n"
		"  -o, --output F   where to write (default ./core_YYYYMMDD_HHMMSS, UTC,\n"
		"                   plus .zip with --zip); an existing file is not replaced\n"
		"  -q, --quiet      no progress bar and no summary\n");
}

struct progress {
	bool bar;
	int last_pct;
};

static int tick(void *arg, uint64_t done, uint64_t total)
{
	struct progress *pg = arg;
	int pct, width = 30;

	if (interrupted)
		return 1;
	if (!pg->bar || total == 0)
		return 0;
	pct = done >= total ? 100 : (int)(done * 100 / total);
	if (pct == pg->last_pct)
		return 0;
	pg->last_pct = pct;
	fprintf(stderr, "\r[%-*.*s] %3d%% %8.1f / %.1f MiB", width, width * pct / 100,
		"##############################", pct, (double)done / 1048576.0,
		(double)total / 1048576.0);
	fflush(stderr);
	return 0;
}

static void end_bar(struct progress *pg)
{
	if (pg->bar && pg->last_pct >= 0) {
		fprintf(stderr, "\r%*s\r", 60, "");
		fflush(stderr);
	}
	pg->last_pct = -1;
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

static const char *error_text(const struct pd_dumprun_result *res, int rc)
{
	if (rc == -ECANCELED)
		return "interrupted; the process was resumed";
	if (res->detail[0])
		return res->detail;
	return strerror(rc < 0 ? -rc : EIO);
}

/* dotnet-dump collect -n: the one process with this name. 0, or the exit
 * status (1: none or several, listed on stderr). */
static int pid_by_name(const char *name, int *pid)
{
	struct pd_snapshot *snap = NULL;
	struct strbuf all = STRBUF_INIT;
	size_t n = 0, len = strlen(name);
	int rc = pd_snapshot_scan(&snap);

	if (rc < 0) {
		fprintf(stderr, "procdiag: cannot read /proc: %s\n", strerror(-rc));
		return 1;
	}
	for (size_t i = 0; i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];

		if (e->comm_len != len || memcmp(e->comm, name, len) || e->state == 'Z')
			continue;
		*pid = e->pid;
		strbuf_addf(&all, "%s%d", n++ ? ", " : "", e->pid);
	}
	pd_snapshot_unref(snap);
	rc = 0;
	if (n == 0) {
		fprintf(stderr, "procdiag: no process is named '%s'\n", name);
		rc = 1;
	} else if (n > 1) {
		fprintf(stderr, "procdiag: %zu processes are named '%s' (%s): choose one with -p\n",
			n, name, all.buf);
		rc = 1;
	}
	strbuf_release(&all);
	return rc;
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
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *pid_s = NULL, *type_s = NULL, *out = NULL, *name = NULL;
	bool zip = false, quiet = false, named = false;
	struct pd_dumptype type;
	struct pd_dumprun_result res;
	struct progress pg = {.last_pct = -1};
	struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
	struct pd_proc p;
	char defname[64], *dir = NULL;
	uint64_t estimate;
	uint32_t bad;
	int c, pid, rc, ret = 1, core_fd = -1, out_fd = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:n:t:zo:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pid_s = optarg; break;
		case 'n': name = optarg; break;
		case 't': type_s = optarg; break;
		case 'z': zip = true; break;
		case 'o': out = optarg; break;
		case 'q': quiet = true; break;
		case 'h': dump_usage(stdout); return 0;
		default: dump_usage(stderr); return 2;
		}
	}
	if (optind != argc || !pid_s == !name) {
		dump_usage(stderr);
		return 2;
	}
	rc = pd_dumptype_parse(type_s, &type, &bad);
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
		out = defname;
	}
	if (access(out, F_OK) == 0) {
		fprintf(stderr, "procdiag: %s exists; not replacing it\n", out);
		return 1;
	}
	if (type.ignored && !quiet) {
		char names[512];

		pd_dumpbits_names(type.ignored, names, sizeof(names));
		fprintf(stderr, "procdiag: ignoring dump type bits with no Linux meaning: %s\n",
			names);
	}
	rc = pd_proc_open(pid, &p);
	if (rc < 0) {
		fprintf(stderr, "procdiag: process %d: %s\n", pid,
			rc == -ESRCH ? "no such process" : strerror(-rc));
		return 1;
	}
	switch (pd_dump_precheck(&p)) {
	case PD_DUMP_OK: break;
	case PD_DUMP_KERNEL_THREAD:
		fprintf(stderr, "procdiag: process %d is a kernel thread: nothing to dump\n", pid);
		goto out;
	case PD_DUMP_ZOMBIE:
		fprintf(stderr, "procdiag: process %d is a zombie: nothing to dump\n", pid);
		goto out;
	default: fprintf(stderr, "procdiag: process %d: no such process\n", pid); goto out;
	}
	dir = dir_of(out);
	rc = dir ? pd_dump_estimate(&p, type.content, &estimate) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "procdiag: process %d: %s\n", pid, strerror(-rc));
		goto out;
	}
	/* A core inside a zip is only a step: memory when small, else an
	 * unnamed file beside the output. */
	if (zip)
		core_fd = pd_spool_open(dir, PD_SPOOL_MEMORY_MAX_DEFAULT, estimate, NULL);
	else
		core_fd = open_output(dir, out, estimate, &named);
	if (core_fd < 0) {
		fprintf(stderr, "procdiag: cannot write in %s: %s%s\n", dir, strerror(-core_fd),
			core_fd == -ENOSPC ? " (the dump needs about that much room)" : "");
		goto out;
	}

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	pg.bar = !quiet && isatty(STDERR_FILENO);
	struct pd_dumprun_opts o = {
		.pid = pid,
		.start_time = p.stat.starttime,
		.content = type.content,
		.out_fd = core_fd,
		.tick = tick,
		.arg = &pg,
	};
	rc = pd_dump_run(&o, &res);
	end_bar(&pg);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (rc < 0 || res.error != PD_DUMP_OK) {
		fprintf(stderr, "procdiag: dump of process %d failed%s%s: %s\n", pid,
			rc == 0 ? " " : "", rc == 0 ? pd_dump_error_code(res.error) : "",
			error_text(&res, rc));
		goto out;
	}
	out_fd = core_fd;
	if (zip) {
		char core_name[32], dtype[16], err[256] = "";
		struct pd_bundle_result br = {0};
		struct pd_bundle_opts bo = {
			.pid = pid,
			.start_time = p.stat.starttime,
			.core_fd = core_fd,
			.core_name = core_name,
			.dump_type = type.name ? type.name : dtype,
			.stopped_us = res.stopped_us,
		};

		snprintf(core_name, sizeof(core_name), "core.%d", pid);
		snprintf(dtype, sizeof(dtype), "0x%x", type.bits);
		out_fd = open_output(dir, out, res.size, &named);
		if (out_fd < 0) {
			fprintf(stderr, "procdiag: cannot write in %s: %s\n", dir,
				strerror(-out_fd));
			goto out;
		}
		if (!quiet)
			fprintf(stderr, "procdiag: bundling the binaries and debug files...\n");
		rc = pd_bundle_write(&bo, out_fd, &br, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "procdiag: the zip bundle failed: %s\n",
				err[0] ? err : strerror(-rc));
			goto out;
		}
	}
	if (!named) {
		rc = publish(out_fd, out);
		if (rc < 0) {
			fprintf(stderr, "procdiag: cannot create %s: %s\n", out, strerror(-rc));
			goto out;
		}
	} else if (fsync(out_fd) < 0) {
		fprintf(stderr, "procdiag: %s: %s\n", out, strerror(errno));
		goto out;
	}
	if (!quiet)
		fprintf(stderr,
			"procdiag: wrote %s: core of %llu bytes, %llu threads, %llu mappings; "
			"process %d was stopped for %.3f ms\n",
			out, (unsigned long long)res.size, (unsigned long long)res.threads,
			(unsigned long long)res.mappings, pid, (double)res.stopped_us / 1000.0);
	ret = 0;
out:
	if (ret != 0 && named)
		unlink(out); /* a half-written file that had to have a name */
	if (out_fd >= 0 && out_fd != core_fd)
		close(out_fd);
	if (core_fd >= 0)
		close(core_fd);
	free(dir);
	pd_proc_close(&p);
	return ret;
}
