/* The whole API on one screen. fcgi/route.c matches requests against it. */
#include "config.h"

#include "handlers/handlers.h"

/* Kudu serves every process route under three prefixes; so do we. */
#define KUDU(method, pattern, handler, flags)                                   \
	{ method, "/api/processes", pattern, handler, flags },                   \
	{ method, "/api/diagnostics/processes", pattern, handler, flags },      \
	{ method, "/diagnostics/processes", pattern, handler, flags }

const struct pd_route pd_routes[] = {
	{ "GET", "", "/", h_index, 0 },
	KUDU("GET",    "",                            h_process_list,   0),
	KUDU("GET",    "/{id}",                       h_process_detail, 0),
	KUDU("DELETE", "/{id}",                       h_process_kill,   0),
	KUDU("POST",   "/{id}/stop",                  h_process_kill,   0),
	KUDU("GET",    "/{id}/threads",               h_thread_list,    0),
	KUDU("GET",    "/{id}/threads/{tid}",         h_thread_detail,  0),
	KUDU("GET",    "/{id}/modules",               h_module_list,    0),
	KUDU("GET",    "/{id}/modules/{baseAddress}", h_module_detail,  0),
	KUDU("GET",    "/{id}/environments/{filter}", h_environment,    0),
	KUDU("GET",    "/{id}/dump",                  h_process_dump,   PD_ROUTE_STREAM | PD_ROUTE_ACTS),
	KUDU("GET",    "/{id}/stacks",                h_process_stacks, PD_ROUTE_ACTS),
	KUDU("GET",    "/{id}/profile",               h_process_profile, PD_ROUTE_ACTS),

	/* dotnet-monitor's routes: the process is chosen by ?pid=&uid=&name=. */
	{ "GET", "", "/processes", h_mon_processes, 0 },
	{ "GET", "", "/process",   h_mon_process,   0 },
	{ "GET", "", "/env",       h_mon_env,       0 },
	{ "GET", "", "/info",      h_mon_info,      0 },
	{ "GET", "", "/dump",      h_mon_dump,      PD_ROUTE_STREAM | PD_ROUTE_ACTS },
	{ "GET", "", "/stacks",    h_stacks_query,  PD_ROUTE_ACTS },

	/* dotnet-monitor's operations (docs/OPERATIONS-API.md). */
	{ "GET",    "", "/operations",               h_operations_list,  0 },
	{ "GET",    "", "/operations/{operationId}", h_operation_get,    0 },
	{ "DELETE", "", "/operations/{operationId}", h_operation_delete, 0 },

	/* The dump store (docs/STORE.md). */
	{ "GET",    "/api/dumps", "",              h_dumps_list,   0 },
	{ "GET",    "/api/dumps", "/{id}",         h_dumps_get,    PD_ROUTE_STREAM },
	{ "DELETE", "/api/dumps", "/{id}",         h_dumps_delete, 0 },
	{ "POST",   "/api/dumps", "/{id}/delete",  h_dumps_delete, 0 },
	{ "POST",   "/api/dumps", "/{id}/egress",  h_dumps_egress, 0 },

	/* The trigger rules of the config and their states (read-only). */
	{ "GET", "", "/api/rules", h_rules, 0 },

	/* The browser view's scripts and styles (handlers/assets.c). */
	{ "GET", "/assets", "/{name}", h_asset, 0 },
};

const size_t pd_nroutes = sizeof(pd_routes) / sizeof(pd_routes[0]);
