/*
 * memsnapctl metrics [--output FILE]: snapd's daemon-wide figures since it
 * started (query-metrics) in Prometheus's text exposition format, version
 * 0.0.4, for node_exporter's textfile collector (memsnap-metrics.timer
 * runs it every 15 s).  Counters end in _total, quantities are in base
 * units (bytes, seconds), each metric has its # HELP and # TYPE lines, and
 * the two histograms have cumulative _bucket{le=...} lines up to +Inf,
 * _sum and _count; the bucket bounds are snapd's own (query-metrics gives
 * them), so this file never repeats them.
 *
 * --output FILE replaces FILE atomically: the text goes into a temporary
 * file in FILE's directory (a name starting with '.', so the collector,
 * which reads *.prom only, never sees it half written), made mode 0644,
 * then renamed over FILE.  Without it the text goes to stdout.  When snapd
 * cannot be reached the text is just snapd_up 0 (written all the same, so
 * the figures of a daemon that stopped do not linger as if current) and
 * the exit status 3.  With -j the query-metrics reply is printed as JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memsnapctl.h"

static int	cmd_metrics_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_metrics_entry = {
	.name = "metrics",
	.args = { "[--output FILE]", 0, 2 },
	/* Not CMD_DAEMON: unreachable, it still writes snapd_up 0. */
	.help = "print snapd's figures for Prometheus (node_exporter)",
	.exec = cmd_metrics_exec,
};

/* One figure of query-metrics as one Prometheus counter or gauge. */
struct metric {
	const char	*name;
	const char	*type;		/* "counter" or "gauge" */
	const char	*key;		/* its member in query-metrics */
	int		 ms;		/* key is in milliseconds: print seconds */
	const char	*help;
};

static const struct metric metric_table[] = {
	{ "snapd_uptime_seconds", "gauge", "uptime-ms", 1,
	  "Seconds since snapd started accepting connections." },
	{ "snapd_snapshots_running", "gauge", "snapshots-active", 0,
	  "Snapshots started and not yet done (arming, pre-armed, running "
	  "or finishing)." },
	{ "snapd_snapshots_started_total", "counter", "snapshots-total", 0,
	  "Snapshots started since snapd started." },
	{ "snapd_snapshots_completed_total", "counter",
	  "snapshots-completed", 0,
	  "Snapshots completed since snapd started." },
	{ "snapd_snapshots_failed_total", "counter", "snapshots-failed", 0,
	  "Snapshots failed or cancelled since snapd started." },
	{ "snapd_snapshots_cancelled_total", "counter",
	  "snapshots-cancelled", 0,
	  "Snapshots cancelled since snapd started (also counted as "
	  "failed)." },
	{ "snapd_written_bytes_total", "counter", "bytes-written", 0,
	  "Bytes written by every snapshot, finished and running." },
	{ "snapd_pages_saved_total", "counter", "pages-saved", 0,
	  "4 KiB pages saved by every snapshot, by either path." },
	{ "snapd_pages_faulted_total", "counter", "pages-faulted", 0,
	  "4 KiB pages copied on the fault path, before the process's "
	  "first write to them." },
	{ "snapd_pages_swept_total", "counter", "pages-swept", 0,
	  "4 KiB pages read by the writer's sweep." },
	{ "snapd_huge_pages_faulted_total", "counter", "huge-faulted", 0,
	  "2 MiB huge pages copied whole on the fault path." },
	{ "snapd_huge_pages_swept_total", "counter", "huge-swept", 0,
	  "2 MiB huge pages the sweep saved whole." },
	{ "snapd_pages_lost_total", "counter", "pages-lost", 0,
	  "4 KiB pages recorded lost (discarded or unmapped by the process "
	  "before they were saved)." },
	{ "snapd_buffer_used_bytes", "gauge", "buffer-used", 0,
	  "Bytes of pages held in the running snapshots' page buffers "
	  "now." },
	{ "snapd_buffer_size_bytes", "gauge", "buffer-size", 0,
	  "Bytes of page buffer of the running snapshots (their capacity)." },
	{ "snapd_buffer_full_waits_total", "counter", "buffer-full-waits", 0,
	  "Faults that waited for a free page-buffer slot." },
};

/* A histogram of query-metrics ({"bounds-us", "counts", "sum-us"}). */
struct metric_hist {
	const char	*name;
	const char	*key;
	const char	*help;
};

static const struct metric_hist metric_hist_table[] = {
	{ "snapd_arm_pause_seconds", "arm-histogram",
	  "The process's pause to arm each snapshot (write-protecting its "
	  "memory)." },
	{ "snapd_fault_stall_seconds", "stall-histogram",
	  "How long snapd held each write fault it copied pages for, from "
	  "taking the fault to waking the thread (a full buffer included)." },
};

#define METRICS_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A member of o that must be a non-negative integer: 0, or -1 saying so. */
static int
metrics_u64(const json_t *o, const char *key, uint64_t *v)
{
	const json_t *j = json_object_get(o, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0) {
		ctl_warnx("metrics: snapd's query-metrics has no %s "
		    "(a non-negative integer)", key);
		return -1;
	}
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

/* Microseconds as seconds, exactly (no float rounding). */
static void
metrics_print_us(FILE *f, uint64_t us)
{
	fprintf(f, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

/* One histogram: cumulative buckets, checked as they are read. */
static int
metrics_hist(FILE *f, const json_t *ret, const struct metric_hist *mh)
{
	const json_t	*h = json_object_get(ret, mh->key);
	const json_t	*bounds = json_object_get(h, "bounds-us");
	const json_t	*counts = json_object_get(h, "counts");
	uint64_t	 bound = 0, prev = 0, count, total = 0, sum;
	size_t		 i, n = json_array_size(bounds);

	if (!json_is_array(bounds) || !json_is_array(counts) ||
	    json_array_size(counts) != n + 1 ||
	    metrics_u64(h, "sum-us", &sum) == -1) {
		ctl_warnx("metrics: snapd's %s is not {\"bounds-us\": [N "
		    "bounds], \"counts\": [N + 1 counts], \"sum-us\"}",
		    mh->key);
		return -1;
	}
	metrics_head(f, mh->name, "histogram", mh->help);
	for (i = 0; i <= n; i++) {
		const json_t *b = json_array_get(bounds, i);
		const json_t *c = json_array_get(counts, i);

		if ((i < n && (!json_is_integer(b) ||
		    (bound = (uint64_t)json_integer_value(b)) <= prev)) ||
		    !json_is_integer(c) || json_integer_value(c) < 0) {
			ctl_warnx("metrics: snapd's %s: bucket %zu is not an "
			    "increasing bound with a count", mh->key, i);
			return -1;
		}
		count = (uint64_t)json_integer_value(c);
		total += count;
		fprintf(f, "%s_bucket{le=\"", mh->name);
		if (i < n) {
			metrics_print_us(f, bound);
			prev = bound;
		} else
			fputs("+Inf", f);
		fprintf(f, "\"} %" PRIu64 "\n", total);
	}
	fprintf(f, "%s_sum ", mh->name);
	metrics_print_us(f, sum);
	fprintf(f, "\n%s_count %" PRIu64 "\n", mh->name, total);
	return 0;
}

static void
metrics_up(FILE *f, int up)
{
	metrics_head(f, "snapd_up", "gauge",
	    "Whether memsnapctl metrics reached snapd (1) or not (0).");
	fprintf(f, "snapd_up %d\n", up);
}

/* The exposition of the query-metrics reply ret into f; 0, or -1. */
static int
metrics_text(FILE *f, const json_t *ret)
{
	const struct metric	*m;
	uint64_t		 v;
	size_t			 i;

	metrics_up(f, 1);
	for (i = 0; i < METRICS_NELEM(metric_table); i++) {
		m = &metric_table[i];
		if (metrics_u64(ret, m->key, &v) == -1)
			return -1;
		metrics_head(f, m->name, m->type, m->help);
		fprintf(f, "%s ", m->name);
		if (m->ms)
			metrics_print_us(f, v * 1000);
		else
			fprintf(f, "%" PRIu64, v);
		fputc('\n', f);
	}
	for (i = 0; i < METRICS_NELEM(metric_hist_table); i++)
		if (metrics_hist(f, ret, &metric_hist_table[i]) == -1)
			return -1;
	return 0;
}

/*
 * Replace path with text, atomically: a temporary file beside it, mode
 * 0644 whatever the umask, renamed over it.  0, or -1 having said why.
 */
static int
metrics_write_file(const char *path, const char *text, size_t len)
{
	char	*copy, *dir, *base, *tmp = NULL;
	int	 fd = -1, rc = -1, created = 0;
	ssize_t	 w;
	size_t	 off = 0;

	if ((copy = strdup(path)) == NULL ||
	    (base = strdup(basename(copy))) == NULL) {
		ctl_warnx("metrics: out of memory");
		free(copy);
		return -1;
	}
	dir = dirname(copy);
	if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, base) == -1) {
		ctl_warnx("metrics: out of memory");
		tmp = NULL;
		goto out;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		ctl_warnx("metrics: cannot create a temporary file in %s: %s",
		    dir, strerror(errno));
		goto out;
	}
	created = 1;
	while (off < len) {
		if ((w = write(fd, text + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			ctl_warnx("metrics: writing %s: %s", tmp,
			    strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, 0644) == -1) {
		ctl_warnx("metrics: chmod 0644 %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		ctl_warnx("metrics: closing %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		ctl_warnx("metrics: renaming %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	created = 0;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	free(base);
	free(copy);
	return rc;
}

/* --output's FILE, or NULL for stdout; exits on a usage error. */
static const char *
metrics_output(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "output",	required_argument,	NULL,	'o' },
		{ NULL,		0,			NULL,	0 },
	};
	const char	*output = NULL;
	int		 ch;

	/* getopt wants the command's name in argv[0]: it is argv[-1]. */
	argc++;
	argv--;
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (ch != 'o')
			usage_error("metrics: unknown option or missing "
			    "argument: %s", argv[optind - 1]);
		if (*optarg == '\0')
			usage_error("metrics: --output is empty");
		output = optarg;
	}
	if (optind < argc)
		usage_error("metrics: unexpected argument %s", argv[optind]);
	return output;
}

static int
cmd_metrics_exec(struct ctl *ctl, int argc, char **argv)
{
	const char	*output = metrics_output(argc, argv);
	json_t		*ret = NULL;
	char		*text = NULL;
	size_t		 len = 0;
	FILE		*f;
	int		 status = EXIT_OK;

	if ((ctl->client = snap_connect(ctl->socket)) == NULL) {
		ctl_warnx("cannot reach snapd: %s", snap_strerror(NULL));
		status = EXIT_UNREACHABLE;
	} else if ((ret = ctl_execute(ctl, "query-metrics", NULL,
	    &status)) == NULL) {
		if (status != EXIT_UNREACHABLE)
			return status;
	} else if (ctl->json) {
		ctl_print_json(ret);
		json_decref(ret);
		return EXIT_OK;
	}

	if ((f = open_memstream(&text, &len)) == NULL) {
		ctl_warnx("metrics: open_memstream: %s", strerror(errno));
		json_decref(ret);
		return EXIT_FAILED;
	}
	if (ret == NULL)
		metrics_up(f, 0);
	else if (metrics_text(f, ret) == -1)
		status = EXIT_FAILED;
	json_decref(ret);
	if (fclose(f) == EOF) {
		ctl_warnx("metrics: building the text: %s", strerror(errno));
		status = EXIT_FAILED;
	}
	if (status == EXIT_OK || status == EXIT_UNREACHABLE) {
		if (output == NULL)
			fwrite(text, 1, len, stdout);
		else if (metrics_write_file(output, text, len) == -1)
			status = EXIT_FAILED;
	}
	free(text);
	return status;
}
