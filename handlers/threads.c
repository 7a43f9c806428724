/* GET /processes/{id}/threads and /threads/{tid} */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "common/numparse.h"
#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"
#include "handlers/html.h"
#include "handlers/procjson.h"
#include "lib/proc.h"

int h_thread_list(struct pd_req *r)
{
	struct pd_tasks tasks = PD_TASKS_INIT;
	struct pd_proc p;
	json_t *arr;
	int rc, pid;

	const char *view = pd_req_query(r, "view");

	if (view && strcmp(view, "table"))
		return pd_resp_problem(r, 400, "view", "view must be table, not '%s'.", view);
	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	/* The process page's light JSON (handlers/procpage.c). */
	if (view) {
		rc = pd_h_thread_table_json(r, &p);
		pd_proc_close(&p);
		return rc;
	}
	rc = pd_proc_tasks(&p, &tasks);
	pd_proc_close(&p);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	if (rc < 0)
		return pd_h_not_running(r, pid);
	arr = pd_threads_json(r, pid, &tasks);
	pd_tasks_release(&tasks);
	if (!arr)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, arr, "Threads");
}

int h_thread_detail(struct pd_req *r)
{
	const char *tid_s = pd_req_param(r, "tid");
	struct pd_stat t;
	struct pd_proc p;
	json_t *o;
	int rc, tid, pid;

	if (!tid_s || parse_pid(tid_s, strlen(tid_s), &tid) < 0 || tid == 0)
		return pd_resp_problem(r, 400, "tid", "The tid must be a thread id, not '%s'.",
				       tid_s ? tid_s : "");
	if (pd_h_open_process(r, &p) < 0)
		return 0;
	pid = p.pid;
	rc = pd_proc_task(&p, tid, &t);
	pd_proc_close(&p);
	if (rc == -ENOMEM)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	if (rc < 0)
		return pd_resp_problem(r, 404, "tid", "Thread %d is not a thread of process %d.", tid,
				       pid);
	o = pd_thread_json(r, pid, &t, true);
	if (!o)
		return pd_resp_problem(r, 500, NULL, "Out of memory.");
	return pd_h_reply(r, o, "Thread");
}
