/*
 * The page index of a lazy restore (reader-lazy.c): for one region of one
 * zsnap file, where each page's bytes are, and for an incremental file,
 * down its chain of parents.  Built from the chunks' metadata after the
 * coverage check, so its size follows the file's extents; a few
 * decompressed chunks are cached.  Used by the restore's handler thread
 * only.
 */
#ifndef SNAPCLIENT_READER_LAZY_H
#define SNAPCLIENT_READER_LAZY_H

#include <stddef.h>
#include <stdint.h>

#include "reader-internal.h"

#define LAZY_CACHE_SLOTS	4	/* decompressed chunks kept */

/* A run of one region's pages of one kind, from one extent of the file. */
struct lazy_extent {
	uint64_t	first;		/* page of the region */
	uint64_t	count;
	uint64_t	chunk;		/* DATA: the chunk holding the pages */
	uint32_t	kind;
	uint32_t	data_page;	/* DATA: its first page in the chunk's data */
};

struct lazy_slot {
	uint64_t	 chunk;		/* NO_CHUNK: empty */
	unsigned char	*data;
	size_t		 cap;
	uint64_t	 used;		/* tick of the last use */
};

struct lazy_key {
	uint64_t	first;		/* the extent's first page */
	uint64_t	extent;		/* its index in the file-order array */
};

/* Where one region's pages are in one file. */
struct lazy_index {
	struct snap_file	*f;
	struct lazy_index	*parent;	/* f's parent's, built when first
						 * a PARENT page is looked up */
	uint32_t		 region;
	struct lazy_extent	*extents;	/* file order */
	size_t			 nextents;
	struct lazy_key		*by_page;	/* the extents by first page */
	struct lazy_slot	 cache[LAZY_CACHE_SLOTS];
	uint64_t		 tick;
	uint64_t		 chunks_read;
	uint64_t		 pages_lost;
};

/* What lazy_page_lookup() found: count pages from the same source. */
struct lazy_source {
	uint32_t		 kind;		/* DATA, ZERO or LOST */
	int			 from_parent;	/* found in a parent of the file */
	uint64_t		 count;
	const unsigned char	*data;		/* DATA: the first page's bytes */
};

/*
 * Build ix for region of f, an index of its own extents (a PARENT page's
 * parent index is built when first looked up); every extent of every
 * region also goes to cover, if not NULL (reader_cover_add()).  0, or -1
 * with f's message.
 */
int		 lazy_index_build(struct lazy_index *ix, struct snap_file *f,
		    uint32_t region, struct reader_cover *cover);
/* The extent of ix holding page (NULL only for a page out of the region). */
const struct lazy_extent *lazy_index_find(const struct lazy_index *ix,
		    uint64_t page);
/* Free what ix holds, its parents' indexes included. */
void		 lazy_index_free(struct lazy_index *ix);
/*
 * Where page's bytes are: src->kind, and for DATA the bytes, valid until
 * the next lookup; src->count pages from page on (at most max) come from
 * the same source, contiguous.  0, or -1 with the message set.
 */
int		 lazy_page_lookup(struct lazy_index *ix, uint64_t page,
		    uint64_t max, struct lazy_source *src);
/* Chunks decompressed so far, by every link of the chain. */
uint64_t	 lazy_chunks_read(const struct lazy_index *ix);

#endif /* SNAPCLIENT_READER_LAZY_H */
