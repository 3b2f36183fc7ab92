/*
 * The daemon-wide figures (see metrics.h).
 *
 * metrics_finished sums the final figures of every snapshot done since
 * snapd started: the snapshot list keeps only the last 64 finished, so
 * their figures are added here when each finishes, never recounted from
 * the list.  A running snapshot's figures are read live from the engine at
 * each metrics_collect() and added on top; as the final figures are at
 * least the live ones, every counter only grows.  The arm histogram counts
 * an arm as it happens (the list's SNAPSHOTS_EV_ARMED), so a snapshot still
 * running is in it too.
 *
 * Main thread only, like the snapshot list: no lock.
 */
#include "snapshots.h"
#include "metrics.h"

static struct metrics	metrics_finished;

/* Add the figures of one snapshot, st, to m (not the buffer's: running). */
static void
metrics_add(struct metrics *m, const struct snapshot_stats *st)
{
	m->bytes_written += st->bytes_written;
	m->pages_saved += st->pages_saved;
	m->pages_faulted += st->pages_faulted;
	m->pages_swept += st->pages_swept;
	m->huge_faulted += st->huge_faulted;
	m->huge_swept += st->huge_swept;
	m->pages_lost += st->pages_lost;
	m->buffer_full_waits += st->buffer_full_waits;
	snapshot_hist_merge(&m->stall, &st->stall_hist);
}

void
metrics_armed(const struct snapshot_stats *st)
{
	snapshot_hist_add(&metrics_finished.arm, st->arm_ns / 1000);
}

void
metrics_done(const struct snapshot_stats *st)
{
	metrics_add(&metrics_finished, st);
	if (st->state == SNAPSHOT_COMPLETED)
		metrics_finished.snapshots_completed++;
	else if (st->state == SNAPSHOT_CANCELLED)
		metrics_finished.snapshots_cancelled++;
}

void
metrics_collect(struct metrics *m)
{
	struct snapshots_counters	 n;
	struct snap_entry		*e = NULL;
	struct snapshot_stats		 st;

	*m = metrics_finished;
	snapshots_counters(&n);
	m->snapshots_active = n.active;
	m->snapshots_total = n.total;
	m->snapshots_failed = n.failed;
	while ((e = snapshots_next(e)) != NULL) {
		if (e->done || e->snap == NULL)
			continue;
		snapshots_stats(e, &st);
		metrics_add(m, &st);
		m->buffer_used += st.buffer_used;
		m->buffer_size += st.buffer_size != 0 ? st.buffer_size :
		    e->buffer_size;
	}
}
