/*
 * Regions copied while the process is stopped (OUTPUT_REGION_STOPPED).
 *
 * Some memory cannot be write-protected: the kernel refuses to register a
 * private file-backed mapping (the .data and .bss of an executable or a
 * library once written) or the vdso, so no fault would tell us of a write.
 * A snapshot taken by attach still wants them (a core file without .data
 * is of little use), and the caller keeps the process stopped until the
 * ARMED event anyway.  So such a region is neither registered nor
 * protected: at the armed instant the writer reads all of it from the
 * armed mm (readmem.c) into slots of the page buffer and publishes them,
 * exactly as the fault thread publishes the pages it copies, and claims
 * every page of it, so the sweep and the fault thread never touch it.
 * The writer outputs those slots first, right after opening the output,
 * and frees them.
 *
 * The copies live in the page buffer, so the operator's bound on snapd's
 * memory holds: snapshot_start() refuses a request whose stopped regions
 * are larger than its buffer, and the fault thread, started after the
 * copy, finds only what is left until the writer has drained them (a
 * fault then waits as it does on a full buffer).  A pre-armed snapshot
 * copies them in arm_rearm(), at its point in time, while the caller
 * keeps the process stopped for snapshot_arm(): the fault thread serves
 * no copy then (the process is stopped) and the buffer is empty.
 *
 * Pages that cannot be read (EIO: [vvar], or a hole) are recorded in
 * s->stopped_lost and saved as LOST, whatever on_discard says: the
 * process discarded nothing.
 *
 * Runs on the writer thread, from arm_finish() before the fault thread
 * starts, or from arm_rearm() with the process stopped: the page buffer's
 * slots are all free then.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "snapshot-internal.h"

#define STOPPED_RUN	64	/* pages per read */

/* Note pages [first, first+count) of r as unreadable, merging runs. */
static int
stopped_lost(struct snapshot *s, struct region *r, uint64_t first,
    uint64_t count)
{
	struct lost_range	*l;

	if (s->nstopped_lost > 0) {
		l = &s->stopped_lost[s->nstopped_lost - 1];
		if (l->region == r->index && l->first + l->count == first) {
			l->count += count;
			return 0;
		}
	}
	if (s->nstopped_lost == s->stopped_lost_cap) {
		size_t	cap = s->stopped_lost_cap ? s->stopped_lost_cap * 2 : 16;

		/* At most one run per page of the buffer: the request's size. */
		l = reallocarray(s->stopped_lost, cap, sizeof(*l));
		if (l == NULL) {
			snapshot_set_error(s, "unreadable-page list of %zu "
			    "runs: %s", cap, strerror(ENOMEM));
			return -1;
		}
		s->stopped_lost = l;
		s->stopped_lost_cap = cap;
	}
	s->stopped_lost[s->nstopped_lost++] =
	    (struct lost_range){ r->index, first, count };
	return 0;
}

/*
 * Read n pages of r from page first on into the slots, in one read; past
 * a short read, page by page, and a page that still cannot be read is
 * recorded lost and its slot freed (slots[i] becomes UINT32_MAX).
 */
static int
stopped_read_run(struct snapshot *s, struct region *r, uint64_t first,
    uint32_t *slots, unsigned n)
{
	struct iovec	iov[STOPPED_RUN];
	uint64_t	addr = r->start + first * PAGE_4K;
	ssize_t		got;

	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = pagebuf_mem(&s->buf, slots[i]);
		iov[i].iov_len = PAGE_4K;
	}
	got = snapshot_read_pages(s, r, first, iov, n, addr);
	for (unsigned i = got > 0 ? (unsigned)((size_t)got / PAGE_4K) : 0;
	    i < n; i++) {
		if (got != -1)
			got = snapshot_read_pages(s, r, first + i, &iov[i], 1,
			    addr + i * PAGE_4K);
		if (got == -1) {
			if (errno == ESRCH)
				snapshot_mm_gone(s);
			else
				snapshot_set_error(s, "read region %u "
				    "(0x%llx+%llu) while stopped: %s",
				    r->index, (unsigned long long)addr,
				    (unsigned long long)(n * PAGE_4K),
				    strerror(errno));
			return -1;
		}
		if (got == (ssize_t)PAGE_4K)
			continue;
		pagebuf_release(&s->buf, &slots[i], 1);
		slots[i] = UINT32_MAX;
		if (stopped_lost(s, r, first + i, 1) == -1)
			return -1;
	}
	return 0;
}

/* Copy all of r into the page buffer and claim every page of it. */
static int
stopped_copy_region(struct snapshot *s, struct region *r)
{
	uint32_t	slots[STOPPED_RUN];

	for (uint64_t first = 0; first < r->npages; first += STOPPED_RUN) {
		unsigned n = r->npages - first < STOPPED_RUN ?
		    (unsigned)(r->npages - first) : STOPPED_RUN;

		for (unsigned i = 0; i < n; i++) {
			/* Counted against the buffer by snapshot_start(). */
			if (pagebuf_try_get(&s->buf, &slots[i]) == -1) {
				pagebuf_release(&s->buf, slots, i);
				snapshot_set_error(s, "region %u: no free slot "
				    "in the page buffer for its copy",
				    r->index);
				return -1;
			}
		}
		if (stopped_read_run(s, r, first, slots, n) == -1) {
			for (unsigned i = 0; i < n; i++)
				if (slots[i] != UINT32_MAX)
					pagebuf_release(&s->buf, &slots[i], 1);
			return -1;
		}
		for (unsigned i = 0; i < n; i++) {
			(void)pagestate_claim(&r->ps, first + i);
			pagestate_set_done(&r->ps, first + i);
			if (slots[i] != UINT32_MAX)
				pagebuf_publish(&s->buf, slots[i], r->index,
				    first + i);
		}
	}
	return 0;
}

int
stopped_copy(struct snapshot *s)
{
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = s->by_addr[i];

		if (region_stopped(r) && stopped_copy_region(s, r) == -1)
			return -1;
	}
	return 0;
}

uint64_t
stopped_pages(const struct snapshot_request *req)
{
	uint64_t	pages = 0;

	for (uint32_t i = 0; i < req->region_count; i++)
		if (req->regions[i].flags & OUTPUT_REGION_STOPPED)
			pages += req->regions[i].length / PAGE_4K;
	return pages;
}
