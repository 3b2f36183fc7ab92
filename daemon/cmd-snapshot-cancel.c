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

const struct cmd_arg cmd_snapshot_cancel_args[] = {
	{ "id", CMD_ARG_INT, 1 },
	{ NULL, 0, 0 }
};

enum cmd_retval
cmd_snapshot_cancel_exec(struct cmd_ctx *ctx)
{
	struct snap_entry	*e;
	json_int_t		 id;
	char			 why[128];

	id = json_integer_value(json_object_get(ctx->args, "id"));
	if (id <= 0 || (e = snapshots_find((uint64_t)id)) == NULL)
		return cmd_error(ctx, SNAPD_ERR_NOT_FOUND, "snapshot-cancel: "
		    "no snapshot with id %lld", (long long)id);
	if (!snapshots_visible(e, ctx->conn->uid))
		return cmd_error(ctx, SNAPD_ERR_PERMISSION, "snapshot-cancel: "
		    "snapshot %lld is not yours", (long long)id);
	if (e->done || e->snap == NULL)
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-cancel: "
		    "snapshot %lld has already finished", (long long)id);
	snprintf(why, sizeof(why), "by uid %u (pid %d)",
	    (unsigned)ctx->conn->uid, (int)ctx->conn->pid);
	snapshot_cancel(e->snap, why);
	return CMD_RETURN;
}
