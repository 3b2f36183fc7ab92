/*
 * Proving a snapshot whole: every page of every region covered by exactly
 * one extent (reader_check_coverage), and snap_file_verify(), which adds
 * every checksum of every chunk's data and the footer's counts.
 *
 * Coverage is checked without a bitmap.  A region may legitimately be 2^44
 * pages that a few ZERO runs describe in a few hundred bytes, so anything
 * sized by pages would let a crafted header cost gigabytes and minutes.
 * Instead the extents of all chunks are gathered as runs (an extent that
 * continues the previous run of its region is merged into it, so a
 * snapshot written in address order costs a run per region), sorted by
 * region and first page, and walked once: each region's runs must tile it
 * from page 0 to its end, with neither overlap nor gap.  Memory is one run
 * per extent at most, and every extent takes 24 bytes of the file; time is
 * one read of the chunks' metadata plus the sort, never a page at a time.
 *
 * Restore and export call the same check before writing anything
 * (reader-restore.c), so they refuse exactly the files verify refuses on
 * coverage, and a duplicated extent cannot hide a gap by keeping the page
 * count right.  The result is remembered in the struct snap_file: its
 * chunks are bound to the index read at open by their checksums.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "reader-internal.h"

static int
cover_run_compare(const void *a, const void *b)
{
	const struct reader_cover_run *x = a, *y = b;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * A run is pages of one region covered by one or more adjacent extents.
 * Add extent e, in the order the chunks hold them, merged into the last
 * run when it continues it: one run per extent read at most.  The array
 * grows by doubling.
 */
int
reader_cover_add(struct snap_file *f, struct reader_cover *l,
    const struct reader_extent *e)
{
	struct reader_cover_run *last = l->n > 0 ? &l->runs[l->n - 1] : NULL;

	/* first + count cannot wrap: both are below 2^44. */
	if (last != NULL && last->region == e->region &&
	    last->first + last->count == e->first) {
		last->count += e->count;
		return 0;
	}
	if (l->n == l->cap) {
		size_t	 ncap = l->cap ? l->cap * 2 : 256;
		void	*p = reallocarray(l->runs, ncap, sizeof(*l->runs));

		if (p == NULL) {
			reader_error(f, ENOMEM, "cannot allocate the coverage "
			    "list (%zu runs)", ncap);
			return -1;
		}
		l->runs = p;
		l->cap = ncap;
	}
	l->runs[l->n++] = (struct reader_cover_run){ e->first, e->count,
	    e->region };
	return 0;
}

/* Gather the extents of every chunk, from their metadata alone. */
static int
cover_gather(struct snap_file *f, struct reader_cover *l)
{
	struct reader_chunk	 c;

	for (uint64_t i = 0; i < f->info.chunk_count; i++) {
		if (reader_zsnap_chunk_load(f, i, &c) == -1)
			return -1;
		for (uint32_t k = 0; k < c.extent_count; k++)
			if (reader_cover_add(f, l, &f->extents[k]) == -1)
				return -1;
	}
	return 0;
}

/*
 * Page of region is covered twice: name the chunks of the first two
 * extents covering it (one more read of the chunks' metadata).
 */
static void
cover_report_twice(struct snap_file *f, uint32_t region, uint64_t page)
{
	struct reader_chunk	c;
	uint64_t		found[2] = { NO_CHUNK, NO_CHUNK };
	int			n = 0;

	for (uint64_t i = 0; i < f->info.chunk_count && n < 2; i++) {
		if (reader_zsnap_chunk_load(f, i, &c) == -1)
			break;
		for (uint32_t k = 0; k < c.extent_count && n < 2; k++) {
			const struct reader_extent *e = &f->extents[k];

			if (e->region == region && page >= e->first &&
			    page - e->first < e->count)
				found[n++] = i;
		}
	}
	if (n < 2)
		reader_error(f, EBADMSG, "region %u page %llu: covered twice",
		    region, (unsigned long long)page);
	else if (found[0] == found[1])
		reader_error(f, EBADMSG, "region %u page %llu: covered twice "
		    "(both in chunk %llu)", region, (unsigned long long)page,
		    (unsigned long long)found[0]);
	else
		reader_error(f, EBADMSG, "region %u page %llu: covered twice "
		    "(chunks %llu and %llu)", region, (unsigned long long)page,
		    (unsigned long long)found[0], (unsigned long long)found[1]);
}

static void
cover_report_gap(struct snap_file *f, uint32_t region, uint64_t first,
    uint64_t end)
{
	reader_error(f, EBADMSG, "region %u page %llu: not covered by any "
	    "extent (pages %llu to %llu missing)", region,
	    (unsigned long long)first, (unsigned long long)first,
	    (unsigned long long)(end - 1));
}

/*
 * Runs sorted by region and first page: each region's must start at page
 * 0, each start where the previous ended, and the last end at the region's
 * end.  The lowest page at fault is reported, a gap or a page covered twice.
 */
static int
cover_walk(struct snap_file *f, const struct reader_cover_run *runs, size_t n)
{
	uint32_t	region = 0;
	uint64_t	next = 0;	/* the region's pages below are covered */

	for (size_t k = 0; k < n; k++) {
		const struct reader_cover_run *r = &runs[k];

		for (; region < r->region; region++, next = 0) {
			if (next != f->region_pages[region]) {
				cover_report_gap(f, region, next,
				    f->region_pages[region]);
				return -1;
			}
		}
		if (r->first > next) {
			cover_report_gap(f, region, next, r->first);
			return -1;
		}
		if (r->first < next) {
			cover_report_twice(f, region, r->first);
			return -1;
		}
		next = r->first + r->count;
	}
	for (; region < f->info.region_count; region++, next = 0) {
		if (next != f->region_pages[region]) {
			cover_report_gap(f, region, next, f->region_pages[region]);
			return -1;
		}
	}
	return 0;
}

/* The gathered runs tile every region: remembered in f->covered. */
int
reader_cover_check(struct snap_file *f, struct reader_cover *l)
{
	if (l->n > 1)
		qsort(l->runs, l->n, sizeof(*l->runs), cover_run_compare);
	if (cover_walk(f, l->runs, l->n) == -1)
		return -1;
	f->covered = 1;
	return 0;
}

int
reader_check_coverage(struct snap_file *f)
{
	struct reader_cover	 l = { NULL, 0, 0 };
	int			 rc;

	/* A raw snapshot covers every page by construction (reader-raw.c). */
	if (f->format != 0 || f->covered)
		return 0;
	rc = cover_gather(f, &l) == -1 ? -1 : reader_cover_check(f, &l);
	free(l.runs);
	return rc;
}

/* ---- verify ---------------------------------------------------------------- */

struct verify_state {
	uint64_t		pages[4];	/* by kind */
	int			gather;		/* coverage not proven yet */
	struct reader_cover	cover;
};

static int
verify_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct verify_state	*v = arg;

	v->pages[e->kind] += e->count;
	return v->gather ? reader_cover_add(f, &v->cover, e) : 0;
}

static int
verify_totals(struct snap_file *f, const struct verify_state *v)
{
	static const char *const what[3] = { "data", "zero", "lost" };
	const uint64_t	 said[3] = { f->info.pages_data, f->info.pages_zero,
	    f->info.pages_lost };
	const char	*where = f->format == 0 ? "footer" : "snapshot.json";
	uint64_t	 total = 0;

	for (uint32_t i = 0; i < f->info.region_count; i++)
		total += f->region_pages[i];
	if (total != f->info.pages_total) {
		reader_error(f, EBADMSG, "%s says %llu pages in all, the region "
		    "table holds %llu", where,
		    (unsigned long long)f->info.pages_total,
		    (unsigned long long)total);
		return -1;
	}
	for (int k = 0; k < 3; k++) {
		if (v->pages[k] != said[k]) {
			reader_error(f, EBADMSG, "%s says %llu %s pages, the "
			    "snapshot holds %llu", where,
			    (unsigned long long)said[k], what[k],
			    (unsigned long long)v->pages[k]);
			return -1;
		}
	}
	if ((v->pages[ZSNAP_EXTENT_LOST] > 0) !=
	    ((f->flags & ZSNAP_F_LOST_PAGES) != 0)) {
		reader_error(f, EBADMSG, "%s: the lost-pages flag is %s but %llu "
		    "pages are lost", where,
		    (f->flags & ZSNAP_F_LOST_PAGES) ? "set" : "clear",
		    (unsigned long long)v->pages[ZSNAP_EXTENT_LOST]);
		return -1;
	}
	return 0;
}

/* The process record, when there is one: its crc and its structure. */
static int
verify_process(struct snap_file *f)
{
	uint8_t	*buf;
	size_t	 len;

	if (!f->process)
		return 0;
	if (reader_process_load(f, &buf, &len) == -1)
		return -1;
	free(buf);
	return 0;
}

/*
 * One pass over the chunks: every chunk's metadata and data, whose
 * checksums the walk checks, with every extent gathered for the coverage
 * check as it goes (the same runs reader_check_coverage() gathers, in the
 * same order), which is done once the walk is through; then the counts
 * (PARENT pages are what the footer's DATA, ZERO and LOST leave over).
 * Restore and export check coverage in a pass of its own before they
 * write anything; verify writes nothing, so one read of the file is
 * enough, which matters when it is an object in S3 (reader-s3.c).  The
 * page counts cannot wrap: once coverage holds they add up to the
 * regions' pages, below 2^60.
 */
int
reader_verify_one(struct snap_file *f)
{
	struct verify_state	v;
	int			rc = -1;

	memset(&v, 0, sizeof(v));
	v.gather = f->format == 0 && !f->covered;
	if (reader_walk(f, ALL_REGIONS, 1, verify_extent, &v) == 0 &&
	    (!v.gather || reader_cover_check(f, &v.cover) == 0) &&
	    verify_totals(f, &v) == 0 && verify_process(f) == 0)
		rc = 0;
	free(v.cover.runs);
	return rc;
}

/*
 * The file, then its chain: every link opened and checked (which ties
 * each parent to its child by the crc of its index), then every parent
 * verified as fully as the file, its faults blamed on its link.
 */
int
snap_file_verify(struct snap_file *f)
{
	if (f == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_verify: no file");
		return -1;
	}
	if (reader_verify_one(f) == -1 || reader_chain_open(f) == -1)
		return -1;
	for (struct snap_file *child = f; child->parent != NULL;
	    child = child->parent) {
		int verified = reader_verify_one(child->parent);

		reader_drop_buffers(child->parent);
		if (verified == -1) {
			reader_chain_blame(f, child);
			return -1;
		}
	}
	return 0;
}
