/*
 * trackbench: what each way of tracking written pages between two
 * snapshots costs on this kernel, without snapd.
 *
 *	trackbench [--size BYTES] [--thp] [--runs N] [--hot-seconds S]
 *
 * An incremental snapshot saves only the pages written since the previous
 * snapshot's armed instant.  Three kernel mechanisms can say which those
 * are:
 *
 *   soft-dirty	clear_refs "4" clears every pte's soft-dirty bit; a
 *		PAGEMAP_SCAN for PAGE_IS_SOFT_DIRTY lists the pages written
 *		since.  Needs CONFIG_MEM_SOFT_DIRTY: probed, "n/a" without it.
 *   wp-async	a userfaultfd with UFFD_FEATURE_WP_ASYNC: the kernel itself
 *		un-protects a page on its first write; PAGEMAP_SCAN for
 *		PAGE_IS_WRITTEN with PM_SCAN_WP_MATCHING lists those pages
 *		and protects them again in the same walk.
 *   wp-sync	a plain uffd-wp registration (snapd's pre-arm): a handler
 *		thread reads each write fault, sets the page's bit in a
 *		bitmap and un-protects that one page, which wakes the
 *		writer; collecting walks the bitmap and protects each run
 *		of set bits again with one UFFDIO_WRITEPROTECT.
 *   wp-sync-all	the same, but collecting protects the whole region
 *		again with one UFFDIO_WRITEPROTECT after the bitmap walk:
 *		one TLB flush instead of one per run.
 *
 * and "none" is the baseline.  For each, over a private anonymous region of
 * --size bytes (default 1 GiB; 4 KiB pages, or --thp for transparent huge
 * pages), populated before anything is armed, and for a dirty set of 1% and
 * then 10% of the region's 4 KiB pages (distinct pages in a fixed random
 * order, the same for every mechanism), each of --runs runs (default 5):
 *
 *   first	a writer thread writes 8 bytes into each page of the set
 *		once (each write meets an armed page): nanoseconds per
 *		write, as the whole pass over the number of pages, and as
 *		the median of each write timed alone ("p50"), which the
 *		writer being preempted on a busy machine hardly moves.
 *   hot	it rewrites the same set for --hot-seconds (default 2):
 *		millions of writes per second of the writer's own CPU time
 *		(user and kernel, so a fault still counts, but not the time
 *		other programs had the CPU: this is meant to run on busy
 *		machines).
 *   collect	with the writer stopped (the pause of an incremental arm),
 *		list the dirty pages and re-arm: milliseconds.  Its page
 *		count is checked against the set.
 *   empty	the same straight after, with nothing dirty: what a collect
 *		costs whatever was written (the part that grows with the
 *		region rather than the dirty set).
 *
 * Each mechanism gets a fresh mapping per dirty fraction, "protect" is
 * what its first arm of the whole region cost, and "huge%" how much of the
 * region was still mapped by huge pages after its runs (a write fault on a
 * protected huge page splits it).  The table gives the
 * median of the runs, their spread as [min-max], and for first and hot the
 * slowdown against "none" (median over median; above 1 is slower).
 *
 * Threads: the main thread maps, arms, collects and prints; one writer
 * thread at a time writes (main waits for it); for wp-sync a handler
 * thread owns the userfaultfd's reads and is the only one to set bits in
 * the bitmap, which main reads only after the writer has returned: every
 * bit was set before the un-protect that let its write finish.  A handler
 * that fails exits the program: otherwise the writer would wait forever.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "workload.h"

#define PAGE_SIZE	4096ul
#define HUGE_SIZE	(2ul << 20)
#define RUNS_MAX	64
#define SCAN_VEC_LEN	4096	/* page_region entries per PAGEMAP_SCAN call */
#define SEED		0x7ac4be4cull

enum mechanism {
	M_NONE, M_SOFT_DIRTY, M_WP_ASYNC, M_WP_SYNC, M_WP_SYNC_WHOLE, M_COUNT
};

static const char *mechanism_names[M_COUNT] = {
	"none", "soft-dirty", "wp-async", "wp-sync", "wp-sync-all",
};

static struct {
	uint64_t	size;
	unsigned	runs;
	unsigned	hot_seconds;
	int		thp;
} opt = { .size = 1ull << 30, .runs = 5, .hot_seconds = 2 };

/* The region under test and the dirty set, in write order. */
static uint8_t	*region;
static uint64_t	 npages;
static uint32_t	*order;		/* a random permutation's first entries */
static uint64_t	 dirty_count;
static uint64_t	*write_ns;	/* each first write's time, dirty_count of them */

static int	 pagemap_fd = -1;
static int	 clear_refs_fd = -1;
static int	 uffd = -1;

/* wp-sync's handler thread and its bitmap, one bit per 4 KiB page. */
static pthread_t handler_thread;
static int	 handler_stop[2] = { -1, -1 };
static uint64_t	*dirty_bitmap;

/* One run's figures. */
struct sample {
	double	first_ns;	/* per write: the whole pass over the count */
	double	first_p50_ns;	/* per write: the median write's own time */
	double	hot_mws;	/* millions of writes per CPU second */
	double	collect_ms;
	double	empty_ms;
};

static void
uffd_register(uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { start, len }, .mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg) == -1)
		die("UFFDIO_REGISTER of %#" PRIx64 "+%" PRIu64 ": %s", start,
		    len, strerror(errno));
}

static void
write_protect(uint64_t start, uint64_t len, int on)
{
	struct uffdio_writeprotect wp = {
		.range = { start, len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
		die("UFFDIO_WRITEPROTECT%s of %#" PRIx64 "+%" PRIu64 ": %s",
		    on ? "" : " (un-protect)", start, len, strerror(errno));
}

/*
 * The pages of the region in categories `mask` (all of them), counted.
 * With `flags` PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC the same walk
 * write-protects what it reports.  The kernel stops a call when the vector
 * is full and says where in walk_end; the next call starts there.
 */
static uint64_t
pagemap_scan(uint64_t mask, uint64_t flags)
{
	static struct page_region vec[SCAN_VEC_LEN];
	uint64_t	 start = (uintptr_t)region, end = start + opt.size;
	uint64_t	 pages = 0;
	long		 n, i;

	while (start < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.flags = flags,
			.start = start,
			.end = end,
			.vec = (uintptr_t)vec,
			.vec_len = SCAN_VEC_LEN,
			.category_mask = mask,
			.return_mask = mask,
		};

		if ((n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg)) == -1)
			die("PAGEMAP_SCAN of %#" PRIx64 "-%#" PRIx64 ": %s",
			    start, end, strerror(errno));
		for (i = 0; i < n; i++)
			pages += (vec[i].end - vec[i].start) / PAGE_SIZE;
		if (arg.walk_end <= start)
			die("PAGEMAP_SCAN made no progress at %#" PRIx64, start);
		start = arg.walk_end;
	}
	return pages;
}

static void
clear_soft_dirty(void)
{
	if (pwrite(clear_refs_fd, "4", 1, 0) != 1)
		die("/proc/self/clear_refs: %s", strerror(errno));
}

/*
 * Whether soft-dirty tracking works here: without CONFIG_MEM_SOFT_DIRTY
 * clear_refs accepts "4" and does nothing, and no page is ever soft-dirty.
 */
static int
soft_dirty_works(void)
{
	clear_soft_dirty();
	if (pagemap_scan(PAGE_IS_SOFT_DIRTY, 0) != 0)
		return 0;
	region[0] ^= 1;
	return pagemap_scan(PAGE_IS_SOFT_DIRTY, 0) == 1;
}

/* wp-sync: record each write fault's page, let the write through. */
static void *
handler_main(void *arg)
{
	struct uffd_msg	 msg[64];
	ssize_t		 n, i;

	(void)arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ uffd, POLLIN, 0 }, { handler_stop[0], POLLIN, 0 },
		};

		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			die("wp-sync handler: poll: %s", strerror(errno));
		}
		if (pfd[1].revents != 0)
			return NULL;
		if ((n = read(uffd, msg, sizeof(msg))) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("wp-sync handler: read of the userfaultfd: %s",
			    strerror(errno));
		}
		for (i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			uint64_t page;
			struct uffdio_writeprotect wp;

			if (msg[i].event != UFFD_EVENT_PAGEFAULT ||
			    !(msg[i].arg.pagefault.flags &
			    UFFD_PAGEFAULT_FLAG_WP))
				continue;
			page = (msg[i].arg.pagefault.address -
			    (uintptr_t)region) / PAGE_SIZE;
			__atomic_fetch_or(&dirty_bitmap[page / 64],
			    1ull << (page % 64), __ATOMIC_RELEASE);
			wp.range.start = (uintptr_t)region + page * PAGE_SIZE;
			wp.range.len = PAGE_SIZE;
			wp.mode = 0;	/* un-protect and wake the writer */
			if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
				die("wp-sync handler: UFFDIO_WRITEPROTECT "
				    "(un-protect) of %#llx: %s",
				    (unsigned long long)wp.range.start,
				    strerror(errno));
		}
	}
}

/*
 * wp-sync's collect: protect every run of dirty pages again, one ioctl a
 * run (or, `whole`, the region with one ioctl at the end), and clear their
 * bits.  The bitmap walk itself is a word per 64 pages.
 */
static void
protect_pages(uint64_t first, uint64_t count)
{
	write_protect((uintptr_t)region + first * PAGE_SIZE,
	    count * PAGE_SIZE, 1);
}

static uint64_t
bitmap_rearm(int whole)
{
	uint64_t	 words = (npages + 63) / 64, w, page, pages = 0;
	uint64_t	 run_start = 0, run_len = 0, bits;

	for (w = 0; w < words; w++) {
		bits = __atomic_load_n(&dirty_bitmap[w], __ATOMIC_ACQUIRE);
		if (bits == 0 && run_len == 0)
			continue;
		dirty_bitmap[w] = 0;
		for (page = w * 64; page < w * 64 + 64; page++) {
			if (bits & (1ull << (page % 64))) {
				if (run_len++ == 0)
					run_start = page;
				pages++;
				continue;
			}
			if (run_len != 0 && !whole)
				protect_pages(run_start, run_len);
			run_len = 0;
		}
	}
	if (whole)
		protect_pages(0, npages);
	else if (run_len != 0)
		protect_pages(run_start, run_len);
	return pages;
}

/* Map, populate and arm the region for `m`; what the arm cost, in ms. */
static double
region_setup(enum mechanism m)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint8_t		*raw;
	uint64_t	 t0;
	double		 ms = 0;
	int		 err;

	raw = mmap(NULL, opt.size + HUGE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap of %" PRIu64 " bytes: %s", opt.size, strerror(errno));
	region = (uint8_t *)(((uintptr_t)raw + HUGE_SIZE - 1) &
	    ~(uintptr_t)(HUGE_SIZE - 1));
	if (madvise(region, opt.size, opt.thp ? MADV_HUGEPAGE :
	    MADV_NOHUGEPAGE) == -1)
		die("madvise %s: %s", opt.thp ? "MADV_HUGEPAGE" :
		    "MADV_NOHUGEPAGE", strerror(errno));
	memset(region, 0x5a, opt.size);

	switch (m) {
	case M_NONE:
		break;
	case M_SOFT_DIRTY:
		t0 = now_ns();
		clear_soft_dirty();
		ms = (now_ns() - t0) / 1e6;
		break;
	case M_WP_ASYNC:
	case M_WP_SYNC:
	case M_WP_SYNC_WHOLE:
		api.features = UFFD_FEATURE_PAGEFAULT_FLAG_WP |
		    UFFD_FEATURE_WP_UNPOPULATED |
		    (m == M_WP_ASYNC ? UFFD_FEATURE_WP_ASYNC : 0);
		if ((uffd = (int)syscall(SYS_userfaultfd,
		    O_CLOEXEC | O_NONBLOCK)) == -1)
			die("userfaultfd: %s", strerror(errno));
		if (ioctl(uffd, UFFDIO_API, &api) == -1)
			die("UFFDIO_API (features %#llx): %s",
			    (unsigned long long)api.features, strerror(errno));
		uffd_register((uintptr_t)region, opt.size);
		if (m != M_WP_ASYNC) {
			dirty_bitmap = calloc((npages + 63) / 64,
			    sizeof(*dirty_bitmap));
			if (dirty_bitmap == NULL)
				die("bitmap: %s", strerror(errno));
			if (pipe(handler_stop) == -1)
				die("pipe: %s", strerror(errno));
			if ((err = pthread_create(&handler_thread, NULL,
			    handler_main, NULL)) != 0)
				die("pthread_create: %s", strerror(err));
		}
		t0 = now_ns();
		write_protect((uintptr_t)region, opt.size, 1);
		ms = (now_ns() - t0) / 1e6;
		break;
	case M_COUNT:
		abort();
	}
	return ms;
}

/* Undo region_setup: closing the uffd drops every protection. */
static void
region_teardown(enum mechanism m)
{
	int err;

	if (m == M_WP_SYNC || m == M_WP_SYNC_WHOLE) {
		if (write(handler_stop[1], "x", 1) != 1)
			die("pipe: %s", strerror(errno));
		if ((err = pthread_join(handler_thread, NULL)) != 0)
			die("pthread_join: %s", strerror(err));
		close(handler_stop[0]);
		close(handler_stop[1]);
		free(dirty_bitmap);
		dirty_bitmap = NULL;
	}
	if (uffd != -1) {
		close(uffd);
		uffd = -1;
	}
	if (munmap(region, opt.size) == -1)
		die("munmap: %s", strerror(errno));
}

/* Where the writer writes in page i of the set: 8 bytes, in a cache line
 * chosen so that the set does not crowd one cache set. */
static inline volatile uint64_t *
dirty_word(uint64_t i)
{
	uint64_t page = order[i];

	return (volatile uint64_t *)(region + page * PAGE_SIZE +
	    (page % 64) * 64);
}

struct writer_job {
	int		hot;		/* rewrite for hot_seconds, or once */
	uint64_t	writes;
	uint64_t	elapsed_ns;
	uint64_t	cpu_ns;		/* the writer thread's own CPU time */
};

static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
		die("clock_gettime CLOCK_THREAD_CPUTIME_ID: %s",
		    strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void *
writer_main(void *arg)
{
	struct writer_job	*job = arg;
	uint64_t		 t0 = now_ns(), cpu0 = thread_cpu_ns();
	uint64_t		 limit, i, n = 0;

	if (!job->hot) {
		for (i = 0; i < dirty_count; i++) {
			uint64_t t = now_ns();

			*dirty_word(i) = i;
			write_ns[i] = now_ns() - t;
		}
		n = dirty_count;
	} else {
		limit = t0 + (uint64_t)opt.hot_seconds * 1000000000;
		do {
			for (i = 0; i < dirty_count; i++)
				*dirty_word(i) += 1;
			n += dirty_count;
		} while (now_ns() < limit);
	}
	job->elapsed_ns = now_ns() - t0;
	job->cpu_ns = thread_cpu_ns() - cpu0;
	job->writes = n;
	return NULL;
}

static void
writer_run(struct writer_job *job)
{
	pthread_t	t;
	int		err;

	if ((err = pthread_create(&t, NULL, writer_main, job)) != 0)
		die("pthread_create: %s", strerror(err));
	if ((err = pthread_join(t, NULL)) != 0)
		die("pthread_join: %s", strerror(err));
}

/* List the dirty pages and re-arm; how many were dirty. */
static uint64_t
collect(enum mechanism m)
{
	uint64_t pages = 0;

	switch (m) {
	case M_NONE:
		break;
	case M_SOFT_DIRTY:
		pages = pagemap_scan(PAGE_IS_SOFT_DIRTY, 0);
		clear_soft_dirty();
		break;
	case M_WP_ASYNC:
		pages = pagemap_scan(PAGE_IS_WRITTEN,
		    PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC);
		break;
	case M_WP_SYNC:
	case M_WP_SYNC_WHOLE:
		pages = bitmap_rearm(m == M_WP_SYNC_WHOLE);
		break;
	case M_COUNT:
		abort();
	}
	return pages;
}

static void
run_once(enum mechanism m, struct sample *s)
{
	struct writer_job	first = { .hot = 0 }, hot = { .hot = 1 };
	uint64_t		t0, found;

	writer_run(&first);
	writer_run(&hot);
	s->first_ns = (double)first.elapsed_ns / first.writes;
	qsort(write_ns, dirty_count, sizeof(*write_ns), cmp_u64);
	s->first_p50_ns = (double)write_ns[dirty_count / 2];
	s->hot_mws = hot.writes * 1e3 / hot.cpu_ns;

	t0 = now_ns();
	found = collect(m);
	s->collect_ms = (now_ns() - t0) / 1e6;
	if (m != M_NONE && found != dirty_count)
		die("%s: collect found %" PRIu64 " dirty pages, %" PRIu64
		    " were written", mechanism_names[m], found, dirty_count);

	t0 = now_ns();
	found = collect(m);
	s->empty_ms = (now_ns() - t0) / 1e6;
	if (found != 0)
		die("%s: %" PRIu64 " pages dirty with nothing written",
		    mechanism_names[m], found);
}

/* Median, min and max of a field of `n` samples. */
struct spread {
	double	median, min, max;
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct spread
spread_of(const struct sample *s, unsigned n, size_t offset)
{
	double		v[RUNS_MAX];
	struct spread	r;

	for (unsigned i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&s[i] + offset);
	qsort(v, n, sizeof(v[0]), cmp_double);
	r.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	r.min = v[0];
	r.max = v[n - 1];
	return r;
}

/* A random permutation's first `count` entries: the dirty set, in the
 * order it is written. */
static void
choose_dirty_set(uint64_t count)
{
	uint64_t i, j, state = SEED;

	for (i = 0; i < npages; i++)
		order[i] = (uint32_t)i;
	for (i = 0; i < count; i++) {
		j = i + mix64(state++) % (npages - i);
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	dirty_count = count;
}

static void
usage(void)
{
	fprintf(stderr, "usage: trackbench [--size BYTES] [--thp] [--runs N] "
	    "[--hot-seconds S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size",	 required_argument, NULL, 's' },
		{ "thp",	 no_argument,	    NULL, 'H' },
		{ "runs",	 required_argument, NULL, 'r' },
		{ "hot-seconds", required_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const unsigned	 percents[] = { 1, 10 };
	struct sample		 samples[RUNS_MAX];
	struct spread		 first, p50, hot, col, empty;
	double			 base_first = 0, base_hot = 0, protect_ms;
	int			 ch, have_soft_dirty;
	long			 huge;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &opt.size) != 0 ||
			    opt.size < HUGE_SIZE || opt.size % HUGE_SIZE != 0 ||
			    opt.size / PAGE_SIZE > UINT32_MAX)
				die("--size %s: not a multiple of 2 MiB "
				    "(up to 16 TiB)", optarg);
			break;
		case 'H':
			opt.thp = 1;
			break;
		case 'r':
			if (parse_uint(optarg, RUNS_MAX, &opt.runs) != 0 ||
			    opt.runs == 0)
				die("--runs %s: not in 1..%d", optarg, RUNS_MAX);
			break;
		case 'h':
			if (parse_uint(optarg, 3600, &opt.hot_seconds) != 0 ||
			    opt.hot_seconds == 0)
				die("--hot-seconds %s: not in 1..3600", optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	npages = opt.size / PAGE_SIZE;
	if ((order = malloc(npages * sizeof(*order))) == NULL ||
	    (write_ns = malloc(npages * sizeof(*write_ns))) == NULL)
		die("permutation of %" PRIu64 " pages: %s", npages,
		    strerror(errno));
	if ((pagemap_fd = open("/proc/self/pagemap", O_RDONLY)) == -1)
		die("/proc/self/pagemap: %s", strerror(errno));
	if ((clear_refs_fd = open("/proc/self/clear_refs", O_WRONLY)) == -1)
		die("/proc/self/clear_refs: %s", strerror(errno));

	region_setup(M_NONE);
	huge = (long)pagemap_scan(PAGE_IS_HUGE, 0);
	have_soft_dirty = soft_dirty_works();
	region_teardown(M_NONE);

	printf("# trackbench: %" PRIu64 " MiB, %s pages (%ld%% huge), %u runs,"
	    " hot %u s; soft-dirty %s\n", opt.size >> 20,
	    opt.thp ? "THP" : "4 KiB", (long)(huge * 100 / (long)npages),
	    opt.runs, opt.hot_seconds, have_soft_dirty ? "works" :
	    "does not work here (CONFIG_MEM_SOFT_DIRTY off?)");
	printf("# first: ns per first write (the pass over the set / its "
	    "pages; p50: the median write timed alone); hot: M writes per "
	    "CPU-s; "
	    "collect, "
	    "empty, protect: ms; median [min-max] (x slowdown vs none); "
	    "huge%%: pmd-mapped after the runs\n");
	printf("%-5s %-11s %-7s %-27s %-20s %-25s %-22s %-18s %-8s %s\n",
	    "dirty", "mechanism", "pages", "first ns", "first p50 ns",
	    "hot Mw/s", "collect ms", "empty ms", "protect", "huge%");

	for (size_t p = 0; p < sizeof(percents) / sizeof(percents[0]); p++) {
		choose_dirty_set(npages * percents[p] / 100);
		for (enum mechanism m = M_NONE; m < M_COUNT; m++) {
			if (m == M_SOFT_DIRTY && !have_soft_dirty) {
				printf("%3u%%  %-11s %-7" PRIu64 " n/a\n",
				    percents[p], mechanism_names[m],
				    dirty_count);
				continue;
			}
			protect_ms = region_setup(m);
			for (unsigned r = 0; r < opt.runs; r++)
				run_once(m, &samples[r]);
			huge = (long)(pagemap_scan(PAGE_IS_HUGE, 0) * 100 /
			    npages);
			region_teardown(m);

			first = spread_of(samples, opt.runs,
			    offsetof(struct sample, first_ns));
			p50 = spread_of(samples, opt.runs,
			    offsetof(struct sample, first_p50_ns));
			hot = spread_of(samples, opt.runs,
			    offsetof(struct sample, hot_mws));
			col = spread_of(samples, opt.runs,
			    offsetof(struct sample, collect_ms));
			empty = spread_of(samples, opt.runs,
			    offsetof(struct sample, empty_ms));
			if (m == M_NONE) {
				base_first = first.median;
				base_hot = hot.median;
			}
			printf("%3u%%  %-11s %-7" PRIu64
			    " %6.0f [%.0f-%.0f] x%-5.1f %6.0f [%.0f-%.0f]"
			    " %6.1f [%.1f-%.1f] x%-4.2f"
			    " %6.2f [%.2f-%.2f] %5.2f [%.2f-%.2f] %7.2f %3ld\n",
			    percents[p], mechanism_names[m], dirty_count,
			    first.median, first.min, first.max,
			    first.median / base_first,
			    p50.median, p50.min, p50.max,
			    hot.median, hot.min, hot.max,
			    base_hot / hot.median,
			    col.median, col.min, col.max,
			    empty.median, empty.min, empty.max, protect_ms,
			    huge);
		}
	}
	return 0;
}
