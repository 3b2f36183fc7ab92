/*
 * Attach by pid: the attach thread and its hand-over to the main thread
 * (attach.h says what happens in which order).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "attach.h"
#include "inject.h"
#include "log.h"
#include "mapsel.h"
#include "procinfo.h"
#include "takeuffd.h"
#include "testpause.h"
#include "tracer.h"

#define PENDING_STOPPED	0x1
#define PENDING_RESUMED	0x2
#define PENDING_FAILED	0x4

struct attach {
	pid_t			 pid;
	int			 pidfd;
	char			*maps;
	char			*name;
	uint64_t		 stopped_max;
	int			 test_hooks;

	struct tracer		 tr;
	struct attach_result	 res;
	uint64_t		 t_stopped, t_injected, t_described;
	uint64_t		 t_resume;	/* when told to resume */
	uint64_t		 resignal;	/* held back while injecting */
	pid_t			 resignal_tid;
	char			 error[512];

	pthread_t		 thread;
	int			 started;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	int			 resume_asked;	/* under lock */

	struct event		*ev;
	_Atomic unsigned	 pending;
	attach_cb		*cb;
	void			*cb_arg;
};

static void
attach_notify(struct attach *a, unsigned what)
{
	atomic_fetch_or(&a->pending, what);
	event_active(a->ev, EV_READ, 0);
}

static void
attach_pause(void *arg, const char *phase)
{
	struct attach *a = arg;

	if (a->test_hooks)
		testpause_phase(a->name, phase);
}

/* The "Seccomp:" mode and effective capabilities of a process. */
static void
attach_status(const char *pid, int *seccomp, unsigned long long *capeff)
{
	char	 path[64], line[128];
	FILE	*f;

	*seccomp = 0;
	*capeff = 0;
	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Seccomp: %d", seccomp) != 1)
			(void)sscanf(line, "CapEff: %llx", capeff);
	fclose(f);
}

/*
 * Suspend the process's seccomp filter while injecting
 * (PTRACE_O_SUSPEND_SECCOMP), when it has one and snapd may: the kernel
 * allows it only to a tracer with CAP_SYS_ADMIN that has no seccomp
 * filter itself (not snapd under the shipped unit).  Without it, a filter
 * that refuses userfaultfd(2) sends snapd the /dev/userfaultfd way.
 */
static int
attach_suspend_seccomp(pid_t pid)
{
	unsigned long long	caps;
	char			p[16];
	int			mode;

	snprintf(p, sizeof(p), "%d", (int)pid);
	attach_status(p, &mode, &caps);
	if (mode != 2)
		return 0;
	attach_status("self", &mode, &caps);
	return mode == 0 && (caps >> 21 & 1);	/* CAP_SYS_ADMIN */
}

/* Steps 2: the uffd, made in the process and taken out. */
static int
attach_take_uffd(struct attach *a)
{
	struct inject	in;
	char		why[512];
	int		rc;

	if (inject_begin(&in, &a->tr, a->error, sizeof(a->error)) == -1)
		return -1;
	in.pause = attach_pause;
	in.pause_arg = a;
	rc = takeuffd(&in, a->pidfd, &a->res.uffd, &a->res.via_device,
	    a->error, sizeof(a->error));
	if (inject_end(&in, why, sizeof(why)) == -1) {
		log_warnx("attach %d: %s", (int)a->pid, why);
		if (rc == 0)
			snprintf(a->error, sizeof(a->error), "%s", why);
		rc = -1;
	}
	a->resignal = in.resignal;
	a->resignal_tid = in.t != NULL ? in.t->tid : 0;
	if (rc == -1 && a->res.uffd != -1) {
		close(a->res.uffd);
		a->res.uffd = -1;
	}
	return rc;
}

/* Step 3: the mappings and the process record. */
static int
attach_describe(struct attach *a, pid_t injected)
{
	struct mapsel	ms;
	struct procrec	rec;
	int		rc;

	if (mapsel_choose(&ms, a->pid, a->pidfd, a->maps, a->stopped_max,
	    a->error, sizeof(a->error)) == -1)
		return -1;
	rc = procinfo_build(&rec, &a->tr, injected, &ms, a->error,
	    sizeof(a->error));
	if (rc == 0 && procrec_encode(&rec, &a->res.procrec,
	    &a->res.procrec_len) == -1) {
		snprintf(a->error, sizeof(a->error), "encode the process "
		    "record: %s", strerror(errno));
		rc = -1;
	}
	procrec_free(&rec);	/* took ms.maps */
	if (rc == 0) {
		a->res.regions = ms.regions;
		a->res.nregions = ms.nregions;
		ms.regions = NULL;
		a->res.live = ms.live;
		a->res.stopped = ms.stopped;
		a->res.skipped = ms.skipped;
		a->res.pages_live = ms.pages_live;
		a->res.bytes_stopped = ms.bytes_stopped;
	}
	mapsel_free(&ms);
	return rc;
}

/* Wait until the main thread lets the process go, or the hold runs out. */
static void
attach_wait_resume(struct attach *a)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ATTACH_HOLD_MAX_MS / 1000;
	pthread_mutex_lock(&a->lock);
	while (!a->resume_asked)
		if (pthread_cond_timedwait(&a->cond, &a->lock, &until) ==
		    ETIMEDOUT) {
			log_warnx("attach %d: not told to resume within %d s; "
			    "letting the process go", (int)a->pid,
			    ATTACH_HOLD_MAX_MS / 1000);
			break;
		}
	pthread_mutex_unlock(&a->lock);
}

/* Detach, and re-raise the signals held back while injecting. */
static void
attach_release(struct attach *a)
{
	tracer_release(&a->tr);
	for (int sig = 1; sig <= 64; sig++)
		if (a->resignal & (1ULL << (sig - 1)))
			(void)syscall(SYS_tgkill, a->pid, a->resignal_tid, sig);
	a->res.pause_ns = a->tr.released_ns - a->tr.first_stop_ns;
}

static void *
attach_thread_main(void *arg)
{
	struct attach	*a = arg;
	pid_t		 injected;

	if (tracer_stop(&a->tr, a->pid, a->pidfd,
	    attach_suspend_seccomp(a->pid), a->error,
	    sizeof(a->error)) == -1) {
		attach_notify(a, PENDING_FAILED);
		return NULL;
	}
	a->res.threads = a->tr.n;
	a->t_stopped = tracer_now_ns();
	attach_pause(a, "stopped");
	if (attach_take_uffd(a) == -1)
		goto fail;
	a->t_injected = tracer_now_ns();
	injected = a->resignal_tid;
	if (attach_describe(a, injected) == -1)
		goto fail;
	a->t_described = tracer_now_ns();
	log_info("attach %d: %u threads stopped, userfaultfd taken%s; %u "
	    "mappings live, %u copied while stopped (%llu bytes), %u skipped",
	    (int)a->pid, a->tr.n, a->res.via_device ? " (through "
	    "/dev/userfaultfd)" : "", a->res.live, a->res.stopped,
	    (unsigned long long)a->res.bytes_stopped, a->res.skipped);
	attach_notify(a, PENDING_STOPPED);
	attach_wait_resume(a);
	a->t_resume = tracer_now_ns();
	attach_pause(a, "armed");
	attach_release(a);
	log_info("attach %d: paused %llu us: stopping %llu, injecting %llu, "
	    "choosing mappings %llu, arming %llu, releasing %llu",
	    (int)a->pid, (unsigned long long)(a->res.pause_ns / 1000),
	    (unsigned long long)((a->t_stopped - a->tr.first_stop_ns) / 1000),
	    (unsigned long long)((a->t_injected - a->t_stopped) / 1000),
	    (unsigned long long)((a->t_described - a->t_injected) / 1000),
	    (unsigned long long)((a->t_resume - a->t_described) / 1000),
	    (unsigned long long)((a->tr.released_ns - a->t_resume) / 1000));
	attach_notify(a, PENDING_RESUMED);
	return NULL;
fail:
	attach_release(a);
	attach_notify(a, PENDING_FAILED);
	return NULL;
}

/* Main thread: hand what the attach thread flagged to the callback. */
static void
attach_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attach	*a = arg;
	unsigned	 pending = atomic_exchange(&a->pending, 0);

	if (pending & PENDING_STOPPED)
		a->cb(a, ATTACH_EV_STOPPED, a->cb_arg);
	/* Last: the callback may free a. */
	if (pending & PENDING_RESUMED)
		a->cb(a, ATTACH_EV_RESUMED, a->cb_arg);
	else if (pending & PENDING_FAILED)
		a->cb(a, ATTACH_EV_FAILED, a->cb_arg);
}

struct attach *
attach_start(struct event_base *base, const struct attach_request *req,
    attach_cb *cb, void *arg)
{
	struct attach	*a = calloc(1, sizeof(*a));
	int		 e;

	if (a == NULL)
		return NULL;
	a->pid = req->pid;
	a->res.uffd = -1;
	a->stopped_max = req->stopped_max;
	a->test_hooks = req->test_hooks;
	a->cb = cb;
	a->cb_arg = arg;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->pidfd = fcntl(req->pidfd, F_DUPFD_CLOEXEC, 0);
	a->maps = req->maps != NULL ? strdup(req->maps) : NULL;
	a->name = strdup(req->name != NULL ? req->name : "");
	a->ev = event_new(base, -1, 0, attach_event_cb, a);
	if (a->pidfd == -1 || a->name == NULL || a->ev == NULL ||
	    (req->maps != NULL && a->maps == NULL))
		goto fail;
	if ((e = pthread_create(&a->thread, NULL, attach_thread_main, a)) !=
	    0) {
		errno = e;
		goto fail;
	}
	a->started = 1;
	return a;
fail:
	e = errno;
	attach_free(a);
	errno = e;
	return NULL;
}

struct attach_result *
attach_result(struct attach *a)
{
	return &a->res;
}

const char *
attach_error(const struct attach *a)
{
	return a->error;
}

void
attach_resume(struct attach *a)
{
	pthread_mutex_lock(&a->lock);
	a->resume_asked = 1;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void
attach_free(struct attach *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		attach_resume(a);
		pthread_join(a->thread, NULL);
	}
	tracer_free(&a->tr);
	if (a->res.uffd != -1)
		close(a->res.uffd);
	free(a->res.regions);
	free(a->res.procrec);
	if (a->ev != NULL)
		event_free(a->ev);
	if (a->pidfd != -1)
		close(a->pidfd);
	free(a->maps);
	free(a->name);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}
