/*
 * libsnapclient internals shared by client.c (the connection to snapd),
 * uffd.c (creating the userfaultfd, populating regions) and error.c (the
 * message buffer).  Not installed.
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
