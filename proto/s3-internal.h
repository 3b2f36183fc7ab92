/*
 * What the S3 client's files share (s3.c the requests, s3url.c names and
 * encodings, s3xml.c the replies, s3conf.c the settings and credentials);
 * not part of the interface (s3.h).
 */
#ifndef SNAPD_S3_INTERNAL_H
#define SNAPD_S3_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "s3.h"

/* ---- s3url.c ----------------------------------------------------------- */

/* A growing byte buffer (request and reply bodies, URLs). */
struct s3_buf {
	char	*data;		/* NUL-terminated once anything was added */
	size_t	 len, cap;
	int	 failed;	/* an allocation failed: every add is -1 */
};

/* Append to b; -1 (ENOMEM) now and for every later add once one failed,
 * so that a caller may check only at the end (b->failed). */
int	s3_buf_add(struct s3_buf *b, const void *p, size_t len);
int	s3_buf_printf(struct s3_buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	s3_buf_free(struct s3_buf *b);

/*
 * Append s percent-encoded the way SigV4 wants it: every byte but
 * A-Z a-z 0-9 - . _ ~ as %XX (upper case); '/' kept when keep_slash (an
 * object key in a path), encoded otherwise (a query value).
 */
int	s3_buf_add_encoded(struct s3_buf *b, const char *s, int keep_slash);

/*
 * The endpoint "http[s]://HOST[:PORT][/]" split into scheme ("http") and
 * host ("HOST[:PORT]"); -1 with the reason in err if it is not one.
 */
int	s3_endpoint_split(const char *endpoint, char *scheme, size_t schemelen,
	    char *host, size_t hostlen, char *err, size_t errlen);

/* ---- s3xml.c ----------------------------------------------------------- */

/*
 * One reply body, parsed: its root element's name and the fields of the
 * replies we read.  Entries (<Contents> of a listing, <Upload> of an
 * uploads listing) go to object_fn or upload_fn as each one ends; a
 * non-zero return stops the parse and is kept in fn_rv.
 */
struct s3_xml {
	char		 root[64];
	char		 code[64];		/* <Error><Code> */
	char		 message[256];		/* <Error><Message> */
	char		 upload_id[S3_UPLOAD_ID_MAX];
	int		 truncated;		/* <IsTruncated>true */
	char		 next_token[1024];	/* NextContinuationToken */
	char		 next_key[S3_KEY_MAX + 1];	/* NextKeyMarker */
	char		 next_upload_id[S3_UPLOAD_ID_MAX];	/* NextUploadIdMarker */
	size_t		 entries;		/* entries seen */

	s3_object_fn	*object_fn;
	s3_upload_fn	*upload_fn;
	void		*fn_arg;
	int		 fn_rv;
};

/*
 * Parse body (len bytes) into x (its fn fields set by the caller).  0, or
 * -1 with the reason in err (EBADMSG: not well-formed, a value too long
 * or malformed) or with x->fn_rv non-zero (a callback stopped it).
 */
int	s3_xml_parse(struct s3_xml *x, const char *body, size_t len, char *err,
	    size_t errlen);

/* ---- s3.c -------------------------------------------------------------- */

struct s3_client {
	struct s3_config	 conf;
	const atomic_int	*cancel;
	CURL			*curl;
	char			 scheme[8];
	char			 host[256];
	char			 sigv4[96];
	int			 page_size;	/* max-keys, max-uploads */
	int			 status;
	int			 tries;
	char			 error[S3_ERROR_MAX];
};

/* One request: what to send, where the reply goes, what came back. */
struct s3_request {
	const char	*method;	/* GET HEAD PUT POST DELETE */
	const char	*bucket;
	const char	*key;		/* NULL: the bucket itself */
	const char	*query;		/* canonical (sorted, encoded) or NULL */
	struct s3_buf	 qbuf;		/* else the query built here (freed
					 * by s3_perform) */
	const char	*what;		/* " part 3", for messages, or "" */
	const char	*content_type;	/* of a POST body */
	const char	*range;		/* "Range: bytes=..." or NULL */

	const char	*body;		/* PUT and POST */
	size_t		 bodylen;
	size_t		 sent;

	char		*out;		/* a 2xx body goes here (ranged GET) */
	size_t		 outlen;
	size_t		 got;
	int		 overflow;	/* more than outlen arrived */
	struct s3_buf	 reply;		/* else here (errors, XML) */

	/* From the reply's headers (the last response's). */
	int		 status;
	char		 reason[64];
	char		 etag[S3_ETAG_MAX];
	uint64_t	 length;
	int		 have_length;
	uint64_t	 total;		/* Content-Range's "/TOTAL" */
	int		 have_total;

	struct s3_client *c;
};

/* Run r (its fields set, the rest zero), trying again after a back-off
 * while the failure may pass: 0, or -1 with errno and s3_error(c).  A
 * reply body is left in r->reply (s3_buf_free it); r->qbuf is freed. */
int	s3_perform(struct s3_client *c, struct s3_request *r);

/* "GET s3://b/k part 3: " followed by fmt, into the client's error
 * (scrubbed of both keys); errno = err. */
void	s3_fail(struct s3_client *c, const struct s3_request *r, int err,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fail r for want of memory before it was sent: -1, errno ENOMEM. */
int	s3_nomem(struct s3_client *c, const struct s3_request *r);

/* Parse r's XML reply (freed) into x, whose root must be root: 0, the
 * non-zero return of x's callback, or -1 with errno and the message
 * naming r (an <Error> in a 200 body is a failure). */
int	s3_reply_parse(struct s3_client *c, struct s3_request *r,
	    struct s3_xml *x, const char *root);

/* Every page of a listing: ListMultipartUploads through upload_fn if it
 * is not NULL, else ListObjectsV2 through object_fn (which may be NULL).
 * 0, a callback's non-zero return, or -1 with errno and the message. */
int	s3_list_pages(struct s3_client *c, const char *bucket,
	    const char *prefix, s3_object_fn *object_fn,
	    s3_upload_fn *upload_fn, void *arg);

/* Append "&NAME=VALUE" to a query (no '&' first), the value encoded; the
 * caller adds the parameters in sorted order, as SigV4's canonical query
 * has them.  A failure shows in q->failed (s3_perform reports it). */
void	s3_query_add(struct s3_buf *q, const char *name, const char *value);

#endif /* SNAPD_S3_INTERNAL_H */
