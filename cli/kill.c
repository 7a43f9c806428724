/* procdiag kill -p PID: the process and all its descendants, leaves first
 * (lib/killtree.h), as DELETE /api/processes/{id} does, without the HTTP
 * scope: the kernel's permission checks are the only limit. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "lib/killtree.h"
#include "lib/proc.h"
#include "lib/snapshot.h"

static void kill_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag kill -p PID [--wait-ms N]\n\n"
		"Sends SIGKILL to the process and every descendant, leaves first, and\n"
		"waits until they are gone. Each pid's start time is checked before it is\n"
		"signalled, so a reused pid is never hit. pid 1, procdiag itself, its\n"
		"ancestors and kernel threads are refused.\n\n"
		"  -p, --process-id, --pid PID\n"
		"                         the process\n"
		"      --wait-ms N        how long to wait for the tree to exit (default 2000)\n"
		"  -h, --help             this text\n\n"
		"Exit status: 0 all gone, 1 some left alive or not permitted, 2 usage\n"
		"error, 3 no such process.\n");
}

int cmd_kill(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "process-id", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'p' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct pd_kill_result res = PD_KILL_RESULT_INIT;
	struct pd_snapshot *snap = NULL;
	struct pd_proc p;
	uint64_t wait_ms = 2000;
	int pid = -1, c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_pid(optarg, strlen(optarg), &pid) < 0 || pid < 1) {
				fprintf(stderr, "procdiag kill: -p needs a process id, not '%s'\n", optarg);
				kill_usage(stderr);
				return 2;
			}
			break;
		case 'w':
			if (parse_u64(optarg, strlen(optarg), 600000, &wait_ms) < 0) {
				fprintf(stderr, "procdiag kill: --wait-ms must be 0..600000\n");
				kill_usage(stderr);
				return 2;
			}
			break;
		case 'h': kill_usage(stdout); return 0;
		default:
			fprintf(stderr, "procdiag kill: unknown option or missing value: '%s'\n",
				argv[optind - 1]);
			kill_usage(stderr);
			return 2;
		}
	}
	if (pid < 0 || optind < argc) {
		kill_usage(stderr);
		return 2;
	}
	if (pd_proc_open(pid, &p) < 0) {
		fprintf(stderr, "procdiag kill: no process %d\n", pid);
		return 3;
	}
	if (pd_stat_is_kthread(&p.stat)) {
		fprintf(stderr, "procdiag kill: process %d is a kernel thread: refused\n", pid);
		pd_proc_close(&p);
		return 1;
	}
	rc = pd_snapshot_scan(&snap);
	if (rc == 0)
		rc = pd_kill_tree(snap, pid, p.stat.starttime, NULL, (int)wait_ms, &res);
	pd_snapshot_unref(snap);
	pd_proc_close(&p);
	switch (rc) {
	case 0:
		printf("killed %zu process(es)\n", res.nsignalled);
		for (size_t i = 0; i < res.nskipped; i++)
			printf("skipped %d (protected)\n", res.skipped[i]);
		pd_kill_result_release(&res);
		return 0;
	case -ESRCH:
		fprintf(stderr, "procdiag kill: process %d exited or was replaced\n", pid);
		return 3;
	case -EPERM: /* refused before anything was signalled */
		fprintf(stderr,
			"procdiag kill: process %d is pid 1, procdiag or one of its ancestors: "
			"refused\n",
			pid);
		return 1;
	case -EBUSY:
		fprintf(stderr, "procdiag kill: still alive after %llu ms:", (unsigned long long)wait_ms);
		for (size_t i = 0; i < res.nalive; i++)
			fprintf(stderr, " %d", res.alive[i]);
		fputc('\n', stderr);
		pd_kill_result_release(&res);
		return 1;
	default:
		fprintf(stderr, "procdiag kill: cannot kill %d: %s\n", pid, strerror(-rc));
		return 1;
	}
}
