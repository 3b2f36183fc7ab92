/*
 * Unit test of the bounded page buffer (daemon/engine/pagebuf.c), the hand-off
 * between the fault thread and the writer thread.  What must hold:
 *
 *   bounded	never more slots out (got, not yet released) than nslots;
 *   one owner	a slot is never handed to two holders at once: each get
 *		finds its slot's owner count at 0, each release at 1;
 *   in order	published slots are taken oldest first;
 *   full_waits	pagebuf_get() waits only when no slot is free, and
 *		full_waits counts exactly the gets that found it so;
 *   cancel	a get that waits, or would, returns -1 once cancelled.
 *
 * The first two run with several getters and one taker racing on a small
 * buffer (run it under ThreadSanitizer too); the wait is forced
 * deterministically: the buffer is filled, then a second thread's get must
 * be seen blocked (its full_waits increment, read under the buffer's lock)
 * and must not return until a slot is released.  Exits 0 on pass, 1 on
 * failure.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagebuf.h"
#include "unit-check.h"

#define NSLOTS		8
#define GETTERS		4
#define PER_GETTER	20000

struct race {
	struct pagebuf	 pb;
	_Atomic int	 owner[NSLOTS];		/* holders of each slot */
	_Atomic int	 out;			/* slots got, not released */
	_Atomic int	 out_max;
	_Atomic int	 errors;
	_Atomic uint64_t waited;		/* gets that said they waited */
};

static void
race_note_out(struct race *r, int delta)
{
	int now = atomic_fetch_add(&r->out, delta) + delta, max;

	max = atomic_load(&r->out_max);
	while (now > max && !atomic_compare_exchange_weak(&r->out_max, &max,
	    now))
		;
}

static void *
race_getter(void *arg)
{
	struct race	*r = arg;
	uint32_t	 slot;
	int		 waited;

	for (int i = 0; i < PER_GETTER; i++) {
		if (pagebuf_get(&r->pb, &slot, &waited) == -1 ||
		    slot >= NSLOTS) {
			atomic_fetch_add(&r->errors, 1);
			return NULL;
		}
		if (waited)
			atomic_fetch_add(&r->waited, 1);
		race_note_out(r, 1);
		/* The slot's memory is ours alone: scribble on it. */
		memset(pagebuf_mem(&r->pb, slot), i & 0xff, 64);
		if (atomic_fetch_add(&r->owner[slot], 1) != 0)
			atomic_fetch_add(&r->errors, 1);
		pagebuf_publish(&r->pb, slot, 0, (uint64_t)i);
	}
	return NULL;
}

static void
test_race(void)
{
	struct race	*r = calloc(1, sizeof(*r));
	pthread_t	 t[GETTERS];
	uint32_t	 slots[NSLOTS];
	uint64_t	 taken = 0, total = (uint64_t)GETTERS * PER_GETTER;

	if (r == NULL || pagebuf_init(&r->pb, NSLOTS * SNAPD_PAGE_SIZE) == -1) {
		FAIL("pagebuf_init of %d slots", NSLOTS);
		free(r);
		return;
	}
	for (int i = 0; i < GETTERS; i++)
		pthread_create(&t[i], NULL, race_getter, r);
	/* This thread is the writer: take, check, release. */
	while (taken < total && atomic_load(&r->errors) == 0) {
		uint32_t n = pagebuf_take(&r->pb, slots, NSLOTS);

		if (n == 0) {
			pagebuf_wait_ready(&r->pb, 10);
			continue;
		}
		for (uint32_t i = 0; i < n; i++)
			if (slots[i] >= NSLOTS ||
			    atomic_fetch_sub(&r->owner[slots[i]], 1) != 1)
				atomic_fetch_add(&r->errors, 1);
		race_note_out(r, -(int)n);
		pagebuf_release(&r->pb, slots, n);
		taken += n;
	}
	if (atomic_load(&r->errors) != 0)
		pagebuf_cancel(&r->pb);
	for (int i = 0; i < GETTERS; i++)
		pthread_join(t[i], NULL);

	if (atomic_load(&r->errors) != 0)
		FAIL("race: %d slots were handed to two holders at once (or "
		    "out of range)", atomic_load(&r->errors));
	if (taken != total)
		FAIL("race: took %llu slots, %llu were published",
		    (unsigned long long)taken, (unsigned long long)total);
	if (atomic_load(&r->out_max) > NSLOTS || r->pb.peak > NSLOTS)
		FAIL("race: %d slots out at once (peak %u), the buffer has %d",
		    atomic_load(&r->out_max), r->pb.peak, NSLOTS);
	if (pagebuf_used(&r->pb) != 0)
		FAIL("race: %u slots still out at the end",
		    pagebuf_used(&r->pb));
	if (r->pb.full_waits != atomic_load(&r->waited))
		FAIL("race: full_waits %llu, but %llu gets said they waited",
		    (unsigned long long)r->pb.full_waits,
		    (unsigned long long)atomic_load(&r->waited));
	pagebuf_destroy(&r->pb);
	free(r);
}

static void
test_order(void)
{
	struct pagebuf	pb;
	uint32_t	slot[4], got[4];
	int		waited;

	if (pagebuf_init(&pb, 4 * SNAPD_PAGE_SIZE) == -1) {
		FAIL("pagebuf_init");
		return;
	}
	for (int i = 0; i < 4; i++) {
		pagebuf_get(&pb, &slot[i], &waited);
		pagebuf_publish(&pb, slot[i], 1, (uint64_t)(100 + i));
	}
	if (pagebuf_take(&pb, got, 4) != 4)
		FAIL("order: four published, not four taken");
	for (int i = 0; i < 4; i++) {
		if (got[i] != slot[i])
			FAIL("order: take %d gave slot %u, published %u", i,
			    got[i], slot[i]);
		if (pb.desc[got[i]].region != 1 ||
		    pb.desc[got[i]].page != (uint64_t)(100 + i))
			FAIL("order: slot %u lost where its page belongs",
			    got[i]);
	}
	pagebuf_release(&pb, got, 4);
	pagebuf_destroy(&pb);
}

struct blocked {
	struct pagebuf	*pb;
	uint32_t	 slot;
	int		 rc, waited;
	_Atomic int	 returned;
};

static void *
blocked_get(void *arg)
{
	struct blocked *b = arg;

	b->rc = pagebuf_get(b->pb, &b->slot, &b->waited);
	atomic_store(&b->returned, 1);
	return NULL;
}

/* Until full_waits reaches n: the getter is then inside its wait. */
static void
wait_full_waits(struct pagebuf *pb, uint64_t n)
{
	uint64_t now;

	for (;;) {
		pthread_mutex_lock(&pb->lock);
		now = pb->full_waits;
		pthread_mutex_unlock(&pb->lock);
		if (now >= n)
			return;
		sched_yield();
	}
}

static void
test_full_wait(void)
{
	struct pagebuf	pb;
	struct blocked	b = { .pb = &pb };
	pthread_t	t;
	uint32_t	s0, s1, s2;
	int		waited;

	if (pagebuf_init(&pb, 2 * SNAPD_PAGE_SIZE) == -1) {
		FAIL("pagebuf_init");
		return;
	}
	if (pagebuf_get(&pb, &s0, &waited) == -1 || waited ||
	    pagebuf_get(&pb, &s1, &waited) == -1 || waited || s0 == s1)
		FAIL("full: the first two gets of two slots waited or clashed");
	if (pb.full_waits != 0)
		FAIL("full: full_waits %llu before the buffer was ever full",
		    (unsigned long long)pb.full_waits);
	if (pagebuf_try_get(&pb, &s2) != -1)
		FAIL("full: try_get found a slot in a full buffer");
	if (pb.full_waits != 0)
		FAIL("full: try_get counted as a full wait");

	pthread_create(&t, NULL, blocked_get, &b);
	wait_full_waits(&pb, 1);
	/* Blocked, and stays so: nothing was released. */
	if (atomic_load(&b.returned))
		FAIL("full: a get returned from a full buffer");
	pagebuf_release(&pb, &s0, 1);
	pthread_join(t, NULL);
	if (b.rc != 0 || !b.waited || b.slot != s0)
		FAIL("full: the blocked get returned %d, waited %d, slot %u "
		    "(released %u)", b.rc, b.waited, b.slot, s0);
	if (pb.full_waits != 1)
		FAIL("full: full_waits %llu after one get found it full",
		    (unsigned long long)pb.full_waits);

	/* A get that finds a free slot does not wait nor count. */
	pagebuf_release(&pb, &s1, 1);
	if (pagebuf_get(&pb, &s2, &waited) == -1 || waited ||
	    pb.full_waits != 1)
		FAIL("full: a get with a free slot waited (%d) or counted "
		    "(full_waits %llu)", waited,
		    (unsigned long long)pb.full_waits);

	/* Full again: a waiting get ends with -1 at cancel. */
	b.returned = 0;
	pthread_create(&t, NULL, blocked_get, &b);
	wait_full_waits(&pb, 2);
	pagebuf_cancel(&pb);
	pthread_join(t, NULL);
	if (b.rc != -1)
		FAIL("full: a waiting get returned %d at cancel", b.rc);
	if (pagebuf_get(&pb, &s2, &waited) != -1)
		FAIL("full: a get after cancel succeeded");
	pagebuf_destroy(&pb);
}

static void
test_init_bounds(void)
{
	struct pagebuf pb;

	if (pagebuf_init(&pb, SNAPD_PAGE_SIZE - 1) != -1)
		FAIL("init: a buffer smaller than a page was accepted");
	if (pagebuf_init(&pb, 3 * SNAPD_PAGE_SIZE + 100) == -1)
		FAIL("init: 3 pages and a bit");
	else {
		if (pb.nslots != 3 || pb.nfree != 3)
			FAIL("init: 3 pages and a bit made %u slots", pb.nslots);
		pagebuf_destroy(&pb);
	}
}

int
main(void)
{
	test_init_bounds();
	test_order();
	test_full_wait();
	test_race();
	return unit_finish("pagebuf");
}
