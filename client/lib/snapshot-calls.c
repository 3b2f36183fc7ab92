/*
 * libsnapclient's snapshot calls: snap_start() and snap_start_to() (the
 * regions checked, the userfaultfd created and handed over with the
 * arguments), snap_arm(), snap_cancel() and snap_wait() (the end of a
 * snapshot, from its event or from query-snapshots, parsed once into a
 * snap_result).  They are built on
 * the connection in client.c (sc_execute() and the event queue), and run on
 * the caller's thread like the rest of the library.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "protocol.h"
#include "client-internal.h"

/* The name the userfaultfd goes by on the connection (getfd). */
#define UFFD_FDNAME	"snapclient-uffd"

static int
regions_check(struct snap_client *c, const struct snap_region *regions,
    size_t nregions)
{
	uint64_t	 mask = (uint64_t)sysconf(_SC_PAGESIZE) - 1;
	size_t		 i;

	if (regions == NULL || nregions == 0 ||
	    nregions > SNAPD_REGIONS_MAX) {
		sc_set_error(c, EINVAL, "snap_start: %zu regions: need 1 to "
		    "%d", regions == NULL ? 0 : nregions, SNAPD_REGIONS_MAX);
		return -1;
	}
	for (i = 0; i < nregions; i++) {
		if ((regions[i].start & mask) != 0 ||
		    (regions[i].length & mask) != 0 ||
		    regions[i].length == 0 ||
		    regions[i].start + regions[i].length < regions[i].start) {
			sc_set_error(c, EINVAL, "snap_start: region %zu "
			    "(0x%" PRIx64 ", %" PRIu64 " bytes): not a "
			    "non-empty page-aligned range", i,
			    regions[i].start, regions[i].length);
			return -1;
		}
	}
	return 0;
}

/*
 * The arguments of snapshot-start: regions (and the uffd) for a full
 * snapshot, or parent for an incremental one (regions NULL); track asks
 * snapd to go on tracking writes for the next incremental snapshot; to,
 * if not NULL, is where the snapshot goes ("disk", "s3", "s3://...").
 */
static json_t *
start_arguments(const struct snap_region *regions, size_t nregions,
    const struct snap_options *opts, int track, uint64_t parent,
    const char *to)
{
	json_t	*args, *array, *r;
	char	 name[24];
	size_t	 i;
	int	 bad = 0;

	args = json_object();
	array = json_array();
	if (args == NULL || array == NULL) {
		json_decref(args);
		json_decref(array);
		return NULL;
	}
	for (i = 0; i < nregions; i++) {
		snprintf(name, sizeof(name), "r%zu", i);
		r = json_pack("{s:I, s:I, s:s}",
		    "start", (json_int_t)regions[i].start,
		    "length", (json_int_t)regions[i].length,
		    "name", regions[i].name != NULL ? regions[i].name : name);
		bad |= json_array_append_new(array, r);
	}
	if (regions != NULL) {
		bad |= json_object_set_new(args, "uffd",
		    json_string(UFFD_FDNAME));
		bad |= json_object_set_new(args, "regions", array);
	} else {
		json_decref(array);
		bad |= json_object_set_new(args, "parent",
		    json_integer((json_int_t)parent));
	}
	if (track)
		bad |= json_object_set_new(args, "track", json_true());
	if (to != NULL)
		bad |= json_object_set_new(args, "to", json_string(to));
	if (opts != NULL) {
		if (opts->name != NULL)
			bad |= json_object_set_new(args, "name",
			    json_string(opts->name));
		if (opts->format != NULL)
			bad |= json_object_set_new(args, "format",
			    json_string(opts->format));
		if (opts->level != 0)
			bad |= json_object_set_new(args, "level",
			    json_integer(opts->level));
		if (opts->buffer_size != 0)
			bad |= json_object_set_new(args, "buffer-size",
			    json_integer((json_int_t)opts->buffer_size));
		if (opts->prearm)
			bad |= json_object_set_new(args, "prearm", json_true());
		if (opts->test_hold != NULL) {
			json_t *hold = json_loads(opts->test_hold, 0, NULL);

			bad |= hold == NULL ||
			    json_object_set_new(args, "test-hold", hold);
		}
	}
	if (bad) {
		/* json_string() refuses invalid UTF-8 in a name, too. */
		json_decref(args);
		return NULL;
	}
	return args;
}

/* The id in a snapshot-start reply (freed) into *id. */
static int
start_reply_id(struct snap_client *c, json_t *ret, uint64_t *id)
{
	json_t *jid = json_object_get(ret, "id");

	if (!json_is_integer(jid) || json_integer_value(jid) < 0) {
		json_decref(ret);
		sc_set_error(c, EPROTO, "snapshot-start: the reply has no "
		    "snapshot id");
		return -1;
	}
	if (id != NULL)
		*id = (uint64_t)json_integer_value(jid);
	json_decref(ret);
	return 0;
}

static int
start_full(struct snap_client *c, const struct snap_region *regions,
    size_t nregions, const struct snap_options *opts, int track,
    const char *to, uint64_t *id)
{
	json_t	*args, *getfd, *ret = NULL;
	int	 uffd;

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_start: no client");
		return -1;
	}
	if (regions_check(c, regions, nregions) == -1)
		return -1;
	if (to != NULL && *to == '\0') {
		sc_set_error(c, EINVAL, "snap_start: an empty destination "
		    "(\"disk\", \"s3\" or \"s3://BUCKET/PREFIX\", or NULL "
		    "for snapd's default)");
		return -1;
	}
	if (c->dead) {
		sc_set_error(c, ECONNRESET, "snap_start: snapd closed the "
		    "connection");
		return -1;
	}
	if ((args = start_arguments(regions, nregions, opts, track, 0,
	    to)) == NULL) {
		sc_set_error(c, EINVAL, "snap_start: cannot build the "
		    "arguments (out of memory, or a name not valid UTF-8)");
		return -1;
	}
	if ((getfd = json_pack("{s:s}", "fdname", UFFD_FDNAME)) == NULL) {
		json_decref(args);
		sc_set_error(c, ENOMEM, "snap_start: %m");
		return -1;
	}
	/* Before anything is sent: no hole may be left for snapd to
	 * write-protect if its kernel cannot protect unpopulated pages. */
	if (!c->wp_unpopulated &&
	    sc_regions_populate(c, regions, nregions) == -1) {
		sc_error_prefix(c, "snap_start");
		json_decref(args);
		json_decref(getfd);
		return -1;
	}
	if ((uffd = sc_uffd_create(c)) == -1) {
		sc_error_prefix(c, "snap_start");
		json_decref(args);
		json_decref(getfd);
		return -1;
	}
	/* sc_execute() closes uffd as soon as it has been sent. */
	if (sc_execute(c, "getfd", getfd, &uffd, SC_REPLY_TIMEOUT_MS,
	    NULL) == -1) {
		if (uffd != -1)
			close(uffd);
		json_decref(args);
		return -1;
	}
	if (sc_execute(c, "snapshot-start", args, NULL, SC_REPLY_TIMEOUT_MS,
	    &ret) == -1)
		return -1;
	return start_reply_id(c, ret, id);
}

int
snap_start(struct snap_client *c, const struct snap_region *regions,
    size_t nregions, const struct snap_options *opts, uint64_t *id)
{
	return start_full(c, regions, nregions, opts, 0, NULL, id);
}

int
snap_start_to(struct snap_client *c, const struct snap_region *regions,
    size_t nregions, const struct snap_options *opts, const char *to,
    uint64_t *id)
{
	return start_full(c, regions, nregions, opts, 0, to, id);
}

int
snap_start_tracked(struct snap_client *c, const struct snap_region *regions,
    size_t nregions, const struct snap_options *opts, uint64_t *id)
{
	return start_full(c, regions, nregions, opts, 1, NULL, id);
}

int
snap_start_incremental(struct snap_client *c, uint64_t parent,
    const struct snap_options *opts, uint64_t *id)
{
	json_t *args, *ret = NULL;

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_start_incremental: no client");
		return -1;
	}
	if (c->dead) {
		sc_set_error(c, ECONNRESET, "snap_start_incremental: snapd "
		    "closed the connection");
		return -1;
	}
	if (opts != NULL && opts->prearm) {
		sc_set_error(c, EINVAL, "snap_start_incremental: an "
		    "incremental snapshot takes no pre-arm: its arm is "
		    "already proportional to the pages written");
		return -1;
	}
	if ((args = start_arguments(NULL, 0, opts, 1, parent, NULL)) ==
	    NULL) {
		sc_set_error(c, EINVAL, "snap_start_incremental: cannot build "
		    "the arguments (out of memory, or a name not valid UTF-8)");
		return -1;
	}
	if (sc_execute(c, "snapshot-start", args, NULL, SC_REPLY_TIMEOUT_MS,
	    &ret) == -1)
		return -1;
	return start_reply_id(c, ret, id);
}

int
snap_arm(struct snap_client *c, uint64_t id)
{
	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_arm: no client");
		return -1;
	}
	return sc_execute(c, "snapshot-arm",
	    json_pack("{s:I}", "id", (json_int_t)id), NULL,
	    SC_REPLY_TIMEOUT_MS, NULL);
}

int
snap_cancel(struct snap_client *c, uint64_t id)
{
	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_cancel: no client");
		return -1;
	}
	return sc_execute(c, "snapshot-cancel",
	    json_pack("{s:I}", "id", (json_int_t)id), NULL,
	    SC_REPLY_TIMEOUT_MS, NULL);
}

static uint64_t
get_u64(const json_t *obj, const char *key)
{
	json_int_t	 v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (uint64_t)v : 0;
}

static void
copy_string(char *dst, size_t size, const json_t *obj, const char *key)
{
	const char	*s = json_string_value(json_object_get(obj, key));

	snprintf(dst, size, "%s", s != NULL ? s : "");
}

/*
 * Fill res from the figures of a finished snapshot: a query-snapshots entry
 * or the data of SNAPSHOT_COMPLETED or SNAPSHOT_FAILED, which use the same
 * names (proto/PROTOCOL.md).  why is the error to give when a failure names
 * none.
 */
static void
result_parse(struct snap_result *res, const json_t *d, int completed,
    const char *why)
{
	memset(res, 0, sizeof(*res));
	res->id = get_u64(d, "id");
	res->completed = completed;
	copy_string(res->name, sizeof(res->name), d, "name");
	copy_string(res->file, sizeof(res->file), d, "file");
	copy_string(res->error, sizeof(res->error), d, "error");
	if (!completed && res->error[0] == '\0')
		snprintf(res->error, sizeof(res->error), "%s", why);
	res->size = get_u64(d, "bytes-written");
	res->pages = get_u64(d, "pages-total");
	res->pages_faulted = get_u64(d, "pages-faulted");
	res->pages_zero = get_u64(d, "pages-zero");
	res->pages_lost = get_u64(d, "pages-lost");
	res->buffer_full_waits = get_u64(d, "buffer-full-waits");
	res->buffer_peak = get_u64(d, "buffer-peak");
	res->stall_max_us = get_u64(d, "stall-max-us");
	res->arm_us = get_u64(d, "arm-us");
	res->duration_us = get_u64(d, "duration-us");
}

/*
 * If msg is SNAPSHOT_COMPLETED or SNAPSHOT_FAILED for id, fill res from it
 * and return 1.
 */
static int
result_from_event(struct snap_result *res, const json_t *msg, uint64_t id)
{
	const char	*name = json_string_value(json_object_get(msg, "event"));
	const json_t	*d = json_object_get(msg, "data");

	if (name == NULL || !json_is_integer(json_object_get(d, "id")) ||
	    get_u64(d, "id") != id)
		return 0;
	if (strcmp(name, SNAPD_EV_COMPLETED) == 0)
		result_parse(res, d, 1, "");
	else if (strcmp(name, SNAPD_EV_FAILED) == 0)
		result_parse(res, d, 0,
		    json_is_true(json_object_get(d, "cancelled")) ?
		    "cancelled" : "failed");
	else
		return 0;
	return 1;
}

/* Ask snapd about id.  Returns 1 (finished, res filled), 0 (running) or -1. */
static int
wait_query(struct snap_client *c, uint64_t id, struct snap_result *res)
{
	json_t		*list = NULL, *e;
	const char	*state;
	size_t		 i;
	int		 rc;

	if (sc_execute(c, "query-snapshots", NULL, NULL, SC_REPLY_TIMEOUT_MS,
	    &list) == -1)
		return -1;
	json_array_foreach(list, i, e) {
		if (!json_is_integer(json_object_get(e, "id")) ||
		    get_u64(e, "id") != id)
			continue;
		state = json_string_value(json_object_get(e, "state"));
		if (state == NULL) {
			sc_set_error(c, EPROTO, "query-snapshots: snapshot "
			    "%" PRIu64 " has no state", id);
			rc = -1;
		} else if (strcmp(state, "completed") == 0 ||
		    strcmp(state, "failed") == 0 ||
		    strcmp(state, "cancelled") == 0) {
			result_parse(res, e, strcmp(state, "completed") == 0,
			    state);
			rc = 1;
		} else
			rc = 0;
		json_decref(list);
		return rc;
	}
	json_decref(list);
	sc_set_error(c, ENOENT, "snapshot %" PRIu64 ": no such snapshot "
	    "(or not one this client may see)", id);
	return -1;
}

int
snap_wait(struct snap_client *c, uint64_t id, struct snap_result *res,
    int timeout_ms)
{
	struct snap_result	 scratch;
	struct sc_event		*ev, *next;
	json_t			*msg;
	char			*line;
	int64_t			 deadline = sc_deadline_after(timeout_ms);
	int			 r, found;

	if (c == NULL) {
		sc_set_error(NULL, EINVAL, "snap_wait: no client");
		return -1;
	}
	if (res == NULL)
		res = &scratch;
	if ((r = wait_query(c, id, res)) != 0)
		return r == 1 ? 0 : -1;

	/* Did its end arrive while the query's reply was awaited? */
	for (ev = TAILQ_FIRST(&c->events); ev != NULL; ev = next) {
		next = TAILQ_NEXT(ev, entry);
		if ((msg = json_loads(ev->line, 0, NULL)) == NULL)
			continue;
		found = result_from_event(res, msg, id);
		json_decref(msg);
		if (found) {
			sc_event_remove(c, ev);
			return 0;
		}
	}

	for (;;) {
		if (sc_read_message(c, deadline, &msg, &line) == -1) {
			if (errno == ETIMEDOUT)
				sc_set_error(c, ETIMEDOUT, "snapshot %" PRIu64
				    ": still running after %d ms", id,
				    timeout_ms);
			else
				sc_error_prefix(c, "waiting for the snapshot");
			return -1;
		}
		if (sc_message_is_event(msg)) {
			found = result_from_event(res, msg, id);
			if (found)
				free(line);
			else
				sc_event_push(c, line);
			json_decref(msg);
			if (found)
				return 0;
			continue;
		}
		/* No command is pending: a stale reply. */
		json_decref(msg);
		free(line);
	}
}

