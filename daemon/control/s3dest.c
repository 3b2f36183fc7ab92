/*
 * snapshot-start's "to" (s3dest.h): "disk", "s3" (the configured s3_url),
 * or "s3://BUCKET/PREFIX" (root only), the configured destination when
 * absent.
 *
 * The object key mirrors the snapshot directory: root's snapshots go to
 * PREFIX/NAME.zsnap, every other peer's to PREFIX/uid-UID/NAME.zsnap, so
 * that no user can write, or guess into, another's names; "subdir" adds a
 * component before the name, as on disk.  A peer other than root never
 * names a bucket or a prefix: it may ask for "s3", never for a URL.
 *
 * What S3 cannot take yet is refused here with the reason: the raw
 * format (a directory of sparse files written at their offsets, not one
 * stream), and tracked or incremental snapshots (their chains link files
 * beside each other on disk).  Whether the bucket exists and the
 * credentials open it is S3's answer, asked on the snapshot's writer
 * thread before it arms (the engine's upload.c), never here: the main
 * thread does not talk to the network.
 *
 * Main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "protocol.h"
#include "cmd.h"
#include "control.h"
#include "paths.h"
#include "s3.h"
#include "s3dest.h"
#include "snapshots.h"

int
s3dest_parse(struct cmd_ctx *ctx, const struct config *conf,
    const struct snapshot_request *req, struct s3dest *d)
{
	const char	*to = json_string_value(json_object_get(ctx->args, "to"));
	const char	*url, *how;
	char		 bucket[S3_BUCKET_MAX + 1], prefix[S3_KEY_MAX + 1];
	char		 why[256];
	size_t		 len;
	uid_t		 uid = ctx->conn->uid;

	how = to != NULL ? "" : " (snapd.conf's destination s3)";
	if (to == NULL)
		to = conf->destination == DESTINATION_S3 ? "s3" : "disk";
	if (strcmp(to, "disk") == 0)
		return 0;
	if (strcmp(to, "s3") == 0) {
		if (conf->s3_endpoint[0] == '\0' || conf->s3_url[0] == '\0') {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "\"to\": \"s3\", but this snapd has no S3 "
			    "destination: set s3_endpoint and s3_url in "
			    "snapd.conf");
			return -1;
		}
		url = conf->s3_url;
	} else if (s3_is_url(to)) {
		if (uid != 0) {
			cmd_error(ctx, SNAPD_ERR_PERMISSION, "snapshot-start: "
			    "only root may name an S3 URL in \"to\"; ask for "
			    "\"s3\": your snapshots go to s3_url under "
			    "uid-%u/", (unsigned)uid);
			return -1;
		}
		if (conf->s3_endpoint[0] == '\0') {
			cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: "
			    "\"to\": an S3 URL, but this snapd has no S3 "
			    "service: set s3_endpoint in snapd.conf");
			return -1;
		}
		url = to;
	} else {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: \"to\" must "
		    "be \"disk\", \"s3\" or \"s3://BUCKET/PREFIX\"");
		return -1;
	}
	if (s3_url_parse(url, bucket, sizeof(bucket), prefix, sizeof(prefix),
	    why, sizeof(why)) == -1) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: \"to\": %s",
		    why);
		return -1;
	}
	if (req->format == OUTPUT_RAW) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: the raw "
		    "format cannot go to S3%s: a raw snapshot is a directory "
		    "of files written in place at their offsets, not one "
		    "stream; use \"format\": \"zsnap\"", how);
		return -1;
	}
	if (req->track || json_object_get(ctx->args, "parent") != NULL) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: not yet: "
		    "tracked and incremental snapshots (\"track\", \"parent\") "
		    "cannot go to S3%s; their chains are files beside each "
		    "other on disk: take them with \"to\": \"disk\"", how);
		return -1;
	}

	/* "s3://b/p/" names the same place as "s3://b/p". */
	len = strlen(prefix);
	while (len > 0 && prefix[len - 1] == '/')
		prefix[--len] = '\0';
	memset(d, 0, sizeof(*d));
	if (uid == 0)
		snprintf(d->prefix, sizeof(d->prefix), "%s", prefix);
	else if (snprintf(d->prefix, sizeof(d->prefix), "%s%suid-%u", prefix,
	    len > 0 ? "/" : "", (unsigned)uid) >= (int)sizeof(d->prefix)) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: s3_url's "
		    "prefix is too long for an S3 key");
		return -1;
	}
	config_s3(conf, &d->s3.conf);
	snprintf(d->s3.bucket, sizeof(d->s3.bucket), "%s", bucket);
	d->s3.part_size = conf->s3_part_size;
	d->s3.parts_in_flight = conf->s3_parts_in_flight;
	return 1;
}

int
s3dest_name(struct cmd_ctx *ctx, struct s3dest *d, const char *name,
    char *dir, size_t dirlen)
{
	const char	*sub = json_string_value(json_object_get(ctx->args,
			    "subdir"));
	char		 where[S3_KEY_MAX + 1];
	int		 n;

	if (sub != NULL && !paths_name_valid(sub)) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: invalid "
		    "subdir (use " SNAPD_NAME_RULE ")");
		return -1;
	}
	/* The part of the key before the name: PREFIX[/SUBDIR], or "". */
	n = snprintf(where, sizeof(where), "%s%s%s", d->prefix,
	    d->prefix[0] != '\0' && sub != NULL ? "/" : "",
	    sub != NULL ? sub : "");
	if (n >= 0 && (size_t)n < sizeof(where))
		n = snprintf(d->s3.key, sizeof(d->s3.key), "%s%s%s%s", where,
		    where[0] != '\0' ? "/" : "", name, ZSNAP_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(d->s3.key)) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: the object "
		    "key of '%s' would be longer than S3's %d bytes", name,
		    S3_KEY_MAX);
		return -1;
	}
	n = snprintf(dir, dirlen, "s3://%s%s%s", d->s3.bucket,
	    where[0] != '\0' ? "/" : "", where);
	if (n < 0 || (size_t)n >= dirlen) {
		cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-start: the S3 URL "
		    "of '%s' is too long", name);
		return -1;
	}
	if (snapshots_find_running(dir, name) != NULL) {
		cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-start: a snapshot "
		    "named '%s' is already running in %s", name, dir);
		return -1;
	}
	return 0;
}

void
s3dest_forget(struct s3dest *d)
{
	explicit_bzero(&d->s3.conf, sizeof(d->s3.conf));
}
