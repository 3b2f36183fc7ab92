/*
 * stampwork: the target of the attach tests, a program that knows nothing
 * of snapd (it never calls libsnapclient): snapd snapshots it from outside
 * with `memsnapctl save --pid`, and the tests prove that the snapshot is one
 * instant of its memory and that the program never noticed.
 *
 * Its data is one anonymous mapping laid out as stamp.h says: a marker
 * page, one part per writer thread, and a range no one ever touches.
 * Writer threads (--threads, default 4) stamp their part page by page in a
 * fixed cyclic order as fast as they can (or with --pace-us a pause every
 * 64 writes), so that stampcheck can find, in a snapshot, the cut of each
 * writer.  Beside them, threads sit blocked in the system calls an attach
 * interrupts, and check after every wake-up that the call behaved as after
 * any ptrace stop:
 *   reader   read(2) on a pipe the ticker feeds one byte every 20 ms: data
 *	      in order, or EINTR (a signal); never EOF, another error, or a
 *	      byte lost or repeated;
 *   waiter   pthread_cond_wait on an error-checking mutex the ticker
 *	      signals every 20 ms: returns 0 holding the mutex, the
 *	      generation never goes back;
 *   sleeper  nanosleep 30 ms at a time: 0 only once the time has passed,
 *	      or EINTR with a remaining time no longer than asked, and the
 *	      loop resumes with it; each full sleep lasts at least 30 ms.
 * The ticker (which also feeds the others) watches the writers' progress
 * and keeps the longest time a writer went without a write
 * (writer-gap-max-us: an attach pause, or a writer blocked on snapd).
 * Anything unexpected is an anomaly: a line on stderr, and a non-zero exit.
 *
 * At start it writes --info FILE (JSON: pid, the region's address and
 * layout, the threads' kernel tids; written to FILE.tmp and renamed, so
 * its existence says stampwork is running), or prints it as its first
 * line without --info.  Then it reads commands on stdin, one a line,
 * answering each with one JSON line on stdout:
 *   marker TEXT  write TEXT into the marker page (zero-padded); a test
 *		  writes one marker before the snapshot and another after
 *		  it is armed, and stampcheck proves the snapshot holds the
 *		  first only
 *   status	  the figures so far (writes per writer, wake-ups, anomalies)
 *   stop	  stop (as SIGTERM or SIGINT do, also with stdin at EOF)
 * On stop the writers finish their write and are joined, and the program
 * checks its own memory (every part exactly as its writer's last write
 * says, the untouched range zero, the marker page the last marker); the
 * last line is {"reply": "final", ...}, and the exit status is 0 only if
 * there was no anomaly and the memory is intact.  SIGUSR2 is counted
 * ("signals"): a test sends it while the process is stopped and checks it
 * arrives afterwards.
 *
 * Threads: main (commands, signals, the self-check), writers
 * (writer_main: each writes only its part and its own seq), reader,
 * waiter, sleeper, ticker.  Shared counters are atomics; the waiter's
 * generation is under cond_lock.
 */
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "stamp.h"
#include "workload.h"

#define TICK_NS		(10ull * 1000000)	/* the ticker's period */
#define FEED_TICKS	2			/* feed reader, waiter: 20 ms */
#define SLEEP_NS	(30ull * 1000000)	/* the sleeper's sleep */
#define PACE_EVERY	64			/* writes between --pace-us */

struct writer {
	pthread_t		 thread;
	unsigned		 index;
	atomic_int		 tid;
	_Atomic uint64_t	 seq;		/* writes done */
	/* The ticker's: when seq last changed, and the longest gap. */
	uint64_t		 seen_seq;
	uint64_t		 seen_ns;
	_Atomic uint64_t	 gap_max_ns;
};

static struct {
	unsigned	 threads;
	uint64_t	 size;
	uint64_t	 untouched;	/* pages */
	const char	*info;
	unsigned	 pace_us;
} opt = { .threads = 4, .size = 64ull << 20, .untouched = 256 };

static uint8_t		*region;
static uint64_t		 pages_per_thread;
static uint64_t		 untouched_first;	/* page index */
static struct writer	*writers;
static char		 marker[STAMP_PAGE_SIZE];	/* the last one */

static atomic_int	 stopping;
static volatile sig_atomic_t stop_signal;
static _Atomic uint64_t	 anomalies, signals;

static int		 feed_pipe[2];
static _Atomic uint64_t	 reads, read_bytes, read_eintr;
static atomic_int	 reader_tid, waiter_tid, sleeper_tid, ticker_tid;

static pthread_mutex_t	 cond_lock;
static pthread_cond_t	 cond_tick = PTHREAD_COND_INITIALIZER;
static uint64_t		 cond_gen;		/* under cond_lock */
static _Atomic uint64_t	 cond_wakes;

static _Atomic uint64_t	 sleeps, sleep_eintr;

static void	anomaly(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
anomaly(const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&anomalies, 1);
	fprintf(stderr, "stampwork: anomaly: %s\n", buf);
}

static int
gettid_now(void)
{
	return (int)syscall(SYS_gettid);
}

static void
sleep_ns(uint64_t ns)
{
	struct timespec	 ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- the writers ---------------------------------------------------------- */

static void *
writer_main(void *arg)
{
	struct writer		*w = arg;
	volatile uint64_t	*part, *page;
	uint64_t		 seq = 0, stamp;

	atomic_store(&w->tid, gettid_now());
	part = (volatile uint64_t *)(region +
	    (1 + (uint64_t)w->index * pages_per_thread) * STAMP_PAGE_SIZE);
	while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
		if (++seq > STAMP_SEQ_MAX) {
			anomaly("writer %u: sequence numbers exhausted",
			    w->index);
			break;
		}
		page = part + (seq - 1) % pages_per_thread * STAMP_PAGE_WORDS;
		stamp = stamp_word(w->index, seq);
		/* The head, then the tail, in this order (stamp.h): a copy
		 * with a newer tail than head is torn. */
		page[0] = stamp;
		atomic_thread_fence(memory_order_release);
		page[STAMP_PAGE_WORDS - 1] = stamp;
		atomic_store_explicit(&w->seq, seq, memory_order_release);
		if (opt.pace_us > 0 && seq % PACE_EVERY == 0)
			usleep(opt.pace_us);
	}
	return NULL;
}

/* ---- the blocked threads -------------------------------------------------- */

static void *
reader_main(void *arg)
{
	unsigned char	 buf[64];
	unsigned	 want = 0;		/* the ticker's bytes: 0..0xfe */
	ssize_t		 n, i;

	atomic_store(&reader_tid, gettid_now());
	for (;;) {
		n = read(feed_pipe[0], buf, sizeof(buf));
		if (n == -1 && errno == EINTR) {
			atomic_fetch_add(&read_eintr, 1);
			continue;
		}
		if (n <= 0) {
			if (!atomic_load(&stopping))
				anomaly("reader: read returned %zd (%s)", n,
				    n == 0 ? "end of file" : strerror(errno));
			return NULL;
		}
		atomic_fetch_add(&reads, 1);
		atomic_fetch_add(&read_bytes, (uint64_t)n);
		for (i = 0; i < n; i++) {
			if (buf[i] == 0xff)	/* stop */
				return NULL;
			if (buf[i] != want)
				anomaly("reader: byte %u, expected %u (lost "
				    "or repeated)", buf[i], want);
			want = (buf[i] + 1u) % 0xff;
		}
	}
}

static void *
waiter_main(void *arg)
{
	uint64_t	 seen;
	int		 rc;

	atomic_store(&waiter_tid, gettid_now());
	if ((rc = pthread_mutex_lock(&cond_lock)) != 0) {
		anomaly("waiter: pthread_mutex_lock: %s", strerror(rc));
		return NULL;
	}
	seen = cond_gen;
	while (!atomic_load(&stopping)) {
		if ((rc = pthread_cond_wait(&cond_tick, &cond_lock)) != 0) {
			anomaly("waiter: pthread_cond_wait: %s", strerror(rc));
			break;
		}
		atomic_fetch_add(&cond_wakes, 1);
		if (cond_gen < seen)
			anomaly("waiter: generation went back from %" PRIu64
			    " to %" PRIu64, seen, cond_gen);
		seen = cond_gen;
	}
	/* An error-checking mutex: unlocking fails unless we hold it,
	 * which pthread_cond_wait must have made so. */
	if ((rc = pthread_mutex_unlock(&cond_lock)) != 0)
		anomaly("waiter: the mutex is not held after the wait: %s",
		    strerror(rc));
	return NULL;
}

static void *
sleeper_main(void *arg)
{
	struct timespec	 req, rem;
	uint64_t	 t0, left, asked, took;

	atomic_store(&sleeper_tid, gettid_now());
	while (!atomic_load(&stopping)) {
		t0 = now_ns();
		req.tv_sec = 0;
		req.tv_nsec = SLEEP_NS;
		for (;;) {
			asked = (uint64_t)req.tv_sec * 1000000000 +
			    (uint64_t)req.tv_nsec;
			memset(&rem, 0, sizeof(rem));
			if (nanosleep(&req, &rem) == 0)
				break;
			if (errno != EINTR) {
				anomaly("sleeper: nanosleep: %s",
				    strerror(errno));
				return NULL;
			}
			atomic_fetch_add(&sleep_eintr, 1);
			left = (uint64_t)rem.tv_sec * 1000000000 +
			    (uint64_t)rem.tv_nsec;
			if (rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000 ||
			    left > asked) {
				anomaly("sleeper: EINTR with %" PRIu64
				    " ns remaining of %" PRIu64, left, asked);
				break;
			}
			req = rem;
		}
		took = now_ns() - t0;
		atomic_fetch_add(&sleeps, 1);
		if (took < SLEEP_NS)
			anomaly("sleeper: slept %" PRIu64 " ns of %llu",
			    took, SLEEP_NS);
	}
	return NULL;
}

/* Every TICK_NS: note the writers' progress; every FEED_TICKS: a byte for
 * the reader, a new generation for the waiter. */
static void *
ticker_main(void *arg)
{
	struct writer	*w;
	uint64_t	 tick = 0, now, seq, gap;
	unsigned char	 byte = 0;
	unsigned	 i;

	atomic_store(&ticker_tid, gettid_now());
	now = now_ns();
	for (i = 0; i < opt.threads; i++)
		writers[i].seen_ns = now;
	while (!atomic_load(&stopping)) {
		sleep_ns(TICK_NS);
		now = now_ns();
		for (i = 0; i < opt.threads; i++) {
			w = &writers[i];
			seq = atomic_load(&w->seq);
			gap = now - w->seen_ns;
			if (seq != w->seen_seq) {
				w->seen_seq = seq;
				w->seen_ns = now;
			}
			if (gap > atomic_load(&w->gap_max_ns))
				atomic_store(&w->gap_max_ns, gap);
		}
		if (++tick % FEED_TICKS != 0)
			continue;
		if (write(feed_pipe[1], &byte, 1) != 1)
			anomaly("ticker: write to the reader's pipe: %s",
			    strerror(errno));
		byte = (byte + 1) % 0xff;
		pthread_mutex_lock(&cond_lock);
		cond_gen++;
		pthread_cond_signal(&cond_tick);
		pthread_mutex_unlock(&cond_lock);
	}
	return NULL;
}

/* ---- reports -------------------------------------------------------------- */

static json_t *
status_json(const char *reply)
{
	json_t		*o, *seqs, *gaps;
	uint64_t	 total = 0, gap = 0, g, s;
	unsigned	 i;

	seqs = json_array();
	gaps = json_array();
	for (i = 0; i < opt.threads; i++) {
		s = atomic_load(&writers[i].seq);
		g = atomic_load(&writers[i].gap_max_ns) / 1000;
		json_array_append_new(seqs, json_integer((json_int_t)s));
		json_array_append_new(gaps, json_integer((json_int_t)g));
		total += s;
		if (g > gap)
			gap = g;
	}
	o = json_pack("{s:s, s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I}",
	    "reply", reply,
	    "seqs", seqs,
	    "writes", (json_int_t)total,
	    "writer-gap-max-us-each", gaps,
	    "writer-gap-max-us", (json_int_t)gap,
	    "reads", (json_int_t)atomic_load(&reads),
	    "read-eintr", (json_int_t)atomic_load(&read_eintr),
	    "cond-wakes", (json_int_t)atomic_load(&cond_wakes),
	    "sleeps", (json_int_t)atomic_load(&sleeps),
	    "sleep-eintr", (json_int_t)atomic_load(&sleep_eintr),
	    "signals", (json_int_t)atomic_load(&signals),
	    "anomalies", (json_int_t)atomic_load(&anomalies),
	    "pid", (json_int_t)getpid());
	if (o == NULL)
		die("out of memory building the status");
	return o;
}

static void
print_json(json_t *o)
{
	char	*s;

	if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
		die("out of memory printing JSON");
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static void
write_info(void)
{
	json_t		*o, *tids;
	char		 tmp[4096];
	unsigned	 i;

	tids = json_array();
	for (i = 0; i < opt.threads; i++)
		json_array_append_new(tids,
		    json_integer(atomic_load(&writers[i].tid)));
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:o, s:{s:i, s:i, s:i, s:i}}",
	    "pid", (json_int_t)getpid(),
	    "region-start", (json_int_t)(uintptr_t)region,
	    "region-size", (json_int_t)opt.size,
	    "page-size", (json_int_t)STAMP_PAGE_SIZE,
	    "threads", (json_int_t)opt.threads,
	    "marker-page", (json_int_t)0,
	    "writer-first-page", (json_int_t)1,
	    "pages-per-thread", (json_int_t)pages_per_thread,
	    "untouched-first-page", (json_int_t)untouched_first,
	    "untouched-pages", (json_int_t)opt.untouched,
	    "writer-tids", tids,
	    "tids",
	    "reader", atomic_load(&reader_tid),
	    "waiter", atomic_load(&waiter_tid),
	    "sleeper", atomic_load(&sleeper_tid),
	    "ticker", atomic_load(&ticker_tid));
	if (o == NULL)
		die("out of memory building the info");
	json_object_set_new(o, "region-start-hex",
	    json_sprintf("%#" PRIxPTR, (uintptr_t)region));
	if (opt.info == NULL) {
		print_json(o);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", opt.info);
	if (json_dump_file(o, tmp, JSON_COMPACT) == -1 ||
	    rename(tmp, opt.info) == -1)
		die("cannot write %s", opt.info);
	json_decref(o);
}

/* ---- the self-check ------------------------------------------------------- */

/* Every writer stopped and joined: is the memory what they wrote? */
static json_t *
self_check(void)
{
	struct stamp_verdict	 v;
	json_t			*o;
	uint64_t		 wrong = 0, nonzero;
	unsigned		 i;
	int			 marker_ok;

	for (i = 0; i < opt.threads; i++) {
		stamp_check_part(region + (1 + (uint64_t)i *
		    pages_per_thread) * STAMP_PAGE_SIZE, pages_per_thread, i,
		    atomic_load(&writers[i].seq), 0, &v);
		if (v.wrong > 0)
			fprintf(stderr, "stampwork: writer %u: %" PRIu64
			    " pages not as its write %" PRIu64 " left them "
			    "(first: page %" PRId64 ")\n", i, v.wrong, v.cut,
			    v.first_wrong);
		wrong += v.wrong;
	}
	nonzero = stamp_nonzero_pages(region + untouched_first *
	    STAMP_PAGE_SIZE, opt.untouched);
	if (nonzero > 0)
		fprintf(stderr, "stampwork: %" PRIu64 " untouched pages are "
		    "not zero\n", nonzero);
	marker_ok = memcmp(region, marker, STAMP_PAGE_SIZE) == 0;
	if (!marker_ok)
		fprintf(stderr, "stampwork: the marker page is not the last "
		    "marker written\n");
	o = status_json("final");
	json_object_set_new(o, "wrong-pages", json_integer((json_int_t)wrong));
	json_object_set_new(o, "untouched-nonzero",
	    json_integer((json_int_t)nonzero));
	json_object_set_new(o, "marker-ok", json_boolean(marker_ok));
	json_object_set_new(o, "ok", json_boolean(wrong == 0 &&
	    nonzero == 0 && marker_ok && atomic_load(&anomalies) == 0));
	return o;
}

/* ---- main ----------------------------------------------------------------- */

static void
on_stop_signal(int sig)
{
	stop_signal = sig;
}

static void
on_usr2(int sig)
{
	atomic_fetch_add(&signals, 1);
}

/* One command line; returns 1 on "stop". */
static int
command(char *line)
{
	size_t	 len;

	if (strncmp(line, "marker ", 7) == 0) {
		len = strlen(line + 7);
		if (len >= STAMP_PAGE_SIZE)
			len = STAMP_PAGE_SIZE - 1;
		memset(marker, 0, sizeof(marker));
		memcpy(marker, line + 7, len);
		memcpy(region, marker, STAMP_PAGE_SIZE);
		print_json(json_pack("{s:s, s:s}", "reply", "marker",
		    "text", marker));
	} else if (strcmp(line, "status") == 0)
		print_json(status_json("status"));
	else if (strcmp(line, "stop") == 0)
		return 1;
	else if (*line != '\0')
		print_json(json_pack("{s:s, s:s}", "reply", "error",
		    "error", "unknown command"));
	return 0;
}

/* Read commands until "stop", SIGTERM or SIGINT.  Those two are blocked
 * everywhere but here, in ppoll. */
static void
command_loop(const sigset_t *waitmask)
{
	struct pollfd	 pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	char		 buf[8192], *nl;
	size_t		 have = 0;
	ssize_t		 n;

	while (!stop_signal) {
		if (ppoll(&pfd, 1, NULL, waitmask) == -1) {
			if (errno == EINTR)
				continue;
			die("ppoll: %s", strerror(errno));
		}
		if (pfd.revents == 0)
			continue;
		n = read(STDIN_FILENO, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0) {
			/* End of the commands: run until a signal. */
			pfd.fd = -1;
			continue;
		}
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			if (command(buf))
				return;
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
		if (have == sizeof(buf) - 1)
			have = 0;	/* a line too long: dropped */
	}
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: stampwork [--threads N] [--size BYTES] "
	    "[--untouched PAGES] [--pace-us US]\n"
	    "\t[--info FILE]\n");
	exit(2);
}

static void
parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "threads",	required_argument, NULL, 't' },
		{ "size",	required_argument, NULL, 's' },
		{ "untouched",	required_argument, NULL, 'u' },
		{ "pace-us",	required_argument, NULL, 'p' },
		{ "info",	required_argument, NULL, 'i' },
		{ NULL,		0,		   NULL, 0 },
	};
	unsigned	 u;
	int		 ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (parse_uint(optarg, STAMP_THREADS_MAX,
			    &opt.threads) == -1 || opt.threads == 0)
				die("--threads: 1 to %u", STAMP_THREADS_MAX);
			break;
		case 's':
			if (parse_size(optarg, &opt.size) == -1 ||
			    opt.size % STAMP_PAGE_SIZE != 0)
				die("--size: whole pages, not %s", optarg);
			break;
		case 'u':
			if (parse_uint(optarg, 1u << 30, &u) == -1)
				die("--untouched: a number of pages");
			opt.untouched = u;
			break;
		case 'p':
			if (parse_uint(optarg, 1000000, &opt.pace_us) == -1)
				die("--pace-us: 0 to 1000000");
			break;
		case 'i':
			opt.info = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

static void
start(pthread_t *t, void *(*fn)(void *), void *arg, const char *what)
{
	int	 rc;

	if ((rc = pthread_create(t, NULL, fn, arg)) != 0)
		die("starting the %s thread: %s", what, strerror(rc));
}

int
main(int argc, char **argv)
{
	pthread_mutexattr_t	 ma;
	pthread_t		 reader, waiter, sleeper, ticker;
	struct sigaction	 sa;
	sigset_t		 block, waitmask;
	unsigned char		 stop = 0xff;
	uint64_t		 pages;
	unsigned		 i;
	json_t			*final;
	int			 ok, ready;

	parse_options(argc, argv);
	pages = opt.size / STAMP_PAGE_SIZE;
	if (pages < 1 + opt.untouched + opt.threads)
		die("--size %" PRIu64 " holds no page per writer", opt.size);
	pages_per_thread = (pages - 1 - opt.untouched) / opt.threads;
	untouched_first = 1 + pages_per_thread * opt.threads;
	region = mmap(NULL, opt.size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (region == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %s", opt.size, strerror(errno));

	/* Signals: SIGTERM and SIGINT only in the command loop's ppoll;
	 * SIGUSR2 anywhere, without SA_RESTART, so that it may interrupt
	 * the blocked threads with EINTR as any signal can. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &waitmask);

	if (pipe(feed_pipe) == -1)
		die("pipe: %s", strerror(errno));
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&cond_lock, &ma);

	if ((writers = calloc(opt.threads, sizeof(*writers))) == NULL)
		die("out of memory");
	for (i = 0; i < opt.threads; i++) {
		writers[i].index = i;
		start(&writers[i].thread, writer_main, &writers[i], "writer");
	}
	start(&reader, reader_main, NULL, "reader");
	start(&waiter, waiter_main, NULL, "waiter");
	start(&sleeper, sleeper_main, NULL, "sleeper");
	start(&ticker, ticker_main, NULL, "ticker");
	/* The info names every thread: wait until each has said who it is
	 * and every writer has written. */
	do {
		usleep(1000);
		ready = atomic_load(&reader_tid) && atomic_load(&waiter_tid) &&
		    atomic_load(&sleeper_tid) && atomic_load(&ticker_tid);
		for (i = 0; i < opt.threads; i++)
			ready = ready && atomic_load(&writers[i].seq) > 0;
	} while (!ready);
	write_info();

	command_loop(&waitmask);

	atomic_store(&stopping, 1);
	for (i = 0; i < opt.threads; i++)
		pthread_join(writers[i].thread, NULL);
	pthread_join(ticker, NULL);
	if (write(feed_pipe[1], &stop, 1) != 1)
		anomaly("stopping the reader: %s", strerror(errno));
	pthread_mutex_lock(&cond_lock);
	pthread_cond_signal(&cond_tick);
	pthread_mutex_unlock(&cond_lock);
	pthread_join(reader, NULL);
	pthread_join(waiter, NULL);
	pthread_join(sleeper, NULL);

	final = self_check();
	ok = json_is_true(json_object_get(final, "ok"));
	print_json(final);
	return ok ? 0 : 1;
}
