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
 * FAILED with the reason. A rule with egress = NAME uploads its dump to
 * that provider instead (lib/operations.h pd_egress_dump_job: the dump
 * job into a spool, then the upload): the result is STORED with no id and
 * detail "egress NAME: LOCATION", or FAILED with the reason. */
#ifndef PD_RULEACTION_H
#define PD_RULEACTION_H

#include "lib/ruleengine.h"
#include "lib/scope.h"

struct pd_store;

struct pd_egress_provider;

struct pd_ruleaction_ctx {
	struct pd_store *store;	      /* borrowed; NULL: rules with egress only */
	/* the [egress NAME] providers (a rule's egress = NAME: its dump is
	 * uploaded there from a spool, instead of stored), borrowed */
	const struct pd_egress_provider *egress;
	size_t negress;
	const char *spool_dir;
	unsigned long long spool_memory_max;
	const char *host, *site; /* the upload's {host}/{site} */
	const struct pd_scope *scope; /* the helper judges the stopped process by it */
	const char *helper;	      /* NULL: /proc/self/exe */
};

/* The act callback: arg is a struct pd_ruleaction_ctx. */
void pd_ruleaction_run(void *arg, const struct pd_rule_firing *f, struct pd_rule_result *res);

#endif
