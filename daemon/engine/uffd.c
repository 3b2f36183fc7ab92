/*
 * userfaultfd ioctls: see uffd.h.  Any thread may call these; the kernel
 * serializes what needs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "protocol.h"
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

/*
 * The probe for UFFD_USER_MODE_ONLY.  Such a uffd makes the kernel fail,
 * not report, a fault it takes itself in the registered memory; that check
 * comes before anything else the kernel does with the fault.  So a kernel
 * write is aimed at a write-protected page: process_vm_writev from a page of
 * ours mapped PROT_NONE.  With a user-mode-only uffd it fails at once with
 * EFAULT.  With a full uffd the writing thread waits in handle_userfault
 * (its wchan says so) until the page is un-protected; then the kernel copies
 * from our PROT_NONE page, which fails: nothing is ever written into the
 * process.  Messages on the uffd are not read here, as they may be the
 * process's own faults or discard events the fault thread must see.
 */
#define PROBE_WAIT_US	2000000		/* the write not settled: give up */
#define PROBE_STEP_US	200

struct probe_write {
	pid_t		 pid;
	uint64_t	 addr;
	void		*src;
	atomic_int	 tid;
	atomic_int	 done;
	int		 err;
};

static void *
probe_write_main(void *arg)
{
	struct probe_write	*p = arg;
	struct iovec		 local = { .iov_base = p->src, .iov_len = 1 };
	struct iovec		 remote = {
		.iov_base = (void *)(uintptr_t)p->addr, .iov_len = 1
	};

	atomic_store(&p->tid, (int)gettid());
	if (process_vm_writev(p->pid, &local, 1, &remote, 1, 0) == -1)
		p->err = errno;
	else
		p->err = EIO;	/* cannot happen: the source is PROT_NONE */
	atomic_store(&p->done, 1);
	return NULL;
}

/* 1 if our thread tid sleeps in a userfaultfd fault. */
static int
probe_waits_in_uffd(int tid)
{
	char	path[64], wchan[64];
	ssize_t	n;
	int	fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, wchan, sizeof(wchan) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	wchan[n] = '\0';
	return strcmp(wchan, "handle_userfault") == 0;
}

int
uffd_traps_kernel_writes(int fd, pid_t pid, uint64_t addr, uint64_t len)
{
	struct probe_write	 p = { .pid = pid, .addr = addr };
	pthread_t		 t;
	int			 err, rc = -1, waited;

	p.src = mmap(NULL, SNAPD_PAGE_SIZE, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p.src == MAP_FAILED)
		return -1;
	atomic_init(&p.tid, 0);
	atomic_init(&p.done, 0);
	if ((err = pthread_create(&t, NULL, probe_write_main, &p)) != 0) {
		munmap(p.src, SNAPD_PAGE_SIZE);
		errno = err;
		return -1;
	}
	for (waited = 0; waited < PROBE_WAIT_US; waited += PROBE_STEP_US) {
		if (atomic_load(&p.done)) {
			/* Failed without waiting: EFAULT is the verdict. */
			if (p.err == EFAULT)
				rc = 0;
			else
				err = p.err;
			break;
		}
		if (atomic_load(&p.tid) != 0 &&
		    probe_waits_in_uffd(atomic_load(&p.tid))) {
			rc = 1;
			break;
		}
		usleep(PROBE_STEP_US);
	}
	if (rc == -1 && waited >= PROBE_WAIT_US)
		err = ETIMEDOUT;
	/* Let a waiting write go on, to fail on our PROT_NONE page. */
	while (!atomic_load(&p.done)) {
		if (uffd_unprotect(fd, addr, len, 1) == -1 &&
		    errno != EAGAIN)
			uffd_wake(fd, addr, len);
		usleep(PROBE_STEP_US);
	}
	pthread_join(t, NULL);
	munmap(p.src, SNAPD_PAGE_SIZE);
	if (rc == -1)
		errno = err;
	return rc;
}

/*
 * PAGEMAP_SCAN with an empty range walks nothing: it succeeds where the
 * ioctl exists and fails with ENOTTY where it does not.
 */
int
uffd_probe_pagemap_scan(void)
{
	struct pm_scan_arg	arg;
	int			fd, ok;

	if ((fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	ok = ioctl(fd, PAGEMAP_SCAN, &arg) >= 0;
	close(fd);
	return ok;
}
