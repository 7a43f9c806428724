/* GET /processes, GET /processes/{id}, DELETE /processes/{id}. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/killtree.h"
#include "lib/modules.h"
#include "lib/proc.h"
#include "lib/snapshot.h"
#include "lib/sysclock.h"
#include "lib/users.h"

static const struct pd_context *ctx_of(struct pd_req *r)
{
	return pd_req_app(r);
}

int pd_h_open_visible(const struct pd_context *ctx, int pid, uint64_t starttime,
		      struct pd_proc *p)
{
	int rc = pd_proc_open(pid, p);

	/* Out of scope answers exactly like a process that does not exist, and
	 * so does a pid that now names a later process. */
	if (rc == 0 && (!pd_scope_has(&ctx->config->scope, p->uid) ||
			(starttime && p->stat.starttime != starttime))) {
		pd_proc_close(p);
		rc = -ESRCH;
	}
	return rc;
}

/* Id 0: the site process. Its 404s name no pid: a client that may not see
 * the site process (out of its scope) learns nothing about it. */
static int open_site(struct pd_req *r, struct pd_proc *p)
{
	const struct pd_context *ctx = ctx_of(r);
	int pid, rc = pd_context_site_pid(ctx, &pid);

	if (rc == -ENOENT) {
		pd_resp_problem(r, 404, "id",
				"Id 0 means the site process, and none is configured: set "
				"site_pid_file to the file that holds the site's pid.");
		return -1;
	}
	if (rc == 0)
		rc = pd_h_open_visible(ctx, pid, 0, p);
	if (rc == -ENOMEM)
		pd_resp_problem(r, 500, NULL, "Out of memory.");
	else if (rc < 0)
		pd_resp_problem(r, 404, "id", "The site process (site_pid_file) is not running.");
	return rc < 0 ? -1 : 0;
}

int pd_h_open_process(struct pd_req *r, struct pd_proc *p)
{
	const struct pd_context *ctx = ctx_of(r);
	const char *id = pd_req_param(r, "id");
	int pid, rc;

	/* -1 is the parent link of a process the kernel started (ppid 0). */
	if (id && !strcmp(id, "-1")) {
		pd_h_not_running(r, -1);
		return -1;
	}
	if (!id || parse_pid(id, strlen(id), &pid) < 0) {
		pd_resp_problem(r, 400, "id", "The id must be a process id (0 to 4194304), not '%s'.",
				id ? id : "");
		return -1;
	}
	if (pid == 0)
		return open_site(r, p);
	rc = pd_h_open_visible(ctx, pid, 0, p);
	if (rc < 0) {
		if (rc == -ENOMEM)
			pd_resp_problem(r, 500, NULL, "Out of memory.");
		else
			pd_h_not_running(r, pid);
		return -1;
	}
	return 0;
}

int pd_h_refuse_procdiag(struct pd_req *r, const struct pd_proc *p)
{
	static const char *const by[] = {"pid", "uid", "name"};
	const char *param = "id";

	if (!pd_proc_is_procdiag(p->pid, p->stat.ppid))
		return 0;
	/* The dotnet-monitor routes choose by pid, uid or name, or by none of
	 * them: the site process, which the configuration names. */
	if (!pd_req_param(r, "id")) {
		param = NULL;
		for (size_t i = 0; i < sizeof(by) / sizeof(by[0]) && !param; i++) {
			const char *v = pd_req_query(r, by[i]);

			if (v && *v)
				param = by[i];
		}
	}
	pd_resp_problem(r, 403, param,
			"Process %d is procdiag or one of its helpers: its memory holds other "
			"clients' requests, so it is never dumped, unwound or killed.",
			p->pid);
	return -1;
}

/* ?view=: table (the live table's JSON), tree (a browser's page as the tree
 * by parent; JSON clients get the list as without it), or none. */
enum view { VIEW_DEFAULT, VIEW_TABLE, VIEW_TREE };

static int parse_view(struct pd_req *r, enum view *view)
{
	const char *v = pd_req_query(r, "view");

	*view = VIEW_DEFAULT;
	if (!v)
		return 0;
	if (!strcmp(v, "table"))
		*view = VIEW_TABLE;
	else if (!strcmp(v, "tree"))
		*view = VIEW_TREE;
	else
		return pd_resp_problem(r, 400, "view", "view must be table or tree, not '%s'.", v),
		       -1;
	return 0;
}

struct list_item {
	const struct pd_proc_entry *e;
	char key[PD_COMM_MAX];
};

static int cmp_items(const void *a, const void *b)
{
	const struct list_item *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : (x->e->pid > y->e->pid) - (x->e->pid < y->e->pid);
}

static void lower_key(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
	dst[len] = 0;
}

/* The rendered lists, kept for the next requests. A list item depends only
 * on a process's pid, comm and uid (and the request's origin and prefix,
 * in the hrefs), so when a new scan finds the same set of those, the bytes
 * of the last rendering are exactly what a new one would print. That is the
 * usual case, and it spares the JSON building and printing, which cost more
 * than the scan itself. `key` holds the request-side inputs (origin, prefix,
 * allUsers, the site's uid), `ids` the process-side ones. */
#define LIST_CACHE_SLOTS 4
struct list_cache_entry {
	char *key;
	char *ids;
	size_t ids_len;
	char *body;
	size_t len;
};
static struct list_cache_entry list_cache[LIST_CACHE_SLOTS];
static unsigned list_cache_next;
static pthread_mutex_t list_cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* A copy of the cached body for (key, ids), or NULL. */
static char *list_cache_get(const char *key, const struct strbuf *ids, size_t *len)
{
	char *body = NULL;

	pthread_mutex_lock(&list_cache_lock);
	for (int i = 0; i < LIST_CACHE_SLOTS; i++) {
		struct list_cache_entry *c = &list_cache[i];

		if (c->key && !strcmp(c->key, key) && c->ids_len == ids->len &&
		    !memcmp(c->ids, ids->buf, ids->len)) {
			body = malloc(c->len + 1);
			if (body) {
				memcpy(body, c->body, c->len + 1);
				*len = c->len;
			}
			break;
		}
	}
	pthread_mutex_unlock(&list_cache_lock);
	return body;
}

/* Keeps copies; a failure only costs a later re-rendering. */
static void list_cache_put(const char *key, const struct strbuf *ids, const char *body, size_t len)
{
	struct list_cache_entry c = {strdup(key), malloc(ids->len + 1), ids->len, malloc(len + 1), len};
	struct list_cache_entry old;

	if (!c.key || !c.ids || !c.body) {
		free(c.key);
		free(c.ids);
		free(c.body);
		return;
	}
	memcpy(c.ids, ids->buf, ids->len + 1);
	memcpy(c.body, body, len + 1);
	pthread_mutex_lock(&list_cache_lock);
	for (int i = 0; i < LIST_CACHE_SLOTS; i++) {
		/* One entry per key: replace the stale rendering. */
		if (list_cache[i].key && !strcmp(list_cache[i].key, key)) {
			list_cache_next = (unsigned)i;
			break;
		}
	}
	old = list_cache[list_cache_next];
	list_cache[list_cache_next] = c;
	list_cache_next = (list_cache_next + 1) % LIST_CACHE_SLOTS;
	pthread_mutex_unlock(&list_cache_lock);
	free(old.key);
	free(old.ids);
	free(old.body);
}

bool pd_h_listed(const struct pd_context *ctx, bool all, uid_t self_uid, uid_t site_uid,
		 const struct pd_proc_entry *e)
{
	if (!pd_scope_has(&ctx->config->scope, e->uid))
		return false;
	return all || e->uid == self_uid || e->uid == site_uid;
}

uid_t pd_h_site_uid(const struct pd_snapshot *snap, int site_pid)
{
	const struct pd_proc_entry *se = site_pid > 0 ? pd_snapshot_find(snap, site_pid) : NULL;

	return se ? se->uid : getuid();
}

int pd_h_site_pid(const struct pd_context *ctx)
{
	int pid;

	return pd_context_site_pid(ctx, &pid) == 0 ? pid : 0;
}

/* The listed entries of snap (pointers into it), sorted as the list is;
 * and, in ids, their pid, uid and comm in pid order. */
static struct list_item *select_items(struct pd_req *r, const struct pd_snapshot *snap, bool all,
				      uid_t self_uid, uid_t site_uid, size_t *count,
				      struct strbuf *ids)
{
	const struct pd_context *ctx = ctx_of(r);
	struct list_item *items = malloc((snap->n ? snap->n : 1) * sizeof(*items));
	size_t n = 0;

	if (!items)
		return NULL;
	for (size_t i = 0; i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];

		if (!pd_h_listed(ctx, all, self_uid, site_uid, e))
			continue;
		/* Binary, fixed-width pid, uid and length, then the comm: compared
		 * with memcmp only, and far cheaper than printf for 200 entries. */
		struct {
			int pid;
			uid_t uid;
			size_t len;
		} id = {e->pid, e->uid, e->comm_len};

		if (strbuf_add(ids, &id, sizeof(id)) < 0 ||
		    strbuf_add(ids, e->comm, e->comm_len) < 0) {
			free(items);
			return NULL;
		}
		items[n].e = e;
		lower_key(items[n].key, e->comm, e->comm_len);
		n++;
	}
	*count = n;
	return items;
}

static char *render_list(struct pd_req *r, struct list_item *items, size_t n, size_t *len)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	qsort(items, n, sizeof(*items), cmp_items);
	for (size_t i = 0; i < n; i++) {
		json_t *o = pd_proc_summary_json(r, items[i].e);

		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return pd_json_render(arr, len);
}

/* The browser's list: a tree by parent (items in pid order). */
static int list_page(struct pd_req *r, const struct list_item *items, size_t n, bool all)
{
	struct pd_h_tree_node *nodes = calloc(n ? n : 1, sizeof(*nodes));
	struct strbuf *names = calloc(n ? n : 1, sizeof(*names));
	char (*users)[64] = calloc(n ? n : 1, sizeof(*users));
	int rc;

	if (!nodes || !names || !users) {
		rc = pd_resp_problem(r, 500, NULL, "Out of memory.");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pd_proc_entry *e = items[i].e;

		strbuf_init(&names[i]);
		utf8_escape(&names[i], e->comm, e->comm_len);
		if (pd_user_name(e->uid, users[i], sizeof(users[i])) < 0)
			snprintf(users[i], sizeof(users[i]), "%u", (unsigned)e->uid);
		nodes[i] = (struct pd_h_tree_node){e->pid, e->ppid, names[i].buf,
						   names[i].len, users[i]};
	}
	rc = pd_h_reply_tree(r, nodes, n, all);
out:
	for (size_t i = 0; names && i < n; i++)
		strbuf_release(&names[i]);
	free(nodes);
	free(names);
	free(users);
	return rc;
}

int h_process_list(struct pd_req *r)
{
	const struct pd_context *ctx = ctx_of(r);
	struct pd_snapshot *snap = NULL;
	struct strbuf key = STRBUF_INIT, ids = STRBUF_INIT;
	struct list_item *items = NULL;
	char *body = NULL;
	size_t len = 0, n = 0;
	bool all, hit = false;
	enum view view;
	uid_t self_uid = getuid(), site_uid = self_uid;
	int rc;

	/* The site's processes (the responder's uid or the site process's);
	 * ?allUsers=true: every process in scope. */
	if (pd_h_query_bool(r, "allUsers", false, &all) < 0 || parse_view(r, &view) < 0)
		return 0;
	/* The live table (handlers/top.c): its JSON for any client, its page
	 * for a browser unless it asked for the tree. */
	if (view == VIEW_TABLE)
		return pd_h_top_json(r, all);
	if (view == VIEW_DEFAULT && pd_h_wants_html(r))
		return pd_h_top_page(r, all);
	rc = pd_snapshot_get_within((int64_t)ctx->config->list_max_age_ms * 1000000, &snap);
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	if (!all)
		site_uid = pd_h_site_uid(snap, pd_h_site_pid(ctx));
	if (strbuf_addf(&key, "%s%s %d %u", pd_req_origin(r), pd_req_base(r), all,
			(unsigned)site_uid) < 0)
		goto oom;
	items = select_items(r, snap, all, self_uid, site_uid, &n, &ids);
	if (!items)
		goto oom;
	if (pd_h_wants_html(r)) {
		rc = list_page(r, items, n, all);
		free(items);
		strbuf_release(&key);
		strbuf_release(&ids);
		pd_snapshot_unref(snap);
		return rc;
	}
	body = list_cache_get(key.buf, &ids, &len);
	hit = body != NULL;
	if (!body) {
		body = render_list(r, items, n, &len);
		if (!body)
			goto oom;
		list_cache_put(key.buf, &ids, body, len);
	}
	pd_req_log_note(r, "procs=%zu scan_us=%lld%s", n, (long long)(snap->scan_ns / 1000),
			hit ? " same_as_last" : "");
	free(items);
	strbuf_release(&key);
	strbuf_release(&ids);
	pd_snapshot_unref(snap);
	rc = pd_resp_json_bytes(r, 200, body, len);
	free(body);
	return rc;
oom:
	free(items);
	strbuf_release(&key);
	strbuf_release(&ids);
	pd_snapshot_unref(snap);
	return pd_resp_problem(r, 500, NULL, "Out of memory.");
}

/* For pd_h_process_body: "_page": the threads' table rows (and the start
 * of their watch: lib/top.h), CPU time and uptime in seconds. */
static int add_page_figures(struct pd_req *r, struct pd_proc *p, json_t *o)
{
	struct timespec boot;
	int64_t interval, up;
	json_t *rows = pd_h_thread_rows(r, p, &interval);

	clock_gettime(CLOCK_BOOTTIME, &boot);
	up = (int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec - pd_ticks_to_ns(p->stat.starttime);
	return rows ? json_object_set_new(
			      o, "_page",
			      json_pack("{s:o, s:f, s:f}", "threads", rows, "cpu_seconds",
					(double)pd_ticks_to_ns(p->stat.utime + p->stat.stime) / 1e9,
					"uptime_seconds", up > 0 ? (double)up / 1e9 : 0.0))
		    : -1;
}

int h_process_detail(struct pd_req *r)
{
	struct pd_snapshot *snap = NULL;
	struct pd_proc p;
	json_t *o;
	int rc, pid;

	if (pd_h_open_process(r, &p) < 0)
		return 0;
	rc = pd_snapshot_get(&snap);
	if (rc < 0) {
		pd_proc_close(&p);
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	}
	pid = p.pid;
	o = pd_proc_detail_json(r, &p, snap);
	pd_snapshot_unref(snap);
	/* The page's own figures (never part of the JSON answer). */
	if (o && pd_h_wants_html(r) && add_page_figures(r, &p, o) < 0) {
		json_decref(o);
		o = NULL;
	}
	pd_proc_close(&p);
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply_process(r, o, pid);
}

int h_process_kill(struct pd_req *r)
{
	const struct pd_context *ctx = ctx_of(r);
	struct pd_kill_result res = PD_KILL_RESULT_INIT;
	struct pd_snapshot *snap = NULL;
	struct pd_proc p;
	json_t *alive;
	int rc, pid;

	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	if (pd_h_refuse_procdiag(r, &p) < 0) {
		pd_proc_close(&p);
		return 0;
	}
	if (pd_stat_is_kthread(&p.stat)) {
		pd_proc_close(&p);
		return pd_resp_problem(r, 403, "id",
				       "Process %d is a kernel thread: it cannot be killed.", pid);
	}
	/* A fresh scan, not the shared one: a child forked just before this
	 * request must be part of the tree. */
	rc = pd_snapshot_scan(&snap);
	if (rc < 0) {
		pd_proc_close(&p);
		return pd_resp_problem(r, 500, NULL, "Cannot read /proc: %s.", strerror(-rc));
	}
	rc = pd_kill_tree(snap, pid, p.stat.starttime, &ctx->config->scope, 2000, &res);
	pd_snapshot_unref(snap);
	pd_proc_close(&p);
	pd_req_log_note(r, "killed=%zu skipped=%zu", res.nsignalled, res.nskipped);
	switch (rc) {
	case 0:
		pd_kill_result_release(&res);
		/* The browser view's kill button posts a form: show the list. */
		if (pd_h_wants_html(r))
			return pd_h_redirect_to_list(r);
		return pd_resp_no_content(r);
	case -ESRCH:
		pd_kill_result_release(&res);
		return pd_h_not_running(r, pid);
	case -EPERM: /* refused before anything was signalled */
		pd_kill_result_release(&res);
		return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 0, "id",
				       "Process %d is protected: it is pid 1, procdiag itself or one "
				       "of its ancestors.", pid);
	case -EBUSY: {
		/* pd_kill_tree's own meaning (some survived), not another
		 * tracer's: an internal failure. */
		struct strbuf sb = STRBUF_INIT;

		alive = json_array();
		for (size_t i = 0; i < res.nalive; i++) {
			json_array_append_new(alive, json_integer(res.alive[i]));
			strbuf_addf(&sb, "%s%d", i ? ", " : "", res.alive[i]);
		}
		rc = pd_resp_problem_ext(r, 500, NULL, json_pack("{s:o}", "alive", alive),
					 "Some processes of the tree of %d are still running: %s.", pid,
					 sb.buf);
		strbuf_release(&sb);
		pd_kill_result_release(&res);
		return rc;
	}
	default:
		pd_kill_result_release(&res);
		return pd_h_problem_kind(r, pd_dump_error_from_errno(rc, false), 0, NULL, "Cannot kill process %d: %s.", pid,
					  strerror(-rc));
	}
}
