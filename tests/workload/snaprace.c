/*
 * snaprace: the workload of tests/integration/races.sh.  It snapshots one
 * region of its own memory (1024 pages, page i holding page_fill(i, 1) at
 * the armed instant) while it changes its address space at a moment that
 * snapd's debug-only test hook (daemon/engine/testpause.h) makes exact: the hook
 * pauses snapd's writer (or fault) thread after it claimed a page and
 * before it read it; snaprace does its action, then says go.
 *
 *   snaprace --socket S --hooks DIR --name N --mode MODE
 *
 * MODE:
 *   exec          after arming, exec a new image (this binary, --image)
 *                 that maps other bytes at the region's address.  The
 *                 snapshot must fail saying why; races.sh checks that.
 *   main-exit     the main thread exits while another thread runs on and
 *                 waits for the snapshot: it must complete, exact.
 *   mremap-writer the writer pauses on the run of pages 512..575; those
 *                 move (MREMAP_DONTUNMAP) while the fault thread is held
 *                 on a full one-slot buffer, so the move is not yet read
 *                 when the writer reads the old address (zeros now).
 *   mremap-fault  the fault thread pauses on a fault at page 800; pages
 *                 768..831 move meanwhile (the move cannot be read: the
 *                 only reader is paused).
 *   moves-overflow  70 single-page moves (MREMAP_DONTUNMAP) while the
 *                 writer pauses: the 64 first are followed, the 6 others
 *                 must be recorded LOST, never saved as the zeros the old
 *                 addresses now hold.
 *   pending-flood 300 threads fault on the 64 pages the paused writer
 *                 holds, then a thread discards other pages
 *                 (MADV_DONTNEED): the snapshot must complete.
 * Except for exec, it prints one JSON line: completed, error, pages-lost
 * (snapd's figure), lost-pages and wrong-pages (from restoring the file
 * into memory pre-filled with a marker), and exits 0 if it could tell.
 *
 * Threads: the main thread does everything but the actions that block in
 * the kernel until snapd reads an event (mover, discarder), and the
 * faulting writers; main-exit hands the rest to a survivor thread.
 */
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snapclient.h"
#include "workload.h"

#define PAGE		4096u
#define NPAGES		1024u
#define FLOOD		300
#define MOVES		70

static const char	*sock, *hooks, *name, *mode;
static uint8_t		*region;
static struct snap_client *client;
static uint64_t		 snap_id;
static char		 self_exe[4096];

static void
page_fill(uint8_t *p, uint64_t i, uint32_t v)
{
	uint64_t *w = (uint64_t *)(void *)p;

	for (unsigned k = 0; k < PAGE / 8; k++)
		w[k] = ((i << 32) | v) * 0x9E3779B97F4A7C15ULL + k + 1;
}

static void
hook_path(char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "%s/%s.%s", hooks, name, suffix);
}

static void
hook_write(const char *lines)
{
	char	 path[4096];
	FILE	*f;

	hook_path(path, sizeof(path), "pause");
	if ((f = fopen(path, "w")) == NULL || fputs(lines, f) == EOF ||
	    fclose(f) == EOF)
		die("write %s: %s", path, strerror(errno));
}

/* Wait for snapd's hook to pause; 0, or -1 after 10 s (no hook). */
static int
hook_wait_paused(void)
{
	char path[4096];

	hook_path(path, sizeof(path), "paused");
	for (int i = 0; i < 10000; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(1000);
	}
	fprintf(stderr, "snaprace: snapd never paused (%s): is it running "
	    "with SNAPD_TEST_HOOKS=1?\n", path);
	return -1;
}

static void
hook_go(void)
{
	char	path[4096];
	int	fd;

	hook_path(path, sizeof(path), "go");
	if ((fd = open(path, O_WRONLY | O_CREAT, 0644)) == -1)
		die("create %s: %s", path, strerror(errno));
	close(fd);
}

/* Is virtual page addr of this process present (pagemap bit 63)? */
static int
page_present(const void *addr)
{
	uint64_t	e = 0;
	int		fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd == -1)
		die("open /proc/self/pagemap: %s", strerror(errno));
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PAGE *
	    sizeof(e))) != sizeof(e))
		die("read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	return (int)(e >> 63);
}

static void
wait_present(const void *addr)
{
	for (int i = 0; i < 10000 && !page_present(addr); i++)
		usleep(1000);
	if (!page_present(addr))
		die("the moved page never showed up at %p", addr);
}

static void
arm(uint64_t buffer)
{
	struct snap_region	r = { (uintptr_t)region, NPAGES * PAGE, "race" };
	struct snap_options	o = { .name = name, .level = 1,
				    .buffer_size = buffer };

	if ((client = snap_connect(sock)) == NULL)
		die("connect: %s", snap_strerror(NULL));
	if (snap_start(client, &r, 1, &o, &snap_id) == -1)
		die("snap_start: %s", snap_strerror(client));
}

/* Wait for the result, restore it, print the JSON line; exits. */
static void
finish(int hook_ok)
{
	struct snap_result	 res;
	struct snap_file	*f;
	uint8_t			*copy, marker[PAGE], want[PAGE];
	uint64_t		 lost = 0, wrong = 0, lost_file = 0;

	if (snap_wait(client, snap_id, &res, 60000) == -1)
		die("snap_wait: %s", snap_strerror(client));
	memset(marker, 0xA5, sizeof(marker));
	if (res.completed) {
		if ((f = snap_file_open(res.file)) == NULL)
			die("open %s: %s", res.file, snap_strerror(NULL));
		if (snap_file_verify(f) == -1)
			die("verify %s: %s", res.file, snap_strerror(NULL));
		copy = malloc(NPAGES * PAGE);
		for (unsigned i = 0; i < NPAGES; i++)
			memcpy(copy + i * PAGE, marker, PAGE);
		if (copy == NULL || snap_file_restore(f, 0, copy, NPAGES * PAGE,
		    &lost_file) == -1)
			die("restore: %s", snap_strerror(NULL));
		for (unsigned i = 0; i < NPAGES; i++) {
			page_fill(want, i, 1);
			if (memcmp(copy + i * PAGE, marker, PAGE) == 0)
				lost++;
			else if (memcmp(copy + i * PAGE, want, PAGE) != 0) {
				if (wrong < 4)
					fprintf(stderr, "snaprace: page %u is "
					    "not what it held when armed%s\n", i,
					    copy[i * PAGE] == 0 && memcmp(copy +
					    i * PAGE, copy + i * PAGE + 1,
					    PAGE - 1) == 0 ? " (zeros)" : "");
				wrong++;
			}
		}
		free(copy);
		snap_file_close(f);
	}
	printf("{\"mode\": \"%s\", \"hook\": %s, \"completed\": %s, "
	    "\"error\": \"%s\", \"pages-lost\": %llu, \"lost-pages\": %llu, "
	    "\"wrong-pages\": %llu}\n", mode, hook_ok ? "true" : "false",
	    res.completed ? "true" : "false", res.completed ? "" : res.error,
	    (unsigned long long)res.pages_lost, (unsigned long long)lost,
	    (unsigned long long)wrong);
	fflush(stdout);
	exit(0);
}

/* ---- exec ------------------------------------------------------------- */

/* The new image: other bytes at the old region's address, then go. */
static void
image_main(uintptr_t at)
{
	uint8_t *p = mmap((void *)at, NPAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		die("image: mmap at %#lx: %s", (unsigned long)at,
		    strerror(errno));
	for (unsigned i = 0; i < NPAGES; i++)
		page_fill(p + i * PAGE, i, 7);
	hook_go();
	sleep(60);			/* races.sh kills it */
	exit(0);
}

static void
mode_exec(void)
{
	char at[32];

	hook_write("writer 0 0\n");
	arm(0);
	(void)hook_wait_paused();
	snprintf(at, sizeof(at), "%#lx", (unsigned long)(uintptr_t)region);
	printf("{\"mode\": \"exec\", \"exec-at\": \"%s\"}\n", at);
	fflush(stdout);
	execl(self_exe, self_exe, "--hooks", hooks, "--name", name, "--image",
	    at, (char *)NULL);
	die("exec %s: %s", self_exe, strerror(errno));
}

/* ---- main-exit --------------------------------------------------------- */

static pid_t	 main_tid;

static int
main_is_gone(void)
{
	char	 path[64], line[256];
	FILE	*f;
	int	 gone = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)main_tid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	if (fgets(line, sizeof(line), f) != NULL) {
		char *p = strrchr(line, ')');

		gone = p != NULL && (p[2] == 'Z' || p[2] == 'X');
	}
	fclose(f);
	return gone;
}

static void *
survivor_main(void *arg)
{
	int hook_ok = hook_wait_paused() == 0;

	(void)arg;
	while (!main_is_gone())
		usleep(1000);
	/* Write some pages after the leader is gone: the fault path too. */
	for (unsigned i = 900; i < 910; i++)
		page_fill(region + i * PAGE, i, 2);
	hook_go();
	finish(hook_ok);
	return NULL;
}

static void
mode_main_exit(void)
{
	pthread_t t;

	main_tid = getpid();
	hook_write("writer 0 0\n");
	arm(0);
	if (pthread_create(&t, NULL, survivor_main, NULL) != 0)
		die("pthread_create");
	pthread_exit(NULL);
}

/* ---- mremap ------------------------------------------------------------ */

struct move {
	uint8_t	*from, *to;
	size_t	 len;
};

static void *
mover_main(void *arg)
{
	struct move *m = arg;

	if (mremap(m->from, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED |
	    MREMAP_DONTUNMAP, m->to) == MAP_FAILED)
		die("mremap: %s", strerror(errno));
	return NULL;
}

static void *
toucher_main(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;

	page_fill(region + i * PAGE, i, 2);
	return NULL;
}

static uint8_t *
spare(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);

	if (p == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return p;
}

static void
mode_mremap_writer(void)
{
	struct move	m = { region + 512 * PAGE, spare(64 * PAGE), 64 * PAGE };
	pthread_t	w1, w2, mv;
	int		hook_ok;

	hook_write("writer 0 512\n");
	arm(PAGE);				/* one slot */
	hook_ok = hook_wait_paused() == 0;
	/* Fill the one slot, then hold the fault thread waiting for one. */
	pthread_create(&w1, NULL, toucher_main, (void *)(uintptr_t)700);
	pthread_join(w1, NULL);
	pthread_create(&w2, NULL, toucher_main, (void *)(uintptr_t)701);
	usleep(50000);
	pthread_create(&mv, NULL, mover_main, &m);
	wait_present(m.to);			/* moved, event not yet read */
	hook_go();
	pthread_join(mv, NULL);
	pthread_join(w2, NULL);
	finish(hook_ok);
}

static void
mode_mremap_fault(void)
{
	struct move	m = { region + 768 * PAGE, spare(64 * PAGE), 64 * PAGE };
	pthread_t	w, mv;
	int		hook_ok;

	hook_write("writer 0 0\nfault 0 800\n");
	arm(0);
	hook_ok = hook_wait_paused() == 0;	/* the writer, at run 0 */
	pthread_create(&w, NULL, toucher_main, (void *)(uintptr_t)800);
	usleep(50000);				/* the fault thread pauses */
	pthread_create(&mv, NULL, mover_main, &m);
	wait_present(m.to + 32 * PAGE);
	hook_go();
	pthread_join(mv, NULL);
	pthread_join(w, NULL);
	finish(hook_ok);
}

static void
mode_moves_overflow(void)
{
	int hook_ok;

	hook_write("writer 0 0\n");
	arm(0);
	hook_ok = hook_wait_paused() == 0;
	for (unsigned k = 0; k < MOVES; k++) {
		struct move m = { region + (100 + k) * PAGE, spare(PAGE), PAGE };

		mover_main(&m);		/* returns once snapd read the event */
	}
	hook_go();
	finish(hook_ok);
}

/* ---- pending-flood ----------------------------------------------------- */

static _Atomic pid_t	flood_tid[FLOOD];

static void *
flooder_main(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;

	flood_tid[k] = (pid_t)syscall(SYS_gettid);
	page_fill(region + (k % 64) * PAGE, k % 64, 2);
	return NULL;
}

static void *
discarder_main(void *arg)
{
	(void)arg;
	if (madvise(region + 512 * PAGE, 64 * PAGE, MADV_DONTNEED) == -1)
		die("madvise: %s", strerror(errno));
	return NULL;
}

/* How many flooders sleep in handle_userfault. */
static unsigned
flood_blocked(void)
{
	unsigned n = 0;

	for (unsigned k = 0; k < FLOOD; k++) {
		char	path[64], wchan[64] = "";
		int	fd;
		ssize_t	len;

		snprintf(path, sizeof(path), "/proc/self/task/%d/wchan",
		    (int)flood_tid[k]);
		if (flood_tid[k] == 0 || (fd = open(path, O_RDONLY)) == -1)
			continue;
		len = read(fd, wchan, sizeof(wchan) - 1);
		close(fd);
		if (len > 0 && strstr(wchan, "userfault") != NULL)
			n++;
	}
	return n;
}

static void
mode_pending_flood(void)
{
	pthread_attr_t	attr;
	pthread_t	t[FLOOD], d;
	int		hook_ok;
	unsigned	blocked = 0;

	hook_write("writer 0 0\n");
	arm(0);
	hook_ok = hook_wait_paused() == 0;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (unsigned k = 0; k < FLOOD; k++)
		if (pthread_create(&t[k], &attr, flooder_main,
		    (void *)(uintptr_t)k) != 0)
			die("pthread_create %u", k);
	for (int i = 0; i < 5000 && (blocked = flood_blocked()) < FLOOD; i++)
		usleep(1000);
	fprintf(stderr, "snaprace: %u of %u threads wait on the held run\n",
	    blocked, FLOOD);
	usleep(50000);			/* snapd reads their faults */
	pthread_create(&d, NULL, discarder_main, NULL);
	usleep(50000);			/* the discard event is queued */
	hook_go();
	for (unsigned k = 0; k < FLOOD; k++)
		pthread_join(t[k], NULL);
	pthread_join(d, NULL);
	finish(hook_ok);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "hooks", required_argument, NULL, 'H' },
		{ "name", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'm' },
		{ "image", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*image = NULL;
	ssize_t		 len;
	int		 ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'H': hooks = optarg; break;
		case 'n': name = optarg; break;
		case 'm': mode = optarg; break;
		case 'i': image = optarg; break;
		default:
			die("usage: snaprace --socket S --hooks DIR --name N "
			    "--mode MODE");
		}
	}
	if (hooks == NULL || name == NULL)
		die("--hooks and --name are required");
	if (image != NULL)
		image_main((uintptr_t)strtoull(image, NULL, 0));
	if (mode == NULL)
		die("--mode is required");
	if ((len = readlink("/proc/self/exe", self_exe,
	    sizeof(self_exe) - 1)) == -1)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[len] = '\0';
	region = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	madvise(region, NPAGES * PAGE, MADV_NOHUGEPAGE);
	for (unsigned i = 0; i < NPAGES; i++)
		page_fill(region + i * PAGE, i, 1);
	if (strcmp(mode, "exec") == 0)
		mode_exec();
	else if (strcmp(mode, "main-exit") == 0)
		mode_main_exit();
	else if (strcmp(mode, "mremap-writer") == 0)
		mode_mremap_writer();
	else if (strcmp(mode, "mremap-fault") == 0)
		mode_mremap_fault();
	else if (strcmp(mode, "moves-overflow") == 0)
		mode_moves_overflow();
	else if (strcmp(mode, "pending-flood") == 0)
		mode_pending_flood();
	die("unknown mode %s", mode);
}
