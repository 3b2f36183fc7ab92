/*
 * query-snapshots: every snapshot the peer may see (its own uid's; root
 * sees all), running or among the last 64 finished.
 */
#include "control.h"
#include "report.h"
#include "cmd.h"

enum cmd_retval
cmd_query_snapshots_exec(struct cmd_ctx *ctx)
{
	ctx->ret = report_query(ctx->conn->uid);
	return CMD_RETURN;
}
