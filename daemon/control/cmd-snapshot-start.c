/*
 * snapshot-start: check everything a peer asks for, then hand the
 * userfaultfd and regions to the engine.  The reply is deferred: it goes
 * out from snapshots.c once the engine reports the regions armed (the
 * snapshot's point in time), or as an error if arming failed.
 *
 * What a peer may ask: its own process only (the pid argument is for root
 * and peers with CAP_SYS_PTRACE in snapd's own user namespace),
 * regions that lie inside the process's mappings and not in hugetlbfs
 * memory, a buffer no larger than the configured buffer_size (root may ask
 * more), no more than max_snapshots_per_uid snapshots at once (root: only
 * max_snapshots), a name from the strict alphabet, in its own directory
 * (paths.h), or in its own part of S3 ("to", s3dest.h).  That the uffd
 * belongs to the process is proved at arm (arm.c); that S3 takes the
 * snapshot, on the writer thread before it arms (the engine's upload.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "protocol.h"
#include "compat.h"
#include "log.h"
#include "config.h"
#include "control.h"
#include "paths.h"
#include "pidfd.h"
#include "peertrace.h"
#include "attaching.h"
#include "chain.h"
#include "mapsel.h"
#include "procmaps.h"
#include "report.h"
#include "cmd.h"
#include "s3dest.h"
#include "testhold.h"
#include "track.h"
#include "uffd.h"

/* capability(7) number of CAP_SYS_PTRACE. */
#define START_CAP_SYS_PTRACE	19

/*
 * 1 if the peer's process has CAP_SYS_PTRACE in its effective set *in
 * snapd's user namespace*.  CapEff is relative to the process's own user
 * namespace: after unshare -U -r any user shows every capability there, so
 * it counts only when that namespace is snapd's (same ns inode; a process
 * in a child namespace has no capability in snapd's, whatever it shows).
 * Read from /proc by pid, then checked against the pidfd taken at accept:
 * if that process has exited meanwhile the pid may name another one, and
 * the answer is no.
 */
static int
start_peer_may_ptrace(const struct conn *c)
{
	unsigned long long	 caps = 0;
	struct stat		 mine, peer;
	char			 path[32], line[256];
	FILE			*f;
	int			 found = 0;

	if (c->pidfd == -1)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)c->pid);
	if (stat("/proc/self/ns/user", &mine) == -1 ||
	    stat(path, &peer) == -1 || mine.st_dev != peer.st_dev ||
	    mine.st_ino != peer.st_ino)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)c->pid);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			found = 1;
			break;
		}
	fclose(f);
	if (!found || !pidfd_alive(c->pidfd))
		return 0;
	return (caps >> START_CAP_SYS_PTRACE) & 1;
}

/*
 * Check every region against the mappings of the process pidfd names: it
 * must lie wholly inside them (so its length, which sizes the engine's page
 * bitmaps, is bounded by what the process has), and none of it may be
 * hugetlbfs memory, whose protection the kernel will only drop a whole huge
 * page at a time while the engine works in 4 KiB pages: its writers would
 * wait for the whole snapshot.  -1 with ctx's error set.
 */
static int
start_regions_mapped(struct cmd_ctx *ctx, pid_t pid, int pidfd,
    const struct output_region *regions, int n)
{
	struct procmaps		pm;
	struct procmaps_vma	vma;
	int			rc = -1, found;

	if (procmaps_open(&pm, pid, pidfd) == -1) {
		cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-start: cannot read "
		    "the mappings of process %d: %s", (int)pid,
		    strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const struct output_region *r = &regions[i];
		uint64_t addr = r->start, end = r->start + r->length;

		while (addr < end) {
			if ((found = procmaps_find(&pm, addr, &vma)) == -1) {
				cmd_error(ctx, SNAPD_ERR_GENERIC,
				    "snapshot-start: cannot read the mappings "
				    "of process %d: %s", (int)pid,
				    strerror(errno));
				goto out;
			}
			if (found == 0 || vma.start > addr) {
				cmd_error(ctx, SNAPD_ERR_INVALID,
				    "snapshot-start: region %d ('%s', "
				    "0x%llx+%llu) is not all mapped in process "
				    "%d: nothing is mapped at 0x%llx", i,
				    r->name, (unsigned long long)r->start,
				    (unsigned long long)r->length, (int)pid,
				    (unsigned long long)addr);
				goto out;
			}
			if (vma.page_size > SNAPD_PAGE_SIZE) {
				cmd_error(ctx, SNAPD_ERR_INVALID,
				    "snapshot-start: region %d ('%s') lies in "
				    "hugetlbfs memory (%llu kB pages, at "
				    "0x%llx), which snapd cannot snapshot yet: "
				    "the process's writes to it would wait for "
				    "the whole snapshot", i, r->name,
				    (unsigned long long)(vma.page_size / 1024),
				    (unsigned long long)vma.start);
				goto out;
			}
			addr = vma.end;
		}
	}
	rc = 0;
out:
	procmaps_close(&pm);
	return rc;
}

static int
start_region_cmp(const void *a, const void *b)
{
	const struct output_region *ra = a, *rb = b;

	return ra->start < rb->start ? -1 : ra->start > rb->start;
}

/*
 * Check the regions array and fill out[] (SNAPD_REGIONS_MAX entries).
 * Returns the count, or -1 with ctx's error set.
 */
static int
start_regions(struct cmd_ctx *ctx, json_t *regions, struct output_region *out)
{
	struct output_region	 sorted[SNAPD_REGIONS_MAX];
	uint64_t		 page = (uint64_t)sysconf(_SC_PAGESIZE);
	size_t			 n = json_array_size(regions), i;
	const char		*key;
	json_t			*r, *v;

	if (n < 1 || n > SNAPD_REGIONS_MAX) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: 'regions' "
		    "must hold 1 to %d regions, not %zu", SNAPD_REGIONS_MAX, n);
		return -1;
	}
	json_array_foreach(regions, i, r) {
		json_t		*start, *length, *name;
		json_int_t	 s, l;

		if (!json_is_object(r)) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu is not an object", i);
			return -1;
		}
		json_object_foreach(r, key, v) {
			if (strcmp(key, "start") != 0 &&
			    strcmp(key, "length") != 0 &&
			    strcmp(key, "name") != 0) {
				cmd_error(ctx, SNAPD_ERR_INVALID,
				    "snapshot-start: "
				    "region %zu: unknown member '%.64s'", i, key);
				return -1;
			}
		}
		start = json_object_get(r, "start");
		length = json_object_get(r, "length");
		name = json_object_get(r, "name");
		if (!json_is_integer(start) || !json_is_integer(length)) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu: 'start' and 'length' must be integers",
			    i);
			return -1;
		}
		s = json_integer_value(start);
		l = json_integer_value(length);
		if (s < 0 || l <= 0) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu: start must be >= 0 and length > 0", i);
			return -1;
		}
		if ((uint64_t)s % page != 0 || (uint64_t)l % page != 0) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu: start and length must be multiples of "
			    "the page size (%llu)", i, (unsigned long long)page);
			return -1;
		}
		if ((uint64_t)s > (uint64_t)INT64_MAX - (uint64_t)l) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu wraps around the address space", i);
			return -1;
		}
		memset(&out[i], 0, sizeof(out[i]));
		out[i].start = (uint64_t)s;
		out[i].length = (uint64_t)l;
		if (name == NULL)
			snprintf(out[i].name, sizeof(out[i].name), "r%zu", i);
		else if (!json_is_string(name) ||
		    !paths_name_valid(json_string_value(name))) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "region %zu: name must be " SNAPD_NAME_RULE, i);
			return -1;
		} else
			snprintf(out[i].name, sizeof(out[i].name), "%s",
			    json_string_value(name));
	}
	memcpy(sorted, out, n * sizeof(*out));
	qsort(sorted, n, sizeof(*sorted), start_region_cmp);
	for (i = 1; i < n; i++) {
		if (sorted[i - 1].start + sorted[i - 1].length >
		    sorted[i].start) {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "regions '%s' and '%s' overlap", sorted[i - 1].name,
			    sorted[i].name);
			return -1;
		}
	}
	return (int)n;
}

/* A request for peer c's own process with every setting from conf. */
static void
start_request_init(struct snapshot_request *req, const struct config *conf,
    const struct conn *c)
{
	memset(req, 0, sizeof(*req));
	req->id = snapshots_next_id();
	req->uid = c->uid;
	req->pid = c->pid;
	req->pidfd = -1;	/* set just before the engine takes over */
	req->format = conf->format;
	req->level = conf->compression_level;
	req->threads = conf->compression_threads;
	req->pressure_level = conf->pressure_level;
	req->buffer_size = conf->buffer_size;
	req->on_discard = conf->on_discard;
	req->mode = 0600;
	req->owner_uid = c->uid;
	req->owner_gid = c->gid;
}

/*
 * The "uffd" argument must name a userfaultfd passed on this connection;
 * its name in *uffd_name.  -1 with ctx's error set.
 */
static int
start_uffd_check(struct cmd_ctx *ctx, const char **uffd_name)
{
	int	uffd;

	*uffd_name = json_string_value(json_object_get(ctx->args, "uffd"));
	if ((uffd = control_fd_peek(ctx->conn, *uffd_name)) == -1) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: no "
		    "descriptor named '%.64s' on this connection (send it "
		    "with getfd first)", *uffd_name);
		return -1;
	}
	if (uffd_is_userfaultfd(uffd) != 1) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
		    "descriptor '%.64s' is not a userfaultfd", *uffd_name);
		return -1;
	}
	return 0;
}

/*
 * The snapshot's name into name (SNAPD_NAME_MAX + 1 bytes): the "name"
 * argument, or snap-ID.  -1 with ctx's error set.
 */
static int
start_parse_name(struct cmd_ctx *ctx, const struct snapshot_request *req,
    char *name, size_t size)
{
	json_t	*v;

	if ((v = json_object_get(ctx->args, "name")) != NULL) {
		if (!paths_name_valid(json_string_value(v))) {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: "
			    "invalid name (use " SNAPD_NAME_RULE ")");
			return -1;
		}
		snprintf(name, size, "%s", json_string_value(v));
	} else
		snprintf(name, size, "snap-%llu", (unsigned long long)req->id);
	return 0;
}

/*
 * Attach: "pid" without "uffd".  With "parent", only when the parent was
 * taken by attach: an incremental snapshot is taken the way its chain's
 * full one was (by attach, snapd stops the process; else its peer holds
 * the process still).
 */
static int
start_is_attach(const struct cmd_ctx *ctx)
{
	json_t			*parent = json_object_get(ctx->args, "parent");
	struct snap_entry	*p;

	if (json_object_get(ctx->args, "pid") == NULL ||
	    json_object_get(ctx->args, "uffd") != NULL)
		return 0;
	if (parent == NULL)
		return 1;
	p = json_integer_value(parent) > 0 ?
	    snapshots_find((uint64_t)json_integer_value(parent)) : NULL;
	return p != NULL && p->attached;
}

/*
 * May the peer name process pid?  Root and CAP_SYS_PTRACE (in snapd's
 * namespace) may; to attach, so may a peer the kernel's ptrace rules let
 * trace it (peertrace.h).  -1 with ctx's error set.
 */
static int
start_pid_permitted(struct cmd_ctx *ctx, pid_t pid)
{
	struct conn	*c = ctx->conn;
	char		 why[256];
	int		 ok;

	if (c->uid == 0 || start_peer_may_ptrace(c))
		return 0;
	if (!start_is_attach(ctx)) {
		cmd_error(ctx, SNAPD_ERR_PERMISSION, "snapshot-start: only "
		    "root or a process with CAP_SYS_PTRACE in snapd's user "
		    "namespace may snapshot another process's uffd (pid)");
		return -1;
	}
	if ((ok = peertrace_allowed(c, pid, why, sizeof(why))) == 1)
		return 0;
	cmd_error(ctx, ok == 0 ? SNAPD_ERR_PERMISSION : SNAPD_ERR_GENERIC,
	    "snapshot-start: may not attach to process %d: %s", (int)pid, why);
	return -1;
}

/*
 * The optional arguments into req: format, level, buffer-size (non-root
 * peers capped at the configured size), max-bandwidth, pid (root or
 * CAP_SYS_PTRACE only), prearm and test-hold.  -1 with ctx's error set.
 */
static int
start_parse_options(struct cmd_ctx *ctx, const struct config *conf,
    struct snapshot_request *req)
{
	struct conn	*c = ctx->conn;
	char		 err[512];
	json_t		*v;

	if ((v = json_object_get(ctx->args, "format")) != NULL) {
		if (strcmp(json_string_value(v), SNAPD_FORMAT_ZSNAP) == 0)
			req->format = OUTPUT_ZSNAP;
		else if (strcmp(json_string_value(v), SNAPD_FORMAT_RAW) == 0)
			req->format = OUTPUT_RAW;
		else {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: "
			    "format must be \"" SNAPD_FORMAT_ZSNAP "\" or \""
			    SNAPD_FORMAT_RAW "\"");
			return -1;
		}
	}
	if ((v = json_object_get(ctx->args, "level")) != NULL) {
		if (json_integer_value(v) < SNAPD_LEVEL_MIN ||
		    json_integer_value(v) > SNAPD_LEVEL_MAX) {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: level must be %d..%d",
			    SNAPD_LEVEL_MIN, SNAPD_LEVEL_MAX);
			return -1;
		}
		req->level = (int)json_integer_value(v);
	}
	if ((v = json_object_get(ctx->args, "buffer-size")) != NULL) {
		json_int_t size = json_integer_value(v);

		if (size < SNAPD_BUFFER_SIZE_MIN ||
		    (uint64_t)size > SNAPD_BUFFER_SIZE_MAX) {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: buffer-size must be %u..%llu bytes",
			    SNAPD_BUFFER_SIZE_MIN,
			    (unsigned long long)SNAPD_BUFFER_SIZE_MAX);
			return -1;
		}
		req->buffer_size = (size_t)size;
		/* Non-root peers may ask for less, never more. */
		if (c->uid != 0 && req->buffer_size > conf->buffer_size)
			req->buffer_size = conf->buffer_size;
	}
	if ((v = json_object_get(ctx->args, "max-bandwidth")) != NULL) {
		json_int_t rate = json_integer_value(v);

		if (rate != 0 && rate < SNAPD_MAX_BANDWIDTH_MIN) {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: max-bandwidth must be 0 (no "
			    "limit) or at least %u bytes a second",
			    SNAPD_MAX_BANDWIDTH_MIN);
			return -1;
		}
		req->max_bandwidth = (uint64_t)rate;
	}
	if ((v = json_object_get(ctx->args, "pid")) != NULL) {
		if (json_integer_value(v) <= 0 ||
		    json_integer_value(v) > INT_MAX) {
			cmd_error(ctx, SNAPD_ERR_INVALID,
			    "snapshot-start: "
			    "pid must be a positive process id");
			return -1;
		}
		req->pid = (pid_t)json_integer_value(v);
		if (start_pid_permitted(ctx, req->pid) == -1)
			return -1;
	}

	if ((v = json_object_get(ctx->args, "prearm")) != NULL)
		req->prearm = json_is_true(v);
	if ((v = json_object_get(ctx->args, "track")) != NULL)
		req->track = json_is_true(v);
	/* An incremental snapshot moves its parent's tracking: no more. */
	if (req->track && json_object_get(ctx->args, "parent") == NULL &&
	    chain_trackers() >= SNAPD_TRACKERS_MAX) {
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: %u snapshots "
		    "already track their process's writes (at most %d): end "
		    "one with snapshot-cancel first", chain_trackers(),
		    SNAPD_TRACKERS_MAX);
		return -1;
	}
	/* Root, the operator, is bounded by the total alone. */
	if (req->track && ctx->conn->uid != 0 &&
	    json_object_get(ctx->args, "parent") == NULL &&
	    chain_trackers_uid(ctx->conn->uid) >=
	    (unsigned)conf->max_snapshots_per_uid) {
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: uid %u has %u "
		    "snapshots tracking their process's writes "
		    "(max_snapshots_per_uid %d): end one with snapshot-cancel "
		    "first", (unsigned)ctx->conn->uid,
		    chain_trackers_uid(ctx->conn->uid),
		    conf->max_snapshots_per_uid);
		return -1;
	}
	if (testhold_parse(json_object_get(ctx->args, "test-hold"), req, err,
	    sizeof(err)) == -1) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: %s", err);
		return -1;
	}
	return 0;
}

/*
 * Room for one more snapshot: fewer than max_snapshots running, and for a
 * peer other than root fewer than max_snapshots_per_uid of its own.  -1
 * with ctx's error set.
 */
static int
start_check_limits(struct cmd_ctx *ctx, const struct config *conf)
{
	struct snapshots_counters n;
	struct conn		*c = ctx->conn;
	unsigned		 mine;

	snapshots_counters(&n);
	if (n.active >= (unsigned)conf->max_snapshots) {
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: %u "
		    "snapshots are running (max_snapshots %d)", n.active,
		    conf->max_snapshots);
		return -1;
	}
	/* Root, the operator, is bounded by max_snapshots alone. */
	if (c->uid != 0 && (mine = snapshots_active_uid(c->uid)) >=
	    (unsigned)conf->max_snapshots_per_uid) {
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: uid %u "
		    "has %u snapshots running or pre-armed "
		    "(max_snapshots_per_uid %d)", (unsigned)c->uid, mine,
		    conf->max_snapshots_per_uid);
		return -1;
	}
	return 0;
}

/*
 * Open the peer's snapshot directory, or the "subdir" of it the peer names
 * (created if missing: a VM snapshot's directory, say), its path into dir
 * (size bytes), and check that no snapshot called name runs or exists
 * there.  The directory's descriptor, or -1 with ctx's error set.
 */
static int
start_prepare_dir(struct cmd_ctx *ctx, const struct config *conf,
    const char *name, char *dir, size_t size)
{
	struct conn	*c = ctx->conn;
	const char	*sub = json_string_value(json_object_get(ctx->args,
			    "subdir"));
	char		 err[512];
	int		 dirfd;

	if (sub != NULL && !paths_name_valid(sub)) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: invalid "
		    "subdir (use " SNAPD_NAME_RULE ")");
		return -1;
	}

	dirfd = paths_peer_dir(conf->snapshot_dir, c->uid, c->gid, dir,
	    size, err, sizeof(err));
	if (dirfd != -1 && sub != NULL) {
		char peer[PATH_MAX];
		int subfd;

		snprintf(peer, sizeof(peer), "%s", dir);
		subfd = paths_sub_dir(dirfd, peer, sub, c->uid, c->gid, dir,
		    size, err, sizeof(err));
		close(dirfd);
		dirfd = subfd;
	}
	if (dirfd == -1) {
		cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-start: %s", err);
		return -1;
	}
	if (snapshots_find_running(dir, name) != NULL) {
		close(dirfd);
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: a "
		    "snapshot named '%s' is already running", name);
		return -1;
	}
	if (paths_snapshot_exists(dirfd, name)) {
		close(dirfd);
		cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-start: "
		    "snapshot '%s' already exists in %s: %s", name, dir,
		    strerror(EEXIST));
		return -1;
	}
	return dirfd;
}

/*
 * A pidfd for the process to snapshot into req->pidfd.  The peer's own
 * process is named by the pidfd taken at accept, so a pid reused since
 * cannot stand in for it; a pid root names is opened here, so the mappings
 * checked next and the memory the engine arms belong to one process.  -1
 * with ctx's error set.
 */
static int
start_open_pidfd(struct cmd_ctx *ctx, struct snapshot_request *req)
{
	struct conn	*c = ctx->conn;

	if (json_object_get(ctx->args, "pid") != NULL) {
		if ((req->pidfd = (int)syscall(SYS_pidfd_open, req->pid, 0)) ==
		    -1) {
			cmd_error(ctx, SNAPD_ERR_GENERIC,
			    "snapshot-start: pidfd_open of pid %d: %s",
			    (int)req->pid, strerror(errno));
			return -1;
		}
	} else {
		if (c->pidfd == -1) {
			cmd_error(ctx, SNAPD_ERR_GENERIC,
			    "snapshot-start: the process that connected (pid "
			    "%d) has exited or is not visible to snapd: %s",
			    (int)c->pid, strerror(ESRCH));
			return -1;
		}
		if ((req->pidfd = fcntl(c->pidfd, F_DUPFD_CLOEXEC, 0)) == -1) {
			cmd_error(ctx, SNAPD_ERR_GENERIC,
			    "snapshot-start: duplicate the pidfd of pid %d: %s",
			    (int)c->pid, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Which arguments go with which way: attach ("pid", no "uffd") takes no
 * "regions"; the uffd way needs "uffd" and "regions" and takes
 * no "maps".  -1 with ctx's error set.
 */
static int
start_check_shape(struct cmd_ctx *ctx, int attach)
{
	const char *bad = NULL;
	static const char *const not_incr[] = { "uffd", "regions", "maps",
	    "wait-arm", "prearm" };

	if (json_object_get(ctx->args, "parent") != NULL) {
		for (size_t i = 0; i < sizeof(not_incr) / sizeof(*not_incr);
		    i++)
			if (json_object_get(ctx->args, not_incr[i]) != NULL) {
				cmd_error(ctx, SNAPD_ERR_INVALID,
				    "snapshot-start: '%s' does not go with "
				    "'parent': an incremental snapshot takes "
				    "its parent's regions and tracking",
				    not_incr[i]);
				return -1;
			}
		return 0;
	}
	if (attach) {
		if (json_object_get(ctx->args, "regions") != NULL)
			bad = "'regions' does not go with attach (pid without "
			    "uffd): use 'maps'";
	} else if (json_object_get(ctx->args, "wait-arm") != NULL)
		bad = "'wait-arm' goes only with attach (pid without uffd)";
	else if (json_object_get(ctx->args, "uffd") == NULL)
		bad = "'uffd' is required (or 'pid' alone, to attach)";
	else if (json_object_get(ctx->args, "regions") == NULL)
		bad = "'regions' is required with 'uffd'";
	else if (json_object_get(ctx->args, "maps") != NULL)
		bad = "'maps' goes only with attach (pid without uffd)";
	if (bad == NULL)
		return 0;
	cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: %s", bad);
	return -1;
}

/* The directory start_prepare() opened, if it opened one. */
static void
start_close_dir(struct snapshot_request *req)
{
	if (req->dirfd != -1) {
		close(req->dirfd);
		req->dirfd = -1;
	}
}

/*
 * Name, options, limits, destination and pidfd, for every way.  The
 * destination is a directory (req->dirfd, its path in dir) or an S3 object
 * (s3dest.h: req->s3 points into d, req->dirfd is -1, dir is its
 * s3://BUCKET/PREFIX).  0 with req->pidfd open, or -1 with ctx's error set
 * and nothing left open.
 */
static int
start_prepare(struct cmd_ctx *ctx, const struct config *conf,
    struct snapshot_request *req, char *name, size_t namelen, char *dir,
    size_t dirlen, struct s3dest *d)
{
	int to;

	req->dirfd = -1;
	if (start_parse_name(ctx, req, name, namelen) == -1)
		return -1;
	req->name = name;
	if (start_parse_options(ctx, conf, req) == -1 ||
	    start_check_limits(ctx, conf) == -1)
		return -1;
	if ((to = s3dest_parse(ctx, conf, req, d)) == -1)
		return -1;
	if (to == 1) {
		if (s3dest_name(ctx, d, name, dir, dirlen) == -1)
			return -1;
		req->s3 = &d->s3;
	} else if ((req->dirfd = start_prepare_dir(ctx, conf, name, dir,
	    dirlen)) == -1)
		return -1;
	if (start_open_pidfd(ctx, req) == -1) {
		start_close_dir(req);
		return -1;
	}
	return 0;
}

/*
 * Attach, incremental ("parent"): the parent must track process pid for
 * this peer and lie in the directory the new one goes to; req->parent_id
 * set.  The tracking itself is taken once the process is stopped
 * (attaching.c).  -1 with ctx's error set and req's descriptors closed.
 */
static int
start_attach_parent(struct cmd_ctx *ctx, struct snapshot_request *req,
    const char *dir)
{
	json_int_t		 id = json_integer_value(json_object_get(
				    ctx->args, "parent"));
	struct snap_entry	*p;
	char			 err[512];

	if ((p = chain_parent((uint64_t)id, ctx->conn->uid, req->pid, err,
	    sizeof(err))) == NULL)
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: %s", err);
	else if (strcmp(dir, p->dir) != 0)
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: an "
		    "incremental snapshot is written beside its parent, in %s, "
		    "not in %s: give the parent's subdir", p->dir, dir);
	else {
		req->parent_id = p->id;
		return 0;
	}
	close(req->pidfd);
	start_close_dir(req);
	return -1;
}

/* Attach: the process is stopped and its uffd made by snapd (attach.h). */
static enum cmd_retval
cmd_snapshot_start_attach(struct cmd_ctx *ctx, const struct config *conf,
    struct snapshot_request *req, struct s3dest *d)
{
	const char	*maps = json_string_value(json_object_get(ctx->args,
			    "maps"));
	json_int_t	 pid = json_integer_value(json_object_get(ctx->args,
			    "pid"));
	int		 wait_arm = json_is_true(json_object_get(ctx->args,
			    "wait-arm"));
	char		 name[SNAPD_NAME_MAX + 1], dir[PATH_MAX], err[512];

	if (maps != NULL && mapsel_filter_check(maps, err, sizeof(err)) == -1)
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: %s",
		    err);
	if (wait_arm && json_is_false(json_object_get(ctx->args, "prearm")))
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
		    "'wait-arm' is a pre-arm: it does not go with \"prearm\": "
		    "false");
	/* Without it, pages the process never touched read back wrong. */
	if (!(snapshot_kernel_features() & UFFD_FEATURE_WP_UNPOPULATED))
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-start: "
		    "attach needs the kernel's UFFD_FEATURE_WP_UNPOPULATED "
		    "(Linux 6.4), which this kernel lacks");
	for (struct snap_entry *e = NULL; (e = snapshots_next(e)) != NULL;) {
		if (!e->done && e->pid == pid)
			return cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: "
			    "process %d already has snapshot %llu running, and "
			    "one memory cannot be write-protected by two "
			    "snapshots: wait for it to finish", (int)pid,
			    (unsigned long long)e->id);
		/* Its memory stays registered with the tracker's uffd. */
		if (e->tracker != NULL && tracker_pid(e->tracker) == pid &&
		    json_object_get(ctx->args, "parent") == NULL)
			return cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: "
			    "snapshot %llu tracks the writes of process %d, "
			    "whose memory cannot be registered by a second "
			    "userfaultfd: take an incremental snapshot from it "
			    "(\"parent\"), or end its tracking with "
			    "snapshot-cancel first", (unsigned long long)e->id,
			    (int)pid);
	}
	if (json_object_get(ctx->args, "parent") != NULL)
		req->track = 1;		/* unless "track" is false */
	if (start_prepare(ctx, conf, req, name, sizeof(name), dir,
	    sizeof(dir), d) == -1)
		return CMD_ERROR;
	if (json_object_get(ctx->args, "parent") != NULL &&
	    start_attach_parent(ctx, req, dir) == -1)
		return CMD_ERROR;
	if (attaching_start(req, dir, maps, wait_arm ? 1 :
	    json_object_get(ctx->args, "prearm") != NULL ? req->prearm : -1,
	    wait_arm, ctx->conn->id, ctx->id, err, sizeof(err)) == -1)
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "%s", err);
	return CMD_DEFER;
}

/*
 * Incremental: "parent" names a completed snapshot whose tracker follows
 * the process's writes (chain.h); the new snapshot takes its regions and
 * its tracking, is written beside it, and keeps tracking unless "track" is
 * false.  The peer holds the process still until the armed reply, as for
 * any snapshot.
 */
static enum cmd_retval
cmd_snapshot_start_incr(struct cmd_ctx *ctx, const struct config *conf,
    struct snapshot_request *req, struct s3dest *d)
{
	json_int_t		 id = json_integer_value(json_object_get(
				    ctx->args, "parent"));
	struct snap_entry	*p;
	struct track_state	*st;
	struct zsnap_parent	 link;
	char			 name[SNAPD_NAME_MAX + 1], dir[PATH_MAX];
	char			 err[512];

	if (id <= 0)
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
		    "parent must be the id of a completed snapshot");
	req->track = 1;
	if (start_prepare(ctx, conf, req, name, sizeof(name), dir,
	    sizeof(dir), d) == -1)
		return CMD_ERROR;
	if ((p = chain_parent((uint64_t)id, ctx->conn->uid, req->pid, err,
	    sizeof(err))) == NULL) {
		close(req->pidfd);
		start_close_dir(req);
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: %s",
		    err);
	}
	if (strcmp(dir, p->dir) != 0) {
		close(req->pidfd);
		start_close_dir(req);
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: an "
		    "incremental snapshot is written beside its parent, in %s, "
		    "not in %s: give the parent's subdir", p->dir, dir);
	}
	if ((st = chain_take(p, &link, err, sizeof(err))) == NULL) {
		close(req->pidfd);
		start_close_dir(req);
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-start: %s",
		    err);
	}
	req->regions = p->regions;
	req->region_count = p->nregions;
	req->incr = st;
	req->parent = &link;
	req->parent_id = p->id;
	req->uffd = -1;
	if (report_start(req, dir, ctx->conn->id, ctx->id, err,
	    sizeof(err)) == NULL) {
		chain_give_back(p, st);
		start_close_dir(req);
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "%s", err);
	}
	start_close_dir(req);
	return CMD_DEFER;
}

/* The uffd way: the peer made the userfaultfd and names its regions. */
static enum cmd_retval
cmd_snapshot_start_uffd(struct cmd_ctx *ctx, const struct config *conf,
    struct snapshot_request *req, struct s3dest *d)
{
	struct output_region	 regions[SNAPD_REGIONS_MAX];
	struct conn		*c = ctx->conn;
	const char		*uffd_name;
	char			 name[SNAPD_NAME_MAX + 1], dir[PATH_MAX];
	char			 err[512];
	int			 nregions;

	if (start_uffd_check(ctx, &uffd_name) == -1)
		return CMD_ERROR;
	nregions = start_regions(ctx, json_object_get(ctx->args, "regions"),
	    regions);
	if (nregions == -1)
		return CMD_ERROR;
	req->regions = regions;
	req->region_count = (uint32_t)nregions;
	if (start_prepare(ctx, conf, req, name, sizeof(name), dir,
	    sizeof(dir), d) == -1)
		return CMD_ERROR;
	if (start_regions_mapped(ctx, req->pid, req->pidfd, regions,
	    nregions) == -1) {
		close(req->pidfd);
		start_close_dir(req);
		return CMD_ERROR;
	}

	/* From here the engine owns the uffd and the pidfd, whatever happens. */
	req->uffd = control_fd_take(c, uffd_name);
	if (report_start(req, dir, c->id, ctx->id, err,
	    sizeof(err)) == NULL) {
		start_close_dir(req);
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "%s", err);
	}
	start_close_dir(req);
	return CMD_DEFER;
}

static enum cmd_retval
cmd_snapshot_start_exec(struct cmd_ctx *ctx)
{
	const struct config	*conf = config_get();
	struct snapshot_request	 req;
	struct s3dest		 d;
	enum cmd_retval		 rv;
	int			 attach = start_is_attach(ctx);

	start_request_init(&req, conf, ctx->conn);
	if (start_check_shape(ctx, attach) == -1)
		return CMD_ERROR;
	memset(&d, 0, sizeof(d));
	if (attach)
		rv = cmd_snapshot_start_attach(ctx, conf, &req, &d);
	else if (json_object_get(ctx->args, "parent") != NULL)
		rv = cmd_snapshot_start_incr(ctx, conf, &req, &d);
	else
		rv = cmd_snapshot_start_uffd(ctx, conf, &req, &d);
	s3dest_forget(&d);	/* the engine (or the attach) has a copy */
	return rv;
}

const struct cmd_entry cmd_snapshot_start_entry = {
	.name = "snapshot-start",
	.args = CMD_ARGS(
	    { "uffd", CMD_ARG_STRING, 0 },
	    { "regions", CMD_ARG_ARRAY, 0 },
	    { "maps", CMD_ARG_STRING, 0 },
	    { "name", CMD_ARG_STRING, 0 },
	    { "subdir", CMD_ARG_STRING, 0 },
	    { "format", CMD_ARG_STRING, 0 },
	    { "level", CMD_ARG_INT, 0 },
	    { "buffer-size", CMD_ARG_INT, 0 },
	    { "max-bandwidth", CMD_ARG_INT, 0 },
	    { "pid", CMD_ARG_INT, 0 },
	    { "prearm", CMD_ARG_BOOL, 0 },
	    { "track", CMD_ARG_BOOL, 0 },
	    { "parent", CMD_ARG_INT, 0 },
	    { "wait-arm", CMD_ARG_BOOL, 0 },
	    { "to", CMD_ARG_STRING, 0 },
	    { "test-hold", CMD_ARG_OBJECT, 0 }),
	.exec = cmd_snapshot_start_exec,
};
