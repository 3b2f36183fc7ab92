/*
 * How snapshots are reported to clients: the deferred replies of
 * snapshot-start and snapshot-arm, the SNAPSHOT_* events and the
 * query-snapshots array.  The control layer's half of snapshots.h: that
 * list hands its typed events here, and this is the only place that turns a
 * snapshot's figures into JSON, with one name per quantity.
 *
 * Main thread only.
 */
#ifndef SNAPD_REPORT_H
#define SNAPD_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "snapshots.h"

struct event_base;

/* Start the snapshot list (snapshots_init()) with report.c's callback. */
void		 report_init(struct event_base *base);

/*
 * snapshots_start() whose reply goes to connection conn_id, with id
 * reply_id (borrowed; a reference is kept), once it is armed, pre-armed or
 * failed.  Returns what snapshots_start() does; on NULL nothing is sent.
 */
struct snap_entry *report_start(const struct snapshot_request *req,
		    const char *dir, uint64_t conn_id, json_t *reply_id,
		    char *err, size_t errlen);

/*
 * report_start() for a snapshot whose armed reply must wait (attach: until
 * the process is released): its outcome, armed or failed, is held and the
 * entry's attaching is told (attaching.h); report_release() sends it.
 */
struct snap_entry *report_start_held(const struct snapshot_request *req,
		    const char *dir, uint64_t conn_id, json_t *reply_id,
		    char *err, size_t errlen);
/*
 * Send the held reply of snapshot snap_id: the armed reply with member key
 * set to extra (stolen, may be NULL), or an error: error if not NULL,
 * else the snapshot's own failure.
 */
void		 report_release(uint64_t snap_id, json_t *extra,
		    const char *key, const char *error);

/*
 * A reply to conn_id with reply_id, held as report_start_held()'s is, for
 * snapshot snap_id: snapshot-arm of an attach with "wait-arm".
 */
void		 report_wait_held(uint64_t snap_id, uint64_t conn_id,
		    json_t *reply_id);

/* snapshots_arm() whose reply goes to conn_id with reply_id once armed. */
int		 report_arm(struct snap_entry *e, uint64_t conn_id,
		    json_t *reply_id);

/* The query-snapshots array of what a peer with uid may see. */
json_t		*report_query(uid_t uid);

/* Forget the replies still waiting (at exit). */
void		 report_free_all(void);

#endif /* SNAPD_REPORT_H */
