/*
 * Lazy restore: snap_file_restore_lazy() hands a region of memory back
 * at once and fills it from a zsnap file as it is used, the way QEMU's
 * postcopy and Firecracker's UFFD handler restore guest memory.
 *
 * The memory is registered with a userfaultfd in missing-page mode, so the
 * first touch of a page that is not there yet blocks its thread and queues
 * a fault message.  One handler thread serves those messages first, each
 * with UFFDIO_COPY (a DATA page, from the decompressed chunk holding it,
 * plus the next few of the same extent) or UFFDIO_ZEROPAGE (ZERO and LOST
 * pages: a LOST page's content is unknown, it reads as zeros and is
 * counted), which installs the page and wakes the thread; when that took
 * decompressing a chunk, it then fills the rest of the region's pages the
 * chunk holds (lazy_fill_chunk()), since touches in random order would
 * otherwise decompress a chunk of scattered pages once per page.  Between
 * faults it sweeps: it fills the region's extents in file order, a bounded
 * step at a time, so each chunk is decompressed once and a fault waits for
 * at most one step.  Once every page is present it unregisters the memory,
 * closes the userfaultfd and exits; snap_lazy_wait() waits for that,
 * snap_lazy_close() asks for the rest at once (SNAP_LAZY_NO_SWEEP leaves
 * the sweep to it) and waits.  Memory is never left registered with no one
 * serving it.
 *
 * A page is filled exactly once.  The handler is the only filler, and a
 * bitmap says which pages it filled: the sweep skips a page a fault filled,
 * and a fault message for a page the sweep (or another fault) filled after
 * the fault was raised, which the kernel queues once per blocked thread, is
 * only counted (faults_raced) and answered with UFFDIO_WAKE.  UFFDIO_COPY
 * failing with EEXIST on a page the bitmap calls missing can only mean the
 * page came from elsewhere; it is marked present and counted as raced too.
 * EAGAIN (the address space is changing: a fork, an mremap) is retried;
 * ENOENT (the memory is no longer registered: the caller unmapped it) is
 * an error.
 *
 * Failure: a chunk that does not check out (a flipped byte), a read error
 * or an ioctl refused stops the handler, which records the message, marks
 * the restore failed and unregisters the whole region.  Unregistering
 * wakes every thread blocked on it, and with no userfaultfd left, every
 * page not filled reads as zeros: nothing hangs, and snap_lazy_wait() and
 * snap_lazy_close() report the error.
 *
 * The page lookup is per file (reader-lazy-index.c, reader-lazy.h): a
 * struct lazy_index holds one region's extents of one file, sorted by page
 * for faults and in file order for the sweep, built at the start from the chunks' metadata (one entry per
 * extent, so its size follows the file's, as the coverage check's does),
 * and a cache of decompressed chunks whose buffers it takes over from the
 * reader (reader_zsnap_chunk_data()).  lazy_page_lookup() answers "where
 * are page P's bytes, and for how many pages does that hold": the one
 * place an incremental chain resolves a PARENT extent from its parent's
 * index.
 *
 * Memory: the index, 32 bytes an extent of the region (each took 24 bytes
 * of the file); a bitmap of a bit a page of the memory registered; the
 * cache, LAZY_CACHE_SLOTS chunks' data plus the reader's own: 5 MiB for
 * snapd's chunks of at most 1 MiB, and at most 5 x 64 MiB for a crafted
 * file (the reader's cap on a chunk).
 *
 * Threads and locks: the caller's thread runs snap_file_restore_lazy(),
 * snap_lazy_wait/stats/close(); the handler (lazy_handler_main) owns the
 * index, the snap_file, the bitmap and the step state, and never touches
 * the registered memory itself: it only names it to ioctls, so it cannot
 * fault on it.  l->lock guards the figures, the done/failed/finish flags
 * and the message; l->cond signals done.  The handler blocks every signal.
 */
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/userfaultfd.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "error.h"
#include "reader-internal.h"
#include "reader-lazy.h"

#define LAZY_FAULT_PAGES	16	/* a fault fills its page and those after */
#define LAZY_SWEEP_DATA_PAGES	256	/* most DATA pages a sweep step copies */
#define LAZY_SWEEP_ZERO_PAGES	4096	/* most zero pages a step maps */
#define LAZY_MSG_BATCH		64
#define LAZY_MINCORE_PAGES	4096

#define PAGE			ZSNAP_PAGE_SIZE

struct snap_lazy {
	struct lazy_index	 index;
	unsigned char		*base;
	uint64_t		 pages;
	size_t			 length;
	int			 mapped;	/* the call mapped base */
	unsigned		 flags;
	int			 uffd;
	int			 wakefd;	/* eventfd: wakes an idle handler */
	pthread_t		 thread;

	/* the handler's */
	uint64_t		*present;	/* bitmap: pages it filled */
	uint64_t		 npresent;
	size_t			 sweep_next;	/* extent (file order) */
	uint64_t		 sweep_page;	/* page of the region in it */

	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct snap_lazy_stats	 stats;
	int			 finish;	/* close wants every page now */
	int			 done;		/* complete or failed, unregistered */
	int			 err;
	char			 error[SC_ERROR_MAX];
};

/* ---- the handler ----------------------------------------------------------- */

static int
present_get(const struct snap_lazy *l, uint64_t page)
{
	return (l->present[page / 64] >> (page % 64)) & 1;
}

static void
present_set(struct snap_lazy *l, uint64_t page, uint64_t count)
{
	for (uint64_t p = page; p < page + count; p++) {
		if (!present_get(l, p))
			l->npresent++;
		l->present[p / 64] |= 1ull << (p % 64);
	}
}

/* Pages from page on (at most max) that are all missing. */
static uint64_t
missing_run(const struct snap_lazy *l, uint64_t page, uint64_t max)
{
	uint64_t	n = 0;

	while (n < max && page + n < l->pages && !present_get(l, page + n))
		n++;
	return n;
}

/*
 * Let go of the memory: unregister it (which wakes the threads blocked on
 * it), wake the range once more and close the userfaultfd.  The second
 * wake and the close are belts and braces: they cost nothing, and closing
 * the fd wakes every waiter left and drops any registration, whatever the
 * ioctls said, so no thread can stay blocked on memory no one serves.
 */
static void
lazy_release(struct snap_lazy *l)
{
	struct uffdio_range	r = { (uint64_t)(uintptr_t)l->base, l->pages * PAGE };

	if (ioctl(l->uffd, UFFDIO_UNREGISTER, &r) == -1) {
		/* Closing the fd below unregisters it anyway. */
	}
	if (ioctl(l->uffd, UFFDIO_WAKE, &r) == -1) {
		/* Nor can this fail on a range that was registered. */
	}
	close(l->uffd);
	l->uffd = -1;
}

/*
 * Keep the handler's message for the caller (the reader set it in this
 * thread's buffer), mark the restore failed and unregister the memory,
 * which wakes every thread blocked on it; their pages then read as zeros.
 */
static void
lazy_fail(struct snap_lazy *l)
{
	int			err = errno;

	pthread_mutex_lock(&l->lock);
	l->err = err ? err : EIO;
	snprintf(l->error, sizeof(l->error), "%s", sc_error(NULL));
	l->stats.failed = 1;
	pthread_mutex_unlock(&l->lock);
	lazy_release(l);
}

/*
 * Fill count pages from page on, all missing and from one source, with one
 * ioctl.  A page found present (EEXIST) is marked and counted, and the rest
 * retried; *filled gets the pages this call installed.
 */
static int
lazy_install(struct snap_lazy *l, uint64_t page, uint64_t count,
    const struct lazy_source *src, uint64_t *filled, uint64_t *raced)
{
	uint64_t	done = 0;

	while (done < count) {
		uint64_t	dst = (uint64_t)(uintptr_t)l->base +
				    (page + done) * PAGE;
		uint64_t	len = (count - done) * PAGE;
		int64_t		got;
		int		rc;

		if (src->kind == ZSNAP_EXTENT_DATA) {
			struct uffdio_copy c = { dst, (uint64_t)(uintptr_t)
			    (src->data + done * PAGE), len, 0, 0 };

			rc = ioctl(l->uffd, UFFDIO_COPY, &c);
			got = c.copy;
		} else {
			struct uffdio_zeropage z = { { dst, len }, 0, 0 };

			rc = ioctl(l->uffd, UFFDIO_ZEROPAGE, &z);
			got = z.zeropage;
		}
		if (rc == 0) {
			got = (int64_t)len;
		} else if (got < 0 && -got != errno) {
			errno = (int)-got;
		}
		if (got > 0) {
			present_set(l, page + done, (uint64_t)got / PAGE);
			*filled += (uint64_t)got / PAGE;
			done += (uint64_t)got / PAGE;
			continue;
		}
		if (errno == EEXIST) {
			present_set(l, page + done, 1);
			(*raced)++;
			done++;
		} else if (errno == EAGAIN || errno == EINTR) {
			sched_yield();
		} else {
			reader_error(l->index.f, errno, "lazy restore: region %u "
			    "page %llu (%llu pages at %#llx): %s: %s",
			    l->index.region,
			    (unsigned long long)(page + done),
			    (unsigned long long)(count - done),
			    (unsigned long long)dst,
			    src->kind == ZSNAP_EXTENT_DATA ? "UFFDIO_COPY" :
			    "UFFDIO_ZEROPAGE", errno == ENOENT ? "the memory "
			    "is no longer registered (unmapped?)" :
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Fill the missing pages from page on, at most max of them, as far as one
 * source holds them.  faulted: for a fault (else the sweep); the figures go
 * to the stats.  Returns the pages looked at (at least 1), or -1.
 */
static int64_t
lazy_fill(struct snap_lazy *l, uint64_t page, uint64_t max, int faulted)
{
	struct lazy_source	src;
	uint64_t		n, filled = 0, raced = 0;
	uint64_t		chunks = lazy_chunks_read(&l->index);

	if (lazy_page_lookup(&l->index, page, max, &src) == -1)
		return -1;
	n = missing_run(l, page, src.count);
	if (n > 0 && lazy_install(l, page, n, &src, &filled, &raced) == -1)
		return -1;
	pthread_mutex_lock(&l->lock);
	/* This file's LOST pages are counted at the start; a parent's here. */
	if (src.from_parent && src.kind == ZSNAP_EXTENT_LOST)
		l->stats.pages_lost += filled;
	if (faulted)
		l->stats.pages_faulted += filled;
	else
		l->stats.pages_swept += filled;
	l->stats.faults_raced += raced;
	l->stats.pages_present = l->npresent;
	l->stats.chunks_read += lazy_chunks_read(&l->index) - chunks;
	pthread_mutex_unlock(&l->lock);
	return n > 0 ? (int64_t)n : 1;
}

/*
 * A fault has just had chunk decompressed: fill the rest of the region's
 * pages it holds while they are at hand.  A chunk written on snapd's fault
 * path holds pages from all over the region, so touches in random order
 * would otherwise decompress it again for nearly every page.  The region's
 * extents lie in file order, so the chunk's are adjacent.
 */
static int
lazy_fill_chunk(struct snap_lazy *l, uint64_t chunk)
{
	const struct lazy_index	*ix = &l->index;
	size_t			 lo = 0, hi = ix->nextents;

	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;

		if (ix->extents[mid].chunk < chunk)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ix->nextents && ix->extents[lo].chunk == chunk; lo++) {
		const struct lazy_extent *x = &ix->extents[lo];
		uint64_t p = x->first, end = x->first + x->count;

		while (x->kind == ZSNAP_EXTENT_DATA && p < end) {
			int64_t	n;

			if (present_get(l, p)) {
				p++;
				continue;
			}
			if ((n = lazy_fill(l, p, end - p, 0)) == -1)
				return -1;
			p += (uint64_t)n;
		}
	}
	return 0;
}

/* Serve one fault message. */
static int
lazy_fault(struct snap_lazy *l, const struct uffd_msg *m)
{
	uint64_t	addr = m->arg.pagefault.address & ~(uint64_t)(PAGE - 1);
	uint64_t	base = (uint64_t)(uintptr_t)l->base;
	uint64_t	page, chunks;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return 0;	/* no other event was asked for */
	pthread_mutex_lock(&l->lock);
	l->stats.faults++;
	pthread_mutex_unlock(&l->lock);
	if (addr < base || addr - base >= l->pages * PAGE)
		return 0;
	page = (addr - base) / PAGE;
	if (present_get(l, page)) {
		/*
		 * Filled after this thread faulted: the fill woke it, or
		 * will; waking it again costs nothing and is sure.
		 */
		struct uffdio_range r = { addr, PAGE };

		pthread_mutex_lock(&l->lock);
		l->stats.faults_raced++;
		pthread_mutex_unlock(&l->lock);
		ioctl(l->uffd, UFFDIO_WAKE, &r);
		return 0;
	}
	chunks = l->index.chunks_read;
	if (lazy_fill(l, page, LAZY_FAULT_PAGES, 1) == -1)
		return -1;
	if (l->index.chunks_read == chunks)
		return 0;
	return lazy_fill_chunk(l, lazy_index_find(&l->index, page)->chunk);
}

/* Read and serve every queued fault message; 0, or -1 on an error. */
static int
lazy_serve_faults(struct snap_lazy *l)
{
	struct uffd_msg	msgs[LAZY_MSG_BATCH];

	for (;;) {
		ssize_t	n = read(l->uffd, msgs, sizeof(msgs));

		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			if (errno == EINTR)
				continue;
			reader_error(l->index.f, errno, "lazy restore: read "
			    "userfaultfd: %s", strerror(errno));
			return -1;
		}
		for (size_t k = 0; k < (size_t)n / sizeof(msgs[0]); k++)
			if (lazy_fault(l, &msgs[k]) == -1)
				return -1;
		if ((size_t)n < sizeof(msgs))
			return 0;
	}
}

/*
 * One sweep step: the next missing pages in file order, at most one
 * chunk's worth.  0 when a step was done or nothing is left to sweep.
 */
static int
lazy_sweep_step(struct snap_lazy *l)
{
	const struct lazy_index	*ix = &l->index;

	while (l->sweep_next < ix->nextents) {
		const struct lazy_extent *x = &ix->extents[l->sweep_next];
		uint64_t end = x->first + x->count, max;
		int64_t	 n;

		while (l->sweep_page < end && present_get(l, l->sweep_page))
			l->sweep_page++;
		if (l->sweep_page == end) {
			/* Extents lie in file order, not in page order. */
			if (++l->sweep_next < ix->nextents)
				l->sweep_page = ix->extents[l->sweep_next].first;
			continue;
		}
		max = x->kind == ZSNAP_EXTENT_DATA ? LAZY_SWEEP_DATA_PAGES :
		    LAZY_SWEEP_ZERO_PAGES;
		if (max > end - l->sweep_page)
			max = end - l->sweep_page;
		if ((n = lazy_fill(l, l->sweep_page, max, 0)) == -1)
			return -1;
		l->sweep_page += (uint64_t)n;
		return 0;
	}
	return 0;
}

/* Block until a fault or a wake-up; 0, or -1 with the message set. */
static int
lazy_idle(struct snap_lazy *l)
{
	struct pollfd	pfd[2] = { { l->uffd, POLLIN, 0 }, { l->wakefd, POLLIN, 0 } };
	uint64_t	v;

	if (poll(pfd, 2, -1) == -1 && errno != EINTR) {
		reader_error(l->index.f, errno, "lazy restore: poll: %s",
		    strerror(errno));
		return -1;
	}
	/* Reading an eventfd resets it; EAGAIN only if another read did. */
	if ((pfd[1].revents & POLLIN) && read(l->wakefd, &v, sizeof(v)) == -1)
		v = 0;
	return 0;
}

static void *
lazy_handler_main(void *arg)
{
	struct snap_lazy	*l = arg;
	int			 sweep = !(l->flags & SNAP_LAZY_NO_SWEEP);
	int			 rc = 0;

	while (rc == 0 && l->npresent < l->pages) {
		if ((rc = lazy_serve_faults(l)) == -1)
			break;
		if (l->npresent == l->pages)
			break;
		if (!sweep) {
			pthread_mutex_lock(&l->lock);
			sweep = l->finish;
			pthread_mutex_unlock(&l->lock);
		}
		if (sweep) {
			size_t before = l->sweep_next;

			rc = lazy_sweep_step(l);
			if (rc == 0 && l->sweep_next == l->index.nextents &&
			    before == l->sweep_next && l->npresent < l->pages) {
				/* Cannot happen once coverage holds. */
				reader_error(l->index.f, EBADMSG, "lazy restore: "
				    "region %u: the sweep ended with %llu of "
				    "%llu pages", l->index.region,
				    (unsigned long long)l->npresent,
				    (unsigned long long)l->pages);
				rc = -1;
			}
		} else {
			rc = lazy_idle(l);
		}
	}
	if (rc == -1)
		lazy_fail(l);
	else
		lazy_release(l);
	pthread_mutex_lock(&l->lock);
	l->stats.pages_present = l->npresent;
	l->stats.complete = rc == 0;
	l->done = 1;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- the caller's side ----------------------------------------------------- */

/*
 * Memory the caller gave: discard its pages so that each faults, and make
 * sure they went (shared memory keeps its pages through MADV_DONTNEED).
 */
static int
lazy_memory_clear(struct snap_lazy *l)
{
	unsigned char	vec[LAZY_MINCORE_PAGES];

	if (madvise(l->base, l->length, MADV_DONTNEED) == -1) {
		reader_error(l->index.f, errno, "lazy restore: memory at %p, %zu "
		    "bytes: madvise MADV_DONTNEED: %s", (void *)l->base,
		    l->length, strerror(errno));
		return -1;
	}
	for (uint64_t p = 0; p < l->pages; p += LAZY_MINCORE_PAGES) {
		uint64_t n = l->pages - p < LAZY_MINCORE_PAGES ? l->pages - p :
		    LAZY_MINCORE_PAGES;

		if (mincore(l->base + p * PAGE, n * PAGE, vec) == -1) {
			reader_error(l->index.f, errno, "lazy restore: memory "
			    "at %p: mincore: %s", (void *)(l->base + p * PAGE),
			    strerror(errno));
			return -1;
		}
		for (uint64_t k = 0; k < n; k++) {
			if (vec[k] & 1) {
				reader_error(l->index.f, EINVAL, "lazy restore: "
				    "memory at %p keeps its pages through "
				    "MADV_DONTNEED: not private anonymous memory",
				    (void *)(l->base + (p + k) * PAGE));
				return -1;
			}
		}
	}
	return 0;
}

/* A userfaultfd for missing pages, with the memory registered on it. */
static int
lazy_register(struct snap_lazy *l)
{
	struct uffdio_api	 api = { UFFD_API, 0, 0 };
	struct uffdio_register	 reg;
	uint64_t		 need = (1ull << _UFFDIO_COPY) |
				    (1ull << _UFFDIO_ZEROPAGE) |
				    (1ull << _UFFDIO_WAKE);

	if ((l->uffd = sc_uffd_create(NULL)) == -1) {
		char	msg[SC_ERROR_MAX];

		snprintf(msg, sizeof(msg), "%s", sc_error(NULL));
		reader_error(l->index.f, errno, "lazy restore: %s", msg);
		return -1;
	}
	if (ioctl(l->uffd, UFFDIO_API, &api) == -1) {
		reader_error(l->index.f, errno, "lazy restore: UFFDIO_API: %s",
		    strerror(errno));
		return -1;
	}
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uint64_t)(uintptr_t)l->base;
	reg.range.len = l->pages * PAGE;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(l->uffd, UFFDIO_REGISTER, &reg) == -1) {
		reader_error(l->index.f, errno, "lazy restore: memory at %p, "
		    "%llu bytes: UFFDIO_REGISTER (missing pages): %s%s",
		    (void *)l->base, (unsigned long long)reg.range.len,
		    strerror(errno), errno == EINVAL ? " (not private "
		    "anonymous memory?)" : "");
		return -1;
	}
	if ((reg.ioctls & need) != need) {
		struct uffdio_range r = reg.range;

		ioctl(l->uffd, UFFDIO_UNREGISTER, &r);
		reader_error(l->index.f, ENOTSUP, "lazy restore: memory at %p: "
		    "the kernel offers no UFFDIO_COPY and UFFDIO_ZEROPAGE on it "
		    "(ioctls %#llx)", (void *)l->base,
		    (unsigned long long)reg.ioctls);
		return -1;
	}
	return 0;
}

/* Start the handler with every signal blocked. */
static int
lazy_start(struct snap_lazy *l)
{
	sigset_t	all, old;
	int		err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&l->thread, NULL, lazy_handler_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		reader_error(l->index.f, err, "lazy restore: cannot start the "
		    "handler thread: %s", strerror(err));
		return -1;
	}
	return 0;
}

/* Free l's resources (the handler has exited or never started). */
static void
lazy_free(struct snap_lazy *l, int unmap)
{
	int	saved = errno;

	if (l->uffd != -1)
		close(l->uffd);		/* drops any registration left */
	if (l->wakefd != -1)
		close(l->wakefd);
	if (unmap && l->mapped && l->base != NULL)
		munmap(l->base, l->length);
	lazy_index_free(&l->index);
	free(l->present);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
	errno = saved;
}

static int
lazy_check_args(struct snap_file *f, uint32_t index, void *addr, size_t len,
    unsigned flags)
{
	if (f == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_restore_lazy: no file");
		return -1;
	}
	if (index >= f->info.region_count) {
		reader_error(f, EINVAL, "no region %u (the snapshot has %u)",
		    index, f->info.region_count);
		return -1;
	}
	if (f->format != 0) {
		reader_error(f, ENOTSUP, "lazy restore reads zsnap files; a raw "
		    "snapshot's region file can be mmap'ed as it is");
		return -1;
	}
	if ((flags & ~(unsigned)SNAP_LAZY_NO_SWEEP) != 0) {
		reader_error(f, EINVAL, "lazy restore: unknown flags %#x",
		    flags & ~(unsigned)SNAP_LAZY_NO_SWEEP);
		return -1;
	}
	if (f->regions[index].length > SIZE_MAX) {
		reader_error(f, EFBIG, "region %u (%s): %llu bytes do not fit "
		    "in this address space", index, f->regions[index].name,
		    (unsigned long long)f->regions[index].length);
		return -1;
	}
	if (addr != NULL && ((uintptr_t)addr % PAGE != 0 ||
	    len < f->regions[index].length)) {
		reader_error(f, EINVAL, "region %u (%s) is %llu bytes; the memory "
		    "to restore it into (%p, %zu bytes) must be page-aligned and "
		    "at least that long", index, f->regions[index].name,
		    (unsigned long long)f->regions[index].length, addr, len);
		return -1;
	}
	return 0;
}

struct snap_lazy *
snap_file_restore_lazy(struct snap_file *f, uint32_t index, void *addr,
    size_t len, unsigned flags)
{
	struct snap_lazy	*l;
	struct reader_cover	 cover = { NULL, 0, 0 };
	pthread_condattr_t	 attr;
	int			 built;

	if (lazy_check_args(f, index, addr, len, flags) == -1)
		return NULL;
	if (f->has_parent && reader_chain_open(f) == -1)
		return NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		reader_error(f, ENOMEM, "lazy restore: cannot allocate its state");
		return NULL;
	}
	l->uffd = l->wakefd = -1;
	l->flags = flags;
	l->length = (size_t)f->regions[index].length;
	l->pages = f->region_pages[index];
	pthread_mutex_init(&l->lock, NULL);
	/* snap_lazy_wait()'s deadline must not move with the wall clock. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &attr);
	pthread_condattr_destroy(&attr);
	/*
	 * Refused before the memory is touched, as snap_file_restore() does:
	 * the coverage check is fed by the index's pass over the chunks, so
	 * the file's metadata is read once (an object in S3: reader-s3.c).
	 */
	built = lazy_index_build(&l->index, f, index,
	    f->covered ? NULL : &cover) == 0 &&
	    (f->covered || reader_cover_check(f, &cover) == 0);
	free(cover.runs);
	if (!built)
		goto fail;
	if ((l->present = calloc((l->pages + 63) / 64, sizeof(uint64_t))) == NULL) {
		reader_error(f, ENOMEM, "lazy restore: cannot allocate a bitmap "
		    "of %llu pages", (unsigned long long)l->pages);
		goto fail;
	}
	if ((l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		reader_error(f, errno, "lazy restore: eventfd: %s",
		    strerror(errno));
		goto fail;
	}
	if (addr == NULL) {
		void	*p = mmap(NULL, l->length, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p == MAP_FAILED) {
			reader_error(f, errno, "lazy restore: region %u (%s): "
			    "mmap %zu bytes: %s", index, f->regions[index].name,
			    l->length, strerror(errno));
			goto fail;
		}
		l->base = p;
		l->mapped = 1;
	} else {
		l->base = addr;
		if (lazy_memory_clear(l) == -1)
			goto fail;
	}
	if (l->index.nextents > 0)
		l->sweep_page = l->index.extents[0].first;
	l->stats.pages = l->pages;
	l->stats.pages_lost = l->index.pages_lost;
	if (lazy_register(l) == -1 || lazy_start(l) == -1)
		goto fail;
	return l;
fail:
	lazy_free(l, 1);
	return NULL;
}

void *
snap_lazy_addr(const struct snap_lazy *l)
{
	return l != NULL ? l->base : NULL;
}

/* The handler's failure, as the caller's error. */
static int
lazy_report(struct snap_lazy *l)
{
	sc_set_error(NULL, l->err, "%s", l->error);
	return -1;
}

int
snap_lazy_wait(struct snap_lazy *l, int timeout_ms)
{
	struct timespec	deadline;
	int		rc = 0;

	if (l == NULL) {
		sc_set_error(NULL, EINVAL, "snap_lazy_wait: no lazy restore");
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&l->lock);
	while (!l->done && rc == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&l->cond, &l->lock);
		else
			rc = pthread_cond_timedwait(&l->cond, &l->lock,
			    &deadline);
	}
	if (!l->done) {
		uint64_t present = l->stats.pages_present;

		pthread_mutex_unlock(&l->lock);
		sc_set_error(NULL, ETIMEDOUT, "%s: lazy restore of region %u: "
		    "%llu of %llu pages present after %d ms", l->index.f->path,
		    l->index.region, (unsigned long long)present,
		    (unsigned long long)l->pages, timeout_ms);
		return -1;
	}
	pthread_mutex_unlock(&l->lock);
	return l->stats.failed ? lazy_report(l) : 0;
}

int
snap_lazy_stats(struct snap_lazy *l, struct snap_lazy_stats *st)
{
	if (l == NULL || st == NULL) {
		sc_set_error(NULL, EINVAL, "snap_lazy_stats: no lazy restore or "
		    "no stats");
		return -1;
	}
	pthread_mutex_lock(&l->lock);
	*st = l->stats;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

int
snap_lazy_close(struct snap_lazy *l, struct snap_lazy_stats *st)
{
	uint64_t	one = 1;
	int		rc;

	if (l == NULL)
		return 0;
	pthread_mutex_lock(&l->lock);
	l->finish = 1;
	pthread_mutex_unlock(&l->lock);
	/*
	 * Wake an idle handler.  An eventfd write fails only when its counter
	 * is near 2^64, and a failed one leaves it readable anyway.
	 */
	if (write(l->wakefd, &one, sizeof(one)) == -1)
		one = 0;
	pthread_join(l->thread, NULL);
	if (st != NULL)
		*st = l->stats;
	rc = l->stats.failed ? lazy_report(l) : 0;
	lazy_free(l, 0);
	return rc;
}
