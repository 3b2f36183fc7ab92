/*
 * s3probe: the S3 client (proto/s3.h) from the command line, for the tests
 * against a real radosgw (tests/integration/s3_client.sh).
 *
 *	s3probe --conf FILE [--timeout S] [--retries N] [--page N]
 *	    [--cancel-after MS] COMMAND ARGS...
 *
 * The settings come from FILE's s3_* keys and the credentials file it
 * names (s3_config_load, owned by the caller), as the client library gets
 * them; --timeout, --retries and --page override them.  --cancel-after
 * raises the client's cancel flag MS milliseconds after the start (from
 * another thread).  Commands, URL being s3://BUCKET/KEY:
 *
 *	head-bucket BUCKET
 *	head URL			size and etag
 *	put URL FILE			FILE's bytes as the object
 *	get URL OFF LEN OUT		bytes OFF..OFF+LEN-1 into the file OUT
 *	delete URL
 *	list s3://BUCKET/PREFIX		keys (with sizes and mtimes)
 *	upload URL FILE PART_SIZE	multipart: create, parts, complete
 *	open URL FILE PART_SIZE		create and send the parts, no complete:
 *					the upload is left open
 *	abort URL UPLOAD_ID
 *	list-uploads s3://BUCKET/PREFIX	uploads in progress (key, upload_id)
 *
 * Output: one JSON object, last line: "ok", "command", "elapsed_ms",
 * "tries", "status", and on failure "errno" (its name) and "error" (the
 * client's message); plus the command's figures ("size", "etag", "keys",
 * "uploads", "upload_id", "parts").  Exit 0 on success, 1 on failure, 2
 * on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "s3.h"
#include "s3conf.h"

static atomic_int	cancel_flag;
static long		cancel_after_ms = -1;

static void
usage(void)
{
	fprintf(stderr, "usage: s3probe --conf FILE [--timeout S] [--retries N] "
	    "[--page N] [--cancel-after MS] COMMAND ARGS...\n");
	exit(2);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *
cancel_thread(void *arg)
{
	struct timespec ts = { cancel_after_ms / 1000,
	    (cancel_after_ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	atomic_store(&cancel_flag, 1);
	return NULL;
}

static const char *
errno_name(int e)
{
	switch (e) {
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ECONNRESET: return "ECONNRESET";
	case ECANCELED: return "ECANCELED";
	case EBADMSG: return "EBADMSG";
	case EINVAL: return "EINVAL";
	case EIO: return "EIO";
	default: return strerrorname_np(e) != NULL ? strerrorname_np(e) : "?";
	}
}

/* The whole of file path, malloc'd; exits on failure. */
static char *
read_file(const char *path, size_t *len)
{
	struct stat	 st;
	char		*buf;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		fprintf(stderr, "s3probe: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "s3probe: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	while (got < (size_t)st.st_size && (n = read(fd, buf + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	*len = got;
	return buf;
}

static void
parse_url(const char *url, char *bucket, size_t blen, char *key, size_t klen)
{
	char err[S3_ERROR_MAX];

	if (s3_url_parse(url, bucket, blen, key, klen, err, sizeof(err)) == -1) {
		fprintf(stderr, "s3probe: %s\n", err);
		exit(2);
	}
}

static int
list_object(void *arg, const char *key, uint64_t size, int64_t mtime)
{
	json_array_append_new(arg, json_pack("{s:s, s:I, s:I}", "key", key,
	    "size", (json_int_t)size, "mtime", (json_int_t)mtime));
	return 0;
}

static int
list_upload(void *arg, const char *key, const char *upload_id)
{
	json_array_append_new(arg, json_pack("{s:s, s:s}", "key", key,
	    "upload_id", upload_id));
	return 0;
}

/* Multipart: create, every part of file, then complete (or not). */
static int
upload(struct s3_client *c, const char *bucket, const char *key,
    const char *file, uint64_t part_size, int complete, json_t *out)
{
	struct s3_part	*parts;
	char		 id[S3_UPLOAD_ID_MAX];
	char		*body;
	size_t		 len, off, n = 0;
	json_t		*etags = json_array();
	int		 rv = 0;

	body = read_file(file, &len);
	if ((parts = calloc(len / part_size + 2, sizeof(*parts))) == NULL)
		exit(2);
	if ((rv = s3_multipart_create(c, bucket, key, id, sizeof(id))) == -1)
		goto out;
	json_object_set_new(out, "upload_id", json_string(id));
	for (off = 0; off < len || n == 0; off += part_size) {
		size_t part = len - off < part_size ? len - off : part_size;

		if ((rv = s3_multipart_part(c, bucket, key, id, (int)n + 1,
		    body + off, part, &parts[n])) == -1)
			goto out;
		json_array_append_new(etags, json_string(parts[n].etag));
		n++;
	}
	if (complete)
		rv = s3_multipart_complete(c, bucket, key, id, parts, n);
out:
	json_object_set_new(out, "parts", etags);
	free(parts);
	free(body);
	return rv == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "conf", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "retries", required_argument, NULL, 'r' },
		{ "page", required_argument, NULL, 'p' },
		{ "cancel-after", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	struct s3_config	 conf;
	struct s3_client	*c;
	const char		*confpath = NULL, *cmd;
	char			 err[S3_ERROR_MAX], bucket[S3_BUCKET_MAX + 1];
	char			 key[S3_KEY_MAX + 1], etag[S3_ETAG_MAX];
	json_t			*out;
	pthread_t		 th;
	double			 t0;
	int			 ch, rv = -1, timeout = -1, retries = -1, page = 0;
	int			 saved;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': confpath = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'r': retries = atoi(optarg); break;
		case 'p': page = atoi(optarg); break;
		case 'C': cancel_after_ms = atol(optarg); break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (confpath == NULL || argc < 2)
		usage();
	cmd = argv[0];
	out = json_pack("{s:s}", "command", cmd);
	if (s3_config_load(&conf, confpath, getuid(), err, sizeof(err)) == -1) {
		json_object_set_new(out, "ok", json_false());
		json_object_set_new(out, "stage", json_string("config"));
		json_object_set_new(out, "errno", json_string(errno_name(errno)));
		json_object_set_new(out, "error", json_string(err));
		goto print;
	}
	if (timeout >= 0)
		conf.timeout = timeout;
	if (retries >= 0)
		conf.retries = retries;
	if ((c = s3_client_new(&conf, &cancel_flag, err, sizeof(err))) == NULL) {
		fprintf(stderr, "s3probe: %s\n", err);
		return 1;
	}
	if (page > 0)
		s3_client_set_page_size(c, page);
	if (cancel_after_ms >= 0 &&
	    pthread_create(&th, NULL, cancel_thread, NULL) != 0)
		return 2;
	t0 = now_ms();
	if (strcmp(cmd, "head-bucket") == 0) {
		rv = s3_head_bucket(c, argv[1]);
	} else if (strcmp(cmd, "head") == 0) {
		uint64_t size;

		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		if ((rv = s3_head_object(c, bucket, key, &size, etag,
		    sizeof(etag))) == 0)
			json_object_set_new(out, "size", json_integer(
			    (json_int_t)size));
		if (rv == 0)
			json_object_set_new(out, "etag", json_string(etag));
	} else if (strcmp(cmd, "put") == 0 && argc == 3) {
		size_t	 len;
		char	*body = read_file(argv[2], &len);

		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		rv = s3_put_object(c, bucket, key, body, len);
		free(body);
	} else if (strcmp(cmd, "get") == 0 && argc == 5) {
		uint64_t	 off = strtoull(argv[2], NULL, 10);
		size_t		 len = strtoull(argv[3], NULL, 10);
		char		*buf = malloc(len + 1);
		FILE		*f;

		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		if ((rv = s3_get_range(c, bucket, key, off, buf, len)) == 0) {
			if ((f = fopen(argv[4], "w")) == NULL ||
			    fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
				fprintf(stderr, "s3probe: %s: %s\n", argv[4],
				    strerror(errno));
				return 2;
			}
		}
		free(buf);
	} else if (strcmp(cmd, "delete") == 0) {
		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		rv = s3_delete_object(c, bucket, key);
	} else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "list-uploads") == 0) {
		json_t *a = json_array();

		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		rv = cmd[4] == '\0' ?
		    s3_list_objects(c, bucket, key, list_object, a) :
		    s3_multipart_list(c, bucket, key, list_upload, a);
		json_object_set_new(out, cmd[4] == '\0' ? "keys" : "uploads", a);
	} else if ((strcmp(cmd, "upload") == 0 || strcmp(cmd, "open") == 0) &&
	    argc == 4) {
		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		rv = upload(c, bucket, key, argv[2], strtoull(argv[3], NULL, 0),
		    cmd[0] == 'u', out);
	} else if (strcmp(cmd, "abort") == 0 && argc == 3) {
		parse_url(argv[1], bucket, sizeof(bucket), key, sizeof(key));
		rv = s3_multipart_abort(c, bucket, key, argv[2]);
	} else {
		usage();
	}
	saved = errno;
	json_object_set_new(out, "elapsed_ms", json_integer((json_int_t)(
	    now_ms() - t0)));
	json_object_set_new(out, "tries", json_integer(s3_client_tries(c)));
	json_object_set_new(out, "status", json_integer(s3_client_status(c)));
	json_object_set_new(out, "ok", json_boolean(rv == 0));
	if (rv != 0) {
		json_object_set_new(out, "errno", json_string(errno_name(saved)));
		json_object_set_new(out, "error", json_string(s3_error(c)));
	}
	s3_client_free(c);
print:
	ch = json_dumpf(out, stdout, JSON_COMPACT);
	printf("\n");
	json_decref(out);
	return ch == 0 && rv == 0 ? 0 : 1;
}
