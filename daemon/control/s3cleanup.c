/*
 * The start-up cleanup of S3 (s3cleanup.h).
 *
 * A snapshot that fails or is cancelled aborts its own multipart upload,
 * but a snapd that is killed, or loses S3 in the middle of a snapshot,
 * leaves one behind: its parts stay stored, and billed, until someone
 * aborts it.  Whatever is unfinished under s3_url's prefix when snapd
 * starts was left by an earlier snapd, so it is aborted, except the
 * uploads this process has already started (a snapshot-start may come
 * while the listing runs): the sinks' own (sink_s3_live()), and the keys
 * the engine lists from just before an upload starts
 * (snapshot_s3_live()), which covers the moment S3 lists an upload whose
 * sink has not had the reply that creates it yet.  Each host writing to
 * the same bucket must therefore have its own prefix: one snapd's
 * start-up would abort another host's snapshots in flight.  Uploads under
 * a URL root named in "to" are not looked at.
 *
 * It runs on its own detached thread, with its own S3 client, so that
 * readiness and the main loop never wait for S3; it logs one line and
 * exits.  Uploads are listed a batch at a time and aborted after each
 * listing, never while one is paged through.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "log.h"
#include "s3.h"
#include "s3cleanup.h"
#include "sink.h"
#include "snapshot.h"

#define S3CLEANUP_BATCH	1000	/* uploads listed before aborting them */

struct s3cleanup_upload {
	char	key[S3_KEY_MAX + 1];
	char	id[S3_UPLOAD_ID_MAX];
};

struct s3cleanup {
	struct s3_config	 conf;
	char			 bucket[S3_BUCKET_MAX + 1];
	char			 prefix[S3_KEY_MAX + 2];	/* "" or "P/" */
	struct s3cleanup_upload	*batch;
	size_t			 n;
	int			 more;		/* the batch filled up */
};

/* s3_multipart_list()'s callback: note one upload, stop when full. */
static int
s3cleanup_note(void *arg, const char *key, const char *upload_id)
{
	struct s3cleanup	*cl = arg;
	struct s3cleanup_upload	*u;

	if (cl->n == S3CLEANUP_BATCH) {
		cl->more = 1;
		return 1;
	}
	u = &cl->batch[cl->n++];
	snprintf(u->key, sizeof(u->key), "%s", key);
	snprintf(u->id, sizeof(u->id), "%s", upload_id);
	return 0;
}

static void
s3cleanup_free(struct s3cleanup *cl)
{
	explicit_bzero(&cl->conf, sizeof(cl->conf));
	free(cl->batch);
	free(cl);
}

static void *
s3cleanup_main(void *arg)
{
	struct s3cleanup	*cl = arg;
	struct s3_client	*c;
	char			 err[S3_ERROR_MAX], first[S3_ERROR_MAX] = "";
	unsigned		 aborted = 0, failed = 0, kept;

	if ((c = s3_client_new(&cl->conf, NULL, err, sizeof(err))) == NULL) {
		log_warnx("s3: cannot look for unfinished uploads under "
		    "s3://%s/%s: %s", cl->bucket, cl->prefix, err);
		s3cleanup_free(cl);
		return NULL;
	}
	do {
		cl->n = 0;
		cl->more = 0;
		if (s3_multipart_list(c, cl->bucket, cl->prefix,
		    s3cleanup_note, cl) == -1 && !cl->more) {
			log_warnx("s3: cannot list the unfinished uploads "
			    "under s3://%s/%s (%u aborted so far): %s",
			    cl->bucket, cl->prefix, aborted, s3_error(c));
			goto out;
		}
		kept = 0;
		for (size_t i = 0; i < cl->n; i++) {
			const struct s3cleanup_upload *u = &cl->batch[i];

			if (snapshot_s3_live(cl->bucket, u->key) ||
			    sink_s3_live(u->id)) {
				kept++;
				continue;
			}
			if (s3_multipart_abort(c, cl->bucket, u->key,
			    u->id) == 0 || errno == ENOENT) {
				aborted++;
				log_debug("s3: aborted the unfinished upload of "
				    "s3://%s/%s", cl->bucket, u->key);
				continue;
			}
			if (failed++ == 0)
				snprintf(first, sizeof(first), "%s",
				    s3_error(c));
		}
		/* A full batch of which nothing could go: do not loop. */
	} while (cl->more && kept + failed < cl->n);
	if (failed == 0)
		log_info("s3: aborted %u unfinished uploads under s3://%s/%s",
		    aborted, cl->bucket, cl->prefix);
	else
		log_warnx("s3: aborted %u unfinished uploads under s3://%s/%s; "
		    "%u could not be aborted: %s", aborted, cl->bucket,
		    cl->prefix, failed, first);
out:
	s3_client_free(c);
	s3cleanup_free(cl);
	return NULL;
}

/*
 * memsnap.service takes the network away (RestrictAddressFamilies=AF_UNIX,
 * PrivateNetwork=yes): with S3 configured, say at start-up, not at the
 * first snapshot, that the unit needs the drop-in of snapd.conf(5).
 */
static void
s3cleanup_check_network(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd != -1) {
		close(fd);
		return;
	}
	log_warnx("s3: s3_endpoint is set but snapd may not open a TCP "
	    "socket (%s): snapshots to S3 will fail; under memsnap.service "
	    "add the drop-in that gives it the network (snapd.conf(5), S3)",
	    strerror(errno));
}

void
s3cleanup_start(const struct config *conf)
{
	struct s3cleanup	*cl;
	pthread_attr_t		 attr;
	pthread_t		 t;
	char			 why[256], prefix[S3_KEY_MAX + 1];
	size_t			 len;
	int			 rc;

	if (conf->s3_endpoint[0] == '\0')
		return;
	s3cleanup_check_network();
	if (conf->s3_url[0] == '\0')
		return;
	if ((cl = calloc(1, sizeof(*cl))) == NULL ||
	    (cl->batch = calloc(S3CLEANUP_BATCH, sizeof(*cl->batch))) == NULL) {
		log_warn("s3: look for unfinished uploads");
		free(cl);
		return;
	}
	if (s3_url_parse(conf->s3_url, cl->bucket, sizeof(cl->bucket), prefix,
	    sizeof(prefix), why, sizeof(why)) == -1) {
		/* config.c checked it: never here. */
		log_warnx("s3: s3_url %s: %s", conf->s3_url, why);
		s3cleanup_free(cl);
		return;
	}
	/* "snaps/host1" must not take in "snaps/host10/...": end it with /. */
	len = strlen(prefix);
	while (len > 0 && prefix[len - 1] == '/')
		prefix[--len] = '\0';
	snprintf(cl->prefix, sizeof(cl->prefix), "%s%s", prefix,
	    len > 0 ? "/" : "");
	config_s3(conf, &cl->conf);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, s3cleanup_main, cl);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_warnx("s3: cannot start the thread that aborts unfinished "
		    "uploads: %s", strerror(rc));
		s3cleanup_free(cl);
	}
}
