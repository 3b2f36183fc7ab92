/*
 * The S3 sink (sink.h): a snapshot's bytes become one object, uploaded as
 * an S3 multipart upload while the writer produces them.  It plays the
 * part of the file sink's temporary file and rename: the parts of an
 * upload are invisible, CompleteMultipartUpload makes the object appear
 * whole, AbortMultipartUpload drops them.
 *
 * Memory is a fixed pool of parts_in_flight + 1 part buffers of part_size
 * bytes, allocated when first needed (a snapshot smaller than one part
 * holds one buffer), never more: sink_s3_memory().  The writer fills one
 * buffer; a full one goes on the queue, where parts_in_flight uploader
 * threads, each with its own s3_client (a curl handle, so its own
 * connection), take it and upload it; an uploaded buffer goes back to the
 * free list.  When no buffer is free the writer waits: a slow or stopped
 * store holds the writer back the way a slow disk does, and the page
 * buffer in front of the writer then holds the application back.
 *
 * Cancelling.  The uploaders' clients poll the sink's own stop flag, not
 * the caller's cancel flag: abort must end a stalled upload at once even
 * when nobody cancelled the snapshot (it failed for another reason).  The
 * writer's waits poll the caller's flag every SINK_S3_POLL_MS and raise
 * stop when they see it, so a cancel ends the uploads in progress as soon
 * as the writer is in the sink, and in any case when it aborts.  The
 * writer's own client (HEAD, create, complete) polls the caller's flag.
 * AbortMultipartUpload is sent with a fresh client that nothing cancels,
 * with a short timeout: a cancelled snapshot must still drop its parts.
 *
 * The upload ids of this process's live sinks are kept in a registry,
 * sink_s3_live(), so that a cleanup of leftover uploads never aborts one
 * that is running now.
 *
 * Threads and locks.  The writer thread (the one that opens the sink and
 * then calls write/sync/finish/abort/free) owns fill, next_number, written
 * and the writer's client.  The uploader threads own their client.  Under
 * lock: the free list and the queue, inflight, nbufs, parts (and
 * parts_cap), failure.  stop and failed are atomics written under lock
 * and read without it (curl polls stop).  The figures are atomics any
 * thread reads.  The registry has its own lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ioutil.h"
#include "log.h"
#include "s3.h"
#include "sink.h"

/* How often a waiting writer looks at the caller's cancel flag. */
#define SINK_S3_POLL_MS		50	/* sink.h says so */
/* AbortMultipartUpload: short, and not cancelled. */
#define SINK_S3_ABORT_TIMEOUT	5
#define SINK_S3_ABORT_RETRIES	1
#define SINK_S3_URL_MAX		(sizeof("s3://") + S3_BUCKET_MAX + 1 + S3_KEY_MAX)

struct s3_buffer {
	TAILQ_ENTRY(s3_buffer)	 entry;
	unsigned char		*data;
	size_t			 len;
	int			 number;	/* part number, 1.. */
};
TAILQ_HEAD(s3_buffers, s3_buffer);

struct sink_s3;

struct s3_uploader {
	struct sink_s3		*sink;
	struct s3_client	*client;	/* polls sink->stop */
	pthread_t		 thread;
	int			 started;
};

struct sink_s3 {
	struct sink		 base;	/* first: a struct sink * is a struct sink_s3 * */
	LIST_ENTRY(sink_s3)	 live;	/* in the registry while in_registry */
	int			 in_registry;

	struct s3_config	 conf;
	char			 bucket[S3_BUCKET_MAX + 1];
	char			 key[S3_KEY_MAX + 1];
	char			 upload_id[S3_UPLOAD_ID_MAX];
	char			 url[SINK_S3_URL_MAX];
	uint64_t		 part_size;
	const atomic_int	*cancel;	/* the caller's, may be NULL */
	int			 nice;		/* the uploaders' (params) */

	/* The writer thread's. */
	struct s3_client	*client;	/* polls cancel */
	struct s3_buffer	*fill;		/* being filled, NULL if none */
	int			 next_number;	/* of the next buffer filled */
	uint64_t		 written;
	int			 complete_tried;

	struct s3_uploader	*uploaders;
	int			 nuploaders;
	int			 joined;

	pthread_mutex_t		 lock;
	pthread_cond_t		 work;	/* uploaders: a part queued, or stop */
	pthread_cond_t		 done;	/* writer: a buffer free, or failure */
	struct s3_buffer	*bufs;	/* nbufs_max of them */
	int			 nbufs_max;
	int			 nbufs;	/* with data allocated */
	struct s3_buffers	 free;
	struct s3_buffers	 queue;
	int			 inflight;
	struct s3_part		*parts;	/* [number - 1], set once uploaded */
	size_t			 parts_cap;
	atomic_int		 stop;
	atomic_int		 failed;
	int			 failed_errno;
	char			 failure[SINK_ERROR_MAX];

	_Atomic uint64_t	 parts_uploaded;
	_Atomic uint64_t	 bytes_uploaded;
	_Atomic uint64_t	 retries;
	_Atomic uint64_t	 waits;
};

static pthread_mutex_t	registry_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, sink_s3) registry = LIST_HEAD_INITIALIZER(registry);

static const struct sink_ops s3_ops;

#define s3_set_error(s, ...)						\
	ioutil_set_error((s)->base.error, sizeof((s)->base.error), __VA_ARGS__)

/* ---- registry of live uploads ------------------------------------------- */

static void
s3_registry_add(struct sink_s3 *s)
{
	pthread_mutex_lock(&registry_lock);
	LIST_INSERT_HEAD(&registry, s, live);
	s->in_registry = 1;
	pthread_mutex_unlock(&registry_lock);
}

static void
s3_registry_remove(struct sink_s3 *s)
{
	pthread_mutex_lock(&registry_lock);
	if (s->in_registry) {
		LIST_REMOVE(s, live);
		s->in_registry = 0;
	}
	pthread_mutex_unlock(&registry_lock);
}

int
sink_s3_live(const char *upload_id)
{
	struct sink_s3	*s;
	int		 found = 0;

	pthread_mutex_lock(&registry_lock);
	LIST_FOREACH(s, &registry, live)
		if (strcmp(s->upload_id, upload_id) == 0) {
			found = 1;
			break;
		}
	pthread_mutex_unlock(&registry_lock);
	return found;
}

/* ---- uploader threads --------------------------------------------------- */

/* Record the first failure for good; later ones add nothing.  Under lock. */
static void
s3_fail_locked(struct sink_s3 *s, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s3_fail_locked(struct sink_s3 *s, int error, const char *fmt, ...)
{
	va_list	ap;

	if (atomic_load(&s->failed))
		return;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
	s->failed_errno = error;
	atomic_store(&s->failed, 1);
	pthread_cond_broadcast(&s->done);
}

/* A buffer back to the free list, emptied.  Under lock. */
static void
s3_release_locked(struct sink_s3 *s, struct s3_buffer *b)
{
	b->len = 0;
	b->number = 0;
	TAILQ_INSERT_TAIL(&s->free, b, entry);
	pthread_cond_broadcast(&s->done);
}

static void *
s3_uploader_run(void *arg)
{
	struct s3_uploader	*u = arg;
	struct sink_s3		*s = u->sink;
	struct s3_buffer	*b;
	struct s3_part		 part;
	int			 rc, tries, error;

	(void)pthread_setname_np(pthread_self(), "s3-upload");
	if (s->nice != 0 &&
	    setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice) == -1)
		log_debug("%s: nice %d for an uploader: %s", s->url, s->nice,
		    strerror(errno));
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (TAILQ_EMPTY(&s->queue) && !atomic_load(&s->stop))
			pthread_cond_wait(&s->work, &s->lock);
		if (atomic_load(&s->stop))
			break;
		b = TAILQ_FIRST(&s->queue);
		TAILQ_REMOVE(&s->queue, b, entry);
		if (atomic_load(&s->failed)) {
			/* The upload is lost anyway: free the writer. */
			s3_release_locked(s, b);
			continue;
		}
		s->inflight++;
		pthread_mutex_unlock(&s->lock);

		memset(&part, 0, sizeof(part));
		rc = s3_multipart_part(u->client, s->bucket, s->key,
		    s->upload_id, b->number, b->data, b->len, &part);
		error = errno;
		tries = s3_client_tries(u->client);
		if (tries > 1)
			atomic_fetch_add(&s->retries, (uint64_t)(tries - 1));

		pthread_mutex_lock(&s->lock);
		s->inflight--;
		if (rc == 0) {
			part.number = b->number;
			s->parts[b->number - 1] = part;
			atomic_fetch_add(&s->parts_uploaded, 1);
			atomic_fetch_add(&s->bytes_uploaded, b->len);
		} else
			s3_fail_locked(s, error, "%s (%d %s)",
			    s3_error(u->client), tries,
			    tries == 1 ? "try" : "tries");
		s3_release_locked(s, b);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * Start the uploaders with every signal blocked: they must never be the
 * thread a signal meant for the daemon (its libevent loop) is delivered to,
 * nor have a transfer interrupted by one.  They inherit the mask of this
 * thread, and set their own nice value (the params').
 */
static int
s3_uploaders_start(struct sink_s3 *s, char *err, size_t errlen)
{
	sigset_t	all, old;
	int		rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < s->nuploaders; i++) {
		struct s3_uploader *u = &s->uploaders[i];

		if ((rc = pthread_create(&u->thread, NULL, s3_uploader_run,
		    u)) != 0) {
			snprintf(err, errlen, "%s: uploader thread: %s",
			    s->url, strerror(rc));
			break;
		}
		u->started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

/* Raise stop (uploads in progress end with ECANCELED) and join. */
static void
s3_uploaders_stop(struct sink_s3 *s)
{
	if (s->joined)
		return;
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stop, 1);
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nuploaders; i++)
		if (s->uploaders[i].started)
			pthread_join(s->uploaders[i].thread, NULL);
	s->joined = 1;
}

/* ---- the writer's side -------------------------------------------------- */

/* The first upload failure as this call's error.  Under lock. */
static int
s3_failed_locked(struct sink_s3 *s)
{
	if (!atomic_load(&s->failed))
		return 0;
	s3_set_error(s, "%s", s->failure);
	errno = s->failed_errno;
	return -1;
}

/*
 * Wait on done for at most SINK_S3_POLL_MS, then look at the caller's
 * cancel flag: once raised, the uploads in progress are told to stop, and
 * this wait and every later call fail with ECANCELED.  Under lock.
 */
static int
s3_wait_locked(struct sink_s3 *s)
{
	struct timespec	until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_nsec += SINK_S3_POLL_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->done, &s->lock, &until);
	if (s->cancel != NULL && atomic_load(s->cancel)) {
		/* For good: the uploaders are gone, nothing can go on. */
		atomic_store(&s->stop, 1);
		pthread_cond_broadcast(&s->work);
		s3_fail_locked(s, ECANCELED, "%s: cancelled", s->url);
		return s3_failed_locked(s);
	}
	return 0;
}

/*
 * A buffer to fill, numbered next_number: a free one, a new one while
 * fewer than nbufs_max exist, or else wait for an uploader to free one.
 * The first wait of a write (*waited) counts in the figures at once, so
 * that a stalled writer shows.
 */
static int
s3_take_buffer(struct sink_s3 *s, int *waited)
{
	struct s3_buffer	*b = NULL;
	struct s3_part		*parts;
	size_t			 cap;
	int			 number = s->next_number;

	pthread_mutex_lock(&s->lock);
	while (b == NULL) {
		if (s3_failed_locked(s) == -1)
			goto fail;
		if ((b = TAILQ_FIRST(&s->free)) != NULL) {
			TAILQ_REMOVE(&s->free, b, entry);
			break;
		}
		if (s->nbufs < s->nbufs_max) {
			b = &s->bufs[s->nbufs];
			if ((b->data = malloc(s->part_size)) == NULL) {
				s3_set_error(s, "%s: part buffer of %llu bytes: "
				    "%s", s->url,
				    (unsigned long long)s->part_size,
				    strerror(errno));
				b = NULL;
				goto fail;
			}
			s->nbufs++;
			break;
		}
		if (!*waited) {
			*waited = 1;
			atomic_fetch_add(&s->waits, 1);
		}
		if (s3_wait_locked(s) == -1)
			goto fail;
	}
	/* Room for the part's ETag, written by an uploader under lock. */
	if ((size_t)number > s->parts_cap) {
		cap = s->parts_cap > 0 ? s->parts_cap * 2 : 64;
		if (cap > S3_PARTS_MAX)
			cap = S3_PARTS_MAX;
		if ((parts = realloc(s->parts, cap * sizeof(*parts))) == NULL) {
			s3_set_error(s, "%s: list of %zu parts: %s", s->url,
			    cap, strerror(errno));
			TAILQ_INSERT_HEAD(&s->free, b, entry);
			goto fail;
		}
		memset(parts + s->parts_cap, 0,
		    (cap - s->parts_cap) * sizeof(*parts));
		s->parts = parts;
		s->parts_cap = cap;
	}
	pthread_mutex_unlock(&s->lock);
	b->len = 0;
	b->number = number;
	s->next_number++;
	s->fill = b;
	return 0;
fail:
	pthread_mutex_unlock(&s->lock);
	return -1;
}

/* The buffer being filled to the uploaders. */
static void
s3_queue_fill(struct sink_s3 *s)
{
	pthread_mutex_lock(&s->lock);
	TAILQ_INSERT_TAIL(&s->queue, s->fill, entry);
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	s->fill = NULL;
}

/* Wait until every queued part is uploaded (or one failed). */
static int
s3_wait_idle(struct sink_s3 *s)
{
	int	rc = 0;

	pthread_mutex_lock(&s->lock);
	while ((rc = s3_failed_locked(s)) == 0 &&
	    (!TAILQ_EMPTY(&s->queue) || s->inflight > 0))
		if ((rc = s3_wait_locked(s)) == -1)
			break;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* "64 MiB" when part_size is a whole number of MiB, else bytes. */
static void
s3_size_text(uint64_t size, char *buf, size_t len)
{
	if (size % (1ULL << 20) == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(size >> 20));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)size);
}

static int
s3_write(struct sink *base, const void *buf, size_t len)
{
	struct sink_s3		*s = (struct sink_s3 *)base;
	const unsigned char	*p = buf;
	char			 size[32];
	int			 waited = 0, rc = 0;
	size_t			 n;

	if (len > s->part_size * S3_PARTS_MAX - s->written) {
		s3_size_text(s->part_size, size, sizeof(size));
		s3_set_error(s, "%s: larger than %d parts of %s", s->url,
		    S3_PARTS_MAX, size);
		errno = EFBIG;
		return -1;
	}
	if (atomic_load(&s->failed)) {
		pthread_mutex_lock(&s->lock);
		rc = s3_failed_locked(s);
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	while (len > 0) {
		if (s->fill == NULL && (rc = s3_take_buffer(s, &waited)) == -1)
			break;
		n = s->part_size - s->fill->len;
		if (n > len)
			n = len;
		memcpy(s->fill->data + s->fill->len, p, n);
		s->fill->len += n;
		s->written += n;
		p += n;
		len -= n;
		if (s->fill->len == s->part_size)
			s3_queue_fill(s);
	}
	return rc;
}

/* Every full part uploaded; the one being filled stays (S3 wants 5 MiB). */
static int
s3_sync(struct sink *base)
{
	return s3_wait_idle((struct sink_s3 *)base);
}

static int
s3_finish(struct sink *base)
{
	struct sink_s3	*s = (struct sink_s3 *)base;
	int		 waited = 0, nparts;
	uint64_t	 size;

	/* The last part, short or empty: an empty object is one empty part. */
	if (s->fill == NULL && s->next_number == 1 &&
	    s3_take_buffer(s, &waited) == -1)
		return -1;
	if (s->fill != NULL)
		s3_queue_fill(s);
	if (s3_wait_idle(s) == -1)
		return -1;
	s3_uploaders_stop(s);

	nparts = s->next_number - 1;
	for (int i = 0; i < nparts; i++)
		if (s->parts[i].number != i + 1) {
			s3_set_error(s, "%s: part %d was never uploaded",
			    s->url, i + 1);
			errno = EIO;
			return -1;
		}
	/* The file sink never replaces a file; nor does this one. */
	if (s3_head_object(s->client, s->bucket, s->key, &size, NULL, 0) == 0) {
		s3_set_error(s, "%s: an object of this name appeared during "
		    "the upload", s->url);
		errno = EEXIST;
		return -1;
	}
	if (errno == ECANCELED) {
		s3_set_error(s, "%s", s3_error(s->client));
		return -1;
	}
	s->complete_tried = 1;
	if (s3_multipart_complete(s->client, s->bucket, s->key, s->upload_id,
	    s->parts, (size_t)nparts) == -1) {
		s3_set_error(s, "%s", s3_error(s->client));
		return -1;
	}
	base->finished = 1;
	s3_registry_remove(s);
	return 0;
}

/*
 * The upload is gone although its complete seemed to fail (timed out,
 * cancelled): it may have gone through.  The key was free when the upload
 * started and just before the complete, so an object there whose ETag is
 * a multipart one of as many parts as ours ("MD5-N") is ours to remove.
 */
static void
s3_abort_completed(struct sink_s3 *s, struct s3_client *c)
{
	char		etag[S3_ETAG_MAX], suffix[16];
	uint64_t	size;
	size_t		n, m;

	if (s3_head_object(c, s->bucket, s->key, &size, etag,
	    sizeof(etag)) == -1) {
		if (errno != ENOENT)
			log_warnx("%s: upload %s is gone, and the object "
			    "cannot be checked: %s", s->url, s->upload_id,
			    s3_error(c));
		return;
	}
	snprintf(suffix, sizeof(suffix), "-%d", s->next_number - 1);
	n = strlen(etag);
	m = strlen(suffix);
	if (n <= m || strcmp(etag + n - m, suffix) != 0) {
		log_warnx("%s: upload %s is gone, and the object there (ETag "
		    "%s) is not its; left alone", s->url, s->upload_id, etag);
		return;
	}
	if (s3_delete_object(c, s->bucket, s->key) == -1)
		log_warnx("%s: completed although its snapshot failed, and "
		    "cannot be removed: %s", s->url, s3_error(c));
	else
		log_warnx("%s: completed although its snapshot failed; "
		    "removed", s->url);
}

/*
 * Stop the uploaders and drop the upload's parts.  A failed abort leaves
 * the upload to the next start-up's cleanup (it lists our prefix's
 * uploads), and says so.
 */
static void
s3_abort(struct sink *base)
{
	struct sink_s3		*s = (struct sink_s3 *)base;
	struct s3_config	 conf = s->conf;
	struct s3_client	*c;
	char			 err[S3_ERROR_MAX];

	s3_uploaders_stop(s);
	if (s->upload_id[0] == '\0' || base->finished)
		return;
	if (conf.timeout > SINK_S3_ABORT_TIMEOUT)
		conf.timeout = SINK_S3_ABORT_TIMEOUT;
	if (conf.retries > SINK_S3_ABORT_RETRIES)
		conf.retries = SINK_S3_ABORT_RETRIES;
	if ((c = s3_client_new(&conf, NULL, err, sizeof(err))) == NULL) {
		log_warnx("%s: cannot abort multipart upload %s: %s; snapd's "
		    "next start removes it", s->url, s->upload_id, err);
	} else if (s3_multipart_abort(c, s->bucket, s->key,
	    s->upload_id) == -1) {
		if (errno == ENOENT && s->complete_tried)
			s3_abort_completed(s, c);
		else
			log_warnx("%s: abort multipart upload %s: %s; snapd's "
			    "next start removes it", s->url, s->upload_id,
			    s3_error(c));
	}
	if (c != NULL)
		s3_client_free(c);
	s3_registry_remove(s);
}

static void
s3_free(struct sink *base)
{
	struct sink_s3	*s = (struct sink_s3 *)base;

	s3_uploaders_stop(s);
	s3_registry_remove(s);
	for (int i = 0; i < s->nuploaders; i++)
		s3_client_free(s->uploaders[i].client);
	free(s->uploaders);
	s3_client_free(s->client);
	for (int i = 0; i < s->nbufs; i++)
		free(s->bufs[i].data);
	free(s->bufs);
	free(s->parts);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct sink_ops s3_ops = {
	.write = s3_write,
	.sync = s3_sync,
	.finish = s3_finish,
	.abort = s3_abort,
	.free = s3_free,
};

/* ---- opening ------------------------------------------------------------ */

static int
s3_params_check(const struct sink_s3_params *p, char *err, size_t errlen)
{
	if (p->part_size < S3_PART_SIZE_MIN || p->part_size > S3_PART_SIZE_MAX) {
		snprintf(err, errlen, "s3://%s/%s: part size %llu out of "
		    "range %llu..%llu", p->bucket, p->key,
		    (unsigned long long)p->part_size,
		    (unsigned long long)S3_PART_SIZE_MIN,
		    (unsigned long long)S3_PART_SIZE_MAX);
		return -1;
	}
	if (p->parts_in_flight < 1 || p->parts_in_flight > SINK_S3_IN_FLIGHT_MAX) {
		snprintf(err, errlen, "s3://%s/%s: %d parts in flight, not "
		    "1..%d", p->bucket, p->key, p->parts_in_flight,
		    SINK_S3_IN_FLIGHT_MAX);
		return -1;
	}
	if (strlen(p->bucket) > S3_BUCKET_MAX || p->key[0] == '\0' ||
	    strlen(p->key) > S3_KEY_MAX) {
		snprintf(err, errlen, "s3://%.*s/%.*s: bucket or key empty or "
		    "too long", S3_BUCKET_MAX, p->bucket, 64, p->key);
		return -1;
	}
	return 0;
}

/* The sink is set up far enough for sink_free(); the upload not created. */
static struct sink_s3 *
s3_new(const struct sink_s3_params *p)
{
	struct sink_s3		*s;
	pthread_condattr_t	 attr;

	s = xcalloc(1, sizeof(*s));
	s->base.ops = &s3_ops;
	s->conf = *p->conf;
	snprintf(s->bucket, sizeof(s->bucket), "%s", p->bucket);
	snprintf(s->key, sizeof(s->key), "%s", p->key);
	snprintf(s->url, sizeof(s->url), "s3://%s/%s", p->bucket, p->key);
	s->part_size = p->part_size;
	s->cancel = p->cancel;
	s->next_number = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&s->work, NULL);
	TAILQ_INIT(&s->free);
	TAILQ_INIT(&s->queue);
	s->nbufs_max = p->parts_in_flight + 1;
	s->bufs = xcalloc((size_t)s->nbufs_max, sizeof(*s->bufs));
	s->nuploaders = p->parts_in_flight;
	s->uploaders = xcalloc((size_t)s->nuploaders, sizeof(*s->uploaders));
	s->nice = p->nice;
	return s;
}

struct sink *
sink_s3_open(const struct sink_s3_params *p, char *err, size_t errlen)
{
	struct sink_s3	*s;
	uint64_t	 size;
	int		 saved;

	if (s3_params_check(p, err, errlen) == -1) {
		errno = EINVAL;
		return NULL;
	}
	s = s3_new(p);
	if ((s->client = s3_client_new(&s->conf, s->cancel, err,
	    errlen)) == NULL)
		goto fail;
	for (int i = 0; i < s->nuploaders; i++) {
		s->uploaders[i].sink = s;
		if ((s->uploaders[i].client = s3_client_new(&s->conf,
		    &s->stop, err, errlen)) == NULL)
			goto fail;
	}
	/*
	 * Like the file sink, never replace: an existing object refuses the
	 * snapshot now.  Any other answer (404, or 403 for credentials that
	 * may not read) leaves the verdict to the create, whose error is
	 * the one worth reporting.
	 */
	if (s3_head_object(s->client, s->bucket, s->key, &size, NULL, 0) == 0) {
		snprintf(err, errlen, "%s: an object of this name exists "
		    "(%llu bytes)", s->url, (unsigned long long)size);
		errno = EEXIST;
		goto fail;
	}
	if (s->cancel != NULL && atomic_load(s->cancel)) {
		snprintf(err, errlen, "%s: cancelled", s->url);
		errno = ECANCELED;
		goto fail;
	}
	if (s3_multipart_create(s->client, s->bucket, s->key, s->upload_id,
	    sizeof(s->upload_id)) == -1) {
		snprintf(err, errlen, "%s", s3_error(s->client));
		goto fail;
	}
	s3_registry_add(s);
	if (s3_uploaders_start(s, err, errlen) == -1)
		goto fail;
	return &s->base;
fail:
	saved = errno;
	sink_free(&s->base);	/* aborts the upload if it was created */
	errno = saved;
	return NULL;
}

uint64_t
sink_s3_memory(uint64_t part_size, int parts_in_flight)
{
	return part_size * (uint64_t)(parts_in_flight + 1);
}

const char *
sink_s3_url(const struct sink *s)
{
	if (s->ops != &s3_ops)
		return NULL;
	return ((const struct sink_s3 *)s)->url;
}

const char *
sink_s3_upload_id(const struct sink *s)
{
	if (s->ops != &s3_ops)
		return NULL;
	return ((const struct sink_s3 *)s)->upload_id;
}

void
sink_s3_stats(const struct sink *s, struct sink_s3_stats *st)
{
	struct sink_s3	*s3 = (struct sink_s3 *)(uintptr_t)s;

	memset(st, 0, sizeof(*st));
	if (s->ops != &s3_ops)
		return;
	st->parts_uploaded = atomic_load(&s3->parts_uploaded);
	st->bytes_uploaded = atomic_load(&s3->bytes_uploaded);
	st->retries = atomic_load(&s3->retries);
	st->waits = atomic_load(&s3->waits);
}
