/*
 * The bounded page buffer: a fixed set of 4 KiB slots, allocated once per
 * snapshot, through which the fault thread hands pages it copied to the
 * writer thread.  Its size is the operator's bound on snapd's extra memory.
 *
 * Threads: the fault thread calls pagebuf_get() and pagebuf_publish(); the
 * writer thread calls pagebuf_take(), pagebuf_release() and
 * pagebuf_wait_ready(); pagebuf_cancel() and the figures may be called from
 * any thread.  One mutex (pb->lock) guards the free stack, the ready ring
 * and the counters behind it; slot memory is owned by whoever holds the
 * slot index and needs no lock.
 */
#ifndef SNAPD_PAGEBUF_H
#define SNAPD_PAGEBUF_H

#include <pthread.h>
#include <stdint.h>

#include "protocol.h"

struct pagebuf_slot {
	uint32_t	region;
	uint64_t	page;		/* page index within the region */
};

struct pagebuf {
	pthread_mutex_t		 lock;
	pthread_cond_t		 slot_free;	/* fault thread waits here when full */
	pthread_cond_t		 slot_ready;	/* writer waits here when idle */
	uint8_t			*mem;		/* nslots pages */
	uint32_t		 nslots;
	uint32_t		*free_stack;	/* guarded by lock */
	uint32_t		 nfree;
	uint32_t		*ready;		/* ring of published slots */
	uint32_t		 ready_head, ready_count;
	struct pagebuf_slot	*desc;		/* per slot: where its page belongs */
	uint32_t		 peak;		/* most slots in use at once */
	uint64_t		 full_waits;	/* pagebuf_get() calls that waited */
	int			 cancelled;
};

int	 pagebuf_init(struct pagebuf *pb, uint64_t bytes);
void	 pagebuf_destroy(struct pagebuf *pb);
static inline uint8_t *
pagebuf_mem(struct pagebuf *pb, uint32_t slot)
{
	return pb->mem + (uint64_t)slot * SNAPD_PAGE_SIZE;
}
/* A free slot, waiting while there is none.  *waited is set to 1 if it had
 * to wait.  Returns -1 once cancelled. */
int	 pagebuf_get(struct pagebuf *pb, uint32_t *slot, int *waited);
/* A free slot if there is one now, without waiting: 0, or -1. */
int	 pagebuf_try_get(struct pagebuf *pb, uint32_t *slot);
/* n free slots if more than reserve others stay free, without waiting:
 * all n (0) or none (-1). */
int	 pagebuf_try_get_n(struct pagebuf *pb, uint32_t *slots, uint32_t n,
	    uint32_t reserve);
/* Give a filled slot to the writer. */
void	 pagebuf_publish(struct pagebuf *pb, uint32_t slot, uint32_t region,
	    uint64_t page);
/* Take up to max published slots (oldest first); never blocks. */
uint32_t pagebuf_take(struct pagebuf *pb, uint32_t *slots, uint32_t max);
void	 pagebuf_release(struct pagebuf *pb, const uint32_t *slots, uint32_t n);
/* Wait up to timeout_ms for a published slot (or cancel). */
void	 pagebuf_wait_ready(struct pagebuf *pb, int timeout_ms);
void	 pagebuf_cancel(struct pagebuf *pb);
uint32_t pagebuf_used(struct pagebuf *pb);

#endif /* SNAPD_PAGEBUF_H */
