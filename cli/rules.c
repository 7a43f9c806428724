/* procdiag rules [--config FILE]... [--json]: the rules of the
 * configuration, as the responder would run them (docs/RULES.md,
 * docs/cli.md). Only the configuration: the rules' states live in the
 * responder (GET /api/rules). */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/strbuf.h"
#include "handlers/conffile.h"
#include "handlers/handlers.h"

static void rules_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag rules --config FILE [--config FILE]... [--json]\n\n"
		"The [rule NAME] sections of the configuration (docs/RULES.md), checked as\n"
		"`procdiag serve` checks them and printed in their normal form. Their\n"
		"states (armed, firing, cooling down, exhausted) are the responder's:\n"
		"GET /api/rules.\n\n"
		"  -c, --config FILE   a configuration file (repeatable, read in order)\n"
		"      --json          the rules as GET /api/rules gives their configuration\n"
		"  -h, --help          this text\n\n"
		"Exit status: 0 success, 1 a bad configuration, 2 usage error.\n");
}

int cmd_rules(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *paths[8];
	int npaths = 0, c, rc = 1;
	bool as_json = false;
	struct pd_config cfg;
	char err[512];

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (npaths == (int)(sizeof(paths) / sizeof(paths[0]))) {
				fprintf(stderr, "procdiag rules: at most 8 --config files\n");
				return 2;
			}
			paths[npaths++] = optarg;
			break;
		case 'j': as_json = true; break;
		case 'h': rules_usage(stdout); return 0;
		default: rules_usage(stderr); return 2;
		}
	}
	if (optind != argc || npaths == 0) {
		rules_usage(stderr);
		return 2;
	}
	if (pd_config_init(&cfg) < 0) {
		fprintf(stderr, "procdiag rules: out of memory\n");
		return 1;
	}
	for (int i = 0; i < npaths; i++)
		if (pd_config_load(&cfg, paths[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "procdiag rules: %s\n", err);
			goto out;
		}
	if (pd_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "procdiag rules: %s\n", err);
		goto out;
	}
	if (as_json) {
		json_t *arr = json_array(), *doc;

		for (size_t i = 0; arr && i < cfg.rules.n; i++)
			if (json_array_append_new(arr, pd_rule_config_json(&cfg.rules.v[i])) < 0) {
				json_decref(arr);
				arr = NULL;
			}
		doc = arr ? json_pack("{s:i, s:i, s:o}", "interval_ms", cfg.rules_interval_ms,
				      "max_actions", cfg.max_actions, "rules", arr)
			  : NULL;
		if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2)) < 0) {
			json_decref(doc);
			fprintf(stderr, "procdiag rules: out of memory\n");
			goto out;
		}
		json_decref(doc);
		putchar('\n');
	} else {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "# %zu rule%s; rules_interval_ms = %d, max_actions = %d\n",
			    cfg.rules.n, cfg.rules.n == 1 ? "" : "s", cfg.rules_interval_ms,
			    cfg.max_actions);
		for (size_t i = 0; i < cfg.rules.n; i++) {
			strbuf_addch(&sb, '\n');
			pd_rule_format(&cfg.rules.v[i], &sb);
		}
		if (sb.failed) {
			strbuf_release(&sb);
			fprintf(stderr, "procdiag rules: out of memory\n");
			goto out;
		}
		fwrite(sb.buf, 1, sb.len, stdout);
		strbuf_release(&sb);
	}
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	pd_config_release(&cfg);
	return rc;
}
