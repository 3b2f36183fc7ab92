/*
 * Snapshot output, the format-independent part: see output.h.
 *
 * output_open() copies the parameters and hands over to the encoder of the
 * chosen format (output-zsnap.c, output-raw.c, both behind struct
 * output_format_ops).  Every page that arrives is checked here against its
 * region, so an engine bug becomes a failed snapshot with a clear message,
 * never a file that lies; the counts kept here are what output_finish()
 * compares against the region sizes before anything is committed.
 *
 * Only the snapshot's writer thread calls into an output (no lock);
 * output_open_error() is thread-local because there is no output to hold
 * the message yet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "protocol.h"
#include "log.h"
#include "output-impl.h"
#include "utf8.h"

_Static_assert(ZSNAP_PAGE_SIZE == SNAPD_PAGE_SIZE,
    "the on-disk page is the page snapd works in");

static _Thread_local char	open_error[OUTPUT_ERROR_MAX];

/*
 * The process name as the snapshot records it.  /proc/PID/comm is whatever
 * bytes the process chose (prctl PR_SET_NAME), or a UTF-8 name cut at 15
 * bytes, but snapshot.json and every reader need valid UTF-8: a name that
 * is not keeps its ASCII and gets '?' for every other byte.
 */
static char *
output_comm(const char *comm)
{
	char	*s = xstrdup(comm != NULL ? comm : "");

	utf8_sanitize(s);
	return s;
}

static void
output_free(struct output *out)
{
	free(out->regions);
	free(out->name);
	free(out->comm);
	free(out->procrec);
	free(out->parent);
	free(out->whole);
	free(out);
}

/*
 * Keep our own copy of the process record: its size is the process's
 * (threads, mappings), so running out fails this snapshot, not the daemon.
 * A skippable frame's size is 32 bits.
 */
static int
output_copy_procrec(struct output *out, const struct output_params *params)
{
	out->params.procrec = NULL;
	out->params.procrec_len = 0;
	if (params->procrec == NULL || params->procrec_len == 0)
		return 0;
	if (params->procrec_len > UINT32_MAX - ZSNAP_SKIP_HDR_SIZE) {
		snprintf(open_error, sizeof(open_error), "snapshot %s: process "
		    "record of %zu bytes is too large", params->name,
		    params->procrec_len);
		errno = EINVAL;
		return -1;
	}
	if ((out->procrec = malloc(params->procrec_len)) == NULL) {
		snprintf(open_error, sizeof(open_error), "snapshot %s: process "
		    "record of %zu bytes: %s", params->name,
		    params->procrec_len, strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	memcpy(out->procrec, params->procrec, params->procrec_len);
	out->params.procrec = out->procrec;
	out->params.procrec_len = params->procrec_len;
	return 0;
}

/*
 * An incremental snapshot's link to its parent (the parent frame), checked
 * as a reader will check it, so snapd never writes a link a reader must
 * refuse: a file name that could leave the directory, a depth of 0, more
 * whole ranges than the format allows, a whole range outside its region
 * or with an unknown reason.  Then copied, with the whole ranges.
 */
static int
output_copy_parent(struct output *out, const struct output_params *params)
{
	const struct zsnap_parent *pa = params->parent;
	size_t		 flen;

	out->params.parent = NULL;
	out->params.whole = NULL;
	if (pa == NULL)
		return 0;
	flen = strnlen(pa->file, sizeof(pa->file));
	if (flen == 0 || flen == sizeof(pa->file) ||
	    memchr(pa->file, '/', flen) != NULL ||
	    strcmp(pa->file, ".") == 0 || strcmp(pa->file, "..") == 0) {
		snprintf(open_error, sizeof(open_error), "snapshot %s: parent "
		    "file \"%.*s\" is not a file name of this directory",
		    params->name, (int)flen, pa->file);
		errno = EINVAL;
		return -1;
	}
	if (pa->depth == 0 || pa->whole_count > ZSNAP_WHOLE_MAX ||
	    (pa->whole_count > 0 && params->whole == NULL)) {
		snprintf(open_error, sizeof(open_error), "snapshot %s: parent "
		    "%s: depth %u and %u whole ranges (the depth is at least "
		    "1, the ranges at most %u and given)", params->name,
		    pa->file, pa->depth, pa->whole_count, ZSNAP_WHOLE_MAX);
		errno = EINVAL;
		return -1;
	}
	for (uint32_t i = 0; i < pa->whole_count; i++) {
		const struct zsnap_whole *w = &params->whole[i];
		uint64_t pages = w->region < params->region_count ?
		    params->regions[w->region].length / ZSNAP_PAGE_SIZE : 0;

		if (w->reason < ZSNAP_WHOLE_DISCARDED ||
		    w->reason > ZSNAP_WHOLE_UNTRACKED || w->page_count == 0 ||
		    w->first_page >= pages ||
		    w->page_count > pages - w->first_page) {
			snprintf(open_error, sizeof(open_error), "snapshot %s: "
			    "whole range %u (region %u, pages %llu+%llu, reason "
			    "%u) is outside the regions or has no known reason",
			    params->name, i, w->region,
			    (unsigned long long)w->first_page,
			    (unsigned long long)w->page_count, w->reason);
			errno = EINVAL;
			return -1;
		}
	}
	out->parent = xmalloc(sizeof(*out->parent));
	*out->parent = *pa;
	out->params.parent = out->parent;
	if (pa->whole_count > 0) {
		out->whole = xcalloc(pa->whole_count, sizeof(*out->whole));
		memcpy(out->whole, params->whole,
		    pa->whole_count * sizeof(*out->whole));
		out->params.whole = out->whole;
	}
	return 0;
}

struct output *
output_open(const struct output_params *params)
{
	struct output	*out;
	uint64_t	 total = 0;

	if (params->region_count == 0) {
		snprintf(open_error, sizeof(open_error),
		    "snapshot %s: no regions", params->name);
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t i = 0; i < params->region_count; i++) {
		const struct output_region *r = &params->regions[i];

		if (r->length == 0 || r->length % ZSNAP_PAGE_SIZE != 0 ||
		    r->start % ZSNAP_PAGE_SIZE != 0 ||
		    memchr(r->name, '\0', sizeof(r->name)) == NULL) {
			snprintf(open_error, sizeof(open_error),
			    "snapshot %s: region %u (start %#llx, length %llu): "
			    "not page-aligned, empty or badly named",
			    params->name, i, (unsigned long long)r->start,
			    (unsigned long long)r->length);
			errno = EINVAL;
			return NULL;
		}
		total += r->length / ZSNAP_PAGE_SIZE;
	}
	if (params->level < SNAPD_LEVEL_MIN || params->level > SNAPD_LEVEL_MAX) {
		snprintf(open_error, sizeof(open_error),
		    "snapshot %s: compression level %d is not in %d..%d",
		    params->name, params->level, SNAPD_LEVEL_MIN,
		    SNAPD_LEVEL_MAX);
		errno = EINVAL;
		return NULL;
	}

	out = xcalloc(1, sizeof(*out));
	out->params = *params;
	out->regions = xcalloc(params->region_count, sizeof(*out->regions));
	memcpy(out->regions, params->regions,
	    params->region_count * sizeof(*out->regions));
	out->params.regions = out->regions;
	out->name = xstrdup(params->name);
	out->params.name = out->name;
	out->comm = output_comm(params->comm);
	out->params.comm = out->comm;
	out->pages_total = total;
	if (output_copy_procrec(out, params) == -1 ||
	    output_copy_parent(out, params) == -1) {
		output_free(out);
		return NULL;
	}
	if (out->params.mode == 0)
		out->params.mode = 0600;

	switch (params->format) {
	case OUTPUT_ZSNAP:
		out->ops = &output_zsnap_ops;
		break;
	case OUTPUT_RAW:
		out->ops = &output_raw_ops;
		break;
	default:
		snprintf(open_error, sizeof(open_error),
		    "snapshot %s: unknown output format %d", params->name,
		    (int)params->format);
		output_free(out);
		errno = EINVAL;
		return NULL;
	}
	if (out->ops->open(out) == -1) {
		int saved = errno;

		snprintf(open_error, sizeof(open_error), "%s", out->error);
		out->ops->close(out);
		output_free(out);
		errno = saved;
		return NULL;
	}
	return out;
}

const char *
output_open_error(void)
{
	return open_error;
}

/* Is [first, first + npages) inside region? Sets the error if not. */
static int
output_check_range(struct output *out, const char *what, uint32_t region,
    uint64_t first, uint64_t npages)
{
	uint64_t	 pages;

	if (out->failed) {
		/* Keep the first failure's message: it says what went wrong. */
		errno = EIO;
		return -1;
	}
	if (out->finished) {
		output_set_error(out, "snapshot %s: %s after the output was "
		    "finished", out->name, what);
		errno = EINVAL;
		return -1;
	}
	if (region >= out->params.region_count) {
		output_set_error(out, "snapshot %s: %s for region %u, but there "
		    "are %u regions", out->name, what, region,
		    out->params.region_count);
		errno = EINVAL;
		return -1;
	}
	pages = out->regions[region].length / ZSNAP_PAGE_SIZE;
	if (npages == 0 || first >= pages || npages > pages - first) {
		output_set_error(out, "snapshot %s: %s %llu..%llu outside region "
		    "%u (%llu pages)", out->name, what,
		    (unsigned long long)first,
		    (unsigned long long)(first + npages),
		    region, (unsigned long long)pages);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int
output_pages(struct output *out, uint32_t region, uint64_t first,
    uint32_t npages, const void *data)
{
	if (output_check_range(out, "pages", region, first, npages) == -1)
		return -1;
	if (out->ops->pages(out, region, first, npages, data) == -1) {
		out->failed = 1;
		return -1;
	}
	return 0;
}

/*
 * A run of pages that takes no data (LOST, PARENT): checked, handed to the
 * encoder's op and counted in *count.
 */
static int
output_run(struct output *out, const char *what,
    int (*op)(struct output *, uint32_t, uint64_t, uint64_t), uint64_t *count,
    uint32_t region, uint64_t first, uint64_t npages)
{
	if (output_check_range(out, what, region, first, npages) == -1)
		return -1;
	if (op(out, region, first, npages) == -1) {
		out->failed = 1;
		return -1;
	}
	*count += npages;
	return 0;
}

int
output_lost(struct output *out, uint32_t region, uint64_t first,
    uint64_t npages)
{
	return output_run(out, "lost pages", out->ops->lost, &out->pages_lost,
	    region, first, npages);
}

int
output_unchanged(struct output *out, uint32_t region, uint64_t first,
    uint64_t npages)
{
	if (out->parent == NULL) {
		if (!out->failed)
			output_set_error(out, "snapshot %s: unchanged pages "
			    "%llu+%llu of region %u, but the snapshot is not "
			    "incremental (it has no parent)", out->name,
			    (unsigned long long)first,
			    (unsigned long long)npages, region);
		errno = EINVAL;
		return -1;
	}
	return output_run(out, "unchanged pages", out->ops->unchanged,
	    &out->pages_parent, region, first, npages);
}

uint64_t
output_bytes(const struct output *out)
{
	return out->ops->bytes(out);
}

int
output_finish(struct output *out, struct output_result *result)
{
	uint64_t	saved;

	if (out->failed) {
		errno = EIO;
		return -1;
	}
	if (out->finished) {
		output_set_error(out, "snapshot %s: finished twice", out->name);
		errno = EINVAL;
		return -1;
	}
	/*
	 * No half snapshot looks whole: if the engine gave fewer pages than
	 * the regions hold, refuse to write an index that would claim them.
	 */
	saved = out->pages_data + out->pages_zero + out->pages_lost +
	    out->pages_parent;
	if (saved != out->pages_total) {
		output_set_error(out, "snapshot %s: incomplete: %llu of %llu "
		    "pages saved", out->name, (unsigned long long)saved,
		    (unsigned long long)out->pages_total);
		out->failed = 1;
		errno = EIO;
		return -1;
	}
	memset(result, 0, sizeof(*result));
	if (out->ops->finish(out, result) == -1) {
		out->failed = 1;
		return -1;
	}
	out->finished = 1;
	result->pages_total = out->pages_total;
	result->pages_data = out->pages_data;
	result->pages_zero = out->pages_zero;
	result->pages_lost = out->pages_lost;
	result->pages_parent = out->pages_parent;
	return 0;
}

void
output_close(struct output *out)
{
	if (out == NULL)
		return;
	out->ops->close(out);
	output_free(out);
}

const char *
output_error(const struct output *out)
{
	return out->error;
}

void
output_set_hurry(struct output *out, int hurry)
{
	out->hurry = hurry;
}

uint64_t
output_hurried(const struct output *out)
{
	return out->hurried;
}
