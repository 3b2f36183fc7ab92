/*
 * snapwork: the demo and test workload.  It snapshots its own memory through
 * libsnapclient while writer threads keep writing it, then proves the
 * snapshot holds exactly the memory of the armed instant.
 *
 * Every page's content is a pure function of its global index i and a
 * per-page version v: page_fill(i, v).  Version 0 is all zero (never
 * written); a "zero class" page is all zero at version 1 too (it is written
 * with zeros before the snapshot, so it is populated but zero).  Writer
 * thread t owns the pages with i % threads == t, so a page's version is
 * only ever changed by one thread: a write is version[i]++ then filling the
 * whole page with page_fill(i, version[i]).
 *
 * --to DEST takes the snapshot with snap_start_to() (disk, s3, or an S3
 * URL): the check below reads whatever file the result names, an
 * "s3://BUCKET/KEY" object as well as a path, through the library.
 * --stuck-after SECONDS lets a test that stalls the output on purpose (its
 * S3 store stopped, the buffer full) hold the writers longer than the
 * watchdog's 10 s before it calls the application hung.
 *
 * The armed instant: the writers start paused (the pause flag is set before
 * they exist), each writes the initial version of its pages and then
 * acknowledges the pause between two writes.  With every writer stopped the
 * main thread copies the version array (the workload's own record of its
 * memory at the armed instant), calls snap_start(), which returns once
 * snapd has write-protected everything, and clears the pause.  The writers
 * then write as fast as they can, random or sequential pages, while the
 * snapshot runs.  Afterwards the snapshot file is restored region by region
 * into fresh memory and every page is compared with page_fill(i, v at arm);
 * the live memory is checked against page_fill(i, current v).
 *
 * With --expect-fail the test kills snapd during the snapshot: the workload
 * only checks that no writer was ever blocked for a second and that its
 * live memory is intact.  It prints "starting" just before snap_start() and
 * "armed" after it, so that a test can time its kill, and a snap_start()
 * that fails because snapd died while arming is part of what it expects.
 * With --may-fail the snapshot may fail (a full disk, a discard policy):
 * the workload then checks only its live memory and writers' progress, and
 * reports the reason.
 *
 * Hostile actions (--discard, --kernel-write, --fork) are done by the main
 * thread on a range of pages (--range FIRST:COUNT, global page indices,
 * inside one region; by default the last quarter of the last region, which
 * snapd's sweep reaches last) once the writers have resumed, after
 * --act-after milliseconds:
 *   --discard dontneed|munmap|mremap: MADV_DONTNEED the range, unmap it, or
 *	move it to a new address with mremap().  Writers leave the range alone
 *	once armed; afterwards the main thread writes every page of it that is
 *	still mapped once more, timing each write (a livelock would show).  In
 *	the snapshot those pages may be LOST (the kernel threw them away before
 *	snapd saved them) or exact; any other page must be exact, and a LOST
 *	page outside the range is an error.
 *   --kernel-write: the kernel writes every page of the range, read(2) from
 *	a pipe or pread(2) from a file, alternately, straight into the
 *	write-protected pages.  The reads must complete and the snapshot be
 *	exact.
 *   --fork: fork a child that writes its copy of the range and exits; the
 *	writers keep writing the range in the parent.  The parent's snapshot
 *	and memory must be exact, and the child must not hang.
 * The restored snapshot tells LOST pages apart from saved ones because each
 * region is restored into memory pre-filled with a marker that is no
 * version of any page (snap_file_restore() leaves LOST pages untouched).
 *
 * Threads: the main thread parses options, arms, waits, verifies and
 * reports.  Writer threads (writer_main) write pages; each owns its pages'
 * entries of version[] and its own struct writer counters, which others
 * read only as atomics, or after the pause acknowledgement or the join
 * (both of which order the accesses through pause_lock or pthread_join).
 * The watchdog thread (watchdog_main) reads each writer's progress stamp.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE_SIZE	4096u
#define PAGE_WORDS	(PAGE_SIZE / sizeof(uint64_t))
#define HUGE_SIZE	(2u << 20)
#define WRONG_SHOWN	8		/* wrong pages printed in detail */
#define STUCK_NS	(10ull * 1000000000)	/* watchdog gives up (default) */

enum pattern {
	PATTERN_RANDOM,
	PATTERN_SEQUENTIAL,
	PATTERN_MIXED,
};

enum action {
	ACT_NONE,
	ACT_DONTNEED,
	ACT_MUNMAP,
	ACT_MREMAP,
	ACT_KERNEL_WRITE,
	ACT_FORK,
};

static const char *const action_names[] = {
	"none", "dontneed", "munmap", "mremap", "kernel-write", "fork",
};

enum page_class {
	CLASS_NORMAL,
	CLASS_UNTOUCHED,	/* never written before the snapshot */
	CLASS_ZERO,		/* written with zeros before the snapshot */
};

struct region {
	uint8_t		*base;
	uint64_t	 npages;
	uint64_t	 first;		/* global index of its first page */
	char		 name[16];
};

/* One writer thread's state; aligned so that counters do not share lines. */
struct writer {
	pthread_t		 thread;
	unsigned		 index;
	int			 sequential;
	uint64_t		 rng;
	_Atomic uint64_t	 writes;	/* page writes since resuming */
	_Atomic uint64_t	 stall_max_ns;	/* longest write since resuming */
	_Atomic uint64_t	 progress_ns;	/* monotonic time of last write */
	_Atomic int		 running;	/* resumed and not stopped */
} __attribute__((aligned(64)));

static struct {
	uint64_t	 size;
	unsigned	 threads;
	enum pattern	 pattern;
	uint64_t	 buffer;
	const char	*format;
	const char	*name;
	const char	*socket;
	unsigned	 nregions;
	int		 thp;
	unsigned	 untouched_pct;
	unsigned	 zero_pct;
	unsigned	 run_after;
	unsigned	 after_loss;
	int		 expect_fail;
	int		 may_fail;
	int		 incompressible;
	int		 json;
	int		 level;
	const char	*dump_dir;
	enum action	 act;
	uint64_t	 range_first;
	uint64_t	 range_count;	/* 0: the default range */
	unsigned	 act_after_ms;
	int		 prearm;
	unsigned	 prearm_ms;	/* writers run this long pre-armed */
	const char	*test_hold;	/* --test-hold: snapd's test hook */
	int		 test_release;	/* --test-release: after the action */
	const char	*to;		/* --to: snap_start_to()'s destination */
	unsigned	 stuck_s;	/* --stuck-after: the watchdog's limit */
} opt = {
	.size = 1ull << 30,
	.threads = 4,
	.pattern = PATTERN_RANDOM,
	.nregions = 1,
};

static struct region	*regions;
static uint64_t		 npages;
static uint32_t		*version;		/* per page, owned by its writer */
static uint32_t		*version_armed;		/* copy at the armed instant */
static struct writer	*writers;

static pthread_mutex_t	 pause_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 pause_cond = PTHREAD_COND_INITIALIZER;
static _Atomic int	 pause_flag = 1;	/* writers start paused */
static _Atomic int	 stop_flag;
static unsigned		 paused_count;		/* under pause_lock */

/*
 * Where the range lives after --discard mremap (NULL before); written by
 * the main thread while no writer touches the range.
 */
static uint8_t		*moved_base;

static _Atomic uint64_t	 watchdog_gap_max_ns;
static _Atomic int	 watchdog_stop;

/* The main thread's hostile action, watched like a writer. */
static _Atomic int	 act_running;
static _Atomic uint64_t	 act_progress_ns;
static uint64_t		 act_stall_max_ns;	/* longest page write or read */
static uint64_t		 act_pages;		/* pages written after it */
static uint64_t		 act_child_us;		/* --fork: the child's run */
static uint64_t		 act_protected;		/* pages still uffd-wp when hit */
static char		 act_error[256];

static uint64_t
rng_next(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ull;
	return mix64(*state);
}

/* A page's class is a pure function of its index and the percentages. */
static enum page_class
page_class(uint64_t i)
{
	unsigned h = mix64(i ^ 0x5eed5eed5eedull) % 100;

	if (h < opt.untouched_pct)
		return CLASS_UNTOUCHED;
	if (h < opt.untouched_pct + opt.zero_pct)
		return CLASS_ZERO;
	return CLASS_NORMAL;
}

static int
page_is_zero_version(uint64_t i, uint32_t v)
{
	return v == 0 || (v == 1 && page_class(i) == CLASS_ZERO);
}

/*
 * Fill a page with its content at version v.  Word 0 is the index, word 1
 * the version (so a wrong page tells which version it holds); the rest
 * repeats each pseudo-random word four times, which zstd compresses about
 * as well as typical heap data (with --incompressible every word is its
 * own pseudo-random value: zstd cannot shrink it).
 */
static void
page_fill(void *page, uint64_t i, uint32_t v)
{
	uint64_t *w = page;
	uint64_t x, seed;
	unsigned k;

	if (page_is_zero_version(i, v)) {
		for (k = 0; k < PAGE_WORDS; k++)
			w[k] = 0;
		return;
	}
	seed = mix64(i << 32 | v);
	w[0] = i;
	w[1] = v;
	for (k = 2; k < PAGE_WORDS; k++) {
		x = mix64(seed + (opt.incompressible ? k : k / 4));
		w[k] = x;
	}
}

static int
page_equals(const void *page, uint64_t i, uint32_t v)
{
	uint64_t expect[PAGE_WORDS];

	page_fill(expect, i, v);
	return memcmp(page, expect, PAGE_SIZE) == 0;
}

/* Which version a page holds, or -1 if it is not any version of page i. */
static int64_t
page_version_of(const void *page, uint64_t i)
{
	const uint64_t *w = page;
	unsigned k;

	for (k = 0; k < PAGE_WORDS; k++)
		if (w[k] != 0)
			break;
	if (k == PAGE_WORDS)
		return 0;
	if (w[0] != i || w[1] == 0 || w[1] > UINT32_MAX ||
	    !page_equals(page, i, (uint32_t)w[1]))
		return -1;
	return (int64_t)w[1];
}

/* "version N" or "no version of this page" for a message. */
static const char *
page_describe(const void *page, uint64_t i, char *buf, size_t len)
{
	int64_t found = page_version_of(page, i);

	if (found < 0)
		snprintf(buf, len, "bytes of no version of this page");
	else
		snprintf(buf, len, "version %" PRId64, found);
	return buf;
}

static int
in_range(uint64_t i)
{
	return opt.act != ACT_NONE && i >= opt.range_first &&
	    i - opt.range_first < opt.range_count;
}

/* Writers leave the range alone once armed for these actions. */
static int
range_excluded(uint64_t i)
{
	return (opt.act == ACT_DONTNEED || opt.act == ACT_MUNMAP ||
	    opt.act == ACT_MREMAP || opt.act == ACT_KERNEL_WRITE) &&
	    in_range(i);
}

static uint8_t *
page_addr(uint64_t i)
{
	unsigned lo = 0, hi = opt.nregions - 1, mid;

	if (moved_base != NULL && in_range(i))
		return moved_base + (i - opt.range_first) * PAGE_SIZE;
	while (lo < hi) {
		mid = (lo + hi + 1) / 2;
		if (regions[mid].first <= i)
			lo = mid;
		else
			hi = mid - 1;
	}
	return regions[lo].base + (i - regions[lo].first) * PAGE_SIZE;
}

static void
page_write(uint64_t i)
{
	uint32_t v = ++version[i];

	page_fill(page_addr(i), i, v);
}

/*
 * Stop between two writes until the pause is cleared.  The acknowledgement
 * under pause_lock orders this thread's earlier version[] and page writes
 * before the main thread's copy of version[].
 */
static void
writer_pause(struct writer *wr)
{
	pthread_mutex_lock(&pause_lock);
	paused_count++;
	pthread_cond_broadcast(&pause_cond);
	while (atomic_load(&pause_flag) && !atomic_load(&stop_flag))
		pthread_cond_wait(&pause_cond, &pause_lock);
	paused_count--;
	pthread_mutex_unlock(&pause_lock);
	atomic_store(&wr->writes, 0);
	atomic_store(&wr->stall_max_ns, 0);
	atomic_store(&wr->progress_ns, now_ns());
	atomic_store(&wr->running, 1);
}

static void *
writer_main(void *arg)
{
	struct writer *wr = arg;
	uint64_t t = wr->index, n = opt.threads;
	uint64_t owned = (npages - t + n - 1) / n, cursor = 0, i, t0, t1;

	/* The initial version of every page but the untouched ones. */
	for (i = t; i < npages; i += n)
		if (page_class(i) != CLASS_UNTOUCHED)
			page_write(i);
	if (owned == 0) {
		writer_pause(wr);
		atomic_store(&wr->running, 0);
		return NULL;
	}
	for (;;) {
		if (atomic_load(&pause_flag))
			writer_pause(wr);
		if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
			break;
		if (wr->sequential) {
			i = cursor * n + t;
			if (++cursor == owned)
				cursor = 0;
		} else
			i = (rng_next(&wr->rng) % owned) * n + t;
		t0 = now_ns();
		if (range_excluded(i)) {
			/* Still progress: the writer is not blocked. */
			atomic_store_explicit(&wr->progress_ns, t0,
			    memory_order_relaxed);
			continue;
		}
		page_write(i);
		t1 = now_ns();
		if (t1 - t0 > atomic_load_explicit(&wr->stall_max_ns,
		    memory_order_relaxed))
			atomic_store_explicit(&wr->stall_max_ns, t1 - t0,
			    memory_order_relaxed);
		atomic_store_explicit(&wr->progress_ns, t1,
		    memory_order_relaxed);
		atomic_fetch_add_explicit(&wr->writes, 1,
		    memory_order_relaxed);
	}
	atomic_store(&wr->running, 0);
	return NULL;
}

/*
 * How long a write may take before the watchdog calls the application
 * hung: STUCK_NS, or --stuck-after for a test that holds the writers
 * longer on purpose (its store stopped while the buffer is full).
 */
static uint64_t
stuck_ns(void)
{
	return opt.stuck_s != 0 ? opt.stuck_s * 1000000000ull : STUCK_NS;
}

/*
 * Watch every running writer's progress stamp: the longest time any writer
 * went without finishing a write is the proof that snapd never left the
 * application hanging.  A writer stuck for STUCK_NS would never be joined,
 * so the watchdog ends the process with a message instead.
 */
static void *
watchdog_main(void *arg)
{
	struct timespec tick = { 0, 10 * 1000000 };
	uint64_t now, last, gap;
	unsigned t;

	while (!atomic_load(&watchdog_stop)) {
		nanosleep(&tick, NULL);
		now = now_ns();
		for (t = 0; t < opt.threads; t++) {
			if (!atomic_load(&writers[t].running))
				continue;
			last = atomic_load(&writers[t].progress_ns);
			gap = now > last ? now - last : 0;
			if (gap > atomic_load(&watchdog_gap_max_ns))
				atomic_store(&watchdog_gap_max_ns, gap);
			if (gap > stuck_ns()) {
				fprintf(stderr, "snapwork: writer thread %u "
				    "blocked for %.1f s in one page write: the "
				    "application hangs\n", t, gap / 1e9);
				_exit(1);
			}
		}
		if (atomic_load(&act_running)) {
			last = atomic_load(&act_progress_ns);
			gap = now > last ? now - last : 0;
			if (gap > stuck_ns()) {
				fprintf(stderr, "snapwork: the main thread was "
				    "blocked for %.1f s in one step of --%s: "
				    "the application hangs\n", gap / 1e9,
				    action_names[opt.act]);
				_exit(1);
			}
		}
	}
	return NULL;
}

static void
writers_resume(void)
{
	pthread_mutex_lock(&pause_lock);
	atomic_store(&pause_flag, 0);
	pthread_cond_broadcast(&pause_cond);
	pthread_mutex_unlock(&pause_lock);
}

static void
writers_wait_paused(void)
{
	pthread_mutex_lock(&pause_lock);
	while (paused_count < opt.threads)
		pthread_cond_wait(&pause_cond, &pause_lock);
	pthread_mutex_unlock(&pause_lock);
}

static void
writers_stop(void)
{
	unsigned t;

	pthread_mutex_lock(&pause_lock);
	atomic_store(&stop_flag, 1);
	pthread_cond_broadcast(&pause_cond);
	pthread_mutex_unlock(&pause_lock);
	for (t = 0; t < opt.threads; t++)
		pthread_join(writers[t].thread, NULL);
}

static uint64_t
writers_sum_writes(void)
{
	uint64_t sum = 0;
	unsigned t;

	for (t = 0; t < opt.threads; t++)
		sum += atomic_load(&writers[t].writes);
	return sum;
}

static uint64_t
writers_stall_max_ns(void)
{
	uint64_t m = 0, s;
	unsigned t;

	for (t = 0; t < opt.threads; t++) {
		s = atomic_load(&writers[t].stall_max_ns);
		if (s > m)
			m = s;
	}
	return m;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: snapwork [--size BYTES] [--threads N] "
	    "[--pattern random|sequential|mixed]\n"
	    "\t[--buffer BYTES] [--format zsnap|raw] [--level N] "
	    "[--name NAME] [--socket PATH]\n"
	    "\t[--regions N] [--thp] [--untouched PERCENT] "
	    "[--zero PERCENT] [--run-after SECONDS]\n"
	    "\t[--expect-fail [--after-loss SECONDS]] [--may-fail] "
	    "[--dump-expected DIR] [--json]\n"
	    "\t[--incompressible] [--prearm MS] [--test-hold JSON "
	    "[--test-release]]\n"
	    "\t[--discard dontneed|munmap|mremap | --kernel-write | --fork]\n"
	    "\t[--range FIRST:COUNT] [--act-after MS] "
	    "[--to disk|s3|s3://BUCKET/PREFIX]\n"
	    "\t[--stuck-after SECONDS]\n");
	exit(2);
}

static void
parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size",		required_argument, NULL, 's' },
		{ "threads",		required_argument, NULL, 't' },
		{ "pattern",		required_argument, NULL, 'p' },
		{ "buffer",		required_argument, NULL, 'b' },
		{ "format",		required_argument, NULL, 'f' },
		{ "level",		required_argument, NULL, 'l' },
		{ "name",		required_argument, NULL, 'n' },
		{ "socket",		required_argument, NULL, 'S' },
		{ "regions",		required_argument, NULL, 'r' },
		{ "thp",		no_argument,	   NULL, 'H' },
		{ "untouched",		required_argument, NULL, 'u' },
		{ "zero",		required_argument, NULL, 'z' },
		{ "run-after",		required_argument, NULL, 'a' },
		{ "expect-fail",	no_argument,	   NULL, 'x' },
		{ "may-fail",		no_argument,	   NULL, 'm' },
		{ "incompressible",	no_argument,	   NULL, 'I' },
		{ "after-loss",		required_argument, NULL, 'L' },
		{ "discard",		required_argument, NULL, 'D' },
		{ "kernel-write",	no_argument,	   NULL, 'K' },
		{ "fork",		no_argument,	   NULL, 'F' },
		{ "range",		required_argument, NULL, 'R' },
		{ "act-after",		required_argument, NULL, 'A' },
		{ "dump-expected",	required_argument, NULL, 'd' },
		{ "json",		no_argument,	   NULL, 'j' },
		{ "prearm",		required_argument, NULL, 'P' },
		{ "test-hold",		required_argument, NULL, 'T' },
		{ "test-release",	no_argument,	   NULL, 'E' },
		{ "to",			required_argument, NULL, 'o' },
		{ "stuck-after",	required_argument, NULL, 'W' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned level;
	int ch, n;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &opt.size) == -1 ||
			    opt.size == 0) {
				fprintf(stderr, "snapwork: --size %s: not a "
				    "size (BYTES with K, M or G)\n", optarg);
				exit(2);
			}
			break;
		case 't':
			if (parse_uint(optarg, 1024, &opt.threads) == -1 ||
			    opt.threads == 0) {
				fprintf(stderr, "snapwork: --threads %s: not "
				    "in 1..1024\n", optarg);
				exit(2);
			}
			break;
		case 'p':
			if (strcmp(optarg, "random") == 0)
				opt.pattern = PATTERN_RANDOM;
			else if (strcmp(optarg, "sequential") == 0)
				opt.pattern = PATTERN_SEQUENTIAL;
			else if (strcmp(optarg, "mixed") == 0)
				opt.pattern = PATTERN_MIXED;
			else {
				fprintf(stderr, "snapwork: --pattern %s: not "
				    "random, sequential or mixed\n", optarg);
				exit(2);
			}
			break;
		case 'b':
			if (parse_size(optarg, &opt.buffer) == -1) {
				fprintf(stderr, "snapwork: --buffer %s: not a "
				    "size\n", optarg);
				exit(2);
			}
			break;
		case 'f':
			if (strcmp(optarg, "zsnap") != 0 &&
			    strcmp(optarg, "raw") != 0) {
				fprintf(stderr, "snapwork: --format %s: not "
				    "zsnap or raw\n", optarg);
				exit(2);
			}
			opt.format = optarg;
			break;
		case 'l':
			if (parse_uint(optarg, 19, &level) == -1 ||
			    level == 0) {
				fprintf(stderr, "snapwork: --level %s: not in "
				    "1..19\n", optarg);
				exit(2);
			}
			opt.level = (int)level;
			break;
		case 'n':
			opt.name = optarg;
			break;
		case 'S':
			opt.socket = optarg;
			break;
		case 'r':
			if (parse_uint(optarg, 256, &opt.nregions) == -1 ||
			    opt.nregions == 0) {
				fprintf(stderr, "snapwork: --regions %s: not "
				    "in 1..256\n", optarg);
				exit(2);
			}
			break;
		case 'H':
			opt.thp = 1;
			break;
		case 'u':
			if (parse_uint(optarg, 100, &opt.untouched_pct) == -1) {
				fprintf(stderr, "snapwork: --untouched %s: not "
				    "a percentage\n", optarg);
				exit(2);
			}
			break;
		case 'z':
			if (parse_uint(optarg, 100, &opt.zero_pct) == -1) {
				fprintf(stderr, "snapwork: --zero %s: not a "
				    "percentage\n", optarg);
				exit(2);
			}
			break;
		case 'a':
			if (parse_uint(optarg, 86400, &opt.run_after) == -1) {
				fprintf(stderr, "snapwork: --run-after %s: not "
				    "a number of seconds\n", optarg);
				exit(2);
			}
			break;
		case 'x':
			opt.expect_fail = 1;
			break;
		case 'm':
			opt.may_fail = 1;
			break;
		case 'I':
			opt.incompressible = 1;
			break;
		case 'L':
			if (parse_uint(optarg, 86400, &opt.after_loss) == -1 ||
			    opt.after_loss == 0) {
				fprintf(stderr, "snapwork: --after-loss %s: not "
				    "a number of seconds > 0\n", optarg);
				exit(2);
			}
			break;
		case 'D':
			if (opt.act != ACT_NONE)
				goto one_action;
			if (strcmp(optarg, "dontneed") == 0)
				opt.act = ACT_DONTNEED;
			else if (strcmp(optarg, "munmap") == 0)
				opt.act = ACT_MUNMAP;
			else if (strcmp(optarg, "mremap") == 0)
				opt.act = ACT_MREMAP;
			else {
				fprintf(stderr, "snapwork: --discard %s: not "
				    "dontneed, munmap or mremap\n", optarg);
				exit(2);
			}
			break;
		case 'K':
		case 'F':
			if (opt.act != ACT_NONE)
				goto one_action;
			opt.act = ch == 'K' ? ACT_KERNEL_WRITE : ACT_FORK;
			break;
		case 'R':
			if (sscanf(optarg, "%" SCNu64 ":%" SCNu64 "%n",
			    &opt.range_first, &opt.range_count, &n) != 2 ||
			    optarg[n] != '\0' || opt.range_count == 0) {
				fprintf(stderr, "snapwork: --range %s: not "
				    "FIRST:COUNT (page indices, COUNT > 0)\n",
				    optarg);
				exit(2);
			}
			break;
		case 'A':
			if (parse_uint(optarg, 3600000, &opt.act_after_ms) ==
			    -1) {
				fprintf(stderr, "snapwork: --act-after %s: not "
				    "a number of milliseconds\n", optarg);
				exit(2);
			}
			break;
		case 'd':
			opt.dump_dir = optarg;
			break;
		case 'j':
			opt.json = 1;
			break;
		case 'P':
			if (parse_uint(optarg, 60000, &opt.prearm_ms) == -1) {
				fprintf(stderr, "snapwork: --prearm %s: not "
				    "a number of milliseconds\n", optarg);
				exit(2);
			}
			opt.prearm = 1;
			break;
		case 'T':
			opt.test_hold = optarg;
			break;
		case 'E':
			opt.test_release = 1;
			break;
		case 'o':
			opt.to = optarg;
			break;
		case 'W':
			if (parse_uint(optarg, 3600, &opt.stuck_s) == -1 ||
			    opt.stuck_s == 0) {
				fprintf(stderr, "snapwork: --stuck-after must be "
				    "1..3600 seconds\n");
				usage();
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (opt.prearm && opt.expect_fail) {
		fprintf(stderr, "snapwork: --prearm and --expect-fail exclude "
		    "each other\n");
		exit(2);
	}
	if (opt.range_count != 0 && opt.act == ACT_NONE) {
		fprintf(stderr, "snapwork: --range needs --discard, "
		    "--kernel-write or --fork\n");
		exit(2);
	}
	if (opt.untouched_pct + opt.zero_pct > 100) {
		fprintf(stderr, "snapwork: --untouched %u + --zero %u is more "
		    "than 100 percent\n", opt.untouched_pct, opt.zero_pct);
		exit(2);
	}
	opt.size = (opt.size + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
	if (opt.size / PAGE_SIZE < opt.nregions) {
		fprintf(stderr, "snapwork: --size %" PRIu64 " is less than "
		    "one page per region\n", opt.size);
		exit(2);
	}
	return;
one_action:
	fprintf(stderr, "snapwork: --discard, --kernel-write and --fork "
	    "exclude each other\n");
	exit(2);
}

/*
 * Map the regions, each its own mmap followed by an inaccessible guard
 * page so that no two regions merge into one mapping.  With --thp region 0
 * is 2 MiB-aligned, a multiple of 2 MiB and MADV_HUGEPAGE.
 */
static int
regions_map(void)
{
	uint64_t per = opt.size / PAGE_SIZE / opt.nregions, first = 0, len;
	uint8_t *p, *aligned;
	size_t maplen;
	unsigned r;

	regions = calloc(opt.nregions, sizeof(*regions));
	if (regions == NULL) {
		fprintf(stderr, "snapwork: region table: %s\n",
		    strerror(errno));
		return -1;
	}
	for (r = 0; r < opt.nregions; r++) {
		struct region *rg = &regions[r];

		rg->npages = per;
		if (r == opt.nregions - 1)
			rg->npages = opt.size / PAGE_SIZE - per * r;
		len = rg->npages * PAGE_SIZE;
		if (opt.thp && r == 0) {
			len = (len + HUGE_SIZE - 1) / HUGE_SIZE * HUGE_SIZE;
			rg->npages = len / PAGE_SIZE;
		}
		maplen = len + PAGE_SIZE + (opt.thp && r == 0 ? HUGE_SIZE : 0);
		p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			fprintf(stderr, "snapwork: mmap region %u (%" PRIu64
			    " bytes): %s\n", r, len, strerror(errno));
			return -1;
		}
		aligned = p;
		if (opt.thp && r == 0) {
			aligned = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) &
			    ~(uintptr_t)(HUGE_SIZE - 1));
			if (aligned > p)
				munmap(p, aligned - p);
			if (aligned + len + PAGE_SIZE < p + maplen)
				munmap(aligned + len + PAGE_SIZE,
				    p + maplen - (aligned + len + PAGE_SIZE));
			if (madvise(aligned, len, MADV_HUGEPAGE) == -1) {
				fprintf(stderr, "snapwork: madvise "
				    "MADV_HUGEPAGE on region 0: %s\n",
				    strerror(errno));
				return -1;
			}
		}
		if (mprotect(aligned + len, PAGE_SIZE, PROT_NONE) == -1) {
			fprintf(stderr, "snapwork: mprotect guard page of "
			    "region %u: %s\n", r, strerror(errno));
			return -1;
		}
		rg->base = aligned;
		rg->first = first;
		snprintf(rg->name, sizeof(rg->name), "r%u", r);
		first += rg->npages;
	}
	npages = first;
	return 0;
}

/* Bytes of region 0 backed by transparent huge pages (from smaps). */
static uint64_t
thp_bytes(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	unsigned long lo, hi, kb;
	int inside = 0;
	uint64_t sum = 0;
	uintptr_t base = (uintptr_t)regions[0].base;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			inside = lo <= base && base < hi;
		else if (inside &&
		    sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			sum += (uint64_t)kb * 1024;
	}
	fclose(f);
	return sum;
}

/*
 * Check the action's range, or pick the default: the last quarter of the
 * last region, the part snapd's address-order sweep reaches last.
 */
static int
range_setup(void)
{
	const struct region *last = &regions[opt.nregions - 1];
	unsigned r;

	if (opt.act == ACT_NONE)
		return 0;
	if (opt.range_count == 0) {
		opt.range_count = last->npages / 4 ? last->npages / 4 : 1;
		opt.range_first = last->first + last->npages -
		    opt.range_count;
	}
	for (r = 0; r < opt.nregions; r++)
		if (opt.range_first >= regions[r].first &&
		    opt.range_first + opt.range_count <=
		    regions[r].first + regions[r].npages)
			return 0;
	fprintf(stderr, "snapwork: --range %" PRIu64 ":%" PRIu64 " is not "
	    "inside one region (%" PRIu64 " pages in %u regions)\n",
	    opt.range_first, opt.range_count, npages, opt.nregions);
	return -1;
}

static void
act_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
act_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(act_error, sizeof(act_error), fmt, ap);
	va_end(ap);
	fprintf(stderr, "snapwork: --%s: %s\n", action_names[opt.act],
	    act_error);
}

/* One step of the action is done: t0 is when it started. */
static void
act_step(uint64_t t0)
{
	uint64_t t1 = now_ns();

	if (t1 - t0 > act_stall_max_ns)
		act_stall_max_ns = t1 - t0;
	atomic_store(&act_progress_ns, t1);
}

/*
 * MADV_DONTNEED, munmap or mremap the range (whose pages the writers leave
 * alone), then write every page that is still mapped once, as the
 * application would go on using its memory.
 */
static int
act_discard(void)
{
	uint64_t i, end = opt.range_first + opt.range_count, t0;
	uint8_t *base = page_addr(opt.range_first);
	size_t len = opt.range_count * PAGE_SIZE;
	void *dest, *moved;

	t0 = now_ns();
	switch (opt.act) {
	case ACT_DONTNEED:
		if (madvise(base, len, MADV_DONTNEED) == -1) {
			act_fail("madvise MADV_DONTNEED %p+%zu: %s", base, len,
			    strerror(errno));
			return -1;
		}
		/* The kernel gave the pages back: they read as zeros. */
		for (i = opt.range_first; i < end; i++)
			version[i] = 0;
		break;
	case ACT_MUNMAP:
		if (munmap(base, len) == -1) {
			act_fail("munmap %p+%zu: %s", base, len,
			    strerror(errno));
			return -1;
		}
		act_step(t0);
		return 0;
	default:
		dest = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		    MAP_NORESERVE, -1, 0);
		if (dest == MAP_FAILED) {
			act_fail("mmap %zu bytes to move the range to: %s", len,
			    strerror(errno));
			return -1;
		}
		moved = mremap(base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
		    dest);
		if (moved == MAP_FAILED) {
			act_fail("mremap %p+%zu to %p: %s", base, len, dest,
			    strerror(errno));
			munmap(dest, len);
			return -1;
		}
		moved_base = moved;
		break;
	}
	act_step(t0);
	for (i = opt.range_first; i < end; i++) {
		t0 = now_ns();
		page_write(i);
		act_step(t0);
		act_pages++;
	}
	return 0;
}

#define PM_UFFD_WP	(1ull << 57)	/* /proc/pid/pagemap: pte is uffd-wp */

/* 1 if the page at addr is write-protected by a userfaultfd now. */
static int
page_is_uffd_wp(int pagemap, const void *addr)
{
	uint64_t entry;

	if (pagemap == -1 || pread(pagemap, &entry, sizeof(entry),
	    (off_t)((uintptr_t)addr / PAGE_SIZE * sizeof(entry))) !=
	    sizeof(entry))
		return 0;
	return (entry & PM_UFFD_WP) != 0;
}

/*
 * Let the kernel write the range: every page gets its next version through
 * read(2) from a pipe or pread(2) from an unlinked file, alternately, the
 * destination being the write-protected page itself.  Pages found still
 * write-protected just before (pagemap) are counted: the proof that the
 * kernel's write met the protection.
 */
static int
act_kernel_write(void)
{
	uint64_t buf[PAGE_WORDS], i, end = opt.range_first + opt.range_count;
	uint64_t t0;
	char path[] = "/tmp/snapwork-kwrite.XXXXXX";
	int pfd[2], fd, rc = -1, pagemap;
	ssize_t got;
	uint32_t v;

	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		act_fail("pipe2: %s", strerror(errno));
		if (pagemap != -1)
			close(pagemap);
		return -1;
	}
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1) {
		act_fail("mkostemp %s: %s", path, strerror(errno));
		goto out_pipe;
	}
	unlink(path);
	for (i = opt.range_first; i < end; i++) {
		int use_pipe = (i - opt.range_first) % 2 == 0;

		v = version[i] + 1;
		page_fill(buf, i, v);
		if ((use_pipe ? write(pfd[1], buf, PAGE_SIZE) :
		    pwrite(fd, buf, PAGE_SIZE, 0)) != PAGE_SIZE) {
			act_fail("%s of page %" PRIu64 "'s next content: %s",
			    use_pipe ? "write to the pipe" : "pwrite to the "
			    "file", i, errno ? strerror(errno) : "short write");
			goto out;
		}
		act_protected += page_is_uffd_wp(pagemap, page_addr(i));
		t0 = now_ns();
		errno = 0;
		got = use_pipe ? read(pfd[0], page_addr(i), PAGE_SIZE) :
		    pread(fd, page_addr(i), PAGE_SIZE, 0);
		act_step(t0);
		if (got != PAGE_SIZE) {
			act_fail("%s into write-protected page %" PRIu64
			    " (%p): %s", use_pipe ? "read from a pipe" :
			    "pread from a file", i, (void *)page_addr(i),
			    got == -1 ? strerror(errno) : "short read");
			goto out;
		}
		version[i] = v;
		act_pages++;
	}
	rc = 0;
out:
	close(fd);
out_pipe:
	close(pfd[0]);
	close(pfd[1]);
	if (pagemap != -1)
		close(pagemap);
	return rc;
}

/*
 * Fork a child that writes its own copy of the range (a version no page
 * ever has in the parent) and exits, while the parent's writers go on.
 * The child must end within STUCK_NS.
 */
static int
act_fork(void)
{
	uint64_t i, end = opt.range_first + opt.range_count, t0;
	struct timespec ms = { 0, 1000000 };
	int status;
	pid_t pid, r;

	t0 = now_ns();
	pid = fork();
	if (pid == -1) {
		act_fail("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		for (i = opt.range_first; i < end; i++)
			page_fill(page_addr(i), i, version[i] + 1000000);
		_exit(0);
	}
	act_step(t0);
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r == -1) {
			act_fail("waitpid %d: %s", (int)pid, strerror(errno));
			return -1;
		}
		if (now_ns() - t0 > STUCK_NS / 2) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			act_fail("the child %d did not finish writing its copy "
			    "of %" PRIu64 " pages within %.0f s: it hangs",
			    (int)pid, opt.range_count, STUCK_NS / 2 / 1e9);
			return -1;
		}
		nanosleep(&ms, NULL);
		atomic_store(&act_progress_ns, now_ns());
	}
	act_child_us = (now_ns() - t0) / 1000;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		act_fail("the child %d ended with %s %d", (int)pid,
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) :
		    WTERMSIG(status));
		return -1;
	}
	act_pages = opt.range_count;
	return 0;
}

static int
act_run(void)
{
	struct timespec ts = { opt.act_after_ms / 1000,
	    (long)(opt.act_after_ms % 1000) * 1000000 };
	int rc;

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	atomic_store(&act_progress_ns, now_ns());
	atomic_store(&act_running, 1);
	switch (opt.act) {
	case ACT_KERNEL_WRITE:
		rc = act_kernel_write();
		break;
	case ACT_FORK:
		rc = act_fork();
		break;
	default:
		rc = act_discard();
		break;
	}
	atomic_store(&act_running, 0);
	return rc;
}

/* Count live pages that differ from their current version. */
static uint64_t
check_live(void)
{
	uint64_t i, wrong = 0;
	char what[64];

	for (i = 0; i < npages; i++) {
		if (opt.act == ACT_MUNMAP && in_range(i))
			continue;	/* not mapped any more */
		if (page_equals(page_addr(i), i, version[i]))
			continue;
		if (wrong++ < WRONG_SHOWN)
			fprintf(stderr, "snapwork: live page %" PRIu64
			    ": expected version %" PRIu32 ", found %s\n", i,
			    version[i], page_describe(page_addr(i), i, what,
			    sizeof(what)));
	}
	return wrong;
}

#define LOST_MARK	0xa5a5a5a5a5a5a5a5ull	/* no page's word 0 */

static int
page_is_lost_mark(const void *page)
{
	const uint64_t *w = page;

	for (unsigned k = 0; k < PAGE_WORDS; k++)
		if (w[k] != LOST_MARK)
			return 0;
	return 1;
}

/*
 * Restore every region from the snapshot into fresh memory and compare
 * each page with its version at the armed instant.  Returns the number of
 * wrong pages, or -1 if the snapshot could not be read at all.  With a
 * --discard action the memory is first filled with LOST_MARK, so a page
 * left untouched is one the snapshot says is LOST: allowed inside the
 * discarded range (counted in *lost_in_range), wrong outside it.
 */
static int64_t
check_snapshot(const char *path, uint64_t *lost_total,
    uint64_t *lost_in_range)
{
	struct snap_file *f;
	struct snap_file_info info;
	struct snap_file_region fr;
	uint64_t wrong = 0, lost, p, i;
	uint32_t r, idx;
	char what[64];
	uint8_t *mem;
	size_t len;

	*lost_total = 0;
	*lost_in_range = 0;
	if ((f = snap_file_open(path)) == NULL) {
		fprintf(stderr, "snapwork: open snapshot %s: %s\n", path,
		    snap_strerror(NULL));
		return -1;
	}
	if (snap_file_info(f, &info) == -1) {
		fprintf(stderr, "snapwork: snapshot %s: %s\n", path,
		    snap_strerror(NULL));
		goto fail;
	}
	if (info.region_count != opt.nregions || info.pages_total != npages) {
		fprintf(stderr, "snapwork: snapshot %s has %" PRIu32
		    " regions and %" PRIu64 " pages, expected %u and %" PRIu64
		    "\n", path, info.region_count, info.pages_total,
		    opt.nregions, npages);
		goto fail;
	}
	for (r = 0; r < opt.nregions; r++) {
		struct region *rg = &regions[r];

		for (idx = 0; idx < info.region_count; idx++) {
			if (snap_file_region(f, idx, &fr) == -1) {
				fprintf(stderr, "snapwork: snapshot %s: region "
				    "%" PRIu32 ": %s\n", path, idx,
				    snap_strerror(NULL));
				goto fail;
			}
			if (strcmp(fr.name, rg->name) == 0)
				break;
		}
		if (idx == info.region_count) {
			fprintf(stderr, "snapwork: snapshot %s has no region "
			    "named %s\n", path, rg->name);
			goto fail;
		}
		len = rg->npages * PAGE_SIZE;
		if (fr.start != (uintptr_t)rg->base || fr.length != len) {
			fprintf(stderr, "snapwork: snapshot %s: region %s is "
			    "%#" PRIx64 "+%" PRIu64 ", expected %p+%zu\n", path,
			    rg->name, fr.start, fr.length, (void *)rg->base,
			    len);
			goto fail;
		}
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mem == MAP_FAILED) {
			fprintf(stderr, "snapwork: mmap %zu bytes to restore "
			    "region %s: %s\n", len, rg->name, strerror(errno));
			goto fail;
		}
		if (opt.act != ACT_NONE)
			for (p = 0; p < len / sizeof(uint64_t); p++)
				((uint64_t *)mem)[p] = LOST_MARK;
		lost = 0;
		if (snap_file_restore(f, idx, mem, len, &lost) == -1) {
			fprintf(stderr, "snapwork: restore region %s from %s: "
			    "%s\n", rg->name, path, snap_strerror(NULL));
			munmap(mem, len);
			goto fail;
		}
		*lost_total += lost;
		for (p = 0; p < rg->npages; p++) {
			i = rg->first + p;
			if (page_equals(mem + p * PAGE_SIZE, i,
			    version_armed[i]))
				continue;
			if (opt.act != ACT_NONE &&
			    page_is_lost_mark(mem + p * PAGE_SIZE)) {
				if (in_range(i) && opt.act != ACT_KERNEL_WRITE &&
				    opt.act != ACT_FORK) {
					(*lost_in_range)++;
					continue;
				}
				if (wrong++ < WRONG_SHOWN)
					fprintf(stderr, "snapwork: snapshot "
					    "page %" PRIu64 " (region %s page %"
					    PRIu64 ") is LOST, but the "
					    "process never discarded it\n", i,
					    rg->name, p);
				continue;
			}
			if (wrong++ < WRONG_SHOWN)
				fprintf(stderr, "snapwork: snapshot page %"
				    PRIu64 " (region %s page %" PRIu64 "): "
				    "expected version %" PRIu32 " (the armed "
				    "instant), found %s\n", i, rg->name, p,
				    version_armed[i], page_describe(mem +
				    p * PAGE_SIZE, i, what, sizeof(what)));
		}
		munmap(mem, len);
	}
	snap_file_close(f);
	return (int64_t)wrong;
fail:
	snap_file_close(f);
	return -1;
}

/* Write DIR/R.img: region R as it was at the armed instant, zeros as holes. */
static int
dump_expected(const char *dir)
{
	uint64_t buf[PAGE_WORDS], p, i;
	char path[PATH_MAX];
	unsigned r;
	int fd;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "snapwork: mkdir %s: %s\n", dir,
		    strerror(errno));
		return -1;
	}
	for (r = 0; r < opt.nregions; r++) {
		snprintf(path, sizeof(path), "%s/%u.img", dir, r);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1) {
			fprintf(stderr, "snapwork: create %s: %s\n", path,
			    strerror(errno));
			return -1;
		}
		if (ftruncate(fd, regions[r].npages * PAGE_SIZE) == -1) {
			fprintf(stderr, "snapwork: truncate %s: %s\n", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		for (p = 0; p < regions[r].npages; p++) {
			i = regions[r].first + p;
			if (page_is_zero_version(i, version_armed[i]))
				continue;
			page_fill(buf, i, version_armed[i]);
			if (pwrite(fd, buf, PAGE_SIZE, p * PAGE_SIZE) !=
			    PAGE_SIZE) {
				fprintf(stderr, "snapwork: write %s: %s\n",
				    path, errno ? strerror(errno) :
				    "short write");
				close(fd);
				return -1;
			}
		}
		if (close(fd) == -1) {
			fprintf(stderr, "snapwork: close %s: %s\n", path,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

static const char *
pattern_name(enum pattern p)
{
	switch (p) {
	case PATTERN_RANDOM:
		return "random";
	case PATTERN_SEQUENTIAL:
		return "sequential";
	default:
		return "mixed";
	}
}

struct report {
	int			 completed;
	const char		*error;
	struct snap_result	 res;
	uint64_t		 pause_us;
	uint64_t		 thp_bytes;
	uint64_t		 writes_during;
	uint64_t		 writes_total;
	uint64_t		 stall_us;
	uint64_t		 gap_us;
	int64_t			 wrong;		/* -1: not checked */
	uint64_t		 lost;
	uint64_t		 lost_in_range;	/* of them, discarded ones */
	int			 start_failed;	/* snap_start() failed */
	uint64_t		 gap_before_us;	/* --after-loss: before snapd died */
	uint64_t		 stall_before_us;
	int			 act_done;
	int			 act_ok;
	uint64_t		 live_wrong;
	uint64_t		 armed_zero;	/* pages all zero at arm */
	uint64_t		 prearm_us;	/* --prearm: snap_start() */
	int			 pass;
};

static void
report_json(const struct report *rp)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "pass", json_boolean(rp->pass));
	json_object_set_new(o, "mode", json_string(opt.expect_fail ?
	    "expect-fail" : "snapshot"));
	json_object_set_new(o, "completed", json_boolean(rp->completed));
	if (rp->error != NULL)
		json_object_set_new(o, "error", json_string(rp->error));
	json_object_set_new(o, "id", json_integer(rp->res.id));
	json_object_set_new(o, "name", json_string(rp->res.name));
	json_object_set_new(o, "file", json_string(rp->res.file));
	json_object_set_new(o, "format", json_string(opt.format ?
	    opt.format : "default"));
	json_object_set_new(o, "size-bytes", json_integer(opt.size));
	json_object_set_new(o, "threads", json_integer(opt.threads));
	json_object_set_new(o, "pattern",
	    json_string(pattern_name(opt.pattern)));
	json_object_set_new(o, "regions", json_integer(opt.nregions));
	json_object_set_new(o, "buffer-size", json_integer(opt.buffer));
	json_object_set_new(o, "thp-bytes", json_integer(rp->thp_bytes));
	json_object_set_new(o, "armed-pause-us", json_integer(rp->pause_us));
	json_object_set_new(o, "arm-us", json_integer(rp->res.arm_us));
	if (opt.prearm)
		json_object_set_new(o, "prearm-us", json_integer(rp->prearm_us));
	json_object_set_new(o, "pages", json_integer(rp->res.pages));
	json_object_set_new(o, "workload-pages", json_integer(npages));
	json_object_set_new(o, "pages-faulted",
	    json_integer(rp->res.pages_faulted));
	json_object_set_new(o, "pages-zero", json_integer(rp->res.pages_zero));
	json_object_set_new(o, "armed-zero-pages",
	    json_integer(rp->armed_zero));
	json_object_set_new(o, "pages-lost", json_integer(rp->res.pages_lost));
	json_object_set_new(o, "buffer-full-waits",
	    json_integer(rp->res.buffer_full_waits));
	json_object_set_new(o, "buffer-peak",
	    json_integer(rp->res.buffer_peak));
	json_object_set_new(o, "stall-max-us",
	    json_integer(rp->res.stall_max_us));
	json_object_set_new(o, "duration-us",
	    json_integer(rp->res.duration_us));
	json_object_set_new(o, "size-on-disk", json_integer(rp->res.size));
	json_object_set_new(o, "writer-stall-max-us",
	    json_integer(rp->stall_us));
	json_object_set_new(o, "writer-gap-max-us", json_integer(rp->gap_us));
	json_object_set_new(o, "writes-during-snapshot",
	    json_integer(rp->writes_during));
	json_object_set_new(o, "writes-total", json_integer(rp->writes_total));
	json_object_set_new(o, "wrong-pages", json_integer(rp->wrong));
	json_object_set_new(o, "restored-lost-pages", json_integer(rp->lost));
	json_object_set_new(o, "live-wrong-pages",
	    json_integer(rp->live_wrong));
	json_object_set_new(o, "start-failed",
	    json_boolean(rp->start_failed));
	if (opt.after_loss > 0) {
		json_object_set_new(o, "writer-gap-before-loss-us",
		    json_integer(rp->gap_before_us));
		json_object_set_new(o, "writer-stall-before-loss-us",
		    json_integer(rp->stall_before_us));
	}
	if (opt.act != ACT_NONE) {
		json_object_set_new(o, "action",
		    json_string(action_names[opt.act]));
		json_object_set_new(o, "action-done",
		    json_boolean(rp->act_done && rp->act_ok));
		if (act_error[0] != '\0')
			json_object_set_new(o, "action-error",
			    json_string(act_error));
		json_object_set_new(o, "range-first",
		    json_integer(opt.range_first));
		json_object_set_new(o, "range-pages",
		    json_integer(opt.range_count));
		json_object_set_new(o, "action-pages",
		    json_integer(act_pages));
		json_object_set_new(o, "action-stall-max-us",
		    json_integer(act_stall_max_ns / 1000));
		json_object_set_new(o, "child-us", json_integer(act_child_us));
		json_object_set_new(o, "action-protected-pages",
		    json_integer(act_protected));
		json_object_set_new(o, "lost-in-range",
		    json_integer(rp->lost_in_range));
	}
	s = json_dumps(o, JSON_COMPACT);
	if (s == NULL) {
		fprintf(stderr, "snapwork: cannot format the JSON report\n");
	} else {
		printf("%s\n", s);
		free(s);
	}
	json_decref(o);
}

static void
report_text(const struct report *rp)
{
	const struct snap_result *r = &rp->res;

	printf("snapshot %s: %s\n", r->name[0] ? r->name : "-",
	    rp->completed ? "completed" : "not completed");
	if (rp->error != NULL)
		printf("  error:                     %s\n", rp->error);
	if (r->file[0])
		printf("  file:                      %s\n", r->file);
	printf("  memory:                    %" PRIu64 " MiB in %u region(s), "
	    "%u writer threads, %s\n", opt.size >> 20, opt.nregions,
	    opt.threads, pattern_name(opt.pattern));
	if (opt.thp)
		printf("  THP-backed at arm:         %" PRIu64 " MiB\n",
		    rp->thp_bytes >> 20);
	printf("  armed pause:               %" PRIu64 " us (snapd: arm %"
	    PRIu64 " us)\n", rp->pause_us, r->arm_us);
	printf("  pages:                     %" PRIu64 " (%" PRIu64
	    " zero, %" PRIu64 " lost)\n", r->pages, r->pages_zero,
	    r->pages_lost);
	printf("  copied on the fault path:  %" PRIu64 " pages\n",
	    r->pages_faulted);
	printf("  buffer-full waits:         %" PRIu64 "\n",
	    r->buffer_full_waits);
	printf("  buffer peak:               %" PRIu64 " KiB\n",
	    r->buffer_peak >> 10);
	printf("  duration:                  %.3f s\n", r->duration_us / 1e6);
	printf("  size on disk:              %.1f MiB (%.1f%% of memory)\n",
	    r->size / 1048576.0, opt.size ? 100.0 * r->size / opt.size : 0);
	printf("  longest writer stall:      %" PRIu64 " us (snapd: %" PRIu64
	    " us)\n", rp->stall_us, r->stall_max_us);
	printf("  writes during snapshot:    %" PRIu64 "\n", rp->writes_during);
	if (opt.act != ACT_NONE)
		printf("  --%s on pages %" PRIu64 "+%" PRIu64 ": %s, %"
		    PRIu64 " pages written after it, longest step %" PRIu64
		    " us; %" PRIu64 " of them LOST in the snapshot\n",
		    action_names[opt.act], opt.range_first, opt.range_count,
		    !rp->act_done ? "not done" : rp->act_ok ? "done" : act_error,
		    act_pages, act_stall_max_ns / 1000, rp->lost_in_range);
	if (rp->wrong < 0)
		printf("  verification:              not done\n");
	else
		printf("  verification:              %" PRId64 " wrong pages "
		    "of %" PRIu64 " restored; live memory %" PRIu64
		    " wrong\n", rp->wrong, npages, rp->live_wrong);
	printf("  result:                    %s\n", rp->pass ? "PASS" : "FAIL");
}

int
main(int argc, char **argv)
{
	struct snap_region *sr;
	struct snap_options so;
	struct snap_client *c;
	struct report rp;
	pthread_t watchdog;
	uint64_t id, t0, t1, total_writes, i;
	unsigned t, r;
	int err;

	parse_options(argc, argv);
	memset(&rp, 0, sizeof(rp));
	rp.wrong = -1;
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (regions_map() == -1 || range_setup() == -1)
		return 1;
	version = calloc(npages, sizeof(*version));
	version_armed = calloc(npages, sizeof(*version_armed));
	/* Not calloc: struct writer is 64-byte aligned, malloc's 16 is not. */
	writers = aligned_alloc(_Alignof(struct writer),
	    opt.threads * sizeof(*writers));
	if (writers != NULL)
		memset(writers, 0, opt.threads * sizeof(*writers));
	sr = calloc(opt.nregions, sizeof(*sr));
	if (version == NULL || version_armed == NULL || writers == NULL ||
	    sr == NULL) {
		fprintf(stderr, "snapwork: allocating page tables for %"
		    PRIu64 " pages: %s\n", npages, strerror(errno));
		return 1;
	}
	for (r = 0; r < opt.nregions; r++) {
		sr[r].start = (uintptr_t)regions[r].base;
		sr[r].length = regions[r].npages * PAGE_SIZE;
		sr[r].name = regions[r].name;
	}

	if ((c = snap_connect(opt.socket)) == NULL) {
		fprintf(stderr, "snapwork: connect to snapd: %s\n",
		    snap_strerror(NULL));
		return 1;
	}

	for (t = 0; t < opt.threads; t++) {
		struct writer *wr = &writers[t];

		wr->index = t;
		wr->rng = mix64(t + 1 + (uint64_t)getpid() * 7919);
		wr->sequential = opt.pattern == PATTERN_SEQUENTIAL ||
		    (opt.pattern == PATTERN_MIXED && t % 2 == 1);
		err = pthread_create(&wr->thread, NULL, writer_main, wr);
		if (err != 0) {
			fprintf(stderr, "snapwork: create writer thread %u: "
			    "%s\n", t, strerror(err));
			return 1;
		}
	}
	err = pthread_create(&watchdog, NULL, watchdog_main, NULL);
	if (err != 0) {
		fprintf(stderr, "snapwork: create watchdog thread: %s\n",
		    strerror(err));
		return 1;
	}

	/* Every writer has written its initial pages and stopped. */
	writers_wait_paused();
	if (opt.thp)
		rp.thp_bytes = thp_bytes();

	memset(&so, 0, sizeof(so));
	so.name = opt.name;
	so.format = opt.format;
	so.level = opt.level;
	so.buffer_size = opt.buffer;
	so.test_hold = opt.test_hold;
	if (opt.prearm) {
		/*
		 * Pre-arm while the writers run, let them write for
		 * --prearm MS, stop them: the arm is the armed instant.
		 */
		struct timespec ts = { opt.prearm_ms / 1000,
		    (long)(opt.prearm_ms % 1000) * 1000000 };

		so.prearm = 1;
		writers_resume();
		t0 = now_ns();
		if (snap_start_to(c, sr, opt.nregions, &so, opt.to,
		    &id) == -1) {
			fprintf(stderr, "snapwork: snapshot-start (prearm): "
			    "%s\n", snap_strerror(c));
			writers_stop();
			return 1;
		}
		rp.prearm_us = (now_ns() - t0) / 1000;
		nanosleep(&ts, NULL);
		atomic_store(&pause_flag, 1);
		writers_wait_paused();
	}
	memcpy(version_armed, version, npages * sizeof(*version));
	for (i = 0; i < npages; i++)
		if (page_is_zero_version(i, version_armed[i]))
			rp.armed_zero++;

	if (opt.expect_fail) {
		printf("starting\n");
		fflush(stdout);
	}
	t0 = now_ns();
	if (opt.prearm ? snap_arm(c, id) == -1 :
	    snap_start_to(c, sr, opt.nregions, &so, opt.to, &id) == -1) {
		fprintf(stderr, "snapwork: snapshot-start: %s\n",
		    snap_strerror(c));
		if (!opt.expect_fail) {
			writers_stop();
			return 1;
		}
		/* snapd died while arming: the writers must run on. */
		rp.start_failed = 1;
		rp.error = snap_strerror(c);
	}
	t1 = now_ns();
	rp.pause_us = (t1 - t0) / 1000;
	if (opt.expect_fail && !rp.start_failed) {
		printf("armed\n");
		fflush(stdout);
	}
	writers_resume();
	if (opt.act != ACT_NONE && !rp.start_failed) {
		rp.act_ok = act_run() == 0;
		rp.act_done = 1;
	}
	if (opt.test_release && !rp.start_failed) {
		/* The hold "until release": the action is done, go on. */
		char cmd[128], *reply;

		snprintf(cmd, sizeof(cmd), "{\"execute\": \"test-release\", "
		    "\"arguments\": {\"id\": %llu}}", (unsigned long long)id);
		reply = snap_command(c, cmd);
		if (reply == NULL || strstr(reply, "\"return\"") == NULL) {
			fprintf(stderr, "snapwork: test-release: %s\n",
			    reply != NULL ? reply : snap_strerror(c));
			free(reply);
			writers_stop();
			return 1;
		}
		free(reply);
	}

	if (opt.expect_fail && opt.after_loss > 0) {
		/*
		 * Wait up to --run-after seconds for snapd to go away, then
		 * keep writing --after-loss seconds more: the proof that its
		 * death left nothing blocked.
		 */
		struct timespec ts = { opt.after_loss, 0 };

		if (!rp.start_failed && snap_wait(c, id, &rp.res,
		    (int)opt.run_after * 1000) == 0) {
			rp.completed = rp.res.completed;
			if (!rp.res.completed)
				rp.error = rp.res.error;
		} else if (!rp.start_failed) {
			if (errno == ETIMEDOUT)
				fprintf(stderr, "snapwork: snapd still runs "
				    "the snapshot after %u s\n", opt.run_after);
			else {
				/*
				 * snapd is gone: from now on only what its
				 * death did counts.  A writer blocked right
				 * now still shows, its progress stamp being
				 * old.
				 */
				rp.gap_before_us = atomic_exchange(
				    &watchdog_gap_max_ns, 0) / 1000;
				rp.stall_before_us = writers_stall_max_ns() /
				    1000;
				for (t = 0; t < opt.threads; t++)
					atomic_store(&writers[t].stall_max_ns,
					    0);
			}
			rp.error = snap_strerror(c);
		}
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		rp.writes_during = writers_sum_writes();
	} else if (opt.expect_fail) {
		struct timespec ts = { opt.run_after, 0 };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		rp.writes_during = writers_sum_writes();
		if (rp.start_failed)
			;
		else if (snap_wait(c, id, &rp.res, 0) == 0) {
			rp.completed = rp.res.completed;
			if (!rp.res.completed)
				rp.error = rp.res.error;
		} else
			rp.error = snap_strerror(c);
	} else {
		if (snap_wait(c, id, &rp.res, -1) == -1) {
			rp.error = snap_strerror(c);
			fprintf(stderr, "snapwork: waiting for snapshot %"
			    PRIu64 ": %s\n", id, rp.error);
		} else {
			rp.completed = rp.res.completed;
			if (!rp.res.completed) {
				rp.error = rp.res.error;
				fprintf(stderr, "snapwork: snapshot %" PRIu64
				    " failed: %s\n", id, rp.res.error);
			}
		}
		rp.writes_during = writers_sum_writes();
		rp.stall_us = writers_stall_max_ns() / 1000;
		if (opt.run_after > 0) {
			struct timespec ts = { opt.run_after, 0 };

			while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
				;
		}
	}
	total_writes = writers_sum_writes();
	if (opt.expect_fail)
		rp.stall_us = writers_stall_max_ns() / 1000;
	writers_stop();
	atomic_store(&watchdog_stop, 1);
	pthread_join(watchdog, NULL);
	rp.writes_total = total_writes;
	rp.gap_us = atomic_load(&watchdog_gap_max_ns) / 1000;

	rp.live_wrong = check_live();
	if (opt.expect_fail || (opt.may_fail && !rp.completed)) {
		rp.pass = rp.live_wrong == 0 && rp.gap_us < 1000000 &&
		    rp.stall_us < 1000000;
		if (rp.gap_us >= 1000000 || rp.stall_us >= 1000000)
			fprintf(stderr, "snapwork: a writer was blocked for "
			    "%.3f s (longest write %.3f s): more than 1 s\n",
			    rp.gap_us / 1e6, rp.stall_us / 1e6);
	} else {
		if (rp.completed)
			rp.wrong = check_snapshot(rp.res.file, &rp.lost,
			    &rp.lost_in_range);
		rp.pass = rp.completed && rp.wrong == 0 &&
		    rp.lost == rp.lost_in_range && rp.live_wrong == 0;
		if (rp.lost != rp.lost_in_range)
			fprintf(stderr, "snapwork: %" PRIu64 " pages were "
			    "lost in the snapshot, %" PRIu64 " of them "
			    "discarded by the process\n", rp.lost,
			    rp.lost_in_range);
	}
	if (rp.act_done && !rp.act_ok)
		rp.pass = 0;
	if (rp.live_wrong != 0)
		fprintf(stderr, "snapwork: %" PRIu64 " live pages do not hold "
		    "their last written version\n", rp.live_wrong);
	if (opt.dump_dir != NULL && dump_expected(opt.dump_dir) == -1)
		rp.pass = 0;

	if (opt.json)
		report_json(&rp);
	else
		report_text(&rp);
	snap_close(c);
	free(sr);
	free(writers);
	free(version_armed);
	free(version);
	return rp.pass ? 0 : 1;
}
