/* The azureBlobStorage egress provider (lib/egress_azure.c), called by
 * lib/egress.c's dispatch. Same contracts as pd_egress_begin/write/commit/abort. */
#ifndef PD_EGRESS_AZURE_H
#define PD_EGRESS_AZURE_H

#include "lib/egress.h"

int  pd_egress_azure_begin(const struct pd_egress_provider *p, const char *name, const struct pd_egress_meta *m,
			   struct pd_egress_upload **out, char *err, size_t errlen);
int  pd_egress_azure_write(struct pd_egress_upload *u, const void *buf, size_t n, char *err, size_t errlen);
int  pd_egress_azure_commit(struct pd_egress_upload *u, char *location, size_t loclen, char *err, size_t errlen);
void pd_egress_azure_abort(struct pd_egress_upload *u);

#endif
