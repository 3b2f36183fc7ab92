/*
 * S3's XML replies, parsed with expat: <Error> bodies, the upload id of
 * InitiateMultipartUploadResult, the pages of ListBucketResult
 * (ListObjectsV2) and ListMultipartUploadsResult, and the root of
 * CompleteMultipartUploadResult.  Only the fields s3.c uses are kept; an
 * element is known by its name and its parent's, so the replies' default
 * namespace and any element we do not know are ignored.
 *
 * Thread-safe: the state is the caller's struct s3_xml and one parser per
 * call (expat's own limits guard against entity expansion).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "ioutil.h"
#include "s3-internal.h"

#define S3_XML_DEPTH	8
#define S3_XML_TEXT	(S3_KEY_MAX + 1)

struct s3_xml_state {
	XML_Parser	 parser;
	struct s3_xml	*x;
	int		 depth;
	char		 names[S3_XML_DEPTH][64];
	char		 text[S3_XML_TEXT];
	size_t		 textlen;
	int		 overflow;

	/* The entry being read (<Contents> or <Upload>). */
	char		 key[S3_KEY_MAX + 1];
	char		 upload_id[S3_UPLOAD_ID_MAX];
	char		 size[32];
	char		 mtime[64];
	char		 bad[128];	/* why the body was refused */
};

/* Is the element ending now NAME under PARENT (NULL: the root)? */
static int
s3_xml_at(const struct s3_xml_state *s, const char *parent, const char *name)
{
	if (s->depth < 1 || s->depth > S3_XML_DEPTH ||
	    strcmp(s->names[s->depth - 1], name) != 0)
		return 0;
	if (parent == NULL)
		return s->depth == 1;
	return s->depth >= 2 && strcmp(s->names[s->depth - 2], parent) == 0;
}

static void
s3_xml_refuse(struct s3_xml_state *s, const char *fmt, const char *what)
{
	if (s->bad[0] == '\0')
		snprintf(s->bad, sizeof(s->bad), fmt, what);
	XML_StopParser(s->parser, XML_FALSE);
}

/* Copy the element's text into dst, refusing the body if it is too long. */
static void
s3_xml_take(struct s3_xml_state *s, char *dst, size_t dstlen, const char *name)
{
	if (s->overflow || s->textlen >= dstlen) {
		s3_xml_refuse(s, "<%s> is too long", name);
		return;
	}
	memcpy(dst, s->text, s->textlen + 1);
}

static void XMLCALL
s3_xml_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct s3_xml_state *s = arg;

	if (s->depth == 0)
		snprintf(s->x->root, sizeof(s->x->root), "%s", name);
	if (s->depth < S3_XML_DEPTH)
		snprintf(s->names[s->depth], sizeof(s->names[0]), "%s", name);
	s->depth++;
	s->textlen = 0;
	s->text[0] = '\0';
	s->overflow = 0;
	if (s->depth == 2 && (strcmp(name, "Contents") == 0 ||
	    strcmp(name, "Upload") == 0)) {
		s->key[0] = s->upload_id[0] = s->size[0] = s->mtime[0] = '\0';
	}
}

static void XMLCALL
s3_xml_chars(void *arg, const XML_Char *text, int len)
{
	struct s3_xml_state *s = arg;

	if (len < 0 || s->textlen + (size_t)len >= sizeof(s->text)) {
		s->overflow = 1;
		return;
	}
	memcpy(s->text + s->textlen, text, (size_t)len);
	s->textlen += (size_t)len;
	s->text[s->textlen] = '\0';
}

/* "2026-12-03T05:54:14.695Z" into seconds since the epoch. */
static int
s3_xml_time(const char *s, int64_t *out)
{
	struct tm	 tm;
	const char	*end;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*end == '.')
		end += strspn(end + 1, "0123456789") + 1;
	if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0 &&
	    *end != '\0')
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static void
s3_xml_entry_end(struct s3_xml_state *s, int upload)
{
	struct s3_xml	*x = s->x;
	uint64_t	 size = 0;
	int64_t		 mtime = 0;
	char		*end;

	x->entries++;
	if (s->key[0] == '\0') {
		s3_xml_refuse(s, "<%s> without a <Key>", upload ? "Upload" :
		    "Contents");
		return;
	}
	if (upload) {
		if (s->upload_id[0] == '\0') {
			s3_xml_refuse(s, "<%s> without an <UploadId>", "Upload");
			return;
		}
		if (x->upload_fn != NULL)
			x->fn_rv = x->upload_fn(x->fn_arg, s->key, s->upload_id);
	} else {
		errno = 0;
		size = strtoull(s->size, &end, 10);
		if (s->size[0] == '\0' || *end != '\0' || errno != 0 ||
		    s->size[0] == '-') {
			s3_xml_refuse(s, "<Size> '%s' is not a size", s->size);
			return;
		}
		if (s->mtime[0] != '\0' && s3_xml_time(s->mtime, &mtime) == -1) {
			s3_xml_refuse(s, "<LastModified> '%s' is not a time",
			    s->mtime);
			return;
		}
		if (x->object_fn != NULL)
			x->fn_rv = x->object_fn(x->fn_arg, s->key, size, mtime);
	}
	if (x->fn_rv != 0)
		XML_StopParser(s->parser, XML_FALSE);
}

static void XMLCALL
s3_xml_end(void *arg, const XML_Char *name)
{
	struct s3_xml_state	*s = arg;
	struct s3_xml		*x = s->x;
	const char		*root = x->root;

	if (s3_xml_at(s, "Error", "Code"))
		s3_xml_take(s, x->code, sizeof(x->code), name);
	else if (s3_xml_at(s, "Error", "Message"))
		snprintf(x->message, sizeof(x->message), "%.*s",
		    (int)sizeof(x->message) - 1, s->text);	/* cut */
	else if (s3_xml_at(s, "InitiateMultipartUploadResult", "UploadId"))
		s3_xml_take(s, x->upload_id, sizeof(x->upload_id), name);
	else if (s->depth == 2 && strcmp(name, "IsTruncated") == 0)
		x->truncated = strcmp(s->text, "true") == 0;
	else if (s3_xml_at(s, "ListBucketResult", "NextContinuationToken"))
		s3_xml_take(s, x->next_token, sizeof(x->next_token), name);
	else if (s3_xml_at(s, "ListMultipartUploadsResult", "NextKeyMarker"))
		s3_xml_take(s, x->next_key, sizeof(x->next_key), name);
	else if (s3_xml_at(s, "ListMultipartUploadsResult",
	    "NextUploadIdMarker"))
		s3_xml_take(s, x->next_upload_id, sizeof(x->next_upload_id),
		    name);
	else if (s->depth == 3 && (strcmp(s->names[1], "Contents") == 0 ||
	    strcmp(s->names[1], "Upload") == 0) && (strcmp(root,
	    "ListBucketResult") == 0 || strcmp(root,
	    "ListMultipartUploadsResult") == 0)) {
		if (strcmp(name, "Key") == 0)
			s3_xml_take(s, s->key, sizeof(s->key), name);
		else if (strcmp(name, "UploadId") == 0)
			s3_xml_take(s, s->upload_id, sizeof(s->upload_id), name);
		else if (strcmp(name, "Size") == 0)
			s3_xml_take(s, s->size, sizeof(s->size), name);
		else if (strcmp(name, "LastModified") == 0)
			s3_xml_take(s, s->mtime, sizeof(s->mtime), name);
	} else if (s3_xml_at(s, "ListBucketResult", "Contents"))
		s3_xml_entry_end(s, 0);
	else if (s3_xml_at(s, "ListMultipartUploadsResult", "Upload"))
		s3_xml_entry_end(s, 1);
	s->depth--;
	s->textlen = 0;
	s->text[0] = '\0';
}

int
s3_xml_parse(struct s3_xml *x, const char *body, size_t len, char *err,
    size_t errlen)
{
	struct s3_xml_state	*s;
	enum XML_Status		 st;
	int			 rv = 0;

	x->root[0] = x->code[0] = x->message[0] = x->upload_id[0] = '\0';
	x->next_token[0] = x->next_key[0] = x->next_upload_id[0] = '\0';
	x->truncated = 0;
	x->entries = 0;
	x->fn_rv = 0;
	if (len > INT32_MAX) {
		ioutil_set_error(err, errlen, "a reply of %zu bytes is too "
		    "large", len);
		errno = EBADMSG;
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ioutil_set_error(err, errlen, "reply: %s", strerror(errno));
		return -1;
	}
	if ((s->parser = XML_ParserCreate("UTF-8")) == NULL) {
		free(s);
		ioutil_set_error(err, errlen, "reply: cannot make an XML "
		    "parser");
		errno = ENOMEM;
		return -1;
	}
	s->x = x;
	XML_SetUserData(s->parser, s);
	XML_SetElementHandler(s->parser, s3_xml_start, s3_xml_end);
	XML_SetCharacterDataHandler(s->parser, s3_xml_chars);
	st = XML_Parse(s->parser, body, (int)len, XML_TRUE);
	if (x->fn_rv != 0) {
		rv = -1;
	} else if (s->bad[0] != '\0') {
		ioutil_set_error(err, errlen, "reply: %s", s->bad);
		errno = EBADMSG;
		rv = -1;
	} else if (st != XML_STATUS_OK) {
		ioutil_set_error(err, errlen, "reply is not XML: line %lu: %s",
		    (unsigned long)XML_GetCurrentLineNumber(s->parser),
		    XML_ErrorString(XML_GetErrorCode(s->parser)));
		errno = EBADMSG;
		rv = -1;
	}
	XML_ParserFree(s->parser);
	free(s);
	return rv;
}
