/*
 * query-snapshots: every snapshot the peer may see (its own uid's; root
 * sees all), running or among the last 64 finished.
 */
#include "control.h"
#include "report.h"
#include "cmd.h"

static enum cmd_retval
cmd_query_snapshots_exec(struct cmd_ctx *ctx)
{
	ctx->ret = report_query(ctx->conn->uid);
	return CMD_RETURN;
}

const struct cmd_entry cmd_query_snapshots_entry = {
	.name = "query-snapshots",
	.exec = cmd_query_snapshots_exec,
};
