/*
 * The fault thread: serves the process's first write to every protected page.
 *
 * It reads userfaultfd messages in batches.  For a write-protect fault on a
 * page nobody has claimed, it claims the page, copies it into a free slot of
 * the bounded buffer (waiting for the writer to free one only when the buffer
 * is full: the one case where the process waits longer than a copy), hands
 * the slot to the writer and drops the protection, which wakes the faulting
 * task.  A fault on a page the writer has claimed needs nothing: the writer
 * un-protects the page as soon as it has read it, and that wakes the task.
 * A fault on a page already done is un-protected again (it can only be a
 * late duplicate message, or a page the kernel re-protected after a
 * discard), so no task ever sleeps on a page nobody will release.
 *
 * Discard events (MADV_DONTNEED/REMOVE, munmap, mremap) are handled under
 * event_lock: the kernel discards the pages only after we have read the
 * message, so pages not yet saved by then are lost, and recorded as such;
 * pages the writer is reading at that moment are marked suspect so that it
 * records them as lost too, instead of saving what may be zeros.
 *
 * While a discard event is queued and not yet read, the kernel refuses
 * every (un)protect with EAGAIN.  The fault thread is the one that reads
 * events, so it never spins on EAGAIN: it reads what is queued (handling
 * events at once, keeping faults for after) and tries again.  For the same
 * reason it never waits for the writer in place: when FAULT_PENDING faults
 * wait on the writer's run it stops serving faults but goes on reading the
 * uffd and watching stop_fd.  A read that raced a move or a discard is
 * caught by events_seq (snapshot-internal.h) before its slot is handed on.
 *
 * Runs only on the fault thread of its snapshot; its state is a struct
 * fault_ctx on that thread's stack.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "snapshot-internal.h"
#include "testpause.h"
#include "uffd.h"

#define FAULT_BATCH	64
#define FAULT_PENDING	256	/* faults on pages the writer is saving */

/*
 * A fault on a page the writer has claimed is normally woken by the
 * writer's un-protect.  In case the page has moved since (mremap) and the
 * writer un-protected the old address, the fault thread keeps such faults
 * and un-protects each fault address itself once the page is done: no task
 * ever sleeps on a page nobody will release.
 */
struct pending_fault {
	struct region	*r;
	uint64_t	 page;
	uint64_t	 addr;
};

#define FAULT_QUEUE	4096	/* faults read, not yet served: one per blocked task */

struct fault_ctx {
	struct snapshot		*s;
	struct iovec		 iov[HUGE_PAGES];	/* a copy's slots */
	/* A huge page copied whole (fault_serve_huge()). */
	uint32_t		 huge_slots[HUGE_PAGES];
	uint64_t		 huge_where[HUGE_PAGES];
	struct pending_fault	 pending[FAULT_PENDING];
	unsigned		 npending;
	uint64_t		 queue[FAULT_QUEUE];	/* fault addresses, FIFO */
	unsigned		 head, count;
	uint64_t		 last_serve_ns;	/* 0: spinning is over */
};

#define FAULT_SPIN_NS	20000	/* look for the next fault this long before sleeping */

static int	fault_read(struct fault_ctx *);

/*
 * Un-protect (and wake) a range from the fault thread.  EAGAIN means an
 * event is queued: read it, then try again.  ENOENT means nothing of the
 * range is registered any more (unmapped or moved away): wake whoever
 * faulted there.  Any other failure fails the snapshot (ESRCH: the armed
 * mm is gone); the writer then closes the uffd, which releases every task.
 */
static void
fault_unprotect(struct fault_ctx *fc, uint64_t addr, uint64_t len)
{
	struct snapshot *s = fc->s;

	while (uffd_unprotect(s->uffd, addr, len, 1) == -1) {
		if (errno == ENOENT) {
			(void)uffd_wake(s->uffd, addr, len);
			return;
		}
		if (errno == ESRCH) {
			snapshot_mm_gone(s);
			return;
		}
		if (errno != EAGAIN) {
			snapshot_set_error(s, "un-protect 0x%llx+%llu on a "
			    "fault: %s", (unsigned long long)addr,
			    (unsigned long long)len, strerror(errno));
			atomic_store(&s->fault_error, errno);
			return;
		}
		if (atomic_load(&s->cancel) || atomic_load(&s->fault_error) ||
		    fault_read(fc) == -1)
			return;
		sched_yield();
	}
}

static void
fault_pending_check(struct fault_ctx *fc)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < fc->npending; i++) {
		struct pending_fault *p = &fc->pending[i];

		if (pagestate_is_done(&p->r->ps, p->page)) {
			snapshot_track_note(fc->s, p->r, p->page, 1);
			fault_unprotect(fc, p->addr, PAGE_4K);
		} else
			fc->pending[kept++] = *p;
	}
	fc->npending = kept;
}

/*
 * The caller makes room first (fault_thread_main serves no fault while the
 * array is full), so the thread never waits here: it goes back to reading
 * the uffd, which lets the writer's un-protect through when a discard event
 * is queued, and to watching stop_fd.
 */
static void
fault_pending_add(struct fault_ctx *fc, struct region *r, uint64_t page,
    uint64_t addr)
{
	fc->pending[fc->npending++] = (struct pending_fault){ r, page, addr };
}

/*
 * Mark [start, start+len) of the process (current addresses) as discarded:
 * pages nobody has claimed are lost; pages the writer is reading now are
 * suspect.
 */
static void
fault_discard(struct snapshot *s, uint64_t start, uint64_t len)
{
	uint64_t	 first = start & ~(PAGE_4K - 1), end = start + len;
	struct region	*run_region = NULL;
	uint64_t	 run_first = 0, run_len = 0;

	for (uint64_t addr = first; addr < end; addr += PAGE_4K) {
		uint64_t	 page;
		struct region	*r = snapshot_region_at(s, addr, &page);

		if (r == NULL)
			continue;
		if (pagestate_claim(&r->ps, page)) {
			pagestate_set_done(&r->ps, page);
			if (r == run_region && run_first + run_len == page) {
				run_len++;
				continue;
			}
			if (run_len > 0)
				snapshot_lost_push(s, run_region->index,
				    run_first, run_len);
			run_region = r;
			run_first = page;
			run_len = 1;
		} else if (!pagestate_is_done(&r->ps, page))
			pagestate_set_suspect(&r->ps, page);
	}
	if (run_len > 0)
		snapshot_lost_push(s, run_region->index, run_first, run_len);
	/* Nothing of the range is saved later: let the process write it. */
	if (uffd_unprotect(s->uffd, first,
	    ((end + PAGE_4K - 1) & ~(PAGE_4K - 1)) - first, 1) == -1) {
		if (errno == ESRCH)
			snapshot_mm_gone(s);
		else if (errno != ENOENT && errno != EINVAL)
			log_debug("snapshot %llu: un-protect discarded range: "
			    "%s", (unsigned long long)s->id, strerror(errno));
	}
}

/*
 * The process moved [from, from+len) to `to`: follow the pages there.
 * Beyond SNAPSHOT_MOVES_MAX moves the move is not followed: while it is not
 * in moves[], [from, from+len) still names its pages, so they are marked
 * discarded there (unsaved ones lost, ones being read suspect, hence lost
 * too), and the range is released where it is now, since nothing of ours
 * is there for a write to wait on.
 */
static void
fault_move(struct snapshot *s, uint64_t from, uint64_t to, uint64_t len)
{
	uint32_t n = atomic_load(&s->nmoves);

	if (n == SNAPSHOT_MOVES_MAX) {
		log_warnx("snapshot %llu: process moved 0x%llx+%llu to 0x%llx; "
		    "more than %d moves: its unsaved pages are recorded as lost",
		    (unsigned long long)s->id, (unsigned long long)from,
		    (unsigned long long)len, (unsigned long long)to,
		    SNAPSHOT_MOVES_MAX);
		fault_discard(s, from, len);
		if (uffd_unprotect(s->uffd, to, len, 1) == -1 &&
		    errno == ESRCH)
			snapshot_mm_gone(s);
		return;
	}
	log_info("snapshot %llu: process moved 0x%llx+%llu to 0x%llx; "
	    "following it", (unsigned long long)s->id,
	    (unsigned long long)from, (unsigned long long)len,
	    (unsigned long long)to);
	s->moves[n] = (struct move){ from, to, len };
	atomic_store_explicit(&s->nmoves, n + 1, memory_order_release);
}

/*
 * Pre-armed, nothing is saved yet: a discarded range reads as zeros from now
 * on, which is what it will hold at the armed instant, so it is only noted
 * to be protected again (with WP_UNPOPULATED that protects empty ptes too).
 * A munmap or mremap breaks the pre-arm: the arm fails, nothing is saved.
 */
static void
fault_prearm_event(struct snapshot *s, const struct uffd_msg *m)
{
	uint64_t start = m->arg.remove.start, end = m->arg.remove.end;

	if (m->event == UFFD_EVENT_REMOVE &&
	    (s->features & UFFD_FEATURE_WP_UNPOPULATED)) {
		log_debug("snapshot %llu: pre-armed process discarded "
		    "0x%llx-0x%llx", (unsigned long long)s->id,
		    (unsigned long long)start, (unsigned long long)end);
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region	*r = &s->regions[i];
			uint64_t	 lo = start > r->start ? start : r->start;
			uint64_t	 hi = end < r->start + r->length ? end :
					    r->start + r->length;

			if (lo < hi)
				snapshot_prearm_note(r,
				    (lo - r->start) >> PAGE_SHIFT_4K,
				    (hi - lo + PAGE_4K - 1) >> PAGE_SHIFT_4K);
		}
		return;
	}
	if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP ||
	    m->event == UFFD_EVENT_REMAP) {
		log_warnx("snapshot %llu: the pre-armed process %s; the arm "
		    "will fail", (unsigned long long)s->id,
		    m->event == UFFD_EVENT_REMAP ? "moved part of a region" :
		    m->event == UFFD_EVENT_UNMAP ? "unmapped part of a region" :
		    "discarded pages and the kernel lacks WP_UNPOPULATED");
		atomic_store(&s->prearm_broken, (int)m->event);
	}
}

/* Tracking: the next snapshot saves the range whole, and says why. */
static void
fault_track_event(struct snapshot *s, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		track_event(s->track, m->arg.remove.start, m->arg.remove.end,
		    ZSNAP_WHOLE_DISCARDED);
		break;
	case UFFD_EVENT_UNMAP:
		track_event(s->track, m->arg.remove.start, m->arg.remove.end,
		    ZSNAP_WHOLE_UNMAPPED);
		break;
	case UFFD_EVENT_REMAP:
		track_event(s->track, m->arg.remap.from, m->arg.remap.from +
		    m->arg.remap.len, ZSNAP_WHOLE_MOVED);
		track_event(s->track, m->arg.remap.to, m->arg.remap.to +
		    m->arg.remap.len, ZSNAP_WHOLE_MOVED);
		break;
	}
}

static void
fault_event(struct snapshot *s, const struct uffd_msg *m)
{
	if (atomic_load(&s->prearm_active)) {
		fault_prearm_event(s, m);
		return;
	}
	if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP ||
	    m->event == UFFD_EVENT_REMAP)
		atomic_fetch_add(&s->address_events, 1);
	if (s->track != NULL)
		fault_track_event(s, m);
	switch (m->event) {
	case UFFD_EVENT_REMOVE:		/* MADV_DONTNEED, MADV_REMOVE */
	case UFFD_EVENT_UNMAP:		/* munmap, or mremap's old range */
		log_debug("snapshot %llu: process %s 0x%llx-0x%llx",
		    (unsigned long long)s->id, m->event == UFFD_EVENT_REMOVE ?
		    "discarded" : "unmapped",
		    (unsigned long long)m->arg.remove.start,
		    (unsigned long long)m->arg.remove.end);
		fault_discard(s, m->arg.remove.start,
		    m->arg.remove.end - m->arg.remove.start);
		break;
	case UFFD_EVENT_REMAP:
		/*
		 * The ptes moved with their protection: pages not yet saved
		 * are still protected at the new address, where faults now
		 * come from and where the writer now reads them.
		 */
		fault_move(s, m->arg.remap.from, m->arg.remap.to,
		    m->arg.remap.len);
		break;
	default:
		log_debug("snapshot %llu: ignoring uffd event %u",
		    (unsigned long long)s->id, m->event);
		break;
	}
}

/* The stream a fault at page extends, or -1. */
static int
fault_stream(const struct region *r, uint64_t page)
{
	for (unsigned k = 0; k < FAULT_STREAMS; k++)
		if (r->stream_width[k] != 0 && page >= r->stream_next[k] &&
		    page - r->stream_next[k] < FAULT_STREAM_SLACK)
			return (int)k;
	return -1;
}

/* How many pages to copy for a fault at page; picks the stream it extends. */
static uint32_t
fault_width(struct region *r, uint64_t page, unsigned *stream)
{
	int k = fault_stream(r, page);

	if (k >= 0) {
		*stream = (unsigned)k;
		return r->stream_width[k] * 2 > FAULT_AROUND_MAX ?
		    FAULT_AROUND_MAX : r->stream_width[k] * 2;
	}
	*stream = r->stream_victim;
	r->stream_victim = (r->stream_victim + 1) % FAULT_STREAMS;
	return 1;
}

/*
 * A fault taken at t0 is served: note how long its task was held, as the
 * longest and in the histogram (whole microseconds, as replies give them).
 * Only this thread writes the histogram; readers see each atomic whole.
 */
static void
fault_note_stall(struct snapshot *s, uint64_t t0)
{
	uint64_t stall = now_ns() - t0, max = atomic_load(&s->stall_max_ns);

	while (stall > max &&
	    !atomic_compare_exchange_weak(&s->stall_max_ns, &max, stall))
		;
	atomic_fetch_add(&s->stall_count[snapshot_hist_bucket(stall / 1000)],
	    1);
	atomic_fetch_add(&s->stall_sum_us, stall / 1000);
}

/*
 * Pre-armed: let the write through and note the pages, to be protected
 * again at the arm.  Sequential writers get the same fault-around as when
 * armed, so a stream costs one round trip per run.  Under prearm_lock.
 */
static void
fault_prearm_serve(struct fault_ctx *fc, uint64_t page_addr)
{
	struct snapshot	*s = fc->s;
	struct region	*r;
	uint64_t	 page, block;
	uint32_t	 width;
	unsigned	 stream;

	r = snapshot_region_at(s, page_addr, &page);
	if (r == NULL) {
		uffd_wake(s->uffd, page_addr, PAGE_4K);
		return;
	}
	/* Nothing is copied yet: let a whole huge page through, unsplit. */
	if (snapshot_huge_block(s, r, page, &block)) {
		snapshot_prearm_note(r, block, HUGE_PAGES);
		fault_unprotect(fc, r->start + block * PAGE_4K, HUGE_BYTES);
		atomic_fetch_add(&s->prearm_pages, HUGE_PAGES);
		return;
	}
	width = fault_width(r, page, &stream);
	if (width > r->npages - page)
		width = (uint32_t)(r->npages - page);
	/* Never into the next 2 MiB: a huge page there would be split. */
	if (width > (HUGE_BYTES - page_addr % HUGE_BYTES) / PAGE_4K)
		width = (uint32_t)((HUGE_BYTES - page_addr % HUGE_BYTES) /
		    PAGE_4K);
	r->stream_next[stream] = page + width;
	r->stream_width[stream] = width;
	snapshot_prearm_note(r, page, width);
	fault_unprotect(fc, page_addr, width * PAGE_4K);
	atomic_fetch_add(&s->prearm_pages, width);
}

/*
 * Read pages i of `unread` (bits over the run from page of r) from addr[i]
 * (or r's file) into their slots, one page each, un-protecting each where
 * it was read.  Used again for the pages that moved while the run was read.
 */
static void
fault_reread(struct fault_ctx *fc, struct region *r, uint64_t page,
    const uint32_t *slots, const uint64_t *addr, uint32_t unread,
    uint32_t *bad)
{
	struct snapshot	*s = fc->s;

	for (; unread != 0; unread &= unread - 1) {
		unsigned	i = (unsigned)__builtin_ctz(unread);
		struct iovec	l = { pagebuf_mem(&s->buf, slots[i]), PAGE_4K };
		ssize_t		got = snapshot_read_pages(s, r, page + i, &l, 1,
				    addr[i]);

		if (got == -1 && errno == ESRCH)
			snapshot_mm_gone(s);
		if (got == (ssize_t)PAGE_4K)
			*bad &= ~(1U << i);
		else
			*bad |= 1U << i;
		fault_unprotect(fc, addr[i], PAGE_4K);
	}
}

/*
 * A first buffer slot for the faulting page into *slot, waiting for the
 * writer if the buffer is full (and then telling the control layer, at most
 * once a second; t0 is when the fault was taken).  -1 when cancelled.
 */
static int
fault_slot_get(struct snapshot *s, uint64_t t0, uint32_t *slot)
{
	int	waited;

	if (pagebuf_get(&s->buf, slot, &waited) == -1)
		return -1;
	if (waited) {
		uint64_t last = atomic_load(&s->last_full_notify_ns);

		if (t0 - last >= 1000000000ULL &&
		    atomic_compare_exchange_strong(&s->last_full_notify_ns,
		    &last, t0))
			snapshot_notify(s, NOTIFY_BUFFER_FULL);
	}
	return 0;
}

/*
 * Fault-around: extend the run from page (claimed, its slot in slots[0])
 * over the pages after it, up to the width the stream's writes call for.
 * Only with slots free now and pages nobody else has, and only while the
 * pages lie contiguous at page_addr.  Returns the run's length.
 */
static uint32_t
fault_around(struct snapshot *s, struct region *r, uint64_t page,
    uint64_t page_addr, uint32_t *slots)
{
	uint32_t	 width, n = 1;
	unsigned	 stream;

	width = fault_width(r, page, &stream);
	/* Never into the next 2 MiB: a huge page there would be split. */
	while (n < width && page + n < r->npages &&
	    (page_addr + n * PAGE_4K) % HUGE_BYTES != 0 &&
	    snapshot_page_addr(s, r, page + n) == page_addr + n * PAGE_4K) {
		if (pagebuf_try_get(&s->buf, &slots[n]) == -1)
			break;
		if (!pagestate_claim(&r->ps, page + n)) {
			pagebuf_release(&s->buf, &slots[n], 1);
			break;
		}
		n++;
	}
	r->stream_next[stream] = page + n;
	r->stream_width[stream] = width;
	return n;
}

/*
 * Copy the run of n pages at page_addr (from page of r) into its slots, then un-protect it
 * with one ioctl, which wakes the faulting task.  where[] gets each page's
 * address; the pages that could not be read are set in the returned mask.
 */
static uint32_t
fault_copy_run(struct fault_ctx *fc, struct region *r, uint64_t page,
    const uint32_t *slots, uint64_t *where, uint32_t n, uint64_t page_addr)
{
	struct snapshot	*s = fc->s;
	struct iovec	*local = fc->iov;
	uint32_t	 bad = 0;
	ssize_t		 got;

	/* Still write-protected: the content is the armed instant's. */
	for (uint32_t i = 0; i < n; i++) {
		local[i].iov_base = pagebuf_mem(&s->buf, slots[i]);
		local[i].iov_len = PAGE_4K;
		where[i] = page_addr + i * PAGE_4K;
	}
	got = snapshot_read_pages(s, r, page, local, n, page_addr);
	if (got == -1 && errno == ESRCH)
		snapshot_mm_gone(s);
	for (uint32_t i = 0; i < n; i++)
		if (got < 0 || (uint64_t)got < (i + 1) * PAGE_4K)
			bad |= 1U << i;		/* unmapped: lost */
	snapshot_track_note(s, r, page, n);
	fault_unprotect(fc, page_addr, n * PAGE_4K);
	return bad;
}

/*
 * Events this thread handled since seq (read before the run was claimed):
 * check the run again, reading each page that moved meanwhile where it is
 * now, until no event comes between.  *bad as for fault_reread().
 */
static void
fault_recheck_run(struct fault_ctx *fc, struct region *r, uint64_t page,
    const uint32_t *slots, uint64_t *where, uint32_t n, uint64_t seq,
    uint32_t *bad)
{
	struct snapshot	*s = fc->s;

	while (atomic_load_explicit(&s->events_seq, memory_order_relaxed) !=
	    seq && !atomic_load(&s->fault_error)) {
		uint32_t moved = 0;

		seq = atomic_load_explicit(&s->events_seq,
		    memory_order_relaxed);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t to = snapshot_page_addr(s, r, page + i);

			if (!pagestate_is_suspect(&r->ps, page + i) &&
			    to != where[i]) {
				where[i] = to;
				moved |= 1U << i;
			}
		}
		if (moved == 0)
			break;
		fault_reread(fc, r, page, slots, where, moved, bad);
	}
}

/*
 * Hand the run's slots to the writer, or, for pages unread (bad) or
 * discarded meanwhile (suspect), free them and record the pages lost;
 * either way the pages are done.
 */
static void
fault_publish_run(struct snapshot *s, struct region *r, uint64_t page,
    uint32_t *slots, uint32_t n, uint32_t bad)
{
	uint32_t	 lost = bad;

	for (uint32_t i = 0; i < n; i++)
		if (pagestate_is_suspect(&r->ps, page + i))
			lost |= 1U << i;
	for (uint32_t i = 0; i < n; i++) {
		if (!(lost >> i & 1))
			pagebuf_publish(&s->buf, slots[i], r->index, page + i);
		else {
			pagebuf_release(&s->buf, &slots[i], 1);
			snapshot_lost_push(s, r->index, page + i, 1);
		}
		pagestate_set_done(&r->ps, page + i);
	}
}

#define FAULT_HUGE_RESERVE	(4 * FAULT_AROUND_MAX)	/* slots left to other faults */

/*
 * A huge page's pages that fault_serve_huge() claimed when the writer had
 * some (its slots in fc->huge_slots, one per page): copy and un-protect
 * them in runs, as fault-around would, and free the other slots.  Claims
 * are never given back: the writer skips a page claimed by another.
 */
static void
fault_serve_claimed(struct fault_ctx *fc, struct region *r, uint64_t block,
    const uint64_t *mine, uint64_t seq)
{
	struct snapshot	*s = fc->s;
	uint64_t	 addr = r->start + block * PAGE_4K;
	uint32_t	*slots = fc->huge_slots, nfree = 0;

	for (unsigned i = 0; i < HUGE_PAGES;) {
		unsigned	n = 0;
		uint32_t	bad;

		while (n < FAULT_AROUND_MAX && i + n < HUGE_PAGES &&
		    (mine[(i + n) / 64] >> ((i + n) % 64) & 1))
			n++;
		if (n == 0) {
			slots[nfree++] = slots[i++];	/* nfree <= i */
			continue;
		}
		bad = fault_copy_run(fc, r, block + i, slots + i,
		    fc->huge_where + i, n, addr + i * PAGE_4K);
		fault_recheck_run(fc, r, block + i, slots + i,
		    fc->huge_where + i, n, seq, &bad);
		fault_publish_run(s, r, block + i, slots + i, n, bad);
		atomic_fetch_add(&s->pages_faulted, n);
		i += n;
	}
	pagebuf_release(&s->buf, slots, nfree);
}

/*
 * A fault that continues a sequential stream into a huge page still mapped
 * whole (hugepage.c): copy all of it and un-protect the 2 MiB with one
 * call, so the huge page stays whole and the stream pays one round trip
 * for 512 pages.  Only when nobody has claimed any of it, and when 512
 * slots are free with FAULT_HUGE_RESERVE more left for other faults: the
 * buffer's back-pressure is unchanged, since this never waits for slots.
 * The checks against events are fault_recheck_run()'s, 16 pages at a
 * time.  Returns 1 if served, 0 if the fault is to be served as usual.
 */
static int
fault_serve_huge(struct fault_ctx *fc, struct region *r, uint64_t page,
    uint64_t seq)
{
	struct snapshot	*s = fc->s;
	uint64_t	 block, addr, t0 = now_ns(), mine[HUGE_WORDS];
	uint32_t	*slots = fc->huge_slots;
	ssize_t		 got;
	int		 k = fault_stream(r, page), whole = 1;

	if (k < 0 || !snapshot_huge_block(s, r, page, &block) ||
	    !snapshot_huge_unclaimed(r, block) ||
	    pagebuf_try_get_n(&s->buf, slots, HUGE_PAGES,
	    FAULT_HUGE_RESERVE) == -1)
		return 0;
	for (unsigned w = 0; w < HUGE_WORDS; w++) {
		mine[w] = pagestate_claim_mask(&r->ps, block / 64 + w, ~0ULL);
		whole &= mine[w] == ~0ULL;
	}
	if (!whole) {
		/* The writer took a run meanwhile: serve what is ours. */
		fault_serve_claimed(fc, r, block, mine, seq);
		return (int)(mine[(page - block) / 64] >>
		    ((page - block) % 64) & 1);
	}
	addr = r->start + block * PAGE_4K;
	for (unsigned i = 0; i < HUGE_PAGES; i++) {
		fc->iov[i].iov_base = pagebuf_mem(&s->buf, slots[i]);
		fc->iov[i].iov_len = PAGE_4K;
		fc->huge_where[i] = addr + i * PAGE_4K;
	}
	/* Still write-protected: the content is the armed instant's. */
	got = snapshot_read_pages(s, r, block, fc->iov, HUGE_PAGES,
	    addr);
	if (got == -1 && errno == ESRCH)
		snapshot_mm_gone(s);
	snapshot_track_note(s, r, block, HUGE_PAGES);
	fault_unprotect(fc, addr, HUGE_BYTES);
	for (unsigned i = 0; i < HUGE_PAGES; i += FAULT_AROUND_MAX) {
		uint32_t bad = 0;

		for (unsigned j = 0; j < FAULT_AROUND_MAX; j++)
			if (got < 0 || (uint64_t)got < (i + j + 1) * PAGE_4K)
				bad |= 1U << j;	/* unmapped: lost */
		fault_recheck_run(fc, r, block + i, slots + i,
		    fc->huge_where + i, FAULT_AROUND_MAX, seq, &bad);
		fault_publish_run(s, r, block + i, slots + i,
		    FAULT_AROUND_MAX, bad);
	}
	r->stream_next[k] = block + HUGE_PAGES;
	r->stream_width[k] = FAULT_AROUND_MAX;
	atomic_fetch_add(&s->pages_faulted, HUGE_PAGES);
	atomic_fetch_add(&s->huge_faulted, 1);
	fault_note_stall(s, t0);
	return 1;
}

/*
 * Serve one write-protect fault at addr: copy the page (and, when the
 * writes are sequential, the unclaimed pages after it) into buffer slots,
 * then un-protect the run with one ioctl, which wakes the faulting task.
 * Like the writer's, the read is checked against events_seq after the
 * un-protect (snapshot-internal.h): a page discarded meanwhile is recorded
 * lost, a page moved meanwhile is read again where it is now; only then is
 * a slot handed to the writer.
 */
static void
fault_serve(struct fault_ctx *fc, uint64_t addr)
{
	struct snapshot	*s = fc->s;
	struct region	*r;
	uint64_t	 page, page_addr = addr & ~(PAGE_4K - 1), t0, seq;
	uint64_t	 where[FAULT_AROUND_MAX];
	uint32_t	 slots[FAULT_AROUND_MAX], n, bad;

	if (atomic_load(&s->prearm_active)) {
		pthread_mutex_lock(&s->prearm_lock);
		if (atomic_load(&s->prearm_active)) {
			fault_prearm_serve(fc, page_addr);
			pthread_mutex_unlock(&s->prearm_lock);
			return;
		}
		pthread_mutex_unlock(&s->prearm_lock);
	}
	/* Only this thread changes it: a plain load is current. */
	seq = atomic_load_explicit(&s->events_seq, memory_order_relaxed);
	r = snapshot_region_at(s, page_addr, &page);
	if (r == NULL) {
		/*
		 * Nothing of ours is here (a move beyond SNAPSHOT_MOVES_MAX
		 * left it protected): release it, or the task would fault
		 * again forever.
		 */
		fault_unprotect(fc, page_addr, PAGE_4K);
		return;
	}
	if (fault_serve_huge(fc, r, page, seq))
		return;
	if (!pagestate_claim(&r->ps, page)) {
		if (pagestate_is_done(&r->ps, page)) {
			/* Saved, or unchanged since an incremental's parent. */
			snapshot_track_note(s, r, page, 1);
			fault_unprotect(fc, page_addr, PAGE_4K);
		} else
			fault_pending_add(fc, r, page, page_addr);
		return;
	}

	t0 = now_ns();
	if (fault_slot_get(s, t0, &slots[0]) == -1) {
		/* Cancelled: closing the uffd will release the task. */
		return;
	}
	n = fault_around(s, r, page, page_addr, slots);
	testpause_at(s, TESTPAUSE_FAULT, r->index, page, n);
	bad = fault_copy_run(fc, r, page, slots, where, n, page_addr);
	fault_recheck_run(fc, r, page, slots, where, n, seq, &bad);
	fault_publish_run(s, r, page, slots, n, bad);
	atomic_fetch_add(&s->pages_faulted, n);
	fault_note_stall(s, t0);
}

/*
 * One read() of the uffd: events are handled at once (under event_lock, see
 * snapshot-internal.h), write-protect faults are queued for fault_serve().
 * Returns 0 (also when nothing was there), or -1 when the snapshot must stop.
 */
static int
fault_read(struct fault_ctx *fc)
{
	struct snapshot	*s = fc->s;
	struct uffd_msg	 msgs[FAULT_BATCH];
	size_t		 room = FAULT_QUEUE - fc->count;
	ssize_t		 n;
	int		 count;

	if (room == 0)
		return 0;
	if (room > FAULT_BATCH)
		room = FAULT_BATCH;
	pthread_mutex_lock(&s->event_lock);
	n = read(s->uffd, msgs, room * sizeof(msgs[0]));
	count = n > 0 ? (int)(n / (ssize_t)sizeof(msgs[0])) : 0;
	for (int i = 0; i < count; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			continue;
		fault_event(s, &msgs[i]);
		/* After its effect is applied: see snapshot-internal.h. */
		atomic_fetch_add_explicit(&s->events_seq, 1,
		    memory_order_release);
	}
	pthread_mutex_unlock(&s->event_lock);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		atomic_store(&s->fault_error, errno);
		snapshot_set_error(s, "read from the userfaultfd: %s",
		    strerror(errno));
		return -1;
	}
	for (int i = 0; i < count; i++) {
		uint64_t addr = msgs[i].arg.pagefault.address & ~(PAGE_4K - 1);

		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (!(msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			/* Only WP is registered; be safe anyway. */
			uffd_wake(s->uffd, addr, PAGE_4K);
			continue;
		}
		fc->queue[(fc->head + fc->count++) % FAULT_QUEUE] = addr;
	}
	return 0;
}

/*
 * Tracking: the uffd outlives this thread (a tracker takes it over), so
 * nobody may be left asleep on a fault this thread read: release every
 * fault it kept or queued, noting the page written.  Not tracking, closing
 * the uffd releases them.
 */
static void
fault_track_unprotect(struct fault_ctx *fc, uint64_t addr)
{
	struct snapshot *s = fc->s;

	while (uffd_unprotect(s->uffd, addr, PAGE_4K, 1) == -1) {
		if (errno == ENOENT)
			(void)uffd_wake(s->uffd, addr, PAGE_4K);
		/* EAGAIN: an event is queued; read it (faults are queued). */
		if (errno != EAGAIN || fault_read(fc) == -1)
			return;
		sched_yield();
	}
}

static void
fault_track_release(struct fault_ctx *fc)
{
	struct snapshot *s = fc->s;

	if (s->track == NULL)
		return;
	for (unsigned i = 0; i < fc->npending; i++) {
		snapshot_track_note(s, fc->pending[i].r, fc->pending[i].page, 1);
		fault_track_unprotect(fc, fc->pending[i].addr);
	}
	fc->npending = 0;
	while (fc->count > 0) {
		uint64_t	 addr = fc->queue[fc->head], page;
		struct region	*r = snapshot_region_at(s, addr, &page);

		fc->head = (fc->head + 1) % FAULT_QUEUE;
		fc->count--;
		if (r != NULL)
			snapshot_track_note(s, r, page, 1);
		fault_track_unprotect(fc, addr);
	}
}

void *
fault_thread_main(void *arg)
{
	struct fault_ctx *fc;
	struct snapshot	*s = arg;
	struct pollfd	 pfd[2] = {
		{ .fd = s->uffd, .events = POLLIN },
		{ .fd = s->stop_fd, .events = POLLIN },
	};

	fc = calloc(1, sizeof(*fc));
	if (fc == NULL) {
		atomic_store(&s->fault_error, ENOMEM);
		snapshot_set_error(s, "fault thread: %s", strerror(ENOMEM));
		return NULL;
	}
	fc->s = s;
	for (;;) {
		if (fc->npending > 0)
			fault_pending_check(fc);
		/*
		 * A task we just woke usually faults again within a few
		 * microseconds: look for its next fault for a moment before
		 * sleeping in poll(), which would add a wake-up to its stall.
		 */
		if (fc->last_serve_ns != 0) {
			uint64_t until = fc->last_serve_ns + FAULT_SPIN_NS;

			while (fc->count == 0 && now_ns() < until &&
			    !atomic_load(&s->cancel))
				if (fault_read(fc) == -1)
					goto out;
			fc->last_serve_ns = 0;
			if (fc->count > 0)
				goto serve;
		}
		if (poll(pfd, 2, fc->npending > 0 ? 1 : -1) == -1) {
			if (errno == EINTR)
				continue;
			atomic_store(&s->fault_error, errno);
			snapshot_set_error(s, "poll on the userfaultfd: %s",
			    strerror(errno));
			break;
		}
		if (pfd[1].revents & POLLIN)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			atomic_store(&s->fault_error, EPIPE);
			snapshot_set_error(s, "the userfaultfd reported an error");
			break;
		}
		if (fault_read(fc) == -1)
			break;
serve:
		while (fc->count > 0 && !atomic_load(&s->cancel)) {
			uint64_t addr;

			/*
			 * Every pending fault waits on one writer run: serve
			 * nothing more until it ends, but go back to reading
			 * events (the writer's un-protect may be waiting for
			 * one to be read) and to watching stop_fd.
			 */
			if (fc->npending == FAULT_PENDING) {
				fault_pending_check(fc);
				if (fc->npending == FAULT_PENDING)
					break;
			}
			addr = fc->queue[fc->head];

			fc->head = (fc->head + 1) % FAULT_QUEUE;
			fc->count--;
			fault_serve(fc, addr);
			fc->last_serve_ns = now_ns();
		}
	}
out:
	fault_track_release(fc);
	free(fc);
	return NULL;
}
