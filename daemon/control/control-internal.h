/*
 * What the files of the control socket share among themselves and no
 * command may use: control-accept.c hands an identified peer to control.c,
 * and control.c stops the listener at exit.  Main thread only.
 */
#ifndef SNAPD_CONTROL_INTERNAL_H
#define SNAPD_CONTROL_INTERNAL_H

#include <sys/socket.h>
#include <sys/types.h>

struct event_base;

/*
 * control.c: serve the peer on fd (accepted, non-blocking), identified by
 * cred, with its pidfd (-1 if none; the connection owns it): the greeting
 * goes out at once.
 */
void		 conn_new(struct event_base *base, int fd,
		    const struct ucred *cred, int pidfd);
/* control.c: the open connections of peers with this uid. */
unsigned	 control_connections_of_uid(uid_t uid);

/* control-accept.c: stop accepting and free the listener's events. */
void		 control_accept_free(void);

#endif /* SNAPD_CONTROL_INTERNAL_H */
