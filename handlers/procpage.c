/* The process page's parts (a browser's GET /api/processes/{id}): key
 * figures in human units, threads as a live sortable table (per-thread CPU
 * % from lib/top.h's watched processes), modules, open files and the
 * environment as compact tables, the environment's values left out of the
 * page (handlers/assets/table.js fetches one when its Show button is
 * pressed: docs/API.md, "The process page"). Also the threads' light JSON,
 * GET /api/processes/{id}/threads?view=table, that the page polls. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/sysclock.h"
#include "lib/top.h"

json_t *pd_h_thread_rows(struct pd_req *r, struct pd_proc *p, int64_t *interval_ns)
{
	struct pd_tasks tasks = PD_TASKS_INIT;
	double *cpu;
	json_t *arr;

	*interval_ns = 0;
	if (pd_proc_tasks(p, &tasks) < 0)
		return json_array();
	cpu = calloc(tasks.n ? tasks.n : 1, sizeof(*cpu));
	arr = json_array();
	if (!cpu || !arr ||
	    pd_top_threads_cpu(p->pid, p->stat.starttime, &tasks, cpu, interval_ns) < 0) {
		json_decref(arr);
		arr = NULL;
	}
	pd_top_record(p->pid, &p->stat, tasks.n);
	for (size_t i = 0; arr && i < tasks.n; i++) {
		const struct pd_stat *t = &tasks.v[i];
		json_t *o = json_pack(
			"{s:i, s:o, s:s, s:o, s:f, s:o, s:o}", "id", t->pid, "name",
			pd_json_bytes(t->comm, t->comm_len), "state", pd_state_name(t->state), "cpu",
			pd_json_pct(cpu[i]), "cpu_time_seconds",
			(double)(long long)(pd_ticks_to_ns(t->utime + t->stime) / 10000000) / 100,
			"href", pd_json_href(r, "/%d/threads/%d", p->pid, t->pid), "stack",
			pd_json_href(r, "/%d/stacks#thread-%d", p->pid, t->pid));

		if (json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(cpu);
	pd_tasks_release(&tasks);
	return arr;
}

/* The watched process's ring (lib/top.h), oldest first. */
static json_t *history_json(struct pd_proc *p)
{
	static __thread struct pd_top_point pts[PD_TOP_HISTORY];
	size_t n = pd_top_history(p->pid, p->stat.starttime, pts, PD_TOP_HISTORY);
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		json_t *o = json_pack("{s:I, s:o, s:o, s:I, s:o}", "t", (json_int_t)pts[i].t_ms, "cpu",
				      pd_json_pct(pts[i].cpu), "rss",
				      pts[i].rss < 0 ? json_null() : json_integer(pts[i].rss),
				      "threads", (json_int_t)pts[i].threads, "fds",
				      pts[i].fds < 0 ? json_null() : json_integer(pts[i].fds));

		if (json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

int pd_h_thread_table_json(struct pd_req *r, struct pd_proc *p)
{
	int64_t interval = 0;
	json_t *arr = pd_h_thread_rows(r, p, &interval);
	json_t *doc = arr ? json_pack("{s:o, s:o, s:o*}", "interval_ms",
				      interval ? json_integer(interval / 1000000) : json_null(),
				      "threads", arr, "history", history_json(p))
			  : NULL;

	return pd_reply_json_compact(r, doc);
}

static void esc(struct strbuf *sb, const char *s)
{
	pd_html_escape(sb, s, strlen(s));
}

static void esc_json(struct strbuf *sb, json_t *v)
{
	if (json_is_string(v))
		pd_html_escape(sb, json_string_value(v), json_string_length(v));
	else
		strbuf_addstr(sb, "<span class=\"n\">&mdash;</span>");
}

/* Bytes in human units (KiB, MiB, GiB, TiB: powers of 1024), the exact
 * count on hover; table.js's fmtBytes() writes the same. */
static void size_html(struct strbuf *sb, json_t *v)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	json_int_t n = json_integer_value(v);
	double x = (double)n;
	int u = -1;

	if (!json_is_integer(v) || n < 0) {
		strbuf_addstr(sb, "<span class=\"n\">&mdash;</span>");
		return;
	}
	while (x >= 1024 && u < 3) {
		x /= 1024;
		u++;
	}
	strbuf_addf(sb, "<span title=\"%lld bytes\">", (long long)n);
	if (u < 0)
		strbuf_addf(sb, "%lld B</span>", (long long)n);
	else
		strbuf_addf(sb, "%.*f %s</span>", x < 10 ? 1 : 0, x, unit[u]);
}

/* Seconds as a duration: 45s, 3m 12s, 5h 07m, 2d 04h; table.js's fmtDur(). */
static void duration_html(struct strbuf *sb, double secs)
{
	long long s = (long long)secs;

	if (secs < 0)
		strbuf_addstr(sb, "<span class=\"n\">&mdash;</span>");
	else if (s < 60)
		strbuf_addf(sb, "%.*fs", secs < 10 ? 2 : 0, secs);
	else if (s < 3600)
		strbuf_addf(sb, "%lldm %02llds", s / 60, s % 60);
	else if (s < 86400)
		strbuf_addf(sb, "%lldh %02lldm", s / 3600, s / 60 % 60);
	else
		strbuf_addf(sb, "%lldd %02lldh", s / 86400, s / 3600 % 24);
}

static void figure_begin(struct strbuf *sb)
{
	strbuf_addstr(sb, "<div><b>");
}

static void figure_end(struct strbuf *sb, const char *label)
{
	strbuf_addf(sb, "</b><span>%s</span></div>", label);
}

static void size_figure(struct strbuf *sb, json_t *doc, const char *key, const char *label)
{
	figure_begin(sb);
	size_html(sb, json_object_get(doc, key));
	figure_end(sb, label);
}

static void count_figure(struct strbuf *sb, json_t *doc, const char *key, const char *label)
{
	json_t *v = json_object_get(doc, key);

	figure_begin(sb);
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		strbuf_addf(sb, "%lld", (long long)json_integer_value(v));
	else
		strbuf_addstr(sb, "<span class=\"n\">&mdash;</span>");
	figure_end(sb, label);
}

/* An href of the document (ours: built by pd_json_href) as a link. */
static void link_html(struct pd_req *r, struct strbuf *sb, json_t *href, const char *text)
{
	const char *h = json_string_value(href);
	size_t olen = strlen(pd_req_origin(r));

	if (!h)
		return;
	strbuf_addstr(sb, "<a href=\"");
	esc(sb, h);
	strbuf_addstr(sb, "\">");
	esc(sb, text ? text : (strlen(h) > olen ? h + olen : h));
	strbuf_addstr(sb, "</a>");
}

static void th(struct strbuf *sb, const char *label, bool num)
{
	strbuf_addf(sb, "<th scope=\"col\"%s aria-sort=\"none\"><button type=\"button\">%s</button></th>",
		    num ? " class=\"num\"" : "", label);
}

static void threads_html(struct pd_req *r, struct strbuf *sb, json_t *rows, int pid)
{
	size_t i;
	json_t *t;

	strbuf_addf(sb, "<section><h2>Threads (%zu)</h2><div class=\"scroll\">"
			"<table class=\"grid sortable\" id=\"threads\" data-src=\"",
		    json_array_size(rows));
	esc(sb, pd_req_origin(r));
	esc(sb, pd_req_base(r));
	strbuf_addf(sb, "/%d/threads?view=table\"><thead><tr>", pid);
	th(sb, "TID", true);
	th(sb, "Name", false);
	th(sb, "State", false);
	th(sb, "CPU %", true);
	th(sb, "CPU time", true);
	strbuf_addstr(sb, "<th scope=\"col\">Stack</th></tr></thead><tbody>");
	json_array_foreach(rows, i, t)
	{
		json_t *cpu = json_object_get(t, "cpu");
		double secs = json_real_value(json_object_get(t, "cpu_time_seconds"));
		int tid = (int)json_integer_value(json_object_get(t, "id"));
		char id[16];

		snprintf(id, sizeof(id), "%d", tid);
		strbuf_addf(sb, "<tr data-id=\"%d\"><td class=\"num\" data-v=\"%d\">", tid, tid);
		link_html(r, sb, json_object_get(t, "href"), id);
		strbuf_addstr(sb, "</td><td>");
		esc_json(sb, json_object_get(t, "name"));
		strbuf_addstr(sb, "</td><td>");
		esc_json(sb, json_object_get(t, "state"));
		if (json_is_real(cpu))
			strbuf_addf(sb, "</td><td class=\"num\" data-v=\"%.1f\">%.1f", json_real_value(cpu),
				    json_real_value(cpu));
		else
			strbuf_addstr(sb, "</td><td class=\"num\" data-v=\"-1\">&mdash;");
		strbuf_addf(sb, "</td><td class=\"num\" data-v=\"%.2f\">", secs);
		duration_html(sb, secs);
		strbuf_addstr(sb, "</td><td>");
		link_html(r, sb, json_object_get(t, "stack"), "stack");
		strbuf_addstr(sb, "</td></tr>");
	}
	strbuf_addstr(sb, "</tbody></table></div></section>");
}

static void modules_html(struct pd_req *r, struct strbuf *sb, json_t *mods)
{
	size_t i;
	json_t *m;

	strbuf_addf(sb, "<section><h2>Modules (%zu)</h2><div class=\"scroll\">"
			"<table class=\"grid sortable\" id=\"modules\"><thead><tr>",
		    json_array_size(mods));
	th(sb, "File", false);
	th(sb, "Base address", false);
	strbuf_addstr(sb, "</tr></thead><tbody>");
	json_array_foreach(mods, i, m)
	{
		strbuf_addstr(sb, "<tr><td>");
		esc_json(sb, json_object_get(m, "file_name"));
		strbuf_addstr(sb, "</td><td>");
		link_html(r, sb, json_object_get(m, "href"),
			  json_string_value(json_object_get(m, "base_address")));
		strbuf_addstr(sb, "</td></tr>");
	}
	strbuf_addstr(sb, "</tbody></table></div></section>");
}

static void files_html(struct strbuf *sb, json_t *files)
{
	size_t i;
	json_t *f;

	strbuf_addf(sb, "<section><h2>Open files (%zu)</h2><div class=\"scroll\">"
			"<table class=\"grid sortable\" id=\"files\"><thead><tr>",
		    json_array_size(files));
	th(sb, "Target", false);
	strbuf_addstr(sb, "</tr></thead><tbody>");
	json_array_foreach(files, i, f)
	{
		strbuf_addstr(sb, "<tr><td>");
		esc_json(sb, f);
		strbuf_addstr(sb, "</td></tr>");
	}
	strbuf_addstr(sb, "</tbody></table></div></section>");
}

/* Names only: a value is a secret, fetched by table.js when its Show
 * button is pressed, never part of the page. */
static void environment_html(struct pd_req *r, struct strbuf *sb, json_t *env, int pid)
{
	const char *name;
	json_t *v;

	strbuf_addf(sb, "<section><h2>Environment (%zu)</h2><p class=\"n\">Values are hidden: "
			"Show fetches one.</p><div class=\"scroll\"><table class=\"grid\" "
			"id=\"env\" data-src=\"",
		    json_object_size(env));
	esc(sb, pd_req_origin(r));
	esc(sb, pd_req_base(r));
	strbuf_addf(sb, "/%d/environments/\"><thead><tr><th scope=\"col\">Name</th>"
			"<th scope=\"col\">Value</th></tr></thead><tbody>",
		    pid);
	json_object_foreach(env, name, v)
	{
		strbuf_addstr(sb, "<tr><td>");
		esc(sb, name);
		strbuf_addstr(sb, "</td><td><span class=\"masked\">&bull;&bull;&bull;&bull;&bull;&bull;"
				  "</span> <button type=\"button\" class=\"reveal\" data-name=\"");
		esc(sb, name);
		strbuf_addstr(sb, "\">Show</button></td></tr>");
	}
	strbuf_addstr(sb, "</tbody></table></div></section>");
}

void pd_h_process_body(struct pd_req *r, struct strbuf *sb, json_t *doc, int pid)
{
	json_t *page = json_object_get(doc, "_page"), *kids = json_object_get(doc, "children"), *c;
	const char *user = json_string_value(json_object_get(doc, "user_name"));
	const char *bs = user ? strrchr(user, '\\') : NULL;
	size_t i;

	strbuf_addstr(sb, "<div class=\"figures\">");
	figure_begin(sb);
	esc_json(sb, json_object_get(doc, "state"));
	figure_end(sb, "state");
	figure_begin(sb);
	esc(sb, bs ? bs + 1 : user ? user : "?");
	figure_end(sb, "user");
	figure_begin(sb);
	duration_html(sb, json_real_value(json_object_get(page, "cpu_seconds")));
	figure_end(sb, "CPU time");
	figure_begin(sb);
	duration_html(sb, json_is_number(json_object_get(page, "uptime_seconds"))
				  ? json_number_value(json_object_get(page, "uptime_seconds"))
				  : -1);
	figure_end(sb, "uptime");
	size_figure(sb, doc, "working_set", "resident");
	size_figure(sb, doc, "peak_working_set", "peak resident");
	size_figure(sb, doc, "private_memory", "private");
	size_figure(sb, doc, "virtual_memory", "virtual");
	size_figure(sb, doc, "paged_memory", "swapped");
	count_figure(sb, doc, "thread_count", "threads");
	count_figure(sb, doc, "handle_count", "open files");
	count_figure(sb, doc, "module_count", "modules");
	strbuf_addstr(sb, "</div><table class=\"kv\"><tr><th>Parent</th><td>");
	link_html(r, sb, json_object_get(doc, "parent"), NULL);
	strbuf_addstr(sb, "</td></tr><tr><th>Children</th><td>");
	json_array_foreach(kids, i, c)
	{
		strbuf_addstr(sb, i ? " " : "");
		link_html(r, sb, c, NULL);
	}
	if (!json_array_size(kids))
		strbuf_addstr(sb, "<span class=\"n\">none</span>");
	strbuf_addstr(sb, "</td></tr><tr><th>Executable</th><td>");
	esc_json(sb, json_object_get(doc, "file_name"));
	strbuf_addstr(sb, "</td></tr><tr><th>Command line</th><td>");
	esc_json(sb, json_object_get(doc, "command_line"));
	strbuf_addstr(sb, "</td></tr><tr><th>Started</th><td>");
	esc_json(sb, json_object_get(doc, "start_time"));
	strbuf_addstr(sb, "</td></tr></table>");
	/* Drawn by table.js from the threads' JSON's history. */
	strbuf_addstr(sb, "<section><h2>Over the last minutes</h2><div class=\"charts\" id=\"charts\">"
			  "<figure><figcaption>CPU % <b id=\"c-cpu\"></b></figcaption>"
			  "<svg id=\"chart-cpu\" class=\"chart\" viewBox=\"0 0 300 80\" "
			  "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"CPU %\"></svg></figure>"
			  "<figure><figcaption>Resident memory <b id=\"c-rss\"></b></figcaption>"
			  "<svg id=\"chart-rss\" class=\"chart\" viewBox=\"0 0 300 80\" "
			  "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Resident memory\">"
			  "</svg></figure>"
			  "<figure><figcaption>Threads <b id=\"c-threads\"></b></figcaption>"
			  "<svg id=\"chart-threads\" class=\"chart spark\" viewBox=\"0 0 300 24\" "
			  "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Threads\"></svg></figure>"
			  "<figure><figcaption>Open files <b id=\"c-fds\"></b></figcaption>"
			  "<svg id=\"chart-fds\" class=\"chart spark\" viewBox=\"0 0 300 24\" "
			  "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Open files\"></svg>"
			  "</figure></div></section>");
	threads_html(r, sb, json_object_get(page, "threads"), pid);
	modules_html(r, sb, json_object_get(doc, "modules"));
	files_html(sb, json_object_get(doc, "open_file_handles"));
	environment_html(r, sb, json_object_get(doc, "environment_variables"), pid);
}
