/*
 * snapshot-cancel: stop a running snapshot.  The engine drops the
 * protection and removes the partial file; SNAPSHOT_FAILED with
 * "cancelled": true follows from snapshots.c.  On a completed snapshot
 * that tracks its process's writes (chain.h) it ends the tracking: the
 * process's memory is released and no incremental can follow it.
 */
#include <stdio.h>

#include "protocol.h"
#include "control.h"
#include "snapshots.h"
#include "chain.h"
#include "cmd.h"

static enum cmd_retval
cmd_snapshot_cancel_exec(struct cmd_ctx *ctx)
{
	struct snap_entry	*e;
	char			 why[128];

	if ((e = cmd_snapshot_lookup(ctx, "snapshot-cancel", 0)) == NULL)
		return CMD_ERROR;
	snprintf(why, sizeof(why), "by uid %u (pid %d)",
	    (unsigned)ctx->conn->uid, (int)ctx->conn->pid);
	if (e->done && e->tracker != NULL) {
		char untracked[160];

		snprintf(untracked, sizeof(untracked), "tracking cancelled %s",
		    why);
		chain_untrack(e, untracked);
		return CMD_RETURN;
	}
	if (e->done || e->snap == NULL) {
		cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-cancel: snapshot "
		    "%llu has already finished", (unsigned long long)e->id);
		return CMD_ERROR;
	}
	snapshot_cancel(e->snap, why);
	return CMD_RETURN;
}

const struct cmd_entry cmd_snapshot_cancel_entry = {
	.name = "snapshot-cancel",
	.args = CMD_ARGS({ "id", CMD_ARG_INT, 1 }),
	.exec = cmd_snapshot_cancel_exec,
};
