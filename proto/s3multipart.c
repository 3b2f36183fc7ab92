/*
 * S3 multipart uploads (see s3.h): create, one part, complete, abort, and
 * the listing of uploads left open.  The parts' ETags come from
 * UploadPart's ETag header and go back, quotes kept and XML-escaped, in
 * CompleteMultipartUpload's body; its 200 reply may still be an <Error>.
 *
 * Same threading as s3.c: a client is one thread's at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-internal.h"

int
s3_multipart_create(struct s3_client *c, const char *bucket, const char *key,
    char *upload_id, size_t idlen)
{
	struct s3_request r = { .method = "POST", .bucket = bucket, .key = key,
	    .query = "uploads=", .what = " create upload",
	    .content_type = "application/octet-stream" };
	struct s3_xml	*x;
	int		 rv;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return s3_nomem(c, &r);
	rv = s3_perform(c, &r);
	if (rv == 0)
		rv = s3_reply_parse(c, &r, x, "InitiateMultipartUploadResult");
	if (rv == 0 && (x->upload_id[0] == '\0' ||
	    strlen(x->upload_id) >= idlen)) {
		s3_fail(c, &r, EBADMSG, "HTTP %d: %s UploadId", r.status,
		    x->upload_id[0] == '\0' ? "no" : "too long an");
		rv = -1;
	}
	if (rv == 0)
		memcpy(upload_id, x->upload_id, strlen(x->upload_id) + 1);
	free(x);
	return rv;
}

int
s3_multipart_part(struct s3_client *c, const char *bucket, const char *key,
    const char *upload_id, int number, const void *buf, size_t len,
    struct s3_part *part)
{
	char			what[32], num[16];
	struct s3_request	r = { .method = "PUT", .bucket = bucket,
	    .key = key, .what = what, .body = buf, .bodylen = len };
	int			rv;

	snprintf(what, sizeof(what), " part %d", number);
	if (number < 1 || number > S3_PARTS_MAX) {
		s3_fail(c, &r, EINVAL, "part numbers are 1 to %d",
		    S3_PARTS_MAX);
		return -1;
	}
	snprintf(num, sizeof(num), "%d", number);
	s3_query_add(&r.qbuf, "partNumber", num);
	s3_query_add(&r.qbuf, "uploadId", upload_id);
	rv = s3_perform(c, &r);
	s3_buf_free(&r.reply);
	if (rv == -1)
		return -1;
	if (r.etag[0] == '\0') {
		s3_fail(c, &r, EBADMSG, "HTTP %d without an ETag", r.status);
		return -1;
	}
	part->number = number;
	snprintf(part->etag, sizeof(part->etag), "%s", r.etag);
	return 0;
}

static int
s3_upload_ignore(void *arg, const char *key, const char *upload_id)
{
	return 0;
}

/* Append s with XML's five special characters escaped (a failure shows
 * in b->failed). */
static void
s3_xml_escape(struct s3_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" :
		    *s == '>' ? "&gt;" : *s == '"' ? "&quot;" :
		    *s == '\'' ? "&apos;" : NULL;

		if (e != NULL)
			s3_buf_add(b, e, strlen(e));
		else
			s3_buf_add(b, s, 1);
	}
}

int
s3_multipart_complete(struct s3_client *c, const char *bucket,
    const char *key, const char *upload_id, const struct s3_part *parts,
    size_t nparts)
{
	struct s3_buf		body = { 0 };
	char			what[48];
	struct s3_request	r = { .method = "POST", .bucket = bucket,
	    .key = key, .what = what, .content_type = "application/xml" };
	struct s3_xml		*x;
	size_t			i;
	int			rv;

	snprintf(what, sizeof(what), " complete upload (%zu parts)", nparts);
	s3_query_add(&r.qbuf, "uploadId", upload_id);
	s3_buf_printf(&body, "<CompleteMultipartUpload>");
	for (i = 0; i < nparts; i++) {
		s3_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>",
		    parts[i].number);
		s3_xml_escape(&body, parts[i].etag);
		s3_buf_printf(&body, "</ETag></Part>");
	}
	s3_buf_printf(&body, "</CompleteMultipartUpload>");
	if (body.failed || (x = calloc(1, sizeof(*x))) == NULL) {
		s3_buf_free(&r.qbuf);
		s3_buf_free(&body);
		return s3_nomem(c, &r);
	}
	r.body = body.data;
	r.bodylen = body.len;
	if ((rv = s3_perform(c, &r)) == 0)
		rv = s3_reply_parse(c, &r, x, "CompleteMultipartUploadResult");
	free(x);
	s3_buf_free(&body);
	return rv;
}

int
s3_multipart_abort(struct s3_client *c, const char *bucket, const char *key,
    const char *upload_id)
{
	struct s3_request	r = { .method = "DELETE", .bucket = bucket,
	    .key = key, .what = " abort upload" };
	int			rv;

	s3_query_add(&r.qbuf, "uploadId", upload_id);
	rv = s3_perform(c, &r);
	s3_buf_free(&r.reply);
	return rv;
}

int
s3_multipart_list(struct s3_client *c, const char *bucket, const char *prefix,
    s3_upload_fn *fn, void *arg)
{
	/* A listing of uploads even without a callback: the pages are
	 * still read (and their errors reported). */
	return s3_list_pages(c, bucket, prefix, NULL, fn != NULL ? fn :
	    s3_upload_ignore, arg);
}
