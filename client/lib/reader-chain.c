/*
 * Incremental snapshots (zsnap 1.2): a file with a parent frame stores the
 * pages that changed since its parent and PARENT extents for the rest; the
 * parent may be incremental too, down to a full snapshot, the base.
 *
 * Opening the chain (reader_chain_open) is lazy: snap_file_open() reads
 * the link but opens no other file, so `memsnapctl info` can describe a
 * file whose chain is broken.  Verify, restore, read and export open it
 * when they need it.  Each parent is found by the file name its child
 * records, in the directory of the first file (opened once and kept: all
 * links live in it), with openat(O_NOFOLLOW), so a link can name neither
 * another directory nor a symbolic link, and a FIFO or a device is
 * refused, not read.  For a file in S3 the parent is the object of that
 * name beside it: the same bucket and key prefix (reader-s3.c).  A parent is accepted only when it is the one the
 * link describes: its header's name and armed time, the crc32c ending its
 * index (which covers every chunk's crc, so every page), the same region
 * table, and a depth one less than its child's (0 for the base).  Depths
 * fall by one at each link and the first is at most READER_CHAIN_MAX, so
 * the walk down ends and a chain cannot loop.  Anything else is a broken
 * chain, and the message names the link: "chain link b.zsnap -> a.zsnap:
 * a.zsnap is missing".
 *
 * Reading through a chain (reader_chain_walk) goes from the newest file
 * down, never a page at a time: the pages asked for are a sorted list of
 * ranges; each link's extents are walked once, the ranges they hold as
 * DATA, ZERO or LOST are handed out, and the ranges they hold as PARENT
 * become the list for the next link.  So every page comes from the newest
 * link that saved it, at that link's armed instant (a page LOST there
 * stays lost, however its parent held it), and the lists hold at most one
 * range per extent read: memory and time follow the files' bytes, not the
 * pages they describe.
 *
 * A struct snap_file and its parents are used by one thread at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "reader-internal.h"

static const char *
base_name(const char *path)
{
	const char	*slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

/* "TOP: chain link CHILD -> PARENT: <fmt>", errno err. */
static void
chain_link_error(struct snap_file *top, const struct snap_file *child,
    int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
chain_link_error(struct snap_file *top, const struct snap_file *child,
    int err, const char *fmt, ...)
{
	char	msg[SC_ERROR_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reader_error(top, err, "chain link %s -> %s: %s", base_name(child->path),
	    child->link.file, msg);
}

void
reader_chain_blame(struct snap_file *top, const struct snap_file *child)
{
	char	msg[SC_ERROR_MAX];
	int	err = errno;

	snprintf(msg, sizeof(msg), "%s", sc_error(NULL));
	chain_link_error(top, child, err, "%s", msg);
}

/* The directory holding top's file: every link of its chain is there. */
static int
chain_open_dir(struct snap_file *top)
{
	char		 dir[PATH_MAX];
	const char	*slash = strrchr(top->path, '/');

	if (top->dirfd != -1 || top->s3 != NULL)
		return 0;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == top->path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - top->path),
		    top->path);
	top->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top->dirfd == -1) {
		reader_error(top, errno, "chain: open the directory %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Is p the parent child's link describes?  Says why not. */
static int
chain_check_link(struct snap_file *top, const struct snap_file *child,
    const struct snap_file *p)
{
	const struct zsnap_parent *l = &child->link;
	uint32_t	 want_depth = l->depth - 1;
	uint32_t	 depth = p->has_parent ? p->link.depth : 0;

	if (memcmp(p->raw_name, l->name, ZSNAP_NAME_MAX) != 0 ||
	    p->info.armed_realtime_ns != l->armed_realtime_ns) {
		chain_link_error(top, child, EBADMSG, "%s is not the parent "
		    "recorded (it is snapshot \"%s\" armed at %llu ns, the link "
		    "names \"%.*s\" armed at %llu ns)", l->file, p->info.name,
		    (unsigned long long)p->info.armed_realtime_ns,
		    (int)strnlen(child->info.parent_name, ZSNAP_NAME_MAX),
		    child->info.parent_name,
		    (unsigned long long)l->armed_realtime_ns);
		return -1;
	}
	if (p->index_crc != l->index_crc) {
		chain_link_error(top, child, EBADMSG, "%s is not the parent "
		    "recorded (its index crc 0x%08x differs from 0x%08x: "
		    "another snapshot of that name, or altered since)", l->file,
		    p->index_crc, l->index_crc);
		return -1;
	}
	if (p->info.region_count != child->info.region_count) {
		chain_link_error(top, child, EBADMSG, "%s has another region "
		    "table (%u regions, this file %u)", l->file,
		    p->info.region_count, child->info.region_count);
		return -1;
	}
	for (uint32_t i = 0; i < p->info.region_count; i++) {
		const struct snap_file_region *a = &child->regions[i];
		const struct snap_file_region *b = &p->regions[i];

		if (a->start != b->start || a->length != b->length ||
		    strcmp(a->name, b->name) != 0) {
			chain_link_error(top, child, EBADMSG, "%s has another "
			    "region table (region %u: %s at %#llx, %llu bytes; "
			    "this file: %s at %#llx, %llu bytes)", l->file, i,
			    b->name, (unsigned long long)b->start,
			    (unsigned long long)b->length, a->name,
			    (unsigned long long)a->start,
			    (unsigned long long)a->length);
			return -1;
		}
	}
	if (depth != want_depth) {
		chain_link_error(top, child, EBADMSG, "wrong depth: %s is %u "
		    "links from the base, so its parent should be %u, but %s "
		    "is %u", base_name(child->path), l->depth, want_depth,
		    l->file, depth);
		return -1;
	}
	return 0;
}

/* Open child's parent in top's directory and check it is the right one. */
static struct snap_file *
chain_open_parent(struct snap_file *top, const struct snap_file *child)
{
	struct snap_file	*p;
	char			 path[PATH_MAX];
	const char		*file = child->link.file;
	int			 n, err;

	n = snprintf(path, sizeof(path), "%.*s%s",
	    (int)(base_name(top->path) - top->path), top->path, file);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		chain_link_error(top, child, ENAMETOOLONG, "%s: path too long",
		    file);
		return NULL;
	}
	if (top->s3 != NULL)
		p = reader_s3_open(path, top);
	else
		p = reader_open_at(top->dirfd, file, path, 1);
	if (p == NULL) {
		err = errno;
		if (err == ENOENT)
			chain_link_error(top, child, err, "%s is missing%s%s%s",
			    file, top->s3 != NULL ? " (no object " : "",
			    top->s3 != NULL ? path : "",
			    top->s3 != NULL ? ")" : "");
		else if (err == ELOOP)
			chain_link_error(top, child, err, "%s is a symbolic link, "
			    "which a chain does not follow", file);
		else
			reader_chain_blame(top, child);
		return NULL;
	}
	if (chain_check_link(top, child, p) == -1) {
		snap_file_close(p);
		errno = EBADMSG;
		return NULL;
	}
	/* An object's windows: the chain may be long; they come back. */
	reader_drop_buffers(p);
	return p;
}

/*
 * Open and check the first n links of f's chain (fewer if the base comes
 * first), those not open yet: a broken link further down does not keep
 * the ones above it from being described.
 */
static int
chain_open_links(struct snap_file *f, uint32_t n)
{
	struct snap_file	*child;
	uint32_t		 i;

	if (!f->has_parent || f->chain_open)
		return 0;
	if (chain_open_dir(f) == -1)
		return -1;
	/* Depths fall by one at each link (checked): this ends. */
	for (child = f, i = 0; child->has_parent && i < n;
	    child = child->parent, i++) {
		if (child->parent == NULL &&
		    (child->parent = chain_open_parent(f, child)) == NULL)
			return -1;
	}
	if (!child->has_parent)
		f->chain_open = 1;
	return 0;
}

int
reader_chain_open(struct snap_file *f)
{
	return chain_open_links(f, UINT32_MAX);
}

/* ---- reading through the chain ------------------------------------------ */

struct chain_range {
	uint32_t	region;
	uint64_t	first;
	uint64_t	count;
};

struct chain_walk {
	struct snap_file	*top;
	reader_apply		*apply;
	void			*arg;
	struct chain_range	*pending;	/* sorted, disjoint */
	size_t			 npending;
	struct chain_range	*next;		/* the parent's share */
	size_t			 nnext, capnext;
	uint64_t		 covered;	/* pages of pending handed out
						 * or passed down */
	int			 apply_failed;	/* the caller's failure, not
						 * the link's */
};

static int
chain_range_compare(const void *a, const void *b)
{
	const struct chain_range *x = a, *y = b;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

static int
chain_push(struct chain_walk *w, uint32_t region, uint64_t first,
    uint64_t count)
{
	struct chain_range	*last = w->nnext > 0 ? &w->next[w->nnext - 1] :
				    NULL;

	if (last != NULL && last->region == region &&
	    last->first + last->count == first) {
		last->count += count;
		return 0;
	}
	if (w->nnext == w->capnext) {
		size_t	 ncap = w->capnext ? w->capnext * 2 : 64;
		void	*p = reallocarray(w->next, ncap, sizeof(*w->next));

		if (p == NULL) {
			reader_error(w->top, ENOMEM, "cannot allocate a list of "
			    "%zu page ranges", ncap);
			return -1;
		}
		w->next = p;
		w->capnext = ncap;
	}
	w->next[w->nnext++] = (struct chain_range){ region, first, count };
	return 0;
}

/*
 * One extent of the link being walked: hand out what it holds of the
 * pending ranges, or pass it down when it is PARENT.  The first pending
 * range that may overlap is found by binary search.
 */
static int
chain_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct chain_walk	*w = arg;
	size_t			 lo = 0, hi = w->npending;
	uint64_t		 end = e->first + e->count;

	while (lo < hi) {
		size_t			 mid = lo + (hi - lo) / 2;
		const struct chain_range *r = &w->pending[mid];

		if (r->region < e->region || (r->region == e->region &&
		    r->first + r->count <= e->first))
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < w->npending; lo++) {
		const struct chain_range *r = &w->pending[lo];
		uint64_t a, b;

		if (r->region != e->region || r->first >= end)
			break;
		a = r->first > e->first ? r->first : e->first;
		b = r->first + r->count < end ? r->first + r->count : end;
		if (a >= b)
			continue;
		w->covered += b - a;
		if (e->kind == ZSNAP_EXTENT_PARENT) {
			if (chain_push(w, e->region, a, b - a) == -1)
				return -1;
		} else if (w->apply(w->top, w->arg, e->region, a, b - a, e->kind,
		    e->kind == ZSNAP_EXTENT_DATA ? data + (size_t)(a - e->first) *
		    ZSNAP_PAGE_SIZE : NULL) == -1) {
			w->apply_failed = 1;
			return -1;
		}
	}
	return 0;
}

/* Walk one link over the pending ranges; 0 or -1 with the message set. */
static int
chain_walk_link(struct chain_walk *w, struct snap_file *link)
{
	uint64_t	 want = 0, lo, hi;
	uint32_t	 region = w->pending[0].region;
	int		 one_region = 1;

	for (size_t i = 0; i < w->npending; i++) {
		want += w->pending[i].count;
		if (w->pending[i].region != region)
			one_region = 0;
	}
	w->covered = 0;
	if (reader_check_coverage(link) == -1)
		return -1;
	if (one_region) {
		lo = w->pending[0].first;
		hi = w->pending[w->npending - 1].first +
		    w->pending[w->npending - 1].count;
		if (reader_walk_pages(link, region, lo, hi - lo, chain_extent,
		    w) == -1)
			return -1;
	} else if (reader_walk(link, ALL_REGIONS, 0, chain_extent, w) == -1)
		return -1;
	if (w->covered != want) {
		reader_error(link, EBADMSG, "%llu of the %llu pages asked of "
		    "it are covered", (unsigned long long)w->covered,
		    (unsigned long long)want);
		return -1;
	}
	return 0;
}

/* The next link's ranges, sorted and merged, become the pending ones. */
static void
chain_descend(struct chain_walk *w)
{
	size_t	n = 0;

	if (w->nnext > 1)
		qsort(w->next, w->nnext, sizeof(*w->next), chain_range_compare);
	for (size_t i = 0; i < w->nnext; i++) {
		struct chain_range *r = &w->next[i];

		if (n > 0 && w->next[n - 1].region == r->region &&
		    w->next[n - 1].first + w->next[n - 1].count == r->first)
			w->next[n - 1].count += r->count;
		else
			w->next[n++] = *r;
	}
	free(w->pending);
	w->pending = w->next;
	w->npending = n;
	w->next = NULL;
	w->nnext = w->capnext = 0;
}

int
reader_chain_walk(struct snap_file *f, uint32_t region, uint64_t first,
    uint64_t count, reader_apply *apply, void *arg)
{
	struct chain_walk	 w;
	struct snap_file	*link = f, *child = NULL;
	int			 rc = -1;

	memset(&w, 0, sizeof(w));
	w.top = f;
	w.apply = apply;
	w.arg = arg;
	w.npending = region == ALL_REGIONS ? f->info.region_count : 1;
	if (count == 0)
		return 0;
	if ((w.pending = calloc(w.npending, sizeof(*w.pending))) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %zu page ranges",
		    w.npending);
		return -1;
	}
	if (region == ALL_REGIONS)
		for (uint32_t i = 0; i < f->info.region_count; i++)
			w.pending[i] = (struct chain_range){ i, 0,
			    f->region_pages[i] };
	else
		w.pending[0] = (struct chain_range){ region, first, count };

	for (;;) {
		int walked = chain_walk_link(&w, link);

		if (link != f)
			reader_drop_buffers(link);
		if (walked == -1) {
			if (child != NULL && !w.apply_failed)
				reader_chain_blame(f, child);
			goto out;
		}
		chain_descend(&w);
		if (w.npending == 0)
			break;
		/* PARENT pages: only a file with a parent frame has them. */
		if (reader_chain_open(f) == -1)
			goto out;
		child = link;
		link = link->parent;
	}
	rc = 0;
out:
	free(w.pending);
	free(w.next);
	return rc;
}

/* ---- public ---------------------------------------------------------------- */

int
snap_file_chain_info(struct snap_file *f, uint32_t n,
    struct snap_file_info *info)
{
	struct snap_file	*link = f;

	if (f == NULL || info == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_chain_info: no file or no "
		    "info");
		return -1;
	}
	if (chain_open_links(f, n) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if ((link = link->parent) == NULL) {
			reader_error(f, EINVAL, "no link %u: the chain has %u",
			    n, i + 1);
			return -1;
		}
	}
	*info = link->info;
	return 0;
}

int
snap_file_whole(struct snap_file *f, uint32_t index,
    struct snap_file_whole *whole)
{
	if (f == NULL || whole == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_whole: no file or no "
		    "range");
		return -1;
	}
	if (index >= f->info.whole_count) {
		reader_error(f, EINVAL, "no whole range %u (the snapshot has "
		    "%u)", index, f->info.whole_count);
		return -1;
	}
	whole->region = f->whole[index].region;
	whole->reason = f->whole[index].reason;
	whole->first_page = f->whole[index].first_page;
	whole->page_count = f->whole[index].page_count;
	return 0;
}

const char *
snap_whole_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[ZSNAP_WHOLE_DISCARDED] = "discarded",
		[ZSNAP_WHOLE_UNMAPPED] = "unmapped",
		[ZSNAP_WHOLE_MOVED] = "moved",
		[ZSNAP_WHOLE_UNTRACKED] = "untracked",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason] != NULL)
		return names[reason];
	return "unknown";
}
