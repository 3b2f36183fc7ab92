/*
 * Writing and checking stamps: see stamp.h.
 */
#include <string.h>

#include "stamp.h"

uint64_t
stamp_word(unsigned thread, uint64_t seq)
{
	return STAMP_MAGIC << 48 | (uint64_t)thread << 40 |
	    (seq & STAMP_SEQ_MAX);
}

uint64_t
stamp_last_write(uint64_t page, uint64_t pages, uint64_t cut)
{
	/* Page p gets writes p + 1, p + 1 + pages, p + 1 + 2 * pages, ... */
	if (cut < page + 1)
		return 0;
	return cut - (cut - 1 - page) % pages;
}

/* The write number of a stamp of `thread`, or 0 if w is not one. */
static uint64_t
stamp_seq_of(uint64_t w, unsigned thread)
{
	if (w >> 48 != STAMP_MAGIC || (w >> 40 & 0xff) != thread)
		return 0;
	return w & STAMP_SEQ_MAX;
}

/* Every word of the page between the head and the tail is zero. */
static int
stamp_body_zero(const uint64_t *w)
{
	size_t	 i;

	for (i = 1; i < STAMP_PAGE_WORDS - 1; i++) {
		if (w[i] != 0)
			return 0;
	}
	return 1;
}

static uint64_t
stamp_expected(unsigned thread, uint64_t seq)
{
	return seq == 0 ? 0 : stamp_word(thread, seq);
}

void
stamp_check_part(const void *part, uint64_t pages, unsigned thread,
    uint64_t cut, int allow_in_flight, struct stamp_verdict *v)
{
	const uint64_t	*w;
	uint64_t	 p, s, last, prev;
	int		 ok;

	memset(v, 0, sizeof(*v));
	v->first_wrong = -1;
	if (cut == 0) {
		for (p = 0; p < pages; p++) {
			w = (const uint64_t *)part + p * STAMP_PAGE_WORDS;
			if ((s = stamp_seq_of(w[0], thread)) > cut)
				cut = s;
		}
	}
	v->cut = cut;
	v->written = cut < pages ? cut : pages;
	for (p = 0; p < pages; p++) {
		w = (const uint64_t *)part + p * STAMP_PAGE_WORDS;
		last = stamp_last_write(p, pages, cut);
		ok = w[0] == stamp_expected(thread, last) &&
		    stamp_body_zero(w);
		if (ok && w[STAMP_PAGE_WORDS - 1] != w[0]) {
			/* Only the write at the cut may be half done: its
			 * head stored, the tail still the previous write's. */
			prev = last > pages ? last - pages : 0;
			ok = allow_in_flight && last == cut && cut != 0 &&
			    w[STAMP_PAGE_WORDS - 1] ==
			    stamp_expected(thread, prev);
			if (ok)
				v->in_flight++;
		}
		if (!ok) {
			if (v->first_wrong < 0)
				v->first_wrong = (int64_t)p;
			v->wrong++;
		}
	}
}

uint64_t
stamp_nonzero_pages(const void *mem, uint64_t pages)
{
	const uint64_t	*w;
	uint64_t	 p, n = 0;
	size_t		 i;

	for (p = 0; p < pages; p++) {
		w = (const uint64_t *)mem + p * STAMP_PAGE_WORDS;
		for (i = 0; i < STAMP_PAGE_WORDS; i++) {
			if (w[i] != 0) {
				n++;
				break;
			}
		}
	}
	return n;
}
