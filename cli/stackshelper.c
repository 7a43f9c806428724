/* procdiag stacks-helper --fd N: the long-lived, single-threaded process that
 * unwinds stacks for the server (lib/stacksrun.h starts it; docs/API.md,
 * "Stacks"). It keeps the caches of lib/stacks.h between requests, which is
 * what makes a second request on the same process cheap.
 *
 * Protocol on fd N (a socket), newline-delimited JSON, one request at a time:
 *   -> {"pid":N,"start_time":TICKS,"deadline_ms":MS,"no_source":false,
 *       "scope":"all"|"UID,UID..."}   (scope: the server's, judged once the
 *                                       process is stopped: lib/freeze.h;
 *                                       absent: the kernel alone judges)
 *   <- {"ok":true,"stacks":{...the document of lib/stacks.h...}}
 *   <- {"ok":false,"error":CODE,"detail":"text"}   CODE: lib/helper.h's words
 * EOF on fd N ends it (exit 0). Internal: not listed in `procdiag --help`.
 * Exit 2 for bad arguments. It reads no environment variable (the test
 * build's hooks are in lib/testhooks.h). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "lib/helper.h"
#include "lib/stacks.h"

#define MAX_REQUEST 4096

static json_t *handle(struct pd_stacks_cache *cache, const char *line)
{
	struct pd_stacks_opts o = { 0 };
	struct pd_scope scope = PD_SCOPE_INIT;
	const char *scope_spec = NULL;
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr), *doc = NULL, *resp;
	json_int_t pid = 0, start = 0, deadline = 0;
	int no_source = 0, rc;
	char err[512];

	if (!req ||
	    json_unpack(req, "{s:I,s?I,s?I,s?b,s?s}", "pid", &pid, "start_time", &start,
			"deadline_ms", &deadline, "no_source", &no_source, "scope", &scope_spec) < 0 ||
	    pid <= 0 || pid > 4194304 || start < 0 || deadline < 0 || deadline > 600000 ||
	    (scope_spec && pd_scope_parse_ids(&scope, scope_spec) < 0)) {
		json_decref(req);
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "error", "internal", "detail",
				 "bad request");
	}
	json_decref(req); /* scope_spec was its string: parsed above */
	o.deadline_ms = (unsigned)deadline;
	o.no_source = no_source;
	o.scope = scope_spec ? &scope : NULL;
	rc = pd_stacks_collect(cache, (pid_t)pid, (uint64_t)start, &o, &doc, err, sizeof(err));
	pd_scope_release(&scope);
	if (rc < 0)
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "error",
				 pd_dump_error_code(pd_dump_error_from_errno(rc, false)), "detail",
				 err[0] ? err : strerror(-rc));
	resp = json_pack("{s:b,s:o}", "ok", 1, "stacks", doc);
	return resp;
}

int cmd_stacks_helper(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct pd_stacks_cache *cache;
	struct strbuf in = STRBUF_INIT;
	struct stat st;
	uint64_t v;
	int c, fd = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c != 'f' || parse_u64(optarg, strlen(optarg), 1u << 30, &v) < 0)
			goto usage;
		fd = (int)v;
	}
	if (optind != argc || fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		goto usage;
	/* A dead server must not leave us behind (the kernel would detach a
	 * target we froze: PTRACE_SEIZE). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	cache = pd_stacks_cache_new();
	if (!cache)
		return 1;
	for (;;) {
		char *nl = memchr(in.buf, '\n', in.len);
		char buf[4096];
		ssize_t n;

		if (nl) {
			size_t used = (size_t)(nl - in.buf) + 1;
			json_t *resp;

			*nl = 0;
			resp = handle(cache, in.buf);
			memmove(in.buf, in.buf + used, in.len - used);
			strbuf_setlen(&in, in.len - used);
			if (pd_helper_send_json(fd, resp) < 0)
				break;
			continue;
		}
		if (in.len > MAX_REQUEST)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (strbuf_add(&in, buf, (size_t)n) < 0)
			break;
	}
	strbuf_release(&in);
	pd_stacks_cache_free(cache);
	return 0;
usage:
	fprintf(stderr, "usage: procdiag stacks-helper --fd N\n"
			"(internal: run by procdiag itself; see docs/API.md)\n");
	return 2;
}
