/* Stub of the azureBlobStorage provider: the azure branch replaces this file. */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "lib/egress_azure.h"

#define NOT_BUILT "azureBlobStorage is not built in"

__attribute__((weak)) int pd_egress_azure_begin(const struct pd_egress_provider *p, const char *name,
						const struct pd_egress_meta *m, struct pd_egress_upload **out,
						char *err, size_t errlen)
{
	(void)p; (void)name; (void)m;
	*out = NULL;
	snprintf(err, errlen, NOT_BUILT);
	return -ENOSYS;
}

__attribute__((weak)) int pd_egress_azure_write(struct pd_egress_upload *u, const void *buf, size_t n,
						char *err, size_t errlen)
{
	(void)u; (void)buf; (void)n;
	snprintf(err, errlen, NOT_BUILT);
	return -ENOSYS;
}

__attribute__((weak)) int pd_egress_azure_commit(struct pd_egress_upload *u, char *location, size_t loclen,
						 char *err, size_t errlen)
{
	(void)u;
	if (loclen)
		*location = 0;
	snprintf(err, errlen, NOT_BUILT);
	return -ENOSYS;
}

__attribute__((weak)) void pd_egress_azure_abort(struct pd_egress_upload *u)
{
	(void)u;
}
