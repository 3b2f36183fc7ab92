/*
 * libsnapclient: hand a process's memory to snapd for a live snapshot, and
 * read snapshots back.
 *
 * A process links this library to snapshot its own memory while it keeps
 * running:
 *
 *	struct snap_client *c = snap_connect(NULL);	// $SNAPD_SOCKET or default
 *	struct snap_region r = { .start = base, .length = len, .name = "heap" };
 *	uint64_t id;
 *	// ... stop writing to the regions (the application's own barrier) ...
 *	snap_start(c, &r, 1, NULL, &id);	// returns once armed
 *	// ... resume: from here on writes are trapped and copied first ...
 *	struct snap_result res;
 *	snap_wait(c, id, &res, -1);
 *	snap_close(c);
 *
 * The library creates the userfaultfd itself (userfaultfd(2), or
 * /dev/userfaultfd when the syscall is refused), hands it to snapd and keeps
 * no copy of it, so if snapd dies the kernel drops every protection and the
 * process is never left blocked.
 *
 * Every function returns 0 (or a valid pointer) on success and -1 (or NULL)
 * on failure with errno set; snap_strerror() then gives a message saying
 * what failed and why.  The library never exits or prints.  A snap_client is
 * not thread-safe: use one per thread, or lock around it.
 */
#ifndef SNAPCLIENT_H
#define SNAPCLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNAP_NAME_MAX	64

struct snap_client;

struct snap_region {
	uint64_t	 start;		/* page-aligned address in this process */
	uint64_t	 length;	/* multiple of the page size */
	const char	*name;		/* [A-Za-z0-9._-], or NULL for "rN" */
};

struct snap_options {
	const char	*name;		/* snapshot name, NULL for the default */
	const char	*format;	/* "zsnap" or "raw", NULL for the default */
	int		 level;		/* zstd level, 0 for the default */
	uint64_t	 buffer_size;	/* bytes, 0 for the default */
	int		 prearm;	/* 1: protect while running; see snap_arm() */
	const char	*test_hold;	/* test hook only: the "test-hold" JSON
					 * object; snapd refuses it unless
					 * started with SNAPD_TEST_HOOKS=1 */
};

struct snap_result {
	uint64_t	id;
	int		completed;	/* 1 completed, 0 failed or cancelled */
	char		name[SNAP_NAME_MAX];
	char		file[4096];	/* path of the finished snapshot, or
					 * "s3://BUCKET/KEY" for one snapd
					 * wrote to S3 (snap_file_open()
					 * reads either) */
	char		error[512];	/* why, when not completed */
	uint64_t	size;		/* bytes written (the file's or the
					 * object's size) */
	uint64_t	pages;
	uint64_t	pages_faulted;	/* copied on the fault path */
	uint64_t	pages_zero;
	uint64_t	pages_lost;
	uint64_t	buffer_full_waits;
	uint64_t	buffer_peak;	/* bytes */
	uint64_t	stall_max_us;
	uint64_t	arm_us;		/* the pause to arm */
	uint64_t	duration_us;
};

/* Connect and negotiate; path NULL means $SNAPD_SOCKET or the default. */
struct snap_client *snap_connect(const char *path);
void		 snap_close(struct snap_client *c);

/* Message for the last failure on c (or the last snap_connect/file call
 * of this thread when c is NULL). */
const char	*snap_strerror(struct snap_client *c);

/*
 * Snapshot regions of this process.  Returns once snapd has armed them: that
 * instant is the snapshot's point in time.  The caller must make sure no
 * thread writes the regions between calling snap_start() and its return.
 */
int		 snap_start(struct snap_client *c, const struct snap_region *regions,
		    size_t nregions, const struct snap_options *opts, uint64_t *id);

/*
 * snap_start() with a destination: to is "disk" (snapd's snapshot
 * directory), "s3" (the S3 URL snapd is configured with, s3_url), or
 * "s3://BUCKET/PREFIX" (a peer running as root only); NULL is snapd's
 * default (its "destination" setting).  A snapshot that goes to S3 is
 * streamed there as it is taken; its snap_result's file is then
 * "s3://BUCKET/KEY".  (Since LIBSNAPCLIENT_0.4.)
 */
int		 snap_start_to(struct snap_client *c,
		    const struct snap_region *regions, size_t nregions,
		    const struct snap_options *opts, const char *to,
		    uint64_t *id);

/*
 * Incremental snapshots.  snap_start_tracked() is snap_start() that also
 * asks snapd to keep tracking which pages this process writes once the
 * snapshot completes (each first write to a page after the snapshot's
 * point in time costs one round trip to snapd, as a write during a
 * snapshot does).  snap_start_incremental() then takes a snapshot of the
 * same regions that saves only the pages written since parent's point in
 * time, with the same guarantees (the caller stops writing until it
 * returns, as for snap_start()); its file names parent's, which must stay
 * beside it.  It keeps tracking, so another incremental can follow it.
 * snap_cancel() on a completed snapshot that tracks ends the tracking.
 */
int		 snap_start_tracked(struct snap_client *c,
		    const struct snap_region *regions, size_t nregions,
		    const struct snap_options *opts, uint64_t *id);
int		 snap_start_incremental(struct snap_client *c, uint64_t parent,
		    const struct snap_options *opts, uint64_t *id);

/*
 * Pre-arm: with opts->prearm set, snap_start() returns once snapd has
 * write-protected the regions while this process keeps running (the
 * threads may write; each first write costs a round trip to snapd).  Then
 * stop the writers and call snap_arm(): it returns once snapd has protected
 * again the pages written meanwhile, which is the point in time and the
 * whole pause.  Closing the client before snap_arm() cancels the snapshot.
 */
int		 snap_arm(struct snap_client *c, uint64_t id);

/* Wait up to timeout_ms (-1: forever) for snapshot id to finish.  Returns 0
 * when it finished (res->completed says how), -1 with errno ETIMEDOUT if
 * it is still running, -1 on other errors. */
int		 snap_wait(struct snap_client *c, uint64_t id, struct snap_result *res,
		    int timeout_ms);

int		 snap_cancel(struct snap_client *c, uint64_t id);

/*
 * Send one raw command (a JSON object as text) and return the reply line
 * (malloc'ed, caller frees), skipping and discarding events.  For memsnapctl.
 */
char		*snap_command(struct snap_client *c, const char *json);
/* Next event line (malloc'ed) or NULL on timeout (errno ETIMEDOUT) / error. */
char		*snap_next_event(struct snap_client *c, int timeout_ms);
int		 snap_fd(const struct snap_client *c);

/* ---- reading snapshots (zsnap files or raw directories) ---------------- */

/*
 * snap_file_open() takes a path, or "s3://BUCKET/KEY" for a zsnap file
 * stored in S3 (Ceph RGW or any S3 service): every snap_file_* call then
 * reads it with ranged GETs, guided by its index, through a small
 * read-ahead cache (opening costs a HEAD and two GETs, a sequential walk
 * a GET per 4 MiB).  The S3 settings are the s3_* keys of the file
 * $SNAP_S3_CONFIG names, else of /etc/memsnap/snapd.conf (snapd.conf(5):
 * s3_endpoint, s3_region, s3_addressing, s3_timeout, s3_retries,
 * s3_credentials); the credentials file must belong to the caller's uid
 * and be readable by it alone (0600 or 0400).  An incremental snapshot's
 * parents are the objects beside it (same bucket and key prefix).  Raw
 * snapshots (directories) are not read from S3.
 */

struct snap_file;
struct procrec;		/* <procrec.h>, installed beside this file */

struct snap_file_region {
	uint64_t	start;
	uint64_t	length;
	char		name[SNAP_NAME_MAX];
};

#define SNAP_FILE_NAME_MAX	256	/* a chain link's file name, NUL included */

/*
 * What a snapshot file says of itself.  The members from pages_parent on
 * came with incremental snapshots (zsnap 1.2, symbol version
 * LIBSNAPCLIENT_0.3): a program built against the older, shorter struct
 * links to the snap_file_info() that fills only the members it knows.
 */
struct snap_file_info {
	int		format;		/* 0 zsnap, 1 raw */
	unsigned	version_major, version_minor;
	char		name[SNAP_NAME_MAX];
	uint32_t	pid, uid;
	char		comm[16];
	uint64_t	armed_realtime_ns;
	uint32_t	region_count;
	uint64_t	chunk_count;
	uint64_t	pages_total, pages_data, pages_zero, pages_lost;
	uint64_t	file_size;

	/* Incremental snapshots (all zero for a full one). */
	uint64_t	pages_parent;	/* unchanged since the parent: this
					 * file holds them as PARENT pages */
	int		incremental;	/* 1: this file has a parent */
	uint32_t	depth;		/* links from this file to the base */
	uint32_t	whole_count;	/* ranges saved whole: snap_file_whole() */
	uint32_t	index_crc;	/* zsnap: the crc32c ending the index,
					 * what a child's link records */
	char		parent_name[SNAP_NAME_MAX];	/* the parent's name */
	char		parent_file[SNAP_FILE_NAME_MAX]; /* its file, in the
					 * same directory */
	uint64_t	parent_armed_realtime_ns;
	uint32_t	parent_index_crc;
};

struct snap_file *snap_file_open(const char *path);
void		 snap_file_close(struct snap_file *f);
int		 snap_file_info(struct snap_file *f, struct snap_file_info *info);
int		 snap_file_region(struct snap_file *f, uint32_t index,
		    struct snap_file_region *region);

/*
 * Incremental snapshots.  A file with a parent stores only what changed
 * since it; its other pages are the parent's, found by file name in the
 * same directory and checked (name, armed time, index crc, region table,
 * depth), down to a full snapshot, the base.  Verify, restore, read and
 * export follow the chain themselves and refuse a broken one, saying which
 * link and why ("chain link b.zsnap -> a.zsnap: a.zsnap is missing").
 *
 * snap_file_chain_info(): the info of link n of f's chain: 0 is f itself,
 * 1 its parent, ... info->depth (of link 0) is the base.  Opens and checks
 * the links up to n.
 */
int		 snap_file_chain_info(struct snap_file *f, uint32_t n,
		    struct snap_file_info *info);

/* A range of pages an incremental snapshot saved whole, and why. */
struct snap_file_whole {
	uint32_t	region;
	uint32_t	reason;		/* 1 discarded, 2 unmapped, 3 moved,
					 * 4 untracked */
	uint64_t	first_page;
	uint64_t	page_count;
};

/* Whole range index (below info.whole_count) of f itself. */
int		 snap_file_whole(struct snap_file *f, uint32_t index,
		    struct snap_file_whole *whole);
/* "discarded", "unmapped", "moved", "untracked", or "unknown". */
const char	*snap_whole_reason_name(uint32_t reason);

/* Check every checksum and that every page is covered exactly once; for
 * an incremental snapshot, the same for every file of its chain, and every
 * link.  Returns 0 if good; -1 with a message in snap_strerror(NULL)
 * saying what is wrong and where. */
int		 snap_file_verify(struct snap_file *f);

/* Write the snapshot as a raw directory (one sparse file per region): an
 * incremental one as its memory was at its own armed instant. */
int		 snap_file_export_raw(struct snap_file *f, const char *dir);

/*
 * Fold f's chain into one full zsnap file at path (no parent, depth 0):
 * the memory of f's snapshot, every page from the link of its chain that
 * holds it (LOST pages stay LOST, ZERO stay ZERO), with f's header
 * (name, pid, uid, comm, armed time) and process record.  Atomic: written
 * under a temporary name beside path, fsynced, renamed into place without
 * replacing an existing file (EEXIST), the directory fsynced; on failure
 * nothing is left.  The chain's files are not touched.  Memory stays at a
 * chunk or two, whatever the snapshot's size.
 */
int		 snap_file_merge(struct snap_file *f, const char *path);

/* Copy region `index` of the snapshot into memory at addr (len bytes, at
 * least the region's length); LOST pages are left untouched and counted. */
int		 snap_file_restore(struct snap_file *f, uint32_t index, void *addr,
		    size_t len, uint64_t *pages_lost);

/*
 * Read pages [first_page, first_page + npages) of region `region` into buf
 * (npages pages): ZERO and LOST pages are zero-filled, LOST ones counted
 * in *lost (if not NULL).  Checks coverage first, as restore does.
 */
int		 snap_file_read(struct snap_file *f, uint32_t region,
		    uint64_t first_page, uint64_t npages, void *buf,
		    uint64_t *lost);

/*
 * The process record of a snapshot taken by attach (<procrec.h>): threads
 * and their registers, every mapping and what became of it, the auxv.
 * Returns 1 with rec filled (free it with procrec_free()), 0 if the
 * snapshot has none (rec zeroed), -1 if it is corrupt or cannot be read.
 */
int		 snap_file_process(struct snap_file *f, struct procrec *rec);

/*
 * Lazy restore: register region `index`'s memory with a userfaultfd
 * (missing-page mode) and return at once; a handler thread fills each page
 * from the snapshot when it is first touched, and sweeps the rest in the
 * background (unless SNAP_LAZY_NO_SWEEP) so the region becomes whole
 * without touches.  addr NULL: the call maps private anonymous memory of
 * the region's length (snap_lazy_addr() gives it; it is the caller's, to
 * munmap, after snap_lazy_close()); otherwise addr must be page-aligned
 * private anonymous memory of at least the region's length, whose content
 * is discarded.  ZERO and LOST pages read as zeros (LOST ones counted).
 * f belongs to the handler until snap_lazy_close(): do not use it meanwhile.
 * zsnap files only (a raw region file is mmap-able as it is).
 */
#define SNAP_LAZY_NO_SWEEP	0x1	/* no background sweep: pages come with
					 * touches (and their chunks), the rest
					 * at snap_lazy_close() */

struct snap_lazy;

struct snap_lazy_stats {
	uint64_t	pages;		/* the region's */
	uint64_t	pages_present;	/* filled so far, all of them when complete */
	uint64_t	pages_faulted;	/* filled because a thread touched them */
	uint64_t	pages_swept;	/* filled before a touch: the sweep, the
					 * rest of a chunk a fault read, close */
	uint64_t	pages_lost;	/* LOST in the snapshot: read as zeros */
	uint64_t	faults;		/* fault messages the handler read */
	uint64_t	faults_raced;	/* of them, for a page already present */
	uint64_t	chunks_read;	/* chunks decompressed (cache misses) */
	int		complete;	/* every page present, handler gone */
	int		failed;		/* the handler stopped on an error */
};

struct snap_lazy *snap_file_restore_lazy(struct snap_file *f, uint32_t index,
		    void *addr, size_t len, unsigned flags);
void		*snap_lazy_addr(const struct snap_lazy *l);
/* Wait up to timeout_ms (-1: forever) until every page is present: 0, or
 * -1 with ETIMEDOUT, or -1 with the handler's error if it failed.  With
 * SNAP_LAZY_NO_SWEEP only touches fill pages: give it a timeout. */
int		 snap_lazy_wait(struct snap_lazy *l, int timeout_ms);
int		 snap_lazy_stats(struct snap_lazy *l, struct snap_lazy_stats *st);
/* Fill every page not yet present, then unregister and free l; the final
 * figures into st (if not NULL).  -1 if the handler failed (l is freed). */
int		 snap_lazy_close(struct snap_lazy *l, struct snap_lazy_stats *st);

/* Convenience: open path, restore the region named region_name into addr. */
int		 snap_restore(const char *path, const char *region_name, void *addr,
		    size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SNAPCLIENT_H */
