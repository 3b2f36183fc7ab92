/*
 * Two small I/O helpers that the daemon's sinks and outputs and the raw
 * format's writer (which the client library links too) would otherwise
 * each carry: a write that finishes, and setting an error buffer without
 * losing errno.
 */
#ifndef SNAPD_IOUTIL_H
#define SNAPD_IOUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Write all of buf to fd, at off if off is not -1 (then fd's offset does
 * not move); goes on after short writes and EINTR.  Returns 0, or -1 with
 * errno set. */
int	ioutil_write_all(int fd, const void *buf, size_t len, off_t off);

/* Format into buf (size bytes, always terminated); errno is kept, so a
 * caller may still return it. */
void	ioutil_set_error(char *buf, size_t size, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif /* SNAPD_IOUTIL_H */
