/*
 * Mappings of a process: see procmaps.h.  Kernels from 6.11 answer one
 * mapping at a time with the PROCMAP_QUERY ioctl on /proc/PID/maps, which
 * costs nothing per page; older ones are read from /proc/PID/smaps, whose
 * KernelPageSize is the only place they tell a hugetlbfs mapping (smaps
 * walks the page tables, so that is slower on large processes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "pidfd.h"
#include "protocol.h"
#include "procmaps.h"

/* Open /proc/PID/NAME and check that pidfd's process is still there. */
static int
procmaps_open_file(pid_t pid, int pidfd, const char *name)
{
	char	path[64];
	int	fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (!pidfd_alive(pidfd)) {
		close(fd);
		errno = ESRCH;
		return -1;
	}
	return fd;
}

int
procmaps_open(struct procmaps *pm, pid_t pid, int pidfd)
{
	pm->pid = pid;
	pm->pidfd = pidfd;
	pm->smaps = -1;
	pm->fd = procmaps_open_file(pid, pidfd, "maps");
	return pm->fd == -1 ? -1 : 0;
}

void
procmaps_close(struct procmaps *pm)
{
	if (pm->fd != -1)
		close(pm->fd);
	if (pm->smaps != -1)
		close(pm->smaps);
	pm->fd = pm->smaps = -1;
}

/*
 * The same question answered from smaps: each mapping is a header line
 * "start-end perms offset dev inode [path]" followed by "Key: value" lines,
 * of which KernelPageSize is the one wanted.
 */
static int
procmaps_find_smaps(struct procmaps *pm, uint64_t addr,
    struct procmaps_vma *vma)
{
	FILE		*f;
	char		 line[512], perms[8];
	uint64_t	 start, end, kb;
	int		 fd, found = 0, in = 0, saved;

	if (pm->smaps == -1 &&
	    (pm->smaps = procmaps_open_file(pm->pid, pm->pidfd, "smaps")) == -1)
		return -1;
	if ((fd = dup(pm->smaps)) == -1)
		return -1;
	if (lseek(fd, 0, SEEK_SET) == -1 || (f = fdopen(fd, "re")) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		/* No "Key:" line parses as "hex-hex perms". */
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &start, &end,
		    perms) == 3) {
			if (found)
				break;
			in = end > addr;
			if (in) {
				found = 1;
				memset(vma, 0, sizeof(*vma));
				vma->start = start;
				vma->end = end;
				vma->page_size = SNAPD_PAGE_SIZE;
				vma->writable = perms[1] == 'w';
			}
		} else if (in && sscanf(line, "KernelPageSize: %" SCNu64 " kB",
		    &kb) == 1)
			vma->page_size = kb * 1024;
		/* A line longer than the buffer: skip the rest of it. */
		while (strchr(line, '\n') == NULL &&
		    fgets(line, sizeof(line), f) != NULL)
			;
	}
	saved = ferror(f) ? EIO : 0;
	fclose(f);
	if (saved != 0) {
		errno = saved;
		return -1;
	}
	return found;
}

int
procmaps_find(struct procmaps *pm, uint64_t addr, struct procmaps_vma *vma)
{
	struct procmap_query q;

	memset(&q, 0, sizeof(q));
	q.size = sizeof(q);
	q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
	q.query_addr = addr;
	if (pm->smaps == -1 && ioctl(pm->fd, PROCMAP_QUERY, &q) == 0) {
		vma->start = q.vma_start;
		vma->end = q.vma_end;
		vma->page_size = q.vma_page_size;
		vma->writable = (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE) != 0;
		vma->shared = (q.vma_flags & PROCMAP_QUERY_VMA_SHARED) != 0;
		vma->offset = q.vma_offset;
		vma->inode = q.inode;
		vma->dev_major = q.dev_major;
		vma->dev_minor = q.dev_minor;
		return 1;
	}
	if (pm->smaps == -1 && errno == ENOENT)
		return 0;
	if (pm->smaps == -1 && errno != ENOTTY && errno != EINVAL)
		return -1;
	return procmaps_find_smaps(pm, addr, vma);
}
