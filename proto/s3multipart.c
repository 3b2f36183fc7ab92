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
		return -1;
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
	struct s3_buf		q = { 0 };
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
	if (s3_query_add(&q, "partNumber", num) == -1 ||
	    s3_query_add(&q, "uploadId", upload_id) == -1) {
		s3_buf_free(&q);
		return -1;
	}
	r.query = q.data;
	rv = s3_perform(c, &r);
	s3_buf_free(&q);
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

/* Append s with XML's five special characters escaped. */
static int
s3_xml_escape(struct s3_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" :
		    *s == '>' ? "&gt;" : *s == '"' ? "&quot;" :
		    *s == '\'' ? "&apos;" : NULL;

		if ((e != NULL ? s3_buf_printf(b, "%s", e) :
		    s3_buf_add(b, s, 1)) == -1)
			return -1;
	}
	return 0;
}

int
s3_multipart_complete(struct s3_client *c, const char *bucket,
    const char *key, const char *upload_id, const struct s3_part *parts,
    size_t nparts)
{
	struct s3_buf		q = { 0 }, body = { 0 };
	char			what[48];
	struct s3_request	r = { .method = "POST", .bucket = bucket,
	    .key = key, .what = what, .content_type = "application/xml" };
	struct s3_xml		*x = NULL;
	size_t			i;
	int			rv = -1;

	snprintf(what, sizeof(what), " complete upload (%zu parts)", nparts);
	if (s3_query_add(&q, "uploadId", upload_id) == -1 ||
	    s3_buf_printf(&body, "<CompleteMultipartUpload>") == -1)
		goto out;
	for (i = 0; i < nparts; i++) {
		if (s3_buf_printf(&body, "<Part><PartNumber>%d</PartNumber>"
		    "<ETag>", parts[i].number) == -1 ||
		    s3_xml_escape(&body, parts[i].etag) == -1 ||
		    s3_buf_printf(&body, "</ETag></Part>") == -1)
			goto out;
	}
	if (s3_buf_printf(&body, "</CompleteMultipartUpload>") == -1 ||
	    (x = calloc(1, sizeof(*x))) == NULL)
		goto out;
	r.query = q.data;
	r.body = body.data;
	r.bodylen = body.len;
	if ((rv = s3_perform(c, &r)) == 0)
		rv = s3_reply_parse(c, &r, x, "CompleteMultipartUploadResult");
out:
	if (rv == -1 && c->error[0] == '\0')
		s3_fail(c, &r, errno, "%s", strerror(errno));
	free(x);
	s3_buf_free(&q);
	s3_buf_free(&body);
	return rv;
}

int
s3_multipart_abort(struct s3_client *c, const char *bucket, const char *key,
    const char *upload_id)
{
	struct s3_buf		q = { 0 };
	struct s3_request	r = { .method = "DELETE", .bucket = bucket,
	    .key = key, .what = " abort upload" };
	int			rv;

	if (s3_query_add(&q, "uploadId", upload_id) == -1) {
		s3_buf_free(&q);
		return -1;
	}
	r.query = q.data;
	rv = s3_perform(c, &r);
	s3_buf_free(&q);
	s3_buf_free(&r.reply);
	return rv;
}

int
s3_multipart_list(struct s3_client *c, const char *bucket, const char *prefix,
    s3_upload_fn *fn, void *arg)
{
	struct s3_xml	*x;
	char		 what[S3_KEY_MAX + 24], page[16];
	char		 key_marker[sizeof(x->next_key)] = "";
	char		 id_marker[sizeof(x->next_upload_id)] = "";
	int		 rv;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return -1;
	snprintf(what, sizeof(what), " list uploads '%s'",
	    prefix != NULL ? prefix : "");
	snprintf(page, sizeof(page), "%d", c->page_size);
	do {
		struct s3_buf		q = { 0 };
		struct s3_request	r = { .method = "GET",
		    .bucket = bucket, .what = what };

		/* In sorted order: key-marker, max-uploads, prefix,
		 * upload-id-marker, uploads. */
		if ((key_marker[0] != '\0' &&
		    s3_query_add(&q, "key-marker", key_marker) == -1) ||
		    s3_query_add(&q, "max-uploads", page) == -1 ||
		    (prefix != NULL && prefix[0] != '\0' &&
		    s3_query_add(&q, "prefix", prefix) == -1) ||
		    (id_marker[0] != '\0' &&
		    s3_query_add(&q, "upload-id-marker", id_marker) == -1) ||
		    s3_query_add(&q, "uploads", "") == -1) {
			s3_buf_free(&q);
			rv = -1;
			break;
		}
		r.query = q.data;
		rv = s3_perform(c, &r);
		s3_buf_free(&q);
		if (rv == -1)
			break;
		x->upload_fn = fn;
		x->fn_arg = arg;
		rv = s3_reply_parse(c, &r, x, "ListMultipartUploadsResult");
		if (rv != 0)
			break;
		if (x->truncated && x->next_key[0] == '\0') {
			s3_fail(c, &r, EBADMSG, "a truncated page without "
			    "NextKeyMarker");
			rv = -1;
			break;
		}
		memcpy(key_marker, x->next_key, sizeof(key_marker));
		memcpy(id_marker, x->next_upload_id, sizeof(id_marker));
	} while (x->truncated);
	free(x);
	return rv;
}
