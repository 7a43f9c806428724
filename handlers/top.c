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
#include <pthread.h>
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

/* The answer is written straight into a buffer, not built as a json_t tree:
 * on 500 rows jansson's tree and its allocations were a third of a
 * refresh's CPU (docs/BENCHMARKS.md). Keys and formats are those of the
 * tree it replaced (docs/API.md, "The process table"). */
static void add_pct(struct strbuf *sb, double v)
{
	if (v < 0)
		strbuf_addstr(sb, "null");
	else
		pd_json_add_real(sb, (double)(long long)(v * 10 + 0.5) / 10);
}

static void add_i64(struct strbuf *sb, int64_t v)
{
	if (v < 0)
		strbuf_addstr(sb, "null");
	else
		strbuf_addf(sb, "%lld", (long long)v);
}

struct user_memo {
	bool have;
	uid_t uid;
	char name[256];
};

static void add_row(struct strbuf *sb, const struct pd_top *t, const struct pd_top_row *row,
		    uint64_t basis, const char *href, size_t href_len, struct user_memo *u)
{
	const struct pd_proc_entry *e = row->e;

	if (!u->have || u->uid != e->uid) {
		if (pd_user_name(e->uid, u->name, sizeof(u->name)) < 0)
			snprintf(u->name, sizeof(u->name), "%u", (unsigned)e->uid);
		u->uid = e->uid;
		u->have = true;
	}
	strbuf_addf(sb, "{\"id\":%d,\"name\":", e->pid);
	pd_json_add_bytes(sb, e->comm, e->comm_len);
	strbuf_addstr(sb, ",\"user\":");
	pd_json_add_bytes(sb, u->name, strlen(u->name));
	strbuf_addstr(sb, ",\"command_line\":");
	pd_json_add_bytes(sb, row->cmd, row->cmd_len);
	strbuf_addstr(sb, ",\"cpu\":");
	add_pct(sb, row->cpu);
	strbuf_addstr(sb, ",\"cpu_machine\":");
	add_pct(sb, row->cpu < 0 ? -1 : row->cpu / (double)t->ncpu);
	strbuf_addstr(sb, ",\"rss\":");
	add_i64(sb, row->rss);
	strbuf_addstr(sb, ",\"rss_share\":");
	add_pct(sb, row->rss < 0 || !basis ? -1 : 100.0 * (double)row->rss / (double)basis);
	strbuf_addf(sb, ",\"threads\":%lld,\"fds\":", (long long)e->num_threads);
	add_i64(sb, row->fds);
	strbuf_addstr(sb, ",\"state\":");
	pd_json_add_bytes(sb, pd_state_name(e->state), strlen(pd_state_name(e->state)));
	strbuf_addf(sb, ",\"uptime_seconds\":%lld,\"href\":", (long long)(row->uptime_ns / 1000000000));
	/* href: the escaped "origin+base" without its closing quote, then /pid */
	strbuf_add(sb, href, href_len);
	strbuf_addf(sb, "/%d\"}", e->pid);
}

/* The last answer rendered, per allUsers: the pages polling within one
 * reading (lib/top.h) get the same bytes, so they are rendered once. Keyed
 * by everything that goes into them: the reading, the site's pid (it can
 * change, and with it the scope), and the prefix of the links. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t seq; /* 0: none */
	int site_pid;
	char *prefix, *body;
	size_t body_len;
} cache[2];

/* A copy of the cached answer when it is the one to send: malloc'd, or NULL. */
static char *cached(bool all, uint64_t seq, int site_pid, const char *prefix, size_t *len)
{
	char *body = NULL;

	pthread_mutex_lock(&cache_lock);
	if (cache[all].seq == seq && cache[all].site_pid == site_pid &&
	    !strcmp(cache[all].prefix, prefix)) {
		body = malloc(cache[all].body_len + 1);
		if (body) {
			memcpy(body, cache[all].body, cache[all].body_len + 1);
			*len = cache[all].body_len;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return body;
}

static void remember(bool all, uint64_t seq, int site_pid, const char *prefix,
		     const struct strbuf *body)
{
	char *p = strdup(prefix), *b = malloc(body->len + 1);

	if (!p || !b) {
		free(p);
		free(b);
		return;
	}
	memcpy(b, body->buf, body->len + 1);
	pthread_mutex_lock(&cache_lock);
	if (seq >= cache[all].seq) {
		free(cache[all].prefix);
		free(cache[all].body);
		cache[all].seq = seq;
		cache[all].site_pid = site_pid;
		cache[all].prefix = p;
		cache[all].body = b;
		cache[all].body_len = body->len;
		p = b = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
	free(p);
	free(b);
}

int pd_h_top_json(struct pd_req *r, bool all)
{
	const struct pd_context *ctx = pd_req_app(r);
	struct keep_arg k = {ctx, all, false, pd_h_site_pid(ctx), getuid(), 0};
	struct pd_top t = PD_TOP_INIT;
	struct strbuf sb = STRBUF_INIT, href = STRBUF_INIT, prefix = STRBUF_INIT;
	struct user_memo u = {0};
	char when[48];
	uint64_t basis;
	int rc;

	rc = pd_top_read((int64_t)ctx->config->list_max_age_ms * 1000000, keep, &k, &t);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	/* The share of memory: of the cgroup's limit where it is the tighter. */
	basis = t.mem_limit && t.mem_limit < t.mem_total ? t.mem_limit : t.mem_total;
	strbuf_addstr(&prefix, pd_req_origin(r));
	strbuf_addstr(&prefix, pd_req_base(r));
	if (!prefix.failed) {
		size_t len = 0;
		char *body = cached(all, t.seq, k.site_pid, prefix.buf, &len);

		if (body) {
			pd_req_log_note(r, "procs=%zu view=table (rendered before)", t.n);
			pd_top_release(&t);
			strbuf_release(&prefix);
			rc = pd_resp_json_bytes(r, 200, body, len);
			free(body);
			return rc;
		}
	}
	pd_json_add_bytes(&href, prefix.buf, prefix.len);
	if (href.len)
		strbuf_setlen(&href, href.len - 1); /* the closing quote: each row adds "/PID\"" */
	pd_format_iso8601(t.cur->taken_ns, when, sizeof(when));
	strbuf_grow(&sb, 256 + t.n * 280);
	strbuf_addf(&sb, "{\"time_stamp\":\"%s\",\"interval_ms\":", when);
	add_i64(&sb, t.prev ? t.interval_ns / 1000000 : -1);
	strbuf_addf(&sb, ",\"cpus\":%d,\"memory_total\":%llu,\"memory_limit\":", (int)t.ncpu,
		    (unsigned long long)t.mem_total);
	if (t.mem_limit)
		strbuf_addf(&sb, "%llu", (unsigned long long)t.mem_limit);
	else
		strbuf_addstr(&sb, "null");
	strbuf_addf(&sb, ",\"memory_basis\":\"%s\",\"processes\":[",
		    basis == t.mem_total ? "machine" : "cgroup");
	for (size_t i = 0; i < t.n; i++) {
		if (i)
			strbuf_addstr(&sb, ",");
		add_row(&sb, &t, &t.rows[i], basis, href.buf, href.len, &u);
	}
	/* Compact: polled every two seconds, read by a script. */
	rc = strbuf_addstr(&sb, "]}");
	pd_req_log_note(r, "procs=%zu view=table", t.n);
	if (rc < 0 || sb.failed || href.failed || prefix.failed) {
		pd_top_release(&t);
		strbuf_release(&href);
		strbuf_release(&prefix);
		strbuf_release(&sb);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	remember(all, t.seq, k.site_pid, prefix.buf, &sb);
	pd_top_release(&t);
	strbuf_release(&href);
	strbuf_release(&prefix);
	rc = pd_resp_json_bytes(r, 200, sb.buf, sb.len);
	strbuf_release(&sb);
	return rc;
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
