/*
 * A snapshot whose destination is S3 (snapshot.h, struct snapshot_s3):
 * the engine's side of the upload.  The bytes themselves go through the
 * S3 sink (sink.h), which the zsnap output writes to as it writes to a
 * file; what is here is the sink's life around the snapshot's.
 *
 * The upload starts before the snapshot arms: opening the sink asks S3
 * whether the key is free (HEAD) and starts the multipart upload, so an
 * existing object, wrong credentials, a missing bucket or an unreachable
 * service fail the snapshot-start with nothing write-protected and the
 * process never held.  (S3 has no RENAME_NOREPLACE: the sink looks again
 * just before it completes, so only an object that appears between that
 * look and the completion is replaced.)  The object appears only when the sink
 * finishes (CompleteMultipartUpload); every other end aborts the upload,
 * so that no parts are left behind; what a killed snapd leaves is aborted
 * by the next one at start-up (s3cleanup.c, in the control layer), which
 * leaves alone the keys listed here (snapshot_s3_live()).
 *
 * Threads: upload_prepare() on the main thread in snapshot_start();
 * upload_open() and upload_close() on the writer thread (both talk to S3,
 * which the main thread never does); upload_stats() on any thread, under
 * upload_lock, which guards s->sink against upload_close() freeing it;
 * upload_free() in snapshot_destroy(), once the writer is joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3.h"
#include "sink.h"
#include "snapshot-internal.h"

/*
 * The snapshots whose upload may exist (snapshot_s3_live()): each is
 * listed before its CreateMultipartUpload is sent and leaves once its
 * upload is completed or aborted, so an upload S3 lists under a key not
 * listed here is not ours to keep.
 */
static LIST_HEAD(, snapshot)	upload_live = LIST_HEAD_INITIALIZER(upload_live);
static pthread_mutex_t		upload_live_lock = PTHREAD_MUTEX_INITIALIZER;

static void
upload_list(struct snapshot *s, int on)
{
	pthread_mutex_lock(&upload_live_lock);
	if (on && !s->upload_listed)
		LIST_INSERT_HEAD(&upload_live, s, upload_link);
	else if (!on && s->upload_listed)
		LIST_REMOVE(s, upload_link);
	s->upload_listed = on;
	pthread_mutex_unlock(&upload_live_lock);
}

int
snapshot_s3_live(const char *bucket, const char *key)
{
	struct snapshot	*s;
	int		 live = 0;

	pthread_mutex_lock(&upload_live_lock);
	LIST_FOREACH(s, &upload_live, upload_link)
		if (strcmp(s->s3->bucket, bucket) == 0 &&
		    strcmp(s->s3->key, key) == 0) {
			live = 1;
			break;
		}
	pthread_mutex_unlock(&upload_live_lock);
	return live;
}

/* "625 GiB", "48.8 GiB", "64 MiB": a byte count for a message. */
static void
upload_size_text(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "TiB", "GiB", "MiB", "KiB" };
	static const unsigned shifts[] = { 40, 30, 20, 10 };

	for (size_t i = 0; i < 4; i++) {
		uint64_t unit = 1ULL << shifts[i];

		if (v < unit)
			continue;
		if (v % unit == 0)
			snprintf(buf, len, "%llu %s",
			    (unsigned long long)(v / unit), units[i]);
		else
			snprintf(buf, len, "%.1f %s", (double)v / (double)unit,
			    units[i]);
		return;
	}
	snprintf(buf, len, "%llu bytes", (unsigned long long)v);
}

int
upload_prepare(struct snapshot *s, const struct snapshot_request *req,
    char *err, size_t errlen)
{
	const struct snapshot_s3 *d = req->s3;
	uint64_t	 bytes = 0, largest;
	char		 a[32], b[32], c[32];

	if (d == NULL)
		return 0;
	if (req->format != OUTPUT_ZSNAP || req->track || req->incr != NULL) {
		snprintf(err, errlen, "an S3 destination takes zsnap "
		    "snapshots, neither tracked nor incremental");
		errno = EINVAL;
		return -1;
	}
	if (d->part_size < S3_PART_SIZE_MIN ||
	    d->part_size > S3_PART_SIZE_MAX || d->parts_in_flight < 1) {
		snprintf(err, errlen, "S3 part size %llu or parts in flight "
		    "%d out of range", (unsigned long long)d->part_size,
		    d->parts_in_flight);
		errno = EINVAL;
		return -1;
	}
	for (uint32_t i = 0; i < req->region_count; i++)
		bytes += req->regions[i].length;
	largest = SNAPSHOT_S3_LARGEST(d->part_size);
	if (SNAPSHOT_S3_WORST(bytes) > largest) {
		upload_size_text(bytes, a, sizeof(a));
		upload_size_text(d->part_size, b, sizeof(b));
		upload_size_text(largest, c, sizeof(c));
		snprintf(err, errlen, "its regions hold %s, which may take up "
		    "to %s + 1 %% + 1 MiB in the object, and an S3 upload in "
		    "parts of %s holds at most %s (%d parts): raise "
		    "s3_part_size in snapd.conf", a, a, b, c, S3_PARTS_MAX);
		errno = EFBIG;
		return -1;
	}
	s->s3 = xcalloc(1, sizeof(*s->s3));
	*s->s3 = *d;
	return 0;
}

int
upload_open(struct snapshot *s)
{
	const struct snapshot_s3 *d = s->s3;
	struct sink_s3_params	 p = {
		.conf = &d->conf,
		.bucket = d->bucket,
		.key = d->key,
		.part_size = d->part_size,
		.parts_in_flight = d->parts_in_flight,
		.cancel = &s->cancel,
		/* As the writer once armed (writer.c): the process first. */
		.nice = SNAPSHOT_WRITER_NICE,
	};
	struct sink		*sink;
	char			 err[SINK_ERROR_MAX];

	/* Listed first: S3 may list the upload before the sink knows it. */
	upload_list(s, 1);
	if ((sink = sink_s3_open(&p, err, sizeof(err))) == NULL) {
		snapshot_set_error(s, "cannot upload to S3: %s", err);
		upload_list(s, 0);
		return -1;
	}
	pthread_mutex_lock(&s->upload_lock);
	s->sink = sink;
	pthread_mutex_unlock(&s->upload_lock);
	log_info("snapshot %llu: uploading to s3://%s/%s (upload %s) in parts "
	    "of %llu bytes, %d in flight", (unsigned long long)s->id,
	    d->bucket, d->key, sink_s3_upload_id(sink),
	    (unsigned long long)d->part_size, d->parts_in_flight);
	return 0;
}

/* The figures of sink into u (upload_lock held). */
static void
upload_figures(struct snapshot *s, struct snapshot_upload *u)
{
	struct sink_s3_stats st;

	if (s->sink == NULL) {
		*u = s->upload_final;
		return;
	}
	sink_s3_stats(s->sink, &st);
	u->parts = st.parts_uploaded;
	u->bytes = st.bytes_uploaded;
	u->retries = st.retries;
	u->waits = st.waits;
	u->memory = sink_s3_memory(s->s3->part_size, s->s3->parts_in_flight);
}

void
upload_close(struct snapshot *s)
{
	struct sink *sink = s->sink;

	if (sink == NULL)
		return;
	/* Abort (a request to S3) before the figures are taken as final. */
	if (!sink->finished)
		sink_abort(sink);
	pthread_mutex_lock(&s->upload_lock);
	upload_figures(s, &s->upload_final);
	s->sink = NULL;
	pthread_mutex_unlock(&s->upload_lock);
	sink_free(sink);
	upload_list(s, 0);
}

void
upload_stats(struct snapshot *s, struct snapshot_stats *st)
{
	if (s->s3 == NULL)
		return;
	st->to_s3 = 1;
	pthread_mutex_lock(&s->upload_lock);
	upload_figures(s, &st->upload);
	pthread_mutex_unlock(&s->upload_lock);
	st->upload.memory = sink_s3_memory(s->s3->part_size,
	    s->s3->parts_in_flight);
}

void
upload_free(struct snapshot *s)
{
	upload_list(s, 0);	/* it is not, unless the writer never ran */
	if (s->s3 != NULL) {
		explicit_bzero(s->s3, sizeof(*s->s3));
		free(s->s3);
		s->s3 = NULL;
	}
}
