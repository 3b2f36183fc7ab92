/*
 * The zsnap encoder (format in proto/zsnap.h and proto/FORMAT.md).
 *
 * Pages are gathered into a chunk: up to ZSNAP_CHUNK_PAGES DATA pages in a
 * buffer allocated once, and up to ZSNAP_CHUNK_EXTENTS extents describing
 * which region pages they are, plus the ZERO, LOST and PARENT runs that
 * take no data.  A run of pages of one region and kind that continues the last
 * extent of that kind extends it instead of adding one.  When either limit
 * would be passed the chunk is flushed: its skippable frame (struct
 * zsnap_chunk, extents, crc), then one zstd frame of its DATA pages, made
 * with a compression context kept for the whole snapshot.  The index grows
 * by one entry per chunk (the only allocation after open, amortised);
 * output_finish() appends it and the footer.
 *
 * Compression: with threads = 0 each chunk is compressed on the writer
 * thread when it is flushed.  With threads = N, N compression threads of
 * our own (each with its own ZSTD_CCtx) compress whole chunks in parallel
 * while the writer fills the next one: a ring of N + 2 chunks, written to
 * the sink strictly in sequence order as they complete.  The writer waits
 * only when every chunk of the ring is queued, so its memory stays fixed
 * at (N + 2) * (1 MiB + zstd bound).  One zstd frame per chunk either way,
 * so the file is the same.
 *
 * Threads: every function here runs on the snapshot's writer thread except
 * zsnap_worker(), which runs on the compression threads.  z->lock guards
 * the chunks' state fields and z->stop; a chunk's buffers belong to the
 * writer while FILLING or DONE and to one worker while BUSY.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
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

enum zchunk_state {
	ZCHUNK_FILLING = 0,
	ZCHUNK_QUEUED,		/* waiting for a compression thread */
	ZCHUNK_BUSY,		/* being compressed */
	ZCHUNK_DONE,		/* compressed, waiting its turn to be written */
};

struct zchunk {
	enum zchunk_state	 state;
	unsigned char		*data;		/* ZSNAP_CHUNK_PAGES pages */
	uint32_t		 data_pages;
	struct zsnap_extent	 extents[ZSNAP_CHUNK_EXTENTS];	/* host order */
	uint32_t		 extent_count;
	unsigned char		*frame;		/* compressed page data */
	size_t			 frame_size;
	uint32_t		 data_crc;
	const char		*zstd_error;	/* set if compression failed */
	int			 level;		/* zstd level for this chunk */
};

struct zsnap_out {
	struct sink		*sink;
	ZSTD_CCtx		*cctx;		/* writer-thread compression */
	int			 cctx_level;	/* cctx's level now */
	size_t			 frame_cap;

	/* Ring of chunks: [head, head + queued) in flight, then filling. */
	struct zchunk		*chunks;
	unsigned		 nchunks;
	unsigned		 head;
	unsigned		 queued;
	struct zchunk		*fill;
	int			 last_of_kind[4];	/* extent index by kind,
							 * -1 none */

	/* Compression threads (none when params.threads == 0). */
	pthread_t		*workers;
	ZSTD_CCtx		**worker_cctx;
	unsigned		 nworkers;
	unsigned		 next_job;	/* ring index a worker takes next */
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* a chunk was queued, or stop */
	pthread_cond_t		 done;		/* a chunk was compressed */
	int			 stop;

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

/*
 * buf holds a skippable frame: room for its 8-byte header, then payload
 * bytes [8, end), then room for the crc32c.  Fill in header and crc,
 * write it, free buf; *crc (if not NULL) gets the payload's crc32c.
 */
static int
zsnap_write_frame(struct output *out, uint32_t magic, unsigned char *buf,
    size_t end, uint32_t *crc)
{
	size_t	payload = end - ZSNAP_SKIP_HDR_SIZE;
	int	rc;

	put_skip_header(buf, magic, (uint32_t)(payload + 4));
	if (crc != NULL)
		*crc = crc32c(0, buf + ZSNAP_SKIP_HDR_SIZE, payload);
	put_crc(buf + ZSNAP_SKIP_HDR_SIZE, payload);
	rc = zsnap_write(out, buf, end + 4);
	free(buf);
	return rc;
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

	payload = sizeof(h) + (size_t)p->region_count *
	    sizeof(struct zsnap_region) + 4;
	buf = xcalloc(1, ZSNAP_SKIP_HDR_SIZE + payload);
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
	return zsnap_write_frame(out, ZSNAP_FRAME_HEADER, buf, off, NULL);
}

/*
 * The process frame, right after the header: the record is its payload
 * as it is, since it ends with its own crc32c like every payload does.
 */
static int
zsnap_write_process(struct output *out)
{
	const struct output_params *p = &out->params;
	unsigned char		 skip[ZSNAP_SKIP_HDR_SIZE];

	if (p->procrec == NULL)
		return 0;
	put_skip_header(skip, ZSNAP_FRAME_PROCESS, (uint32_t)p->procrec_len);
	if (zsnap_write(out, skip, sizeof(skip)) == -1)
		return -1;
	return zsnap_write(out, p->procrec, p->procrec_len);
}

/*
 * The parent frame of an incremental snapshot, after the process frame:
 * struct zsnap_parent, the whole ranges, the crc32c.  output.c checked
 * and copied both (whole_count <= ZSNAP_WHOLE_MAX, so the payload is
 * below 2 MiB).
 */
static int
zsnap_write_parent(struct output *out)
{
	const struct zsnap_parent *pa = out->params.parent;
	struct zsnap_parent	 d;
	unsigned char		*buf;
	size_t			 payload, off;

	if (pa == NULL)
		return 0;
	payload = sizeof(d) + (size_t)pa->whole_count *
	    sizeof(struct zsnap_whole) + 4;
	buf = xcalloc(1, ZSNAP_SKIP_HDR_SIZE + payload);
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
		const struct zsnap_whole *w = &out->params.whole[i];
		struct zsnap_whole	 x;

		x.region = htole32(w->region);
		x.reason = htole32(w->reason);
		x.first_page = htole64(w->first_page);
		x.page_count = htole64(w->page_count);
		memcpy(buf + off, &x, sizeof(x));
		off += sizeof(x);
	}
	return zsnap_write_frame(out, ZSNAP_FRAME_PARENT, buf, off, NULL);
}

/* Compress one chunk with cctx (at *cctx_level, kept in step); any thread. */
static void
zsnap_compress(ZSTD_CCtx *cctx, int *cctx_level, struct zchunk *c,
    size_t frame_cap)
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
	c->frame_size = ZSTD_compress2(cctx, c->frame, frame_cap, c->data, len);
	if (ZSTD_isError(c->frame_size)) {
		c->zstd_error = ZSTD_getErrorName(c->frame_size);
		c->frame_size = 0;
		return;
	}
	c->data_crc = crc32c(0, c->data, len);
}

/* Compression thread: take queued chunks in ring order. */
static void *
zsnap_worker(void *arg)
{
	struct output		*out = arg;
	struct zsnap_out	*z = out->priv;
	ZSTD_CCtx		*cctx;
	unsigned		 me;
	int			 level = out->params.level;

	pthread_mutex_lock(&z->lock);
	for (me = 0; !pthread_equal(z->workers[me], pthread_self()); me++)
		;
	cctx = z->worker_cctx[me];
	for (;;) {
		struct zchunk *c;

		while (!z->stop && z->chunks[z->next_job].state != ZCHUNK_QUEUED)
			pthread_cond_wait(&z->work, &z->lock);
		if (z->stop)
			break;
		c = &z->chunks[z->next_job];
		z->next_job = (z->next_job + 1) % z->nchunks;
		c->state = ZCHUNK_BUSY;
		pthread_mutex_unlock(&z->lock);

		zsnap_compress(cctx, &level, c, z->frame_cap);

		pthread_mutex_lock(&z->lock);
		c->state = ZCHUNK_DONE;
		pthread_cond_broadcast(&z->done);
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

static int
zsnap_cctx_params(struct output *out, ZSTD_CCtx *cctx)
{
	static const struct {
		ZSTD_cParameter	 param;
		const char	*what;
	} params[] = {
		{ ZSTD_c_compressionLevel, "compression level" },
		{ ZSTD_c_checksumFlag, "checksum flag" },
		{ ZSTD_c_contentSizeFlag, "content size flag" },
	};
	int values[] = { out->params.level, 1, 1 };

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		size_t rc = ZSTD_CCtx_setParameter(cctx, params[i].param,
		    values[i]);

		if (ZSTD_isError(rc)) {
			output_set_error(out, "snapshot %s: zstd %s %d: %s",
			    out->name, params[i].what, values[i],
			    ZSTD_getErrorName(rc));
			errno = EINVAL;
			return -1;
		}
	}
	return 0;
}

static ZSTD_CCtx *
zsnap_new_cctx(struct output *out)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	if (cctx == NULL)
		fatalx("snapshot %s: zstd compression context: out of memory",
		    out->name);
	if (zsnap_cctx_params(out, cctx) == -1) {
		ZSTD_freeCCtx(cctx);
		return NULL;
	}
	return cctx;
}

static int
zsnap_open(struct output *out)
{
	const struct output_params *p = &out->params;
	struct zsnap_out	*z;
	char			 err[SINK_ERROR_MAX];
	int			 rc;

	z = xcalloc(1, sizeof(*z));
	out->priv = z;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->work, NULL);
	pthread_cond_init(&z->done, NULL);
	for (size_t k = 0; k < sizeof(z->last_of_kind) /
	    sizeof(z->last_of_kind[0]); k++)
		z->last_of_kind[k] = -1;
	z->frame_cap = ZSTD_compressBound((size_t)ZSNAP_CHUNK_PAGES *
	    ZSNAP_PAGE_SIZE);
	z->nworkers = p->threads > 0 ? (unsigned)p->threads : 0;
	z->nchunks = z->nworkers > 0 ? z->nworkers + 2 : 1;
	z->chunks = xcalloc(z->nchunks, sizeof(*z->chunks));
	for (unsigned i = 0; i < z->nchunks; i++) {
		z->chunks[i].data = xmalloc((size_t)ZSNAP_CHUNK_PAGES *
		    ZSNAP_PAGE_SIZE);
		z->chunks[i].frame = xmalloc(z->frame_cap);
	}
	z->fill = &z->chunks[0];
	z->index_cap = 64;
	z->index = xcalloc(z->index_cap, sizeof(*z->index));

	if ((z->cctx = zsnap_new_cctx(out)) == NULL)
		return -1;
	z->cctx_level = out->params.level;
	if (z->nworkers > 0) {
		z->workers = xcalloc(z->nworkers, sizeof(*z->workers));
		z->worker_cctx = xcalloc(z->nworkers, sizeof(*z->worker_cctx));
		for (unsigned i = 0; i < z->nworkers; i++)
			if ((z->worker_cctx[i] = zsnap_new_cctx(out)) == NULL)
				return -1;
		/* Workers look themselves up in z->workers under the lock. */
		pthread_mutex_lock(&z->lock);
		for (unsigned i = 0; i < z->nworkers; i++) {
			if ((rc = pthread_create(&z->workers[i], NULL,
			    zsnap_worker, out)) != 0) {
				z->nworkers = i;
				pthread_mutex_unlock(&z->lock);
				output_set_error(out, "snapshot %s: compression "
				    "thread: %s", out->name, strerror(rc));
				errno = rc;
				return -1;
			}
		}
		pthread_mutex_unlock(&z->lock);
	}

	z->sink = sink_file_open(p->dirfd, p->name, ZSNAP_SUFFIX, p->mode,
	    p->owner_uid, p->owner_gid, err, sizeof(err));
	if (z->sink == NULL) {
		output_set_error(out, "%s", err);
		return -1;
	}
	if (zsnap_write_header(out) == -1 || zsnap_write_process(out) == -1)
		return -1;
	return zsnap_write_parent(out);
}

/* Append a compressed chunk to the file and to the index. */
static int
zsnap_write_chunk(struct output *out, struct zchunk *ch)
{
	struct zsnap_out	*z = out->priv;
	struct zsnap_index_entry *e;
	struct zsnap_chunk	 c;
	unsigned char		*payload = z->chunk_buf + ZSNAP_SKIP_HDR_SIZE;
	size_t			 payload_size, off;
	uint64_t		 offset;
	uint32_t		 chunk_crc;

	if (ch->zstd_error != NULL) {
		output_set_error(out, "snapshot %s: compress chunk %llu: %s",
		    out->name, (unsigned long long)z->index_count,
		    ch->zstd_error);
		errno = EIO;
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.seq = htole32((uint32_t)z->index_count);
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
	put_skip_header(z->chunk_buf, ZSNAP_FRAME_CHUNK, (uint32_t)payload_size);

	if (z->index_count >= UINT32_MAX) {
		output_set_error(out, "snapshot %s: more than %u chunks",
		    out->name, UINT32_MAX);
		errno = EFBIG;
		return -1;
	}
	if (z->index_count == z->index_cap) {
		/* Grows with the snapshot: running out fails it, not snapd. */
		void *grown = reallocarray(z->index, z->index_cap * 2,
		    sizeof(*z->index));

		if (grown == NULL) {
			output_set_error(out, "snapshot %s: chunk index of %zu "
			    "entries: %s", out->name, (size_t)z->index_cap * 2,
			    strerror(ENOMEM));
			errno = ENOMEM;
			return -1;
		}
		z->index = grown;
		z->index_cap *= 2;
	}
	offset = sink_bytes(z->sink);
	if (zsnap_write(out, z->chunk_buf, ZSNAP_SKIP_HDR_SIZE + payload_size)
	    == -1)
		return -1;
	if (ch->frame_size > 0 && zsnap_write(out, ch->frame, ch->frame_size)
	    == -1)
		return -1;

	e = &z->index[z->index_count];
	e->offset = offset;
	e->length = ZSNAP_SKIP_HDR_SIZE + payload_size + ch->frame_size;
	e->seq = (uint32_t)z->index_count;
	e->extent_count = ch->extent_count;
	e->chunk_crc = chunk_crc;
	e->reserved = 0;
	z->index_count++;
	return 0;
}

/*
 * Write queued chunks, oldest first, as long as they are compressed; with
 * wait_for, block until at least that many are written (so a chunk is free
 * to fill, or, at the end, until all are).
 */
static int
zsnap_write_done(struct output *out, unsigned wait_for)
{
	struct zsnap_out	*z = out->priv;
	unsigned		 written = 0;

	for (;;) {
		struct zchunk *c = &z->chunks[z->head];

		if (z->queued == 0)
			return 0;
		pthread_mutex_lock(&z->lock);
		while (written < wait_for && c->state != ZCHUNK_DONE)
			pthread_cond_wait(&z->done, &z->lock);
		if (c->state != ZCHUNK_DONE) {
			pthread_mutex_unlock(&z->lock);
			return 0;
		}
		pthread_mutex_unlock(&z->lock);
		/* DONE: only this thread touches the chunk now. */
		if (zsnap_write_chunk(out, c) == -1)
			return -1;
		pthread_mutex_lock(&z->lock);
		c->state = ZCHUNK_FILLING;
		pthread_mutex_unlock(&z->lock);
		z->head = (z->head + 1) % z->nchunks;
		z->queued--;
		written++;
	}
}

/* Close the chunk being filled, if it holds anything, and start a new one. */
static int
zsnap_flush_chunk(struct output *out)
{
	struct zsnap_out	*z = out->priv;
	struct zchunk		*c = z->fill;

	if (c->extent_count == 0)
		return 0;
	c->level = out->params.level;
	if (out->hurry && out->params.hurry_level > 0 &&
	    c->level > out->params.hurry_level) {
		c->level = out->params.hurry_level;
		out->hurried++;
	}
	if (z->nworkers == 0) {
		zsnap_compress(z->cctx, &z->cctx_level, c, z->frame_cap);
		if (zsnap_write_chunk(out, c) == -1)
			return -1;
	} else {
		pthread_mutex_lock(&z->lock);
		c->state = ZCHUNK_QUEUED;
		pthread_cond_signal(&z->work);
		pthread_mutex_unlock(&z->lock);
		z->queued++;
		/* Keep one chunk free to fill: wait only if none is. */
		if (zsnap_write_done(out, z->queued == z->nchunks ? 1 : 0) == -1)
			return -1;
		c = z->fill = &z->chunks[(z->head + z->queued) % z->nchunks];
	}
	c->data_pages = 0;
	c->extent_count = 0;
	for (size_t k = 0; k < sizeof(z->last_of_kind) /
	    sizeof(z->last_of_kind[0]); k++)
		z->last_of_kind[k] = -1;
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
		x = &z->fill->extents[last];
		if (x->region == region && x->first_page + x->page_count == first) {
			x->page_count += count;
			return 0;
		}
	}
	if (z->fill->extent_count == ZSNAP_CHUNK_EXTENTS &&
	    zsnap_flush_chunk(out) == -1)
		return -1;
	x = &z->fill->extents[z->fill->extent_count];
	x->region = region;
	x->kind = kind;
	x->first_page = first;
	x->page_count = count;
	z->last_of_kind[kind] = (int)z->fill->extent_count;
	z->fill->extent_count++;
	return 0;
}

static int
zsnap_pages(struct output *out, uint32_t region, uint64_t first,
    uint32_t npages, const void *data)
{
	struct zsnap_out	*z = out->priv;
	const unsigned char	*page = data;

	for (uint32_t i = 0; i < npages; i++, page += ZSNAP_PAGE_SIZE) {
		if (zsnap_page_is_zero(page)) {
			if (zsnap_add_extent(out, region, ZSNAP_EXTENT_ZERO,
			    first + i, 1) == -1)
				return -1;
			out->pages_zero++;
			continue;
		}
		/* A full data buffer closes the chunk before the extent. */
		if (z->fill->data_pages == ZSNAP_CHUNK_PAGES &&
		    zsnap_flush_chunk(out) == -1)
			return -1;
		if (zsnap_add_extent(out, region, ZSNAP_EXTENT_DATA, first + i,
		    1) == -1)
			return -1;
		memcpy(z->fill->data + (size_t)z->fill->data_pages *
		    ZSNAP_PAGE_SIZE, page, ZSNAP_PAGE_SIZE);
		z->fill->data_pages++;
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

/* Pages unchanged since the parent: output.c allows it only with one. */
static int
zsnap_unchanged(struct output *out, uint32_t region, uint64_t first,
    uint64_t npages)
{
	return zsnap_add_extent(out, region, ZSNAP_EXTENT_PARENT, first,
	    npages);
}

static uint64_t
zsnap_bytes(const struct output *out)
{
	const struct zsnap_out	*z = out->priv;

	return z->sink != NULL ? sink_bytes(z->sink) : 0;
}

/*
 * The index, then where it is and the crc32c ending its payload (what a
 * child's parent frame records as index_crc).
 */
static int
zsnap_write_index(struct output *out, uint64_t *index_offset,
    uint64_t *index_length, uint32_t *index_crc)
{
	struct zsnap_out	*z = out->priv;
	unsigned char		*buf;
	uint64_t		 v64;
	size_t			 payload, off;

	if (z->index_count > (UINT32_MAX - 12) / sizeof(struct zsnap_index_entry)) {
		output_set_error(out, "snapshot %s: index of %llu chunks does "
		    "not fit one frame", out->name,
		    (unsigned long long)z->index_count);
		errno = EFBIG;
		return -1;
	}
	payload = 8 + z->index_count * sizeof(struct zsnap_index_entry) + 4;
	buf = xmalloc(ZSNAP_SKIP_HDR_SIZE + payload);
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
	*index_offset = sink_bytes(z->sink);
	*index_length = off + 4;
	return zsnap_write_frame(out, ZSNAP_FRAME_INDEX, buf, off, index_crc);
}

static int
zsnap_finish(struct output *out, struct output_result *result)
{
	struct zsnap_out	*z = out->priv;
	struct zsnap_footer	 f;
	unsigned char		 buf[ZSNAP_FOOTER_FRAME_SIZE];
	uint64_t		 index_offset, index_length;
	uint32_t		 index_crc;

	if (zsnap_flush_chunk(out) == -1 ||
	    zsnap_write_done(out, z->queued) == -1 ||
	    zsnap_write_index(out, &index_offset, &index_length,
	    &index_crc) == -1)
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
	result->index_crc = index_crc;
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
	pthread_mutex_lock(&z->lock);
	z->stop = 1;
	pthread_cond_broadcast(&z->work);
	pthread_mutex_unlock(&z->lock);
	for (unsigned i = 0; i < z->nworkers; i++)
		pthread_join(z->workers[i], NULL);
	if (z->worker_cctx != NULL)
		for (unsigned i = 0; i < (unsigned)out->params.threads; i++)
			ZSTD_freeCCtx(z->worker_cctx[i]);
	free(z->workers);
	free(z->worker_cctx);
	sink_free(z->sink);	/* removes the temporary file unless finished */
	ZSTD_freeCCtx(z->cctx);
	for (unsigned i = 0; i < z->nchunks; i++) {
		free(z->chunks[i].data);
		free(z->chunks[i].frame);
	}
	free(z->chunks);
	free(z->index);
	pthread_mutex_destroy(&z->lock);
	pthread_cond_destroy(&z->work);
	pthread_cond_destroy(&z->done);
	free(z);
	out->priv = NULL;
}

const struct output_format_ops output_zsnap_ops = {
	.open = zsnap_open,
	.pages = zsnap_pages,
	.lost = zsnap_lost,
	.unchanged = zsnap_unchanged,
	.bytes = zsnap_bytes,
	.finish = zsnap_finish,
	.close = zsnap_close,
};
