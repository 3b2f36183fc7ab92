/*
 * Allocation of the per-page state bitmaps: see pagestate.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "pagestate.h"

int
pagestate_init(struct pagestate *ps, uint64_t npages)
{
	uint64_t words = (npages + 63) / 64;

	ps->npages = npages;
	ps->claimed = calloc(words, sizeof(*ps->claimed));
	ps->done = calloc(words, sizeof(*ps->done));
	ps->suspect = calloc(words, sizeof(*ps->suspect));
	if (ps->claimed == NULL || ps->done == NULL || ps->suspect == NULL) {
		pagestate_destroy(ps);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void
pagestate_destroy(struct pagestate *ps)
{
	free(ps->claimed);
	free(ps->done);
	free(ps->suspect);
	ps->claimed = ps->done = ps->suspect = NULL;
}
