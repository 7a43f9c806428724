/* Running the dump helper (CONTRACT §3).
 *
 * The server and the CLI never ptrace: they run the procdiag binary itself
 * as a single-threaded helper,
 *
 *   procdiag dump-helper --pid PID --start-time TICKS --content MASK
 *                        --out-fd N --status-fd M [--deadline-ms MS]
 *                        [--mem-budget BYTES] [--scope all|UID,UID...]
 *                        [--out-max BYTES]
 *
 * with exactly those two fds inherited (lib/helper.h), read its status
 * lines, and reap it with waitpid on its pid only. The error kinds and
 * their words are lib/helper.h's. If the caller gives up (a client that went
 * away), the helper is SIGKILLed: it seized the target with PTRACE_SEIZE,
 * so the kernel resumes the target when the helper dies. */
#ifndef PD_DUMPRUN_H
#define PD_DUMPRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/helper.h"
#include "lib/proc.h"
#include "lib/scope.h"

struct pd_dumprun_opts {
	/* The binary to run; NULL: /proc/self/exe, the running binary's own
	 * inode whatever is now at its path. The server and the CLI always
	 * pass NULL; only the unit tests name another (a helper that fails). */
	const char *helper;
	pid_t pid;
	uint64_t start_time;  /* field 22 of /proc/PID/stat; 0: not checked */
	unsigned content;     /* PD_DC_* (lib/dumptype.h) */
	int out_fd;	      /* seekable; gets the core from offset 0 */
	unsigned deadline_ms; /* 0: the helper's default */
	uint64_t mem_budget;  /* 0: the helper's default */
	/* The scope the helper judges the stopped process by (--scope, lib/
	 * freeze.h); borrowed. NULL: none (the CLI: the kernel judges). */
	const struct pd_scope *scope;
	/* The most out_fd may hold (a memory spool's spool_memory_max): the
	 * helper's RLIMIT_FSIZE, so a core that would grow past it fails with
	 * PD_DUMP_NO_SPACE (EFBIG) before it does. 0: no limit. */
	uint64_t out_max;
	/* Called after each progress line and at least every tick_ms while
	 * the helper runs (done/total: the last progress, 0/0 before any).
	 * Nonzero aborts the dump. NULL: never abort. */
	int (*tick)(void *arg, uint64_t done, uint64_t total);
	void *arg;
	unsigned tick_ms; /* 0: 100 */
};

/* How the memory was copied and what it cost (CRIU's figures). The helper's
 * "done" event may carry each; absent ones get the defaults named here. */
struct pd_dump_figures {
	char method[8];	      /* "clone" or "stop" (absent: "stop") */
	char reason[200];     /* why no clone ran ("" when one did; absent: "") */
	uint64_t freezing_us; /* until every thread was stopped (absent: 0) */
	uint64_t frozen_us;   /* how long the target was stopped (absent:
				 stopped_us) */
	uint64_t copy_us;     /* copying memory (absent: 0) */
	uint64_t copied_bytes; /* bytes of memory read (absent: dumped_bytes) */
	uint64_t extra_memory; /* the target's extra memory during the dump,
				  bytes (absent: 0) */
	uint64_t zero_bytes;  /* pages of the kernel's zero page left as holes,
				 neither read nor written (absent: 0) */
	char zero_method[16]; /* how they were found: "pagemap_scan",
				 "move_pages" or "none" (absent: "none") */
};

struct pd_dumprun_result {
	enum pd_dump_error error;
	char code[24];	  /* the helper's code ("gone"), "" after done */
	char detail[256]; /* the helper's text, or what went wrong here */
	/* After "done": */
	uint64_t size;	     /* bytes of the core in out_fd */
	uint64_t stopped_us; /* how long the target was stopped */
	uint64_t dumped_bytes;
	uint64_t threads, mappings;
	struct pd_dump_figures fig;
	int wait_status; /* the helper's, from waitpid */
	/* The target's copy-on-write clone the helper announced ("clone"
	 * event), 0: none; reaped here should the helper die first. */
	pid_t clone_pid;
};

/* Runs one dump. Returns 0 when the helper reported a result (res->error
 * says which: PD_DUMP_OK, or its error with res->detail), or:
 *   -ECANCELED  tick asked to stop; the helper was killed and reaped
 *   -EPROTO     the helper ended without a final line, said something
 *               that is not the protocol, or its core is not the size it
 *               reported; res->detail says what
 *   -errno      it could not be started (pipe, posix_spawn)
 * The helper is always reaped before this returns. */
int pd_dump_run(const struct pd_dumprun_opts *o, struct pd_dumprun_result *res);

/* One status line (without its '\n'), parsed into res. Exposed for tests.
 * Returns PD_STATUS_PROGRESS (*done, *total set), PD_STATUS_FINAL (res
 * filled: done or error), PD_STATUS_OTHER (an event this build does not
 * know: ignored, so the helper may add some), or -EPROTO. */
enum { PD_STATUS_OTHER = 0, PD_STATUS_PROGRESS = 1, PD_STATUS_FINAL = 2 };
int pd_dumprun_parse_line(const char *line, size_t len, struct pd_dumprun_result *res,
			  uint64_t *done, uint64_t *total);

/* What the helper would refuse, seen from /proc without stopping anything:
 * PD_DUMP_ZOMBIE (every thread has exited; a leader that called
 * pthread_exit while other threads run is no zombie), PD_DUMP_KERNEL_THREAD,
 * PD_DUMP_GONE, or PD_DUMP_OK. */
enum pd_dump_error pd_dump_precheck(struct pd_proc *p);

#endif
