/*
 * chainwork: a chain of incremental snapshots of a region that writer
 * threads keep changing, each proven to hold exactly the memory of its own
 * armed instant.
 *
 * Page i at version v holds page_fill(i, v) (version 0: all zero).  Writer
 * thread t owns the pages with i % threads == t and writes random pages of
 * the hot set (about --hot percent of the pages, the same set for the whole
 * run) as fast as it can: version[i]++, then the whole page.  For each link
 * k the main thread pauses every writer (each acknowledges between two
 * writes), copies version[] (the expected memory of link k), starts the
 * snapshot (link 0 full and tracked, link k an incremental one whose parent
 * is link k - 1), which returns once armed, and resumes the writers: they
 * write during the snapshot and between snapshots (--interval ms).
 *
 * --force-full holds each snapshot's writer (snapd's test hook) until a
 * fault has waited for a free buffer slot, so that every link is taken with
 * its buffer full; the report gives snapd's own buffer-full-waits per link.
 *
 * --event KIND happens once, after link --event-link completes and before
 * the next arms, with the writers paused, on --range FIRST:COUNT (by default
 * 512 pages from the middle, 2 MiB aligned):
 *   dontneed	MADV_DONTNEED (the pages read zero: version 0)
 *   munmap	munmap, then an anonymous mmap at the same place (zero)
 *   mremap	mremap away and back (the content moves with it)
 *   fork	a child writes its copy and exits; the parent writes the range
 *   thp-split	mprotect a page inside each huge page read-only and back,
 *		which splits it; then the parent writes the range
 * The next link must still be exact and say (snapd's "saved-whole") what
 * it saved whole and why.
 *
 * --refusals (with 3 links or more), once the chain is taken: what snapd
 * must refuse, each answer kept in the report under "refusals": an
 * incremental from a link that is not the newest ("not-newest"), "parent"
 * with "regions" ("with-regions"), deleting a link others depend on
 * ("delete-parent"), a full snapshot of the tracked memory ("full-while-
 * tracked"), and, once tracking is cancelled, an incremental from the last
 * link ("after-cancel").
 *
 * At the end every link's file is restored through libsnapclient (which
 * follows the chain to its base) and every page compared with what the
 * workload recorded; with --lazy, each link is also restored lazily
 * (snap_file_restore_lazy(): pages filled on first touch from the chain)
 * and read in a random order, with the sweep running, and compared again; prints one JSON object with the figures.  Exit 0 when
 * every link is exact, 1 otherwise.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE		4096ULL
#define HUGE		(2ULL << 20)
#define LINKS_MAX	64

struct opts {
	uint64_t	 size;
	unsigned	 links, threads, hot, interval_ms, event_link;
	uint64_t	 buffer;
	int		 force_full, thp, refusals, lazy;
	const char	*event, *name, *socket;
	uint64_t	 range_first, range_count;
};

static struct opts	 opt = { .size = 64ULL << 20, .links = 5, .threads = 2,
			    .hot = 10, .interval_ms = 200, .event_link = 1,
			    .buffer = 64 << 10, .name = "chain" };
static uint8_t		*mem;
static uint64_t		 npages;
static uint32_t		*version;
static uint8_t		*hot;
static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cond = PTHREAD_COND_INITIALIZER;
static int		 paused = 1, quit;
static unsigned		 acked;
static _Atomic uint64_t	 writes;

static void
page_fill(uint64_t i, uint32_t v, uint64_t *p)
{
	for (unsigned j = 0; j < PAGE / 8; j++)
		p[j] = v == 0 ? 0 : mix64(i << 24 ^ (uint64_t)v << 10 ^ j) | 1;
}

/* Between two writes: stop here while paused (acknowledged once). */
static void
writer_pause_point(void)
{
	pthread_mutex_lock(&lock);
	if (paused) {
		acked++;
		pthread_cond_broadcast(&cond);
		while (paused && !quit)
			pthread_cond_wait(&cond, &lock);
	}
	pthread_mutex_unlock(&lock);
}

static void *
writer_main(void *arg)
{
	unsigned	t = (unsigned)(uintptr_t)arg;
	uint64_t	seed = mix64(t + 1), mine = (npages + opt.threads - 1 -
			    t) / opt.threads;

	while (!quit) {
		uint64_t i;

		writer_pause_point();
		seed = mix64(seed);
		i = (seed % mine) * opt.threads + t;
		if (i >= npages || !hot[i])
			continue;
		version[i]++;
		page_fill(i, version[i], (uint64_t *)(mem + i * PAGE));
		atomic_fetch_add_explicit(&writes, 1, memory_order_relaxed);
	}
	return NULL;
}

static void
pause_writers(void)
{
	pthread_mutex_lock(&lock);
	if (!paused) {
		paused = 1;
		acked = 0;
	}
	while (acked < opt.threads)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void
resume_writers(void)
{
	pthread_mutex_lock(&lock);
	paused = 0;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/* Write every page of the range once more (the main thread, paused). */
static void
write_range(void)
{
	for (uint64_t i = opt.range_first; i < opt.range_first +
	    opt.range_count; i++) {
		version[i]++;
		page_fill(i, version[i], (uint64_t *)(mem + i * PAGE));
	}
}

static void
event_run(void)
{
	uint8_t		*r = mem + opt.range_first * PAGE;
	size_t		 len = opt.range_count * PAGE;
	const char	*e = opt.event;

	if (strcmp(e, "dontneed") == 0) {
		if (madvise(r, len, MADV_DONTNEED) == -1)
			die("madvise DONTNEED: %s", strerror(errno));
		memset(version + opt.range_first, 0, opt.range_count *
		    sizeof(*version));
	} else if (strcmp(e, "munmap") == 0) {
		if (munmap(r, len) == -1 || mmap(r, len, PROT_READ |
		    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
		    0) == MAP_FAILED)
			die("munmap and map again: %s", strerror(errno));
		if (opt.thp)
			(void)madvise(r, len, MADV_HUGEPAGE);
		memset(version + opt.range_first, 0, opt.range_count *
		    sizeof(*version));
	} else if (strcmp(e, "mremap") == 0) {
		void *tmp = mmap(NULL, len, PROT_NONE, MAP_PRIVATE |
		    MAP_ANONYMOUS, -1, 0);

		if (tmp == MAP_FAILED || mremap(r, len, len, MREMAP_MAYMOVE |
		    MREMAP_FIXED, tmp) == MAP_FAILED || mremap(tmp, len, len,
		    MREMAP_MAYMOVE | MREMAP_FIXED, r) == MAP_FAILED)
			die("mremap away and back: %s", strerror(errno));
	} else if (strcmp(e, "fork") == 0) {
		pid_t	pid = fork();
		int	status;

		if (pid == -1)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			memset(r, 0x5a, len);	/* its own copy */
			_exit(0);
		}
		write_range();
		if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die("the child did not exit cleanly");
	} else if (strcmp(e, "thp-split") == 0) {
		for (uint64_t off = PAGE; off < len; off += HUGE)
			if (mprotect(r + off, PAGE, PROT_READ) == -1 ||
			    mprotect(r + off, PAGE, PROT_READ | PROT_WRITE) ==
			    -1)
				die("mprotect: %s", strerror(errno));
		write_range();
	} else
		die("--event %s: not dontneed, munmap, mremap, fork or "
		    "thp-split", e);
}

/* The "chain" object of snapshot id in query-snapshots (new ref), or NULL. */
static json_t *
query_chain(struct snap_client *c, uint64_t id)
{
	char	*line = snap_command(c, "{\"execute\":\"query-snapshots\"}");
	json_t	*reply, *list, *s, *chain = NULL;
	size_t	 k;

	if (line == NULL)
		die("query-snapshots: %s", snap_strerror(c));
	reply = json_loads(line, 0, NULL);
	free(line);
	list = json_object_get(reply, "return");
	json_array_foreach(list, k, s)
		if (json_integer_value(json_object_get(s, "id")) ==
		    (json_int_t)id)
			chain = json_incref(json_object_get(s, "chain"));
	json_decref(reply);
	return chain;
}

/* Send cmd; the reply's error "desc" (the class first), or "ok". */
static json_t *
refusal(struct snap_client *c, const char *cmd)
{
	char	*line = snap_command(c, cmd);
	json_t	*reply, *err, *out;

	if (line == NULL)
		die("%s: %s", cmd, snap_strerror(c));
	reply = json_loads(line, 0, NULL);
	free(line);
	if ((err = json_object_get(reply, "error")) == NULL)
		out = json_string("accepted");
	else
		out = json_sprintf("%s: %s", json_string_value(json_object_get(
		    err, "class")), json_string_value(json_object_get(err,
		    "desc")));
	json_decref(reply);
	return out;
}

static json_t *
refusals_run(struct snap_client *c, const struct snap_region *region,
    const uint64_t *ids)
{
	json_t			*r = json_object();
	char			 cmd[512];
	struct snap_options	 o = { .name = "refused" };
	uint64_t		 id;

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"snapshot-start\","
	    "\"arguments\":{\"parent\":%llu}}",
	    (unsigned long long)ids[opt.links - 2]);
	json_object_set_new(r, "not-newest", refusal(c, cmd));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"snapshot-start\","
	    "\"arguments\":{\"parent\":%llu,\"regions\":[{\"start\":"
	    "4096,\"length\":4096}]}}", (unsigned long long)ids[opt.links - 1]);
	json_object_set_new(r, "with-regions", refusal(c, cmd));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"snapshot-delete\","
	    "\"arguments\":{\"name\":\"%s-0\"}}", opt.name);
	json_object_set_new(r, "delete-parent", refusal(c, cmd));
	if (snap_start(c, region, 1, &o, &id) == 0)
		json_object_set_new(r, "full-while-tracked",
		    json_string("accepted"));
	else
		json_object_set_new(r, "full-while-tracked",
		    json_string(snap_strerror(c)));
	if (snap_cancel(c, ids[opt.links - 1]) == -1)
		die("end tracking: %s", snap_strerror(c));
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"snapshot-start\","
	    "\"arguments\":{\"parent\":%llu}}",
	    (unsigned long long)ids[opt.links - 1]);
	json_object_set_new(r, "after-cancel", refusal(c, cmd));
	return r;
}

static void
usage(void)
{
	fprintf(stderr, "usage: chainwork [--size BYTES] [--links N] "
	    "[--threads N] [--hot PERCENT]\n"
	    "\t[--buffer BYTES] [--force-full] [--interval MS] [--thp] "
	    "[--refusals] [--lazy]\n"
	    "\t[--event dontneed|munmap|mremap|fork|thp-split "
	    "[--event-link K] [--range FIRST:COUNT]]\n"
	    "\t[--name PREFIX] [--socket PATH]\n");
	exit(2);
}

static void
parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "links", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "hot", required_argument, NULL, 'h' },
		{ "buffer", required_argument, NULL, 'b' },
		{ "force-full", no_argument, NULL, 'f' },
		{ "refusals", no_argument, NULL, 'R' },
		{ "lazy", no_argument, NULL, 'L' },
		{ "interval", required_argument, NULL, 'i' },
		{ "thp", no_argument, NULL, 'T' },
		{ "event", required_argument, NULL, 'e' },
		{ "event-link", required_argument, NULL, 'k' },
		{ "range", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long long	a, b;
	int			ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &opt.size) == -1 ||
			    opt.size % HUGE != 0 || opt.size == 0)
				die("--size %s: not a multiple of 2 MiB", optarg);
			break;
		case 'l':
			if (parse_uint(optarg, LINKS_MAX, &opt.links) == -1 ||
			    opt.links < 2)
				die("--links %s: not in 2..%d", optarg, LINKS_MAX);
			break;
		case 't':
			if (parse_uint(optarg, 64, &opt.threads) == -1 ||
			    opt.threads == 0)
				die("--threads %s: not in 1..64", optarg);
			break;
		case 'h':
			if (parse_uint(optarg, 100, &opt.hot) == -1 ||
			    opt.hot == 0)
				die("--hot %s: not in 1..100", optarg);
			break;
		case 'b':
			if (parse_size(optarg, &opt.buffer) == -1)
				die("--buffer %s: not a size", optarg);
			break;
		case 'f': opt.force_full = 1; break;
		case 'R': opt.refusals = 1; break;
		case 'L': opt.lazy = 1; break;
		case 'i':
			if (parse_uint(optarg, 600000, &opt.interval_ms) == -1)
				die("--interval %s: not a number of ms", optarg);
			break;
		case 'T': opt.thp = 1; break;
		case 'e': opt.event = optarg; break;
		case 'k':
			if (parse_uint(optarg, LINKS_MAX, &opt.event_link) == -1)
				die("--event-link %s: not a link", optarg);
			break;
		case 'r':
			if (sscanf(optarg, "%llu:%llu", &a, &b) != 2 || b == 0)
				die("--range %s: not FIRST:COUNT", optarg);
			opt.range_first = a;
			opt.range_count = b;
			break;
		case 'n': opt.name = optarg; break;
		case 'S': opt.socket = optarg; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	npages = opt.size / PAGE;
	if (opt.range_count == 0) {
		opt.range_first = npages / 2 / 512 * 512;
		opt.range_count = 512 < npages - opt.range_first ? 512 :
		    npages - opt.range_first;
	}
	if (opt.range_first + opt.range_count > npages ||
	    (opt.event != NULL && opt.event_link + 1 >= opt.links))
		die("--range beyond the region, or --event-link not before "
		    "the last link");
	if (opt.event != NULL && (opt.range_first * PAGE % HUGE != 0 ||
	    opt.range_count * PAGE % HUGE != 0) &&
	    strcmp(opt.event, "thp-split") == 0)
		die("--event thp-split wants a range of whole huge pages");
}

/* Restore link k and count the pages that differ from what was recorded. */
static uint64_t
verify_link(const char *file, const uint32_t *expect, uint64_t *lost)
{
	struct snap_file	*f = snap_file_open(file);
	uint8_t			*buf;
	uint64_t		 wrong = 0, want[PAGE / 8];

	if (f == NULL)
		die("open %s: %s", file, snap_strerror(NULL));
	if (snap_file_verify(f) == -1)
		die("verify %s: %s", file, snap_strerror(NULL));
	buf = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	memset(buf, 0xee, opt.size);	/* no version of any page */
	if (snap_file_restore(f, 0, buf, opt.size, lost) == -1)
		die("restore %s: %s", file, snap_strerror(NULL));
	for (uint64_t i = 0; i < npages; i++) {
		page_fill(i, expect[i], want);
		if (memcmp(buf + i * PAGE, want, PAGE) != 0) {
			if (wrong < 5)
				fprintf(stderr, "chainwork: %s: page %llu "
				    "differs from version %u\n", file,
				    (unsigned long long)i, expect[i]);
			wrong++;
		}
	}
	munmap(buf, opt.size);
	snap_file_close(f);
	return wrong;
}

/*
 * Restore link k lazily and read its pages in a random order while the
 * sweep runs; the pages that differ, and the handler's figures in o.
 */
static uint64_t
verify_link_lazy(const char *file, const uint32_t *expect, json_t *o)
{
	struct snap_file	*f = snap_file_open(file);
	struct snap_lazy	*l;
	struct snap_lazy_stats	 st;
	const uint8_t		*mem_l;
	uint64_t		 wrong = 0, want[PAGE / 8], t0 = now_ns(), first;
	uint64_t		 step = mix64(npages) % npages | 1;

	while (npages % step == 0 && step > 1)
		step += 2;	/* coprime with npages: every page once */
	if (f == NULL || (l = snap_file_restore_lazy(f, 0, NULL, 0, 0)) == NULL)
		die("lazy restore %s: %s", file, snap_strerror(NULL));
	mem_l = snap_lazy_addr(l);
	first = 0;
	for (uint64_t n = 0, i = mix64(t0) % npages; n < npages; n++,
	    i = (i + step) % npages) {
		page_fill(i, expect[i], want);
		if (memcmp(mem_l + i * PAGE, want, PAGE) != 0) {
			if (wrong < 5)
				fprintf(stderr, "chainwork: %s (lazy): page %llu "
				    "differs from version %u\n", file,
				    (unsigned long long)i, expect[i]);
			wrong++;
		}
		if (n == 0)
			first = now_ns() - t0;
	}
	if (snap_lazy_close(l, &st) == -1)
		die("lazy restore %s: close: %s", file, snap_strerror(NULL));
	munmap((void *)mem_l, opt.size);
	snap_file_close(f);
	json_object_set_new(o, "lazy-first-us", json_integer((json_int_t)
	    (first / 1000)));
	json_object_set_new(o, "lazy-wrong-pages", json_integer((json_int_t)
	    wrong));
	json_object_set_new(o, "lazy-pages-faulted", json_integer((json_int_t)
	    st.pages_faulted));
	json_object_set_new(o, "lazy-pages-swept", json_integer((json_int_t)
	    st.pages_swept));
	json_object_set_new(o, "lazy-complete", json_boolean(st.complete &&
	    !st.failed));
	return wrong + (!st.complete || st.failed);
}

int
main(int argc, char **argv)
{
	struct snap_client	*c;
	struct snap_region	 region;
	struct snap_result	 res[LINKS_MAX];
	json_t			*report = json_object(), *links = json_array();
	pthread_t		 th[64];
	uint32_t		*expect[LINKS_MAX];
	uint64_t		 ids[LINKS_MAX], total_wrong = 0;
	char			 name[SNAP_NAME_MAX];
	uint8_t			*raw;
	int			 ok = 1;

	parse(argc, argv);
	raw = mmap(NULL, opt.size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap %llu bytes: %s", (unsigned long long)opt.size,
		    strerror(errno));
	mem = (uint8_t *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	if (madvise(mem, opt.size, opt.thp ? MADV_HUGEPAGE :
	    MADV_NOHUGEPAGE) == -1)
		die("madvise: %s", strerror(errno));
	version = calloc(npages, sizeof(*version));
	hot = calloc(npages, 1);
	if (version == NULL || hot == NULL)
		die("out of memory");
	for (uint64_t i = 0; i < npages; i++) {
		hot[i] = mix64(i ^ 0x5eed) % 100 < opt.hot;
		version[i] = 1;
		page_fill(i, 1, (uint64_t *)(mem + i * PAGE));
	}
	if ((c = snap_connect(opt.socket)) == NULL)
		die("connect: %s", snap_strerror(NULL));
	region = (struct snap_region){ (uint64_t)(uintptr_t)mem, opt.size,
	    "heap" };
	for (unsigned t = 0; t < opt.threads; t++)
		if (pthread_create(&th[t], NULL, writer_main,
		    (void *)(uintptr_t)t) != 0)
			die("pthread_create");

	for (unsigned k = 0; k < opt.links; k++) {
		struct snap_options	o = { .name = name,
					    .buffer_size = opt.buffer };
		json_t			*l, *chain;
		uint64_t		 w0;
		int			 rc;

		snprintf(name, sizeof(name), "%s-%u", opt.name, k);
		if (opt.force_full)
			o.test_hold = "{\"until\":\"buffer-full\","
			    "\"at\":\"armed\"}";
		pause_writers();
		if ((expect[k] = malloc(npages * sizeof(*version))) == NULL)
			die("out of memory");
		memcpy(expect[k], version, npages * sizeof(*version));
		rc = k == 0 ? snap_start_tracked(c, &region, 1, &o, &ids[k]) :
		    snap_start_incremental(c, ids[k - 1], &o, &ids[k]);
		if (rc == -1)
			die("link %u: %s", k, snap_strerror(c));
		w0 = atomic_load(&writes);
		resume_writers();
		if (snap_wait(c, ids[k], &res[k], -1) == -1)
			die("link %u: wait: %s", k, snap_strerror(c));
		if (!res[k].completed)
			die("link %u failed: %s", k, res[k].error);
		chain = query_chain(c, ids[k]);
		l = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o*}",
		    "id", (json_int_t)ids[k], "file", res[k].file,
		    "bytes", (json_int_t)res[k].size,
		    "pages-faulted", (json_int_t)res[k].pages_faulted,
		    "buffer-full-waits", (json_int_t)res[k].buffer_full_waits,
		    "arm-us", (json_int_t)res[k].arm_us,
		    "duration-us", (json_int_t)res[k].duration_us,
		    "writes-during", (json_int_t)(atomic_load(&writes) - w0),
		    "chain", chain);
		json_array_append_new(links, l);
		usleep(opt.interval_ms * 1000);
		if (opt.event != NULL && k == opt.event_link) {
			pause_writers();
			event_run();
			resume_writers();
			usleep(opt.interval_ms * 1000);
		}
	}
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (unsigned t = 0; t < opt.threads; t++)
		pthread_join(th[t], NULL);
	/* End tracking: the last link's tracker would outlive us otherwise. */
	if (opt.refusals)
		json_object_set_new(report, "refusals", refusals_run(c, &region,
		    ids));
	else if (snap_cancel(c, ids[opt.links - 1]) == -1)
		die("end tracking: %s", snap_strerror(c));

	for (unsigned k = 0; k < opt.links; k++) {
		uint64_t	lost = 0, wrong = verify_link(res[k].file,
				    expect[k], &lost);
		json_t		*l = json_array_get(links, k);

		json_object_set_new(l, "wrong-pages", json_integer((json_int_t)
		    wrong));
		json_object_set_new(l, "lost-pages", json_integer((json_int_t)
		    lost));
		if (opt.lazy)
			wrong += verify_link_lazy(res[k].file, expect[k], l);
		total_wrong += wrong;
		ok &= wrong == 0 && lost == 0;
		free(expect[k]);
	}
	json_object_set_new(report, "links", links);
	json_object_set_new(report, "pages", json_integer((json_int_t)npages));
	json_object_set_new(report, "wrong-pages",
	    json_integer((json_int_t)total_wrong));
	json_object_set_new(report, "exact", json_boolean(ok));
	json_dumpf(report, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(report);
	snap_close(c);
	return ok ? 0 : 1;
}
