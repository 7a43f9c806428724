#include "config.h"

#include "handlers/procjson.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/request.h"
#include "handlers/context.h"
#include "handlers/jsonout.h"
#include "lib/sysclock.h"
#include "lib/users.h"

const char *pd_state_name(char state)
{
	switch (state) {
	case 'R': return "Running";
	case 'S': return "Sleeping";
	case 'D': return "DiskSleep";
	case 'T': return "Stopped";
	case 't': return "TracingStop";
	case 'Z': return "Zombie";
	case 'X': return "Dead";
	case 'I': return "Idle";
	case 'P': return "Parked";
	case 'W': return "Waking";
	case 'K': return "Wakekill";
	default: return "Unknown";
	}
}

/* Kudu's DOMAIN\user form, which its page splits on the backslash:
 * "machine\name", or "machine\1001" for a uid without a name. */
static json_t *user_json(const struct pd_context *ctx, uid_t uid)
{
	char name[256], both[sizeof(name) + sizeof(ctx->machine_name) + 1];

	if (pd_user_name(uid, name, sizeof(name)) < 0)
		snprintf(name, sizeof(name), "%u", (unsigned)uid);
	snprintf(both, sizeof(both), "%s\\%s", ctx->machine_name, name);
	return pd_json_cstr(both);
}

/* Kudu's number for a value that cannot be read. */
#define UNREADABLE (-1)

/* Sets key to v (stolen); any failure makes the whole object fail, checked
 * once at the end by the caller via *ok. */
static void put(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		*ok = false;
}

json_t *pd_proc_summary_json(struct pd_req *r, const struct pd_proc_entry *e)
{
	const struct pd_context *ctx = pd_req_app(r);
	json_t *o = json_object();
	bool ok = o != NULL;

	if (!o)
		return NULL;
	put(o, "id", json_integer(e->pid), &ok);
	put(o, "name", pd_json_bytes(e->comm, e->comm_len), &ok);
	put(o, "machineName", json_string(ctx->machine_name), &ok);
	put(o, "href", pd_json_href(r, "/%d", e->pid), &ok);
	put(o, "user_name", user_json(ctx, e->uid), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* A start time, left out when it cannot be known, as Kudu leaves out its
 * DateTime.MinValue. */
static void put_start_time(json_t *o, const char *key, uint64_t starttime, bool *ok)
{
	int64_t ns;

	if (pd_start_time_ns(starttime, &ns) == 0)
		put(o, key, pd_json_iso8601(ns), ok);
}

json_t *pd_thread_json(struct pd_req *r, int pid, const struct pd_stat *t, bool detail)
{
	json_t *o = json_object();
	bool ok = o != NULL;
	const char *level;

	if (!o)
		return NULL;
	put(o, "id", json_integer(t->pid), &ok);
	put(o, "href", pd_json_href(r, "/%d/threads/%d", pid, t->pid), &ok);
	put(o, "state", json_string(pd_state_name(t->state)), &ok);
	if (detail) {
		/* Windows priority classes by nice value; a negative kernel
		 * priority is a real-time policy. */
		if (t->priority < 0 || t->nice <= -20)
			level = "TimeCritical";
		else if (t->nice <= -10)
			level = "Highest";
		else if (t->nice < 0)
			level = "AboveNormal";
		else if (t->nice == 0)
			level = "Normal";
		else if (t->nice < 10)
			level = "BelowNormal";
		else if (t->nice < 19)
			level = "Lowest";
		else
			level = "Idle";
		put(o, "process", pd_json_href(r, "/%d", pid), &ok);
		put(o, "name", pd_json_bytes(t->comm, t->comm_len), &ok);
		put(o, "current_priority", json_integer(t->priority), &ok);
		put(o, "base_priority", json_integer(t->nice), &ok);
		put(o, "priority_level", json_string(level), &ok);
		put_start_time(o, "start_time", t->starttime, &ok);
		put(o, "total_processor_time", pd_json_timespan(pd_ticks_to_ns(t->utime + t->stime)),
		    &ok);
		put(o, "user_processor_time", pd_json_timespan(pd_ticks_to_ns(t->utime)), &ok);
		/* Kudu's spelling, kept so its clients keep working. */
		put(o, "priviledged_processor_time", pd_json_timespan(pd_ticks_to_ns(t->stime)), &ok);
		put(o, "processor", json_integer(t->processor), &ok);
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Left out when the file has none: Kudu's answers never hold null. */
static void put_build_id(json_t *o, const struct pd_module *m, bool *ok)
{
	char hex[2 * PD_BUILD_ID_MAX + 1];

	if (!m->build_id_len)
		return;
	hex_encode(m->build_id, m->build_id_len, hex);
	put(o, "build_id", json_string(hex), ok);
}

json_t *pd_module_json(struct pd_req *r, int pid, const struct pd_module *m, bool detail)
{
	json_t *o = json_object();
	bool ok = o != NULL;
	char base[20];

	if (!o)
		return NULL;
	snprintf(base, sizeof(base), "%" PRIx64, m->base);
	put(o, "base_address", json_string(base), &ok);
	put(o, "file_name", pd_json_cstr(m->name), &ok);
	put(o, "href", pd_json_href(r, "/%d/modules/%s", pid, base), &ok);
	if (detail) {
		put(o, "file_path", pd_json_cstr(m->path), &ok);
		put(o, "module_memory_size", json_integer((json_int_t)m->size), &ok);
		put_build_id(o, m, &ok);
		put(o, "deleted", json_boolean(m->deleted), &ok);
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Values the kernel refuses (-EACCES) or that vanished are null, as the
 * API promises; only allocation failure fails the whole answer. */
static json_t *strv_joined(const struct pd_strv *sv)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *j;

	for (size_t i = 0; i < sv->n; i++) {
		if ((i && strbuf_addch(&sb, ' ') < 0) || strbuf_add(&sb, sv->v[i], sv->len[i]) < 0) {
			strbuf_release(&sb);
			return NULL;
		}
	}
	j = pd_json_bytes(sb.buf, sb.len);
	strbuf_release(&sb);
	return j;
}

static json_t *children_json(struct pd_req *r, const struct pd_snapshot *snap, int pid)
{
	const struct pd_context *ctx = pd_req_app(r);
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < snap->n; i++) {
		const struct pd_proc_entry *e = &snap->procs[i];

		if (e->ppid != pid || !pd_scope_has(&ctx->config->scope, e->uid))
			continue;
		if (json_array_append_new(arr, pd_json_href(r, "/%d", e->pid)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Always a link, as Kudu's page takes the id from its last segment. A
 * parent outside the scope answers 404 when followed; ppid 0 (init,
 * kthreadd: the kernel made them) links to id -1, which the page reads as
 * "no parent" and the server answers with a 404. Kudu would link to 0,
 * but here that is the site process. */
static json_t *parent_json(struct pd_req *r, int ppid)
{
	return pd_json_href(r, "/%d", ppid > 0 ? ppid : -1);
}

json_t *pd_threads_json(struct pd_req *r, int pid, const struct pd_tasks *tasks)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < tasks->n; i++) {
		if (json_array_append_new(arr, pd_thread_json(r, pid, &tasks->v[i], false)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

json_t *pd_modules_json(struct pd_req *r, int pid, const struct pd_modules *mods)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < mods->n; i++) {
		if (json_array_append_new(arr, pd_module_json(r, pid, &mods->v[i], false)) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

json_t *pd_cmdline_json(struct pd_proc *p)
{
	struct pd_strv sv = PD_STRV_INIT;
	json_t *j;

	/* A kernel thread or a zombie has an empty cmdline: no command line. */
	if (pd_proc_cmdline(p, &sv) == 0 && sv.n > 0)
		j = strv_joined(&sv);
	else
		j = json_null();
	pd_strv_release(&sv);
	return j;
}

static void add_threads(struct pd_req *r, struct pd_proc *p, json_t *o, bool *ok)
{
	struct pd_tasks tasks = PD_TASKS_INIT;

	if (pd_proc_tasks(p, &tasks) < 0) {
		put(o, "threads", json_array(), ok);
		put(o, "thread_count", json_integer(UNREADABLE), ok);
		return;
	}
	put(o, "threads", pd_threads_json(r, p->pid, &tasks), ok);
	put(o, "thread_count", json_integer((json_int_t)tasks.n), ok);
	pd_tasks_release(&tasks);
}

static void add_fds(struct pd_proc *p, json_t *o, bool *ok)
{
	struct pd_fds fds = PD_FDS_INIT;
	json_t *arr;

	if (pd_proc_fds(p, &fds) < 0) {
		put(o, "open_file_handles", json_array(), ok);
		put(o, "handle_count", json_integer(UNREADABLE), ok);
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < fds.n; i++)
		if (json_array_append_new(arr, pd_json_cstr(fds.v[i].target)) < 0)
			*ok = false;
	put(o, "open_file_handles", arr, ok);
	put(o, "handle_count", json_integer((json_int_t)fds.n), ok);
	pd_fds_release(&fds);
}

static void add_modules(struct pd_req *r, struct pd_proc *p, json_t *o, bool *ok)
{
	struct pd_modules mods = PD_MODULES_INIT;

	if (pd_proc_modules(p, NULL, false, &mods) < 0) {
		put(o, "modules", json_array(), ok);
		put(o, "module_count", json_integer(UNREADABLE), ok);
		return;
	}
	put(o, "modules", pd_modules_json(r, p->pid, &mods), ok);
	put(o, "module_count", json_integer((json_int_t)mods.n), ok);
	pd_modules_release(&mods);
}

/* file_name: "N/A" when there is no executable to read (a kernel thread,
 * a zombie, another user's process), Kudu's value, which its page tests
 * for. command_line: as read, "" for a kernel thread or a zombie; left out
 * when the kernel refuses it, as Kudu leaves out its null. */
static void add_strv(struct pd_proc *p, json_t *o, bool *ok)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_strv sv = PD_STRV_INIT;

	if (pd_proc_exe(p, &sb) == 0)
		put(o, "file_name", pd_json_bytes(sb.buf, sb.len), ok);
	else
		put(o, "file_name", json_string("N/A"), ok);
	strbuf_release(&sb);
	if (pd_proc_cmdline(p, &sv) == 0)
		put(o, "command_line", strv_joined(&sv), ok);
	pd_strv_release(&sv);
}

static void add_memory(struct pd_proc *p, json_t *o, bool *ok)
{
	struct pd_status st;
	struct pd_rollup ru;
	bool have_st = pd_proc_status(p, &st) == 0;
	bool have_ru = pd_proc_rollup(p, &ru) == 0;

	put(o, "working_set", pd_json_size(have_st ? st.vm_rss : -1), ok);
	put(o, "peak_working_set", pd_json_size(have_st ? st.vm_hwm : -1), ok);
	put(o, "private_memory",
	    pd_json_size(have_ru && ru.private_clean >= 0 && ru.private_dirty >= 0
				 ? ru.private_clean + ru.private_dirty
				 : -1),
	    ok);
	put(o, "virtual_memory", pd_json_size(have_st ? st.vm_size : -1), ok);
	put(o, "peak_virtual_memory", pd_json_size(have_st ? st.vm_peak : -1), ok);
	/* Linux pages to swap: VmSwap is what is paged out now. */
	put(o, "paged_memory", pd_json_size(have_st ? st.vm_swap : -1), ok);
	/* Kudu's page shows these too; Linux keeps no swap peak and does not
	 * page kernel memory: Kudu's "cannot be read". */
	put(o, "peak_paged_memory", json_integer(UNREADABLE), ok);
	put(o, "paged_system_memory", json_integer(UNREADABLE), ok);
	put(o, "non_paged_system_memory", json_integer(UNREADABLE), ok);
	put(o, "proportional_set_size", pd_json_size(have_ru ? ru.pss : -1), ok);
	put(o, "uid", have_st && st.uid[0] >= 0 ? json_integer(st.uid[0]) : json_integer(p->uid),
	    ok);
}

json_t *pd_proc_detail_json(struct pd_req *r, struct pd_proc *p, const struct pd_snapshot *snap)
{
	const struct pd_context *ctx = pd_req_app(r);
	const struct pd_stat *s = &p->stat;
	struct pd_strv env = PD_STRV_INIT;
	struct timespec now;
	json_t *o = json_object();
	bool ok = o != NULL;

	if (!o)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &now);
	put(o, "id", json_integer(p->pid), &ok);
	put(o, "name", pd_json_bytes(s->comm, s->comm_len), &ok);
	put(o, "machineName", json_string(ctx->machine_name), &ok);
	put(o, "href", pd_json_href(r, "/%d", p->pid), &ok);
	put(o, "user_name", user_json(ctx, p->uid), &ok);
	put(o, "minidump", pd_json_href(r, "/%d/dump", p->pid), &ok);
	put(o, "parent", parent_json(r, s->ppid), &ok);
	put(o, "children", children_json(r, snap, p->pid), &ok);
	add_threads(r, p, o, &ok);
	add_fds(p, o, &ok);
	add_modules(r, p, o, &ok);
	add_strv(p, o, &ok);
	put_start_time(o, "start_time", s->starttime, &ok);
	put(o, "total_cpu_time", pd_json_timespan(pd_ticks_to_ns(s->utime + s->stime)), &ok);
	put(o, "user_cpu_time", pd_json_timespan(pd_ticks_to_ns(s->utime)), &ok);
	put(o, "privileged_cpu_time", pd_json_timespan(pd_ticks_to_ns(s->stime)), &ok);
	add_memory(p, o, &ok);
	put(o, "time_stamp",
	    pd_json_iso8601((int64_t)now.tv_sec * 1000000000 + now.tv_nsec), &ok);
	/* {} when the kernel refuses it, as Kudu falls back. */
	if (pd_proc_environ(p, &env) == 0)
		put(o, "environment_variables", pd_environ_json(&env, NULL), &ok);
	else
		put(o, "environment_variables", json_object(), &ok);
	pd_strv_release(&env);
	put(o, "ppid", json_integer(s->ppid), &ok);
	put(o, "state", json_string(pd_state_name(s->state)), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}
