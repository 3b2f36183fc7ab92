/*
 * libsnapclient's error messages: see error.h.
 *
 * Any thread may call these.  The per-thread buffer is thread-local, so no
 * lock is needed; a client's buffer belongs to the one thread using that
 * client (a snap_client is not thread-safe, snapclient.h says so).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static _Thread_local char	thread_msg[SC_ERROR_MAX] = "no error";

static struct sc_error *
client_error(struct snap_client *c)
{
	/* struct sc_error is the first member of struct snap_client. */
	return (struct sc_error *)(void *)c;
}

void
sc_set_error(struct snap_client *c, int err, const char *fmt, ...)
{
	va_list	 ap;

	errno = err;
	va_start(ap, fmt);
	vsnprintf(thread_msg, sizeof(thread_msg), fmt, ap);
	va_end(ap);
	if (c != NULL)
		memcpy(client_error(c)->msg, thread_msg, sizeof(thread_msg));
	errno = err;
}

const char *
sc_error(struct snap_client *c)
{
	if (c != NULL && client_error(c)->msg[0] != '\0')
		return client_error(c)->msg;
	return thread_msg;
}
