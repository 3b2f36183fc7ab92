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

#define PENDING_READY	0x1
#define PENDING_ARMING	0x2
#define PENDING_RESUMED	0x4
#define PENDING_FAILED	0x8

/* What the main thread asked the attach thread (under lock). */
enum attach_ask {
	ASK_NONE = 0,
	ASK_STOP_AGAIN,
	ASK_RESUME,
};

struct attach {
	pid_t			 pid;
	int			 pidfd;
	char			*maps;
	char			*name;
	uint64_t		 stopped_max;
	int			 test_hooks;
	int			 prearm;
	struct output_region	*parent_regions;	/* incremental */
	uint32_t		 parent_nregions;

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
	enum attach_ask		 asked;		/* under lock */

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

/* Step 3: the mappings (for an incremental snapshot, the parent's). */
static int
attach_choose(struct attach *a, struct mapsel *ms)
{
	if (mapsel_choose(ms, a->pid, a->pidfd, a->maps, a->stopped_max,
	    a->error, sizeof(a->error)) == -1)
		return -1;
	if (a->parent_regions != NULL && mapsel_match(ms, a->pid,
	    a->parent_regions, a->parent_nregions, a->error,
	    sizeof(a->error)) == -1) {
		mapsel_free(ms);
		return -1;
	}
	return 0;
}

/* Step 3: the process record, from the threads as stopped now. */
static int
attach_record(struct attach *a, struct mapsel *ms)
{
	struct procrec	rec;
	int		rc;

	free(a->res.procrec);
	a->res.procrec = NULL;
	rc = procinfo_build(&rec, &a->tr, a->resignal_tid, ms, a->error,
	    sizeof(a->error));
	if (rc == 0 && procrec_encode(&rec, &a->res.procrec,
	    &a->res.procrec_len) == -1) {
		snprintf(a->error, sizeof(a->error), "encode the process "
		    "record: %s", strerror(errno));
		rc = -1;
	}
	procrec_free(&rec);	/* took ms->maps */
	return rc;
}

/* Keep the regions of the first choice for the snapshot. */
static void
attach_keep_regions(struct attach *a, struct mapsel *ms)
{
	a->res.regions = ms->regions;
	a->res.nregions = ms->nregions;
	ms->regions = NULL;
	a->res.live = ms->live;
	a->res.stopped = ms->stopped;
	a->res.skipped = ms->skipped;
	a->res.pages_live = ms->pages_live;
	a->res.bytes_stopped = ms->bytes_stopped;
}

/*
 * Pre-arm, stopped again: every mapping saved now must lie in a region of
 * the same kind chosen at the first stop (a live one that appeared or grew
 * meanwhile would be missing from the snapshot); point each at its region.
 */
static int
attach_check_regions(struct attach *a, struct mapsel *ms)
{
	for (uint32_t i = 0; i < ms->nmaps; i++) {
		struct procrec_mapping	*m = &ms->maps[i];
		int32_t			 found = -1;

		if (m->state == PROCREC_SKIPPED)
			continue;
		for (uint32_t k = 0; k < a->res.nregions && found == -1; k++) {
			const struct output_region *r = &a->res.regions[k];

			if (r->start <= m->start &&
			    m->end <= r->start + r->length &&
			    !(r->flags & OUTPUT_REGION_STOPPED) ==
			    (m->state == PROCREC_LIVE))
				found = (int32_t)k;
		}
		if (found == -1) {
			snprintf(a->error, sizeof(a->error), "mapping "
			    "0x%llx-0x%llx (%s) appeared or changed while the "
			    "snapshot was pre-armed, and would be missing from "
			    "it; try again, or attach with prearm false",
			    (unsigned long long)m->start,
			    (unsigned long long)m->end,
			    m->path[0] != '\0' ? m->path : "anonymous");
			return -1;
		}
		m->region = found;
	}
	return 0;
}

/*
 * Wait for the main thread's next word (stop again, or resume).  After
 * ATTACH_HOLD_MAX_MS without one the process is let go anyway.
 */
static enum attach_ask
attach_wait_ask(struct attach *a)
{
	struct timespec	until;
	enum attach_ask	ask;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ATTACH_HOLD_MAX_MS / 1000;
	pthread_mutex_lock(&a->lock);
	while (a->asked == ASK_NONE)
		if (pthread_cond_timedwait(&a->cond, &a->lock, &until) ==
		    ETIMEDOUT) {
			log_warnx("attach %d: no word from the snapshot within "
			    "%d s; letting the process go", (int)a->pid,
			    ATTACH_HOLD_MAX_MS / 1000);
			a->asked = ASK_RESUME;
		}
	ask = a->asked;
	a->asked = ASK_NONE;
	pthread_mutex_unlock(&a->lock);
	return ask;
}

/*
 * Detach, and re-raise the signals held back while injecting.  tgkill(2)
 * on another user's process needs CAP_KILL, which memsnap.service does not
 * grant: say so when a signal is lost that way.
 */
static void
attach_release(struct attach *a)
{
	tracer_release(&a->tr);
	for (int sig = 1; sig <= 64; sig++)
		if ((a->resignal & (1ULL << (sig - 1))) &&
		    syscall(SYS_tgkill, a->pid, a->resignal_tid, sig) == -1 &&
		    errno != ESRCH)
			log_warn("attach %d: re-raising signal %d held back "
			    "while injecting, in thread %d", (int)a->pid, sig,
			    (int)a->resignal_tid);
	a->res.pause_ns = a->tr.released_ns - a->tr.first_stop_ns;
	a->resignal = 0;
}

/* Stop every thread; the timing of the stop starts here.  phase names
 * the test pause after it ("stopped", or "restopped" for a pre-arm's
 * second stop). */
static int
attach_stop(struct attach *a, const char *phase)
{
	tracer_free(&a->tr);
	if (tracer_stop(&a->tr, a->pid, a->pidfd,
	    attach_suspend_seccomp(a->pid), a->error, sizeof(a->error)) == -1)
		return -1;
	a->res.threads = a->tr.n;
	a->t_stopped = tracer_now_ns();
	attach_pause(a, phase);
	return 0;
}

static void
attach_log_pause(struct attach *a)
{
	log_info("attach %d: paused %llu us: stopping %llu, injecting %llu, "
	    "choosing mappings %llu, arming %llu, releasing %llu%s",
	    (int)a->pid, (unsigned long long)(a->res.pause_ns / 1000),
	    (unsigned long long)((a->t_stopped - a->tr.first_stop_ns) / 1000),
	    (unsigned long long)((a->t_injected - a->t_stopped) / 1000),
	    (unsigned long long)((a->t_described - a->t_injected) / 1000),
	    (unsigned long long)((a->t_resume - a->t_described) / 1000),
	    (unsigned long long)((a->tr.released_ns - a->t_resume) / 1000),
	    a->prearm ? " (the stop to arm a pre-armed snapshot)" : "");
}

/* Steps 1-3 and the hand-over: 0, or -1 with the process released. */
static int
attach_first_stop(struct attach *a)
{
	struct mapsel ms;

	if (attach_stop(a, "stopped") == -1)
		return -1;
	/* An incremental snapshot's uffd is its parent's tracking's. */
	if (a->parent_regions == NULL && attach_take_uffd(a) == -1)
		goto fail;
	a->t_injected = tracer_now_ns();
	if (attach_choose(a, &ms) == -1)
		goto fail;
	attach_keep_regions(a, &ms);
	if (a->prearm == -1)
		a->prearm = a->res.pages_live * 4096 >= ATTACH_PREARM_MIN;
	a->res.prearm = a->prearm;
	if (!a->prearm && attach_record(a, &ms) == -1) {
		mapsel_free(&ms);
		goto fail;
	}
	mapsel_free(&ms);
	a->t_described = tracer_now_ns();
	log_info("attach %d: %u threads stopped, %s%s; %u "
	    "mappings live, %u copied while stopped (%llu bytes), %u skipped",
	    (int)a->pid, a->tr.n, a->parent_regions != NULL ? "incremental: "
	    "the parent's uffd and regions" : "userfaultfd taken",
	    a->res.via_device ? " (through /dev/userfaultfd)" : "",
	    a->res.live, a->res.stopped,
	    (unsigned long long)a->res.bytes_stopped, a->res.skipped);
	if (a->prearm) {
		attach_release(a);
		a->res.prearm_pause_ns = a->res.pause_ns;
		a->res.pause_ns = 0;
	}
	return 0;
fail:
	attach_release(a);
	return -1;
}

/* Pre-arm: stop again, check the mappings, make the record anew. */
static int
attach_second_stop(struct attach *a)
{
	struct mapsel	ms;
	int		rc;

	if (attach_stop(a, "restopped") == -1)
		return -1;
	a->t_injected = tracer_now_ns();
	if ((rc = attach_choose(a, &ms)) == 0) {
		if (attach_check_regions(a, &ms) == -1 ||
		    attach_record(a, &ms) == -1)
			rc = -1;
		mapsel_free(&ms);
	}
	a->t_described = tracer_now_ns();
	if (rc == -1)
		attach_release(a);
	return rc;
}

static void *
attach_thread_main(void *arg)
{
	struct attach	*a = arg;
	enum attach_ask	 ask;

	if (attach_first_stop(a) == -1) {
		attach_notify(a, PENDING_FAILED);
		return NULL;
	}
	attach_notify(a, PENDING_READY);
	ask = attach_wait_ask(a);
	if (ask == ASK_STOP_AGAIN && a->prearm) {
		if (attach_second_stop(a) == -1) {
			attach_notify(a, PENDING_FAILED);
			return NULL;
		}
		attach_notify(a, PENDING_ARMING);
		ask = attach_wait_ask(a);
	}
	if (a->tr.n > 0 && a->tr.released_ns == 0) {
		a->t_resume = tracer_now_ns();
		attach_pause(a, "armed");
		attach_release(a);
		attach_log_pause(a);
	}
	attach_notify(a, PENDING_RESUMED);
	return NULL;
}

/* Main thread: hand what the attach thread flagged to the callback. */
static void
attach_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attach	*a = arg;
	unsigned	 pending = atomic_exchange(&a->pending, 0);

	if (pending & PENDING_READY)
		a->cb(a, ATTACH_EV_READY, a->cb_arg);
	if (pending & PENDING_ARMING)
		a->cb(a, ATTACH_EV_ARMING, a->cb_arg);
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
	a->prearm = req->parent_regions != NULL ? 0 : req->prearm;
	a->cb = cb;
	a->cb_arg = arg;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->pidfd = fcntl(req->pidfd, F_DUPFD_CLOEXEC, 0);
	a->maps = req->maps != NULL ? strdup(req->maps) : NULL;
	a->name = strdup(req->name != NULL ? req->name : "");
	a->ev = event_new(base, -1, 0, attach_event_cb, a);
	if (req->parent_regions != NULL && (a->parent_regions = calloc(
	    req->parent_nregions, sizeof(*a->parent_regions))) != NULL) {
		memcpy(a->parent_regions, req->parent_regions,
		    req->parent_nregions * sizeof(*a->parent_regions));
		a->parent_nregions = req->parent_nregions;
	}
	if (a->pidfd == -1 || a->name == NULL || a->ev == NULL ||
	    (req->maps != NULL && a->maps == NULL) ||
	    (req->parent_regions != NULL && a->parent_regions == NULL))
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

static void
attach_ask(struct attach *a, enum attach_ask ask)
{
	pthread_mutex_lock(&a->lock);
	a->asked = ask;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void
attach_stop_again(struct attach *a)
{
	attach_ask(a, ASK_STOP_AGAIN);
}

void
attach_resume(struct attach *a)
{
	attach_ask(a, ASK_RESUME);
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
	free(a->parent_regions);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}
