/*
 * The kernel's ptrace rules, checked for a peer (peertrace.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "control.h"
#include "peertrace.h"
#include "pidfd.h"

/* The four ids of a "Uid:" or "Gid:" line of /proc/PID/status. */
static int
peertrace_ids(pid_t pid, const char *field, unsigned ids[4])
{
	char	 path[64], line[256], fmt[32];
	FILE	*f;
	int	 found = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	snprintf(fmt, sizeof(fmt), "%s: %%u %%u %%u %%u", field);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = sscanf(line, fmt, &ids[0], &ids[1], &ids[2], &ids[3])
		    == 4;
	fclose(f);
	return found ? 0 : -1;
}

static pid_t
peertrace_ppid(pid_t pid)
{
	char	 path[64], line[256];
	FILE	*f;
	int	 ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "PPid: %d", &ppid) == 1)
			break;
	fclose(f);
	return (pid_t)ppid;
}

/*
 * Yama's scope: 0 without Yama; when snapd cannot see /proc/sys at all
 * (ProcSubset=pid in the unit), 1: refuse what Yama might.
 */
static int
peertrace_yama(void)
{
	FILE		*f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	struct stat	 st;
	int		 scope = 0;

	if (f == NULL)
		return stat("/proc/sys/kernel", &st) == 0 ? 0 : 1;
	if (fscanf(f, "%d", &scope) != 1)
		scope = 3;	/* cannot tell: the strictest */
	fclose(f);
	return scope;
}

static int
peertrace_is_ancestor(pid_t anc, pid_t pid)
{
	for (int depth = 0; pid > 1 && depth < 4096; depth++) {
		if ((pid = peertrace_ppid(pid)) == anc)
			return 1;
	}
	return 0;
}

int
peertrace_allowed(const struct conn *c, pid_t target, char *why,
    size_t whylen)
{
	unsigned	pu[4], pg[4], tu[4], tg[4];
	char		path[64];
	struct stat	st;
	int		scope = peertrace_yama();

	if (scope >= 2) {
		snprintf(why, whylen, "kernel.yama.ptrace_scope is %d: only "
		    "CAP_SYS_PTRACE may trace", scope);
		return 0;
	}
	if (scope == 1 && !peertrace_is_ancestor(c->pid, target)) {
		snprintf(why, whylen, "kernel.yama.ptrace_scope is 1 and "
		    "process %d does not descend from the peer (%d)",
		    (int)target, (int)c->pid);
		return 0;
	}
	if (peertrace_ids(c->pid, "Uid", pu) == -1 ||
	    peertrace_ids(c->pid, "Gid", pg) == -1 ||
	    peertrace_ids(target, "Uid", tu) == -1 ||
	    peertrace_ids(target, "Gid", tg) == -1) {
		snprintf(why, whylen, "read the credentials of process %d or "
		    "the peer: %s", (int)target, strerror(errno));
		return -1;
	}
	if (c->pidfd == -1 || !pidfd_alive(c->pidfd)) {
		snprintf(why, whylen, "the peer has exited");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (tu[i] != pu[0] || tg[i] != pg[0]) {
			snprintf(why, whylen, "process %d runs as uid %u/%u/%u "
			    "gid %u/%u/%u, the peer as uid %u gid %u",
			    (int)target, tu[0], tu[1], tu[2], tg[0], tg[1],
			    tg[2], pu[0], pg[0]);
			return 0;
		}
	snprintf(path, sizeof(path), "/proc/%d", (int)target);
	if (stat(path, &st) == -1 || st.st_uid != tu[1]) {
		snprintf(why, whylen, "process %d is not dumpable", (int)target);
		return 0;
	}
	return 1;
}
