/*
 * holdwork: a process that holds memory and does nothing with it, for
 * tests/bench-s3.sh to snapshot from outside (attach) and to read through
 * /proc/PID/mem, the same bytes every time.
 *
 *	holdwork [--size SIZE]
 *
 * Maps --size bytes (default 1 GiB; private anonymous, 4 KiB pages with
 * MADV_NOHUGEPAGE) and fills every page with snapbench's content
 * (textfill.c: half pseudo-random, half text-like, which zstd -3 makes
 * about 60 % of its size).  Then it prints one line
 *
 *	ready PID ADDR LEN
 *
 * (ADDR in hex with 0x, LEN in bytes) and sleeps in read(2) on stdin:
 * nothing touches the memory while it waits.  At end of file, on a line
 * "stop", or on SIGTERM or SIGINT, it checks every page against its fill
 * (an attach must leave the memory as it was) and exits 0 if all hold,
 * 1 saying how many pages differ otherwise.  A read(2) interrupted by an
 * attach's stop is simply restarted.
 */
#include <sys/mman.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

static volatile sig_atomic_t	stop_signal;

static void
on_stop(int sig)
{
	stop_signal = sig;
}

static void
usage(void)
{
	fprintf(stderr, "usage: holdwork [--size SIZE]\n");
	exit(2);
}

/* Wait for end of file, "stop" or a stop signal on stdin. */
static void
hold(void)
{
	char	 buf[256];
	size_t	 have = 0;
	ssize_t	 n;

	while (!stop_signal) {
		n = read(STDIN_FILENO, buf + have, sizeof(buf) - 1 - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die("read stdin: %s", strerror(errno));
		if (n == 0)
			return;
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, "stop\n") != NULL)
			return;
		if (strchr(buf, '\n') != NULL || have == sizeof(buf) - 1)
			have = 0;	/* any other line: ignored */
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size",	required_argument, NULL, 's' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL,		0,		   NULL, 0 },
	};
	struct sigaction sa;
	uint8_t *mem, page[TEXTFILL_PAGE];
	uint64_t size = 1ull << 30, npages, i, wrong = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &size) != 0 || size == 0)
				die("--size %s: not a size", optarg);
			break;
		default:
			usage();
		}
	}
	if (optind < argc)
		usage();
	size = (size + TEXTFILL_PAGE - 1) / TEXTFILL_PAGE * TEXTFILL_PAGE;
	npages = size / TEXTFILL_PAGE;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: read(2) returns */
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1)
		die("sigaction: %s", strerror(errno));

	textfill_init();
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %s", size, strerror(errno));
	if (madvise(mem, size, MADV_NOHUGEPAGE) == -1)
		die("madvise MADV_NOHUGEPAGE on %" PRIu64 " bytes: %s", size,
		    strerror(errno));
	for (i = 0; i < npages; i++)
		textfill_page(mem + i * TEXTFILL_PAGE, i, 0);
	printf("ready %d %p %" PRIu64 "\n", (int)getpid(), (void *)mem, size);
	if (fflush(stdout) == EOF)
		die("stdout: %s", strerror(errno));

	hold();

	for (i = 0; i < npages; i++) {
		textfill_page(page, i, 0);
		if (memcmp(page, mem + i * TEXTFILL_PAGE, TEXTFILL_PAGE) != 0)
			wrong++;
	}
	munmap(mem, size);
	if (wrong != 0)
		die("%" PRIu64 " of %" PRIu64 " pages changed while held",
		    wrong, npages);
	printf("ok %" PRIu64 " pages intact\n", npages);
	return 0;
}
