/* procdiag ps: the processes of this host, dotnet-dump ps's columns (pid,
 * name, executable, arguments) plus user, RSS and CPU time. */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "lib/proc.h"
#include "lib/snapshot.h"
#include "lib/sysclock.h"
#include "lib/users.h"

static void ps_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag ps [--all] [--json]\n\n"
		"Lists the processes of this host: pid, user, resident memory, CPU time,\n"
		"name, executable and arguments. Kernel threads are left out unless --all.\n\n"
		"  -a, --all     include kernel threads\n"
		"      --json    one JSON array: [{pid, ppid, name, user, rss, cpuSeconds,\n"
		"                executable, arguments}] (rss in bytes; unreadable: null)\n"
		"  -h, --help    this text\n\n"
		"Exit status: 0 listed, 1 /proc could not be read, 2 usage error.\n");
}

/* argv joined by spaces, without argv[0], printable (\xNN for bad bytes). */
static void args_of(struct pd_proc *p, struct strbuf *exe, struct strbuf *args, bool *have_args)
{
	struct pd_strv sv = PD_STRV_INIT;

	*have_args = false;
	if (pd_proc_cmdline(p, &sv) == 0 && sv.n > 0) {
		*have_args = true;
		for (size_t i = 1; i < sv.n; i++) {
			if (i > 1)
				strbuf_addch(args, ' ');
			utf8_escape(args, sv.v[i], sv.len[i]);
		}
	}
	pd_strv_release(&sv);
	{
		struct strbuf raw = STRBUF_INIT;

		if (pd_proc_exe(p, &raw) == 0)
			utf8_escape(exe, raw.buf, raw.len);
		strbuf_release(&raw);
	}
}

/* One line per process: control characters (a newline in an argument)
 * are shown as \xNN, as utf8_escape() shows bytes that are not UTF-8. */
static void one_line(struct strbuf *sb)
{
	struct strbuf out = STRBUF_INIT;

	if (!sb->len)
		return;
	for (size_t i = 0; i < sb->len; i++) {
		unsigned char ch = (unsigned char)sb->buf[i];

		if (ch < 0x20 || ch == 0x7f)
			strbuf_addf(&out, "\\x%02X", ch);
		else
			strbuf_addch(&out, (char)ch);
	}
	strbuf_release(sb);
	*sb = out;
}

static void cpu_time(uint64_t ticks, char *buf, size_t len)
{
	int64_t s = pd_ticks_to_ns(ticks) / 1000000000;

	if (s >= 86400)
		snprintf(buf, len, "%lld-%02lld:%02lld:%02lld", (long long)(s / 86400),
			 (long long)(s / 3600 % 24), (long long)(s / 60 % 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%02lld:%02lld:%02lld", (long long)(s / 3600),
			 (long long)(s / 60 % 60), (long long)(s % 60));
}

int cmd_ps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	bool all = false, json = false;
	struct pd_snapshot *snap = NULL;
	json_t *arr = NULL;
	long page = sysconf(_SC_PAGESIZE);
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a': all = true; break;
		case 'j': json = true; break;
		case 'h': ps_usage(stdout); return 0;
		default:
			fprintf(stderr, "procdiag ps: unknown option '%s'\n", argv[optind - 1]);
			ps_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "procdiag ps: unexpected argument '%s'\n", argv[optind]);
		ps_usage(stderr);
		return 2;
	}
	rc = pd_snapshot_scan(&snap);
	if (rc < 0) {
		fprintf(stderr, "procdiag ps: cannot read /proc: %s\n", strerror(-rc));
		return 1;
	}
	if (json)
		arr = json_array();
	else
		printf("%7s %-10s %10s %9s  %-15s %s  %s\n", "PID", "USER", "RSS(KiB)", "TIME", "NAME",
		       "EXECUTABLE", "ARGUMENTS");
	for (size_t i = 0; i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];
		struct strbuf name = STRBUF_INIT, exe = STRBUF_INIT, args = STRBUF_INIT;
		char user[64], tm[32];
		bool have_args = false, kthread;
		struct pd_proc p;

		if (pd_proc_open(e->pid, &p) < 0)
			continue; /* exited since the scan */
		if (p.stat.starttime != e->starttime) {
			pd_proc_close(&p); /* and its pid reused: not this line's process */
			continue;
		}
		kthread = pd_stat_is_kthread(&p.stat);
		if (kthread && !all) {
			pd_proc_close(&p);
			continue;
		}
		args_of(&p, &exe, &args, &have_args);
		pd_proc_close(&p);
		utf8_escape(&name, e->comm, e->comm_len);
		if (pd_user_name(e->uid, user, sizeof(user)) < 0)
			snprintf(user, sizeof(user), "%u", (unsigned)e->uid);
		if (json) {
			json_t *o = json_pack("{s:i, s:i, s:s, s:s, s:o, s:f, s:o, s:o}", "pid", e->pid,
					      "ppid", e->ppid, "name", name.buf, "user",
					      user, "rss",
					      e->rss_pages >= 0 && !kthread
						      ? json_integer(e->rss_pages * page)
						      : json_null(),
					      "cpuSeconds",
					      (double)pd_ticks_to_ns(e->utime + e->stime) / 1e9,
					      "executable",
					      exe.len ? json_string(exe.buf) : json_null(), "arguments",
					      have_args ? json_string(args.buf)
							: json_null());

			if (o)
				json_array_append_new(arr, o);
		} else {
			cpu_time(e->utime + e->stime, tm, sizeof(tm));
			one_line(&name);
			one_line(&exe);
			one_line(&args);
			printf("%7d %-10.10s %10lld %9s  %-15s %s  %s\n", e->pid, user,
			       (long long)(e->rss_pages >= 0 ? e->rss_pages * page / 1024 : 0), tm,
			       name.buf, exe.len ? exe.buf : "-",
			       args.len ? args.buf : "");
		}
		strbuf_release(&name);
		strbuf_release(&exe);
		strbuf_release(&args);
	}
	pd_snapshot_unref(snap);
	if (json) {
		rc = json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(arr);
		if (rc < 0)
			return 1;
		putchar('\n');
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
