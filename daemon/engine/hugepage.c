/*
 * Transparent huge pages: saving a 2 MiB huge page without splitting it.
 *
 * Write-protecting a huge page that is mapped whole (one PMD) protects the
 * PMD; the kernel keeps it whole as long as every later change of its
 * protection covers the whole aligned 2 MiB.  Un-protecting any part of it
 * splits it into 512 4 KiB ptes for good (khugepaged may merge them again
 * much later, if ever): the process loses its huge page, each later first
 * write to it is a fault of its own, and the split itself costs as much as
 * a fault.  So where a huge page is still whole, the writer's sweep saves
 * it as one unit (writer.c) and a sequential writer's fault copies it
 * whole (fault.c); a random writer's fault still copies 4 KiB, since
 * copying 2 MiB for one written word costs some 25 round trips and 512
 * buffer slots (README, "Huge pages").
 *
 * Whether a huge page is whole is asked of the kernel (PAGEMAP_SCAN with
 * PAGE_IS_HUGE, a few microseconds) on the armed mm's pagemap, which
 * arm.c opened (s->pagemap), at most once per 2 MiB block that is not:
 * a block found split or made of small pages is noted in r->not_huge and
 * never asked about again (khugepaged may merge it meanwhile; it is then
 * merely saved in small units), so memory of small pages costs one call
 * per 2 MiB, not one per fault.  Only the anonymous regions
 * of a snapshot whose mappings have not moved are considered: a region
 * read through its file (readfile.c) is shmem, whose huge pages this does
 * not handle, and after an mremap the page addresses are no longer the
 * region's own (snapshot_page_addr()).  The block's first page must start
 * a word of the page-state bitmaps, so a region not aligned to 256 KiB
 * is saved in 4 KiB units.
 *
 * Called on the writer and the fault thread; r->not_huge is atomic.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "compat.h"
#include "snapshot-internal.h"

int
snapshot_huge_block(struct snapshot *s, const struct region *r,
    uint64_t page, uint64_t *block)
{
	struct page_region	 vec;
	struct pm_scan_arg	 arg = {
		.size = sizeof(arg),
		.vec = (uint64_t)(uintptr_t)&vec,
		.vec_len = 1,
		.category_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	uint64_t		 addr, first, bit;

	if (s->pagemap < 0 || r->filefd >= 0 || region_stopped(r) ||
	    atomic_load_explicit(&s->nmoves, memory_order_acquire) != 0)
		return 0;
	addr = (r->start + page * PAGE_4K) & ~(HUGE_BYTES - 1);
	if (addr < r->start || addr + HUGE_BYTES > r->start + r->length)
		return 0;
	first = (addr - r->start) >> PAGE_SHIFT_4K;
	if (first % 64 != 0)
		return 0;
	bit = first / HUGE_PAGES;
	if (atomic_load_explicit(&r->not_huge[bit / 64],
	    memory_order_relaxed) >> (bit % 64) & 1)
		return 0;
	arg.start = addr;
	arg.end = addr + HUGE_BYTES;
	if (ioctl(s->pagemap, PAGEMAP_SCAN, &arg) != 1 || vec.start != addr ||
	    vec.end != addr + HUGE_BYTES) {
		atomic_fetch_or_explicit(&r->not_huge[bit / 64],
		    1ULL << (bit % 64), memory_order_relaxed);
		return 0;
	}
	*block = first;
	return 1;
}

/* Whether none of the huge page's pages is claimed yet. */
int
snapshot_huge_unclaimed(struct region *r, uint64_t block)
{
	for (unsigned k = 0; k < HUGE_WORDS; k++)
		if (atomic_load_explicit(&r->ps.claimed[block / 64 + k],
		    memory_order_relaxed) != 0)
			return 0;
	return 1;
}

void
snapshot_huge_close(struct snapshot *s)
{
	if (s->pagemap >= 0) {
		close(s->pagemap);
		s->pagemap = -1;
	}
}
