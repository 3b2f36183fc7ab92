/*
 * memsnapctl verify FILE: check every checksum of a snapshot and that every
 * page is covered exactly once (snap_file_verify); for an incremental
 * snapshot, the same of every file of its chain, and every link.  Prints
 *
 *	FILE: OK (N pages, M chunks)
 *	FILE: OK (N pages, M chunks; chain of L verified)	incremental
 *	FILE: BAD: <what is wrong and where>		exit 1
 *
 * A file that cannot be opened for lack of it or of permission is an
 * error ("memsnapctl: verify: ..."); one that opens but is not a valid
 * snapshot (no footer, a bad magic) is BAD.  FILE may be an object in S3,
 * "s3://BUCKET/KEY" (libsnapclient(3) reads it with ranged GETs): there,
 * only what the object holds makes it BAD; the service refusing or not
 * answering, or the S3 settings being wrong, is an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "memsnapctl.h"
#include "s3.h"

static int	cmd_verify_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_verify_entry = {
	.name = "verify",
	.args = { "FILE", 1, 1 },
	.help = "check every checksum and page of a snapshot file",
	.exec = cmd_verify_exec,
};

static int
verify_bad(struct ctl *ctl, const char *path)
{
	const char	*why = snap_strerror(NULL);
	size_t		 len = strlen(path);
	json_t		*o;

	/* "FILE: BAD: FILE: ..." says the name once too often. */
	if (strncmp(why, path, len) == 0 && strncmp(why + len, ": ", 2) == 0)
		why += len + 2;

	if (ctl->json) {
		o = json_pack("{s:s, s:b, s:s}", "file", path, "ok", 0,
		    "error", why);
		ctl_print_json(o);
		json_decref(o);
	} else
		printf("%s: BAD: %s\n", path, why);
	return EXIT_FAILED;
}

static int
cmd_verify_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file_info	 in;
	struct snap_file	*f;
	const char		*path = argv[0];
	json_t			*o;
	int			 rc;

	if ((f = snap_file_open(path)) == NULL) {
		if (errno == ENOENT || errno == EACCES || errno == EPERM ||
		    errno == ENOMEM || errno == EMFILE ||
		    (s3_is_url(path) && errno != EBADMSG && errno != ENOTSUP))
			return ctl_file_failure(path, "verify");
		return verify_bad(ctl, path);
	}
	if (snap_file_verify(f) == -1 || snap_file_info(f, &in) == -1) {
		/* A GET that failed says nothing of the object. */
		if (s3_is_url(path) && (errno == EACCES || errno == EPERM ||
		    errno == ECONNREFUSED || errno == EHOSTUNREACH ||
		    errno == ETIMEDOUT || errno == EIO || errno == ENOMEM))
			rc = ctl_file_failure(path, "verify");
		else
			rc = verify_bad(ctl, path);
		snap_file_close(f);
		return rc;
	}
	/* The links of the chain: the file and its parents, to the base. */
	if (ctl->json) {
		o = json_pack("{s:s, s:b, s:I, s:I, s:I}", "file", path, "ok", 1,
		    "pages", (json_int_t)in.pages_total,
		    "chunks", (json_int_t)in.chunk_count,
		    "chain", (json_int_t)in.depth + 1);
		ctl_print_json(o);
		json_decref(o);
	} else if (in.incremental)
		printf("%s: OK (%" PRIu64 " pages, %" PRIu64 " chunks; chain "
		    "of %" PRIu32 " verified)\n", path, in.pages_total,
		    in.chunk_count, in.depth + 1);
	else
		printf("%s: OK (%" PRIu64 " pages, %" PRIu64 " chunks)\n",
		    path, in.pages_total, in.chunk_count);
	snap_file_close(f);
	return EXIT_OK;
}
