/*
 * The mappings of another process, as its /proc/PID/maps describes them.
 *
 * snapshot-start checks every region against them before the engine sees
 * it: a region must lie inside the process's mappings (which bounds every
 * allocation a region's length causes by what the process really has), and
 * must not be hugetlbfs memory, which the 4 KiB engine cannot yet un-protect
 * page by page.  The writer asks whether a mapping is writable before it
 * probes the userfaultfd with a kernel write (uffd.h).
 *
 * The file is opened by pid and then checked against a pidfd of the
 * process: if that process had exited by then, the pid may name another
 * one, and the open fails with ESRCH.  Once open, the file stays tied to the
 * address space it was opened on.  Any thread may use these functions; one
 * procmaps at a time per thread.
 */
#ifndef SNAPD_PROCMAPS_H
#define SNAPD_PROCMAPS_H

#include <stdint.h>
#include <sys/types.h>

struct procmaps {
	pid_t	pid;
	int	fd;		/* /proc/PID/maps, for PROCMAP_QUERY */
	int	smaps;		/* /proc/PID/smaps, opened only on older kernels */
	int	pidfd;		/* borrowed */
};

struct procmaps_vma {
	uint64_t	start, end;
	uint64_t	page_size;	/* > SNAPD_PAGE_SIZE: hugetlb */
	int		writable;
	/*
	 * The mapped file, where the kernel says (PROCMAP_QUERY; 0 from the
	 * older kernels' smaps): shared 1 for MAP_SHARED, inode 0 for
	 * anonymous memory, offset the file offset of start.
	 */
	int		shared;
	uint64_t	offset;
	uint64_t	inode;
	uint32_t	dev_major, dev_minor;
};

/* Open the maps of pid, which pidfd names; -1 with errno. */
int	procmaps_open(struct procmaps *pm, pid_t pid, int pidfd);
void	procmaps_close(struct procmaps *pm);
/*
 * The mapping that covers addr, or else the next one above it: 1 and *vma
 * filled, 0 if there is none at or above addr, -1 with errno on error.
 */
int	procmaps_find(struct procmaps *pm, uint64_t addr,
	    struct procmaps_vma *vma);

#endif /* SNAPD_PROCMAPS_H */
