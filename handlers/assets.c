/* GET /assets/{name}: the browser view's scripts and styles (handlers/assets.h).
 *
 * A page names an asset with pd_h_asset_href() (handlers/html.h), whose
 * "?v=" is the asset's ETag: a new build's page asks for a new URL, so the
 * browser may keep what it has for a day (Cache-Control: private, the
 * answer needs the API key like every route) and still never runs an old
 * script with a new page. If-None-Match with the ETag: 304. */
#include "config.h"

#include "handlers/assets.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/request.h"
#include "fcgi/response.h"
#include "handlers/handlers.h"

#define ETAG_LEN 19 /* '"', 16 hex digits, '"', NUL */

static char (*etags)[ETAG_LEN]; /* pd_nassets of them, or NULL: out of memory */
static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

/* FNV-1a, 64 bits: not a security measure, only "did the bytes change". */
static void make_etags(void)
{
	etags = calloc(pd_nassets ? pd_nassets : 1, sizeof(*etags));
	for (size_t i = 0; etags && i < pd_nassets; i++) {
		uint64_t h = 0xcbf29ce484222325ULL;

		for (size_t j = 0; j < pd_assets[i].len; j++)
			h = (h ^ pd_assets[i].data[j]) * 0x100000001b3ULL;
		snprintf(etags[i], ETAG_LEN, "\"%016llx\"", (unsigned long long)h);
	}
}

const struct pd_asset *pd_asset_find(const char *name)
{
	for (size_t i = 0; name && i < pd_nassets; i++)
		if (!strcmp(pd_assets[i].name, name))
			return &pd_assets[i];
	return NULL;
}

const char *pd_asset_etag(const struct pd_asset *a)
{
	pthread_once(&etags_once, make_etags);
	return etags ? etags[a - pd_assets] : "\"0\"";
}

/* Does If-None-Match name etag (or *)? */
static int none_match(struct pd_req *r, const char *etag)
{
	const char *v = pd_req_env(r, "HTTP_IF_NONE_MATCH");

	return v && (strstr(v, etag) || !strcmp(v, "*"));
}

int h_asset(struct pd_req *r)
{
	const char *name = pd_req_param(r, "name");
	const struct pd_asset *a = pd_asset_find(name);
	const char *etag;
	int rc;

	if (!a)
		return pd_resp_problem(r, 404, "name", "There is no asset named '%s'.",
				       name ? name : "");
	etag = pd_asset_etag(a);
	pd_resp_header(r, "ETag", etag);
	pd_resp_header(r, "Cache-Control", "private, max-age=86400");
	if (none_match(r, etag))
		return pd_resp_begin(r, 304, NULL, -1);
	rc = pd_resp_begin(r, 200, a->type, (long long)a->len);
	if (rc == 0)
		rc = pd_resp_write(r, a->data, a->len);
	return rc;
}
