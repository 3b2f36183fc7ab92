/*
 * test_chain: incremental snapshots (zsnap 1.2), writer and reader.
 *
 * Writes a chain of known content through the daemon's output API: a full
 * base c0.zsnap and four deltas c1..c4, each on the one before.  Between
 * links some pages change (to new data, some to zero), some are LOST, some
 * ranges are saved whole (with a reason), the rest are PARENT pages; a
 * page LOST in a link and unchanged after stays lost.  Then, for every
 * link: info (depth, parent, counts, whole ranges), verify (the whole
 * chain), restore of every region, snap_file_read() of ranges and the raw
 * export, each compared page by page with what the memory held at that
 * link.  Then broken chains, each refused by verify and by restore with
 * the message naming the link: a parent deleted, replaced by another
 * snapshot of the same name (index crc), by one armed at another time, a
 * flipped byte in a parent's page data, a parent whose region table was
 * changed (its crcs fixed up), a link whose depth is wrong, a parent that
 * is a symbolic link or a FIFO.  Every link merged into one full file
 * (snap_file_merge()) holds the same memory; a broken chain's merge
 * leaves nothing.  And the ABI: the LIBSNAPCLIENT_0
 * snap_file_info() fills only the struct older programs know.
 *
 * `test_chain --write DIR` only writes the chain into DIR, with
 * expect-K-R.img (region R at link K, LOST pages zero) and expect-K.lost
 * (the LOST pages at link K), for tests/integration/chain_files.sh.
 *
 * Deterministic: the content follows TEST_SEED (default fixed).  Exit 0 on
 * pass, 1 on the first failure (after saying what was wrong).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "output.h"
#include "snapclient.h"
#include "zsnap.h"

#include "format-helpers.h"

#define PAGE	ZSNAP_PAGE_SIZE
#define NREG	3
#define NLINK	5
#define ARMED0	1700000000000000000ull
/* Link k is armed a minute after link k - 1. */
#define ARMED(k)	(ARMED0 + (uint64_t)(k) * 60000000000ull)

static const char *const region_names[NREG] = { "heap", "stack", "tiny" };
static const uint64_t	 region_pages[NREG] = { 700, 40, 1 };

static char		 tmpdir[] = "/tmp/test_chain.XXXXXX";
static uint64_t		 rng_state;

/* What the memory held at each link; lost: 1 where the page is LOST. */
struct link_state {
	unsigned char	*mem[NREG];
	unsigned char	*lost[NREG];
	uint64_t	 n_lost;	/* LOST at this link */
	uint64_t	 n_lost_file;	/* LOST in this file (not inherited) */
	uint64_t	 n_parent;	/* PARENT pages of the file */
	struct zsnap_whole whole[2];
	uint32_t	 whole_count;
	uint32_t	 index_crc;
};

static struct link_state links[NLINK];
static struct output_region regions[NREG];

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
fill_random(unsigned char *p)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = rng();

		memcpy(p + i, &v, 8);
	}
}

/* ---- writing the chain ---------------------------------------------------- */

/* Page categories of a delta. */
enum {
	PG_SAME = 0,	/* unchanged: PARENT */
	PG_DATA,	/* changed to new data */
	PG_ZERO,	/* changed to zero */
	PG_LOST,	/* LOST */
};

/*
 * Decide link k's pages from link k - 1's: the category of every page,
 * the content it holds.  Link 0 saves every page (DATA, ZERO or LOST).
 */
static void
plan_link(int k, unsigned char *cat[NREG])
{
	struct link_state	*l = &links[k], *prev = k > 0 ? &links[k - 1] : NULL;

	for (uint32_t r = 0; r < NREG; r++) {
		size_t len = region_pages[r] * PAGE;

		l->mem[r] = malloc(len);
		l->lost[r] = calloc(region_pages[r], 1);
		cat[r] = calloc(region_pages[r], 1);
		if (l->mem[r] == NULL || l->lost[r] == NULL || cat[r] == NULL)
			die("out of memory");
		if (prev != NULL) {
			memcpy(l->mem[r], prev->mem[r], len);
			memcpy(l->lost[r], prev->lost[r], region_pages[r]);
		}
		for (uint64_t p = 0; p < region_pages[r]; p++) {
			uint64_t x = rng() % 100;
			int c;

			if (prev == NULL)
				c = x < 3 ? PG_LOST : x < 30 ? PG_ZERO : PG_DATA;
			else
				c = x < 1 ? PG_LOST : x < 4 ? PG_ZERO :
				    x < 15 ? PG_DATA : PG_SAME;
			cat[r][p] = (unsigned char)c;
		}
	}
	/* A whole range in each delta: saved although (mostly) unchanged. */
	if (prev != NULL) {
		uint32_t r = (uint32_t)k % 2;
		uint64_t first = 3 + (uint64_t)k * 5, count = 9;

		l->whole[0] = (struct zsnap_whole){ r, (uint32_t)(k - 1) % 4 + 1,
		    first, count };
		l->whole_count = 1;
		for (uint64_t p = first; p < first + count; p++)
			if (cat[r][p] == PG_SAME)
				cat[r][p] = PG_DATA + (uint8_t)(p % 3 == 0);
		if (k == 4) {
			/* And one over all of "tiny": two ranges. */
			l->whole[1] = (struct zsnap_whole){ 2,
			    ZSNAP_WHOLE_UNTRACKED, 0, 1 };
			l->whole_count = 2;
			cat[2][0] = PG_DATA;
		}
	}
	for (uint32_t r = 0; r < NREG; r++) {
		for (uint64_t p = 0; p < region_pages[r]; p++) {
			unsigned char *pg = l->mem[r] + p * PAGE;

			switch (cat[r][p]) {
			case PG_SAME:
				l->n_parent++;
				break;
			case PG_DATA:
				/*
				 * Saved whole but unchanged keeps its bytes
				 * (unless it had none: LOST before).
				 */
				if ((p % 2 == 0 || prev == NULL ||
				    l->lost[r][p]) || zsnap_page_is_zero(pg))
					fill_random(pg);
				l->lost[r][p] = 0;
				break;
			case PG_ZERO:
				memset(pg, 0, PAGE);
				l->lost[r][p] = 0;
				break;
			case PG_LOST:
				memset(pg, 0, PAGE);
				l->lost[r][p] = 1;
				l->n_lost_file++;
				break;
			}
		}
	}
	for (uint32_t r = 0; r < NREG; r++)
		for (uint64_t p = 0; p < region_pages[r]; p++)
			l->n_lost += l->lost[r][p];
}

static struct output *
open_link(int dirfd, int k, const struct zsnap_parent *pa,
    const struct zsnap_whole *whole, const char *name, uint64_t armed)
{
	struct output_params	 p;
	struct output		*out;

	memset(&p, 0, sizeof(p));
	p.dirfd = dirfd;
	p.name = name;
	p.format = OUTPUT_ZSNAP;
	p.level = 3;
	p.owner_uid = (uid_t)-1;
	p.owner_gid = (gid_t)-1;
	p.regions = regions;
	p.region_count = NREG;
	p.pid = 4242;
	p.uid = 1000;
	p.comm = "chainproc";
	p.armed_realtime_ns = armed;
	p.parent = pa;
	p.whole = whole;
	if ((out = output_open(&p)) == NULL)
		die("output_open %s: %s", name, output_open_error());
	return out;
}

/*
 * Save link k's pages, runs of one category at a time, "tiny" first so
 * that chunks mix regions; returns the output's result.
 */
static void
write_pages(struct output *out, int k, unsigned char *cat[NREG],
    struct output_result *res)
{
	static const uint32_t order[NREG] = { 2, 0, 1 };

	for (uint32_t i = 0; i < NREG; i++) {
		uint32_t r = order[i];

		for (uint64_t p = 0; p < region_pages[r];) {
			uint64_t n = 1;
			int rc;

			while (p + n < region_pages[r] && n < 64 &&
			    cat[r][p + n] == cat[r][p])
				n++;
			switch (cat[r][p]) {
			case PG_SAME:
				rc = output_unchanged(out, r, p, n);
				break;
			case PG_LOST:
				rc = output_lost(out, r, p, n);
				break;
			default:
				rc = output_pages(out, r, p, (uint32_t)n,
				    links[k].mem[r] + p * PAGE);
				break;
			}
			if (rc == -1)
				die("link %d: %s", k, output_error(out));
			p += n;
		}
	}
	if (output_finish(out, res) == -1)
		die("link %d: finish: %s", k, output_error(out));
	output_close(out);
}

static void
link_parent(int k, struct zsnap_parent *pa)
{
	memset(pa, 0, sizeof(*pa));
	snprintf(pa->name, sizeof(pa->name), "c%d", k - 1);
	snprintf(pa->file, sizeof(pa->file), "c%d.zsnap", k - 1);
	pa->armed_realtime_ns = ARMED(k - 1);
	pa->index_crc = links[k - 1].index_crc;
	pa->depth = (uint32_t)k;
	pa->whole_count = links[k].whole_count;
}

static void
write_chain(int dirfd)
{
	for (uint32_t r = 0; r < NREG; r++) {
		regions[r].start = 0x7f0000000000ull + r * 0x10000000ull;
		regions[r].length = region_pages[r] * PAGE;
		snprintf(regions[r].name, sizeof(regions[r].name), "%s",
		    region_names[r]);
	}
	for (int k = 0; k < NLINK; k++) {
		unsigned char		*cat[NREG];
		struct zsnap_parent	 pa;
		struct output_result	 res;
		char			 name[16];

		plan_link(k, cat);
		if (k > 0)
			link_parent(k, &pa);
		snprintf(name, sizeof(name), "c%d", k);
		write_pages(open_link(dirfd, k, k > 0 ? &pa : NULL,
		    links[k].whole, name, ARMED(k)), k, cat, &res);
		if (res.pages_parent != links[k].n_parent ||
		    res.pages_lost != links[k].n_lost_file)
			fail("c%d: result says %llu parent and %llu lost pages, "
			    "expected %llu and %llu", k,
			    (unsigned long long)res.pages_parent,
			    (unsigned long long)res.pages_lost,
			    (unsigned long long)links[k].n_parent,
			    (unsigned long long)links[k].n_lost_file);
		links[k].index_crc = res.index_crc;
		for (uint32_t r = 0; r < NREG; r++)
			free(cat[r]);
	}
}

/* The generator's output: the expected images and LOST pages. */
static void
write_expectations(const char *dir)
{
	char	path[PATH_MAX];
	FILE	*fp;

	for (int k = 0; k < NLINK; k++) {
		for (uint32_t r = 0; r < NREG; r++) {
			snprintf(path, sizeof(path), "%s/expect-%d-%u.img", dir, k,
			    r);
			write_all(path, links[k].mem[r], region_pages[r] * PAGE);
		}
		snprintf(path, sizeof(path), "%s/expect-%d.lost", dir, k);
		if ((fp = fopen(path, "w")) == NULL)
			die("%s: %s", path, strerror(errno));
		fprintf(fp, "%llu\n", (unsigned long long)links[k].n_lost);
		fclose(fp);
	}
}

/* ---- reading it back -------------------------------------------------------- */

static struct snap_file *
open_or_fail(const char *path)
{
	struct snap_file *f = snap_file_open(path);

	if (f == NULL)
		die("open %s: %s", path, snap_strerror(NULL));
	return f;
}

/*
 * Region r of buf against link k: DATA and ZERO pages equal, LOST pages
 * holding lost_byte in every byte (untouched by a restore, zero after a
 * read or an export).
 */
static int
compare_region(const char *what, int k, uint32_t r, uint64_t first,
    uint64_t n, const unsigned char *buf, int lost_byte)
{
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *got = buf + i * PAGE;
		uint64_t p = first + i;

		if (links[k].lost[r][p] ? got[0] != lost_byte ||
		    memcmp(got, got + 1, PAGE - 1) != 0 :
		    memcmp(got, links[k].mem[r] + p * PAGE, PAGE) != 0) {
			fail("%s: link %d region %u page %llu (%s) differs", what,
			    k, r, (unsigned long long)p,
			    links[k].lost[r][p] ? "lost" : "saved");
			return -1;
		}
	}
	return 0;
}

/*
 * Every region of f restored (LOST pages left untouched) and read (LOST
 * pages zero), against link k.
 */
static void
check_content(struct snap_file *f, int k, const char *what)
{
	uint64_t	lost_all = 0;

	for (uint32_t r = 0; r < NREG; r++) {
		size_t		 len = region_pages[r] * PAGE;
		unsigned char	*buf = malloc(len);
		uint64_t	 lost, want = 0, first, n;

		for (uint64_t p = 0; p < region_pages[r]; p++)
			want += links[k].lost[r][p];
		memset(buf, 0xAA, len);
		if (snap_file_restore(f, r, buf, len, &lost) == -1)
			fail("%s: restore region %u: %s", what, r,
			    snap_strerror(NULL));
		else if (compare_region(what, k, r, 0, region_pages[r], buf,
		    0xAA) == 0 && lost != want)
			fail("%s: region %u: restore counted %llu lost, expected "
			    "%llu", what, r, (unsigned long long)lost,
			    (unsigned long long)want);
		lost_all += want;
		/* Ranges that cut through extents of every link. */
		for (int t = 0; t < 4; t++) {
			first = rng() % region_pages[r];
			n = 1 + rng() % (region_pages[r] - first);
			if (snap_file_read(f, r, first, n, buf, &lost) == -1) {
				fail("%s: read region %u pages %llu+%llu: %s",
				    what, r, (unsigned long long)first,
				    (unsigned long long)n, snap_strerror(NULL));
				break;
			}
			want = 0;
			for (uint64_t p = first; p < first + n; p++)
				want += links[k].lost[r][p];
			if (compare_region(what, k, r, first, n, buf, 0) == 0 &&
			    lost != want)
				fail("%s: read region %u: %llu lost, expected %llu",
				    what, r, (unsigned long long)lost,
				    (unsigned long long)want);
		}
		free(buf);
	}
	if (lost_all != links[k].n_lost)
		fail("%s: %llu lost pages in all, expected %llu", what,
		    (unsigned long long)lost_all,
		    (unsigned long long)links[k].n_lost);
}

static void
check_info(struct snap_file *f, int k)
{
	struct snap_file_info	 in, ln;
	struct snap_file_whole	 w;
	char			 pfile[32];

	if (snap_file_info(f, &in) == -1)
		die("info c%d: %s", k, snap_strerror(NULL));
	snprintf(pfile, sizeof(pfile), k > 0 ? "c%d.zsnap" : "", k - 1);
	if (in.incremental != (k > 0) || in.depth != (uint32_t)k ||
	    in.pages_parent != links[k].n_parent ||
	    in.whole_count != links[k].whole_count ||
	    in.index_crc != links[k].index_crc ||
	    strcmp(in.parent_file, pfile) != 0 ||
	    (k > 0 && in.parent_index_crc != links[k - 1].index_crc) ||
	    (k > 0 && in.parent_armed_realtime_ns != ARMED(k - 1)))
		fail("c%d: info: incremental %d depth %u parent pages %llu "
		    "(expected %llu) whole %u parent %s", k, in.incremental,
		    in.depth, (unsigned long long)in.pages_parent,
		    (unsigned long long)links[k].n_parent, in.whole_count,
		    in.parent_file);
	for (uint32_t i = 0; i < in.whole_count; i++) {
		if (snap_file_whole(f, i, &w) == -1 ||
		    w.region != links[k].whole[i].region ||
		    w.reason != links[k].whole[i].reason ||
		    w.first_page != links[k].whole[i].first_page ||
		    w.page_count != links[k].whole[i].page_count)
			fail("c%d: whole range %u differs: %s", k, i,
			    snap_strerror(NULL));
	}
	if (snap_file_whole(f, in.whole_count, &w) == 0)
		fail("c%d: whole range %u past the end was given", k,
		    in.whole_count);
	for (int n = 0; n <= k; n++) {
		char want[16];

		snprintf(want, sizeof(want), "c%d", k - n);
		if (snap_file_chain_info(f, (uint32_t)n, &ln) == -1 ||
		    strcmp(ln.name, want) != 0 || ln.depth != (uint32_t)(k - n))
			fail("c%d: chain link %d: %s (name %s depth %u)", k, n,
			    snap_strerror(NULL), ln.name, ln.depth);
	}
	if (snap_file_chain_info(f, (uint32_t)k + 1, &ln) == 0 ||
	    strstr(snap_strerror(NULL), "the chain has") == NULL)
		fail("c%d: chain link %d past the base: \"%s\"", k, k + 1,
		    snap_strerror(NULL));
}

static void
test_links(void)
{
	char	path[PATH_MAX], exp[PATH_MAX];

	for (int k = 0; k < NLINK; k++) {
		struct snap_file *f, *e;

		snprintf(path, sizeof(path), "%s/c%d.zsnap", tmpdir, k);
		f = open_or_fail(path);
		check_info(f, k);
		if (snap_file_verify(f) == -1)
			fail("verify c%d: %s", k, snap_strerror(NULL));
		check_content(f, k, path);
		snprintf(exp, sizeof(exp), "%s/c%d-export.raw", tmpdir, k);
		if (snap_file_export_raw(f, exp) == -1)
			fail("export c%d: %s", k, snap_strerror(NULL));
		snap_file_close(f);
		e = open_or_fail(exp);
		{
			struct snap_file_info in;

			if (snap_file_verify(e) == -1 ||
			    snap_file_info(e, &in) == -1 ||
			    in.pages_lost != links[k].n_lost || in.incremental)
				fail("export of c%d: %s (lost %llu, expected "
				    "%llu)", k, snap_strerror(NULL),
				    (unsigned long long)in.pages_lost,
				    (unsigned long long)links[k].n_lost);
		}
		check_content(e, k, exp);
		snap_file_close(e);
	}
	printf("ok: %d links verify, restore, read and export as written\n",
	    NLINK);
}

/* ---- broken chains -------------------------------------------------------- */

/* A fresh copy of the chain in tmpdir/NAME; its path in dir. */
static void
copy_chain(const char *name, char *dir, size_t len)
{
	char	cmd[3 * PATH_MAX];

	snprintf(dir, len, "%s/%s", tmpdir, name);
	snprintf(cmd, sizeof(cmd), "mkdir '%s' && cp '%s'/c?.zsnap '%s'/", dir,
	    tmpdir, dir);
	if (system(cmd) != 0)
		die("%s failed", cmd);
}

/*
 * dir/c4.zsnap must be refused by verify, and by restore of at least one
 * region (those needing the broken link), always with needle in the
 * message.  A region whose pages c4 and the links above the break hold
 * restores: the chain is opened as far as it is needed.
 */
static void
expect_broken(const char *what, const char *dir, const char *needle)
{
	char			 path[PATH_MAX];
	struct snap_file	*f;
	unsigned char		*buf = malloc(region_pages[0] * PAGE);
	int			 refused = 0;

	snprintf(path, sizeof(path), "%s/c4.zsnap", dir);
	expect_rejected(what, path, needle);
	for (uint32_t r = 0; r < NREG; r++) {
		if ((f = snap_file_open(path)) == NULL) {
			fail("%s: open: %s", what, snap_strerror(NULL));
			break;
		}
		if (snap_file_restore(f, r, buf, region_pages[0] * PAGE,
		    NULL) == -1) {
			refused++;
			if (strstr(snap_strerror(NULL), needle) == NULL)
				fail("%s: restore region %u: expected \"%s\", "
				    "got \"%s\"", what, r, needle,
				    snap_strerror(NULL));
		}
		snap_file_close(f);
	}
	if (refused == 0)
		fail("%s: every region restored", what);
	free(buf);
}

/*
 * In dir/file, put value (size 4 or 8 bytes) at offset at of frame
 * number frame (0 the header, 1 the next one) and fix the crc ending the
 * frame's payload, so the file itself stays valid.
 */
static void
patch_frame(const char *dir, const char *file, int frame, size_t at,
    int size, uint64_t value)
{
	char		 path[PATH_MAX];
	unsigned char	*buf, *p;
	size_t		 len, off = 0;
	uint32_t	 payload;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	buf = read_all(path, &len);
	for (int i = 0; i < frame; i++)
		off += ZSNAP_SKIP_HDR_SIZE + zsnap_get32(buf + off + 4);
	if (size == 8)
		zsnap_put64(buf + off + at, value);
	else
		zsnap_put32(buf + off + at, (uint32_t)value);
	payload = zsnap_get32(buf + off + 4);
	p = buf + off + ZSNAP_SKIP_HDR_SIZE;
	zsnap_put32(p + payload - 4, crc32c(0, p, payload - 4));
	write_all(path, buf, len);
	free(buf);
}

static void
test_broken(int dirfd)
{
	char		 dir[512], path[PATH_MAX], needle[256];
	char		 cmd[2 * PATH_MAX];
	unsigned char	*buf;
	size_t		 len;
	int		 subfd;

	/* Missing. */
	copy_chain("missing", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c2.zsnap", dir);
	if (unlink(path) == -1)
		die("unlink %s: %s", path, strerror(errno));
	expect_broken("a parent deleted", dir,
	    "chain link c3.zsnap -> c2.zsnap: c2.zsnap is missing");

	/* Another snapshot of the same name and armed time: its index. */
	copy_chain("replaced", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c2.zsnap", dir);
	unlink(path);
	if ((subfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		die("open %s: %s", dir, strerror(errno));
	{
		unsigned char		*cat[NREG];
		struct output_result	 res;
		struct link_state	 saved = links[2];

		/* Link 2 again, other content: a full snapshot named c2. */
		plan_link(2, cat);
		for (uint32_t r = 0; r < NREG; r++)
			for (uint64_t p = 0; p < region_pages[r]; p++)
				if (cat[r][p] == PG_SAME)
					cat[r][p] = PG_DATA;
		write_pages(open_link(subfd, 2, NULL, NULL, "c2", ARMED(2)), 2,
		    cat, &res);
		for (uint32_t r = 0; r < NREG; r++) {
			free(cat[r]);
			free(links[2].mem[r]);
			free(links[2].lost[r]);
		}
		links[2] = saved;
		snprintf(needle, sizeof(needle), "chain link c3.zsnap -> "
		    "c2.zsnap: c2.zsnap is not the parent recorded (its index "
		    "crc 0x%08x differs from 0x%08x", res.index_crc,
		    links[2].index_crc);
		expect_broken("a parent replaced by another snapshot", dir,
		    needle);
	}

	/* Another snapshot, armed at another time. */
	copy_chain("other-time", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c1.zsnap", dir);
	unlink(path);
	snprintf(cmd, sizeof(cmd), "cp '%s/c0.zsnap' '%s'", tmpdir, path);
	if (system(cmd) != 0)
		die("%s failed", cmd);
	expect_broken("a parent armed at another time", dir,
	    "chain link c2.zsnap -> c1.zsnap: c1.zsnap is not the parent "
	    "recorded (it is snapshot \"c0\" armed at");

	/* A flipped byte in a parent's page data (its last data frame). */
	copy_chain("flipped", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c1.zsnap", dir);
	buf = read_all(path, &len);
	{
		const unsigned char *ft = buf + len - ZSNAP_FOOTER_FRAME_SIZE +
		    ZSNAP_SKIP_HDR_SIZE;
		uint64_t index_off = zsnap_get64(ft + offsetof(struct
		    zsnap_footer, index_offset));

		/* The byte before the index ends the last chunk: zstd data
		 * when that chunk has any, its metadata crc otherwise. */
		buf[index_off - 10] ^= 0x20;
	}
	write_all(path, buf, len);
	free(buf);
	expect_broken("a flipped byte in a parent", dir,
	    "chain link c2.zsnap -> c1.zsnap: ");
	expect_broken("a flipped byte in a parent", dir, "c1.zsnap: chunk ");

	/* A parent's region table changed, its header crc fixed up. */
	copy_chain("regions", dir, sizeof(dir));
	patch_frame(dir, "c3.zsnap", 0, ZSNAP_SKIP_HDR_SIZE +
	    sizeof(struct zsnap_header) + sizeof(struct zsnap_region) +
	    offsetof(struct zsnap_region, start), 8, 0x1000);
	expect_broken("a parent with another region table", dir,
	    "chain link c4.zsnap -> c3.zsnap: c3.zsnap has another region "
	    "table (region 1: stack at 0x1000");

	/* A link whose depth is wrong (its parent frame's crc fixed up). */
	copy_chain("depth", dir, sizeof(dir));
	patch_frame(dir, "c3.zsnap", 1, ZSNAP_SKIP_HDR_SIZE +
	    offsetof(struct zsnap_parent, depth), 4, 7);
	expect_broken("a link at the wrong depth", dir,
	    "chain link c4.zsnap -> c3.zsnap: wrong depth: c4.zsnap is 4 "
	    "links from the base, so its parent should be 3, but c3.zsnap is 7");

	/* A symbolic link in a parent's place, and a FIFO. */
	copy_chain("symlink", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c2.zsnap", dir);
	snprintf(cmd, sizeof(cmd), "%s.real", path);
	if (rename(path, cmd) == -1 || symlink("c2.zsnap.real", path) == -1)
		die("symlink %s: %s", path, strerror(errno));
	expect_broken("a parent that is a symbolic link", dir,
	    "chain link c3.zsnap -> c2.zsnap: c2.zsnap is a symbolic link");
	unlink(path);
	if (mkfifo(path, 0600) == -1)
		die("mkfifo %s: %s", path, strerror(errno));
	expect_broken("a parent that is a FIFO", dir,
	    "chain link c3.zsnap -> c2.zsnap: ");
	expect_broken("a parent that is a FIFO", dir, "not a zsnap file");
	close(subfd);
	(void)dirfd;
}

/* ---- merge ------------------------------------------------------------------ */

/* Names in dir with "zsnap" in them besides the chain's c?.zsnap: what a
 * merge left (a merged file, a temporary ".NAME.zsnap.tmp-PID"). */
static int
count_strays(const char *dir)
{
	char	cmd[PATH_MAX + 64];
	FILE	*p;
	int	 n = 0, c;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -v '^c[0-9]\\.zsnap$' | "
	    "grep zsnap", dir);
	if ((p = popen(cmd, "r")) == NULL)
		die("popen %s: %s", cmd, strerror(errno));
	while ((c = fgetc(p)) != EOF)
		n += c == '\n';
	pclose(p);
	return n;
}

/* A merge of dir/c4.zsnap that must fail saying needle, leaving nothing. */
static void
expect_merge_refused(const char *what, const char *dir, const char *needle)
{
	char			 path[PATH_MAX], out[PATH_MAX];
	struct snap_file	*f;

	snprintf(path, sizeof(path), "%s/c4.zsnap", dir);
	snprintf(out, sizeof(out), "%s/merged.zsnap", dir);
	f = open_or_fail(path);
	if (snap_file_merge(f, out) == 0)
		fail("merge with %s: succeeded", what);
	else if (strstr(snap_strerror(NULL), needle) == NULL)
		fail("merge with %s: expected \"%s\", got \"%s\"", what, needle,
		    snap_strerror(NULL));
	snap_file_close(f);
	if (count_strays(dir) != 0)
		fail("merge with %s: left a file in %s", what, dir);
}

/*
 * Every link merged into one full file: no parent, depth 0, c<k>'s header,
 * verifies, and restores and reads page by page as link k's memory.  A
 * second merge to the same name is refused; a broken chain (a parent
 * missing: refused before the file is made; a flipped byte in a parent's
 * data: found while writing) fails and leaves nothing behind.
 */
static void
test_merge(void)
{
	char			 path[PATH_MAX], out[PATH_MAX], dir[512];
	struct snap_file_info	 in;
	struct snap_file	*f, *m;
	unsigned char		*buf;
	size_t			 len;

	for (int k = 0; k < NLINK; k++) {
		char want[16];

		snprintf(path, sizeof(path), "%s/c%d.zsnap", tmpdir, k);
		snprintf(out, sizeof(out), "%s/m%d.zsnap", tmpdir, k);
		snprintf(want, sizeof(want), "c%d", k);
		f = open_or_fail(path);
		if (snap_file_merge(f, out) == -1)
			die("merge c%d: %s", k, snap_strerror(NULL));
		if (snap_file_merge(f, out) == 0 || errno != EEXIST)
			fail("merge c%d onto the merged file: \"%s\"", k,
			    snap_strerror(NULL));
		snap_file_close(f);
		m = open_or_fail(out);
		if (snap_file_info(m, &in) == -1)
			die("info m%d: %s", k, snap_strerror(NULL));
		if (in.incremental || in.depth != 0 || in.pages_parent != 0 ||
		    strcmp(in.name, want) != 0 ||
		    in.armed_realtime_ns != ARMED(k) ||
		    in.pages_lost != links[k].n_lost ||
		    in.pages_data + in.pages_zero + in.pages_lost !=
		    in.pages_total)
			fail("m%d: incremental %d depth %u parent pages %llu name "
			    "%s lost %llu (expected %llu)", k, in.incremental,
			    in.depth, (unsigned long long)in.pages_parent,
			    in.name, (unsigned long long)in.pages_lost,
			    (unsigned long long)links[k].n_lost);
		if (snap_file_verify(m) == -1)
			fail("verify m%d: %s", k, snap_strerror(NULL));
		check_content(m, k, out);
		snap_file_close(m);
		if (unlink(out) == -1)
			die("unlink %s: %s", out, strerror(errno));
	}
	if (count_strays(tmpdir) != 0)
		fail("merge left a file in %s", tmpdir);

	copy_chain("merge-missing", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c2.zsnap", dir);
	if (unlink(path) == -1)
		die("unlink %s: %s", path, strerror(errno));
	expect_merge_refused("a parent deleted", dir,
	    "chain link c3.zsnap -> c2.zsnap: c2.zsnap is missing");

	copy_chain("merge-flipped", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/c1.zsnap", dir);
	buf = read_all(path, &len);
	buf[zsnap_get64(buf + len - ZSNAP_FOOTER_FRAME_SIZE +
	    ZSNAP_SKIP_HDR_SIZE + offsetof(struct zsnap_footer,
	    index_offset)) - 10] ^= 0x20;
	write_all(path, buf, len);
	free(buf);
	expect_merge_refused("a flipped byte in a parent", dir,
	    "c1.zsnap: chunk ");
	printf("ok: %d links merge into full files; broken chains leave "
	    "nothing\n", NLINK);
}

/* ---- a long chain ----------------------------------------------------------- */

/*
 * LONG links of 8 pages in LONGDIR, link k writing byte k over page k % 8
 * and leaving the rest to its parent: each page of the newest comes from a
 * different file, seven to eight links down.  Verify and restore of the
 * newest follow all of them; every link's buffers are let go once walked.
 */
#define LONG	150

static void
test_long_chain(void)
{
	struct output_region	 reg = { 0x10000, 8 * PAGE, "r", 0 };
	struct zsnap_parent	 pa;
	struct output_result	 res;
	struct output_params	 p;
	struct snap_file	*f;
	struct snap_file_info	 in;
	unsigned char		 page[PAGE], mem[8 * PAGE];
	char			 dir[512], name[32], path[PATH_MAX];
	int			 dirfd;

	snprintf(dir, sizeof(dir), "%s/long", tmpdir);
	if (mkdir(dir, 0700) == -1 ||
	    (dirfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		die("%s: %s", dir, strerror(errno));
	memset(&p, 0, sizeof(p));
	p.dirfd = dirfd;
	p.format = OUTPUT_ZSNAP;
	p.level = 1;
	p.owner_uid = (uid_t)-1;
	p.owner_gid = (gid_t)-1;
	p.regions = &reg;
	p.region_count = 1;
	p.name = name;
	memset(&pa, 0, sizeof(pa));
	for (uint32_t k = 0; k < LONG; k++) {
		struct output *out;

		snprintf(name, sizeof(name), "l%u", k);
		p.armed_realtime_ns = ARMED(k);
		p.parent = k > 0 ? &pa : NULL;
		if ((out = output_open(&p)) == NULL)
			die("%s: %s", name, output_open_error());
		memset(page, (int)(k % 255) + 1, PAGE);
		for (uint64_t pg = 0; pg < 8; pg++)
			if ((k == 0 || pg == k % 8 ? output_pages(out, 0, pg, 1,
			    page) : output_unchanged(out, 0, pg, 1)) == -1)
				die("%s: %s", name, output_error(out));
		if (output_finish(out, &res) == -1)
			die("%s: %s", name, output_error(out));
		output_close(out);
		snprintf(pa.name, sizeof(pa.name), "l%u", k);
		snprintf(pa.file, sizeof(pa.file), "l%u.zsnap", k);
		pa.armed_realtime_ns = ARMED(k);
		pa.index_crc = res.index_crc;
		pa.depth = k + 1;
	}
	close(dirfd);
	snprintf(path, sizeof(path), "%s/l%u.zsnap", dir, LONG - 1);
	f = open_or_fail(path);
	if (snap_file_verify(f) == -1)
		fail("a chain of %d: verify: %s", LONG, snap_strerror(NULL));
	if (snap_file_info(f, &in) == -1 || in.depth != LONG - 1 ||
	    in.pages_parent != 7)
		fail("a chain of %d: depth %u, %llu parent pages", LONG, in.depth,
		    (unsigned long long)in.pages_parent);
	if (snap_file_restore(f, 0, mem, sizeof(mem), NULL) == -1)
		fail("a chain of %d: restore: %s", LONG, snap_strerror(NULL));
	for (uint32_t pg = 0; pg < 8; pg++) {
		uint32_t k = LONG - 1 - ((LONG - 1 - pg) % 8);

		if (mem[pg * PAGE] != (unsigned char)(k % 255 + 1) ||
		    mem[pg * PAGE + PAGE - 1] != (unsigned char)(k % 255 + 1))
			fail("a chain of %d: page %u holds %u, link %u wrote %u",
			    LONG, pg, mem[pg * PAGE], k, k % 255 + 1);
	}
	snap_file_close(f);
	printf("ok: a chain of %d links verified and restored\n", LONG);
}

/* ---- the ABI of snap_file_info ---------------------------------------------- */

/*
 * The shared library's two snap_file_info(): LIBSNAPCLIENT_0's fills only
 * the struct older programs have (up to file_size); LIBSNAPCLIENT_0.3's
 * all of it.  Looked up with dlvsym() in build/libsnapclient.so.0.
 */
static void
test_abi(void)
{
	typedef int info_fn(struct snap_file *, struct snap_file_info *);
	typedef struct snap_file *open_fn(const char *);
	typedef void close_fn(struct snap_file *);
	char		 exe[PATH_MAX], lib[PATH_MAX + 32], path[PATH_MAX];
	void		*h;
	info_fn		*v0, *v3;
	open_fn		*op;
	close_fn	*cl;
	struct snap_file *f;
	union {
		struct snap_file_info	in;
		unsigned char		b[sizeof(struct snap_file_info) + 64];
	} u;
	size_t		 old = offsetof(struct snap_file_info, file_size) + 8;
	ssize_t		 n;

	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) == -1)
		die("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';	/* B/tests */
	snprintf(lib, sizeof(lib), "%s/../libsnapclient.so.0", exe);
	if ((h = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) == NULL)
		die("dlopen %s: %s", lib, dlerror());
	v0 = (info_fn *)dlvsym(h, "snap_file_info", "LIBSNAPCLIENT_0");
	v3 = (info_fn *)dlvsym(h, "snap_file_info", "LIBSNAPCLIENT_0.3");
	op = (open_fn *)dlsym(h, "snap_file_open");
	cl = (close_fn *)dlsym(h, "snap_file_close");
	if (v0 == NULL || v3 == NULL || op == NULL || cl == NULL || v0 == v3)
		die("%s: snap_file_info@LIBSNAPCLIENT_0 %p, @LIBSNAPCLIENT_0.3 "
		    "%p", lib, (void *)v0, (void *)v3);
	snprintf(path, sizeof(path), "%s/c3.zsnap", tmpdir);
	if ((f = op(path)) == NULL)
		die("open %s with %s failed", path, lib);
	memset(&u, 0x5A, sizeof(u));
	if (v0(f, &u.in) == -1 || u.in.pages_total == 0 ||
	    strcmp(u.in.name, "c3") != 0)
		fail("snap_file_info@LIBSNAPCLIENT_0 did not fill the old members");
	for (size_t i = old; i < sizeof(u.b); i++)
		if (u.b[i] != 0x5A) {
			fail("snap_file_info@LIBSNAPCLIENT_0 wrote byte %zu, past "
			    "the %zu bytes of the old struct", i, old);
			break;
		}
	memset(&u, 0x5A, sizeof(u));
	if (v3(f, &u.in) == -1 || u.in.depth != 3 ||
	    strcmp(u.in.parent_file, "c2.zsnap") != 0)
		fail("snap_file_info@LIBSNAPCLIENT_0.3 did not fill the new "
		    "members");
	cl(f);
	dlclose(h);
	printf("ok: snap_file_info@LIBSNAPCLIENT_0 fills %zu bytes, "
	    "@LIBSNAPCLIENT_0.3 %zu\n", old, sizeof(struct snap_file_info));
}

int
main(int argc, char **argv)
{
	const char	*seed = getenv("TEST_SEED");
	const char	*dir = tmpdir;
	char		 cmd[PATH_MAX + 16];
	int		 dirfd;

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x2545F4914F6CDD1Dull;
	if (rng_state == 0)
		rng_state = 1;
	if (argc == 3 && strcmp(argv[1], "--write") == 0)
		dir = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: test_chain [--write DIR]\n");
		return 2;
	} else if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		die("open %s: %s", dir, strerror(errno));
	write_chain(dirfd);
	if (dir != tmpdir) {
		write_expectations(dir);
		close(dirfd);
		return failures > 0;
	}
	printf("test_chain: seed %#llx, chain in %s\n",
	    (unsigned long long)rng_state, tmpdir);
	test_links();
	test_merge();
	test_broken(dirfd);
	test_long_chain();
	test_abi();
	close(dirfd);
	for (int k = 0; k < NLINK; k++)
		for (uint32_t r = 0; r < NREG; r++) {
			free(links[k].mem[r]);
			free(links[k].lost[r]);
		}
	if (failures > 0 || getenv("TEST_KEEP") != NULL) {
		fprintf(stderr, "test_chain: %d failures; files kept in %s\n",
		    failures, tmpdir);
		return failures > 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_chain: could not remove %s\n", tmpdir);
	printf("test_chain: all passed\n");
	return 0;
}
