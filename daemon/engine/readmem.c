/*
 * Reads tied to the armed address space (invariant 6).
 *
 * snapd used to read pages with process_vm_readv(pid), which reads whatever
 * address space the pid has *now*: after an exec that is the new program's
 * (a setuid one included), and after the thread-group leader exits while
 * other threads run, it fails with ESRCH although the armed memory is alive.
 * Instead, the writer opens /proc/PID/mem while arming.  That file pins the
 * mm it was opened on, not the pid: once that mm has no users left (exec,
 * or every thread exited) its reads return 0, and they keep working while
 * any thread still uses it.  Checked on 6.18: after the leader's
 * pthread_exit() the fd reads on; after execve() it reads 0 bytes.  An
 * unmapped address reads -1 EIO (short when only the tail is unmapped).
 *
 * The file is opened before /proc/PID/pagemap, on which the owner check
 * runs, so an exec between the two leaves `mem` on the mm that exec
 * dropped: its reads return 0 and the snapshot fails; it can never read
 * a newer image than the one checked.
 *
 * A read of memory that the process moves or unmaps at the same moment is
 * made safe by the callers (writer.c, fault.c) with `events_seq`: see
 * snapshot-internal.h.
 *
 * snapshot_mem_open() and snapshot_mem_close() run on the writer thread
 * (open while arming, close after the fault thread is joined);
 * snapshot_read_mem() on the writer and the fault thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "snapshot-internal.h"

int
snapshot_mem_open(struct snapshot *s)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)s->req.pid);
	if ((s->memfd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snapshot_set_error(s, "open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
snapshot_mem_close(struct snapshot *s)
{
	if (s->memfd >= 0) {
		close(s->memfd);
		s->memfd = -1;
	}
}

ssize_t
snapshot_read_mem(struct snapshot *s, const struct iovec *local,
    unsigned nlocal, uint64_t addr)
{
	ssize_t got;

	do
		got = preadv(s->memfd, local, (int)nlocal, (off_t)addr);
	while (got == -1 && errno == EINTR);
	if (got == 0) {
		errno = ESRCH;		/* the armed mm has no users left */
		return -1;
	}
	if (got == -1 && errno == EIO)
		return 0;		/* nothing mapped at addr */
	return got;
}

int
snapshot_mm_alive(struct snapshot *s)
{
	char byte;

	/* 0 bytes only when the mm is gone; EIO if merely unmapped there. */
	return pread(s->memfd, &byte, 1, (off_t)s->regions[0].start) != 0;
}

void
snapshot_mm_gone(struct snapshot *s)
{
	snapshot_set_error(s, "the armed address space is gone: the process "
	    "exec'ed a new program or all its threads exited (nothing read "
	    "after that is saved)");
	atomic_store(&s->fault_error, ESRCH);
}
