/* dotnet-monitor's operations (docs/OPERATIONS-API.md):
 *
 *   GET    /operations[?pid=&tags=]   OperationSummary list
 *   GET    /operations/{operationId}  OperationStatus (201 once Succeeded)
 *   DELETE /operations/{operationId}  cancel: 200, after the job stopped
 *
 * and the 202 + Location that /dump?egressProvider= and Kudu's
 * /api/processes/{id}/dump?egressProvider=|async=true answer with. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/numparse.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/conffile.h"
#include "handlers/context.h"
#include "handlers/handlers.h"
#include "handlers/jsonout.h"
#include "lib/operations.h"

/* The record as answered: an entry of the store gets its URL as
 * resourceLocation. rec is stolen. */
static json_t *present(struct pd_req *r, json_t *rec)
{
	const char *sid = json_string_value(json_object_get(rec, "storeId"));

	if (rec && sid && json_is_null(json_object_get(rec, "resourceLocation")))
		json_object_set_new(rec, "resourceLocation",
				    json_sprintf("%s/api/dumps/%s", pd_req_origin(r), sid));
	return rec;
}

static struct pd_ops *ops_of(struct pd_req *r)
{
	const struct pd_context *ctx = pd_req_app(r);

	if (!ctx->ops)
		pd_resp_problem(r, 503, NULL, "Operations are not available in this responder.");
	return ctx->ops;
}

int pd_h_operation_start(struct pd_req *r, const struct pd_op_request *rq)
{
	struct pd_ops *ops = ops_of(r);
	char id[PD_OP_ID_LEN + 1], err[256], loc[2048];
	int rc;

	if (!ops)
		return -1;
	rc = pd_ops_start(ops, rq, id, err, sizeof(err));
	if (rc < 0) {
		pd_req_log_note(r, "operation_error=%d", -rc);
		pd_resp_problem(r, rc == -ESHUTDOWN ? 503 : 500, NULL,
				"Cannot start the operation: %s.", err);
		return -1;
	}
	pd_req_log_note(r, "operation=%s egress=%s", id, rq->egress ? rq->egress->name : "-");
	/* dotnet-monitor's operations live at the root, whatever the route */
	snprintf(loc, sizeof(loc), "%s/operations/%s", pd_req_origin(r), id);
	pd_resp_header(r, "Location", loc);
	pd_resp_json(r, 202, present(r, pd_ops_get(ops, id)));
	return 0;
}

int pd_h_parse_operation(struct pd_req *r, const struct pd_egress_provider **egress,
			 bool *async)
{
	const struct pd_context *ctx = pd_req_app(r);
	const char *e = pd_req_query(r, "egressProvider");
	const char *tags = pd_req_query(r, "tags");

	*egress = NULL;
	if (e && *e) {
		*egress = pd_config_egress(ctx->config, e);
		if (!*egress)
			return pd_resp_problem(r, 400, "egressProvider",
					       "egressProvider '%s' is not configured: name an "
					       "[egress NAME] section of the configuration.",
					       e),
			       -1;
	}
	if (pd_h_query_bool(r, "async", false, async) < 0)
		return -1;
	if (*async && !*egress && !ctx->store)
		return pd_resp_problem(r, 400, "async",
				       "async=true without egressProvider puts the result into the "
				       "dump store, and no store_dir is configured."),
		       -1;
	if (tags && strlen(tags) > 1024)
		return pd_resp_problem(r, 400, "tags", "tags must be at most 1024 bytes."), -1;
	return 0;
}

/* The {operationId} capture, or a 400 naming it answered and NULL. */
static const char *op_id(struct pd_req *r)
{
	const char *id = pd_req_param(r, "operationId");

	if (!pd_op_id_valid(id)) {
		pd_resp_problem(r, 400, "operationId",
				"operationId must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), "
				"as the Location of a 202 names it.");
		return NULL;
	}
	return id;
}

static int not_found(struct pd_req *r, const char *id)
{
	return pd_resp_problem(r, 404, "operationId",
			       "There is no operation %s (GET /operations lists them).", id);
}

int h_operations_list(struct pd_req *r)
{
	struct pd_ops *ops = ops_of(r);
	const char *spid = pd_req_query(r, "pid"), *tags = pd_req_query(r, "tags");
	int pid = -1;
	json_t *a;

	if (!ops)
		return 0;
	if (spid && *spid && parse_pid(spid, strlen(spid), &pid) < 0)
		return pd_resp_problem(r, 400, "pid", "pid must be a process id, not '%s'.", spid);
	a = pd_ops_list(ops, pid, tags);
	if (!a)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_resp_json(r, 200, a);
}

int h_operation_get(struct pd_req *r)
{
	struct pd_ops *ops = ops_of(r);
	const char *id = ops ? op_id(r) : NULL;
	json_t *rec;
	const char *st;

	if (!id)
		return 0;
	rec = pd_ops_get(ops, id);
	if (!rec)
		return not_found(r, id);
	st = json_string_value(json_object_get(rec, "status"));
	/* dotnet-monitor: 201 Created once the artifact exists */
	return pd_resp_json(r, st && !strcmp(st, "Succeeded") ? 201 : 200, present(r, rec));
}

int h_operation_delete(struct pd_req *r)
{
	struct pd_ops *ops = ops_of(r);
	const char *id = ops ? op_id(r) : NULL;
	bool stop;
	int rc;

	if (!id || pd_h_query_bool(r, "stop", false, &stop) < 0)
		return 0;
	if (stop)
		return pd_resp_problem(r, 400, "stop",
				       "A dump operation cannot be stopped early with a valid "
				       "artifact; cancel it (DELETE without stop=true).");
	rc = pd_ops_cancel(ops, id);
	if (rc == -ENOENT)
		return not_found(r, id);
	if (rc == -EALREADY)
		return pd_resp_problem(r, 400, "operationId",
				       "Operation %s is not running: it has ended (GET it for "
				       "how).",
				       id);
	pd_req_log_note(r, "operation=%s cancel=%s", id, rc == 0 ? "done" : "pending");
	return pd_resp_json(r, rc == 0 ? 200 : 202, present(r, pd_ops_get(ops, id)));
}
