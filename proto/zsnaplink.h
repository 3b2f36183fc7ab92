/*
 * The link of an incremental zsnap file to its parent (zsnap.h, "Parent
 * frame"), read from the front of the file alone: what snapd needs to
 * refuse deleting a snapshot others depend on, without reading them whole.
 */
#ifndef SNAPD_ZSNAPLINK_H
#define SNAPD_ZSNAPLINK_H

#include "zsnap.h"

/*
 * Read the parent link of the zsnap file open on fd (any offset; pread
 * only).  Returns 1 with *link filled (NUL-terminated name and file, in
 * host byte order), 0 when the file is a zsnap snapshot without a parent,
 * -1 with errno when it is not a zsnap file (EINVAL), is damaged where the
 * link lies (EBADMSG), or cannot be read.  The frames on the way are
 * checked (magic, size within the file) and the parent frame's CRC too;
 * nothing is allocated from a size in the file.
 */
int	zsnap_read_link(int fd, struct zsnap_parent *link);

#endif /* SNAPD_ZSNAPLINK_H */
