/*
 * The process record of a stopped process (procinfo.h).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procinfo.h"

_Static_assert(sizeof(struct user_regs_struct) ==
    PROCREC_GREGS * sizeof(uint64_t), "x86_64 user_regs_struct");
_Static_assert(sizeof(struct user_fpregs_struct) == PROCREC_FPREGS_SIZE,
    "x86_64 user_fpregs_struct");

/* Read at most len bytes of a /proc file; the count, or -1. */
static ssize_t
procinfo_read(pid_t pid, const char *what, void *buf, size_t len)
{
	char	path[64];
	size_t	got = 0;
	ssize_t	n;
	int	fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (got < len && (n = read(fd, (char *)buf + got, len - got)) > 0)
		got += (size_t)n;
	close(fd);
	return (ssize_t)got;
}

/* ppid, pgrp, session from /proc/PID/stat; uid and gid from status. */
static void
procinfo_ids(struct procrec *rec, pid_t pid)
{
	char		 buf[1024], *p;
	ssize_t		 n = procinfo_read(pid, "stat", buf, sizeof(buf) - 1);
	unsigned	 ppid, pgrp, sid, uid, gid;
	FILE		*f;

	if (n > 0) {
		buf[n] = '\0';
		if ((p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 1, " %*c %u %u %u", &ppid, &pgrp, &sid) == 3) {
			rec->ppid = ppid;
			rec->pgrp = pgrp;
			rec->sid = sid;
		}
	}
	snprintf(buf, sizeof(buf), "/proc/%d/status", (int)pid);
	if ((f = fopen(buf, "re")) == NULL)
		return;
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (sscanf(buf, "Uid: %u", &uid) == 1)
			rec->uid = uid;
		else if (sscanf(buf, "Gid: %u", &gid) == 1)
			rec->gid = gid;
	fclose(f);
}

/* comm, and the command line as ps shows it (NULs as spaces). */
static void
procinfo_names(struct procrec *rec, pid_t pid)
{
	ssize_t n;

	n = procinfo_read(pid, "comm", rec->comm, sizeof(rec->comm) - 1);
	if (n > 0 && rec->comm[n - 1] == '\n')
		rec->comm[n - 1] = '\0';
	n = procinfo_read(pid, "cmdline", rec->psargs,
	    sizeof(rec->psargs) - 1);
	for (ssize_t i = 0; i < n; i++)
		if (rec->psargs[i] == '\0')
			rec->psargs[i] = ' ';
	while (n > 0 && rec->psargs[n - 1] == ' ')
		rec->psargs[--n] = '\0';
}

static int
procinfo_threads(struct procrec *rec, const struct tracer *tr, pid_t injected)
{
	if ((rec->threads = calloc(tr->n, sizeof(*rec->threads))) == NULL)
		return -1;
	rec->thread_count = tr->n;
	for (unsigned i = 0; i < tr->n; i++) {
		const struct tracee	*t = &tr->t[i];
		struct procrec_thread	*p = &rec->threads[i];

		p->tid = (uint32_t)t->tid;
		p->flags = ((long long)t->regs.orig_rax >= 0 ?
		    PROCREC_T_IN_SYSCALL : 0) |
		    (t->tid == injected ? PROCREC_T_INJECTED : 0);
		p->sigpend = t->sigpend;
		p->sigblk = t->sigblk;
		memcpy(p->regs, &t->regs, sizeof(p->regs));
		memcpy(p->fpregs, &t->fpregs, sizeof(p->fpregs));
	}
	return 0;
}

int
procinfo_build(struct procrec *rec, const struct tracer *tr, pid_t injected,
    struct mapsel *ms, char *why, size_t whylen)
{
	uint8_t	auxv[PROCREC_AUXV_MAX];
	ssize_t	n;

	memset(rec, 0, sizeof(*rec));
	rec->machine = EM_X86_64;
	rec->pid = (uint32_t)tr->pid;
	rec->mappings = ms->maps;
	rec->mapping_count = ms->nmaps;
	ms->maps = NULL;
	ms->nmaps = 0;
	procinfo_ids(rec, tr->pid);
	procinfo_names(rec, tr->pid);
	if (procinfo_threads(rec, tr, injected) == -1) {
		snprintf(why, whylen, "process record: %s", strerror(errno));
		return -1;
	}
	if ((n = procinfo_read(tr->pid, "auxv", auxv, sizeof(auxv))) < 0) {
		snprintf(why, whylen, "read /proc/%d/auxv: %s", (int)tr->pid,
		    strerror(errno));
		return -1;
	}
	if (n > 0 && (rec->auxv = malloc((size_t)n)) == NULL) {
		snprintf(why, whylen, "process record: %s", strerror(errno));
		return -1;
	}
	if (n > 0)
		memcpy(rec->auxv, auxv, (size_t)n);
	rec->auxv_len = (uint32_t)n;
	return 0;
}
