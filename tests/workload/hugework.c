/*
 * hugework: a snapshot of transparent huge pages keeps them huge, and is
 * exact.
 *
 *	hugework --socket PATH [--size BYTES] [--writes idle|sequential|random]
 *	    [--prearm]
 *
 * Maps --size bytes (default 64 MiB) 2 MiB-aligned with MADV_HUGEPAGE and
 * fills every 4 KiB page with bytes that are a function of its index.  It
 * exits 77 (skip) when the kernel gives it less than half of that as huge
 * pages (THP "never", or memory too fragmented).  Then one snapshot:
 *
 *   idle	nothing is written while it runs.
 *   sequential	snapd's writer is held at the armed instant (test hook
 *		"until": "release"), so that every write meets a protected
 *		page: the main thread writes one word into every page in
 *		address order, then releases the writer.
 *   random	the same, but one word into every page in a random order.
 *   --prearm	pre-armed first; the main thread writes one word into every
 *		page in a random order while pre-armed (each first write let
 *		through by snapd), then arms; the snapshot then runs idle.
 *
 * Afterwards the snapshot is restored into fresh memory and every page is
 * compared with its content at the armed instant (the fill, or the fill
 * plus the pre-armed writes), and the mapping's AnonHugePages is read
 * again.  The last line is one JSON object: pages, wrong (pages that
 * differ), lost, thp-before-kb, thp-after-kb, pages-faulted, and snapd's
 * huge-faulted and huge-swept for the snapshot (from query-snapshots).
 * Exit 0 when it ran (the caller judges the figures), 1 on failure.
 */
#include <sys/mman.h>

#include <inttypes.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE_SIZE	4096u
#define HUGE_SIZE	(2u << 20)
#define SKIP		77

enum writes { W_IDLE, W_SEQUENTIAL, W_RANDOM };

static struct {
	uint64_t	 size;
	enum writes	 writes;
	int		 prearm;
	const char	*socket;
} opt = { .size = 64u << 20 };

static uint8_t	*mem;
static uint64_t	 npages;

/* The fill: 512 words per page, each a function of page and word. */
static void
page_fill(uint8_t *p, uint64_t i)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned k = 0; k < PAGE_SIZE / 8; k++)
		w[k] = mix64(i * 4096 + k);
}

/* The word a write puts at the start of page i. */
static uint64_t
write_word(uint64_t i)
{
	return mix64(~i);
}

/* AnonHugePages of the mapping at mem, in kB (from /proc/self/smaps). */
static long
thp_kb(void)
{
	char	 line[256], head[64];
	FILE	*f = fopen("/proc/self/smaps", "r");
	long	 kb = -1;
	int	 in = 0;

	if (f == NULL)
		die("open /proc/self/smaps: %m");
	snprintf(head, sizeof(head), "%" PRIxPTR "-", (uintptr_t)mem);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, head, strlen(head)) == 0)
			in = 1;
		else if (in && strncmp(line, "AnonHugePages:", 14) == 0) {
			kb = atol(line + 14);
			break;
		}
	}
	fclose(f);
	if (kb < 0)
		die("no AnonHugePages for the mapping at %p in "
		    "/proc/self/smaps", (void *)mem);
	return kb;
}

/* A random permutation of the pages (fixed seed). */
static uint32_t *
permutation(void)
{
	uint32_t *order = malloc(npages * sizeof(*order));

	if (order == NULL)
		die("out of memory");
	for (uint64_t i = 0; i < npages; i++)
		order[i] = (uint32_t)i;
	for (uint64_t i = npages - 1; i > 0; i--) {
		uint64_t j = mix64(i) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	return order;
}

/* Write one word into every page, in address or random order. */
static void
write_all(int random)
{
	uint32_t *order = random ? permutation() : NULL;

	for (uint64_t k = 0; k < npages; k++) {
		uint64_t i = order != NULL ? order[k] : k;

		*(volatile uint64_t *)(mem + i * PAGE_SIZE) = write_word(i);
	}
	free(order);
}

/* snapd's figure `key` of snapshot id, from query-snapshots. */
static long long
snapshot_figure(struct snap_client *c, uint64_t id, const char *key)
{
	char		*reply = snap_command(c,
			    "{\"execute\": \"query-snapshots\"}");
	json_t		*j, *list, *e;
	json_error_t	 err;
	long long	 v = -1;
	size_t		 i;

	if (reply == NULL)
		die("query-snapshots: %s", snap_strerror(c));
	if ((j = json_loads(reply, 0, &err)) == NULL)
		die("query-snapshots: not JSON: %s", err.text);
	list = json_object_get(j, "return");
	json_array_foreach(list, i, e)
		if (json_integer_value(json_object_get(e, "id")) ==
		    (json_int_t)id && json_is_integer(json_object_get(e, key)))
			v = json_integer_value(json_object_get(e, key));
	json_decref(j);
	free(reply);
	if (v < 0)
		die("query-snapshots: snapshot %" PRIu64 " has no %s", id, key);
	return v;
}

static void
usage(void)
{
	fprintf(stderr, "usage: hugework --socket PATH [--size BYTES] "
	    "[--writes idle|sequential|random] [--prearm]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket",	required_argument, NULL, 'S' },
		{ "size",	required_argument, NULL, 's' },
		{ "writes",	required_argument, NULL, 'w' },
		{ "prearm",	no_argument,	   NULL, 'P' },
		{ NULL, 0, NULL, 0 }
	};
	struct snap_options	 so = { .format = "raw" };
	struct snap_region	 region;
	struct snap_result	 res;
	struct snap_client	*c;
	uint8_t			*copy, *want;
	uint64_t		 id, wrong = 0, lost = 0;
	long			 before, after;
	int			 ch;
	char			 cmd[128], *reply;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			opt.socket = optarg;
			break;
		case 's':
			if (parse_size(optarg, &opt.size) != 0 ||
			    opt.size < 4 * HUGE_SIZE || opt.size % HUGE_SIZE)
				die("--size %s: not a multiple of 2 MiB of at "
				    "least 8 MiB", optarg);
			break;
		case 'w':
			if (strcmp(optarg, "idle") == 0)
				opt.writes = W_IDLE;
			else if (strcmp(optarg, "sequential") == 0)
				opt.writes = W_SEQUENTIAL;
			else if (strcmp(optarg, "random") == 0)
				opt.writes = W_RANDOM;
			else
				usage();
			break;
		case 'P':
			opt.prearm = 1;
			break;
		default:
			usage();
		}
	}
	if (opt.socket == NULL || optind != argc)
		usage();
	if (opt.prearm && opt.writes != W_IDLE)
		die("--prearm writes while pre-armed; give no --writes");
	npages = opt.size / PAGE_SIZE;

	mem = mmap(NULL, opt.size + HUGE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %m", opt.size);
	mem = (uint8_t *)(((uintptr_t)mem + HUGE_SIZE - 1) &
	    ~(uintptr_t)(HUGE_SIZE - 1));
	if (madvise(mem, opt.size, MADV_HUGEPAGE) == -1)
		die("madvise MADV_HUGEPAGE: %m");
	for (uint64_t i = 0; i < npages; i++)
		page_fill(mem + i * PAGE_SIZE, i);
	before = thp_kb();
	if ((uint64_t)before * 1024 * 2 < opt.size) {
		printf("skip: the kernel gave %ld kB of %" PRIu64 " kB as "
		    "huge pages\n", before, opt.size / 1024);
		return SKIP;
	}

	if ((c = snap_connect(opt.socket)) == NULL)
		die("connect %s: %s", opt.socket, snap_strerror(NULL));
	region = (struct snap_region){ (uintptr_t)mem, opt.size, "huge" };
	so.prearm = opt.prearm;
	if (opt.writes != W_IDLE)
		so.test_hold = "{\"until\": \"release\"}";
	if (snap_start(c, &region, 1, &so, &id) == -1)
		die("snapshot-start: %s", snap_strerror(c));
	if (opt.prearm) {
		write_all(1);
		if (snap_arm(c, id) == -1)
			die("snapshot-arm: %s", snap_strerror(c));
	}
	/* The armed instant's content, before any write after it. */
	if ((want = malloc(opt.size)) == NULL)
		die("out of memory");
	memcpy(want, mem, opt.size);
	if (opt.writes != W_IDLE) {
		write_all(opt.writes == W_RANDOM);
		snprintf(cmd, sizeof(cmd), "{\"execute\": \"test-release\", "
		    "\"arguments\": {\"id\": %" PRIu64 "}}", id);
		reply = snap_command(c, cmd);
		if (reply == NULL || strstr(reply, "\"return\"") == NULL)
			die("test-release: %s", reply != NULL ? reply :
			    snap_strerror(c));
		free(reply);
	}
	if (snap_wait(c, id, &res, -1) == -1 || !res.completed)
		die("snapshot %" PRIu64 ": %s", id, res.error[0] != '\0' ?
		    res.error : snap_strerror(c));
	after = thp_kb();

	copy = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED)
		die("mmap: %m");
	{
		struct snap_file *f = snap_file_open(res.file);

		if (f == NULL || snap_file_restore(f, 0, copy, opt.size,
		    &lost) == -1)
			die("restore %s: %s", res.file, snap_strerror(NULL));
		snap_file_close(f);
	}
	for (uint64_t i = 0; i < npages; i++)
		if (memcmp(copy + i * PAGE_SIZE, want + i * PAGE_SIZE,
		    PAGE_SIZE) != 0)
			wrong++;
	printf("{\"pages\": %" PRIu64 ", \"wrong\": %" PRIu64 ", \"lost\": %"
	    PRIu64 ", \"thp-before-kb\": %ld, \"thp-after-kb\": %ld, "
	    "\"pages-faulted\": %" PRIu64 ", \"huge-faulted\": %lld, "
	    "\"huge-swept\": %lld, \"file\": \"%s\"}\n", npages, wrong, lost,
	    before, after, res.pages_faulted,
	    snapshot_figure(c, id, "huge-faulted"),
	    snapshot_figure(c, id, "huge-swept"), res.file);
	snap_close(c);
	free(want);
	munmap(copy, opt.size);
	return 0;
}
