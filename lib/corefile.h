/* The ELF core writer: freeze a process, decide what of its memory goes in
 * the core, lay the core out the way the kernel's fs/binfmt_elf.c does, copy
 * the memory while the target is stopped, resume it, write the file.
 *
 * Layout (all of it, and so the exact size, computed before a byte of data
 * is written):
 *   ELF header | PT_NOTE, PT_LOAD... | notes | pad to page | segment data
 *   [| one section header when there are more than 65534 segments: PN_XNUM]
 * One PT_LOAD per mapping in address order, never overlapping, page aligned,
 * p_filesz 0 for a mapping left out. A mapping of which only pieces are
 * dumped (a thread's stack from SP, pages around a PC) is split into several
 * PT_LOADs, each starting with the data it holds and ending with p_memsz >
 * p_filesz, as the kernel does for the first page of an ELF mapping.
 * Notes in the kernel's order (fs/binfmt_elf.c): the first thread's
 * NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE, its other regsets,
 * then for each other thread NT_PRSTATUS and its other regsets; on Linux
 * 6.12 and later NT_X86_XSAVE_LAYOUT last. A thread's other regsets are
 * NT_FPREGSET, NT_386_IOPERM (after ioperm(2)), NT_X86_XSTATE (sized as
 * this CPU's xsave area), NT_X86_SHSTK (shadow stack on): each exactly
 * where the kernel's own core has it. The first thread is the thread-group
 * leader (or the first live thread).
 * docs/DUMPS.md ("Engine") says what each content bit puts in the core. */
#ifndef PD_COREFILE_H
#define PD_COREFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The content bits (PD_DC_*) are lib/dumptype.h's; mini (0) is always in. */
#include "lib/dumptype.h"
#include "lib/scope.h"

struct pd_core_opts {
	pid_t pid;
	uint64_t start_time;	       /* field 22 of stat; 0: do not check */
	unsigned content;	       /* PD_DC_* bits */
	unsigned deadline_ms;	       /* for every thread to stop; 0: 2000 */
	uint64_t mem_budget;	       /* copy into RAM up to this many bytes while
					  stopped; 0: half of MemAvailable */
	int out_fd;		       /* seekable; receives the core from offset 0 */
	bool trace;		       /* one line per phase and its time on stderr */
	const struct pd_scope *scope;  /* judged once stopped (lib/freeze.h); NULL: none */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	/* Called with the clone's pid once it exists, before the target is
	 * thawed (the helper tells its caller, who reaps it should the
	 * helper die: lib/cowclone.h), and with 0 before it is killed. */
	void (*cloned)(void *arg, pid_t clone_pid);
	/* Set (from a signal handler) to give up: checked after the copy. */
	volatile int *cancel;
};

struct pd_core_result {
	uint64_t size;	       /* bytes of the core file */
	uint64_t stopped_us;   /* first PTRACE_INTERRUPT .. last PTRACE_DETACH */
	uint64_t dumped_bytes; /* bytes of memory written (holes not counted) */
	uint64_t copied_bytes; /* bytes of memory read from the target */
	unsigned threads, mappings, segments;
	bool in_ram;	   /* copied into memory, written after the thaw */
	/* How memory was copied (docs/DUMPS.md, "Copy-on-write clone"):
	 * from a copy-on-write clone of the target, thawed at once, or
	 * while the target stayed stopped, and why (reason "" for clone). */
	bool cloned;
	char reason[200];
	uint64_t freezing_us;  /* first interrupt .. every thread stopped */
	uint64_t copy_us;      /* reading the memory (and writing it) */
	uint64_t extra_memory; /* bytes the target's writes cost meanwhile */
	uint64_t frozen_bytes; /* read from the target itself while frozen
				  (MADV_DONTFORK, MADV_WIPEONFORK mappings) */
	bool write_failed;     /* the error came from writing out_fd */
	uint64_t zero_bytes;	 /* bytes of the kernel's zero page left as holes */
	const char *zero_method; /* how they were found (pd_zero_method_name()) */
};

/* Dumps o->pid into o->out_fd. 0, or -errno with a human text in err:
 *   the errors of pd_freeze_open()/pd_freeze_stop() (lib/freeze.h),
 *   -ESRCH also when the process exits during the dump,
 *   res->write_failed with -ENOSPC/-EDQUOT/-EFBIG/-EIO... from out_fd.
 * The target runs again when this returns, on every path. */
int pd_core_dump(const struct pd_core_opts *o, struct pd_core_result *res, char *err,
		 size_t errlen);

#endif
