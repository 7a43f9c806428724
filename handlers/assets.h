/* The files of handlers/assets/ (scripts and styles of the browser view),
 * embedded at build time by handlers/assets/embed.sh into a generated
 * handlers/assets_data.c and served by GET /assets/{name}: no file is read
 * at run time. */
#ifndef PD_ASSETS_H
#define PD_ASSETS_H

#include <stddef.h>

struct pd_asset {
	const char *name; /* "table.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct pd_asset pd_assets[];
extern const size_t pd_nassets;

/* The asset called name, or NULL. */
const struct pd_asset *pd_asset_find(const char *name);
/* Its strong ETag, quoted ("\"0123456789abcdef\""): a hash of its bytes,
 * made once. */
const char *pd_asset_etag(const struct pd_asset *a);

#endif
