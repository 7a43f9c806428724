/* Native stacks of every thread of a process, unwound with elfutils libdwfl
 * over procdiag's own freeze (lib/freeze.h: PTRACE_SEIZE, never elfutils'
 * PTRACE_ATTACH).
 *
 * Like the freeze, this is meant for a single-threaded process: the stacks
 * helper (`procdiag stacks-helper`, cli/stackshelper.c) or the CLI.
 *
 *   struct pd_stacks_cache *c = pd_stacks_cache_new();
 *   json_t *doc;
 *   rc = pd_stacks_collect(c, pid, start_time, &opts, &doc, err, sizeof(err));
 *   ... (again: served from the cache while the mappings are unchanged)
 *   pd_stacks_cache_free(c);
 *
 * What one request does:
 *  1. reads /proc/PID/maps; the file-backed mappings (path, dev, inode,
 *     offset, range) are hashed. A Dwfl kept for this (pid, start time) with
 *     the same hash is reused as it is: modules, their ELF handles, CFI,
 *     sorted symbol tables and DWARF line tables stay loaded. Otherwise a new
 *     Dwfl is reported from the maps, its ELF files taken from a cache of
 *     Elf handles shared between processes (keyed by file identity: dev,
 *     inode, size, mtime; elf_begin on the cached handle only bumps its
 *     reference count).
 *  2. loads every module's ELF and .eh_frame index BEFORE the freeze;
 *  3. freezes (pd_freeze_stop), unwinds every thread through a
 *     Dwfl_Thread_Callbacks over the freeze (registers from the freeze in
 *     DWARF order, memory through pd_freeze_read with a small page cache),
 *     recording only pcs; thaws;
 *  4. symbolizes after the thaw: module, build-id, symbol+offset, and source
 *     file:line where debug info exists (separate debug files from the
 *     standard debuginfo path, /usr/lib/debug, by build-id or debuglink).
 *     A return address is looked up at pc-1 (like eu-stack), so a call that
 *     is the last instruction of a function is attributed to it.
 * So the target is stopped only for step 3.
 *
 * The document (jansson, a new reference):
 *   { "id": PID, "name": comm, "stopped_us": N, "elapsed_us": N,
 *     "modules": N, "cached_modules": N, "process_cached": bool,
 *     "threads": [ { "id": TID, "name": comm, "state": "S" (stat letter,
 *                    read just before the freeze),
 *                    "frames": [ { "pc": "0x7f..", "module": path|null,
 *                                  "build_id": hex|null, "symbol": s|null,
 *                                  "offset": pc - symbol start | null,
 *                                  "file": s|null, "line": N|null } ],
 *                    "error": "why unwinding stopped early" (only then) } ] }
 * Threads are in the freeze's order (leader first, then by tid). Strings are
 * the raw bytes with invalid UTF-8 escaped as common/utf8.h says.
 * cached_modules counts the modules whose ELF was already loaded (all of them
 * when the Dwfl was reused, process_cached true).
 *
 * Errors (-errno), with a human detail in err:
 *   -ESRCH (gone), -EOWNERDEAD (zombie), -EOPNOTSUPP (kernel thread),
 *   -EPERM (ptrace refused), -EBUSY (another tracer), -EAGAIN (its maps
 *   changed while the unwinder was being set up: an exec), -ETIMEDOUT (a thread did not stop), -ENOMEM,
 *   -EIO (libdwfl failed). */
#ifndef PD_STACKS_H
#define PD_STACKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/scope.h"

struct pd_stacks_cache;

struct pd_stacks_opts {
	unsigned deadline_ms; /* for threads to stop; 0: the freeze's default */
	unsigned max_frames;  /* per thread; 0: 256 (eu-stack's default) */
	bool no_source;       /* skip file:line (no DWARF loading) */
	/* Judged once stopped (lib/freeze.h); borrowed. NULL: none (the CLI). */
	const struct pd_scope *scope;
};

/* NULL on allocation failure. */
struct pd_stacks_cache *pd_stacks_cache_new(void);
void pd_stacks_cache_free(struct pd_stacks_cache *c);

/* start_time: field 22 of /proc/PID/stat, 0 = any. opts may be NULL. */
int pd_stacks_collect(struct pd_stacks_cache *c, pid_t pid, uint64_t start_time,
		      const struct pd_stacks_opts *opts, json_t **out, char *err, size_t errlen);

/* ---- Live sessions: stacks the kernel copied, the process never stopped.
 * lib/profile.c samples with perf_event_open (PERF_SAMPLE_REGS_USER +
 * PERF_SAMPLE_STACK_USER) and unwinds each sample here, with the same
 * modules, ELF cache, CFI and symbol memo as pd_stacks_collect. The
 * session's modules are those mapped when it opened (a library loaded
 * later has no symbols: its frames are unnamed). */
struct pd_stacks_live;

/* One sample of one thread. */
struct pd_stack_copy {
	pid_t tid;
	/* x86_64 DWARF order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip */
	uint64_t regs[17];
	uint64_t sp;	   /* the address stack[0] was copied from */
	const void *stack; /* borrowed for the call */
	size_t stack_len;
};

/* Errors as pd_stacks_collect's (no freeze: -ESRCH, -EAGAIN, -EIO...). */
int pd_stacks_live_open(struct pd_stacks_cache *c, pid_t pid, uint64_t start_time,
			struct pd_stacks_live **out, char *err, size_t errlen);
void pd_stacks_live_close(struct pd_stacks_live *l);
/* The pcs of s, innermost first (at most max), and whether each is exact
 * (the sampled pc, a signal frame) rather than a return address. The
 * number of frames: 0 when not even the first could be read. */
size_t pd_stacks_live_unwind(struct pd_stacks_live *l, const struct pd_stack_copy *s,
			     uint64_t *pcs, bool *exact, size_t max);
/* The symbol and module path of a frame (NULL: unknown; "[vdso]"); the
 * strings live as long as the session. */
void pd_stacks_live_symbol(struct pd_stacks_live *l, uint64_t pc, bool exact, const char **sym,
			   const char **module);

/* The document as eu-stack-like text:
 *   PID 123 - process (name)
 *   TID 123: name (S)
 *   #0  0x00007f0c1a2e7a3f clock_nanosleep+0x3f - /usr/lib/x86_64-linux-gnu/libc.so.6
 *       ./time/../sysdeps/unix/sysv/linux/clock_nanosleep.c:48
 * state_name maps the state letter to a word (NULL: the letter itself).
 * 0 or -ENOMEM. */
struct strbuf;
int pd_stacks_text(const json_t *doc, const char *(*state_name)(char), struct strbuf *out);

#endif
