/*
 * The inside of one snapshot, shared by snapshot.c (life cycle, arming,
 * notifications), fault.c (the fault thread), writer.c and arm.c (the
 * writer thread), stopped.c (regions copied while the process is
 * stopped, on the writer thread), upload.c (an S3 destination),
 * readmem.c, readfile.c and testpause.c.  Nothing outside the engine
 * includes this.
 *
 * Threads and what guards what:
 *   - main thread: snapshot_start(), snapshot_cancel(), the notify callback,
 *     snapshot_free().  It touches only `pending`, `cancel`, stats atomics.
 *   - writer thread (writer.c, arming in arm.c): arms, sweeps, owns `out`,
 *     tears down.
 *   - fault thread (fault.c): reads the uffd and serves faults.
 *   - region table, pid, uffd: written before the threads start, then only
 *     read (uffd is closed by the writer after the fault thread is joined).
 *   - pagestate bitmaps: atomics (pagestate.h).
 *   - event_lock: held by the fault thread around each read() of the uffd
 *     and the handling of discard events in it, and by the writer while it
 *     checks the suspect bits and events_seq after a run it has read.  That
 *     makes "a discard event was read before my check" imply "its pages are
 *     marked" and "a move was read" imply "moves[] has it".
 *   - events_seq: how many REMOVE/UNMAP/REMAP events the fault thread has
 *     handled; incremented by it under event_lock after applying each one.
 *     Why a read cannot race a move or an unmap unnoticed: the kernel raises
 *     the uffd's mmap_changing under the mmap lock as it moves or unmaps
 *     (before it queues the event) and lowers it only once we have read the
 *     event; while it is up every UFFDIO_WRITEPROTECT fails with EAGAIN,
 *     before looking at the range.  So a reader (writer or fault thread)
 *     notes events_seq when it claims pages, reads them, un-protects them,
 *     and then (under event_lock) compares: equal means no move or unmap
 *     touched the address space between the claim and the un-protect, so
 *     the read saw the armed pages; different means the pages are checked
 *     again: discarded ones are recorded lost, moved ones read again at
 *     their new address, where they are still write-protected.
 *   - memfd (/proc/PID/mem, readmem.c) and each region's filefd (its
 *     shared file, readfile.c): opened by the writer while arming, closed
 *     by it after the fault thread is joined; both threads read them.
 *   - lost queue: lost_lock.
 *   - stats: atomics.
 */
#ifndef SNAPD_SNAPSHOT_INTERNAL_H
#define SNAPD_SNAPSHOT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"
#include "output.h"
#include "pagebuf.h"
#include "pagestate.h"
#include "snapshot.h"
#include "track.h"

#define PAGE_SHIFT_4K	12
/* The engine's names for SNAPD_PAGE_SIZE, 64-bit so masks keep high bits. */
#define PAGE_4K		((unsigned long long)SNAPD_PAGE_SIZE)

struct event;

/*
 * Fault-around: a write stream is a run of faults each landing just past
 * the pages the previous one copied.  While a stream continues, each fault
 * copies and un-protects twice as many pages as the last (up to
 * FAULT_AROUND_MAX), so a sequential writer takes one round trip per run,
 * not per page; a fault that continues no stream copies one page.  The
 * stream table is touched only by the fault thread.
 */
#define FAULT_STREAMS		8
#define FAULT_STREAM_SLACK	8	/* pages a stream may skip and go on */
#define FAULT_AROUND_MAX	16

/* A transparent huge page: 2 MiB, 512 pages, 8 words of page state. */
#define HUGE_BYTES		(2ULL << 20)
#define HUGE_PAGES		512
#define HUGE_WORDS		(HUGE_PAGES / 64)

struct region {
	uint64_t		start;
	uint64_t		length;
	uint64_t		npages;
	uint32_t		index;		/* in the request and the file */
	uint32_t		flags;		/* OUTPUT_REGION_* */
	struct pagestate	ps;
	_Atomic uint64_t	*prearm_dirty;	/* pre-arm: written since protected */
	_Atomic uint64_t	*not_huge;	/* per 2 MiB from r->start: seen not
						 * a whole huge page (hugepage.c) */
	int			 filefd;	/* its shared file, or -1 (readfile.c) */
	uint64_t		 fileoff;	/* file offset of page 0 */
	uint64_t		stream_next[FAULT_STREAMS];
	uint32_t		stream_width[FAULT_STREAMS];
	uint32_t		stream_victim;
};

/* Copied while stopped (stopped.c): never registered nor protected. */
static inline int
region_stopped(const struct region *r)
{
	return (r->flags & OUTPUT_REGION_STOPPED) != 0;
}

/*
 * The process moved part of a region (mremap, UFFD_EVENT_REMAP): its pages
 * now live at to + (address - from).  Appended by the fault thread under
 * event_lock, read by both threads without a lock (an entry is written
 * before nmoves is released).
 */
#define SNAPSHOT_MOVES_MAX	64

struct move {
	uint64_t	from;
	uint64_t	to;
	uint64_t	len;
};

struct lost_range {
	uint32_t	region;
	uint64_t	first;
	uint64_t	count;
};

/* Bits of `pending`: what the main thread has yet to report. */
#define NOTIFY_ARMED		0x1
#define NOTIFY_BUFFER_FULL	0x2
#define NOTIFY_DONE		0x4
#define NOTIFY_PREARMED		0x8

struct snapshot {
	uint64_t		 id;
	struct snapshot_request	 req;		/* regions/name pointers not kept */
	char			 name[ZSNAP_NAME_MAX];
	char			 comm[16];
	int			 uffd;
	int			 pidfd;
	int			 dirfd;
	int			 stop_fd;	/* eventfd that wakes the fault thread */
	int			 memfd;		/* /proc/PID/mem: the armed mm (readmem.c) */
	int			 pagemap;	/* its pagemap: owner check (arm.c), hugepage.c */
	uint64_t		 features;	/* granted by UFFDIO_API */

	struct region		*regions;	/* in request order */
	struct region		**by_addr;	/* sorted by start */
	uint32_t		 nregions;
	uint64_t		 pages_total;
	uint64_t		 pages_live;	/* of the regions not stopped */
	uint32_t		 last_live;	/* highest index not stopped, or
						 * UINT32_MAX */

	/* The process record for the output, or NULL (snapshot_start()). */
	uint8_t			*procrec;
	size_t			 procrec_len;
	/* Writer only: pages of stopped regions that could not be read. */
	struct lost_range	*stopped_lost;
	size_t			 nstopped_lost, stopped_lost_cap;

	struct pagebuf		 buf;
	struct output		*out;

	/*
	 * An S3 destination (upload.c), NULL for a file.  The sink is
	 * opened and closed by the writer; the output only borrows it.
	 * upload_lock guards the sink pointer against snapshot_stats() on
	 * other threads, and upload_final, its figures once it is closed.
	 */
	struct snapshot_s3	*s3;
	struct sink		*sink;
	pthread_mutex_t		 upload_lock;
	struct snapshot_upload	 upload_final;
	LIST_ENTRY(snapshot)	 upload_link;	/* upload.c's live list */
	int			 upload_listed;

	/*
	 * Tracking (track.h).  track: written since the armed instant, noted
	 * by the fault thread (its descriptors are the snapshot's own while it
	 * runs); NULL when not tracking.  track_base (incremental only): the
	 * parent's dirty pages and saved-whole ranges, what this snapshot
	 * saves; read-only once armed.  tracker: started by the writer when
	 * it releases the process, for snapshot_take_tracker().
	 */
	struct track_state	*track;
	struct track_state	*track_base;
	struct tracker		*tracker;
	struct zsnap_parent	 parent;
	_Atomic uint64_t	 pages_parent;
	uint64_t		 pages_dirty;	/* incremental: the parent's dirty set */
	uint32_t		 index_crc;

	struct move		 moves[SNAPSHOT_MOVES_MAX];
	_Atomic uint32_t	 nmoves;
	_Atomic uint64_t	 events_seq;	/* see the top of this file */

	pthread_mutex_t		 event_lock;
	pthread_mutex_t		 lost_lock;
	struct lost_range	*lost;		/* guarded by lost_lock */
	size_t			 nlost, lost_cap;

	/*
	 * Pre-arm.  prearm_active is set before the fault thread starts and
	 * cleared once by the writer at snapshot_arm(), under prearm_lock and
	 * event_lock: the fault thread serves a fault in pre-arm mode (un-protect,
	 * note the page) only under prearm_lock with it set, and handles an
	 * event in pre-arm mode only under event_lock with it set.
	 */
	_Atomic int		 prearm_active;
	_Atomic int		 prearm_broken;	/* munmap/mremap meanwhile: which event */
	pthread_mutex_t		 prearm_lock;
	pthread_cond_t		 prearm_cond;	/* arm_requested, armed_reported or cancel */
	int			 arm_requested;	/* under prearm_lock */
	int			 armed_reported;	/* under prearm_lock: main thread sent ARMED */
	uint64_t		 prearm_ns;
	_Atomic uint64_t	 prearm_pages;

	pthread_t		 writer;
	pthread_t		 fault;
	int			 fault_started;
	int			 counted_running;	/* writer: in running_now */

	struct event		*notify_ev;
	snapshot_cb		*cb;
	void			*cb_arg;
	_Atomic unsigned	 pending;
	_Atomic int		 cancel;	/* asked to stop */
	_Atomic int		 fault_error;	/* fault thread gave up: errno */
	_Atomic uint64_t	 last_full_notify_ns;

	/* Debug-only test hook (testpause.h): set at arm, then read only. */
	int			 hook_on[2];
	uint32_t		 hook_region[2];
	uint64_t		 hook_page[2];
	_Atomic int		 hook_fired[2];

	/* Figures (snapshot_stats()). */
	_Atomic int		 state;
	_Atomic uint64_t	 pages_saved;
	_Atomic uint64_t	 pages_faulted;
	_Atomic uint64_t	 pages_swept;	/* by writer_run_finish() */
	_Atomic uint64_t	 huge_faulted;	/* huge pages copied whole on faults */
	_Atomic uint64_t	 huge_swept;	/* huge pages the sweep saved whole */
	_Atomic uint64_t	 pages_zero;
	_Atomic uint64_t	 pages_lost;
	_Atomic uint64_t	 address_events;	/* REMOVE, UNMAP, REMAP read */
	_Atomic int		 test_released;	/* snapshot_test_release() */
	_Atomic uint64_t	 stall_max_ns;
	/* struct snapshot_hist of the stalls, written by the fault thread. */
	_Atomic uint64_t	 stall_count[SNAPSHOT_HIST_BOUNDS + 1];
	_Atomic uint64_t	 stall_sum_us;
	_Atomic uint64_t	 bytes_written;
	uint64_t		 arm_ns;
	uint64_t		 armed_mono_ns;
	uint64_t		 armed_realtime_ns;
	_Atomic uint64_t	 duration_ns;
	uint64_t		 file_size;
	char			 path[4096];
	pthread_mutex_t		 error_lock;
	char			 error[512];	/* guarded by error_lock */
};

/* snapshot.c */
uint64_t	 now_ns(void);
void		 snapshot_notify(struct snapshot *s, unsigned what);
void		 snapshot_set_error(struct snapshot *s, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* The region and page index of what is now at address addr, or NULL. */
struct region	*snapshot_region_at(struct snapshot *s, uint64_t addr,
		    uint64_t *page);
/* Where page `page` of region r is in the process now. */
uint64_t	 snapshot_page_addr(struct snapshot *s, const struct region *r,
		    uint64_t page);
void		 snapshot_lost_push(struct snapshot *s, uint32_t region,
		    uint64_t first, uint64_t count);

/* readmem.c */
struct iovec;
int		 snapshot_mem_open(struct snapshot *s);
void		 snapshot_mem_close(struct snapshot *s);
/*
 * Read the armed mm from addr on into the local buffers.  Returns the bytes
 * read (short, or 0, where the range is not mapped), or -1 with errno ESRCH
 * when the armed mm is gone (exec, every thread exited), other errno on
 * other failures.
 */
ssize_t		 snapshot_read_mem(struct snapshot *s, const struct iovec *local,
		    unsigned nlocal, uint64_t addr);
int		 snapshot_mm_alive(struct snapshot *s);

/*
 * readfile.c.  snapshot_files_open(): after the regions are registered,
 * give each region that is a shared file mapping its own description of
 * the file (the others keep filefd -1).  snapshot_read_pages(): read pages
 * from `page` on of region r, which are at addr in the process now, as
 * snapshot_read_mem() does (same returns), from the file where r has one.
 */
void		 snapshot_files_open(struct snapshot *s);
void		 snapshot_files_close(struct snapshot *s);
ssize_t		 snapshot_read_pages(struct snapshot *s, struct region *r,
		    uint64_t page, const struct iovec *local, unsigned nlocal,
		    uint64_t addr);
/* Fail the snapshot: the armed mm is gone (sets the error and fault_error). */
void		 snapshot_mm_gone(struct snapshot *s);

/* Writer: count s among the snapshots running now (armed, not done). */
void		 snapshot_running_enter(struct snapshot *s);
void		 snapshot_running_leave(struct snapshot *s);
/* Writer: whether the condition of the test hook's hold (req.hold) is met. */
int		 snapshot_hold_over(struct snapshot *s);

/* Tracking: note pages [first, first+count) of r as written (if tracking). */
static inline void
snapshot_track_note(struct snapshot *s, const struct region *r,
    uint64_t first, uint64_t count)
{
	if (s->track != NULL)
		track_note(s->track, r->index, first, count);
}

/* Pre-arm: note pages [first, first+count) of r as written. */
void		 snapshot_prearm_note(struct region *r, uint64_t first,
		    uint64_t count);

/*
 * stopped.c.  stopped_copy(): at the armed instant, before the fault
 * thread starts, read every stopped region into the page buffer, publish
 * its pages and claim them all (unreadable ones into stopped_lost); 0, or
 * -1 with the snapshot's error set.  stopped_pages(): the pages of a
 * request's stopped regions.
 */
int		 stopped_copy(struct snapshot *s);
uint64_t	 stopped_pages(const struct snapshot_request *req);

/*
 * hugepage.c.  snapshot_huge_block(): 1 and the first page of the 2 MiB
 * block around `page` of r in *block if that block is a huge page mapped
 * whole now and can be saved as one; else 0.  snapshot_huge_unclaimed():
 * whether no page of that block is claimed.  snapshot_huge_close(): close
 * s->pagemap (after the fault thread is joined).
 */
int		 snapshot_huge_block(struct snapshot *s, const struct region *r,
		    uint64_t page, uint64_t *block);
int		 snapshot_huge_unclaimed(struct region *r, uint64_t block);
void		 snapshot_huge_close(struct snapshot *s);

/*
 * upload.c, an S3 destination.  upload_prepare(): snapshot_start(), main
 * thread: refuse what an upload cannot take (raw, tracking, regions too
 * large for its parts) and copy the destination; 0, or -1 with errno and
 * why in err.  upload_open(): writer thread, before arming: no object may
 * have the key, then the multipart upload starts (sink_s3_open()); 0, or
 * -1 with the snapshot's error set.  upload_close(): writer thread, at the
 * end: abort the upload unless it completed, keep its figures, free the
 * sink.  upload_stats(): any thread.  upload_free(): snapshot_destroy().
 */
int		 upload_prepare(struct snapshot *s,
		    const struct snapshot_request *req, char *err,
		    size_t errlen);
int		 upload_open(struct snapshot *s);
void		 upload_close(struct snapshot *s);
void		 upload_stats(struct snapshot *s, struct snapshot_stats *st);
void		 upload_free(struct snapshot *s);

/* fault.c */
void		*fault_thread_main(void *arg);

/* writer.c */
void		*writer_thread_main(void *arg);

/*
 * arm.c, called by the writer thread in this order: arm_begin(), (the test
 * hook's hold at arming), arm_finish(), arm_start_fault_thread(); for a
 * pre-arm then arm_prearm_wait() and arm_rearm().  Each returns 0, or -1
 * with the snapshot's error set.
 */
struct arm {
	uint64_t	 t0;		/* when protecting began */
};
int		 arm_begin(struct snapshot *s, struct arm *a);
int		 arm_finish(struct snapshot *s, struct arm *a);
int		 arm_start_fault_thread(struct snapshot *s);
int		 arm_prearm_wait(struct snapshot *s);
int		 arm_rearm(struct snapshot *s);
/*
 * An incremental snapshot's arm (instead of arm_begin() and arm_finish()):
 * register again what was unmapped or moved, mark the pages unchanged since
 * the parent as saved, protect the parent's dirty pages: the point in time.
 */
int		 arm_incremental(struct snapshot *s);

#endif /* SNAPD_SNAPSHOT_INTERNAL_H */
