/*
 * The page index of a lazy restore (reader-lazy.h): built from a file's
 * chunks, sorted by page, looked up for every fault and sweep step, and
 * followed down an incremental chain for PARENT pages.  Split from
 * reader-lazy.c, whose opening comment says how the restore uses it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "reader-lazy.h"

#define PAGE			ZSNAP_PAGE_SIZE

/* ---- the index ----------------------------------------------------------- */

static int
index_append(struct lazy_index *ix, size_t *cap, const struct reader_extent *e,
    uint64_t chunk, uint64_t data_page)
{
	struct lazy_extent	*last = ix->nextents > 0 ?
				    &ix->extents[ix->nextents - 1] : NULL;

	/* Merge a run that continues the last one from the same source. */
	if (last != NULL && last->kind == e->kind &&
	    last->first + last->count == e->first &&
	    (e->kind != ZSNAP_EXTENT_DATA || (last->chunk == chunk &&
	    last->data_page + last->count == data_page))) {
		last->count += e->count;
		return 0;
	}
	if (ix->nextents == *cap) {
		size_t	 ncap = *cap ? *cap * 2 : 64;
		void	*p = reallocarray(ix->extents, ncap,
			    sizeof(*ix->extents));

		if (p == NULL) {
			reader_error(ix->f, ENOMEM, "lazy restore: cannot "
			    "allocate an index of %zu extents", ncap);
			return -1;
		}
		ix->extents = p;
		*cap = ncap;
	}
	ix->extents[ix->nextents++] = (struct lazy_extent){ e->first, e->count,
	    chunk, e->kind, (uint32_t)data_page };
	return 0;
}

#define LAZY_RADIX_BITS		11

/*
 * Sort the keys by first page: a least-significant-digit radix sort, 11
 * bits a pass, as many passes as the region's page numbers have digits
 * (two for 1 GiB).  It is the costliest step of starting a restore (a
 * snapshot written on snapd's fault path has about an extent a page), and
 * sorting keys by their own field, rather than indices by what they point
 * to, also keeps each lookup within the keys.
 */
static int
index_sort(struct lazy_index *ix, uint64_t pages)
{
	struct lazy_key	*src = ix->by_page, *dst, *tmp, *swap;
	size_t		 n = ix->nextents;
	size_t		 count[1u << LAZY_RADIX_BITS];

	if ((tmp = calloc(n ? n : 1, sizeof(*tmp))) == NULL) {
		reader_error(ix->f, ENOMEM, "lazy restore: cannot allocate an "
		    "index of %zu extents", n);
		return -1;
	}
	dst = tmp;
	for (unsigned shift = 0; shift < 64 && (pages - 1) >> shift != 0;
	    shift += LAZY_RADIX_BITS) {
		size_t	 at = 0;

		memset(count, 0, sizeof(count));
		for (size_t k = 0; k < n; k++)
			count[(src[k].first >> shift) &
			    ((1u << LAZY_RADIX_BITS) - 1)]++;
		for (size_t d = 0; d < (1u << LAZY_RADIX_BITS); d++) {
			size_t	c = count[d];

			count[d] = at;
			at += c;
		}
		for (size_t k = 0; k < n; k++)
			dst[count[(src[k].first >> shift) &
			    ((1u << LAZY_RADIX_BITS) - 1)]++] = src[k];
		swap = src;
		src = dst;
		dst = swap;
	}
	/* src holds the sorted keys; keep that array, free the other. */
	if (src == tmp) {
		free(ix->by_page);
		ix->by_page = tmp;
	} else
		free(tmp);
	return 0;
}

/*
 * Region's extents from every chunk's metadata, data pages counted from
 * the start of their chunk's data.  The caller has checked coverage, so
 * sorted by page they tile the region.
 */
int
lazy_index_build(struct lazy_index *ix, struct snap_file *f, uint32_t region,
    struct reader_cover *cover)
{
	struct reader_chunk	c;
	size_t			cap = 0;

	ix->f = f;
	ix->region = region;
	for (int s = 0; s < LAZY_CACHE_SLOTS; s++)
		ix->cache[s].chunk = NO_CHUNK;
	for (uint64_t i = 0; i < f->info.chunk_count; i++) {
		uint64_t	data_page = 0;

		if (reader_zsnap_chunk_load(f, i, &c) == -1)
			return -1;
		for (uint32_t k = 0; k < c.extent_count; k++) {
			const struct reader_extent *e = &f->extents[k];
			uint64_t at = data_page;

			if (e->kind == ZSNAP_EXTENT_DATA)
				data_page += e->count;
			if (cover != NULL && reader_cover_add(f, cover, e) == -1)
				return -1;
			if (e->region != region)
				continue;
			if (e->kind == ZSNAP_EXTENT_LOST)
				ix->pages_lost += e->count;
			if (index_append(ix, &cap, e, i, at) == -1)
				return -1;
		}
	}
	if ((ix->by_page = calloc(ix->nextents ? ix->nextents : 1,
	    sizeof(*ix->by_page))) == NULL) {
		reader_error(f, ENOMEM, "lazy restore: cannot allocate an index "
		    "of %zu extents", ix->nextents);
		return -1;
	}
	for (size_t k = 0; k < ix->nextents; k++)
		ix->by_page[k] = (struct lazy_key){ ix->extents[k].first, k };
	return index_sort(ix, f->region_pages[region]);
}

void
lazy_index_free(struct lazy_index *ix)
{
	if (ix->parent != NULL) {
		lazy_index_free(ix->parent);
		free(ix->parent);
	}
	for (int s = 0; s < LAZY_CACHE_SLOTS; s++)
		free(ix->cache[s].data);
	free(ix->extents);
	free(ix->by_page);
}

/* The extent holding page, which coverage guarantees exists. */
const struct lazy_extent *
lazy_index_find(const struct lazy_index *ix, uint64_t page)
{
	size_t	lo = 0, hi = ix->nextents;

	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;
		const struct lazy_key *k = &ix->by_page[mid];

		if (page < k->first)
			hi = mid;
		else if (mid + 1 < ix->nextents && page >= k[1].first)
			lo = mid + 1;
		else {
			const struct lazy_extent *x = &ix->extents[k->extent];

			return page - x->first < x->count ? x : NULL;
		}
	}
	return NULL;
}

/*
 * Chunk's decompressed page data, from the cache or read, checked and
 * decompressed by the reader into f->data, whose buffer the least recently
 * used slot then takes in exchange for its own (no copy).
 */
static const unsigned char *
lazy_chunk_data(struct lazy_index *ix, uint64_t chunk)
{
	struct snap_file	*f = ix->f;
	struct lazy_slot	*slot = &ix->cache[0];
	struct reader_chunk	 c;
	unsigned char		*buf;
	size_t			 cap;

	for (int s = 0; s < LAZY_CACHE_SLOTS; s++) {
		if (ix->cache[s].chunk == chunk) {
			ix->cache[s].used = ++ix->tick;
			return ix->cache[s].data;
		}
		if (ix->cache[s].used < slot->used)
			slot = &ix->cache[s];
	}
	if (reader_zsnap_chunk_load(f, chunk, &c) == -1 ||
	    reader_zsnap_chunk_data(f, &c) == -1)
		return NULL;
	buf = slot->data;
	cap = slot->cap;
	slot->data = f->data;
	slot->cap = f->data_cap;
	f->data = buf;
	f->data_cap = cap;
	slot->chunk = chunk;
	slot->used = ++ix->tick;
	ix->chunks_read++;
	return slot->data;
}

static int	lazy_page_lookup_here(struct lazy_index *,
		    const struct lazy_extent *, uint64_t, uint64_t,
		    struct lazy_source *);

/*
 * Where page's bytes are: src->kind, and for DATA the bytes, valid until
 * the next lookup; src->count pages from page on (at most max) come from
 * the same source, contiguous.  0, or -1 with the message set.
 *
 * An incremental chain resolves PARENT pages here: the page is looked up
 * in the parent file's index (a lazy_index of its own, built the first
 * time; the chain was opened and checked by snap_file_restore_lazy()), and
 * so on down to the link that holds it.
 */
int
lazy_page_lookup(struct lazy_index *ix, uint64_t page, uint64_t max,
    struct lazy_source *src)
{
	const struct lazy_extent *x = lazy_index_find(ix, page);

	if (x != NULL && x->kind == ZSNAP_EXTENT_PARENT) {
		uint64_t n = x->first + x->count - page;

		if (ix->f->parent == NULL) {
			reader_error(ix->f, EBADMSG, "region %u page %llu: "
			    "unchanged since a parent the file does not have",
			    ix->region, (unsigned long long)page);
			return -1;
		}
		if (ix->parent == NULL) {
			if ((ix->parent = calloc(1, sizeof(*ix->parent))) ==
			    NULL) {
				reader_error(ix->f, ENOMEM, "lazy restore: "
				    "cannot allocate a parent's index");
				return -1;
			}
			if (reader_check_coverage(ix->f->parent) == -1 ||
			    lazy_index_build(ix->parent, ix->f->parent,
			    ix->region, NULL) == -1) {
				reader_chain_blame(ix->f, ix->f);
				return -1;
			}
		}
		/* A failure there names the parent's file itself. */
		if (lazy_page_lookup(ix->parent, page, n < max ? n : max,
		    src) == -1)
			return -1;
		src->from_parent = 1;
		return 0;
	}
	return lazy_page_lookup_here(ix, x, page, max, src);
}

/* lazy_page_lookup() of a page this file holds itself (x: its extent). */
static int
lazy_page_lookup_here(struct lazy_index *ix, const struct lazy_extent *x,
    uint64_t page, uint64_t max, struct lazy_source *src)
{
	const unsigned char	*data;

	src->from_parent = 0;
	if (x == NULL) {
		reader_error(ix->f, EBADMSG, "region %u page %llu: no extent "
		    "holds it", ix->region, (unsigned long long)page);
		return -1;
	}
	src->kind = x->kind;
	src->count = x->first + x->count - page;
	if (src->count > max)
		src->count = max;
	src->data = NULL;
	switch (x->kind) {
	case ZSNAP_EXTENT_DATA:
		if ((data = lazy_chunk_data(ix, x->chunk)) == NULL)
			return -1;
		src->data = data + (x->data_page + (page - x->first)) * PAGE;
		return 0;
	case ZSNAP_EXTENT_ZERO:
	case ZSNAP_EXTENT_LOST:
		return 0;
	default:
		reader_error(ix->f, ENOTSUP, "region %u page %llu: extent kind "
		    "%u cannot be restored lazily", ix->region,
		    (unsigned long long)page, x->kind);
		return -1;
	}
}

/* Chunks decompressed so far, by every link of the chain. */
uint64_t
lazy_chunks_read(const struct lazy_index *ix)
{
	uint64_t n = 0;

	for (; ix != NULL; ix = ix->parent)
		n += ix->chunks_read;
	return n;
}

