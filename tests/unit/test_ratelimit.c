/*
 * Unit test of the output rate limit's arithmetic (daemon/engine/ratelimit.h),
 * on a clock of our own.  What must hold:
 *
 *   off	rate 0 never makes the sender wait;
 *   rate	over any long run, what is charged is paid for at the rate:
 *		N bytes sent back to back end no earlier than N / rate
 *		seconds (less the bucket's burst) after the first;
 *   burst	an idle sender saves up at most RATELIMIT_BURST_NS of
 *		credit, however long it was idle;
 *   exact	no overflow or rounding drift at large rates and sizes.
 *
 * Exits 0 on pass, 1 on failure.
 */
#include <inttypes.h>
#include <stdio.h>

#include "ratelimit.h"
#include "unit-check.h"

#define SEC	((uint64_t)1000000000)

static void
check_off(void)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 0);
	for (uint64_t t = 5; t < 50; t += 5)
		if (ratelimit_charge(&rl, 1ULL << 30, t) != t)
			FAIL("off: a 1 GiB charge at %" PRIu64 " must not wait", t);
}

/* Send `total` bytes in `chunk`s as fast as allowed: when is it paid for? */
static uint64_t
send_all(struct ratelimit *rl, uint64_t now, uint64_t total, uint64_t chunk)
{
	for (uint64_t sent = 0; sent < total; sent += chunk) {
		uint64_t until = ratelimit_charge(rl, chunk, now);

		if (until > now)
			now = until;	/* the sender sleeps until then */
	}
	return now;
}

static void
check_rate(void)
{
	struct ratelimit rl;
	uint64_t	 start = 7 * SEC, end;

	/* 40 MiB/s, 1 GiB in 4 KiB pages: 25.6 s, less at most the burst. */
	ratelimit_init(&rl, 40ULL << 20);
	end = send_all(&rl, start, 1ULL << 30, 4096);
	if (end - start < 25600000000ULL - RATELIMIT_BURST_NS ||
	    end - start > 25600000000ULL)
		FAIL("rate: 1 GiB at 40 MiB/s took %" PRIu64 " ns, not 25.6 s",
		    end - start);
	/* Runs of 64 pages: the same. */
	ratelimit_init(&rl, 40ULL << 20);
	end = send_all(&rl, start, 1ULL << 30, 64 * 4096);
	if (end - start < 25600000000ULL - RATELIMIT_BURST_NS ||
	    end - start > 25600000000ULL)
		FAIL("rate: 1 GiB in 256 KiB runs took %" PRIu64 " ns",
		    end - start);
}

static void
check_burst(void)
{
	struct ratelimit rl;
	uint64_t	 t = SEC, until;

	ratelimit_init(&rl, 1ULL << 20);	/* 1 MiB/s: 1 byte ~ 954 ns */
	(void)ratelimit_charge(&rl, 1ULL << 20, t);
	/* An hour idle saves no more than the burst. */
	t += 3600 * SEC;
	until = ratelimit_charge(&rl, 1ULL << 20, t);
	if (until != t - RATELIMIT_BURST_NS + SEC)
		FAIL("burst: after an hour idle, 1 MiB at 1 MiB/s is paid at "
		    "%" PRIu64 ", expected %" PRIu64, until,
		    (uint64_t)(t - RATELIMIT_BURST_NS + SEC));
}

static void
check_exact(void)
{
	struct ratelimit rl;
	uint64_t	 until;

	/* 64 GiB/s and a 1 TiB charge: 16 s, nothing overflows. */
	ratelimit_init(&rl, 64ULL << 30);
	until = ratelimit_charge(&rl, 1ULL << 40, SEC);
	if (until != 17 * SEC - RATELIMIT_BURST_NS)
		FAIL("exact: 1 TiB at 64 GiB/s is paid at %" PRIu64, until);
	/* One byte a second above the minimum: a page costs 4096 s. */
	ratelimit_init(&rl, 4096);
	until = ratelimit_charge(&rl, 4096, 100 * SEC);
	if (until != 101 * SEC - RATELIMIT_BURST_NS)
		FAIL("exact: a page at 4096 B/s is paid at %" PRIu64, until);
}

int
main(void)
{
	check_off();
	check_rate();
	check_burst();
	check_exact();
	return unit_finish("ratelimit");
}
