/*
 * Unit test of the per-page state bitmaps (daemon/engine/pagestate.h).  What must
 * hold:
 *
 *   once	every page is claimed exactly once, however many threads
 *		race for it and whether they claim one page
 *		(pagestate_claim) or a word's worth (pagestate_claim_mask);
 *   mask	pagestate_claim_mask returns exactly the bits of the mask
 *		that no one had claimed, and claims them;
 *   bits	done and suspect are per page, independent of claimed and
 *		of each other, across word boundaries.
 *
 * The race runs under ThreadSanitizer too.  Exits 0 on pass, 1 on failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "pagestate.h"
#include "unit-check.h"

#define NPAGES		(64 * 300 + 37)	/* a partial last word */
#define CLAIMERS	4

struct race {
	struct pagestate	 ps;
	_Atomic int		*wins;		/* per page */
	pthread_barrier_t	 start;
};

struct claimer {
	struct race	*r;
	int		 index;
};

static void *
claimer_main(void *arg)
{
	struct claimer	*c = arg;
	struct race	*r = c->r;
	uint64_t	 words = (NPAGES + 63) / 64;

	pthread_barrier_wait(&r->start);
	if (c->index % 2 == 0) {
		/* One page at a time, each thread from its own offset. */
		uint64_t first = (uint64_t)c->index * NPAGES / CLAIMERS;

		for (uint64_t i = 0; i < NPAGES; i++) {
			uint64_t page = (first + i) % NPAGES;

			if (pagestate_claim(&r->ps, page))
				atomic_fetch_add(&r->wins[page], 1);
		}
	} else {
		/* A word at a time, from the top down, odd then all bits. */
		for (uint64_t k = 0; k < 2 * words; k++) {
			uint64_t w = words - 1 - k / 2, mask, won;
			uint64_t valid = w == words - 1 && NPAGES % 64 != 0 ?
			    (1ULL << (NPAGES % 64)) - 1 : ~0ULL;

			mask = (k % 2 == 0 ? 0xaaaaaaaaaaaaaaaaULL : ~0ULL) &
			    valid;
			won = pagestate_claim_mask(&r->ps, w, mask);
			if (won & ~mask)
				atomic_fetch_add(&r->wins[w * 64], 1000);
			for (int b = 0; b < 64; b++)
				if (won & (1ULL << b))
					atomic_fetch_add(&r->wins[w * 64 + b],
					    1);
		}
	}
	return NULL;
}

static void
test_claim_once(void)
{
	struct race	r;
	struct claimer	c[CLAIMERS];
	pthread_t	t[CLAIMERS];
	uint64_t	bad = 0;

	if (pagestate_init(&r.ps, NPAGES) == -1 ||
	    (r.wins = calloc(NPAGES, sizeof(*r.wins))) == NULL) {
		FAIL("pagestate_init");
		return;
	}
	pthread_barrier_init(&r.start, NULL, CLAIMERS);
	for (int i = 0; i < CLAIMERS; i++) {
		c[i] = (struct claimer){ .r = &r, .index = i };
		pthread_create(&t[i], NULL, claimer_main, &c[i]);
	}
	for (int i = 0; i < CLAIMERS; i++)
		pthread_join(t[i], NULL);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (atomic_load(&r.wins[p]) != 1) {
			if (bad++ < 5)
				FAIL("once: page %llu was claimed %d times",
				    (unsigned long long)p,
				    atomic_load(&r.wins[p]));
		}
		if (!pagestate_is_claimed(&r.ps, p) ||
		    pagestate_is_done(&r.ps, p) ||
		    pagestate_is_suspect(&r.ps, p))
			FAIL("once: page %llu's bits are wrong after claiming",
			    (unsigned long long)p);
	}
	if (bad > 0)
		FAIL("once: %llu pages not claimed exactly once",
		    (unsigned long long)bad);
	pthread_barrier_destroy(&r.start);
	free(r.wins);
	pagestate_destroy(&r.ps);
}

static void
test_claim_mask(void)
{
	struct pagestate	ps;
	uint64_t		won;

	if (pagestate_init(&ps, 128) == -1) {
		FAIL("pagestate_init");
		return;
	}
	if (!pagestate_claim(&ps, 3) || !pagestate_claim(&ps, 5) ||
	    pagestate_claim(&ps, 3))
		FAIL("mask: claim of pages 3 and 5, then 3 again");
	won = pagestate_claim_mask(&ps, 0, 0xff);
	if (won != (0xffULL & ~((1ULL << 3) | (1ULL << 5))))
		FAIL("mask: won %#llx of 0xff with 3 and 5 taken",
		    (unsigned long long)won);
	if ((won = pagestate_claim_mask(&ps, 0, 0xff)) != 0)
		FAIL("mask: won %#llx of a mask all taken",
		    (unsigned long long)won);
	if ((won = pagestate_claim_mask(&ps, 0, 0)) != 0)
		FAIL("mask: won %#llx of an empty mask",
		    (unsigned long long)won);
	if (pagestate_is_claimed(&ps, 8) || pagestate_is_claimed(&ps, 64))
		FAIL("mask: claimed pages outside the mask");
	if ((won = pagestate_claim_mask(&ps, 1, 1ULL << 63)) != 1ULL << 63 ||
	    !pagestate_is_claimed(&ps, 127) || pagestate_claim(&ps, 127))
		FAIL("mask: the last page of word 1 (page 127)");
	pagestate_destroy(&ps);
}

static void
test_bits(void)
{
	struct pagestate	ps;
	static const uint64_t	pages[] = { 0, 62, 63, 64, 65, 199 };

	if (pagestate_init(&ps, 200) == -1) {
		FAIL("pagestate_init");
		return;
	}
	for (uint64_t p = 0; p < 200; p++)
		if (pagestate_is_claimed(&ps, p) || pagestate_is_done(&ps, p) ||
		    pagestate_is_suspect(&ps, p))
			FAIL("bits: page %llu is not clear after init",
			    (unsigned long long)p);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		pagestate_set_done(&ps, pages[i]);
		pagestate_set_suspect(&ps, pages[i] + 1 < 200 ? pages[i] + 1 :
		    0);
	}
	for (uint64_t p = 0; p < 200; p++) {
		int done = 0, suspect = 0;

		for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
			done |= pages[i] == p;
			suspect |= (pages[i] + 1 < 200 ? pages[i] + 1 : 0) == p;
		}
		if (pagestate_is_done(&ps, p) != done ||
		    pagestate_is_suspect(&ps, p) != suspect ||
		    pagestate_is_claimed(&ps, p))
			FAIL("bits: page %llu: done %d suspect %d claimed %d, "
			    "expected %d %d 0", (unsigned long long)p,
			    pagestate_is_done(&ps, p),
			    pagestate_is_suspect(&ps, p),
			    pagestate_is_claimed(&ps, p), done, suspect);
	}
	pagestate_destroy(&ps);
}

int
main(void)
{
	test_bits();
	test_claim_mask();
	test_claim_once();
	return unit_finish("pagestate");
}
