/* The dump store: one directory of kept dumps and stacks (docs/STORE.md).
 *
 *   store_dir/<id>/            an entry: its file(s) and meta.json
 *   store_dir/.new-<id>/       an entry being written (flock held by its writer)
 *   store_dir/.del-<id>/       an entry being removed
 *
 * An entry appears by one rename(2) of its finished .new-<id> directory:
 * its files are written as unnamed files (O_TMPFILE) and linked in at
 * commit, meta.json last, then the directory is renamed into place. No
 * partial entry is ever listed. A writer holds an flock on its .new-<id>
 * directory for its whole life; opening the store removes every .new-*
 * (and .del-*) nobody holds: a SIGKILLed writer leaves no orphan.
 *
 * Ids sort by time: "20261205T071500Z-<pid>-<4 hex>" (UTC second of
 * pd_store_begin, the pid the entry is about, 4 random hex digits).
 *
 * Quotas (count, bytes, age) are applied when an entry is committed, under
 * an flock on the store directory (the responder's threads and the crash
 * handler's processes exclude each other): entries older than max_age go,
 * then the oldest go until the new entry fits max_count and max_bytes. An
 * entry that cannot fit even in an empty store (its bytes > max_bytes) is
 * refused (-EDQUOT), nothing of it is left and nothing is evicted for it.
 * Bytes are the files' allocated blocks (st_blocks * 512): cores are
 * sparse, their length says little of the disk they take.
 *
 * Thread-safe: one pd_store may be shared by any number of threads; a
 * pd_store_new belongs to one thread at a time. lib/ knows nothing of HTTP.
 * Every function returns 0 (or an fd) or -errno. */
#ifndef PD_STORE_H
#define PD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/dumpjob.h"

/* "20261205T071500Z-4194304-ab12" and its NUL, with room to spare. */
#define PD_STORE_ID_MAX 48
/* A file name inside an entry: [A-Za-z0-9._-]{1,64}, not starting with
 * '.', not "meta.json". */
#define PD_STORE_NAME_MAX 65

struct pd_store_limits {
	unsigned max_count; /* entries; 0: no bound */
	uint64_t max_bytes; /* allocated bytes of all entries' files; 0: no bound */
	uint64_t max_age_s; /* seconds since created; 0: no bound */
};

struct pd_store;
struct pd_store_new;

/* The quota rules on any set of items: the store's entries, the files of
 * a filesystem egress directory (lib/egress_fs.c). */
struct pd_quota_item {
	char name[256];	     /* an entry's id, a file's name */
	uint64_t created_ns; /* since the epoch */
	uint64_t bytes;	     /* allocated bytes (st_blocks * 512) */
	bool evict;	     /* set by pd_quota_mark */
};
/* Oldest first: by created_ns, then by name. */
void pd_quota_sort(struct pd_quota_item *v, size_t n);
/* Marks evict on the items of v (sorted oldest first) that go: those
 * older than max_age at now_ns; then, with room, the oldest of the rest
 * until one more item of add_bytes fits max_count and max_bytes. */
void pd_quota_mark(const struct pd_store_limits *l, struct pd_quota_item *v, size_t n,
		   uint64_t now_ns, bool room, uint64_t add_bytes);
/* An item of bytes that cannot fit even where nothing else is (bytes >
 * max_bytes): refused, and nothing is evicted for it. */
bool pd_quota_too_big(const struct pd_store_limits *l, uint64_t bytes);

/* Opens (creating the last component, mode 0750, when missing) the store
 * at dir, an absolute path; sweeps .new-* nobody holds and .del-*, and
 * entries past max_age. l may be NULL (no bounds). *out: free with
 * pd_store_close. */
int pd_store_open(const char *dir, const struct pd_store_limits *l, struct pd_store **out);
/* NULL is fine. Entries being written (pd_store_new) must be committed or
 * aborted first. */
void pd_store_close(struct pd_store *s);
const char *pd_store_dir(const struct pd_store *s);
const struct pd_store_limits *pd_store_get_limits(const struct pd_store *s);

/* true when id has the form of an id (the only ids the other functions
 * accept: no path can be made of one). */
bool pd_store_id_valid(const char *id);
/* true when name is a valid file name inside an entry. */
bool pd_store_name_valid(const char *name);

/* A new entry about process pid (0 or more; the id names it): its
 * .new-<id> directory made and locked. The owner of /proc/PID now (pid >
 * 0 and the process there) becomes the entry's meta "uid" at commit
 * unless the writer's meta has one: what the responder's scope judges an
 * entry by (docs/STORE.md, "Scope"). *out is freed by pd_store_commit or
 * pd_store_abort, exactly one of them. */
int pd_store_begin(struct pd_store *s, int pid, struct pd_store_new **out);
/* The entry's id, known from begin on (e.g. for a header sent before the
 * commit). */
const char *pd_store_new_id(const struct pd_store_new *n);

/* An unnamed, empty, read-write file in the entry's directory, linked in
 * as name at commit. The first file asked for is the entry's main file
 * (what a download without a file name gets). Returns an fd the CALLER
 * owns (closing it is the caller's, any time: the store keeps its own
 * reference until commit or abort). estimate (bytes, 0: unknown) is
 * advisory: the quota is judged at commit on the blocks written, since an
 * estimate is an upper bound and the core is sparse. -EINVAL: bad name,
 * -EEXIST: name already given, -errno of the file system. */
int pd_store_file(struct pd_store_new *n, const char *name, uint64_t estimate);
/* An unnamed scratch file in the entry's directory (e.g. the core a zip or
 * zstd is made of), never linked, not counted; the caller owns the fd. */
int pd_store_scratch(struct pd_store_new *n);

/* Finishes the entry: its files synced and linked, meta.json written last
 * from meta, the quotas applied, the directory renamed into place. meta is
 * a JSON object (kind "dump"|"stacks", pid, process, trigger "manual"|
 * "rule"|"crash", rule, dumpType, format, method, figures...), STOLEN
 * (decref'd on every path; NULL: {}); the store sets in it: id, created
 * (ISO 8601 UTC), created_ns, file (the main file's name), size (its
 * bytes), bytes (allocated bytes of all files), files ([{name, size,
 * bytes}]), and pid and uid (pd_store_begin's) when absent. id (may be
 * NULL) gets the id. n is freed on every path; on failure nothing of the
 * entry is left.
 *   -EDQUOT  the entry alone is bigger than max_bytes (nothing evicted)
 *   -ENOENT  no file was asked for */
int pd_store_commit(struct pd_store_new *n, json_t *meta, char id[PD_STORE_ID_MAX]);
/* Drops the entry: nothing of it is left. n is freed. NULL is fine. */
void pd_store_abort(struct pd_store_new *n);

/* The entries' meta objects, newest first (a new reference the caller
 * decrefs). Entries past max_age are removed first, never listed. An
 * entry whose meta.json cannot be read is listed with its id, an error
 * member and its files. */
int pd_store_list(struct pd_store *s, json_t **entries);

/* Opens a file of entry id for reading: file NULL: its main file. *fd (the
 * caller closes it) and, when meta is not NULL, *meta (the caller decrefs)
 * are set on success. -EINVAL: id or file not valid, -ENOENT: no such
 * entry or file. */
int pd_store_open_entry(struct pd_store *s, const char *id, const char *file, int *fd,
			json_t **meta);
/* Removes entry id (renamed to .del-<id> first, then deleted: never half
 * listed). A download in progress keeps its open fd. -EINVAL, -ENOENT. */
int pd_store_remove(struct pd_store *s, const char *id);

/* The dump job's open_out (lib/dumpjob.h) into a store entry: the final
 * file of the format is pd_store_file(n, name), the core of a zip or zstd
 * a scratch file. *limit is 0 (the file system bounds the file). */
struct pd_store_dumpout {
	struct pd_store_new *n;
	enum pd_dump_format format;
	const char *name; /* the final file's name; NULL: pd_store_dump_name() */
	int pid;	  /* for the default name */
};
int pd_store_dump_open_out(void *arg, enum pd_dumpjob_file which, uint64_t estimate,
			   uint64_t *limit);
/* The meta of a dump entry, the same for every writer (the live routes'
 * store=true, rule actions, the crash handler): kind "dump", pid, process
 * (process may be NULL), trigger ("manual", "rule", "crash"), rule (NULL:
 * JSON null), dumpType (its name or bits in hex), dumpTypeBits, format
 * ("raw", "zip", "zstd"), method, method_reason, figures {stopped_us,
 * freezing_us, frozen_us, copy_us, copied_bytes, extra_memory,
 * dumped_bytes, threads, mappings, core_size}, core_name; zip: bundle
 * {modules, binaries, debug_files}. res may be NULL (a core that did not
 * come from the dump job: the crash handler's), then no method/figures.
 * A new reference, NULL when out of memory. */
json_t *pd_store_dump_meta(const struct pd_dumpjob_result *res, const struct pd_dumptype *type,
			   enum pd_dump_format format, int pid, const char *process,
			   const char *trigger, const char *rule);
/* The one way a dump job's dump becomes a store entry (rule actions,
 * operations with async=true): pd_store_begin, the job with its files in
 * the entry (o->open_out and o->arg are set here; progress(parg, ...) is
 * the job's progress, may be NULL), pd_store_dump_meta(process, trigger,
 * rule), then meta_hook(meta, hook_arg) (may be NULL; it returns the meta
 * to store, or NULL for out of memory, and owns the one it got), commit.
 * 0 with id set and jr the job's result (its fd closed), or -errno with
 * detail a sentence ("dump: ...", -EDQUOT: "quota: ...; nothing was
 * stored") and nothing of it in the store. */
int pd_store_dump_job(struct pd_store *s, struct pd_dumpjob_opts *o,
		      int (*progress)(void *, enum pd_dump_phase, uint64_t, uint64_t), void *parg,
		      const char *process, const char *trigger, const char *rule,
		      json_t *(*meta_hook)(json_t *, void *), void *hook_arg,
		      struct pd_dumpjob_result *jr, char id[PD_STORE_ID_MAX], char *detail,
		      size_t detlen);
/* The one way a stacks document (lib/stacks.h) becomes a store entry
 * (rule actions, operations with async=true): stacks.json (the document)
 * and stacks.txt (pd_stacks_text) in one entry about pid. meta (STOLEN;
 * NULL is out of memory) is the writer's (trigger, rule, process...); kind
 * "stacks" and threads are set here. 0 with id set, or -errno with detail
 * a sentence ("stacks: ...", -EDQUOT: "quota: ...; nothing was stored")
 * and nothing of it in the store. */
int pd_store_stacks(struct pd_store *s, int pid, const json_t *doc, json_t *meta,
		    char id[PD_STORE_ID_MAX], char *detail, size_t detlen);
/* "core.PID", "core.PID.zip" or "core.PID.zst". */
const char *pd_store_dump_name(enum pd_dump_format format, int pid, char *buf, size_t size);

#endif
