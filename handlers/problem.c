/* The one map from what went wrong in lib/ to an HTTP status, and the one
 * parser of a true|false query parameter (handlers.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"

int pd_h_kind_status(enum pd_dump_error e)
{
	switch (e) {
	case PD_DUMP_OK: return 200;
	case PD_DUMP_GONE: return 404;
	case PD_DUMP_ZOMBIE:
	case PD_DUMP_KERNEL_THREAD:
	case PD_DUMP_BUSY:
	case PD_DUMP_CHANGED: return 409;
	case PD_DUMP_NOT_PERMITTED: return 403;
	case PD_DUMP_TIMEOUT: return 503;
	case PD_DUMP_NO_SPACE: return 507;
	case PD_DUMP_CANCELLED: return 499;
	case PD_DUMP_IO:
	case PD_DUMP_INTERNAL: break;
	}
	return 500;
}

int pd_h_problem_kind(struct pd_req *r, enum pd_dump_error e, unsigned retry_after,
		      const char *param, const char *fmt, ...)
{
	char detail[1100], secs[16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (retry_after && (e == PD_DUMP_BUSY || e == PD_DUMP_TIMEOUT || e == PD_DUMP_CHANGED)) {
		snprintf(secs, sizeof(secs), "%u", retry_after);
		pd_resp_header(r, "Retry-After", secs);
	}
	return pd_resp_problem(r, pd_h_kind_status(e), param, "%s", detail);
}

int pd_h_not_running(struct pd_req *r, int pid)
{
	return pd_h_problem_kind(r, PD_DUMP_GONE, 0, NULL,
				 "Process with an Id of %d is not running.", pid);
}

int pd_h_query_bool(struct pd_req *r, const char *name, bool def, bool *out)
{
	const char *v = pd_req_query(r, name);

	if (!v || !*v)
		*out = def;
	else if (!strcasecmp(v, "true") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcmp(v, "0"))
		*out = false;
	else
		return pd_resp_problem(r, 400, name, "%s must be true or false, not '%s'.", name, v),
		       -1;
	return 0;
}
