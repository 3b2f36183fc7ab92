/*
 * The zsnap format's one writer (proto/zsnap.h, proto/FORMAT.md): the
 * header frame with the process and parent frames, chunk assembly (extent
 * lists, a run continuing the last extent of its kind extends it, the DATA
 * pages' zstd frame with its content checksum and data_crc), the index and
 * the footer.  snapd's zsnap output (daemon/format/output-zsnap.c) and the
 * reader's merge of an incremental chain (snap_file_merge(),
 * client/lib/reader-merge.c) both encode through it, so the two cannot
 * drift apart.
 *
 * The writer only encodes; the caller owns the rest:
 *
 *	bytes		every byte goes through the write callback, in file
 *			order, at the end of the file (a sink, a file);
 *			the writer counts them to fill in offsets
 *	chunks		struct zsnapw_chunk is the caller's: it fills one
 *			with zsnapw_chunk_add() and zsnapw_chunk_page(),
 *			compresses it with zsnapw_compress() on whatever
 *			thread it likes (snapd's compression threads), and
 *			hands it to zsnapw_chunk_write() in sequence order
 *	atomicity	the temporary name, fsync and rename
 *
 * Functions return 0, or -1 with errno set and a message in
 * zsnapw_error() naming what failed ("snapshot x: compress chunk 3: ...").
 * Nothing here logs or exits: the daemon and the client library both link
 * it.  A struct zsnapw is used by one thread at a time; a chunk by one
 * thread at a time, which may be another.
 */
#ifndef SNAPD_ZSNAPWRITE_H
#define SNAPD_ZSNAPWRITE_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "zsnap.h"

#define ZSNAPW_CHUNK_PAGES	256	/* 1 MiB of page data per chunk */
#define ZSNAPW_CHUNK_EXTENTS	1024
#define ZSNAPW_ERROR_MAX	512

/* zsnapw_chunk_add() and zsnapw_chunk_page(): write the chunk, retry. */
#define ZSNAPW_FULL		1

/*
 * Write len bytes at the end of the file: all of them, or -1 with errno
 * set and a message in err (errlen bytes).
 */
typedef int zsnapw_write_fn(void *arg, const void *buf, size_t len, char *err,
    size_t errlen);

struct zsnapw_region {
	uint64_t	 start;
	uint64_t	 length;	/* multiple of ZSNAP_PAGE_SIZE */
	const char	*name;		/* truncated to ZSNAP_NAME_MAX - 1 */
};

/* What the header, process and parent frames say. */
struct zsnapw_header {
	const char		*name;		/* the snapshot's */
	uint32_t		 pid;
	uint32_t		 uid;
	const char		*comm;
	uint64_t		 armed_realtime_ns;
	const struct zsnapw_region *regions;
	uint32_t		 region_count;
	const uint8_t		*procrec;	/* encoded, or NULL: no frame */
	size_t			 procrec_len;
	/* Incremental: the link (whole_count <= ZSNAP_WHOLE_MAX ranges in
	 * whole), host order; NULL for a full snapshot. */
	const struct zsnap_parent *parent;
	const struct zsnap_whole *whole;
};

/* The footer's page counts (PARENT pages are the rest of pages_total). */
struct zsnapw_counts {
	uint64_t	pages_total;
	uint64_t	pages_data;
	uint64_t	pages_zero;
	uint64_t	pages_lost;
};

/* One chunk being filled, compressed or written; host order. */
struct zsnapw_chunk {
	unsigned char		*data;		/* ZSNAPW_CHUNK_PAGES pages */
	uint32_t		 data_pages;
	struct zsnap_extent	 extents[ZSNAPW_CHUNK_EXTENTS];
	uint32_t		 extent_count;
	int			 last_of_kind[4];	/* extent by kind, -1 */
	unsigned char		*frame;		/* compressed page data */
	size_t			 frame_cap;
	size_t			 frame_size;
	uint32_t		 data_crc;
	int			 level;		/* zstd level to compress at */
	const char		*zstd_error;	/* set if compression failed */
};

struct zsnapw {
	zsnapw_write_fn		*write;
	void			*arg;
	const char		*name;		/* for messages */
	uint64_t		 offset;	/* bytes written */
	struct zsnap_index_entry *index;	/* one per chunk, host order */
	uint64_t		 index_count;
	uint64_t		 index_cap;
	char			 error[ZSNAPW_ERROR_MAX];
	unsigned char		 chunk_buf[ZSNAP_SKIP_HDR_SIZE +
				    sizeof(struct zsnap_chunk) +
				    ZSNAPW_CHUNK_EXTENTS *
				    sizeof(struct zsnap_extent) + 4];
};

/* name (kept, not copied) names the snapshot in messages. */
void		 zsnapw_init(struct zsnapw *w, const char *name,
		    zsnapw_write_fn *write, void *arg);
void		 zsnapw_free(struct zsnapw *w);
const char	*zsnapw_error(const struct zsnapw *w);
/* Bytes written so far. */
uint64_t	 zsnapw_bytes(const struct zsnapw *w);

/* The header frame, then the process and parent frames if any. */
int		 zsnapw_header(struct zsnapw *w, const struct zsnapw_header *h);

/* Allocate a chunk's buffers (ENOMEM: -1, message in err), emptied. */
int		 zsnapw_chunk_init(struct zsnapw_chunk *c, char *err,
		    size_t errlen);
void		 zsnapw_chunk_free(struct zsnapw_chunk *c);
void		 zsnapw_chunk_reset(struct zsnapw_chunk *c);

/*
 * Record count pages of a kind that takes no data (ZERO, LOST, PARENT),
 * or, with zsnapw_chunk_page(), one DATA page copied from page.  A run
 * continuing the last extent of its kind extends it.  ZSNAPW_FULL when
 * the chunk cannot take it: write the chunk, reset it, call again.
 */
int		 zsnapw_chunk_add(struct zsnapw_chunk *c, uint32_t region,
		    uint32_t kind, uint64_t first, uint64_t count);
int		 zsnapw_chunk_page(struct zsnapw_chunk *c, uint32_t region,
		    uint64_t first, const void *page);

/*
 * A compression context set up as every zsnap data frame needs (content
 * checksum and size) at level; NULL with the message in err.
 */
ZSTD_CCtx	*zsnapw_cctx_new(int level, char *err, size_t errlen);

/*
 * Compress c's DATA pages at c->level with cctx, whose level now is
 * *cctx_level (kept in step), and compute data_crc.  Any thread; a
 * failure is left in c->zstd_error for zsnapw_chunk_write() to report.
 */
void		 zsnapw_compress(ZSTD_CCtx *cctx, int *cctx_level,
		    struct zsnapw_chunk *c);

/* Write a compressed chunk, next in sequence, and index it. */
int		 zsnapw_chunk_write(struct zsnapw *w, const struct zsnapw_chunk *c);

/*
 * The index and the footer: the file is complete.  *index_crc gets the
 * crc32c ending the index payload (a child's parent link records it).
 */
int		 zsnapw_finish(struct zsnapw *w, const struct zsnapw_counts *n,
		    uint32_t *index_crc);

#endif /* SNAPD_ZSNAPWRITE_H */
