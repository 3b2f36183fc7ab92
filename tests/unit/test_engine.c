/*
 * Engine test: the snapshot engine (daemon/engine/snapshot.c, fault.c, arm.c,
 * writer.c) driven directly, without the control socket, on this process's
 * own memory, with real userfaultfds and real writer threads.  This is the test
 * the ThreadSanitizer build runs.
 *
 * Proves:
 *   - point in time: 4 threads rewrite pages (random and sequential) from
 *     the armed instant on, with a buffer small enough to fill; every page
 *     of the file equals what it held when armed, and buffer-full waits
 *     happened;
 *   - never-touched and zero pages, two regions, a huge-page region;
 *   - cancel drops every protection: the writers keep running, no file;
 *   - a uffd on which UFFDIO_API was already called is refused cleanly;
 *   - the process moving half a region (mremap) right after arming: snapd
 *     follows the pages and saves every one exactly, none lost;
 *   - a region copied while stopped (OUTPUT_REGION_STOPPED, a private
 *     file mapping uffd-wp cannot protect) beside a live one: both hold
 *     what they held when armed although the test rewrites them once the
 *     ARMED event came, its unmapped pages are LOST, the page counts add
 *     up, and the process record given with the request is in the file;
 *     stopped regions with prearm, or larger than the buffer, are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "compat.h"
#include "log.h"
#include "procrec-sample.h"
#include "snapclient.h"
#include "snapshot.h"

#define PAGE		4096u
#define NTHREADS	4

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

struct area {
	uint8_t		*raw;		/* the mapping, before alignment */
	size_t		 raw_len;
	uint8_t		*mem;
	uint64_t	 npages;
	uint32_t	*version;	/* live version of each page */
	uint32_t	*at_arm;	/* version at the armed instant */
};

static struct area	areas[2];
static _Atomic int	pause_req, paused, stop_writers;
static _Atomic uint64_t	writes_after_arm;
static _Atomic uint64_t	last_progress_ns[NTHREADS];

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
fill_page(uint8_t *p, uint64_t index, uint32_t v)
{
	uint64_t *w = (uint64_t *)(void *)p;

	if (v == 0) {
		memset(p, 0, PAGE);
		return;
	}
	for (unsigned k = 0; k < PAGE / 8; k++)
		w[k] = (index << 32 | v) * 0x9E3779B97F4A7C15ULL + k;
}

static int
page_matches(const uint8_t *p, uint64_t index, uint32_t v)
{
	uint8_t expect[PAGE];

	fill_page(expect, index, v);
	return memcmp(p, expect, PAGE) == 0;
}

struct writer_arg {
	unsigned	id;
	int		sequential;
};

static void *
writer_main(void *arg)
{
	struct writer_arg *wa = arg;
	uint64_t seed = 0x1234567 + wa->id, cursor = 0;

	while (!atomic_load(&stop_writers)) {
		struct area *a = &areas[0];
		uint64_t i;

		if (atomic_load(&pause_req)) {
			atomic_fetch_add(&paused, 1);
			while (atomic_load(&pause_req) &&
			    !atomic_load(&stop_writers))
				sched_yield();
			atomic_fetch_sub(&paused, 1);
			continue;
		}
		if (wa->sequential)
			i = cursor++ % a->npages;
		else {
			seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
			i = seed % a->npages;
		}
		/* Thread t owns pages i % NTHREADS == t. */
		i = i - i % NTHREADS + wa->id;
		if (i >= a->npages)
			continue;
		a->version[i]++;
		fill_page(a->mem + i * PAGE, i, a->version[i]);
		atomic_fetch_add(&writes_after_arm, 1);
		atomic_store(&last_progress_ns[wa->id], mono_ns());
	}
	return NULL;
}

static void
pause_writers(void)
{
	atomic_store(&pause_req, 1);
	while (atomic_load(&paused) != NTHREADS)
		sched_yield();
}

static void
resume_writers(void)
{
	atomic_store(&pause_req, 0);
}

struct run {
	struct event_base	*base;
	int			 armed;
	int			 done;
	int			 cancel_on_arm;
	int			 prearm;	/* ask for pre-arm; arm on PREARMED */
	int			 prearmed;
	enum snapshot_hold	 hold;		/* the engine's test hold */
	struct snapshot_stats	 st;
};

static void
on_event(struct snapshot *snap, enum snapshot_event ev, void *arg)
{
	struct run *run = arg;

	switch (ev) {
	case SNAPSHOT_EV_PREARMED:
		/*
		 * The writers ran on while it protected; let them write
		 * until snapd has noted pages written while pre-armed (up to
		 * 10 s, a safety net), stop them, and arm: that is the
		 * instant.
		 */
		run->prearmed = 1;
		for (int i = 0; i < 10000; i++) {
			snapshot_stats(snap, &run->st);
			if (run->st.prearm_pages > 0)
				break;
			usleep(1000);
		}
		pause_writers();
		CHECK(snapshot_arm(snap) == 0, "snapshot_arm: %s",
		    strerror(errno));
		CHECK(snapshot_arm(snap) == -1 && errno == EALREADY,
		    "a second snapshot_arm was not refused with EALREADY");
		break;
	case SNAPSHOT_EV_ARMED:
		run->armed = 1;
		for (int k = 0; k < 2; k++)
			if (areas[k].mem != NULL)
				memcpy(areas[k].at_arm, areas[k].version,
				    areas[k].npages * sizeof(uint32_t));
		resume_writers();
		if (run->cancel_on_arm)
			snapshot_cancel(snap, "test cancels");
		break;
	case SNAPSHOT_EV_BUFFER_FULL:
		break;
	case SNAPSHOT_EV_DONE:
		resume_writers();	/* if it never armed */
		snapshot_stats(snap, &run->st);
		run->done = 1;
		snapshot_free(snap);
		event_base_loopbreak(run->base);
		break;
	}
}

static int
make_uffd(void)
{
	return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

static void
area_init(struct area *a, uint64_t bytes, int thp, unsigned untouched_pct,
    unsigned zero_pct)
{
	size_t align = 2u << 20;
	uint8_t *raw = mmap(NULL, bytes + align, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (raw == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	a->raw = raw;
	a->raw_len = bytes + align;
	a->mem = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(align - 1));
	if (thp)
		madvise(a->mem, bytes, MADV_HUGEPAGE);
	a->npages = bytes / PAGE;
	a->version = calloc(a->npages, sizeof(uint32_t));
	a->at_arm = calloc(a->npages, sizeof(uint32_t));
	for (uint64_t i = 0; i < a->npages; i++) {
		unsigned r = (unsigned)((i * 2654435761u) % 100);

		if (r < untouched_pct)
			continue;		/* never touched */
		if (r < untouched_pct + zero_pct) {
			memset(a->mem + i * PAGE, 0, PAGE);
			continue;		/* populated, all zero */
		}
		a->version[i] = 1;
		fill_page(a->mem + i * PAGE, i, 1);
	}
}

static void
area_free(struct area *a)
{
	munmap(a->raw, a->raw_len);
	free(a->version);
	free(a->at_arm);
	memset(a, 0, sizeof(*a));
}

static struct snapshot *
start(struct run *run, int dirfd, const char *name, uint64_t buffer,
    struct output_region *regs, uint32_t nregs, int uffd)
{
	struct snapshot_request req = {
		.id = 1,
		.uffd = uffd,
		.pid = getpid(),
		.pidfd = -1,
		.uid = getuid(),
		.regions = regs,
		.region_count = nregs,
		.dirfd = dirfd,
		.name = name,
		.format = OUTPUT_ZSNAP,
		.level = 1,
		.threads = 2,
		.buffer_size = buffer,
		.mode = 0600,
		.owner_uid = (uid_t)-1,
		.owner_gid = (gid_t)-1,
		.prearm = run->prearm,
		.hold = run->hold,
	};

	return snapshot_start(run->base, &req, on_event, run);
}

static void
test_point_in_time(int dirfd, const char *dir, int prearm)
{
	/*
	 * The writer is held until a fault has found the buffer full, so
	 * the synchronous path (a fault waiting for a free slot) is always
	 * exercised, whatever the machine's speed.
	 */
	struct run		 run = { .prearm = prearm,
				    .hold = SNAPSHOT_HOLD_BUFFER_FULL };
	const char		*name = prearm ? "pit-prearm" : "pit";
	struct output_region	 regs[2];
	pthread_t		 th[NTHREADS];
	struct writer_arg	 wa[NTHREADS];
	char			 path[4096];
	struct snap_file	*f;
	uint64_t		 wrong = 0;

	for (int k = 0; k < 2; k++)
		if (areas[k].raw != NULL)	/* the previous test's */
			area_free(&areas[k]);
	area_init(&areas[0], 64u << 20, 0, 10, 5);
	area_init(&areas[1], 8u << 20, 1, 30, 10);
	memset(regs, 0, sizeof(regs));
	regs[0].start = (uintptr_t)areas[0].mem;
	regs[0].length = areas[0].npages * PAGE;
	snprintf(regs[0].name, sizeof(regs[0].name), "main");
	regs[1].start = (uintptr_t)areas[1].mem;
	regs[1].length = areas[1].npages * PAGE;
	snprintf(regs[1].name, sizeof(regs[1].name), "thp");

	for (unsigned t = 0; t < NTHREADS; t++) {
		wa[t] = (struct writer_arg){ t, t % 2 };
		pthread_create(&th[t], NULL, writer_main, &wa[t]);
	}
	usleep(20000);
	if (!prearm)
		pause_writers();	/* pre-arm pauses them at PREARMED */
	run.base = event_base_new();
	if (start(&run, dirfd, name, 1u << 20, regs, 2, make_uffd()) == NULL) {
		CHECK(0, "snapshot_start: %s", strerror(errno));
		return;
	}
	event_base_loop(run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	atomic_store(&stop_writers, 1);
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	CHECK(run.armed, "never armed");
	CHECK(!prearm || (run.prearmed && run.st.prearm_pages > 0),
	    "pre-arm: prearmed %d, %llu pages written meanwhile", run.prearmed,
	    (unsigned long long)run.st.prearm_pages);
	CHECK(run.st.state == SNAPSHOT_COMPLETED, "state %s: %s",
	    snapshot_state_name(run.st.state), run.st.error);
	CHECK(run.st.buffer_full_waits > 0, "no buffer-full waits happened "
	    "(faulted %llu)", (unsigned long long)run.st.pages_faulted);
	CHECK(run.st.buffer_peak <= (1u << 20), "buffer peak %llu over bound",
	    (unsigned long long)run.st.buffer_peak);
	fprintf(stderr, "point in time%s: %llu pages, %llu faulted, %llu "
	    "buffer-full waits, %llu writes during the snapshot, arm %llu us"
	    " (%llu pages protected again)\n", prearm ? " (pre-armed)" : "",
	    (unsigned long long)run.st.pages_total,
	    (unsigned long long)run.st.pages_faulted,
	    (unsigned long long)run.st.buffer_full_waits,
	    (unsigned long long)atomic_load(&writes_after_arm),
	    (unsigned long long)(run.st.arm_ns / 1000),
	    (unsigned long long)run.st.prearm_pages);
	event_base_free(run.base);

	snprintf(path, sizeof(path), "%s/%s.zsnap", dir, name);
	f = snap_file_open(path);
	CHECK(f != NULL, "open %s: %s", path, snap_strerror(NULL));
	if (f == NULL)
		return;
	CHECK(snap_file_verify(f) == 0, "verify: %s", snap_strerror(NULL));
	for (int k = 0; k < 2; k++) {
		struct area *a = &areas[k];
		uint8_t *copy = malloc(a->npages * PAGE);
		uint64_t lost = 0;

		CHECK(snap_file_restore(f, (uint32_t)k, copy, a->npages * PAGE,
		    &lost) == 0, "restore %d: %s", k, snap_strerror(NULL));
		CHECK(lost == 0, "region %d: %llu lost pages", k,
		    (unsigned long long)lost);
		for (uint64_t i = 0; i < a->npages; i++)
			if (!page_matches(copy + i * PAGE, i, a->at_arm[i])) {
				if (wrong < 5)
					fprintf(stderr, "region %d page %llu "
					    "differs from version %u\n", k,
					    (unsigned long long)i, a->at_arm[i]);
				wrong++;
			}
		free(copy);
	}
	CHECK(wrong == 0, "%llu wrong pages", (unsigned long long)wrong);
	snap_file_close(f);
}

static void
test_cancel(int dirfd, const char *dir)
{
	struct run		 run = { .cancel_on_arm = 1 };
	struct output_region	 reg = { 0 };
	pthread_t		 th[NTHREADS];
	struct writer_arg	 wa[NTHREADS];
	char			 path[4096];
	uint64_t		 t_end, stalled = 0;

	atomic_store(&stop_writers, 0);
	reg.start = (uintptr_t)areas[0].mem;
	reg.length = areas[0].npages * PAGE;
	snprintf(reg.name, sizeof(reg.name), "main");
	for (unsigned t = 0; t < NTHREADS; t++) {
		wa[t] = (struct writer_arg){ t, 0 };
		pthread_create(&th[t], NULL, writer_main, &wa[t]);
	}
	usleep(10000);
	pause_writers();
	run.base = event_base_new();
	if (start(&run, dirfd, "cancelled", 64 * PAGE, &reg, 1,
	    make_uffd()) == NULL) {
		CHECK(0, "snapshot_start: %s", strerror(errno));
		return;
	}
	event_base_loop(run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(run.st.state == SNAPSHOT_CANCELLED, "state %s",
	    snapshot_state_name(run.st.state));
	/* Writers must go on: none may stay blocked on a protected page. */
	t_end = mono_ns() + 1200000000ULL;
	while (mono_ns() < t_end)
		usleep(10000);
	for (unsigned t = 0; t < NTHREADS; t++) {
		uint64_t last = atomic_load(&last_progress_ns[t]);
		uint64_t now = mono_ns();
		uint64_t ago = now > last ? now - last : 0;

		if (ago > 1000000000ULL) {
			fprintf(stderr, "writer %u: no progress for %llu ms\n",
			    t, (unsigned long long)(ago / 1000000));
			stalled++;
		}
	}
	CHECK(stalled == 0, "%llu writer threads blocked after cancel",
	    (unsigned long long)stalled);
	atomic_store(&stop_writers, 1);
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	for (uint64_t i = 0; i < areas[0].npages; i++)
		if (!page_matches(areas[0].mem + i * PAGE, i,
		    areas[0].version[i])) {
			CHECK(0, "live page %llu corrupted after cancel",
			    (unsigned long long)i);
			break;
		}
	snprintf(path, sizeof(path), "%s/cancelled.zsnap", dir);
	CHECK(access(path, F_OK) == -1, "%s exists after cancel", path);
	event_base_free(run.base);
}

static void
test_api_twice(int dirfd)
{
	struct run		 run = { 0 };
	struct output_region	 reg = { 0 };
	struct uffdio_api	 api = { .api = UFFD_API };
	int			 fd = make_uffd();

	ioctl(fd, UFFDIO_API, &api);
	reg.start = (uintptr_t)areas[0].mem;
	reg.length = PAGE * 16;
	snprintf(reg.name, sizeof(reg.name), "x");
	run.base = event_base_new();
	if (start(&run, dirfd, "twice", 64 * PAGE, &reg, 1, fd) == NULL) {
		CHECK(0, "snapshot_start: %s", strerror(errno));
		return;
	}
	event_base_loop(run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(!run.armed, "armed a uffd that had UFFDIO_API already");
	CHECK(run.st.state == SNAPSHOT_FAILED &&
	    strstr(run.st.error, "UFFDIO_API") != NULL,
	    "expected a UFFDIO_API failure, got %s: %s",
	    snapshot_state_name(run.st.state), run.st.error);
	event_base_free(run.base);
}

struct move_run {
	struct run	 run;
	uint8_t		*mem;
	size_t		 len;
	uint8_t		*moved_to;
};

static void
on_move_event(struct snapshot *snap, enum snapshot_event ev, void *arg)
{
	struct move_run *mr = arg;

	if (ev == SNAPSHOT_EV_ARMED) {
		size_t half = mr->len / 2;
		void *to = mmap(NULL, half, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		/* Move the second half away, then overwrite it there. */
		mr->moved_to = mremap(mr->mem + half, half, half,
		    MREMAP_MAYMOVE | MREMAP_FIXED, to);
		CHECK(mr->moved_to != MAP_FAILED, "mremap: %s", strerror(errno));
		if (mr->moved_to != MAP_FAILED)
			for (size_t i = 0; i < half / PAGE; i++)
				fill_page(mr->moved_to + i * PAGE,
				    half / PAGE + i, 2);
		for (size_t i = 0; i < half / PAGE; i++)
			fill_page(mr->mem + i * PAGE, i, 3);
		mr->run.armed = 1;
		return;
	}
	on_event(snap, ev, &mr->run);
}

static void
test_mremap(int dirfd, const char *dir)
{
	struct move_run		 mr = { .len = 16u << 20 };
	struct output_region	 reg = { 0 };
	struct snapshot_request	 req = {
		.id = 2, .pid = getpid(), .pidfd = -1, .uid = getuid(),
		.region_count = 1, .dirfd = dirfd, .name = "moved",
		.format = OUTPUT_ZSNAP, .level = 1, .buffer_size = 64 * PAGE,
		.mode = 0600, .owner_uid = (uid_t)-1, .owner_gid = (gid_t)-1,
	};
	char			 path[4096];
	struct snap_file	*f;
	struct snap_file_info	 info;
	uint8_t			*copy;
	uint64_t		 wrong = 0, lost = 0;

	mr.mem = mmap(NULL, mr.len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(mr.mem, mr.len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < mr.len / PAGE; i++)
		fill_page(mr.mem + i * PAGE, i, 1);
	reg.start = (uintptr_t)mr.mem;
	reg.length = mr.len;
	snprintf(reg.name, sizeof(reg.name), "moving");
	req.regions = &reg;
	req.uffd = make_uffd();
	mr.run.base = event_base_new();
	if (snapshot_start(mr.run.base, &req, on_move_event, &mr) == NULL) {
		CHECK(0, "snapshot_start: %s", strerror(errno));
		return;
	}
	event_base_loop(mr.run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_base_free(mr.run.base);
	CHECK(mr.run.st.state == SNAPSHOT_COMPLETED, "mremap: state %s: %s",
	    snapshot_state_name(mr.run.st.state), mr.run.st.error);
	snprintf(path, sizeof(path), "%s/moved.zsnap", dir);
	if ((f = snap_file_open(path)) == NULL) {
		CHECK(0, "open %s: %s", path, snap_strerror(NULL));
		return;
	}
	CHECK(snap_file_info(f, &info) == 0 && info.pages_lost == 0,
	    "mremap: %llu pages lost; snapd should follow the move",
	    (unsigned long long)info.pages_lost);
	copy = malloc(mr.len);
	CHECK(snap_file_restore(f, 0, copy, mr.len, &lost) == 0, "restore: %s",
	    snap_strerror(NULL));
	for (size_t i = 0; i < mr.len / PAGE; i++)
		if (!page_matches(copy + i * PAGE, i, 1))
			wrong++;
	CHECK(wrong == 0, "mremap: %llu wrong pages", (unsigned long long)wrong);
	free(copy);
	snap_file_close(f);
	munmap(mr.mem, mr.len / 2);
	if (mr.moved_to != MAP_FAILED)
		munmap(mr.moved_to, mr.len / 2);
}

/* The stopped-region test's two regions and what the test does at ARMED. */
#define STOP_LIVE_PAGES		64
#define STOP_PAGES		16
#define STOP_HOLES		2	/* unmapped at the stopped region's end */

struct stop_run {
	struct run	 run;
	uint8_t		*live;		/* anonymous: saved live */
	uint8_t		*file;		/* private file mapping: stopped */
	const uint8_t	*rec;		/* pre-arm: the record given at arm */
	size_t		 reclen;
};

/* Every page of both regions as generation gen. */
static void
stop_fill(struct stop_run *sr, int gen)
{
	for (unsigned i = 0; i < STOP_LIVE_PAGES; i++)
		fill_page(sr->live + i * PAGE, i, gen);
	for (unsigned i = 0; i < STOP_PAGES - STOP_HOLES; i++)
		fill_page(sr->file + i * PAGE, i, gen);
}

static void
on_stop_event(struct snapshot *snap, enum snapshot_event ev, void *arg)
{
	struct stop_run *sr = arg;

	if (ev == SNAPSHOT_EV_PREARMED) {
		/*
		 * Pre-armed, not yet armed: written now, so in the file (the
		 * stopped region too: it is copied at the arm, as attach
		 * does); then the record describing the arm's instant.
		 */
		stop_fill(sr, 3);
		CHECK(snapshot_set_procrec(snap, sr->rec, sr->reclen) == 0,
		    "stopped: snapshot_set_procrec: %s", strerror(errno));
		CHECK(snapshot_arm(snap) == 0, "stopped: snapshot_arm: %s",
		    strerror(errno));
		return;
	}
	if (ev == SNAPSHOT_EV_ARMED) {
		/* After the armed instant: none of this may be in the file. */
		stop_fill(sr, 2);
		sr->run.armed = 1;
		return;
	}
	on_event(snap, ev, &sr->run);
}

static void
stop_request(struct snapshot_request *req, int dirfd,
    struct output_region *regs, const char *name)
{
	memset(req, 0, sizeof(*req));
	req->id = 3;
	req->pid = getpid();
	req->pidfd = -1;
	req->uid = getuid();
	req->regions = regs;
	req->region_count = 2;
	req->dirfd = dirfd;
	req->name = name;
	req->format = OUTPUT_ZSNAP;
	req->level = 1;
	req->buffer_size = 64 * PAGE;
	req->mode = 0600;
	req->owner_uid = (uid_t)-1;
	req->owner_gid = (gid_t)-1;
}

/* Stopped regions past the buffer: refused at start. */
static void
test_stopped_refused(int dirfd, struct output_region *regs)
{
	struct snapshot_request	 req;
	struct event_base	*base = event_base_new();

	stop_request(&req, dirfd, regs, "refused");
	req.buffer_size = (STOP_PAGES - 1) * PAGE;
	req.uffd = make_uffd();
	CHECK(snapshot_start(base, &req, on_event, NULL) == NULL &&
	    errno == EINVAL && strstr(snapshot_start_error(), "buffer"),
	    "stopped past the buffer not refused: %s", snapshot_start_error());
	event_base_free(base);
}

/* What the file holds: every page as at arm (generation gen), holes
 * LOST, the record. */
static void
stopped_check_file(const char *dir, const char *name, int gen)
{
	struct snap_file	*f;
	struct snap_file_info	 info;
	struct procrec		 rec;
	uint8_t			*copy = malloc(STOP_LIVE_PAGES * PAGE);
	uint64_t		 lost = 0, wrong = 0;
	char			 path[4096];

	snprintf(path, sizeof(path), "%s/%s.zsnap", dir, name);
	if ((f = snap_file_open(path)) == NULL || snap_file_verify(f) == -1) {
		CHECK(0, "stopped: %s: %s", path, snap_strerror(NULL));
		snap_file_close(f);
		free(copy);
		return;
	}
	snap_file_info(f, &info);
	CHECK(info.pages_total == STOP_LIVE_PAGES + STOP_PAGES &&
	    info.pages_lost == STOP_HOLES && info.pages_data ==
	    STOP_LIVE_PAGES + STOP_PAGES - STOP_HOLES, "stopped: pages "
	    "total %llu data %llu lost %llu", (unsigned long long)
	    info.pages_total, (unsigned long long)info.pages_data,
	    (unsigned long long)info.pages_lost);
	CHECK(snap_file_restore(f, 0, copy, STOP_LIVE_PAGES * PAGE, &lost) ==
	    0 && lost == 0, "stopped: restore live: %s", snap_strerror(NULL));
	for (unsigned i = 0; i < STOP_LIVE_PAGES; i++)
		wrong += !page_matches(copy + i * PAGE, i, gen);
	memset(copy, 0xee, STOP_PAGES * PAGE);
	CHECK(snap_file_restore(f, 1, copy, STOP_PAGES * PAGE, &lost) == 0 &&
	    lost == STOP_HOLES, "stopped: restore stopped: %s, %llu lost",
	    snap_strerror(NULL), (unsigned long long)lost);
	for (unsigned i = 0; i < STOP_PAGES - STOP_HOLES; i++)
		wrong += !page_matches(copy + i * PAGE, i, gen);
	CHECK(wrong == 0, "%s: %llu pages not as armed", name,
	    (unsigned long long)wrong);
	CHECK(snap_file_process(f, &rec) == 1 && rec.pid == 4242 &&
	    rec.mapping_count == SAMPLE_MAPPINGS, "stopped: no process "
	    "record: %s", snap_strerror(NULL));
	procrec_free(&rec);
	snap_file_close(f);
	free(copy);
}

/*
 * A live region and a stopped one (a private file mapping with a hole):
 * armed directly, or pre-armed (then the stopped region is copied at
 * snapshot_arm(), and the record given then is the one in the file).
 */
static void
test_stopped(int dirfd, const char *dir, int prearm)
{
	const char		*name = prearm ? "stopped-prearm" : "stopped";
	struct stop_run		 sr = { .run = { 0 } };
	struct output_region	 regs[2];
	struct snapshot_request	 req;
	struct procrec		 rec;
	uint8_t			*recbuf;
	size_t			 reclen;
	int			 fd;

	fd = openat(dirfd, prearm ? "stopped-prearm.data" : "stopped.data",
	    O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd != -1 && ftruncate(fd, STOP_PAGES * PAGE) == 0,
	    "stopped: file: %s", strerror(errno));
	sr.live = mmap(NULL, STOP_LIVE_PAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sr.file = mmap(NULL, STOP_PAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE, fd, 0);
	close(fd);
	for (unsigned i = 0; i < STOP_LIVE_PAGES; i++)
		fill_page(sr.live + i * PAGE, i, 1);
	for (unsigned i = 0; i < STOP_PAGES; i++)
		fill_page(sr.file + i * PAGE, i, 1);
	munmap(sr.file + (STOP_PAGES - STOP_HOLES) * PAGE, STOP_HOLES * PAGE);
	memset(regs, 0, sizeof(regs));
	regs[0].start = (uintptr_t)sr.live;
	regs[0].length = STOP_LIVE_PAGES * PAGE;
	snprintf(regs[0].name, sizeof(regs[0].name), "live");
	regs[1].start = (uintptr_t)sr.file;
	regs[1].length = STOP_PAGES * PAGE;
	regs[1].flags = OUTPUT_REGION_STOPPED;
	snprintf(regs[1].name, sizeof(regs[1].name), "data");
	if (!prearm)
		test_stopped_refused(dirfd, regs);

	procrec_sample(&rec);
	CHECK(procrec_encode(&rec, &recbuf, &reclen) == 0, "procrec_encode");
	stop_request(&req, dirfd, regs, name);
	req.prearm = prearm;
	req.procrec = prearm ? NULL : recbuf;
	req.procrec_len = prearm ? 0 : reclen;
	sr.rec = recbuf;
	sr.reclen = reclen;
	req.uffd = make_uffd();
	sr.run.base = event_base_new();
	if (snapshot_start(sr.run.base, &req, on_stop_event, &sr) == NULL)
		CHECK(0, "stopped: snapshot_start: %s", snapshot_start_error());
	else
		event_base_loop(sr.run.base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* snapshot_start() copied it. */
	free(recbuf);
	event_base_free(sr.run.base);
	CHECK(sr.run.st.state == SNAPSHOT_COMPLETED, "stopped: state %s: %s",
	    snapshot_state_name(sr.run.st.state), sr.run.st.error);
	if (sr.run.st.state == SNAPSHOT_COMPLETED)
		stopped_check_file(dir, name, prearm ? 3 : 1);
	munmap(sr.live, STOP_LIVE_PAGES * PAGE);
	munmap(sr.file, (STOP_PAGES - STOP_HOLES) * PAGE);
}

int
main(void)
{
	char	dir[] = "/tmp/snapd-engine.XXXXXX";
	char	why[256];
	int	dirfd;

	if (snapshot_probe_kernel(why, sizeof(why)) == -1) {
		printf("skip: %s\n", why);
		return 77;
	}
	log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, 0);
	evthread_use_pthreads();
	if (mkdtemp(dir) == NULL || (dirfd = open(dir, O_DIRECTORY)) == -1) {
		perror("mkdtemp");
		return 1;
	}
	test_point_in_time(dirfd, dir, 0);
	atomic_store(&stop_writers, 0);
	atomic_store(&writes_after_arm, 0);
	test_point_in_time(dirfd, dir, 1);
	test_cancel(dirfd, dir);
	test_api_twice(dirfd);
	test_mremap(dirfd, dir);
	test_stopped(dirfd, dir, 0);
	test_stopped(dirfd, dir, 1);
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
	if (failures)
		fprintf(stderr, "%d checks failed\n", failures);
	return failures ? 1 : 0;
}
