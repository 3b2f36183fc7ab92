/*
 * The zsnap format's one writer; the interface and who uses it are in
 * zsnapwrite.h, the format in zsnap.h and FORMAT.md.
 *
 * Every frame is built in host memory and converted to little-endian as it
 * is copied out, so the callers (and struct zsnapw_chunk) stay in host
 * order.  The only allocations are a chunk's two buffers (fixed size), the
 * header and parent payloads (bounded by the region count and
 * ZSNAP_WHOLE_MAX, both checked by whoever made them) and the index, which
 * grows by doubling with the chunks really written.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "zsnapwrite.h"

static void
zsnapw_set_error(struct zsnapw *w, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
zsnapw_set_error(struct zsnapw *w, int err, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	errno = err;
}

void
zsnapw_init(struct zsnapw *w, const char *name, zsnapw_write_fn *write,
    void *arg)
{
	memset(w, 0, sizeof(*w));
	w->name = name;
	w->write = write;
	w->arg = arg;
}

void
zsnapw_free(struct zsnapw *w)
{
	free(w->index);
	w->index = NULL;
	w->index_count = w->index_cap = 0;
}

const char *
zsnapw_error(const struct zsnapw *w)
{
	return w->error;
}

uint64_t
zsnapw_bytes(const struct zsnapw *w)
{
	return w->offset;
}

static int
zsnapw_write(struct zsnapw *w, const void *buf, size_t len)
{
	if (w->write(w->arg, buf, len, w->error, sizeof(w->error)) == -1)
		return -1;
	w->offset += len;
	return 0;
}

static void
put_skip_header(unsigned char *p, uint32_t magic, uint32_t payload_size)
{
	zsnap_put32(p, magic);
	zsnap_put32(p + 4, payload_size);
}

/* Append the crc32c of payload[0..len) at payload + len. */
static void
put_crc(unsigned char *payload, size_t len)
{
	zsnap_put32(payload + len, crc32c(0, payload, len));
}

/*
 * buf holds a skippable frame: room for its 8-byte header, then payload
 * bytes [8, end), then room for the crc32c.  Fill in header and crc,
 * write it, free buf; *crc (if not NULL) gets the payload's crc32c.
 */
static int
zsnapw_write_frame(struct zsnapw *w, uint32_t magic, unsigned char *buf,
    size_t end, uint32_t *crc)
{
	size_t	payload = end - ZSNAP_SKIP_HDR_SIZE;
	int	rc;

	put_skip_header(buf, magic, (uint32_t)(payload + 4));
	if (crc != NULL)
		*crc = crc32c(0, buf + ZSNAP_SKIP_HDR_SIZE, payload);
	put_crc(buf + ZSNAP_SKIP_HDR_SIZE, payload);
	rc = zsnapw_write(w, buf, end + 4);
	free(buf);
	return rc;
}

/* Copy a string into a zeroed on-disk field, NUL padded, truncated. */
static void
put_name(char *field, size_t size, const char *s)
{
	memcpy(field, s, strnlen(s, size - 1));
}

static unsigned char *
zsnapw_frame_alloc(struct zsnapw *w, size_t payload, const char *what)
{
	unsigned char	*buf = calloc(1, ZSNAP_SKIP_HDR_SIZE + payload);

	if (buf == NULL)
		zsnapw_set_error(w, ENOMEM, "snapshot %s: %s frame of %zu "
		    "bytes: %s", w->name, what, payload, strerror(ENOMEM));
	return buf;
}

static int
zsnapw_write_header(struct zsnapw *w, const struct zsnapw_header *p)
{
	struct zsnap_header	 h;
	unsigned char		*buf;
	size_t			 payload, off;

	payload = sizeof(h) + (size_t)p->region_count *
	    sizeof(struct zsnap_region) + 4;
	if ((buf = zsnapw_frame_alloc(w, payload, "header")) == NULL)
		return -1;
	off = ZSNAP_SKIP_HDR_SIZE;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, ZSNAP_MAGIC, sizeof(h.magic));
	h.version_major = htole16(ZSNAP_VERSION_MAJOR);
	h.version_minor = htole16(ZSNAP_VERSION_MINOR);
	h.page_size = htole32(ZSNAP_PAGE_SIZE);
	h.region_count = htole32(p->region_count);
	h.flags = htole32((p->procrec != NULL ? ZSNAP_F_PROCESS : 0) |
	    (p->parent != NULL ? ZSNAP_F_PARENT : 0));
	h.armed_realtime_ns = htole64(p->armed_realtime_ns);
	h.pid = htole32(p->pid);
	h.uid = htole32(p->uid);
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
	return zsnapw_write_frame(w, ZSNAP_FRAME_HEADER, buf, off, NULL);
}

/*
 * The process frame, right after the header: the record is its payload
 * as it is, since it ends with its own crc32c like every payload does.
 */
static int
zsnapw_write_process(struct zsnapw *w, const struct zsnapw_header *p)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE];

	if (p->procrec == NULL)
		return 0;
	put_skip_header(skip, ZSNAP_FRAME_PROCESS, (uint32_t)p->procrec_len);
	if (zsnapw_write(w, skip, sizeof(skip)) == -1)
		return -1;
	return zsnapw_write(w, p->procrec, p->procrec_len);
}

/*
 * The parent frame of an incremental snapshot, after the process frame:
 * struct zsnap_parent, the whole ranges, the crc32c.  whole_count is at
 * most ZSNAP_WHOLE_MAX, so the payload is below 2 MiB.
 */
static int
zsnapw_write_parent(struct zsnapw *w, const struct zsnapw_header *p)
{
	const struct zsnap_parent *pa = p->parent;
	struct zsnap_parent	 d;
	unsigned char		*buf;
	size_t			 payload, off;

	if (pa == NULL)
		return 0;
	if (pa->whole_count > ZSNAP_WHOLE_MAX) {
		zsnapw_set_error(w, EINVAL, "snapshot %s: %u whole ranges, "
		    "at most %u", w->name, pa->whole_count, ZSNAP_WHOLE_MAX);
		return -1;
	}
	payload = sizeof(d) + (size_t)pa->whole_count *
	    sizeof(struct zsnap_whole) + 4;
	if ((buf = zsnapw_frame_alloc(w, payload, "parent")) == NULL)
		return -1;
	off = ZSNAP_SKIP_HDR_SIZE;
	memset(&d, 0, sizeof(d));
	memcpy(d.name, pa->name, sizeof(d.name));
	memcpy(d.file, pa->file, sizeof(d.file));
	d.armed_realtime_ns = htole64(pa->armed_realtime_ns);
	d.index_crc = htole32(pa->index_crc);
	d.depth = htole32(pa->depth);
	d.whole_count = htole32(pa->whole_count);
	memcpy(buf + off, &d, sizeof(d));
	off += sizeof(d);
	for (uint32_t i = 0; i < pa->whole_count; i++) {
		const struct zsnap_whole *wh = &p->whole[i];
		struct zsnap_whole	 x;

		x.region = htole32(wh->region);
		x.reason = htole32(wh->reason);
		x.first_page = htole64(wh->first_page);
		x.page_count = htole64(wh->page_count);
		memcpy(buf + off, &x, sizeof(x));
		off += sizeof(x);
	}
	return zsnapw_write_frame(w, ZSNAP_FRAME_PARENT, buf, off, NULL);
}

int
zsnapw_header(struct zsnapw *w, const struct zsnapw_header *h)
{
	if (zsnapw_write_header(w, h) == -1 ||
	    zsnapw_write_process(w, h) == -1)
		return -1;
	return zsnapw_write_parent(w, h);
}

int
zsnapw_chunk_init(struct zsnapw_chunk *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->frame_cap = ZSTD_compressBound((size_t)ZSNAPW_CHUNK_PAGES *
	    ZSNAP_PAGE_SIZE);
	c->data = malloc((size_t)ZSNAPW_CHUNK_PAGES * ZSNAP_PAGE_SIZE);
	c->frame = malloc(c->frame_cap);
	if (c->data == NULL || c->frame == NULL) {
		zsnapw_chunk_free(c);
		snprintf(err, errlen, "chunk buffers of %zu bytes: %s",
		    (size_t)ZSNAPW_CHUNK_PAGES * ZSNAP_PAGE_SIZE + c->frame_cap,
		    strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	zsnapw_chunk_reset(c);
	return 0;
}

void
zsnapw_chunk_free(struct zsnapw_chunk *c)
{
	free(c->data);
	free(c->frame);
	c->data = NULL;
	c->frame = NULL;
}

void
zsnapw_chunk_reset(struct zsnapw_chunk *c)
{
	c->data_pages = 0;
	c->extent_count = 0;
	for (size_t k = 0; k < sizeof(c->last_of_kind) /
	    sizeof(c->last_of_kind[0]); k++)
		c->last_of_kind[k] = -1;
}

/*
 * Extends the last extent of that kind when the run continues it: for
 * DATA that extent's pages are the last ones in the data buffer, so the
 * data order still matches the extent order.
 */
int
zsnapw_chunk_add(struct zsnapw_chunk *c, uint32_t region, uint32_t kind,
    uint64_t first, uint64_t count)
{
	struct zsnap_extent	*x;
	int			 last = c->last_of_kind[kind & 3];

	if (last >= 0) {
		x = &c->extents[last];
		if (x->region == region && x->first_page + x->page_count ==
		    first) {
			x->page_count += count;
			return 0;
		}
	}
	if (c->extent_count == ZSNAPW_CHUNK_EXTENTS)
		return ZSNAPW_FULL;
	x = &c->extents[c->extent_count];
	x->region = region;
	x->kind = kind;
	x->first_page = first;
	x->page_count = count;
	c->last_of_kind[kind & 3] = (int)c->extent_count;
	c->extent_count++;
	return 0;
}

int
zsnapw_chunk_page(struct zsnapw_chunk *c, uint32_t region, uint64_t first,
    const void *page)
{
	/* A full data buffer closes the chunk before the extent. */
	if (c->data_pages == ZSNAPW_CHUNK_PAGES ||
	    zsnapw_chunk_add(c, region, ZSNAP_EXTENT_DATA, first, 1) ==
	    ZSNAPW_FULL)
		return ZSNAPW_FULL;
	memcpy(c->data + (size_t)c->data_pages * ZSNAP_PAGE_SIZE, page,
	    ZSNAP_PAGE_SIZE);
	c->data_pages++;
	return 0;
}

ZSTD_CCtx *
zsnapw_cctx_new(int level, char *err, size_t errlen)
{
	static const struct {
		ZSTD_cParameter	 param;
		const char	*what;
	} params[] = {
		{ ZSTD_c_compressionLevel, "compression level" },
		{ ZSTD_c_checksumFlag, "checksum flag" },
		{ ZSTD_c_contentSizeFlag, "content size flag" },
	};
	int		 values[] = { level, 1, 1 };
	ZSTD_CCtx	*cctx = ZSTD_createCCtx();

	if (cctx == NULL) {
		snprintf(err, errlen, "zstd compression context: %s",
		    strerror(ENOMEM));
		errno = ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		size_t rc = ZSTD_CCtx_setParameter(cctx, params[i].param,
		    values[i]);

		if (ZSTD_isError(rc)) {
			snprintf(err, errlen, "zstd %s %d: %s", params[i].what,
			    values[i], ZSTD_getErrorName(rc));
			ZSTD_freeCCtx(cctx);
			errno = EINVAL;
			return NULL;
		}
	}
	return cctx;
}

void
zsnapw_compress(ZSTD_CCtx *cctx, int *cctx_level, struct zsnapw_chunk *c)
{
	size_t len = (size_t)c->data_pages * ZSNAP_PAGE_SIZE;

	c->zstd_error = NULL;
	c->frame_size = 0;
	c->data_crc = 0;
	if (c->data_pages == 0)
		return;
	if (c->level != *cctx_level) {
		size_t rc = ZSTD_CCtx_setParameter(cctx,
		    ZSTD_c_compressionLevel, c->level);

		if (ZSTD_isError(rc)) {
			c->zstd_error = ZSTD_getErrorName(rc);
			return;
		}
		*cctx_level = c->level;
	}
	c->frame_size = ZSTD_compress2(cctx, c->frame, c->frame_cap, c->data,
	    len);
	if (ZSTD_isError(c->frame_size)) {
		c->zstd_error = ZSTD_getErrorName(c->frame_size);
		c->frame_size = 0;
		return;
	}
	c->data_crc = crc32c(0, c->data, len);
}

int
zsnapw_chunk_write(struct zsnapw *w, const struct zsnapw_chunk *ch)
{
	unsigned char		*buf = w->chunk_buf;
	unsigned char		*payload = buf + ZSNAP_SKIP_HDR_SIZE;
	struct zsnap_index_entry *e;
	struct zsnap_chunk	 c;
	size_t			 payload_size, off;
	uint64_t		 offset;
	uint32_t		 chunk_crc;

	if (ch->zstd_error != NULL) {
		zsnapw_set_error(w, EIO, "snapshot %s: compress chunk %llu: %s",
		    w->name, (unsigned long long)w->index_count,
		    ch->zstd_error);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.seq = htole32((uint32_t)w->index_count);
	c.extent_count = htole32(ch->extent_count);
	c.data_pages = htole32(ch->data_pages);
	c.data_frame_size = htole32((uint32_t)ch->frame_size);
	c.data_crc = htole32(ch->data_crc);
	memcpy(payload, &c, sizeof(c));
	off = sizeof(c);
	for (uint32_t i = 0; i < ch->extent_count; i++) {
		struct zsnap_extent x;

		x.region = htole32(ch->extents[i].region);
		x.kind = htole32(ch->extents[i].kind);
		x.first_page = htole64(ch->extents[i].first_page);
		x.page_count = htole64(ch->extents[i].page_count);
		memcpy(payload + off, &x, sizeof(x));
		off += sizeof(x);
	}
	chunk_crc = crc32c(0, payload, off);
	put_crc(payload, off);
	payload_size = off + 4;
	put_skip_header(buf, ZSNAP_FRAME_CHUNK, (uint32_t)payload_size);

	if (w->index_count >= UINT32_MAX) {
		zsnapw_set_error(w, EFBIG, "snapshot %s: more than %u chunks",
		    w->name, UINT32_MAX);
		return -1;
	}
	if (w->index_count == w->index_cap) {
		/* Grows with the snapshot: running out fails it, no more. */
		uint64_t cap = w->index_cap == 0 ? 64 : w->index_cap * 2;
		void	*grown = reallocarray(w->index, cap, sizeof(*w->index));

		if (grown == NULL) {
			zsnapw_set_error(w, ENOMEM, "snapshot %s: chunk index "
			    "of %llu entries: %s", w->name,
			    (unsigned long long)cap, strerror(ENOMEM));
			return -1;
		}
		w->index = grown;
		w->index_cap = cap;
	}
	offset = w->offset;
	if (zsnapw_write(w, buf, ZSNAP_SKIP_HDR_SIZE + payload_size) == -1)
		return -1;
	if (ch->frame_size > 0 && zsnapw_write(w, ch->frame, ch->frame_size)
	    == -1)
		return -1;

	e = &w->index[w->index_count];
	e->offset = offset;
	e->length = ZSNAP_SKIP_HDR_SIZE + payload_size + ch->frame_size;
	e->seq = (uint32_t)w->index_count;
	e->extent_count = ch->extent_count;
	e->chunk_crc = chunk_crc;
	e->reserved = 0;
	w->index_count++;
	return 0;
}

/*
 * The index, then where it is and the crc32c ending its payload (what a
 * child's parent frame records as index_crc).
 */
static int
zsnapw_write_index(struct zsnapw *w, uint64_t *index_offset,
    uint64_t *index_length, uint32_t *index_crc)
{
	unsigned char	*buf;
	size_t		 payload, off;

	if (w->index_count > (UINT32_MAX - 12) /
	    sizeof(struct zsnap_index_entry)) {
		zsnapw_set_error(w, EFBIG, "snapshot %s: index of %llu chunks "
		    "does not fit one frame", w->name,
		    (unsigned long long)w->index_count);
		return -1;
	}
	payload = 8 + w->index_count * sizeof(struct zsnap_index_entry) + 4;
	if ((buf = zsnapw_frame_alloc(w, payload, "index")) == NULL)
		return -1;
	off = ZSNAP_SKIP_HDR_SIZE;
	zsnap_put64(buf + off, w->index_count);
	off += 8;
	for (uint64_t i = 0; i < w->index_count; i++) {
		struct zsnap_index_entry e;

		e.offset = htole64(w->index[i].offset);
		e.length = htole64(w->index[i].length);
		e.seq = htole32(w->index[i].seq);
		e.extent_count = htole32(w->index[i].extent_count);
		e.chunk_crc = htole32(w->index[i].chunk_crc);
		e.reserved = 0;
		memcpy(buf + off, &e, sizeof(e));
		off += sizeof(e);
	}
	*index_offset = w->offset;
	*index_length = off + 4;
	return zsnapw_write_frame(w, ZSNAP_FRAME_INDEX, buf, off, index_crc);
}

int
zsnapw_finish(struct zsnapw *w, const struct zsnapw_counts *n,
    uint32_t *index_crc)
{
	struct zsnap_footer	 f;
	unsigned char		 buf[ZSNAP_FOOTER_FRAME_SIZE];
	uint64_t		 index_offset, index_length;

	if (zsnapw_write_index(w, &index_offset, &index_length,
	    index_crc) == -1)
		return -1;
	memset(&f, 0, sizeof(f));
	memcpy(f.magic, ZSNAP_FOOTER_MAGIC, sizeof(f.magic));
	f.index_offset = htole64(index_offset);
	f.index_length = htole64(index_length);
	f.chunk_count = htole64(w->index_count);
	f.pages_total = htole64(n->pages_total);
	f.pages_data = htole64(n->pages_data);
	f.pages_zero = htole64(n->pages_zero);
	f.pages_lost = htole64(n->pages_lost);
	f.flags = htole32(n->pages_lost > 0 ? ZSNAP_F_LOST_PAGES : 0);
	f.crc = htole32(crc32c(0, &f, offsetof(struct zsnap_footer, crc)));
	put_skip_header(buf, ZSNAP_FRAME_FOOTER, sizeof(f));
	memcpy(buf + ZSNAP_SKIP_HDR_SIZE, &f, sizeof(f));
	return zsnapw_write(w, buf, sizeof(buf));
}
