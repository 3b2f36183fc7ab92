/*
 * Reading a zsnap file that lives in S3 ("s3://BUCKET/KEY", Ceph RGW or
 * any S3 service): every read of it is a ranged GET (proto/s3.h), which
 * the zsnap index makes possible, with no local copy.  reader.c sends every
 * read of a zsnap file, local or not, through reader_read(); for an object
 * it lands here.
 *
 * The reader makes many small reads (a chunk's frame header, its extent
 * list, then its page data), so a request per read would be a round trip
 * per few bytes.  A small read-ahead cache sits in between: a read that
 * misses fetches a window from its offset on, and two windows are kept
 * (the least recently used one is replaced).
 *
 *  - While the file is opened (footer, header, process and parent frames,
 *    index) the window is READER_S3_OPEN_WINDOW: the footer's read is
 *    served with the last window of the object, which holds the index of
 *    a snapshot of up to some 8000 chunks (32 bytes each), and the
 *    header's read with the first, which holds the region table and the
 *    frames that follow.  Opening costs a HEAD (the size) and two GETs, one when the
 *    object is no larger than a window.
 *  - Afterwards (verify, restore, read, export, merge, lazy restore) the
 *    window is READER_S3_WINDOW, so a walk through the chunks costs a GET
 *    per 4 MiB of object, and a read of a window or more goes straight
 *    into the caller's buffer, in one GET.
 * Windows start where the read that missed starts, not on fixed block
 * boundaries: a walk misses just past the window it used up, so its
 * windows tile the object with neither overlap nor a read split across
 * two requests.  verify reads the object once (reader-verify.c); restore,
 * export, merge and lazy restore check coverage from the chunks'
 * metadata first, which reads it once more.  What a window holds is
 * checked by the reader like any read: an object replaced between two
 * GETs fails a checksum, never reads as good.
 *
 * Settings come from the file $SNAP_S3_CONFIG names, else
 * /etc/memsnap/snapd.conf: only its s3_* keys (proto/s3conf.h), and the
 * credentials file s3_credentials names, which must be owned by the
 * caller's uid (getuid()) and readable by nobody else (s3settings.c).
 * Errors name that file and why; the keys are never part of a message.
 *
 * A chain's parents (reader-chain.c) are objects beside the child: the
 * same bucket, the same key prefix, the file name the link records.  They
 * share the child's S3 client (one connection, reference-counted in
 * struct reader_s3_conn): a chain is read by one thread at a time, as is
 * every struct snap_file.  Raw snapshots (directories) are never read from
 * S3: a key that names one, or a prefix, is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "reader-internal.h"
#include "s3.h"
#include "s3settings.h"

#define READER_S3_OPEN_WINDOW	(256u << 10)
#define READER_S3_WINDOW	(4u << 20)
#define READER_S3_WINDOWS	2

/* One S3 client, shared by a file and the parents of its chain. */
struct reader_s3_conn {
	struct s3_client	*client;
	unsigned		 refs;
};

/* A cached range of the object. */
struct reader_s3_window {
	unsigned char	*buf;
	size_t		 cap;
	uint64_t	 off;
	size_t		 len;		/* 0: empty */
	uint64_t	 used;		/* the read that last used it */
};

struct reader_s3 {
	struct reader_s3_conn	*conn;
	char			 bucket[S3_BUCKET_MAX + 1];
	char			 key[S3_KEY_MAX + 1];
	uint64_t		 size;		/* HEAD's */
	size_t			 window;	/* bytes a miss fetches */
	int			 opening;	/* reader_zsnap_open() runs */
	uint64_t		 reads;		/* a clock for the LRU */
	struct reader_s3_window	 win[READER_S3_WINDOWS];
};

static void
conn_release(struct reader_s3_conn *conn)
{
	if (conn == NULL || --conn->refs > 0)
		return;
	s3_client_free(conn->client);
	free(conn);
}

/* A client for the caller's S3 settings; NULL with the message set on f. */
static struct reader_s3_conn *
conn_new(struct snap_file *f)
{
	struct reader_s3_conn	*conn;
	struct s3_config	 conf;
	char			 err[S3_ERROR_MAX + 128];
	int			 saved;

	if (sc_s3_settings(&conf, err, sizeof(err)) == -1) {
		reader_error(f, errno, "%s", err);
		return NULL;
	}
	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		explicit_bzero(&conf, sizeof(conf));
		reader_error(f, ENOMEM, "cannot allocate an S3 client");
		return NULL;
	}
	conn->refs = 1;
	conn->client = s3_client_new(&conf, NULL, err, sizeof(err));
	saved = errno;
	explicit_bzero(&conf, sizeof(conf));
	if (conn->client == NULL) {
		reader_error(f, saved, "S3 client: %s", err);
		free(conn);
		return NULL;
	}
	return conn;
}

/* Stops a listing at its first object. */
static int
list_first(void *arg, const char *key, uint64_t size, int64_t mtime)
{
	*(int *)arg = 1;
	return 1;
}

/*
 * A key that is no object: is it a prefix, a raw snapshot's directory
 * copied there?  Then say so rather than "not found".
 */
static void
s3_not_found(struct snap_file *f, struct reader_s3 *s)
{
	char	prefix[S3_KEY_MAX + 2], why[S3_ERROR_MAX];
	int	found = 0;

	/* The listing replaces the client's message: keep HEAD's. */
	snprintf(why, sizeof(why), "%s", s3_error(s->conn->client));
	snprintf(prefix, sizeof(prefix), "%s/", s->key);
	if (s3_list_objects(s->conn->client, s->bucket, prefix, list_first,
	    &found) != -1 && found) {
		reader_error(f, EINVAL, "not a zsnap object but a prefix "
		    "holding objects (a raw snapshot directory?): raw "
		    "snapshots are not read from S3, only zsnap files");
		return;
	}
	reader_error(f, ENOENT, "%s", why);
}

/*
 * Open the object url as f's source: its size from HEAD.  sibling, when
 * not NULL, is the child whose chain this object is a link of: its client
 * is shared.
 */
static int
s3_source_open(struct snap_file *f, const char *url,
    const struct snap_file *sibling)
{
	struct reader_s3	*s;
	char			 err[S3_ERROR_MAX];
	size_t			 klen;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate an S3 reader");
		return -1;
	}
	f->s3 = s;
	s->window = READER_S3_OPEN_WINDOW;
	s->opening = 1;
	if (s3_url_parse(url, s->bucket, sizeof(s->bucket), s->key,
	    sizeof(s->key), err, sizeof(err)) == -1) {
		reader_error(f, EINVAL, "%s", err);
		return -1;
	}
	klen = strlen(s->key);
	if (klen == 0 || s->key[klen - 1] == '/' ||
	    (klen >= 4 && strcmp(s->key + klen - 4, ".raw") == 0)) {
		reader_error(f, EINVAL, "not a zsnap object: raw snapshots "
		    "(directories) and prefixes are not read from S3, only "
		    "zsnap files (s3://BUCKET/KEY.zsnap)");
		return -1;
	}
	if (sibling != NULL) {
		s->conn = sibling->s3->conn;
		s->conn->refs++;
	} else if ((s->conn = conn_new(f)) == NULL)
		return -1;
	if (s3_head_object(s->conn->client, s->bucket, s->key, &s->size,
	    NULL, 0) == -1) {
		int saved = errno;

		if (saved == ENOENT && sibling == NULL)
			s3_not_found(f, s);
		else
			reader_error(f, saved, "%s", s3_error(s->conn->client));
		return -1;
	}
	f->info.file_size = s->size;
	return 0;
}

struct snap_file *
reader_s3_open(const char *url, const struct snap_file *sibling)
{
	struct snap_file	*f;
	int			 saved;

	if ((f = reader_alloc(url)) == NULL)
		return NULL;
	if (s3_source_open(f, url, sibling) == -1 || reader_zsnap_open(f) == -1) {
		saved = errno;
		snap_file_close(f);
		errno = saved;
		return NULL;
	}
	/* Opened: from now on the reads are walks through the chunks. */
	f->s3->window = READER_S3_WINDOW;
	f->s3->opening = 0;
	return f;
}

/* The window holding offset off, or NULL. */
static struct reader_s3_window *
window_find(struct reader_s3 *s, uint64_t off)
{
	for (int i = 0; i < READER_S3_WINDOWS; i++) {
		struct reader_s3_window *w = &s->win[i];

		if (w->len > 0 && off >= w->off && off - w->off < w->len)
			return w;
	}
	return NULL;
}

/*
 * Fetch the window for a read of len bytes at off that missed: from off
 * on, at least to the read's end; while opening, the object's last window
 * when off lies in it (the footer's read, which so brings the index).
 */
static struct reader_s3_window *
window_fetch(struct snap_file *f, uint64_t off, size_t len, const char *what)
{
	struct reader_s3	*s = f->s3;
	struct reader_s3_window	*w = &s->win[0];
	uint64_t		 start = off, end;

	for (int i = 1; i < READER_S3_WINDOWS; i++)
		if (s->win[i].used < w->used)
			w = &s->win[i];
	if (s->opening && s->size - off < s->window)
		start = s->size > s->window ? s->size - s->window : 0;
	end = start + s->window;
	if (end < off + len)
		end = off + len;
	if (end > s->size)
		end = s->size;
	w->len = 0;
	if (reader_reserve(f, (void **)&w->buf, &w->cap, end - start) == -1)
		return NULL;
	if (s3_get_range(s->conn->client, s->bucket, s->key, start, w->buf,
	    end - start) == -1) {
		reader_error(f, errno, "read %s at offset %llu: %s", what,
		    (unsigned long long)off, s3_error(s->conn->client));
		return NULL;
	}
	w->off = start;
	w->len = end - start;
	return w;
}

int
reader_s3_read(struct snap_file *f, void *buf, size_t len, uint64_t off,
    const char *what)
{
	struct reader_s3	*s = f->s3;
	unsigned char		*p = buf;

	if (off > s->size || len > s->size - off) {
		reader_error(f, EBADMSG, "truncated: %s at offset %llu ends "
		    "past the end of the object (%llu bytes)", what,
		    (unsigned long long)off, (unsigned long long)s->size);
		return -1;
	}
	s->reads++;
	while (len > 0) {
		struct reader_s3_window *w = window_find(s, off);
		size_t n;

		/* What is left is a window or more: one GET, into buf. */
		if (w == NULL && len >= s->window) {
			if (s3_get_range(s->conn->client, s->bucket, s->key,
			    off, p, len) == -1) {
				reader_error(f, errno, "read %s at offset %llu: "
				    "%s", what, (unsigned long long)off,
				    s3_error(s->conn->client));
				return -1;
			}
			return 0;
		}
		if (w == NULL && (w = window_fetch(f, off, len, what)) == NULL)
			return -1;
		w->used = s->reads;
		n = w->off + w->len - off;
		if (n > len)
			n = len;
		memcpy(p, w->buf + (off - w->off), n);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

void
reader_s3_drop_cache(struct snap_file *f)
{
	if (f->s3 == NULL)
		return;
	for (int i = 0; i < READER_S3_WINDOWS; i++) {
		struct reader_s3_window *w = &f->s3->win[i];

		free(w->buf);
		memset(w, 0, sizeof(*w));
	}
}

void
reader_s3_close(struct snap_file *f)
{
	if (f->s3 == NULL)
		return;
	reader_s3_drop_cache(f);
	conn_release(f->s3->conn);
	free(f->s3);
	f->s3 = NULL;
}
