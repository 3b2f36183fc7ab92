/*
 * seccompwork: a target for attach with a seccomp filter against
 * userfaultfd(2), as a hardened service may have.
 *
 *	seccompwork eperm|kill
 *
 * Installs a filter that makes userfaultfd(2) fail with EPERM ("eperm") or
 * kills the process ("kill"), checks (eperm) that it does, fills 4 MiB
 * with a known pattern and prints "ready PID ADDR LEN".  Then, until
 * SIGTERM, it rewrites page 0 with a counter and checks the rest of the
 * pattern.  On SIGTERM it prints "ok WRITES" and exits 0 if the pattern
 * held and the filter is still in force (userfaultfd still refused in
 * eperm mode), or says what went wrong and exits 1.  Killed by the
 * filter, it dies of SIGSYS: the attach test sees that.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#define PAGES	1024
#define PAGE	4096

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void
install_filter(int kill_it)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, kill_it ? SECCOMP_RET_KILL_PROCESS :
		    SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1)
		die("install the seccomp filter: %s", strerror(errno));
}

/* In eperm mode the filter must refuse userfaultfd(2) with EPERM. */
static int
filter_refuses(void)
{
	long r = syscall(SYS_userfaultfd, 0);

	if (r >= 0)
		close((int)r);
	return r == -1 && errno == EPERM;
}

static uint8_t
pattern(unsigned page, unsigned off)
{
	return (uint8_t)(mix64((uint64_t)page << 16 | off) & 0xff);
}

int
main(int argc, char **argv)
{
	struct timespec	 ms = { 0, 1000000 };
	uint64_t	 writes = 0, wrong = 0;
	uint8_t		*mem;
	int		 kill_it;

	if (argc != 2 || (strcmp(argv[1], "eperm") != 0 &&
	    strcmp(argv[1], "kill") != 0))
		die("usage: seccompwork eperm|kill");
	kill_it = strcmp(argv[1], "kill") == 0;
	mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (unsigned p = 1; p < PAGES; p++)
		for (unsigned o = 0; o < PAGE; o++)
			mem[p * PAGE + o] = pattern(p, o);
	install_filter(kill_it);
	if (!kill_it && !filter_refuses())
		die("the filter does not refuse userfaultfd(2)");
	signal(SIGTERM, on_term);
	printf("ready %d %p %d\n", (int)getpid(), (void *)mem, PAGES * PAGE);
	fflush(stdout);
	while (!stop) {
		memcpy(mem, &writes, sizeof(writes));
		writes++;
		nanosleep(&ms, NULL);
	}
	for (unsigned p = 1; p < PAGES; p++)
		for (unsigned o = 0; o < PAGE; o++)
			wrong += mem[p * PAGE + o] != pattern(p, o);
	if (wrong != 0)
		die("%llu bytes of the pattern changed", (unsigned long long)wrong);
	if (!kill_it && !filter_refuses())
		die("the filter no longer refuses userfaultfd(2)");
	printf("ok %llu\n", (unsigned long long)writes);
	return 0;
}
