/*
 * format-helpers.h: what test_format.c and test_reader_bounds.c both need
 * (reporting a failure, reading and writing a file whole, expecting verify
 * to reject a file with a given message); zsnap.h reads and writes
 * little-endian fields.
 *
 * Header-only, all static inline: every .c file in tests/unit is a test
 * binary of its own, so a shared .c there would become one.  Each includer
 * gets its own `failures`, counted by fail(); die() ends the test at once.
 */
#ifndef SNAPD_TEST_FORMAT_HELPERS_H
#define SNAPD_TEST_FORMAT_HELPERS_H

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "snapclient.h"

static int		 failures;

static inline void
say_failed(const char *fmt, va_list ap)
{
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
}

/* Count a failure and go on. */
static inline void
fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	say_failed(fmt, ap);
	va_end(ap);
	failures++;
}

/* Fail and end the test now. */
static inline void
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	say_failed(fmt, ap);
	va_end(ap);
	exit(1);
}

/* A whole file, malloc'ed; *len its size. */
static inline unsigned char *
read_all(const char *path, size_t *len)
{
	struct stat	 st;
	unsigned char	*buf;
	int		 fd = open(path, O_RDONLY);

	if (fd == -1 || fstat(fd, &st) == -1)
		die("open %s: %s", path, strerror(errno));
	buf = malloc((size_t)st.st_size);
	if (buf == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size)
		die("read %s", path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static inline void
write_all(const char *path, const unsigned char *buf, size_t len)
{
	int	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd == -1 || write(fd, buf, len) != (ssize_t)len || close(fd) == -1)
		die("write %s: %s", path, strerror(errno));
}

/*
 * Open (and verify) a damaged copy: it must fail, and the message must
 * contain needle.
 */
static inline void
expect_rejected(const char *what, const char *path, const char *needle)
{
	struct snap_file	*f;
	const char		*msg;

	if ((f = snap_file_open(path)) != NULL) {
		if (snap_file_verify(f) == 0) {
			fail("%s: verify accepted the damaged copy", what);
			snap_file_close(f);
			return;
		}
		snap_file_close(f);
	}
	msg = snap_strerror(NULL);
	if (strstr(msg, needle) == NULL)
		fail("%s: expected a message with \"%s\", got \"%s\"", what,
		    needle, msg);
	else
		printf("ok: %s rejected: %s\n", what, msg);
}

#endif /* SNAPD_TEST_FORMAT_HELPERS_H */
