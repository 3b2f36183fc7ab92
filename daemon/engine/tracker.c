/*
 * The tracker: between two snapshots of a chain, serves the process's
 * first write to every page that is still write-protected since the last
 * armed instant, marking it dirty (track.h), and records the events that
 * change memory without a write fault.
 *
 * A sequential writer gets fault-around, as on the fault path: while its
 * faults land just past the pages the last one released, each releases
 * twice as many (up to TRACK_AROUND_MAX), so a stream pays one round trip
 * per run; the extra pages are marked dirty too, which only makes the next
 * snapshot save a little more.  A fault that continues no stream releases
 * one page, so a random writer's dirty set is exactly what it wrote.
 *
 * Runs on its own thread from tracker_start() to tracker_stop(); the main
 * thread reads only `lost` and the bitmaps (atomics).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "track.h"
#include "uffd.h"

#define TRACK_BATCH		64
#define TRACK_QUEUE		4096	/* faults read, not yet served */
#define TRACK_AROUND_MAX	16
#define TRACK_PAGE		4096ULL
#define TRACK_HUGE		(2ULL << 20)
#define TRACK_SPIN_NS		20000	/* look for the next fault this long */

struct tracker {
	struct track_state	*st;
	uint64_t		 id;		/* the snapshot it follows, for logs */
	pthread_t		 thread;
	int			 stop_fd;
	_Atomic int		 lost;		/* tracking lost: why is set */
	char			 why[256];	/* written before lost is set */
	uint64_t		 queue[TRACK_QUEUE];
	unsigned		 head, count;
	uint32_t		 stream_region;
	uint64_t		 stream_next;	/* page after the last release */
	uint32_t		 stream_width;
	uint64_t		 last_serve_ns;	/* 0: not spinning */
};

static uint64_t
tracker_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
tracker_lose(struct tracker *t, const char *fmt, const char *detail)
{
	if (atomic_load(&t->lost))
		return;
	snprintf(t->why, sizeof(t->why), fmt, detail);
	atomic_store(&t->lost, 1);
	log_warnx("snapshot %llu: tracking writes for the next incremental "
	    "snapshot stops: %s", (unsigned long long)t->id, t->why);
}

static void
tracker_event(struct tracker *t, const struct uffd_msg *m)
{
	struct track_state *st = t->st;

	switch (m->event) {
	case UFFD_EVENT_REMOVE:		/* MADV_DONTNEED, MADV_REMOVE */
		track_event(st, m->arg.remove.start, m->arg.remove.end,
		    ZSNAP_WHOLE_DISCARDED);
		break;
	case UFFD_EVENT_UNMAP:
		track_event(st, m->arg.remove.start, m->arg.remove.end,
		    ZSNAP_WHOLE_UNMAPPED);
		break;
	case UFFD_EVENT_REMAP:
		track_event(st, m->arg.remap.from, m->arg.remap.from +
		    m->arg.remap.len, ZSNAP_WHOLE_MOVED);
		track_event(st, m->arg.remap.to, m->arg.remap.to +
		    m->arg.remap.len, ZSNAP_WHOLE_MOVED);
		break;
	default:
		return;
	}
	log_debug("snapshot %llu: tracking: the process changed its memory "
	    "(uffd event %u); saved whole next time",
	    (unsigned long long)t->id, m->event);
}

/*
 * One read() of the uffd: events are applied at once, faults queued.
 * 0, or -1 when tracking is lost.
 */
static int
tracker_read(struct tracker *t)
{
	struct uffd_msg	msgs[TRACK_BATCH];
	size_t		room = TRACK_QUEUE - t->count;
	ssize_t		n;

	if (room == 0)
		return 0;
	if (room > TRACK_BATCH)
		room = TRACK_BATCH;
	n = read(t->st->uffd, msgs, room * sizeof(msgs[0]));
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		tracker_lose(t, "read from the userfaultfd: %s",
		    strerror(errno));
		return -1;
	}
	for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
			tracker_event(t, &msgs[i]);
			continue;
		}
		t->queue[(t->head + t->count++) % TRACK_QUEUE] =
		    msgs[i].arg.pagefault.address & ~(TRACK_PAGE - 1);
	}
	return 0;
}

/*
 * Release [addr, addr + len) and wake who waits there.  EAGAIN: an event
 * is queued, read it first.  ENOENT: nothing registered there any more.
 */
static int
tracker_release(struct tracker *t, uint64_t addr, uint64_t len)
{
	while (uffd_unprotect(t->st->uffd, addr, len, 1) == -1) {
		if (errno == ENOENT) {
			(void)uffd_wake(t->st->uffd, addr, len);
			return 0;
		}
		if (errno == ESRCH) {
			tracker_lose(t, "the tracked memory is gone (the "
			    "process exited or called exec)%s", "");
			return -1;
		}
		if (errno != EAGAIN) {
			tracker_lose(t, "un-protect a written page: %s",
			    strerror(errno));
			return -1;
		}
		if (tracker_read(t) == -1)
			return -1;
	}
	return 0;
}

static int
tracker_serve(struct tracker *t, uint64_t addr)
{
	struct track_state	*st = t->st;
	uint64_t		 page, width = 1;
	uint32_t		 i;

	for (i = 0; i < st->nregions; i++)
		if (addr >= st->regions[i].start &&
		    addr - st->regions[i].start < st->regions[i].length)
			break;
	if (i == st->nregions)
		return tracker_release(t, addr, TRACK_PAGE);	/* not ours */
	page = (addr - st->regions[i].start) / TRACK_PAGE;
	if (i == t->stream_region && page >= t->stream_next &&
	    page - t->stream_next < 8 && t->stream_width > 0)
		width = t->stream_width * 2 > TRACK_AROUND_MAX ?
		    TRACK_AROUND_MAX : t->stream_width * 2;
	if (width > st->regions[i].npages - page)
		width = st->regions[i].npages - page;
	/* Never into the next 2 MiB: a huge page there would be split. */
	if (width > (TRACK_HUGE - addr % TRACK_HUGE) / TRACK_PAGE)
		width = (TRACK_HUGE - addr % TRACK_HUGE) / TRACK_PAGE;
	t->stream_region = i;
	t->stream_next = page + width;
	t->stream_width = (uint32_t)width;
	/* Dirty before released: a snapshot armed next sees it either way. */
	track_note(st, i, page, width);
	st->faults++;
	return tracker_release(t, addr, width * TRACK_PAGE);
}

/* Serve every fault queued; -1 when tracking is lost. */
static int
tracker_serve_queue(struct tracker *t)
{
	while (t->count > 0) {
		uint64_t addr = t->queue[t->head];

		t->head = (t->head + 1) % TRACK_QUEUE;
		t->count--;
		if (tracker_serve(t, addr) == -1)
			return -1;
	}
	return 0;
}

static void *
tracker_main(void *arg)
{
	struct tracker	*t = arg;
	struct pollfd	 pfd[3] = {
		{ .fd = t->st->uffd, .events = POLLIN },
		{ .fd = t->stop_fd, .events = POLLIN },
		{ .fd = t->st->pidfd, .events = POLLIN },
	};

	while (!atomic_load(&t->lost)) {
		/*
		 * A task just released usually faults again within a few
		 * microseconds: look for its next fault for a moment before
		 * sleeping in poll(), whose wake-up would add to its stall
		 * (as the fault thread does, fault.c).
		 */
		if (t->last_serve_ns != 0) {
			uint64_t until = t->last_serve_ns + TRACK_SPIN_NS;

			while (t->count == 0 && tracker_now() < until &&
			    tracker_read(t) == 0)
				;
			t->last_serve_ns = 0;
			if (t->count > 0) {
				if (tracker_serve_queue(t) == -1)
					break;
				t->last_serve_ns = tracker_now();
				continue;
			}
		}
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			tracker_lose(t, "poll on the userfaultfd: %s",
			    strerror(errno));
			break;
		}
		if (pfd[1].revents & POLLIN) {
			/* Stop: serve all that is queued, then return. */
			do {
				if (tracker_read(t) == -1 ||
				    tracker_serve_queue(t) == -1)
					break;
			} while (tracker_read(t) == 0 && t->count > 0);
			break;
		}
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			tracker_lose(t, "the userfaultfd reported an error%s",
			    "");
			break;
		}
		if (pfd[0].revents & POLLIN) {
			if (tracker_read(t) == -1)
				break;
			if (t->count > 0) {
				if (tracker_serve_queue(t) == -1)
					break;
				t->last_serve_ns = tracker_now();
			}
		}
		if (pfd[2].revents & POLLIN) {
			tracker_lose(t, "the process exited%s", "");
			break;
		}
	}
	if (atomic_load(&t->lost) && t->st->uffd >= 0) {
		/* Nobody serves it any more: drop every protection now. */
		close(t->st->uffd);
		t->st->uffd = -1;
	}
	return NULL;
}

struct tracker *
tracker_start(struct track_state *st, uint64_t id)
{
	struct tracker	*t = calloc(1, sizeof(*t));
	int		 err;

	if (t == NULL) {
		track_state_free(st);
		return NULL;
	}
	t->st = st;
	t->id = id;
	t->stream_region = UINT32_MAX;
	t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->stop_fd == -1)
		goto fail;
	if ((err = pthread_create(&t->thread, NULL, tracker_main, t)) != 0) {
		errno = err;
		goto fail;
	}
	return t;
fail:
	err = errno;
	if (t->stop_fd >= 0)
		close(t->stop_fd);
	track_state_free(st);
	free(t);
	errno = err;
	return NULL;
}

struct track_state *
tracker_stop(struct tracker *t, char *why, size_t whylen)
{
	struct track_state	*st;
	uint64_t		 one = 1;

	if (t->st == NULL) {
		snprintf(why, whylen, "tracking was already handed on");
		return NULL;
	}
	(void)!write(t->stop_fd, &one, sizeof(one));
	pthread_join(t->thread, NULL);
	st = t->st;
	t->st = NULL;
	if (atomic_load(&t->lost)) {
		snprintf(why, whylen, "%s", t->why);
		track_state_free(st);
		return NULL;
	}
	return st;
}

void
tracker_free(struct tracker *t)
{
	char why[8];

	if (t == NULL)
		return;
	if (t->st != NULL)
		track_state_free(tracker_stop(t, why, sizeof(why)));
	close(t->stop_fd);
	free(t);
}

int
tracker_alive(struct tracker *t)
{
	return t != NULL && t->st != NULL && !atomic_load(&t->lost);
}

uint64_t
tracker_dirty(struct tracker *t)
{
	return t != NULL && t->st != NULL ? track_dirty_pages(t->st) : 0;
}

pid_t
tracker_pid(const struct tracker *t)
{
	return t != NULL && t->st != NULL ? t->st->pid : 0;
}

const char *
tracker_why(struct tracker *t)
{
	return atomic_load(&t->lost) ? t->why : "";
}
