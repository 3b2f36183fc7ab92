/*
 * Dirty tracking between snapshots, for incremental snapshots.
 *
 * The mechanism: a tracked snapshot keeps its userfaultfd registered after
 * it completes.  During the snapshot every page is write-protected from the
 * armed instant until the process writes it (the fault path copies it and
 * un-protects it) or never: the sweep reads a page and leaves it protected
 * when tracking.  So at any moment after the armed instant,
 *
 *	a page not marked dirty is still write-protected and unchanged,
 *
 * and every first write to it reaches snapd, which marks it dirty and
 * un-protects it (the fault thread during a snapshot, the tracker thread,
 * tracker.c, between snapshots).  An incremental snapshot, armed while its
 * owner holds the process still, write-protects only the dirty pages
 * (a cost proportional to them, not to the region), saves those, and
 * records the others as unchanged since the parent.  The invariant above
 * then holds again from its own armed instant.
 *
 * Events that change memory without a write fault (UFFD_EVENT_REMOVE,
 * UNMAP, REMAP) mark their range dirty and are recorded as "saved whole"
 * ranges (proto/zsnap.h, struct zsnap_whole) with the reason; an unmapped
 * or moved range is registered again at the next arm.
 *
 * A struct track_state is handed along a chain: snapshot (fault thread
 * notes) -> tracker (tracker thread notes) -> the next incremental snapshot
 * -> ...  Exactly one of them owns it at a time; the owner's threads are
 * the only writers of its bitmaps and lists.
 */
#ifndef SNAPD_TRACK_H
#define SNAPD_TRACK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zsnap.h"

/* Whole ranges kept one by one; beyond, every region is saved whole. */
#define TRACK_WHOLE_MAX		1024

struct track_region {
	uint64_t		 start;
	uint64_t		 length;
	uint64_t		 npages;
	_Atomic uint64_t	*dirty;		/* written since the armed instant */
};

struct track_state {
	int			 uffd;		/* registered over every region */
	int			 pidfd;
	int			 memfd;		/* /proc/PID/mem of the armed mm */
	int			 pagemap;	/* /proc/PID/pagemap of it */
	pid_t			 pid;
	uint64_t		 features;	/* granted by UFFDIO_API */
	uint32_t		 nregions;
	struct track_region	*regions;	/* in the snapshot's region order */
	struct zsnap_whole	*whole;		/* saved-whole ranges, with why */
	size_t			 nwhole;
	int			 whole_overflow;	/* too many: all saved whole */
	int			 reregister;	/* unmapped or moved: register
						 * the regions again at arm */
	uint64_t		 faults;	/* write faults served since the
						 * armed instant (tracker) */
};

/* A state over nregions regions (bitmaps zeroed), fds -1; NULL, errno. */
struct track_state *track_state_new(const uint64_t *start,
		    const uint64_t *length, uint32_t nregions);
/* Close every fd, free everything (NULL is fine). */
void		 track_state_free(struct track_state *st);

/* Mark pages [first, first + count) of region i dirty. */
void		 track_note(struct track_state *st, uint32_t i, uint64_t first,
		    uint64_t count);
/*
 * The process changed [start, end) of its address space without a write
 * fault: mark what of the regions it covers dirty, and record it as saved
 * whole for reason (enum zsnap_whole_reason); UNMAPPED and MOVED also ask
 * for the regions to be registered again.
 */
void		 track_event(struct track_state *st, uint64_t start,
		    uint64_t end, uint32_t reason);
/* Pages marked dirty now. */
uint64_t	 track_dirty_pages(const struct track_state *st);
/* Fold src's dirty pages and whole ranges into dst (same regions). */
void		 track_merge(struct track_state *dst,
		    const struct track_state *src);
/* Swap the bitmaps of a and b (same regions). */
void		 track_swap_dirty(struct track_state *a, struct track_state *b);
/* Name of an enum zsnap_whole_reason, for logs and replies. */
const char	*track_reason_name(uint32_t reason);

/*
 * The tracker: a thread that serves the process's write faults between
 * snapshots (tracker.c).  tracker_start() takes st over (on failure too:
 * NULL, errno, st freed).  tracker_stop() ends the thread after serving
 * every fault queued, and gives the state back (NULL when tracking was
 * lost: the process exited or execed, or the uffd failed; why says so);
 * tracker_free() then frees the tracker.  tracker_alive() and
 * tracker_dirty() may be called at any time from the main thread.
 */
struct tracker;

struct tracker	*tracker_start(struct track_state *st, uint64_t id);
struct track_state *tracker_stop(struct tracker *t, char *why, size_t whylen);
void		 tracker_free(struct tracker *t);
int		 tracker_alive(struct tracker *t);
uint64_t	 tracker_dirty(struct tracker *t);
pid_t		 tracker_pid(const struct tracker *t);
/* Why tracking was lost ("" while alive). */
const char	*tracker_why(struct tracker *t);

#endif /* SNAPD_TRACK_H */
