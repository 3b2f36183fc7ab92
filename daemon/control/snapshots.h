/*
 * The daemon's list of snapshots: those running and the last 64 finished,
 * with who asked for them, and the events they produce.
 *
 * This is bookkeeping only: it knows nothing of the wire.  Each entry wraps
 * one struct snapshot of the engine (snapshot.h) while it runs.  The
 * engine's callback (always on the main thread) drives the entry, and every
 * change worth telling is handed upward as a typed event (enum
 * snapshots_event, below) with the entry and its figures, to the one
 * callback given to snapshots_init(); the control layer (report.c) turns
 * those into replies and protocol events.  SNAPSHOTS_EV_BUFFER_FULL comes at
 * most once a second per snapshot; a one-second timer gives
 * SNAPSHOTS_EV_PROGRESS for every armed, running snapshot.
 *
 * Main thread only.
 */
#ifndef SNAPD_SNAPSHOTS_H
#define SNAPD_SNAPSHOTS_H

#include <limits.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "protocol.h"
#include "snapshot.h"

struct event_base;
struct attaching;
struct tracker;

struct snap_entry {
	TAILQ_ENTRY(snap_entry) entry;
	uint64_t		 id;
	char			 name[SNAPD_NAME_MAX + 1];
	uid_t			 uid;		/* the peer that asked */
	pid_t			 pid;		/* the process snapshotted */
	enum output_format	 format;
	uint64_t		 buffer_size;
	char			 dir[PATH_MAX];	/* directory it is written in */
	char			 file[PATH_MAX];	/* final path */
	struct snapshot		*snap;		/* the engine's, NULL once done */
	struct snapshot_stats	 final;		/* figures once done */
	int			 prearm;	/* asked for pre-arm */
	int			 prearmed;	/* SNAPSHOT_EV_PREARMED seen */
	int			 armed;
	int			 done;
	int			 cancel_requested;

	int			 arm_asked;	/* snapshot-arm accepted */

	uint64_t		 start_conn;	/* the connection that started it */
	struct attaching	*attaching;	/* attach: until the process is released */
	int			 attached;	/* by attach (never cleared) */
	uint64_t		 last_buffer_full_ms;

	/* Chains of incremental snapshots (chain.c). */
	struct output_region	*regions;	/* its region table */
	uint32_t		 nregions;
	int			 track;		/* asked to keep tracking */
	uint64_t		 parent_id;	/* incremental: its parent, else 0 */
	uint32_t		 depth;		/* links to the base, 0 for a base */
	struct tracker		*tracker;	/* following the writes since it */
	char			 untracked[256];	/* why tracking ended */
};

/*
 * What happened to an entry, handed upward with its figures.  FAILED also
 * covers a cancel (st->state SNAPSHOT_CANCELLED) and a failure to arm; its
 * st->error always says why.  Exactly one of COMPLETED and FAILED ends every
 * entry that snapshots_start() returned.
 */
enum snapshots_event {
	SNAPSHOTS_EV_PREARMED,		/* protected while running; arm next */
	SNAPSHOTS_EV_ARMED,		/* the point in time */
	SNAPSHOTS_EV_PROGRESS,		/* once a second while running */
	SNAPSHOTS_EV_BUFFER_FULL,	/* a fault waited for a free slot */
	SNAPSHOTS_EV_COMPLETED,
	SNAPSHOTS_EV_FAILED,
};

typedef void snapshots_event_cb(struct snap_entry *e,
    enum snapshots_event ev, const struct snapshot_stats *st);

struct snapshots_counters {
	unsigned	active;		/* not yet done */
	uint64_t	total;		/* started since the daemon started */
	uint64_t	failed;		/* failed or cancelled */
	uint64_t	bytes_written;	/* by all, finished and running */
};

/* Start the progress timer; cb gets every event of every entry. */
void		 snapshots_init(struct event_base *base, snapshots_event_cb *cb);

/* The id the next snapshots_start() will use. */
uint64_t	 snapshots_next_id(void);

/*
 * Start a snapshot (req->id must be snapshots_next_id()) for connection
 * conn_id; dir is the path of req->dirfd.  Its events may come before this
 * returns.  Returns the entry, or NULL with a message in err if the engine
 * could not even start it (then no event comes; req->uffd is closed either
 * way).
 */
struct snap_entry *snapshots_start(const struct snapshot_request *req,
		    const char *dir, uint64_t conn_id, char *err,
		    size_t errlen);

/*
 * Arm a pre-armed snapshot (snapshot-arm); SNAPSHOTS_EV_ARMED follows.  -1
 * with errno EINVAL if it is not pre-armed and waiting, EALREADY if already
 * asked.
 */
int		 snapshots_arm(struct snap_entry *e);

/* A connection closed: cancel the pre-armed snapshots it never armed. */
void		 snapshots_conn_closed(uint64_t conn_id);

struct snap_entry *snapshots_find(uint64_t id);
/* A snapshot not yet done with this name in this directory, or NULL. */
struct snap_entry *snapshots_find_running(const char *dir, const char *name);

/* Current figures of an entry, running or done. */
void		 snapshots_stats(struct snap_entry *e, struct snapshot_stats *st);

/* The entries in start order (oldest first): e NULL gives the first. */
struct snap_entry *snapshots_next(struct snap_entry *e);

/* 1 if a peer with uid may see (and cancel) e. */
int		 snapshots_visible(const struct snap_entry *e, uid_t uid);

void		 snapshots_counters(struct snapshots_counters *c);

/* Snapshots of peer uid not yet done: arming, pre-armed or running. */
unsigned	 snapshots_active_uid(uid_t uid);

/* Cancel every running snapshot (shutdown); their DONE events follow. */
void		 snapshots_cancel_all(const char *why);
/* Cancel the pre-armed ones not yet armed: they have no instant to finish. */
void		 snapshots_cancel_unarmed(const char *why);

/* Call cb(arg) whenever the number of running snapshots drops to zero. */
void		 snapshots_set_idle_cb(void (*cb)(void *), void *arg);

/* Free the finished entries and the timer (at exit, all done). */
void		 snapshots_free_all(void);

#endif /* SNAPD_SNAPSHOTS_H */
