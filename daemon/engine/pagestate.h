/*
 * Per-page state of one region during a snapshot: three bitmaps, two bits
 * of memory per page that matter (1/16384 of the region).
 *
 *   claimed  someone (fault thread, writer thread, or a discard event) has
 *            taken the page; set with an atomic fetch-or, so exactly one
 *            claimer wins and every page is saved exactly once.
 *   done     its content is captured (or known lost) and its protection
 *            dropped; set only by the claimer, after the unprotect.
 *   suspect  the process discarded it (UFFD_EVENT_REMOVE/UNMAP) while the
 *            writer held it claimed; written only under the snapshot's
 *            event lock, read by the writer under the same lock.
 *
 * Any thread may call these; they are lock-free.
 */
#ifndef SNAPD_PAGESTATE_H
#define SNAPD_PAGESTATE_H

#include <stdatomic.h>
#include <stdint.h>

struct pagestate {
	_Atomic uint64_t	*claimed;
	_Atomic uint64_t	*done;
	_Atomic uint64_t	*suspect;
	uint64_t		 npages;
};

int	pagestate_init(struct pagestate *ps, uint64_t npages);
void	pagestate_destroy(struct pagestate *ps);

/* 1 if this call claimed the page, 0 if someone had already. */
static inline int
pagestate_claim(struct pagestate *ps, uint64_t page)
{
	uint64_t bit = 1ULL << (page & 63);

	return !(atomic_fetch_or(&ps->claimed[page >> 6], bit) & bit);
}

/* Claim the pages of mask in word w; returns the bits this call won. */
static inline uint64_t
pagestate_claim_mask(struct pagestate *ps, uint64_t w, uint64_t mask)
{
	return mask & ~atomic_fetch_or(&ps->claimed[w], mask);
}

static inline int
pagestate_is_done(struct pagestate *ps, uint64_t page)
{
	return (atomic_load(&ps->done[page >> 6]) >> (page & 63)) & 1;
}

static inline void
pagestate_set_done(struct pagestate *ps, uint64_t page)
{
	atomic_fetch_or(&ps->done[page >> 6], 1ULL << (page & 63));
}

static inline int
pagestate_is_claimed(struct pagestate *ps, uint64_t page)
{
	return (atomic_load(&ps->claimed[page >> 6]) >> (page & 63)) & 1;
}

static inline void
pagestate_set_suspect(struct pagestate *ps, uint64_t page)
{
	atomic_fetch_or(&ps->suspect[page >> 6], 1ULL << (page & 63));
}

static inline int
pagestate_is_suspect(struct pagestate *ps, uint64_t page)
{
	return (atomic_load(&ps->suspect[page >> 6]) >> (page & 63)) & 1;
}

#endif /* SNAPD_PAGESTATE_H */
