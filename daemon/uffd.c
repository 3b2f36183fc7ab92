/*
 * userfaultfd ioctls: see uffd.h.  Any thread may call these; the kernel
 * serializes what needs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uffd.h"

int
uffd_probe(uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd, saved;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd == -1 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev == -1)
			return -1;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		saved = errno;
		close(dev);
		errno = saved;
	}
	if (fd == -1)
		return -1;
	/* features = 0 asks for nothing and reports everything on offer. */
	if (ioctl(fd, UFFDIO_API, &api) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	*features = api.features;
	return 0;
}

int
uffd_api(int fd, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = *features };

	if (ioctl(fd, UFFDIO_API, &api) == -1)
		return -1;
	if (!(api.ioctls & (1ULL << _UFFDIO_REGISTER))) {
		errno = ENOTSUP;
		return -1;
	}
	*features = api.features;
	return 0;
}

int
uffd_register_wp(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg) == -1)
		return -1;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		errno = ENOTSUP;	/* memory type without uffd-wp support */
		return -1;
	}
	return 0;
}

static int
writeprotect(int fd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = mode,
	};

	/*
	 * EAGAIN means a discard event is queued and not yet read: the
	 * caller must let the fault thread read it, so it is returned, not
	 * retried here.
	 */
	while (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

int
uffd_protect(int fd, uint64_t start, uint64_t len)
{
	return writeprotect(fd, start, len, UFFDIO_WRITEPROTECT_MODE_WP);
}

int
uffd_unprotect(int fd, uint64_t start, uint64_t len, int wake)
{
	return writeprotect(fd, start, len,
	    wake ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
}

int
uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &range);
}

int
uffd_is_userfaultfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n == -1)
		return -1;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}
