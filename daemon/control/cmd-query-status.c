/*
 * query-status: the daemon's figures (uptime, snapshot counts, bytes
 * written, connections) and which kernel features it found.
 */
#include <unistd.h>

#include "protocol.h"
#include "log.h"
#include "control.h"
#include "snapshot.h"
#include "snapshots.h"
#include "cmd.h"

static enum cmd_retval
cmd_query_status_exec(struct cmd_ctx *ctx)
{
	struct snapshots_counters n;

	snapshots_counters(&n);
	ctx->ret = json_pack("{ss si sI si si sI sI sI si so}",
	    "version", SNAPD_VERSION,
	    "pid", (int)getpid(),
	    "uptime-ms", (json_int_t)control_uptime_ms(),
	    "snapshots-active", (int)n.active,
	    "snapshots-running-peak", (int)snapshot_running_peak(),
	    "snapshots-total", (json_int_t)n.total,
	    "snapshots-failed", (json_int_t)n.failed,
	    "bytes-written", (json_int_t)n.bytes_written,
	    "connections", (int)control_connection_count(),
	    "kernel-features", control_kernel_features());
	if (ctx->ret == NULL)
		fatalx("out of memory building query-status");
	return CMD_RETURN;
}

const struct cmd_entry cmd_query_status_entry = {
	.name = "query-status",
	.exec = cmd_query_status_exec,
};
