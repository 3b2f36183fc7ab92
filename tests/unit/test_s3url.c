/*
 * Unit test of S3 names (proto/s3url.c), no network.  What must hold:
 *
 *   parse	"s3://BUCKET/KEY" splits into bucket and key; "s3://B" and
 *		"s3://B/" give the key "";
 *   bucket	S3's rule: 3..63 of [a-z0-9.-], a letter or digit at both
 *		ends, no "..": every other name is refused with EINVAL and
 *		the reason;
 *   key	no leading '/', no "//", no "." or ".." component, no
 *		control character, valid UTF-8, at most 1024 bytes;
 *   room	a bucket or key that does not fit the caller's buffer is
 *		refused, never cut;
 *   encode	what SigV4 signs: unreserved bytes kept, '/' kept only in a
 *		path, everything else %XX in upper case;
 *   endpoint	"http[s]://HOST[:PORT][/]" and nothing else.
 *
 * Exits 0 on pass, 1 on failure.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "s3-internal.h"
#include "unit-check.h"

static void
check_ok(const char *url, const char *bucket, const char *key)
{
	char	b[S3_BUCKET_MAX + 1], k[S3_KEY_MAX + 1], err[256] = "";

	if (s3_url_parse(url, b, sizeof(b), k, sizeof(k), err,
	    sizeof(err)) != 0) {
		FAIL("parse: '%s' refused: %s", url, err);
		return;
	}
	if (strcmp(b, bucket) != 0 || strcmp(k, key) != 0)
		FAIL("parse: '%s' gave bucket '%s' key '%s', not '%s' '%s'",
		    url, b, k, bucket, key);
}

/* url is refused with EINVAL and a message holding why. */
static void
check_bad(const char *url, const char *why)
{
	char	b[S3_BUCKET_MAX + 1], k[S3_KEY_MAX + 1], err[256] = "";

	errno = 0;
	if (s3_url_parse(url, b, sizeof(b), k, sizeof(k), err,
	    sizeof(err)) == 0) {
		FAIL("'%s' accepted (bucket '%s', key '%s')", url, b, k);
		return;
	}
	if (errno != EINVAL)
		FAIL("'%s': errno %d, not EINVAL", url, errno);
	if (strstr(err, why) == NULL)
		FAIL("'%s': message '%s' does not say '%s'", url, err, why);
}

static void
check_parse(void)
{
	char long_key[S3_KEY_MAX + 32];

	check_ok("s3://snaps/x.zsnap", "snaps", "x.zsnap");
	check_ok("s3://snaps", "snaps", "");
	check_ok("s3://snaps/", "snaps", "");
	check_ok("s3://my.bucket-1/a/b/c.zsnap", "my.bucket-1", "a/b/c.zsnap");
	check_ok("s3://abc/prefix/", "abc", "prefix/");
	check_ok("s3://abc/.hidden/x..y/...", "abc", ".hidden/x..y/...");
	check_ok("s3://abc/caf\xc3\xa9 and spaces", "abc",
	    "caf\xc3\xa9 and spaces");
	/* 63 characters: the longest bucket name. */
	check_ok("s3://aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff123",
	    "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff123",
	    "");
	check_bad("http://snaps/x", "not an s3:// URL");
	check_bad("S3://snaps/x", "not an s3:// URL");
	check_bad("s3://ab/x", "3 to 63");
	check_bad("s3:///x", "3 to 63");
	check_bad("s3://aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff1234",
	    "3 to 63");
	check_bad("s3://Snaps/x", "only a-z");
	check_bad("s3://sn_aps/x", "only a-z");
	check_bad("s3://-snaps/x", "starts and ends");
	check_bad("s3://snaps./x", "starts and ends");
	check_bad("s3://sn..aps/x", "\"..\"");
	check_bad("s3://snaps//x", "starts with '/'");
	check_bad("s3://snaps/a//b", "\"//\"");
	check_bad("s3://snaps/a/./b", "component");
	check_bad("s3://snaps/a/..", "component");
	check_bad("s3://snaps/../a", "component");
	check_bad("s3://snaps/.", "component");
	check_bad("s3://snaps/a\nb", "control character");
	check_bad("s3://snaps/a\x7f", "control character");
	check_bad("s3://snaps/\xc3(", "UTF-8");
	snprintf(long_key, sizeof(long_key), "s3://snaps/%01025d", 7);
	check_bad(long_key, "1024 bytes");
	snprintf(long_key, sizeof(long_key), "s3://snaps/%01024d", 7);
	check_ok(long_key, "snaps", long_key + 11);
	if (!s3_is_url("s3://x") || s3_is_url("s3:/x") || s3_is_url(NULL) ||
	    s3_is_url("/var/lib/x.zsnap"))
		FAIL("s3_is_url: wrong answer");
}

static void
check_room(void)
{
	char	b[6], k[4], err[128] = "";

	if (s3_url_parse("s3://bucket/k", b, sizeof(b), k, sizeof(k), err,
	    sizeof(err)) == 0)
		FAIL("room: a 6-character bucket fit a 6-byte buffer");
	if (s3_url_parse("s3://abcde/long", b, sizeof(b), k, sizeof(k), err,
	    sizeof(err)) == 0)
		FAIL("room: a 4-byte key fit a 4-byte buffer");
	if (s3_url_parse("s3://abcde/abc", b, sizeof(b), k, sizeof(k), err,
	    sizeof(err)) != 0 || strcmp(b, "abcde") != 0 ||
	    strcmp(k, "abc") != 0)
		FAIL("room: names that fit were refused: %s", err);
}

static void
check_encode_one(const char *in, int keep_slash, const char *want)
{
	struct s3_buf b = { 0 };

	if (s3_buf_add_encoded(&b, in, keep_slash) != 0)
		FAIL("encode '%s': failed", in);
	else if (strcmp(b.data != NULL ? b.data : "", want) != 0)
		FAIL("encode '%s' (%s): '%s', not '%s'", in,
		    keep_slash ? "path" : "query", b.data, want);
	s3_buf_free(&b);
}

static void
check_encode(void)
{
	check_encode_one("AZaz09-._~", 0, "AZaz09-._~");
	check_encode_one("a/b c", 1, "a/b%20c");
	check_encode_one("a/b c", 0, "a%2Fb%20c");
	check_encode_one("x+y=z&w", 0, "x%2By%3Dz%26w");
	check_encode_one("caf\xc3\xa9", 1, "caf%C3%A9");
	check_encode_one("", 0, "");
}

static void
check_endpoint_one(const char *ep, const char *scheme, const char *host)
{
	char	s[8], h[64], err[256] = "";
	int	rv = s3_endpoint_split(ep, s, sizeof(s), h, sizeof(h), err,
	    sizeof(err));

	if (host == NULL) {
		if (rv == 0)
			FAIL("endpoint '%s' accepted (host '%s')", ep, h);
		else if (errno != EINVAL || err[0] == '\0')
			FAIL("endpoint '%s': no EINVAL and reason", ep);
		return;
	}
	if (rv != 0)
		FAIL("endpoint '%s' refused: %s", ep, err);
	else if (strcmp(s, scheme) != 0 || strcmp(h, host) != 0)
		FAIL("endpoint '%s': '%s' '%s', not '%s' '%s'", ep, s, h,
		    scheme, host);
}

static void
check_endpoint(void)
{
	check_endpoint_one("http://127.0.0.1:7480", "http", "127.0.0.1:7480");
	check_endpoint_one("https://s3.example.org/", "https",
	    "s3.example.org");
	check_endpoint_one("ftp://x", NULL, NULL);
	check_endpoint_one("127.0.0.1:7480", NULL, NULL);
	check_endpoint_one("http://", NULL, NULL);
	check_endpoint_one("http://host/path", NULL, NULL);
	check_endpoint_one("http://user@host", NULL, NULL);
	check_endpoint_one("http://host?x=1", NULL, NULL);
}

int
main(void)
{
	check_parse();
	check_room();
	check_encode();
	check_endpoint();
	return unit_finish("s3url");
}
