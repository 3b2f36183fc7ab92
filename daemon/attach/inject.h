/*
 * Running system calls inside a stopped process, through one of its
 * threads, so that the thread comes back intact whatever happens to snapd.
 *
 * The usual way (set the registers to a syscall instruction, step over
 * it, set them back) leaves a thread with foreign registers if the tracer
 * dies between the two sets: the kernel detaches it and it runs on from
 * the syscall instruction into whatever follows, and crashes.  Here the
 * thread is never in a state it cannot leave by itself:
 *
 *  - A small piece of code (the blob, below) is written into padding that
 *    no code ever runs: the zero bytes between the end of an executable
 *    segment and the end of its last page, found from the ELF program
 *    headers of a library or the executable.  It is a syscall
 *    instruction, then a store of its result, then a tail that closes
 *    every descriptor we made in the process and restores every register
 *    of the thread from a save area and jumps back to where it stopped.
 *  - The save area and the other scratch data (descriptor slots, the
 *    recvmsg buffers) live on the thread's own stack, below its red zone,
 *    where a signal frame could go too.
 *  - Each injected syscall starts at the blob with the blob's registers.
 *    With snapd alive, the thread is stepped syscall-stop by syscall-stop
 *    and snapd sets the registers itself; killed at any instant, the
 *    thread finishes the syscall, closes what we made, restores itself
 *    and goes on as if only interrupted.
 *  - A thread stopped inside a system call resumes as the kernel would
 *    have resumed it (the syscall restarted, or restart_syscall for
 *    nanosleep and friends): the save area holds that already.
 *  - The padding and the stack bytes are written back when done, so the
 *    snapshot sees the process's own bytes.
 *
 * Every call must come from the thread that stopped the process (tracer.h).
 */
#ifndef SNAPD_INJECT_H
#define SNAPD_INJECT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "tracer.h"

#define INJECT_FDS		8	/* descriptors the tail may close */
#define INJECT_SCRATCH		1024	/* stack bytes used below the red zone */
#define INJECT_CODE_MAX		96	/* bytes of padding the blob needs */
#define INJECT_FAILED		(-100000L)	/* not a syscall result */

/* Test hook: called at the named moments (attach.c pauses there). */
typedef void inject_pause_fn(void *arg, const char *phase);

struct inject {
	struct tracer		*tr;
	struct tracee		*t;		/* the thread injected through */
	int			 mem;		/* /proc/PID/mem, read-write */
	uint64_t		 code;		/* where the blob is */
	uint8_t			 saved_code[INJECT_CODE_MAX];
	uint64_t		 scratch;	/* base of the scratch area */
	uint8_t			 saved_scratch[INJECT_SCRATCH];
	struct user_regs_struct	 resume;	/* what the thread resumes with */
	unsigned		 nfds;		/* descriptor slots in use */
	uint64_t		 slot_at[INJECT_FDS];	/* where each slot's int is */
	uint64_t		 resignal;	/* signals held back meanwhile */
	int			 stepped;	/* registers changed at least once */
	inject_pause_fn		*pause;
	void			*pause_arg;
};

/*
 * Choose a thread of tr, find room for the blob and write it and the
 * scratch area.  0, or -1 with why (nothing changed in the process).
 */
int	inject_begin(struct inject *in, struct tracer *tr, char *why,
	    size_t whylen);

/*
 * Address in the process of descriptor slot i (an int initialised to -1):
 * a syscall that returns descriptors through memory (socketpair) is given
 * slot addresses; each slot in use is closed by the tail.
 */
uint64_t inject_slot(const struct inject *in, unsigned i);
/*
 * Make descriptor slot i the int at addr (inside a scratch buffer, e.g.
 * where recvmsg puts a received descriptor); it must hold -1 or a
 * descriptor of the process before the syscall that may fill it.
 */
int	inject_track(struct inject *in, unsigned i, uint64_t addr);
/* Address of n bytes of scratch memory for buffers (recvmsg), offset off. */
uint64_t inject_buf(const struct inject *in, unsigned off);
/* Read or write scratch or slot memory in the process. */
int	inject_peek(struct inject *in, uint64_t addr, void *buf, size_t len);
int	inject_poke(struct inject *in, uint64_t addr, const void *buf,
	    size_t len);

/*
 * Run syscall nr(args) in the process.  If fd_slot >= 0 the result is a
 * descriptor kept in that slot (so it is closed at the end).  Slots
 * [0, nslots) are closed by the tail if snapd dies from here on.  Returns
 * the syscall's result (a negative errno on its failure), or
 * INJECT_FAILED with why set when ptrace itself failed.
 */
long	inject_syscall(struct inject *in, long nr, const long args[6],
	    int fd_slot, unsigned nslots, char *why, size_t whylen);

/*
 * Close every descriptor slot in use inside the process, give the thread
 * back its registers, and write back the padding and the stack bytes.
 * 0, or -1 with why.  Always tries all of it.
 */
int	inject_end(struct inject *in, char *why, size_t whylen);

#endif /* SNAPD_INJECT_H */
