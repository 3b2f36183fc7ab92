/*
 * Reading snapshots: the snap_file_* half of snapclient.h, for zsnap files
 * (proto/zsnap.h, proto/FORMAT.md) and NAME.raw directories.
 *
 * The input is hostile: a snapshot file may be truncated, corrupted or
 * crafted.  So every size, count and offset is checked against the file
 * size and a fixed sanity cap before anything is allocated or read, every
 * allocation is bounded by what the file physically holds, and no value
 * from the file is ever used as a path (raw region files must be named
 * exactly "R.img").  Errors say what is wrong and where ("PATH: chunk 7 at
 * offset 81920: page data checksum mismatch") through sc_set_error(NULL,
 * ...), and set errno: EBADMSG for a corrupt or incomplete snapshot,
 * ENOTSUP for a version this reader does not know, EINVAL for a bad
 * argument, otherwise the errno of the failed system call.
 *
 * snap_file_open() checks the structure (footer, header, index: every
 * checksum and bound), so info and region queries are safe on anything it
 * returns; walking chunks checks each chunk as it is read, and
 * snap_file_verify() additionally decompresses everything and proves that
 * every page of every region is covered exactly once.
 *
 * One walker (reader_walk) serves verify, restore and export: it hands
 * each extent, with its page data for DATA extents, to a callback, for
 * either format.  A struct snap_file is used by one thread at a time.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "crc32c.h"
#include "error.h"
#include "snapclient.h"
#include "utf8.h"
#include "zsnap.h"

/* Sanity caps: larger values are refused before anything is allocated. */
#define READER_REGIONS_MAX		65536
#define READER_REGION_BYTES_MAX		(1ull << 56)
#define READER_INDEX_BYTES_MAX		(1ull << 30)
#define READER_CHUNK_EXTENTS_MAX	65536
#define READER_CHUNK_DATA_PAGES_MAX	16384		/* 64 MiB */
#define READER_VERIFY_PAGES_MAX		(1ull << 34)	/* 2 GiB of bitmap */
#define READER_JSON_BYTES_MAX		(16u << 20)
#define READER_RAW_BATCH_PAGES		256

#define ALL_REGIONS			UINT32_MAX
#define NO_CHUNK			UINT64_MAX

struct reader_extent {
	uint32_t	region;
	uint32_t	kind;
	uint64_t	first;
	uint64_t	count;
};

struct reader_range {
	uint64_t	first;
	uint64_t	count;
};

struct snap_file {
	int			 format;	/* 0 zsnap, 1 raw */
	int			 fd;		/* the file, or the raw directory */
	char			 path[PATH_MAX];
	struct snap_file_info	 info;
	struct snap_file_region	*regions;
	uint64_t		*region_pages;
	uint32_t		 flags;

	/* zsnap */
	uint64_t		 header_end;
	uint64_t		 index_offset;
	struct zsnap_index_entry *index;	/* host order */
	ZSTD_DCtx		*dctx;
	unsigned char		*payload;	/* one chunk's metadata */
	size_t			 payload_cap;
	struct reader_extent	*extents;
	size_t			 extents_cap;
	unsigned char		*frame;		/* one chunk's zstd frame */
	size_t			 frame_cap;
	unsigned char		*data;		/* its pages, decompressed */
	size_t			 data_cap;

	/* raw */
	struct reader_range	**lost;		/* per region, sorted */
	size_t			*lost_count;
};

/* A chunk's header, decoded and checked. */
struct reader_chunk {
	uint64_t	index;
	uint64_t	offset;
	uint32_t	extent_count;
	uint32_t	data_pages;
	uint32_t	data_frame_size;
	uint32_t	data_crc;
};

typedef int reader_cb(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *x, const unsigned char *data);

static void
reader_error(struct snap_file *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reader_error(struct snap_file *f, int err, const char *fmt, ...)
{
	char	msg[SC_ERROR_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sc_set_error(NULL, err, "%s: %s", f->path, msg);
}

/* Grow *buf to at least need bytes; -1 (ENOMEM) with the message set. */
static int
reader_reserve(struct snap_file *f, void **buf, size_t *cap, size_t need)
{
	void	*p;

	if (need <= *cap)
		return 0;
	if ((p = realloc(*buf, need)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %zu bytes", need);
		return -1;
	}
	*buf = p;
	*cap = need;
	return 0;
}

/*
 * Read exactly len bytes at off.  The caller has checked off + len against
 * the file size, so a short read means the file shrank under us.
 */
static int
reader_pread(struct snap_file *f, int fd, void *buf, size_t len, uint64_t off,
    const char *what)
{
	unsigned char	*p = buf;

	while (len > 0) {
		ssize_t	n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			reader_error(f, errno, "read %s at offset %llu: %s", what,
			    (unsigned long long)off, strerror(errno));
			return -1;
		}
		if (n == 0) {
			reader_error(f, EBADMSG, "truncated: %s at offset %llu "
			    "ends past the end of the file", what,
			    (unsigned long long)off);
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static uint32_t
get32(const unsigned char *p)
{
	uint32_t	v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t
get64(const unsigned char *p)
{
	uint64_t	v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Copy a NUL-padded on-disk name into a C string of size dstlen. */
static void
get_name(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	n = strnlen(src, srclen);

	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	/*
	 * Names are shown and exported as JSON, which needs UTF-8: a name
	 * that is not keeps its ASCII and gets '?' for every other byte.
	 */
	utf8_sanitize(dst);
}

/* ---- zsnap: opening ------------------------------------------------------ */

static int
zsnap_read_footer(struct snap_file *f, struct zsnap_footer *ft)
{
	unsigned char	 buf[ZSNAP_FOOTER_FRAME_SIZE];
	const unsigned char *p = buf + ZSNAP_SKIP_HDR_SIZE;
	uint64_t	 size = f->info.file_size;
	uint64_t	 off = size - ZSNAP_FOOTER_FRAME_SIZE;

	if (reader_pread(f, f->fd, buf, sizeof(buf), off, "footer") == -1)
		return -1;
	if (get32(buf) != ZSNAP_FRAME_FOOTER ||
	    get32(buf + 4) != sizeof(struct zsnap_footer) ||
	    memcmp(p, ZSNAP_FOOTER_MAGIC, 8) != 0) {
		reader_error(f, EBADMSG, "truncated or incomplete: no zsnap "
		    "footer at end of file (size %llu)", (unsigned long long)size);
		return -1;
	}
	if (crc32c(0, p, offsetof(struct zsnap_footer, crc)) !=
	    get32(p + offsetof(struct zsnap_footer, crc))) {
		reader_error(f, EBADMSG, "footer at offset %llu: checksum "
		    "mismatch", (unsigned long long)off);
		return -1;
	}
	memcpy(ft->magic, p, 8);
	ft->index_offset = get64(p + offsetof(struct zsnap_footer, index_offset));
	ft->index_length = get64(p + offsetof(struct zsnap_footer, index_length));
	ft->chunk_count = get64(p + offsetof(struct zsnap_footer, chunk_count));
	ft->pages_total = get64(p + offsetof(struct zsnap_footer, pages_total));
	ft->pages_data = get64(p + offsetof(struct zsnap_footer, pages_data));
	ft->pages_zero = get64(p + offsetof(struct zsnap_footer, pages_zero));
	ft->pages_lost = get64(p + offsetof(struct zsnap_footer, pages_lost));
	ft->flags = get32(p + offsetof(struct zsnap_footer, flags));
	return 0;
}

static int
zsnap_read_header(struct snap_file *f)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE], *buf;
	const unsigned char *r;
	uint64_t	 limit = f->info.file_size - ZSNAP_FOOTER_FRAME_SIZE;
	uint32_t	 payload, count;
	unsigned	 major, minor;

	if (reader_pread(f, f->fd, skip, sizeof(skip), 0, "header") == -1)
		return -1;
	payload = get32(skip + 4);
	if (payload < sizeof(struct zsnap_header) + 4 ||
	    payload > sizeof(struct zsnap_header) +
	    READER_REGIONS_MAX * sizeof(struct zsnap_region) + 4 ||
	    ZSNAP_SKIP_HDR_SIZE + (uint64_t)payload > limit) {
		reader_error(f, EBADMSG, "header at offset 0: size %u is "
		    "impossible (file size %llu)", payload,
		    (unsigned long long)f->info.file_size);
		return -1;
	}
	if ((buf = malloc(payload)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %u bytes", payload);
		return -1;
	}
	if (reader_pread(f, f->fd, buf, payload, ZSNAP_SKIP_HDR_SIZE,
	    "header") == -1)
		goto fail;
	if (crc32c(0, buf, payload - 4) != get32(buf + payload - 4)) {
		reader_error(f, EBADMSG, "header at offset 0: checksum mismatch");
		goto fail;
	}
	if (memcmp(buf, ZSNAP_MAGIC, 8) != 0) {
		reader_error(f, EBADMSG, "header at offset 0: bad magic");
		goto fail;
	}
	major = get32(buf + offsetof(struct zsnap_header, version_major)) &
	    0xffff;
	minor = get32(buf + offsetof(struct zsnap_header, version_major)) >> 16;
	f->info.version_major = major;
	f->info.version_minor = minor;
	if (major != ZSNAP_VERSION_MAJOR) {
		reader_error(f, ENOTSUP, "header at offset 0: format version "
		    "%u.%u, this reader knows %u.x", major, minor,
		    ZSNAP_VERSION_MAJOR);
		goto fail;
	}
	if (get32(buf + offsetof(struct zsnap_header, page_size)) !=
	    ZSNAP_PAGE_SIZE) {
		reader_error(f, ENOTSUP, "header at offset 0: page size %u, "
		    "this reader knows %u",
		    get32(buf + offsetof(struct zsnap_header, page_size)),
		    ZSNAP_PAGE_SIZE);
		goto fail;
	}
	count = get32(buf + offsetof(struct zsnap_header, region_count));
	if (count == 0 || count > READER_REGIONS_MAX ||
	    payload != sizeof(struct zsnap_header) +
	    (uint64_t)count * sizeof(struct zsnap_region) + 4) {
		reader_error(f, EBADMSG, "header at offset 0: %u bytes do not "
		    "hold a region table of %u regions", payload, count);
		goto fail;
	}
	f->info.region_count = count;
	f->flags = get32(buf + offsetof(struct zsnap_header, flags));
	f->info.armed_realtime_ns = get64(buf + offsetof(struct zsnap_header,
	    armed_realtime_ns));
	if (f->info.armed_realtime_ns > INT64_MAX) {
		reader_error(f, EBADMSG, "header at offset 0: armed time %llu ns "
		    "is past 2^63", (unsigned long long)f->info.armed_realtime_ns);
		goto fail;
	}
	f->info.pid = get32(buf + offsetof(struct zsnap_header, pid));
	f->info.uid = get32(buf + offsetof(struct zsnap_header, uid));
	get_name(f->info.comm, sizeof(f->info.comm),
	    (const char *)buf + offsetof(struct zsnap_header, comm), 16);
	get_name(f->info.name, sizeof(f->info.name),
	    (const char *)buf + offsetof(struct zsnap_header, name),
	    ZSNAP_NAME_MAX);

	f->regions = calloc(count, sizeof(*f->regions));
	f->region_pages = calloc(count, sizeof(*f->region_pages));
	if (f->regions == NULL || f->region_pages == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %u regions", count);
		goto fail;
	}
	r = buf + sizeof(struct zsnap_header);
	for (uint32_t i = 0; i < count; i++, r += sizeof(struct zsnap_region)) {
		struct snap_file_region *g = &f->regions[i];

		g->start = get64(r + offsetof(struct zsnap_region, start));
		g->length = get64(r + offsetof(struct zsnap_region, length));
		get_name(g->name, sizeof(g->name), (const char *)r +
		    offsetof(struct zsnap_region, name), ZSNAP_NAME_MAX);
		if (g->length == 0 || g->length % ZSNAP_PAGE_SIZE != 0 ||
		    g->length > READER_REGION_BYTES_MAX) {
			reader_error(f, EBADMSG, "header at offset 0: region %u "
			    "(%s): length %llu is not a positive multiple of the "
			    "page size below 2^56", i, g->name,
			    (unsigned long long)g->length);
			goto fail;
		}
		if (g->start > INT64_MAX - g->length) {
			reader_error(f, EBADMSG, "header at offset 0: region %u "
			    "(%s): start %#llx plus length %llu passes 2^63", i,
			    g->name, (unsigned long long)g->start,
			    (unsigned long long)g->length);
			goto fail;
		}
		f->region_pages[i] = g->length / ZSNAP_PAGE_SIZE;
	}
	f->header_end = ZSNAP_SKIP_HDR_SIZE + (uint64_t)payload;
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

static int
zsnap_read_index(struct snap_file *f, const struct zsnap_footer *ft)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE], *buf = NULL;
	const unsigned char *e;
	uint64_t	 off = ft->index_offset, len = ft->index_length;
	uint64_t	 footer_off = f->info.file_size - ZSNAP_FOOTER_FRAME_SIZE;
	uint64_t	 payload, count, expect;

	if (off < f->header_end || off > footer_off ||
	    len != footer_off - off || len < ZSNAP_SKIP_HDR_SIZE + 12 ||
	    len > READER_INDEX_BYTES_MAX) {
		reader_error(f, EBADMSG, "footer: index at offset %llu, length "
		    "%llu, does not lie between the header (ends at %llu) and "
		    "the footer (offset %llu)", (unsigned long long)off,
		    (unsigned long long)len, (unsigned long long)f->header_end,
		    (unsigned long long)footer_off);
		return -1;
	}
	if (reader_pread(f, f->fd, skip, sizeof(skip), off, "index") == -1)
		return -1;
	payload = len - ZSNAP_SKIP_HDR_SIZE;
	if (get32(skip) != ZSNAP_FRAME_INDEX || get32(skip + 4) != payload) {
		reader_error(f, EBADMSG, "index at offset %llu: no index frame "
		    "there (magic %#x, size %u)", (unsigned long long)off,
		    get32(skip), get32(skip + 4));
		return -1;
	}
	if ((buf = malloc(payload)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %llu bytes",
		    (unsigned long long)payload);
		return -1;
	}
	if (reader_pread(f, f->fd, buf, payload, off + ZSNAP_SKIP_HDR_SIZE,
	    "index") == -1)
		goto fail;
	if (crc32c(0, buf, payload - 4) != get32(buf + payload - 4)) {
		reader_error(f, EBADMSG, "index at offset %llu: checksum "
		    "mismatch", (unsigned long long)off);
		goto fail;
	}
	count = get64(buf);
	if (count > (payload - 12) / sizeof(struct zsnap_index_entry) ||
	    payload != 12 + count * sizeof(struct zsnap_index_entry)) {
		reader_error(f, EBADMSG, "index at offset %llu: %llu bytes do "
		    "not hold %llu entries", (unsigned long long)off,
		    (unsigned long long)payload, (unsigned long long)count);
		goto fail;
	}
	if (count != ft->chunk_count) {
		reader_error(f, EBADMSG, "index at offset %llu: %llu chunks, but "
		    "the footer says %llu", (unsigned long long)off,
		    (unsigned long long)count,
		    (unsigned long long)ft->chunk_count);
		goto fail;
	}
	if (count > 0 && (f->index = calloc(count, sizeof(*f->index))) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate an index of %llu "
		    "chunks", (unsigned long long)count);
		goto fail;
	}
	/* Chunks lie end to end from the header to the index, in order. */
	expect = f->header_end;
	e = buf + 8;
	for (uint64_t i = 0; i < count; i++, e += sizeof(struct zsnap_index_entry)) {
		struct zsnap_index_entry *x = &f->index[i];
		uint64_t min;

		x->offset = get64(e + offsetof(struct zsnap_index_entry, offset));
		x->length = get64(e + offsetof(struct zsnap_index_entry, length));
		x->seq = get32(e + offsetof(struct zsnap_index_entry, seq));
		x->extent_count = get32(e + offsetof(struct zsnap_index_entry,
		    extent_count));
		x->chunk_crc = get32(e + offsetof(struct zsnap_index_entry,
		    chunk_crc));
		min = ZSNAP_SKIP_HDR_SIZE + sizeof(struct zsnap_chunk) +
		    (uint64_t)x->extent_count * sizeof(struct zsnap_extent) + 4;
		if (x->offset != expect || x->length < min ||
		    x->length > off - x->offset || x->seq != i ||
		    x->extent_count == 0 ||
		    x->extent_count > READER_CHUNK_EXTENTS_MAX) {
			reader_error(f, EBADMSG, "index at offset %llu: entry "
			    "%llu (chunk %u at offset %llu, length %llu, %u "
			    "extents) is out of place: expected chunk %llu at "
			    "offset %llu", (unsigned long long)off,
			    (unsigned long long)i, x->seq,
			    (unsigned long long)x->offset,
			    (unsigned long long)x->length, x->extent_count,
			    (unsigned long long)i, (unsigned long long)expect);
			goto fail;
		}
		expect = x->offset + x->length;
	}
	if (expect != off) {
		reader_error(f, EBADMSG, "index at offset %llu: its chunks end "
		    "at offset %llu, not where the index starts",
		    (unsigned long long)off, (unsigned long long)expect);
		goto fail;
	}
	f->index_offset = off;
	f->info.chunk_count = count;
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

static int
zsnap_open(struct snap_file *f)
{
	struct zsnap_footer	ft;
	unsigned char		magic[4];
	uint64_t		size = f->info.file_size;

	if (size < 4 || reader_pread(f, f->fd, magic, 4, 0, "header") == -1 ||
	    get32(magic) != ZSNAP_FRAME_HEADER) {
		reader_error(f, EBADMSG, "not a zsnap file: no zsnap header "
		    "frame at offset 0");
		return -1;
	}
	if (size < ZSNAP_SKIP_HDR_SIZE + sizeof(struct zsnap_header) + 4 +
	    ZSNAP_FOOTER_FRAME_SIZE) {
		reader_error(f, EBADMSG, "truncated or incomplete: no zsnap "
		    "footer at end of file (size %llu)", (unsigned long long)size);
		return -1;
	}
	if (zsnap_read_footer(f, &ft) == -1 || zsnap_read_header(f) == -1 ||
	    zsnap_read_index(f, &ft) == -1)
		return -1;
	f->info.pages_total = ft.pages_total;
	f->info.pages_data = ft.pages_data;
	f->info.pages_zero = ft.pages_zero;
	f->info.pages_lost = ft.pages_lost;
	f->flags |= ft.flags;
	if ((f->dctx = ZSTD_createDCtx()) == NULL) {
		reader_error(f, ENOMEM, "cannot create a zstd decompression "
		    "context");
		return -1;
	}
	return 0;
}

/* ---- zsnap: chunks ------------------------------------------------------- */

/*
 * Read chunk i's metadata frame into f->extents and check it against the
 * index, the region table and itself.
 */
static int
zsnap_chunk_load(struct snap_file *f, uint64_t i, struct reader_chunk *c)
{
	const struct zsnap_index_entry *x = &f->index[i];
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE];
	const unsigned char *p;
	uint64_t	 payload, data_sum = 0;
	uint32_t	 crc, seq;

	c->index = i;
	c->offset = x->offset;
	payload = sizeof(struct zsnap_chunk) +
	    (uint64_t)x->extent_count * sizeof(struct zsnap_extent) + 4;
	if (reader_pread(f, f->fd, skip, sizeof(skip), x->offset,
	    "chunk") == -1)
		return -1;
	if (get32(skip) != ZSNAP_FRAME_CHUNK || get32(skip + 4) != payload) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: no chunk "
		    "frame of %u extents there (magic %#x, size %u)",
		    (unsigned long long)i, (unsigned long long)x->offset,
		    x->extent_count, get32(skip), get32(skip + 4));
		return -1;
	}
	if (reader_reserve(f, (void **)&f->payload, &f->payload_cap,
	    payload) == -1 ||
	    reader_reserve(f, (void **)&f->extents, &f->extents_cap,
	    x->extent_count * sizeof(*f->extents)) == -1)
		return -1;
	if (reader_pread(f, f->fd, f->payload, payload,
	    x->offset + ZSNAP_SKIP_HDR_SIZE, "chunk") == -1)
		return -1;
	p = f->payload;
	crc = get32(p + payload - 4);
	if (crc32c(0, p, payload - 4) != crc) {
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
	seq = get32(p + offsetof(struct zsnap_chunk, seq));
	c->extent_count = get32(p + offsetof(struct zsnap_chunk, extent_count));
	c->data_pages = get32(p + offsetof(struct zsnap_chunk, data_pages));
	c->data_frame_size = get32(p + offsetof(struct zsnap_chunk,
	    data_frame_size));
	c->data_crc = get32(p + offsetof(struct zsnap_chunk, data_crc));
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

	p += sizeof(struct zsnap_chunk);
	for (uint32_t k = 0; k < c->extent_count;
	    k++, p += sizeof(struct zsnap_extent)) {
		struct reader_extent *e = &f->extents[k];
		uint64_t pages;

		e->region = get32(p + offsetof(struct zsnap_extent, region));
		e->kind = get32(p + offsetof(struct zsnap_extent, kind));
		e->first = get64(p + offsetof(struct zsnap_extent, first_page));
		e->count = get64(p + offsetof(struct zsnap_extent, page_count));
		if (e->region >= f->info.region_count) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: region %u does not exist (%u regions)",
			    (unsigned long long)i, (unsigned long long)x->offset,
			    k, e->region, f->info.region_count);
			return -1;
		}
		if (e->kind > ZSNAP_EXTENT_LOST) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: unknown kind %u",
			    (unsigned long long)i, (unsigned long long)x->offset,
			    k, e->kind);
			return -1;
		}
		pages = f->region_pages[e->region];
		if (e->count == 0 || e->first >= pages ||
		    e->count > pages - e->first) {
			reader_error(f, EBADMSG, "chunk %llu at offset %llu: "
			    "extent %u: region %u pages %llu+%llu outside the "
			    "region (%llu pages)",
			    (unsigned long long)i, (unsigned long long)x->offset,
			    k, e->region, (unsigned long long)e->first,
			    (unsigned long long)e->count,
			    (unsigned long long)pages);
			return -1;
		}
		if (e->kind == ZSNAP_EXTENT_DATA)
			data_sum += e->count;
	}
	if (data_sum != c->data_pages) {
		reader_error(f, EBADMSG, "chunk %llu at offset %llu: its DATA "
		    "extents hold %llu pages, its header says %u",
		    (unsigned long long)i, (unsigned long long)x->offset,
		    (unsigned long long)data_sum, c->data_pages);
		return -1;
	}
	return 0;
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
	if (reader_pread(f, f->fd, f->frame, c->data_frame_size, frame_off,
	    "page data") == -1)
		return -1;
	if (c->data_frame_size < 4 || get32(f->frame) != ZSTD_FRAME_MAGIC) {
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

/*
 * Hand every extent of region (or of all regions) to cb, with the page
 * data of DATA extents.  all_data: decompress and check every chunk's
 * data even when no extent of it is wanted (verify).
 */
static int
zsnap_walk(struct snap_file *f, uint32_t region, int all_data, reader_cb *cb,
    void *arg)
{
	struct reader_chunk	c;

	for (uint64_t i = 0; i < f->info.chunk_count; i++) {
		size_t	data_off = 0;
		int	want = 0, need_data = 0;

		if (zsnap_chunk_load(f, i, &c) == -1)
			return -1;
		for (uint32_t k = 0; k < c.extent_count; k++) {
			if (region != ALL_REGIONS && f->extents[k].region != region)
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
			if (region != ALL_REGIONS && e->region != region)
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

/* ---- raw directories ------------------------------------------------------ */

static int
json_u64(struct snap_file *f, json_t *obj, const char *key, const char *where,
    uint64_t *v)
{
	json_t	*j = json_object_get(obj, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"%s\" is missing "
		    "or not a non-negative integer", where, key);
		return -1;
	}
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int
json_str(struct snap_file *f, json_t *obj, const char *key, const char *where,
    char *dst, size_t len)
{
	json_t	*j = json_object_get(obj, key);

	if (!json_is_string(j) || json_string_length(j) >= len ||
	    strlen(json_string_value(j)) != json_string_length(j)) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"%s\" is missing, "
		    "not a string or longer than %zu bytes", where, key,
		    len - 1);
		return -1;
	}
	memcpy(dst, json_string_value(j), json_string_length(j) + 1);
	return 0;
}

static int
raw_open_region_file(struct snap_file *f, uint32_t i)
{
	char	file[32];
	int	fd;

	snprintf(file, sizeof(file), "%u.img", i);
	fd = openat(f->fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		reader_error(f, errno, "region %u: open %s: %s", i, file,
		    strerror(errno));
	return fd;
}

static int
raw_parse_region(struct snap_file *f, json_t *jr, uint32_t i)
{
	struct snap_file_region	*g = &f->regions[i];
	struct stat		 st;
	json_t			*lost, *pair;
	char			 where[48], file[32], want[32];
	uint64_t		 index, next = 0;
	size_t			 k;
	int			 fd;

	snprintf(where, sizeof(where), "region %u", i);
	if (!json_is_object(jr) || json_u64(f, jr, "index", where, &index) ||
	    json_u64(f, jr, "start", where, &g->start) ||
	    json_u64(f, jr, "length", where, &g->length) ||
	    json_str(f, jr, "name", where, g->name, sizeof(g->name)) ||
	    json_str(f, jr, "file", where, file, sizeof(file))) {
		if (!json_is_object(jr))
			reader_error(f, EBADMSG, "snapshot.json: %s: not an "
			    "object", where);
		return -1;
	}
	snprintf(want, sizeof(want), "%u.img", i);
	if (index != i || strcmp(file, want) != 0) {
		reader_error(f, EBADMSG, "snapshot.json: %s: index %llu and file "
		    "\"%s\", expected %u and \"%s\"", where,
		    (unsigned long long)index, file, i, want);
		return -1;
	}
	if (g->length == 0 || g->length % ZSNAP_PAGE_SIZE != 0 ||
	    g->length > READER_REGION_BYTES_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: %s (%s): length %llu is "
		    "not a positive multiple of the page size below 2^56", where,
		    g->name, (unsigned long long)g->length);
		return -1;
	}
	f->region_pages[i] = g->length / ZSNAP_PAGE_SIZE;

	lost = json_object_get(jr, "lost");
	if (!json_is_array(lost)) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"lost\" is missing "
		    "or not an array", where);
		return -1;
	}
	if (json_array_size(lost) > 0) {
		f->lost[i] = calloc(json_array_size(lost), sizeof(**f->lost));
		if (f->lost[i] == NULL) {
			reader_error(f, ENOMEM, "cannot allocate %zu lost runs",
			    json_array_size(lost));
			return -1;
		}
	}
	json_array_foreach(lost, k, pair) {
		struct reader_range *l = &f->lost[i][k];
		json_t *a = json_array_get(pair, 0), *b = json_array_get(pair, 1);

		if (!json_is_array(pair) || json_array_size(pair) != 2 ||
		    !json_is_integer(a) || !json_is_integer(b) ||
		    json_integer_value(a) < 0 || json_integer_value(b) <= 0) {
			reader_error(f, EBADMSG, "snapshot.json: %s: lost run %zu "
			    "is not [first, count]", where, k);
			return -1;
		}
		l->first = (uint64_t)json_integer_value(a);
		l->count = (uint64_t)json_integer_value(b);
		if (l->first < next || l->first >= f->region_pages[i] ||
		    l->count > f->region_pages[i] - l->first) {
			reader_error(f, EBADMSG, "snapshot.json: %s: lost run %zu "
			    "(pages %llu+%llu) overlaps another, is out of order "
			    "or outside the region (%llu pages)", where, k,
			    (unsigned long long)l->first,
			    (unsigned long long)l->count,
			    (unsigned long long)f->region_pages[i]);
			return -1;
		}
		next = l->first + l->count;
		f->lost_count[i]++;
	}

	if ((fd = raw_open_region_file(f, i)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		reader_error(f, errno, "region %u: stat %s: %s", i, file,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != g->length) {
		reader_error(f, EBADMSG, "region %u: %s is %s of %llu bytes, "
		    "expected a file of %llu", i, file,
		    S_ISREG(st.st_mode) ? "a file" : "not a regular file",
		    (unsigned long long)st.st_size,
		    (unsigned long long)g->length);
		return -1;
	}
	f->info.file_size += (uint64_t)st.st_size;
	return 0;
}

static int
raw_open(struct snap_file *f)
{
	struct stat	 st;
	json_error_t	 jerr;
	json_t		*root = NULL, *regions, *jr;
	char		*text = NULL, format[32];
	uint64_t	 major, minor, page_size, v;
	size_t		 i, count;
	int		 fd, rc = -1;

	fd = openat(f->fd, "snapshot.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		reader_error(f, errno == ENOENT ? EBADMSG : errno,
		    "open snapshot.json: %s%s", strerror(errno),
		    errno == ENOENT ? " (not a raw snapshot, or an incomplete "
		    "one)" : "");
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > READER_JSON_BYTES_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: not a regular file of "
		    "at most %u bytes", READER_JSON_BYTES_MAX);
		goto out;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %lld bytes",
		    (long long)st.st_size);
		goto out;
	}
	if (reader_pread(f, fd, text, (size_t)st.st_size, 0,
	    "snapshot.json") == -1)
		goto out;
	root = json_loadb(text, (size_t)st.st_size, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (root == NULL || !json_is_object(root)) {
		reader_error(f, EBADMSG, "snapshot.json: line %d: %s",
		    root ? 1 : jerr.line, root ? "not an object" : jerr.text);
		goto out;
	}
	if (json_str(f, root, "format", "top level", format, sizeof(format)) ||
	    json_u64(f, root, "version_major", "top level", &major) ||
	    json_u64(f, root, "version_minor", "top level", &minor) ||
	    json_u64(f, root, "page_size", "top level", &page_size))
		goto out;
	f->info.version_major = (unsigned)major;
	f->info.version_minor = (unsigned)minor;
	if (strcmp(format, "zsnap-raw") != 0 || major != ZSNAP_VERSION_MAJOR ||
	    page_size != ZSNAP_PAGE_SIZE) {
		reader_error(f, ENOTSUP, "snapshot.json: format \"%s\" version "
		    "%llu.%llu, page size %llu: this reader knows \"zsnap-raw\" "
		    "%u.x with %u-byte pages", format, (unsigned long long)major,
		    (unsigned long long)minor, (unsigned long long)page_size,
		    ZSNAP_VERSION_MAJOR, ZSNAP_PAGE_SIZE);
		goto out;
	}
	if (json_str(f, root, "name", "top level", f->info.name,
	    sizeof(f->info.name)) ||
	    json_str(f, root, "comm", "top level", f->info.comm,
	    sizeof(f->info.comm)) ||
	    json_u64(f, root, "armed_realtime_ns", "top level",
	    &f->info.armed_realtime_ns) ||
	    json_u64(f, root, "pages_total", "top level", &f->info.pages_total) ||
	    json_u64(f, root, "pages_data", "top level", &f->info.pages_data) ||
	    json_u64(f, root, "pages_zero", "top level", &f->info.pages_zero) ||
	    json_u64(f, root, "pages_lost", "top level", &f->info.pages_lost))
		goto out;
	if (json_u64(f, root, "pid", "top level", &v))
		goto out;
	f->info.pid = (uint32_t)v;
	if (json_u64(f, root, "uid", "top level", &v))
		goto out;
	f->info.uid = (uint32_t)v;
	if (json_u64(f, root, "flags", "top level", &v))
		goto out;
	f->flags = (uint32_t)v;

	regions = json_object_get(root, "regions");
	count = json_array_size(regions);
	if (!json_is_array(regions) || count == 0 || count > READER_REGIONS_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: \"regions\" is not an "
		    "array of 1 to %u regions", READER_REGIONS_MAX);
		goto out;
	}
	f->info.region_count = (uint32_t)count;
	f->regions = calloc(count, sizeof(*f->regions));
	f->region_pages = calloc(count, sizeof(*f->region_pages));
	f->lost = calloc(count, sizeof(*f->lost));
	f->lost_count = calloc(count, sizeof(*f->lost_count));
	if (f->regions == NULL || f->region_pages == NULL || f->lost == NULL ||
	    f->lost_count == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %zu regions", count);
		goto out;
	}
	json_array_foreach(regions, i, jr) {
		if (raw_parse_region(f, jr, (uint32_t)i) == -1)
			goto out;
	}
	f->info.file_size += (uint64_t)st.st_size;
	rc = 0;
out:
	json_decref(root);
	free(text);
	close(fd);
	return rc;
}

/* Emit pages [first, first + count) of region i, read from its file. */
static int
raw_walk_range(struct snap_file *f, int fd, uint32_t i, uint64_t first,
    uint64_t count, reader_cb *cb, void *arg)
{
	const size_t	 batch = READER_RAW_BATCH_PAGES;
	char		 what[48];

	snprintf(what, sizeof(what), "region %u file %u.img", i, i);
	if (reader_reserve(f, (void **)&f->data, &f->data_cap,
	    batch * ZSNAP_PAGE_SIZE) == -1)
		return -1;
	while (count > 0) {
		size_t	n = count < batch ? (size_t)count : batch;
		size_t	k = 0;

		if (reader_pread(f, fd, f->data, n * ZSNAP_PAGE_SIZE,
		    first * ZSNAP_PAGE_SIZE, what) == -1)
			return -1;
		/* Group the batch into runs of DATA and ZERO pages. */
		while (k < n) {
			struct reader_extent	 e;
			size_t			 run = k;
			int			 zero;
			const unsigned char	*pg;

			pg = f->data + k * ZSNAP_PAGE_SIZE;
			zero = pg[0] == 0 && memcmp(pg, pg + 1,
			    ZSNAP_PAGE_SIZE - 1) == 0;
			do {
				run++;
				pg = f->data + run * ZSNAP_PAGE_SIZE;
			} while (run < n && (pg[0] == 0 && memcmp(pg, pg + 1,
			    ZSNAP_PAGE_SIZE - 1) == 0) == zero);
			e.region = i;
			e.kind = zero ? ZSNAP_EXTENT_ZERO : ZSNAP_EXTENT_DATA;
			e.first = first + k;
			e.count = run - k;
			if (cb(f, arg, NO_CHUNK, &e, zero ? NULL :
			    f->data + k * ZSNAP_PAGE_SIZE) == -1)
				return -1;
			k = run;
		}
		first += n;
		count -= n;
	}
	return 0;
}

static int
raw_walk(struct snap_file *f, uint32_t region, reader_cb *cb, void *arg)
{
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		uint64_t	page = 0;
		int		fd;

		if (region != ALL_REGIONS && region != i)
			continue;
		if ((fd = raw_open_region_file(f, i)) == -1)
			return -1;
		for (size_t k = 0; k <= f->lost_count[i]; k++) {
			uint64_t end = k < f->lost_count[i] ?
			    f->lost[i][k].first : f->region_pages[i];
			struct reader_extent e;

			if (end > page && raw_walk_range(f, fd, i, page,
			    end - page, cb, arg) == -1) {
				close(fd);
				return -1;
			}
			if (k == f->lost_count[i])
				break;
			e.region = i;
			e.kind = ZSNAP_EXTENT_LOST;
			e.first = f->lost[i][k].first;
			e.count = f->lost[i][k].count;
			if (cb(f, arg, NO_CHUNK, &e, NULL) == -1) {
				close(fd);
				return -1;
			}
			page = e.first + e.count;
		}
		close(fd);
	}
	return 0;
}

static int
reader_walk(struct snap_file *f, uint32_t region, int all_data, reader_cb *cb,
    void *arg)
{
	if (f->format == 0)
		return zsnap_walk(f, region, all_data, cb, arg);
	return raw_walk(f, region, cb, arg);
}

/* ---- public: open, close, info ------------------------------------------- */

struct snap_file *
snap_file_open(const char *path)
{
	struct snap_file	*f;
	struct stat		 st;
	int			 saved;

	if (path == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_open: no path");
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		sc_set_error(NULL, ENOMEM, "%s: cannot allocate a reader", path);
		return NULL;
	}
	snprintf(f->path, sizeof(f->path), "%s", path);
	if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		sc_set_error(NULL, saved, "%s: open: %s", path, strerror(saved));
		free(f);
		return NULL;
	}
	if (fstat(f->fd, &st) == -1) {
		reader_error(f, errno, "stat: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		f->format = 1;
		f->info.format = 1;
		if (raw_open(f) == -1)
			goto fail;
	} else if (S_ISREG(st.st_mode)) {
		f->info.file_size = (uint64_t)st.st_size;
		if (zsnap_open(f) == -1)
			goto fail;
	} else {
		reader_error(f, EINVAL, "neither a zsnap file nor a raw "
		    "snapshot directory");
		goto fail;
	}
	return f;
fail:
	saved = errno;
	snap_file_close(f);
	errno = saved;
	return NULL;
}

void
snap_file_close(struct snap_file *f)
{
	int	saved = errno;

	if (f == NULL)
		return;
	if (f->fd != -1)
		close(f->fd);
	if (f->lost != NULL)
		for (uint32_t i = 0; i < f->info.region_count; i++)
			free(f->lost[i]);
	free(f->lost);
	free(f->lost_count);
	free(f->regions);
	free(f->region_pages);
	free(f->index);
	ZSTD_freeDCtx(f->dctx);
	free(f->payload);
	free(f->extents);
	free(f->frame);
	free(f->data);
	free(f);
	errno = saved;
}

int
snap_file_info(struct snap_file *f, struct snap_file_info *info)
{
	if (f == NULL || info == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_info: no file or no info");
		return -1;
	}
	*info = f->info;
	return 0;
}

int
snap_file_region(struct snap_file *f, uint32_t index,
    struct snap_file_region *region)
{
	if (f == NULL || region == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_region: no file or no "
		    "region");
		return -1;
	}
	if (index >= f->info.region_count) {
		reader_error(f, EINVAL, "no region %u (the snapshot has %u)",
		    index, f->info.region_count);
		return -1;
	}
	*region = f->regions[index];
	return 0;
}

/* ---- verify ---------------------------------------------------------------- */

struct verify_state {
	uint64_t	**bitmap;	/* per region, one bit per page */
	uint64_t	  pages[3];	/* by kind */
	int		  twice;	/* a page covered twice: where */
	uint32_t	  twice_region;
	uint64_t	  twice_page;
	uint64_t	  twice_chunk;
};

/*
 * Set bits [first, first + count) of map; if one was already set, return
 * its index in *dup and stop (bits set so far stay set).
 */
static int
bitmap_claim(uint64_t *map, uint64_t first, uint64_t count, uint64_t *dup)
{
	uint64_t	end = first + count;

	while (first < end) {
		uint64_t	w = first / 64, bit = first % 64;
		uint64_t	n = 64 - bit < end - first ? 64 - bit : end - first;
		uint64_t	mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;

		if (map[w] & mask) {
			*dup = w * 64 + (uint64_t)__builtin_ctzll(map[w] & mask);
			return -1;
		}
		map[w] |= mask;
		first += n;
	}
	return 0;
}

static int
verify_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct verify_state	*v = arg;
	uint64_t		 dup;

	if (bitmap_claim(v->bitmap[e->region], e->first, e->count, &dup) == -1) {
		v->twice = 1;
		v->twice_region = e->region;
		v->twice_page = dup;
		v->twice_chunk = chunk;
		errno = EBADMSG;
		return -1;
	}
	v->pages[e->kind] += e->count;
	return 0;
}

/* The first chunk (up to last) with an extent covering region/page. */
static uint64_t
verify_find_cover(struct snap_file *f, uint32_t region, uint64_t page,
    uint64_t last)
{
	struct reader_chunk	c;

	for (uint64_t i = 0; i <= last; i++) {
		if (zsnap_chunk_load(f, i, &c) == -1)
			return NO_CHUNK;
		for (uint32_t k = 0; k < c.extent_count; k++) {
			const struct reader_extent *e = &f->extents[k];

			if (e->region == region && page >= e->first &&
			    page - e->first < e->count)
				return i;
		}
	}
	return NO_CHUNK;
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

int
snap_file_verify(struct snap_file *f)
{
	struct verify_state	 v;
	uint64_t		 total = 0;
	int			 rc = -1;

	if (f == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_verify: no file");
		return -1;
	}
	memset(&v, 0, sizeof(v));
	for (uint32_t i = 0; i < f->info.region_count; i++)
		total += f->region_pages[i];
	if (total > READER_VERIFY_PAGES_MAX) {
		reader_error(f, EFBIG, "the regions hold %llu pages, more than "
		    "this reader can check (%llu)", (unsigned long long)total,
		    (unsigned long long)READER_VERIFY_PAGES_MAX);
		return -1;
	}
	if ((v.bitmap = calloc(f->info.region_count, sizeof(*v.bitmap))) == NULL)
		goto nomem;
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		v.bitmap[i] = calloc((f->region_pages[i] + 63) / 64,
		    sizeof(uint64_t));
		if (v.bitmap[i] == NULL)
			goto nomem;
	}

	if (reader_walk(f, ALL_REGIONS, 1, verify_extent, &v) == -1) {
		if (v.twice) {
			uint64_t first = f->format == 0 ? verify_find_cover(f,
			    v.twice_region, v.twice_page, v.twice_chunk) :
			    NO_CHUNK;

			if (f->format == 0 && first == v.twice_chunk)
				reader_error(f, EBADMSG, "region %u page %llu: "
				    "covered twice (both in chunk %llu)",
				    v.twice_region,
				    (unsigned long long)v.twice_page,
				    (unsigned long long)first);
			else if (f->format == 0 && first != NO_CHUNK)
				reader_error(f, EBADMSG, "region %u page %llu: "
				    "covered twice (chunks %llu and %llu)",
				    v.twice_region,
				    (unsigned long long)v.twice_page,
				    (unsigned long long)first,
				    (unsigned long long)v.twice_chunk);
			else
				reader_error(f, EBADMSG, "region %u page %llu: "
				    "covered twice", v.twice_region,
				    (unsigned long long)v.twice_page);
		}
		goto out;
	}
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		uint64_t	pages = f->region_pages[i];

		for (uint64_t w = 0; w * 64 < pages; w++) {
			uint64_t bits = w * 64 + 64 <= pages ? ~0ull :
			    (1ull << (pages - w * 64)) - 1;
			uint64_t gap_first, gap_end;

			if ((v.bitmap[i][w] & bits) == bits)
				continue;
			gap_first = w * 64 + (uint64_t)__builtin_ctzll(
			    ~v.bitmap[i][w] & bits);
			/*
			 * A word at a time: a crafted region can be 2^34 pages
			 * long, and one bit at a time that takes minutes.
			 * Bits past the region's end are never set.
			 */
			gap_end = gap_first;
			while (gap_end < pages) {
				uint64_t rest = v.bitmap[i][gap_end / 64] >>
				    (gap_end % 64);

				if (rest != 0) {
					gap_end += (uint64_t)__builtin_ctzll(rest);
					break;
				}
				gap_end = (gap_end / 64 + 1) * 64;
			}
			if (gap_end > pages)
				gap_end = pages;
			reader_error(f, EBADMSG, "region %u page %llu: not "
			    "covered by any extent (pages %llu to %llu missing)",
			    i, (unsigned long long)gap_first,
			    (unsigned long long)gap_first,
			    (unsigned long long)(gap_end - 1));
			goto out;
		}
	}
	if (verify_totals(f, &v) == -1)
		goto out;
	rc = 0;
	goto out;
nomem:
	reader_error(f, ENOMEM, "cannot allocate the page coverage bitmaps "
	    "(%llu pages)", (unsigned long long)total);
out:
	if (v.bitmap != NULL)
		for (uint32_t i = 0; i < f->info.region_count; i++)
			free(v.bitmap[i]);
	free(v.bitmap);
	return rc;
}

/* ---- restore ---------------------------------------------------------------- */

struct restore_state {
	unsigned char	*addr;
	uint64_t	 pages;		/* restored or lost */
	uint64_t	 lost;
};

static int
restore_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct restore_state	*r = arg;
	unsigned char		*dst = r->addr + e->first * ZSNAP_PAGE_SIZE;
	size_t			 len = (size_t)e->count * ZSNAP_PAGE_SIZE;

	switch (e->kind) {
	case ZSNAP_EXTENT_DATA:
		memcpy(dst, data, len);
		break;
	case ZSNAP_EXTENT_ZERO:
		memset(dst, 0, len);
		break;
	case ZSNAP_EXTENT_LOST:
		r->lost += e->count;
		break;
	}
	r->pages += e->count;
	return 0;
}

int
snap_file_restore(struct snap_file *f, uint32_t index, void *addr, size_t len,
    uint64_t *pages_lost)
{
	struct restore_state	r;

	if (f == NULL || addr == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_restore: no file or no "
		    "address");
		return -1;
	}
	if (index >= f->info.region_count) {
		reader_error(f, EINVAL, "no region %u (the snapshot has %u)",
		    index, f->info.region_count);
		return -1;
	}
	if (len < f->regions[index].length) {
		reader_error(f, EINVAL, "region %u (%s) is %llu bytes, the "
		    "memory to restore it into only %zu", index,
		    f->regions[index].name,
		    (unsigned long long)f->regions[index].length, len);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.addr = addr;
	if (reader_walk(f, index, 0, restore_extent, &r) == -1)
		return -1;
	if (r.pages != f->region_pages[index]) {
		reader_error(f, EBADMSG, "region %u (%s): the snapshot covers "
		    "%llu of its %llu pages", index, f->regions[index].name,
		    (unsigned long long)r.pages,
		    (unsigned long long)f->region_pages[index]);
		return -1;
	}
	if (pages_lost != NULL)
		*pages_lost = r.lost;
	return 0;
}

int
snap_restore(const char *path, const char *region_name, void *addr,
    size_t len)
{
	struct snap_file	*f;
	int			 rc = -1;

	if (region_name == NULL) {
		sc_set_error(NULL, EINVAL, "snap_restore: no region name");
		return -1;
	}
	if ((f = snap_file_open(path)) == NULL)
		return -1;
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		if (strcmp(f->regions[i].name, region_name) == 0) {
			rc = snap_file_restore(f, i, addr, len, NULL);
			snap_file_close(f);
			return rc;
		}
	}
	reader_error(f, ENOENT, "no region named \"%s\"", region_name);
	snap_file_close(f);
	errno = ENOENT;
	return -1;
}

/* ---- export as raw ------------------------------------------------------------ */

struct export_state {
	int			 dirfd;
	const char		*dir;	/* the temporary directory, for messages */
	int			*fds;
	struct reader_range	**lost;
	size_t			*lost_count;
	size_t			*lost_cap;
};

static int
export_pwrite(struct snap_file *f, struct export_state *x, uint32_t region,
    const unsigned char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t	n = pwrite(x->fds[region], buf, len, (off_t)off);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			reader_error(f, n < 0 ? errno : EIO, "export: write "
			    "%s/%u.img: %s", x->dir, region,
			    n < 0 ? strerror(errno) : "wrote nothing");
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
export_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct export_state	*x = arg;
	uint32_t		 r = e->region;

	if (e->kind == ZSNAP_EXTENT_LOST) {
		if (x->lost_count[r] == x->lost_cap[r]) {
			size_t	 cap = x->lost_cap[r] ? x->lost_cap[r] * 2 : 16;
			void	*p = reallocarray(x->lost[r], cap,
			    sizeof(**x->lost));

			if (p == NULL) {
				reader_error(f, ENOMEM, "export: cannot allocate "
				    "%zu lost runs", cap);
				return -1;
			}
			x->lost[r] = p;
			x->lost_cap[r] = cap;
		}
		x->lost[r][x->lost_count[r]].first = e->first;
		x->lost[r][x->lost_count[r]].count = e->count;
		x->lost_count[r]++;
		return 0;
	}
	if (e->kind != ZSNAP_EXTENT_DATA)
		return 0;	/* zero pages stay holes */
	/* One write per run of non-zero pages, so the file stays sparse. */
	for (uint64_t i = 0; i < e->count;) {
		const unsigned char *pg = data + i * ZSNAP_PAGE_SIZE;
		uint64_t run = i;

		while (run < e->count && !(pg[0] == 0 && memcmp(pg, pg + 1,
		    ZSNAP_PAGE_SIZE - 1) == 0)) {
			run++;
			pg += ZSNAP_PAGE_SIZE;
		}
		if (run > i && export_pwrite(f, x, r, data + i * ZSNAP_PAGE_SIZE,
		    (size_t)(run - i) * ZSNAP_PAGE_SIZE,
		    (e->first + i) * ZSNAP_PAGE_SIZE) == -1)
			return -1;
		i = run < e->count ? run + 1 : run;
	}
	return 0;
}

static int
range_compare(const void *a, const void *b)
{
	const struct reader_range	*x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* snapshot.json as daemon/output-raw.c writes it (see proto/FORMAT.md). */
static json_t *
export_json(struct snap_file *f, struct export_state *x)
{
	json_t	*root, *regions;
	char	 file[32];

	if ((regions = json_array()) == NULL)
		return NULL;
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		json_t	*lost = json_array();

		if (lost == NULL) {
			json_decref(regions);
			return NULL;
		}
		if (x->lost_count[i] > 0)
			qsort(x->lost[i], x->lost_count[i],
			    sizeof(*x->lost[i]), range_compare);
		for (size_t k = 0; k < x->lost_count[i]; k++) {
			/* Adjacent runs from different chunks become one. */
			if (k > 0 && x->lost[i][k - 1].first +
			    x->lost[i][k - 1].count == x->lost[i][k].first) {
				json_t *prev = json_array_get(lost,
				    json_array_size(lost) - 1);
				json_t *cnt = json_array_get(prev, 1);

				json_integer_set(cnt, json_integer_value(cnt) +
				    (json_int_t)x->lost[i][k].count);
				continue;
			}
			json_array_append_new(lost, json_pack("[II]",
			    (json_int_t)x->lost[i][k].first,
			    (json_int_t)x->lost[i][k].count));
		}
		snprintf(file, sizeof(file), "%u.img", i);
		json_array_append_new(regions, json_pack("{sI sI sI ss ss so}",
		    "index", (json_int_t)i,
		    "start", (json_int_t)f->regions[i].start,
		    "length", (json_int_t)f->regions[i].length,
		    "name", f->regions[i].name,
		    "file", file,
		    "lost", lost));
	}
	root = json_pack("{ss sI sI sI ss sI sI ss sI sI sI sI sI sI so}",
	    "format", "zsnap-raw",
	    "version_major", (json_int_t)ZSNAP_VERSION_MAJOR,
	    "version_minor", (json_int_t)ZSNAP_VERSION_MINOR,
	    "page_size", (json_int_t)ZSNAP_PAGE_SIZE,
	    "name", f->info.name,
	    "pid", (json_int_t)f->info.pid,
	    "uid", (json_int_t)f->info.uid,
	    "comm", f->info.comm,
	    "armed_realtime_ns", (json_int_t)f->info.armed_realtime_ns,
	    "flags", (json_int_t)(f->info.pages_lost > 0 ?
	    ZSNAP_F_LOST_PAGES : 0),
	    "pages_total", (json_int_t)f->info.pages_total,
	    "pages_data", (json_int_t)f->info.pages_data,
	    "pages_zero", (json_int_t)f->info.pages_zero,
	    "pages_lost", (json_int_t)f->info.pages_lost,
	    "regions", regions);
	return root;
}

static int
export_finish(struct snap_file *f, struct export_state *x, const char *dir)
{
	json_t	*root;
	char	*text;
	int	 fd, rc = -1;

	for (uint32_t i = 0; i < f->info.region_count; i++) {
		if (fsync(x->fds[i]) == -1) {
			reader_error(f, errno, "export: fsync %s/%u.img: %s",
			    x->dir, i, strerror(errno));
			return -1;
		}
	}
	if ((root = export_json(f, x)) == NULL ||
	    (text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER)) ==
	    NULL) {
		json_decref(root);
		reader_error(f, ENOMEM, "export: cannot build snapshot.json");
		return -1;
	}
	json_decref(root);
	fd = openat(x->dirfd, "snapshot.json", O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		reader_error(f, errno, "export: create %s/snapshot.json: %s",
		    x->dir, strerror(errno));
		free(text);
		return -1;
	}
	for (size_t off = 0, len = strlen(text); off < len;) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			reader_error(f, n < 0 ? errno : EIO, "export: write "
			    "%s/snapshot.json: %s", x->dir,
			    n < 0 ? strerror(errno) : "wrote nothing");
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) == -1) {
		reader_error(f, errno, "export: write %s/snapshot.json: %s",
		    x->dir, strerror(errno));
		goto out;
	}
	if (fsync(x->dirfd) == -1) {
		reader_error(f, errno, "export: fsync %s: %s", x->dir,
		    strerror(errno));
		goto out;
	}
	if (renameat2(AT_FDCWD, x->dir, AT_FDCWD, dir, RENAME_NOREPLACE) == -1) {
		reader_error(f, errno, "export: rename %s to %s: %s", x->dir,
		    dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(text);
	close(fd);
	return rc;
}

int
snap_file_export_raw(struct snap_file *f, const char *dir)
{
	struct export_state	 x;
	char			 tmp[PATH_MAX], file[32];
	uint32_t		 n;
	int			 rc = -1, made = 0, saved;

	if (f == NULL || dir == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_export_raw: no file or no "
		    "directory");
		return -1;
	}
	n = f->info.region_count;
	memset(&x, 0, sizeof(x));
	x.dirfd = -1;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dir, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		reader_error(f, ENAMETOOLONG, "export: %s: name too long", dir);
		return -1;
	}
	x.dir = tmp;
	x.fds = malloc(n * sizeof(*x.fds));
	x.lost = calloc(n, sizeof(*x.lost));
	x.lost_count = calloc(n, sizeof(*x.lost_count));
	x.lost_cap = calloc(n, sizeof(*x.lost_cap));
	if (x.fds == NULL || x.lost == NULL || x.lost_count == NULL ||
	    x.lost_cap == NULL) {
		reader_error(f, ENOMEM, "export: cannot allocate %u regions", n);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		x.fds[i] = -1;
	if (mkdir(tmp, 0700) == -1) {
		reader_error(f, errno, "export: create directory %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	made = 1;
	x.dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x.dirfd == -1) {
		reader_error(f, errno, "export: open directory %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%u.img", i);
		x.fds[i] = openat(x.dirfd, file, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (x.fds[i] == -1 || ftruncate(x.fds[i],
		    (off_t)f->regions[i].length) == -1) {
			reader_error(f, errno, "export: create %s/%s: %s", tmp,
			    file, strerror(errno));
			goto out;
		}
	}
	if (reader_walk(f, ALL_REGIONS, 0, export_extent, &x) == -1 ||
	    export_finish(f, &x, dir) == -1)
		goto out;
	made = 0;	/* renamed into place: keep it */
	rc = 0;
out:
	saved = errno;
	for (uint32_t i = 0; x.fds != NULL && i < n; i++) {
		if (x.fds[i] != -1)
			close(x.fds[i]);
		if (made && x.dirfd != -1) {
			snprintf(file, sizeof(file), "%u.img", i);
			unlinkat(x.dirfd, file, 0);
		}
	}
	if (made) {
		if (x.dirfd != -1)
			unlinkat(x.dirfd, "snapshot.json", 0);
		rmdir(tmp);
	}
	if (x.dirfd != -1)
		close(x.dirfd);
	for (uint32_t i = 0; x.lost != NULL && i < n; i++)
		free(x.lost[i]);
	free(x.fds);
	free(x.lost);
	free(x.lost_count);
	free(x.lost_cap);
	errno = saved;
	return rc;
}
