/* procdiag crash-handler: the kernel's core_pattern pipe handler, and its
 * --install / --uninstall (docs/CRASH.md, docs/cli.md). The work is in
 * lib/crashcap.c and lib/corepattern.c; this file is the command line. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "common/strbuf.h"
#include "handlers/conffile.h"
#include "lib/corepattern.h"
#include "lib/crashcap.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag crash-handler [-c CONFIG] %%P %%i %%s %%t %%e\n"
		"       procdiag crash-handler --install [-c CONFIG] [--exe PATH]\n"
		"       procdiag crash-handler --uninstall [--force]\n"
		"       procdiag crash-handler --status\n\n"
		"The kernel runs the first form (kernel.core_pattern) with a core on stdin;\n"
		"it stores the cores of processes a 'trigger = crash' rule takes\n"
		"(docs/CRASH.md).\n\n"
		"  -c, --config FILE  the configuration (absolute; default %s)\n"
		"  --install          write kernel.core_pattern to run this handler, saving\n"
		"                     the previous pattern and core_pipe_limit in %s\n"
		"  --uninstall        put the saved pattern and core_pipe_limit back\n"
		"  --force            --uninstall even when core_pattern was changed since\n"
		"  --exe PATH         the binary the pattern names (default: this one)\n"
		"  --saved FILE       another saved-pattern file (root only; tests)\n"
		"  --status           print core_pattern, core_pipe_limit, what is saved, and\n"
		"                     (with the config's store) the crash rules' counts and\n"
		"                     the last failures\n",
		PD_CRASH_CONFIG, PD_CORE_PATTERN_SAVED);
}

/* The kernel starts a pipe handler with only stdin open. Whatever this
 * process opens must not become fd 1 or 2, and its log lines go to
 * /dev/kmsg (the journal reads it) when there is no stderr. */
static void std_fds(void)
{
	if (fcntl(1, F_GETFD) < 0 && errno == EBADF) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0 && fd != 1)
			close(fd); /* fd 1 was taken meanwhile: leave it */
	}
	if (fcntl(2, F_GETFD) < 0 && errno == EBADF) {
		int fd = open("/dev/kmsg", O_WRONLY);

		if (fd < 0)
			fd = open("/dev/null", O_WRONLY);
		if (fd >= 0 && fd != 2)
			close(fd);
	}
}

/* Reads the config for a process that runs as root: the file must be
 * root's and writable by nobody else, or someone could point store_dir
 * wherever root may write. */
static int load_config(struct pd_config *cfg, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if (path[0] != '/') {
		snprintf(err, errlen, "%s: the config must be an absolute path", path);
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen,
			 "%s: not a regular file owned by root and writable by root alone", path);
		close(fd);
		return -EPERM;
	}
	r = pd_config_load_fd(cfg, fd, path, err, errlen);
	close(fd);
	return r;
}

static bool has_space(const char *s)
{
	return strpbrk(s, " \t\n") != NULL;
}

static int install(const char *config, bool config_given, const char *exe, const char *saved)
{
	struct pd_core_paths paths = {.saved = saved};
	struct pd_core_saved was;
	struct pd_config cfg;
	char self[4096], pattern[8400], err[512];
	size_t ncrash = 0;
	ssize_t n;
	int r;

	if (!exe) {
		if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0) {
			fprintf(stderr, "procdiag: /proc/self/exe: %s\n", strerror(errno));
			return 1;
		}
		self[n] = 0;
		exe = self;
	}
	if (exe[0] != '/' || has_space(exe) || has_space(config) || (saved && has_space(saved))) {
		fprintf(stderr, "procdiag: the binary, the config and the saved file need absolute "
				"paths without spaces (the kernel splits the pattern at spaces)\n");
		return 2;
	}
	if (pd_config_init(&cfg) < 0)
		return 1;
	if (load_config(&cfg, config, err, sizeof(err)) < 0 ||
	    pd_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "procdiag: %s\n", err);
		pd_config_release(&cfg);
		return 1;
	}
	for (size_t i = 0; i < cfg.rules.n; i++)
		ncrash += cfg.rules.v[i].trigger.kind == PD_TRIGGER_CRASH;
	if (!ncrash)
		fprintf(stderr,
			"procdiag: note: %s has no 'trigger = crash' rule: every crash "
			"is %s\n",
			config, cfg.crash_chain ? "passed to the previous handler" : "dropped");
	snprintf(pattern, sizeof(pattern), "|%s crash-handler%s%s%s%s %%P %%i %%s %%t %%e", exe,
		 config_given ? " -c " : "", config_given ? config : "", saved ? " --saved " : "",
		 saved ? saved : "");
	r = pd_core_install(&paths, pattern, &was, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "procdiag: --install: %s\n", err);
		pd_config_release(&cfg);
		return 1;
	}
	printf("kernel.core_pattern = %s\n", pattern);
	printf("previous: %s (saved in %s)\n", was.pattern, saved ? saved : PD_CORE_PATTERN_SAVED);
	if (was.pipe_limit_set)
		printf("kernel.core_pipe_limit: %lu -> %lu (the kernel keeps /proc/PID for the "
		       "handler)\n",
		       was.pipe_limit, was.pipe_limit_ours);
	if (cfg.crash_chain && was.pattern[0] != '|')
		printf("note: crash_chain = true, but the previous pattern is a file name: "
		       "crashes no rule takes are dropped, not written there (docs/CRASH.md)\n");
	pd_config_release(&cfg);
	return 0;
}

/* What the handler did, from the state file of the config's store: the
 * crash rules' counts and the last failures. */
static void status_state(const char *config)
{
	struct pd_config cfg;
	char err[512];
	json_t *st, *v;
	const char *name;
	size_t i;

	if (pd_config_init(&cfg) < 0)
		return;
	if (load_config(&cfg, config, err, sizeof(err)) < 0 || !cfg.store_dir) {
		printf("state: %s\n", cfg.store_dir ? err : "no store_dir in the config");
		pd_config_release(&cfg);
		return;
	}
	if ((st = pd_crash_state_load(cfg.store_dir))) {
		for (i = 0; i < cfg.rules.n; i++) {
			const struct pd_rule *r = &cfg.rules.v[i];

			if (r->trigger.kind != PD_TRIGGER_CRASH)
				continue;
			v = json_object_get(json_object_get(st, "rules"), r->name);
			printf("rule %s: %lld stored", r->name,
			       (long long)json_integer_value(json_object_get(v, "count")));
			if (json_is_string(json_object_get(v, "last_id")))
				printf(", last %s",
				       json_string_value(json_object_get(v, "last_id")));
			printf("\n");
		}
		json_array_foreach(json_object_get(st, "failures"), i, v)
		{
			name = json_string_value(json_object_get(v, "rule"));
			printf("failure: %lld pid %lld %s: %s: %s\n",
			       (long long)json_integer_value(json_object_get(v, "time")),
			       (long long)json_integer_value(json_object_get(v, "pid")),
			       name ? name : "-", json_string_value(json_object_get(v, "error")),
			       json_string_value(json_object_get(v, "detail")));
		}
		json_decref(st);
	}
	pd_config_release(&cfg);
}

static int status(const char *saved, const char *config, bool config_given)
{
	struct pd_core_paths paths = {.saved = saved};
	struct pd_core_saved s;
	char cur[PD_CORE_PATTERN_MAX + 2];
	int r;

	if ((r = pd_core_pattern_read(&paths, cur, sizeof(cur))) < 0) {
		fprintf(stderr, "procdiag: core_pattern: %s\n", strerror(-r));
		return 1;
	}
	printf("kernel.core_pattern = %s\nkernel.core_pipe_limit = %ld\n", cur,
	       pd_core_pipe_limit(&paths));
	r = pd_core_saved_read(&paths, &s);
	if (r == -ENOENT) {
		printf("installed: no\n");
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "procdiag: %s: %s\n", saved ? saved : PD_CORE_PATTERN_SAVED,
			strerror(-r));
		return 1;
	}
	printf("installed: %s\nprevious core_pattern = %s\n",
	       strcmp(cur, s.installed) ? "saved, but core_pattern was changed since" : "yes",
	       s.pattern);
	/* The config the installed pattern names, unless -c says another. */
	const char *c = strstr(s.installed, " -c ");
	char named[PD_CORE_PATTERN_MAX + 2];

	if (!config_given && c) {
		snprintf(named, sizeof(named), "%s", c + 4);
		named[strcspn(named, " ")] = 0;
		config = named;
	}
	status_state(config);
	return 0;
}

int cmd_crash_handler(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"install", no_argument, NULL, 'I'},
		{"uninstall", no_argument, NULL, 'U'},
		{"force", no_argument, NULL, 'f'},
		{"exe", required_argument, NULL, 'e'},
		{"saved", required_argument, NULL, 's'},
		{"status", no_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *config = PD_CRASH_CONFIG, *exe = NULL, *saved = NULL;
	bool config_given = false, force = false;
	int mode = 0, c;

	std_fds();
	optind = 1;
	/* "+": options end at the first operand (a comm may start with '-'). */
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 'I':
		case 'U':
		case 'S': mode = c; break;
		case 'f': force = true; break;
		case 'e': exe = optarg; break;
		case 's': saved = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (saved && geteuid() != 0) {
		fprintf(stderr, "procdiag: --saved is for root only\n");
		return 2;
	}
	if (mode == 'I' || mode == 'U' || mode == 'S') {
		char err[512];

		if (optind != argc) {
			usage(stderr);
			return 2;
		}
		if (mode == 'S')
			return status(saved, config, config_given);
		if (mode == 'I')
			return install(config, config_given, exe, saved);
		struct pd_core_paths paths = {.saved = saved};

		if (pd_core_uninstall(&paths, force, err, sizeof(err)) < 0) {
			fprintf(stderr, "procdiag: --uninstall: %s\n", err);
			return 1;
		}
		printf("kernel.core_pattern restored\n");
		return 0;
	}

	/* The handler: PID TID SIG TIME COMM... */
	struct pd_crash_opts o = {.stdin_fd = 0, .saved = saved};
	struct pd_config cfg;
	struct strbuf comm = STRBUF_INIT;
	char err[512];
	int pid = 0, tid = 0, rc;
	int64_t sig = 0, t = 0;

	umask(077);
	if (argc - optind < 5 || parse_pid(argv[optind], strlen(argv[optind]), &pid) < 0 ||
	    parse_pid(argv[optind + 1], strlen(argv[optind + 1]), &tid) < 0 ||
	    parse_i64(argv[optind + 2], strlen(argv[optind + 2]), 1, 64, &sig) < 0 ||
	    parse_i64(argv[optind + 3], strlen(argv[optind + 3]), 0, INT64_MAX, &t) < 0) {
		fprintf(stderr, "procdiag crash-handler: expected %%P %%i %%s %%t %%e from "
				"kernel.core_pattern; the core is dropped\n");
		pd_crash_drain(0);
		return 2;
	}
	/* Kernels before 5.7 split %e at its spaces: joined back. */
	for (int i = optind + 4; i < argc; i++)
		strbuf_addf(&comm, "%s%s", i > optind + 4 ? " " : "", argv[i]);
	o.a.pid = pid;
	o.a.tid = tid;
	o.a.sig = (int)sig;
	o.a.time = t;
	snprintf(o.a.comm, sizeof(o.a.comm), "%s", comm.buf);
	strbuf_release(&comm);
	if (pd_config_init(&cfg) < 0) {
		pd_crash_drain(0);
		return 1;
	}
	if (load_config(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "procdiag crash-handler[%d]: pid %d: the core is dropped: %s\n",
			(int)getpid(), pid, err);
		pd_crash_drain(0);
		pd_config_release(&cfg);
		return 1;
	}
	o.store_dir = cfg.store_dir;
	o.limits = cfg.store_limits;
	o.rules = &cfg.rules;
	o.site_pid_file = cfg.site_pid_file;
	o.timeout_s = (unsigned)cfg.crash_timeout;
	o.chain = cfg.crash_chain;
	rc = pd_crash_handle(&o);
	pd_config_release(&cfg);
	return rc;
}
