/*
 * incrbench: what an incremental snapshot costs against the full one it
 * follows, and what tracking costs the application between snapshots,
 * measured in one process on the same memory (`make bench-incr`, and the
 * last section of `make bench`).
 *
 * One run, on a region of --size bytes of 4 KiB pages (MADV_NOHUGEPAGE),
 * every page written with half-compressible data first:
 *   1. for each dirty fraction F (--dirty, percent; default 1 and 10), a
 *	writer thread rewrites random pages of a set of F of the pages (every
 *	page of the set once first, in random order) for --window seconds,
 *	with nothing tracking: writes a second "off";
 *   2. a full snapshot with tracking (snap_start_tracked): its pause (the
 *	call's wall time, the writer stopped), time (armed to done) and file
 *	size;
 *   3. for each F, in turn: the same writer on the set of F for --window
 *	seconds while snapd tracks (writes a second "on"; the first write to
 *	each page of the set is a round trip to snapd), then an incremental
 *	snapshot of the chain: pause, time, size;
 *   4. one more incremental with nothing written since: the fixed cost.
 * The pages written are single pages spread over the region (the worst
 * case: nearly every 2 MiB of it holds one), or with --clustered runs of
 * 64 (256 KiB), as a VM's guest or an allocator's arenas write.
 * Prints one JSON object a run; tests/bench-incr.sh takes medians.
 */
#include <sys/mman.h>

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
#define FRACTIONS_MAX	4

#define CLUSTER_PAGES	64	/* --clustered: 256 KiB runs */

static uint64_t		 size = 4ULL << 30, npages;
static int		 clustered;
static unsigned		 window_s = 5, nfrac = 0, fractions[FRACTIONS_MAX];
static const char	*socket_path, *prefix = "incrbench";
static uint8_t		*mem;

struct writer {
	pthread_t	 thread;
	uint64_t	*set;		/* the pages it writes */
	uint64_t	 nset;
	_Atomic int	 stop;
	uint64_t	 writes;	/* after the join */
};

static void
page_write(uint64_t i, uint64_t v)
{
	uint64_t *p = (uint64_t *)(mem + i * PAGE);

	/* Half random, half a pattern: about 2:1 under zstd. */
	for (unsigned j = 0; j < PAGE / 16; j++)
		p[j] = mix64(i << 20 ^ v << 9 ^ j);
	for (unsigned j = PAGE / 16; j < PAGE / 8; j++)
		p[j] = i + j;
}

static void *
writer_main(void *arg)
{
	struct writer	*w = arg;
	uint64_t	 seed = mix64(w->nset), n = 0;

	/* Every page of the set once, then random ones, until told. */
	for (uint64_t k = 0; k < w->nset && !atomic_load(&w->stop); k++, n++)
		((uint64_t *)(mem + w->set[k] * PAGE))[n % (PAGE / 8)] = n;
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		seed = mix64(seed);
		((uint64_t *)(mem + w->set[seed % w->nset] * PAGE))[seed % 512] =
		    n++;
	}
	w->writes = n;
	return NULL;
}

/*
 * A random set of pct percent of the pages, in random order: single pages
 * spread over the region, or with --clustered runs of CLUSTER_PAGES.
 */
static uint64_t *
make_set(unsigned pct, uint64_t run, uint64_t *nset)
{
	uint64_t unit = clustered ? CLUSTER_PAGES : 1, units = npages / unit;
	uint64_t nu = units * pct / 100, n = nu * unit;
	uint64_t *set = malloc(n * sizeof(*set));

	if (set == NULL)
		die("out of memory");
	for (uint64_t k = 0; k < nu; k++) {
		uint64_t u = k * (100 / pct) + mix64(k ^ run) % (100 / pct);

		for (uint64_t j = 0; j < unit; j++)
			set[k * unit + j] = u * unit + j;
	}
	for (uint64_t k = n - 1; k > 0; k--) {
		uint64_t j = mix64(k + run * 7919) % (k + 1), t = set[k];

		set[k] = set[j];
		set[j] = t;
	}
	*nset = n;
	return set;
}

/* Writes a second of a writer on set for the window. */
static double
write_window(uint64_t *set, uint64_t nset)
{
	struct writer	w = { .set = set, .nset = nset };
	uint64_t	t0 = now_ns();

	if (pthread_create(&w.thread, NULL, writer_main, &w) != 0)
		die("pthread_create");
	usleep(window_s * 1000000);
	atomic_store(&w.stop, 1);
	pthread_join(w.thread, NULL);
	return (double)w.writes * 1e9 / (double)(now_ns() - t0);
}

/* Take a snapshot (parent 0: full and tracked); its figures into o. */
static uint64_t
snap(struct snap_client *c, uint64_t parent, const char *name, json_t *o)
{
	struct snap_region	r = { (uint64_t)(uintptr_t)mem, size, "heap" };
	struct snap_options	opts = { .name = name };
	struct snap_result	res;
	uint64_t		id, t0 = now_ns(), pause;
	int			rc;

	rc = parent == 0 ? snap_start_tracked(c, &r, 1, &opts, &id) :
	    snap_start_incremental(c, parent, &opts, &id);
	pause = now_ns() - t0;
	if (rc == -1)
		die("%s: %s", name, snap_strerror(c));
	if (snap_wait(c, id, &res, -1) == -1 || !res.completed)
		die("%s: %s", name, rc == -1 ? snap_strerror(c) : res.error);
	json_object_set_new(o, "pause-us", json_integer((json_int_t)(pause /
	    1000)));
	json_object_set_new(o, "arm-us", json_integer((json_int_t)res.arm_us));
	json_object_set_new(o, "time-us",
	    json_integer((json_int_t)res.duration_us));
	json_object_set_new(o, "bytes", json_integer((json_int_t)res.size));
	return id;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "dirty", required_argument, NULL, 'd' },
		{ "window", required_argument, NULL, 'w' },
		{ "run", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "clustered", no_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 }
	};
	struct snap_client	*c;
	json_t			*out = json_object(), *o;
	uint64_t		*set[FRACTIONS_MAX], nset[FRACTIONS_MAX], id;
	unsigned		 run = 0, pct;
	char			 name[SNAP_NAME_MAX];
	int			 ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &size) == -1 || size % (2 << 20))
				die("--size %s: not a multiple of 2 MiB", optarg);
			break;
		case 'd':
			if (nfrac == FRACTIONS_MAX || parse_uint(optarg, 50,
			    &pct) == -1 || pct == 0)
				die("--dirty %s: not 1..50 (at most %d)", optarg,
				    FRACTIONS_MAX);
			fractions[nfrac++] = pct;
			break;
		case 'w':
			if (parse_uint(optarg, 600, &window_s) == -1 ||
			    window_s == 0)
				die("--window %s: not 1..600 seconds", optarg);
			break;
		case 'r':
			if (parse_uint(optarg, 1000, &run) == -1)
				die("--run %s: not a number", optarg);
			break;
		case 'n': prefix = optarg; break;
		case 'c': clustered = 1; break;
		case 'S': socket_path = optarg; break;
		default:
			fprintf(stderr, "usage: incrbench [--size BYTES] "
			    "[--dirty PERCENT]... [--window SECONDS] [--run N] "
			    "[--clustered] "
			    "[--name PREFIX] [--socket PATH]\n");
			return 2;
		}
	}
	if (nfrac == 0) {
		fractions[nfrac++] = 1;
		fractions[nfrac++] = 10;
	}
	npages = size / PAGE;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || madvise(mem, size, MADV_NOHUGEPAGE) == -1)
		die("mmap %llu bytes: %s", (unsigned long long)size,
		    strerror(errno));
	for (uint64_t i = 0; i < npages; i++)
		page_write(i, 1);
	if ((c = snap_connect(socket_path)) == NULL)
		die("connect: %s", snap_strerror(NULL));
	json_object_set_new(out, "size", json_integer((json_int_t)size));
	json_object_set_new(out, "window-s", json_integer(window_s));
	json_object_set_new(out, "shape", json_string(clustered ? "clustered" :
	    "scattered"));

	for (unsigned k = 0; k < nfrac; k++) {
		set[k] = make_set(fractions[k], run * 16 + k, &nset[k]);
		snprintf(name, sizeof(name), "off-%u", fractions[k]);
		json_object_set_new(out, name, json_real(write_window(set[k],
		    nset[k])));
	}
	o = json_object();
	snprintf(name, sizeof(name), "%s-%u-full", prefix, run);
	id = snap(c, 0, name, o);
	json_object_set_new(out, "full", o);
	for (unsigned k = 0; k < nfrac; k++) {
		char key[32];

		o = json_object();
		json_object_set_new(o, "writes-on", json_real(write_window(set[k],
		    nset[k])));
		json_object_set_new(o, "pages-written",
		    json_integer((json_int_t)nset[k]));
		snprintf(name, sizeof(name), "%s-%u-d%u", prefix, run,
		    fractions[k]);
		id = snap(c, id, name, o);
		snprintf(key, sizeof(key), "incr-%u", fractions[k]);
		json_object_set_new(out, key, o);
		free(set[k]);
	}
	o = json_object();
	snprintf(name, sizeof(name), "%s-%u-none", prefix, run);
	id = snap(c, id, name, o);
	json_object_set_new(out, "incr-none", o);
	if (snap_cancel(c, id) == -1)
		die("end tracking: %s", snap_strerror(c));
	json_dumpf(out, stdout, JSON_COMPACT);
	putchar('\n');
	json_decref(out);
	snap_close(c);
	return 0;
}
