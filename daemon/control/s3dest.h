/*
 * snapshot-start's "to": where a snapshot goes, a file under snapshot_dir
 * or an object in S3 (s3dest.c).  cmd-snapshot-start.c asks here once it
 * has parsed the other arguments; the engine gets the answer as
 * snapshot_request.s3.
 *
 * Main thread only.
 */
#ifndef SNAPD_S3DEST_H
#define SNAPD_S3DEST_H

#include <stddef.h>

#include "config.h"
#include "snapshot.h"

struct cmd_ctx;

/*
 * s3: the settings, keys and bucket (s3dest_parse()), then the object's
 * key (s3dest_name()); prefix: what goes before the name, "" or
 * "PREFIX[/uid-UID]".
 */
struct s3dest {
	struct snapshot_s3	s3;
	char			prefix[S3_KEY_MAX + 1];
};

/*
 * The destination the peer asks for ("to", or the configured destination
 * when absent), with req's format, tracking and parent already parsed.
 * 0: a file (d untouched); 1: S3, d's settings, credentials, bucket and
 * prefix filled; -1 with ctx's error set, saying why (S3 not configured, a
 * URL from a peer other than root, raw or incremental to S3).
 */
int	s3dest_parse(struct cmd_ctx *ctx, const struct config *conf,
	    const struct snapshot_request *req, struct s3dest *d);

/*
 * The object key of snapshot name ("PREFIX[/SUBDIR]/NAME.zsnap", subdir
 * checked like a name) into d->s3.key, and its "directory" for the
 * snapshot list, s3://BUCKET/PREFIX[/SUBDIR], into dir; refused if a
 * snapshot of that name runs there.  0, or -1 with ctx's error set.
 */
int	s3dest_name(struct cmd_ctx *ctx, struct s3dest *d, const char *name,
	    char *dir, size_t dirlen);

/* Wipe d's copy of the credentials (the engine keeps its own). */
void	s3dest_forget(struct s3dest *d);

#endif /* SNAPD_S3DEST_H */
