/*
 * snapbench: measure snapd against fork() and against zstd and dd, on the
 * same memory in the same process run, and report medians and ratios.
 *
 * The program maps --size bytes (4 KiB pages with MADV_NOHUGEPAGE, or with
 * --thp a 2 MiB-aligned MADV_HUGEPAGE mapping whose AnonHugePages it
 * reports; with --shmem a MAP_SHARED memfd, as QEMU's
 * memory-backend-memfd,share=on guest RAM, instead of private anonymous
 * memory, so that the two can be compared with the same settings: fork's
 * figures then mean little, since a child shares the memory and copies
 * nothing on write) and fills every 4 KiB page with half pseudo-random bytes and half
 * text-like bytes (words of an English-like vocabulary, from a 16 MiB pool of
 * snippets; tests/workload/lib/textfill.c), so that zstd has real work:
 * neither incompressible nor trivial.
 * Then, --runs times, it measures:
 *
 *  1. Pause.  snapd in one step: the time snap_start() takes (the
 *     application is stopped until its regions are armed).  snapd
 *     pre-armed (pause_ratio): a random writer runs while snap_start()
 *     with prearm protects the memory, is stopped when it returns, and the
 *     pause is snap_arm(), which protects again what it wrote meanwhile.
 *     fork: the time fork() takes in the parent.
 *  2. First writes.  One writer thread touches every page once (a random
 *     permutation, or in address order), timing each store with
 *     clock_gettime before and after.  snapd: from the armed instant to
 *     the completion event.  fork: the child is a BGSAVE-style snapshot
 *     writer that compresses the memory with zstd at the same level in
 *     1 MiB blocks, write(2)s it to a file and fsyncs it; the window is its
 *     lifetime.  A write test also ends once the writer has written every
 *     page, or after --window seconds; the snapshot is then cancelled, or
 *     the child killed, since no later store could be measured.
 *
 *     Not every first write faults under snapd: the sweep releases pages
 *     in address order while the writer runs, and a store to a released
 *     page costs what any store costs, so the p50 of all stores mixes two
 *     populations and says little.  The writer therefore reads each page's
 *     8-byte /proc/self/pagemap entry (pread on a descriptor kept open)
 *     just before the store, outside the timed interval, and counts the
 *     store as faulting when, under snapd, the entry has PM_UFFD_WP (bit
 *     57: the pte, or the pmd of a huge page, is still write-protected)
 *     and, under fork, it is present (bit 63) without PM_MMAP_EXCLUSIVE
 *     (bit 56: the page is still shared with the child, so the store is a
 *     copy-on-write fault).  For a PMD-mapped huge page the kernel derives
 *     both bits of every 4 KiB entry from the pmd and the page's own
 *     mapcount; a test program on 6.18 (CONFIG_PAGE_MAPCOUNT) saw exactly
 *     that: after fork every entry of a huge page is shared, after a store
 *     only the copied 4 KiB page is exclusive, and a uffd-wp pmd marks all
 *     512 entries protected.  Reported per writer and per side:
 *
 *     a. p50, p99 and max of the faulting stores alone: the fault path,
 *        compared like for like with fork's copy-on-write fault on the
 *        same kind of page (the ratio lines of the table);
 *     b. the fraction of first writes that faulted;
 *     c. the writer's throughput: pages / (t_end - t_start - t_check),
 *        where pages is the number of stores made, t_start the writer's
 *        clock just before its first page, t_end just after its last
 *        store (when it has written every page, or was stopped because
 *        the snapshot completed or was cancelled, or the child exited or
 *        was killed), and t_check the sum over the stores of the time from
 *        just before the pagemap read to just before the store, so that
 *        the check does not lower the figure;
 *     d. p50, p99 and max of all stores, faulting or not.
 *
 *     The check is not free of effects, and they are the same on both
 *     sides: the writer is slower by the read (its time per store is
 *     reported), which gives snapd's sweep a little more time to release
 *     pages ahead of it; and the read walks the same page table as the
 *     store, so the store's own walk finds the entry in cache.  A page
 *     the sweep releases between the read and the store would count as a
 *     fault that costs nothing; smoke runs saw no faulting store under
 *     3 us.  Not every store that does not fault by this test is free:
 *     with huge pages, a page snapd releases 4 KiB at a time is left
 *     read-only in the split pmd, and its first store takes a fault the
 *     kernel resolves alone (about 7 us on the test machine, against
 *     0.03 us for a page released whole); after fork's child exits, the
 *     parent's pages are its own again but still read-only, likewise.
 *     Those show in the figures of all stores, not in the faulting ones;
 *     and they are why fork's fraction is under 100 %: the child's exit
 *     releases its pages before the writer is stopped.
 *  3. Idle throughput.  The wall time of a complete snapd snapshot of the
 *     idle memory (snap_start to the completion event, fsync included)
 *     against `zstd -T0 -LEVEL` compressing a raw image of the same bytes
 *     (written once, fsync'ed, read back from the page cache) followed by
 *     an fsync of its output, and against `dd bs=1M conv=fsync` writing
 *     the raw image, both to the same file system as snapd's output.
 *  4. Peak extra memory while the application rewrites all of its memory
 *     (every page, whole, in random order) during the snapshot, until the
 *     snapshot ends or the last page is rewritten.  A sampler thread reads,
 *     every millisecond and once more after the last page, for snapd: the
 *     daemon's whole VmRSS plus this process's VmRSS growth since the armed
 *     instant; for fork: the Pss of this process and of the child
 *     (smaps_rollup) plus the child's page tables (VmPTE), less this
 *     process's Pss just before the fork, that is the copy-on-write copies
 *     and the child's own memory.  The page cache of either side's output
 *     file is not counted.
 *
 * fork's pause and write tests run at the start of every run and again
 * after snapd's write tests, so that snapd's pause, idle and write tests
 * lie between two fork samples: the report prints the medians of the
 * samples before and of those after, and how far apart they are (the
 * machine's noise, which the ratios cannot be more precise than), and
 * every ratio is against the median of all of them.
 *
 * The memory is refilled with its original bytes at the start of every
 * run, and in --thp mode before every test whose memory is no longer
 * mostly huge pages (un-protecting or copying 4 KiB splits a huge page).
 * The last line of output is one JSON object with every median and ratio.
 *
 * Threads: the main thread runs every measurement in turn.  During a write
 * test it starts one writer thread (writer_main), which alone writes the
 * memory, stall_ns[], fault_ns[] and its own struct writer, and alone
 * reads pagemap_fd; the main thread polls only its atomic done flag and
 * reads the rest after pthread_join.  During a memory test a sampler
 * thread (sampler_main) reads /proc; the main thread polls its atomic done
 * flag and reads its peak after the join.  fork() is only called when the
 * main thread is the only thread, so the child may use malloc and zstd.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE_SIZE	4096u
#define HUGE_SIZE	(2u << 20)
#define BLOCK_SIZE	(1u << 20)	/* the fork child's compression unit */
#define RUNS_MAX	64
#define THP_REFILL_PCT	90		/* refill when fewer huge pages */
#define SAMPLE_NS	1000000		/* memory sampler period */

/* Bits of a /proc/PID/pagemap entry (admin-guide/mm/pagemap.rst). */
#define PM_PRESENT		(1ull << 63)
#define PM_UFFD_WP		(1ull << 57)
#define PM_MMAP_EXCLUSIVE	(1ull << 56)

extern char **environ;

static struct {
	uint64_t	 size;
	int		 thp;
	int		 shmem;		/* a MAP_SHARED memfd */
	unsigned	 runs;
	int		 level;		/* 0: the daemon's */
	uint64_t	 buffer;	/* 0: the daemon's */
	const char	*socket;
	const char	*tmpdir;	/* NULL: the daemon's snapshot_dir */
	unsigned	 window;	/* seconds, 0: the whole snapshot */
} opt = {
	.size = 1ull << 30,
};

static uint8_t		*mem;		/* the measured memory */
static uint64_t		 npages;
static uint32_t		*order_random;	/* a permutation of the pages */
static uint64_t		*stall_ns;	/* per store of one write test */
static uint64_t		*fault_ns;	/* per faulting store of that test */
static int		 pagemap_fd = -1;	/* /proc/self/pagemap */
static struct snap_client *client;
static pid_t		 daemon_pid;
static char		 tmpdir[PATH_MAX];
static char		 image_path[PATH_MAX];
static uint64_t		 snap_seq;
static uint64_t		 thp_min = UINT64_MAX;	/* bytes, lowest seen */
static unsigned		 thp_refills;

/* ---- helpers ------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static uint64_t
percentile(const uint64_t *v, uint64_t n, double p)
{
	uint64_t rank;

	if (n == 0)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * n);
	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

static double
median(const double *v, unsigned n)
{
	double s[2 * RUNS_MAX];

	if (n == 0)
		return 0;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double
ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* One "Key:  N kB" line of a /proc file, in kB; -1 if absent. */
static long long
proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long long kb = -1;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, klen) == 0) {
			kb = strtoll(line + klen, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static long long
pid_kb(pid_t pid, const char *file, const char *key)
{
	char path[64];

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/%s", file);
	else
		snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	return proc_kb(path, key);
}

/* DIR/snapbench-PID SUFFIX in the temporary directory. */
static void
tmp_path(char *buf, size_t len, const char *suffix)
{
	int n;

	n = snprintf(buf, len, "%s/snapbench-%ld%s", tmpdir, (long)getpid(),
	    suffix);
	if (n < 0 || (size_t)n >= len)
		die("%s: temporary directory path too long", tmpdir);
}

/* ---- the memory and its content ------------------------------------ */

static void
memory_map(void)
{
	size_t maplen = opt.size + (opt.thp ? HUGE_SIZE : 0);
	uint8_t *p;
	int fd = -1;

	if (opt.shmem) {
		fd = memfd_create("snapbench", MFD_CLOEXEC);
		if (fd == -1 || ftruncate(fd, (off_t)maplen) == -1)
			die("memfd of %zu bytes: %s", maplen, strerror(errno));
	}
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, fd != -1 ? MAP_SHARED :
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap %zu bytes: %s", maplen, strerror(errno));
	if (fd != -1)
		close(fd);	/* the mapping keeps the memfd */
	if (opt.thp) {
		mem = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) &
		    ~(uintptr_t)(HUGE_SIZE - 1));
		if (mem > p)
			munmap(p, mem - p);
		if (mem + opt.size < p + maplen)
			munmap(mem + opt.size, p + maplen - (mem + opt.size));
		if (madvise(mem, opt.size, MADV_HUGEPAGE) == -1)
			die("madvise MADV_HUGEPAGE on %" PRIu64 " bytes: %s",
			    opt.size, strerror(errno));
	} else {
		mem = p;
		if (madvise(mem, opt.size, MADV_NOHUGEPAGE) == -1)
			die("madvise MADV_NOHUGEPAGE on %" PRIu64 " bytes: %s",
			    opt.size, strerror(errno));
	}
	npages = opt.size / PAGE_SIZE;
}

/* Bytes of this process backed by transparent huge pages. */
static uint64_t
thp_bytes(void)
{
	long long kb = pid_kb(0, "smaps_rollup", "AnonHugePages:");

	return kb < 0 ? 0 : (uint64_t)kb * 1024;
}

/*
 * Give the memory its original bytes (generation 0).  In THP mode the old
 * pages are dropped first so that the fill faults in fresh huge pages.
 */
static void
memory_refill(void)
{
	uint64_t i;

	if (opt.thp && madvise(mem, opt.size, MADV_DONTNEED) == -1)
		die("madvise MADV_DONTNEED: %s", strerror(errno));
	for (i = 0; i < npages; i++)
		textfill_page(mem + i * PAGE_SIZE, i, 0);
}

/* Before a test in THP mode: refill if the huge pages were split. */
static void
memory_check_thp(void)
{
	uint64_t b;

	if (!opt.thp)
		return;
	b = thp_bytes();
	if (b * 100 < opt.size * THP_REFILL_PCT) {
		memory_refill();
		thp_refills++;
		b = thp_bytes();
	}
	if (b < thp_min)
		thp_min = b;
}

/* Write the memory's bytes to the image file, fsync'ed, left in cache. */
static void
image_write(void)
{
	uint64_t off = 0;
	ssize_t n;
	int fd;

	tmp_path(image_path, sizeof(image_path), ".img");
	fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		die("create %s: %s", image_path, strerror(errno));
	while (off < opt.size) {
		n = write(fd, mem + off, opt.size - off > BLOCK_SIZE ?
		    BLOCK_SIZE : opt.size - off);
		if (n <= 0)
			die("write %s: %s", image_path,
			    n == 0 ? "wrote nothing" : strerror(errno));
		off += n;
	}
	if (fsync(fd) == -1 || close(fd) == -1)
		die("fsync %s: %s", image_path, strerror(errno));
}

/* ---- the daemon ---------------------------------------------------- */

/* Send one command, die on an error reply; returns the "return" member. */
static json_t *
daemon_command(const char *cmd)
{
	json_error_t jerr;
	json_t *reply, *ret;
	char *line;

	if ((line = snap_command(client, cmd)) == NULL)
		die("%s: %s", cmd, snap_strerror(client));
	if ((reply = json_loads(line, 0, &jerr)) == NULL)
		die("%s: reply is not JSON (%s): %s", cmd, jerr.text, line);
	if ((ret = json_object_get(reply, "return")) == NULL)
		die("%s: snapd answered %s", cmd, line);
	free(line);
	json_incref(ret);
	json_decref(reply);
	return ret;
}

static void
daemon_setup(void)
{
	json_t *status, *config;
	const char *dir;

	if ((client = snap_connect(opt.socket)) == NULL)
		die("connect to snapd: %s", snap_strerror(NULL));
	status = daemon_command("{\"execute\": \"query-status\"}");
	daemon_pid = (pid_t)json_integer_value(json_object_get(status, "pid"));
	if (daemon_pid <= 0)
		die("query-status: no pid in snapd's answer");
	json_decref(status);
	config = daemon_command("{\"execute\": \"query-config\"}");
	if (opt.level == 0)
		opt.level = (int)json_integer_value(json_object_get(config,
		    "compression_level"));
	if (opt.buffer == 0)
		opt.buffer = (uint64_t)json_integer_value(json_object_get(
		    config, "buffer_size"));
	if (opt.level <= 0 || opt.buffer == 0)
		die("query-config: no compression_level or buffer_size in "
		    "snapd's answer");
	dir = json_string_value(json_object_get(config, "snapshot_dir"));
	if (opt.tmpdir == NULL && dir == NULL)
		die("query-config: no snapshot_dir in snapd's answer; "
		    "give --tmpdir");
	snprintf(tmpdir, sizeof(tmpdir), "%s", opt.tmpdir ? opt.tmpdir : dir);
	json_decref(config);
}

/* The options of every snapd snapshot here, with a fresh name. */
static void
snapd_options(struct snap_options *so, char *name, size_t namelen)
{
	snprintf(name, namelen, "snapbench-%ld-%" PRIu64, (long)getpid(),
	    ++snap_seq);
	memset(so, 0, sizeof(*so));
	so->name = name;
	so->level = opt.level;
	so->buffer_size = opt.buffer;
}

/* Arm a snapshot of the memory; *pause_ns is the time the caller waited. */
static uint64_t
snapd_begin(uint64_t *pause_ns, char *name, size_t namelen)
{
	struct snap_region r = { (uintptr_t)mem, opt.size, "mem" };
	struct snap_options so;
	uint64_t id, t0;

	snapd_options(&so, name, namelen);
	t0 = now_ns();
	if (snap_start(client, &r, 1, &so, &id) == -1)
		die("snapshot-start: %s", snap_strerror(client));
	*pause_ns = now_ns() - t0;
	return id;
}

/* Delete a completed snapshot's file: the benchmark keeps none. */
static void
snapd_delete(const char *name)
{
	char cmd[256];
	json_t *ret;

	snprintf(cmd, sizeof(cmd), "{\"execute\": \"snapshot-delete\", "
	    "\"arguments\": {\"name\": \"%s\"}}", name);
	ret = daemon_command(cmd);
	json_decref(ret);
}

/*
 * Wait for the snapshot until it completes, or until *done is set or
 * deadline (monotonic ns, 0: none) passes, then cancel it.  Returns 1 if
 * it completed (its file is deleted), 0 if it was cancelled.
 */
static int
snapd_end(uint64_t id, const char *name, const _Atomic int *done,
    uint64_t deadline, struct snap_result *res)
{
	int poll_ms = done != NULL || deadline != 0 ? 5 : -1;

	for (;;) {
		if (snap_wait(client, id, res, poll_ms) == 0)
			break;
		if (errno != ETIMEDOUT)
			die("waiting for snapshot %s: %s", name,
			    snap_strerror(client));
		if ((done != NULL && atomic_load(done)) ||
		    (deadline != 0 && now_ns() >= deadline)) {
			/* It may complete just before the cancel arrives. */
			if (snap_cancel(client, id) == -1) {
				char why[512];

				snprintf(why, sizeof(why), "%s",
				    snap_strerror(client));
				if (snap_wait(client, id, res, 10000) == -1)
					die("cancel snapshot %s: %s", name,
					    why);
			} else if (snap_wait(client, id, res, -1) == -1)
				die("waiting for cancelled snapshot %s: %s",
				    name, snap_strerror(client));
			if (res->completed) {
				snapd_delete(name);
				return 1;
			}
			return 0;
		}
	}
	if (!res->completed)
		die("snapshot %s did not complete: %s", name, res->error);
	snapd_delete(name);
	return 1;
}

/* ---- the fork side ------------------------------------------------- */

/*
 * The BGSAVE-style child: compress the memory in 1 MiB blocks with zstd at
 * the snapshot's level, write(2) each frame to path, fsync, exit.  The
 * parent had no other thread at fork(), so malloc is safe here.
 */
static void __attribute__((noreturn))
child_save(const char *path)
{
	size_t cap = ZSTD_compressBound(BLOCK_SIZE), n, done;
	uint64_t off;
	ZSTD_CCtx *cctx;
	uint8_t *out;
	ssize_t w;
	int fd;

	cctx = ZSTD_createCCtx();
	out = malloc(cap);
	if (cctx == NULL || out == NULL) {
		dprintf(2, "snapbench: fork child: zstd context: out of "
		    "memory\n");
		_exit(1);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		dprintf(2, "snapbench: fork child: create %s: %s\n", path,
		    strerror(errno));
		_exit(1);
	}
	for (off = 0; off < opt.size; off += BLOCK_SIZE) {
		n = ZSTD_compressCCtx(cctx, out, cap, mem + off,
		    opt.size - off > BLOCK_SIZE ? BLOCK_SIZE : opt.size - off,
		    opt.level);
		if (ZSTD_isError(n)) {
			dprintf(2, "snapbench: fork child: compress: %s\n",
			    ZSTD_getErrorName(n));
			_exit(1);
		}
		for (done = 0; done < n; done += w) {
			w = write(fd, out + done, n - done);
			if (w <= 0) {
				dprintf(2, "snapbench: fork child: write %s: "
				    "%s\n", path, w == 0 ? "wrote nothing" :
				    strerror(errno));
				_exit(1);
			}
		}
	}
	if (fsync(fd) == -1) {
		dprintf(2, "snapbench: fork child: fsync %s: %s\n", path,
		    strerror(errno));
		_exit(1);
	}
	_exit(0);
}

/* fork() a saving child; *pause_ns is how long fork() took. */
static pid_t
fork_begin(uint64_t *pause_ns, char *path, size_t pathlen)
{
	uint64_t t0;
	pid_t pid;

	tmp_path(path, pathlen, "-fork.out");
	fflush(NULL);
	t0 = now_ns();
	pid = fork();
	if (pid == 0)
		child_save(path);
	*pause_ns = now_ns() - t0;
	if (pid == -1)
		die("fork: %s", strerror(errno));
	return pid;
}

/*
 * Wait for the child until it has saved the memory, or until *done is set
 * or deadline (monotonic ns, 0: none) passes, then kill it.  Returns 1 if
 * it finished its save, 0 if it was killed.
 */
static int
fork_end(pid_t pid, const char *path, const _Atomic int *done,
    uint64_t deadline)
{
	struct timespec tick = { 0, 1000000 };
	int status, killed = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, killed ? 0 : WNOHANG);
		if (r == pid)
			break;
		if (r == -1 && errno != EINTR)
			die("waitpid fork child %ld: %s", (long)pid,
			    strerror(errno));
		if (r != 0)
			continue;
		if ((done != NULL && atomic_load(done)) ||
		    (deadline != 0 && now_ns() >= deadline)) {
			kill(pid, SIGKILL);
			killed = 1;
		} else
			nanosleep(&tick, NULL);
	}
	unlink(path);
	if (killed)
		return 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("fork child %ld failed its save (status %#x)", (long)pid,
		    status);
	return 1;
}

/* ---- the writer thread --------------------------------------------- */

enum write_kind {
	WRITE_RANDOM,		/* one word, pages in random order */
	WRITE_SEQUENTIAL,	/* one word, pages in address order */
	WRITE_REWRITE,		/* the whole page, random order */
};

/* How a writer tells, before a store, whether the store will fault. */
enum fault_check {
	CHECK_NONE,		/* it does not: pre-arm and memory tests */
	CHECK_UFFD_WP,		/* snapd: the page is still write-protected */
	CHECK_COW,		/* fork: the page is shared with the child */
};

struct writer {
	pthread_t	 thread;
	enum write_kind	 kind;
	enum fault_check check;
	uint64_t	 gen;		/* content generation for REWRITE */
	_Atomic int	 stop;
	_Atomic int	 done;		/* every page written, or stopped */
	uint64_t	 count;		/* stores timed into stall_ns */
	uint64_t	 faults;	/* of them, those also in fault_ns */
	uint64_t	 check_ns;	/* time spent checking, not storing */
	uint64_t	 t_start, t_end;
};

/*
 * Whether a store to page p will fault, from its pagemap entry.  Only the
 * flag bits are read, which needs no privilege (the frame number would).
 */
static int
page_will_fault(const uint8_t *p, enum fault_check check)
{
	uint64_t entry;
	off_t off = (off_t)((uintptr_t)p / PAGE_SIZE * sizeof(entry));

	if (pread(pagemap_fd, &entry, sizeof(entry), off) != sizeof(entry))
		die("read /proc/self/pagemap at %p: %s", (const void *)p,
		    strerror(errno));
	if (check == CHECK_UFFD_WP)
		return (entry & PM_UFFD_WP) != 0;
	return (entry & PM_PRESENT) && !(entry & PM_MMAP_EXCLUSIVE);
}

static void *
writer_main(void *arg)
{
	struct writer *wr = arg;
	uint64_t k, i, tc, t0, t1;
	uint8_t *p;
	int fault = 0;

	wr->t_start = now_ns();
	for (k = 0; k < npages; k++) {
		if (atomic_load_explicit(&wr->stop, memory_order_relaxed))
			break;
		i = wr->kind == WRITE_SEQUENTIAL ? k : order_random[k];
		p = mem + i * PAGE_SIZE;
		if (wr->check != CHECK_NONE) {
			tc = now_ns();
			fault = page_will_fault(p, wr->check);
			t0 = now_ns();
			wr->check_ns += t0 - tc;
		} else
			t0 = now_ns();
		if (wr->kind == WRITE_REWRITE)
			textfill_page(p, i, wr->gen);
		else
			*(volatile uint64_t *)p = k ^ 0x5a5a5a5a5a5a5a5aull;
		t1 = now_ns();
		stall_ns[k] = t1 - t0;
		if (fault)
			fault_ns[wr->faults++] = t1 - t0;
	}
	wr->count = k;
	wr->t_end = now_ns();
	atomic_store(&wr->done, 1);
	return NULL;
}

static void
writer_start(struct writer *wr, enum write_kind kind, enum fault_check check,
    uint64_t gen)
{
	int err;

	memset(wr, 0, sizeof(*wr));
	wr->kind = kind;
	wr->check = check;
	wr->gen = gen;
	if ((err = pthread_create(&wr->thread, NULL, writer_main, wr)) != 0)
		die("create writer thread: %s", strerror(err));
}

static void
writer_stop(struct writer *wr)
{
	atomic_store(&wr->stop, 1);
	pthread_join(wr->thread, NULL);
}

/*
 * Arm with pre-arm while a random writer runs: snapd protects the memory
 * as it is written, the writer is stopped when that is done (the
 * application stopping its threads), and the pause is snap_arm(), which
 * protects again what was written meanwhile.
 */
static uint64_t
snapd_begin_prearm(uint64_t *pause_ns, char *name, size_t namelen)
{
	struct snap_region r = { (uintptr_t)mem, opt.size, "mem" };
	struct snap_options so;
	struct writer wr;
	uint64_t id, t0;

	snapd_options(&so, name, namelen);
	so.prearm = 1;
	writer_start(&wr, WRITE_RANDOM, CHECK_NONE, 1);
	if (snap_start(client, &r, 1, &so, &id) == -1)
		die("snapshot-start (prearm): %s", snap_strerror(client));
	writer_stop(&wr);
	t0 = now_ns();
	if (snap_arm(client, id) == -1)
		die("snapshot-arm: %s", snap_strerror(client));
	*pause_ns = now_ns() - t0;
	return id;
}

/* ---- the memory sampler -------------------------------------------- */

struct sampler {
	pthread_t	 thread;
	pid_t		 child;		/* 0: sample snapd, else the fork child */
	long long	 base_kb;	/* subtracted from every sample */
	const _Atomic int *until;	/* the writer's done flag */
	_Atomic int	 stop;
	_Atomic int	 done;		/* took its last sample */
	long long	 peak_kb;
	uint64_t	 samples;
};

static long long
sample_kb(const struct sampler *s)
{
	long long a, b, c;

	if (s->child == 0) {
		a = pid_kb(daemon_pid, "status", "VmRSS:");
		b = pid_kb(0, "status", "VmRSS:");
		if (a < 0 || b < 0)
			return -1;
		return a + b - s->base_kb;
	}
	a = pid_kb(0, "smaps_rollup", "Pss:");
	b = pid_kb(s->child, "smaps_rollup", "Pss:");
	c = pid_kb(s->child, "status", "VmPTE:");
	if (a < 0 || b < 0 || c < 0)
		return -1;	/* the child is gone */
	return a + b + c - s->base_kb;
}

static void *
sampler_main(void *arg)
{
	struct sampler *s = arg;
	struct timespec tick = { 0, SAMPLE_NS };
	long long kb;
	int last;

	/* The last sample is taken after the writer wrote its last page. */
	for (;;) {
		last = atomic_load(s->until) || atomic_load(&s->stop);
		if ((kb = sample_kb(s)) >= 0) {
			if (kb > s->peak_kb)
				s->peak_kb = kb;
			s->samples++;
		}
		if (last)
			break;
		nanosleep(&tick, NULL);
	}
	atomic_store(&s->done, 1);
	return NULL;
}

static void
sampler_start(struct sampler *s, pid_t child, long long base_kb,
    const _Atomic int *until)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->child = child;
	s->base_kb = base_kb;
	s->until = until;
	if ((err = pthread_create(&s->thread, NULL, sampler_main, s)) != 0)
		die("create sampler thread: %s", strerror(err));
}

static void
sampler_stop(struct sampler *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
}

/* ---- the measurements ---------------------------------------------- */

struct stall {
	double	p50_us, p99_us, max_us;		/* every store */
	double	fault_p50_us, fault_p99_us, fault_max_us; /* faulting */
	double	fault_fraction;
	double	pages_per_s;		/* the check's time taken out */
	double	check_us;		/* per store: one pagemap read */
};

/* Percentiles, fault fraction and throughput of the writer's stores. */
static void
stall_summarise(const struct writer *wr, struct stall *st)
{
	uint64_t n = wr->count, nf = wr->faults;
	uint64_t dt = wr->t_end - wr->t_start - wr->check_ns;

	qsort(stall_ns, n, sizeof(*stall_ns), cmp_u64);
	qsort(fault_ns, nf, sizeof(*fault_ns), cmp_u64);
	st->p50_us = percentile(stall_ns, n, 50) / 1e3;
	st->p99_us = percentile(stall_ns, n, 99) / 1e3;
	st->max_us = n ? stall_ns[n - 1] / 1e3 : 0;
	st->fault_p50_us = percentile(fault_ns, nf, 50) / 1e3;
	st->fault_p99_us = percentile(fault_ns, nf, 99) / 1e3;
	st->fault_max_us = nf ? fault_ns[nf - 1] / 1e3 : 0;
	st->fault_fraction = n ? (double)nf / n : 0;
	st->pages_per_s = dt ? n * 1e9 / dt : 0;
	st->check_us = n ? wr->check_ns / 1e3 / n : 0;
}

/* When a write test gives up waiting for its snapshot (0: never). */
static uint64_t
window_deadline(void)
{
	return opt.window ? now_ns() + opt.window * 1000000000ull : 0;
}

/* Stores made while a snapd snapshot runs. */
static void
stall_snapd(enum write_kind kind, struct stall *st)
{
	struct snap_result res;
	struct writer wr;
	uint64_t id, pause;
	char name[64];

	memory_check_thp();
	id = snapd_begin(&pause, name, sizeof(name));
	writer_start(&wr, kind, CHECK_UFFD_WP, 1);
	snapd_end(id, name, &wr.done, window_deadline(), &res);
	writer_stop(&wr);
	stall_summarise(&wr, st);
}

/* Stores made while a fork child saves the memory. */
static void
stall_fork(enum write_kind kind, struct stall *st)
{
	struct writer wr;
	char path[PATH_MAX];
	uint64_t pause;
	pid_t pid;

	memory_check_thp();
	pid = fork_begin(&pause, path, sizeof(path));
	writer_start(&wr, kind, CHECK_COW, 1);
	fork_end(pid, path, &wr.done, window_deadline());
	writer_stop(&wr);
	stall_summarise(&wr, st);
}

/* fork's figures, measured before and again after snapd's. */
struct fork_sample {
	double		pause_us;
	struct stall	random, seq;
};

/* fork's pause (a child that exits at once) and its two write tests. */
static void
fork_measure(struct fork_sample *fs)
{
	uint64_t t0, t1;
	pid_t pid;

	memory_check_thp();
	fflush(NULL);
	t0 = now_ns();
	pid = fork();
	if (pid == 0)
		_exit(0);
	t1 = now_ns();
	if (pid == -1)
		die("fork: %s", strerror(errno));
	fs->pause_us = (t1 - t0) / 1e3;
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	stall_fork(WRITE_RANDOM, &fs->random);
	stall_fork(WRITE_SEQUENTIAL, &fs->seq);
}

/* Peak extra MiB while the application rewrites everything (snapd). */
static double
memory_snapd(void)
{
	struct snap_result res;
	struct sampler s;
	struct writer wr;
	uint64_t id, pause;
	long long self_kb;
	char name[64];

	memory_check_thp();
	if ((self_kb = pid_kb(0, "status", "VmRSS:")) < 0)
		die("read VmRSS of /proc/self/status: %s", strerror(errno));
	id = snapd_begin(&pause, name, sizeof(name));
	writer_start(&wr, WRITE_REWRITE, CHECK_NONE, 1);
	sampler_start(&s, 0, self_kb, &wr.done);
	snapd_end(id, name, &s.done, 0, &res);
	writer_stop(&wr);
	sampler_stop(&s);
	if (s.samples == 0)
		die("no memory sample of snapd (pid %ld) was read",
		    (long)daemon_pid);
	return s.peak_kb / 1024.0;
}

/* Peak extra MiB while the application rewrites everything (fork). */
static double
memory_fork(void)
{
	char path[PATH_MAX];
	struct sampler s;
	struct writer wr;
	uint64_t pause;
	long long pss_kb;
	pid_t pid;

	memory_check_thp();
	if ((pss_kb = pid_kb(0, "smaps_rollup", "Pss:")) < 0)
		die("read Pss of /proc/self/smaps_rollup: %s",
		    strerror(errno));
	pid = fork_begin(&pause, path, sizeof(path));
	writer_start(&wr, WRITE_REWRITE, CHECK_NONE, 1);
	sampler_start(&s, pid, pss_kb, &wr.done);
	fork_end(pid, path, &s.done, 0);
	writer_stop(&wr);
	sampler_stop(&s);
	if (s.samples == 0)
		die("no memory sample of the fork child was read");
	return s.peak_kb / 1024.0;
}

/* Run a program, return its wall time in ns; die unless it exits 0. */
static uint64_t
run_timed(char *const argv[])
{
	uint64_t t0, dt;
	int err, status;
	pid_t pid;

	t0 = now_ns();
	if ((err = posix_spawnp(&pid, argv[0], NULL, NULL, argv,
	    environ)) != 0)
		die("run %s: %s", argv[0], strerror(err));
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			die("waitpid %s: %s", argv[0], strerror(errno));
	dt = now_ns() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s exited with status %#x", argv[0], status);
	return dt;
}

/* Remove the image however the program ends (not in fork children). */
static void
cleanup(void)
{
	if (image_path[0] != '\0')
		unlink(image_path);
}

static uint64_t
fsync_path(const char *path)
{
	uint64_t t0 = now_ns();
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die("open %s: %s", path, strerror(errno));
	if (fsync(fd) == -1)
		die("fsync %s: %s", path, strerror(errno));
	close(fd);
	return now_ns() - t0;
}

struct run {
	double	pause_snapd_us, pause_prearm_us;
	double	idle_snapd_s, idle_zstd_s, idle_zstd_fsync_s, idle_dd_s;
	double	snap_size_mib, zstd_size_mib;
	struct stall random_snapd, seq_snapd;
	struct fork_sample fork_before, fork_after; /* snapd's between */
	double	peak_snapd_mib, peak_fork_mib;
};

static void
run_once(struct run *rn, unsigned index)
{
	char name[64], out[PATH_MAX], lvl[16], ifarg[PATH_MAX + 3];
	char ofarg[PATH_MAX + 3];
	const struct fork_sample *f1 = &rn->fork_before, *f2 = &rn->fork_after;
	struct snap_result res;
	struct stat sb;
	uint64_t id, pause, t0, t1, zt, ft;

	memset(rn, 0, sizeof(*rn));
	if (index > 0)
		memory_refill();

	/* 1 and 2: fork's pause and write tests, before snapd's. */
	fork_measure(&rn->fork_before);

	/* 1 and 3: pause to arm and the idle snapshot's wall time. */
	memory_check_thp();
	t0 = now_ns();
	id = snapd_begin(&pause, name, sizeof(name));
	snapd_end(id, name, NULL, 0, &res);
	t1 = now_ns();
	rn->pause_snapd_us = pause / 1e3;
	rn->idle_snapd_s = (t1 - t0) / 1e9;
	rn->snap_size_mib = res.size / 1048576.0;

	/* 1: the pause with pre-arm, a random writer busy until then. */
	id = snapd_begin_prearm(&pause, name, sizeof(name));
	snapd_end(id, name, NULL, 0, &res);
	rn->pause_prearm_us = pause / 1e3;

	/* 3: zstd -T0 and dd on the raw image of the same bytes. */
	tmp_path(out, sizeof(out), ".zst");
	snprintf(lvl, sizeof(lvl), "-%d", opt.level);
	{
		char *argv[] = { "zstd", "-q", "-f", "-T0", lvl, image_path,
		    "-o", out, NULL };

		zt = run_timed(argv);
	}
	ft = fsync_path(out);
	if (stat(out, &sb) == -1)
		die("stat %s: %s", out, strerror(errno));
	unlink(out);
	rn->idle_zstd_s = zt / 1e9;
	rn->idle_zstd_fsync_s = (zt + ft) / 1e9;
	rn->zstd_size_mib = sb.st_size / 1048576.0;

	tmp_path(out, sizeof(out), ".dd");
	if (snprintf(ifarg, sizeof(ifarg), "if=%s", image_path) >=
	    (int)sizeof(ifarg) || snprintf(ofarg, sizeof(ofarg), "of=%s",
	    out) >= (int)sizeof(ofarg))
		die("%s: temporary directory path too long", tmpdir);
	{
		char *argv[] = { "dd", ifarg, ofarg, "bs=1M", "conv=fsync",
		    "status=none", NULL };

		rn->idle_dd_s = run_timed(argv) / 1e9;
	}
	unlink(out);

	/* 2: snapd's random and sequential writer, then fork's again. */
	stall_snapd(WRITE_RANDOM, &rn->random_snapd);
	stall_snapd(WRITE_SEQUENTIAL, &rn->seq_snapd);
	fork_measure(&rn->fork_after);

	/* 4: peak extra memory while everything is rewritten. */
	rn->peak_snapd_mib = memory_snapd();
	rn->peak_fork_mib = memory_fork();

	fprintf(stderr, "snapbench: run %u (snapd/fork before,after snapd): "
	    "pause %.0f/%.0f,%.0f us, idle %.2f/%.2f s (zstd); faulting first "
	    "write p50 random %.1f/%.1f,%.1f us, sequential %.1f/%.1f,%.1f us; "
	    "faulted random %.0f/%.0f,%.0f%%, sequential %.1f/%.0f,%.0f%%; "
	    "pages/s random %.0f/%.0f,%.0f, sequential %.0f/%.0f,%.0f; peak "
	    "%.0f/%.0f MiB; pre-armed pause %.0f us\n", index + 1,
	    rn->pause_snapd_us, f1->pause_us, f2->pause_us, rn->idle_snapd_s,
	    rn->idle_zstd_fsync_s, rn->random_snapd.fault_p50_us,
	    f1->random.fault_p50_us, f2->random.fault_p50_us,
	    rn->seq_snapd.fault_p50_us, f1->seq.fault_p50_us,
	    f2->seq.fault_p50_us, 100 * rn->random_snapd.fault_fraction,
	    100 * f1->random.fault_fraction, 100 * f2->random.fault_fraction,
	    100 * rn->seq_snapd.fault_fraction, 100 * f1->seq.fault_fraction,
	    100 * f2->seq.fault_fraction, rn->random_snapd.pages_per_s,
	    f1->random.pages_per_s, f2->random.pages_per_s,
	    rn->seq_snapd.pages_per_s, f1->seq.pages_per_s,
	    f2->seq.pages_per_s, rn->peak_snapd_mib, rn->peak_fork_mib,
	    rn->pause_prearm_us);
}

/* ---- the report ---------------------------------------------------- */

#define NO_OFFSET	SIZE_MAX

/*
 * Median over the runs of the double at offset off in struct run, and of
 * the one at off2 as well unless it is NO_OFFSET: fork's figures are the
 * median of both its samples.
 */
static double
run_median(const struct run *runs, size_t off, size_t off2)
{
	double v[2 * RUNS_MAX];
	unsigned r, n = 0;

	for (r = 0; r < opt.runs; r++) {
		v[n++] = *(const double *)((const char *)&runs[r] + off);
		if (off2 != NO_OFFSET)
			v[n++] = *(const double *)((const char *)&runs[r] +
			    off2);
	}
	return median(v, n);
}

#define MED(field)	run_median(runs, offsetof(struct run, field), NO_OFFSET)
#define BEFORE(off)	(offsetof(struct run, fork_before) + (off))
#define AFTER(off)	(offsetof(struct run, fork_after) + (off))
#define FORK_MED(off)	run_median(runs, BEFORE(off), AFTER(off))

/* A figure of a write test, in struct stall, for either writer. */
static const struct stall_figure {
	const char	*label;		/* after "random " or "sequential " */
	const char	*key;		/* + _random or _sequential; fork_KEY */
	const char	*ratio_key;	/* NULL: no ratio */
	int		 table_ratio;	/* the table shows the ratio */
	size_t		 off;
	double		 scale;		/* in the table */
	int		 decimals;	/* in the table */
	const char	*note;
} stall_figures[] = {
	{ "faulting write p50, us", "stall_fault_p50_us",
	    "stall_fault_p50_ratio", 1, offsetof(struct stall, fault_p50_us),
	    1, 1, "(fork COW fault)" },
	{ "faulting write p99, us", "stall_fault_p99_us",
	    "stall_fault_p99_ratio", 1, offsetof(struct stall, fault_p99_us),
	    1, 1, "" },
	{ "faulting write max, us", "stall_fault_max_us",
	    "stall_fault_max_ratio", 1, offsetof(struct stall, fault_max_us),
	    1, 0, "" },
	{ "first writes faulted, %", "fault_fraction", NULL, 0,
	    offsetof(struct stall, fault_fraction), 100, 1, "" },
	{ "writer, pages/s", "throughput_pps", "throughput_ratio", 1,
	    offsetof(struct stall, pages_per_s), 1, 0,
	    "(higher is better)" },
	{ "any first write p50, us", "stall_p50_us", "stall_p50_ratio", 0,
	    offsetof(struct stall, p50_us), 1, 1, "(faulting or not)" },
	{ "any first write p99, us", "stall_p99_us", "stall_p99_ratio", 0,
	    offsetof(struct stall, p99_us), 1, 1, "" },
	{ "any first write max, us", "stall_max_us", "stall_max_ratio", 0,
	    offsetof(struct stall, max_us), 1, 0, "" },
	{ "pagemap read per store, us", "pagemap_read_us", NULL, 0,
	    offsetof(struct stall, check_us), 1, 2, "(not in the above)" },
};
#define STALL_FIGURES	(sizeof(stall_figures) / sizeof(stall_figures[0]))

/* fork's figures whose two samples show the machine's noise. */
static const struct noise_figure {
	const char	*label;
	const char	*key;		/* fork_noise_KEY_before etc. */
	size_t		 off;		/* in struct fork_sample */
	int		 decimals;
} noise_figures[] = {
	{ "pause, us", "pause_us", offsetof(struct fork_sample, pause_us), 0 },
	{ "random faulting write p50, us", "stall_fault_p50_us_random",
	    offsetof(struct fork_sample, random.fault_p50_us), 2 },
	{ "sequential faulting write p50, us",
	    "stall_fault_p50_us_sequential",
	    offsetof(struct fork_sample, seq.fault_p50_us), 2 },
	{ "random writer, pages/s", "throughput_pps_random",
	    offsetof(struct fork_sample, random.pages_per_s), 0 },
	{ "sequential writer, pages/s", "throughput_pps_sequential",
	    offsetof(struct fork_sample, seq.pages_per_s), 0 },
};
#define NOISE_FIGURES	(sizeof(noise_figures) / sizeof(noise_figures[0]))

/* Set the number v under the key printf makes of fmt. */
static void __attribute__((format(printf, 3, 4)))
json_set_number(json_t *o, double v, const char *fmt, ...)
{
	char key[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	json_object_set_new(o, key, json_real(v));
}

/* One line of the table; ratio < 0: no ratio column. */
static void
table_row(const char *label, int decimals, double snapd, double alt,
    double ratio, const char *note)
{
	printf("%-40s %12.*f %12.*f ", label, decimals, snapd, decimals, alt);
	if (ratio >= 0)
		printf("%8.3f", ratio);
	else
		printf("%8s", "-");
	printf("%s%s\n", *note != '\0' ? "  " : "", note);
}

/*
 * One writer's figures, in the table and in o: snapd's from the struct
 * stall at snapd_off in struct run, fork's from the one at fork_off in
 * struct fork_sample.
 */
static void
report_writer(json_t *o, const struct run *runs, const char *writer,
    size_t snapd_off, size_t fork_off)
{
	const struct stall_figure *f;
	char label[64];
	double sv, fv;
	size_t i;

	for (i = 0; i < STALL_FIGURES; i++) {
		f = &stall_figures[i];
		sv = run_median(runs, snapd_off + f->off, NO_OFFSET);
		fv = FORK_MED(fork_off + f->off);
		snprintf(label, sizeof(label), "%s %s", writer, f->label);
		table_row(label, f->decimals, sv * f->scale, fv * f->scale,
		    f->table_ratio ? ratio(sv, fv) : -1, f->note);
		json_set_number(o, sv, "%s_%s", f->key, writer);
		json_set_number(o, fv, "fork_%s_%s", f->key, writer);
		if (f->ratio_key != NULL)
			json_set_number(o, ratio(sv, fv), "%s_%s",
			    f->ratio_key, writer);
	}
}

/*
 * fork's samples before and after snapd's tests, and how far apart they
 * are: |after - before| / the smaller, in percent.
 */
static void
report_noise(json_t *o, const struct run *runs)
{
	const struct noise_figure *f;
	double before, after, low, spread, spread_max = 0;
	size_t i;

	printf("fork noise (medians of fork's tests before and after snapd's; "
	    "spread = |after - before| / smaller):\n");
	for (i = 0; i < NOISE_FIGURES; i++) {
		f = &noise_figures[i];
		before = run_median(runs, BEFORE(f->off), NO_OFFSET);
		after = run_median(runs, AFTER(f->off), NO_OFFSET);
		low = before < after ? before : after;
		spread = low > 0 ? 100 * fabs(after - before) / low : 0;
		if (spread > spread_max)
			spread_max = spread;
		printf("  %-38s before %10.*f, after %10.*f, spread %5.1f%%\n",
		    f->label, f->decimals, before, f->decimals, after, spread);
		json_set_number(o, before, "fork_noise_%s_before", f->key);
		json_set_number(o, after, "fork_noise_%s_after", f->key);
		json_set_number(o, spread, "fork_noise_%s_spread_pct", f->key);
	}
	json_set_number(o, spread_max, "fork_noise_spread_pct_max");
}

static void
report(const struct run *runs, uint64_t thp_start)
{
	json_t *o = json_object();
	const char *mode = opt.thp ? "thp" : "4k";
	double ps = MED(pause_snapd_us), pp = MED(pause_prearm_us);
	double pf = FORK_MED(offsetof(struct fork_sample, pause_us));
	double is = MED(idle_snapd_s), iz = MED(idle_zstd_s);
	double izf = MED(idle_zstd_fsync_s), idd = MED(idle_dd_s);
	double pks = MED(peak_snapd_mib), pkf = MED(peak_fork_mib);
	double bufmib = opt.buffer / 1048576.0;
	char *s;

	printf("memory: %.2f GiB %s, %s pages (AnonHugePages %" PRIu64 " MiB at "
	    "start, lowest %" PRIu64 " MiB, %u refills), %u runs, zstd "
	    "level %d, snapd buffer %.0f MiB\n", opt.size / 1073741824.0,
	    opt.shmem ? "shared memfd (fork shares it: no copy on write)" :
	    "private anonymous",
	    opt.thp ? "THP" : "4 KiB", thp_start >> 20,
	    (thp_min == UINT64_MAX ? 0 : thp_min) >> 20, thp_refills,
	    opt.runs, opt.level, bufmib);
	printf("data: every 4 KiB page is 2 KiB pseudo-random bytes and 2 KiB "
	    "text-like words; zstd -%d makes it %.0f%% of its size\n",
	    opt.level, 100.0 * MED(zstd_size_mib) * 1048576.0 / opt.size);
	printf("%-40s %12s %12s %8s\n", "measure (medians; fork: of both "
	    "samples)", "snapd", "alternative", "ratio");
	table_row("pause to arm, pre-armed, us", 0, pp, pf, ratio(pp, pf),
	    "(fork)");
	table_row("pause to arm, in one step, us", 0, ps, pf, ratio(ps, pf),
	    "(fork)");
	json_object_set_new(o, "size_gib", json_real(opt.size / 1073741824.0));
	json_object_set_new(o, "pages", json_string(mode));
	json_object_set_new(o, "memory", json_string(opt.shmem ? "shmem" :
	    "anon"));
	json_object_set_new(o, "runs", json_integer(opt.runs));
	json_object_set_new(o, "level", json_integer(opt.level));
	json_object_set_new(o, "buffer_mib", json_real(bufmib));
	json_object_set_new(o, "thp_mib_start", json_integer(thp_start >> 20));
	json_object_set_new(o, "thp_mib_min", json_integer(
	    (thp_min == UINT64_MAX ? 0 : thp_min) >> 20));
	json_object_set_new(o, "window_s", json_integer(opt.window));
	json_object_set_new(o, "pause_us", json_real(pp));
	json_object_set_new(o, "fork_pause_us", json_real(pf));
	json_object_set_new(o, "pause_ratio", json_real(ratio(pp, pf)));
	json_object_set_new(o, "pause_us_direct", json_real(ps));
	json_object_set_new(o, "pause_ratio_direct", json_real(ratio(ps, pf)));
	report_writer(o, runs, "random", offsetof(struct run, random_snapd),
	    offsetof(struct fork_sample, random));
	report_writer(o, runs, "sequential", offsetof(struct run, seq_snapd),
	    offsetof(struct fork_sample, seq));
	table_row("idle snapshot, s", 2, is, izf, ratio(is, izf),
	    "(zstd -T0 + fsync)");
	table_row("", 2, is, iz, ratio(is, iz), "(zstd -T0 alone)");
	table_row("", 2, is, idd, ratio(is, idd), "(dd conv=fsync)");
	table_row("peak extra memory, MiB", 1, pks, pkf, ratio(pks, pkf),
	    "(fork COW growth)");
	printf("%-40s %12.1f\n", "snapshot size on disk, MiB",
	    MED(snap_size_mib));
	report_noise(o, runs);

	json_object_set_new(o, "idle_s", json_real(is));
	json_object_set_new(o, "zstd_s", json_real(iz));
	json_object_set_new(o, "zstd_fsync_s", json_real(izf));
	json_object_set_new(o, "dd_s", json_real(idd));
	json_object_set_new(o, "idle_time_ratio_zstd",
	    json_real(ratio(is, izf)));
	json_object_set_new(o, "idle_time_ratio_zstd_nofsync",
	    json_real(ratio(is, iz)));
	json_object_set_new(o, "idle_time_ratio_dd", json_real(ratio(is, idd)));
	json_object_set_new(o, "snapshot_mib", json_real(MED(snap_size_mib)));
	json_object_set_new(o, "zstd_mib", json_real(MED(zstd_size_mib)));
	json_object_set_new(o, "peak_extra_mib", json_real(pks));
	json_object_set_new(o, "fork_peak_extra_mib", json_real(pkf));
	json_object_set_new(o, "memory_ratio", json_real(ratio(pks, pkf)));
	if ((s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6))) == NULL)
		die("cannot format the JSON report");
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* ---- options and main ---------------------------------------------- */

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: snapbench [--size BYTES] [--thp | --shmem] [--runs N] "
	    "[--level N]\n"
	    "\t[--buffer BYTES] [--socket PATH] [--tmpdir DIR] "
	    "[--window SECONDS]\n");
	exit(2);
}

static void
parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size",	required_argument, NULL, 's' },
		{ "thp",	no_argument,	   NULL, 'H' },
		{ "shmem",	no_argument,	   NULL, 'M' },
		{ "runs",	required_argument, NULL, 'r' },
		{ "level",	required_argument, NULL, 'l' },
		{ "buffer",	required_argument, NULL, 'b' },
		{ "socket",	required_argument, NULL, 'S' },
		{ "tmpdir",	required_argument, NULL, 'd' },
		{ "window",	required_argument, NULL, 'w' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned v;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &opt.size) == -1 ||
			    opt.size < HUGE_SIZE)
				die("--size %s: not a size of at least 2 MiB "
				    "(BYTES with K, M or G)", optarg);
			break;
		case 'H':
			opt.thp = 1;
			break;
		case 'M':
			opt.shmem = 1;
			break;
		case 'r':
			if (parse_uint(optarg, RUNS_MAX, &opt.runs) == -1 ||
			    opt.runs == 0)
				die("--runs %s: not in 1..%d", optarg,
				    RUNS_MAX);
			break;
		case 'l':
			if (parse_uint(optarg, 19, &v) == -1 || v == 0)
				die("--level %s: not in 1..19", optarg);
			opt.level = (int)v;
			break;
		case 'b':
			if (parse_size(optarg, &opt.buffer) == -1 ||
			    opt.buffer < PAGE_SIZE)
				die("--buffer %s: not a size of at least one "
				    "page", optarg);
			break;
		case 'S':
			opt.socket = optarg;
			break;
		case 'd':
			opt.tmpdir = optarg;
			break;
		case 'w':
			if (parse_uint(optarg, 86400, &opt.window) == -1)
				die("--window %s: not a number of seconds",
				    optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (opt.thp && opt.shmem)
		die("--thp and --shmem: huge pages of shared memory "
		    "(shmem_enabled) are not measured yet");
	/* Whole huge pages, so that the THP and 4 KiB runs match. */
	opt.size = opt.size / HUGE_SIZE * HUGE_SIZE;
	if (opt.runs == 0)
		opt.runs = opt.size < (1ull << 30) ? 5 : 3;
}

int
main(int argc, char **argv)
{
	struct run *runs;
	uint64_t i, j, thp_start;
	uint32_t tmp;
	unsigned r;

	parse_options(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	daemon_setup();

	textfill_init();
	memory_map();
	order_random = malloc(npages * sizeof(*order_random));
	stall_ns = malloc(npages * sizeof(*stall_ns));
	fault_ns = malloc(npages * sizeof(*fault_ns));
	runs = calloc(opt.runs, sizeof(*runs));
	if (order_random == NULL || stall_ns == NULL || fault_ns == NULL ||
	    runs == NULL)
		die("tables for %" PRIu64 " pages: %s", npages,
		    strerror(errno));
	/* Fisher-Yates with a fixed seed: the same order in every run. */
	for (i = 0; i < npages; i++)
		order_random[i] = (uint32_t)i;
	for (i = npages - 1; i > 0; i--) {
		j = mix64(i ^ 0xbe7c4) % (i + 1);
		tmp = order_random[i];
		order_random[i] = order_random[j];
		order_random[j] = tmp;
	}
	memset(stall_ns, 0, npages * sizeof(*stall_ns));
	memset(fault_ns, 0, npages * sizeof(*fault_ns));
	if ((pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) ==
	    -1)
		die("open /proc/self/pagemap: %s", strerror(errno));

	fprintf(stderr, "snapbench: filling %" PRIu64 " MiB (%s pages)\n",
	    opt.size >> 20, opt.thp ? "THP" : "4 KiB");
	memory_refill();
	thp_start = opt.thp ? thp_bytes() : 0;
	if (opt.thp && thp_start == 0)
		fprintf(stderr, "snapbench: warning: no transparent huge "
		    "page backs the memory (AnonHugePages 0): see "
		    "/sys/kernel/mm/transparent_hugepage/enabled\n");
	atexit(cleanup);
	image_write();

	for (r = 0; r < opt.runs; r++)
		run_once(&runs[r], r);
	report(runs, thp_start);
	snap_close(client);
	free(runs);
	return 0;
}
