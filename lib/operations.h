/* Operations: dumps that run in the background (docs/OPERATIONS-API.md).
 *
 * An operation is one dump job (lib/dumpjob.h) run on a thread of its own
 * (never a FastCGI worker: a client that goes away does not stop it),
 * then either uploaded to an egress provider (lib/egress.h) from its spool
 * (lib/spool.h), or committed into the dump store (lib/store.h,
 * pd_store_dump_job: the one store path rule actions use too).
 *
 * Each operation has a record, a JSON object in dotnet-monitor's shape
 * (OperationStatus: operationId, createdDateTime, status
 * Running|Succeeded|Failed|Cancelled, process {pid, uid, name},
 * egressProviderName, isStoppable, tags, resourceLocation, error) plus
 * procdiag's members: error's problem details (title, detail, status),
 * ownerUid (the owner of /proc/PID when the operation was asked for: the
 * uid the scope judges; null when not known),
 * storeId (async into the store), dump {dumpType, format, method,
 * stopped_us, bytes}. The records are kept in state_dir/.operations.json
 * (rewritten atomically: a temp file renamed over it at every change of
 * status), so a restarted responder lists them; one that was Running
 * when the responder died is Failed "interrupted by a restart". At most
 * PD_OPS_KEEP records are kept: the oldest finished ones go first.
 *
 * Scope: a record whose ownerUid is not in the scope of o->scope (the
 * responder's scope now, which may be narrower than when the record was
 * made) is nonexistent to pd_ops_list, pd_ops_get and pd_ops_cancel, as
 * an out-of-scope process is. A record without an ownerUid (a state file
 * written before it existed, a copy of a store entry that has none) is in
 * scope only for scope "all".
 *
 * Cancel: a flag the job's progress callback and the upload's cancelled
 * callback read; the upload is aborted (lib/egress.h: nothing is left at
 * the destination), a store entry is never committed. pd_ops_cancel waits
 * for the thread to end, so the answer says how it ended. */
#ifndef PD_OPERATIONS_H
#define PD_OPERATIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/dumpjob.h"
#include "lib/egress.h"
#include "lib/scope.h"

#define PD_OP_ID_LEN 36 /* a UUID, 8-4-4-4-12 lower-case hex */
#define PD_OPS_KEEP 200

struct pd_store;
struct pd_ops;

struct pd_ops_opts {
	const char *state_dir;	/* where .operations.json lives (the store dir); NULL: memory only */
	struct pd_store *store;	/* the target of operations without egress; may be NULL */
	const char *spool_dir;	/* the spools of uploads */
	uint64_t spool_memory_max;
	const struct pd_scope *scope; /* borrowed; the helper judges by it */
	const char *host, *site;      /* the upload's names: {host}/{site}/{file} */
	const char *helper;	      /* NULL: /proc/self/exe */
	unsigned cancel_wait_ms;      /* how long pd_ops_cancel waits (0: 30000) */
};

/* What an operation does: a dump (the default), a stacks snapshot, a store
 * entry copied to an egress provider (docs/OPERATIONS-API.md). */
enum pd_op_kind { PD_OP_DUMP, PD_OP_STACKS, PD_OP_STORE_COPY };

/* A stacks operation's upload: the document (lib/stacks.h, borrowed) as
 * the bytes of the file uploaded, in the format fmt the request chose (the
 * front end's: dotnet-monitor's JSON, text or speedscope; procdiag's own).
 * 0 and *bytes (malloc'd) and *len, or -ENOMEM. */
typedef int (*pd_op_stacks_render)(const json_t *doc, int fmt, char **bytes, size_t *len);

struct pd_op_request {
	int pid;
	uint64_t start_time;
	struct pd_dumptype type;
	enum pd_dump_format format;
	const char *process;			 /* its name (may be NULL) */
	bool uid_known;				 /* uid is the owner of /proc/PID */
	uid_t uid;				 /* (lib/scope.h): the record's ownerUid */
	const struct pd_egress_provider *egress; /* NULL: into the store */
	const char *tags;			 /* comma-separated (may be NULL) */
	const char *trigger;			 /* "manual" (NULL) or "rule" */
	const char *rule;
	atomic_int *slot; /* a taken dump slot, given back when the operation ends (may be NULL) */
	/* --- the other kinds (type and format are a dump's only) --- */
	enum pd_op_kind kind;
	/* PD_OP_STACKS: with egress, the document rendered by render(fmt) is
	 * uploaded as dotnet-monitor names it, "{yyyyMMdd_HHmmss_fff}_{pid}.stacks.{ext}"
	 * (the operation's creation);
	 * without, it goes into the store (pd_store_stacks). */
	pd_op_stacks_render render;
	int fmt;
	const char *ext;       /* "json" or "txt" */
	const char *fmt_name;  /* the record's stacks.format */
	bool no_source;	       /* lib/stacks.h */
	/* PD_OP_STORE_COPY: entry store_id's file (NULL: its main file) to
	 * egress, as pd_store_push does it; pid is the entry's */
	const char *store_id, *store_file;
};

/* Reads the state file (a Running record becomes Failed, "interrupted by
 * a restart", and the file is rewritten). 0, or -errno (a state file that
 * is not JSON is renamed .operations.json.bad and ignored: 0). */
int pd_ops_open(const struct pd_ops_opts *o, struct pd_ops **out);
/* Cancels every running operation, waits for them (their records end
 * Failed, "interrupted: the responder stopped"), frees. NULL is fine. */
void pd_ops_close(struct pd_ops *ops);

/* Starts one operation; id gets its operationId. On failure (-ENOMEM,
 * -EAGAIN: no thread; -ESHUTDOWN: closing) err says why and the slot is
 * NOT given back (the caller still holds it). */
int pd_ops_start(struct pd_ops *ops, const struct pd_op_request *rq, char id[PD_OP_ID_LEN + 1],
		 char *err, size_t errlen);
/* The OperationSummary list, oldest first: pid < 0 and tags NULL/"" mean
 * no filter; tags is comma-separated, every one must be the operation's.
 * Records out of the scope (above) are left out. */
json_t *pd_ops_list(struct pd_ops *ops, int pid, const char *tags);
/* The OperationStatus record (a copy), or NULL (unknown id, or out of the
 * scope). */
json_t *pd_ops_get(struct pd_ops *ops, const char *id);
/* Cancels a running operation and waits for its end. 0 (it ended
 * Cancelled), -ENOENT (unknown, or out of the scope), -EALREADY (not
 * running: it had ended, or it ended Succeeded/Failed before the cancel
 * reached it), -ETIMEDOUT
 * (still ending after cancel_wait_ms; it will be Cancelled). */
int pd_ops_cancel(struct pd_ops *ops, const char *id);
/* A well-formed UUID (any case). */
bool pd_op_id_valid(const char *s);

/* A dump job uploaded to p (rule actions and operations; docs/OPERATIONS-API.md,
 * "Streaming"): every file of the job on disk in spool_dir (spool_memory_max
 * is not used); a zstd stream uploaded while it is written (lib/egress.h's
 * tail), raw and zip from their spool after the job (pd_egress_upload_fd).
 * name NULL: pd_egress_dump_name(format, pid, NULL). m's method and streamed
 * are filled from the job. cancelled (may be NULL) stops both; a failed
 * upload stops the job (its detail then is the upload's, jr->error OK).
 * 0 with location, or -errno with detail (a sentence without a secret);
 * jr gets the job's result either way. */
int pd_egress_dump_job(const struct pd_egress_provider *p, struct pd_dumpjob_opts *o,
		       const char *spool_dir, uint64_t spool_memory_max, int (*cancelled)(void *),
		       void *carg, struct pd_egress_meta *m, const char *name,
		       struct pd_dumpjob_result *jr, char *location, size_t loclen, char *detail,
		       size_t detlen);
/* One file of store entry id (file NULL: its main file) uploaded to p as
 * "{id}-{file}" under {host}/{site}, the entry's meta as the upload's
 * metadata: what `procdiag dumps push` and POST /api/dumps/{id}/egress
 * both do. cancelled (may be NULL) aborts it (nothing is left at the
 * destination). 0 with location; -EINVAL (a bad id or file name),
 * -ENOENT (no such entry or file), or another -errno, with err a sentence
 * without a secret. *bytes (may be NULL) gets the file's size. */
int pd_store_push(struct pd_store *s, const struct pd_egress_provider *p, const char *id,
		  const char *file, const char *host, const char *site, int (*cancelled)(void *),
		  void *carg, char *location, size_t loclen, uint64_t *bytes, char *err,
		  size_t errlen);

/* "core.PID.YYYYMMDDTHHMMSSZ[.TAG][.zip|.zst]": TAG (may be NULL) keeps
 * two dumps of one second apart. */
const char *pd_egress_dump_name(enum pd_dump_format format, int pid, const char *tag, char *buf,
				size_t size);

#endif
