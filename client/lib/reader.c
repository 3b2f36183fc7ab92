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
 * No cost may follow what the file claims rather than what it holds: a
 * few hundred bytes can describe regions of 2^44 zero pages, legitimately,
 * so loops and allocations are sized by extents, chunks and index entries
 * (each of which takes bytes of the file), never by pages.
 *
 * snap_file_open() checks the structure (footer, header, index: every
 * checksum and bound), so info and region queries are safe on anything it
 * returns; walking chunks checks each chunk as it is read, and
 * snap_file_verify() additionally decompresses everything and proves that
 * every page of every region is covered exactly once (reader-verify.c; the
 * same check guards restore and export, reader-restore.c).
 *
 * This file opens zsnap files and walks their chunks; reader-raw.c does the
 * same for raw directories (reader-internal.h lists the files).  One walker
 * (reader_walk) serves verify, restore and export: it hands each extent,
 * with its page data for DATA extents, to a callback, for either format.
 * A struct snap_file is used by one thread at a time.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "crc32c.h"
#include "error.h"
#include "reader-internal.h"
#include "s3.h"
#include "utf8.h"

void
reader_error(struct snap_file *f, int err, const char *fmt, ...)
{
	char	msg[SC_ERROR_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sc_set_error(NULL, err, "%s: %s", f->path, msg);
}

int
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
int
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

int
reader_read(struct snap_file *f, void *buf, size_t len, uint64_t off,
    const char *what)
{
	if (f->s3 != NULL)
		return reader_s3_read(f, buf, len, off, what);
	return reader_pread(f, f->fd, buf, len, off, what);
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

	if (reader_read(f, buf, sizeof(buf), off, "footer") == -1)
		return -1;
	if (zsnap_get32(buf) != ZSNAP_FRAME_FOOTER ||
	    zsnap_get32(buf + 4) != sizeof(struct zsnap_footer) ||
	    memcmp(p, ZSNAP_FOOTER_MAGIC, 8) != 0) {
		reader_error(f, EBADMSG, "truncated or incomplete: no zsnap "
		    "footer at end of file (size %llu)", (unsigned long long)size);
		return -1;
	}
	if (crc32c(0, p, offsetof(struct zsnap_footer, crc)) !=
	    zsnap_get32(p + offsetof(struct zsnap_footer, crc))) {
		reader_error(f, EBADMSG, "footer at offset %llu: checksum "
		    "mismatch", (unsigned long long)off);
		return -1;
	}
	memcpy(ft->magic, p, 8);
	ft->index_offset = zsnap_get64(p + offsetof(struct zsnap_footer, index_offset));
	ft->index_length = zsnap_get64(p + offsetof(struct zsnap_footer, index_length));
	ft->chunk_count = zsnap_get64(p + offsetof(struct zsnap_footer, chunk_count));
	ft->pages_total = zsnap_get64(p + offsetof(struct zsnap_footer, pages_total));
	ft->pages_data = zsnap_get64(p + offsetof(struct zsnap_footer, pages_data));
	ft->pages_zero = zsnap_get64(p + offsetof(struct zsnap_footer, pages_zero));
	ft->pages_lost = zsnap_get64(p + offsetof(struct zsnap_footer, pages_lost));
	ft->flags = zsnap_get32(p + offsetof(struct zsnap_footer, flags));
	return 0;
}

/*
 * The header's fixed part in buf, payload bytes with a good checksum: its
 * magic, the version and page size this reader must know, and a region
 * count that the payload's size agrees with; then the snapshot's
 * description into f->info.
 */
static int
zsnap_parse_header(struct snap_file *f, const unsigned char *buf,
    uint32_t payload)
{
	uint32_t	 count;
	unsigned	 major, minor;

	if (memcmp(buf, ZSNAP_MAGIC, 8) != 0) {
		reader_error(f, EBADMSG, "header at offset 0: bad magic");
		return -1;
	}
	major = zsnap_get32(buf + offsetof(struct zsnap_header, version_major)) &
	    0xffff;
	minor = zsnap_get32(buf + offsetof(struct zsnap_header, version_major)) >> 16;
	f->info.version_major = major;
	f->info.version_minor = minor;
	if (major != ZSNAP_VERSION_MAJOR) {
		reader_error(f, ENOTSUP, "header at offset 0: format version "
		    "%u.%u, this reader knows %u.x", major, minor,
		    ZSNAP_VERSION_MAJOR);
		return -1;
	}
	if (zsnap_get32(buf + offsetof(struct zsnap_header, page_size)) !=
	    ZSNAP_PAGE_SIZE) {
		reader_error(f, ENOTSUP, "header at offset 0: page size %u, "
		    "this reader knows %u",
		    zsnap_get32(buf + offsetof(struct zsnap_header, page_size)),
		    ZSNAP_PAGE_SIZE);
		return -1;
	}
	count = zsnap_get32(buf + offsetof(struct zsnap_header, region_count));
	if (count == 0 || count > READER_REGIONS_MAX ||
	    payload != sizeof(struct zsnap_header) +
	    (uint64_t)count * sizeof(struct zsnap_region) + 4) {
		reader_error(f, EBADMSG, "header at offset 0: %u bytes do not "
		    "hold a region table of %u regions", payload, count);
		return -1;
	}
	f->info.region_count = count;
	f->flags = zsnap_get32(buf + offsetof(struct zsnap_header, flags));
	f->info.armed_realtime_ns = zsnap_get64(buf + offsetof(struct zsnap_header,
	    armed_realtime_ns));
	if (f->info.armed_realtime_ns > INT64_MAX) {
		reader_error(f, EBADMSG, "header at offset 0: armed time %llu ns "
		    "is past 2^63", (unsigned long long)f->info.armed_realtime_ns);
		return -1;
	}
	f->info.pid = zsnap_get32(buf + offsetof(struct zsnap_header, pid));
	f->info.uid = zsnap_get32(buf + offsetof(struct zsnap_header, uid));
	get_name(f->info.comm, sizeof(f->info.comm),
	    (const char *)buf + offsetof(struct zsnap_header, comm), 16);
	get_name(f->info.name, sizeof(f->info.name),
	    (const char *)buf + offsetof(struct zsnap_header, name),
	    ZSNAP_NAME_MAX);
	memcpy(f->raw_name, buf + offsetof(struct zsnap_header, name),
	    ZSNAP_NAME_MAX);
	return 0;
}

/*
 * The header's region table at r, f->info.region_count entries, into
 * f->regions and f->region_pages: each region whole pages, below 2^56
 * bytes, and ending below 2^63.
 */
static int
zsnap_parse_regions(struct snap_file *f, const unsigned char *r)
{
	uint32_t	 count = f->info.region_count;

	f->regions = calloc(count, sizeof(*f->regions));
	f->region_pages = calloc(count, sizeof(*f->region_pages));
	if (f->regions == NULL || f->region_pages == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %u regions", count);
		return -1;
	}
	for (uint32_t i = 0; i < count; i++, r += sizeof(struct zsnap_region)) {
		struct snap_file_region *g = &f->regions[i];

		g->start = zsnap_get64(r + offsetof(struct zsnap_region, start));
		g->length = zsnap_get64(r + offsetof(struct zsnap_region, length));
		get_name(g->name, sizeof(g->name), (const char *)r +
		    offsetof(struct zsnap_region, name), ZSNAP_NAME_MAX);
		if (g->length == 0 || g->length % ZSNAP_PAGE_SIZE != 0 ||
		    g->length > READER_REGION_BYTES_MAX) {
			reader_error(f, EBADMSG, "header at offset 0: region %u "
			    "(%s): length %llu is not a positive multiple of the "
			    "page size below 2^56", i, g->name,
			    (unsigned long long)g->length);
			return -1;
		}
		if (g->start > INT64_MAX - g->length) {
			reader_error(f, EBADMSG, "header at offset 0: region %u "
			    "(%s): start %#llx plus length %llu passes 2^63", i,
			    g->name, (unsigned long long)g->start,
			    (unsigned long long)g->length);
			return -1;
		}
		f->region_pages[i] = g->length / ZSNAP_PAGE_SIZE;
	}
	return 0;
}

/*
 * The skippable frame a header flag promises at f->header_end: its magic,
 * and a payload size from min to max bytes that fits before the footer.
 * *len gets the payload's size.
 */
static int
zsnap_find_frame(struct snap_file *f, uint32_t magic, uint64_t min,
    uint64_t max, const char *what, uint32_t *len)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE];
	uint64_t	 off = f->header_end;
	uint64_t	 limit = f->info.file_size - ZSNAP_FOOTER_FRAME_SIZE;

	if (off + ZSNAP_SKIP_HDR_SIZE > limit) {
		reader_error(f, EBADMSG, "%s at offset %llu: truncated", what,
		    (unsigned long long)off);
		return -1;
	}
	if (reader_read(f, skip, sizeof(skip), off, what) == -1)
		return -1;
	*len = zsnap_get32(skip + 4);
	if (zsnap_get32(skip) != magic || *len < min || *len > max ||
	    *len > limit - off - ZSNAP_SKIP_HDR_SIZE) {
		reader_error(f, EBADMSG, "%s at offset %llu: the header says "
		    "there is one, but there is none of a possible size there "
		    "(magic %#x, size %u)", what, (unsigned long long)off,
		    zsnap_get32(skip), *len);
		return -1;
	}
	return 0;
}

/*
 * With ZSNAP_F_PROCESS in the header, the process frame follows it: find
 * it and move header_end past it, where the first chunk must start (or
 * the parent frame).  Its content is checked when it is read
 * (reader-process.c).
 */
static int
zsnap_read_process_frame(struct snap_file *f)
{
	uint32_t	 len;

	if (!(f->flags & ZSNAP_F_PROCESS))
		return 0;
	if (zsnap_find_frame(f, ZSNAP_FRAME_PROCESS, 4,
	    READER_PROCESS_BYTES_MAX, "process frame", &len) == -1)
		return -1;
	f->process = 1;
	f->process_off = f->header_end + ZSNAP_SKIP_HDR_SIZE;
	f->process_len = len;
	f->header_end = f->process_off + len;
	return 0;
}

/*
 * A parent frame's payload in buf (len bytes, its crc checked) at offset
 * off: the link, whose file must be a plain name of this directory and
 * whose depth is bounded, and the whole ranges, each inside its region.
 * A reason this reader does not know is kept (and shown as "unknown").
 */
static int
zsnap_parse_parent(struct snap_file *f, const unsigned char *buf,
    uint32_t len, uint64_t off)
{
	struct zsnap_parent	*l = &f->link;
	const unsigned char	*w = buf + sizeof(struct zsnap_parent);
	size_t			 flen;

	memcpy(l->name, buf, sizeof(l->name));
	memcpy(l->file, buf + offsetof(struct zsnap_parent, file),
	    sizeof(l->file));
	l->armed_realtime_ns = zsnap_get64(buf + offsetof(struct zsnap_parent,
	    armed_realtime_ns));
	l->index_crc = zsnap_get32(buf + offsetof(struct zsnap_parent,
	    index_crc));
	l->depth = zsnap_get32(buf + offsetof(struct zsnap_parent, depth));
	l->whole_count = zsnap_get32(buf + offsetof(struct zsnap_parent,
	    whole_count));
	flen = strnlen(l->file, sizeof(l->file));
	if (flen == 0 || flen == sizeof(l->file) ||
	    memchr(l->file, '/', flen) != NULL || strcmp(l->file, ".") == 0 ||
	    strcmp(l->file, "..") == 0) {
		reader_error(f, EBADMSG, "parent frame at offset %llu: the "
		    "parent's file is not a file name of this directory",
		    (unsigned long long)off);
		return -1;
	}
	if (l->depth == 0 || l->depth > READER_CHAIN_MAX) {
		reader_error(f, l->depth == 0 ? EBADMSG : ENOTSUP, "parent "
		    "frame at offset %llu: depth %u (this reader follows "
		    "chains of 1 to %u links)", (unsigned long long)off,
		    l->depth, READER_CHAIN_MAX);
		return -1;
	}
	if (len != sizeof(struct zsnap_parent) +
	    (uint64_t)l->whole_count * sizeof(struct zsnap_whole) + 4) {
		reader_error(f, EBADMSG, "parent frame at offset %llu: %u "
		    "bytes do not hold %u whole ranges", (unsigned long long)off,
		    len, l->whole_count);
		return -1;
	}
	if (l->whole_count > 0 &&
	    (f->whole = calloc(l->whole_count, sizeof(*f->whole))) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %u whole ranges",
		    l->whole_count);
		return -1;
	}
	for (uint32_t i = 0; i < l->whole_count; i++,
	    w += sizeof(struct zsnap_whole)) {
		struct zsnap_whole *x = &f->whole[i];

		x->region = zsnap_get32(w);
		x->reason = zsnap_get32(w + offsetof(struct zsnap_whole, reason));
		x->first_page = zsnap_get64(w + offsetof(struct zsnap_whole,
		    first_page));
		x->page_count = zsnap_get64(w + offsetof(struct zsnap_whole,
		    page_count));
		if (x->region >= f->info.region_count || x->page_count == 0 ||
		    x->first_page >= f->region_pages[x->region] ||
		    x->page_count > f->region_pages[x->region] - x->first_page) {
			reader_error(f, EBADMSG, "parent frame at offset %llu: "
			    "whole range %u (region %u, pages %llu+%llu) is "
			    "outside the regions", (unsigned long long)off, i,
			    x->region, (unsigned long long)x->first_page,
			    (unsigned long long)x->page_count);
			return -1;
		}
	}
	f->has_parent = 1;
	f->info.incremental = 1;
	f->info.depth = l->depth;
	f->info.whole_count = l->whole_count;
	get_name(f->info.parent_name, sizeof(f->info.parent_name), l->name,
	    sizeof(l->name));
	get_name(f->info.parent_file, sizeof(f->info.parent_file), l->file,
	    sizeof(l->file));
	f->info.parent_armed_realtime_ns = l->armed_realtime_ns;
	f->info.parent_index_crc = l->index_crc;
	return 0;
}

/*
 * With ZSNAP_F_PARENT in the header, the parent frame follows the header
 * (and the process frame): its size is checked against the file and the
 * format's bound before it is read.
 */
static int
zsnap_read_parent_frame(struct snap_file *f)
{
	unsigned char	*buf;
	uint64_t	 off = f->header_end;
	uint32_t	 len;
	int		 rc = -1;

	if (!(f->flags & ZSNAP_F_PARENT))
		return 0;
	if (zsnap_find_frame(f, ZSNAP_FRAME_PARENT,
	    sizeof(struct zsnap_parent) + 4, sizeof(struct zsnap_parent) +
	    (uint64_t)ZSNAP_WHOLE_MAX * sizeof(struct zsnap_whole) + 4,
	    "parent frame", &len) == -1)
		return -1;
	if ((buf = malloc(len)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %u bytes", len);
		return -1;
	}
	if (reader_read(f, buf, len, off + ZSNAP_SKIP_HDR_SIZE,
	    "parent frame") == -1)
		goto out;
	if (crc32c(0, buf, len - 4) != zsnap_get32(buf + len - 4)) {
		reader_error(f, EBADMSG, "parent frame at offset %llu: "
		    "checksum mismatch", (unsigned long long)off);
		goto out;
	}
	if (zsnap_parse_parent(f, buf, len, off) == -1)
		goto out;
	f->header_end = off + ZSNAP_SKIP_HDR_SIZE + len;
	rc = 0;
out:
	free(buf);
	return rc;
}

static int
zsnap_read_header(struct snap_file *f)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE], *buf;
	uint64_t	 limit = f->info.file_size - ZSNAP_FOOTER_FRAME_SIZE;
	uint32_t	 payload;

	if (reader_read(f, skip, sizeof(skip), 0, "header") == -1)
		return -1;
	payload = zsnap_get32(skip + 4);
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
	if (reader_read(f, buf, payload, ZSNAP_SKIP_HDR_SIZE,
	    "header") == -1)
		goto fail;
	if (crc32c(0, buf, payload - 4) != zsnap_get32(buf + payload - 4)) {
		reader_error(f, EBADMSG, "header at offset 0: checksum mismatch");
		goto fail;
	}
	if (zsnap_parse_header(f, buf, payload) == -1 ||
	    zsnap_parse_regions(f, buf + sizeof(struct zsnap_header)) == -1)
		goto fail;
	f->header_end = ZSNAP_SKIP_HDR_SIZE + (uint64_t)payload;
	free(buf);
	if (zsnap_read_process_frame(f) == -1)
		return -1;
	return zsnap_read_parent_frame(f);
fail:
	free(buf);
	return -1;
}

/*
 * The index's count entries at e, for the index at offset off, into
 * f->index.  Chunks lie end to end from the header to the index, in order.
 */
static int
zsnap_parse_index_entries(struct snap_file *f, const unsigned char *e,
    uint64_t count, uint64_t off)
{
	uint64_t	 expect = f->header_end;

	for (uint64_t i = 0; i < count; i++, e += sizeof(struct zsnap_index_entry)) {
		struct zsnap_index_entry *x = &f->index[i];
		uint64_t min;

		x->offset = zsnap_get64(e + offsetof(struct zsnap_index_entry, offset));
		x->length = zsnap_get64(e + offsetof(struct zsnap_index_entry, length));
		x->seq = zsnap_get32(e + offsetof(struct zsnap_index_entry, seq));
		x->extent_count = zsnap_get32(e + offsetof(struct zsnap_index_entry,
		    extent_count));
		x->chunk_crc = zsnap_get32(e + offsetof(struct zsnap_index_entry,
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
			return -1;
		}
		expect = x->offset + x->length;
	}
	if (expect != off) {
		reader_error(f, EBADMSG, "index at offset %llu: its chunks end "
		    "at offset %llu, not where the index starts",
		    (unsigned long long)off, (unsigned long long)expect);
		return -1;
	}
	return 0;
}


static int
zsnap_read_index(struct snap_file *f, const struct zsnap_footer *ft)
{
	unsigned char	 skip[ZSNAP_SKIP_HDR_SIZE], *buf = NULL;
	uint64_t	 off = ft->index_offset, len = ft->index_length;
	uint64_t	 footer_off = f->info.file_size - ZSNAP_FOOTER_FRAME_SIZE;
	uint64_t	 payload, count;

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
	if (reader_read(f, skip, sizeof(skip), off, "index") == -1)
		return -1;
	payload = len - ZSNAP_SKIP_HDR_SIZE;
	if (zsnap_get32(skip) != ZSNAP_FRAME_INDEX || zsnap_get32(skip + 4) != payload) {
		reader_error(f, EBADMSG, "index at offset %llu: no index frame "
		    "there (magic %#x, size %u)", (unsigned long long)off,
		    zsnap_get32(skip), zsnap_get32(skip + 4));
		return -1;
	}
	if ((buf = malloc(payload)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %llu bytes",
		    (unsigned long long)payload);
		return -1;
	}
	if (reader_read(f, buf, payload, off + ZSNAP_SKIP_HDR_SIZE,
	    "index") == -1)
		goto fail;
	if (crc32c(0, buf, payload - 4) != zsnap_get32(buf + payload - 4)) {
		reader_error(f, EBADMSG, "index at offset %llu: checksum "
		    "mismatch", (unsigned long long)off);
		goto fail;
	}
	count = zsnap_get64(buf);
	if (count > (payload - 12) / sizeof(struct zsnap_index_entry) ||
	    payload != 12 + count * sizeof(struct zsnap_index_entry)) {
		reader_error(f, EBADMSG, "index at offset %llu: %llu bytes do "
		    "not hold %llu entries", (unsigned long long)off,
		    (unsigned long long)payload, (unsigned long long)count);
		goto fail;
	}
	f->index_crc = zsnap_get32(buf + payload - 4);
	f->info.index_crc = f->index_crc;
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
	if (zsnap_parse_index_entries(f, buf + 8, count, off) == -1)
		goto fail;
	f->index_offset = off;
	f->info.chunk_count = count;
	free(buf);
	return 0;
fail:
	free(buf);
	return -1;
}

int
reader_zsnap_open(struct snap_file *f)
{
	struct zsnap_footer	ft;
	unsigned char		magic[4];
	uint64_t		size = f->info.file_size;

	if (size < 4 || reader_read(f, magic, 4, 0, "header") == -1 ||
	    zsnap_get32(magic) != ZSNAP_FRAME_HEADER) {
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
	/*
	 * An incremental file's other pages are PARENT pages; verify checks
	 * the extents add up.  A full file has none (its PARENT extents are
	 * refused), whatever its footer claims.
	 */
	if (f->has_parent && ft.pages_data <= ft.pages_total &&
	    ft.pages_zero <= ft.pages_total - ft.pages_data &&
	    ft.pages_lost <= ft.pages_total - ft.pages_data - ft.pages_zero)
		f->info.pages_parent = ft.pages_total - ft.pages_data -
		    ft.pages_zero - ft.pages_lost;
	f->flags |= ft.flags;
	return 0;
}

/* ---- public: open, close, info ------------------------------------------- */

struct snap_file *
reader_alloc(const char *path)
{
	struct snap_file	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		sc_set_error(NULL, ENOMEM, "%s: cannot allocate a reader", path);
		return NULL;
	}
	f->fd = -1;
	f->dirfd = -1;
	snprintf(f->path, sizeof(f->path), "%s", path);
	return f;
}

struct snap_file *
reader_open_at(int dirfd, const char *name, const char *path, int nofollow)
{
	struct snap_file	*f;
	struct stat		 st;
	int			 saved;

	if ((f = reader_alloc(path)) == NULL)
		return NULL;
	/* O_NONBLOCK: a FIFO put in a parent's place must not hang us. */
	f->fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC |
	    (nofollow ? O_NOFOLLOW | O_NONBLOCK : 0));
	if (f->fd == -1) {
		saved = errno;
		sc_set_error(NULL, saved, "%s: open: %s", path, strerror(saved));
		free(f);
		errno = saved;
		return NULL;
	}
	if (fstat(f->fd, &st) == -1) {
		reader_error(f, errno, "stat: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode) && !nofollow) {
		f->format = 1;
		f->info.format = 1;
		if (reader_raw_open(f) == -1)
			goto fail;
	} else if (S_ISREG(st.st_mode)) {
		f->info.file_size = (uint64_t)st.st_size;
		if (reader_zsnap_open(f) == -1)
			goto fail;
	} else {
		reader_error(f, EINVAL, "%s", nofollow ? "not a zsnap file" :
		    "neither a zsnap file nor a raw snapshot directory");
		goto fail;
	}
	return f;
fail:
	saved = errno;
	snap_file_close(f);
	errno = saved;
	return NULL;
}

struct snap_file *
snap_file_open(const char *path)
{
	if (path == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_open: no path");
		return NULL;
	}
	if (s3_is_url(path))
		return reader_s3_open(path, NULL);
	return reader_open_at(AT_FDCWD, path, path, 0);
}

void
reader_drop_buffers(struct snap_file *f)
{
	ZSTD_freeDCtx(f->dctx);
	f->dctx = NULL;
	free(f->payload);
	free(f->extents);
	free(f->frame);
	free(f->data);
	f->payload = NULL;
	f->extents = NULL;
	f->frame = NULL;
	f->data = NULL;
	f->payload_cap = f->extents_cap = f->frame_cap = f->data_cap = 0;
	reader_s3_drop_cache(f);
}

/* Close f and the chain of parents it opened, a link at a time. */
void
snap_file_close(struct snap_file *f)
{
	int	saved = errno;

	while (f != NULL) {
		struct snap_file *parent = f->parent;

		if (f->fd != -1)
			close(f->fd);
		if (f->dirfd != -1)
			close(f->dirfd);
		reader_s3_close(f);
		if (f->lost != NULL)
			for (uint32_t i = 0; i < f->info.region_count; i++)
				free(f->lost[i]);
		free(f->lost);
		free(f->lost_count);
		free(f->regions);
		free(f->region_pages);
		free(f->index);
		free(f->whole);
		reader_drop_buffers(f);
		free(f);
		f = parent;
	}
	errno = saved;
}

/*
 * snap_file_info() has two versions.  LIBSNAPCLIENT_0.3's, the default,
 * fills the whole struct snap_file_info of snapclient.h; LIBSNAPCLIENT_0's
 * is what programs built before incremental snapshots link to, and fills
 * only the members their shorter struct has (up to file_size).  Neither
 * name starts with snap_, so the version script exports them only under
 * the versioned name.
 */
int	reader_info_v0(struct snap_file *f, struct snap_file_info *info);
int	reader_info_v0_3(struct snap_file *f, struct snap_file_info *info);
__asm__(".symver reader_info_v0, snap_file_info@LIBSNAPCLIENT_0");
__asm__(".symver reader_info_v0_3, snap_file_info@@LIBSNAPCLIENT_0.3");

#define SNAP_FILE_INFO_V0_SIZE \
	(offsetof(struct snap_file_info, file_size) + sizeof(uint64_t))

int
reader_info_v0(struct snap_file *f, struct snap_file_info *info)
{
	if (f == NULL || info == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_info: no file or no info");
		return -1;
	}
	memcpy(info, &f->info, SNAP_FILE_INFO_V0_SIZE);
	return 0;
}

int
reader_info_v0_3(struct snap_file *f, struct snap_file_info *info)
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
