/*
 * The daemon-wide figures since snapd started (query-metrics): snapshots
 * started, completed, failed and cancelled, pages and bytes by every
 * snapshot, finished and running, the page buffers now, and histograms of
 * the arm pause and of fault stalls.
 *
 * Bookkeeping only, like the snapshot list that feeds it: snapshots.c
 * hands each snapshot's figures here once when it is armed and once when
 * it is done, and metrics_collect() adds the live figures of those still
 * running.  Every figure is a fixed-size field: nothing a client does
 * grows this.  cmd-query-metrics.c turns it into JSON.
 *
 * Main thread only.
 */
#ifndef SNAPD_METRICS_H
#define SNAPD_METRICS_H

#include <stdint.h>

#include "snapshot.h"

struct metrics {
	unsigned		snapshots_active;	/* not yet done */
	uint64_t		snapshots_total;	/* started */
	uint64_t		snapshots_completed;
	uint64_t		snapshots_failed;	/* failed or cancelled */
	uint64_t		snapshots_cancelled;	/* of those, cancelled */
	uint64_t		bytes_written;
	uint64_t		pages_saved;
	uint64_t		pages_faulted;
	uint64_t		pages_swept;
	uint64_t		huge_faulted;
	uint64_t		huge_swept;
	uint64_t		pages_lost;
	uint64_t		buffer_used;		/* bytes, running ones now */
	uint64_t		buffer_size;		/* bytes, running ones */
	uint64_t		buffer_full_waits;
	struct snapshot_hist	arm;		/* one per snapshot armed */
	struct snapshot_hist	stall;		/* one per fault copied */
};

/* A snapshot was armed, with figures st (its arm_ns). */
void	metrics_armed(const struct snapshot_stats *st);
/* A snapshot is done, with its final figures st. */
void	metrics_done(const struct snapshot_stats *st);
/* Everything since start: the finished snapshots' and the running ones'. */
void	metrics_collect(struct metrics *m);

#endif /* SNAPD_METRICS_H */
