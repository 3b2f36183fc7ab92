/*
 * Reads of shared file-backed regions through the file itself.
 *
 * A region that is a MAP_SHARED mapping of a file (a memfd, SysV or tmpfs
 * shared memory, QEMU's memory-backend-memfd,share=on guest RAM) holds
 * exactly the bytes of the file at its offset.  Reading such a region
 * through /proc/PID/mem faults in every page it touches: on shmem a read
 * fault on a hole allocates a page, so a snapshot of a 256 MiB memfd of
 * which the process used 16 MiB made it use 256 MiB (measured: st_blocks
 * went from 16 MiB to 256 MiB).  A pread() of a hole returns zeros and
 * allocates nothing, and SEEK_DATA finds a run that is all hole without
 * reading it at all.  So, at arming, each such region gets its own open
 * file description of the mapped file, and its pages are read from there.
 *
 * Which file, and why it is the armed one.  The file is found once the
 * region is registered with the uffd: the mapping covering the region is
 * asked of /proc/PID/maps (PROCMAP_QUERY: shared, inode, device, offset),
 * and the file is opened through /proc/PID/map_files/START-END (needs
 * CAP_SYS_ADMIN) or else through a /proc/PID/fd/N of the process whose
 * inode and device are the mapping's (own file description, so that
 * SEEK_DATA moves no offset of the process's).  Either must be the
 * mapping's inode and device, or the region is read through /proc/PID/mem
 * as before.  From the registration on, a move or an unmap of the region
 * is a uffd event, so the mapping found is the registered one.  An exec
 * between the opening of pagemap and the file would make the file the new
 * image's; but then the armed mm is gone, and every un-protect (which
 * follows every read, on both paths) fails with ESRCH: the snapshot fails
 * before a page read from the file is saved.
 *
 * A page's place in the file does not depend on where the process has it
 * mapped: a mapping moved with mremap keeps its file offset, so a page is
 * read at fileoff + page * 4 KiB, and the address is used only for
 * /proc/PID/mem.  Everything else is as in readmem.c: the callers check
 * events_seq after the un-protect (snapshot-internal.h); a page the
 * process unmapped or discarded meanwhile is recorded lost even though the
 * file still holds something there.  A read past the end of the file (the
 * process truncated it) comes back short, like an unmapped address.
 *
 * snapshot_files_open() and snapshot_files_close() run on the writer
 * thread (open while arming, before the fault thread starts, close after it
 * is joined); snapshot_read_pages() on the writer and the fault thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "procmaps.h"
#include "snapshot-internal.h"

/* Is fd the file of vma (same inode and device, a regular file)? */
static int
readfile_is_vma_file(int fd, const struct procmaps_vma *vma)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_ino == vma->inode &&
	    major(st.st_dev) == vma->dev_major &&
	    minor(st.st_dev) == vma->dev_minor;
}

/*
 * Without CAP_SYS_ADMIN map_files is closed: look for the file among the
 * process's open files (QEMU keeps its memfd open) and open it anew.
 */
static int
readfile_open_from_fds(pid_t pid, const struct procmaps_vma *vma)
{
	char		 path[64];
	struct dirent	*de;
	DIR		*d;
	int		 fd = -1;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while (fd == -1 && (de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%.16s", (int)pid,
		    de->d_name);
		if (stat(path, &st) == -1 || (uint64_t)st.st_ino != vma->inode)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd != -1 && !readfile_is_vma_file(fd, vma)) {
			close(fd);
			fd = -1;
		}
	}
	closedir(d);
	return fd;
}

/* Give r its file if it lies in one shared file mapping; else leave it. */
static void
readfile_open_region(struct snapshot *s, struct procmaps *pm, struct region *r)
{
	struct procmaps_vma	vma;
	char			path[96];
	int			fd;

	if (procmaps_find(pm, r->start, &vma) != 1 || vma.start > r->start ||
	    vma.end < r->start + r->length || !vma.shared || vma.inode == 0 ||
	    vma.page_size != PAGE_4K)
		return;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx",
	    (int)s->req.pid, (unsigned long long)vma.start,
	    (unsigned long long)vma.end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd != -1 && !readfile_is_vma_file(fd, &vma)) {
		close(fd);
		fd = -1;
	}
	if (fd == -1)
		fd = readfile_open_from_fds(s->req.pid, &vma);
	if (fd == -1) {
		log_debug("snapshot %llu: region %u is a shared file mapping "
		    "whose file cannot be opened: read through /proc/%d/mem",
		    (unsigned long long)s->id, r->index, (int)s->req.pid);
		return;
	}
	r->filefd = fd;
	r->fileoff = vma.offset + (r->start - vma.start);
	log_debug("snapshot %llu: region %u read from its file (inode %llu, "
	    "offset %llu)", (unsigned long long)s->id, r->index,
	    (unsigned long long)vma.inode, (unsigned long long)r->fileoff);
}

void
snapshot_files_open(struct snapshot *s)
{
	struct procmaps pm;

	if (procmaps_open(&pm, s->req.pid, s->pidfd) == -1) {
		log_debug("snapshot %llu: maps of %d: %s: every region is read "
		    "through /proc/%d/mem", (unsigned long long)s->id,
		    (int)s->req.pid, strerror(errno), (int)s->req.pid);
		return;
	}
	for (uint32_t i = 0; i < s->nregions; i++)
		readfile_open_region(s, &pm, &s->regions[i]);
	procmaps_close(&pm);
}

void
snapshot_files_close(struct snapshot *s)
{
	for (uint32_t i = 0; s->regions != NULL && i < s->nregions; i++)
		if (s->regions[i].filefd >= 0) {
			close(s->regions[i].filefd);
			s->regions[i].filefd = -1;
		}
}

/*
 * Is [off, off + len) of fd all hole, inside the file?  SEEK_DATA on a
 * description of our own (no one else's offset moves).  Any doubt: no.
 */
static int
readfile_is_hole(int fd, off_t off, size_t len)
{
	struct stat	st;
	off_t		data = lseek(fd, off, SEEK_DATA);

	if (data != -1)
		return data >= off + (off_t)len;
	/* ENXIO: no data from off on; holes only up to the end of the file. */
	return errno == ENXIO && fstat(fd, &st) == 0 &&
	    st.st_size >= off + (off_t)len;
}

static ssize_t
readfile_read(struct region *r, uint64_t page, const struct iovec *local,
    unsigned nlocal)
{
	off_t	off = (off_t)(r->fileoff + page * PAGE_4K);
	size_t	len = 0;
	ssize_t	got;

	for (unsigned i = 0; i < nlocal; i++)
		len += local[i].iov_len;
	/* A run all hole: zeros, with no page of the file read or made. */
	if (len > PAGE_4K && readfile_is_hole(r->filefd, off, len)) {
		for (unsigned i = 0; i < nlocal; i++)
			memset(local[i].iov_base, 0, local[i].iov_len);
		return (ssize_t)len;
	}
	do
		got = preadv(r->filefd, local, (int)nlocal, off);
	while (got == -1 && errno == EINTR);
	return got;
}

ssize_t
snapshot_read_pages(struct snapshot *s, struct region *r, uint64_t page,
    const struct iovec *local, unsigned nlocal, uint64_t addr)
{
	if (r->filefd >= 0)
		return readfile_read(r, page, local, nlocal);
	return snapshot_read_mem(s, local, nlocal, addr);
}
