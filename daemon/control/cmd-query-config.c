/*
 * query-config: the effective configuration, one member per snapd.conf(5)
 * key, sizes in bytes.
 */
#include "config.h"
#include "cmd.h"

static enum cmd_retval
cmd_query_config_exec(struct cmd_ctx *ctx)
{
	ctx->ret = config_to_json(config_get());
	return CMD_RETURN;
}

const struct cmd_entry cmd_query_config_entry = {
	.name = "query-config",
	.exec = cmd_query_config_exec,
};
