/*
 * The zsnap on-disk snapshot format, version 1.
 *
 * Both sides include this file: one writer encodes it (proto/zsnapwrite.c,
 * which snapd's daemon/format/output-zsnap.c and the reader's merge call),
 * libsnapclient and memsnapctl read it (client/lib/reader*.c).  Nothing else
 * defines it.  proto/FORMAT.md is the prose description a stranger can
 * implement a reader from.
 *
 * STORED ON DISK: never renumber a constant, never reorder or resize a field.
 * A change that old readers cannot skip bumps ZSNAP_VERSION_MAJOR; a change
 * they can skip (a new flag bit, a new extent kind they reject cleanly)
 * bumps ZSNAP_VERSION_MINOR.
 *
 * A zsnap file is a sequence of zstd frames, so the stock `zstd -t` checks
 * every compressed frame and skips our metadata:
 *
 *	header frame	skippable frame, magic ZSNAP_FRAME_HEADER
 *	process frame	skippable frame ZSNAP_FRAME_PROCESS, only when the
 *			header has ZSNAP_F_PROCESS (since version 1.1): the
 *			process record of proto/procrec.h, whose own last
 *			four bytes are its crc32c as in every payload
 *	parent frame	skippable frame ZSNAP_FRAME_PARENT, only when the
 *			header has ZSNAP_F_PARENT (since version 1.2): an
 *			incremental snapshot's link to its parent, and the
 *			ranges it saved whole because tracking was lost
 *	chunk 0		skippable frame ZSNAP_FRAME_CHUNK (extent list),
 *			then one zstd frame holding the chunk's DATA pages
 *			(absent when the chunk has no DATA extent)
 *	chunk 1 ...
 *	index frame	skippable frame ZSNAP_FRAME_INDEX
 *	footer frame	skippable frame ZSNAP_FRAME_FOOTER, fixed size, last
 *
 * A skippable frame is: le32 magic, le32 payload size, payload.  All integers
 * in payloads are little-endian.  Every payload ends with a le32 CRC-32C
 * (Castagnoli, proto/crc32c.h) of all payload bytes before it.  Every
 * chunk's uncompressed page data is covered by data_crc in its header, and
 * the zstd frame carries zstd's own content checksum as well.
 *
 * A reader starts at the footer (the last ZSNAP_FOOTER_FRAME_SIZE bytes),
 * checks it, reads the index it points to, and from the index finds every
 * chunk.  A file without a valid footer is not a snapshot: snapd writes the
 * footer last and renames the file into place only after fsync, so a
 * partial file never carries one.
 */
#ifndef SNAPD_ZSNAP_H
#define SNAPD_ZSNAP_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#define ZSNAP_VERSION_MAJOR	1
#define ZSNAP_VERSION_MINOR	2	/* 1.1: the process frame;
					 * 1.2: incremental (parent frame,
					 * PARENT extents) */

#define ZSNAP_PAGE_SIZE		4096u

/* zstd skippable frame magics are 0x184D2A50 to 0x184D2A5F. */
#define ZSNAP_FRAME_HEADER	0x184D2A50u
#define ZSNAP_FRAME_CHUNK	0x184D2A51u
#define ZSNAP_FRAME_INDEX	0x184D2A52u
#define ZSNAP_FRAME_FOOTER	0x184D2A53u
#define ZSNAP_FRAME_PROCESS	0x184D2A54u	/* proto/procrec.h, since 1.1 */
#define ZSNAP_FRAME_PARENT	0x184D2A55u	/* struct zsnap_parent, since 1.2 */
#define ZSTD_FRAME_MAGIC	0xFD2FB528u	/* a regular zstd frame */

#define ZSNAP_MAGIC		"ZSNAP\0v1"	/* 8 bytes, header */
#define ZSNAP_FOOTER_MAGIC	"ZSNAPEND"	/* 8 bytes, footer */

#define ZSNAP_NAME_MAX		64	/* region and snapshot names, NUL padded */

/* Header flags. */
#define ZSNAP_F_LOST_PAGES	0x1	/* some pages could not be saved (LOST extents) */
#define ZSNAP_F_PROCESS		0x2	/* a process record follows the header
					 * (zsnap), or "process.rec" is in the
					 * directory (raw); since 1.1 */
#define ZSNAP_F_PARENT		0x4	/* incremental: a parent frame follows
					 * the header (after the process
					 * frame); zsnap only; since 1.2 */

/*
 * Header payload: struct zsnap_header, then region_count struct
 * zsnap_region, then le32 crc32c.
 */
struct zsnap_header {
	char		magic[8];		/* ZSNAP_MAGIC */
	uint16_t	version_major;
	uint16_t	version_minor;
	uint32_t	page_size;		/* ZSNAP_PAGE_SIZE */
	uint32_t	region_count;
	uint32_t	flags;			/* ZSNAP_F_* known at start */
	uint64_t	armed_realtime_ns;	/* CLOCK_REALTIME at the armed instant */
	uint32_t	pid;			/* the snapshotted process */
	uint32_t	uid;			/* the peer that asked for it */
	char		comm[16];		/* its /proc/pid/comm */
	char		name[ZSNAP_NAME_MAX];	/* the snapshot's name */
	uint64_t	reserved[4];		/* zero */
};

struct zsnap_region {
	uint64_t	start;			/* virtual address in the process */
	uint64_t	length;			/* bytes, a multiple of page_size */
	char		name[ZSNAP_NAME_MAX];
};

/*
 * Chunk payload: struct zsnap_chunk, then extent_count struct zsnap_extent,
 * then le32 crc32c.  The DATA extents' pages, in extent order, are the
 * content of the zstd frame that follows (data_pages * page_size bytes).
 * Extents of one chunk may be in any order and any region (pages copied on
 * the fault path arrive out of order), but across the whole file every page
 * of every region is covered by exactly one extent.
 */
struct zsnap_chunk {
	uint32_t	seq;			/* 0, 1, 2 ... in file order */
	uint32_t	extent_count;
	uint32_t	data_pages;		/* sum of DATA extents' page_count */
	uint32_t	data_frame_size;	/* bytes of the zstd frame that follows, 0 if none */
	uint32_t	data_crc;		/* crc32c of the uncompressed page data */
	uint32_t	reserved;		/* zero */
};

enum zsnap_extent_kind {
	ZSNAP_EXTENT_DATA = 0,	/* pages stored in the chunk's zstd frame */
	ZSNAP_EXTENT_ZERO = 1,	/* pages that were all zero (or never populated) */
	ZSNAP_EXTENT_LOST = 2,	/* discarded by the process before they were saved */
	ZSNAP_EXTENT_PARENT = 3,	/* unchanged since the parent's armed
					 * instant: the parent's pages (only
					 * with ZSNAP_F_PARENT; since 1.2) */
};

/*
 * Is this page (ZSNAP_PAGE_SIZE bytes, any alignment) all zero bytes, so a
 * ZERO page?  The one test every writer (zsnap, raw) and the raw reader
 * use, so they agree on what ZERO means (proto/zsnap.c).
 */
int	zsnap_page_is_zero(const void *page);

struct zsnap_extent {
	uint32_t	region;			/* index into the region table */
	uint32_t	kind;			/* enum zsnap_extent_kind */
	uint64_t	first_page;		/* page index within the region */
	uint64_t	page_count;
};

/*
 * Index payload: le64 chunk_count, then chunk_count struct
 * zsnap_index_entry, then le32 crc32c.
 */
struct zsnap_index_entry {
	uint64_t	offset;			/* file offset of the chunk's skippable frame */
	uint64_t	length;			/* bytes up to the next chunk (both frames) */
	uint32_t	seq;
	uint32_t	extent_count;
	uint32_t	chunk_crc;		/* the chunk payload's own trailing crc32c */
	uint32_t	reserved;
};

/*
 * Parent frame payload (incremental snapshots, since 1.2): struct
 * zsnap_parent, then whole_count struct zsnap_whole, then le32 crc32c.
 *
 * The parent is found by file name in the directory that holds this file,
 * and is the right one when its header's name and armed_realtime_ns and
 * the crc32c ending its index payload (which covers every chunk's crc, so
 * every page) are the ones recorded here.  A chain ends at a snapshot
 * without ZSNAP_F_PARENT (its base).  The parent has the same region
 * table (start, length, name of every region).
 */
#define ZSNAP_PARENT_FILE_MAX	256	/* file name, NUL padded, no '/' */

struct zsnap_parent {
	char		name[ZSNAP_NAME_MAX];	/* the parent's snapshot name */
	char		file[ZSNAP_PARENT_FILE_MAX]; /* its file name, same directory */
	uint64_t	armed_realtime_ns;	/* its header's */
	uint32_t	index_crc;		/* the crc32c ending its index payload */
	uint32_t	depth;			/* links to the base: 1 on a full parent */
	uint32_t	whole_count;		/* struct zsnap_whole that follow */
	uint32_t	reserved;		/* zero */
};

/*
 * Why pages of an incremental snapshot were saved whole (DATA, ZERO or
 * LOST extents) although they may not have changed: snapd lost track of
 * writes to them between the parent and this snapshot.  Pages a tracked
 * write changed are not listed: they are what an incremental saves.
 */
enum zsnap_whole_reason {
	ZSNAP_WHOLE_DISCARDED = 1,	/* MADV_DONTNEED/REMOVE and the like */
	ZSNAP_WHOLE_UNMAPPED = 2,	/* munmap (and mapped again since) */
	ZSNAP_WHOLE_MOVED = 3,		/* mremap away from or onto it */
	ZSNAP_WHOLE_UNTRACKED = 4,	/* tracking could not be kept (a
					 * failed re-protect, too many
					 * events to record one by one) */
};

struct zsnap_whole {
	uint32_t	region;
	uint32_t	reason;			/* enum zsnap_whole_reason */
	uint64_t	first_page;
	uint64_t	page_count;
};

/* The most zsnap_whole ranges a parent frame holds (readers refuse more). */
#define ZSNAP_WHOLE_MAX		65536

/* Footer payload: struct zsnap_footer, whose last field is the crc32c. */
struct zsnap_footer {
	char		magic[8];		/* ZSNAP_FOOTER_MAGIC */
	uint64_t	index_offset;		/* file offset of the index frame */
	uint64_t	index_length;		/* its size, frame header included */
	uint64_t	chunk_count;
	uint64_t	pages_total;		/* all pages of all regions */
	uint64_t	pages_data;
	uint64_t	pages_zero;
	uint64_t	pages_lost;		/* PARENT pages are the rest of pages_total */
	uint32_t	flags;			/* ZSNAP_F_* */
	uint32_t	crc;			/* crc32c of the footer payload before it */
};

#define ZSNAP_SKIP_HDR_SIZE		8u
#define ZSNAP_FOOTER_FRAME_SIZE		(ZSNAP_SKIP_HDR_SIZE + sizeof(struct zsnap_footer))

_Static_assert(sizeof(struct zsnap_header) == 152, "zsnap_header is on disk");
_Static_assert(sizeof(struct zsnap_region) == 80, "zsnap_region is on disk");
_Static_assert(sizeof(struct zsnap_chunk) == 24, "zsnap_chunk is on disk");
_Static_assert(sizeof(struct zsnap_extent) == 24, "zsnap_extent is on disk");
_Static_assert(sizeof(struct zsnap_index_entry) == 32, "zsnap_index_entry is on disk");
_Static_assert(sizeof(struct zsnap_footer) == 72, "zsnap_footer is on disk");
_Static_assert(sizeof(struct zsnap_parent) == 344, "zsnap_parent is on disk");
_Static_assert(sizeof(struct zsnap_whole) == 24, "zsnap_whole is on disk");

/*
 * The raw format: a directory NAME.raw holding one sparse file per region,
 * "R.img" for region index R (decimal), each page at offset
 * page_index * page_size, zero pages as holes, directly mmap-able; and
 * "snapshot.json", written last, that lists the regions (index, name,
 * start, length, file) and the same page counts as the zsnap footer;
 * with flag ZSNAP_F_PROCESS, also "process.rec" (ZSNAP_RAW_PROCESS): the
 * process record's bytes, exactly the zsnap process frame's payload.
 */
#define ZSNAP_RAW_PROCESS	"process.rec"
#define ZSNAP_RAW_SUFFIX	".raw"
#define ZSNAP_SUFFIX		".zsnap"

/* A little-endian field at p, of any alignment: for the readers and the
 * tests that take a file apart byte by byte. */
static inline uint32_t
zsnap_get32(const unsigned char *p)
{
	uint32_t	v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t
zsnap_get64(const unsigned char *p)
{
	uint64_t	v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline void
zsnap_put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void
zsnap_put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

#endif /* SNAPD_ZSNAP_H */
