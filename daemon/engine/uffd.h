/*
 * Thin, checked wrappers around the userfaultfd ioctls snapd uses.
 *
 * Every function returns 0 on success or -1 with errno set, so callers can
 * log "snapshot 7 (pid 4242): write-protect 0x7f..+1073741824: <strerror>".
 * None of them allocates or logs: they are called on the fault path (the
 * one exception, uffd_traps_kernel_writes(), says so).
 */
#ifndef SNAPD_UFFD_H
#define SNAPD_UFFD_H

#include <stdint.h>
#include <sys/types.h>

#include "compat.h"

/* The features snapd asks for when the kernel offers them. */
#define UFFD_WANTED_FEATURES						\
	(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE |	\
	 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |		\
	 UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

/* What the running kernel offers, asked on a throwaway userfaultfd. */
int	uffd_probe(uint64_t *features);
/* 1 if the kernel has the PAGEMAP_SCAN ioctl (linux 6.7), else 0. */
int	uffd_probe_pagemap_scan(void);
/* UFFDIO_API on a handed-over uffd; *features in: wanted, out: granted. */
int	uffd_api(int fd, uint64_t *features);
int	uffd_register_wp(int fd, uint64_t start, uint64_t len);
int	uffd_protect(int fd, uint64_t start, uint64_t len);
/* Drop protection; wake = 0 leaves blocked faults asleep (UFFDIO_WAKE later). */
int	uffd_unprotect(int fd, uint64_t start, uint64_t len, int wake);
int	uffd_wake(int fd, uint64_t start, uint64_t len);
/* 1 if fd is a userfaultfd, 0 if not, -1 on error. */
int	uffd_is_userfaultfd(int fd);
/*
 * Whether the uffd traps the kernel's own writes (1) or was created with
 * UFFD_USER_MODE_ONLY (0), which neither fdinfo nor UFFDIO_API tells.
 * addr is a page of process pid in a writable mapping, write-protected
 * through fd, with no fault thread reading fd yet.  Arming only: it starts a
 * thread and maps a page.  The write aims at addr; [addr, addr + len) may
 * be left un-protected (re-protect it: len is a huge page where addr starts
 * one, so that it is not split), and one write-protect fault message for it may stay queued on fd,
 * which the fault thread later serves as a write that did not happen.
 * -1 with errno on error.
 */
int	uffd_traps_kernel_writes(int fd, pid_t pid, uint64_t addr,
	    uint64_t len);

#endif /* SNAPD_UFFD_H */
