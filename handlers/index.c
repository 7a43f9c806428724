/* GET / : where to start clicking. */
#include "config.h"

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/jsonout.h"

int h_index(struct pd_req *r)
{
	const struct pd_context *ctx = pd_req_app(r);
	json_t *o;

	/* The index route's base is "", so hrefs are origin + path. */
	o = json_pack("{s:s, s:s, s:s, s:{s:o, s:o, s:o}}", "name", "procdiag", "version",
		      PACKAGE_VERSION, "machineName", ctx->machine_name, "links", "processes",
		      pd_json_href(r, "/api/processes"), "diagnostics_processes",
		      pd_json_href(r, "/api/diagnostics/processes"), "kudu_processes",
		      pd_json_href(r, "/diagnostics/processes"));
	/* Id 0 only where a site process is configured: else it is a 404. */
	if (o && ctx->config->site_pid_file &&
	    json_object_set_new(json_object_get(o, "links"), "site_process",
				pd_json_href(r, "/api/processes/0")) < 0) {
		json_decref(o);
		o = NULL;
	}
	/* The dump store's list where one is configured. */
	if (o && ctx->store &&
	    json_object_set_new(json_object_get(o, "links"), "dumps",
				pd_json_href(r, "/api/dumps")) < 0) {
		json_decref(o);
		o = NULL;
	}
	/* The rules and their states where the config has rules. */
	if (o && ctx->config->rules.n &&
	    json_object_set_new(json_object_get(o, "links"), "rules",
				pd_json_href(r, "/api/rules")) < 0) {
		json_decref(o);
		o = NULL;
	}
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, o, "procdiag");
}
