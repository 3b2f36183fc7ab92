/*
 * snapshot-cancel: stop a running snapshot.  The engine drops the
 * protection and removes the partial file; SNAPSHOT_FAILED with
 * "cancelled": true follows from snapshots.c.
 */
#include <stdio.h>

#include "protocol.h"
#include "control.h"
#include "snapshots.h"
#include "cmd.h"

static enum cmd_retval
cmd_snapshot_cancel_exec(struct cmd_ctx *ctx)
{
	struct snap_entry	*e;
	char			 why[128];

	if ((e = cmd_snapshot_lookup(ctx, "snapshot-cancel", 1)) == NULL)
		return CMD_ERROR;
	snprintf(why, sizeof(why), "by uid %u (pid %d)",
	    (unsigned)ctx->conn->uid, (int)ctx->conn->pid);
	snapshot_cancel(e->snap, why);
	return CMD_RETURN;
}

const struct cmd_entry cmd_snapshot_cancel_entry = {
	.name = "snapshot-cancel",
	.args = CMD_ARGS({ "id", CMD_ARG_INT, 1 }),
	.exec = cmd_snapshot_cancel_exec,
};
