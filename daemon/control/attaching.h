/*
 * The control side of attach (attach.h): a snapshot-start with "pid" and
 * no uffd.  Starts the attach, starts the snapshot once the uffd is taken
 * (with the process stopped, or for a pre-arm running again), for a
 * pre-arm stops the process again once pre-armed (or, with "wait-arm",
 * once the client sends snapshot-arm) and arms, lets the
 * process go once the engine has armed (or failed), and only then sends
 * the reply: the armed reply with an "attach" object (the pauses, the
 * threads, what became of the mappings), or the error.  Main thread only.
 */
#ifndef SNAPD_ATTACHING_H
#define SNAPD_ATTACHING_H

#include <limits.h>
#include <stdint.h>

#include <jansson.h>

#include "attach.h"
#include "snapshot.h"
#include "snapshots.h"

/*
 * Start attaching for req (its name, options, pidfd and dirfd set; the
 * regions and uffd come from the attach), replying to conn_id with
 * reply_id (a reference is kept).  prearm: 1 or 0 as asked, -1 to decide
 * by the size of the live memory (attach.h).  With req->parent_id, an
 * incremental snapshot: the parent's regions, and its tracking taken once
 * the process is stopped (given back if the snapshot cannot start).
 * Takes req->pidfd and dirfd whatever happens.  0, or -1 with err.
 */
int	attaching_start(const struct snapshot_request *req, const char *dir,
	    const char *maps, int prearm, int wait_arm, uint64_t conn_id,
	    json_t *reply_id, char *err, size_t errlen);

/*
 * report.c: the engine pre-armed, armed or failed e.  Returns 0 when the
 * pre-arm is the client's to finish (snapshot-start's "wait-arm"): the
 * pre-armed reply goes out as for a uffd, and snapshot-arm calls
 * attaching_arm(); 1 when the attach goes on by itself.
 */
int	attaching_engine_event(struct snap_entry *e, enum snapshots_event ev);

/*
 * snapshot-arm of an attach started with "wait-arm", pre-armed: stop the
 * process again and arm; the reply (to conn_id, reply_id) goes out once
 * the process runs again.  -1 with errno EINVAL if e is not such a
 * snapshot waiting to be armed, EALREADY if arming was asked already.
 */
int	attaching_arm(struct snap_entry *e, uint64_t conn_id,
	    json_t *reply_id);

/* The event base attaches run their notifications on (main(), once). */
void	attaching_init(struct event_base *base);

#endif /* SNAPD_ATTACHING_H */
