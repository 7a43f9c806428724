/* One dump job: the whole pipeline of a dump, for every front end.
 *
 * `procdiag dump`, Kudu's /api/processes/N/dump and dotnet-monitor's /dump
 * all run this (docs/DUMPS.md, "One dump job"); they only turn their input
 * into pd_dumpjob_opts and present the pd_dumpjob_result. The job:
 *
 *   1. opens the process, checks it is the run asked for (start time) and
 *      that the helper would not refuse it (pd_dump_precheck);
 *   2. estimates the core and asks the caller for the core's file
 *      (open_out, PD_DUMPJOB_CORE): where it goes is the caller's choice
 *      (a spool, an unnamed file beside the CLI's output);
 *   3. runs the dump helper (lib/dumprun.h), progress phase COPY; a core
 *      that met its file's limit (a memory spool) is taken once more in a
 *      file opened for more than that limit;
 *   4. for PD_DUMP_FORMAT_ZIP: the bundle step (dumpjob_bundle), phases
 *      BUNDLE (choosing the binaries and debug files) and COMPRESS (the zip
 *      written, its core deflated on every CPU), into a second file asked
 *      of open_out (PD_DUMPJOB_ZIP); for PD_DUMP_FORMAT_ZSTD, phase
 *      COMPRESS: the core as one zstd stream (lib/zstdout.h) into a second
 *      file (PD_DUMPJOB_ZSTD). Either way the core's file is then closed;
 *      held in RAM (a memfd, tmpfs), it is punched behind the compressor
 *      as it is read (lib/spool.h, pd_spool_behind; docs/DUMPS.md, "Where
 *      the core waits"): the file open_out gives for PD_DUMPJOB_CORE under
 *      these formats must be a scratch file nobody keeps (a spool, an
 *      unnamed file).
 *
 * The job never leaves a file open behind it: on failure every fd it got
 * from open_out is closed; on success the final file is res->fd, which the
 * caller owns. The target runs again when this returns, on every path. */
#ifndef PD_DUMPJOB_H
#define PD_DUMPJOB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/bundle.h"
#include "lib/dumprun.h"
#include "lib/dumptype.h"
#include "lib/scope.h"

/* What the final file is (docs/DUMPS.md, "Compression"): a zip is
 * always deflate, so zstd is a format of its own, never a zip's. */
enum pd_dump_format {
	PD_DUMP_FORMAT_RAW,  /* the core as it is */
	PD_DUMP_FORMAT_ZIP,  /* the zip bundle (lib/bundle.h) */
	PD_DUMP_FORMAT_ZSTD, /* the core as one zstd stream (lib/zstdout.h) */
};

/* What the job is doing; the progress callback gets it. */
enum pd_dump_phase {
	PD_PHASE_PREPARE,  /* checks, estimate, the file opened */
	PD_PHASE_COPY,	   /* the helper copies memory: done/total bytes */
	PD_PHASE_BUNDLE,   /* choosing binaries and debug files: 0/0 */
	PD_PHASE_COMPRESS, /* writing the compressed file: done/total bytes of
			      the core read */
	PD_PHASE_DONE,
};

/* "prepare", "copy", "bundle", "compress", "done". */
const char *pd_dump_phase_name(enum pd_dump_phase ph);

/* The files the job asks for. */
enum pd_dumpjob_file {
	PD_DUMPJOB_CORE, /* the core (the final file of a raw dump) */
	PD_DUMPJOB_ZIP,	 /* the bundle (the final file of a zip dump) */
	PD_DUMPJOB_ZSTD, /* the zstd stream (the final file of a zstd dump) */
};

struct pd_dumpjob_opts {
	pid_t pid;
	uint64_t start_time; /* field 22 of /proc/PID/stat; 0: the run found first */
	struct pd_dumptype type;
	enum pd_dump_format format;
	unsigned deadline_ms; /* 0: the helper's default */
	uint64_t mem_budget;  /* 0: the helper's default */
	/* The scope the helper judges the stopped process by; borrowed. NULL:
	 * the kernel alone judges (the CLI). */
	const struct pd_scope *scope;
	/* Opens an empty, seekable, read-write file for about estimate bytes;
	 * returns its fd (the job owns it from then on) and sets *limit to the
	 * most it may hold (0: its file system bounds it), or -errno, which
	 * fails the job (res->rc, res->phase PREPARE or BUNDLE). Called again
	 * for the core, with an estimate past the first limit, when the core
	 * met that limit. Required. */
	int (*open_out)(void *arg, enum pd_dumpjob_file which, uint64_t estimate, uint64_t *limit);
	/* Called when a phase begins, after each progress of the helper, and
	 * at least every tick_ms while the helper runs. Nonzero cancels the
	 * job (PD_DUMP_CANCELLED). NULL: never cancelled. */
	int (*progress)(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total);
	void *arg;
	unsigned tick_ms;   /* 0: 100 */
	const char *helper; /* NULL: /proc/self/exe (tests name another) */
};

struct pd_dumpjob_result {
	enum pd_dump_error error;	/* PD_DUMP_OK, or what kind of failure */
	enum pd_dump_phase phase;	/* where it failed */
	int rc;				/* the -errno behind error (0: the helper's) */
	char detail[256];		/* a sentence, without the process's name */
	struct pd_dumprun_result dump;	/* the helper's figures and method */
	uint64_t estimate;		/* the estimate the core's file was asked for */
	uint64_t limit;			/* the last limit open_out gave */
	int fd;				/* after success: the final file (caller closes) */
	uint64_t size;			/* its bytes */
	char core_name[32];		/* "core.PID", the core's name inside a zip */
	struct pd_bundle_result bundle; /* a zip's figures */
};

/* Runs the job. Returns 0 with res->error PD_DUMP_OK and res->fd the final
 * file, or -1 with res->error, res->rc, res->phase and res->detail set and
 * no fd left open. */
int pd_dumpjob_run(const struct pd_dumpjob_opts *o, struct pd_dumpjob_result *res);

/* Step 4 alone, for a core the job did not take itself: the kernel's, which
 * the crash handler (lib/crashcap.h) read from its pipe. core_fd is the
 * finished core, core_size its length; the job owns core_fd from the call
 * on. o->pid and o->start_time name the process (still there: a zip reads
 * its /proc/PID/map_files), o->type and o->format say what to write, and
 * o->open_out is asked only for PD_DUMPJOB_ZIP or PD_DUMPJOB_ZSTD; a raw
 * format gives core_fd back as res->fd. figures (may be NULL) go into
 * res->dump.fig, for the zip's manifest. Returns as pd_dumpjob_run. */
int pd_dumpjob_finish(const struct pd_dumpjob_opts *o, int core_fd, uint64_t core_size,
		      const struct pd_dump_figures *figures, struct pd_dumpjob_result *res);

/* The result as JSON (`procdiag dump --json`; docs/DUMPS.md): ok, error,
 * phase, detail, method, method_reason, the figures, size, core_name. NULL
 * when out of memory. */
struct json_t;
struct json_t *pd_dumpjob_result_json(const struct pd_dumpjob_result *res);

/* The dump type as the manifest and the CLI name it: its name, or its
 * MINIDUMP_TYPE bits in hex. */
const char *pd_dumpjob_type_name(const struct pd_dumptype *t, char *buf, size_t size);

#endif
