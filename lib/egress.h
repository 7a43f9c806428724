/* Egress providers: destinations a dump is uploaded to (docs/CONFIGURATION.md
 * "[egress NAME]", docs/OPERATIONS-API.md).
 *
 * lib/ knows no HTTP routes; an egress provider is a destination for one file at a time. */
#ifndef PD_EGRESS_H
#define PD_EGRESS_H

#include <stddef.h>
#include <stdint.h>

enum pd_egress_type { PD_EGRESS_FILESYSTEM, PD_EGRESS_AZURE_BLOB };
struct pd_egress_provider {
	char name[65];              /* [egress NAME] */
	enum pd_egress_type type;
	/* filesystem */
	char *directory;
	/* azureBlobStorage (dotnet-monitor's names: accountUri, containerName, blobPrefix,
	   accountKey / sharedAccessSignature; here snake_case keys) */
	char *account_url, *container, *blob_prefix;
	char *account_key;          /* secret: never logged, never answered */
	char *sas_token;            /* secret too */
	unsigned block_size;        /* bytes, default 4 MiB */
	unsigned parallel;          /* blocks in flight, default 4 */
	/* filesystem retention (the store's rules, lib/store.h pd_quota_*), applied to the files
	   procdiag wrote in the upload's directory at each commit; 0: no bound */
	unsigned max_count;
	uint64_t max_bytes;
	uint64_t max_age_s;
};
struct pd_egress_meta {
	const char *host, *site, *process, *dump_type, *method, *trigger, *rule;
	int pid;
	/* Out, set by pd_egress_dump_job (lib/operations.h): bytes of the final file
	   uploaded before the dump job had finished writing it (0 when the upload
	   did not overlap the job: raw and zip). */
	unsigned long long streamed;
};
struct pd_egress_upload;
/* Starts one upload of a file called name (the provider prefixes it: {prefix}/{host}/{site}/name). */
int  pd_egress_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
		     struct pd_egress_upload **out, char *err, size_t errlen);
/* Appends; may block while blocks are in flight. -errno with err set. */
int  pd_egress_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen);
/* Makes the file whole at the destination; location gets its URL or path (no secret in it). */
int  pd_egress_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen);
/* Leaves nothing at the destination (uncommitted blocks expire in Azure; a temp file is removed); frees u.
   Also after a failed write or commit. Safe to call from the thread that owns u only; cancel from
   another thread goes through the operation's cancel flag, checked between writes. */
void pd_egress_abort(struct pd_egress_upload *u);
/* Upload a whole file fd (pread from 0 to its size, on the tail's uploader thread below): begin, write, commit. */
int  pd_egress_upload_fd(const struct pd_egress_provider *p, int fd, const char *name, const struct pd_egress_meta *m,
			 int (*cancelled)(void *), void *arg, char *location, size_t loclen, char *err, size_t errlen);
/* Uploading a file while one other thread is still writing it, sequentially and
 * never rewriting a byte (a zstd stream, lib/zstdout.h), so that the upload
 * overlaps the writing (docs/OPERATIONS-API.md, "Streaming").
 * pd_egress_tail_start begins the upload and starts an uploader thread on a
 * dup of fd: it waits to be poked (or 200 ms), takes the file's size (fstat),
 * preads each whole block_size below it, hands it to pd_egress_write, and
 * punches a hole (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE) behind what was sent, so the
 * file on disk holds only what is not uploaded yet. Its memory: one block
 * buffer, beside the provider's own. cancelled (may be NULL) stops it.
 * The holes are punched only with PD_EGRESS_TAIL_PUNCH in flags (a spool;
 * never a file that is kept, as a store entry). pd_egress_upload_fd is a tail
 * whose file is whole from the start. */
struct pd_egress_tail;
#define PD_EGRESS_TAIL_PUNCH 1u
int  pd_egress_tail_start(const struct pd_egress_provider *p, int fd, const char *name,
			  const struct pd_egress_meta *m, unsigned flags, int (*cancelled)(void *), void *arg,
			  struct pd_egress_tail **out, char *err, size_t errlen);
/* The writer progressed: wakes the uploader. Returns 0, or the uploader's
 * failure (-errno): the writer should stop then. Any thread. */
int  pd_egress_tail_poke(struct pd_egress_tail *t);
/* Bytes handed to the provider so far. Any thread. */
unsigned long long pd_egress_tail_sent(struct pd_egress_tail *t);
/* The file is complete at size bytes: the rest is uploaded and committed.
 * 0 with location, or -errno with err (then nothing is left at the
 * destination). Frees t either way. */
int  pd_egress_tail_finish(struct pd_egress_tail *t, unsigned long long size, char *location,
			   size_t loclen, char *err, size_t errlen);
/* The writer failed or was cancelled: stops the uploader, aborts the upload
 * (nothing left), frees t. The uploader's own failure, if any, in err (may be
 * NULL): -errno, else 0. */
int  pd_egress_tail_abort(struct pd_egress_tail *t, char *err, size_t errlen);

/* lib/egress.c dispatches on type to lib/egress_fs.c / lib/egress_azure.c (pd_egress_azure_begin/write/commit/abort). */

/* Beyond the interface (ops branch): */
/* Every provider's struct pd_egress_upload starts with this (its type), so
 * lib/egress.c can dispatch write/commit/abort. */
struct pd_egress_upload_head { enum pd_egress_type type; };
/* pd_egress_commit frees u when it returns 0; after a failure u is the
 * caller's to pd_egress_abort. */
#define PD_EGRESS_BLOCK_SIZE_DEFAULT (4u << 20)
#define PD_EGRESS_PARALLEL_DEFAULT 4u
/* "filesystem" / "azureBlobStorage" (dotnet-monitor's names). */
const char *pd_egress_type_name(enum pd_egress_type t);
/* 0 and *t, or -EINVAL for another name. */
int pd_egress_type_parse(const char *s, enum pd_egress_type *t);
/* Frees the strings of p (secrets wiped first). */
void pd_egress_provider_release(struct pd_egress_provider *p);

/* The filesystem provider (lib/egress_fs.c). */
int  pd_egress_fs_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
			struct pd_egress_upload **out, char *err, size_t errlen);
int  pd_egress_fs_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen);
int  pd_egress_fs_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen);
void pd_egress_fs_abort(struct pd_egress_upload *u);

#endif
