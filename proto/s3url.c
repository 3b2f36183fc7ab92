/*
 * S3 names: "s3://BUCKET/KEY" URLs checked against S3's rules, the
 * endpoint's parts, and the percent-encoding SigV4 signs.  curl signs the
 * path and the query exactly as written (Debian 12's curl 7.88 neither
 * re-encodes nor sorts them), so what is written here must already be
 * S3's canonical form: every byte outside A-Z a-z 0-9 - . _ ~ encoded as
 * %XX in upper case, '/' kept in an object's path only.
 *
 * Thread-safe: nothing here keeps state.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ioutil.h"
#include "s3-internal.h"
#include "utf8.h"

int
s3_buf_add(struct s3_buf *b, const void *p, size_t len)
{
	if (b->failed) {
		errno = ENOMEM;
		return -1;
	}
	if (b->len + len + 1 > b->cap) {
		size_t	 cap = b->cap == 0 ? 256 : b->cap;
		char	*n;

		while (cap < b->len + len + 1)
			cap *= 2;
		if ((n = realloc(b->data, cap)) == NULL) {
			b->failed = 1;
			return -1;
		}
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
s3_buf_printf(struct s3_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	 small[256], *big;
	int	 n, rv;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof(small))
		return s3_buf_add(b, small, (size_t)n);
	if ((big = malloc((size_t)n + 1)) == NULL) {
		b->failed = 1;
		return -1;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rv = s3_buf_add(b, big, (size_t)n);
	free(big);
	return rv;
}

void
s3_buf_free(struct s3_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

static int
s3_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

int
s3_buf_add_encoded(struct s3_buf *b, const char *s, int keep_slash)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;
	char			 esc[3];

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (s3_unreserved(*p) || (keep_slash && *p == '/')) {
			if (s3_buf_add(b, p, 1) == -1)
				return -1;
			continue;
		}
		esc[0] = '%';
		esc[1] = hex[*p >> 4];
		esc[2] = hex[*p & 15];
		if (s3_buf_add(b, esc, 3) == -1)
			return -1;
	}
	return 0;
}

int
s3_endpoint_split(const char *endpoint, char *scheme, size_t schemelen,
    char *host, size_t hostlen, char *err, size_t errlen)
{
	const char	*rest;
	size_t		 n;

	if (strncmp(endpoint, "http://", 7) == 0) {
		snprintf(scheme, schemelen, "http");
		rest = endpoint + 7;
	} else if (strncmp(endpoint, "https://", 8) == 0) {
		snprintf(scheme, schemelen, "https");
		rest = endpoint + 8;
	} else {
		ioutil_set_error(err, errlen, "endpoint '%s' does not start "
		    "with http:// or https://", endpoint);
		errno = EINVAL;
		return -1;
	}
	n = strcspn(rest, "/?#");
	if (n == 0 || (rest[n] != '\0' && strcmp(rest + n, "/") != 0)) {
		ioutil_set_error(err, errlen, "endpoint '%s' is not "
		    "SCHEME://HOST[:PORT] (no path)", endpoint);
		errno = EINVAL;
		return -1;
	}
	if (n >= hostlen || strpbrk(rest, " \t\r\n@") != NULL) {
		ioutil_set_error(err, errlen, "endpoint '%s': bad host",
		    endpoint);
		errno = EINVAL;
		return -1;
	}
	memcpy(host, rest, n);
	host[n] = '\0';
	return 0;
}

int
s3_is_url(const char *s)
{
	return s != NULL && strncmp(s, "s3://", 5) == 0;
}

/* S3's bucket naming rule: 3..63 of [a-z0-9.-], alphanumeric at both ends,
 * no "..". */
static const char *
s3_bucket_check(const char *b, size_t n)
{
	size_t	i;

	if (n < 3 || n > S3_BUCKET_MAX)
		return "a bucket name has 3 to 63 characters";
	for (i = 0; i < n; i++) {
		char c = b[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-'))
			return "a bucket name has only a-z, 0-9, '.' and '-'";
	}
	if (b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
		return "a bucket name starts and ends with a letter or a digit";
	if (memmem(b, n, "..", 2) != NULL)
		return "a bucket name has no \"..\"";
	return NULL;
}

static const char *
s3_key_check(const char *k)
{
	const char		*c, *next;
	const unsigned char	*p;

	if (strlen(k) > S3_KEY_MAX)
		return "the key is longer than 1024 bytes";
	if (k[0] == '/')
		return "the key starts with '/'";
	for (p = (const unsigned char *)k; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "the key holds a control character";
	if (!utf8_valid(k))
		return "the key is not valid UTF-8";
	if (strstr(k, "//") != NULL)
		return "the key holds \"//\"";
	for (c = k; *c != '\0'; c = *next == '/' ? next + 1 : next) {
		size_t n;

		next = strchrnul(c, '/');
		n = (size_t)(next - c);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' &&
		    c[1] == '.'))
			return "the key has a \".\" or \"..\" component";
	}
	return NULL;
}

int
s3_url_parse(const char *url, char *bucket, size_t bucketlen, char *key,
    size_t keylen, char *err, size_t errlen)
{
	const char	*b, *slash, *k, *why;
	size_t		 n;

	if (!s3_is_url(url)) {
		ioutil_set_error(err, errlen, "'%s' is not an s3:// URL", url);
		errno = EINVAL;
		return -1;
	}
	b = url + 5;
	slash = strchrnul(b, '/');
	n = (size_t)(slash - b);
	k = *slash == '/' ? slash + 1 : slash;
	if ((why = s3_bucket_check(b, n)) == NULL)
		why = s3_key_check(k);
	if (why == NULL && (n >= bucketlen || strlen(k) >= keylen))
		why = "too long";
	if (why != NULL) {
		/* The URL cut so that the reason always fits. */
		ioutil_set_error(err, errlen, "%.100s%s: %s", url,
		    strlen(url) > 100 ? "..." : "", why);
		errno = EINVAL;
		return -1;
	}
	memcpy(bucket, b, n);
	bucket[n] = '\0';
	memcpy(key, k, strlen(k) + 1);
	return 0;
}
