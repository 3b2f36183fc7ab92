/*
 * The ELF core writer of `memsnapctl export --core` (core.c): a snapshot
 * taken by attach, written as the core file the kernel would have dumped
 * at the snapshot's armed instant, for gdb.
 */
#ifndef MEMSNAPCTL_CORE_H
#define MEMSNAPCTL_CORE_H

#include <stddef.h>
#include <stdint.h>

struct snap_file;

/* What went into a core, for the command's report. */
struct core_stats {
	uint32_t	threads;
	uint32_t	mappings;		/* PT_LOAD segments */
	uint32_t	mappings_saved;		/* of them, with their bytes */
	uint64_t	bytes_saved;		/* memory bytes written */
	uint64_t	pages_lost;		/* LOST in the snapshot: zero */
};

/*
 * Write snapshot f as an ELF core at path: into a temporary file beside
 * it, renamed over path only once complete and synced, so path is either
 * the whole core or untouched.  Memory use is bounded whatever the
 * snapshot's size.  0 with *st filled, or -1 with a message in err (errno
 * text included where there is one; errno set).
 */
int	core_write(struct snap_file *f, const char *path, struct core_stats *st,
	    char *err, size_t errlen);

#endif /* MEMSNAPCTL_CORE_H */
