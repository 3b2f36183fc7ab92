/*
 * Snapshot output: the one interface the writer thread saves pages through,
 * whatever the format (zsnap or raw) and wherever the bytes go.
 *
 * Only the snapshot's writer thread calls these functions, so an output
 * needs no lock.  Every function returns 0 on success, or -1 with errno set
 * and a message naming what failed in output_error() ("write
 * /var/lib/memsnap/snapshots/x.zsnap.tmp: No space left on device").
 *
 * Atomicity: output_open() creates a temporary name (".NAME.zsnap.tmp-PID"
 * style, openat + O_EXCL + O_NOFOLLOW, mode 0600 by default) inside dirfd;
 * only output_finish() writes index and footer, fsyncs file and directory
 * and renames the result to its final name, refusing to replace an
 * existing one.  output_close() frees the output and, unless
 * output_finish() succeeded, removes the temporary file(s): it is called
 * exactly once for every output, on every path.
 */
#ifndef SNAPD_OUTPUT_H
#define SNAPD_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zsnap.h"

enum output_format {
	OUTPUT_ZSNAP = 0,
	OUTPUT_RAW,
};

struct sink;

struct output_region {
	uint64_t	start;
	uint64_t	length;			/* multiple of ZSNAP_PAGE_SIZE */
	char		name[ZSNAP_NAME_MAX];	/* NUL-terminated */
	uint32_t	flags;			/* OUTPUT_REGION_* */
};

/*
 * Copied whole while the process is stopped, not saved live: not
 * registered with the uffd nor write-protected (the engine's stopped.c).
 * The output treats it as any region; the flag is not stored.
 */
#define OUTPUT_REGION_STOPPED	0x1

struct output_params {
	int			 dirfd;		/* directory the file is created in */
	const char		*name;		/* final name without suffix; checked by the caller */
	enum output_format	 format;
	int			 level;		/* zstd level, 1..19 */
	int			 threads;	/* zstd worker threads, 0 = none */
	int			 hurry_level;	/* output_set_hurry()'s level, 0 = none */
	uid_t			 owner_uid;	/* chown the file to this uid/gid ... */
	gid_t			 owner_gid;	/* ... (both -1: leave as created) */
	mode_t			 mode;		/* file mode, e.g. 0600 */
	const struct output_region *regions;
	uint32_t		 region_count;
	pid_t			 pid;
	uid_t			 uid;
	const char		*comm;
	uint64_t		 armed_realtime_ns;
	/*
	 * The process record (proto/procrec.h), encoded, or NULL/0 for none:
	 * zsnap writes it as the process frame, raw as "process.rec".
	 * Copied by output_open().
	 */
	const uint8_t		*procrec;
	size_t			 procrec_len;
	/*
	 * An incremental snapshot (zsnap only; raw refuses it with EINVAL):
	 * the link to its parent (whole_count must equal parent->whole_count,
	 * at most ZSNAP_WHOLE_MAX) and the ranges saved whole, written as the
	 * parent frame; NULL for a full snapshot.  Copied by output_open().
	 */
	const struct zsnap_parent *parent;
	const struct zsnap_whole *whole;
	/*
	 * Where the bytes go instead of a new file in dirfd (zsnap only; raw
	 * refuses one with EINVAL): an open sink, an S3 upload (sink.h).
	 * Borrowed: the output writes and finishes it, and aborts it if it
	 * is closed unfinished, but never frees it; result->path is then
	 * its URL.  NULL: a file sink in dirfd.
	 */
	struct sink		*sink;
};

struct output_result {
	uint64_t	bytes;			/* size of the file(s) on disk */
	uint64_t	pages_total;
	uint64_t	pages_data;
	uint64_t	pages_zero;
	uint64_t	pages_lost;
	uint64_t	pages_parent;		/* incremental: unchanged pages */
	uint32_t	index_crc;		/* zsnap: the crc32c ending the index
						 * payload (a child's parent link) */
	char		path[4096];		/* final path, relative to dirfd,
						 * or the sink's URL */
};

struct output;

struct output	*output_open(const struct output_params *params);
/* On failure output_open() returns NULL; this tells why. */
const char	*output_open_error(void);

/*
 * Save npages contiguous pages of one region starting at page index first,
 * from data (npages * ZSNAP_PAGE_SIZE bytes, read only during the call).
 * Zero pages are detected here and stored as ZERO extents.  Pages may come
 * in any order; each page must be given exactly once (the caller's page
 * states guarantee it).
 */
int		 output_pages(struct output *out, uint32_t region, uint64_t first,
		    uint32_t npages, const void *data);

/*
 * Incremental snapshots: record npages pages as unchanged since the parent
 * (PARENT extents).  Refused (EINVAL) when the output has no parent.
 */
int		 output_unchanged(struct output *out, uint32_t region,
		    uint64_t first, uint64_t npages);

/* Record npages pages the process discarded before they could be saved. */
int		 output_lost(struct output *out, uint32_t region, uint64_t first,
		    uint64_t npages);

/*
 * Under pressure (the page buffer filling faster than it drains), compress
 * what comes next at a fast level instead of the configured one, until
 * called again with 0.  Formats without compression ignore it.
 */
void		 output_set_hurry(struct output *out, int hurry);
/* Chunks compressed in a hurry so far. */
uint64_t	 output_hurried(const struct output *out);

/* Bytes written to the file so far (for progress figures). */
uint64_t	 output_bytes(const struct output *out);

int		 output_finish(struct output *out, struct output_result *result);
void		 output_close(struct output *out);
const char	*output_error(const struct output *out);

#endif /* SNAPD_OUTPUT_H */
