/* What every handler shares: the configuration and facts fixed at start-up.
 * Built once by `procdiag serve`, read-only afterwards (but for the dump
 * counter, which is atomic), reached through pd_req_app(). */
#ifndef PD_CONTEXT_H
#define PD_CONTEXT_H

#include <stdatomic.h>

#include "handlers/conffile.h"

struct pd_ruleengine;
struct pd_store;
struct pd_ops;

struct pd_context {
	const struct pd_config *config;
	char machine_name[256]; /* gethostname() */
	/* Dumps at once: max_dumps, but never every worker thread, so the
	 * list, detail and kill routes keep answering while dumps run. */
	int max_dumps;
	atomic_int dumps_running;
	/* The rule engine (lib/ruleengine.h) `serve` started; NULL: none
	 * (no rules, or a context of the tests). Its states are read through
	 * its own lock. */
	struct pd_ruleengine *rules;
	/* The dump store (store_dir), opened by `procdiag serve` and closed
	 * after the server stops; NULL when none is configured. Shared by
	 * every worker and the rule engine (lib/store.h is thread-safe). */
	struct pd_store *store;
	/* Background operations (lib/operations.h), opened by `procdiag serve`
	 * (records in store_dir/.operations.json when there is a store); NULL:
	 * none (a context of the tests). */
	struct pd_ops *ops;
};

/* threads: the server's worker threads (max_dumps is kept below it). */
int pd_context_init(struct pd_context *ctx, const struct pd_config *config, int threads);
/* Resolves id 0: the pid in site_pid_file. -ENOENT when no site_pid_file
 * is configured, -ESRCH when it cannot be read or holds no valid pid. */
int pd_context_site_pid(const struct pd_context *ctx, int *pid);

#endif
