#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "fcgi/origin.h"
#include "fcgi/server.h"
#include "handlers/conffile.h"
#include "handlers/context.h"
#include "lib/store.h"
#include "lib/operations.h"
#include "handlers/handlers.h"
#include "lib/ruleaction.h"
#include "lib/ruleengine.h"
#include "lib/stacksrun.h"

static void serve_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag serve [--listen unix:PATH|HOST:PORT] [--config FILE]\n"
		"                      [--threads N] [--public-url URL] [--no-auth]\n\n"
		"  --listen SPEC   socket to listen on; without it (and without 'listen' in\n"
		"                  the config) the socket is inherited from systemd or, as\n"
		"                  spawn-fcgi hands it, on fd 0\n"
		"  --config FILE   configuration file (docs/CONFIGURATION.md); may be given\n"
		"                  up to 8 times: files are read in order, later values win\n"
		"                  and api_key_sha256 lines add up\n"
		"  --threads N     worker threads (default 16)\n"
		"  --public-url URL  http[s]://host[:port][/prefix] that every link starts\n"
		"                  with, for a server behind another proxy (overrides the\n"
		"                  config's public_url)\n"
		"  --no-auth       accept requests without an API key: local development only\n");
}

/* The site process for the rule engine's `site = true`. */
static int rules_site_pid(void *arg, int *pid)
{
	return pd_context_site_pid(arg, pid);
}

/* The rule engine, when the config has rules (docs/RULES.md). */
static int start_rules(struct pd_context *ctx, const struct pd_config *cfg,
		       struct pd_ruleaction_ctx *actx, struct pd_ruleengine **out)
{
	struct pd_ruleengine_opts ro = {
		.rules = &cfg->rules,
		.scope = &cfg->scope,
		.interval_ms = (unsigned)cfg->rules_interval_ms,
		.max_actions = (unsigned)cfg->max_actions,
		.site_pid = rules_site_pid,
		.site_arg = ctx,
		.act = pd_ruleaction_run,
		.act_arg = actx,
	};
	int rc;

	*out = NULL;
	if (!cfg->rules.n)
		return 0;
	actx->scope = &cfg->scope;
	actx->store = ctx->store;
	actx->egress = cfg->egress;
	actx->negress = cfg->negress;
	actx->spool_dir = cfg->spool_dir ? cfg->spool_dir : PD_SPOOL_DIR_DEFAULT;
	actx->spool_memory_max = cfg->spool_memory_max;
	actx->host = ctx->machine_name;
	actx->site = getenv("WEBSITE_SITE_NAME") && *getenv("WEBSITE_SITE_NAME")
			     ? getenv("WEBSITE_SITE_NAME")
			     : "default";
	rc = pd_ruleengine_start(&ro, out);
	if (rc < 0) {
		fprintf(stderr, "procdiag: cannot start the rule engine: %s\n", strerror(-rc));
		return rc;
	}
	ctx->rules = *out;
	fprintf(stderr, "procdiag: %zu rule%s, sampled every %d ms, at most %d action%s at once\n",
		cfg->rules.n, cfg->rules.n == 1 ? "" : "s", cfg->rules_interval_ms,
		cfg->max_actions, cfg->max_actions == 1 ? "" : "s");
	return 0;
}

/* The responder keeps fds of the processes it lists (lib/top.h, the live
 * table; lib/ruleengine.c) and sizes its connection table by RLIMIT_NOFILE:
 * a soft limit below NOFILE_WANT is raised toward the hard limit (not past
 * NOFILE_WANT: helpers it runs inherit it, and some close every fd up to
 * it). Failing leaves the limit as it is: the bounds follow it. */
#define NOFILE_WANT 65536
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= NOFILE_WANT || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > NOFILE_WANT ? NOFILE_WANT
										 : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "no-auth", no_argument, NULL, 'n' },
		{ "public-url", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *listen = NULL, *threads = NULL, *public_url = NULL;
	const char *config_paths[8];
	int nconfig = 0;
	bool no_auth = false;
	struct pd_config cfg;
	struct pd_context ctx;
	struct pd_ruleaction_ctx actx = { 0 };
	struct pd_ruleengine *engine = NULL;
	struct pd_store *store = NULL;
	struct pd_ops *ops = NULL;
	char err[512];
	int c, fd, rc = 1;

	if (pd_server_default_signals() < 0) {
		perror("procdiag: sigaction");
		return 1;
	}
	raise_nofile();
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:c:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'c':
			if (nconfig == (int)(sizeof(config_paths) / sizeof(config_paths[0]))) {
				fprintf(stderr, "procdiag: at most 8 --config files\n");
				return 2;
			}
			config_paths[nconfig++] = optarg;
			break;
		case 't': threads = optarg; break;
		case 'n': no_auth = true; break;
		case 'u': public_url = optarg; break;
		case 'h': serve_usage(stdout); return 0;
		default: serve_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		serve_usage(stderr);
		return 2;
	}
	if (pd_config_init(&cfg) < 0) {
		fprintf(stderr, "procdiag: out of memory\n");
		return 1;
	}
	for (int i = 0; i < nconfig; i++) {
		if (pd_config_load(&cfg, config_paths[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "procdiag: %s\n", err);
			goto out;
		}
	}
	if (pd_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "procdiag: %s\n", err);
		goto out;
	}
	if (threads) {
		uint64_t n;

		if (parse_u64(threads, strlen(threads), 256, &n) < 0 || n < 1) {
			fprintf(stderr, "procdiag: --threads must be 1..256\n");
			rc = 2;
			goto out;
		}
		cfg.threads = (int)n;
	}
	if (public_url) {
		char url[PD_PUBLIC_URL_MAX + 1], *dup;
		const char *why;

		if (pd_public_url_parse(public_url, url, sizeof(url), &why) < 0) {
			fprintf(stderr, "procdiag: --public-url %s\n", why);
			rc = 2;
			goto out;
		}
		if (!(dup = strdup(url))) {
			fprintf(stderr, "procdiag: out of memory\n");
			goto out;
		}
		free(cfg.public_url);
		cfg.public_url = dup;
	}
	if (no_auth) {
		fprintf(stderr, "procdiag: WARNING: --no-auth: anyone who reaches the socket can read "
				"memory of and kill every process in scope. Development only.\n");
	} else if (cfg.keys.n == 0) {
		fprintf(stderr, "procdiag: no api_key_sha256 in the configuration: run "
				"'procdiag genkey' and add its second line to the config file "
				"(or pass --no-auth for local development)\n");
		goto out;
	}
	if (!listen)
		listen = cfg.listen;
	fd = listen ? pd_server_listen(listen) : pd_server_inherited_fd();
	if (fd < 0) {
		if (listen)
			fprintf(stderr, "procdiag: cannot listen on %s: %s\n", listen, strerror(-fd));
		else
			fprintf(stderr, "procdiag: no --listen and no inherited socket "
					"(systemd or spawn-fcgi)\n");
		goto out;
	}
	if (pd_context_init(&ctx, &cfg, cfg.threads) < 0) {
		fprintf(stderr, "procdiag: cannot initialise\n");
		goto out;
	}
	if (cfg.store_dir) {
		int r = pd_store_open(cfg.store_dir, &cfg.store_limits, &store);

		if (r < 0) {
			fprintf(stderr, "procdiag: cannot open the dump store %s: %s\n", cfg.store_dir,
				strerror(-r));
			goto out;
		}
		ctx.store = store;
	}
	{
		const char *site = getenv("WEBSITE_SITE_NAME");
		struct pd_ops_opts oo = {
			.state_dir = cfg.store_dir,
			.store = store,
			.spool_dir = cfg.spool_dir ? cfg.spool_dir : PD_SPOOL_DIR_DEFAULT,
			.spool_memory_max = cfg.spool_memory_max,
			.scope = &cfg.scope,
			.host = ctx.machine_name,
			.site = site && *site ? site : "default",
		};
		int r = pd_ops_open(&oo, &ops);

		if (r < 0) {
			fprintf(stderr, "procdiag: cannot start operations: %s\n", strerror(-r));
			goto out;
		}
		ctx.ops = ops;
	}
	if (cfg.threads == 1)
		fprintf(stderr, "procdiag: threads = 1: while a dump runs, no other request is "
				"answered\n");
	else if (ctx.max_dumps != cfg.max_dumps)
		fprintf(stderr, "procdiag: max_dumps %d lowered to %d: a dump holds a worker "
				"thread, and one must stay free for other requests\n",
			cfg.max_dumps, ctx.max_dumps);
	struct pd_server_opts so = {
		.listen_fd = fd,
		.threads = cfg.threads,
		.no_auth = no_auth,
		.keys = &cfg.keys,
		.trust_proxy = cfg.trust_proxy,
		.public_url = cfg.public_url,
		.routes = pd_routes,
		.nroutes = pd_nroutes,
		.app = &ctx,
		.drain_ms = cfg.drain_timeout * 1000,
		.log_requests = cfg.log_requests,
		.read_timeout_ms = cfg.request_read_timeout * 1000,
		.send_timeout_ms = cfg.send_timeout * 1000,
		.download_min_rate = cfg.download_min_rate,
	};
	if (start_rules(&ctx, &cfg, &actx, &engine) < 0)
		goto out;
	fprintf(stderr, "procdiag: serving %s with %d threads\n", listen ? listen : "inherited socket",
		cfg.threads);
	if (cfg.public_url)
		fprintf(stderr, "procdiag: links start with %s\n", cfg.public_url);
	c = pd_server_run(&so);
	pd_ruleengine_stop(engine); /* its running actions end first */
	engine = NULL;
	pd_ops_close(ops); /* running operations are interrupted: Failed */
	ops = NULL;
	pd_stacksrun_shutdown(); /* the stacks helper, if one was started */
	if (c < 0)
		fprintf(stderr, "procdiag: server failed: %s\n", strerror(-c));
	else
		rc = 0;
out:
	pd_ruleengine_stop(engine);
	pd_ops_close(ops);
	pd_store_close(store);
	pd_config_release(&cfg);
	return rc;
}
