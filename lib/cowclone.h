/* Copy-on-write clone: a frozen process's whole address space, kept as it
 * was at one instant by a child the process itself forks, so that the
 * process can run on while its memory is copied (docs/DUMPS.md, "Copy-on-
 * write clone").
 *
 *   pd_cow_precheck(&fz, anon, why, len)  before the freeze: arch, seccomp
 *                                          mode, cgroup headroom
 *   ... pd_freeze_stop(&fz) ...
 *   pd_cow_clone(&fz, &cow, why, len)      frozen: one thread runs clone(2)
 *   pd_freeze_thaw(&fz)                    the target runs on
 *   ... read cow.pid's memory (process_vm_readv, cow.memfd) ...
 *   pd_cow_release(&cow, &fz)             kill it, reap it through the target
 *
 * How: one stopped thread of the target gets its registers pointed at a
 * `syscall` instruction the process already maps (the vDSO, else any
 * executable mapping: the bytes 0f 05 anywhere are that instruction), with
 * clone(flags 0, exit signal 0) in its registers, and runs exactly that
 * instruction under PTRACE_SYSCALL; PTRACE_O_TRACECLONE makes the kernel
 * attach the child to us, stopped before its first user instruction. The
 * thread is then brought into an interrupt stop again (PTRACE_INTERRUPT,
 * PTRACE_CONT out of the clone event: it traps in the kernel's signal path
 * on its way out of the call) and its registers are put back exactly. So
 * the system call it was stopped in is restarted by the kernel itself when
 * it runs again, as it would have been without us (-ERESTARTSYS and the
 * others, restart_syscall, a sigsuspend's mask), where CRIU's compel
 * rewinds rax/rip by hand for its parasite calls. The injected call starts
 * with orig_rax -1, so that the way there restarts nothing.
 *
 * The clone's real parent is the target, and with exit signal 0 the kernel
 * never reaps it on its own: once killed it stays a zombie under the target
 * until the target waits for it. So pd_cow_release() interrupts one thread
 * of the target once more, for one injected wait4(CLONE, NULL, __WALL |
 * WNOHANG), and puts it back the same way. pd_cow_reap() does only that,
 * for a clone whose helper died before it could (lib/dumprun.c).
 *
 * Errors (-errno, with a reason in why): -EOPNOTSUPP not on this
 * architecture / no syscall instruction found, -EPERM a seccomp filter
 * would not let clone through, -ENOSPC too little cgroup headroom (memory
 * or pids), the clone's own -errno (-EAGAIN, -ENOMEM, ...) when it failed.
 * Each of them means: stop and copy as before. */
#ifndef PD_COWCLONE_H
#define PD_COWCLONE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/freeze.h"

struct pd_cow {
	pid_t pid;   /* the clone; 0: none */
	int procfd;  /* /proc/PID of the clone */
	int memfd;   /* /proc/PID/mem of the clone */
	pid_t via;   /* the target's thread that ran clone(2) */
	uint64_t ip; /* the syscall instruction it ran */
};
#define PD_COW_INIT                                                                                \
	{                                                                                          \
		0, -1, -1, 0, 0                                                                    \
	}

/* Before the freeze: can a clone be tried? anon is what the target could
 * make the clone cost (its anonymous resident bytes). */
int pd_cow_precheck(struct pd_freeze *fz, uint64_t anon, char *why, size_t len);

/* Every thread of fz stopped, registers read: makes the clone. On failure
 * c->pid may still name a clone made before the failure: pd_cow_release()
 * it after the thaw, as after success. */
int pd_cow_clone(struct pd_freeze *fz, struct pd_cow *c, char *why, size_t len);

/* The clone's private memory now: what the target's writes since the clone
 * cost (bytes; 0 when it cannot be read). */
uint64_t pd_cow_extra(const struct pd_cow *c);

/* Kills the clone and reaps it, through the target (fz open, thawed). Safe
 * to call with no clone. 0, or -errno when the target could not be made to
 * reap it (it exited: nothing is left then either). */
int pd_cow_release(struct pd_cow *c, struct pd_freeze *fz);

/* Reaps the dead clone clone_pid of target (start_time: 0 any), waiting up
 * to a second for it to die; for a caller whose helper was killed. */
int pd_cow_reap(pid_t target, uint64_t start_time, pid_t clone_pid);

#endif
