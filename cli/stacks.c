/* procdiag stacks -p PID [--json]: every thread's native stack, in this
 * process (the CLI is single-threaded, so it may freeze the target itself;
 * lib/stacks.h). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "handlers/procjson.h"
#include "lib/stacks.h"

static void stacks_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag stacks -p PID [--json] [--no-source] [--deadline-ms MS]\n\n"
		"Prints the native stack of every thread of process PID, innermost frame\n"
		"first, like eu-stack: module, symbol+offset, and source file:line where\n"
		"debug info is installed. The process is stopped (ptrace) only while its\n"
		"stacks are unwound.\n\n"
		"  -p, --process-id, --pid PID\n"
		"                        the process\n"
		"  --json                the JSON document of GET /{id}/stacks (docs/API.md)\n"
		"  --no-source           skip source lines (no DWARF is loaded)\n"
		"  --deadline-ms MS      how long to wait for every thread to stop (2000)\n\n"
		"Exit status: 0 printed, 1 failed (gone, zombie, not permitted, ...),\n"
		"2 usage error.\n");
}

static int write_all(FILE *f, const char *buf, size_t len)
{
	if (fwrite(buf, 1, len, f) != len || fflush(f) != 0)
		return -EIO;
	return 0;
}

int cmd_stacks(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "process-id", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-source", no_argument, NULL, 'S' },
		{ "deadline-ms", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pd_stacks_opts o = { 0 };
	struct pd_stacks_cache *cache;
	struct strbuf sb = STRBUF_INIT;
	bool json = false;
	char err[512];
	json_t *doc = NULL;
	uint64_t v;
	int c, rc, pid = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, strlen(optarg), &pid) < 0 || pid <= 0) {
				fprintf(stderr, "procdiag stacks: '%s' is not a process id\n", optarg);
				stacks_usage(stderr);
				return 2;
			}
			break;
		case 'j': json = true; break;
		case 'S': o.no_source = true; break;
		case 'd':
			if (parse_u64(optarg, strlen(optarg), 600000, &v) < 0) {
				stacks_usage(stderr);
				return 2;
			}
			o.deadline_ms = (unsigned)v;
			break;
		case 'h': stacks_usage(stdout); return 0;
		default: stacks_usage(stderr); return 2;
		}
	}
	if (optind != argc || pid <= 0) {
		stacks_usage(stderr);
		return 2;
	}
	cache = pd_stacks_cache_new();
	if (!cache) {
		fprintf(stderr, "procdiag stacks: out of memory\n");
		return 1;
	}
	rc = pd_stacks_collect(cache, pid, 0, &o, &doc, err, sizeof(err));
	pd_stacks_cache_free(cache);
	if (rc < 0) {
		fprintf(stderr, "procdiag stacks: %s\n", err[0] ? err : strerror(-rc));
		return 1;
	}
	if (json) {
		char *s = json_dumps(doc, JSON_INDENT(2));

		rc = s ? strbuf_addstr(&sb, s) : -ENOMEM;
		rc = rc ? rc : strbuf_addch(&sb, '\n');
		free(s);
	} else {
		rc = pd_stacks_text(doc, pd_state_name, &sb);
	}
	json_decref(doc);
	if (rc == 0)
		rc = write_all(stdout, sb.buf, sb.len);
	strbuf_release(&sb);
	if (rc < 0) {
		fprintf(stderr, "procdiag stacks: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
