/*
 * The output rate limit of a snapshot (snapshot-start's "max-bandwidth"):
 * a token bucket over the page data the writer hands to the output, in
 * bytes of uncompressed pages a second, as QEMU's max-bandwidth migration
 * parameter counts its stream.  Only the writer thread waits on it; the
 * fault thread never does.  A throttled writer drains the page buffer more
 * slowly, so the buffer fills, and only then do the process's writes wait
 * for a free slot: the limit bounds the disk, the buffer bounds memory.
 *
 * Runs on the writer thread only (writer.c); nothing here is shared.
 */
#ifndef SNAPD_RATELIMIT_H
#define SNAPD_RATELIMIT_H

#include <stdint.h>

struct snapshot;

/*
 * How much the bucket holds: bytes the writer may send at once after it
 * has been idle (waiting for the fault path, say) for that long.  Small
 * enough that no burst is noticed in the rate, large enough that the
 * writer sleeps about once a millisecond, not once a page.
 */
#define RATELIMIT_BURST_NS	10000000ULL	/* 10 ms at the rate */

struct ratelimit {
	uint64_t	 rate;		/* bytes a second; 0: unlimited */
	uint64_t	 next_ns;	/* when the bytes sent so far are paid for */
	uint64_t	 rem;		/* of next_ns, in 1/rate ns */
};

void		 ratelimit_init(struct ratelimit *rl, uint64_t rate);
/*
 * Charge `bytes` sent at monotonic time now_ns: the instant until which the
 * sender must wait before it sends them (now_ns or earlier: at once).
 */
uint64_t	 ratelimit_charge(struct ratelimit *rl, uint64_t bytes,
		    uint64_t now_ns);
/*
 * The writer, about to hand n pages to the output: wait until the limit
 * allows them, or until the snapshot is cancelled or fails.
 */
void		 ratelimit_pace(struct snapshot *s, struct ratelimit *rl,
		    uint64_t pages);

#endif /* SNAPD_RATELIMIT_H */
