/*
 * The control socket's listener: the accept loop and who the peer is.
 *
 * Accepting.  Up to CONTROL_ACCEPT_BATCH connections per callback, so a
 * flood cannot starve the connections already served; EAGAIN, EINTR and
 * ECONNABORTED are shrugged off.  On EMFILE/ENFILE the reserve fd (an open
 * /dev/null kept for the purpose) is closed to take the waiting peer off
 * the queue and tell it snapd is out of descriptors, and accepting pauses
 * for a second rather than spinning on a listener that stays readable.
 *
 * Identity.  At accept the peer's uid, gid and pid come from SO_PEERCRED
 * and a pidfd from SO_PEERPIDFD; on a kernel without it (before 6.5) from
 * pidfd_open(pid), checked afterwards against a pid recycled meanwhile
 * (control_peer_pidfd()).  snapshot-start hands a dup of that pidfd to the
 * engine, so the process snapshotted is the very one that connected.  A uid
 * with max_connections_per_uid connections already is refused here, with
 * an error line, before any struct conn exists; an accepted peer goes to
 * conn_new() in control.c.
 *
 * Main thread only, from libevent callbacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "compat.h"
#include "protocol.h"
#include "log.h"
#include "config.h"
#include "control.h"
#include "control-internal.h"
#include "control-trace.h"
#include "pidfd.h"

/* Connections accepted per accept callback, so one flood cannot starve. */
#define CONTROL_ACCEPT_BATCH	64

static struct event_base	*control_base;
static struct event		*control_accept_ev;
static struct event		*control_pause_ev;
static int			 control_listen_fd = -1;
static int			 control_reserve_fd = -1;
static int			 control_accepting;
static struct timespec		 control_started;

/* Tell a peer we will not serve it, without waiting, and close. */
static void
control_refuse(int fd, const char *class, const char *desc)
{
	json_t	*msg;
	char	*text;

	msg = json_pack("{s{ss ss}}", "error", "class", class, "desc", desc);
	if (msg != NULL && (text = json_dumps(msg, JSON_COMPACT)) != NULL) {
		size_t len = strlen(text);

		control_trace(0, "send", "msg", text, len);
		(void)!send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)!send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		free(text);
	}
	json_decref(msg);
	close(fd);
}

/*
 * The uid owning /proc/PID (the process's effective uid), or -1 with errno.
 */
static int
control_proc_uid(pid_t pid, uid_t *uid)
{
	struct stat	st;
	char		path[32];

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) == -1)
		return -1;
	*uid = st.st_uid;
	return 0;
}

/*
 * A pidfd of the peer of socket fd, whose SO_PEERCRED is cred.  Returns it,
 * or -1 with errno: ESRCH when the peer process has exited (or cannot be
 * told from a process that took its pid), anything else when no pidfd
 * could be had (EMFILE...).
 *
 * SO_PEERPIDFD (linux 6.5) names the very process that connected.  Before
 * it, pidfd_open(pid) may race with the peer exiting and its pid being
 * reused, so the fallback checks afterwards that the pidfd's process is
 * alive, that the socket's peer pid is still that pid, and that the
 * process has the peer's uid: a pid recycled meanwhile by another user's
 * process is refused (one recycled by the same user gains that user
 * nothing: it may snapshot its own processes anyway).
 */
static int
control_peer_pidfd(int fd, const struct ucred *cred)
{
	struct ucred	again;
	socklen_t	len;
	uid_t		puid;
	int		pidfd, saved;

	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
		return pidfd;
	if (errno != ENOPROTOOPT && errno != EINVAL && errno != EOPNOTSUPP)
		return -1;

	pidfd = (int)syscall(SYS_pidfd_open, cred->pid, 0);
	if (pidfd == -1)
		return -1;
	len = sizeof(again);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &again, &len) == -1) {
		saved = errno;
		close(pidfd);
		errno = saved;
		return -1;
	}
	if (again.pid != cred->pid ||
	    !pidfd_alive(pidfd) ||
	    control_proc_uid(cred->pid, &puid) == -1 || puid != cred->uid) {
		close(pidfd);
		errno = ESRCH;
		return -1;
	}
	return pidfd;
}


/*
 * A new connection on fd: identify the peer, refuse it if its uid has
 * max_connections_per_uid already or it cannot be identified, else hand it
 * to control.c.
 */
static void
control_accept_one(int fd)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	unsigned	 same;
	char		 desc[128];
	int		 pidfd;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control socket: new connection: SO_PEERCRED");
		close(fd);
		return;
	}
	same = control_connections_of_uid(cred.uid);
	if (same >= (unsigned)config_get()->max_connections_per_uid) {
		snprintf(desc, sizeof(desc), "too many connections for uid %u "
		    "(limit %d)", (unsigned)cred.uid,
		    config_get()->max_connections_per_uid);
		log_warnx("control socket: pid %d: %s; refused", (int)cred.pid,
		    desc);
		control_refuse(fd, SNAPD_ERR_BUSY, desc);
		return;
	}
	if ((pidfd = control_peer_pidfd(fd, &cred)) == -1) {
		if (errno != ESRCH && errno != ENODATA) {
			snprintf(desc, sizeof(desc), "cannot identify the "
			    "peer process (pidfd of pid %d): %s", (int)cred.pid,
			    strerror(errno));
			log_warnx("control socket: uid %u: %s; refused",
			    (unsigned)cred.uid, desc);
			control_refuse(fd, SNAPD_ERR_BUSY, desc);
			return;
		}
		/* It may still query; snapshot-start of itself is refused. */
		log_debug("control socket: uid %u pid %d: no pidfd of the peer "
		    "process: %s", (unsigned)cred.uid, (int)cred.pid,
		    strerror(errno));
	}
	conn_new(control_base, fd, &cred, pidfd);
}

static void
control_reserve(void)
{
	if (control_reserve_fd == -1)
		control_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
control_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	control_reserve();
	if (control_accepting)
		event_add(control_accept_ev, NULL);
}

/* Stop accepting for a second: the fd table is full. */
static void
control_pause(void)
{
	struct timeval one = { 1, 0 };

	event_del(control_accept_ev);
	event_add(control_pause_ev, &one);
}

static void
control_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	int fd, i;

	for (i = 0; i < CONTROL_ACCEPT_BATCH; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			control_accept_one(fd);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
			log_warn("control socket: accept");
			/*
			 * Use the reserve fd to take the waiting peer off the
			 * queue and tell it, rather than letting the listener
			 * stay readable and spin.
			 */
			if (control_reserve_fd != -1) {
				close(control_reserve_fd);
				control_reserve_fd = -1;
				fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd != -1)
					control_refuse(fd, SNAPD_ERR_BUSY,
					    "snapd is out of file descriptors");
			}
			control_pause();
			return;
		default:
			log_warn("control socket: accept");
			control_pause();
			return;
		}
	}
}

void
control_init(struct event_base *base, int listen_fd)
{
	int flags;

	control_base = base;
	control_listen_fd = listen_fd;
	clock_gettime(CLOCK_MONOTONIC, &control_started);
	control_trace_open();
	if ((flags = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("control socket: set non-blocking");
	control_accept_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST,
	    control_accept_cb, NULL);
	control_pause_ev = evtimer_new(base, control_pause_cb, NULL);
	if (control_accept_ev == NULL || control_pause_ev == NULL)
		fatalx("cannot create the accept events");
	control_reserve();
	if (control_reserve_fd == -1)
		log_warn("control socket: open /dev/null for the reserve fd");
	control_accepting = 1;
	event_add(control_accept_ev, NULL);
}

void
control_stop_accepting(void)
{
	control_accepting = 0;
	if (control_accept_ev != NULL)
		event_del(control_accept_ev);
	if (control_pause_ev != NULL)
		event_del(control_pause_ev);
}


/* Free the accept events and the reserve fd (at exit). */
void
control_accept_free(void)
{
	control_stop_accepting();
	if (control_accept_ev != NULL) {
		event_free(control_accept_ev);
		event_free(control_pause_ev);
		control_accept_ev = control_pause_ev = NULL;
	}
	if (control_reserve_fd != -1) {
		close(control_reserve_fd);
		control_reserve_fd = -1;
	}
}

uint64_t
control_uptime_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - control_started.tv_sec) * 1000 +
	    (uint64_t)((now.tv_nsec - control_started.tv_nsec) / 1000000);
}
