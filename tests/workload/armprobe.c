/*
 * armprobe: what a one-step arm costs the process on this machine, without
 * snapd: the floor under snapd's `pause_ratio_direct`.
 *
 *	armprobe [--size BYTES] [--runs N] [--thp]
 *
 * Process A maps --size bytes (4 KiB pages, or --thp huge pages), fills
 * them and registers them with a userfaultfd for write-protect.  Process B,
 * started before the memory existed so that no fork() touched A's page
 * tables, takes A's userfaultfd with pidfd_getfd(2), as snapd does.  Each
 * run, A asks B over a pipe and sleeps in read(2); B write-protects all of
 * A's memory with one UFFDIO_WRITEPROTECT and answers with its clock; A
 * notes how long after B's answer it ran again, then un-protects.  Then A
 * times fork() of itself (a child that exits at once) the same way
 * snapbench does.  Reported, as medians over --runs (default 5):
 *
 *   protect_ms   B's UFFDIO_WRITEPROTECT over the memory
 *   resume_ms    from B's answer until A runs again
 *   fork_ms      A's fork()
 *
 * Then, each run, the floor under an incremental snapshot's arm when the
 * pages written since its parent are spread all over the memory: A
 * protects all of it itself, un-protects and writes one page in every
 * 2 MiB, and asks B to protect those pages again, one UFFDIO_WRITEPROTECT
 * each, as snapd's incremental arm does for runs of written pages (4 KiB
 * pages only: with --thp the first un-protect would split the huge pages
 * the next runs measure):
 *
 *   spread_protect_ms   B's calls, one per 2 MiB
 *   spread_resume_ms    from B's answer until A runs again
 *
 * and, last line, one JSON object with them.  resume_ms is the part of a
 * one-step pause that comes after snapd has replied: time the kernel (and,
 * on a paravirtualised guest, the hypervisor) spends before a process
 * whose page tables another process just changed runs again.  It grows
 * with the memory and does not exist when the process protects its own
 * memory or forks.  On a guest whose page tables the host shadows (PVM),
 * it grows with the 2 MiB page-table pages changed, not the ptes: the
 * spread figures say what that makes of a pause proportional to the pages
 * written.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

#define HUGE_SIZE	(2u << 20)
#define RUNS_MAX	64

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd	438
#endif

struct ask {
	int		uffd;		/* A's descriptor number */
	uint64_t	addr, len;
	uint64_t	stride;		/* 0: one call over all; else one
					 * call per page, stride apart */
};

struct answer {
	uint64_t	done_ns;	/* B's clock when it answered */
	uint64_t	protect_ns;
	int		err;
};

/* B: protect what A asks, through A's uffd, until A closes the pipe. */
static void __attribute__((noreturn))
protector(pid_t a, int in, int out)
{
	struct ask	q;
	struct answer	ans;
	int		pidfd = (int)syscall(SYS_pidfd_open, a, 0), uffd = -1;

	while (read(in, &q, sizeof(q)) == (ssize_t)sizeof(q)) {
		struct uffdio_writeprotect wp = {
			.range = { q.addr, q.len },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP,
		};
		uint64_t t0;

		memset(&ans, 0, sizeof(ans));
		if (uffd == -1 && (uffd = (int)syscall(SYS_pidfd_getfd, pidfd,
		    q.uffd, 0)) == -1)
			ans.err = errno;
		if (q.stride != 0)
			wp.range.len = 4096;
		t0 = now_ns();
		for (uint64_t off = 0; ans.err == 0 && off < q.len;
		    off += q.stride != 0 ? q.stride : q.len) {
			wp.range.start = q.addr + off;
			if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
				ans.err = errno;
		}
		ans.done_ns = now_ns();
		ans.protect_ns = ans.done_ns - t0;
		if (write(out, &ans, sizeof(ans)) != (ssize_t)sizeof(ans))
			_exit(1);
	}
	_exit(0);
}

/*
 * Everything protected but one written page in every 2 MiB, which B
 * protects again one call each; then all un-protected and written again.
 */
static void
spread_run(int uffd, uint8_t *mem, uint64_t size, int askfd, int ansfd,
    uint64_t *prot, uint64_t *resume)
{
	struct ask	q = { uffd, (uintptr_t)mem, size, HUGE_SIZE };
	struct answer	r;
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)mem, size },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
		die("protect: %m");
	wp.mode = 0;
	wp.range.len = 4096;
	for (uint64_t off = 0; off < size; off += HUGE_SIZE) {
		wp.range.start = (uintptr_t)mem + off;
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
			die("un-protect a page: %m");
		mem[off]++;
	}
	usleep(50000);
	if (write(askfd, &q, sizeof(q)) != (ssize_t)sizeof(q) ||
	    read(ansfd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		die("the protecting process is gone");
	*resume = now_ns() - r.done_ns;
	if (r.err != 0)
		die("the protecting process: %s", strerror(r.err));
	*prot = r.protect_ns;
	wp.range = (struct uffdio_range){ (uintptr_t)mem, size };
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
		die("un-protect: %m");
	for (uint64_t off = 0; off < size; off += 4096)
		mem[off]++;
	usleep(50000);
}

static double
median_ms(uint64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) / 1e6;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size",	required_argument, NULL, 's' },
		{ "runs",	required_argument, NULL, 'r' },
		{ "thp",	no_argument,	   NULL, 'H' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t	 size = 1ull << 30, prot[RUNS_MAX], resume[RUNS_MAX];
	uint64_t	 forkt[RUNS_MAX], sprot[RUNS_MAX], sresume[RUNS_MAX];
	unsigned	 runs = 5;
	int		 thp = 0, ch, ask[2], ans[2], uffd, status;
	uint8_t		*mem;
	pid_t		 b, a = getpid();
	struct uffdio_api api = {
		.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP,
	};
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_size(optarg, &size) != 0 || size < HUGE_SIZE ||
			    size % HUGE_SIZE != 0)
				die("--size %s: not a multiple of 2 MiB", optarg);
			break;
		case 'r':
			if (parse_uint(optarg, RUNS_MAX, &runs) != 0 || runs == 0)
				die("--runs %s: not in 1..%d", optarg, RUNS_MAX);
			break;
		case 'H':
			thp = 1;
			break;
		default:
			fprintf(stderr, "usage: armprobe [--size BYTES] "
			    "[--runs N] [--thp]\n");
			return 2;
		}
	}
	if (pipe(ask) == -1 || pipe(ans) == -1)
		die("pipe: %m");
	/* Before the memory exists: no fork() touches its page tables. */
	if ((b = fork()) == -1)
		die("fork: %m");
	if (b == 0) {
		close(ask[1]);
		close(ans[0]);
		protector(a, ask[0], ans[1]);
	}
	close(ask[0]);
	close(ans[1]);

	mem = mmap(NULL, size + HUGE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap %" PRIu64 " bytes: %m", size);
	mem = (uint8_t *)(((uintptr_t)mem + HUGE_SIZE - 1) &
	    ~(uintptr_t)(HUGE_SIZE - 1));
	if (madvise(mem, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == -1)
		die("madvise: %m");
	for (uint64_t off = 0; off < size; off += 4096)
		mem[off] = (uint8_t)(off >> 12) | 1;
	if ((uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)) ==
	    -1)
		die("userfaultfd: %m (run as root, or with "
		    "vm.unprivileged_userfaultfd=1)");
	if (ioctl(uffd, UFFDIO_API, &api) == -1)
		die("UFFDIO_API: %m");
	reg.range = (struct uffdio_range){ (uintptr_t)mem, size };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) == -1)
		die("UFFDIO_REGISTER: %m");

	for (unsigned i = 0; i < runs; i++) {
		struct ask	q = { uffd, (uintptr_t)mem, size, 0 };
		struct answer	r;
		struct uffdio_writeprotect wp = { .range = reg.range };
		uint64_t	t0;
		pid_t		child;

		if (write(ask[1], &q, sizeof(q)) != (ssize_t)sizeof(q) ||
		    read(ans[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
			die("the protecting process is gone");
		resume[i] = now_ns() - r.done_ns;
		if (r.err != 0)
			die("the protecting process: %s", strerror(r.err));
		prot[i] = r.protect_ns;
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == -1)
			die("un-protect: %m");
		/* Written again, as a running process's memory would be. */
		for (uint64_t off = 0; off < size; off += 4096)
			mem[off]++;
		fflush(NULL);
		t0 = now_ns();
		if ((child = fork()) == 0)
			_exit(0);
		forkt[i] = now_ns() - t0;
		if (child == -1)
			die("fork: %m");
		while (waitpid(child, &status, 0) == -1 && errno == EINTR)
			;
		for (uint64_t off = 0; off < size; off += 4096)
			mem[off]++;
		usleep(50000);
		if (!thp)
			spread_run(uffd, mem, size, ask[1], ans[0], &sprot[i],
			    &sresume[i]);
	}
	close(ask[1]);
	while (waitpid(b, &status, 0) == -1 && errno == EINTR)
		;
	{
		double p = median_ms(prot, runs), r = median_ms(resume, runs);
		double f = median_ms(forkt, runs);
		char	spread[160] = "", sjson[160] = "";

		if (!thp) {
			double sp = median_ms(sprot, runs);
			double sr = median_ms(sresume, runs);

			snprintf(spread, sizeof(spread), "; one page a 2 MiB "
			    "(%" PRIu64 " calls): protect %.2f ms + resume "
			    "%.2f ms = %.2f ms", size / HUGE_SIZE, sp, sr,
			    sp + sr);
			snprintf(sjson, sizeof(sjson), ", \"spread_calls\": "
			    "%" PRIu64 ", \"spread_protect_ms\": %.3f, "
			    "\"spread_resume_ms\": %.3f", size / HUGE_SIZE, sp,
			    sr);
		}
		printf("%" PRIu64 " MiB %s pages, medians of %u: protect by "
		    "another process %.2f ms + resume %.2f ms = %.2f ms; "
		    "fork %.2f ms%s\n", size >> 20, thp ? "huge" : "4 KiB",
		    runs, p, r, p + r, f, spread);
		printf("{\"size_mib\": %" PRIu64 ", \"thp\": %s, \"runs\": %u, "
		    "\"protect_ms\": %.3f, \"resume_ms\": %.3f, \"fork_ms\": "
		    "%.3f%s}\n", size >> 20, thp ? "true" : "false", runs, p, r,
		    f, sjson);
	}
	return 0;
}
