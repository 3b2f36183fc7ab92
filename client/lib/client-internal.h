/*
 * libsnapclient internals shared by client.c (the connection to snapd),
 * snapshot-calls.c (snap_start, snap_arm, snap_cancel, snap_wait), uffd.c
 * (creating the userfaultfd, populating regions) and error.c (the message
 * buffer).  Not installed.
 *
 * struct snap_client is one connection to snapd: the socket, what the
 * greeting said the daemon's kernel offers, a receive buffer holding the
 * bytes of a partly read line, and the queue of events that arrived while
 * a reply was awaited (so snap_wait() and snap_next_event() still see
 * them).  A snap_client is used by one thread at a time; nothing here is
 * locked.
 */
#ifndef SNAPCLIENT_INTERNAL_H
#define SNAPCLIENT_INTERNAL_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "snapclient.h"

/* The longest line accepted from snapd.  The daemon's own limit is
 * configurable (max_message_size), so the client is generous. */
#define SC_LINE_MAX		(16u * 1024 * 1024)

/* Events kept while nobody reads them; the oldest are dropped beyond. */
#define SC_EVENTS_MAX		1024

/* How long a command's reply may take, and the greeting. */
#define SC_REPLY_TIMEOUT_MS	60000

struct sc_event {
	TAILQ_ENTRY(sc_event)	 entry;
	char			*line;		/* the event's JSON text */
};
TAILQ_HEAD(sc_event_queue, sc_event);

struct snap_client {
	struct sc_error		 err;		/* must stay first: error.c */
	int			 fd;		/* the socket */
	int			 dead;		/* snapd closed the connection */
	int			 protocol;	/* from the greeting */
	int			 wp_unpopulated; /* greeting features.wp-unpopulated */
	char			 version[64];	/* greeting's package string */
	uint64_t		 next_id;	/* id of the next command we send */

	char			*rbuf;		/* bytes received, not yet a line */
	size_t			 rlen;
	size_t			 rsize;

	struct sc_event_queue	 events;
	size_t			 nevents;
	uint64_t		 events_dropped;
};

/* client.c: the connection, for the calls built on it */

/* A deadline in CLOCK_MONOTONIC ms, or -1 for none. */
int64_t	sc_deadline_after(int timeout_ms);
/* Put "prefix: " in front of c's current message, keeping errno. */
void	sc_error_prefix(struct snap_client *c, const char *prefix);
void	sc_event_push(struct snap_client *c, char *line);
void	sc_event_remove(struct snap_client *c, struct sc_event *ev);
/* Read one message: *msg the parsed object, *line its text (malloc'ed). */
int	sc_read_message(struct snap_client *c, int64_t deadline, json_t **msg,
	    char **line);
int	sc_message_is_event(const json_t *msg);
/*
 * Send command cmd with args (stolen; fd *fdp attached when given), wait
 * up to timeout_ms for its reply, and return its "return" value in *ret
 * (a new reference; ret may be NULL).  An error reply is -1 with errno
 * from its class and the message "CMD: desc".
 */
int	sc_execute(struct snap_client *c, const char *cmd, json_t *args,
	    int *fdp, int timeout_ms, json_t **ret);

/* uffd.c */

/* Create a userfaultfd for this process (O_CLOEXEC | O_NONBLOCK), by the
 * syscall or through /dev/userfaultfd.  UFFDIO_API is left to snapd. */
int	sc_uffd_create(struct snap_client *c);

/* Fault in every page of the regions for writing, so that write-protecting
 * them leaves no hole a first touch could slip through (on kernels without
 * UFFD_FEATURE_WP_UNPOPULATED). */
int	sc_regions_populate(struct snap_client *c,
	    const struct snap_region *regions, size_t nregions);

#endif /* SNAPCLIENT_INTERNAL_H */
