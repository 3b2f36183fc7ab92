/*
 * The zsnap encoder (format in proto/zsnap.h and proto/FORMAT.md).
 *
 * Pages are gathered into a chunk: up to ZSNAP_CHUNK_PAGES DATA pages in a
 * buffer allocated once, and up to ZSNAP_CHUNK_EXTENTS extents describing
 * which region pages they are, plus the ZERO and LOST runs that take no
 * data.  A run of pages of one region and kind that continues the last
 * extent of that kind extends it instead of adding one.  When either limit
 * would be passed the chunk is flushed: its skippable frame (struct
 * zsnap_chunk, extents, crc), then one zstd frame of its DATA pages, made
 * with a compression context kept for the whole snapshot.  The index grows
 * by one entry per chunk (the only allocation after open, amortised);
 * output_finish() appends it and the footer.
 *
 * Everything runs on the snapshot's writer thread; zstd's own worker
 * threads (ZSTD_c_nbWorkers) live inside ZSTD_compress2().
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "crc32c.h"
#include "log.h"
#include "output-impl.h"
#include "sink.h"

#define ZSNAP_CHUNK_PAGES	256	/* 1 MiB of page data per chunk */
#define ZSNAP_CHUNK_EXTENTS	1024

#define CHUNK_PAYLOAD_MAX	(sizeof(struct zsnap_chunk) + \
	    ZSNAP_CHUNK_EXTENTS * sizeof(struct zsnap_extent) + 4)

struct zsnap_out {
	struct sink		*sink;
	ZSTD_CCtx		*cctx;

	/* The chunk being filled. */
	unsigned char		*data;		/* ZSNAP_CHUNK_PAGES pages */
	uint32_t		 data_pages;
	struct zsnap_extent	 extents[ZSNAP_CHUNK_EXTENTS];	/* host order */
	uint32_t		 extent_count;
	int			 last_of_kind[3];	/* extent index, -1 none */

	/* Encoding buffers, allocated once. */
	unsigned char		*frame;		/* compressed page data */
	size_t			 frame_cap;
	unsigned char		 chunk_buf[ZSNAP_SKIP_HDR_SIZE +
				    CHUNK_PAYLOAD_MAX];

	/* The index: one entry per chunk written, host order. */
	struct zsnap_index_entry *index;
	uint64_t		 index_count;
	uint64_t		 index_cap;
};

static int
zsnap_write(struct output *out, const void *buf, size_t len)
{
	struct zsnap_out	*z = out->priv;

	if (sink_write(z->sink, buf, len) == -1) {
		output_set_error(out, "%s", sink_error(z->sink));
		return -1;
	}
	return 0;
}

static void
put_skip_header(unsigned char *p, uint32_t magic, uint32_t payload_size)
{
	uint32_t	v;

	v = htole32(magic);
	memcpy(p, &v, 4);
	v = htole32(payload_size);
	memcpy(p + 4, &v, 4);
}

/* Append the crc32c of payload[0..len) at payload + len. */
static void
put_crc(unsigned char *payload, size_t len)
{
	uint32_t	crc = htole32(crc32c(0, payload, len));

	memcpy(payload + len, &crc, 4);
}

/* Copy a string into a zeroed on-disk field, NUL padded, truncated. */
static void
put_name(char *field, size_t size, const char *s)
{
	memcpy(field, s, strnlen(s, size - 1));
}

static int
zsnap_write_header(struct output *out)
{
	const struct output_params *p = &out->params;
	struct zsnap_header	 h;
	unsigned char		*buf;
	size_t			 payload, off;
	int			 rc;

	payload = sizeof(h) + (size_t)p->region_count *
	    sizeof(struct zsnap_region) + 4;
	buf = xcalloc(1, ZSNAP_SKIP_HDR_SIZE + payload);
	put_skip_header(buf, ZSNAP_FRAME_HEADER, (uint32_t)payload);
	off = ZSNAP_SKIP_HDR_SIZE;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, ZSNAP_MAGIC, sizeof(h.magic));
	h.version_major = htole16(ZSNAP_VERSION_MAJOR);
	h.version_minor = htole16(ZSNAP_VERSION_MINOR);
	h.page_size = htole32(ZSNAP_PAGE_SIZE);
	h.region_count = htole32(p->region_count);
	h.flags = htole32(0);
	h.armed_realtime_ns = htole64(p->armed_realtime_ns);
	h.pid = htole32((uint32_t)p->pid);
	h.uid = htole32((uint32_t)p->uid);
	put_name(h.comm, sizeof(h.comm), p->comm);
	put_name(h.name, sizeof(h.name), p->name);
	memcpy(buf + off, &h, sizeof(h));
	off += sizeof(h);

	for (uint32_t i = 0; i < p->region_count; i++) {
		struct zsnap_region r;

		memset(&r, 0, sizeof(r));
		r.start = htole64(p->regions[i].start);
		r.length = htole64(p->regions[i].length);
		put_name(r.name, sizeof(r.name), p->regions[i].name);
		memcpy(buf + off, &r, sizeof(r));
		off += sizeof(r);
	}
	put_crc(buf + ZSNAP_SKIP_HDR_SIZE, off - ZSNAP_SKIP_HDR_SIZE);
	off += 4;
	rc = zsnap_write(out, buf, off);
	free(buf);
	return rc;
}

static int
zsnap_set_param(struct output *out, ZSTD_cParameter param, int value,
    const char *what)
{
	struct zsnap_out	*z = out->priv;
	size_t			 rc;

	rc = ZSTD_CCtx_setParameter(z->cctx, param, value);
	if (ZSTD_isError(rc)) {
		output_set_error(out, "snapshot %s: zstd %s %d: %s", out->name,
		    what, value, ZSTD_getErrorName(rc));
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int
zsnap_open(struct output *out)
{
	const struct output_params *p = &out->params;
	struct zsnap_out	*z;
	char			 err[SINK_ERROR_MAX];

	z = xcalloc(1, sizeof(*z));
	out->priv = z;
	z->last_of_kind[0] = z->last_of_kind[1] = z->last_of_kind[2] = -1;
	z->data = xmalloc((size_t)ZSNAP_CHUNK_PAGES * ZSNAP_PAGE_SIZE);
	z->frame_cap = ZSTD_compressBound((size_t)ZSNAP_CHUNK_PAGES *
	    ZSNAP_PAGE_SIZE);
	z->frame = xmalloc(z->frame_cap);
	z->index_cap = 64;
	z->index = xcalloc(z->index_cap, sizeof(*z->index));

	if ((z->cctx = ZSTD_createCCtx()) == NULL)
		fatalx("snapshot %s: zstd compression context: out of memory",
		    out->name);
	if (zsnap_set_param(out, ZSTD_c_compressionLevel, p->level,
	    "compression level") == -1 ||
	    zsnap_set_param(out, ZSTD_c_checksumFlag, 1, "checksum flag") == -1 ||
	    zsnap_set_param(out, ZSTD_c_contentSizeFlag, 1,
	    "content size flag") == -1)
		return -1;
	if (p->threads > 0 && zsnap_set_param(out, ZSTD_c_nbWorkers,
	    p->threads, "worker threads") == -1)
		return -1;

	z->sink = sink_file_open(p->dirfd, p->name, ZSNAP_SUFFIX, p->mode,
	    p->owner_uid, p->owner_gid, err, sizeof(err));
	if (z->sink == NULL) {
		output_set_error(out, "%s", err);
		return -1;
	}
	return zsnap_write_header(out);
}

/* Write the chunk being filled, if it holds anything, and start a new one. */
static int
zsnap_flush_chunk(struct output *out)
{
	struct zsnap_out	*z = out->priv;
	struct zsnap_index_entry *e;
	struct zsnap_chunk	 c;
	unsigned char		*payload = z->chunk_buf + ZSNAP_SKIP_HDR_SIZE;
	size_t			 frame_size = 0, payload_size, off;
	size_t			 data_len = (size_t)z->data_pages * ZSNAP_PAGE_SIZE;
	uint64_t		 offset;
	uint32_t		 chunk_crc;

	if (z->extent_count == 0)
		return 0;
	if (z->data_pages > 0) {
		frame_size = ZSTD_compress2(z->cctx, z->frame, z->frame_cap,
		    z->data, data_len);
		if (ZSTD_isError(frame_size)) {
			output_set_error(out, "snapshot %s: compress chunk %llu: "
			    "%s", out->name, (unsigned long long)z->index_count,
			    ZSTD_getErrorName(frame_size));
			errno = EIO;
			return -1;
		}
	}

	memset(&c, 0, sizeof(c));
	c.seq = htole32((uint32_t)z->index_count);
	c.extent_count = htole32(z->extent_count);
	c.data_pages = htole32(z->data_pages);
	c.data_frame_size = htole32((uint32_t)frame_size);
	c.data_crc = htole32(z->data_pages > 0 ? crc32c(0, z->data, data_len) : 0);
	memcpy(payload, &c, sizeof(c));
	off = sizeof(c);
	for (uint32_t i = 0; i < z->extent_count; i++) {
		struct zsnap_extent x;

		x.region = htole32(z->extents[i].region);
		x.kind = htole32(z->extents[i].kind);
		x.first_page = htole64(z->extents[i].first_page);
		x.page_count = htole64(z->extents[i].page_count);
		memcpy(payload + off, &x, sizeof(x));
		off += sizeof(x);
	}
	chunk_crc = crc32c(0, payload, off);
	put_crc(payload, off);
	payload_size = off + 4;
	put_skip_header(z->chunk_buf, ZSNAP_FRAME_CHUNK, (uint32_t)payload_size);

	if (z->index_count >= UINT32_MAX) {
		output_set_error(out, "snapshot %s: more than %u chunks",
		    out->name, UINT32_MAX);
		errno = EFBIG;
		return -1;
	}
	if (z->index_count == z->index_cap) {
		z->index_cap *= 2;
		z->index = reallocarray(z->index, z->index_cap,
		    sizeof(*z->index));
		if (z->index == NULL)
			fatal("snapshot %s: chunk index", out->name);
	}
	offset = sink_bytes(z->sink);
	if (zsnap_write(out, z->chunk_buf, ZSNAP_SKIP_HDR_SIZE + payload_size)
	    == -1)
		return -1;
	if (frame_size > 0 && zsnap_write(out, z->frame, frame_size) == -1)
		return -1;

	e = &z->index[z->index_count];
	e->offset = offset;
	e->length = ZSNAP_SKIP_HDR_SIZE + payload_size + frame_size;
	e->seq = (uint32_t)z->index_count;
	e->extent_count = z->extent_count;
	e->chunk_crc = chunk_crc;
	e->reserved = 0;
	z->index_count++;

	z->data_pages = 0;
	z->extent_count = 0;
	z->last_of_kind[0] = z->last_of_kind[1] = z->last_of_kind[2] = -1;
	return 0;
}

/*
 * Record count pages of one kind.  Extends the last extent of that kind
 * when the run continues it: for DATA that extent's pages are the last
 * ones in the data buffer, so the data order still matches the extent
 * order.  Flushes first when a new extent would not fit.
 */
static int
zsnap_add_extent(struct output *out, uint32_t region, uint32_t kind,
    uint64_t first, uint64_t count)
{
	struct zsnap_out	*z = out->priv;
	struct zsnap_extent	*x;
	int			 last = z->last_of_kind[kind];

	if (last >= 0) {
		x = &z->extents[last];
		if (x->region == region && x->first_page + x->page_count == first) {
			x->page_count += count;
			return 0;
		}
	}
	if (z->extent_count == ZSNAP_CHUNK_EXTENTS &&
	    zsnap_flush_chunk(out) == -1)
		return -1;
	x = &z->extents[z->extent_count];
	x->region = region;
	x->kind = kind;
	x->first_page = first;
	x->page_count = count;
	z->last_of_kind[kind] = (int)z->extent_count;
	z->extent_count++;
	return 0;
}

static int
zsnap_pages(struct output *out, uint32_t region, uint64_t first,
    uint32_t npages, const void *data)
{
	struct zsnap_out	*z = out->priv;
	const unsigned char	*page = data;

	for (uint32_t i = 0; i < npages; i++, page += ZSNAP_PAGE_SIZE) {
		if (output_page_is_zero(page)) {
			if (zsnap_add_extent(out, region, ZSNAP_EXTENT_ZERO,
			    first + i, 1) == -1)
				return -1;
			out->pages_zero++;
			continue;
		}
		/* A full data buffer closes the chunk before the extent. */
		if (z->data_pages == ZSNAP_CHUNK_PAGES &&
		    zsnap_flush_chunk(out) == -1)
			return -1;
		if (zsnap_add_extent(out, region, ZSNAP_EXTENT_DATA, first + i,
		    1) == -1)
			return -1;
		memcpy(z->data + (size_t)z->data_pages * ZSNAP_PAGE_SIZE, page,
		    ZSNAP_PAGE_SIZE);
		z->data_pages++;
		out->pages_data++;
	}
	return 0;
}

static int
zsnap_lost(struct output *out, uint32_t region, uint64_t first,
    uint64_t npages)
{
	return zsnap_add_extent(out, region, ZSNAP_EXTENT_LOST, first, npages);
}

static uint64_t
zsnap_bytes(const struct output *out)
{
	const struct zsnap_out	*z = out->priv;

	return z->sink != NULL ? sink_bytes(z->sink) : 0;
}

static int
zsnap_write_index(struct output *out, uint64_t *index_offset,
    uint64_t *index_length)
{
	struct zsnap_out	*z = out->priv;
	unsigned char		*buf;
	uint64_t		 v64;
	size_t			 payload, off;
	int			 rc;

	if (z->index_count > (UINT32_MAX - 12) / sizeof(struct zsnap_index_entry)) {
		output_set_error(out, "snapshot %s: index of %llu chunks does "
		    "not fit one frame", out->name,
		    (unsigned long long)z->index_count);
		errno = EFBIG;
		return -1;
	}
	payload = 8 + z->index_count * sizeof(struct zsnap_index_entry) + 4;
	buf = xmalloc(ZSNAP_SKIP_HDR_SIZE + payload);
	put_skip_header(buf, ZSNAP_FRAME_INDEX, (uint32_t)payload);
	off = ZSNAP_SKIP_HDR_SIZE;
	v64 = htole64(z->index_count);
	memcpy(buf + off, &v64, 8);
	off += 8;
	for (uint64_t i = 0; i < z->index_count; i++) {
		struct zsnap_index_entry e;

		e.offset = htole64(z->index[i].offset);
		e.length = htole64(z->index[i].length);
		e.seq = htole32(z->index[i].seq);
		e.extent_count = htole32(z->index[i].extent_count);
		e.chunk_crc = htole32(z->index[i].chunk_crc);
		e.reserved = 0;
		memcpy(buf + off, &e, sizeof(e));
		off += sizeof(e);
	}
	put_crc(buf + ZSNAP_SKIP_HDR_SIZE, off - ZSNAP_SKIP_HDR_SIZE);
	off += 4;
	*index_offset = sink_bytes(z->sink);
	*index_length = off;
	rc = zsnap_write(out, buf, off);
	free(buf);
	return rc;
}

static int
zsnap_finish(struct output *out, struct output_result *result)
{
	struct zsnap_out	*z = out->priv;
	struct zsnap_footer	 f;
	unsigned char		 buf[ZSNAP_FOOTER_FRAME_SIZE];
	uint64_t		 index_offset, index_length;

	if (zsnap_flush_chunk(out) == -1 ||
	    zsnap_write_index(out, &index_offset, &index_length) == -1)
		return -1;

	memset(&f, 0, sizeof(f));
	memcpy(f.magic, ZSNAP_FOOTER_MAGIC, sizeof(f.magic));
	f.index_offset = htole64(index_offset);
	f.index_length = htole64(index_length);
	f.chunk_count = htole64(z->index_count);
	f.pages_total = htole64(out->pages_total);
	f.pages_data = htole64(out->pages_data);
	f.pages_zero = htole64(out->pages_zero);
	f.pages_lost = htole64(out->pages_lost);
	f.flags = htole32(out->pages_lost > 0 ? ZSNAP_F_LOST_PAGES : 0);
	f.crc = htole32(crc32c(0, &f, offsetof(struct zsnap_footer, crc)));
	put_skip_header(buf, ZSNAP_FRAME_FOOTER, sizeof(f));
	memcpy(buf + ZSNAP_SKIP_HDR_SIZE, &f, sizeof(f));
	if (zsnap_write(out, buf, sizeof(buf)) == -1)
		return -1;

	if (sink_finish(z->sink) == -1) {
		output_set_error(out, "%s", sink_error(z->sink));
		return -1;
	}
	result->bytes = sink_bytes(z->sink);
	snprintf(result->path, sizeof(result->path), "%s",
	    sink_file_name(z->sink));
	return 0;
}

static void
zsnap_close(struct output *out)
{
	struct zsnap_out	*z = out->priv;

	if (z == NULL)
		return;
	sink_free(z->sink);	/* removes the temporary file unless finished */
	ZSTD_freeCCtx(z->cctx);
	free(z->data);
	free(z->frame);
	free(z->index);
	free(z);
	out->priv = NULL;
}

const struct output_format_ops output_zsnap_ops = {
	.open = zsnap_open,
	.pages = zsnap_pages,
	.lost = zsnap_lost,
	.bytes = zsnap_bytes,
	.finish = zsnap_finish,
	.close = zsnap_close,
};
