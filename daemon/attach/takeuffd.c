/*
 * Creating a userfaultfd inside a stopped process and taking it out
 * (takeuffd.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "log.h"
#include "takeuffd.h"

#define SLOT_SYSCALL	0	/* userfaultfd()'s result */
#define SLOT_SV0	1	/* socketpair()'s two ends */
#define SLOT_SV1	2
#define SLOT_DEV	3	/* the /dev/userfaultfd received */
#define SLOT_NEW	4	/* USERFAULTFD_IOC_NEW's result */

/* Scratch buffer offsets for recvmsg. */
#define BUF_MSG		0x00	/* struct msghdr */
#define BUF_IOV		0x40	/* struct iovec */
#define BUF_BYTE	0x60	/* the one data byte */
#define BUF_CMSG	0x80	/* CMSG_SPACE(sizeof(int)) */

#define UFFD_FLAGS	(O_CLOEXEC | O_NONBLOCK)

static void
takeuffd_pause(struct inject *in, const char *phase)
{
	if (in->pause != NULL)
		in->pause(in->pause_arg, phase);
}

/* Copy the process's descriptor fd into snapd: -1 with why on failure. */
static int
takeuffd_getfd(struct inject *in, int pidfd, long fd, const char *what,
    char *why, size_t whylen)
{
	int mine = (int)syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);

	if (mine == -1)
		snprintf(why, whylen, "pidfd_getfd of the %s (descriptor %ld "
		    "of process %d): %s", what, fd, (int)in->tr->pid,
		    strerror(errno));
	return mine;
}

/* Send devfd over our end of the socket pair the process holds. */
static int
takeuffd_send_dev(int sock, int devfd)
{
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} u;
	struct iovec	 iov = { .iov_base = "u", .iov_len = 1 };
	struct msghdr	 msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr	*cm = CMSG_FIRSTHDR(&msg);

	memset(u.buf, 0, sizeof(u.buf));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &devfd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -1;
}

/* Lay out a msghdr for recvmsg in the process's scratch memory. */
static int
takeuffd_recv_layout(struct inject *in)
{
	struct msghdr	msg = { 0 };
	struct iovec	iov;
	uint8_t		cmsg[CMSG_SPACE(sizeof(int))];
	int32_t		minus1 = -1;

	iov.iov_base = (void *)inject_buf(in, BUF_BYTE);
	iov.iov_len = 1;
	msg.msg_iov = (void *)inject_buf(in, BUF_IOV);
	msg.msg_iovlen = 1;
	msg.msg_control = (void *)inject_buf(in, BUF_CMSG);
	msg.msg_controllen = sizeof(cmsg);
	memset(cmsg, 0, sizeof(cmsg));
	memcpy(cmsg + CMSG_LEN(0), &minus1, sizeof(minus1));
	if (inject_poke(in, inject_buf(in, BUF_MSG), &msg, sizeof(msg)) == -1 ||
	    inject_poke(in, inject_buf(in, BUF_IOV), &iov, sizeof(iov)) == -1 ||
	    inject_poke(in, inject_buf(in, BUF_CMSG), cmsg, sizeof(cmsg)) ==
	    -1)
		return -1;
	return inject_track(in, SLOT_DEV, inject_buf(in, BUF_CMSG) +
	    CMSG_LEN(0));
}

/*
 * The device way: a socket pair made in the process, one end taken out,
 * /dev/userfaultfd sent through it and received in the process, then
 * USERFAULTFD_IOC_NEW there.  The new uffd's number in the process, or -1.
 */
static long
takeuffd_via_device(struct inject *in, int pidfd, char *why, size_t whylen)
{
	long	 args[6] = { AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, 0, 0, 0 };
	int32_t	 sv[2], dev;
	int	 devfd, mine, rc;
	long	 r;

	if ((devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "process %d may not create a "
		    "userfaultfd (vm.unprivileged_userfaultfd is 0) and "
		    "/dev/userfaultfd cannot be opened: %s", (int)in->tr->pid,
		    strerror(errno));
		return -1;
	}
	args[3] = (long)inject_slot(in, SLOT_SV0);
	r = inject_syscall(in, SYS_socketpair, args, -1, SLOT_SV1 + 1, why,
	    whylen);
	if (r != 0 || inject_peek(in, inject_slot(in, SLOT_SV0), sv,
	    sizeof(sv)) == -1) {
		if (r != INJECT_FAILED)
			snprintf(why, whylen, "socketpair in process %d: %s",
			    (int)in->tr->pid, strerror(r < 0 ? (int)-r : EIO));
		goto fail;
	}
	if ((mine = takeuffd_getfd(in, pidfd, sv[1], "socket", why, whylen))
	    == -1)
		goto fail;
	rc = takeuffd_send_dev(mine, devfd);
	close(mine);
	if (rc == -1 || takeuffd_recv_layout(in) == -1) {
		snprintf(why, whylen, "pass /dev/userfaultfd to process %d: %s",
		    (int)in->tr->pid, strerror(errno));
		goto fail;
	}
	memset(args, 0, sizeof(args));
	args[0] = sv[0];
	args[1] = (long)inject_buf(in, BUF_MSG);
	args[2] = MSG_CMSG_CLOEXEC | MSG_DONTWAIT;
	r = inject_syscall(in, SYS_recvmsg, args, -1, SLOT_DEV + 1, why,
	    whylen);
	if (r != 1 || inject_peek(in, inject_slot(in, SLOT_DEV), &dev,
	    sizeof(dev)) == -1 || dev < 0) {
		if (r != INJECT_FAILED)
			snprintf(why, whylen, "recvmsg in process %d: %s",
			    (int)in->tr->pid, r < 0 ? strerror((int)-r) :
			    "no descriptor arrived");
		goto fail;
	}
	memset(args, 0, sizeof(args));
	args[0] = dev;
	args[1] = USERFAULTFD_IOC_NEW;
	args[2] = UFFD_FLAGS;
	r = inject_syscall(in, SYS_ioctl, args, SLOT_NEW, SLOT_NEW + 1, why,
	    whylen);
	if (r < 0 && r != INJECT_FAILED)
		snprintf(why, whylen, "ioctl(USERFAULTFD_IOC_NEW) in process "
		    "%d: %s", (int)in->tr->pid, strerror((int)-r));
	close(devfd);
	return r < 0 ? -1 : r;
fail:
	close(devfd);
	return -1;
}

int
takeuffd(struct inject *in, int pidfd, int *uffd, int *via_device,
    char *why, size_t whylen)
{
	long	args[6] = { UFFD_FLAGS, 0, 0, 0, 0, 0 };
	long	r;

	*uffd = -1;
	*via_device = 0;
	r = inject_syscall(in, SYS_userfaultfd, args, SLOT_SYSCALL,
	    SLOT_SYSCALL + 1, why, whylen);
	if (r == INJECT_FAILED)
		return -1;
	if (r == -EPERM) {
		log_info("attach %d: the process may not create a userfaultfd "
		    "(EPERM): making it through /dev/userfaultfd",
		    (int)in->tr->pid);
		*via_device = 1;
		r = takeuffd_via_device(in, pidfd, why, whylen);
	} else if (r < 0)
		snprintf(why, whylen, "userfaultfd in process %d: %s",
		    (int)in->tr->pid, strerror((int)-r));
	if (r < 0)
		return -1;
	takeuffd_pause(in, "injected");
	if ((*uffd = takeuffd_getfd(in, pidfd, r, "userfaultfd", why,
	    whylen)) == -1)
		return -1;
	takeuffd_pause(in, "fd-taken");
	return 0;
}
