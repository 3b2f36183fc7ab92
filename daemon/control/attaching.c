/*
 * The control side of attach (attaching.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attaching.h"
#include "chain.h"
#include "control.h"
#include "log.h"
#include "report.h"
#include "snapshots.h"

struct attaching {
	struct snapshot_request	 req;
	struct snapshot_s3	 s3;		/* req.s3's copy, if it has one */
	char			 name[SNAPD_NAME_MAX + 1];
	char			 dir[PATH_MAX];
	uint64_t		 conn_id;
	json_t			*reply_id;
	struct attach		*a;
	uint64_t		 snap_id;	/* 0 until the engine has it */
	int			 resume_asked;
	int			 wait_arm;	/* the client sends snapshot-arm */
	int			 arm_asked;
};

static struct event_base *attaching_base;

void
attaching_init(struct event_base *base)
{
	attaching_base = base;
}

static void
attaching_free(struct attaching *at)
{
	struct snap_entry *e;

	if (at->snap_id != 0 && (e = snapshots_find(at->snap_id)) != NULL &&
	    e->attaching == at)
		e->attaching = NULL;
	attach_free(at->a);
	if (at->req.pidfd != -1)
		close(at->req.pidfd);
	if (at->req.dirfd != -1)
		close(at->req.dirfd);
	if (at->reply_id != NULL)
		json_decref(at->reply_id);
	explicit_bzero(&at->s3, sizeof(at->s3));
	free(at);
}

/*
 * The "attach" member of the armed reply.  An incremental snapshot made
 * no userfaultfd: its parent's tracking had one ("uffd-via": "parent").
 */
static json_t *
attaching_figures(const struct attach_result *r, int incremental)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:b}",
	    "pause-us", (json_int_t)(r->pause_ns / 1000),
	    "threads", (json_int_t)r->threads,
	    "mappings-live", (json_int_t)r->live,
	    "mappings-stopped", (json_int_t)r->stopped,
	    "mappings-skipped", (json_int_t)r->skipped,
	    "bytes-stopped", (json_int_t)r->bytes_stopped,
	    "uffd-via", incremental ? "parent" : r->via_device ? "device" :
	    "syscall",
	    "prearm", r->prearm);

	if (o == NULL || (r->prearm && json_object_set_new(o,
	    "prearm-pause-us", json_integer((json_int_t)
	    (r->prearm_pause_ns / 1000))) == -1))
		fatalx("out of memory building the attach reply");
	return o;
}

/*
 * Incremental, the process stopped: take the parent's tracking (its uffd
 * and the pages written since) for the request.  The parent is looked up
 * again: it may have stopped tracking while the process was being
 * stopped.  The parent, or NULL with err.
 */
static struct snap_entry *
attaching_take_parent(struct attaching *at, struct zsnap_parent *link,
    char *err, size_t errlen)
{
	struct snap_entry	*p;
	char			 why[400];

	if ((p = chain_parent(at->req.parent_id, at->req.uid, at->req.pid,
	    why, sizeof(why))) == NULL ||
	    (at->req.incr = chain_take(p, link, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "snapshot-start: %s", why);
		return NULL;
	}
	at->req.parent = link;
	at->req.uffd = -1;
	return p;
}

/* Uffd taken: start the snapshot (the process stopped, or pre-arming). */
static void
attaching_ready(struct attaching *at)
{
	struct attach_result	*r = attach_result(at->a);
	struct snap_entry	*e, *parent = NULL;
	struct zsnap_parent	 link;
	char			 err[512];

	if (at->req.parent_id != 0 && (parent = attaching_take_parent(at,
	    &link, err, sizeof(err))) == NULL) {
		control_reply_error(at->conn_id, at->reply_id,
		    SNAPD_ERR_GENERIC, err);
		at->resume_asked = 1;
		attach_resume(at->a);
		return;
	}

	at->req.uffd = r->uffd;
	r->uffd = -1;
	at->req.regions = r->regions;
	at->req.region_count = r->nregions;
	at->req.procrec = r->procrec;
	at->req.procrec_len = r->procrec_len;
	at->req.prearm = r->prearm;
	/* With wait-arm, the pre-armed reply goes out as it comes. */
	e = (at->wait_arm ? report_start : report_start_held)(&at->req,
	    at->dir, at->conn_id, at->reply_id, err, sizeof(err));
	at->req.pidfd = -1;	/* the engine's now */
	close(at->req.dirfd);
	at->req.dirfd = -1;
	if (e == NULL && parent != NULL)
		chain_give_back(parent, at->req.incr);
	at->req.incr = NULL;
	at->req.parent = NULL;
	if (e == NULL) {
		control_reply_error(at->conn_id, at->reply_id,
		    SNAPD_ERR_GENERIC, err);
		at->resume_asked = 1;
		attach_resume(at->a);
		return;
	}
	at->snap_id = e->id;
	e->attaching = at;
	e->attached = 1;
}

/* Pre-arm: stopped again with a new record: arm the snapshot. */
static void
attaching_arming(struct attaching *at)
{
	struct attach_result	*r = attach_result(at->a);
	struct snap_entry	*e = snapshots_find(at->snap_id);

	if (e == NULL || e->snap == NULL || e->done ||
	    snapshot_set_procrec(e->snap, r->procrec, r->procrec_len) == -1 ||
	    snapshots_arm(e) == -1) {
		log_warnx("attach %d: cannot arm snapshot %llu: %s",
		    (int)at->req.pid, (unsigned long long)at->snap_id,
		    e == NULL || e->done ? "it is over" : strerror(errno));
		at->resume_asked = 1;
		attach_resume(at->a);
	}
}

/* The attach failed: the process is released; so is the snapshot. */
static void
attaching_failed(struct attaching *at)
{
	struct snap_entry	*e;
	char			 desc[600];

	snprintf(desc, sizeof(desc), "attach to process %d: %.512s",
	    (int)at->req.pid, attach_error(at->a));
	if (at->snap_id == 0) {
		control_reply_error(at->conn_id, at->reply_id,
		    SNAPD_ERR_GENERIC, desc);
		return;
	}
	if ((e = snapshots_find(at->snap_id)) != NULL && e->snap != NULL &&
	    !e->done)
		snapshot_cancel(e->snap, desc);
	report_release(at->snap_id, NULL, NULL, desc);
}

/*
 * The attach ended: a wait-arm snapshot it did not arm (no snapshot-arm
 * came within the attach's hold, ATTACH_HOLD_MAX_MS) is cancelled, since
 * nothing could now stop the process for its point in time.
 */
static void
attaching_give_up(struct attaching *at)
{
	struct snap_entry *e;

	if (!at->wait_arm || at->snap_id == 0 ||
	    (e = snapshots_find(at->snap_id)) == NULL || e->snap == NULL ||
	    e->done || e->armed || at->arm_asked)
		return;
	snapshot_cancel(e->snap, "pre-armed by attach with \"wait-arm\", "
	    "and no snapshot-arm came in time");
}

static void
attaching_cb(struct attach *a, enum attach_event ev, void *arg)
{
	struct attaching *at = arg;

	switch (ev) {
	case ATTACH_EV_READY:
		attaching_ready(at);
		return;
	case ATTACH_EV_ARMING:
		attaching_arming(at);
		return;
	case ATTACH_EV_FAILED:
		attaching_failed(at);
		break;
	case ATTACH_EV_RESUMED:
		attaching_give_up(at);
		if (at->snap_id != 0)
			report_release(at->snap_id,
			    attaching_figures(attach_result(a),
			    at->req.parent_id != 0), "attach",
			    NULL);
		break;
	}
	attaching_free(at);
}

int
attaching_engine_event(struct snap_entry *e, enum snapshots_event ev)
{
	struct attaching *at = e->attaching;

	if (at == NULL || at->resume_asked)
		return 1;
	if (ev == SNAPSHOTS_EV_PREARMED) {
		if (at->wait_arm)
			return 0;
		attach_stop_again(at->a);
		return 1;
	}
	at->resume_asked = 1;
	attach_resume(at->a);
	return 1;
}

int
attaching_arm(struct snap_entry *e, uint64_t conn_id, json_t *reply_id)
{
	struct attaching *at = e->attaching;

	/* at is NULL once the attach is over: nothing can stop it now. */
	if (at != NULL && !at->wait_arm) {
		errno = EPERM;
		return -1;
	}
	if (at == NULL || at->resume_asked || e->done || !e->prearmed ||
	    e->armed) {
		errno = EINVAL;
		return -1;
	}
	if (at->arm_asked) {
		errno = EALREADY;
		return -1;
	}
	at->arm_asked = 1;
	report_wait_held(e->id, conn_id, reply_id);
	attach_stop_again(at->a);
	return 0;
}

int
attaching_start(const struct snapshot_request *req, const char *dir,
    const char *maps, int prearm, int wait_arm, uint64_t conn_id,
    json_t *reply_id, char *err, size_t errlen)
{
	struct attaching	*at = calloc(1, sizeof(*at));
	struct attach_request	 ar;

	if (at == NULL) {
		snprintf(err, errlen, "snapshot-start: %s", strerror(errno));
		close(req->pidfd);
		close(req->dirfd);
		return -1;
	}
	at->req = *req;
	if (req->s3 != NULL) {
		at->s3 = *req->s3;
		at->req.s3 = &at->s3;
	}
	snprintf(at->name, sizeof(at->name), "%s", req->name);
	at->req.name = at->name;
	snprintf(at->dir, sizeof(at->dir), "%s", dir);
	at->conn_id = conn_id;
	at->reply_id = reply_id != NULL ? json_incref(reply_id) : NULL;
	at->wait_arm = wait_arm;
	memset(&ar, 0, sizeof(ar));
	ar.pid = req->pid;
	ar.pidfd = req->pidfd;
	ar.maps = maps;
	ar.stopped_max = req->buffer_size;
	ar.name = at->name;
	ar.test_hooks = 1;
	ar.prearm = prearm;
	if (req->parent_id != 0) {
		struct snap_entry *p = snapshots_find(req->parent_id);

		if (p == NULL) {
			snprintf(err, errlen, "snapshot-start: no snapshot "
			    "%llu (parent)", (unsigned long long)req->parent_id);
			attaching_free(at);
			return -1;
		}
		ar.parent_regions = p->regions;
		ar.parent_nregions = p->nregions;
	}
	if ((at->a = attach_start(attaching_base, &ar, attaching_cb, at)) ==
	    NULL) {
		snprintf(err, errlen, "snapshot-start: start the attach "
		    "thread: %s", strerror(errno));
		attaching_free(at);
		return -1;
	}
	return 0;
}
