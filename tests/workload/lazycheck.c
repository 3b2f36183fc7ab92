/*
 * lazycheck: snap_file_restore_lazy() against the memory of the armed
 * instant.  tests/integration/lazy_restore.sh takes a real snapshot with
 * snapwork (which also writes the expected memory, --dump-expected DIR,
 * one DIR/R.img per region) and runs this on it, once per mode:
 *
 *   touch	every region restored with the sweep running while --threads
 *		threads touch every page in a random order (a random
 *		permutation, dealt round robin), each comparing the page with
 *		the expected bytes as it first reads it.  The figures must show
 *		both fills at work and no page filled twice: faulted > 0,
 *		swept > 0, faulted + swept = pages.
 *   sweep	no touches: snap_lazy_wait() until complete, then every page is
 *		compared; every page was swept and none faulted, not even by
 *		the comparison.
 *   close	SNAP_LAZY_NO_SWEEP into memory the test maps and fills with a
 *		marker: a few pages touched, snap_lazy_wait() must time out
 *		(the rest is not there), snap_lazy_close() must fill the rest,
 *		and every page must then be exact.
 *   race	SNAP_LAZY_NO_SWEEP, --threads threads released together on the
 *		same page, page after page, one per chunk: a fault message for
 *		a page another fault already filled must be seen (faults_raced
 *		> 0) while no page is filled twice.
 *   corrupt	the file has a corrupt chunk (the script flips a byte): every
 *		page of every region is touched from --threads threads; no
 *		toucher may go 10 s without reading a page (a hang), at least one
 *		region's restore must report the error (wait and close -1, the
 *		stats failed) and every page must read either its expected
 *		bytes or zeros.  With --no-sweep only a fault can read the
 *		corrupt chunk: a toucher is blocked on the very fault that
 *		fails.
 *
 * After every region's snap_lazy_close() the process must be back to the
 * threads and the fds it had: no handler, userfaultfd or eventfd left.
 *
 * Exit 0 when everything holds, 1 (saying what was wrong) otherwise.
 *
 * Threads: the main thread restores, waits and checks; toucher threads
 * (toucher_main) read pages of the region and count wrong ones in their
 * own struct toucher, read by the main thread after the join.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE_SIZE	4096u
#define HANG_SECONDS	10
#define THREADS_MAX	64

enum mode { MODE_TOUCH, MODE_SWEEP, MODE_CLOSE, MODE_RACE, MODE_CORRUPT };

static const char *const mode_names[] = {
	"touch", "sweep", "close", "race", "corrupt",
};

static struct {
	const char	*file;
	const char	*expected;
	enum mode	 mode;
	unsigned	 threads;
	int		 no_sweep;
} opt = { NULL, NULL, MODE_TOUCH, 4, 0 };

/* One region under test. */
struct target {
	const unsigned char	*mem;		/* the restored memory */
	const unsigned char	*expect;	/* the expected bytes, mapped */
	uint64_t		 pages;
	uint64_t		*order;		/* pages in touching order */
	uint64_t		 norder;
	pthread_barrier_t	*barrier;	/* race: release together */
};

struct toucher {
	pthread_t		 thread;
	const struct target	*t;
	unsigned		 index;
	uint64_t		 wrong;		/* neither expected nor (corrupt) zero */
	uint64_t		 zero;		/* corrupt: zero, expected not */
	uint64_t		 first_wrong;
	atomic_uint_fast64_t	 touched;	/* pages read so far */
	atomic_int		 finished;
};

static int
page_is_zero(const unsigned char *p)
{
	static const unsigned char zero[PAGE_SIZE];

	return memcmp(p, zero, PAGE_SIZE) == 0;
}

/*
 * Read page first (the read is what faults), then compare.  The copy
 * keeps the comparison to one read of the restored page.
 */
static void
touch_page(struct toucher *w, uint64_t page)
{
	unsigned char	buf[PAGE_SIZE];
	const unsigned char *p = w->t->mem + page * PAGE_SIZE;

	memcpy(buf, p, PAGE_SIZE);
	if (memcmp(buf, w->t->expect + page * PAGE_SIZE, PAGE_SIZE) == 0)
		return;
	if (opt.mode == MODE_CORRUPT && page_is_zero(buf)) {
		w->zero++;
		return;
	}
	if (w->wrong++ == 0)
		w->first_wrong = page;
}

static void *
toucher_main(void *arg)
{
	struct toucher	*w = arg;
	const struct target *t = w->t;

	uint64_t	step = t->barrier != NULL ? 1 : opt.threads;

	for (uint64_t k = w->index; k < t->norder; k += step) {
		if (t->barrier != NULL)
			pthread_barrier_wait(t->barrier);
		touch_page(w, t->order[k]);
		atomic_fetch_add(&w->touched, 1);
	}
	atomic_store(&w->finished, 1);
	return NULL;
}

/* Deal t's order to the threads (race: each thread every page). */
static int
touch_all(struct target *t, uint64_t *zero)
{
	struct toucher	w[THREADS_MAX];
	uint64_t	wrong = 0;
	int		rc = 0;

	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < opt.threads; i++) {
		w[i].t = t;
		w[i].index = t->barrier != NULL ? 0 : i;
		if (pthread_create(&w[i].thread, NULL, toucher_main, &w[i]) != 0)
			die("pthread_create: %s", strerror(errno));
	}
	/*
	 * A toucher blocked on a fault no one serves would stay there: one
	 * that reads no page for HANG_SECONDS is taken for hung (on a busy
	 * machine a slow one still makes progress).
	 */
	for (unsigned i = 0; i < opt.threads; i++) {
		uint64_t last = 0, since = now_ns();

		while (!atomic_load(&w[i].finished)) {
			uint64_t n = atomic_load(&w[i].touched);

			if (n != last) {
				last = n;
				since = now_ns();
			} else if (now_ns() - since > HANG_SECONDS * 1000000000ull) {
				fprintf(stderr, "lazycheck: FAIL: toucher %u "
				    "blocked for %d s after %llu pages: a fault "
				    "is not served\n", i, HANG_SECONDS,
				    (unsigned long long)n);
				fflush(stderr);
				_exit(1);
			}
			usleep(1000);
		}
		pthread_join(w[i].thread, NULL);
		if (w[i].wrong > 0) {
			fprintf(stderr, "lazycheck: %llu wrong pages, the first "
			    "page %llu (toucher %u)\n",
			    (unsigned long long)w[i].wrong,
			    (unsigned long long)w[i].first_wrong, i);
			rc = -1;
		}
		wrong += w[i].wrong;
		if (zero != NULL)
			*zero += w[i].zero;
	}
	return wrong > 0 ? -1 : rc;
}

static void
shuffle(uint64_t *a, uint64_t n, uint64_t seed)
{
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = mix64(seed + i) % i, x = a[i - 1];

		a[i - 1] = a[j];
		a[j] = x;
	}
}

/* t's order: every page, shuffled with seed (0: in page order). */
static void
order_all(struct target *t, uint64_t seed)
{
	for (uint64_t p = 0; p < t->pages; p++)
		t->order[p] = p;
	if (seed != 0)
		shuffle(t->order, t->pages, seed);
	t->norder = t->pages;
}

static const unsigned char *
map_expected(unsigned r, uint64_t length)
{
	char		 path[4096];
	struct stat	 st;
	void		*p;
	int		 fd;

	snprintf(path, sizeof(path), "%s/%u.img", opt.expected, r);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1)
		die("%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size != length)
		die("%s: %lld bytes, the snapshot's region %u has %llu", path,
		    (long long)st.st_size, r, (unsigned long long)length);
	p = mmap(NULL, length, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	return p;
}

static void
print_stats(unsigned r, const char *when, const struct snap_lazy_stats *s)
{
	printf("region %u %s: pages %llu present %llu faulted %llu swept %llu "
	    "lost %llu faults %llu raced %llu chunks %llu complete %d "
	    "failed %d\n", r, when, (unsigned long long)s->pages,
	    (unsigned long long)s->pages_present,
	    (unsigned long long)s->pages_faulted,
	    (unsigned long long)s->pages_swept,
	    (unsigned long long)s->pages_lost, (unsigned long long)s->faults,
	    (unsigned long long)s->faults_raced,
	    (unsigned long long)s->chunks_read, s->complete, s->failed);
	fflush(stdout);
}

static int
check(int cond, unsigned r, const char *what)
{
	if (!cond)
		fprintf(stderr, "lazycheck: FAIL: region %u: %s\n", r, what);
	return cond ? 0 : -1;
}

/* The figures of a restore that completed: every page filled once. */
static int
check_complete(unsigned r, const struct snap_lazy_stats *s)
{
	return check(s->complete && !s->failed && s->pages_present == s->pages,
	    r, "not complete") |
	    check(s->pages_faulted + s->pages_swept == s->pages, r,
	    "faulted + swept pages differ from the region's pages (a page "
	    "filled twice or not at all)");
}

/* Without the sweep, pages must still be missing. */
static int
check_missing(struct snap_lazy *l, unsigned r, const char *when)
{
	struct snap_lazy_stats	s;

	snap_lazy_stats(l, &s);
	print_stats(r, when, &s);
	return check(s.pages_present < s.pages, r, "every page present "
	    "although nothing swept");
}

/* Every page in order from one thread, after the restore. */
static int
check_all(struct target *t)
{
	order_all(t, 0);
	return touch_all(t, NULL);
}

static int
run_region(struct snap_file *f, unsigned r, int *failed_regions)
{
	struct snap_file_region	 reg;
	struct snap_lazy_stats	 s;
	struct snap_lazy	*l;
	struct target		 t;
	pthread_barrier_t	 barrier;
	unsigned char		*own = NULL;
	unsigned		 flags = 0;
	uint64_t		 zero = 0;
	int			 rc = 0;

	if (snap_file_region(f, r, &reg) == -1)
		die("%s", snap_strerror(NULL));
	memset(&t, 0, sizeof(t));
	t.pages = reg.length / PAGE_SIZE;
	t.expect = map_expected(r, reg.length);
	if ((t.order = calloc(t.pages, sizeof(*t.order))) == NULL)
		die("out of memory");
	if (opt.mode == MODE_CLOSE || opt.mode == MODE_RACE || opt.no_sweep)
		flags = SNAP_LAZY_NO_SWEEP;
	if (opt.mode == MODE_CLOSE) {
		/* The caller's memory, full of bytes no page holds. */
		own = mmap(NULL, reg.length, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (own == MAP_FAILED)
			die("mmap: %s", strerror(errno));
		memset(own, 0xa5, reg.length);
	}
	l = snap_file_restore_lazy(f, r, own, own != NULL ? reg.length : 0,
	    flags);
	if (l == NULL)
		die("snap_file_restore_lazy region %u: %s", r,
		    snap_strerror(NULL));
	t.mem = snap_lazy_addr(l);

	switch (opt.mode) {
	case MODE_TOUCH:
		order_all(&t, r + 1);
		/*
		 * At once, while the sweep has barely started; each fault
		 * that reads a chunk also fills the rest of it ahead of the
		 * touches, counted as swept.
		 */
		rc |= touch_all(&t, NULL);
		if (snap_lazy_wait(l, -1) == -1)
			die("snap_lazy_wait: %s", snap_strerror(NULL));
		snap_lazy_stats(l, &s);
		print_stats(r, "touched", &s);
		rc |= check_complete(r, &s);
		rc |= check(s.pages_faulted > 0, r, "no page was filled by a "
		    "fault");
		rc |= check(s.pages_swept > 0, r, "no page was filled by the "
		    "sweep");
		break;
	case MODE_SWEEP:
		if (snap_lazy_wait(l, -1) == -1)
			die("snap_lazy_wait: %s", snap_strerror(NULL));
		rc |= check_all(&t);
		snap_lazy_stats(l, &s);
		print_stats(r, "swept", &s);
		rc |= check_complete(r, &s);
		rc |= check(s.pages_swept == s.pages && s.faults == 0, r,
		    "pages were faulted although nothing touched them before "
		    "the sweep completed");
		break;
	case MODE_CLOSE:
		order_all(&t, r + 7);
		t.norder = t.pages < 8 ? t.pages : 8;
		rc |= touch_all(&t, NULL);
		/* A fault fills at most 16 pages: most are still missing. */
		if (t.pages > 8 * 16) {
			rc |= check(snap_lazy_wait(l, 200) == -1 &&
			    errno == ETIMEDOUT, r, "snap_lazy_wait did not time "
			    "out with pages missing and no sweep");
		}
		rc |= check_missing(l, r, "before close");
		break;
	case MODE_RACE:
		if (pthread_barrier_init(&barrier, NULL, opt.threads) != 0)
			die("pthread_barrier_init failed");
		/* One page every 64 pages: most in a chunk not yet read. */
		for (uint64_t p = 0; p < t.pages; p += 64)
			t.order[t.norder++] = p;
		t.barrier = &barrier;
		rc |= touch_all(&t, NULL);
		t.barrier = NULL;
		pthread_barrier_destroy(&barrier);
		rc |= check_missing(l, r, "raced");
		break;
	case MODE_CORRUPT:
		order_all(&t, r + 3);
		rc |= touch_all(&t, &zero);
		if (snap_lazy_wait(l, -1) == -1) {
			printf("region %u: snap_lazy_wait: %s (errno %d)\n", r,
			    snap_strerror(NULL), errno);
			(*failed_regions)++;
		}
		snap_lazy_stats(l, &s);
		print_stats(r, "corrupt", &s);
		printf("region %u: %llu pages read zero instead of data\n", r,
		    (unsigned long long)zero);
		rc |= check(zero == 0 || s.failed, r, "pages read zero but "
		    "the restore did not fail");
		break;
	}

	if (snap_lazy_close(l, &s) == -1) {
		if (opt.mode != MODE_CORRUPT || !s.failed)
			die("snap_lazy_close region %u: %s", r,
			    snap_strerror(NULL));
		printf("region %u: snap_lazy_close: %s\n", r,
		    snap_strerror(NULL));
	} else if (opt.mode == MODE_CORRUPT && s.failed) {
		rc |= check(0, r, "snap_lazy_close succeeded after a failure");
	}
	if (opt.mode != MODE_CORRUPT) {
		print_stats(r, "closed", &s);
		rc |= check_complete(r, &s);
		/* The memory stays, the caller's now, exact. */
		rc |= check_all(&t);
	}
	if (opt.mode == MODE_RACE)
		rc |= check(s.faults_raced > 0, r, "no fault message for a page "
		    "already filled was seen");
	munmap((void *)t.mem, reg.length);
	munmap((void *)t.expect, reg.length);
	free(t.order);
	return rc;
}

/* Entries of /proc/self/DIR: open fds ("fd") or threads ("task"). */
static int
count_entries(const char *dir)
{
	char		 path[64];
	struct dirent	*d;
	DIR		*dp;
	int		 n = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", dir);
	if ((dp = opendir(path)) == NULL)
		die("opendir %s: %s", path, strerror(errno));
	while ((d = readdir(dp)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dp);
	return n - (strcmp(dir, "fd") == 0);	/* opendir's own */
}

static void *
idle_main(void *arg)
{
	return arg;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: lazycheck --file ZSNAP --expected DIR "
	    "[--mode touch|sweep|close|race|corrupt] [--threads N] [--no-sweep]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "file",	required_argument, NULL, 'f' },
		{ "expected",	required_argument, NULL, 'e' },
		{ "mode",	required_argument, NULL, 'm' },
		{ "threads",	required_argument, NULL, 't' },
		{ "no-sweep",	no_argument,	   NULL, 'n' },
		{ NULL,		0,		   NULL, 0 },
	};
	struct snap_file_info	 info;
	struct snap_file	*f;
	pthread_t		 idle;
	int			 c, fds, threads, rc = 0, failed_regions = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': opt.file = optarg; break;
		case 'e': opt.expected = optarg; break;
		case 'n': opt.no_sweep = 1; break;
		case 'm':
			for (c = 0; c < 5 && strcmp(optarg, mode_names[c]); c++)
				;
			if (c == 5)
				usage();
			opt.mode = (enum mode)c;
			break;
		case 't':
			if (parse_uint(optarg, THREADS_MAX, &opt.threads) == -1 ||
			    opt.threads == 0)
				usage();
			break;
		default: usage();
		}
	}
	if (opt.file == NULL || opt.expected == NULL)
		usage();
	if ((f = snap_file_open(opt.file)) == NULL ||
	    snap_file_info(f, &info) == -1)
		die("%s", snap_strerror(NULL));
	/*
	 * Counted, not assumed: ThreadSanitizer starts a thread of its own
	 * with the first pthread_create(), so one is created and joined
	 * before counting.
	 */
	if (pthread_create(&idle, NULL, idle_main, NULL) != 0)
		die("pthread_create failed");
	pthread_join(idle, NULL);
	fds = count_entries("fd");
	threads = count_entries("task");
	for (unsigned r = 0; r < info.region_count; r++) {
		rc |= run_region(f, r, &failed_regions);
		/* Closed: no handler thread, no userfaultfd, no eventfd left. */
		rc |= check(count_entries("task") == threads, r, "a thread is left "
		    "after snap_lazy_close()");
		rc |= check(count_entries("fd") == fds, r, "an fd is left after "
		    "snap_lazy_close()");
	}
	if (opt.mode == MODE_CORRUPT && failed_regions == 0) {
		fprintf(stderr, "lazycheck: FAIL: the corrupt file restored "
		    "without an error\n");
		rc = -1;
	}
	snap_file_close(f);
	printf("%s: %s\n", mode_names[opt.mode], rc == 0 ? "ok" : "FAILED");
	return rc == 0 ? 0 : 1;
}
