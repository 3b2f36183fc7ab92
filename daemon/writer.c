/*
 * The writer thread: arms the snapshot, saves every page exactly once, and
 * finishes (or tears down) the snapshot.
 *
 * 1. Arming: UFFDIO_API, register every region for write-protect faults,
 *    write-protect all of it, check that the protection landed in the
 *    process we were told about; then tell the main thread ARMED.  That
 *    instant is the snapshot's point in time.
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
 * Everything here runs on the snapshot's writer thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "procmaps.h"
#include "snapshot-internal.h"
#include "testpause.h"
#include "uffd.h"

#define WRITER_RUN	64		/* pages per sweep read: 256 KiB */
#define DRAIN_BATCH	256

#define PM_UFFD_WP	(1ULL << 57)	/* /proc/pid/pagemap: pte is uffd-wp */

struct writer {
	struct snapshot	*s;
	uint8_t		*readbuf;	/* WRITER_RUN pages */
	uint64_t	 pages_out;	/* pages given to the output (any kind) */
	uint32_t	 slots[DRAIN_BATCH];
};

static int
writer_output(struct writer *w, uint32_t region, uint64_t first, uint32_t n,
    const void *data)
{
	struct snapshot *s = w->s;

	if (output_pages(s->out, region, first, n, data) == -1) {
		snapshot_set_error(s, "%s", output_error(s->out));
		return -1;
	}
	w->pages_out += n;
	atomic_fetch_add(&s->pages_saved, n);
	atomic_store(&s->bytes_written, output_bytes(s->out));
	return 0;
}

static int
writer_output_lost(struct writer *w, uint32_t region, uint64_t first,
    uint64_t n)
{
	struct snapshot *s = w->s;

	if (s->req.on_discard == DISCARD_FAIL) {
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
		if (writer_output_lost(w, l.region, l.first, l.count) == -1)
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
	int		rc = 0;

	if (s->req.hold == SNAPSHOT_HOLD_NONE || s->req.hold_at != at)
		return 0;
	log_info("snapshot %llu: test hook: holding the writer",
	    (unsigned long long)s->id);
	while (!snapshot_hold_over(s) && !atomic_load(&s->cancel) &&
	    !atomic_load(&s->fault_error) && poll(&pfd, 1, 5) == 0) {
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

	while (uffd_unprotect(s->uffd, addr, len, 1) == -1) {
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
 * Read the pages of `todo` (bits over [first, first+64)) from their
 * claimed addresses into readbuf, at the page's offset from first, one
 * read per run contiguous in both page and address, then un-protect them
 * there.  Pages that cannot be read are added to *bad.
 */
static int
writer_read_unprotect(struct writer *w, const uint64_t *addr, uint64_t todo,
    uint64_t *bad)
{
	struct snapshot	*s = w->s;

	while (todo != 0) {
		unsigned	i = (unsigned)__builtin_ctzll(todo), n = 1;
		struct iovec	l;
		ssize_t		got;

		while (i + n < WRITER_RUN && (todo >> (i + n) & 1) &&
		    addr[i + n] == addr[i] + n * PAGE_4K)
			n++;
		todo &= n == 64 ? 0 : ~(((1ULL << n) - 1) << i);
		l.iov_base = w->readbuf + i * PAGE_4K;
		l.iov_len = n * PAGE_4K;
		got = snapshot_read_mem(s, &l, 1, addr[i]);
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
			l.iov_base = w->readbuf + (i + j) * PAGE_4K;
			l.iov_len = PAGE_4K;
			got = snapshot_read_mem(s, &l, 1, addr[i + j]);
			if (got == -1 && errno == ESRCH) {
				snapshot_mm_gone(s);
				return -1;
			}
			if (got != (ssize_t)PAGE_4K)
				*bad |= 1ULL << (i + j);
		}
		if (writer_unprotect(w, addr[i], n * PAGE_4K) == -1)
			return -1;
	}
	return 0;
}

/*
 * Save one run of a region: pages [first, first + n), n <= WRITER_RUN,
 * first a multiple of 64.  Pages someone else claimed are skipped.  The
 * read is tied to the address space by events_seq (snapshot-internal.h):
 * if a move or discard event was handled between the claim and the
 * un-protect, pages discarded meanwhile are recorded lost and pages moved
 * meanwhile are read again where they are now.  Without events that costs
 * one atomic load and one lock round trip per run.
 */
static int
writer_run(struct writer *w, struct region *r, uint64_t first, uint32_t n)
{
	struct snapshot	*s = w->s;
	uint64_t	 addr[WRITER_RUN], mine, todo, bad = 0, lost = 0, seq;
	uint64_t	 mask = n == 64 ? ~0ULL : (1ULL << n) - 1;

	seq = atomic_load_explicit(&s->events_seq, memory_order_acquire);
	mine = pagestate_claim_mask(&r->ps, first >> 6, mask);
	if (mine == 0)
		return 0;
	/* Where each page is now (the process may have moved it). */
	for (uint64_t m = mine; m != 0; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctzll(m);

		addr[i] = snapshot_page_addr(s, r, first + i);
	}
	testpause_at(s, TESTPAUSE_WRITER, r->index, first, n);

	for (todo = mine;;) {
		uint64_t now;

		if (writer_read_unprotect(w, addr, todo, &bad) == -1)
			return -1;
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
		todo = 0;
		for (uint64_t m = mine & ~lost; m != 0; m &= m - 1) {
			unsigned i = (unsigned)__builtin_ctzll(m);
			uint64_t to = snapshot_page_addr(s, r, first + i);

			if (to != addr[i]) {
				addr[i] = to;
				todo |= 1ULL << i;
			}
		}
		if (todo == 0)
			break;
		bad &= ~todo;
		log_debug("snapshot %llu: region %u: %d pages moved while read; "
		    "reading them again where they are now",
		    (unsigned long long)s->id, r->index,
		    __builtin_popcountll(todo));
	}
	for (uint64_t m = mine; m != 0; m &= m - 1)
		pagestate_set_done(&r->ps, first + (unsigned)__builtin_ctzll(m));

	/* Hand the run to the output, split where pages are lost. */
	lost |= bad;
	while (mine != 0) {
		unsigned i = (unsigned)__builtin_ctzll(mine), k = 1;
		int is_lost = (int)(lost >> i & 1);

		while (i + k < WRITER_RUN && (mine >> (i + k) & 1) &&
		    (int)(lost >> (i + k) & 1) == is_lost)
			k++;
		mine &= k == 64 ? 0 : ~(((1ULL << k) - 1) << i);
		if (is_lost ? writer_output_lost(w, r->index, first + i, k) :
		    writer_output(w, r->index, first + i, k,
		    w->readbuf + i * PAGE_4K))
			return -1;
	}
	return 0;
}

/* The uffd-wp bit of the pte of addr in our pid's page tables: 0, 1, -1. */
static int
owner_wp_bit(struct snapshot *s, int pagemap, uint64_t addr)
{
	uint64_t entry;

	if (pread(pagemap, &entry, sizeof(entry),
	    (off_t)(addr / PAGE_4K * sizeof(entry))) != sizeof(entry)) {
		snapshot_set_error(s, "read /proc/%d/pagemap: %s",
		    (int)s->req.pid, strerror(errno));
		return -1;
	}
	return (entry & PM_UFFD_WP) != 0;
}

/*
 * Prove that the uffd belongs to our pid's address space, on region r's
 * first page, which the caller has write-protected through it and which
 * nothing un-protects meanwhile (the fault thread is not reading yet, or
 * the process is held still).  A protection merely present proves nothing:
 * the process may be under another uffd-wp snapshot already (snapd's own, or
 * QEMU's).  So the bit is toggled through our uffd and must follow in the
 * process's pagemap: set, then clear once un-protected (without waking:
 * nobody may write the page meanwhile), then set again.  A uffd of another
 * address space acts on that one and cannot move the bit here.
 *
 * After the last region, the uffd is also probed for UFFD_USER_MODE_ONLY
 * (uffd.h) on the first region in writable memory: with such a uffd the
 * kernel's own writes into the regions would fail with EFAULT in the
 * process.
 */
static int	protect_retry(struct snapshot *, uint64_t, uint64_t);

static int
writer_check_owner(struct snapshot *s, int pagemap, struct region *r)
{
	static const char *const why[3] = {
		"is not write-protected in its page tables",
		"stays write-protected in its page tables when this userfaultfd "
		    "un-protects it (another one protects it)",
		"is not write-protected again when this userfaultfd protects it",
	};
	struct procmaps		pm;
	struct procmaps_vma	vma;
	int			bit, rc = -1, traps = 1;

	for (int step = 0; step < 3; step++) {
		int err = 0;

		if (step == 1)
			while (uffd_unprotect(s->uffd, r->start, PAGE_4K, 0) ==
			    -1 && (err = errno) == EAGAIN)
				usleep(1000);	/* an event queued: brief */
		if (step == 2 && protect_retry(s, r->start, PAGE_4K) == -1)
			err = errno;
		if (err != 0 && err != EAGAIN) {
			snapshot_set_error(s, "%s region %u (0x%llx): %s",
			    step == 1 ? "un-protect" : "write-protect",
			    r->index, (unsigned long long)r->start,
			    strerror(err));
			return -1;
		}
		if ((bit = owner_wp_bit(s, pagemap, r->start)) == -1)
			return -1;
		if (bit != (step != 1)) {
			snapshot_set_error(s, "the userfaultfd does not belong "
			    "to process %d: region %u (0x%llx) %s",
			    (int)s->req.pid, r->index,
			    (unsigned long long)r->start, why[step]);
			return -1;
		}
	}
	if (r->index != s->nregions - 1)
		return 0;

	if (procmaps_open(&pm, s->req.pid, s->pidfd) == -1) {
		snapshot_set_error(s, "open /proc/%d/maps: %s",
		    (int)s->req.pid, strerror(errno));
		return -1;
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *p = &s->regions[i];
		int found = procmaps_find(&pm, p->start, &vma);

		if (found == -1) {
			snapshot_set_error(s, "read /proc/%d/maps: %s",
			    (int)s->req.pid, strerror(errno));
			goto out;
		}
		if (found == 0 || vma.start > p->start || !vma.writable)
			continue;
		traps = uffd_traps_kernel_writes(s->uffd, s->req.pid, p->start);
		if (traps == -1)
			snapshot_set_error(s, "probe region %u (0x%llx) with a "
			    "kernel write: %s", i,
			    (unsigned long long)p->start, strerror(errno));
		else if (protect_retry(s, p->start, PAGE_4K) == -1) {
			snapshot_set_error(s, "write-protect region %u "
			    "(0x%llx): %s", i, (unsigned long long)p->start,
			    strerror(errno));
			traps = -1;
		}
		break;
	}
	if (traps == 0)
		snapshot_set_error(s, "the userfaultfd was created with "
		    "UFFD_USER_MODE_ONLY: it does not trap the kernel's own "
		    "writes, so a read(2) into a region would fail with "
		    "EFAULT in process %d; create it without that flag "
		    "(through /dev/userfaultfd where the syscall is refused)",
		    (int)s->req.pid);
	else if (traps == 1)
		rc = 0;
out:
	procmaps_close(&pm);
	return rc;
}

/*
 * Write-protecting is the application's pause, and it scales with the
 * number of 4 KiB ptes.  Large snapshots are protected by two threads at
 * once (the kernel takes the mm's lock for reading only), each over half of
 * the bytes, split on a 2 MiB boundary so no huge page is split.
 */
#define ARM_SPLIT_MIN	(256ULL << 20)
#define HUGE_2M		(2ULL << 20)

struct arm_half {
	struct snapshot	*s;
	uint64_t	 from, to;	/* byte offsets over all regions, in order */
	int		 err;
	uint32_t	 region;	/* the one that failed */
};

/*
 * While arming, the client keeps the process from changing its mappings,
 * so EAGAIN (an event queued) can only be brief; give up after a second.
 */
static int
protect_retry(struct snapshot *s, uint64_t addr, uint64_t len)
{
	for (int tries = 0; uffd_protect(s->uffd, addr, len) == -1; tries++) {
		if (errno != EAGAIN || tries == 1000)
			return -1;
		usleep(1000);
	}
	return 0;
}

static void
protect_span(struct arm_half *h)
{
	struct snapshot	*s = h->s;
	uint64_t	 base = 0;

	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region	*r = &s->regions[i];
		uint64_t	 lo = h->from > base ? h->from - base : 0;
		uint64_t	 hi = h->to - base < r->length ? h->to - base :
				    r->length;

		if (h->to > base && lo < r->length && lo < hi &&
		    protect_retry(s, r->start + lo, hi - lo) == -1) {
			h->err = errno;
			h->region = i;
			return;
		}
		base += r->length;
		if (base >= h->to)
			return;
	}
}

static void *
protect_thread(void *arg)
{
	protect_span(arg);
	return NULL;
}

static int
writer_protect_all(struct snapshot *s)
{
	struct arm_half	 half[2] = { { .s = s }, { .s = s } };
	uint64_t	 total = s->pages_total * PAGE_4K, mid, base = 0;
	pthread_t	 t;
	int		 threaded = 0;

	half[0].to = half[1].to = total;
	mid = total;
	if (total >= ARM_SPLIT_MIN) {
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region *r = &s->regions[i];

			if (base + r->length > total / 2) {
				uint64_t addr = (r->start + total / 2 - base) &
				    ~(HUGE_2M - 1);

				mid = base + (addr > r->start ? addr - r->start : 0);
				break;
			}
			base += r->length;
		}
	}
	half[0].to = mid;
	half[1].from = mid;
	if (mid < total && pthread_create(&t, NULL, protect_thread,
	    &half[1]) == 0)
		threaded = 1;
	else
		half[0].to = total;
	protect_span(&half[0]);
	if (threaded)
		pthread_join(t, NULL);
	for (int k = 0; k < 2; k++)
		if (half[k].err != 0) {
			struct region *r = &s->regions[half[k].region];

			snapshot_set_error(s, "write-protect region %u "
			    "(0x%llx+%llu): %s", half[k].region,
			    (unsigned long long)r->start,
			    (unsigned long long)r->length, strerror(half[k].err));
			return -1;
		}
	return 0;
}

/* The point in time: protecting began at t0 and is complete now. */
static void
writer_mark_armed(struct snapshot *s, uint64_t t0)
{
	struct timespec rt;

	s->armed_mono_ns = now_ns();
	s->arm_ns = s->armed_mono_ns - t0;
	clock_gettime(CLOCK_REALTIME, &rt);
	s->armed_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL +
	    (uint64_t)rt.tv_nsec;
}

static int
writer_start_fault_thread(struct snapshot *s)
{
	int err;

	if (s->fault_started)
		return 0;
	if ((err = pthread_create(&s->fault, NULL, fault_thread_main, s))) {
		snapshot_set_error(s, "cannot start the fault thread: %s",
		    strerror(err));
		return -1;
	}
	s->fault_started = 1;
	return 0;
}

static int
writer_arm(struct snapshot *s)
{
	const struct snapshot_request *req = &s->req;
	uint64_t		 t0, features;
	char			 path[64];
	int			 pagemap, flags, rc = -1;

	if (s->pidfd == -1)
		s->pidfd = (int)syscall(SYS_pidfd_open, req->pid, 0);
	if (s->pidfd == -1) {
		snapshot_set_error(s, "pidfd_open %d: %s", (int)req->pid,
		    strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)req->pid);
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, s->comm, sizeof(s->comm) - 1) : -1;

		if (n > 0 && s->comm[n - 1] == '\n')
			s->comm[n - 1] = '\0';
		if (fd >= 0)
			close(fd);
	}
	testpause_load(s);
	/* Before pagemap, on which the owner check runs: see readmem.c. */
	if (snapshot_mem_open(s) == -1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)req->pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (pagemap == -1) {
		snapshot_set_error(s, "open %s: %s", path, strerror(errno));
		return -1;
	}
	flags = fcntl(s->uffd, F_GETFL);
	if (flags == -1 || fcntl(s->uffd, F_SETFL, flags | O_NONBLOCK) == -1) {
		snapshot_set_error(s, "userfaultfd: fcntl: %s", strerror(errno));
		goto out;
	}

	t0 = now_ns();
	features = UFFD_WANTED_FEATURES & snapshot_kernel_features();
	if (uffd_api(s->uffd, &features) == -1) {
		snapshot_set_error(s, "UFFDIO_API on the handed-over userfaultfd: "
		    "%s%s", strerror(errno), errno == EINVAL ?
		    " (was UFFDIO_API already called on it?)" : "");
		goto out;
	}
	s->features = features;
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = &s->regions[i];

		if (uffd_register_wp(s->uffd, r->start, r->length) == -1) {
			snapshot_set_error(s, "register region %u (%s, "
			    "0x%llx+%llu) for write-protect: %s%s", i,
			    req->regions[i].name, (unsigned long long)r->start,
			    (unsigned long long)r->length, strerror(errno),
			    errno == EINVAL ? " (not mapped in the process, or "
			    "memory uffd-wp cannot track)" : "");
			goto out;
		}
	}
	/*
	 * Pre-arm: the process runs on while the regions are protected, so
	 * the fault thread must serve its writes from the first one.  Once it
	 * does, a page may be un-protected again at any moment, so the check
	 * that the uffd belongs to the process comes first, on each region's
	 * first page protected alone (a write to it meanwhile waits for the
	 * fault thread, a few microseconds).
	 */
	if (req->prearm) {
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region *r = &s->regions[i];

			if (protect_retry(s, r->start, PAGE_4K) == -1) {
				snapshot_set_error(s, "write-protect region %u "
				    "(0x%llx): %s", i,
				    (unsigned long long)r->start,
				    strerror(errno));
				goto out;
			}
			if (writer_check_owner(s, pagemap, r) == -1)
				goto out;
		}
		atomic_store(&s->prearm_active, 1);
		if (writer_start_fault_thread(s) == -1)
			goto out;
	}
	if (writer_protect_all(s) == -1)
		goto out;
	(void)writer_hold(s, NULL, SNAPSHOT_HOLD_AT_ARMING);
	if (req->prearm)
		s->prearm_ns = now_ns() - t0;
	else {
		writer_mark_armed(s, t0);
		for (uint32_t i = 0; i < s->nregions; i++)
			if (writer_check_owner(s, pagemap, &s->regions[i]) ==
			    -1)
				goto out;
	}
	rc = 0;
out:
	close(pagemap);
	return rc;
}

/*
 * Pre-armed: every page is protected and the process runs on; the fault
 * thread un-protects what it writes and notes it.  Wait for snapshot_arm()
 * (the caller has stopped the process by then), a cancel, or the process's
 * exit or exec (the armed mm gone).
 */
static int
writer_prearm_wait(struct snapshot *s)
{
	struct timespec	until;
	int		rc = 0;

	pthread_mutex_lock(&s->prearm_lock);
	atomic_store(&s->state, SNAPSHOT_PREARMED);
	pthread_mutex_unlock(&s->prearm_lock);
	log_info("snapshot %llu (pid %d, %s): pre-armed %llu pages in %llu us "
	    "while the process runs; waiting for snapshot-arm",
	    (unsigned long long)s->id, (int)s->req.pid, s->comm,
	    (unsigned long long)s->pages_total,
	    (unsigned long long)(s->prearm_ns / 1000));
	snapshot_notify(s, NOTIFY_PREARMED);

	pthread_mutex_lock(&s->prearm_lock);
	while (!s->arm_requested) {
		if (atomic_load(&s->cancel) || atomic_load(&s->fault_error)) {
			rc = -1;
			break;
		}
		/*
		 * Judged by the armed mm, not by the pid: the leader may
		 * have exited while other threads run on (the pidfd does not
		 * say so, but the mm lives), or the pid may have exec'ed.
		 */
		if (!snapshot_mm_alive(s)) {
			snapshot_mm_gone(s);
			rc = -1;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->prearm_cond, &s->prearm_lock,
		    &until);
	}
	pthread_mutex_unlock(&s->prearm_lock);
	return rc;
}

/* Protect pages [first, first+count) of r again. */
static int
writer_reprotect(struct snapshot *s, struct region *r, uint64_t first,
    uint64_t count)
{
	if (protect_retry(s, r->start + first * PAGE_4K, count * PAGE_4K) ==
	    -1) {
		snapshot_set_error(s, "write-protect region %u again "
		    "(0x%llx+%llu): %s", r->index,
		    (unsigned long long)(r->start + first * PAGE_4K),
		    (unsigned long long)(count * PAGE_4K), strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Each ioctl flushes the TLB of every CPU the process runs on, which costs
 * about as much as protecting REARM_RUN_COST ptes: pages written less than
 * that far apart are protected again in one call, the clean ones between
 * included (protecting a protected page changes nothing).
 */
#define REARM_RUN_COST	32

struct rearm_plan {
	uint64_t	written;	/* pages noted since the pre-arm */
	uint64_t	runs;		/* ioctls */
	uint64_t	covered;	/* pages those ioctls cover */
};

/*
 * Walk the pages written since the pre-arm in runs.  With apply 0 only
 * count them; with apply 1 protect each run again and clear the notes.
 */
static int
writer_rearm_walk(struct snapshot *s, int apply, struct rearm_plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region	*r = s->by_addr[i];
		uint64_t	 run = 0, end = 0;	/* [run, end) to protect */

		for (uint64_t w = 0; w < (r->npages + 63) / 64; w++) {
			uint64_t bits = apply ? atomic_exchange_explicit(
			    &r->prearm_dirty[w], 0, memory_order_relaxed) :
			    atomic_load_explicit(&r->prearm_dirty[w],
			    memory_order_relaxed);

			pl->written += (uint64_t)__builtin_popcountll(bits);
			while (bits != 0) {
				unsigned	b = (unsigned)__builtin_ctzll(bits);
				uint64_t	page = w * 64 + b;

				bits &= bits - 1;
				if (end != 0 && page - end <= REARM_RUN_COST) {
					end = page + 1;
					continue;
				}
				if (end != 0 && apply && writer_reprotect(s, r,
				    run, end - run) == -1)
					return -1;
				pl->runs += end != 0;
				pl->covered += end - run;
				run = page;
				end = page + 1;
			}
		}
		if (end != 0 && apply &&
		    writer_reprotect(s, r, run, end - run) == -1)
			return -1;
		pl->runs += end != 0;
		pl->covered += end - run;
	}
	return 0;
}

/*
 * The pause of a pre-armed snapshot: stop serving faults in pre-arm mode,
 * then protect again only the pages written since the pre-arm, or, when
 * they are so many that it is cheaper, everything on two threads as a
 * direct arm would.  The process is stopped by its owner meanwhile, so
 * this is the point in time.
 */
static int
writer_rearm(struct snapshot *s)
{
	uint64_t		t0 = now_ns();
	struct rearm_plan	pl;
	int			broken, all;

	pthread_mutex_lock(&s->prearm_lock);
	pthread_mutex_lock(&s->event_lock);
	atomic_store(&s->prearm_active, 0);
	pthread_mutex_unlock(&s->event_lock);
	pthread_mutex_unlock(&s->prearm_lock);

	if ((broken = atomic_load(&s->prearm_broken)) != 0) {
		snapshot_set_error(s, "the process %s part of a region while "
		    "pre-armed; nothing was saved",
		    broken == UFFD_EVENT_REMAP ? "moved (mremap)" :
		    broken == UFFD_EVENT_UNMAP ? "unmapped (munmap)" :
		    "discarded (MADV_DONTNEED) without WP_UNPOPULATED");
		return -1;
	}
	writer_rearm_walk(s, 0, &pl);
	all = (pl.runs * REARM_RUN_COST + pl.covered) * 2 > s->pages_total;
	if (all ? writer_protect_all(s) : writer_rearm_walk(s, 1, &pl))
		return -1;
	atomic_store(&s->prearm_pages, pl.written);
	log_debug("snapshot %llu: %llu pages written since the pre-arm, "
	    "protected again %s", (unsigned long long)s->id,
	    (unsigned long long)pl.written, all ? "with everything (cheaper "
	    "than their runs)" : "in their runs");
	writer_mark_armed(s, t0);
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
	};

	s->out = output_open(&p);
	if (s->out == NULL) {
		snapshot_set_error(s, "%s", output_open_error());
		return -1;
	}
	return 0;
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

/* Drop every protection at once: the process runs on whatever happens. */
static void
writer_release_process(struct snapshot *s)
{
	writer_stop_fault_thread(s);
	snapshot_mem_close(s);
	if (s->uffd >= 0) {
		close(s->uffd);
		s->uffd = -1;
	}
}

static int
writer_sweep(struct writer *w)
{
	struct snapshot *s = w->s;

	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = s->by_addr[i];

		for (uint64_t page = 0; page < r->npages; page += WRITER_RUN) {
			uint64_t left = r->npages - page;

			if (atomic_load(&s->cancel) ||
			    atomic_load(&s->fault_error))
				return -1;
			if (writer_drain(w) == -1)
				return -1;
			if (w->pages_out * 2 >= s->pages_total)
				if (writer_hold(s, w, SNAPSHOT_HOLD_AT_HALF) ==
				    -1)
					return -1;
			if (writer_run(w, r, page, left < WRITER_RUN ?
			    (uint32_t)left : WRITER_RUN) == -1)
				return -1;
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
	struct output_result	 res;
	enum snapshot_state	 final = SNAPSHOT_FAILED;
	uint64_t		 hurried;

	s->memfd = -1;
	w.readbuf = malloc(WRITER_RUN * PAGE_4K);
	if (w.readbuf == NULL) {
		snapshot_set_error(s, "read buffer: %s", strerror(errno));
		goto fail;
	}
	if (writer_arm(s) == -1 || writer_start_fault_thread(s) == -1)
		goto fail;
	if (s->req.prearm &&
	    (writer_prearm_wait(s) == -1 || writer_rearm(s) == -1))
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

	if (writer_open_output(s) == -1)
		goto fail;
	if (writer_hold(s, &w, SNAPSHOT_HOLD_AT_ARMED) == -1 ||
	    writer_sweep(&w) == -1)
		goto fail;
	/* Every page is saved and un-protected. */
	writer_release_process(s);
	atomic_store(&s->state, SNAPSHOT_FINISHING);
	(void)writer_hold(s, NULL, SNAPSHOT_HOLD_AT_FINISHING);
	output_set_hurry(s->out, 0);
	if (output_finish(s->out, &res) == -1) {
		snapshot_set_error(s, "%s", output_error(s->out));
		goto fail;
	}
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
	writer_release_process(s);
	if (s->out != NULL) {
		output_close(s->out);	/* removes the partial file */
		s->out = NULL;
	}
	if (s->armed_mono_ns != 0)
		atomic_store(&s->duration_ns, now_ns() - s->armed_mono_ns);
	final = atomic_load(&s->cancel) ? SNAPSHOT_CANCELLED : SNAPSHOT_FAILED;
done:
	free(w.readbuf);
	snapshot_running_leave(s);
	atomic_store(&s->state, final);
	snapshot_notify(s, NOTIFY_DONE);
	return NULL;
}
