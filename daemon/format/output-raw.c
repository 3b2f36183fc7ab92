/*
 * The raw encoder: a directory NAME.raw with one sparse file "R.img" per
 * region (page i at offset i * ZSNAP_PAGE_SIZE, zero pages left as holes,
 * so the file can be mmap'ed as the region's memory) and "snapshot.json",
 * written last, describing the regions, the page counts and the LOST runs.
 *
 * The format and its atomic commit (".NAME.raw.tmp-PID", fsync of every
 * file and the directory, renameat2 into place) are proto/rawdir.c's, the
 * one writer the reader's export shares; this file only adapts it to
 * struct output and counts DATA and ZERO pages.  Raw is positional (pages
 * land at their offsets in any order), so it does not go through the
 * byte-stream sink as zsnap does.  Runs on the snapshot's writer thread.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "output-impl.h"
#include "rawdir.h"

static int
raw_open(struct output *out)
{
	const struct output_params *p = &out->params;
	struct rawdir_region	*regions;
	char			 name[NAME_MAX + 1], err[RAWDIR_ERROR_MAX];
	int			 n;

	if (p->parent != NULL) {
		output_set_error(out, "snapshot %s: incremental snapshots are "
		    "zsnap only (the raw format has no parent link)", p->name);
		errno = EINVAL;
		return -1;
	}
	if (p->sink != NULL) {
		output_set_error(out, "snapshot %s: the raw format writes files "
		    "in place, at their offsets, and cannot go to a stream "
		    "such as an S3 upload (use zsnap)", p->name);
		errno = EINVAL;
		return -1;
	}
	n = snprintf(name, sizeof(name), "%s%s", p->name, ZSNAP_RAW_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(name)) {
		output_set_error(out, "snapshot %s: name too long", p->name);
		errno = ENAMETOOLONG;
		return -1;
	}
	regions = xcalloc(p->region_count, sizeof(*regions));
	for (uint32_t i = 0; i < p->region_count; i++) {
		regions[i].start = p->regions[i].start;
		regions[i].length = p->regions[i].length;
		regions[i].name = p->regions[i].name;
	}
	out->priv = rawdir_open(p->dirfd, name, p->mode, p->owner_uid,
	    p->owner_gid, regions, p->region_count, err, sizeof(err));
	free(regions);
	if (out->priv == NULL) {
		output_set_error(out, "%s", err);
		return -1;
	}
	if (p->procrec != NULL &&
	    rawdir_process(out->priv, p->procrec, p->procrec_len) == -1) {
		output_set_error(out, "%s", rawdir_error(out->priv));
		return -1;
	}
	return 0;
}

static int
raw_pages(struct output *out, uint32_t region, uint64_t first,
    uint32_t npages, const void *data)
{
	struct rawdir	*rd = out->priv;
	uint64_t	 zero;

	if (rawdir_pages(rd, region, first, npages, data, &zero) == -1) {
		output_set_error(out, "%s", rawdir_error(rd));
		return -1;
	}
	out->pages_data += npages - zero;
	out->pages_zero += zero;
	return 0;
}

static int
raw_lost(struct output *out, uint32_t region, uint64_t first, uint64_t npages)
{
	struct rawdir	*rd = out->priv;

	if (rawdir_lost(rd, region, first, npages) == -1) {
		output_set_error(out, "%s", rawdir_error(rd));
		return -1;
	}
	return 0;
}

static uint64_t
raw_bytes(const struct output *out)
{
	return out->priv != NULL ? rawdir_bytes(out->priv) : 0;
}

static int
raw_finish(struct output *out, struct output_result *result)
{
	const struct output_params *p = &out->params;
	struct rawdir		*rd = out->priv;
	struct rawdir_info	 info = {
		.name = p->name,
		.pid = p->pid,
		.uid = p->uid,
		.comm = p->comm,
		.armed_realtime_ns = p->armed_realtime_ns,
		.pages_total = out->pages_total,
		.pages_data = out->pages_data,
		.pages_zero = out->pages_zero,
		.pages_lost = out->pages_lost,
	};

	if (rawdir_commit(rd, &info) == -1) {
		output_set_error(out, "%s", rawdir_error(rd));
		return -1;
	}
	result->bytes = rawdir_bytes(rd);
	snprintf(result->path, sizeof(result->path), "%s", rawdir_name(rd));
	return 0;
}

static void
raw_close(struct output *out)
{
	struct rawdir	*rd = out->priv;

	if (rd == NULL)
		return;
	/* Unless it is in place, remove the temporary directory. */
	if (rawdir_abort(rd) == -1)
		log_warnx("snapshot %s: %s", out->name, rawdir_error(rd));
	rawdir_free(rd);
	out->priv = NULL;
}

const struct output_format_ops output_raw_ops = {
	.open = raw_open,
	.pages = raw_pages,
	.lost = raw_lost,
	.unchanged = NULL,	/* raw_open() refuses a parent */
	.bytes = raw_bytes,
	.finish = raw_finish,
	.close = raw_close,
};
