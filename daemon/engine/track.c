/*
 * The dirty-tracking state handed along a chain of incremental snapshots
 * (track.h): its bitmaps, its saved-whole ranges, its descriptors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "track.h"

#define TRACK_PAGE	4096ULL

struct track_state *
track_state_new(const uint64_t *start, const uint64_t *length,
    uint32_t nregions)
{
	struct track_state *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->uffd = st->pidfd = st->memfd = st->pagemap = -1;
	st->regions = calloc(nregions, sizeof(*st->regions));
	st->whole = calloc(TRACK_WHOLE_MAX, sizeof(*st->whole));
	if (st->regions == NULL || st->whole == NULL)
		goto fail;
	st->nregions = nregions;
	for (uint32_t i = 0; i < nregions; i++) {
		struct track_region *r = &st->regions[i];

		r->start = start[i];
		r->length = length[i];
		r->npages = length[i] / TRACK_PAGE;
		r->dirty = calloc((r->npages + 63) / 64, sizeof(*r->dirty));
		if (r->dirty == NULL)
			goto fail;
	}
	return st;
fail:
	track_state_free(st);
	errno = ENOMEM;
	return NULL;
}

void
track_state_free(struct track_state *st)
{
	if (st == NULL)
		return;
	/* Closing the uffd drops every protection: the process runs on. */
	if (st->uffd >= 0)
		close(st->uffd);
	if (st->pidfd >= 0)
		close(st->pidfd);
	if (st->memfd >= 0)
		close(st->memfd);
	if (st->pagemap >= 0)
		close(st->pagemap);
	for (uint32_t i = 0; st->regions != NULL && i < st->nregions; i++)
		free(st->regions[i].dirty);
	free(st->regions);
	free(st->whole);
	free(st);
}

void
track_note(struct track_state *st, uint32_t i, uint64_t first, uint64_t count)
{
	struct track_region	*r = &st->regions[i];
	uint64_t		 end = first + count;

	if (end > r->npages)
		end = r->npages;
	while (first < end) {
		uint64_t w = first >> 6, b = first & 63;
		uint64_t n = end - first < 64 - b ? end - first : 64 - b;
		uint64_t mask = n == 64 ? ~0ULL : ((1ULL << n) - 1) << b;

		atomic_fetch_or_explicit(&r->dirty[w], mask,
		    memory_order_relaxed);
		first += n;
	}
}

static void
track_whole_add(struct track_state *st, uint32_t region, uint64_t first,
    uint64_t count, uint32_t reason)
{
	struct zsnap_whole *last = st->nwhole > 0 ?
	    &st->whole[st->nwhole - 1] : NULL;

	if (st->whole_overflow)
		return;
	/* Said already (an mremap away and back moves the range twice). */
	for (size_t k = 0; k < st->nwhole; k++)
		if (st->whole[k].region == region &&
		    st->whole[k].reason == reason &&
		    st->whole[k].first_page <= first &&
		    first + count <= st->whole[k].first_page +
		    st->whole[k].page_count)
			return;
	if (last != NULL && last->region == region && last->reason == reason &&
	    first >= last->first_page &&
	    first <= last->first_page + last->page_count) {
		if (first + count > last->first_page + last->page_count)
			last->page_count = first + count - last->first_page;
		return;
	}
	if (st->nwhole == TRACK_WHOLE_MAX) {
		/* Too many to say one by one: every region, whole. */
		st->whole_overflow = 1;
		st->nwhole = 0;
		for (uint32_t i = 0; i < st->nregions; i++) {
			track_note(st, i, 0, st->regions[i].npages);
			st->whole[st->nwhole++] = (struct zsnap_whole){
			    .region = i, .reason = ZSNAP_WHOLE_UNTRACKED,
			    .first_page = 0,
			    .page_count = st->regions[i].npages };
		}
		return;
	}
	st->whole[st->nwhole++] = (struct zsnap_whole){ .region = region,
	    .reason = reason, .first_page = first, .page_count = count };
}

void
track_event(struct track_state *st, uint64_t start, uint64_t end,
    uint32_t reason)
{
	for (uint32_t i = 0; i < st->nregions; i++) {
		struct track_region	*r = &st->regions[i];
		uint64_t		 lo = start > r->start ? start : r->start;
		uint64_t		 hi = end < r->start + r->length ? end :
					    r->start + r->length;
		uint64_t		 first, last;

		if (lo >= hi)
			continue;
		first = (lo - r->start) / TRACK_PAGE;
		last = (hi - r->start + TRACK_PAGE - 1) / TRACK_PAGE;
		track_note(st, i, first, last - first);
		track_whole_add(st, i, first, last - first, reason);
		if (reason == ZSNAP_WHOLE_UNMAPPED ||
		    reason == ZSNAP_WHOLE_MOVED)
			st->reregister = 1;
	}
}

uint64_t
track_dirty_pages(const struct track_state *st)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < st->nregions; i++) {
		const struct track_region *r = &st->regions[i];

		for (uint64_t w = 0; w < (r->npages + 63) / 64; w++)
			n += (uint64_t)__builtin_popcountll(atomic_load_explicit(
			    &r->dirty[w], memory_order_relaxed));
	}
	return n;
}

void
track_merge(struct track_state *dst, const struct track_state *src)
{
	for (uint32_t i = 0; i < dst->nregions && i < src->nregions; i++)
		for (uint64_t w = 0; w < (dst->regions[i].npages + 63) / 64;
		    w++)
			atomic_fetch_or_explicit(&dst->regions[i].dirty[w],
			    atomic_load_explicit(&src->regions[i].dirty[w],
			    memory_order_relaxed), memory_order_relaxed);
	for (size_t k = 0; k < src->nwhole; k++)
		track_whole_add(dst, src->whole[k].region,
		    src->whole[k].first_page, src->whole[k].page_count,
		    src->whole[k].reason);
	if (src->whole_overflow && !dst->whole_overflow) {
		dst->nwhole = TRACK_WHOLE_MAX;	/* forces the overflow */
		track_whole_add(dst, 0, 0, 0, ZSNAP_WHOLE_UNTRACKED);
	}
	dst->reregister |= src->reregister;
}

void
track_swap_dirty(struct track_state *a, struct track_state *b)
{
	for (uint32_t i = 0; i < a->nregions && i < b->nregions; i++) {
		_Atomic uint64_t *t = a->regions[i].dirty;

		a->regions[i].dirty = b->regions[i].dirty;
		b->regions[i].dirty = t;
	}
}

const char *
track_reason_name(uint32_t reason)
{
	switch (reason) {
	case ZSNAP_WHOLE_DISCARDED:	return "discarded";
	case ZSNAP_WHOLE_UNMAPPED:	return "unmapped";
	case ZSNAP_WHOLE_MOVED:		return "moved";
	case ZSNAP_WHOLE_UNTRACKED:	return "untracked";
	default:			return "unknown";
	}
}
