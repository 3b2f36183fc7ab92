/*
 * sinks3probe: drives the daemon's S3 sink (daemon/format/sink-s3.c)
 * against a real S3 service, for tests/integration/sink_s3.sh.  It links
 * the sink and the S3 client themselves, not snapd: what it proves is the
 * sink's own behaviour, part by part.
 *
 *	sinks3probe --endpoint URL --credentials FILE --bucket B --key K
 *	    [--part-size 5M] [--in-flight 2] [--timeout S] [--retries N]
 *	    [--size BYTES] [--writes small|uneven|BYTES] [--copy FILE]
 *	    [--hold-at BYTES]... [--hold-before-end] [--hold-before-abort]
 *	    [--report-after S]
 *	    [--cancel-after S] [--end finish|abort|free] [--efbig]
 *	sinks3probe --endpoint URL --credentials FILE --bucket B --list PREFIX
 *
 * It opens the sink, writes --size bytes of a fixed pattern (byte i is a
 * function of i only) in writes of the --writes sizes (small: 1 to 4097
 * bytes, uneven: growing from 1 byte to 3 MiB and again, a number: that
 * many bytes each), also into --copy so that a test can compare hashes,
 * then ends it as --end says.  Each step prints one line on stdout:
 *
 *	open url=s3://B/K upload_id=ID live=1 rss_kib=R
 *	hold BYTES parts=P		(--hold-at: sink_sync(), then waits for
 *					a line on stdin)
 *	hold end			(--hold-before-end, likewise)
 *	hold abort			(--hold-before-abort: after a failed
 *					finish, or before --end abort|free)
 *	report bytes=N rss_kib=R waits=W parts=P	(--report-after, a thread)
 *	write failed bytes=N errno=NAME cancel_ms=MS: MESSAGE
 *	efbig errno=NAME: MESSAGE
 *	finished bytes=N parts=P uploaded=U retries=R waits=W rss_kib=R live=0
 *	finish failed errno=NAME: MESSAGE
 *	stats parts=P uploaded=U retries=R waits=W	(after a failure, or
 *					before an abort or free)
 *	aborted live=0 ms=MS
 *	upload KEY ID			(--list: s3_multipart_list)
 *
 * --hold-at 0 holds before the first write.  --report-after and
 * --cancel-after count from the first hold's release (or the opening):
 * the first prints a report line from a thread, the second raises the
 * sink's cancel flag from one; cancel_ms is the time from the raise to the
 * failed write's return.  live is sink_s3_live() of the upload.  Exit 0
 * if every step did what was asked, 1 if one failed (its line says how),
 * 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "s3.h"
#include "sink.h"
#include "workload.h"

#define HOLDS_MAX	8

static struct {
	const char	*endpoint, *credentials, *bucket, *key, *copy, *list;
	const char	*writes, *end;
	uint64_t	 part_size, size, holds[HOLDS_MAX];
	int		 nholds, in_flight, timeout, retries;
	int		 hold_before_end, hold_before_abort, efbig;
	double		 report_after, cancel_after;
} opt = {
	.part_size = 5ULL << 20, .in_flight = 2, .timeout = 30, .retries = 4,
	.writes = "uneven", .end = "finish",
};

static struct sink	*sink;
static atomic_int	 cancel_flag;
static _Atomic uint64_t	 cancel_raised_ns;
static _Atomic uint64_t	 written;

static void
usage(void)
{
	fprintf(stderr, "usage: sinks3probe --endpoint URL --credentials FILE "
	    "--bucket B (--key K [--part-size 5M] [--in-flight 2] "
	    "[--timeout S] [--retries N] [--size BYTES] "
	    "[--writes small|uneven|BYTES] [--copy FILE] [--hold-at BYTES]... "
	    "[--hold-before-end] [--hold-before-abort] [--report-after S] "
	    "[--cancel-after S] "
	    "[--end finish|abort|free] [--efbig] | --list PREFIX)\n");
	exit(2);
}

static uint64_t
size_arg(const char *s)
{
	uint64_t v;

	if (parse_size(s, &v) == -1)
		usage();
	return v;
}

/* Byte i of the pattern: a function of i only, so any range is checkable. */
static void
pattern_fill(unsigned char *buf, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t at = off + i;

		buf[i] = (unsigned char)(mix64(at >> 3) >> ((at & 7) * 8));
	}
}

static long
rss_kib(void)
{
	char	 line[256];
	long	 kib = -1;
	FILE	*f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* The size of write number n. */
static size_t
write_size(unsigned n, size_t *piece)
{
	static const size_t small[] = { 1, 7, 100, 4095, 4096, 4097, 333, 2 };

	if (strcmp(opt.writes, "small") == 0)
		return small[n % (sizeof(small) / sizeof(small[0]))];
	if (strcmp(opt.writes, "uneven") == 0) {
		size_t now = *piece;

		*piece = *piece * 3 + 7;
		if (*piece > (3U << 20))
			*piece = 1;
		return now;
	}
	return (size_t)size_arg(opt.writes);
}

static void	start_timers(void);

static void
hold(const char *what)
{
	char line[64];

	printf("hold %s\n", what);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		die("hold %s: stdin closed", what);
	start_timers();
}

static void *
reporter(void *arg)
{
	struct sink_s3_stats st;

	usleep((useconds_t)(opt.report_after * 1e6));
	sink_s3_stats(sink, &st);
	printf("report bytes=%llu rss_kib=%ld waits=%llu parts=%llu\n",
	    (unsigned long long)atomic_load(&written), rss_kib(),
	    (unsigned long long)st.waits,
	    (unsigned long long)st.parts_uploaded);
	fflush(stdout);
	return NULL;
}

static void *
canceller(void *arg)
{
	usleep((useconds_t)(opt.cancel_after * 1e6));
	atomic_store(&cancel_raised_ns, now_ns());
	atomic_store(&cancel_flag, 1);
	return NULL;
}

/* The timer threads, joined before the sink is freed (they read it). */
static pthread_t	timers[2];
static int		ntimers;

static void
start_thread(void *(*fn)(void *))
{
	int	rc;

	if ((rc = pthread_create(&timers[ntimers], NULL, fn, NULL)) != 0)
		die("pthread_create: %s", strerror(rc));
	ntimers++;
}

/* --report-after and --cancel-after count from here: the first hold's
 * release, or the opening when there is no hold. */
static void
start_timers(void)
{
	static int started;

	if (started)
		return;
	started = 1;
	if (opt.report_after > 0)
		start_thread(reporter);
	if (opt.cancel_after > 0)
		start_thread(canceller);
}

static void
print_stats(void)
{
	struct sink_s3_stats st;

	sink_s3_stats(sink, &st);
	printf("stats parts=%llu uploaded=%llu retries=%llu waits=%llu\n",
	    (unsigned long long)st.parts_uploaded,
	    (unsigned long long)st.bytes_uploaded,
	    (unsigned long long)st.retries, (unsigned long long)st.waits);
}

static int
print_upload(void *arg, const char *key, const char *upload_id)
{
	printf("upload %s %s\n", key, upload_id);
	return 0;
}

static int
list_uploads(const struct s3_config *conf)
{
	struct s3_client	*c;
	char			 err[S3_ERROR_MAX];

	if ((c = s3_client_new(conf, NULL, err, sizeof(err))) == NULL)
		die("%s", err);
	if (s3_multipart_list(c, opt.bucket, opt.list, print_upload,
	    NULL) == -1)
		die("%s", s3_error(c));
	s3_client_free(c);
	return 0;
}

/* A write past S3_PARTS_MAX parts fails with EFBIG, before reading it. */
static int
try_efbig(void)
{
	uint64_t	 len = opt.part_size * S3_PARTS_MAX;
	void		*huge;
	int		 rc;

	huge = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_NORESERVE, -1, 0);
	if (huge == MAP_FAILED)
		die("mmap %llu bytes: %s", (unsigned long long)len,
		    strerror(errno));
	rc = sink_write(sink, huge, len);
	printf("efbig errno=%s: %s\n", rc == 0 ? "0" : strerrorname_np(errno),
	    rc == 0 ? "accepted" : sink_error(sink));
	munmap(huge, len);
	return rc == -1 && errno == EFBIG ? 0 : 1;
}

static int
write_all(int copyfd)
{
	unsigned char	*buf;
	size_t		 piece = 1, n, bufsize = 4U << 20;
	unsigned	 count = 0;
	int		 nexthold = 0;
	uint64_t	 off = 0, t;

	if (strcmp(opt.writes, "small") != 0 && strcmp(opt.writes,
	    "uneven") != 0 && size_arg(opt.writes) > bufsize)
		bufsize = size_arg(opt.writes);
	if ((buf = malloc(bufsize)) == NULL)
		die("malloc: %s", strerror(errno));
	for (;;) {
		while (nexthold < opt.nholds && off >= opt.holds[nexthold]) {
			struct sink_s3_stats	st;
			char			at[64];

			if (sink_sync(sink) == -1)
				die("sync: %s", sink_error(sink));
			sink_s3_stats(sink, &st);
			snprintf(at, sizeof(at), "%llu parts=%llu",
			    (unsigned long long)off,
			    (unsigned long long)st.parts_uploaded);
			hold(at);
			nexthold++;
		}
		if (off == opt.size)
			break;
		n = write_size(count++, &piece);
		if (n > opt.size - off)
			n = opt.size - off;
		pattern_fill(buf, off, n);
		if (copyfd != -1 && write(copyfd, buf, n) != (ssize_t)n)
			die("write %s: %s", opt.copy, strerror(errno));
		if (sink_write(sink, buf, n) == -1) {
			t = atomic_load(&cancel_raised_ns);
			printf("write failed bytes=%llu errno=%s cancel_ms=%lld: "
			    "%s\n", (unsigned long long)off,
			    strerrorname_np(errno),
			    t == 0 ? -1LL : (long long)((now_ns() - t) / 1000000),
			    sink_error(sink));
			free(buf);
			return -1;
		}
		off += n;
		atomic_store(&written, off);
	}
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "endpoint", required_argument, NULL, 'E' },
		{ "credentials", required_argument, NULL, 'C' },
		{ "bucket", required_argument, NULL, 'b' },
		{ "key", required_argument, NULL, 'k' },
		{ "part-size", required_argument, NULL, 'p' },
		{ "in-flight", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' },
		{ "retries", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "writes", required_argument, NULL, 'w' },
		{ "copy", required_argument, NULL, 'c' },
		{ "hold-at", required_argument, NULL, 'H' },
		{ "hold-before-end", no_argument, NULL, 'B' },
		{ "hold-before-abort", no_argument, NULL, 'A' },
		{ "report-after", required_argument, NULL, 'R' },
		{ "cancel-after", required_argument, NULL, 'X' },
		{ "end", required_argument, NULL, 'e' },
		{ "efbig", no_argument, NULL, 'F' },
		{ "list", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct s3_config	 conf;
	struct sink_s3_params	 p;
	struct sink_s3_stats	 st;
	char			 err[SINK_ERROR_MAX], upload_id[S3_UPLOAD_ID_MAX];
	int			 c, copyfd = -1, rc = 0;
	uint64_t		 t0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'E': opt.endpoint = optarg; break;
		case 'C': opt.credentials = optarg; break;
		case 'b': opt.bucket = optarg; break;
		case 'k': opt.key = optarg; break;
		case 'p': opt.part_size = size_arg(optarg); break;
		case 'i': opt.in_flight = atoi(optarg); break;
		case 't': opt.timeout = atoi(optarg); break;
		case 'r': opt.retries = atoi(optarg); break;
		case 's': opt.size = size_arg(optarg); break;
		case 'w': opt.writes = optarg; break;
		case 'c': opt.copy = optarg; break;
		case 'H':
			if (opt.nholds == HOLDS_MAX)
				usage();
			opt.holds[opt.nholds++] = size_arg(optarg);
			break;
		case 'B': opt.hold_before_end = 1; break;
		case 'A': opt.hold_before_abort = 1; break;
		case 'R': opt.report_after = atof(optarg); break;
		case 'X': opt.cancel_after = atof(optarg); break;
		case 'e': opt.end = optarg; break;
		case 'F': opt.efbig = 1; break;
		case 'l': opt.list = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || opt.endpoint == NULL || opt.credentials == NULL ||
	    opt.bucket == NULL || (opt.key == NULL && opt.list == NULL) ||
	    (strcmp(opt.end, "finish") != 0 && strcmp(opt.end, "abort") != 0 &&
	    strcmp(opt.end, "free") != 0))
		usage();
	if (strcmp(opt.writes, "small") != 0 &&
	    strcmp(opt.writes, "uneven") != 0 && size_arg(opt.writes) == 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init(LOG_LEVEL_INFO, 0);

	memset(&conf, 0, sizeof(conf));
	snprintf(conf.endpoint, sizeof(conf.endpoint), "%s", opt.endpoint);
	snprintf(conf.region, sizeof(conf.region), "us-east-1");
	conf.path_style = 1;
	conf.timeout = opt.timeout;
	conf.retries = opt.retries;
	if (s3_credentials_load(&conf, opt.credentials, getuid(), err,
	    sizeof(err)) == -1)
		die("%s", err);
	if (opt.list != NULL)
		return list_uploads(&conf);

	if (opt.copy != NULL && (copyfd = open(opt.copy, O_WRONLY | O_CREAT |
	    O_TRUNC | O_CLOEXEC, 0600)) == -1)
		die("open %s: %s", opt.copy, strerror(errno));
	memset(&p, 0, sizeof(p));
	p.conf = &conf;
	p.bucket = opt.bucket;
	p.key = opt.key;
	p.part_size = opt.part_size;
	p.parts_in_flight = opt.in_flight;
	p.cancel = &cancel_flag;
	if ((sink = sink_s3_open(&p, err, sizeof(err))) == NULL) {
		printf("open failed errno=%s: %s\n", strerrorname_np(errno),
		    err);
		return 1;
	}
	snprintf(upload_id, sizeof(upload_id), "%s", sink_s3_upload_id(sink));
	printf("open url=%s upload_id=%s live=%d rss_kib=%ld\n",
	    sink_s3_url(sink), upload_id, sink_s3_live(upload_id), rss_kib());
	if (opt.nholds == 0)
		start_timers();

	if (opt.efbig) {
		if (sink_write(sink, "x", 1) == -1)
			die("write: %s", sink_error(sink));
		rc = try_efbig();
	} else if (write_all(copyfd) == -1)
		rc = 1;
	if (copyfd != -1)
		close(copyfd);
	/* The figures before the end, when it will not be a finish. */
	if (rc != 0 || strcmp(opt.end, "finish") != 0)
		print_stats();
	if (opt.hold_before_end)
		hold("end");

	if (rc == 0 && strcmp(opt.end, "finish") == 0) {
		if (sink_finish(sink) == -1) {
			printf("finish failed errno=%s: %s\n",
			    strerrorname_np(errno), sink_error(sink));
			print_stats();
			rc = 1;
		} else {
			sink_s3_stats(sink, &st);
			printf("finished bytes=%llu parts=%llu uploaded=%llu "
			    "retries=%llu waits=%llu rss_kib=%ld live=%d\n",
			    (unsigned long long)sink_bytes(sink),
			    (unsigned long long)st.parts_uploaded,
			    (unsigned long long)st.bytes_uploaded,
			    (unsigned long long)st.retries,
			    (unsigned long long)st.waits, rss_kib(),
			    sink_s3_live(upload_id));
		}
	}
	if (opt.hold_before_abort && !sink->finished)
		hold("abort");
	while (ntimers > 0)
		pthread_join(timers[--ntimers], NULL);
	t0 = now_ns();
	if (strcmp(opt.end, "free") != 0 && !sink->finished)
		sink_abort(sink);
	sink_free(sink);
	if (strcmp(opt.end, "finish") != 0 || rc != 0)
		printf("aborted live=%d ms=%llu\n", sink_s3_live(upload_id),
		    (unsigned long long)((now_ns() - t0) / 1000000));
	return rc;
}
