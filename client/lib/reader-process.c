/*
 * The process record of a snapshot taken by attach (proto/procrec.h):
 * zsnap's process frame, or a raw directory's "process.rec".
 *
 * snap_file_open() only finds it (reader.c: the frame's place and size;
 * reader-raw.c: the flag in snapshot.json); its bytes are read and checked
 * here, by procrec_decode(), when they are asked for: by
 * snap_file_process(), by snap_file_verify() and by the raw export, which
 * carries them over.  Like the rest of the reader, the bytes are hostile:
 * their size is bounded by READER_PROCESS_BYTES_MAX and by what the file
 * really holds before anything is allocated for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "procrec.h"
#include "reader-internal.h"

/* process.rec of a raw directory: a regular file of a bounded size. */
static int
process_raw_open(struct snap_file *f, uint64_t *size)
{
	struct stat	st;
	int		fd;

	fd = openat(f->fd, ZSNAP_RAW_PROCESS, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		reader_error(f, errno == ENOENT ? EBADMSG : errno, "open %s: "
		    "%s (snapshot.json says there is a process record)",
		    ZSNAP_RAW_PROCESS, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size < 4 ||
	    (uint64_t)st.st_size > READER_PROCESS_BYTES_MAX) {
		reader_error(f, EBADMSG, "%s: not a regular file of 4 to %u "
		    "bytes", ZSNAP_RAW_PROCESS, READER_PROCESS_BYTES_MAX);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

/* The record's bytes, unchecked, into a malloc'ed *buf. */
static int
process_read(struct snap_file *f, uint8_t **buf, size_t *len)
{
	uint64_t	 size = f->process_len, off = f->process_off;
	int		 fd = f->fd, rc = -1;

	if (f->format == 1) {
		if ((fd = process_raw_open(f, &size)) == -1)
			return -1;
		off = 0;
	}
	if ((*buf = malloc(size)) == NULL)
		reader_error(f, ENOMEM, "cannot allocate %llu bytes for the "
		    "process record", (unsigned long long)size);
	else if ((rc = f->format == 1 ? reader_pread(f, fd, *buf, size, off,
	    "process record") : reader_read(f, *buf, size, off,
	    "process record")) == -1) {
		free(*buf);
		*buf = NULL;
	}
	if (f->format == 1)
		close(fd);
	*len = size;
	return rc;
}

/* Decode the record's bytes into rec; 0, or -1 with the message set. */
static int
process_decode(struct snap_file *f, const uint8_t *buf, size_t len,
    struct procrec *rec)
{
	char	why[256];

	if (procrec_decode(buf, len, rec, why, sizeof(why)) == 0)
		return 0;
	if (f->format == 0)
		reader_error(f, errno, "process frame at offset %llu: %s",
		    (unsigned long long)(f->process_off - ZSNAP_SKIP_HDR_SIZE),
		    why);
	else
		reader_error(f, errno, "%s: %s", ZSNAP_RAW_PROCESS, why);
	return -1;
}

int
reader_process_load(struct snap_file *f, uint8_t **buf, size_t *len)
{
	struct procrec	rec;

	if (process_read(f, buf, len) == -1)
		return -1;
	if (process_decode(f, *buf, *len, &rec) == -1) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	procrec_free(&rec);
	return 0;
}

int
snap_file_process(struct snap_file *f, struct procrec *rec)
{
	uint8_t	*buf;
	size_t	 len;
	int	 rc;

	if (f == NULL || rec == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_process: no file or no "
		    "record");
		return -1;
	}
	memset(rec, 0, sizeof(*rec));
	if (!f->process)
		return 0;
	if (process_read(f, &buf, &len) == -1)
		return -1;
	rc = process_decode(f, buf, len, rec);
	free(buf);
	return rc == -1 ? -1 : 1;
}
