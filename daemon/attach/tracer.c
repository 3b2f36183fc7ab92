/*
 * Stopping every thread of a process with ptrace (tracer.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tracer.h"
#include "pidfd.h"

#define TRACER_ROUNDS_MAX	64	/* re-reads of the task list */
#define TRACER_STOP_WAIT_MS	5000	/* for one thread to stop */

uint64_t
tracer_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int
tracer_wait(pid_t tid, int *status)
{
	pid_t r;

	do
		r = waitpid(tid, status, __WALL);
	while (r == -1 && errno == EINTR);
	if (r == -1)
		return -1;
	if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

/* A "Name:\tVALUE" line of /proc/PID/status (or a task's): 0 and the text. */
static int
tracer_status_field(const char *path, const char *field, char *out,
    size_t outlen)
{
	char	 line[512];
	size_t	 flen = strlen(field);
	FILE	*f;
	int	 rc = -1;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			char *v = line + flen + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, outlen, "%s", v);
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

/* Refuse a process someone already traces (a debugger): say who. */
static int
tracer_check_untraced(pid_t pid, char *why, size_t whylen)
{
	char	path[64], v[64], comm[64] = "?";
	long	tracer;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (tracer_status_field(path, "TracerPid", v, sizeof(v)) == -1) {
		snprintf(why, whylen, "read %s: %s", path, strerror(errno ?
		    errno : ENOENT));
		return -1;
	}
	if ((tracer = strtol(v, NULL, 10)) == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/status", tracer);
	(void)tracer_status_field(path, "Name", comm, sizeof(comm));
	snprintf(why, whylen, "process %d is already traced by process %ld "
	    "(%s): a debugger or tracer holds it; detach it first", (int)pid,
	    tracer, comm);
	return -1;
}

static struct tracee *
tracer_find(struct tracer *tr, pid_t tid)
{
	for (unsigned i = 0; i < tr->n; i++)
		if (tr->t[i].tid == tid)
			return &tr->t[i];
	return NULL;
}

static struct tracee *
tracer_add(struct tracer *tr, pid_t tid)
{
	if (tr->n == tr->cap) {
		unsigned	 cap = tr->cap ? tr->cap * 2 : 16;
		struct tracee	*t;

		if (tr->n >= TRACER_THREADS_MAX) {
			errno = E2BIG;
			return NULL;
		}
		if ((t = realloc(tr->t, cap * sizeof(*t))) == NULL)
			return NULL;
		tr->t = t;
		tr->cap = cap;
	}
	memset(&tr->t[tr->n], 0, sizeof(tr->t[0]));
	tr->t[tr->n].tid = tid;
	return &tr->t[tr->n++];
}

/* A task that will never stop: a zombie (an exited thread-group leader
 * whose other threads live on) or dead. */
static int
tracer_is_zombie(pid_t pid, pid_t tid)
{
	char	 path[64], buf[512], *p;
	FILE	*f;
	int	 z = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
	    (int)tid);
	if ((f = fopen(path, "re")) == NULL)
		return 1;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL)
		z = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	fclose(f);
	return z;
}

/*
 * Wait until a seized, interrupted thread is in a ptrace-stop.  A thread
 * that had a signal on its way reports a signal-delivery-stop first: it is
 * stopped too, and keeps the signal for detach.  A zombie never reports a
 * stop, so the wait polls and gives up on one.  1 stopped, 0 gone (it
 * exited meanwhile, or is a zombie), -1 with errno.
 */
static int
tracer_wait_stopped(pid_t pid, struct tracee *t)
{
	struct timespec	nap = { 0, 20000 };
	uint64_t	until = tracer_now_ns() + TRACER_STOP_WAIT_MS * 1000000ULL;
	int		status;
	pid_t		r;

	while ((r = waitpid(t->tid, &status, __WALL | WNOHANG)) == 0) {
		if (tracer_is_zombie(pid, t->tid))
			return 0;
		if (tracer_now_ns() > until) {
			errno = ETIMEDOUT;
			return -1;
		}
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 1000000)
			nap.tv_nsec *= 2;
	}
	if (r == -1)
		return errno == ESRCH || errno == ECHILD ? 0 : -1;
	if (!WIFSTOPPED(status))
		return 0;
	if ((status >> 16) == PTRACE_EVENT_STOP) {
		int sig = WSTOPSIG(status);

		t->group_stop = sig == SIGSTOP || sig == SIGTSTP ||
		    sig == SIGTTIN || sig == SIGTTOU;
	} else if ((status >> 16) == 0)
		t->signal = WSTOPSIG(status);
	return 1;
}

/* Registers and signal masks of a stopped thread. */
static int
tracer_read_thread(struct tracer *tr, struct tracee *t)
{
	char path[64], v[64];

	if (ptrace(PTRACE_GETREGS, t->tid, NULL, &t->regs) == -1 ||
	    ptrace(PTRACE_GETFPREGS, t->tid, NULL, &t->fpregs) == -1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)tr->pid,
	    (int)t->tid);
	if (tracer_status_field(path, "SigPnd", v, sizeof(v)) == 0)
		t->sigpend = strtoull(v, NULL, 16);
	if (tracer_status_field(path, "SigBlk", v, sizeof(v)) == 0)
		t->sigblk = strtoull(v, NULL, 16);
	return 0;
}

static void	tracer_detach_one(struct tracee *);

/*
 * Seize and interrupt every thread of the task list not seized yet.  The
 * number seized in *added; -1 with why set on failure.
 */
static int
tracer_seize_new(struct tracer *tr, long options, unsigned *added, char *why,
    size_t whylen)
{
	char		 path[64];
	struct dirent	*d;
	DIR		*dir;
	int		 rc = -1;

	*added = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)tr->pid);
	if ((dir = opendir(path)) == NULL) {
		snprintf(why, whylen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((errno = 0, d = readdir(dir)) != NULL) {
		pid_t		 tid = (pid_t)strtol(d->d_name, NULL, 10);
		struct tracee	*t;

		/* A zombie (the exited leader of live threads) never stops. */
		if (tid <= 0 || tracer_find(tr, tid) != NULL ||
		    tracer_is_zombie(tr->pid, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)options) == -1) {
			if (errno == ESRCH)
				continue;	/* exited meanwhile */
			snprintf(why, whylen, "ptrace(PTRACE_SEIZE) thread "
			    "%d of process %d: %s", (int)tid, (int)tr->pid,
			    strerror(errno));
			goto out;
		}
		if ((t = tracer_add(tr, tid)) == NULL) {
			struct tracee	 lone = { .tid = tid, .seized = 1 };
			int		 e = errno;

			tracer_detach_one(&lone);
			snprintf(why, whylen, "process %d: too many threads: "
			    "%s", (int)tr->pid, strerror(e));
			goto out;
		}
		t->seized = 1;
		if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == -1 &&
		    errno != ESRCH) {
			snprintf(why, whylen, "ptrace(PTRACE_INTERRUPT) "
			    "thread %d: %s", (int)tid, strerror(errno));
			goto out;
		}
		(*added)++;
	}
	if (errno != 0) {
		snprintf(why, whylen, "read %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	closedir(dir);
	return rc;
}

/* Wait for the threads from index first on; forget those that exited. */
static int
tracer_wait_new(struct tracer *tr, unsigned first, char *why, size_t whylen)
{
	for (unsigned i = first; i < tr->n;) {
		struct tracee	*t = &tr->t[i];
		int		 r = tracer_wait_stopped(tr->pid, t);

		if (r == -1) {
			snprintf(why, whylen, "wait for thread %d to stop: %s",
			    (int)t->tid, strerror(errno));
			return -1;
		}
		if (r == 0) {
			/* Exited: the kernel has detached it already. */
			tr->t[i] = tr->t[--tr->n];
			continue;
		}
		if (tracer_read_thread(tr, t) == -1) {
			if (errno == ESRCH) {
				tr->t[i] = tr->t[--tr->n];
				continue;
			}
			snprintf(why, whylen, "read the registers of thread "
			    "%d: %s", (int)t->tid, strerror(errno));
			return -1;
		}
		i++;
	}
	return 0;
}

int
tracer_stop(struct tracer *tr, pid_t pid, int pidfd, int suspend_seccomp,
    char *why, size_t whylen)
{
	long		options = PTRACE_O_TRACESYSGOOD;
	unsigned	added, round;

	memset(tr, 0, sizeof(*tr));
	tr->pid = pid;
	tr->pidfd = pidfd;
	if (suspend_seccomp)
		options |= PTRACE_O_SUSPEND_SECCOMP;
	if (tracer_check_untraced(pid, why, whylen) == -1)
		return -1;
	if (tracer_is_zombie(pid, pid)) {
		snprintf(why, whylen, "the main thread of process %d has exited "
		    "while its other threads run on, and the kernel then shows "
		    "no memory in /proc/%d (mem, maps, pagemap), through which "
		    "snapd reads it: not supported", (int)pid, (int)pid);
		return -1;
	}
	tr->first_stop_ns = tracer_now_ns();
	for (round = 0; round < TRACER_ROUNDS_MAX; round++) {
		unsigned first = tr->n;

		if (tracer_seize_new(tr, options, &added, why, whylen) == -1 ||
		    tracer_wait_new(tr, first, why, whylen) == -1)
			goto fail;
		if (added == 0)
			break;
	}
	if (round == TRACER_ROUNDS_MAX) {
		snprintf(why, whylen, "process %d kept creating threads while "
		    "being stopped (%d rounds)", (int)pid, TRACER_ROUNDS_MAX);
		goto fail;
	}
	if (tr->n == 0 || !pidfd_alive(pidfd)) {
		snprintf(why, whylen, "process %d has exited", (int)pid);
		goto fail;
	}
	return 0;
fail:
	if (strstr(why, "Operation not permitted") != NULL)
		(void)tracer_check_untraced(pid, why, whylen);
	tracer_release(tr);
	return -1;
}

/*
 * Detach one thread.  PTRACE_DETACH needs the thread in a ptrace-stop;
 * one that is not (it should not happen) is interrupted first.
 */
static void
tracer_detach_one(struct tracee *t)
{
	int status;

	if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->signal) == 0 ||
	    errno != ESRCH)
		goto done;
	if (kill(t->tid, 0) == -1 && errno == ESRCH)
		goto done;
	if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0 &&
	    tracer_wait(t->tid, &status) == 0 &&
	    ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->signal) == 0)
		goto done;
	log_warnx("detach thread %d: %s (the kernel detaches it when snapd "
	    "exits)", (int)t->tid, strerror(errno));
done:
	t->seized = 0;
}

void
tracer_release(struct tracer *tr)
{
	for (unsigned i = 0; i < tr->n; i++)
		if (tr->t[i].seized)
			tracer_detach_one(&tr->t[i]);
	if (tr->first_stop_ns != 0 && tr->released_ns == 0)
		tr->released_ns = tracer_now_ns();
}

void
tracer_free(struct tracer *tr)
{
	free(tr->t);
	tr->t = NULL;
	tr->n = tr->cap = 0;
}
