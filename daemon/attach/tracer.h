/*
 * Stopping every thread of another process with ptrace, and letting it go.
 *
 * tracer_stop() seizes (PTRACE_SEIZE, which neither stops nor signals the
 * process) and interrupts (PTRACE_INTERRUPT) every thread listed in
 * /proc/PID/task, waits until each is in a ptrace-stop, and reads the list
 * again until no new thread appears: a stopped thread creates none, so the
 * set is then complete.  Each thread's registers are read as it stopped.
 * tracer_release() detaches every thread; a thread stopped while a signal
 * was being delivered to it gets that signal back at detach, and a process
 * that was stopped by a signal (SIGSTOP) when we came stays stopped.
 *
 * The kernel detaches every tracee of a tracer that dies, so if snapd is
 * killed while the process is stopped, the process runs on by itself.
 * What this file cannot undo alone is a change of a thread's registers:
 * inject.c makes sure a thread it modifies restores itself.
 *
 * ptrace binds a tracee to the thread that seized it: every call on a
 * struct tracer must come from the thread that called tracer_stop().
 */
#ifndef SNAPD_TRACER_H
#define SNAPD_TRACER_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#define TRACER_THREADS_MAX	65536

struct tracee {
	pid_t			 tid;
	int			 signal;	/* to deliver at detach, 0: none */
	int			 group_stop;	/* stopped by a stop signal */
	int			 seized;
	struct user_regs_struct	 regs;		/* as it stopped */
	struct user_fpregs_struct fpregs;
	uint64_t		 sigpend, sigblk;
};

struct tracer {
	pid_t		 pid;
	int		 pidfd;		/* borrowed */
	struct tracee	*t;
	unsigned	 n, cap;
	uint64_t	 first_stop_ns;	/* CLOCK_MONOTONIC before the first seize */
	uint64_t	 released_ns;	/* after the last detach */
};

/*
 * Stop every thread of pid (pidfd names it).  0, or -1 with a message in
 * why (and every thread seized so far released): the process is traced
 * already (by whom), has exited, or ptrace failed (errno text).
 * suspend_seccomp asks PTRACE_O_SUSPEND_SECCOMP (root only).
 */
int	tracer_stop(struct tracer *tr, pid_t pid, int pidfd,
	    int suspend_seccomp, char *why, size_t whylen);

/* Detach every thread; the process runs on.  Safe to call twice. */
void	tracer_release(struct tracer *tr);

/* Free what tracer_stop() allocated (after tracer_release()). */
void	tracer_free(struct tracer *tr);

/*
 * Wait for the next stop of one tracee: its raw wait status in *status.
 * 0, or -1 with errno (ESRCH: it exited).
 */
int	tracer_wait(pid_t tid, int *status);

uint64_t tracer_now_ns(void);

#endif /* SNAPD_TRACER_H */
