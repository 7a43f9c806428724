/* procdiag profile PID: a CPU profile of every thread (lib/profile.h), in
 * this process (the CLI is single-threaded: the ptrace method may freeze
 * the target itself), as folded stacks or a speedscope file. Also the
 * internal `procdiag profile-helper --fd N` the server runs per profile
 * (lib/profilerun.h). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "lib/fold.h"
#include "lib/profile.h"
#include "lib/profilerun.h"

static void profile_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag profile PID [--seconds N] [--hz H] [--format folded|speedscope]\n"
		"                        [--method auto|perf|ptrace]\n\n"
		"Samples the native stack of every thread of process PID H times a second\n"
		"of its CPU time for N seconds and prints the stacks folded (one line per\n"
		"distinct stack, root first: `thread;main;f;g COUNT`, for flamegraph.pl or\n"
		"speedscope) or as a speedscope file. The sample count goes to stderr.\n\n"
		"  --seconds N           1..%d (10)\n"
		"  --hz H                1..%d (49)\n"
		"  --format F            folded (default) or speedscope\n"
		"  --method M            perf (perf_event_open: the process is never stopped),\n"
		"                        ptrace (stop and unwind every tick) or auto (the\n"
		"                        default: perf, ptrace when the kernel refuses perf)\n\n"
		"Exit status: 0 printed, 1 failed (gone, not permitted, ...), 2 usage error.\n",
		PD_PROFILE_SECONDS_MAX, PD_PROFILE_HZ_MAX);
}

int cmd_profile(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "hz", required_argument, NULL, 'z' },
		{ "format", required_argument, NULL, 'f' },
		{ "method", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pd_profile_opts o = { .seconds = 10, .hz = 49, .method = PD_PROFILE_AUTO };
	struct strbuf sb = STRBUF_INIT;
	bool speedscope = false;
	json_t *doc = NULL, *meta;
	char err[512];
	uint64_t v;
	int c, rc, m, pid = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_u64(optarg, strlen(optarg), PD_PROFILE_SECONDS_MAX, &v) < 0 || !v) {
				fprintf(stderr, "procdiag profile: --seconds must be 1..%d\n",
					PD_PROFILE_SECONDS_MAX);
				return 2;
			}
			o.seconds = (unsigned)v;
			break;
		case 'z':
			if (parse_u64(optarg, strlen(optarg), PD_PROFILE_HZ_MAX, &v) < 0 || !v) {
				fprintf(stderr, "procdiag profile: --hz must be 1..%d\n", PD_PROFILE_HZ_MAX);
				return 2;
			}
			o.hz = (unsigned)v;
			break;
		case 'f':
			if (strcmp(optarg, "folded") && strcmp(optarg, "speedscope")) {
				fprintf(stderr, "procdiag profile: --format is folded or speedscope\n");
				return 2;
			}
			speedscope = !strcmp(optarg, "speedscope");
			break;
		case 'm':
			m = pd_profile_method_parse(optarg);
			if (m < 0) {
				fprintf(stderr, "procdiag profile: --method is auto, perf or ptrace\n");
				return 2;
			}
			o.method = (enum pd_profile_method)m;
			break;
		case 'h': profile_usage(stdout); return 0;
		default: profile_usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || parse_pid(argv[optind], strlen(argv[optind]), &pid) < 0 ||
	    pid <= 0) {
		profile_usage(stderr);
		return 2;
	}
	rc = pd_profile_run(pid, 0, &o, &doc, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "procdiag profile: %s\n", err[0] ? err : strerror(-rc));
		return 1;
	}
	meta = json_object_get(doc, "procdiag");
	fprintf(stderr, "procdiag profile: %lld samples of %lld threads (%s)%s\n",
		(long long)json_integer_value(json_object_get(meta, "samples")),
		(long long)json_integer_value(json_object_get(meta, "threads")),
		json_string_value(json_object_get(meta, "method")),
		json_is_true(json_object_get(meta, "complete")) ? "" : !strcmp(json_string_value(json_object_get(meta, "ended")) ? json_string_value(json_object_get(meta, "ended")) : "", "exec") ? "; the process exec'd (nothing after it)" : "; the process exited");
	if (speedscope) {
		char *s = json_dumps(doc, JSON_COMPACT);

		rc = s ? strbuf_addstr(&sb, s) : -ENOMEM;
		rc = rc ? rc : strbuf_addch(&sb, '\n');
		free(s);
	} else {
		rc = pd_fold_speedscope_folded(doc, &sb);
	}
	json_decref(doc);
	if (rc == 0 && (fwrite(sb.buf, 1, sb.len, stdout) != sb.len || fflush(stdout) != 0))
		rc = -EIO;
	strbuf_release(&sb);
	if (rc < 0) {
		fprintf(stderr, "procdiag profile: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

int cmd_profile_helper(int argc, char **argv)
{
	struct stat st;
	uint64_t v;

	if (argc != 3 || strcmp(argv[1], "--fd") || parse_u64(argv[2], strlen(argv[2]), 1u << 30, &v) < 0 ||
	    fstat((int)v, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "usage: procdiag profile-helper --fd N\n"
				"(internal: run by procdiag itself; see docs/API.md)\n");
		return 2;
	}
	return pd_profile_helper_serve((int)v);
}
