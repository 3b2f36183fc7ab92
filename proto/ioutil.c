/*
 * I/O helpers: see ioutil.h.  Thread-safe: they keep no state.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "ioutil.h"

int
ioutil_write_all(int fd, const void *buf, size_t len, off_t off)
{
	const unsigned char	*p = buf;

	while (len > 0) {
		ssize_t	n = off == -1 ? write(fd, p, len) :
		    pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* a regular file never does this */
			return -1;
		}
		p += n;
		len -= (size_t)n;
		if (off != -1)
			off += n;
	}
	return 0;
}

void
ioutil_set_error(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	errno = saved;
}
