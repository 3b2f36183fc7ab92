/*
 * At start-up, abort the multipart uploads a killed snapd left in S3
 * (s3cleanup.c).
 */
#ifndef SNAPD_S3CLEANUP_H
#define SNAPD_S3CLEANUP_H

#include "config.h"

/*
 * With s3_endpoint and s3_url set, start a detached thread that lists the
 * multipart uploads under s3_url's prefix and aborts every one no
 * snapshot of this process is uploading (snapshot_s3_live()), then logs
 * "s3: aborted N unfinished uploads under s3://BUCKET/PREFIX/" (or why it
 * could not) and exits.  Returns at once; the main thread, which calls
 * it, never waits for S3.
 */
void	s3cleanup_start(const struct config *conf);

#endif /* SNAPD_S3CLEANUP_H */
