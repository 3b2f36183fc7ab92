/*
 * An S3 client for snapshots in object storage (Ceph RGW or any S3
 * service): the few requests snapd's upload sink and the reader need, and
 * nothing more.  HTTP and SigV4 signing are libcurl's (CURLOPT_AWS_SIGV4),
 * XML replies are parsed with expat; no request is built by hand past the
 * URL, its query string and the headers S3 wants.
 *
 * Both sides link it: the daemon's S3 sink (daemon/format/sink-s3.c)
 * uploads through it, the client library reads through it (ranged GETs
 * guided by the zsnap index).  Nothing here logs or exits.
 *
 * Facts it is built on (Debian 12's curl 7.88.1 against Ceph 16.2.15's
 * radosgw): x-amz-content-sha256 is sent by us (UNSIGNED-PAYLOAD), or a
 * PUT with a body gets 403 SignatureDoesNotMatch; curl signs the query
 * string as written, so it is written "?uploads=" and with its parameters
 * in sorted order; a body's size is always given (chunked gets 411);
 * CompleteMultipartUpload's reply may carry an empty ETag.
 *
 * A struct s3_client is one curl handle (its connection is kept between
 * requests) used by one thread at a time; make one per thread.  Every
 * request function returns 0, or -1 with errno set and a message in
 * s3_error() naming the request and why it failed, with S3's own error
 * code when the service sent one:
 *
 *	"PUT s3://snaps/x.zsnap part 3: HTTP 403 SignatureDoesNotMatch"
 *	"HEAD s3://nobucket: HTTP 404 NoSuchBucket"
 *	"GET s3://snaps/x.zsnap: connect to 127.0.0.1:7480: Connection refused"
 *
 * errno: EACCES (401, 403), ENOENT (404), ETIMEDOUT (no progress for
 * timeout seconds), ECONNREFUSED / EHOSTUNREACH (connection), ECANCELED
 * (the cancel flag was raised), EBADMSG (a reply that does not parse, or
 * a short body), EIO (any other HTTP error).
 *
 * Retries: a request that times out, cannot connect, loses its connection
 * before the reply is whole, or gets 5xx or 429 is tried again up to
 * config->retries more times, after 250 ms, 500 ms, 1 s, ... (at most 8 s
 * between tries), as long as the cancel flag is not raised.  Other
 * errors are final at once.  s3_client_tries() tells how many tries the
 * last request took (figures and tests).  A lost connection's errno is
 * the system's (ECONNRESET, EPIPE).
 *
 * Credentials are never part of an error message.
 */
#ifndef SNAPD_S3_H
#define SNAPD_S3_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define S3_ERROR_MAX		512
#define S3_BUCKET_MAX		63	/* S3's rule: 3..63 characters */
#define S3_KEY_MAX		1024	/* bytes, S3's limit */
#define S3_UPLOAD_ID_MAX	256
#define S3_ETAG_MAX		128
#define S3_PART_SIZE_MIN	(5ULL << 20)	/* every part but the last */
#define S3_PART_SIZE_MAX	(5ULL << 30)
#define S3_PARTS_MAX		10000

/* Where and as whom: the configuration's s3_* keys and credentials file. */
struct s3_config {
	char	endpoint[256];		/* "http://127.0.0.1:7480" (no path) */
	char	region[64];		/* SigV4 region, "us-east-1" by default */
	int	path_style;		/* 1: ENDPOINT/BUCKET/KEY; 0: BUCKET.HOST/KEY */
	char	access_key[128];
	char	secret_key[256];
	int	timeout;		/* seconds without progress: ETIMEDOUT */
	int	retries;		/* further tries after a retryable failure */
};

/*
 * "s3://BUCKET/KEY" (or "s3://BUCKET" or "s3://BUCKET/", key "") into
 * bucket and key.  The bucket is checked against S3's naming rule
 * (3..63 of [a-z0-9.-], starting and ending with a letter or digit); the
 * key must not start with '/', contain "//", "." or ".." components, or a
 * control character.  0, or -1 with EINVAL and the reason in err.
 */
int	s3_url_parse(const char *url, char *bucket, size_t bucketlen,
	    char *key, size_t keylen, char *err, size_t errlen);

/* 1 if s starts with "s3://". */
int	s3_is_url(const char *s);

/*
 * Read a credentials file: "access_key VALUE" and "secret_key VALUE"
 * lines ('#' comments, blank lines; values may be double-quoted), into
 * conf.  The file must be a regular file owned by owner with no group or
 * other permission bits (0600 or 0400), opened without following a
 * symlink; else it is refused, naming the file and what is wrong ("owned
 * by uid 1000, not 0", "mode 0644: group or others may read it").  0, or -1
 * with errno set and the message in err; the keys never appear in err.
 */
int	s3_credentials_load(struct s3_config *conf, const char *path,
	    uid_t owner, char *err, size_t errlen);

struct s3_client;

/*
 * A client for conf (copied).  cancel, if not NULL, is polled during
 * transfers and between retries: once it is non-zero, the request in
 * progress ends with ECANCELED.  NULL with errno set and a message in err.
 */
struct s3_client *s3_client_new(const struct s3_config *conf,
	    const atomic_int *cancel, char *err, size_t errlen);
void	s3_client_free(struct s3_client *c);
const char *s3_error(const struct s3_client *c);
/* The HTTP status of the last request's last try (0: no reply). */
int	s3_client_status(const struct s3_client *c);
/* Tries the last request took (1 when it needed no retry). */
int	s3_client_tries(const struct s3_client *c);
/*
 * Entries asked for per page of a listing (max-keys, max-uploads): 1000
 * (S3's most) unless set lower, so that a test can page a short listing.
 */
void	s3_client_set_page_size(struct s3_client *c, int n);

/* HEAD BUCKET: does it exist, and may these credentials reach it. */
int	s3_head_bucket(struct s3_client *c, const char *bucket);

/* HEAD KEY: its size (and ETag, unquoted, if etag is not NULL). */
int	s3_head_object(struct s3_client *c, const char *bucket, const char *key,
	    uint64_t *size, char *etag, size_t etaglen);

/*
 * GET KEY with "Range: bytes=off-(off+len-1)": exactly len bytes into buf,
 * or -1 (EBADMSG, "ends at ...", when the object is shorter).
 */
int	s3_get_range(struct s3_client *c, const char *bucket, const char *key,
	    uint64_t off, void *buf, size_t len);

/* PUT KEY with the body buf (len bytes), and DELETE KEY. */
int	s3_put_object(struct s3_client *c, const char *bucket, const char *key,
	    const void *buf, size_t len);
int	s3_delete_object(struct s3_client *c, const char *bucket,
	    const char *key);

/*
 * Objects whose key starts with prefix, every page of the listing
 * (ListObjectsV2): fn is called for each with its key, size and
 * last-modified time (seconds since the epoch); a non-zero return from fn
 * stops the listing and is returned.
 */
typedef int s3_object_fn(void *arg, const char *key, uint64_t size,
	    int64_t mtime);
int	s3_list_objects(struct s3_client *c, const char *bucket,
	    const char *prefix, s3_object_fn *fn, void *arg);

/* ---- multipart upload ---------------------------------------------------- */

struct s3_part {
	int	number;			/* 1..S3_PARTS_MAX */
	char	etag[S3_ETAG_MAX];	/* as UploadPart returned it, quotes kept */
};

/* POST KEY?uploads=: the upload's id into upload_id. */
int	s3_multipart_create(struct s3_client *c, const char *bucket,
	    const char *key, char *upload_id, size_t idlen);

/* PUT KEY?partNumber=N&uploadId=ID with the body buf: its ETag into part. */
int	s3_multipart_part(struct s3_client *c, const char *bucket,
	    const char *key, const char *upload_id, int number,
	    const void *buf, size_t len, struct s3_part *part);

/*
 * POST KEY?uploadId=ID with the parts (in number order): the object
 * appears, whole, only now.  A 200 reply whose body is an <Error> is a
 * failure (S3 may send one after the status line).
 */
int	s3_multipart_complete(struct s3_client *c, const char *bucket,
	    const char *key, const char *upload_id, const struct s3_part *parts,
	    size_t nparts);

/* DELETE KEY?uploadId=ID: the parts are dropped; no object appears. */
int	s3_multipart_abort(struct s3_client *c, const char *bucket,
	    const char *key, const char *upload_id);

/*
 * Multipart uploads in progress whose key starts with prefix, every page
 * of the listing (ListMultipartUploads): fn(arg, key, upload_id); a
 * non-zero return stops the listing and is returned.
 */
typedef int s3_upload_fn(void *arg, const char *key, const char *upload_id);
int	s3_multipart_list(struct s3_client *c, const char *bucket,
	    const char *prefix, s3_upload_fn *fn, void *arg);

#endif /* SNAPD_S3_H */
