/*
 * The daemon's list of snapshots and their events (see snapshots.h).
 *
 * Entries are kept in start order on one TAILQ.  A running entry holds the
 * engine's struct snapshot; when the engine reports SNAPSHOT_EV_DONE the
 * entry copies the final figures, frees the engine's snapshot and stays on
 * the list, finished, until 64 newer ones have finished.
 *
 * The engine calls snapshots_engine_cb() on the main thread, like the
 * progress timer and every other function here, so nothing needs a lock;
 * only snapshot_stats() reads figures the engine's threads update (atomics).
 * What happens is handed to snapshots_event_cb with the figures: this file
 * neither knows the wire nor who waits for a reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "chain.h"
#include "metrics.h"
#include "snapshots.h"

#define SNAPSHOTS_FINISHED_KEPT	64

static TAILQ_HEAD(, snap_entry) snapshots = TAILQ_HEAD_INITIALIZER(snapshots);
static struct event_base	*snapshots_base;
static struct event		*snapshots_progress_ev;
static uint64_t			 snapshots_last_id;
static unsigned			 snapshots_finished;
static struct snapshots_counters snapshots_count;
static uint64_t			 snapshots_bytes_done;	/* by finished ones */
static void			(*snapshots_idle_cb)(void *);
static void			*snapshots_idle_arg;
static snapshots_event_cb	*snapshots_event;

static uint64_t
snapshots_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
snapshots_stats(struct snap_entry *e, struct snapshot_stats *st)
{
	if (e->done || e->snap == NULL)
		*st = e->final;
	else
		snapshot_stats(e->snap, st);
}

/*
 * The final path of a finished snapshot (the engine gives it relative to the
 * directory fd, or as the s3:// URL of its object), or the one it will
 * have; truncated, never overflowing.
 */
static void
snapshots_final_path(struct snap_entry *e, const struct snapshot_stats *st,
    char *buf, size_t len)
{
	const char	*parts[3] = { "", "", "" };
	size_t		 n = 0;

	if (st->path[0] == '/' || s3_is_url(st->path))
		parts[0] = st->path;
	else if (st->path[0] != '\0') {
		parts[0] = e->dir;
		parts[1] = "/";
		parts[2] = st->path;
	} else
		parts[0] = e->file;
	for (int i = 0; i < 3; i++) {
		size_t l = strlen(parts[i]);

		if (n + l >= len)
			l = len - 1 - n;
		memmove(buf + n, parts[i], l);
		n += l;
	}
	buf[n] = '\0';
}

static void
snapshots_progress(evutil_socket_t fd, short what, void *arg)
{
	struct snap_entry	*e;
	struct snapshot_stats	 st;

	chain_reap();
	TAILQ_FOREACH(e, &snapshots, entry) {
		if (e->done || !e->armed || e->snap == NULL)
			continue;
		snapshot_stats(e->snap, &st);
		snapshots_event(e, SNAPSHOTS_EV_PROGRESS, &st);
	}
}

void
snapshots_init(struct event_base *base, snapshots_event_cb *cb)
{
	struct timeval one = { 1, 0 };

	snapshots_base = base;
	snapshots_event = cb;
	snapshots_progress_ev = event_new(base, -1, EV_PERSIST,
	    snapshots_progress, NULL);
	if (snapshots_progress_ev == NULL)
		fatalx("cannot create the progress timer");
	event_add(snapshots_progress_ev, &one);
}

uint64_t
snapshots_next_id(void)
{
	return snapshots_last_id + 1;
}

struct snap_entry *
snapshots_find(uint64_t id)
{
	struct snap_entry *e;

	TAILQ_FOREACH(e, &snapshots, entry)
		if (e->id == id)
			return e;
	return NULL;
}

struct snap_entry *
snapshots_find_running(const char *dir, const char *name)
{
	struct snap_entry *e;

	TAILQ_FOREACH(e, &snapshots, entry)
		if (!e->done && strcmp(e->dir, dir) == 0 &&
		    strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

struct snap_entry *
snapshots_next(struct snap_entry *e)
{
	return e == NULL ? TAILQ_FIRST(&snapshots) : TAILQ_NEXT(e, entry);
}

int
snapshots_visible(const struct snap_entry *e, uid_t uid)
{
	return uid == 0 || e->uid == uid;
}

/* Is e the parent of a snapshot not yet done? */
static int
snapshots_is_parent(const struct snap_entry *e)
{
	struct snap_entry *n;

	TAILQ_FOREACH(n, &snapshots, entry)
		if (!n->done && n->parent_id == e->id)
			return 1;
	return 0;
}

static void
snapshots_entry_free(struct snap_entry *e)
{
	chain_untrack(e, "its entry was dropped");
	free(e->regions);
	free(e);
}

/* Drop the oldest finished entries beyond SNAPSHOTS_FINISHED_KEPT. */
static void
snapshots_trim(void)
{
	struct snap_entry *e, *next;

	for (e = TAILQ_FIRST(&snapshots);
	    e != NULL && snapshots_finished > SNAPSHOTS_FINISHED_KEPT; e = next) {
		next = TAILQ_NEXT(e, entry);
		/*
		 * A tracked one stays: the next of its chain starts from it;
		 * so does the parent of one running, which gets the tracking
		 * back if that one fails.
		 */
		if (!e->done || e->tracker != NULL || snapshots_is_parent(e))
			continue;
		TAILQ_REMOVE(&snapshots, e, entry);
		snapshots_entry_free(e);
		snapshots_finished--;
	}
}

/* Pre-armed: snapshot-arm comes next. */
static void
snapshots_prearmed(struct snap_entry *e)
{
	struct snapshot_stats st;

	e->prearmed = 1;
	snapshot_stats(e->snap, &st);
	snapshots_event(e, SNAPSHOTS_EV_PREARMED, &st);
}

int
snapshots_arm(struct snap_entry *e)
{
	if (e->done || e->snap == NULL || !e->prearmed || e->armed ||
	    e->arm_asked) {
		errno = EINVAL;
		return -1;
	}
	if (snapshot_arm(e->snap) == -1)
		return -1;
	e->arm_asked = 1;
	return 0;
}

void
snapshots_conn_closed(uint64_t conn_id)
{
	struct snap_entry *e;

	TAILQ_FOREACH(e, &snapshots, entry)
		if (!e->done && e->snap != NULL && !e->armed &&
		    e->prearm && e->start_conn == conn_id)
			snapshot_cancel(e->snap, "the connection that pre-armed "
			    "it closed before snapshot-arm");
}

static void
snapshots_armed(struct snap_entry *e)
{
	struct snapshot_stats st;

	e->armed = 1;
	snapshot_stats(e->snap, &st);	/* the engine logged the arming */
	metrics_armed(&st);
	snapshots_event(e, SNAPSHOTS_EV_ARMED, &st);
}

static void
snapshots_buffer_full(struct snap_entry *e)
{
	struct snapshot_stats	st;
	uint64_t		now = snapshots_now_ms();

	if (e->last_buffer_full_ms != 0 && now - e->last_buffer_full_ms < 1000)
		return;
	e->last_buffer_full_ms = now;
	snapshot_stats(e->snap, &st);
	snapshots_event(e, SNAPSHOTS_EV_BUFFER_FULL, &st);
}

static void
snapshots_done(struct snap_entry *e, struct snapshot *snap)
{
	struct snapshot_stats	*st = &e->final;
	char			 path[PATH_MAX];

	snapshot_stats(snap, st);
	chain_done(e, snap, st);
	snapshot_free(snap);
	e->snap = NULL;
	e->done = 1;
	snapshots_count.active--;
	snapshots_finished++;
	snapshots_bytes_done += st->bytes_written;
	metrics_done(st);

	if (st->state == SNAPSHOT_COMPLETED) {
		snapshots_final_path(e, st, path, sizeof(path));
		memcpy(e->file, path, sizeof(e->file));
		log_debug("snapshot %llu (pid %d): completed, %s, %llu bytes, "
		    "%llu pages (%llu faulted, %llu lost) in %llu ms",
		    (unsigned long long)e->id, (int)e->pid, e->file,
		    (unsigned long long)st->file_size,
		    (unsigned long long)st->pages_total,
		    (unsigned long long)st->pages_faulted,
		    (unsigned long long)st->pages_lost,
		    (unsigned long long)(st->duration_ns / 1000000));
		snapshots_event(e, SNAPSHOTS_EV_COMPLETED, st);
	} else {
		int cancelled = st->state == SNAPSHOT_CANCELLED;

		snapshots_count.failed++;
		if (st->error[0] == '\0')
			snprintf(st->error, sizeof(st->error), "%s",
			    cancelled ? "cancelled" : "failed (no reason given)");
		log_debug("snapshot %llu (pid %d): %s", (unsigned long long)e->id,
		    (int)e->pid, st->error);
		snapshots_event(e, SNAPSHOTS_EV_FAILED, st);
	}
	snapshots_trim();
	if (snapshots_count.active == 0 && snapshots_idle_cb != NULL)
		snapshots_idle_cb(snapshots_idle_arg);
}

static void
snapshots_engine_cb(struct snapshot *snap, enum snapshot_event ev, void *arg)
{
	struct snap_entry *e = arg;

	/* The callback may come before snapshot_start() has returned. */
	if (e->snap == NULL && !e->done)
		e->snap = snap;
	switch (ev) {
	case SNAPSHOT_EV_PREARMED:
		snapshots_prearmed(e);
		break;
	case SNAPSHOT_EV_ARMED:
		snapshots_armed(e);
		break;
	case SNAPSHOT_EV_BUFFER_FULL:
		snapshots_buffer_full(e);
		break;
	case SNAPSHOT_EV_DONE:
		snapshots_done(e, snap);
		break;
	}
}

struct snap_entry *
snapshots_start(const struct snapshot_request *req, const char *dir,
    uint64_t conn_id, char *err, size_t errlen)
{
	struct snap_entry	*e;
	struct snapshot		*snap;

	e = xcalloc(1, sizeof(*e));
	e->id = req->id;
	snprintf(e->name, sizeof(e->name), "%s", req->name);
	e->uid = req->uid;
	e->pid = req->pid;
	e->format = req->format;
	e->buffer_size = req->buffer_size;
	snprintf(e->dir, sizeof(e->dir), "%s", dir);
	snprintf(e->file, sizeof(e->file), "%s/%s%s", dir, req->name,
	    req->format == OUTPUT_RAW ? ZSNAP_RAW_SUFFIX : ZSNAP_SUFFIX);
	e->start_conn = conn_id;
	e->prearm = req->prearm;
	e->track = req->track;
	if (req->parent != NULL) {
		e->parent_id = req->parent_id;
		e->depth = req->parent->depth;
	}
	e->regions = xcalloc(req->region_count, sizeof(*e->regions));
	memcpy(e->regions, req->regions, req->region_count *
	    sizeof(*e->regions));
	e->nregions = req->region_count;
	e->final.state = SNAPSHOT_ARMING;
	e->final.buffer_size = req->buffer_size;

	TAILQ_INSERT_TAIL(&snapshots, e, entry);
	snapshots_last_id = req->id;
	snapshots_count.active++;
	snapshots_count.total++;

	snap = snapshot_start(snapshots_base, req, snapshots_engine_cb, e);
	if (snap == NULL) {
		int saved = errno;

		snprintf(err, errlen, "%s", snapshot_start_error());
		TAILQ_REMOVE(&snapshots, e, entry);
		snapshots_count.active--;
		snapshots_count.total--;
		free(e->regions);
		free(e);
		errno = saved;
		return NULL;
	}
	if (!e->done)
		e->snap = snap;
	log_info("snapshot %llu (pid %d, uid %u): started, %u regions, "
	    "%s, buffer %llu bytes", (unsigned long long)e->id, (int)e->pid,
	    (unsigned)e->uid, req->region_count, e->file,
	    (unsigned long long)req->buffer_size);
	return e;
}

unsigned
snapshots_active_uid(uid_t uid)
{
	struct snap_entry	*e;
	unsigned		 n = 0;

	TAILQ_FOREACH(e, &snapshots, entry)
		if (!e->done && e->uid == uid)
			n++;
	return n;
}

void
snapshots_counters(struct snapshots_counters *c)
{
	struct snap_entry	*e;
	struct snapshot_stats	 st;

	*c = snapshots_count;
	c->bytes_written = snapshots_bytes_done;
	TAILQ_FOREACH(e, &snapshots, entry) {
		if (e->done || e->snap == NULL)
			continue;
		snapshot_stats(e->snap, &st);
		c->bytes_written += st.bytes_written;
	}
}

static void	snapshots_cancel_where(const char *why, int unarmed_only);

void
snapshots_cancel_all(const char *why)
{
	snapshots_cancel_where(why, 0);
}

void
snapshots_cancel_unarmed(const char *why)
{
	snapshots_cancel_where(why, 1);
}

static void
snapshots_cancel_where(const char *why, int unarmed_only)
{
	struct snap_entry *e;

	/*
	 * DONE normally follows from the event loop; should it come from
	 * inside snapshot_cancel(), the list may have changed, so start over
	 * after each cancel.
	 */
again:
	TAILQ_FOREACH(e, &snapshots, entry) {
		if (!e->done && e->snap != NULL && !e->cancel_requested &&
		    (!unarmed_only || (e->prearm && !e->armed))) {
			e->cancel_requested = 1;
			snapshot_cancel(e->snap, why);
			goto again;
		}
	}
}

void
snapshots_set_idle_cb(void (*cb)(void *), void *arg)
{
	snapshots_idle_cb = cb;
	snapshots_idle_arg = arg;
}

void
snapshots_free_all(void)
{
	struct snap_entry *e;

	while ((e = TAILQ_FIRST(&snapshots)) != NULL) {
		TAILQ_REMOVE(&snapshots, e, entry);
		snapshots_entry_free(e);
	}
	if (snapshots_progress_ev != NULL) {
		event_free(snapshots_progress_ev);
		snapshots_progress_ev = NULL;
	}
}
