/*
 * query-version: snapd's version and the control protocol version.
 */
#include <stddef.h>

#include "protocol.h"
#include "log.h"
#include "cmd.h"

static enum cmd_retval
cmd_query_version_exec(struct cmd_ctx *ctx)
{
	ctx->ret = json_pack("{ss si}", "version", SNAPD_VERSION,
	    "protocol", SNAPD_PROTOCOL_VERSION);
	if (ctx->ret == NULL)
		fatalx("out of memory building query-version");
	return CMD_RETURN;
}

const struct cmd_entry cmd_query_version_entry = {
	.name = "query-version",
	.exec = cmd_query_version_exec,
};
