/* A rule's action (docs/RULES.md): a dump through the one dump job
 * (lib/dumpjob.h, clone mode and all, its files opened in a store entry by
 * pd_store_dump_open_out) and/or a stacks snapshot (lib/stacksrun.h: the
 * JSON document and its eu-stack-like text, two files of one entry), into
 * the dump store (lib/store.h). This is the rule engine's act callback
 * (lib/ruleengine.h).
 *
 * With dump+stacks the stacks come first (they take milliseconds and show
 * the moment the trigger fired), then the dump: two entries. Each entry's
 * meta.json says kind, pid, process, trigger "rule", rule, value (the
 * trigger's value that fired: "cpu 93.5%"), trigger_text (the rule's
 * trigger as configured), fired_ms (the wall clock of the firing, ms since
 * the epoch: the store's created is its commit, after the action) and, for
 * a dump, dumpType, format, method and
 * figures. An entry the store refuses for its quota (-EDQUOT) leaves
 * nothing: the result is SKIPPED, "quota: ..."; any other failure is
 * FAILED with the reason. */
#ifndef PD_RULEACTION_H
#define PD_RULEACTION_H

#include "lib/ruleengine.h"
#include "lib/scope.h"

struct pd_store;

struct pd_ruleaction_ctx {
	struct pd_store *store;	      /* borrowed */
	const struct pd_scope *scope; /* the helper judges the stopped process by it */
	const char *helper;	      /* NULL: /proc/self/exe */
};

/* The act callback: arg is a struct pd_ruleaction_ctx. */
void pd_ruleaction_run(void *arg, const struct pd_rule_firing *f, struct pd_rule_result *res);

#endif
