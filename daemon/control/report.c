/*
 * Reporting snapshots to clients (see report.h and proto/PROTOCOL.md).
 *
 * The snapshot list (snapshots.c) is bookkeeping: it hands each change of
 * an entry here as a typed event with the entry's figures.  This file owns
 * what the wire needs on top of that: which connection waits for a
 * deferred reply (snapshot-start's until the snapshot is armed, pre-armed
 * or failed; then snapshot-arm's until armed), and how a snapshot's figures
 * read in JSON.
 *
 * One vocabulary.  Every reply, event and query-snapshots entry is built by
 * report_members() from a list of enum report_member; report_names[] gives
 * each quantity its one name on the wire, and report_value() its one way
 * of being computed.  A message picks the members it carries, never a name.
 *
 * Main thread only, like the snapshot list and the control socket; the
 * pending replies need no lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "attaching.h"
#include "log.h"
#include "config.h"
#include "control.h"
#include "snapshots.h"
#include "report.h"
#include "track.h"

/* Every quantity a message may carry about a snapshot. */
enum report_member {
	RM_ID,
	RM_NAME,
	RM_STATE,
	RM_PID,
	RM_UID,
	RM_FORMAT,
	RM_FILE,
	RM_PAGES_TOTAL,
	RM_PAGES_SAVED,
	RM_PAGES_FAULTED,
	RM_PAGES_SWEPT,
	RM_HUGE_FAULTED,
	RM_HUGE_SWEPT,
	RM_PAGES_ZERO,
	RM_PAGES_LOST,
	RM_BUFFER_SIZE,
	RM_BUFFER_USED,
	RM_BUFFER_PEAK,
	RM_BUFFER_FULL_WAITS,
	RM_STALL_MAX_US,
	RM_BYTES_WRITTEN,
	RM_ARM_US,
	RM_PREARM_US,
	RM_PREARM_PAGES,
	RM_DURATION_US,
	RM_ERROR,
	RM_CANCELLED,
};

/* The one name of each quantity, in proto/PROTOCOL.md and schema.json. */
static const char *const report_names[] = {
	[RM_ID] =		"id",
	[RM_NAME] =		"name",
	[RM_STATE] =		"state",
	[RM_PID] =		"pid",
	[RM_UID] =		"uid",
	[RM_FORMAT] =		"format",
	[RM_FILE] =		"file",
	[RM_PAGES_TOTAL] =	"pages-total",
	[RM_PAGES_SAVED] =	"pages-saved",
	[RM_PAGES_FAULTED] =	"pages-faulted",
	[RM_PAGES_SWEPT] =	"pages-swept",
	[RM_HUGE_FAULTED] =	"huge-faulted",
	[RM_HUGE_SWEPT] =	"huge-swept",
	[RM_PAGES_ZERO] =	"pages-zero",
	[RM_PAGES_LOST] =	"pages-lost",
	[RM_BUFFER_SIZE] =	"buffer-size",
	[RM_BUFFER_USED] =	"buffer-used",
	[RM_BUFFER_PEAK] =	"buffer-peak",
	[RM_BUFFER_FULL_WAITS] = "buffer-full-waits",
	[RM_STALL_MAX_US] =	"stall-max-us",
	[RM_BYTES_WRITTEN] =	"bytes-written",
	[RM_ARM_US] =		"arm-us",
	[RM_PREARM_US] =	"prearm-us",
	[RM_PREARM_PAGES] =	"prearm-pages",
	[RM_DURATION_US] =	"duration-us",
	[RM_ERROR] =		"error",
	[RM_CANCELLED] =	"cancelled",
};

#define REPORT_LIST(...)	(const enum report_member[]){ __VA_ARGS__ }, \
	sizeof((const enum report_member[]){ __VA_ARGS__ }) /		\
	sizeof(enum report_member)

/* What each message carries. */
#define REPORT_PREARMED_REPLY	REPORT_LIST(RM_ID, RM_NAME, RM_FILE,	\
	RM_STATE, RM_PREARM_US, RM_PAGES_TOTAL)
#define REPORT_ARMED_REPLY	REPORT_LIST(RM_ID, RM_NAME, RM_FILE,	\
	RM_ARM_US, RM_PAGES_TOTAL)
#define REPORT_ARMED		REPORT_LIST(RM_ID, RM_NAME, RM_PID,	\
	RM_ARM_US, RM_PAGES_TOTAL)
#define REPORT_PROGRESS		REPORT_LIST(RM_ID, RM_PAGES_SAVED,	\
	RM_PAGES_TOTAL, RM_BYTES_WRITTEN, RM_BUFFER_USED)
#define REPORT_BUFFER_FULL	REPORT_LIST(RM_ID, RM_BUFFER_SIZE,	\
	RM_BUFFER_FULL_WAITS)
#define REPORT_COMPLETED	REPORT_LIST(RM_ID, RM_NAME, RM_FILE,	\
	RM_BYTES_WRITTEN, RM_PAGES_TOTAL, RM_PAGES_FAULTED, RM_PAGES_ZERO, \
	RM_PAGES_LOST, RM_BUFFER_FULL_WAITS, RM_BUFFER_PEAK,		\
	RM_STALL_MAX_US, RM_ARM_US, RM_DURATION_US, RM_HUGE_FAULTED,	\
	RM_HUGE_SWEPT)
#define REPORT_FAILED		REPORT_LIST(RM_ID, RM_NAME, RM_ERROR,	\
	RM_CANCELLED)
#define REPORT_QUERY		REPORT_LIST(RM_ID, RM_NAME, RM_STATE,	\
	RM_PID, RM_UID, RM_FORMAT, RM_FILE, RM_PAGES_TOTAL,		\
	RM_PAGES_SAVED, RM_PAGES_FAULTED, RM_PAGES_SWEPT, RM_PAGES_ZERO, \
	RM_PAGES_LOST, RM_BUFFER_SIZE, RM_BUFFER_USED, RM_BUFFER_PEAK,	\
	RM_BUFFER_FULL_WAITS, RM_STALL_MAX_US, RM_BYTES_WRITTEN,	\
	RM_ARM_US, RM_DURATION_US, RM_HUGE_FAULTED, RM_HUGE_SWEPT)

/* A connection waiting for the reply about one snapshot. */
struct report_pending {
	TAILQ_ENTRY(report_pending) entry;
	uint64_t	 snap_id;
	uint64_t	 conn_id;
	json_t		*reply_id;	/* the command's "id", or NULL */
	int		 held;		/* sent by report_release() only */
	json_t		*held_reply;	/* held: the armed reply, once armed */
	char		*held_error;	/* held: why it failed, once failed */
};

static TAILQ_HEAD(, report_pending) report_pending =
    TAILQ_HEAD_INITIALIZER(report_pending);

static json_t *
report_check(json_t *o)
{
	if (o == NULL)
		fatalx("out of memory building a snapshot message");
	return o;
}

static json_t *
report_int(uint64_t v)
{
	return report_check(json_integer((json_int_t)v));
}

/* The value of member m of entry e with figures st. */
static json_t *
report_value(enum report_member m, const struct snap_entry *e,
    const struct snapshot_stats *st)
{
	switch (m) {
	case RM_ID:		return report_int(e->id);
	case RM_NAME:		return report_check(json_string(e->name));
	case RM_STATE:
		return report_check(json_string(snapshot_state_name(st->state)));
	case RM_PID:		return report_int((uint64_t)e->pid);
	case RM_UID:	/* as an int, as ever */
		return report_check(json_integer((int)e->uid));
	case RM_FORMAT:
		return report_check(json_string(config_format_name(e->format)));
	case RM_FILE:		return report_check(json_string(e->file));
	case RM_PAGES_TOTAL:	return report_int(st->pages_total);
	case RM_PAGES_SAVED:	return report_int(st->pages_saved);
	case RM_PAGES_FAULTED:	return report_int(st->pages_faulted);
	case RM_PAGES_SWEPT:	return report_int(st->pages_swept);
	case RM_HUGE_FAULTED:	return report_int(st->huge_faulted);
	case RM_HUGE_SWEPT:	return report_int(st->huge_swept);
	case RM_PAGES_ZERO:	return report_int(st->pages_zero);
	case RM_PAGES_LOST:	return report_int(st->pages_lost);
	case RM_BUFFER_SIZE:
		/* Not known from the engine until it has set up. */
		return report_int(st->buffer_size != 0 ? st->buffer_size :
		    e->buffer_size);
	case RM_BUFFER_USED:	return report_int(st->buffer_used);
	case RM_BUFFER_PEAK:	return report_int(st->buffer_peak);
	case RM_BUFFER_FULL_WAITS: return report_int(st->buffer_full_waits);
	case RM_STALL_MAX_US:	return report_int(st->stall_max_ns / 1000);
	/* Once completed, the bytes written are the file's size. */
	case RM_BYTES_WRITTEN:	return report_int(st->bytes_written);
	case RM_ARM_US:		return report_int(st->arm_ns / 1000);
	case RM_PREARM_US:	return report_int(st->prearm_ns / 1000);
	case RM_PREARM_PAGES:	return report_int(st->prearm_pages);
	case RM_DURATION_US:	return report_int(st->duration_ns / 1000);
	case RM_ERROR:		return report_check(json_string(st->error));
	case RM_CANCELLED:
		return report_check(json_boolean(st->state ==
		    SNAPSHOT_CANCELLED));
	}
	fatalx("report: member %d has no value", (int)m);
}

/*
 * Add the members of list (n of them) about e to object o, or to a new
 * object if o is NULL; returns o.
 */
static json_t *
report_members(json_t *o, const struct snap_entry *e,
    const struct snapshot_stats *st, const enum report_member *list, size_t n)
{
	if (o == NULL)
		o = report_check(json_object());
	for (size_t i = 0; i < n; i++)
		if (json_object_set_new(o, report_names[list[i]],
		    report_value(list[i], e, st)) == -1)
			fatalx("out of memory building a snapshot message");
	return o;
}

/*
 * A snapshot that tracks its process's writes, or an incremental one,
 * carries "chain": its link and figures (proto/PROTOCOL.md).
 */
static json_t *
report_chain(json_t *o, const struct snap_entry *e,
    const struct snapshot_stats *st)
{
	json_t *c, *w;

	if (!e->track && e->parent_id == 0)
		return o;
	c = report_check(json_pack("{s:I, s:b}", "depth", (json_int_t)e->depth,
	    "tracking", e->tracker != NULL));
	if (e->parent_id != 0) {
		w = report_check(json_array());
		for (uint32_t i = 0; i < st->whole_count &&
		    i < SNAPSHOT_WHOLE_REPORT; i++)
			if (json_array_append_new(w, report_check(json_pack(
			    "{s:I, s:I, s:I, s:s}",
			    "region", (json_int_t)st->whole[i].region,
			    "first-page", (json_int_t)st->whole[i].first_page,
			    "pages", (json_int_t)st->whole[i].page_count,
			    "reason", track_reason_name(st->whole[i].reason))))
			    == -1)
				fatalx("out of memory building a snapshot message");
		if (json_object_set_new(c, "parent",
		    report_int(e->parent_id)) == -1 ||
		    json_object_set_new(c, "pages-unchanged",
		    report_int(st->pages_parent)) == -1 ||
		    json_object_set_new(c, "pages-dirty",
		    report_int(st->pages_dirty)) == -1 ||
		    json_object_set_new(c, "saved-whole-count",
		    report_int(st->whole_count)) == -1 ||
		    json_object_set_new(c, "saved-whole", w) == -1)
			fatalx("out of memory building a snapshot message");
	}
	if (e->tracker != NULL && json_object_set_new(c, "pages-dirty-since",
	    report_int(tracker_dirty(e->tracker))) == -1)
		fatalx("out of memory building a snapshot message");
	if (e->tracker == NULL && e->untracked[0] != '\0' &&
	    json_object_set_new(c, "untracked",
	    report_check(json_string(e->untracked))) == -1)
		fatalx("out of memory building a snapshot message");
	if (json_object_set_new(o, "chain", c) == -1)
		fatalx("out of memory building a snapshot message");
	return o;
}

/*
 * A snapshot to S3 carries "upload": its multipart upload's figures, and
 * the memory its part buffers take beside the page buffer
 * (proto/PROTOCOL.md).
 */
static json_t *
report_upload(json_t *o, const struct snapshot_stats *st)
{
	if (!st->to_s3)
		return o;
	if (json_object_set_new(o, "upload", report_check(json_pack(
	    "{s:I, s:I, s:I, s:I, s:I}",
	    "parts-uploaded", (json_int_t)st->upload.parts,
	    "bytes-uploaded", (json_int_t)st->upload.bytes,
	    "retries", (json_int_t)st->upload.retries,
	    "waits", (json_int_t)st->upload.waits,
	    "memory", (json_int_t)st->upload.memory))) == -1)
		fatalx("out of memory building a snapshot message");
	return o;
}

static struct report_pending *
report_pending_find(uint64_t snap_id)
{
	struct report_pending *p;

	TAILQ_FOREACH(p, &report_pending, entry)
		if (p->snap_id == snap_id)
			return p;
	return NULL;
}

static void
report_pending_add(uint64_t snap_id, uint64_t conn_id, json_t *reply_id)
{
	struct report_pending *p = xcalloc(1, sizeof(*p));

	p->snap_id = snap_id;
	p->conn_id = conn_id;
	if (reply_id != NULL)
		p->reply_id = json_incref(reply_id);
	TAILQ_INSERT_TAIL(&report_pending, p, entry);
}

static void
report_pending_free(struct report_pending *p)
{
	TAILQ_REMOVE(&report_pending, p, entry);
	if (p->held_reply != NULL)
		json_decref(p->held_reply);
	free(p->held_error);
	if (p->reply_id != NULL)
		json_decref(p->reply_id);
	free(p);
}

/*
 * Send the reply waiting for e, if any: ret (stolen) or, if NULL, the error
 * error; with neither, just forget it.
 */
static void
report_reply(struct snap_entry *e, json_t *ret, const char *error)
{
	struct report_pending	*p = report_pending_find(e->id);
	char			 desc[600];

	if (p == NULL) {
		if (ret != NULL)
			json_decref(ret);
		return;
	}
	if (p->held) {
		/* Kept for report_release(); the first outcome wins. */
		if (p->held_reply == NULL && p->held_error == NULL) {
			if (ret != NULL)
				p->held_reply = ret, ret = NULL;
			else if (error != NULL &&
			    (p->held_error = strdup(error)) == NULL)
				fatalx("out of memory holding a reply");
		}
		if (ret != NULL)
			json_decref(ret);
		return;
	}
	if (ret != NULL)
		control_reply(p->conn_id, p->reply_id, ret);
	else if (error != NULL) {
		snprintf(desc, sizeof(desc), "snapshot %llu: %.512s",
		    (unsigned long long)e->id, error);
		control_reply_error(p->conn_id, p->reply_id,
		    SNAPD_ERR_GENERIC, desc);
	}
	report_pending_free(p);
}

/* The snapshot list's callback: one event of e, with its figures st. */
static void
report_event(struct snap_entry *e, enum snapshots_event ev,
    const struct snapshot_stats *st)
{
	struct snapshot_stats	 prearmed;
	json_t			*r;

	switch (ev) {
	case SNAPSHOTS_EV_PREARMED:
		/* Attach arms it itself, unless the client is to: no reply. */
		if (e->attaching != NULL && attaching_engine_event(e, ev))
			break;
		/* The reply says what it answers: pre-armed, whatever since. */
		prearmed = *st;
		prearmed.state = SNAPSHOT_PREARMED;
		report_reply(e, report_members(NULL, e, &prearmed,
		    REPORT_PREARMED_REPLY), NULL);
		break;
	case SNAPSHOTS_EV_ARMED:
		if (report_pending_find(e->id) != NULL) {
			r = report_chain(report_members(NULL, e, st,
			    REPORT_ARMED_REPLY), e, st);
			if (e->prearmed)
				report_members(r, e, st,
				    REPORT_LIST(RM_PREARM_PAGES));
			report_reply(e, r, NULL);
		}
		control_event(e->uid, SNAPD_EV_ARMED,
		    report_members(NULL, e, st, REPORT_ARMED));
		if (e->attaching != NULL)
			attaching_engine_event(e, ev);
		break;
	case SNAPSHOTS_EV_PROGRESS:
		control_event(e->uid, SNAPD_EV_PROGRESS, report_upload(
		    report_members(NULL, e, st, REPORT_PROGRESS), st));
		break;
	case SNAPSHOTS_EV_BUFFER_FULL:
		control_event(e->uid, SNAPD_EV_BUFFER_FULL,
		    report_members(NULL, e, st, REPORT_BUFFER_FULL));
		break;
	case SNAPSHOTS_EV_COMPLETED:
		report_reply(e, NULL, NULL);	/* none waits once armed */
		control_event(e->uid, SNAPD_EV_COMPLETED, report_upload(
		    report_chain(report_members(NULL, e, st, REPORT_COMPLETED),
		    e, st), st));
		break;
	case SNAPSHOTS_EV_FAILED:
		report_reply(e, NULL, st->error);
		control_event(e->uid, SNAPD_EV_FAILED, report_upload(
		    report_members(NULL, e, st, REPORT_FAILED), st));
		if (e->attaching != NULL)
			attaching_engine_event(e, ev);
		break;
	}
}

void
report_init(struct event_base *base)
{
	snapshots_init(base, report_event);
}

/* snapshots_start() with its reply waiting first (held: see report.h). */
static struct snap_entry *
report_start_pending(const struct snapshot_request *req, const char *dir,
    uint64_t conn_id, json_t *reply_id, int held, char *err, size_t errlen)
{
	struct snap_entry	*e;
	struct report_pending	*p;

	/* Waiting before it starts: its events may come before it returns. */
	report_pending_add(req->id, conn_id, reply_id);
	report_pending_find(req->id)->held = held;
	e = snapshots_start(req, dir, conn_id, err, errlen);
	if (e == NULL && (p = report_pending_find(req->id)) != NULL)
		report_pending_free(p);
	return e;
}

struct snap_entry *
report_start(const struct snapshot_request *req, const char *dir,
    uint64_t conn_id, json_t *reply_id, char *err, size_t errlen)
{
	return report_start_pending(req, dir, conn_id, reply_id, 0, err,
	    errlen);
}

struct snap_entry *
report_start_held(const struct snapshot_request *req, const char *dir,
    uint64_t conn_id, json_t *reply_id, char *err, size_t errlen)
{
	return report_start_pending(req, dir, conn_id, reply_id, 1, err,
	    errlen);
}

void
report_release(uint64_t snap_id, json_t *extra, const char *key,
    const char *error)
{
	struct report_pending	*p = report_pending_find(snap_id);
	char			 desc[600];

	if (p == NULL) {
		if (extra != NULL)
			json_decref(extra);
		return;
	}
	if (p->held_reply != NULL && error == NULL) {
		if (extra != NULL &&
		    json_object_set_new(p->held_reply, key, extra) == -1)
			fatalx("out of memory building a reply");
		control_reply(p->conn_id, p->reply_id, p->held_reply);
		p->held_reply = NULL;
	} else {
		if (extra != NULL)
			json_decref(extra);
		snprintf(desc, sizeof(desc), "snapshot %llu: %.512s",
		    (unsigned long long)snap_id, error != NULL ? error :
		    p->held_error != NULL ? p->held_error : "not armed");
		control_reply_error(p->conn_id, p->reply_id,
		    SNAPD_ERR_GENERIC, desc);
	}
	report_pending_free(p);
}

void
report_wait_held(uint64_t snap_id, uint64_t conn_id, json_t *reply_id)
{
	report_pending_add(snap_id, conn_id, reply_id);
	report_pending_find(snap_id)->held = 1;
}

int
report_arm(struct snap_entry *e, uint64_t conn_id, json_t *reply_id)
{
	if (snapshots_arm(e) == -1)
		return -1;
	report_pending_add(e->id, conn_id, reply_id);
	return 0;
}

json_t *
report_query(uid_t uid)
{
	struct snap_entry	*e = NULL;
	struct snapshot_stats	 st;
	json_t			*a = report_check(json_array()), *o;

	while ((e = snapshots_next(e)) != NULL) {
		if (!snapshots_visible(e, uid))
			continue;
		snapshots_stats(e, &st);
		o = report_upload(report_chain(report_members(NULL, e, &st,
		    REPORT_QUERY), e, &st), &st);
		/*
		 * By the state, not by e->done: the engine's threads set the
		 * reason, then the final state, and only later does the main
		 * thread learn it is done; a query in between saw "failed"
		 * with no "error" (the schema, and clients, want one).
		 */
		if (st.state == SNAPSHOT_FAILED ||
		    st.state == SNAPSHOT_CANCELLED)
			report_members(o, e, &st, REPORT_LIST(RM_ERROR));
		if (json_array_append_new(a, o) == -1)
			fatalx("out of memory building query-snapshots");
	}
	return a;
}

void
report_free_all(void)
{
	struct report_pending *p;

	while ((p = TAILQ_FIRST(&report_pending)) != NULL)
		report_pending_free(p);
}
