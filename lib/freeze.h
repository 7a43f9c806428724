/* Freeze: stop every thread of a process with ptrace, read registers and
 * memory, resume it.
 *
 * Meant for a single-threaded process whose only job is this (procdiag's
 * dump helper; a stack unwinder), because ptrace stops are reported to the
 * tracing thread through waitpid(), which nobody else in the process may
 * call for these tids.
 *
 *   struct pd_freeze fz;
 *   rc = pd_freeze_open(&fz, pid, start_time, scope); // pin: pidfd + start time
 *   rc = pd_freeze_stop(&fz, deadline_ms);       // every thread stopped
 *   ... fz.threads[i].regs, pd_freeze_read(&fz, addr, buf, len) ...
 *   pd_freeze_thaw(&fz);                          // every thread runs again
 *   pd_freeze_close(&fz);                         // fds and memory
 *
 * How (and why):
 * - PTRACE_SEIZE + PTRACE_INTERRUPT, never PTRACE_ATTACH: ATTACH sends a
 *   SIGSTOP that outlives a tracer that dies; a seized tracee whose tracer
 *   dies (even SIGKILL) is detached by the kernel and runs on.
 * - All threads are seized first (no stop), then interrupted together, then
 *   waited for; /proc/PID/task is re-read until no new thread shows up (a
 *   stopped thread cannot clone, so the set is complete once a listing adds
 *   nothing).
 * - A thread that reports a signal-delivery-stop instead of the interrupt
 *   is stopped as well; its signal is re-injected by PTRACE_DETACH, so no
 *   signal is ever lost. A group-stopped process stays stopped.
 * - A thread exiting during the freeze is dropped; when none is left the
 *   process is gone (-ESRCH).
 * - A zombie thread-group leader (it called pthread_exit, the others run) is
 *   skipped: every /proc read and memory read goes through a live thread
 *   (fz.io_tid). A process whose threads are all dead is -EOWNERDEAD.
 * - Once every thread is stopped, and before a register or a byte of memory
 *   is read, the process is judged again: its start time, and the key's
 *   right to it (lib/scope.h, pd_scope_may_act) for every stopped thread.
 *   The scope was checked before (by whoever asked), but an exec of a
 *   setuid program in between keeps the pid and the start time and
 *   changes the owner; while every thread is stopped nothing can change
 *   the credentials or the dumpable flag any more, so this judgement holds
 *   for everything read afterwards. A process that fails it is thawed and
 *   answered -ESRCH, like one that is not there (out of scope looks like
 *   nonexistent), or -EPERM when the key still sees it (its effective uid
 *   is in scope) but may not read it (not dumpable, ids that differ).
 * - A thread that does not stop before the deadline (uninterruptible sleep,
 *   e.g. a vfork parent or NFS) makes pd_freeze_stop() thaw what it stopped
 *   and return -ETIMEDOUT. Such a thread stays *attached* (not stopped) until
 *   the calling process exits, because PTRACE_DETACH needs a stopped tracee;
 *   the kernel then detaches it and it runs on. Callers exit soon after.
 *
 * Errors (-errno):
 *   -ESRCH       no such process, start time differs, it exited, or it is
 *                no longer in the scope once stopped
 *   -EOWNERDEAD  a zombie (every thread has exited, not yet reaped)
 *   -EOPNOTSUPP  a kernel thread (no user memory)
 *   -EPERM       ptrace refused (no CAP_SYS_PTRACE, yama, an LSM), or the
 *                scope's rules refuse a process the key sees
 *   -EBUSY       another tracer holds a thread (a debugger, another dump)
 *   -ETIMEDOUT   a thread did not stop before the deadline
 *   -ENOMEM, -EINVAL, others: internal
 */
#ifndef PD_FREEZE_H
#define PD_FREEZE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "lib/scope.h"

struct pd_thread {
	pid_t tid;
	bool attached;	 /* seized by us (internal bookkeeping) */
	bool gone;	 /* exited or a zombie: not part of the result */
	bool stopped;	 /* in a ptrace stop now (regs valid) */
	int pending_sig; /* signal of a signal-delivery-stop, re-injected at thaw */
	bool have_siginfo;
	siginfo_t siginfo;		  /* PTRACE_GETSIGINFO, when pending_sig */
	struct user_regs_struct regs;	  /* NT_PRSTATUS */
	struct user_fpregs_struct fpregs; /* NT_FPREGSET */
	bool have_fpregs;
	void *xstate; /* NT_X86_XSTATE, malloc'd, or NULL */
	size_t xstate_size;
	/* Only where the thread uses them, as the kernel's core has them: */
	void *ioperm; /* NT_386_IOPERM after ioperm(2), malloc'd, or NULL */
	size_t ioperm_size;
	bool have_ssp; /* NT_X86_SHSTK: shadow stack on (Linux 6.6 on) */
	uint64_t ssp;
};

struct pd_freeze {
	pid_t pid;
	uint64_t start_time; /* field 22 of stat, as found */
	const struct pd_scope *scope; /* borrowed; NULL: no scope (the CLI) */
	int pidfd;	     /* pins the process; readable once it exited */
	int procfd;	     /* /proc/PID, O_DIRECTORY */
	pid_t io_tid;	     /* a live, stopped thread: used for /proc reads */
	int memfd;	     /* /proc/PID/task/IO_TID/mem, opened lazily */
	size_t n, alloc;     /* threads, sorted: leader first, then by tid */
	struct pd_thread *threads;
	uint64_t t_first_stop_ns; /* CLOCK_MONOTONIC at the first PTRACE_INTERRUPT */
	uint64_t t_all_stopped_ns; /* ... once every thread is stopped */
	uint64_t t_thawed_ns;	  /* ... after the last PTRACE_DETACH */
	bool frozen;
};

/* Opens the process: pidfd, /proc/PID; checks the start time (0: any),
 * refuses zombies and kernel threads. scope (borrowed until close; NULL:
 * none) is what pd_freeze_stop() judges the stopped process by. On
 * failure nothing is held. */
int pd_freeze_open(struct pd_freeze *fz, pid_t pid, uint64_t start_time,
		   const struct pd_scope *scope);

/* Stops every thread and reads its registers. deadline_ms bounds the wait
 * for threads to stop (0: 2000 ms). On failure every thread stopped so far is
 * resumed again. */
int pd_freeze_stop(struct pd_freeze *fz, unsigned deadline_ms);

/* Reads target memory while frozen (process_vm_readv, then /proc/PID/mem
 * for what only it can read). Returns how many bytes from addr on were
 * read (maybe fewer than len: the first unreadable byte ends it), or
 * -errno when not even the first byte could be read. */
ssize_t pd_freeze_read(struct pd_freeze *fz, uint64_t addr, void *buf, size_t len);

/* Has the process exited? (pidfd readable, or every thread we stopped has
 * died: a killed tracee waits for us to reap it, and this reaps it.) */
bool pd_freeze_gone(struct pd_freeze *fz);

/* Resumes every stopped thread (re-injecting held signals). Harmless when
 * nothing is stopped. */
void pd_freeze_thaw(struct pd_freeze *fz);

/* Microseconds from the first PTRACE_INTERRUPT to the last PTRACE_DETACH
 * (so far, if still frozen). */
uint64_t pd_freeze_stopped_us(const struct pd_freeze *fz);

/* Microseconds from the first PTRACE_INTERRUPT until every thread was
 * stopped (CRIU's "freezing time"). */
uint64_t pd_freeze_freezing_us(const struct pd_freeze *fz);

/* Thaws if needed, closes the fds, frees the threads. */
void pd_freeze_close(struct pd_freeze *fz);

#endif
