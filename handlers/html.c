/* The browser view: see handlers/html.h. */
#include "config.h"

#include "handlers/html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/assets.h"
#include "handlers/context.h"
#include "handlers/handlers.h"

/* Nothing but what the page itself holds and procdiag serves: scripts and
 * styles from procdiag's own /assets/ ('self'), fetches (the tables'
 * refreshes) only to procdiag, no fonts or images from anywhere (data:
 * images only, for drawings), forms only to procdiag, no framing. The
 * page's own inline style and script carry a nonce made for this response;
 * anything else inline (markup that escaped escaping) does not run. */
#define PD_HTML_CSP                                                                                \
	"default-src 'none'; style-src 'nonce-%s' 'self'; script-src 'nonce-%s' 'self'; "          \
	"connect-src 'self'; img-src 'self' data:; "                                               \
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
#define NONCE_BYTES 16
#define NONCE_LEN   PD_HTML_NONCE_LEN
_Static_assert(PD_HTML_NONCE_LEN == 2 * NONCE_BYTES + 1, "the nonce's length");

/* The kill button's confirmation (the form is the page's only one). */
static const char confirm_script[] =
	"document.getElementById('kill').addEventListener('submit',function(e){"
	"if(!confirm(this.dataset.msg))e.preventDefault()})";

static const char css[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
	"header{background:#24292e;color:#eee;padding:.5em 1em}"
	"header a{color:#fff;font-weight:bold;text-decoration:none}"
	"main{padding:.5em 1em 2em}h1{font-size:1.3em;margin:.4em 0}"
	"table{border-collapse:collapse;margin:.2em 0;background:#fff}"
	"th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}"
	"th{background:#f0f0f0;font-weight:600}"
	"td{font-family:ui-monospace,monospace;font-size:13px;word-break:break-all}"
	".n{color:#999}ul.tree{list-style:none;padding-left:1.2em;margin:0}"
	"ul.tree li{margin:1px 0}.pid{color:#666;font-size:12px}.u{color:#0a6;font-size:12px}"
	"nav.actions{margin:.5em 0 1em;display:flex;gap:.6em;flex-wrap:wrap;align-items:center}"
	"nav.actions a{padding:2px 8px;border:1px solid #ccc;border-radius:4px;background:#fff;"
	"text-decoration:none}"
	"nav.actions form{margin:0}button.kill{background:#c62828;color:#fff;border:0;"
	"border-radius:4px;padding:3px 10px;cursor:pointer}";

bool pd_h_wants_html(struct pd_req *r)
{
	return pd_req_accepts(r, "text/html");
}

int pd_html_escape(struct strbuf *sb, const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *rep;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		if (strbuf_add(sb, s + start, i - start) < 0 || strbuf_addstr(sb, rep) < 0)
			return -1;
		start = i + 1;
	}
	return strbuf_add(sb, s + start, len - start);
}

static int esc(struct strbuf *sb, const char *s)
{
	return pd_html_escape(sb, s, strlen(s));
}

/* A fresh nonce for one page; on failure the page fails (sb->failed). */
static void make_nonce(struct strbuf *sb, char nonce[NONCE_LEN])
{
	unsigned char raw[NONCE_BYTES];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		sb->failed = true;
		nonce[0] = '\0';
		return;
	}
	hex_encode(raw, sizeof(raw), nonce);
}

void pd_h_asset_href(struct pd_req *r, struct strbuf *sb, const char *name)
{
	const struct pd_asset *a = pd_asset_find(name);

	esc(sb, pd_req_origin(r));
	strbuf_addstr(sb, "/assets/");
	esc(sb, name);
	if (a) {
		const char *etag = pd_asset_etag(a);

		/* The tag without its quotes: a new build, a new URL. */
		strbuf_addstr(sb, "?v=");
		strbuf_add(sb, etag + 1, strlen(etag) - 2);
	}
}

void pd_h_script(struct pd_req *r, struct strbuf *sb, const char *name)
{
	strbuf_addstr(sb, "<script src=\"");
	pd_h_asset_href(r, sb, name);
	strbuf_addstr(sb, "\"></script>");
}

static void page_begin(struct pd_req *r, struct strbuf *sb, const char *title,
		       char nonce[NONCE_LEN])
{
	const struct pd_context *ctx = pd_req_app(r);

	make_nonce(sb, nonce);
	strbuf_addstr(sb, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
			  "<meta name=\"viewport\" content=\"width=device-width\"><title>");
	esc(sb, title);
	strbuf_addf(sb, " \xe2\x80\x94 procdiag</title><style nonce=\"%s\">", nonce);
	strbuf_addstr(sb, css);
	strbuf_addstr(sb, "</style><link rel=\"stylesheet\" href=\"");
	pd_h_asset_href(r, sb, "procdiag.css");
	strbuf_addstr(sb, "\"></head><body><header><a href=\"");
	esc(sb, pd_req_origin(r));
	strbuf_addstr(sb, "/api/processes\">procdiag</a> &middot; ");
	esc(sb, ctx->machine_name);
	strbuf_addstr(sb, "</header><main><h1>");
	esc(sb, title);
	strbuf_addstr(sb, "</h1>");
}

static int page_send(struct pd_req *r, struct strbuf *sb, const char *nonce)
{
	char csp[sizeof(PD_HTML_CSP) + 2 * NONCE_LEN];
	int rc;

	strbuf_addstr(sb, "</main></body></html>\n");
	if (sb->failed) { /* a part of the page is missing */
		strbuf_release(sb);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	snprintf(csp, sizeof(csp), PD_HTML_CSP, nonce, nonce);
	pd_resp_header(r, "Content-Security-Policy", csp);
	rc = pd_resp_bytes(r, 200, "text/html; charset=utf-8", sb->buf, sb->len);
	strbuf_release(sb);
	return rc;
}

void pd_h_page_begin(struct pd_req *r, struct strbuf *sb, const char *title,
		     char nonce[PD_HTML_NONCE_LEN])
{
	page_begin(r, sb, title, nonce);
}

int pd_h_page_send(struct pd_req *r, struct strbuf *sb, const char *nonce)
{
	return page_send(r, sb, nonce);
}

/* An absolute link of ours: rendered as a link showing its path. */
static bool is_our_link(struct pd_req *r, const char *s)
{
	const char *origin = pd_req_origin(r);
	size_t n = strlen(origin);

	return !strncmp(s, origin, n) && s[n] == '/';
}

/* The members that hold procdiag's own links (pd_json_href, and the
 * index's links). Only their strings become links: any other string may
 * be a process's (an environment value, a command line, a path), and one
 * spelling procdiag's URL of a full dump must stay text, not a link
 * planted in the operator's page (docs/SECURITY.md). */
static bool is_link_member(const char *key)
{
	static const char *const names[] = {
		"href", "hrefs", "process", "minidump", "parent", "children", "resourceLocation",
		/* GET /'s links */
		"processes", "diagnostics_processes", "kudu_processes", "site_process", "dumps",
		"rules",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(key, names[i]))
			return true;
	return false;
}

static void render(struct pd_req *r, struct strbuf *sb, json_t *v, int depth, bool link);

static void render_table(struct pd_req *r, struct strbuf *sb, json_t *arr, int depth)
{
	json_t *cols = json_array(), *row, *val;
	size_t i, c;
	const char *key;

	/* Columns: every member name, in order of first appearance. */
	json_array_foreach(arr, i, row) {
		json_object_foreach(row, key, val) {
			bool seen = false;

			for (c = 0; c < json_array_size(cols) && !seen; c++)
				seen = !strcmp(json_string_value(json_array_get(cols, c)), key);
			if (!seen)
				json_array_append_new(cols, json_string(key));
		}
	}
	strbuf_addstr(sb, "<table><tr>");
	for (c = 0; c < json_array_size(cols); c++) {
		strbuf_addstr(sb, "<th>");
		esc(sb, json_string_value(json_array_get(cols, c)));
		strbuf_addstr(sb, "</th>");
	}
	strbuf_addstr(sb, "</tr>");
	json_array_foreach(arr, i, row) {
		json_t *id = json_object_get(row, "id");

		/* A thread of a stacks document (an id and its frames): its row
		 * is the target of the threads table's links (#thread-TID). */
		if (json_is_integer(id) && json_is_array(json_object_get(row, "frames")))
			strbuf_addf(sb, "<tr id=\"thread-%lld\">", (long long)json_integer_value(id));
		else
			strbuf_addstr(sb, "<tr>");
		for (c = 0; c < json_array_size(cols); c++) {
			val = json_object_get(row, json_string_value(json_array_get(cols, c)));
			strbuf_addstr(sb, "<td>");
			if (val)
				render(r, sb, val, depth + 1,
				       is_link_member(json_string_value(json_array_get(cols, c))));
			strbuf_addstr(sb, "</td>");
		}
		strbuf_addstr(sb, "</tr>");
	}
	strbuf_addstr(sb, "</table>");
	json_decref(cols);
}

/* link: v is (in) a member that holds procdiag's links. */
static void render(struct pd_req *r, struct strbuf *sb, json_t *v, int depth, bool link)
{
	const char *key;
	json_t *val;
	size_t i;
	bool objects = true;

	if (depth > 32) { /* our documents are shallow; a bound all the same */
		strbuf_addstr(sb, "&hellip;");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);

		if (link && is_our_link(r, s)) {
			strbuf_addstr(sb, "<a href=\"");
			esc(sb, s);
			strbuf_addstr(sb, "\">");
			esc(sb, s + strlen(pd_req_origin(r)));
			strbuf_addstr(sb, "</a>");
		} else {
			pd_html_escape(sb, s, json_string_length(v));
		}
		break;
	}
	case JSON_INTEGER:
		strbuf_addf(sb, "%lld", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		strbuf_addf(sb, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		strbuf_addstr(sb, "true");
		break;
	case JSON_FALSE:
		strbuf_addstr(sb, "false");
		break;
	case JSON_NULL:
		strbuf_addstr(sb, "<span class=\"n\">&mdash;</span>");
		break;
	case JSON_OBJECT:
		strbuf_addstr(sb, "<table>");
		json_object_foreach(v, key, val) {
			strbuf_addstr(sb, "<tr><th>");
			esc(sb, key);
			strbuf_addstr(sb, "</th><td>");
			render(r, sb, val, depth + 1, is_link_member(key));
			strbuf_addstr(sb, "</td></tr>");
		}
		strbuf_addstr(sb, "</table>");
		break;
	case JSON_ARRAY:
		if (!json_array_size(v)) {
			strbuf_addstr(sb, "<span class=\"n\">none</span>");
			break;
		}
		json_array_foreach(v, i, val)
			objects = objects && json_is_object(val);
		if (objects) {
			render_table(r, sb, v, depth);
			break;
		}
		strbuf_addstr(sb, "<ul>");
		json_array_foreach(v, i, val) {
			strbuf_addstr(sb, "<li>");
			render(r, sb, val, depth + 1, link);
			strbuf_addstr(sb, "</li>");
		}
		strbuf_addstr(sb, "</ul>");
		break;
	}
}

int pd_h_reply(struct pd_req *r, json_t *doc, const char *title)
{
	struct strbuf sb = STRBUF_INIT;
	char nonce[NONCE_LEN];

	if (!doc || !pd_h_wants_html(r))
		return pd_resp_json(r, 200, doc);
	page_begin(r, &sb, title, nonce);
	render(r, &sb, doc, 0, false);
	json_decref(doc);
	return page_send(r, &sb, nonce);
}

/* JSON for a <script type="application/json"> block: < > & as \u escapes
 * (they occur only inside strings), so nothing in it ends the block. */
static void json_for_script(struct strbuf *sb, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);

	if (!s) {
		sb->failed = true;
		return;
	}
	for (const char *p = s; *p; p++) {
		if (*p == '<' || *p == '>' || *p == '&')
			strbuf_addf(sb, "\\u%04x", (unsigned)*p);
		else
			strbuf_addch(sb, *p);
	}
	free(s);
}

int pd_h_reply_flame(struct pd_req *r, json_t *flame, json_t *doc, const char *title)
{
	struct strbuf sb = STRBUF_INIT;
	char nonce[NONCE_LEN];

	page_begin(r, &sb, title, nonce);
	strbuf_addstr(&sb, "<section id=\"flame\" class=\"flame\" aria-label=\"Flame graph\">"
			   "<p>Flame graph (root at the top; widths are samples). Hover or focus a "
			   "frame for its module and samples; click it (or Enter) to zoom, click "
			   "<b>all</b> to zoom out.</p></section>"
			   "<script type=\"application/json\" id=\"flame-data\">");
	json_for_script(&sb, flame);
	strbuf_addstr(&sb, "</script>");
	pd_h_script(r, &sb, "flame.js");
	if (doc)
		render(r, &sb, doc, 0, false);
	json_decref(flame);
	json_decref(doc);
	return page_send(r, &sb, nonce);
}

static void process_href(struct pd_req *r, struct strbuf *sb, int pid, const char *tail)
{
	strbuf_addstr(sb, pd_req_origin(r));
	strbuf_addstr(sb, pd_req_base(r));
	strbuf_addf(sb, "/%d%s", pid, tail);
}

static void action(struct pd_req *r, struct strbuf *sb, int pid, const char *tail,
		   const char *label)
{
	struct strbuf href = STRBUF_INIT;

	process_href(r, &href, pid, tail);
	strbuf_addstr(sb, "<a href=\"");
	esc(sb, href.buf);
	strbuf_addstr(sb, "\">");
	strbuf_addstr(sb, label);
	strbuf_addstr(sb, "</a>");
	sb->failed |= href.failed; /* the page is incomplete without it */
	strbuf_release(&href);
}

int pd_h_reply_process(struct pd_req *r, json_t *doc, int pid)
{
	struct strbuf sb = STRBUF_INIT, title = STRBUF_INIT, stop = STRBUF_INIT;
	char nonce[NONCE_LEN];
	const char *name;

	if (!doc || !pd_h_wants_html(r))
		return pd_resp_json(r, 200, doc);
	name = json_string_value(json_object_get(doc, "name"));
	strbuf_addf(&title, "%s (%d)", name ? name : "?", pid);
	page_begin(r, &sb, title.buf, nonce);
	strbuf_addstr(&sb, "<nav class=\"actions\">");
	action(r, &sb, pid, "/stacks", "Stacks");
	action(r, &sb, pid, "/threads", "Threads");
	action(r, &sb, pid, "/modules", "Modules");
	action(r, &sb, pid, "/environments/all", "Environment");
	strbuf_addstr(&sb, "<span>Dump:</span>");
	action(r, &sb, pid, "/dump", "mini");
	action(r, &sb, pid, "/dump?dumpType=1", "mini + data");
	action(r, &sb, pid, "/dump?dumpType=2", "full");
	action(r, &sb, pid, "/dump?dumpType=2&format=zip", "full + binaries (zip)");
	/* The kill button asks first; the POST goes to /stop, which answers
	 * a page's form with a redirect to the list. */
	process_href(r, &stop, pid, "/stop");
	strbuf_addstr(&sb, "<form id=\"kill\" method=\"post\" action=\"");
	esc(&sb, stop.buf);
	strbuf_addstr(&sb, "\" data-msg=\"Kill ");
	esc(&sb, title.buf);
	strbuf_addstr(&sb, " and all its descendants?\">"
			   "<button class=\"kill\" type=\"submit\">Kill&hellip;</button></form>");
	strbuf_addf(&sb, "<script nonce=\"%s\">%s</script></nav>", nonce, confirm_script);
	pd_h_process_body(r, &sb, doc, pid);
	pd_h_script(r, &sb, "table.js");
	json_decref(doc);
	sb.failed |= title.failed | stop.failed;
	strbuf_release(&title);
	strbuf_release(&stop);
	return page_send(r, &sb, nonce);
}

static int cmp_node_ppid(const void *a, const void *b)
{
	const struct pd_h_tree_node *x = *(const struct pd_h_tree_node *const *)a;
	const struct pd_h_tree_node *y = *(const struct pd_h_tree_node *const *)b;

	if (x->ppid != y->ppid)
		return (x->ppid > y->ppid) - (x->ppid < y->ppid);
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* nodes are sorted by pid. */
static bool listed(const struct pd_h_tree_node *nodes, size_t n, int pid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (nodes[mid].pid == pid)
			return true;
		if (nodes[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The first index of byp (sorted by ppid) whose ppid is >= ppid. */
static size_t first_child(const struct pd_h_tree_node *const *byp, size_t n, int ppid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (byp[mid]->ppid < ppid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void tree_node(struct pd_req *r, struct strbuf *sb, const struct pd_h_tree_node *e)
{
	struct strbuf href = STRBUF_INIT;

	process_href(r, &href, e->pid, "");
	strbuf_addstr(sb, "<li><a href=\"");
	esc(sb, href.buf);
	strbuf_addstr(sb, "\">");
	pd_html_escape(sb, e->name, e->name_len);
	strbuf_addf(sb, "</a> <span class=\"pid\">%d</span> <span class=\"u\">", e->pid);
	esc(sb, e->user);
	strbuf_addstr(sb, "</span>");
	sb->failed |= href.failed; /* the page is incomplete without it */
	strbuf_release(&href);
}

int pd_h_reply_tree(struct pd_req *r, const struct pd_h_tree_node *nodes, size_t n, bool all)
{
	struct strbuf sb = STRBUF_INIT;
	char nonce[NONCE_LEN];
	const struct pd_h_tree_node **byp = malloc((n ? n : 1) * sizeof(*byp));
	struct frame {
		const struct pd_h_tree_node *node;
		size_t next; /* index into byp of the next child to visit */
	} *stack = malloc((n + 1) * sizeof(*stack));
	size_t depth = 0;

	if (!byp || !stack) {
		free(byp);
		free(stack);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	for (size_t i = 0; i < n; i++)
		byp[i] = &nodes[i];
	qsort(byp, n, sizeof(*byp), cmp_node_ppid);

	page_begin(r, &sb, all ? "Processes (all users)" : "Processes", nonce);
	strbuf_addf(&sb, "<p>%zu processes, by parent. <a href=\"", n);
	esc(&sb, pd_req_origin(r));
	esc(&sb, pd_req_base(r));
	strbuf_addstr(&sb, all ? "?view=tree\">Only the site&#39;s processes</a>"
			       : "?view=tree&amp;allUsers=true\">All users</a>");
	/* The live table (handlers/top.c) is the list's default page. */
	strbuf_addstr(&sb, " &middot; <a href=\"");
	esc(&sb, pd_req_origin(r));
	esc(&sb, pd_req_base(r));
	strbuf_addstr(&sb, all ? "?allUsers=true\">Table view</a>" : "\">Table view</a>");
	strbuf_addstr(&sb, "</p><ul class=\"tree\">");
	/* Roots: processes whose parent is not listed. Each subtree is walked
	 * with an explicit stack (a tree can be deep); a node is visited once,
	 * as the snapshot has no cycles among listed pids. */
	for (size_t i = 0; i < n; i++) {
		if (listed(nodes, n, nodes[i].ppid) && nodes[i].ppid != nodes[i].pid)
			continue;
		tree_node(r, &sb, &nodes[i]);
		stack[depth++] = (struct frame){&nodes[i], first_child(byp, n, nodes[i].pid)};
		strbuf_addstr(&sb, "<ul class=\"tree\">");
		while (depth) {
			struct frame *f = &stack[depth - 1];
			size_t lo = f->next;

			/* The next child: byp is sorted by ppid, so children are a run. */
			if (lo < n && byp[lo]->ppid == f->node->pid && byp[lo]->pid != f->node->pid &&
			    depth <= n) {
				f->next = lo + 1;
				tree_node(r, &sb, byp[lo]);
				strbuf_addstr(&sb, "<ul class=\"tree\">");
				stack[depth++] = (struct frame){byp[lo], first_child(byp, n, byp[lo]->pid)};
			} else {
				strbuf_addstr(&sb, "</ul></li>");
				depth--;
			}
		}
	}
	strbuf_addstr(&sb, "</ul>");
	free(byp);
	free(stack);
	return page_send(r, &sb, nonce);
}

int pd_h_redirect_to_list(struct pd_req *r)
{
	return pd_h_redirect_to_base(r, "Killed.");
}

int pd_h_redirect_to_base(struct pd_req *r, const char *done)
{
	struct strbuf loc = STRBUF_INIT;
	char body[128];
	int rc;

	snprintf(body, sizeof(body), "<!doctype html><title>%s</title>%s\n", done, done);

	strbuf_addstr(&loc, pd_req_origin(r));
	strbuf_addstr(&loc, pd_req_base(r));
	if (loc.failed) {
		strbuf_release(&loc);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	pd_resp_header(r, "Location", loc.buf);
	rc = pd_resp_bytes(r, 303, "text/html; charset=utf-8", body, strlen(body));
	strbuf_release(&loc);
	return rc;
}
