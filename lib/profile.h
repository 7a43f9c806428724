/* A CPU profile of a process: every thread's native stack sampled hz
 * times a second for some seconds, folded (lib/fold.h). No HTTP: the
 * profile helper (cli/profilehelper.c, run by lib/profilerun.h for the
 * server) and `procdiag profile` both call pd_profile_run.
 *
 * Two methods (docs/BENCHMARKS.md, "Profile", has the measurements that
 * chose the default):
 *  - PD_PROFILE_PERF (the default): one perf_event_open software event per
 *    thread (PERF_COUNT_SW_TASK_CLOCK, a period of 1/hz s of the thread's
 *    CPU time), each sample carrying the user registers and a copy of the
 *    top PD_PROFILE_STACK_COPY bytes of the user stack; unwound with
 *    libdwfl off that copy (lib/stacks.h, live sessions) while the target
 *    runs on: it is never stopped. Threads are per-CPU-time: one that
 *    sleeps is not sampled (an on-CPU profile, like `perf record -F hz`).
 *    Threads created during the profile are picked up within 1 s.
 *  - PD_PROFILE_PTRACE: lib/stacks.h's freeze and unwind (pd_stacks_collect)
 *    hz times a second; every thread, running or not, is one sample per
 *    tick (a wall-clock profile), and every tick stops the whole process.
 *
 * The answer (a new reference) is the speedscope file of lib/fold.h (root
 * frame: the thread's name, then outermost to innermost; a frame is its
 * symbol, else "[module file name]", else "[unknown]"), plus
 *   "procdiag": { "pid": N, "name": comm, "method": "perf"|"ptrace" (the
 *                 one used),
 *                 "seconds": N, "hz": N, "samples": N (= the weights' sum),
 *                 "threads": N (threads sampled at least once),
 *                 "unsampled_threads": N (perf: threads left out, their
 *                 ring beyond the locked-memory limit),
 *                 "lost": N (samples the kernel dropped: ring full),
 *                 "stopped_us": N (how long the process was stopped, all
 *                 ticks together: 0 with perf),
 *                 "elapsed_ms": N, "complete": bool,
 *                 "ended": null | "exited" | "exec" }
 * A process that exits during the profile ends it early: complete false,
 * ended "exited", the samples so far. perf: an exec in the process (the
 * ring's PERF_RECORD_COMM with PERF_RECORD_MISC_COMM_EXEC, in order with
 * that thread's samples) ends it too: nothing from the exec on is folded
 * (every ring's later records are dropped), no thread is opened after it,
 * and the scope is judged again (lib/scope.h: an exec of a setuid program
 * fails it, and the profile is refused as if the process had gone);
 * still in scope (or gone): complete false, ended "exec", the samples
 * from before the exec. A scan that finds the process out of scope ends
 * the profile the same way. */
#ifndef PD_PROFILE_H
#define PD_PROFILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/scope.h"

#define PD_PROFILE_SECONDS_MAX 60
#define PD_PROFILE_HZ_MAX      99
#define PD_PROFILE_STACK_COPY  16384 /* bytes of user stack per perf sample */
#define PD_PROFILE_MAX_FRAMES  128

/* AUTO: perf, or ptrace when the kernel refuses perf_event_open (no
 * CAP_PERFMON and a perf_event_paranoid above 2: Debian's default is 3). */
enum pd_profile_method { PD_PROFILE_AUTO = 0, PD_PROFILE_PERF, PD_PROFILE_PTRACE };

struct pd_profile_opts {
	unsigned seconds; /* 1..PD_PROFILE_SECONDS_MAX */
	unsigned hz;	  /* 1..PD_PROFILE_HZ_MAX */
	enum pd_profile_method method;
	/* Judged before the first sample and after the last (lib/scope.h);
	 * borrowed. NULL: none (the CLI). */
	const struct pd_scope *scope;
};

/* "auto" / "perf" / "ptrace", and back (-1 for another word). */
const char *pd_profile_method_name(enum pd_profile_method m);
int pd_profile_method_parse(const char *s);

/* Folds a stacks document of lib/stacks.h (pd_stacks_collect's) into f,
 * each thread one sample of the stack `thread name;outermost;...;innermost`
 * (frames as above; at most PD_PROFILE_MAX_FRAMES of the innermost ones).
 * The threads folded, or -ENOMEM. */
struct pd_fold;
int pd_profile_fold_stacks(struct pd_fold *f, const json_t *stacks_doc);

/* start_time: field 22 of stat, 0 = any. Errors (-errno, detail in err) as
 * lib/stacks.h's: -ESRCH gone before the first sample (or out of scope),
 * -EOWNERDEAD, -EOPNOTSUPP, -EPERM (perf_event_open or ptrace refused),
 * -EBUSY (ptrace: another tracer), -EINVAL bad options, -ENOMEM, -EIO. */
int pd_profile_run(pid_t pid, uint64_t start_time, const struct pd_profile_opts *o, json_t **out,
		   char *err, size_t errlen);

#endif
