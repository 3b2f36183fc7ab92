/*
 * The zsnap reader's chunks: a chunk's metadata read and checked against
 * the index, its extents parsed, its page data decompressed and checked,
 * and the walk that hands a region's pages to restore, read, verify and
 * export (reader-internal.h).  Split from reader.c, which opens the file.
 * The input is hostile: see reader.c's opening comment.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "crc32c.h"
#include "reader-internal.h"

/* ---- zsnap: chunks ------------------------------------------------------- */

/*
 * Read chunk i's metadata frame, payload bytes for the extent count the
 * index gives, into f->payload and check its checksum against itself and
 * against the index's; make room for its extents in f->extents.
 */
static int
zsnap_chunk_read_meta(struct snap_file *f, uint64_t i, uint64_t payload)
{
	const struct zsnap_index_entry *x = &f->index[i];
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE];
	uint32_t	 crc;

	if (reader_read(f, skip, sizeof(skip), x->offset,
	    "chunk") == -1)
		return -1;
	if (zsnap_get32(skip) != ZSNAP_FRAME_CHUNK || zsnap_get32(skip + 4) != payload) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: no chunk "
		    "frame of %u extents there (magic %#x, size %u)",
		    (unsigned long long)i, (unsigned long long)x->offset,
		    x->extent_count, zsnap_get32(skip), zsnap_get32(skip + 4));
		return -1;
	}
	if (reader_reserve(f, (void **)&f->payload, &f->payload_cap,
	    payload) == -1 ||
	    reader_reserve(f, (void **)&f->extents, &f->extents_cap,
	    x->extent_count * sizeof(*f->extents)) == -1)
		return -1;
	if (reader_read(f, f->payload, payload,
	    x->offset + ZSNAP_SKIP_HDR_SIZE, "chunk") == -1)
		return -1;
	crc = zsnap_get32(f->payload + payload - 4);
	if (crc32c(0, f->payload, payload - 4) != crc) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: header "
		    "checksum mismatch", (unsigned long long)i,
		    (unsigned long long)x->offset);
		return -1;
	}
	if (crc != x->chunk_crc) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: checksum "
		    "%08x does not match the index's %08x (a chunk from "
		    "elsewhere)", (unsigned long long)i,
		    (unsigned long long)x->offset, crc, x->chunk_crc);
		return -1;
	}
	return 0;
}

/*
 * Chunk c's extents at p into f->extents: each in an existing region, of a
 * known kind and inside its region; their DATA pages must add up to the
 * chunk header's count.
 */
static int
zsnap_chunk_parse_extents(struct snap_file *f, const struct reader_chunk *c,
    const unsigned char *p)
{
	unsigned long long i = c->index, offset = c->offset;
	uint64_t	 data_sum = 0;

	for (uint32_t k = 0; k < c->extent_count;
	    k++, p += sizeof(struct zsnap_extent)) {
		struct reader_extent *e = &f->extents[k];
		uint64_t pages;

		e->region = zsnap_get32(p + offsetof(struct zsnap_extent, region));
		e->kind = zsnap_get32(p + offsetof(struct zsnap_extent, kind));
		e->first = zsnap_get64(p + offsetof(struct zsnap_extent, first_page));
		e->count = zsnap_get64(p + offsetof(struct zsnap_extent, page_count));
		if (e->region >= f->info.region_count) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: region %u does not exist (%u regions)",
			    i, offset, k, e->region, f->info.region_count);
			return -1;
		}
		if (e->kind == ZSNAP_EXTENT_PARENT && !f->has_parent) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: PARENT pages in a snapshot without a "
			    "parent", i, offset, k);
			return -1;
		}
		if (e->kind > ZSNAP_EXTENT_PARENT) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: unknown kind %u", i, offset, k,
			    e->kind);
			return -1;
		}
		pages = f->region_pages[e->region];
		if (e->count == 0 || e->first >= pages ||
		    e->count > pages - e->first) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: region %u pages %llu+%llu outside the "
			    "region (%llu pages)", i, offset, k, e->region,
			    (unsigned long long)e->first,
			    (unsigned long long)e->count,
			    (unsigned long long)pages);
			return -1;
		}
		if (e->kind == ZSNAP_EXTENT_DATA)
			data_sum += e->count;
	}
	if (data_sum != c->data_pages) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: its DATA "
		    "extents hold %llu pages, its header says %u", i, offset,
		    (unsigned long long)data_sum, c->data_pages);
		return -1;
	}
	return 0;
}

/*
 * Read chunk i's metadata frame into f->extents and check it against the
 * index, the region table and itself.
 */
int
reader_zsnap_chunk_load(struct snap_file *f, uint64_t i, struct reader_chunk *c)
{
	const struct zsnap_index_entry *x = &f->index[i];
	const unsigned char *p;
	uint64_t	 payload;
	uint32_t	 seq;

	c->index = i;
	c->offset = x->offset;
	payload = sizeof(struct zsnap_chunk) +
	    (uint64_t)x->extent_count * sizeof(struct zsnap_extent) + 4;
	if (zsnap_chunk_read_meta(f, i, payload) == -1)
		return -1;
	p = f->payload;
	seq = zsnap_get32(p + offsetof(struct zsnap_chunk, seq));
	c->extent_count = zsnap_get32(p + offsetof(struct zsnap_chunk, extent_count));
	c->data_pages = zsnap_get32(p + offsetof(struct zsnap_chunk, data_pages));
	c->data_frame_size = zsnap_get32(p + offsetof(struct zsnap_chunk,
	    data_frame_size));
	c->data_crc = zsnap_get32(p + offsetof(struct zsnap_chunk, data_crc));
	if (seq != i || c->extent_count != x->extent_count) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: sequence %u "
		    "and %u extents, the index says %llu and %u",
		    (unsigned long long)i, (unsigned long long)x->offset, seq,
		    c->extent_count, (unsigned long long)i, x->extent_count);
		return -1;
	}
	if (ZSNAP_SKIP_HDR_SIZE + payload + c->data_frame_size != x->length) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: its frames "
		    "take %llu bytes, the index says %llu",
		    (unsigned long long)i, (unsigned long long)x->offset,
		    (unsigned long long)(ZSNAP_SKIP_HDR_SIZE + payload +
		    c->data_frame_size), (unsigned long long)x->length);
		return -1;
	}
	if (c->data_pages > READER_CHUNK_DATA_PAGES_MAX ||
	    (c->data_pages == 0) != (c->data_frame_size == 0)) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: %u data "
		    "pages in a zstd frame of %u bytes (at most %u pages "
		    "accepted, and a frame if and only if there are pages)",
		    (unsigned long long)i, (unsigned long long)x->offset,
		    c->data_pages, c->data_frame_size,
		    READER_CHUNK_DATA_PAGES_MAX);
		return -1;
	}

	return zsnap_chunk_parse_extents(f, c, p + sizeof(struct zsnap_chunk));
}

/* Read, decompress and check chunk c's page data into f->data. */
static int
zsnap_chunk_data(struct snap_file *f, const struct reader_chunk *c)
{
	size_t			 want = (size_t)c->data_pages * ZSNAP_PAGE_SIZE;
	size_t			 n;
	unsigned long long	 content;
	uint64_t		 frame_off;

	frame_off = c->offset + f->index[c->index].length - c->data_frame_size;
	if (c->data_frame_size > ZSTD_compressBound(want)) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: zstd frame "
		    "of %u bytes, more than %zu pages can compress to",
		    (unsigned long long)c->index, (unsigned long long)c->offset,
		    c->data_frame_size, want / ZSNAP_PAGE_SIZE);
		return -1;
	}
	if (reader_reserve(f, (void **)&f->frame, &f->frame_cap,
	    c->data_frame_size) == -1 ||
	    reader_reserve(f, (void **)&f->data, &f->data_cap, want) == -1)
		return -1;
	if (reader_read(f, f->frame, c->data_frame_size, frame_off,
	    "page data") == -1)
		return -1;
	if (c->data_frame_size < 4 || zsnap_get32(f->frame) != ZSTD_FRAME_MAGIC) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: page data "
		    "at offset %llu is not a zstd frame",
		    (unsigned long long)c->index, (unsigned long long)c->offset,
		    (unsigned long long)frame_off);
		return -1;
	}
	content = ZSTD_getFrameContentSize(f->frame, c->data_frame_size);
	if (content != want) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: page data "
		    "frame declares %s%llu bytes, expected %zu",
		    (unsigned long long)c->index, (unsigned long long)c->offset,
		    content == ZSTD_CONTENTSIZE_ERROR ? "(invalid) " :
		    content == ZSTD_CONTENTSIZE_UNKNOWN ? "(unknown) " : "",
		    content >= ZSTD_CONTENTSIZE_ERROR ? 0ull : content, want);
		return -1;
	}
	n = ZSTD_findFrameCompressedSize(f->frame, c->data_frame_size);
	if (ZSTD_isError(n) || n != c->data_frame_size) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: page data "
		    "corrupt: zstd frame %s (chunk says %u bytes)",
		    (unsigned long long)c->index, (unsigned long long)c->offset,
		    ZSTD_isError(n) ? ZSTD_getErrorName(n) : "has another size",
		    c->data_frame_size);
		return -1;
	}
	/* Made when first needed, and dropped with the buffers. */
	if (f->dctx == NULL && (f->dctx = ZSTD_createDCtx()) == NULL) {
		reader_error(f, ENOMEM, "cannot create a zstd decompression "
		    "context");
		return -1;
	}
	n = ZSTD_decompressDCtx(f->dctx, f->data, want, f->frame,
	    c->data_frame_size);
	if (ZSTD_isError(n) || n != want) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: page data "
		    "corrupt: zstd: %s", (unsigned long long)c->index,
		    (unsigned long long)c->offset, ZSTD_isError(n) ?
		    ZSTD_getErrorName(n) : "decompressed to the wrong size");
		return -1;
	}
	if (crc32c(0, f->data, want) != c->data_crc) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: page data "
		    "checksum mismatch", (unsigned long long)c->index,
		    (unsigned long long)c->offset);
		return -1;
	}
	return 0;
}

int
reader_zsnap_chunk_data(struct snap_file *f, const struct reader_chunk *c)
{
	return zsnap_chunk_data(f, c);
}

/* Is e of region (or ALL_REGIONS) and does it overlap pages [first, last)? */
static int
extent_wanted(const struct reader_extent *e, uint32_t region, uint64_t first,
    uint64_t last)
{
	if (region != ALL_REGIONS && e->region != region)
		return 0;
	return e->first < last && e->first + e->count > first;
}

/*
 * Hand every extent of region (or of all regions) overlapping pages
 * [first, last) to cb, with the page data of DATA extents.  all_data:
 * decompress and check every chunk's data even when no extent of it is
 * wanted (verify).
 */
static int
zsnap_walk(struct snap_file *f, uint32_t region, uint64_t first,
    uint64_t last, int all_data, reader_cb *cb, void *arg)
{
	struct reader_chunk	c;

	for (uint64_t i = 0; i < f->info.chunk_count; i++) {
		size_t	data_off = 0;
		int	want = 0, need_data = 0;

		if (reader_zsnap_chunk_load(f, i, &c) == -1)
			return -1;
		for (uint32_t k = 0; k < c.extent_count; k++) {
			if (!extent_wanted(&f->extents[k], region, first, last))
				continue;
			want = 1;
			if (f->extents[k].kind == ZSNAP_EXTENT_DATA)
				need_data = 1;
		}
		if (!want && !all_data)
			continue;
		if ((need_data || all_data) && c.data_pages > 0 &&
		    zsnap_chunk_data(f, &c) == -1)
			return -1;
		for (uint32_t k = 0; k < c.extent_count; k++) {
			const struct reader_extent *e = &f->extents[k];
			size_t	at = data_off;

			if (e->kind == ZSNAP_EXTENT_DATA)
				data_off += (size_t)e->count * ZSNAP_PAGE_SIZE;
			if (!extent_wanted(e, region, first, last))
				continue;
			/*
			 * Only now point into f->data: it was decompressed only
			 * if an extent of the wanted region needs it.
			 */
			if (cb(f, arg, i, e, e->kind == ZSNAP_EXTENT_DATA ?
			    f->data + at : NULL) == -1)
				return -1;
		}
	}
	return 0;
}

int
reader_walk(struct snap_file *f, uint32_t region, int all_data, reader_cb *cb,
    void *arg)
{
	if (f->format == 0)
		return zsnap_walk(f, region, 0, UINT64_MAX, all_data, cb, arg);
	return reader_raw_walk(f, region, 0, UINT64_MAX, cb, arg);
}

int
reader_walk_pages(struct snap_file *f, uint32_t region, uint64_t first,
    uint64_t count, reader_cb *cb, void *arg)
{
	uint64_t	last = count > UINT64_MAX - first ? UINT64_MAX :
			    first + count;

	if (f->format == 0)
		return zsnap_walk(f, region, first, last, 0, cb, arg);
	return reader_raw_walk(f, region, first, count, cb, arg);
}

