/*
 * The S3 client's requests (see s3.h): one curl easy handle per client,
 * signed by curl (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3"), replies parsed
 * by s3xml.c.
 *
 * Every request goes through s3_perform(): it sets the handle up afresh
 * for each try (curl_easy_reset keeps the live connection), runs it,
 * turns curl's result and the HTTP status into errno and a message, and
 * tries again after a back-off when the failure may pass (no connection,
 * no progress for the timeout, 5xx, 429).  The cancel flag is polled by
 * curl's progress callback (at least once a second, even while nothing
 * moves) and between tries.
 *
 * The message never holds a credential: it is built from the method, the
 * bucket, the key and S3's own error code and text, and any text that
 * came from the service is scrubbed of both keys before it is kept.
 *
 * A client is used by one thread at a time (s3.h); curl_global_init runs
 * once, before the first handle, under pthread_once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "ioutil.h"
#include "s3-internal.h"
#include "s3conf.h"

/* A reply body (an error, a listing) larger than this is refused. */
#define S3_REPLY_MAX		(16u << 20)
#define S3_BACKOFF_FIRST_MS	250
#define S3_BACKOFF_MAX_MS	8000
#define S3_LIST_PAGE		1000

static pthread_once_t	s3_curl_once = PTHREAD_ONCE_INIT;
static CURLcode		s3_curl_init_rv;

static void
s3_curl_init(void)
{
	s3_curl_init_rv = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Remove both keys from text that came from the service (defence: S3
 * echoes the access key in some bodies; we keep only Code and Message). */
static void
s3_scrub(const struct s3_client *c, char *s)
{
	const char	*secrets[2] = { c->conf.secret_key, c->conf.access_key };
	char		*p;
	size_t		 i, n;

	for (i = 0; i < 2; i++) {
		if ((n = strlen(secrets[i])) == 0)
			continue;
		while ((p = strstr(s, secrets[i])) != NULL) {
			memset(p, '*', n < 3 ? n : 3);
			memmove(p + (n < 3 ? n : 3), p + n, strlen(p + n) + 1);
		}
	}
}

void
s3_fail(struct s3_client *c, const struct s3_request *r, int err,
    const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(c->error, sizeof(c->error), "%s s3://%s%s%.600s%s: ",
	    r->method, r->bucket, r->key != NULL ? "/" : "",
	    r->key != NULL ? r->key : "", r->what);
	if (n < 0 || (size_t)n >= sizeof(c->error))
		n = (int)strlen(c->error);
	va_start(ap, fmt);
	vsnprintf(c->error + n, sizeof(c->error) - (size_t)n, fmt, ap);
	va_end(ap);
	s3_scrub(c, c->error);
	errno = err;
}

int
s3_nomem(struct s3_client *c, const struct s3_request *r)
{
	c->tries = c->status = 0;
	s3_fail(c, r, ENOMEM, "%s", strerror(ENOMEM));
	return -1;
}

static size_t
s3_read_cb(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct s3_request	*r = arg;
	size_t			 n = size * nmemb;

	if (n > r->bodylen - r->sent)
		n = r->bodylen - r->sent;
	memcpy(dst, r->body + r->sent, n);
	r->sent += n;
	return n;
}

/* curl rewinds the body when it must send it again on a new connection. */
static int
s3_seek_cb(void *arg, curl_off_t off, int origin)
{
	struct s3_request *r = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->bodylen)
		return CURL_SEEKFUNC_FAIL;
	r->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t
s3_write_cb(char *src, size_t size, size_t nmemb, void *arg)
{
	struct s3_request	*r = arg;
	size_t			 n = size * nmemb;

	if (r->out != NULL && r->status >= 200 && r->status < 300) {
		if (n > r->outlen - r->got) {
			r->overflow = 1;
			return 0;	/* more than asked for: stop */
		}
		memcpy(r->out + r->got, src, n);
		r->got += n;
		return n;
	}
	if (r->reply.len + n > S3_REPLY_MAX ||
	    s3_buf_add(&r->reply, src, n) == -1) {
		r->overflow = 1;
		return 0;
	}
	return n;
}

/* Keep the headers we read; a new status line (after a 100 Continue)
 * starts over. */
static size_t
s3_header_cb(char *line, size_t size, size_t nitems, void *arg)
{
	struct s3_request	*r = arg;
	size_t			 n = size * nitems, vlen;
	const char		*v;
	char			 value[S3_ETAG_MAX + 64];
	int			 status;

	if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', n);

		r->status = 0;
		r->reason[0] = r->etag[0] = '\0';
		r->have_length = r->have_total = 0;
		if (sp != NULL && sscanf(sp, " %3d", &status) == 1) {
			r->status = status;
			v = sp + 4;
			vlen = n - (size_t)(v - line);
			if (vlen > 0 && *v == ' ') {
				v++;
				vlen--;
			}
			while (vlen > 0 && (v[vlen - 1] == '\r' ||
			    v[vlen - 1] == '\n'))
				vlen--;
			snprintf(r->reason, sizeof(r->reason), "%.*s",
			    (int)vlen, v);
		}
		return n;
	}
	if ((v = memchr(line, ':', n)) == NULL)
		return n;
	v++;
	vlen = n - (size_t)(v - line);
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	    v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= sizeof(value))
		return n;
	memcpy(value, v, vlen);
	value[vlen] = '\0';
	if (strncasecmp(line, "etag:", 5) == 0) {
		/* Too long an ETag is no ETag: the request fails. */
		if (vlen < sizeof(r->etag))
			memcpy(r->etag, value, vlen + 1);
	} else if (strncasecmp(line, "content-length:", 15) == 0) {
		r->have_length = sscanf(value, "%" SCNu64, &r->length) == 1;
	} else if (strncasecmp(line, "content-range:", 14) == 0) {
		const char *slash = strrchr(value, '/');

		r->have_total = slash != NULL &&
		    sscanf(slash + 1, "%" SCNu64, &r->total) == 1;
	}
	return n;
}

static int
s3_progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	const struct s3_request *r = arg;

	return r->c->cancel != NULL && atomic_load(r->c->cancel) != 0;
}

static int
s3_cancelled(const struct s3_client *c)
{
	return c->cancel != NULL && atomic_load(c->cancel) != 0;
}

/* The request's URL: path style ENDPOINT/BUCKET/KEY or virtual-host
 * style SCHEME://BUCKET.HOST/KEY, the key encoded, then ?QUERY. */
static int
s3_url(const struct s3_client *c, const struct s3_request *r,
    struct s3_buf *url)
{
	int rv;

	if (c->conf.path_style)
		rv = s3_buf_printf(url, "%s://%s/%s", c->scheme, c->host,
		    r->bucket);
	else
		rv = s3_buf_printf(url, "%s://%s.%s", c->scheme, r->bucket,
		    c->host);
	if (rv == 0 && (r->key != NULL || !c->conf.path_style))
		rv = s3_buf_add(url, "/", 1);
	if (rv == 0 && r->key != NULL)
		rv = s3_buf_add_encoded(url, r->key, 1);
	if (rv == 0 && r->query != NULL)
		rv = s3_buf_printf(url, "?%s", r->query);
	return rv;
}

/* Set the handle up for one try of r. */
static int
s3_setup(struct s3_client *c, struct s3_request *r, const char *url,
    struct curl_slist **headers)
{
	CURL		*h = c->curl;
	struct curl_slist *l = NULL, *n;
	char		 ct[96];
	long		 timeout = c->conf.timeout;
	int		 ok = 1;

	curl_easy_reset(h);
	/* Signed, with the body's hash left out (curl 7.88 would
	 * otherwise sign an empty body's hash and S3 refuses the PUT). */
	n = curl_slist_append(l, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	ok = ok && n != NULL && (l = n) != NULL;
	/* No "Expect:" header to drop curl's 100-continue: curl 7.88 would
	 * sign it empty and not send it (403 SignatureDoesNotMatch). */
	if (ok && r->range != NULL)
		ok = (n = curl_slist_append(l, r->range)) != NULL && (l = n);
	if (ok && r->content_type != NULL) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", r->content_type);
		ok = (n = curl_slist_append(l, ct)) != NULL && (l = n);
	}
	*headers = l;
	if (!ok)
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(h, CURLOPT_USERNAME, c->conf.access_key);
	curl_easy_setopt(h, CURLOPT_PASSWORD, c->conf.secret_key);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, timeout);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, s3_progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "PUT") == 0) {
		/* The size is given: curl sends Content-Length, never
		 * chunked (which S3 answers with 411). */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)r->bodylen);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, s3_seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->bodylen);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
		    r->body != NULL ? r->body : "");
	} else if (strcmp(r->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	return 0;
}

/* Sleep ms milliseconds in slices, returning early once cancelled. */
static void
s3_backoff(const struct s3_client *c, int ms)
{
	struct timespec	ts;

	while (ms > 0 && !s3_cancelled(c)) {
		int slice = ms < 50 ? ms : 50;

		ts.tv_sec = 0;
		ts.tv_nsec = (long)slice * 1000000L;
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/*
 * Turn one try's outcome into 0 or -1 with errno and the message; *retry
 * says whether another try may help.
 */
static int
s3_outcome(struct s3_client *c, struct s3_request *r, CURLcode cc,
    int *retry)
{
	long	 oserr = 0;
	int	 err;

	*retry = 0;
	c->status = r->status;
	if (cc == CURLE_ABORTED_BY_CALLBACK || (cc != CURLE_OK &&
	    s3_cancelled(c))) {
		s3_fail(c, r, ECANCELED, "cancelled");
		return -1;
	}
	if (cc == CURLE_WRITE_ERROR && r->overflow && r->out != NULL &&
	    r->status >= 200 && r->status < 300) {
		/* More bytes than the range asked for: see s3_get_range. */
		cc = CURLE_OK;
	}
	if (cc != CURLE_OK) {
		curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
			*retry = 1;
			err = oserr != 0 ? (int)oserr : ECONNREFUSED;
			s3_fail(c, r, err, "connect to %s: %s", c->host,
			    strerror(err));
			return -1;
		case CURLE_COULDNT_RESOLVE_HOST:
			*retry = 1;
			s3_fail(c, r, EHOSTUNREACH, "cannot resolve %s",
			    c->host);
			return -1;
		case CURLE_OPERATION_TIMEDOUT:
			*retry = 1;
			s3_fail(c, r, ETIMEDOUT, "no progress for %d s (%s)",
			    c->conf.timeout, c->host);
			return -1;
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
			/* The connection broke: the service may be back. */
			*retry = 1;
			err = oserr != 0 ? (int)oserr : cc == CURLE_PARTIAL_FILE ?
			    EBADMSG : ECONNRESET;
			s3_fail(c, r, err, "%s: %s", c->host,
			    curl_easy_strerror(cc));
			return -1;
		case CURLE_WRITE_ERROR:
			if (r->overflow) {
				s3_fail(c, r, EBADMSG, "HTTP %d: a reply larger "
				    "than %u bytes", r->status, S3_REPLY_MAX);
				return -1;
			}
			/* FALLTHROUGH */
		default:
			s3_fail(c, r, EIO, "%s", curl_easy_strerror(cc));
			return -1;
		}
	}
	if (r->status >= 200 && r->status < 300)
		return 0;
	if (r->status >= 500 || r->status == 429)
		*retry = 1;
	switch (r->status) {
	case 401:
	case 403:
		err = EACCES;
		break;
	case 404:
		err = ENOENT;
		break;
	case 416:
		err = EBADMSG;
		break;
	default:
		err = EIO;
		break;
	}
	{
		struct s3_xml	x;
		char		xerr[128];

		memset(&x, 0, sizeof(x));
		if (r->reply.len > 0 && s3_xml_parse(&x, r->reply.data,
		    r->reply.len, xerr, sizeof(xerr)) == 0 && x.code[0] != '\0') {
			s3_fail(c, r, err, "HTTP %d %s%s%.200s", r->status,
			    x.code, x.message[0] != '\0' ? ": " : "", x.message);
		} else if (r->status == 404 && r->key == NULL) {
			/* HEAD has no body; a bucket's 404 has one cause. */
			s3_fail(c, r, err, "HTTP 404 NoSuchBucket");
		} else {
			s3_fail(c, r, err, "HTTP %d %s", r->status, r->reason);
		}
	}
	return -1;
}

int
s3_perform(struct s3_client *c, struct s3_request *r)
{
	struct s3_buf	 url = { 0 };
	int		 rv = -1, retry, delay = S3_BACKOFF_FIRST_MS;

	r->c = c;
	c->tries = 0;
	c->status = 0;
	c->error[0] = '\0';
	if (r->query == NULL)
		r->query = r->qbuf.data;
	if (r->qbuf.failed || s3_url(c, r, &url) == -1) {
		s3_buf_free(&r->qbuf);
		s3_buf_free(&url);
		return s3_nomem(c, r);
	}
	for (;;) {
		struct curl_slist	*headers = NULL;
		CURLcode		 cc;

		if (s3_cancelled(c)) {
			s3_fail(c, r, ECANCELED, "cancelled");
			rv = -1;
			break;
		}
		c->tries++;
		r->sent = r->got = 0;
		r->overflow = 0;
		r->status = 0;
		r->reason[0] = r->etag[0] = '\0';
		r->have_length = r->have_total = 0;
		r->reply.len = 0;
		if (s3_setup(c, r, url.data, &headers) == -1) {
			curl_slist_free_all(headers);
			s3_fail(c, r, ENOMEM, "%s", strerror(ENOMEM));
			rv = -1;
			break;
		}
		cc = curl_easy_perform(c->curl);
		curl_slist_free_all(headers);
		rv = s3_outcome(c, r, cc, &retry);
		if (rv == 0 || !retry || c->tries > c->conf.retries)
			break;
		s3_backoff(c, delay);
		delay = delay * 2 > S3_BACKOFF_MAX_MS ? S3_BACKOFF_MAX_MS :
		    delay * 2;
	}
	/* The handle keeps no pointer into r past this call. */
	curl_easy_reset(c->curl);
	s3_buf_free(&url);
	s3_buf_free(&r->qbuf);
	r->query = NULL;
	if (rv == -1) {
		int saved = errno;

		s3_buf_free(&r->reply);
		errno = saved;
	}
	return rv;
}

struct s3_client *
s3_client_new(const struct s3_config *conf, const atomic_int *cancel,
    char *err, size_t errlen)
{
	struct s3_client	*c;

	pthread_once(&s3_curl_once, s3_curl_init);
	if (s3_curl_init_rv != CURLE_OK) {
		ioutil_set_error(err, errlen, "curl_global_init: %s",
		    curl_easy_strerror(s3_curl_init_rv));
		errno = EIO;
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ioutil_set_error(err, errlen, "S3 client: %s", strerror(errno));
		return NULL;
	}
	c->conf = *conf;
	if (c->conf.timeout <= 0)
		c->conf.timeout = S3CONF_DEFAULT_TIMEOUT;
	c->cancel = cancel;
	c->page_size = S3_LIST_PAGE;
	if (s3_endpoint_split(conf->endpoint, c->scheme, sizeof(c->scheme),
	    c->host, sizeof(c->host), err, errlen) == -1)
		goto fail;
	if (conf->region[0] == '\0' || strpbrk(conf->region, ":/ ") != NULL) {
		ioutil_set_error(err, errlen, "S3 region '%s' is not a region",
		    conf->region);
		errno = EINVAL;
		goto fail;
	}
	if (conf->access_key[0] == '\0' || conf->secret_key[0] == '\0') {
		ioutil_set_error(err, errlen, "S3 client for %s: no %s",
		    conf->endpoint, conf->access_key[0] == '\0' ? "access_key" :
		    "secret_key");
		errno = EINVAL;
		goto fail;
	}
	snprintf(c->sigv4, sizeof(c->sigv4), "aws:amz:%s:s3", conf->region);
	if ((c->curl = curl_easy_init()) == NULL) {
		ioutil_set_error(err, errlen, "S3 client: curl_easy_init "
		    "failed");
		errno = ENOMEM;
		goto fail;
	}
	return c;
fail:
	explicit_bzero(&c->conf, sizeof(c->conf));
	free(c);
	return NULL;
}

void
s3_client_free(struct s3_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	explicit_bzero(&c->conf, sizeof(c->conf));
	free(c);
}

const char *
s3_error(const struct s3_client *c)
{
	return c->error;
}

int
s3_client_status(const struct s3_client *c)
{
	return c->status;
}

int
s3_client_tries(const struct s3_client *c)
{
	return c->tries;
}

void
s3_client_set_page_size(struct s3_client *c, int n)
{
	c->page_size = n < 1 ? 1 : n > S3_LIST_PAGE ? S3_LIST_PAGE : n;
}

int
s3_head_bucket(struct s3_client *c, const char *bucket)
{
	struct s3_request r = { .method = "HEAD", .bucket = bucket, .what = "" };

	return s3_perform(c, &r);
}

int
s3_head_object(struct s3_client *c, const char *bucket, const char *key,
    uint64_t *size, char *etag, size_t etaglen)
{
	struct s3_request r = { .method = "HEAD", .bucket = bucket, .key = key,
	    .what = "" };
	size_t n;

	if (s3_perform(c, &r) == -1)
		return -1;
	if (!r.have_length) {
		s3_fail(c, &r, EBADMSG, "HTTP %d without a Content-Length",
		    r.status);
		return -1;
	}
	*size = r.length;
	if (etag != NULL && etaglen > 0) {
		const char *e = r.etag;

		n = strlen(e);
		if (n >= 2 && e[0] == '"' && e[n - 1] == '"') {
			e++;
			n -= 2;
		}
		snprintf(etag, etaglen, "%.*s", (int)n, e);
	}
	return 0;
}

int
s3_get_range(struct s3_client *c, const char *bucket, const char *key,
    uint64_t off, void *buf, size_t len)
{
	char			range[96], what[80];
	struct s3_request	r = { .method = "GET", .bucket = bucket,
	    .key = key, .range = range, .what = what, .out = buf,
	    .outlen = len };

	snprintf(what, sizeof(what), " bytes %" PRIu64 "-%" PRIu64, off,
	    off + len - (len > 0));
	if (len == 0) {
		c->tries = c->status = 0;
		c->error[0] = '\0';
		return 0;
	}
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64,
	    off, off + len - 1);
	if (s3_perform(c, &r) == -1) {
		if (errno == EBADMSG && r.status == 416)
			s3_fail(c, &r, EBADMSG, "the object ends before "
			    "byte %" PRIu64 " (HTTP 416)", off);
		return -1;
	}
	s3_buf_free(&r.reply);
	/* 206: the range; 200: the whole object from byte 0 (a service
	 * that ignores ranges), of which we kept the first len bytes. */
	if (r.status == 200 && off != 0) {
		s3_fail(c, &r, EBADMSG, "HTTP 200: the range was ignored");
		return -1;
	}
	if (r.got < len) {
		if (r.have_total)
			s3_fail(c, &r, EBADMSG, "the object ends at %" PRIu64,
			    r.total);
		else
			s3_fail(c, &r, EBADMSG, "%zu bytes of %zu", r.got, len);
		return -1;
	}
	return 0;
}

int
s3_put_object(struct s3_client *c, const char *bucket, const char *key,
    const void *buf, size_t len)
{
	struct s3_request r = { .method = "PUT", .bucket = bucket, .key = key,
	    .what = "", .body = buf, .bodylen = len };
	int rv = s3_perform(c, &r);

	s3_buf_free(&r.reply);
	return rv;
}

int
s3_delete_object(struct s3_client *c, const char *bucket, const char *key)
{
	struct s3_request r = { .method = "DELETE", .bucket = bucket,
	    .key = key, .what = "" };
	int rv = s3_perform(c, &r);

	s3_buf_free(&r.reply);
	return rv;
}

int
s3_reply_parse(struct s3_client *c, struct s3_request *r, struct s3_xml *x,
    const char *root)
{
	char	xerr[256];
	int	rv = 0;

	if (s3_xml_parse(x, r->reply.data != NULL ? r->reply.data : "",
	    r->reply.len, xerr, sizeof(xerr)) == -1) {
		if (x->fn_rv != 0)
			rv = x->fn_rv;
		else {
			s3_fail(c, r, EBADMSG, "HTTP %d: %s", r->status, xerr);
			rv = -1;
		}
	} else if (strcmp(x->root, "Error") == 0) {
		/* A 200 whose body is an error (S3 may send it after the
		 * status line of a long CompleteMultipartUpload). */
		s3_fail(c, r, x->code[0] != '\0' && strstr(x->code,
		    "Denied") != NULL ? EACCES : EIO, "HTTP %d %s%s%.200s",
		    r->status, x->code, x->message[0] != '\0' ? ": " : "",
		    x->message);
		rv = -1;
	} else if (strcmp(x->root, root) != 0) {
		s3_fail(c, r, EBADMSG, "HTTP %d: <%s>, not <%s>", r->status,
		    x->root[0] != '\0' ? x->root : "nothing", root);
		rv = -1;
	}
	s3_buf_free(&r->reply);
	return rv;
}

void
s3_query_add(struct s3_buf *q, const char *name, const char *value)
{
	if (q->len > 0)
		s3_buf_add(q, "&", 1);
	s3_buf_printf(q, "%s=", name);
	s3_buf_add_encoded(q, value, 0);
}

int
s3_list_pages(struct s3_client *c, const char *bucket, const char *prefix,
    s3_object_fn *object_fn, s3_upload_fn *upload_fn, void *arg)
{
	int		 uploads = upload_fn != NULL;
	const char	*root = uploads ? "ListMultipartUploadsResult" :
			    "ListBucketResult";
	char		 what[S3_KEY_MAX + 24], page[16];
	struct s3_xml	*x;
	int		 rv;

	if (prefix == NULL)
		prefix = "";
	snprintf(what, sizeof(what), " list%s '%s'", uploads ? " uploads" : "",
	    prefix);
	snprintf(page, sizeof(page), "%d", c->page_size);
	/* calloc: no markers before the first page. */
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		struct s3_request r = { .method = "GET", .bucket = bucket,
		    .what = what };

		return s3_nomem(c, &r);
	}
	x->object_fn = object_fn;
	x->upload_fn = upload_fn;
	x->fn_arg = arg;
	do {
		struct s3_request	r = { .method = "GET",
		    .bucket = bucket, .what = what };

		/* The previous page's markers, the parameters in sorted
		 * order. */
		if (uploads) {
			if (x->next_key[0] != '\0')
				s3_query_add(&r.qbuf, "key-marker", x->next_key);
			s3_query_add(&r.qbuf, "max-uploads", page);
			if (prefix[0] != '\0')
				s3_query_add(&r.qbuf, "prefix", prefix);
			if (x->next_upload_id[0] != '\0')
				s3_query_add(&r.qbuf, "upload-id-marker",
				    x->next_upload_id);
			s3_query_add(&r.qbuf, "uploads", "");
		} else {
			if (x->next_token[0] != '\0')
				s3_query_add(&r.qbuf, "continuation-token",
				    x->next_token);
			s3_query_add(&r.qbuf, "list-type", "2");
			s3_query_add(&r.qbuf, "max-keys", page);
			if (prefix[0] != '\0')
				s3_query_add(&r.qbuf, "prefix", prefix);
		}
		if ((rv = s3_perform(c, &r)) == -1)
			break;
		if ((rv = s3_reply_parse(c, &r, x, root)) != 0)
			break;
		if (x->truncated && (uploads ? x->next_key : x->next_token)[0] ==
		    '\0') {
			s3_fail(c, &r, EBADMSG, "a truncated page without %s",
			    uploads ? "NextKeyMarker" : "NextContinuationToken");
			rv = -1;
			break;
		}
	} while (x->truncated);
	free(x);
	return rv;
}

int
s3_list_objects(struct s3_client *c, const char *bucket, const char *prefix,
    s3_object_fn *fn, void *arg)
{
	return s3_list_pages(c, bucket, prefix, fn, NULL, arg);
}
