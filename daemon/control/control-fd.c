/*
 * The named fds of a connection (getfd, closefd, and snapshot-start taking
 * its userfaultfd): a small fixed table in struct conn, bounded by
 * SNAPD_FDS_PER_CONNECTION_MAX so that no client can make snapd hold more.
 * See control.h for what each call guarantees.
 *
 * Main thread only: commands call these from the control socket's
 * dispatch.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "control.h"

int
control_fd_store(struct conn *c, const char *name, int fd)
{
	for (int i = 0; i < c->nfds; i++) {
		if (strcmp(c->fds[i].name, name) == 0) {
			close(c->fds[i].fd);
			c->fds[i].fd = fd;
			return 0;
		}
	}
	if (c->nfds == SNAPD_FDS_PER_CONNECTION_MAX) {
		close(fd);
		errno = EMFILE;
		return -1;
	}
	snprintf(c->fds[c->nfds].name, sizeof(c->fds[c->nfds].name), "%s",
	    name);
	c->fds[c->nfds].fd = fd;
	c->nfds++;
	return 0;
}

int
control_fd_peek(struct conn *c, const char *name)
{
	for (int i = 0; i < c->nfds; i++)
		if (strcmp(c->fds[i].name, name) == 0)
			return c->fds[i].fd;
	return -1;
}

int
control_fd_take(struct conn *c, const char *name)
{
	for (int i = 0; i < c->nfds; i++) {
		if (strcmp(c->fds[i].name, name) == 0) {
			int fd = c->fds[i].fd;

			c->fds[i] = c->fds[--c->nfds];
			return fd;
		}
	}
	return -1;
}

int
control_fd_close(struct conn *c, const char *name)
{
	int fd = control_fd_take(c, name);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}
