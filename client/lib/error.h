/*
 * libsnapclient's error messages (internal, not installed).
 *
 * Every failing library function calls sc_set_error() once, with the errno
 * it returns and a message saying what failed and why; snap_strerror(c)
 * returns sc_error(c).  A message is kept per client (for calls on a
 * struct snap_client) and per thread (for snap_connect() before a client
 * exists and for the snap_file_* readers, which have no client).
 *
 * Layout contract with client/lib/client.c: struct snap_client begins with
 * a struct sc_error member (its first member, so error.c can reach it
 * without knowing the rest of the struct):
 *
 *	struct snap_client {
 *		struct sc_error	 err;	// must stay first
 *		...
 *	};
 */
#ifndef SNAPCLIENT_ERROR_H
#define SNAPCLIENT_ERROR_H

#define SC_ERROR_MAX	512

struct snap_client;

struct sc_error {
	char	msg[SC_ERROR_MAX];
};

/*
 * Record a failure: sets errno to err, formats the message into c's buffer
 * when c is not NULL and always into this thread's buffer.  Since errno is
 * set first, "%m" in fmt prints strerror(err).  Preserves errno == err on
 * return, so callers can write `sc_set_error(c, EINVAL, "..."); return -1;`.
 */
void		 sc_set_error(struct snap_client *c, int err, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

/* The last message for c, or for this thread when c is NULL; never NULL. */
const char	*sc_error(struct snap_client *c);

#endif /* SNAPCLIENT_ERROR_H */
