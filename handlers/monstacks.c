/* GET /stacks in dotnet-monitor's three formats, made from procdiag's
 * stacks document (lib/stacks.h): CallStackResult JSON, the text of its
 * TextStacksFormatter and the speedscope file of its
 * SpeedscopeStacksFormatter. Every frame is native here: the symbol is the
 * method, the file name of the module the module. docs/API.md, "Stacks". */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strbuf.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"

/* dotnet-monitor's words for what is not known (NameFormatter,
 * StacksFormatter). */
#define UNKNOWN_MODULE	 "UnknownModule"
#define UNKNOWN_FUNCTION "UnknownFunction"

enum format { FMT_TEXT, FMT_JSON, FMT_SPEEDSCOPE };

static const char *const content_types[] = {
	[FMT_TEXT] = "text/plain; charset=utf-8",
	[FMT_JSON] = "application/json; charset=utf-8",
	[FMT_SPEEDSCOPE] = "application/speedscope+json",
};

/* ContentTypeUtilities.ComputeStackFormat: a type named exactly wins over
 * one a wildcard covers, text over JSON over speedscope, q not weighed;
 * no Accept header, or none of the three, is text. */
static enum format choose_accept(struct pd_req *r)
{
	int text = pd_req_accept_match(r, "text/plain");
	int json = pd_req_accept_match(r, "application/json");

	if (text == 3)
		return FMT_TEXT;
	if (json == 3)
		return FMT_JSON;
	if (pd_req_accept_match(r, "application/speedscope+json") == 3)
		return FMT_SPEEDSCOPE;
	if (text == 0 && json > 0)
		return FMT_JSON;
	return FMT_TEXT;
}

static const char *const format_names[] = {
	[FMT_TEXT] = "text",
	[FMT_JSON] = "json",
	[FMT_SPEEDSCOPE] = "speedscope",
};

int pd_h_mon_stacks_format(struct pd_req *r)
{
	const char *v = pd_req_query(r, "format");

	if (!v || !*v)
		return choose_accept(r);
	for (int f = 0; f < (int)(sizeof(format_names) / sizeof(format_names[0])); f++)
		if (!strcasecmp(v, format_names[f]))
			return f;
	pd_resp_problem(r, 400, "format", "format must be json, text or speedscope, not '%s'.",
			v);
	return -1;
}

const char *pd_h_mon_stacks_format_name(int fmt)
{
	return format_names[fmt];
}

const char *pd_h_mon_stacks_ext(int fmt)
{
	/* StacksOperation.GenerateFileName: txt for text, json for both others. */
	return fmt == FMT_TEXT ? "txt" : "json";
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* What follows the last '/' of a module path ("[vdso]" stays itself). */
static const char *module_name(const json_t *frame)
{
	const char *path = str(frame, "module"), *slash;

	if (!path || !*path)
		return UNKNOWN_MODULE;
	slash = strrchr(path, '/');
	return slash && slash[1] ? slash + 1 : path;
}

static const char *method_name(const json_t *frame)
{
	const char *sym = str(frame, "symbol");

	return sym && *sym ? sym : UNKNOWN_FUNCTION;
}

/* StacksFormatter.FormatThreadName: "Thread: (0x{id:X})", then " name". */
static int thread_title(const json_t *t, struct strbuf *sb)
{
	const char *name = str(t, "name");

	strbuf_addf(sb, "Thread: (0x%llX)",
		    (unsigned long long)json_integer_value(json_object_get(t, "id")));
	if (name && *name)
		strbuf_addf(sb, " %s", name);
	return sb->failed ? -1 : 0;
}

/* Sets key to v when v is not NULL; false when out of memory. */
static bool put(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v) == 0;
}

/* Models.CallStackFrame, plus where the native frame is (pc, offset,
 * modulePath, buildId, file, line: only what is known). */
static json_t *frame_json(const json_t *f)
{
	const json_t *line = json_object_get(f, "line");
	json_t *o =
		json_pack("{s:s, s:i, s:s, s:s, s:s, s:b}", "methodName", method_name(f),
			  "methodToken", 0, "typeName", "", "moduleName", module_name(f),
			  "moduleVersionId", "00000000-0000-0000-0000-000000000000", "hidden", 0);
	bool ok = o != NULL;

	ok = ok && put(o, "pc", str(f, "pc") ? json_string(str(f, "pc")) : NULL);
	if (str(f, "symbol"))
		ok = ok && put(o, "offset", json_deep_copy(json_object_get(f, "offset")));
	ok = ok && put(o, "modulePath", str(f, "module") ? json_string(str(f, "module")) : NULL);
	ok = ok && put(o, "buildId", str(f, "build_id") ? json_string(str(f, "build_id")) : NULL);
	ok = ok && put(o, "file", str(f, "file") ? json_string(str(f, "file")) : NULL);
	if (json_is_integer(line) && str(f, "file"))
		ok = ok && put(o, "line", json_integer(json_integer_value(line)));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Models.CallStackResult: {"stacks": [{threadId, threadName, frames}]};
 * a thread whose unwinding stopped early keeps its "error". */
static json_t *callstacks_json(const json_t *doc)
{
	const json_t *t, *f;
	json_t *stacks = json_array(), *res = json_pack("{s:o}", "stacks", stacks);
	size_t i, k;

	if (!res)
		return NULL;
	json_array_foreach(json_object_get(doc, "threads"), i, t)
	{
		json_t *frames = json_array();
		json_t *o = json_pack("{s:I, s:s, s:o}", "threadId",
				      json_integer_value(json_object_get(t, "id")), "threadName",
				      str(t, "name") ? str(t, "name") : "", "frames", frames);

		if (!o || json_array_append_new(stacks, o) < 0)
			goto oom;
		json_array_foreach(json_object_get(t, "frames"), k,
				   f) if (json_array_append_new(frames, frame_json(f)) <
					  0) goto oom;
		if (str(t, "error") && !put(o, "error", json_string(str(t, "error"))))
			goto oom;
	}
	return res;
oom:
	json_decref(res);
	return NULL;
}

/* TextStacksFormatter: each thread's title, its frames indented two
 * spaces as module!method, an empty line. */
static int stacks_text(const json_t *doc, struct strbuf *sb)
{
	const json_t *t, *f;
	size_t i, k;

	json_array_foreach(json_object_get(doc, "threads"), i, t)
	{
		thread_title(t, sb);
		strbuf_addch(sb, '\n');
		json_array_foreach(json_object_get(t, "frames"), k, f)
			strbuf_addf(sb, "  %s!%s\n", module_name(f), method_name(f));
		if (str(t, "error"))
			strbuf_addf(sb, "  (unwinding stopped: %s)\n", str(t, "error"));
		strbuf_addch(sb, '\n');
	}
	return sb->failed ? -1 : 0;
}

/* The index of the shared frame named module!method (made on first use). */
static json_int_t shared_frame(json_t *frames, json_t *index, const json_t *f)
{
	struct strbuf name = STRBUF_INIT;
	json_int_t at = -1;
	json_t *have, *o;

	if (strbuf_addf(&name, "%s!%s", module_name(f), method_name(f)) < 0)
		return -1;
	have = json_object_get(index, name.buf);
	if (have) {
		at = json_integer_value(have);
	} else {
		o = json_pack("{s:s}", "name", name.buf);
		if (o && str(f, "file") && !put(o, "file", json_string(str(f, "file")))) {
			json_decref(o);
			o = NULL;
		}
		if (json_array_append_new(frames, o) == 0 &&
		    json_object_set_new(index, name.buf,
					json_integer((json_int_t)json_array_size(frames) - 1)) == 0)
			at = (json_int_t)json_array_size(frames) - 1;
	}
	strbuf_release(&name);
	return at;
}

/* One "evented" profile per thread, as SpeedscopeStacksFormatter writes
 * it: every frame opened at 0 in the order of the stack (innermost
 * first), all closed at 1 in the reverse order; unit none. */
static json_t *thread_profile(const json_t *t, json_t *frames, json_t *index)
{
	struct strbuf title = STRBUF_INIT;
	const json_t *f;
	json_t *events = json_array(), *prof;
	size_t k, n;

	prof = thread_title(t, &title) < 0
		       ? NULL
		       : json_pack("{s:s, s:s%, s:s, s:i, s:i, s:o}", "type", "evented", "name",
				   title.buf, title.len, "unit", "none", "startValue", 0,
				   "endValue", 1, "events", events);
	strbuf_release(&title);
	if (!prof)
		goto oom;
	json_array_foreach(json_object_get(t, "frames"), k, f)
	{
		json_int_t at = shared_frame(frames, index, f);

		if (at < 0 ||
		    json_array_append_new(events, json_pack("{s:s, s:I, s:i}", "type", "O", "frame",
							    at, "at", 0)) < 0)
			goto oom;
	}
	for (n = json_array_size(events); n > 0; n--) {
		json_int_t at =
			json_integer_value(json_object_get(json_array_get(events, n - 1), "frame"));

		if (json_array_append_new(events, json_pack("{s:s, s:I, s:i}", "type", "C", "frame",
							    at, "at", 1)) < 0)
			goto oom;
	}
	return prof;
oom:
	json_decref(prof);
	return NULL;
}

/* A speedscope file (https://www.speedscope.app/file-format-schema.json). */
static json_t *speedscope_json(const json_t *doc)
{
	json_t *frames = json_array(), *index = json_object(), *profiles = json_array();
	json_t *res = json_pack("{s:s, s:s, s:s, s:i, s:o, s:{s:o}}", "$schema",
				"https://www.speedscope.app/file-format-schema.json", "exporter",
				"procdiag@" PACKAGE_VERSION, "name", "speedscope.json",
				"activeProfileIndex", 0, "profiles", profiles, "shared", "frames",
				frames);
	const json_t *t;
	size_t i;

	if (!res || !index)
		goto oom;
	json_array_foreach(
		json_object_get(doc, "threads"), i,
		t) if (json_array_append_new(profiles, thread_profile(t, frames, index)) <
		       0) goto oom;
	json_decref(index);
	return res;
oom:
	json_decref(index);
	json_decref(res);
	return NULL;
}

int pd_h_mon_stacks_render(const json_t *doc, int fmt, char **bytes, size_t *len)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *out;

	*bytes = NULL;
	*len = 0;
	if (fmt == FMT_TEXT) {
		if (stacks_text(doc, &sb) == 0)
			*bytes = strbuf_detach(&sb, len);
		strbuf_release(&sb);
	} else {
		out = fmt == FMT_JSON ? callstacks_json(doc) : speedscope_json(doc);
		*bytes = pd_json_render(out, len);
	}
	return *bytes ? 0 : -ENOMEM;
}

int pd_h_mon_stacks_reply(struct pd_req *r, json_t *doc, int pid, int fmt, const char *stamp)
{
	struct strbuf cd = STRBUF_INIT;
	char *bytes = NULL;
	size_t len = 0;
	int rc;

	pd_h_mon_stacks_render(doc, fmt, &bytes, &len);
	json_decref(doc);
	strbuf_addf(&cd, "attachment; filename=\"%s_%d.stacks.%s\"", stamp, pid,
		    pd_h_mon_stacks_ext(fmt));
	if (!bytes || cd.failed || pd_resp_header(r, "Content-Disposition", cd.buf) < 0)
		rc = pd_resp_problem(r, 500, NULL, "Out of memory.");
	else
		rc = pd_resp_bytes(r, 200, content_types[fmt], bytes, len);
	free(bytes);
	strbuf_release(&cd);
	return rc;
}
