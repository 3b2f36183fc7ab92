/*
 * Creating the userfaultfd a snapshot is taken through, and preparing the
 * regions for it.  Runs on the thread that calls snap_start().
 *
 * The fd is created by the process whose memory is snapshotted (only the
 * creator's page tables are protected) and handed to snapd, which does
 * UFFDIO_API itself: a uffd accepts UFFDIO_API once, and snapd must choose
 * the features.  So nothing here touches the fd after creating it.
 *
 * A full-mode uffd (kernel faults trapped too) needs root or
 * CAP_SYS_PTRACE for the syscall; otherwise access to /dev/userfaultfd is
 * enough, so when the syscall is refused the device is tried.
 * UFFD_USER_MODE_ONLY is never used: it would let kernel writes into a
 * region fail with EFAULT in the application instead of being trapped.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "client-internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23	/* linux 5.14 */
#endif

#define UFFD_DEVICE	"/dev/userfaultfd"

static int
uffd_from_device(struct snap_client *c, int syscall_errno)
{
	int	 dev, fd, saved;

	dev = open(UFFD_DEVICE, O_RDWR | O_CLOEXEC);
	if (dev == -1) {
		saved = errno;
		sc_set_error(c, saved == ENOENT ? syscall_errno : saved,
		    "userfaultfd: %s; open %s: %s", strerror(syscall_errno),
		    UFFD_DEVICE, strerror(saved));
		return -1;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	saved = errno;
	close(dev);
	if (fd == -1) {
		sc_set_error(c, saved, "userfaultfd: %s; %s: "
		    "USERFAULTFD_IOC_NEW: %s", strerror(syscall_errno),
		    UFFD_DEVICE, strerror(saved));
		return -1;
	}
	return fd;
}

int
sc_uffd_create(struct snap_client *c)
{
	int	 fd;

	fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	if (errno == EPERM || errno == ENOSYS)
		return uffd_from_device(c, errno);
	sc_set_error(c, errno, "userfaultfd: %m");
	return -1;
}

/*
 * Touch every page of [base, base + len) with a read and a write of the same
 * byte.  The caller guarantees nothing else writes the region meanwhile
 * (snap_start()'s contract), so writing back what was read changes nothing.
 */
static void
region_touch(uint64_t base, uint64_t len, long pagesize)
{
	volatile unsigned char	*p;
	uint64_t		 off;

	for (off = 0; off < len; off += (uint64_t)pagesize) {
		p = (volatile unsigned char *)(uintptr_t)(base + off);
		*p = *p;
	}
}

int
sc_regions_populate(struct snap_client *c, const struct snap_region *regions,
    size_t nregions)
{
	const struct snap_region	*r;
	long				 pagesize;
	size_t				 i;
	int				 have_madvise;

	pagesize = sysconf(_SC_PAGESIZE);
	/*
	 * A kernel without MADV_POPULATE_WRITE (before 5.14) refuses the
	 * advice with EINVAL whatever the length, even 0; one that has it
	 * uses EINVAL also for a region it cannot populate (not writable,
	 * VM_IO), so ask once, on an empty range, which case this is.
	 */
	have_madvise = madvise((void *)(uintptr_t)regions[0].start, 0,
	    MADV_POPULATE_WRITE) == 0;
	for (i = 0; i < nregions; i++) {
		r = &regions[i];
		if (!have_madvise) {
			region_touch(r->start, r->length, pagesize);
			continue;
		}
		if (madvise((void *)(uintptr_t)r->start, r->length,
		    MADV_POPULATE_WRITE) == -1) {
			sc_set_error(c, errno, "populate region %zu (%s) at "
			    "0x%llx, %llu bytes: madvise MADV_POPULATE_WRITE: "
			    "%m%s", i, r->name != NULL ? r->name : "unnamed",
			    (unsigned long long)r->start,
			    (unsigned long long)r->length,
			    errno == EINVAL || errno == EFAULT ? " (not all "
			    "mapped, or not writable)" : "");
			return -1;
		}
	}
	return 0;
}
