/* The browser view: the same resources as JSON, rendered as small
 * self-contained HTML pages when the client prefers text/html (a browser's
 * Accept header does; curl's and scripts' do not).
 *
 * Pages make no external requests (inline CSS, one inline script for the
 * kill confirmation, scripts and styles procdiag serves itself from
 * GET /assets/{name}, a Content-Security-Policy that allows nothing else:
 * the inline style and script carry a nonce made for each response, so no
 * other inline script runs; script-src, style-src and connect-src 'self'),
 * and every byte that comes from a process is escaped. */
#ifndef PD_HTML_H
#define PD_HTML_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

struct pd_req;
struct pd_proc;
struct strbuf;

/* Does this request want a page rather than JSON? */
bool pd_h_wants_html(struct pd_req *r);

/* Answers doc (stolen) as JSON, or, for a browser, as a page titled title
 * that renders it: objects as tables, arrays of objects as tables with a
 * column per member, absolute links as links. */
int pd_h_reply(struct pd_req *r, json_t *doc, const char *title);

/* Like pd_h_reply() for one process's detail, with its actions on top:
 * stacks, environment, dumps (mini, full, zip) and a kill button that asks
 * first. */
int pd_h_reply_process(struct pd_req *r, json_t *doc, int pid);

/* A flame graph page: flame (a speedscope file of lib/fold.h, stolen) drawn
 * by /assets/flame.js from a JSON block in the page, then doc (stolen; NULL:
 * none) rendered as pd_h_reply() does. */
int pd_h_reply_flame(struct pd_req *r, json_t *flame, json_t *doc, const char *title);

/* The list as a tree by parent. Each node: pid, ppid, name, user; nodes
 * sorted by pid. */
struct pd_h_tree_node {
	int pid, ppid;
	const char *name; /* UTF-8 (already escaped) */
	size_t name_len;
	const char *user;
};
int pd_h_reply_tree(struct pd_req *r, const struct pd_h_tree_node *nodes, size_t n, bool all);

/* After a kill asked for by the page's form: 303 to the list. */
int pd_h_redirect_to_list(struct pd_req *r);
/* After a form's action (done: "Deleted.", plain text): 303 to the
 * route's base (the list it came from). */
int pd_h_redirect_to_base(struct pd_req *r, const char *done);

/* A page of a handler's own making: its head (style, header, <h1>title)
 * with a fresh nonce for its inline script, then pd_h_page_send() closes,
 * sends it with the Content-Security-Policy naming that nonce and
 * releases sb (a failed sb: a 500). */
#define PD_HTML_NONCE_LEN 33
void pd_h_page_begin(struct pd_req *r, struct strbuf *sb, const char *title,
		     char nonce[PD_HTML_NONCE_LEN]);
int pd_h_page_send(struct pd_req *r, struct strbuf *sb, const char *nonce);

/* dumps.c: the Dumps page (GET /api/dumps for a browser): entries
 * (pd_store_list's, with href; stolen) as a table with download links and
 * delete buttons. */
int pd_h_reply_dumps(struct pd_req *r, json_t *entries);

/* The URL of the asset called name (handlers/assets.h), escaped for an
 * attribute: origin + /assets/name?v=its ETag, so a new build's page never
 * gets an old script from the browser's cache. */
void pd_h_asset_href(struct pd_req *r, struct strbuf *sb, const char *name);
/* <script src="that URL"></script>: scripts run from procdiag's own
 * assets (the policy's script-src 'self'). Each page's head already
 * links procdiag.css. */
void pd_h_script(struct pd_req *r, struct strbuf *sb, const char *name);

/* handlers/procpage.c: the process page's threads (id, name, state, cpu
 * (% of one core, lib/top.h's watched processes), cpu_time_seconds, href,
 * stack) as a JSON array (NULL: out of memory); the same as the light JSON
 * of GET /{id}/threads?view=table; and the page's body for a detail
 * document that has "_page": {threads, cpu_seconds, uptime_seconds}. */
json_t *pd_h_thread_rows(struct pd_req *r, struct pd_proc *p, int64_t *interval_ns);
int pd_h_thread_table_json(struct pd_req *r, struct pd_proc *p);
void pd_h_process_body(struct pd_req *r, struct strbuf *sb, json_t *doc, int pid);

/* HTML-escapes s (& < > " ') into sb. */
int pd_html_escape(struct strbuf *sb, const char *s, size_t len);

#endif
