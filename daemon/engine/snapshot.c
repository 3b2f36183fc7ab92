/*
 * The life cycle of one snapshot: set-up, notifications to the main thread,
 * figures, cancel and free.  The work itself is done by two threads per
 * snapshot: the writer thread (arm.c arms; writer.c sweeps every page in
 * address order, finishes the file) and the fault thread (fault.c: copies
 * each page the process is about to write into the bounded buffer and
 * un-protects it).
 * snapshot-internal.h says which thread touches what.
 *
 * Threads here: snapshot_start(), snapshot_cancel(), snapshot_free() and
 * notify_cb() run on the main thread; snapshot_notify(),
 * snapshot_set_error(), snapshot_region_at() and snapshot_lost_push() are
 * called from the snapshot's own threads (reads are in readmem.c);
 * snapshot_stats() from any.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "snapshot-internal.h"
#include "uffd.h"

static uint64_t	kernel_features;

/* Why snapshot_start() refused, per thread (there is no snapshot to hold it). */
static _Thread_local char	start_error[512];

/* Snapshots armed and not yet done, and the most of them at one time. */
static _Atomic unsigned	running_now, running_peak;

uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int
snapshot_probe_kernel(char *why, size_t whylen)
{
	if (uffd_probe(&kernel_features) == -1) {
		snprintf(why, whylen, "cannot create a userfaultfd: %s",
		    strerror(errno));
		return -1;
	}
	if (!(kernel_features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		snprintf(why, whylen, "the kernel's userfaultfd lacks "
		    "write-protect faults (UFFD_FEATURE_PAGEFAULT_FLAG_WP)");
		return -1;
	}
	return 0;
}

uint64_t
snapshot_kernel_features(void)
{
	return kernel_features;
}

const char *
snapshot_state_name(enum snapshot_state state)
{
	static const char *const names[] = {
		[SNAPSHOT_ARMING] = "arming",
		[SNAPSHOT_PREARMED] = "prearmed",
		[SNAPSHOT_RUNNING] = "running",
		[SNAPSHOT_FINISHING] = "finishing",
		[SNAPSHOT_COMPLETED] = "completed",
		[SNAPSHOT_FAILED] = "failed",
		[SNAPSHOT_CANCELLED] = "cancelled",
	};

	if ((unsigned)state >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[state];
}

/* Main thread: report what the snapshot's threads flagged, in order. */
static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct snapshot	*s = arg;
	unsigned	 pending = atomic_exchange(&s->pending, 0);

	if (pending & NOTIFY_PREARMED)
		s->cb(s, SNAPSHOT_EV_PREARMED, s->cb_arg);
	if (pending & NOTIFY_ARMED) {
		s->cb(s, SNAPSHOT_EV_ARMED, s->cb_arg);
		pthread_mutex_lock(&s->prearm_lock);
		s->armed_reported = 1;
		pthread_cond_broadcast(&s->prearm_cond);
		pthread_mutex_unlock(&s->prearm_lock);
	}
	if (pending & NOTIFY_BUFFER_FULL)
		s->cb(s, SNAPSHOT_EV_BUFFER_FULL, s->cb_arg);
	/* Last: the callback may free the snapshot. */
	if (pending & NOTIFY_DONE)
		s->cb(s, SNAPSHOT_EV_DONE, s->cb_arg);
}

void
snapshot_notify(struct snapshot *s, unsigned what)
{
	atomic_fetch_or(&s->pending, what);
	event_active(s->notify_ev, EV_READ, 0);
}

void
snapshot_set_error(struct snapshot *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->error_lock);
	if (s->error[0] == '\0') {	/* the first cause is the one to tell */
		va_start(ap, fmt);
		vsnprintf(s->error, sizeof(s->error), fmt, ap);
		va_end(ap);
		log_warnx("snapshot %llu (pid %d): %s",
		    (unsigned long long)s->id, (int)s->req.pid, s->error);
	}
	pthread_mutex_unlock(&s->error_lock);
}

static struct region *
region_at(struct snapshot *s, uint64_t addr)
{
	uint32_t lo = 0, hi = s->nregions;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct region *r = s->by_addr[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr - r->start >= r->length)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct region *
snapshot_region_at(struct snapshot *s, uint64_t addr, uint64_t *page)
{
	uint32_t	 n = atomic_load_explicit(&s->nmoves,
			    memory_order_acquire);
	struct region	*r;

	/*
	 * Undo the moves, newest first, to find where it was when armed.  An
	 * address a move vacated (and no newer move filled) holds nothing of
	 * ours any more: mremap's unmap of the old range lands there.
	 */
	for (uint32_t i = n; i-- > 0;) {
		const struct move *m = &s->moves[i];

		if (addr >= m->to && addr - m->to < m->len)
			addr = m->from + (addr - m->to);
		else if (addr >= m->from && addr - m->from < m->len)
			return NULL;
	}
	if ((r = region_at(s, addr)) != NULL)
		*page = (addr - r->start) >> PAGE_SHIFT_4K;
	return r;
}

uint64_t
snapshot_page_addr(struct snapshot *s, const struct region *r, uint64_t page)
{
	uint32_t	n = atomic_load_explicit(&s->nmoves, memory_order_acquire);
	uint64_t	addr = r->start + (page << PAGE_SHIFT_4K);

	for (uint32_t i = 0; i < n; i++) {
		const struct move *m = &s->moves[i];

		if (addr >= m->from && addr - m->from < m->len)
			addr = m->to + (addr - m->from);
	}
	return addr;
}

void
snapshot_lost_push(struct snapshot *s, uint32_t region, uint64_t first,
    uint64_t count)
{
	pthread_mutex_lock(&s->lost_lock);
	if (s->nlost > 0) {
		struct lost_range *l = &s->lost[s->nlost - 1];

		if (l->region == region && l->first + l->count == first) {
			l->count += count;
			pthread_mutex_unlock(&s->lost_lock);
			return;
		}
	}
	if (s->nlost == s->lost_cap) {
		size_t			 cap = s->lost_cap ? s->lost_cap * 2 : 64;
		struct lost_range	*grown;

		/*
		 * Its size follows what the process discards, so running out
		 * fails this snapshot (a lost range it cannot record would
		 * be silent), never the daemon.
		 */
		grown = reallocarray(s->lost, cap, sizeof(*s->lost));
		if (grown == NULL) {
			pthread_mutex_unlock(&s->lost_lock);
			snapshot_set_error(s, "lost-page list of %zu ranges: %s",
			    cap, strerror(ENOMEM));
			atomic_store(&s->fault_error, ENOMEM);
			return;
		}
		s->lost = grown;
		s->lost_cap = cap;
	}
	s->lost[s->nlost++] = (struct lost_range){ region, first, count };
	pthread_mutex_unlock(&s->lost_lock);
}

static int
region_cmp(const void *a, const void *b)
{
	const struct region *ra = *(const struct region *const *)a;
	const struct region *rb = *(const struct region *const *)b;

	return ra->start < rb->start ? -1 : ra->start > rb->start;
}

static void
snapshot_destroy(struct snapshot *s)
{
	if (s->notify_ev != NULL)
		event_free(s->notify_ev);
	for (uint32_t i = 0; i < s->nregions; i++) {
		pagestate_destroy(&s->regions[i].ps);
		free(s->regions[i].prearm_dirty);
		free(s->regions[i].not_huge);
	}
	free(s->regions);
	free(s->by_addr);
	free(s->lost);
	free(s->stopped_lost);
	free(s->procrec);
	track_state_free(s->track);
	track_state_free(s->track_base);
	tracker_free(s->tracker);
	pagebuf_destroy(&s->buf);
	if (s->uffd >= 0)
		close(s->uffd);
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	pthread_mutex_destroy(&s->event_lock);
	pthread_mutex_destroy(&s->lost_lock);
	pthread_mutex_destroy(&s->error_lock);
	pthread_mutex_destroy(&s->prearm_lock);
	pthread_cond_destroy(&s->prearm_cond);
	pthread_mutex_destroy(&s->upload_lock);
	upload_free(s);
	free(s);
}

static int
snapshot_refuse(const struct snapshot_request *req, const char *why)
{
	snprintf(start_error, sizeof(start_error), "snapshot %llu: %s",
	    (unsigned long long)req->id, why);
	errno = EINVAL;
	return -1;
}

/*
 * Tracking and incremental snapshots: what they cannot do is refused, and
 * the states are made (track.h).  The parent's state (req->incr) becomes
 * s->track only once the writer thread starts: until then the caller owns
 * it.  0, or -1 with errno and start_error set.
 */
static int
snapshot_start_track(struct snapshot *s, const struct snapshot_request *req)
{
	uint64_t	*start, *length;
	int		 rc = 0;

	s->req.incr = NULL;
	s->req.parent = NULL;
	if (!req->track && req->incr == NULL)
		return 0;
	if (req->format != OUTPUT_ZSNAP)
		return snapshot_refuse(req, "incremental snapshots and "
		    "tracking are for the zsnap format only");
	if (req->incr != NULL && (req->prearm || req->parent == NULL))
		return snapshot_refuse(req, req->prearm ? "an incremental "
		    "snapshot is armed from the parent's tracking: it takes "
		    "no pre-arm" : "an incremental snapshot needs its parent's "
		    "link");
	if (req->incr != NULL) {
		if (req->incr->nregions != s->nregions)
			return snapshot_refuse(req, "the regions differ from "
			    "the parent's");
		for (uint32_t i = 0; i < s->nregions; i++)
			if (req->incr->regions[i].start != s->regions[i].start ||
			    req->incr->regions[i].length != s->regions[i].length)
				return snapshot_refuse(req, "the regions "
				    "differ from the parent's");
		s->parent = *req->parent;
	}
	start = calloc(s->nregions, sizeof(*start));
	length = calloc(s->nregions, sizeof(*length));
	if (start != NULL && length != NULL)
		for (uint32_t i = 0; i < s->nregions; i++) {
			start[i] = s->regions[i].start;
			length[i] = s->regions[i].length;
		}
	if (start == NULL || length == NULL)
		errno = ENOMEM;
	else if (req->incr != NULL)
		s->track_base = track_state_new(start, length, s->nregions);
	else
		s->track = track_state_new(start, length, s->nregions);
	if (start == NULL || length == NULL ||
	    (req->incr != NULL ? s->track_base == NULL : s->track == NULL)) {
		snprintf(start_error, sizeof(start_error), "snapshot %llu: "
		    "tracking bitmaps: %s", (unsigned long long)req->id,
		    strerror(errno));
		rc = -1;
	}
	free(start);
	free(length);
	if (rc == 0 && req->incr != NULL)
		for (uint32_t i = 0; i < s->nregions; i++)
			if ((s->regions[i].prearm_dirty = calloc(
			    (s->regions[i].npages + 63) / 64,
			    sizeof(*s->regions[i].prearm_dirty))) == NULL) {
				snprintf(start_error, sizeof(start_error),
				    "snapshot %llu: tracking bitmaps: %s",
				    (unsigned long long)req->id,
				    strerror(errno));
				return -1;
			}
	return rc;
}

/*
 * The parent's state becomes this snapshot's: its dirty pages and
 * saved-whole ranges go to track_base (what this snapshot saves), the
 * state itself, emptied, to track (what the next one will).  Then the
 * writer thread owns it.
 */
static void
snapshot_take_incr(struct snapshot *s, struct track_state *incr)
{
	struct zsnap_whole	*w = s->track_base->whole;
	size_t			 n = s->track_base->nwhole;

	track_swap_dirty(s->track_base, incr);
	s->track_base->whole = incr->whole;
	s->track_base->nwhole = incr->nwhole;
	s->track_base->whole_overflow = incr->whole_overflow;
	incr->whole = w;
	incr->nwhole = n;
	incr->whole_overflow = 0;
	s->track = incr;
}

/* Give the parent's state back as it was (snapshot_start() failed late). */
static void
snapshot_give_back_incr(struct snapshot *s)
{
	struct track_state	*incr = s->track;
	struct zsnap_whole	*w = incr->whole;

	track_swap_dirty(s->track_base, incr);
	incr->whole = s->track_base->whole;
	incr->nwhole = s->track_base->nwhole;
	incr->whole_overflow = s->track_base->whole_overflow;
	s->track_base->whole = w;
	s->track_base->nwhole = 0;
	s->track = NULL;
}

struct tracker *
snapshot_take_tracker(struct snapshot *s)
{
	struct tracker *t = s->tracker;

	s->tracker = NULL;
	return t;
}

/*
 * Refuse what cannot work before any thread starts: stopped regions need
 * the process stopped at the armed instant (for a pre-arm, at
 * snapshot_arm()) and their copy must fit in the page buffer (stopped.c).  Then copy the process record.
 * 0, or -1 with errno and start_error set.
 */
static int
snapshot_start_check(struct snapshot *s, const struct snapshot_request *req)
{
	uint64_t	stopped = stopped_pages(req);
	char		why[400];

	if (stopped > req->buffer_size / PAGE_4K) {
		snprintf(start_error, sizeof(start_error), "snapshot %llu: "
		    "the regions copied while the process is stopped take "
		    "%llu bytes, more than the buffer of %llu bytes; raise "
		    "buffer-size", (unsigned long long)req->id,
		    (unsigned long long)(stopped * PAGE_4K),
		    (unsigned long long)req->buffer_size);
		errno = EINVAL;
		return -1;
	}
	if (req->procrec != NULL && req->procrec_len > 0) {
		/* Its size is the process's: fail the request, not snapd. */
		if ((s->procrec = malloc(req->procrec_len)) == NULL) {
			snprintf(start_error, sizeof(start_error), "snapshot "
			    "%llu: process record of %zu bytes: %s",
			    (unsigned long long)req->id, req->procrec_len,
			    strerror(ENOMEM));
			errno = ENOMEM;
			return -1;
		}
		memcpy(s->procrec, req->procrec, req->procrec_len);
		s->procrec_len = req->procrec_len;
	}
	s->req.procrec = NULL;
	s->req.procrec_len = 0;
	s->req.s3 = NULL;
	if (upload_prepare(s, req, why, sizeof(why)) == -1) {
		int saved = errno;

		snprintf(start_error, sizeof(start_error), "snapshot %llu: %s",
		    (unsigned long long)req->id, why);
		errno = saved;
		return -1;
	}
	return snapshot_start_track(s, req);
}

struct snapshot *
snapshot_start(struct event_base *base, const struct snapshot_request *req,
    snapshot_cb *cb, void *arg)
{
	struct snapshot	*s;
	int		 err;

	s = xcalloc(1, sizeof(*s));
	s->id = req->id;
	s->req = *req;
	s->req.regions = NULL;
	s->req.name = NULL;
	snprintf(s->name, sizeof(s->name), "%s", req->name);
	s->uffd = req->uffd;
	s->pidfd = req->pidfd;
	s->dirfd = s->stop_fd = -1;
	s->cb = cb;
	s->cb_arg = arg;
	pthread_mutex_init(&s->event_lock, NULL);
	pthread_mutex_init(&s->lost_lock, NULL);
	pthread_mutex_init(&s->error_lock, NULL);
	pthread_mutex_init(&s->prearm_lock, NULL);
	pthread_cond_init(&s->prearm_cond, NULL);
	pthread_mutex_init(&s->upload_lock, NULL);
	atomic_init(&s->state, SNAPSHOT_ARMING);

	s->nregions = req->region_count;
	s->last_live = UINT32_MAX;
	s->regions = xcalloc(s->nregions, sizeof(*s->regions));
	s->by_addr = xcalloc(s->nregions, sizeof(*s->by_addr));
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = &s->regions[i];

		r->start = req->regions[i].start;
		r->length = req->regions[i].length;
		r->npages = r->length >> PAGE_SHIFT_4K;
		r->index = i;
		r->flags = req->regions[i].flags;
		r->filefd = -1;
		s->by_addr[i] = r;
		/*
		 * These bitmaps grow with the region, whose length the
		 * request decides: failing to get them fails the request,
		 * never the daemon.
		 */
		if (pagestate_init(&r->ps, r->npages) == -1)
			goto fail;
		if (req->prearm && (r->prearm_dirty = calloc((r->npages + 63) /
		    64, sizeof(*r->prearm_dirty))) == NULL)
			goto fail;
		if ((r->not_huge = calloc(r->npages / (64 * HUGE_PAGES) + 1,
		    sizeof(*r->not_huge))) == NULL)
			goto fail;
		s->pages_total += r->npages;
		if (!region_stopped(r)) {
			s->pages_live += r->npages;
			s->last_live = i;
		}
	}
	qsort(s->by_addr, s->nregions, sizeof(*s->by_addr), region_cmp);

	/* Copies the caller's region table for the output's header. */
	{
		struct output_region *copy;

		copy = xcalloc(s->nregions, sizeof(*copy));
		memcpy(copy, req->regions, s->nregions * sizeof(*copy));
		s->req.regions = copy;
	}

	if (snapshot_start_check(s, req) == -1)
		goto refused;
	/* An S3 destination has no directory. */
	if ((s->s3 == NULL &&
	    (s->dirfd = fcntl(req->dirfd, F_DUPFD_CLOEXEC, 3)) == -1) ||
	    (s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1 ||
	    pagebuf_init(&s->buf, req->buffer_size) == -1)
		goto fail;
	s->notify_ev = event_new(base, -1, 0, notify_cb, s);
	if (s->notify_ev == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	if (req->incr != NULL)
		snapshot_take_incr(s, req->incr);
	if ((err = pthread_create(&s->writer, NULL, writer_thread_main, s))) {
		if (req->incr != NULL)
			snapshot_give_back_incr(s);
		errno = err;
		goto fail;
	}
	return s;

fail:
	snprintf(start_error, sizeof(start_error), "snapshot %llu: cannot "
	    "start: %s", (unsigned long long)req->id, strerror(errno));
refused:
	err = errno;
	free((void *)s->req.regions);
	snapshot_destroy(s);
	errno = err;
	return NULL;
}

const char *
snapshot_start_error(void)
{
	return start_error;
}

void
snapshot_cancel(struct snapshot *s, const char *why)
{
	snapshot_set_error(s, "cancelled: %s", why);
	atomic_store(&s->cancel, 1);
	pagebuf_cancel(&s->buf);
	pthread_mutex_lock(&s->prearm_lock);
	pthread_cond_broadcast(&s->prearm_cond);
	pthread_mutex_unlock(&s->prearm_lock);
}

int
snapshot_arm(struct snapshot *s)
{
	int rc = 0;

	pthread_mutex_lock(&s->prearm_lock);
	/*
	 * Asked already comes first: once asked, the writer may have armed
	 * and left PREARMED by now, and a second request is still "already".
	 */
	if (s->arm_requested) {
		errno = EALREADY;
		rc = -1;
	} else if (atomic_load(&s->state) != SNAPSHOT_PREARMED) {
		errno = EINVAL;
		rc = -1;
	} else {
		s->arm_requested = 1;
		pthread_cond_broadcast(&s->prearm_cond);
	}
	pthread_mutex_unlock(&s->prearm_lock);
	return rc;
}

int
snapshot_set_procrec(struct snapshot *s, const uint8_t *rec, size_t len)
{
	uint8_t *copy = malloc(len);

	if (copy == NULL)
		return -1;
	memcpy(copy, rec, len);
	pthread_mutex_lock(&s->prearm_lock);
	if (s->arm_requested) {
		pthread_mutex_unlock(&s->prearm_lock);
		free(copy);
		errno = EALREADY;
		return -1;
	}
	free(s->procrec);
	s->procrec = copy;
	s->procrec_len = len;
	pthread_mutex_unlock(&s->prearm_lock);
	return 0;
}

void
snapshot_prearm_note(struct region *r, uint64_t first, uint64_t count)
{
	for (uint64_t p = first; p < first + count && p < r->npages; p++)
		atomic_fetch_or_explicit(&r->prearm_dirty[p / 64],
		    1ULL << (p % 64), memory_order_relaxed);
}

void
snapshot_running_enter(struct snapshot *s)
{
	unsigned n = atomic_fetch_add(&running_now, 1) + 1;
	unsigned peak = atomic_load(&running_peak);

	while (n > peak &&
	    !atomic_compare_exchange_weak(&running_peak, &peak, n))
		;
	s->counted_running = 1;
}

void
snapshot_running_leave(struct snapshot *s)
{
	if (s->counted_running) {
		atomic_fetch_sub(&running_now, 1);
		s->counted_running = 0;
	}
}

unsigned
snapshot_running_peak(void)
{
	return atomic_load(&running_peak);
}

void
snapshot_test_release(struct snapshot *s)
{
	atomic_store(&s->test_released, 1);
}

int
snapshot_hold_over(struct snapshot *s)
{
	uint64_t waits;

	switch (s->req.hold) {
	case SNAPSHOT_HOLD_BUFFER_FULL:
		pthread_mutex_lock(&s->buf.lock);
		waits = s->buf.full_waits;
		pthread_mutex_unlock(&s->buf.lock);
		return waits > 0;
	case SNAPSHOT_HOLD_RUNNING:
		return atomic_load(&running_peak) >= s->req.hold_count;
	case SNAPSHOT_HOLD_DISCARD:
		return atomic_load(&s->address_events) > 0;
	case SNAPSHOT_HOLD_RELEASE:
		return atomic_load(&s->test_released);
	case SNAPSHOT_HOLD_CANCEL:
		return 0;
	default:
		return 1;
	}
}

uint64_t
snapshot_id(const struct snapshot *s)
{
	return s->id;
}

void
snapshot_stats(struct snapshot *s, struct snapshot_stats *st)
{
	enum snapshot_state state = atomic_load(&s->state);

	memset(st, 0, sizeof(*st));
	st->state = state;
	st->pages_total = s->pages_total;
	st->pages_saved = atomic_load(&s->pages_saved);
	st->pages_faulted = atomic_load(&s->pages_faulted);
	st->pages_swept = atomic_load(&s->pages_swept);
	st->huge_faulted = atomic_load(&s->huge_faulted);
	st->huge_swept = atomic_load(&s->huge_swept);
	st->pages_zero = atomic_load(&s->pages_zero);
	st->pages_lost = atomic_load(&s->pages_lost);
	st->buffer_size = (uint64_t)s->buf.nslots * PAGE_4K;
	pthread_mutex_lock(&s->buf.lock);
	st->buffer_used = (uint64_t)(s->buf.nslots - s->buf.nfree) * PAGE_4K;
	st->buffer_peak = (uint64_t)s->buf.peak * PAGE_4K;
	st->buffer_full_waits = s->buf.full_waits;
	pthread_mutex_unlock(&s->buf.lock);
	st->stall_max_ns = atomic_load(&s->stall_max_ns);
	for (unsigned i = 0; i <= SNAPSHOT_HIST_BOUNDS; i++)
		st->stall_hist.count[i] = atomic_load(&s->stall_count[i]);
	st->stall_hist.sum_us = atomic_load(&s->stall_sum_us);
	st->bytes_written = atomic_load(&s->bytes_written);
	st->prearm_pages = atomic_load(&s->prearm_pages);
	if (state != SNAPSHOT_ARMING)
		st->prearm_ns = s->prearm_ns;
	if (state != SNAPSHOT_ARMING && state != SNAPSHOT_PREARMED) {
		st->arm_ns = s->arm_ns;
		st->armed_realtime_ns = s->armed_realtime_ns;
		st->duration_ns = atomic_load(&s->duration_ns);
		if (st->duration_ns == 0 && s->armed_mono_ns != 0)
			st->duration_ns = now_ns() - s->armed_mono_ns;
	}
	if (state == SNAPSHOT_COMPLETED) {
		st->file_size = s->file_size;
		snprintf(st->path, sizeof(st->path), "%s", s->path);
		st->index_crc = s->index_crc;
	}
	if (s->track_base != NULL) {
		st->incremental = 1;
		st->pages_parent = atomic_load(&s->pages_parent);
		if (state != SNAPSHOT_ARMING)
			st->pages_dirty = s->pages_dirty;
		st->whole_count = (uint32_t)s->track_base->nwhole;
		for (uint32_t i = 0; i < st->whole_count &&
		    i < SNAPSHOT_WHOLE_REPORT; i++) {
			const struct zsnap_whole *w = &s->track_base->whole[i];

			st->whole[i] = (struct snapshot_whole){ w->region,
			    w->reason, w->first_page, w->page_count };
		}
	}
	upload_stats(s, st);
	pthread_mutex_lock(&s->error_lock);
	snprintf(st->error, sizeof(st->error), "%s", s->error);
	pthread_mutex_unlock(&s->error_lock);
}

void
snapshot_free(struct snapshot *s)
{
	pthread_join(s->writer, NULL);
	free((void *)s->req.regions);
	snapshot_destroy(s);
}
