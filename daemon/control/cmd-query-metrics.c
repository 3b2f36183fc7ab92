/*
 * query-metrics: the daemon-wide figures since snapd started (metrics.h),
 * counters of every snapshot, finished and running, the page buffers now,
 * and histograms of the arm pause and of fault stalls, for monitoring
 * (memsnapctl metrics turns them into Prometheus's text format).  Like
 * query-status, any peer may ask: they are sums over every user's
 * snapshots and name none of them (no id, name, pid, uid or path).
 */
#include "log.h"
#include "control.h"
#include "metrics.h"
#include "cmd.h"

static json_t *
cmd_query_metrics_check(json_t *o)
{
	if (o == NULL)
		fatalx("out of memory building query-metrics");
	return o;
}

/* {"bounds-us": [...], "counts": [...], "sum-us": N}: counts per bucket. */
static json_t *
cmd_query_metrics_hist(const struct snapshot_hist *h)
{
	json_t		*bounds, *counts;
	unsigned	 i;

	bounds = cmd_query_metrics_check(json_array());
	counts = cmd_query_metrics_check(json_array());
	for (i = 0; i <= SNAPSHOT_HIST_BOUNDS; i++) {
		if ((i < SNAPSHOT_HIST_BOUNDS && json_array_append_new(bounds,
		    json_integer((json_int_t)snapshot_hist_bound_us(i))) == -1) ||
		    json_array_append_new(counts,
		    json_integer((json_int_t)h->count[i])) == -1)
			fatalx("out of memory building query-metrics");
	}
	return cmd_query_metrics_check(json_pack("{so so sI}",
	    "bounds-us", bounds, "counts", counts,
	    "sum-us", (json_int_t)h->sum_us));
}

static enum cmd_retval
cmd_query_metrics_exec(struct cmd_ctx *ctx)
{
	struct metrics m;

	metrics_collect(&m);
	ctx->ret = cmd_query_metrics_check(json_pack(
	    "{sI si sI sI sI sI sI sI sI sI sI sI sI sI sI sI so so}",
	    "uptime-ms", (json_int_t)control_uptime_ms(),
	    "snapshots-active", (int)m.snapshots_active,
	    "snapshots-total", (json_int_t)m.snapshots_total,
	    "snapshots-completed", (json_int_t)m.snapshots_completed,
	    "snapshots-failed", (json_int_t)m.snapshots_failed,
	    "snapshots-cancelled", (json_int_t)m.snapshots_cancelled,
	    "bytes-written", (json_int_t)m.bytes_written,
	    "pages-saved", (json_int_t)m.pages_saved,
	    "pages-faulted", (json_int_t)m.pages_faulted,
	    "pages-swept", (json_int_t)m.pages_swept,
	    "huge-faulted", (json_int_t)m.huge_faulted,
	    "huge-swept", (json_int_t)m.huge_swept,
	    "pages-lost", (json_int_t)m.pages_lost,
	    "buffer-used", (json_int_t)m.buffer_used,
	    "buffer-size", (json_int_t)m.buffer_size,
	    "buffer-full-waits", (json_int_t)m.buffer_full_waits,
	    "arm-histogram", cmd_query_metrics_hist(&m.arm),
	    "stall-histogram", cmd_query_metrics_hist(&m.stall)));
	return CMD_RETURN;
}

const struct cmd_entry cmd_query_metrics_entry = {
	.name = "query-metrics",
	.exec = cmd_query_metrics_exec,
};
