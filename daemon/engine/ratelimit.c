/*
 * The output rate limit (ratelimit.h): a token bucket kept as one
 * instant, next_ns, when everything charged so far is paid for at the
 * rate.  Charging b bytes moves it b / rate seconds on (to the
 * nanosecond, the remainder kept for the next charge); a sender ahead of
 * it sleeps until it.  An idle sender lets it fall behind the clock by at
 * most RATELIMIT_BURST_NS, which is all the credit it can save up.
 *
 * Writer thread only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "ratelimit.h"
#include "snapshot-internal.h"

/* The longest single sleep: a cancel is noticed within it. */
#define RATELIMIT_SLEEP_MAX_NS	50000000ULL

void
ratelimit_init(struct ratelimit *rl, uint64_t rate)
{
	rl->rate = rate;
	rl->next_ns = 0;
	rl->rem = 0;
}

uint64_t
ratelimit_charge(struct ratelimit *rl, uint64_t bytes, uint64_t now_ns)
{
	uint64_t		 start = rl->next_ns;
	unsigned __int128	 cost;

	if (rl->rate == 0)
		return now_ns;
	if (start + RATELIMIT_BURST_NS < now_ns)
		start = now_ns - RATELIMIT_BURST_NS;
	/* The remainder carries over: no drift, however small the charges. */
	cost = (unsigned __int128)bytes * 1000000000U + rl->rem;
	rl->rem = (uint64_t)(cost % rl->rate);
	rl->next_ns = start + (uint64_t)(cost / rl->rate);
	return rl->next_ns;
}

void
ratelimit_pace(struct snapshot *s, struct ratelimit *rl, uint64_t pages)
{
	uint64_t	 until, now = now_ns();
	struct timespec	 ts;

	if (rl->rate == 0)
		return;
	until = ratelimit_charge(rl, pages * PAGE_4K, now);
	/* Below a millisecond ahead, the debt is paid with the next sleep. */
	if (until < now + 1000000)
		return;
	while (now < until && !atomic_load(&s->cancel) &&
	    !atomic_load(&s->fault_error)) {
		uint64_t ns = until - now;

		if (ns > RATELIMIT_SLEEP_MAX_NS)
			ns = RATELIMIT_SLEEP_MAX_NS;
		ts.tv_sec = (time_t)(ns / 1000000000ULL);
		ts.tv_nsec = (long)(ns % 1000000000ULL);
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		now = now_ns();
	}
}
