/*
 * The stamp layout that stampwork writes and stampcheck (and stampwork's
 * own self-check) verifies.
 *
 * stampwork's data region is one anonymous mapping of whole pages:
 *
 *	page 0				the marker page (text a test asks for)
 *	pages 1 .. threads*P		writer t owns the P pages starting at
 *					1 + t*P, its "part"
 *	the next `untouched` pages	never touched: they must read as zero
 *
 * Writer t's write number s (s = 1, 2, 3, ...) goes to page (s - 1) % P of
 * its part, in that fixed cyclic order: it stores stamp_word(t, s) into the
 * page's first word, then into its last word; every other byte of the page
 * stays zero.  A page therefore holds, at any instant, the stamp of the
 * last write to it, or zero if none reached it yet.
 *
 * A snapshot is right for writer t if there is one cut c (a sequence
 * number) such that every write up to c is present and none after it: each
 * page holds the stamp of its last write at or before c.  The one write a
 * stopped thread may be in the middle of (the head stored, the tail not
 * yet) shows as the page of write c with the head of c and the tail of the
 * page's previous write: that is "in flight", allowed once per part.  A
 * copy of a page torn by a concurrent write the other way (tail newer than
 * head) is wrong.
 */
#ifndef SNAPD_STAMP_H
#define SNAPD_STAMP_H

#include <stdint.h>

#define STAMP_PAGE_SIZE		4096u
#define STAMP_PAGE_WORDS	(STAMP_PAGE_SIZE / sizeof(uint64_t))
#define STAMP_MAGIC		0x5354ull	/* "ST" */
#define STAMP_THREADS_MAX	255u
#define STAMP_SEQ_MAX		((1ull << 40) - 1)

/* The word of writer `thread`'s write number `seq`. */
uint64_t	stamp_word(unsigned thread, uint64_t seq);

/* The write number of the last write to page `page` of a part of `pages`
 * pages at or before cut `cut`; 0 if no write reached it. */
uint64_t	stamp_last_write(uint64_t page, uint64_t pages, uint64_t cut);

struct stamp_verdict {
	uint64_t	cut;		/* the cut checked against */
	uint64_t	written;	/* pages written at least once by cut */
	uint64_t	wrong;		/* pages not as the cut says */
	uint64_t	in_flight;	/* 0 or 1: the write at the cut, half done */
	int64_t		first_wrong;	/* page index of the first, or -1 */
};

/*
 * Check writer `thread`'s part (`pages` pages at `part`).  cut 0 means find
 * it: the highest write number the part holds (a page holding anything
 * but a stamp of this writer counts wrong and is ignored for the cut).
 * allow_in_flight: a snapshot may hold the write at the cut half done; the
 * writer's own check, with every writer stopped between two writes, may
 * not.
 */
void	stamp_check_part(const void *part, uint64_t pages, unsigned thread,
	    uint64_t cut, int allow_in_flight, struct stamp_verdict *v);

/* How many of `pages` pages at `mem` hold a byte that is not zero. */
uint64_t	stamp_nonzero_pages(const void *mem, uint64_t pages);

#endif /* SNAPD_STAMP_H */
