/*
 * Unit test of S3's XML replies as the client reads them
 * (proto/s3xml.c), on bodies shaped like radosgw's and AWS's, no network.
 * What must hold:
 *
 *   error	<Error><Code> and <Message> are read, the namespace or its
 *		absence makes no difference;
 *   list	every <Contents> reaches the callback once with its key
 *		(entities decoded), size and time; <IsTruncated> and
 *		<NextContinuationToken> are read; a callback's non-zero
 *		return stops the parse and is kept;
 *   uploads	<Upload> entries and the key and upload-id markers;
 *   refuse	a body that is not XML, an entry without a key, a size that
 *		is not a number, a value longer than its field: EBADMSG with
 *		the reason.
 *
 * Exits 0 on pass, 1 on failure.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "s3-internal.h"
#include "unit-check.h"

#define NS	"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

struct seen {
	char		keys[4][64];
	uint64_t	sizes[4];
	int64_t		mtimes[4];
	int		n;
	int		stop_at;	/* return 7 at this entry (0: never) */
};

static int
on_object(void *arg, const char *key, uint64_t size, int64_t mtime)
{
	struct seen *s = arg;

	if (s->n < 4) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
		s->sizes[s->n] = size;
		s->mtimes[s->n] = mtime;
	}
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

static int
on_upload(void *arg, const char *key, const char *upload_id)
{
	struct seen *s = arg;

	if (s->n < 4)
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s %s", key,
		    upload_id);
	s->n++;
	return 0;
}

static int
parse(struct s3_xml *x, const char *body, char *err, size_t errlen)
{
	return s3_xml_parse(x, body, strlen(body), err, errlen);
}

static void
check_error(void)
{
	struct s3_xml	x;
	char		err[256];

	memset(&x, 0, sizeof(x));
	if (parse(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
	    "<Code>NoSuchBucket</Code><Message>The bucket &amp; all"
	    "</Message><BucketName>b</BucketName><RequestId>tx1</RequestId>"
	    "</Error>", err, sizeof(err)) != 0)
		FAIL("error: refused: %s", err);
	if (strcmp(x.root, "Error") != 0 || strcmp(x.code, "NoSuchBucket") != 0 ||
	    strcmp(x.message, "The bucket & all") != 0)
		FAIL("error: root '%s' code '%s' message '%s'", x.root, x.code,
		    x.message);
	if (parse(&x, "<InitiateMultipartUploadResult " NS "><Bucket>b"
	    "</Bucket><Key>k</Key><UploadId>2~abc</UploadId>"
	    "</InitiateMultipartUploadResult>", err, sizeof(err)) != 0 ||
	    strcmp(x.upload_id, "2~abc") != 0 || x.code[0] != '\0')
		FAIL("initiate: upload id '%s' code '%s'", x.upload_id, x.code);
}

static void
check_list(void)
{
	struct s3_xml	x;
	struct seen	s;
	char		err[256];
	const char	*body = "<?xml version=\"1.0\"?><ListBucketResult " NS
	    "><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
	    "<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
	    "<NextContinuationToken>tok+/=</NextContinuationToken>"
	    "<Contents><Key>p/a &lt;b&gt;</Key><LastModified>"
	    "2026-12-03T05:54:14.695Z</LastModified><ETag>&quot;x&quot;"
	    "</ETag><Size>5000</Size><StorageClass>STANDARD</StorageClass>"
	    "<Owner><ID>u</ID></Owner></Contents>"
	    "<Contents><Key>p/b</Key><LastModified>1970-01-01T00:00:10.000Z"
	    "</LastModified><Size>18446744073709551615</Size></Contents>"
	    "</ListBucketResult>";

	memset(&x, 0, sizeof(x));
	memset(&s, 0, sizeof(s));
	x.object_fn = on_object;
	x.fn_arg = &s;
	if (parse(&x, body, err, sizeof(err)) != 0) {
		FAIL("list: refused: %s", err);
		return;
	}
	if (s.n != 2 || strcmp(s.keys[0], "p/a <b>") != 0 ||
	    strcmp(s.keys[1], "p/b") != 0)
		FAIL("list: %d entries, '%s' '%s'", s.n, s.keys[0], s.keys[1]);
	if (s.sizes[0] != 5000 || s.sizes[1] != UINT64_MAX)
		FAIL("list: sizes %ju %ju", (uintmax_t)s.sizes[0],
		    (uintmax_t)s.sizes[1]);
	if (s.mtimes[0] != 1796277254 || s.mtimes[1] != 10)
		FAIL("list: times %jd %jd", (intmax_t)s.mtimes[0],
		    (intmax_t)s.mtimes[1]);
	if (!x.truncated || strcmp(x.next_token, "tok+/=") != 0)
		FAIL("list: truncated %d token '%s'", x.truncated,
		    x.next_token);

	/* A callback's non-zero return stops at that entry. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	if (parse(&x, body, err, sizeof(err)) != -1 || x.fn_rv != 7 ||
	    s.n != 1)
		FAIL("list: a stop from the callback gave fn_rv %d after %d",
		    x.fn_rv, s.n);
}

static void
check_uploads(void)
{
	struct s3_xml	x;
	struct seen	s;
	char		err[256];

	memset(&x, 0, sizeof(x));
	memset(&s, 0, sizeof(s));
	x.upload_fn = on_upload;
	x.fn_arg = &s;
	if (parse(&x, "<ListMultipartUploadsResult " NS "><Bucket>b</Bucket>"
	    "<KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
	    "<NextKeyMarker>mp/k2</NextKeyMarker><NextUploadIdMarker>2~y"
	    "</NextUploadIdMarker><MaxUploads>2</MaxUploads><IsTruncated>"
	    "true</IsTruncated><Upload><Key>mp/k1</Key><UploadId>2~x"
	    "</UploadId><Initiator><ID>u</ID></Initiator></Upload><Upload>"
	    "<Key>mp/k2</Key><UploadId>2~y</UploadId></Upload>"
	    "</ListMultipartUploadsResult>", err, sizeof(err)) != 0) {
		FAIL("uploads: refused: %s", err);
		return;
	}
	if (s.n != 2 || strcmp(s.keys[0], "mp/k1 2~x") != 0 ||
	    strcmp(s.keys[1], "mp/k2 2~y") != 0)
		FAIL("uploads: %d, '%s' '%s'", s.n, s.keys[0], s.keys[1]);
	if (!x.truncated || strcmp(x.next_key, "mp/k2") != 0 ||
	    strcmp(x.next_upload_id, "2~y") != 0)
		FAIL("uploads: truncated %d markers '%s' '%s'", x.truncated,
		    x.next_key, x.next_upload_id);
}

static void
check_refused_one(const char *body, const char *why)
{
	struct s3_xml	x;
	struct seen	s;
	char		err[256] = "";

	memset(&x, 0, sizeof(x));
	memset(&s, 0, sizeof(s));
	x.object_fn = on_object;
	x.upload_fn = on_upload;
	x.fn_arg = &s;
	errno = 0;
	if (parse(&x, body, err, sizeof(err)) == 0)
		FAIL("refuse: accepted '%.60s...'", body);
	else if (errno != EBADMSG || strstr(err, why) == NULL)
		FAIL("refuse: errno %d, '%s' does not say '%s'", errno, err,
		    why);
}

static void
check_refused(void)
{
	char	big[S3_KEY_MAX + 200];
	int	n;

	check_refused_one("", "not XML");
	check_refused_one("<html><body>502 Bad Gateway</body>", "not XML");
	check_refused_one("<ListBucketResult><Contents><Size>1</Size>"
	    "</Contents></ListBucketResult>", "without a <Key>");
	check_refused_one("<ListBucketResult><Contents><Key>k</Key><Size>-1"
	    "</Size></Contents></ListBucketResult>", "not a size");
	check_refused_one("<ListBucketResult><Contents><Key>k</Key><Size>1"
	    "</Size><LastModified>yesterday</LastModified></Contents>"
	    "</ListBucketResult>", "not a time");
	check_refused_one("<ListMultipartUploadsResult><Upload><Key>k</Key>"
	    "</Upload></ListMultipartUploadsResult>", "without an <UploadId>");
	n = snprintf(big, sizeof(big), "<ListBucketResult><Contents><Key>");
	memset(big + n, 'k', S3_KEY_MAX + 1);
	snprintf(big + n + S3_KEY_MAX + 1, sizeof(big) - (size_t)n -
	    S3_KEY_MAX - 1, "</Key></Contents></ListBucketResult>");
	check_refused_one(big, "too long");
}

int
main(void)
{
	check_error();
	check_list();
	check_uploads();
	check_refused();
	return unit_finish("s3xml");
}
