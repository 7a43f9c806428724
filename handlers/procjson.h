/* Kudu's ProcessInfo, ProcessThreadInfo and ProcessModuleInfo shapes, built
 * from lib/ data. docs/API.md maps every field to its /proc source. */
#ifndef PD_PROCJSON_H
#define PD_PROCJSON_H

#include <jansson.h>

#include "lib/modules.h"
#include "lib/proc.h"
#include "lib/snapshot.h"

struct pd_req;

/* List item: id, name, machineName, href, user_name. */
json_t *pd_proc_summary_json(struct pd_req *r, const struct pd_proc_entry *e);
/* The full detail of an open process. */
json_t *pd_proc_detail_json(struct pd_req *r, struct pd_proc *p, const struct pd_snapshot *snap);
/* Thread short form {id, href, state}, or the detail form. */
json_t *pd_thread_json(struct pd_req *r, int pid, const struct pd_stat *t, bool detail);
/* Module short form {base_address, file_name, href}, or the detail form. */
json_t *pd_module_json(struct pd_req *r, int pid, const struct pd_module *m, bool detail);
/* Arrays of the short forms. NULL when out of memory. */
json_t *pd_threads_json(struct pd_req *r, int pid, const struct pd_tasks *tasks);
json_t *pd_modules_json(struct pd_req *r, int pid, const struct pd_modules *mods);
/* The command line, arguments joined by spaces; JSON null when it is empty
 * (kernel thread, zombie) or unreadable; NULL when out of memory. */
json_t *pd_cmdline_json(struct pd_proc *p);
/* Environment as a flat name -> value object; filter NULL for all, else a
 * case-insensitive substring of the name. The first of duplicate names wins. */
json_t *pd_environ_json(const struct pd_strv *env, const char *filter);
/* "Running", "Sleeping", ... for a /proc state letter. */
const char *pd_state_name(char state);

#endif
