/*
 * The parent link at the front of an incremental zsnap file (zsnaplink.h).
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "zsnaplink.h"

/* The largest header frame: 152 + 80 x 256 regions + 4, with room. */
#define LINK_HEADER_MAX		(sizeof(struct zsnap_header) + \
				 (64u << 10) * sizeof(struct zsnap_region) + 4)

/*
 * The skippable frame at off: its magic must be magic, its payload fit in
 * the file; *size gets the payload size.  0, or -1 with errno.
 */
static int
link_frame(int fd, uint64_t fsize, uint64_t off, uint32_t magic,
    uint32_t *size)
{
	unsigned char h[ZSNAP_SKIP_HDR_SIZE];

	if (off + sizeof(h) > fsize ||
	    pread(fd, h, sizeof(h), (off_t)off) != (ssize_t)sizeof(h)) {
		errno = EBADMSG;
		return -1;
	}
	*size = zsnap_get32(h + 4);
	if (zsnap_get32(h) != magic || *size < 4 ||
	    off + sizeof(h) + *size > fsize) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

/* Does the payload of size bytes at off end with its own CRC-32C? */
static int
link_crc(int fd, uint64_t off, uint32_t size)
{
	unsigned char	chunk[16384], tail[4];
	uint32_t	crc = 0, left = size - 4;

	while (left > 0) {
		uint32_t n = left < sizeof(chunk) ? left : sizeof(chunk);

		if (pread(fd, chunk, n, (off_t)off) != (ssize_t)n)
			return -1;
		crc = crc32c(crc, chunk, n);
		off += n;
		left -= n;
	}
	if (pread(fd, tail, 4, (off_t)off) != 4 || zsnap_get32(tail) != crc)
		return -1;
	return 0;
}

int
zsnap_read_link(int fd, struct zsnap_parent *link)
{
	unsigned char		 buf[sizeof(struct zsnap_parent) + 4];
	struct zsnap_header	 h;
	struct stat		 st;
	uint64_t		 off;
	uint32_t		 size, flags;

	if (fstat(fd, &st) == -1)
		return -1;
	if (link_frame(fd, (uint64_t)st.st_size, 0, ZSNAP_FRAME_HEADER,
	    &size) == -1) {
		errno = EINVAL;		/* not a zsnap file */
		return -1;
	}
	if (size < sizeof(h) + 4 || size > LINK_HEADER_MAX ||
	    pread(fd, &h, sizeof(h), ZSNAP_SKIP_HDR_SIZE) !=
	    (ssize_t)sizeof(h) || memcmp(h.magic, ZSNAP_MAGIC, 8) != 0) {
		errno = EINVAL;
		return -1;
	}
	/* The header's CRC covers the flags: checked by whole readers. */
	flags = le32toh(h.flags);
	if (!(flags & ZSNAP_F_PARENT))
		return 0;
	off = ZSNAP_SKIP_HDR_SIZE + (uint64_t)size;
	if (flags & ZSNAP_F_PROCESS) {
		if (link_frame(fd, (uint64_t)st.st_size, off,
		    ZSNAP_FRAME_PROCESS, &size) == -1)
			return -1;
		off += ZSNAP_SKIP_HDR_SIZE + (uint64_t)size;
	}
	if (link_frame(fd, (uint64_t)st.st_size, off, ZSNAP_FRAME_PARENT,
	    &size) == -1)
		return -1;
	if (size < sizeof(buf) || size > sizeof(buf) +
	    (uint64_t)ZSNAP_WHOLE_MAX * sizeof(struct zsnap_whole) ||
	    link_crc(fd, off + ZSNAP_SKIP_HDR_SIZE, size) == -1 ||
	    pread(fd, buf, sizeof(buf) - 4, (off_t)(off +
	    ZSNAP_SKIP_HDR_SIZE)) != (ssize_t)(sizeof(buf) - 4)) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(link, buf, sizeof(*link));
	if (link->name[sizeof(link->name) - 1] != '\0' ||
	    link->file[sizeof(link->file) - 1] != '\0' ||
	    memchr(link->file, '/', sizeof(link->file)) != NULL) {
		errno = EBADMSG;
		return -1;
	}
	link->armed_realtime_ns = le64toh(link->armed_realtime_ns);
	link->index_crc = le32toh(link->index_crc);
	link->depth = le32toh(link->depth);
	link->whole_count = le32toh(link->whole_count);
	return 1;
}
