/*
 * Chains of incremental snapshots, on the control side: which finished
 * snapshot has a tracker following the process's writes since its armed
 * instant (the engine's track.h), starting an incremental snapshot from
 * it, and giving the tracker back when that one fails.
 *
 * A chain is followed from its newest snapshot only: the tracker moves to
 * each new incremental snapshot when it completes.  Trackers count against
 * SNAPD_TRACKERS_MAX; one whose process exited is freed by chain_reap().
 *
 * Main thread only.
 */
#ifndef SNAPD_CHAIN_H
#define SNAPD_CHAIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshots.h"

/* The most snapshots whose process's writes are tracked at one time. */
#define SNAPD_TRACKERS_MAX	16

/* Trackers alive now: all, and those of snapshots peer uid asked for. */
unsigned	 chain_trackers(void);
unsigned	 chain_trackers_uid(uid_t uid);

/*
 * The entry an incremental snapshot of process pid asked by a peer of uid
 * may start from (snapshot-start "parent"), or NULL with why in err.
 */
struct snap_entry *chain_parent(uint64_t id, uid_t uid, pid_t pid, char *err,
		    size_t errlen);

/*
 * Take the tracking state out of parent e for an incremental snapshot, and
 * fill its link; NULL with why in err (tracking was lost: e untracked).
 */
struct track_state *chain_take(struct snap_entry *e, struct zsnap_parent *link,
		    char *err, size_t errlen);
/* The incremental snapshot did not start: give the state back to e. */
void		 chain_give_back(struct snap_entry *e, struct track_state *st);

/* Entry e's snapshot is done (before snapshot_free()): place its tracker. */
void		 chain_done(struct snap_entry *e, struct snapshot *snap,
		    const struct snapshot_stats *st);

/* Stop tracking for e, saying why (snapshot-delete, entry dropped). */
void		 chain_untrack(struct snap_entry *e, const char *why);

/*
 * Before deleting snapshot name from the directory dirfd (path dir): 1 with
 * the file name of a snapshot there that names it as its parent in dep (it
 * must not be deleted: the chain would break), 0 when none does (and the
 * entry that tracks from that file, if any, stops tracking), -1 with errno
 * if the directory cannot be read.
 */
int		 chain_delete_check(int dirfd, const char *dir, const char *name,
		    char *dep, size_t deplen);

/* Free the trackers whose process is gone (the progress timer). */
void		 chain_reap(void);

#endif /* SNAPD_CHAIN_H */
