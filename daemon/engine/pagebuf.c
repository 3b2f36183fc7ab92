/*
 * The bounded page buffer: see pagebuf.h for who calls what.
 *
 * The slots are one anonymous mapping that is not populated up front, so an
 * unused buffer costs address space, not memory.  The free slots are a
 * stack (the most recently released, still-cached slot is reused first);
 * published slots are a ring, so the writer saves them in fault order.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "pagebuf.h"

int
pagebuf_init(struct pagebuf *pb, uint64_t bytes)
{
	uint64_t n = bytes / SNAPD_PAGE_SIZE;

	if (n == 0 || n > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	*pb = (struct pagebuf){ .nslots = (uint32_t)n, .nfree = (uint32_t)n };
	pb->mem = mmap(NULL, n * SNAPD_PAGE_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pb->mem == MAP_FAILED) {
		pb->mem = NULL;
		return -1;
	}
	pb->free_stack = calloc(n, sizeof(*pb->free_stack));
	pb->ready = calloc(n, sizeof(*pb->ready));
	pb->desc = calloc(n, sizeof(*pb->desc));
	if (pb->free_stack == NULL || pb->ready == NULL || pb->desc == NULL) {
		pagebuf_destroy(pb);
		errno = ENOMEM;
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		pb->free_stack[i] = (uint32_t)(n - 1 - i);
	pthread_mutex_init(&pb->lock, NULL);
	pthread_cond_init(&pb->slot_free, NULL);
	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&pb->slot_ready, &attr);
		pthread_condattr_destroy(&attr);
	}
	return 0;
}

void
pagebuf_destroy(struct pagebuf *pb)
{
	if (pb->mem != NULL) {
		munmap(pb->mem, (uint64_t)pb->nslots * SNAPD_PAGE_SIZE);
		pthread_mutex_destroy(&pb->lock);
		pthread_cond_destroy(&pb->slot_free);
		pthread_cond_destroy(&pb->slot_ready);
	}
	free(pb->free_stack);
	free(pb->ready);
	free(pb->desc);
	pb->mem = NULL;
	pb->free_stack = pb->ready = NULL;
	pb->desc = NULL;
}

int
pagebuf_get(struct pagebuf *pb, uint32_t *slot, int *waited)
{
	int rc = 0;

	*waited = 0;
	pthread_mutex_lock(&pb->lock);
	if (pb->nfree == 0 && !pb->cancelled) {
		*waited = 1;
		pb->full_waits++;
		/* The writer may be idle-waiting for work: make sure it drains. */
		pthread_cond_signal(&pb->slot_ready);
	}
	while (pb->nfree == 0 && !pb->cancelled)
		pthread_cond_wait(&pb->slot_free, &pb->lock);
	if (pb->cancelled)
		rc = -1;
	else {
		uint32_t used;

		*slot = pb->free_stack[--pb->nfree];
		used = pb->nslots - pb->nfree;
		if (used > pb->peak)
			pb->peak = used;
	}
	pthread_mutex_unlock(&pb->lock);
	return rc;
}

int
pagebuf_try_get(struct pagebuf *pb, uint32_t *slot)
{
	return pagebuf_try_get_n(pb, slot, 1, 0);
}

int
pagebuf_try_get_n(struct pagebuf *pb, uint32_t *slots, uint32_t n,
    uint32_t reserve)
{
	int rc = -1;

	pthread_mutex_lock(&pb->lock);
	if (pb->nfree >= n && pb->nfree - n >= reserve && !pb->cancelled) {
		uint32_t used;

		for (uint32_t i = 0; i < n; i++)
			slots[i] = pb->free_stack[--pb->nfree];
		used = pb->nslots - pb->nfree;
		if (used > pb->peak)
			pb->peak = used;
		rc = 0;
	}
	pthread_mutex_unlock(&pb->lock);
	return rc;
}

void
pagebuf_publish(struct pagebuf *pb, uint32_t slot, uint32_t region,
    uint64_t page)
{
	pthread_mutex_lock(&pb->lock);
	pb->desc[slot].region = region;
	pb->desc[slot].page = page;
	pb->ready[(pb->ready_head + pb->ready_count) % pb->nslots] = slot;
	pb->ready_count++;
	pthread_cond_signal(&pb->slot_ready);
	pthread_mutex_unlock(&pb->lock);
}

uint32_t
pagebuf_take(struct pagebuf *pb, uint32_t *slots, uint32_t max)
{
	uint32_t n = 0;

	pthread_mutex_lock(&pb->lock);
	while (n < max && pb->ready_count > 0) {
		slots[n++] = pb->ready[pb->ready_head];
		pb->ready_head = (pb->ready_head + 1) % pb->nslots;
		pb->ready_count--;
	}
	pthread_mutex_unlock(&pb->lock);
	return n;
}

void
pagebuf_release(struct pagebuf *pb, const uint32_t *slots, uint32_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&pb->lock);
	for (uint32_t i = 0; i < n; i++)
		pb->free_stack[pb->nfree++] = slots[i];
	pthread_cond_signal(&pb->slot_free);
	pthread_mutex_unlock(&pb->lock);
}

void
pagebuf_wait_ready(struct pagebuf *pb, int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&pb->lock);
	if (pb->ready_count == 0 && !pb->cancelled)
		pthread_cond_timedwait(&pb->slot_ready, &pb->lock, &ts);
	pthread_mutex_unlock(&pb->lock);
}

void
pagebuf_cancel(struct pagebuf *pb)
{
	pthread_mutex_lock(&pb->lock);
	pb->cancelled = 1;
	pthread_cond_broadcast(&pb->slot_free);
	pthread_cond_broadcast(&pb->slot_ready);
	pthread_mutex_unlock(&pb->lock);
}

uint32_t
pagebuf_used(struct pagebuf *pb)
{
	uint32_t used;

	pthread_mutex_lock(&pb->lock);
	used = pb->nslots - pb->nfree;
	pthread_mutex_unlock(&pb->lock);
	return used;
}
