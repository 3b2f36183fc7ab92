/*
 * Attach: snapshot a process that did not ask for it, by pid.
 *
 * One attach runs on its own thread (ptrace binds a tracee to the thread
 * that seized it):
 *   1. stop every thread of the process (tracer.h), recording registers;
 *   2. create a userfaultfd inside it and take it out (takeuffd.h), leaving
 *      the process no copy;
 *   3. choose the mappings (mapsel.h) and build the process record
 *      (proto/procrec.h) a core file is later written from;
 *   4. ATTACH_EV_READY: the caller, on the main thread, starts the
 *      snapshot with attach_result()'s uffd, regions and record; the engine
 *      arms while the process stays stopped;
 *   5. once the engine reports ARMED (or failed), the caller calls
 *      attach_resume(): every thread is detached, and ATTACH_EV_RESUMED
 *      reports the pause (first thread stopped to last thread resumed).
 * With req->prearm, write-protecting (which costs about what fork() does
 * per page) happens while the process runs, and the pause is only what
 * was written meanwhile:
 *   4'. the process is released right after step 3 (that short stop is
 *      the pre-arm pause) and ATTACH_EV_READY comes; the caller starts a
 *      pre-armed snapshot;
 *   5'. once it is pre-armed, the caller calls attach_stop_again(): every
 *      thread is stopped again, the mappings are checked against the
 *      regions (a live mapping that appeared or grew meanwhile fails the
 *      attach: it would be missing), and the record is made anew: that is
 *      ATTACH_EV_ARMING, and the caller arms the snapshot with it;
 *   6'. as 5: attach_resume() once armed, ATTACH_EV_RESUMED.
 * A failure releases the process and reports ATTACH_EV_FAILED.
 * An incremental snapshot (req->parent_regions set) takes no new uffd
 * (its parent's tracking has one) and chooses no mappings: step 2 is
 * skipped, and step 3 matches the mappings to the parent's regions
 * (mapsel_match()); it never pre-arms.
 * If the caller never resumes, the thread lets the process go after
 * ATTACH_HOLD_MAX_MS anyway.  If snapd dies at any instant, the kernel
 * detaches every thread and inject.h makes the one we ran code in
 * restore itself.
 *
 * Test hooks (SNAPD_TEST_HOOKS=1, SNAPD_TEST_PAUSE_DIR=DIR): a line
 * "attach PHASE" in DIR/NAME.pause pauses the attach thread at PHASE
 * (stopped, injected, fd-taken, closing, restopped: a pre-arm's second
 * stop, armed): it creates
 * DIR/NAME.paused and waits for DIR/NAME.go (testpause.h).
 *
 * attach_start(), attach_resume() and attach_free() are for the main
 * thread; the callback always runs there.
 */
#ifndef SNAPD_ATTACH_H
#define SNAPD_ATTACH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "output.h"

#define ATTACH_HOLD_MAX_MS	60000
/*
 * Write-protecting costs about what fork() does per 4 KiB page (about 20
 * ms a GiB here): from this much live memory on, a pre-arm's two short
 * stops are cheaper than one long one.
 */
#define ATTACH_PREARM_MIN	(256ULL << 20)

struct event_base;
struct attach;

struct attach_request {
	pid_t		 pid;
	int		 pidfd;		/* borrowed; the attach dups it */
	const char	*maps;		/* filter (mapsel.h), NULL: default */
	uint64_t	 stopped_max;	/* bytes that may be copied stopped */
	const char	*name;		/* the snapshot's, for test pauses */
	int		 prearm;	/* protect while the process runs: 1,
					 * 0, or -1: when the live memory is at
					 * least ATTACH_PREARM_MIN bytes */
	int		 test_hooks;	/* honour DIR/NAME.pause */
	/* Incremental: the parent's regions (copied), no new uffd. */
	const struct output_region *parent_regions;
	uint32_t	 parent_nregions;
};

struct attach_result {
	int			 uffd;		/* -1 once taken; -1 for
						 * an incremental snapshot */
	struct output_region	*regions;
	uint32_t		 nregions;
	uint8_t			*procrec;	/* encoded record */
	size_t			 procrec_len;
	unsigned		 threads;
	unsigned		 live, stopped, skipped;
	uint64_t		 pages_live;
	uint64_t		 bytes_stopped;
	int			 via_device;	/* uffd made from /dev/userfaultfd */
	int			 prearm;
	uint64_t		 prearm_pause_ns;	/* pre-arm: the first stop */
	uint64_t		 pause_ns;	/* set once resumed: the (last) stop */
};

enum attach_event {
	ATTACH_EV_READY,	/* uffd taken: start the snapshot */
	ATTACH_EV_ARMING,	/* pre-arm: stopped again, new record: arm */
	ATTACH_EV_RESUMED,	/* every thread detached */
	ATTACH_EV_FAILED,	/* could not stop or inject; released */
};

typedef void attach_cb(struct attach *a, enum attach_event ev, void *arg);

/* NULL with errno if the thread could not start. */
struct attach	*attach_start(struct event_base *base,
		    const struct attach_request *req, attach_cb *cb, void *arg);
struct attach_result *attach_result(struct attach *a);
const char	*attach_error(const struct attach *a);
/* Pre-arm: stop the process again to arm (after PREARMED). */
void		 attach_stop_again(struct attach *a);
/* Let the process go (after ARMED, or when the snapshot failed). */
void		 attach_resume(struct attach *a);
/* Join the thread and free everything (after RESUMED or FAILED). */
void		 attach_free(struct attach *a);

#endif /* SNAPD_ATTACH_H */
