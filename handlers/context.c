#include "config.h"

#include "handlers/context.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"
#include "lib/procfs.h"

int pd_context_init(struct pd_context *ctx, const struct pd_config *config, int threads)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->config = config;
	ctx->max_dumps = config->max_dumps;
	if (ctx->max_dumps >= threads)
		ctx->max_dumps = threads > 1 ? threads - 1 : 1;
	atomic_init(&ctx->dumps_running, 0);
	if (gethostname(ctx->machine_name, sizeof(ctx->machine_name) - 1) < 0)
		strcpy(ctx->machine_name, "localhost");
	return 0;
}

int pd_context_site_pid(const struct pd_context *ctx, int *pid)
{
	struct strbuf sb = STRBUF_INIT;
	size_t len;
	int r;

	/* Never procdiag itself by default: its memory holds other clients'
	 * requests, and id 0 is the id a client tries first. */
	if (!ctx->config->site_pid_file)
		return -ENOENT;
	/* Read on every request: the site may restart and rewrite it. */
	r = pd_read_file_at(AT_FDCWD, ctx->config->site_pid_file, &sb, 64);
	if (r < 0) {
		strbuf_release(&sb);
		return -ESRCH;
	}
	len = sb.len;
	while (len && (sb.buf[len - 1] == '\n' || sb.buf[len - 1] == ' '))
		len--;
	r = parse_pid(sb.buf, len, pid);
	strbuf_release(&sb);
	return r < 0 || *pid == 0 ? -ESRCH : 0;
}
