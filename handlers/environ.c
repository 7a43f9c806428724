/* GET /processes/{id}/environments/{filter} */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"
#include "handlers/procjson.h"
#include "lib/proc.h"

json_t *pd_environ_json(const struct pd_strv *env, const char *filter)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < env->n; i++) {
		const char *item = env->v[i];
		const char *eq = memchr(item, '=', env->len[i]);
		size_t nlen = eq ? (size_t)(eq - item) : env->len[i];
		json_t *k, *v;

		if (!nlen)
			continue;
		/* Names become object keys: escape them like any other bytes. */
		k = pd_json_bytes(item, nlen);
		v = eq ? pd_json_bytes(eq + 1, env->len[i] - nlen - 1) : json_string("");
		if (!k || !v) {
			json_decref(k);
			json_decref(v);
			json_decref(o);
			o = NULL;
			break;
		}
		if ((!filter || strcasestr(json_string_value(k), filter)) &&
		    !json_object_get(o, json_string_value(k)) &&
		    json_object_set(o, json_string_value(k), v) < 0) {
			json_decref(o);
			o = NULL;
		}
		json_decref(k);
		json_decref(v);
	}
	return o;
}

/* Drops every member of o not named name. */
static void keep_only(json_t *o, const char *name)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(o, tmp, key, v)
		if (strcmp(key, name))
			json_object_del(o, key);
}

int h_environment(struct pd_req *r)
{
	const char *filter = pd_req_param(r, "filter");
	struct pd_strv env = PD_STRV_INIT;
	struct pd_proc p;
	json_t *o;
	bool exact;
	int rc, pid;

	/* ?exact=true: the variable named filter alone (the case counts): the
	 * process page's Show button asks so, so that a reveal carries no other
	 * secret (docs/DESIGN-NOTES.md, the browser view's review). */
	if (pd_h_query_bool(r, "exact", false, &exact) < 0)
		return 0;
	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_environ(&p, &env);
	pd_proc_close(&p);
	if (rc < 0)
		return pd_resp_problem(r, rc == -EACCES ? 403 : 404, NULL,
				       "The environment of process %d cannot be read: %s.", pid,
				       strerror(-rc));
	if (filter && !strcasecmp(filter, "all") && !exact)
		filter = NULL;
	o = pd_environ_json(&env, filter);
	pd_strv_release(&env);
	if (o && exact && filter)
		keep_only(o, filter);
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, o, "Environment");
}
