/* One rule of the configuration: a `[rule NAME]` section (docs/RULES.md,
 * docs/CONFIGURATION.md). A rule is a filter (which processes), one
 * trigger (when), an action (what goes into the store) and limits (how
 * often). This file parses a rule's keys and judges its filter; the
 * sampler that evaluates triggers is lib/ruleengine.h, the crash handler
 * acts on `trigger = crash` rules itself.
 *
 * Keys (each at most once per rule):
 *   site = true                  the site process (id 0); the caller says
 *                                which pid that is (pd_rule_proc.is_site)
 *   name = php-fpm               comm, or the basename of /proc/PID/exe
 *   cmdline = --pool www         substring of the command line (args joined
 *                                by single spaces)
 *   cmdline_regex = ^php.*www$   POSIX extended regex on the same
 *   uid = www-data | 33          user name or uid: the owner of /proc/PID
 *                                (the effective uid, as lib/scope.h judges)
 *   cgroup = /system.slice/x     cgroup path prefix, whole components: v2
 *                                (the "0::" line), or the v1 memory
 *                                controller's path where that is v1
 *   trigger = cpu_above P [machine] | cpu_below P [machine]
 *           | rss_above SIZE | cgroup_memory_above P
 *           | pressure_above some|full P [system]
 *           | threads_above N | fds_above N | timer SECONDS
 *           | crash [SIG,SIG,...]     (SEGV, ABRT, ... or numbers; none: every
 *                                     signal that dumps core)
 *   for = 10s                    how long the condition must hold (default 0)
 *   action = dump | stacks | dump+stacks       (default dump)
 *   dump_type = Full | Mini | WithHeap | Triage | N (default Full)
 *   format = raw | zip | zstd    (default raw)
 *   count = 1                    firings at most, 0: unlimited (default 1)
 *   interval = 60s               least time between firings (default 60s)
 * Durations: a number of seconds, or with ms, s, m, h, d. Sizes: bytes, or
 * with K, M, G, T (powers of 1024). Percentages: a decimal with at most two
 * decimals, an optional '%'. */
#ifndef PD_RULES_H
#define PD_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/strbuf.h"
#include "lib/dumpjob.h"
#include "lib/dumptype.h"

#define PD_RULE_NAME_MAX 64

enum pd_trigger_kind {
	PD_TRIGGER_NONE,
	PD_TRIGGER_CPU_ABOVE,
	PD_TRIGGER_CPU_BELOW,
	PD_TRIGGER_RSS_ABOVE,
	PD_TRIGGER_CGROUP_MEMORY_ABOVE,
	PD_TRIGGER_PRESSURE_ABOVE,
	PD_TRIGGER_THREADS_ABOVE,
	PD_TRIGGER_FDS_ABOVE,
	PD_TRIGGER_TIMER,
	PD_TRIGGER_CRASH,
};

struct pd_rule_filter {
	bool site;	     /* site = true */
	char *name;	     /* NULL: any */
	char *cmdline;	     /* substring; NULL: any */
	char *cmdline_regex; /* its source; NULL: none */
	regex_t re;	     /* compiled when cmdline_regex */
	bool has_uid;
	uid_t uid;
	char *cgroup; /* prefix; NULL: any */
};

struct pd_rule_trigger {
	enum pd_trigger_kind kind;
	/* cpu_*, cgroup_memory_above, pressure_above: hundredths of a percent
	 * (80 -> 8000), so the text round-trips exactly. */
	uint32_t centi;
	bool machine; /* cpu_*: % of the machine (all CPUs), not of one core */
	bool full;    /* pressure_above: "full" (else "some") */
	bool system;  /* pressure_above: /proc/pressure/memory, not the cgroup's */
	uint64_t n;   /* rss_above: bytes; threads_above, fds_above: count;
			 timer: milliseconds */
	uint64_t signals; /* crash: bit 1 << signo; 0: every core-dumping one */
};

/* What a firing does (at least one of dump, stacks). */
struct pd_rule_action {
	bool dump;
	bool stacks;
	struct pd_dumptype type;
	char type_text[24]; /* as written ("Full", "0x2"), for the API */
	enum pd_dump_format format;
	/* egress = NAME: the dump goes to that [egress NAME] provider instead
	 * of the store ("" : the store); pd_config_check checks the name */
	char egress[65];
};

struct pd_rule {
	char name[PD_RULE_NAME_MAX + 1];
	char *file; /* the config file it is in (NULL: not from a file) */
	int line;   /* of its [rule NAME] line */
	struct pd_rule_filter filter;
	struct pd_rule_trigger trigger;
	uint64_t for_ms;
	struct pd_rule_action action;
	unsigned count;	      /* 0: unlimited */
	uint64_t interval_ms; /* least time between firings */
	unsigned seen;	      /* keys given (a key given twice is an error) */
};

struct pd_ruleset {
	struct pd_rule *v;
	size_t n;
};
#define PD_RULESET_INIT { NULL, 0 }

/* Is name a valid rule name: [A-Za-z0-9._-]{1,64}? */
bool pd_rule_name_valid(const char *name);
/* Defaults: no filter, no trigger, action dump Full raw, count 1,
 * interval 60 s, for 0. name must be valid (it is copied, cut at 64). */
void pd_rule_init(struct pd_rule *r, const char *name);
/* One key of the rule. 0; -EINVAL with a sentence in why (unknown key, a
 * key given twice, a bad value); -ENOMEM. */
int pd_rule_set(struct pd_rule *r, const char *key, const char *val, char *why, size_t whylen);
/* At the section's end: a trigger is given, the action fits the trigger
 * (a crash rule's action is a dump). 0 or -EINVAL (why says). */
int pd_rule_check(const struct pd_rule *r, char *why, size_t whylen);
void pd_rule_release(struct pd_rule *r);

/* Appends a rule (moved in: r is left empty); -EEXIST (a rule of that
 * name exists), -ENOMEM. */
int pd_ruleset_add(struct pd_ruleset *s, struct pd_rule *r);
const struct pd_rule *pd_ruleset_find(const struct pd_ruleset *s, const char *name);
void pd_ruleset_release(struct pd_ruleset *s);

/* "cpu_above", "rss_above", ... */
const char *pd_trigger_name(enum pd_trigger_kind k);
/* The trigger as written in the config's normal form ("cpu_above 80
 * machine", "rss_above 536870912", "timer 300", "crash SEGV,ABRT"),
 * appended to sb. 0 or -ENOMEM. */
int pd_rule_trigger_format(const struct pd_rule_trigger *t, struct strbuf *sb);
/* The rule as a config section in normal form ("[rule NAME]" and one
 * "key = value" line per filter given, then trigger, for, action,
 * dump_type, format, count, interval), appended to sb. 0 or -ENOMEM. */
int pd_rule_format(const struct pd_rule *r, struct strbuf *sb);
/* A duration as the config writes it: "0", "1500ms", "10s", "2m", "3h",
 * "7d" (the largest unit that divides it). */
void pd_duration_text(uint64_t ms, char *buf, size_t len);
/* "raw", "zip", "zstd"; "dump", "stacks", "dump+stacks". */
const char *pd_dump_format_name(enum pd_dump_format f);
const char *pd_rule_action_name(const struct pd_rule_action *a);
/* Does the rule need the process's open fd count (fds_above)? */
static inline bool pd_rule_needs_fds(const struct pd_rule *r)
{
	return r->trigger.kind == PD_TRIGGER_FDS_ABOVE;
}
/* Does a crash rule cover this signal? */
bool pd_rule_crash_signal(const struct pd_rule *r, int sig);

/* The facts a filter judges, read once per process (run). Strings are
 * NUL-terminated, never NULL ("" when unknown: a kernel thread has no
 * command line, an exe that cannot be read has no name). */
struct pd_rule_proc {
	int pid;
	bool is_site; /* the caller sets it: pd_rule_proc_read leaves false */
	uid_t uid;    /* owner of /proc/PID */
	const char *comm;
	const char *exe_name; /* basename of /proc/PID/exe, " (deleted)" cut */
	const char *cmdline;  /* arguments joined by spaces */
	const char *cgroup;   /* see pd_rule_filter.cgroup */
};
/* The buffers those strings point into, reused from process to process. */
struct pd_rule_procbuf {
	struct strbuf comm, exe, cmdline, cgroup;
};
#define PD_RULE_PROCBUF_INIT { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT }
void pd_rule_procbuf_release(struct pd_rule_procbuf *b);

/* Does the rule's filter take this process? (All given filters match.) */
bool pd_rule_matches(const struct pd_rule *r, const struct pd_rule_proc *p);
/* The same in two halves, for the sampler, which caches the first:
 * _run judges what is fixed for a process run (name, cmdline,
 * cmdline_regex: an exec changes comm, which the sampler watches), _now
 * what may change under it (site, uid, cgroup). pd_rule_matches is both. */
bool pd_rule_matches_run(const struct pd_rule *r, const struct pd_rule_proc *p);
bool pd_rule_matches_now(const struct pd_rule *r, const struct pd_rule_proc *p);
/* Does the run half need what only pd_rule_proc_read reads (exe name,
 * command line)? */
bool pd_rule_needs_facts(const struct pd_rule *r);

/* Reads the facts of pid from /proc (dirfd: an open /proc/PID, or -1 to
 * open it here). The exe, cmdline and cgroup a process's reader may be
 * refused are left "" (a filter on them then does not match). 0, -ESRCH
 * (gone), -ENOMEM. */
int pd_rule_proc_read(int pid, int dirfd, struct pd_rule_proc *p, struct pd_rule_procbuf *b);

#endif
