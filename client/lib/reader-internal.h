/*
 * The snapshot reader's internals (not installed), shared by its files:
 *
 *	reader.c		opening a zsnap file (footer, header, process
 *				and parent frames, index),
 *				snap_file_open/close/info/region
 *	reader-chunk.c		its chunks: metadata, extents, page data
 *				decompressed and checked, the region walk
 *	reader-raw.c		the same for a NAME.raw directory
 *	reader-verify.c		the coverage check (every page of every region
 *				covered exactly once) and snap_file_verify()
 *	reader-restore.c	snap_file_restore(), snap_restore(),
 *				snap_file_read(), snap_file_export_raw()
 *	reader-process.c	the process record: snap_file_process()
 *	reader-chain.c		incremental snapshots: opening and checking
 *				the chain of parents, and the walk that
 *				hands out every page from the link holding
 *				it (restore, read and export go through it)
 *	reader-lazy.c		snap_file_restore_lazy(): pages filled on first
 *				touch through a userfaultfd, and a sweep
 *	reader-lazy-index.c	its page index: where each page's bytes are,
 *				down an incremental chain (reader-lazy.h)
 *	reader-merge.c		snap_file_merge(): a chain folded into one
 *				full zsnap file, through proto/zsnapwrite.c
 *	reader-s3.c		a zsnap file in S3 (s3://BUCKET/KEY): its
 *				reads as ranged GETs, through a read-ahead
 *				cache
 *
 * The input is hostile (see reader.c's opening comment): what a file claims
 * is checked before it sizes an allocation or a loop, and every cost is
 * bounded by the bytes the file really holds, never by the pages it claims.
 * A struct snap_file is used by one thread at a time; nothing is locked.
 */
#ifndef SNAPCLIENT_READER_INTERNAL_H
#define SNAPCLIENT_READER_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "snapclient.h"
#include "zsnap.h"

/* Sanity caps: larger values are refused before anything is allocated. */
#define READER_REGIONS_MAX		65536
#define READER_REGION_BYTES_MAX		(1ull << 56)
#define READER_INDEX_BYTES_MAX		(1ull << 30)
#define READER_CHUNK_EXTENTS_MAX	65536
#define READER_CHUNK_DATA_PAGES_MAX	16384		/* 64 MiB */
#define READER_JSON_BYTES_MAX		(16u << 20)
#define READER_RAW_BATCH_PAGES		256
/* A process record: what its bounds allow is far less (proto/procrec.h). */
#define READER_PROCESS_BYTES_MAX	(256u << 20)
/*
 * The longest chain of incremental snapshots followed (links from a file
 * to its base).  Every link is an open file: a chain longer than the fd
 * limit fails with EMFILE, saying so.
 */
#define READER_CHAIN_MAX		4096

#define ALL_REGIONS			UINT32_MAX
#define NO_CHUNK			UINT64_MAX

struct reader_extent {
	uint32_t	region;
	uint32_t	kind;
	uint64_t	first;
	uint64_t	count;
};

struct reader_range {
	uint64_t	first;
	uint64_t	count;
};

struct reader_s3;

struct snap_file {
	int			 format;	/* 0 zsnap, 1 raw */
	int			 fd;		/* the file, or the raw directory;
						 * -1 for an object in S3 */
	struct reader_s3	*s3;		/* an object in S3, or NULL */
	char			 path[PATH_MAX];
	struct snap_file_info	 info;
	struct snap_file_region	*regions;
	uint64_t		*region_pages;
	uint32_t		 flags;
	int			 covered;	/* the coverage check passed */
	int			 process;	/* has a process record */
	char			 raw_name[ZSNAP_NAME_MAX]; /* the header's
						 * name, as on disk */
	uint32_t		 index_crc;	/* the crc ending the index */

	/*
	 * Incremental (a zsnap file with ZSNAP_F_PARENT and a parent frame):
	 * the link, host order, its file NUL-terminated; the whole ranges.
	 * The parent is opened and checked by reader_chain_open() and owned
	 * by this file (closed with it); dirfd is the directory the whole
	 * chain is opened in (the first file's only, -1 elsewhere).
	 */
	int			 has_parent;
	struct zsnap_parent	 link;
	struct zsnap_whole	*whole;
	struct snap_file	*parent;
	int			 chain_open;	/* every link opened, checked */
	int			 dirfd;

	/* zsnap */
	uint64_t		 header_end;	/* and of the process frame */
	uint64_t		 process_off;	/* its payload */
	uint32_t		 process_len;
	uint64_t		 index_offset;
	struct zsnap_index_entry *index;	/* host order */
	ZSTD_DCtx		*dctx;
	unsigned char		*payload;	/* one chunk's metadata */
	size_t			 payload_cap;
	struct reader_extent	*extents;
	size_t			 extents_cap;
	unsigned char		*frame;		/* one chunk's zstd frame */
	size_t			 frame_cap;
	unsigned char		*data;		/* its pages, decompressed */
	size_t			 data_cap;

	/* raw */
	struct reader_range	**lost;		/* per region, sorted */
	size_t			*lost_count;
};

/* A chunk's header, decoded and checked. */
struct reader_chunk {
	uint64_t	index;
	uint64_t	offset;
	uint32_t	extent_count;
	uint32_t	data_pages;
	uint32_t	data_frame_size;
	uint32_t	data_crc;
};

/*
 * Called for each extent a walk hands out: chunk is the zsnap chunk holding
 * it (NO_CHUNK for a raw snapshot), data its pages for a DATA extent, else
 * NULL.  Returning -1 (with the message set) stops the walk.
 */
typedef int reader_cb(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *x, const unsigned char *data);

/* Set the thread's message to "PATH: ..." and errno to err. */
void	reader_error(struct snap_file *f, int err, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Grow *buf to at least need bytes; -1 (ENOMEM) with the message set. */
int	reader_reserve(struct snap_file *f, void **buf, size_t *cap,
	    size_t need);
/* Read exactly len bytes of fd at off; what names them in a message. */
int	reader_pread(struct snap_file *f, int fd, void *buf, size_t len,
	    uint64_t off, const char *what);
/*
 * Read exactly len bytes of zsnap file f at off, wherever it is: every
 * read of a zsnap file goes through here (pread(2) on f->fd, or ranged
 * GETs of the object for one in S3).
 */
int	reader_read(struct snap_file *f, void *buf, size_t len, uint64_t off,
	    const char *what);

/* Read zsnap chunk i's extent list into f->extents, checked. */
int	reader_zsnap_chunk_load(struct snap_file *f, uint64_t i,
	    struct reader_chunk *c);

/* Decompress and check chunk c's page data (c loaded just before) into
 * f->data; reader-lazy.c takes the buffer over. */
int	reader_zsnap_chunk_data(struct snap_file *f, const struct reader_chunk *c);

/*
 * Hand every extent of region (or of ALL_REGIONS) to cb, with the page data
 * of DATA extents; all_data: decompress and check every chunk's data even
 * where no extent of it is wanted (verify).
 */
int	reader_walk(struct snap_file *f, uint32_t region, int all_data,
	    reader_cb *cb, void *arg);
/*
 * The same for pages [first, first + count) of one region: only extents
 * overlapping them are handed to cb, and only chunks holding such an
 * extent are decompressed (raw: only those pages are read), so reading a
 * large region a range at a time does not decompress it once per range.
 */
int	reader_walk_pages(struct snap_file *f, uint32_t region, uint64_t first,
	    uint64_t count, reader_cb *cb, void *arg);

/*
 * Open the zsnap file or raw directory name in dirfd (AT_FDCWD for a
 * path), called path in messages; nofollow: refuse a symbolic link and
 * anything but a regular file (a parent in a chain).
 */
struct snap_file *reader_open_at(int dirfd, const char *name, const char *path,
	    int nofollow);

/* A zeroed struct snap_file for path, no file open; NULL with the message set. */
struct snap_file *reader_alloc(const char *path);
/*
 * Open f as a zsnap file (footer, header, frames, index, all checked):
 * f->info.file_size and what reader_read() reads from are set.
 */
int	reader_zsnap_open(struct snap_file *f);

/*
 * reader-s3.c: open the zsnap object url ("s3://BUCKET/KEY") with the
 * caller's S3 settings; sibling, when not NULL, is the child (itself in
 * S3) whose chain this object is a link of, and lends it its client.
 */
struct snap_file *reader_s3_open(const char *url,
	    const struct snap_file *sibling);
int	reader_s3_read(struct snap_file *f, void *buf, size_t len,
	    uint64_t off, const char *what);
/* Free its cached windows (reader_drop_buffers); nothing if not in S3. */
void	reader_s3_drop_cache(struct snap_file *f);
/* Free f->s3 and release its client (snap_file_close). */
void	reader_s3_close(struct snap_file *f);

/*
 * Free the buffers and the decompression context a walk of f grew (up to
 * a chunk's data, compressed and not): they come back when next needed.
 * A chain keeps every link open, so each parent drops them once walked,
 * and a deep chain costs its files' indexes, not a megabyte or two a link.
 */
void	reader_drop_buffers(struct snap_file *f);

/*
 * reader-restore.c: open the directory of path (what the export and the
 * merge create) and point *base at its last component, copied into buf
 * (len bytes), trailing slashes dropped; the fd, or -1 with the message
 * set ("WHAT: open directory DIR: ...").
 */
int	reader_target_dir(struct snap_file *f, const char *path,
	    const char *what, char *buf, size_t len, const char **base);

/* reader-raw.c */
int	reader_raw_open(struct snap_file *f);
int	reader_raw_walk(struct snap_file *f, uint32_t region, uint64_t first,
	    uint64_t count, reader_cb *cb, void *arg);

/*
 * reader-process.c: the process record's bytes (f->process set), checked
 * with procrec_decode(), into a malloc'ed *buf of *len bytes; 0, or -1
 * with the message set.
 */
int	reader_process_load(struct snap_file *f, uint8_t **buf, size_t *len);

/*
 * reader-verify.c: the coverage check fed by a pass over the chunks the
 * caller makes anyway (verify's data walk, a lazy restore's index), so
 * the file is not read once more for it: every extent, in chunk order, to
 * reader_cover_add(), then reader_cover_check() (which sets f->covered);
 * the caller frees runs.
 */
struct reader_cover_run {
	uint64_t	first;
	uint64_t	count;
	uint32_t	region;
};
struct reader_cover {
	struct reader_cover_run	*runs;
	size_t			 n;
	size_t			 cap;
};
int	reader_cover_add(struct snap_file *f, struct reader_cover *c,
	    const struct reader_extent *e);
int	reader_cover_check(struct snap_file *f, struct reader_cover *c);

/*
 * reader-verify.c: prove that every page of every region is covered by
 * exactly one extent; 0, or -1 with a message naming the region, the page
 * and the chunks.  Reads the chunks' metadata only.  Remembered in
 * f->covered, so restoring region after region checks once.
 */
int	reader_check_coverage(struct snap_file *f);

/*
 * reader-verify.c: verify one file, not its chain (snap_file_verify() does
 * both): coverage, every chunk's data, the counts, the process record.
 */
int	reader_verify_one(struct snap_file *f);

/*
 * reader-chain.c: open and check every link from f to its base, once
 * (nothing for a full snapshot).  0, or -1 with a message naming the link
 * ("chain link b.zsnap -> a.zsnap: a.zsnap is missing").
 */
int	reader_chain_open(struct snap_file *f);

/*
 * The thread's message, about child's parent (its own path first), becomes
 * top's: "TOP: chain link CHILD -> PARENT: <message>"; errno is kept.
 */
void	reader_chain_blame(struct snap_file *top, const struct snap_file *child);

/*
 * Called with every page of what a chain walk was asked for, exactly once,
 * as the snapshot held it: kind DATA (data its pages), ZERO or LOST, from
 * whichever link of the chain holds it (never PARENT).  -1 stops the walk.
 */
typedef int reader_apply(struct snap_file *f, void *arg, uint32_t region,
    uint64_t first, uint64_t count, uint32_t kind, const unsigned char *data);

/*
 * Hand pages [first, first + count) of region (or every page of every
 * region, with ALL_REGIONS, first 0 and count UINT64_MAX) to apply: f's
 * own extents, and for its PARENT pages its parent's, down the chain.
 * Each link's coverage is checked before it is used.
 */
int	reader_chain_walk(struct snap_file *f, uint32_t region, uint64_t first,
	    uint64_t count, reader_apply *apply, void *arg);

#endif /* SNAPCLIENT_READER_INTERNAL_H */
