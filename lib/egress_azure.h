/* The azureBlobStorage egress provider (docs/FLEET.md, docs/CONFIGURATION.md).
 *
 * A file becomes a block blob named {blob_prefix}/{host}/{site}/{name} in
 * the provider's container: Put Block of block_size bytes each (ids: the
 * base64 of a fixed-width counter), up to `parallel` of them in flight on
 * their own threads, each tried up to 3 times (backoff 1 s, 4 s) on a
 * connection error or a 408/429/5xx answer; then one Put Block List,
 * carrying the x-ms-meta-* metadata, makes the blob whole at once. Before
 * that commit the blob does not exist: an aborted or failed upload leaves
 * only uncommitted blocks, which the service garbage-collects (Azure: after
 * a week; Azurite: at its own GC) and which no listing or read shows.
 *
 * Auth: SharedKey (HMAC-SHA256 of the canonicalized request with the
 * base64-decoded account key, libcrypto) or a SAS token appended to each
 * request's query. Account URLs: https://ACCOUNT.blob.core.windows.net
 * (host-style) or http://HOST:PORT/ACCOUNT (path-style, Azurite's
 * http://127.0.0.1:10000/devstoreaccount1).
 *
 * Errors name the service's x-ms-error-code and its message; a refused
 * credential (403 AuthenticationFailed) says so in a sentence. No error,
 * location or log line ever carries the account key or the SAS token.
 * Called by lib/egress.c's dispatch; same contracts as
 * pd_egress_begin/write/commit/abort. */
#ifndef PD_EGRESS_AZURE_H
#define PD_EGRESS_AZURE_H

#include <jansson.h>
#include <stddef.h>

#include "lib/egress.h"

int  pd_egress_azure_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
			   struct pd_egress_upload **out, char *err, size_t errlen);
int  pd_egress_azure_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen);
/* location: the blob's URL (no SAS). Frees u when it returns 0; after a
 * failure u is the caller's to pd_egress_azure_abort. */
int  pd_egress_azure_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen);
void pd_egress_azure_abort(struct pd_egress_upload *u);

/* The blobs of the container whose names start with blob_prefix + "/" (all
 * hosts, all sites): *out an array of {name, size, lastModified, metadata}
 * (List Blobs, include=metadata, every page). */
int pd_egress_azure_list(const struct pd_egress_provider *p, json_t **out, char *err,
			 size_t errlen);
/* Get Blob of the full blob name (as listed) into fd, from its offset. */
int pd_egress_azure_get(const struct pd_egress_provider *p, const char *blob, int fd, char *err,
			size_t errlen);

#endif
