/* The configuration file: commented "key = value" lines.
 *
 *   # comment            blank lines and '#' comments are ignored
 *   key = value          spaces around '=' and at the ends are trimmed
 *
 * Keys (docs/CONFIGURATION.md documents each):
 *   listen          unix:/run/procdiag/procdiag.sock | 127.0.0.1:9000
 *   threads         worker threads, 1..256 (default 16)
 *   api_key_sha256  64 hex digits; repeatable
 *   scope           self | all | user,uid,...   (default self)
 *   site_pid_file   file holding the pid that id 0 means (default: the responder)
 *   trust_proxy     true|false: honour X-Forwarded-Proto/-Host/-Port (default false)
 *   public_url      http[s]://host[:port][/prefix]: the root of every link
 *   log_requests    true|false (default true)
 *   list_max_age_ms 0..60000: how old a list may be (default 0: one scan per burst)
 *   spool_dir       absolute directory for dump spools (default /var/tmp)
 *   spool_memory_max  dumps estimated at most this size are spooled in
 *                   memory (memfd); bytes, or with K/M/G (default 8M)
 *   max_dumps       dumps at once, 1..64 (default 1)
 *   request_read_timeout  seconds for a request's FastCGI parameters, 1..3600 (5)
 *   send_timeout    seconds a write to the web server may wait, 1..3600 (60)
 *   download_min_rate  bytes a second a dump download must average, K/M/G;
 *                   0: none (default 256K)
 *   drain_timeout   seconds running requests get after SIGTERM, 0..3600 (30)
 *   resume_timeout  seconds the spool of a dump download its client broke
 *                   off is kept for a Range request, 0..3600 (120)
 *   rules_interval_ms  the rule engine's sampling period, 100..60000 (1000)
 *   max_actions     rule actions at once, host-wide, 1..16 (default 1)
 *   crash_timeout   seconds the crash handler may hold a dying process,
 *                   1..3600 (60)
 *   crash_chain     true|false: crashes no rule takes go to the previous
 *                   core_pattern's handler (default false)
 *   store_dir       absolute directory of the dump store (default: none)
 *   store_max_count entries kept, 0..1000000 (0: no bound; default 20)
 *   store_max_bytes allocated bytes kept, K/M/G/T (0: no bound; default 0)
 *   store_max_age   seconds, or with s/m/h/d (0: no bound; default 0)
 * Sections: a line "[rule NAME]" starts a rule (lib/rules.h), a line
 * "[egress NAME]" an egress provider (lib/egress.h: type, directory,
 * account_url, container, blob_prefix, account_key, account_key_file,
 * sas_token, sas_token_file, block_size, parallel; a *_file is read once,
 * when the configuration is loaded); every following "key = value" up to
 * the next section is one of its keys.
 * Unknown keys, bad values and duplicate single-valued keys are errors that
 * name the file and line. */
#ifndef PD_CONFFILE_H
#define PD_CONFFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fcgi/auth.h"
#include "lib/egress.h"
#include "lib/rules.h"
#include "lib/scope.h"
#include "lib/store.h"

struct pd_config {
	char *listen;        /* NULL: inherited socket */
	int threads;
	struct pd_keyset keys;
	struct pd_scope scope;
	char *site_pid_file; /* NULL: the responder itself */
	bool trust_proxy;
	char *public_url; /* normal form (fcgi/origin.h); NULL: from each request */
	bool log_requests;
	int list_max_age_ms;
	char *spool_dir; /* NULL: PD_SPOOL_DIR_DEFAULT */
	uint64_t spool_memory_max;
	int max_dumps;
	int request_read_timeout; /* seconds */
	int send_timeout;         /* seconds */
	uint64_t download_min_rate; /* bytes a second, 0: none */
	int drain_timeout;        /* seconds */
	int resume_timeout;       /* seconds, 0: no resume */
	int rules_interval_ms;
	int max_actions;
	struct pd_ruleset rules;  /* the [rule NAME] sections, in file order */
	int crash_timeout;        /* seconds (docs/CRASH.md) */
	bool crash_chain;
	char *store_dir;          /* NULL: no dump store */
	struct pd_store_limits store_limits;
	struct pd_egress_provider *egress; /* the [egress NAME] sections, in file order */
	size_t negress;
};

#define PD_SPOOL_DIR_DEFAULT "/var/tmp"
#define PD_SPOOL_MEMORY_MAX_DEFAULT (8ull << 20)
#define PD_MAX_DUMPS_LIMIT 64
#define PD_MAX_ACTIONS_LIMIT 16
#define PD_STORE_MAX_COUNT_DEFAULT 20

/* Defaults: threads 16, scope self, log_requests true, max_dumps 1,
 * spool_memory_max 8 MiB, request_read_timeout 5, send_timeout 60,
 * download_min_rate 256 KiB, drain_timeout 30, resume_timeout 120,
 * rules_interval_ms 1000, max_actions 1, no rules, store_max_count 20,
 * no store_dir, crash_timeout 60, everything else
 * off/NULL. 0 or -ENOMEM. */
int pd_config_init(struct pd_config *c);
/* Parses text (name is used in messages). On error returns -EINVAL and
 * writes "name:LINE: message" into err. Later values override defaults;
 * api_key_sha256 accumulates. */
int pd_config_parse(struct pd_config *c, const char *text, size_t len, const char *name,
		    char *err, size_t errlen);
int pd_config_load(struct pd_config *c, const char *path, char *err, size_t errlen);
/* The same from an open file (read from its offset to the end; not
 * closed); path names it in messages. */
int pd_config_load_fd(struct pd_config *c, int fd, const char *path, char *err, size_t errlen);
/* After every file is read: what only the whole configuration can judge
 * (rules need a store_dir: every action writes into the store). 0 or
 * -EINVAL with "FILE:LINE: message" in err. */
int pd_config_check(const struct pd_config *c, char *err, size_t errlen);
void pd_config_release(struct pd_config *c);
/* The [egress NAME] section called name, or NULL. */
const struct pd_egress_provider *pd_config_egress(const struct pd_config *c, const char *name);

#endif
