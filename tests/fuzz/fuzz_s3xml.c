/*
 * libFuzzer target for the S3 client's reply parser (proto/s3xml.c): its
 * bytes come from the S3 service over the network (a listing, an upload's
 * id, an error), which snapd and the client library both trust no
 * further than this parser checks.
 *
 * Each input is parsed twice, with the listing callbacks of objects and
 * then of uploads.  Properties checked besides the sanitizers': a refusal
 * says why and sets EBADMSG; every entry handed to a callback has a
 * non-empty key of at most S3_KEY_MAX bytes (and an upload id); the
 * fields read are NUL-terminated within their arrays; a callback's stop
 * is kept and ends the parse at that entry.
 *
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3-internal.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void __attribute__((noreturn))
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_s3xml: property violated: %s\n", what);
	abort();
}

static size_t	seen;

static int
on_object(void *arg, const char *key, uint64_t size, int64_t mtime)
{
	size_t n = strlen(key);

	if (n == 0 || n > S3_KEY_MAX)
		fuzz_fail("an object's key is empty or too long");
	return ++seen == 3 ? 9 : 0;	/* stop at the third */
}

static int
on_upload(void *arg, const char *key, const char *upload_id)
{
	size_t n = strlen(key);

	if (n == 0 || n > S3_KEY_MAX || upload_id[0] == '\0' ||
	    strlen(upload_id) >= S3_UPLOAD_ID_MAX)
		fuzz_fail("an upload's key or id is empty or too long");
	return ++seen == 3 ? 9 : 0;
}

static void
fuzz_terminated(const char *s, size_t len, const char *what)
{
	if (memchr(s, '\0', len) == NULL)
		fuzz_fail(what);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_xml	x;
	char		err[256];
	int		upload, rv;

	for (upload = 0; upload < 2; upload++) {
		memset(&x, 0, sizeof(x));
		x.object_fn = upload ? NULL : on_object;
		x.upload_fn = upload ? on_upload : NULL;
		seen = 0;
		err[0] = '\0';
		errno = 0;
		rv = s3_xml_parse(&x, (const char *)data, size, err, sizeof(err));
		if (rv == -1 && x.fn_rv == 0 && (errno != EBADMSG ||
		    err[0] == '\0'))
			fuzz_fail("a refusal without EBADMSG and a reason");
		if (rv == -1 && x.fn_rv != 0 && (x.fn_rv != 9 || seen != 3))
			fuzz_fail("a callback's stop was not kept");
		if (rv == 0 && seen >= 3)
			fuzz_fail("the parse went on after a callback's stop");
		fuzz_terminated(x.root, sizeof(x.root), "root");
		fuzz_terminated(x.code, sizeof(x.code), "code");
		fuzz_terminated(x.message, sizeof(x.message), "message");
		fuzz_terminated(x.upload_id, sizeof(x.upload_id), "upload id");
		fuzz_terminated(x.next_token, sizeof(x.next_token), "token");
		fuzz_terminated(x.next_key, sizeof(x.next_key), "key marker");
		fuzz_terminated(x.next_upload_id, sizeof(x.next_upload_id),
		    "upload id marker");
	}
	return 0;
}
