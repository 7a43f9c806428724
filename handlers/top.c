/* The live process table (docs/API.md, "The process table"):
 *
 *   GET /api/processes?view=table   the light JSON the page polls (always JSON)
 *   GET /api/processes  (a browser) the page: a sortable, filterable table
 *                                   that handlers/assets/table.js fills and
 *                                   refreshes; ?view=tree the tree by parent
 *
 * lib/top.h reads; this translates. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/top.h"
#include "lib/users.h"

struct keep_arg {
	const struct pd_context *ctx;
	bool all, have_site;
	int site_pid;
	uid_t self_uid, site_uid;
};

/* The list's own rule (pd_h_listed), the site's uid found in the reading. */
static bool keep(const struct pd_snapshot *snap, const struct pd_proc_entry *e, void *arg)
{
	struct keep_arg *k = arg;

	if (!k->have_site) {
		k->site_uid = k->all ? k->self_uid : pd_h_site_uid(snap, k->site_pid);
		k->have_site = true;
	}
	return pd_h_listed(k->ctx, k->all, k->self_uid, k->site_uid, e);
}

static json_t *row_json(struct pd_req *r, const struct pd_top *t, const struct pd_top_row *row,
			uint64_t basis)
{
	const struct pd_proc_entry *e = row->e;
	char user[256];

	if (pd_user_name(e->uid, user, sizeof(user)) < 0)
		snprintf(user, sizeof(user), "%u", (unsigned)e->uid);
	return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:s, s:I, s:o}",
			 "id", e->pid, "name", pd_json_bytes(e->comm, e->comm_len), "user",
			 pd_json_cstr(user), "command_line", pd_json_bytes(row->cmd, row->cmd_len),
			 "cpu", pd_json_pct(row->cpu), "cpu_machine",
			 pd_json_pct(row->cpu < 0 ? -1 : row->cpu / (double)t->ncpu), "rss",
			 row->rss < 0 ? json_null() : json_integer(row->rss), "rss_share",
			 row->rss < 0 || !basis ? json_null()
						: pd_json_pct(100.0 * (double)row->rss / (double)basis),
			 "threads", (json_int_t)e->num_threads, "fds",
			 row->fds < 0 ? json_null() : json_integer(row->fds), "state",
			 pd_state_name(e->state), "uptime_seconds",
			 (json_int_t)(row->uptime_ns / 1000000000), "href",
			 pd_json_href(r, "/%d", e->pid));
}

int pd_h_top_json(struct pd_req *r, bool all)
{
	const struct pd_context *ctx = pd_req_app(r);
	struct keep_arg k = {ctx, all, false, pd_h_site_pid(ctx), getuid(), 0};
	struct pd_top t = PD_TOP_INIT;
	json_t *doc, *arr;
	uint64_t basis;
	int rc;

	rc = pd_top_read((int64_t)ctx->config->list_max_age_ms * 1000000, keep, &k, &t);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	/* The share of memory: of the cgroup's limit where it is the tighter. */
	basis = t.mem_limit && t.mem_limit < t.mem_total ? t.mem_limit : t.mem_total;
	arr = json_array();
	for (size_t i = 0; arr && i < t.n; i++)
		if (json_array_append_new(arr, row_json(r, &t, &t.rows[i], basis)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	doc = arr ? json_pack("{s:o, s:o, s:i, s:I, s:o, s:s, s:o}", "time_stamp",
			      pd_json_iso8601(t.cur->taken_ns), "interval_ms",
			      t.prev ? json_integer(t.interval_ns / 1000000) : json_null(), "cpus",
			      (int)t.ncpu, "memory_total", (json_int_t)t.mem_total, "memory_limit",
			      t.mem_limit ? json_integer((json_int_t)t.mem_limit) : json_null(),
			      "memory_basis", basis == t.mem_total ? "machine" : "cgroup",
			      "processes", arr)
		  : NULL;
	pd_req_log_note(r, "procs=%zu view=table", t.n);
	pd_top_release(&t);
	/* Compact: polled every two seconds, read by a script. */
	return pd_reply_json_compact(r, doc);
}

/* A column: its key in the JSON, its label, whether it is a number (sorts
 * as one, aligned right, descending first), and its title. */
static const struct {
	const char *key, *label;
	bool num;
	const char *title;
} columns[] = {
	{"name", "Name", false, "The kernel's name of the process (comm)"},
	{"id", "PID", true, NULL},
	{"user", "User", false, NULL},
	{"cpu", "CPU %", true, "Percent of a single core, over the last sampling interval"},
	{"cpu_machine", "CPU % (all)", true, "Of the whole machine (all cores)"},
	{"rss", "Memory", true, "Resident memory (RSS)"},
	{"rss_share", "Mem %", true, NULL},
	{"threads", "Threads", true, NULL},
	{"fds", "FDs", true, "Open file descriptors"},
	{"state", "State", false, NULL},
	{"uptime_seconds", "Uptime", true, NULL},
	{"command_line", "Command line", false, NULL},
};

int pd_h_top_page(struct pd_req *r, bool all)
{
	struct strbuf sb = STRBUF_INIT;
	char nonce[PD_HTML_NONCE_LEN];
	const char *list = all ? "?allUsers=true" : "";

	pd_h_page_begin(r, &sb, all ? "Processes (all users)" : "Processes", nonce);
	strbuf_addstr(&sb, "<div class=\"toolbar\"><input type=\"search\" id=\"filter\" "
			   "placeholder=\"Filter: name or command line\" aria-label=\"Filter by "
			   "name or command line\" autocomplete=\"off\">"
			   "<span class=\"count\" id=\"count\" aria-live=\"polite\"></span><a href=\"");
	pd_html_escape(&sb, pd_req_origin(r), strlen(pd_req_origin(r)));
	pd_html_escape(&sb, pd_req_base(r), strlen(pd_req_base(r)));
	strbuf_addstr(&sb, all ? "?view=tree&amp;allUsers=true\">Tree view</a><a href=\""
			       : "?view=tree\">Tree view</a><a href=\"");
	pd_html_escape(&sb, pd_req_origin(r), strlen(pd_req_origin(r)));
	pd_html_escape(&sb, pd_req_base(r), strlen(pd_req_base(r)));
	strbuf_addstr(&sb, all ? "\">Only the site&#39;s processes</a>" : "?allUsers=true\">All users</a>");
	strbuf_addstr(&sb, "<span class=\"count\" id=\"basis\"></span></div>"
			   "<noscript><p>This table needs JavaScript; the <a href=\"?view=tree\">tree "
			   "view</a> does not.</p></noscript>"
			   "<div class=\"scroll\" id=\"scroll\"><table class=\"grid\" id=\"procs\" "
			   "data-src=\"");
	pd_html_escape(&sb, pd_req_origin(r), strlen(pd_req_origin(r)));
	pd_html_escape(&sb, pd_req_base(r), strlen(pd_req_base(r)));
	strbuf_addstr(&sb, "?view=table");
	if (*list)
		strbuf_addstr(&sb, "&amp;allUsers=true");
	strbuf_addstr(&sb, "\"><thead><tr>");
	for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++) {
		strbuf_addf(&sb, "<th scope=\"col\" data-key=\"%s\" class=\"%s%s\" aria-sort=\"none\"",
			    columns[i].key, columns[i].num ? "num" : "",
			    !strcmp(columns[i].key, "command_line") ? " cmd" : "");
		if (columns[i].title)
			strbuf_addf(&sb, " title=\"%s\"", columns[i].title);
		strbuf_addf(&sb, "><button type=\"button\">%s</button></th>", columns[i].label);
	}
	strbuf_addstr(&sb, "</tr></thead><tbody></tbody></table></div>");
	pd_h_script(r, &sb, "table.js");
	return pd_h_page_send(r, &sb, nonce);
}
