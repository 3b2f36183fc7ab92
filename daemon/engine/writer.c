/*
 * The writer thread: arms the snapshot, saves every page exactly once, and
 * finishes (or tears down) the snapshot.
 *
 * 1. Arming (arm.c): register and write-protect every region, check that
 *    the protection landed in the process we were told about, and for a
 *    pre-arm wait for snapshot-arm and protect again what was written
 *    meanwhile; then tell the main thread ARMED.  That instant is the
 *    snapshot's point in time.  The test hook's hold at arming sits between
 *    arm_begin() and arm_finish(), called from here with the other holds.
 * 2. Sweep: regions in address order, runs of up to WRITER_RUN pages.  Before
 *    each run it drains the page buffer (pages the fault thread copied), so
 *    a faulting task waits for a free slot no longer than one run takes.  It
 *    claims the run's unclaimed pages, reads them from the armed mm
 *    (readmem.c) while they are still protected, un-protects them (waking
 *    any task that faulted on them meanwhile), checks that no move or
 *    discard raced the read (events_seq, snapshot-internal.h), then hands
 *    them to the output.
 * 3. Drain until every page is accounted for, close the uffd (which drops
 *    every remaining protection), finish the output: index, footer, fsync,
 *    rename into place.
 * On any failure or cancel: stop the fault thread, close the uffd (the
 * process runs on, unprotected), remove the partial file.
 *
 * An S3 destination (upload.c) starts its upload before step 1, so that a
 * refusal from S3 fails the start with nothing armed, and aborts it at the
 * end unless the object was completed.
 *
 * Everything here runs on the snapshot's writer thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"
#include "snapshot-internal.h"
#include "testpause.h"
#include "uffd.h"

#define WRITER_RUN	64		/* pages per sweep read: 256 KiB */
#define DRAIN_BATCH	256

struct writer_run;

struct writer {
	struct snapshot	*s;
	uint8_t		*readbuf;	/* HUGE_PAGES pages */
	struct writer_run *huge;	/* HUGE_WORDS runs: writer_huge_run() */
	uint64_t	 pages_out;	/* pages given to the output (any kind) */
	struct ratelimit rl;		/* max-bandwidth (ratelimit.h) */
	uint32_t	 slots[DRAIN_BATCH];
};

static int
writer_output(struct writer *w, uint32_t region, uint64_t first, uint32_t n,
    const void *data)
{
	struct snapshot *s = w->s;

	ratelimit_pace(s, &w->rl, n);
	if (output_pages(s->out, region, first, n, data) == -1) {
		snapshot_set_error(s, "%s", output_error(s->out));
		return -1;
	}
	w->pages_out += n;
	atomic_fetch_add(&s->pages_saved, n);
	atomic_store(&s->bytes_written, output_bytes(s->out));
	return 0;
}

/*
 * Record n LOST pages.  discarded: the process discarded them, so the
 * on_discard policy decides; otherwise they could not be read at all
 * (stopped.c) and are recorded whatever it says.
 */
static int
writer_output_lost(struct writer *w, uint32_t region, uint64_t first,
    uint64_t n, int discarded)
{
	struct snapshot *s = w->s;

	if (discarded && s->req.on_discard == DISCARD_FAIL) {
		snapshot_set_error(s, "region %u: %llu pages from page %llu "
		    "were discarded by the process before they were saved "
		    "(on_discard fail)", region, (unsigned long long)n,
		    (unsigned long long)first);
		return -1;
	}
	if (output_lost(s->out, region, first, n) == -1) {
		snapshot_set_error(s, "%s", output_error(s->out));
		return -1;
	}
	w->pages_out += n;
	atomic_fetch_add(&s->pages_lost, n);
	return 0;
}

/* Save what the fault thread left in the buffer, and lost ranges. */
/*
 * A buffer more than half full means the process writes faster than the
 * output drains: compress in a hurry (output_set_hurry()) until it is back
 * under a quarter.
 */
static void
writer_pressure(struct snapshot *s)
{
	uint32_t used = pagebuf_used(&s->buf);

	if ((uint64_t)used * 2 >= s->buf.nslots)
		output_set_hurry(s->out, 1);
	else if ((uint64_t)used * 4 <= s->buf.nslots)
		output_set_hurry(s->out, 0);
}

static int
writer_drain(struct writer *w)
{
	struct snapshot	*s = w->s;
	uint32_t	 n;

	writer_pressure(s);
	while ((n = pagebuf_take(&s->buf, w->slots, DRAIN_BATCH)) > 0) {
		writer_pressure(s);
		for (uint32_t i = 0; i < n; i++) {
			struct pagebuf_slot *d = &s->buf.desc[w->slots[i]];
			int rc;

			rc = writer_output(w, d->region, d->page, 1,
			    pagebuf_mem(&s->buf, w->slots[i]));
			/*
			 * The output has copied the page: free the slot now,
			 * not after the batch, so a fault waiting for one
			 * does not also wait for the chunk's compression.
			 */
			pagebuf_release(&s->buf, &w->slots[i], 1);
			if (rc == -1) {
				pagebuf_release(&s->buf, w->slots + i + 1,
				    n - i - 1);
				return -1;
			}
		}
	}
	for (;;) {
		struct lost_range l;

		pthread_mutex_lock(&s->lost_lock);
		if (s->nlost == 0) {
			pthread_mutex_unlock(&s->lost_lock);
			break;
		}
		l = s->lost[--s->nlost];
		pthread_mutex_unlock(&s->lost_lock);
		if (writer_output_lost(w, l.region, l.first, l.count, 1) == -1)
			return -1;
	}
	return 0;
}

/*
 * The test hook's hold (snapshot.h, snapd(8) TEST HOOKS): wait at `at`, once,
 * until its condition is met, the snapshot is cancelled or fails, the
 * process exits, or SNAPSHOT_HOLD_MAX_MS pass.  Returns -1 if a drain
 * meanwhile failed the snapshot.  Polled: a test hook, never
 * on a path that counts.  A "discard" or "release" hold drains the buffer
 * meanwhile (w given), so the fault thread is never stuck waiting for a
 * slot: what ends the hold (an event read, the process's own request) may
 * need the fault thread first.
 */
static int
writer_hold(struct snapshot *s, struct writer *w, enum snapshot_hold_at at)
{
	struct pollfd	pfd = { .fd = s->pidfd, .events = POLLIN };
	uint64_t	until = now_ns() + SNAPSHOT_HOLD_MAX_MS * 1000000ULL;
	int		rc = 0, done = at == SNAPSHOT_HOLD_AT_DONE;

	if (s->req.hold == SNAPSHOT_HOLD_NONE || s->req.hold_at != at)
		return 0;
	log_info("snapshot %llu: test hook: holding the writer",
	    (unsigned long long)s->id);
	/* Done, nothing of the process is held: only the condition ends it. */
	if (done)
		pfd.fd = -1;
	while (!snapshot_hold_over(s) && (done || (!atomic_load(&s->cancel) &&
	    !atomic_load(&s->fault_error))) && poll(&pfd, 1, 5) == 0) {
		if (w != NULL && (s->req.hold == SNAPSHOT_HOLD_DISCARD ||
		    s->req.hold == SNAPSHOT_HOLD_RELEASE) &&
		    (rc = writer_drain(w)) == -1)
			break;
		if (now_ns() >= until) {
			log_warnx("snapshot %llu: test hook: the hold's "
			    "condition was not met in %d ms; going on",
			    (unsigned long long)s->id, SNAPSHOT_HOLD_MAX_MS);
			break;
		}
	}
	s->req.hold = SNAPSHOT_HOLD_NONE;	/* once */
	log_info("snapshot %llu: test hook: the writer goes on",
	    (unsigned long long)s->id);
	return rc;
}

/*
 * Un-protect (and wake) a range from the writer.  EAGAIN means an event is
 * queued: only the fault thread reads events, and it may itself be waiting
 * for a buffer slot, so free slots and try again.  ENOENT means nothing of
 * the range is registered any more (unmapped, or moved away): wake any
 * task that faulted there before, so that none sleeps on an address
 * nobody will un-protect.  Any other failure ends the snapshot: ESRCH is
 * the armed mm gone, the rest would leave the process's pages protected.
 */
static int
writer_unprotect(struct writer *w, uint64_t addr, uint64_t len)
{
	struct snapshot *s = w->s;

	/*
	 * Tracking (track.h): a page the sweep read stays protected, so the
	 * process's first write to it still reaches us and marks it dirty.
	 * Protecting it again is the same ioctl, with the same EAGAIN and
	 * ENOENT as un-protecting, so the checks against events are
	 * unchanged; it wakes nobody: the fault thread releases who faulted
	 * on the page meanwhile once the page is done.
	 */
	while ((s->req.track ? uffd_protect(s->uffd, addr, len) :
	    uffd_unprotect(s->uffd, addr, len, 1)) == -1) {
		if (errno == ENOENT) {
			(void)uffd_wake(s->uffd, addr, len);
			return 0;
		}
		if (errno == ESRCH) {
			snapshot_mm_gone(s);
			return -1;
		}
		if (errno != EAGAIN) {
			snapshot_set_error(s, "un-protect 0x%llx+%llu: %s",
			    (unsigned long long)addr, (unsigned long long)len,
			    strerror(errno));
			return -1;
		}
		if (atomic_load(&s->cancel) || atomic_load(&s->fault_error) ||
		    writer_drain(w) == -1)
			return -1;
		sched_yield();
	}
	return 0;
}

/*
 * The pages of *m from bit i on that are contiguous in the process (per
 * addr): how many, and they are taken out of *m.
 */
static unsigned
writer_span(uint64_t *m, const uint64_t *addr, unsigned i)
{
	unsigned n = 1;

	while (i + n < WRITER_RUN && (*m >> (i + n) & 1) &&
	    addr[i + n] == addr[i] + n * PAGE_4K)
		n++;
	*m &= n == 64 ? 0 : ~(((1ULL << n) - 1) << i);
	return n;
}

/*
 * Read the pages of `unread` (bits over [first, first+64) of r) from their
 * claimed addresses (or r's file, readfile.c) into buf, at the page's
 * offset from first, one read per run contiguous in both page and address,
 * then, with unprotect set, un-protect them there (else the caller does,
 * for a whole huge page).  Pages that cannot be read are added to *bad.
 */
static int
writer_read_unprotect(struct writer *w, struct region *r, uint64_t first,
    const uint64_t *addr, uint64_t unread, uint8_t *buf, int unprotect,
    uint64_t *bad)
{
	struct snapshot	*s = w->s;

	while (unread != 0) {
		unsigned	i = (unsigned)__builtin_ctzll(unread);
		unsigned	n = writer_span(&unread, addr, i);
		struct iovec	l;
		ssize_t		got;

		l.iov_base = buf + i * PAGE_4K;
		l.iov_len = n * PAGE_4K;
		got = snapshot_read_pages(s, r, first + i, &l, 1, addr[i]);
		if (got == -1 && errno == ESRCH) {
			snapshot_mm_gone(s);
			return -1;
		}
		if (got == -1) {
			snapshot_set_error(s, "read 0x%llx+%llu: %s",
			    (unsigned long long)addr[i],
			    (unsigned long long)(n * PAGE_4K), strerror(errno));
			return -1;
		}
		/* Past a short read, retry page by page (munmap'ed holes). */
		for (unsigned j = (unsigned)((size_t)got / PAGE_4K); j < n; j++) {
			l.iov_base = buf + (i + j) * PAGE_4K;
			l.iov_len = PAGE_4K;
			got = snapshot_read_pages(s, r, first + i + j, &l, 1,
			    addr[i + j]);
			if (got == -1 && errno == ESRCH) {
				snapshot_mm_gone(s);
				return -1;
			}
			if (got != (ssize_t)PAGE_4K)
				*bad |= 1ULL << (i + j);
		}
		if (unprotect && writer_unprotect(w, addr[i], n * PAGE_4K) ==
		    -1)
			return -1;
	}
	return 0;
}

/*
 * One run of a region in the sweep: pages [first, first + n), n <=
 * WRITER_RUN, first a multiple of 64, read into buf.  Pages someone else
 * claimed are skipped.
 */
struct writer_run {
	uint64_t	 first;
	uint64_t	 mine;		/* pages this run claimed */
	uint64_t	 bad;		/* of those, unreadable */
	uint64_t	 seq;		/* events_seq before the claim */
	uint64_t	 addr[WRITER_RUN];	/* where each page was read */
	uint8_t		*buf;
};

/*
 * Claim the run's unclaimed pages and read them, un-protecting them where
 * they were read unless a huge page's caller un-protects it whole.  Returns
 * -1 on failure; run->mine 0 when there was nothing left to claim.
 */
static int
writer_run_read(struct writer *w, struct region *r, struct writer_run *run,
    uint32_t n, int unprotect)
{
	struct snapshot	*s = w->s;
	uint64_t	 mask = n == 64 ? ~0ULL : (1ULL << n) - 1;

	run->bad = 0;
	run->seq = atomic_load_explicit(&s->events_seq, memory_order_acquire);
	run->mine = pagestate_claim_mask(&r->ps, run->first >> 6, mask);
	if (run->mine == 0)
		return 0;
	/* Where each page is now (the process may have moved it). */
	for (uint64_t m = run->mine; m != 0; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);

		run->addr[i] = snapshot_page_addr(s, r, run->first + i);
	}
	testpause_at(s, TESTPAUSE_WRITER, r->index, run->first, n);
	return writer_read_unprotect(w, r, run->first, run->addr, run->mine,
	    run->buf, unprotect, &run->bad);
}

/*
 * Finish a run read and un-protected: the read is tied to the address
 * space by events_seq (snapshot-internal.h): if a move or discard event
 * was handled between the claim and the un-protect, pages discarded
 * meanwhile are recorded lost and pages moved meanwhile are read again
 * where they are now.  Without events that costs one atomic load and one
 * lock round trip per run.  Then the pages go to the output.
 */
static int
writer_run_finish(struct writer *w, struct region *r, struct writer_run *run)
{
	struct snapshot	*s = w->s;
	uint64_t	 first = run->first, mine = run->mine, lost;
	uint64_t	 seq = run->seq, unread;

	for (;;) {
		uint64_t now;

		/* Events read before the un-protect are handled by now. */
		pthread_mutex_lock(&s->event_lock);
		now = atomic_load(&s->events_seq);
		lost = 0;
		for (uint64_t m = mine; m != 0; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctzll(m);

			if (pagestate_is_suspect(&r->ps, first + i))
				lost |= 1ULL << i;
		}
		pthread_mutex_unlock(&s->event_lock);
		if (now == seq)
			break;
		seq = now;
		unread = 0;
		for (uint64_t m = mine & ~lost; m != 0; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctzll(m);
			uint64_t to = snapshot_page_addr(s, r, first + i);

			if (to != run->addr[i]) {
				run->addr[i] = to;
				unread |= 1ULL << i;
			}
		}
		if (unread == 0)
			break;
		run->bad &= ~unread;
		log_debug("snapshot %llu: region %u: %d pages moved while read; "
		    "reading them again where they are now",
		    (unsigned long long)s->id, r->index,
		    __builtin_popcountll(unread));
		if (writer_read_unprotect(w, r, first, run->addr, unread,
		    run->buf, 1, &run->bad) == -1)
			return -1;
	}
	for (uint64_t m = mine; m != 0; m &= m - 1)
		pagestate_set_done(&r->ps, first + (unsigned)__builtin_ctzll(m));

	/* Hand the run to the output, split where pages are lost. */
	lost |= run->bad;
	while (mine != 0) {
		unsigned i = (unsigned)__builtin_ctzll(mine), k = 1;
		int is_lost = (int)(lost >> i & 1);

		while (i + k < WRITER_RUN && (mine >> (i + k) & 1) &&
		    (int)(lost >> (i + k) & 1) == is_lost)
			k++;
		mine &= k == 64 ? 0 : ~(((1ULL << k) - 1) << i);
		if (is_lost ? writer_output_lost(w, r->index, first + i, k, 1) :
		    writer_output(w, r->index, first + i, k,
		    run->buf + i * PAGE_4K))
			return -1;
		if (!is_lost)
			atomic_fetch_add(&s->pages_swept, k);
	}
	return 0;
}

/* Save pages [first, first + n) of r, n <= WRITER_RUN. */
static int
writer_run(struct writer *w, struct region *r, uint64_t first, uint32_t n)
{
	struct writer_run run = { .first = first, .buf = w->readbuf };

	if (writer_run_read(w, r, &run, n, 1) == -1)
		return -1;
	return run.mine == 0 ? 0 : writer_run_finish(w, r, &run);
}

/* Un-protect a run's pages where they were read. */
static int
writer_unprotect_run(struct writer *w, struct writer_run *run)
{
	for (uint64_t m = run->mine; m != 0;) {
		unsigned i = (unsigned)__builtin_ctzll(m);
		unsigned n = writer_span(&m, run->addr, i);

		if (writer_unprotect(w, run->addr[i], n * PAGE_4K) == -1)
			return -1;
	}
	return 0;
}

/*
 * Save the huge page at page `block` of r (hugepage.c) as one: its eight
 * runs are read while all of it is still protected, then un-protected with
 * one call, which keeps the huge page whole, and finished as usual.  If
 * the fault thread took some of its pages meanwhile (it has split it
 * then), or a move came between, each run is un-protected where it was
 * read, as writer_run() does.
 */
static int
writer_huge_run(struct writer *w, struct region *r, uint64_t block)
{
	struct snapshot		*s = w->s;
	struct writer_run	*run = w->huge;
	uint64_t		 addr = r->start + block * PAGE_4K;
	int			 whole = 1;

	for (unsigned k = 0; k < HUGE_WORDS; k++) {
		run[k] = (struct writer_run){ .first = block + 64 * k,
		    .buf = w->readbuf + k * WRITER_RUN * PAGE_4K };
		if (writer_run_read(w, r, &run[k], WRITER_RUN, 0) == -1)
			return -1;
		if (run[k].mine != ~0ULL || run[k].addr[0] != addr +
		    k * WRITER_RUN * PAGE_4K || run[k].addr[WRITER_RUN - 1] !=
		    run[k].addr[0] + (WRITER_RUN - 1) * PAGE_4K)
			whole = 0;
	}
	if (whole) {
		if (writer_unprotect(w, addr, HUGE_BYTES) == -1)
			return -1;
		atomic_fetch_add(&s->huge_swept, 1);
	} else
		for (unsigned k = 0; k < HUGE_WORDS; k++)
			if (writer_unprotect_run(w, &run[k]) == -1)
				return -1;
	for (unsigned k = 0; k < HUGE_WORDS; k++)
		if (run[k].mine != 0 && writer_run_finish(w, r, &run[k]) == -1)
			return -1;
	return 0;
}

/*
 * The armed reply ends the application's pause.  The sweep and the
 * compression threads that start next would compete with the main thread
 * for the CPUs while it sends that reply: give it the reply first (a few
 * milliseconds at most).
 */
static void
writer_wait_armed_reported(struct snapshot *s)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += 20000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->prearm_lock);
	while (!s->armed_reported && !atomic_load(&s->cancel))
		if (pthread_cond_timedwait(&s->prearm_cond, &s->prearm_lock,
		    &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->prearm_lock);
}

/*
 * From the armed instant on, the process matters more than the snapshot's
 * speed: the sweep, the compression threads the output starts (they
 * inherit this thread's nice value) and the sink run at nice
 * SNAPSHOT_WRITER_NICE, so on a busy machine the process and the fault
 * thread, which serves its writes, get the CPUs first.  The page buffer
 * still bounds how far the writer may fall behind.
 */
static void
writer_yield_to_process(struct snapshot *s)
{
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), SNAPSHOT_WRITER_NICE) ==
	    -1)
		log_debug("snapshot %llu: nice %d for the writer: %s",
		    (unsigned long long)s->id, SNAPSHOT_WRITER_NICE,
		    strerror(errno));
}

static int
writer_open_output(struct snapshot *s)
{
	struct output_params p = {
		.dirfd = s->dirfd,
		.name = s->name,
		.format = s->req.format,
		.level = s->req.level,
		.threads = s->req.threads,
		.hurry_level = s->req.pressure_level,
		.owner_uid = s->req.owner_uid,
		.owner_gid = s->req.owner_gid,
		.mode = s->req.mode,
		.regions = s->req.regions,
		.region_count = s->nregions,
		.pid = s->req.pid,
		.uid = s->req.uid,
		.comm = s->comm,
		.armed_realtime_ns = s->armed_realtime_ns,
		.procrec = s->procrec,
		.procrec_len = s->procrec_len,
		.parent = s->track_base != NULL ? &s->parent : NULL,
		.whole = s->track_base != NULL ? s->track_base->whole : NULL,
		.sink = s->sink,
	};

	if (s->track_base != NULL)
		s->parent.whole_count = (uint32_t)s->track_base->nwhole;

	s->out = output_open(&p);
	if (s->out == NULL) {
		snapshot_set_error(s, "%s", output_open_error());
		return -1;
	}
	return 0;
}

/*
 * What stopped.c copied at the armed instant goes out first: its
 * unreadable runs, then its pages, which are the first in the page
 * buffer's ring (published before the fault thread started); draining
 * frees their slots for the fault path.
 */
static int
writer_output_stopped(struct writer *w)
{
	struct snapshot *s = w->s;

	for (size_t i = 0; i < s->nstopped_lost; i++) {
		const struct lost_range *l = &s->stopped_lost[i];

		if (writer_output_lost(w, l->region, l->first, l->count,
		    0) == -1)
			return -1;
	}
	free(s->stopped_lost);
	s->stopped_lost = NULL;
	s->nstopped_lost = s->stopped_lost_cap = 0;
	return writer_drain(w);
}

static void
writer_stop_fault_thread(struct snapshot *s)
{
	uint64_t one = 1;

	if (!s->fault_started)
		return;
	pagebuf_cancel(&s->buf);
	(void)!write(s->stop_fd, &one, sizeof(one));
	pthread_join(s->fault, NULL);
	s->fault_started = 0;
}

/*
 * Tracking: hand the uffd (still registered, every page not noted dirty
 * still protected) and the descriptors tied to the armed mm to a tracker,
 * which serves the process's writes from now on.  ok: every page is saved.
 * A failed incremental snapshot gives its parent's dirty pages back, so
 * that the parent can be followed again; a failed full one has no use for
 * tracking.
 */
static void
writer_start_tracker(struct snapshot *s, int ok)
{
	struct track_state *st = s->track;

	if (st == NULL || !s->req.track || s->uffd < 0 ||
	    (!ok && s->track_base == NULL) || !snapshot_mm_alive(s))
		return;
	if (st->pidfd == -1 &&
	    (st->pidfd = fcntl(s->pidfd, F_DUPFD_CLOEXEC, 3)) == -1) {
		log_warn("snapshot %llu: keep tracking: duplicate the pidfd",
		    (unsigned long long)s->id);
		return;
	}
	st->uffd = s->uffd;
	st->memfd = s->memfd;
	st->pagemap = s->pagemap;
	st->pid = s->req.pid;
	st->features = s->features;
	s->uffd = s->memfd = s->pagemap = -1;
	if (!ok)
		track_merge(st, s->track_base);
	s->track = NULL;
	if ((s->tracker = tracker_start(st, s->id)) == NULL)
		log_warn("snapshot %llu: start tracking the process's writes "
		    "(the process runs on, untracked)",
		    (unsigned long long)s->id);
}

/*
 * The output failed after the tracker started: a failed incremental gives
 * its parent's dirty pages back (writer_start_tracker()), a full one ends
 * tracking.
 */
static void
writer_tracker_failed(struct snapshot *s)
{
	struct track_state	*st;
	char			 why[256];

	if (s->tracker == NULL)
		return;
	if (s->track_base == NULL) {
		tracker_free(s->tracker);
		s->tracker = NULL;
		return;
	}
	st = tracker_stop(s->tracker, why, sizeof(why));
	tracker_free(s->tracker);
	s->tracker = NULL;
	if (st == NULL)
		return;
	track_merge(st, s->track_base);
	if ((s->tracker = tracker_start(st, s->id)) == NULL)
		log_warn("snapshot %llu: start tracking again",
		    (unsigned long long)s->id);
}

/*
 * Drop every protection at once: the process runs on whatever happens.
 * When tracking, the protections stay and a tracker serves them.
 */
static void
writer_release_process(struct snapshot *s, int ok)
{
	writer_stop_fault_thread(s);
	writer_start_tracker(s, ok);
	snapshot_mem_close(s);
	snapshot_files_close(s);
	snapshot_huge_close(s);
	if (s->uffd >= 0) {
		close(s->uffd);
		s->uffd = -1;
	}
}

/* The first page from `from` on whose dirty bit is `bit`, or d->npages. */
static uint64_t
writer_next_page(const struct track_region *d, uint64_t from, int bit)
{
	while (from < d->npages) {
		uint64_t word = atomic_load_explicit(&d->dirty[from / 64],
		    memory_order_relaxed);

		word = (bit ? word : ~word) >> (from % 64);
		if (word != 0) {
			from += (uint64_t)__builtin_ctzll(word);
			break;
		}
		from = (from / 64 + 1) * 64;
	}
	return from < d->npages ? from : d->npages;
}

/*
 * Incremental: the pages unchanged since the parent (claimed and done at
 * the arm, arm_incremental()) go out first, as PARENT extents, one per run.
 */
static int
writer_output_unchanged(struct writer *w)
{
	struct snapshot *s = w->s;

	for (uint32_t i = 0; i < s->nregions; i++) {
		const struct track_region *d = &s->track_base->regions[i];

		if (region_stopped(&s->regions[i]))
			continue;	/* copied whole (stopped.c) */
		for (uint64_t p = writer_next_page(d, 0, 0); p < d->npages;) {
			uint64_t q = writer_next_page(d, p, 1);

			if (output_unchanged(s->out, i, p, q - p) == -1) {
				snapshot_set_error(s, "%s",
				    output_error(s->out));
				return -1;
			}
			w->pages_out += q - p;
			atomic_fetch_add(&s->pages_parent, q - p);
			p = writer_next_page(d, q, 0);
		}
	}
	return 0;
}

static int
writer_sweep(struct writer *w)
{
	struct snapshot *s = w->s;

	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = s->by_addr[i];

		for (uint64_t page = 0; page < r->npages;) {
			uint64_t left = r->npages - page, block;

			if (atomic_load(&s->cancel) ||
			    atomic_load(&s->fault_error))
				return -1;
			if (writer_drain(w) == -1)
				return -1;
			if (w->pages_out * 2 >= s->pages_total)
				if (writer_hold(s, w, SNAPSHOT_HOLD_AT_HALF) ==
				    -1)
					return -1;
			if ((r->start + page * PAGE_4K) % HUGE_BYTES == 0 &&
			    snapshot_huge_block(s, r, page, &block) &&
			    block == page) {
				if (writer_huge_run(w, r, page) == -1)
					return -1;
				page += HUGE_PAGES;
				continue;
			}
			if (writer_run(w, r, page, left < WRITER_RUN ?
			    (uint32_t)left : WRITER_RUN) == -1)
				return -1;
			page += WRITER_RUN;
		}
	}
	/* Every page is claimed; wait for the fault path's last copies. */
	while (w->pages_out < s->pages_total) {
		if (atomic_load(&s->cancel) || atomic_load(&s->fault_error))
			return -1;
		if (writer_drain(w) == -1)
			return -1;
		if (w->pages_out < s->pages_total)
			pagebuf_wait_ready(&s->buf, 10);
	}
	return 0;
}

void *
writer_thread_main(void *arg)
{
	struct snapshot		*s = arg;
	struct writer		 w = { .s = s };
	struct arm		 a;
	struct output_result	 res;
	enum snapshot_state	 final = SNAPSHOT_FAILED;
	uint64_t		 hurried;

	s->memfd = -1;
	s->pagemap = -1;
	if (s->track_base != NULL) {
		/* Incremental: the parent's tracking has them. */
		s->uffd = s->track->uffd;
		s->memfd = s->track->memfd;
		s->pagemap = s->track->pagemap;
		s->features = s->track->features;
		s->track->uffd = s->track->memfd = s->track->pagemap = -1;
	}
	ratelimit_init(&w.rl, s->req.max_bandwidth);
	/*
	 * Mapped, not malloc'ed: 2 MiB that go back to the system when the
	 * snapshot ends, so that a daemon taking snapshots back to back does
	 * not keep them in the allocator (or a sanitizer's quarantine).
	 */
	w.readbuf = mmap(NULL, HUGE_PAGES * PAGE_4K, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w.readbuf == MAP_FAILED)
		w.readbuf = NULL;
	w.huge = calloc(HUGE_WORDS, sizeof(*w.huge));
	if (w.readbuf == NULL || w.huge == NULL) {
		snapshot_set_error(s, "read buffer: %s", strerror(errno));
		goto fail;
	}
	/* Nothing is protected yet: S3's refusal costs the process nothing. */
	if (s->s3 != NULL && upload_open(s) == -1)
		goto fail;
	if (s->track_base != NULL) {
		if (arm_incremental(s) == -1 || arm_start_fault_thread(s) == -1)
			goto fail;
	} else {
		if (arm_begin(s, &a) == -1)
			goto fail;
		(void)writer_hold(s, NULL, SNAPSHOT_HOLD_AT_ARMING);
		if (arm_finish(s, &a) == -1 || arm_start_fault_thread(s) == -1)
			goto fail;
	}
	if (s->req.prearm &&
	    (arm_prearm_wait(s) == -1 || arm_rearm(s) == -1))
		goto fail;
	atomic_store(&s->state, SNAPSHOT_RUNNING);
	snapshot_running_enter(s);
	log_info("snapshot %llu (pid %d, %s): armed %llu pages in %llu us%s",
	    (unsigned long long)s->id, (int)s->req.pid, s->comm,
	    (unsigned long long)s->pages_total,
	    (unsigned long long)(s->arm_ns / 1000),
	    s->req.prearm ? " (pages written since the pre-arm protected "
	    "again)" : "");
	snapshot_notify(s, NOTIFY_ARMED);
	writer_wait_armed_reported(s);
	writer_yield_to_process(s);

	if (writer_open_output(s) == -1 || writer_output_stopped(&w) == -1 ||
	    (s->track_base != NULL && writer_output_unchanged(&w) == -1))
		goto fail;
	if (writer_hold(s, &w, SNAPSHOT_HOLD_AT_ARMED) == -1 ||
	    writer_sweep(&w) == -1)
		goto fail;
	/* Every page is saved and un-protected (or tracked). */
	writer_release_process(s, 1);
	atomic_store(&s->state, SNAPSHOT_FINISHING);
	(void)writer_hold(s, NULL, SNAPSHOT_HOLD_AT_FINISHING);
	output_set_hurry(s->out, 0);
	if (output_finish(s->out, &res) == -1) {
		snapshot_set_error(s, "%s", output_error(s->out));
		writer_tracker_failed(s);
		goto fail;
	}
	s->index_crc = res.index_crc;
	hurried = output_hurried(s->out);
	output_close(s->out);
	s->out = NULL;
	s->file_size = res.bytes;
	snprintf(s->path, sizeof(s->path), "%s", res.path);
	atomic_store(&s->pages_zero, res.pages_zero);
	atomic_store(&s->bytes_written, res.bytes);
	atomic_store(&s->duration_ns, now_ns() - s->armed_mono_ns);
	final = SNAPSHOT_COMPLETED;
	log_info("snapshot %llu (pid %d): completed %s, %llu pages "
	    "(%llu on the fault path, %llu zero, %llu lost), %llu bytes, "
	    "%llu ms, %llu chunks compressed fast under buffer pressure",
	    (unsigned long long)s->id, (int)s->req.pid, res.path,
	    (unsigned long long)s->pages_total,
	    (unsigned long long)atomic_load(&s->pages_faulted),
	    (unsigned long long)res.pages_zero,
	    (unsigned long long)res.pages_lost,
	    (unsigned long long)res.bytes,
	    (unsigned long long)(atomic_load(&s->duration_ns) / 1000000),
	    (unsigned long long)hurried);
	goto done;

fail:
	writer_release_process(s, 0);
	if (s->out != NULL) {
		output_close(s->out);	/* removes the partial file */
		s->out = NULL;
	}
	if (s->armed_mono_ns != 0)
		atomic_store(&s->duration_ns, now_ns() - s->armed_mono_ns);
	final = atomic_load(&s->cancel) ? SNAPSHOT_CANCELLED : SNAPSHOT_FAILED;
done:
	upload_close(s);	/* aborts the upload unless it completed */
	if (w.readbuf != NULL)
		munmap(w.readbuf, HUGE_PAGES * PAGE_4K);
	free(w.huge);
	snapshot_running_leave(s);
	atomic_store(&s->state, final);
	(void)writer_hold(s, NULL, SNAPSHOT_HOLD_AT_DONE);
	snapshot_notify(s, NOTIFY_DONE);
	return NULL;
}
