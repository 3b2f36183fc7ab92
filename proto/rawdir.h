/*
 * The raw snapshot format's one writer (proto/FORMAT.md, "raw"): a
 * directory NAME holding one sparse file "R.img" per region,
 * "snapshot.json" and, for a snapshot taken by attach, "process.rec".  snapd's raw output (daemon/format/output-raw.c) and the
 * reader's export (snap_file_export_raw(), client/lib/reader-restore.c)
 * both write through it, so the two cannot drift apart.
 *
 * Atomicity: rawdir_open() creates ".NAME.tmp-PID" in parentfd (mkdirat,
 * mode 0700) and the region files in it (openat O_EXCL | O_NOFOLLOW, the
 * given mode, each exactly as long as its region); rawdir_commit() fsyncs
 * every file, writes and fsyncs snapshot.json last, fsyncs the directory,
 * renames it to NAME without replacing anything (renameat2
 * RENAME_NOREPLACE) and fsyncs parentfd, so a directory without
 * snapshot.json or under a temporary name is never a snapshot.
 *
 * Raw is positional, not a stream: pages arrive in any order and land at
 * their offsets with pwrite(2), zero pages left as holes.  That is why it
 * does not sit behind the daemon's byte-stream sink (daemon/format/sink.h).
 *
 * Functions return 0, or -1 with errno set and a message in rawdir_error()
 * naming what failed ("write .x.raw.tmp-42/0.img: No space left on
 * device").  Nothing here logs or exits: the daemon and the client library
 * both link it.  A rawdir is used by one thread at a time.
 */
#ifndef SNAPD_RAWDIR_H
#define SNAPD_RAWDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RAWDIR_ERROR_MAX	512

struct rawdir;

struct rawdir_region {
	uint64_t	 start;
	uint64_t	 length;	/* multiple of ZSNAP_PAGE_SIZE */
	const char	*name;
};

/* What snapshot.json says besides the regions and their lost runs. */
struct rawdir_info {
	const char	*name;
	int64_t		 pid;
	int64_t		 uid;
	const char	*comm;
	uint64_t	 armed_realtime_ns;
	uint64_t	 pages_total;
	uint64_t	 pages_data;
	uint64_t	 pages_zero;
	uint64_t	 pages_lost;	/* non-zero sets ZSNAP_F_LOST_PAGES */
};

/*
 * Start the directory NAME (no '/') in parentfd, which is duplicated: the
 * caller keeps its own.  Files get mode and, unless both are -1, are
 * chowned to uid:gid, as is the directory.  The regions are copied.  On
 * failure returns NULL with errno set and a message in err; nothing is
 * left behind.
 */
struct rawdir	*rawdir_open(int parentfd, const char *name, mode_t mode,
		    uid_t uid, gid_t gid, const struct rawdir_region *regions,
		    uint32_t count, char *err, size_t errlen);

/*
 * Write npages pages of region, page first onwards, from data: one pwrite
 * per run of non-zero pages, zero pages (zsnap_page_is_zero()) left as
 * holes.  If zero is not NULL, *zero is set to the zero pages skipped.
 */
int		 rawdir_pages(struct rawdir *rd, uint32_t region, uint64_t first,
		    uint64_t npages, const void *data, uint64_t *zero);

/*
 * Write the process record (proto/procrec.h, encoded) as "process.rec",
 * fsynced, at most once; snapshot.json then gets flag ZSNAP_F_PROCESS.
 */
int		 rawdir_process(struct rawdir *rd, const void *rec, size_t len);

/* Record npages LOST pages (any order; snapshot.json lists them sorted,
 * adjacent runs merged). */
int		 rawdir_lost(struct rawdir *rd, uint32_t region, uint64_t first,
		    uint64_t npages);

/* Write snapshot.json and put the directory in place (see above). */
int		 rawdir_commit(struct rawdir *rd, const struct rawdir_info *info);

/*
 * Remove the temporary directory and what is in it, unless committed.
 * Goes on past a failure; -1 with the first failure in rawdir_error().
 */
int		 rawdir_abort(struct rawdir *rd);

/* Free; aborts (quietly) unless committed or already aborted. */
void		 rawdir_free(struct rawdir *rd);

/* Bytes written so far: page data and snapshot.json. */
uint64_t	 rawdir_bytes(const struct rawdir *rd);
/* The final name, relative to parentfd. */
const char	*rawdir_name(const struct rawdir *rd);
const char	*rawdir_error(const struct rawdir *rd);

#endif /* SNAPD_RAWDIR_H */
