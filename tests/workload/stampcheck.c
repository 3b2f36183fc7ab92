/*
 * stampcheck: check offline that a snapshot of stampwork is one instant of
 * its memory.
 *
 *	stampcheck [--json] [--marker TEXT] [--not-marker TEXT] INFO SNAPSHOT
 *
 * INFO is the file stampwork wrote with --info; SNAPSHOT a zsnap file or a
 * raw directory (read with libsnapclient's reader, so both formats are
 * checked the same way).  The data region is put back together from every
 * region of the snapshot that overlaps it (the kernel may have merged the
 * mapping with a neighbour, so one region can be larger); a page no region
 * covers is missing, a LOST page wrong.  Then, as stamp.h says:
 *   - for every writer there is one cut: each page of its part holds the
 *     stamp of its last write at or before the cut (0 pages violating;
 *     the write at the cut may be half done, "in flight");
 *   - the never-touched pages are zero;
 *   - the marker page holds --marker TEXT, and not --not-marker TEXT (the
 *     marker written before the snapshot, and the one written after it
 *     was armed).
 * It prints the figures (one JSON object with --json) and exits 0 if all
 * hold, 1 if any does not, 2 on a usage error or a file it cannot read.
 */
#include <sys/mman.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "snapclient.h"
#include "stamp.h"
#include "workload.h"

#define FILL_BYTE	0xa5	/* pages no region restored keep it */

struct layout {
	uint64_t	 start;
	uint64_t	 size;
	unsigned	 threads;
	uint64_t	 pages_per_thread;
	uint64_t	 untouched_first;
	uint64_t	 untouched;
};

static void
usage(void)
{
	fprintf(stderr, "usage: stampcheck [--json] [--marker TEXT] "
	    "[--not-marker TEXT] INFO SNAPSHOT\n");
	exit(2);
}

static uint64_t
info_u64(json_t *o, const char *key, const char *path)
{
	json_t	*v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		fprintf(stderr, "stampcheck: %s: no %s\n", path, key);
		exit(2);
	}
	return (uint64_t)json_integer_value(v);
}

static void
layout_read(const char *path, struct layout *l)
{
	json_error_t	 err;
	json_t		*o;
	uint64_t	 page;

	if ((o = json_load_file(path, 0, &err)) == NULL) {
		fprintf(stderr, "stampcheck: %s: %s\n", path, err.text);
		exit(2);
	}
	l->start = info_u64(o, "region-start", path);
	l->size = info_u64(o, "region-size", path);
	l->threads = (unsigned)info_u64(o, "threads", path);
	l->pages_per_thread = info_u64(o, "pages-per-thread", path);
	l->untouched_first = info_u64(o, "untouched-first-page", path);
	l->untouched = info_u64(o, "untouched-pages", path);
	page = info_u64(o, "page-size", path);
	json_decref(o);
	if (page != STAMP_PAGE_SIZE ||
	    l->threads == 0 || l->threads > STAMP_THREADS_MAX ||
	    (1 + l->threads * l->pages_per_thread) > l->untouched_first ||
	    (l->untouched_first + l->untouched) * STAMP_PAGE_SIZE > l->size) {
		fprintf(stderr, "stampcheck: %s: not a layout stamp.h "
		    "describes\n", path);
		exit(2);
	}
}

static void *
map_pages(uint64_t bytes)
{
	void	*p;

	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %s", bytes, strerror(errno));
	return p;
}

/*
 * Put stampwork's region back together in img (pre-filled with
 * FILL_BYTE) from every snapshot region overlapping it; returns the pages
 * no region covered, *lost the LOST pages among those restored.
 */
static uint64_t
image_restore(const char *path, const struct layout *l, uint8_t *img,
    uint64_t *lost, uint32_t *used)
{
	struct snap_file_info	 info;
	struct snap_file_region	 r;
	struct snap_file	*f;
	uint8_t			*buf, *covered;
	uint64_t		 lo, hi, n, p, missing = 0;
	uint32_t		 i;

	if ((f = snap_file_open(path)) == NULL ||
	    snap_file_info(f, &info) == -1)
		die("%s", snap_strerror(NULL));
	memset(img, FILL_BYTE, l->size);
	covered = calloc(l->size / STAMP_PAGE_SIZE, 1);
	if (covered == NULL)
		die("out of memory");
	*lost = 0;
	*used = 0;
	for (i = 0; i < info.region_count; i++) {
		if (snap_file_region(f, i, &r) == -1)
			die("%s", snap_strerror(NULL));
		lo = r.start > l->start ? r.start : l->start;
		hi = r.start + r.length < l->start + l->size ?
		    r.start + r.length : l->start + l->size;
		if (lo >= hi)
			continue;
		(*used)++;
		buf = map_pages(r.length);
		memset(buf, FILL_BYTE, r.length);
		if (snap_file_restore(f, i, buf, r.length, &n) == -1)
			die("%s", snap_strerror(NULL));
		*lost += n;
		memcpy(img + (lo - l->start), buf + (lo - r.start), hi - lo);
		memset(covered + (lo - l->start) / STAMP_PAGE_SIZE, 1,
		    (hi - lo) / STAMP_PAGE_SIZE);
		munmap(buf, r.length);
	}
	for (p = 0; p < l->size / STAMP_PAGE_SIZE; p++)
		missing += covered[p] == 0;
	free(covered);
	snap_file_close(f);
	return missing;
}

/* Does the marker page hold exactly text (zero-padded)? */
static int
marker_is(const uint8_t *page, const char *text)
{
	size_t	 len = strlen(text), i;

	if (len >= STAMP_PAGE_SIZE || memcmp(page, text, len) != 0)
		return 0;
	for (i = len; i < STAMP_PAGE_SIZE; i++) {
		if (page[i] != 0)
			return 0;
	}
	return 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json",	no_argument,		NULL, 'j' },
		{ "marker",	required_argument,	NULL, 'm' },
		{ "not-marker",	required_argument,	NULL, 'n' },
		{ NULL,		0,			NULL, 0 },
	};
	struct stamp_verdict	 v;
	struct layout		 l;
	const char		*marker = NULL, *not_marker = NULL;
	json_t			*report, *parts;
	uint8_t			*img;
	uint64_t		 wrong = 0, lost, missing, nonzero;
	uint32_t		 regions;
	unsigned		 t;
	int			 ch, json = 0, marker_ok = 1, bad;
	char			*s;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'm': marker = optarg; break;
		case 'n': not_marker = optarg; break;
		default: usage();
		}
	}
	if (argc - optind != 2)
		usage();
	layout_read(argv[optind], &l);
	img = map_pages(l.size);
	missing = image_restore(argv[optind + 1], &l, img, &lost, &regions);

	parts = json_array();
	for (t = 0; t < l.threads; t++) {
		stamp_check_part(img + (1 + t * l.pages_per_thread) *
		    STAMP_PAGE_SIZE, l.pages_per_thread, t, 0, 1, &v);
		wrong += v.wrong;
		json_array_append_new(parts, json_pack("{s:i, s:I, s:I, s:I, "
		    "s:I, s:I}", "thread", (int)t,
		    "cut", (json_int_t)v.cut,
		    "pages-written", (json_int_t)v.written,
		    "wrong-pages", (json_int_t)v.wrong,
		    "in-flight", (json_int_t)v.in_flight,
		    "first-wrong-page", (json_int_t)v.first_wrong));
		if (!json)
			printf("writer %u: cut at write %" PRIu64 ", %" PRIu64
			    " of %" PRIu64 " pages written, %" PRIu64
			    " wrong%s\n", t, v.cut, v.written,
			    l.pages_per_thread, v.wrong,
			    v.in_flight ? ", the write at the cut in flight" :
			    "");
	}
	nonzero = stamp_nonzero_pages(img + l.untouched_first *
	    STAMP_PAGE_SIZE, l.untouched);
	if (marker != NULL && !marker_is(img, marker))
		marker_ok = 0;
	if (not_marker != NULL && marker_is(img, not_marker))
		marker_ok = 0;
	bad = wrong > 0 || nonzero > 0 || missing > 0 || !marker_ok;

	report = json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
	    "writers", parts,
	    "wrong-pages", (json_int_t)wrong,
	    "untouched-nonzero", (json_int_t)nonzero,
	    "missing-pages", (json_int_t)missing,
	    "lost-pages", (json_int_t)lost,
	    "regions", (json_int_t)regions,
	    "marker-ok", marker_ok,
	    "ok", !bad);
	if (report == NULL)
		die("out of memory");
	json_object_set_new(report, "marker", json_stringn((const char *)img,
	    strnlen((const char *)img, 64)));
	if (json) {
		if ((s = json_dumps(report, JSON_COMPACT)) != NULL)
			printf("%s\n", s);
		free(s);
	} else {
		printf("untouched pages not zero: %" PRIu64 " of %" PRIu64
		    "\npages no region covers: %" PRIu64 "; lost: %" PRIu64
		    " (from %u regions)\nmarker: %s\n%s\n", nonzero,
		    l.untouched, missing, lost, regions,
		    marker_ok ? "as expected" : "WRONG",
		    bad ? "FAILED: not one instant" : "ok: one instant");
	}
	json_decref(report);
	return bad ? 1 : 0;
}
