/*
 * snapshot-arm: the second step of a pre-armed snapshot.  snapshot-start
 * with "prearm": true protected the regions while the process ran; its
 * owner has now stopped it, and the engine protects again only the pages
 * written since.  The reply is deferred until the snapshot is armed (its
 * point in time), as snapshot-start's is without pre-arm.  An attach
 * started with "wait-arm" (attaching.h): snapd stops the process again
 * itself, arms, and replies once it runs again.
 */
#include <errno.h>
#include <string.h>

#include "protocol.h"
#include "control.h"
#include "report.h"
#include "attaching.h"
#include "cmd.h"

static enum cmd_retval
cmd_snapshot_arm_exec(struct cmd_ctx *ctx)
{
	struct snap_entry	*e;

	/* Not need_running: a finished snapshot gets the message below. */
	if ((e = cmd_snapshot_lookup(ctx, "snapshot-arm", 0)) == NULL)
		return CMD_ERROR;
	if ((e->attached ? attaching_arm(e, ctx->conn->id, ctx->id) :
	    report_arm(e, ctx->conn->id, ctx->id)) == -1)
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-arm: "
		    "snapshot %llu is not pre-armed and waiting to be armed "
		    "(%s)", (unsigned long long)e->id, errno == EALREADY ?
		    "arming was already asked" : errno == EPERM ? "snapd arms "
		    "this attach itself; start it with \"wait-arm\": true to "
		    "arm it with snapshot-arm" : e->done ? "it has finished" :
		    !e->prearm ? "it was not started with \"prearm\": true" :
		    e->armed ? "it is armed already" : "it is still pre-arming");
	return CMD_DEFER;
}

const struct cmd_entry cmd_snapshot_arm_entry = {
	.name = "snapshot-arm",
	.args = CMD_ARGS({ "id", CMD_ARG_INT, 1 }),
	.exec = cmd_snapshot_arm_exec,
};
