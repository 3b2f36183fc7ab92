/*
 * lazybench: lazy restore (snap_file_restore_lazy()) against the eager one
 * (snap_file_restore()) of the same region of the same file, in the same
 * run; tests/bench-lazy.sh runs it on a 1 GiB snapshot of mixed content.
 *
 * Each run, in alternating order so neither always goes first:
 *   eager	open the file, map fresh memory, snap_file_restore(), read
 *		one page: first access and total are the same instant;
 *   populated	the same into memory faulted in before the clock starts,
 *		which tells the restore's own cost from the machine's cost of
 *		first-touch faults on fresh memory (large in a virtual
 *		machine), which an application restoring eagerly pays;
 *   lazy	open the file, snap_file_restore_lazy() into memory it maps
 *		(the call returns: coverage check, index, registration), read
 *		one page (first access: from the call until that page's byte
 *		is read), then snap_lazy_wait() (total: all pages present).
 * The page read is a different random page each run, the same for all.
 * An untimed eager restore first brings the file into the page cache, so
 * both read it from memory.  Then medians, minimum and maximum over the
 * runs, and the ratios of medians: eager total / lazy first access (how
 * much sooner the memory is usable) and lazy total / eager total (what the
 * faults and the sweep cost).  The last line is one JSON object.
 */
#include <sys/mman.h>

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE_SIZE	4096u
#define RUNS_MAX	100

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23	/* linux 5.14 */
#endif

struct figures {
	uint64_t	eager_ns[RUNS_MAX];
	uint64_t	eager_populated_ns[RUNS_MAX];
	uint64_t	lazy_call_ns[RUNS_MAX];
	uint64_t	lazy_first_ns[RUNS_MAX];
	uint64_t	lazy_total_ns[RUNS_MAX];
};

static unsigned char *
map_region(uint64_t len)
{
	void	*p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap %llu bytes: %s", (unsigned long long)len,
		    strerror(errno));
	return p;
}

static struct snap_file *
open_file(const char *path, uint32_t region, uint64_t *len)
{
	struct snap_file_region	 r;
	struct snap_file	*f;

	if ((f = snap_file_open(path)) == NULL ||
	    snap_file_region(f, region, &r) == -1)
		die("%s", snap_strerror(NULL));
	*len = r.length;
	return f;
}

/* Read one byte of page, so the read is not optimised away. */
static unsigned
read_page(const unsigned char *mem, uint64_t page)
{
	return *(const volatile unsigned char *)(mem + page * PAGE_SIZE);
}

/*
 * populated: the memory is faulted in (MADV_POPULATE_WRITE) before the
 * clock starts, which takes the machine's cost of first-touch faults out.
 */
static uint64_t
run_eager(const char *path, uint32_t region, uint64_t page, unsigned *sum,
    int populated)
{
	uint64_t	 t0, len, t;
	struct snap_file *f = open_file(path, region, &len);
	unsigned char	*mem = map_region(len);

	snap_file_close(f);
	if (populated && madvise(mem, len, MADV_POPULATE_WRITE) == -1)
		die("madvise MADV_POPULATE_WRITE: %s", strerror(errno));
	t0 = now_ns();
	f = open_file(path, region, &len);

	if (snap_file_restore(f, region, mem, len, NULL) == -1)
		die("snap_file_restore: %s", snap_strerror(NULL));
	*sum += read_page(mem, page);
	t = now_ns() - t0;
	snap_file_close(f);
	munmap(mem, len);
	return t;
}

static void
run_lazy(const char *path, uint32_t region, uint64_t page, unsigned *sum,
    uint64_t *call, uint64_t *first, uint64_t *total)
{
	uint64_t	 t0 = now_ns(), len;
	struct snap_file *f = open_file(path, region, &len);
	struct snap_lazy *l;
	unsigned char	*mem;

	if ((l = snap_file_restore_lazy(f, region, NULL, 0, 0)) == NULL)
		die("snap_file_restore_lazy: %s", snap_strerror(NULL));
	*call = now_ns() - t0;
	mem = snap_lazy_addr(l);
	*sum += read_page(mem, page);
	*first = now_ns() - t0;
	if (snap_lazy_wait(l, -1) == -1)
		die("snap_lazy_wait: %s", snap_strerror(NULL));
	*total = now_ns() - t0;
	if (snap_lazy_close(l, NULL) == -1)
		die("snap_lazy_close: %s", snap_strerror(NULL));
	snap_file_close(f);
	munmap(mem, len);
}

struct summary {
	double	median, min, max;
};

static struct summary
summarize(uint64_t *v, unsigned n, double unit)
{
	struct summary	s;

	qsort(v, n, sizeof(*v), cmp_u64);
	s.median = (n % 2 ? (double)v[n / 2] :
	    ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2) / unit;
	s.min = (double)v[0] / unit;
	s.max = (double)v[n - 1] / unit;
	return s;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: lazybench --file ZSNAP [--region N] "
	    "[--runs N]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file",	required_argument, NULL, 'f' },
		{ "region",	required_argument, NULL, 'r' },
		{ "runs",	required_argument, NULL, 'n' },
		{ NULL,		0,		   NULL, 0 },
	};
	static struct figures fig;
	struct summary	 eager, populated, call, first, total;
	const char	*path = NULL;
	unsigned	 region = 0, runs = 5, sum = 0;
	uint64_t	 len, pages;
	int		 c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': path = optarg; break;
		case 'r':
			if (parse_uint(optarg, UINT32_MAX, &region) == -1)
				usage();
			break;
		case 'n':
			if (parse_uint(optarg, RUNS_MAX, &runs) == -1 || runs == 0)
				usage();
			break;
		default: usage();
		}
	}
	if (path == NULL)
		usage();
	snap_file_close(open_file(path, region, &len));
	pages = len / PAGE_SIZE;
	run_eager(path, region, 0, &sum, 0);	/* the page cache, untimed */
	for (unsigned i = 0; i < runs; i++) {
		uint64_t page = mix64(i + 1) % pages;

		if (i % 2 == 0) {
			fig.eager_ns[i] = run_eager(path, region, page, &sum, 0);
			fig.eager_populated_ns[i] = run_eager(path, region, page,
			    &sum, 1);
			run_lazy(path, region, page, &sum, &fig.lazy_call_ns[i],
			    &fig.lazy_first_ns[i], &fig.lazy_total_ns[i]);
		} else {
			run_lazy(path, region, page, &sum, &fig.lazy_call_ns[i],
			    &fig.lazy_first_ns[i], &fig.lazy_total_ns[i]);
			fig.eager_populated_ns[i] = run_eager(path, region, page,
			    &sum, 1);
			fig.eager_ns[i] = run_eager(path, region, page, &sum, 0);
		}
		printf("run %u (page %llu): eager %.1f ms (into populated "
		    "memory %.1f ms); lazy: call returns %.1f us, first access "
		    "%.1f us, all pages %.1f ms\n", i + 1,
		    (unsigned long long)page, fig.eager_ns[i] / 1e6,
		    fig.eager_populated_ns[i] / 1e6,
		    fig.lazy_call_ns[i] / 1e3, fig.lazy_first_ns[i] / 1e3,
		    fig.lazy_total_ns[i] / 1e6);
		fflush(stdout);
	}
	eager = summarize(fig.eager_ns, runs, 1e6);
	populated = summarize(fig.eager_populated_ns, runs, 1e6);
	call = summarize(fig.lazy_call_ns, runs, 1e3);
	first = summarize(fig.lazy_first_ns, runs, 1e3);
	total = summarize(fig.lazy_total_ns, runs, 1e6);
	printf("\n%llu MiB region, %u runs: median (min to max)\n",
	    (unsigned long long)(len >> 20), runs);
	printf("  eager restore, first access = all pages  %9.1f ms  (%.1f to %.1f)\n",
	    eager.median, eager.min, eager.max);
	printf("  eager into populated memory              %9.1f ms  (%.1f to %.1f)\n",
	    populated.median, populated.min, populated.max);
	printf("  lazy restore, the call returns           %9.1f us  (%.1f to %.1f)\n",
	    call.median, call.min, call.max);
	printf("  lazy restore, first access               %9.1f us  (%.1f to %.1f)\n",
	    first.median, first.min, first.max);
	printf("  lazy restore, all pages present          %9.1f ms  (%.1f to %.1f)\n",
	    total.median, total.min, total.max);
	printf("  first access: eager / lazy               %9.0fx\n",
	    eager.median * 1e3 / first.median);
	printf("  all pages: lazy / eager                  %9.2fx\n",
	    total.median / eager.median);
	printf("  all pages: lazy / eager into populated   %9.2fx\n",
	    total.median / populated.median);
	printf("{\"region-bytes\": %llu, \"runs\": %u, "
	    "\"eager-ms\": [%.1f, %.1f, %.1f], "
	    "\"eager-populated-ms\": [%.1f, %.1f, %.1f], "
	    "\"lazy-call-us\": [%.1f, %.1f, %.1f], "
	    "\"lazy-first-access-us\": [%.1f, %.1f, %.1f], "
	    "\"lazy-all-pages-ms\": [%.1f, %.1f, %.1f], "
	    "\"first-access-eager-over-lazy\": %.1f, "
	    "\"all-pages-lazy-over-eager\": %.3f, "
	    "\"all-pages-lazy-over-eager-populated\": %.3f, "
	    "\"checksum\": %u}\n",
	    (unsigned long long)len, runs, eager.median, eager.min, eager.max,
	    populated.median, populated.min, populated.max,
	    call.median, call.min, call.max, first.median, first.min, first.max, total.median, total.min,
	    total.max, eager.median * 1e3 / first.median,
	    total.median / eager.median, total.median / populated.median, sum);
	return 0;
}
