/*
 * The zsnap output: snapd's adapter over the format's one writer,
 * proto/zsnapwrite.c, which does all the encoding (frames, chunk
 * assembly, index, footer).  What is left here is how snapd drives it:
 * the bytes go to a sink (sink.h), and the chunks are compressed the way
 * the writer thread can afford.
 *
 * Pages are gathered into a chunk (struct zsnapw_chunk): up to
 * ZSNAPW_CHUNK_PAGES DATA pages and ZSNAPW_CHUNK_EXTENTS extents.  When
 * the writer says a chunk is full it is flushed: compressed, then written
 * by zsnapw_chunk_write().  output_finish() appends index and footer.
 *
 * Compression: with threads = 0 each chunk is compressed on the writer
 * thread when it is flushed.  With threads = N, N compression threads of
 * our own (each with its own ZSTD_CCtx) compress whole chunks in parallel
 * while the writer fills the next one: a ring of N + 2 chunks, written to
 * the sink strictly in sequence order as they complete.  The writer waits
 * only when every chunk of the ring is queued, so its memory stays fixed
 * at (N + 2) * (1 MiB + zstd bound).  One zstd frame per chunk either way,
 * so the file is the same.  Under pressure (output_set_hurry()) a chunk is
 * compressed at the hurry level instead.
 *
 * Threads: every function here runs on the snapshot's writer thread except
 * zsnap_worker(), which runs on the compression threads.  z->lock guards
 * the chunks' state fields and z->stop; a chunk's buffers belong to the
 * writer while FILLING or DONE and to one worker while BUSY.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "log.h"
#include "output-impl.h"
#include "sink.h"
#include "zsnapwrite.h"

enum zchunk_state {
	ZCHUNK_FILLING = 0,
	ZCHUNK_QUEUED,		/* waiting for a compression thread */
	ZCHUNK_BUSY,		/* being compressed */
	ZCHUNK_DONE,		/* compressed, waiting its turn to be written */
};

struct zchunk {
	enum zchunk_state	 state;
	struct zsnapw_chunk	 c;
};

struct zsnap_out {
	struct sink		*sink;
	int			 sink_borrowed;	/* params.sink: not ours to free */
	struct zsnapw		 w;		/* the format's writer */
	ZSTD_CCtx		*cctx;		/* writer-thread compression */
	int			 cctx_level;	/* cctx's level now */

	/* Ring of chunks: [head, head + queued) in flight, then filling. */
	struct zchunk		*chunks;
	unsigned		 nchunks;
	unsigned		 head;
	unsigned		 queued;
	struct zchunk		*fill;

	/* Compression threads (none when params.threads == 0). */
	pthread_t		*workers;
	ZSTD_CCtx		**worker_cctx;
	unsigned		 nworkers;
	unsigned		 next_job;	/* ring index a worker takes next */
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* a chunk was queued, or stop */
	pthread_cond_t		 done;		/* a chunk was compressed */
	int			 stop;
};

/* The writer's byte callback: to the sink. */
static int
zsnap_sink_write(void *arg, const void *buf, size_t len, char *err,
    size_t errlen)
{
	struct sink	*sink = arg;

	if (sink_write(sink, buf, len) == -1) {
		snprintf(err, errlen, "%s", sink_error(sink));
		return -1;
	}
	return 0;
}

/* The writer failed: its message becomes the output's; errno is kept. */
static int
zsnap_writer_failed(struct output *out)
{
	struct zsnap_out	*z = out->priv;

	output_set_error(out, "%s", zsnapw_error(&z->w));
	return -1;
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

		zsnapw_compress(cctx, &level, &c->c);

		pthread_mutex_lock(&z->lock);
		c->state = ZCHUNK_DONE;
		pthread_cond_broadcast(&z->done);
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

static ZSTD_CCtx *
zsnap_new_cctx(struct output *out)
{
	char		 err[ZSNAPW_ERROR_MAX];
	ZSTD_CCtx	*cctx = zsnapw_cctx_new(out->params.level, err,
			    sizeof(err));

	if (cctx == NULL)
		output_set_error(out, "snapshot %s: %s", out->name, err);
	return cctx;
}

static int
zsnap_open(struct output *out)
{
	const struct output_params *p = &out->params;
	struct zsnap_out	*z;
	struct zsnapw_region	*regions;
	struct zsnapw_header	 h;
	char			 err[SINK_ERROR_MAX];
	int			 rc;

	z = xcalloc(1, sizeof(*z));
	out->priv = z;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->work, NULL);
	pthread_cond_init(&z->done, NULL);
	z->nworkers = p->threads > 0 ? (unsigned)p->threads : 0;
	z->nchunks = z->nworkers > 0 ? z->nworkers + 2 : 1;
	z->chunks = xcalloc(z->nchunks, sizeof(*z->chunks));
	for (unsigned i = 0; i < z->nchunks; i++)
		if (zsnapw_chunk_init(&z->chunks[i].c, err, sizeof(err)) == -1) {
			output_set_error(out, "snapshot %s: %s", out->name,
			    err);
			return -1;
		}
	z->fill = &z->chunks[0];

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

	if (p->sink != NULL) {
		z->sink = p->sink;
		z->sink_borrowed = 1;
	} else
		z->sink = sink_file_open(p->dirfd, p->name, ZSNAP_SUFFIX,
		    p->mode, p->owner_uid, p->owner_gid, err, sizeof(err));
	if (z->sink == NULL) {
		output_set_error(out, "%s", err);
		return -1;
	}
	zsnapw_init(&z->w, out->name, zsnap_sink_write, z->sink);

	regions = xcalloc(p->region_count > 0 ? p->region_count : 1,
	    sizeof(*regions));
	for (uint32_t i = 0; i < p->region_count; i++) {
		regions[i].start = p->regions[i].start;
		regions[i].length = p->regions[i].length;
		regions[i].name = p->regions[i].name;
	}
	memset(&h, 0, sizeof(h));
	h.name = p->name;
	h.pid = (uint32_t)p->pid;
	h.uid = (uint32_t)p->uid;
	h.comm = p->comm;
	h.armed_realtime_ns = p->armed_realtime_ns;
	h.regions = regions;
	h.region_count = p->region_count;
	h.procrec = p->procrec;
	h.procrec_len = p->procrec_len;
	h.parent = p->parent;
	h.whole = p->whole;
	rc = zsnapw_header(&z->w, &h);
	free(regions);
	if (rc == -1)
		return zsnap_writer_failed(out);
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
		if (zsnapw_chunk_write(&z->w, &c->c) == -1)
			return zsnap_writer_failed(out);
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

	if (c->c.extent_count == 0)
		return 0;
	c->c.level = out->params.level;
	if (out->hurry && out->params.hurry_level > 0 &&
	    c->c.level > out->params.hurry_level) {
		c->c.level = out->params.hurry_level;
		out->hurried++;
	}
	if (z->nworkers == 0) {
		zsnapw_compress(z->cctx, &z->cctx_level, &c->c);
		if (zsnapw_chunk_write(&z->w, &c->c) == -1)
			return zsnap_writer_failed(out);
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
	zsnapw_chunk_reset(&c->c);
	return 0;
}

/* Record count pages of a kind without data; flush when the chunk is full. */
static int
zsnap_add_extent(struct output *out, uint32_t region, uint32_t kind,
    uint64_t first, uint64_t count)
{
	struct zsnap_out	*z = out->priv;

	while (zsnapw_chunk_add(&z->fill->c, region, kind, first, count) ==
	    ZSNAPW_FULL)
		if (zsnap_flush_chunk(out) == -1)
			return -1;
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
		while (zsnapw_chunk_page(&z->fill->c, region, first + i,
		    page) == ZSNAPW_FULL)
			if (zsnap_flush_chunk(out) == -1)
				return -1;
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

static int
zsnap_finish(struct output *out, struct output_result *result)
{
	struct zsnap_out	*z = out->priv;
	struct zsnapw_counts	 n;
	uint32_t		 index_crc;

	if (zsnap_flush_chunk(out) == -1 ||
	    zsnap_write_done(out, z->queued) == -1)
		return -1;
	n.pages_total = out->pages_total;
	n.pages_data = out->pages_data;
	n.pages_zero = out->pages_zero;
	n.pages_lost = out->pages_lost;
	if (zsnapw_finish(&z->w, &n, &index_crc) == -1)
		return zsnap_writer_failed(out);
	if (sink_finish(z->sink) == -1) {
		output_set_error(out, "%s", sink_error(z->sink));
		return -1;
	}
	result->bytes = sink_bytes(z->sink);
	result->index_crc = index_crc;
	snprintf(result->path, sizeof(result->path), "%s",
	    sink_s3_url(z->sink) != NULL ? sink_s3_url(z->sink) :
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
	if (!z->sink_borrowed)
		sink_free(z->sink);	/* removes the temporary file unless finished */
	else if (!z->sink->finished)
		sink_abort(z->sink);	/* its owner frees it */
	ZSTD_freeCCtx(z->cctx);
	for (unsigned i = 0; i < z->nchunks; i++)
		zsnapw_chunk_free(&z->chunks[i].c);
	free(z->chunks);
	zsnapw_free(&z->w);
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
