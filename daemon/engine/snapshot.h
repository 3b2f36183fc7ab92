/*
 * The snapshot engine: one live snapshot of one process, from the handed-over
 * userfaultfd to a complete file.
 *
 * The control side (main thread, libevent) calls snapshot_start() and gets
 * its callback, always on the main thread, when the snapshot is armed, when
 * its buffer fills (rate-limited), and once when it is done (completed,
 * failed or cancelled).  Everything between runs on the snapshot's own two
 * threads, the fault thread and the writer thread (snapshot.c says which
 * function runs where).  snapshot_stats() may be called from any thread at
 * any time: its figures are atomics.
 *
 * The caller must have called evthread_use_pthreads() before creating the
 * event base.
 */
#ifndef SNAPD_SNAPSHOT_H
#define SNAPD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "output.h"
#include "s3.h"

struct event_base;
struct snapshot;
struct track_state;
struct tracker;
struct zsnap_parent;

/*
 * Test hooks (snapd(8), TEST HOOKS): hold a snapshot's writer at one point
 * of its life until a condition is met, so that a test can create a
 * condition (a full buffer, snapshots overlapping, a kill mid-sweep)
 * instead of hoping timing produces it.  Accepted only from a snapd started
 * with SNAPD_TEST_HOOKS=1.  Every hold also ends on cancel, failure, the
 * process's exit, or after SNAPSHOT_HOLD_MAX_MS.
 */
enum snapshot_hold {
	SNAPSHOT_HOLD_NONE = 0,
	SNAPSHOT_HOLD_BUFFER_FULL,	/* until a fault waited for a free slot */
	SNAPSHOT_HOLD_RUNNING,		/* until hold_count snapshots ran at once */
	SNAPSHOT_HOLD_CANCEL,		/* until cancelled */
	SNAPSHOT_HOLD_DISCARD,		/* until the process discarded, unmapped
					 * or moved memory; drains meanwhile */
	SNAPSHOT_HOLD_RELEASE,		/* until snapshot_test_release(); drains
					 * meanwhile */
};
#define SNAPSHOT_HOLD_MAX_MS	120000

/*
 * The nice value of a snapshot's writer, its compression threads and its
 * sink once it is armed (writer.c): below the process being snapshotted,
 * whose writes the fault thread (nice 0) serves.
 */
#define SNAPSHOT_WRITER_NICE	10

/* Where the writer holds. */
enum snapshot_hold_at {
	SNAPSHOT_HOLD_AT_ARMED = 0,	/* output open, before any drain or sweep */
	SNAPSHOT_HOLD_AT_ARMING,	/* protected, before the armed instant */
	SNAPSHOT_HOLD_AT_HALF,		/* half of the pages saved */
	SNAPSHOT_HOLD_AT_FINISHING,	/* every page saved, before the index */
	SNAPSHOT_HOLD_AT_DONE,		/* final state set, main thread not told;
					 * only the condition ends this hold */
};

/* What to do when the process discards pages that were not yet saved. */
enum discard_policy {
	DISCARD_RECORD = 0,	/* save them as LOST extents; the snapshot says so */
	DISCARD_FAIL,		/* fail the snapshot */
};

/*
 * A snapshot that goes to S3 rather than to a file (upload.c): one object,
 * uploaded as a multipart upload while the snapshot runs (sink.h).  The
 * writer thread checks that no object has the key and starts the upload
 * before it arms, so that wrong credentials, a missing bucket or an
 * unreachable service fail the start with nothing armed.
 */
struct snapshot_s3 {
	struct s3_config	conf;		/* with the credentials */
	char			bucket[S3_BUCKET_MAX + 1];
	char			key[S3_KEY_MAX + 1];	/* PREFIX/NAME.zsnap */
	uint64_t		part_size;
	int			parts_in_flight;
};

/*
 * The largest snapshot an upload in parts of part_size can hold, and the
 * most a snapshot of region_bytes can take (zstd's worst case on
 * incompressible pages, the format's frames and index): region_bytes plus
 * 1 % plus 1 MiB.  A start whose worst case exceeds the largest is
 * refused.
 */
#define SNAPSHOT_S3_LARGEST(part_size)	((part_size) * S3_PARTS_MAX)
#define SNAPSHOT_S3_WORST(region_bytes)					\
	((region_bytes) + (region_bytes) / 100 + (1ULL << 20))

/*
 * 1 while a snapshot of this process uploads to KEY in BUCKET: from just
 * before its multipart upload starts until it is completed or aborted.
 * The start-up cleanup (s3cleanup.c) leaves such uploads alone.  Any
 * thread.
 */
int	snapshot_s3_live(const char *bucket, const char *key);

struct snapshot_request {
	uint64_t		 id;		/* for log lines and events */
	int			 uffd;		/* taken over by snapshot_start(), even on failure */
	pid_t			 pid;		/* the process whose mm the uffd belongs to */
	int			 pidfd;		/* a pidfd of pid (taken over), or -1 to open one */
	uid_t			 uid;		/* the peer that asked */
	const struct output_region *regions;	/* copied */
	uint32_t		 region_count;
	/*
	 * The process record (proto/procrec.h, encoded) for the snapshot's
	 * file, or NULL/0; copied.  Regions with OUTPUT_REGION_STOPPED are
	 * copied whole at the armed instant (the caller keeps the process
	 * stopped until SNAPSHOT_EV_ARMED): refused with prearm, or when
	 * they are larger than buffer_size.
	 */
	const uint8_t		*procrec;
	size_t			 procrec_len;
	int			 dirfd;		/* borrowed: the engine dups it;
						 * -1 with s3 */
	/*
	 * NULL: the snapshot is a file in dirfd.  Else its S3 object
	 * (copied): zsnap only, neither tracked nor incremental, and its
	 * regions must fit (SNAPSHOT_S3_WORST) or the start is refused.
	 */
	const struct snapshot_s3 *s3;
	const char		*name;		/* checked name, without suffix */
	enum output_format	 format;
	int			 level;
	int			 threads;
	int			 pressure_level;	/* zstd level under buffer pressure, 0: none */
	size_t			 buffer_size;	/* bytes of page buffer, >= one page */
	uint64_t		 max_bandwidth;	/* page bytes/s to the output, 0: no
						 * limit (ratelimit.h) */
	mode_t			 mode;
	uid_t			 owner_uid;	/* file owner, -1 to leave as created */
	gid_t			 owner_gid;
	enum discard_policy	 on_discard;
	int			 prearm;	/* protect while the process runs; snapshot_arm() */
	/*
	 * Incremental snapshots (track.h).  track: keep tracking the
	 * process's writes once this snapshot completes (its tracker is then
	 * snapshot_take_tracker()'s), so that an incremental snapshot may
	 * follow; zsnap only.  Regions copied while stopped are not tracked:
	 * every snapshot of a chain copies them whole.  incr: this snapshot is
	 * incremental: the tracking state of its parent (tracker_stop()),
	 * whose uffd, descriptors and dirty pages it takes over once it has
	 * started (if snapshot_start() returns NULL the caller still owns
	 * it); regions must be the parent's; no pre-arm.  parent: the link
	 * written into the file (incr only); copied.
	 */
	int			 track;
	struct track_state	*incr;
	const struct zsnap_parent *parent;
	uint64_t		 parent_id;	/* incr: the parent's id (the
						 * caller's records; unused) */
	enum snapshot_hold	 hold;		/* test hook, normally NONE */
	enum snapshot_hold_at	 hold_at;
	unsigned		 hold_count;	/* SNAPSHOT_HOLD_RUNNING */
};

enum snapshot_state {
	SNAPSHOT_ARMING = 0,
	SNAPSHOT_PREARMED,	/* protected while running; waits for snapshot_arm() */
	SNAPSHOT_RUNNING,	/* armed; pages are being saved */
	SNAPSHOT_FINISHING,	/* every page saved; index, fsync, rename */
	SNAPSHOT_COMPLETED,
	SNAPSHOT_FAILED,
	SNAPSHOT_CANCELLED,
};

/*
 * A histogram of durations in microseconds with fixed buckets, powers of 4
 * from 10 us to 10.49 s: bucket i < SNAPSHOT_HIST_BOUNDS counts the values
 * at most snapshot_hist_bound_us(i) (and above the bound before it), the
 * last bucket those above every bound.  Its size is fixed, so nothing a
 * client does can grow it.  Plain fields: whoever owns one guards it
 * (snapshot_stats() fills a copy; the engine keeps its own in atomics).
 */
#define SNAPSHOT_HIST_BOUNDS	11

struct snapshot_hist {
	uint64_t	count[SNAPSHOT_HIST_BOUNDS + 1];
	uint64_t	sum_us;		/* of every value counted */
};

static inline uint64_t
snapshot_hist_bound_us(unsigned i)
{
	return 10ULL << (2 * i);
}

/* The bucket a value of us microseconds falls in. */
static inline unsigned
snapshot_hist_bucket(uint64_t us)
{
	unsigned i = 0;

	while (i < SNAPSHOT_HIST_BOUNDS && us > snapshot_hist_bound_us(i))
		i++;
	return i;
}

static inline void
snapshot_hist_add(struct snapshot_hist *h, uint64_t us)
{
	h->count[snapshot_hist_bucket(us)]++;
	h->sum_us += us;
}

/* Add every count of h into into. */
static inline void
snapshot_hist_merge(struct snapshot_hist *into, const struct snapshot_hist *h)
{
	for (unsigned i = 0; i <= SNAPSHOT_HIST_BOUNDS; i++)
		into->count[i] += h->count[i];
	into->sum_us += h->sum_us;
}

/* Saved-whole ranges of an incremental snapshot that its figures list. */
#define SNAPSHOT_WHOLE_REPORT	16

enum snapshot_event {
	SNAPSHOT_EV_PREARMED,
	SNAPSHOT_EV_ARMED,
	SNAPSHOT_EV_BUFFER_FULL,
	SNAPSHOT_EV_DONE,	/* state is COMPLETED, FAILED or CANCELLED */
};

struct snapshot_stats {
	enum snapshot_state state;
	uint64_t	pages_total;
	uint64_t	pages_saved;		/* by either path */
	uint64_t	pages_faulted;		/* copied on the fault path */
	uint64_t	pages_swept;		/* read by the writer's sweep */
	uint64_t	huge_faulted;		/* huge pages copied whole on faults */
	uint64_t	huge_swept;		/* huge pages the sweep saved whole */
	uint64_t	pages_zero;
	uint64_t	pages_lost;
	uint64_t	buffer_size;		/* bytes */
	uint64_t	buffer_used;		/* bytes now */
	uint64_t	buffer_peak;		/* bytes, highest seen */
	uint64_t	buffer_full_waits;	/* faults that waited for a free slot */
	uint64_t	stall_max_ns;		/* longest a fault was held by us */
	struct snapshot_hist stall_hist;	/* every fault copied: how long
						 * it was held, in us (fault.c) */
	uint64_t	bytes_written;
	uint64_t	arm_ns;			/* the application's pause to arm */
	uint64_t	prearm_ns;		/* pre-arm: protecting while it ran */
	uint64_t	prearm_pages;		/* pre-arm: pages written meanwhile, re-protected */
	uint64_t	duration_ns;		/* armed to done */
	uint64_t	armed_realtime_ns;
	uint64_t	file_size;		/* when completed */
	/* Incremental snapshots. */
	int		incremental;		/* saved only what changed */
	uint64_t	pages_parent;		/* unchanged since the parent */
	uint64_t	pages_dirty;		/* written since the parent */
	uint32_t	index_crc;		/* when completed: a child's link */
	uint32_t	whole_count;		/* ranges saved whole, and the first: */
	struct snapshot_whole {
		uint32_t	region;
		uint32_t	reason;		/* enum zsnap_whole_reason */
		uint64_t	first_page;
		uint64_t	page_count;
	}		whole[SNAPSHOT_WHOLE_REPORT];
	/* An S3 destination's upload (sink_s3_stats()), zero for a file. */
	struct snapshot_upload {
		uint64_t	parts;		/* parts uploaded */
		uint64_t	bytes;		/* bytes of them */
		uint64_t	retries;	/* tries beyond the first */
		uint64_t	waits;		/* writes that waited for a part buffer */
		uint64_t	memory;		/* part buffers, at most (sink_s3_memory()) */
	}		upload;
	int		to_s3;
	char		path[4096];		/* final path (relative to dirfd), or
						 * s3://BUCKET/KEY, when completed */
	char		error[512];		/* why, when failed or cancelled */
};

typedef void snapshot_cb(struct snapshot *snap, enum snapshot_event ev,
    void *arg);

/*
 * Start a snapshot.  Returns at once; arming happens on the snapshot's
 * thread and is reported by SNAPSHOT_EV_ARMED, or by SNAPSHOT_EV_DONE with
 * state FAILED if it could not arm (then nothing stays write-protected).
 * Returns NULL with errno set only if the snapshot could not even be set up
 * (no threads, no memory) or the request is refused (EINVAL: stopped
 * regions with prearm, or larger than the buffer); req->uffd is closed
 * then, and snapshot_start_error() says why.
 */
struct snapshot	*snapshot_start(struct event_base *base,
		    const struct snapshot_request *req, snapshot_cb *cb, void *arg);
/* Why the last snapshot_start() of this thread returned NULL. */
const char	*snapshot_start_error(void);

/*
 * Pre-arm (req->prearm): snapshot_start() write-protects the regions while
 * the process keeps running and reports SNAPSHOT_EV_PREARMED; pages the
 * process writes meanwhile are un-protected and noted.  The caller then
 * stops the process and calls snapshot_arm(): only the noted pages are
 * protected again, which is the whole pause, and SNAPSHOT_EV_ARMED (the
 * point in time) follows.  Returns -1 with errno EINVAL if the snapshot is
 * not pre-armed and waiting, EALREADY if arming was already asked.
 */
int		 snapshot_arm(struct snapshot *snap);

/*
 * Pre-arm: replace the process record (req->procrec) before
 * snapshot_arm(), when it describes the process at the armed instant
 * (attach stops the process again to arm it).  -1 with errno EALREADY
 * once arming was asked, ENOMEM.
 */
int		 snapshot_set_procrec(struct snapshot *snap, const uint8_t *rec,
		    size_t len);

/* Test hook: end a SNAPSHOT_HOLD_RELEASE hold (any thread). */
void		 snapshot_test_release(struct snapshot *snap);

/* Ask a running snapshot to stop; SNAPSHOT_EV_DONE (CANCELLED) follows. */
void		 snapshot_cancel(struct snapshot *snap, const char *why);

void		 snapshot_stats(struct snapshot *snap, struct snapshot_stats *st);
uint64_t	 snapshot_id(const struct snapshot *snap);

/*
 * After SNAPSHOT_EV_DONE of a snapshot that tracks (req.track): the tracker
 * now serving the process's writes, or NULL (tracking ended, or was lost).
 * For a completed snapshot it follows the writes since its armed instant;
 * for a failed incremental one, since its parent's (the pages the failed
 * one would have saved are still dirty), so the parent can be tried again.
 * The caller owns it (tracker_free()).
 */
struct tracker	*snapshot_take_tracker(struct snapshot *snap);

/* Free a snapshot after its SNAPSHOT_EV_DONE callback (may be called from it). */
void		 snapshot_free(struct snapshot *snap);

/* The userfaultfd features snapd will ask for, probed once at start-up. */
int		 snapshot_probe_kernel(char *why, size_t whylen);
uint64_t	 snapshot_kernel_features(void);

const char	*snapshot_state_name(enum snapshot_state state);

/* The most snapshots that were armed and not yet done at one time. */
unsigned	 snapshot_running_peak(void);

#endif /* SNAPD_SNAPSHOT_H */
