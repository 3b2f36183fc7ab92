/*
 * Chains of incremental snapshots, on the control side (chain.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "log.h"
#include "track.h"
#include "zsnaplink.h"

static unsigned chain_ntrackers;

unsigned
chain_trackers(void)
{
	return chain_ntrackers;
}

unsigned
chain_trackers_uid(uid_t uid)
{
	struct snap_entry	*e;
	unsigned		 n = 0;

	for (e = snapshots_next(NULL); e != NULL; e = snapshots_next(e))
		n += e->uid == uid && e->tracker != NULL;
	return n;
}

static void
chain_set_tracker(struct snap_entry *e, struct tracker *t)
{
	e->tracker = t;
	if (t != NULL) {
		chain_ntrackers++;
		e->untracked[0] = '\0';
	}
}

void
chain_untrack(struct snap_entry *e, const char *why)
{
	if (e->tracker == NULL)
		return;
	/* Before the free: why may be the tracker's own (tracker_why()). */
	snprintf(e->untracked, sizeof(e->untracked), "%s", why);
	tracker_free(e->tracker);
	e->tracker = NULL;
	chain_ntrackers--;
	log_info("snapshot %llu: no longer tracking process %d's writes: %s",
	    (unsigned long long)e->id, (int)e->pid, e->untracked);
}

struct snap_entry *
chain_parent(uint64_t id, uid_t uid, pid_t pid, char *err, size_t errlen)
{
	struct snap_entry *e = snapshots_find(id);

	if (e == NULL || !snapshots_visible(e, uid)) {
		snprintf(err, errlen, "no snapshot %llu (parent)",
		    (unsigned long long)id);
		return NULL;
	}
	if (!e->done || e->final.state != SNAPSHOT_COMPLETED) {
		snprintf(err, errlen, "snapshot %llu is %s: only a completed "
		    "snapshot can be a parent", (unsigned long long)id,
		    e->done ? snapshot_state_name(e->final.state) :
		    "still running");
		return NULL;
	}
	if (e->tracker == NULL) {
		struct snap_entry *n;

		for (n = snapshots_next(NULL); n != NULL;
		    n = snapshots_next(n))
			if (n->parent_id == e->id && n->tracker != NULL)
				break;
		if (n != NULL)
			snprintf(err, errlen, "snapshot %llu is not the newest "
			    "of its chain: snapshot %llu follows it; take the "
			    "incremental from that one", (unsigned long long)id,
			    (unsigned long long)n->id);
		else if (e->untracked[0] != '\0')
			snprintf(err, errlen, "snapshot %llu no longer tracks "
			    "the process's writes (%s): take a full snapshot",
			    (unsigned long long)id, e->untracked);
		else
			snprintf(err, errlen, "snapshot %llu was not taken with "
			    "\"track\": take a full snapshot with it first",
			    (unsigned long long)id);
		return NULL;
	}
	if (tracker_pid(e->tracker) != pid) {
		snprintf(err, errlen, "snapshot %llu tracks process %d, not "
		    "%d", (unsigned long long)id, (int)tracker_pid(e->tracker),
		    (int)pid);
		return NULL;
	}
	return e;
}

struct track_state *
chain_take(struct snap_entry *e, struct zsnap_parent *link, char *err,
    size_t errlen)
{
	struct track_state	*st;
	const char		*base = strrchr(e->file, '/');
	char			 why[256];

	base = base != NULL ? base + 1 : e->file;
	if (strlen(base) >= sizeof(link->file)) {
		snprintf(err, errlen, "the parent's file name %s is too long "
		    "for a chain link", base);
		return NULL;
	}
	st = tracker_stop(e->tracker, why, sizeof(why));
	tracker_free(e->tracker);
	e->tracker = NULL;
	chain_ntrackers--;
	if (st == NULL) {
		snprintf(e->untracked, sizeof(e->untracked), "%s", why);
		snprintf(err, errlen, "snapshot %llu no longer tracks the "
		    "process's writes (%s): take a full snapshot",
		    (unsigned long long)e->id, why);
		return NULL;
	}
	memset(link, 0, sizeof(*link));
	snprintf(link->name, sizeof(link->name), "%s", e->name);
	snprintf(link->file, sizeof(link->file), "%s", base);
	link->armed_realtime_ns = e->final.armed_realtime_ns;
	link->index_crc = e->final.index_crc;
	link->depth = e->depth + 1;
	return st;
}

void
chain_give_back(struct snap_entry *e, struct track_state *st)
{
	struct tracker *t = tracker_start(st, e->id);

	if (t == NULL) {
		snprintf(e->untracked, sizeof(e->untracked), "cannot start "
		    "tracking again after a refused incremental snapshot");
		log_warn("snapshot %llu: start tracking again",
		    (unsigned long long)e->id);
		return;
	}
	chain_set_tracker(e, t);
}

void
chain_done(struct snap_entry *e, struct snapshot *snap,
    const struct snapshot_stats *st)
{
	struct tracker		*t = snapshot_take_tracker(snap);
	struct snap_entry	*parent;

	if (t == NULL)
		return;
	if (st->state == SNAPSHOT_COMPLETED) {
		chain_set_tracker(e, t);
		return;
	}
	/* A failed incremental: its parent can be followed again. */
	parent = e->parent_id != 0 ? snapshots_find(e->parent_id) : NULL;
	if (parent == NULL || parent->tracker != NULL) {
		tracker_free(t);
		return;
	}
	chain_set_tracker(parent, t);
	log_info("snapshot %llu failed; snapshot %llu tracks the process's "
	    "writes again", (unsigned long long)e->id,
	    (unsigned long long)parent->id);
}

void
chain_reap(void)
{
	struct snap_entry *e;

	for (e = snapshots_next(NULL); e != NULL; e = snapshots_next(e))
		if (e->tracker != NULL && !tracker_alive(e->tracker))
			chain_untrack(e, tracker_why(e->tracker));
}

int
chain_delete_check(int dirfd, const char *dir, const char *name, char *dep,
    size_t deplen)
{
	char			 target[ZSNAP_PARENT_FILE_MAX], path[PATH_MAX];
	struct zsnap_parent	 link;
	struct dirent		*d;
	struct snap_entry	*e;
	DIR			*dp;
	int			 fd, found = 0;
	size_t			 len;

	snprintf(target, sizeof(target), "%s%s", name, ZSNAP_SUFFIX);
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1 || (dp = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while (!found && (d = readdir(dp)) != NULL) {
		len = strlen(d->d_name);
		if (len <= strlen(ZSNAP_SUFFIX) || strcmp(d->d_name + len -
		    strlen(ZSNAP_SUFFIX), ZSNAP_SUFFIX) != 0 ||
		    strcmp(d->d_name, target) == 0)
			continue;
		fd = openat(dirfd, d->d_name, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd == -1)
			continue;
		if (zsnap_read_link(fd, &link) == 1 &&
		    strcmp(link.file, target) == 0) {
			snprintf(dep, deplen, "%s", d->d_name);
			found = 1;
		}
		close(fd);
	}
	closedir(dp);
	if (found)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", dir, target);
	for (e = snapshots_next(NULL); e != NULL; e = snapshots_next(e))
		if (e->tracker != NULL && strcmp(e->file, path) == 0)
			chain_untrack(e, "its file was deleted");
	return 0;
}
