/* The rule engine: one sampler thread of `procdiag serve` that evaluates
 * the configured rules (lib/rules.h) against the processes in scope and
 * fires their actions (docs/RULES.md, "How the engine samples").
 *
 * Every interval_ms the sampler makes one pass over /proc: for each process
 * in scope (the owner of /proc/PID, as the routes judge; never procdiag or
 * its helpers, never a kernel thread) it reads /proc/PID/stat (CPU ticks,
 * RSS, threads, comm, start time; /proc/PID and its stat are kept open per
 * process run: an fstat and a pread a pass), counts its fds only when a
 * rule that matches it has fds_above, reads its cgroup only for the cgroup
 * triggers and filters (once per run, after an exec and every 5 s), and
 * reads its filter facts (exe, command line) once per process run: cached
 * by (pid, start time), again when comm changes (an exec). Per (rule, process) it keeps since when the condition
 * holds; a rule fires for a process when its condition has held for `for`
 * (one sample when 0). CPU % is the tick delta over the elapsed time
 * between two samples, of one core (a process may use several: 250 %) or
 * of the machine (divided by the online CPUs); a process seen for the
 * first time has no CPU value until its second sample.
 *
 * Limits, in this order, when a condition has held long enough:
 *   - count: a rule that fired count times is exhausted (0: never);
 *   - interval: a rule fires again only interval after its last firing
 *     (cooling down), for whichever process;
 *   - one action per process at a time (any rule's);
 *   - max_actions actions at once, host-wide.
 * A firing held back by the last two waits: the condition is judged again
 * at the next sample. Each firing counts toward count whatever its action's
 * result (stored, failed, or skipped for the store's quota).
 *
 * The action runs on one of max_actions worker threads (the sampler goes
 * on sampling) through the act callback: lib/ruleaction.h writes it into
 * the store.
 * Memory: tables grow to the number of processes and are reused; a tick
 * allocates nothing once they have grown (the buffers are strbufs kept
 * across ticks). */
#ifndef PD_RULEENGINE_H
#define PD_RULEENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/rules.h"
#include "lib/scope.h"

/* One firing: what the action is asked to do. */
struct pd_rule_firing {
	const struct pd_rule *rule;
	int pid;
	uint64_t start_time; /* field 22 of its stat: the run it is */
	char comm[64]; /* comm as /proc/PID/stat gives it */
	/* The owner of /proc/PID when it fired (lib/scope.h): the store
	 * entry's uid (docs/STORE.md, "Scope"), not the pid's owner later. */
	bool uid_known;
	uid_t uid;
	/* The trigger's value that fired, as text: "cpu 93.5%", "rss 612 MiB",
	 * "threads 230", "fds 1200", "timer 300 s", "cgroup memory 91.2%",
	 * "pressure some 23.10" */
	char value[64];
	int64_t when_ms; /* CLOCK_REALTIME, ms */
	/* Set when the engine stops (SIGTERM): an action polls it and gives up
	 * (the dump job's progress callback cancels the job). */
	const atomic_bool *cancel;
};

#define PD_RULE_RESULT_MAX 256
/* What an action did. */
struct pd_rule_result {
	enum { PD_RULE_STORED, PD_RULE_FAILED, PD_RULE_SKIPPED } kind;
	char ids[2][64]; /* the store entries written ("" unused) */
	char detail[PD_RULE_RESULT_MAX]; /* failure or skip reason, a sentence */
};

enum pd_rule_status {
	PD_RULE_ARMED,
	PD_RULE_FIRING,	      /* an action of it runs */
	PD_RULE_COOLING_DOWN, /* fired less than interval ago */
	PD_RULE_EXHAUSTED,    /* fired count times */
};
const char *pd_rule_status_name(enum pd_rule_status s); /* "armed", "cooling_down", ... */

/* A rule's state, copied out for the API. */
struct pd_rule_state {
	enum pd_rule_status status;
	bool sampled;	      /* false: a crash rule (the crash handler acts) */
	unsigned fired;	      /* firings so far */
	unsigned running;     /* actions of it running now */
	unsigned matched;     /* processes it matched at the last sample */
	unsigned holding;     /* ... whose condition held */
	int64_t last_fired_ms; /* CLOCK_REALTIME ms of the last firing; 0: never */
	int64_t cooldown_until_ms; /* realtime ms; 0 when not cooling down */
	bool has_last;
	struct pd_rule_firing last;	/* the last firing (rule NULL) */
	struct pd_rule_result last_result; /* its result (once finished) */
	bool last_done;
	/* Why the trigger cannot be judged on some process now ("no cgroup v2:
	 * memory.pressure needs it"), "" when nothing is wrong. */
	char note[160];
};

struct pd_ruleengine_opts {
	const struct pd_ruleset *rules; /* borrowed: lives as long as the engine */
	const struct pd_scope *scope;	/* borrowed */
	unsigned interval_ms;
	unsigned max_actions;
	/* The site process (id 0) now: 0 and *pid, or <0 when none. NULL:
	 * none. */
	int (*site_pid)(void *arg, int *pid);
	void *site_arg;
	/* Runs one firing's action (on a thread of the engine's) and fills
	 * res. Required when a sampled rule exists. */
	void (*act)(void *arg, const struct pd_rule_firing *f, struct pd_rule_result *res);
	void *act_arg;
};

struct pd_ruleengine;
/* Starts the sampler thread (no thread when no rule is sampled: crash
 * rules only). 0, -ENOMEM, -errno. */
int pd_ruleengine_start(const struct pd_ruleengine_opts *o, struct pd_ruleengine **out);
/* Stops sampling, waits for the running actions, frees. NULL is fine. */
void pd_ruleengine_stop(struct pd_ruleengine *e);
/* The state of rule i (its index in the ruleset). 0 or -ENOENT. */
int pd_ruleengine_state(struct pd_ruleengine *e, size_t i, struct pd_rule_state *out);
/* Samples done so far (tests, the benchmark). */
uint64_t pd_ruleengine_ticks(struct pd_ruleengine *e);

/* The value texts, shared with the API: hundredths of a percent as
 * "93.5%". */
void pd_centi_text(uint32_t centi, char *buf, size_t len);

#endif
