/*
 * memsnapctl list: every snapshot snapd will show this user (query-snapshots),
 * running and recently finished, as an aligned table.  The last column is
 * the file, or why the snapshot failed.
 *
 * memsnapctl list --remote s3://BUCKET/PREFIX: the zsnap files stored in
 * S3 under PREFIX/ (and below it: a non-root user's uid-UID/, a VM's
 * subdirectory), from the service itself (ListObjectsV2, every page), not
 * from snapd, which need not run: each one's URL, ready for info, verify
 * or export, its size and when it was stored.  The S3 settings are the
 * client library's ($SNAP_S3_CONFIG, else /etc/memsnap/snapd.conf;
 * client/lib/s3settings.h).  Only keys ending in ".zsnap" are shown; an
 * upload in progress is no object yet, so it is not either.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "memsnapctl.h"
#include "s3.h"
#include "s3settings.h"

static int	cmd_list_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_list_entry = {
	.name = "list",
	.args = { "[--remote s3://BUCKET/PREFIX]", 0, 2 },
	.help = "list snapshots, running and finished, or those in S3",
	.exec = cmd_list_exec,
};

static int
list_daemon(struct ctl *ctl)
{
	struct table	*t;
	json_t		*ret, *e;
	size_t		 i;
	uint64_t	 saved, total;
	char		 id[24], pid[24], progress[64], size[32], time[32];
	char		 detail[1024];
	const char	*state;
	int		 status;

	if ((ret = ctl_execute(ctl, "query-snapshots", NULL,
	    &status)) == NULL)
		return status;
	if (ctl->json) {
		ctl_print_json(ret);
		json_decref(ret);
		return EXIT_OK;
	}
	if (json_array_size(ret) == 0) {
		json_decref(ret);
		return EXIT_OK;
	}
	t = table_new(8, "ID>", "NAME", "STATE", "PID>", "PAGES>", "WRITTEN>",
	    "TIME>", "FILE");
	json_array_foreach(ret, i, e) {
		saved = json_u64(e, "pages-saved");
		total = json_u64(e, "pages-total");
		state = json_str(e, "state", "?");
		snprintf(id, sizeof(id), "%" PRIu64, json_u64(e, "id"));
		snprintf(pid, sizeof(pid), "%" PRIu64, json_u64(e, "pid"));
		snprintf(progress, sizeof(progress), "%" PRIu64 "/%" PRIu64
		    " %3d%%", saved, total, total > 0 ?
		    (int)(saved * 100 / total) : 0);
		fmt_bytes(json_u64(e, "bytes-written"), size, sizeof(size));
		fmt_duration_us(json_u64(e, "duration-us"), time,
		    sizeof(time));
		if (json_object_get(e, "error") != NULL)
			snprintf(detail, sizeof(detail), "(%s)",
			    json_str(e, "error", ""));
		else
			snprintf(detail, sizeof(detail), "%s",
			    json_str(e, "file", ""));
		table_add(t, id, json_str(e, "name", ""), state, pid,
		    progress, size, time, detail);
	}
	table_print(t);
	json_decref(ret);
	return EXIT_OK;
}

/* ---- list --remote ------------------------------------------------------- */

struct remote_list {
	const char	*bucket;
	json_t		*objects;	/* what -j prints, and the table shows */
};

/* The listing's own failure, said already: not S3's (-1). */
#define REMOTE_LIST_FAILED	2

static int
remote_object(void *arg, const char *key, uint64_t size, int64_t mtime)
{
	struct remote_list	*l = arg;
	char			 url[S3_BUCKET_MAX + S3_KEY_MAX + 8];
	size_t			 len = strlen(key);
	json_t			*o;

	if (len < 6 || strcmp(key + len - 6, ".zsnap") != 0)
		return 0;
	snprintf(url, sizeof(url), "s3://%s/%s", l->bucket, key);
	o = json_pack("{s:s, s:s, s:I, s:I}", "file", url, "key", key,
	    "size", (json_int_t)size, "mtime", (json_int_t)mtime);
	/* A key that is not UTF-8 cannot be JSON: stop, say so. */
	if (o == NULL || json_array_append_new(l->objects, o) == -1) {
		ctl_warnx("list: s3://%s: cannot show the object %s (not "
		    "UTF-8, or out of memory)", l->bucket, url);
		return REMOTE_LIST_FAILED;
	}
	return 0;
}

static void
remote_print(const json_t *objects)
{
	struct table	*t;
	struct tm	 tm;
	time_t		 when;
	size_t		 i;
	json_t		*o;
	char		 bytes[32], stored[64];

	if (json_array_size(objects) == 0)
		return;
	t = table_new(3, "SIZE>", "STORED", "FILE");
	json_array_foreach(objects, i, o) {
		when = (time_t)json_integer_value(json_object_get(o, "mtime"));
		if (localtime_r(&when, &tm) == NULL || strftime(stored,
		    sizeof(stored), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			snprintf(stored, sizeof(stored), "?");
		table_add(t, fmt_bytes(json_u64(o, "size"), bytes,
		    sizeof(bytes)), stored, json_str(o, "file", "?"));
	}
	table_print(t);
}

static int
list_remote(struct ctl *ctl, const char *url)
{
	struct remote_list	 l;
	struct s3_config	 conf;
	struct s3_client	*c;
	char			 bucket[S3_BUCKET_MAX + 1], key[S3_KEY_MAX + 2];
	char			 err[S3_ERROR_MAX + 128];
	size_t			 len;
	int			 rc;

	if (!s3_is_url(url))
		usage_error("list: --remote takes s3://BUCKET[/PREFIX], not "
		    "%s", url);
	if (s3_url_parse(url, bucket, sizeof(bucket), key, sizeof(key) - 1,
	    err, sizeof(err)) == -1)
		usage_error("list: --remote %s: %s", url, err);
	/* PREFIX names a "directory": PREFIX/..., never PREFIXother/... */
	len = strlen(key);
	if (len > 0 && key[len - 1] != '/')
		snprintf(key + len, sizeof(key) - len, "/");
	if (sc_s3_settings(&conf, err, sizeof(err)) == -1) {
		ctl_warnx("list: %s", err);
		return EXIT_FAILED;
	}
	c = s3_client_new(&conf, NULL, err, sizeof(err));
	explicit_bzero(&conf, sizeof(conf));
	if (c == NULL) {
		ctl_warnx("list: S3 client: %s", err);
		return EXIT_FAILED;
	}
	l.bucket = bucket;
	if ((l.objects = json_array()) == NULL) {
		ctl_warnx("list: out of memory");
		s3_client_free(c);
		return EXIT_FAILED;
	}
	if ((rc = s3_list_objects(c, bucket, key, remote_object, &l)) != 0) {
		if (rc != REMOTE_LIST_FAILED)
			ctl_warnx("list: %s", s3_error(c));
		json_decref(l.objects);
		s3_client_free(c);
		return EXIT_FAILED;
	}
	s3_client_free(c);
	if (ctl->json)
		ctl_print_json(l.objects);
	else
		remote_print(l.objects);
	json_decref(l.objects);
	return EXIT_OK;
}

static int
cmd_list_exec(struct ctl *ctl, int argc, char **argv)
{
	const char	*remote = NULL;
	int		 rc;

	if (argc == 2 && strcmp(argv[0], "--remote") == 0)
		remote = argv[1];
	else if (argc == 1 && strncmp(argv[0], "--remote=", 9) == 0)
		remote = argv[0] + 9;
	else if (argc > 0)
		usage_error("list: unexpected argument %s; usage: memsnapctl "
		    "list [--remote s3://BUCKET/PREFIX]", argv[0]);
	if (remote != NULL)
		return list_remote(ctl, remote);
	if ((rc = ctl_connect(ctl)) != EXIT_OK)
		return rc;
	return list_daemon(ctl);
}
