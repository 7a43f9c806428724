/* The dump store (lib/store.h): marker stub, the implementation follows. */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "lib/store.h"

int pd_store_open(const char *dir, const struct pd_store_limits *l, struct pd_store **out)
{
	(void)dir;
	(void)l;
	*out = NULL;
	return -ENOSYS;
}
void pd_store_close(struct pd_store *s) { (void)s; }
const char *pd_store_dir(const struct pd_store *s) { (void)s; return NULL; }
const struct pd_store_limits *pd_store_get_limits(const struct pd_store *s) { (void)s; return NULL; }
bool pd_store_id_valid(const char *id) { (void)id; return false; }
bool pd_store_name_valid(const char *name) { (void)name; return false; }
int pd_store_begin(struct pd_store *s, int pid, struct pd_store_new **out)
{
	(void)s;
	(void)pid;
	*out = NULL;
	return -ENOSYS;
}
const char *pd_store_new_id(const struct pd_store_new *n) { (void)n; return ""; }
int pd_store_file(struct pd_store_new *n, const char *name, uint64_t estimate)
{
	(void)n;
	(void)name;
	(void)estimate;
	return -ENOSYS;
}
int pd_store_scratch(struct pd_store_new *n) { (void)n; return -ENOSYS; }
int pd_store_commit(struct pd_store_new *n, json_t *meta, char id[PD_STORE_ID_MAX])
{
	(void)n;
	(void)id;
	json_decref(meta);
	return -ENOSYS;
}
void pd_store_abort(struct pd_store_new *n) { (void)n; }
int pd_store_list(struct pd_store *s, json_t **entries)
{
	(void)s;
	*entries = NULL;
	return -ENOSYS;
}
int pd_store_open_entry(struct pd_store *s, const char *id, const char *file, int *fd,
			json_t **meta)
{
	(void)s;
	(void)id;
	(void)file;
	(void)fd;
	(void)meta;
	return -ENOSYS;
}
int pd_store_remove(struct pd_store *s, const char *id)
{
	(void)s;
	(void)id;
	return -ENOSYS;
}
int pd_store_dump_open_out(void *arg, enum pd_dumpjob_file which, uint64_t estimate,
			   uint64_t *limit)
{
	(void)arg;
	(void)which;
	(void)estimate;
	*limit = 0;
	return -ENOSYS;
}
const char *pd_store_dump_name(enum pd_dump_format format, int pid, char *buf, size_t size)
{
	snprintf(buf, size, "core.%d%s", pid,
		 format == PD_DUMP_FORMAT_ZIP ? ".zip" : format == PD_DUMP_FORMAT_ZSTD ? ".zst" : "");
	return buf;
}
