/* GET /processes/{id}/modules and /modules/{baseAddress} */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/numparse.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/procjson.h"
#include "lib/modules.h"

int h_module_list(struct pd_req *r)
{
	struct pd_modules mods = PD_MODULES_INIT;
	struct pd_proc p;
	json_t *arr;
	int rc, pid;

	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_modules(&p, NULL, false, &mods);
	pd_proc_close(&p);
	if (rc < 0)
		return pd_resp_problem(r, rc == -EACCES ? 403 : 404, NULL,
				       "The modules of process %d cannot be read: %s.", pid,
				       strerror(-rc));
	arr = pd_modules_json(r, pid, &mods);
	pd_modules_release(&mods);
	if (!arr)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, arr, "Modules");
}

int h_module_detail(struct pd_req *r)
{
	const char *base_s = pd_req_param(r, "baseAddress");
	struct pd_modules mods = PD_MODULES_INIT;
	struct pd_proc p;
	json_t *o = NULL;
	uint64_t base;
	int rc, pid;

	if (!base_s || parse_hex_u64(base_s, strlen(base_s), &base) < 0)
		return pd_resp_problem(r, 400, "baseAddress",
				       "The baseAddress must be a hex address without 0x, not '%s'.",
				       base_s ? base_s : "");
	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_modules(&p, NULL, true, &mods);
	pd_proc_close(&p);
	if (rc < 0)
		return pd_resp_problem(r, rc == -EACCES ? 403 : 404, NULL,
				       "The modules of process %d cannot be read: %s.", pid,
				       strerror(-rc));
	for (size_t i = 0; i < mods.n; i++) {
		if (mods.v[i].base == base) {
			o = pd_module_json(r, pid, &mods.v[i], true);
			rc = o ? 1 : -ENOMEM;
			break;
		}
	}
	pd_modules_release(&mods);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	if (!o)
		return pd_resp_problem(r, 404, "baseAddress",
				       "No module is loaded at %" PRIx64 " in process %d.", base, pid);
	return pd_h_reply(r, o, "Module");
}
