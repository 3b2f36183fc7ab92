/*
 * A userfaultfd of another process's address space, made inside it.
 *
 * userfaultfd(2) and USERFAULTFD_IOC_NEW act on the calling process's
 * memory, so the descriptor must be created by the process itself: it is
 * injected (inject.h), then copied out with pidfd_getfd(2).  The process's
 * own copy is closed by inject_end(), so that a snapd killed afterwards
 * leaves no thread waiting on a uffd nobody reads.
 *
 * A process that may not create a full userfaultfd (an unprivileged one
 * while vm.unprivileged_userfaultfd is 0) gets EPERM from the syscall.
 * snapd does not weaken the sysctl or fall back to UFFD_USER_MODE_ONLY
 * (which lets the kernel's own writes to protected pages fail with
 * EFAULT): it opens /dev/userfaultfd itself, passes that descriptor into
 * the process over a socket pair made there (one end copied out with
 * pidfd_getfd, the other read by an injected recvmsg), and injects
 * ioctl(USERFAULTFD_IOC_NEW) on it.
 */
#ifndef SNAPD_TAKEUFFD_H
#define SNAPD_TAKEUFFD_H

#include "inject.h"

/*
 * Create the uffd in the process and copy it into *uffd (snapd's own
 * descriptor, close-on-exec).  *via_device says whether the device way
 * was needed.  0, or -1 with why.  The process's copies are closed by
 * inject_end(), which the caller runs whatever happened.
 */
int	takeuffd(struct inject *in, int pidfd, int *uffd, int *via_device,
	    char *why, size_t whylen);

#endif /* SNAPD_TAKEUFFD_H */
