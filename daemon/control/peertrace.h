/*
 * Whether a peer that is neither root nor holds CAP_SYS_PTRACE in snapd's
 * user namespace may attach to a process: the kernel's own ptrace rules,
 * checked for the peer (snapd itself, as root, would always pass), and
 * never weaker:
 *   - Yama's kernel.yama.ptrace_scope: 3 refuses everyone, 2 everyone
 *     without CAP_SYS_PTRACE, 1 everyone but an ancestor of the process
 *     (a PR_SET_PTRACER exception is not visible from outside: refused);
 *   - the peer's real uid equals the process's real, effective and saved
 *     uids, and its real gid the three gids (PTRACE_MODE_REALCREDS);
 *   - the process is dumpable (the kernel gives a non-dumpable process's
 *     /proc directory to root).
 * Main thread.
 */
#ifndef SNAPD_PEERTRACE_H
#define SNAPD_PEERTRACE_H

#include <stddef.h>
#include <sys/types.h>

struct conn;

/* 1 allowed, 0 refused (why says which rule), -1 cannot tell (why). */
int	peertrace_allowed(const struct conn *c, pid_t target, char *why,
	    size_t whylen);

#endif /* SNAPD_PEERTRACE_H */
