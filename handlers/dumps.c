/* The dump store's routes (docs/STORE.md, docs/API.md):
 *
 *   GET    /api/dumps                 the entries, newest first (a browser: the Dumps page)
 *   GET    /api/dumps/{id}[?file=F]   an entry's main file (or file F), as a live dump
 *                                     is downloaded: handlers/dump.c's pd_h_send_file
 *   DELETE /api/dumps/{id}            204
 *   POST   /api/dumps/{id}/delete     the Dumps page's delete button (303 to the list)
 *   POST   /api/dumps/{id}/egress?egressProvider=NAME[&file=F]
 *                                     a copy to an egress provider, as an operation (202)
 *
 * lib/store.h does the work; this only translates. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "lib/operations.h"
#include "lib/store.h"

/* The store, or a 404 answered and NULL. */
static struct pd_store *store_of(struct pd_req *r)
{
	const struct pd_context *ctx = pd_req_app(r);

	if (!ctx->store)
		pd_resp_problem(r, 404, NULL,
				"There is no dump store: no store_dir is configured "
				"(docs/STORE.md).");
	return ctx->store;
}

/* The {id} capture, or a 400 naming it answered and NULL. */
static const char *id_of(struct pd_req *r)
{
	const char *id = pd_req_param(r, "id");

	if (!pd_store_id_valid(id)) {
		pd_resp_problem(r, 400, "id",
				"id must be a stored dump's id (YYYYMMDDTHHMMSSZ-PID-XXXX, as "
				"GET /api/dumps lists them).");
		return NULL;
	}
	return id;
}

/* Is the entry (its meta) about a process of the scope? An entry outside
 * it is answered exactly as one that does not exist (docs/STORE.md,
 * "Scope"). */
static bool in_scope(struct pd_req *r, json_t *meta)
{
	const struct pd_context *ctx = pd_req_app(r);
	json_t *u = json_object_get(meta, "uid");

	return pd_scope_has_recorded(&ctx->config->scope, json_is_integer(u),
				     (long long)json_integer_value(u));
}

/* Opens file (NULL: the main file) of entry id when the entry is in the
 * scope: 0 with *fd and *meta (the caller's), or a problem answered (404
 * naming id for a missing or out-of-scope entry, 404 naming file for a
 * file the entry lacks) and -1. */
static int open_visible(struct pd_req *r, struct pd_store *s, const char *id, const char *file,
			int *fd, json_t **meta)
{
	json_t *m = NULL;
	int rc = pd_store_open_entry(s, id, file, fd, &m);

	if (rc == 0 && !in_scope(r, m)) {
		close(*fd);
		rc = -ENOENT;
	} else if (rc == -ENOENT && file && pd_store_open_entry(s, id, NULL, fd, &m) == 0) {
		bool seen = in_scope(r, m);

		close(*fd);
		json_decref(m);
		if (seen)
			return pd_resp_problem(r, 404, "file", "Stored dump %s has no file '%s'.",
					       id, file),
			       -1;
		m = NULL;
	}
	if (rc < 0) {
		json_decref(m);
		if (rc == -ENOENT)
			pd_resp_problem(r, 404, "id", "There is no stored dump %s.", id);
		else
			pd_resp_problem(r, 500, NULL, "Cannot open stored dump %s: %s.", id,
					strerror(-rc));
		return -1;
	}
	*meta = m;
	return 0;
}

/* Each entry with its links: href (the main file), files[].href. */
static int add_links(struct pd_req *r, json_t *entries)
{
	size_t i, j;
	json_t *e, *f;

	json_array_foreach(entries, i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));

		if (!id || !pd_store_id_valid(id))
			continue;
		if (json_object_set_new(e, "href", pd_json_href(r, "/%s", id)) < 0)
			return -ENOMEM;
		json_array_foreach(json_object_get(e, "files"), j, f)
		{
			const char *name = json_string_value(json_object_get(f, "name"));

			if (name && pd_store_name_valid(name) &&
			    json_object_set_new(f, "href", pd_json_href(r, "/%s?file=%s", id, name)) <
				    0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The delete buttons ask first (one listener per form of the page). */
static const char confirm_delete[] =
	"document.querySelectorAll('form.del').forEach(function(f){"
	"f.addEventListener('submit',function(e){if(!confirm(this.dataset.msg))"
	"e.preventDefault()})})";

static const char *str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static void cell_text(struct strbuf *sb, const char *s)
{
	strbuf_addstr(sb, "<td>");
	pd_html_escape(sb, s, strlen(s));
	strbuf_addstr(sb, "</td>");
}

static void add_link(struct strbuf *sb, const char *href, const char *text)
{
	strbuf_addstr(sb, "<a href=\"");
	pd_html_escape(sb, href, strlen(href));
	strbuf_addstr(sb, "\">");
	pd_html_escape(sb, text, strlen(text));
	strbuf_addstr(sb, "</a>");
}

static void dump_row(struct strbuf *sb, json_t *e)
{
	const char *id = str(e, "id"), *href = str(e, "href");
	json_t *files = json_object_get(e, "files"), *f;
	uint64_t size = (uint64_t)json_integer_value(json_object_get(e, "size"));
	uint64_t bytes = (uint64_t)json_integer_value(json_object_get(e, "bytes"));
	char human[32], what[160];
	size_t i;

	strbuf_addstr(sb, "<tr>");
	cell_text(sb, str(e, "created"));
	strbuf_addstr(sb, "<td>");
	pd_html_escape(sb, str(e, "process"), strlen(str(e, "process")));
	strbuf_addf(sb, " <span class=\"pid\">%lld</span></td>",
		    (long long)json_integer_value(json_object_get(e, "pid")));
	cell_text(sb, str(e, "kind"));
	strbuf_addstr(sb, "<td>");
	pd_html_escape(sb, str(e, "trigger"), strlen(str(e, "trigger")));
	if (json_is_string(json_object_get(e, "rule"))) {
		strbuf_addstr(sb, ": ");
		pd_html_escape(sb, str(e, "rule"), strlen(str(e, "rule")));
	}
	strbuf_addstr(sb, "</td>");
	snprintf(what, sizeof(what), "%s%s%s", str(e, "dumpType"), *str(e, "format") ? " " : "",
		 str(e, "format"));
	cell_text(sb, what);
	format_bytes(size, true, human, sizeof(human));
	strbuf_addf(sb, "<td title=\"%llu bytes (%llu on disk)\">%s</td>",
		    (unsigned long long)size, (unsigned long long)bytes, human);
	strbuf_addstr(sb, "<td>");
	if (*href)
		add_link(sb, href, "download");
	json_array_foreach(files, i, f)
	{
		if (i == 0 || !json_is_string(json_object_get(f, "href")))
			continue; /* the main file is the download */
		strbuf_addstr(sb, " &middot; ");
		add_link(sb, str(f, "href"), str(f, "name"));
	}
	strbuf_addstr(sb, "</td><td>");
	if (*href) {
		strbuf_addstr(sb, "<form class=\"del\" method=\"post\" action=\"");
		pd_html_escape(sb, href, strlen(href));
		strbuf_addstr(sb, "/delete\" data-msg=\"Delete stored dump ");
		pd_html_escape(sb, id, strlen(id));
		strbuf_addstr(sb, "?\"><button class=\"kill\" type=\"submit\">Delete</button></form>");
	}
	strbuf_addstr(sb, "</td></tr>");
}

int pd_h_reply_dumps(struct pd_req *r, json_t *entries)
{
	struct strbuf sb = STRBUF_INIT;
	char nonce[PD_HTML_NONCE_LEN];
	size_t i;
	json_t *e;

	pd_h_page_begin(r, &sb, "Dumps", nonce);
	if (!json_array_size(entries))
		strbuf_addstr(&sb, "<p>No stored dumps.</p>");
	else
		strbuf_addstr(&sb, "<table><tr><th>created</th><th>process</th><th>kind</th>"
				   "<th>trigger</th><th>type</th><th>size</th><th>files</th>"
				   "<th></th></tr>");
	json_array_foreach(entries, i, e)
		dump_row(&sb, e);
	if (json_array_size(entries))
		strbuf_addf(&sb, "</table><script nonce=\"%s\">%s</script>", nonce,
			    confirm_delete);
	json_decref(entries);
	return pd_h_page_send(r, &sb, nonce);
}

int h_dumps_list(struct pd_req *r)
{
	struct pd_store *s = store_of(r);
	json_t *entries;
	int rc;

	if (!s)
		return 0;
	rc = pd_store_list(s, &entries);
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot read the dump store: %s.",
				       strerror(-rc));
	for (size_t i = json_array_size(entries); i-- > 0;)
		if (!in_scope(r, json_array_get(entries, i)))
			json_array_remove(entries, i);
	if (add_links(r, entries) < 0) {
		json_decref(entries);
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	}
	if (pd_h_wants_html(r))
		return pd_h_reply_dumps(r, entries);
	return pd_resp_json(r, 200, entries);
}

/* What a stored file is, by its name. */
static const char *file_type(const char *name)
{
	size_t n = strlen(name);
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".zip", "application/zip"},
		{".zst", "application/zstd"},
		{".json", "application/json"},
		{".txt", "text/plain; charset=utf-8"},
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t e = strlen(types[i].ext);

		if (n > e && !strcmp(name + n - e, types[i].ext))
			return types[i].type;
	}
	return "application/octet-stream";
}

struct stored {
	struct pd_req *r;
	const char *id;
	const char *file;
	json_t *meta;
};

/* The headers a live dump sends, from what the entry's meta recorded. */
static int stored_headers(void *arg)
{
	struct stored *st = arg;
	struct pd_req *r = st->r;
	json_t *fig = json_object_get(st->meta, "figures");
	static const struct {
		const char *header, *key;
	} nums[] = {
		{"X-Dump-Stopped-Us", "stopped_us"},	 {"X-Dump-Threads", "threads"},
		{"X-Dump-Freezing-Us", "freezing_us"},	 {"X-Dump-Frozen-Us", "frozen_us"},
		{"X-Dump-Copy-Us", "copy_us"},		 {"X-Dump-Copied-Bytes", "copied_bytes"},
		{"X-Dump-Extra-Memory", "extra_memory"},
	};
	const char *bits = json_string_value(json_object_get(st->meta, "dumpTypeBits"));
	const char *method = json_string_value(json_object_get(st->meta, "method"));
	const char *reason = json_string_value(json_object_get(st->meta, "method_reason"));
	char value[PD_STORE_ID_MAX + PD_STORE_NAME_MAX + 40];
	int rc;

	snprintf(value, sizeof(value), "attachment; filename=\"%s-%s\"", st->id, st->file);
	rc = pd_resp_header(r, "Content-Disposition", value);
	rc = rc ? rc : pd_resp_header(r, "X-Dump-Store-Id", st->id);
	if (bits)
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Type", bits);
	if (method)
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Method", method);
	if (reason && *reason)
		rc = rc ? rc : pd_resp_header(r, "X-Dump-Method-Reason", reason);
	for (size_t i = 0; fig && i < sizeof(nums) / sizeof(nums[0]); i++) {
		json_t *v = json_object_get(fig, nums[i].key);

		if (!json_is_integer(v))
			continue;
		snprintf(value, sizeof(value), "%lld", (long long)json_integer_value(v));
		rc = rc ? rc : pd_resp_header(r, nums[i].header, value);
	}
	return rc;
}

int h_dumps_get(struct pd_req *r)
{
	struct pd_store *s = store_of(r);
	const char *id = s ? id_of(r) : NULL;
	const char *file = pd_req_query(r, "file");
	char etag[PD_H_ETAG_MAX], tag[PD_H_ETAG_MAX];
	struct stored st = {.r = r};
	bool range = true;
	int fd, rc;

	if (!id)
		return 0;
	if (file && !pd_store_name_valid(file))
		return pd_resp_problem(r, 400, "file",
				       "file must be the name of one of the entry's files (its "
				       "files[].name in GET /api/dumps).");
	if (open_visible(r, s, id, file, &fd, &st.meta) < 0)
		return 0;
	if (!file)
		file = json_string_value(json_object_get(st.meta, "file"));
	st.id = id;
	st.file = file ? file : "file";
	/* Strong and stable: an entry never changes. */
	snprintf(etag, sizeof(etag), "%s/%s", id, st.file);
	/* An If-Range that is not this tag (another, weak, or a date): the
	 * whole file (RFC 9110, 13.1.5). */
	if (pd_req_env(r, "HTTP_IF_RANGE")) {
		const char *t = pd_req_if_range(r, tag, sizeof(tag));

		range = t && !strcmp(t, etag);
	}
	struct pd_h_send send = {
		.r = r,
		.fd = fd,
		.what = "stored file",
		.ctype = file_type(st.file),
		.etag = etag,
		.range = range,
		.headers = stored_headers,
		.arg = &st,
	};
	pd_req_log_note(r, "store_id=%s", id);
	rc = pd_h_send_file(&send);
	json_decref(st.meta);
	return rc;
}

int h_dumps_delete(struct pd_req *r)
{
	struct pd_store *s = store_of(r);
	const char *id = s ? id_of(r) : NULL;
	json_t *meta;
	int fd, rc;

	if (!id)
		return 0;
	/* an entry out of the scope is not there: not removed either */
	if (open_visible(r, s, id, NULL, &fd, &meta) < 0)
		return 0;
	close(fd);
	json_decref(meta);
	rc = pd_store_remove(s, id);
	if (rc == -ENOENT)
		return pd_resp_problem(r, 404, "id", "There is no stored dump %s.", id);
	if (rc < 0)
		return pd_resp_problem(r, 500, NULL, "Cannot remove stored dump %s: %s.", id,
				       strerror(-rc));
	pd_req_log_note(r, "store_removed=%s", id);
	/* The Dumps page's button posts a form: back to the list. */
	if (pd_h_wants_html(r))
		return pd_h_redirect_to_base(r, "Deleted.");
	return pd_resp_no_content(r);
}

/* POST /api/dumps/{id}/egress?egressProvider=NAME[&file=NAME][&tags=]: the
 * entry's file (its main one by default) copied to an egress provider as
 * an operation (docs/OPERATIONS-API.md): 202 + Location; the copy is
 * lib/operations.h's pd_store_push, what `procdiag dumps push` runs. */
int h_dumps_egress(struct pd_req *r)
{
	struct pd_store *s = store_of(r);
	const char *id = s ? id_of(r) : NULL;
	const char *file = pd_req_query(r, "file");
	const struct pd_egress_provider *egress;
	json_t *meta = NULL;
	bool async;
	int fd;

	if (!id)
		return 0;
	if (file && !*file)
		file = NULL;
	if (file && !pd_store_name_valid(file))
		return pd_resp_problem(r, 400, "file",
				       "file must be a file of the entry ([A-Za-z0-9._-], as "
				       "GET /api/dumps lists its files), not '%s'.",
				       file);
	if (pd_h_parse_operation(r, &egress, &async) < 0)
		return 0;
	if (!egress)
		return pd_resp_problem(r, 400, "egressProvider",
				       "egressProvider=NAME is required: the [egress NAME] the entry "
				       "is copied to.");
	if (async)
		return pd_resp_problem(r, 400, "async",
				       "async is not for a copy: the entry is in the store already.");
	if (open_visible(r, s, id, file, &fd, &meta) < 0)
		return 0;
	close(fd);
	{
		json_t *uid = json_object_get(meta, "uid");
		struct pd_op_request rq = {
			.pid = (int)json_integer_value(json_object_get(meta, "pid")),
			.process = json_string_value(json_object_get(meta, "process")),
			/* the entry's: the copy's record is judged as the entry */
			.uid_known = json_is_integer(uid),
			.uid = (uid_t)json_integer_value(uid),
			.egress = egress,
			.tags = pd_req_query(r, "tags"),
			.kind = PD_OP_STORE_COPY,
			.store_id = id,
			.store_file = file,
		};

		pd_h_operation_start(r, &rq);
	}
	json_decref(meta);
	return 0;
}
