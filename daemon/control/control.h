/*
 * The control socket: the listener, one struct conn per client, framing,
 * and the one choke point every message goes through before a command
 * (cmd.h) sees it.  The wire protocol is proto/PROTOCOL.md.
 *
 * Everything here runs on the main thread (libevent).  Commands get the
 * struct conn of the peer that asked; they may read its identity fields
 * and use the fd functions below, nothing else of it.
 */
#ifndef SNAPD_CONTROL_H
#define SNAPD_CONTROL_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>

#include "protocol.h"

struct event;
struct event_base;
struct evbuffer;

/* A file descriptor received with SCM_RIGHTS, not yet claimed. */
struct conn_rxfd {
	int		fd;
	uint64_t	offset;		/* input byte it arrived with */
};

/* A named fd stored with getfd. */
struct conn_fd {
	char	name[SNAPD_NAME_MAX + 1];
	int	fd;
};

struct conn {
	TAILQ_ENTRY(conn) entry;
	uint64_t	 id;		/* unique for the daemon's life */
	int		 fd;

	/* Peer identity, from SO_PEERCRED at accept. */
	uid_t		 uid;
	gid_t		 gid;
	pid_t		 pid;
	/*
	 * A pidfd of the peer process, from SO_PEERPIDFD at accept (or
	 * pidfd_open(pid) with a race check); -1 if the peer had already
	 * exited.  The connection owns it: dup it to hand it on.
	 */
	int		 pidfd;

	/* The rest is the control socket's own (control*.c). */
	int		 negotiated;	/* qmp_capabilities done */
	int		 waiting;	/* a deferred reply is outstanding */
	int		 closing;	/* flush the output, then close */
	int		 read_eof;
	struct event	*read_ev;
	struct event	*write_ev;
	struct event	*stall_ev;
	struct event	*resume_ev;
	struct evbuffer	*in;
	struct evbuffer	*out;
	uint64_t	 in_offset;	/* stream offset of in's first byte */
	struct conn_rxfd rxfds[2 * SNAPD_FDS_PER_MESSAGE_MAX];
	int		 nrxfds;
	struct conn_fd	 fds[SNAPD_FDS_PER_CONNECTION_MAX];
	int		 nfds;
};

/* Start accepting on listen_fd (a bound, listening Unix stream socket). */
void		 control_init(struct event_base *base, int listen_fd);
/* Stop accepting new connections (shutdown). */
void		 control_stop_accepting(void);
/* Flush what can be flushed without blocking and close every connection. */
void		 control_close_all(void);

unsigned	 control_connection_count(void);
uint64_t	 control_uptime_ms(void);
/* {"wp-unpopulated", "wp-async", "pagemap-scan"}: a new reference. */
json_t		*control_kernel_features(void);

/*
 * Named fds of a connection.  store takes fd (closing an older one of the
 * same name) and returns 0, or -1 with errno EMFILE when the connection
 * already holds SNAPD_FDS_PER_CONNECTION_MAX (fd is closed then).  take
 * removes and returns the fd (the caller owns it), or -1.  peek returns it
 * without removing it, or -1.  close returns 0, or -1 if there is none.
 */
int		 control_fd_store(struct conn *c, const char *name, int fd);
int		 control_fd_take(struct conn *c, const char *name);
int		 control_fd_peek(struct conn *c, const char *name);
int		 control_fd_close(struct conn *c, const char *name);

/*
 * The deferred reply of a CMD_DEFER command, to the connection with this
 * id (dropped if it has gone).  id is the command's "id" member (borrowed,
 * may be NULL); ret is stolen.  Either call lets the connection go on with
 * its next message.
 */
void		 control_reply(uint64_t conn_id, json_t *id, json_t *ret);
void		 control_reply_error(uint64_t conn_id, json_t *id,
		    const char *class, const char *desc);

/*
 * Send event name with data (stolen) to every negotiated connection whose
 * peer is root or has uid owner.
 */
void		 control_event(uid_t owner, const char *name, json_t *data);

#endif /* SNAPD_CONTROL_H */
