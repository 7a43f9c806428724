/* The one map from what went wrong in lib/ to an HTTP status (handlers.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "fcgi/response.h"
#include "handlers/handlers.h"

int pd_h_kind_status(enum pd_dump_error e)
{
	switch (e) {
	case PD_DUMP_OK: return 200;
	case PD_DUMP_GONE:
	case PD_DUMP_ZOMBIE:
	case PD_DUMP_KERNEL_THREAD:
	case PD_DUMP_TIMEOUT:
	case PD_DUMP_BUSY: return 409;
	case PD_DUMP_NOT_PERMITTED: return 403;
	case PD_DUMP_NO_SPACE: return 507;
	case PD_DUMP_CANCELLED: return 499;
	case PD_DUMP_IO:
	case PD_DUMP_INTERNAL: break;
	}
	return 500;
}

int pd_h_problem_kind(struct pd_req *r, enum pd_dump_error e, const char *param,
		      const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (e == PD_DUMP_BUSY)
		pd_resp_header(r, "Retry-After", PD_H_RETRY_AFTER);
	return pd_resp_problem(r, pd_h_kind_status(e), param, "%s", detail);
}
