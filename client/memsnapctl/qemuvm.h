/*
 * What qemu-save learns of a running QEMU over QMP and from /proc: its
 * version and machine type, whether the guest runs, its command line, and
 * its guest RAM: every memory backend (query-memdev), matched to the
 * mapping in QEMU's address space that holds it.
 *
 * QEMU 7.2 does not say where a RAM block lives in its address space
 * (`info ramblock` has no host address column yet), so the mapping is
 * found from what the backend is: a memory-backend-file's mem-path, a
 * memory-backend-memfd's "memfd:memory-backend-memfd" (a file backend
 * must be shared and on tmpfs: nothing else can be write-protected), or, for
 * memory-backend-ram (the RAM of a plain -m), an anonymous mapping of
 * exactly the backend's size, preferring those QEMU marked for THP or KSM
 * (VmFlags hg, mg).  Two candidates left is an error naming both: a guess
 * could save the wrong memory.
 */
#ifndef MEMSNAPCTL_QEMUVM_H
#define MEMSNAPCTL_QEMUVM_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "qmpc.h"

#define QEMUVM_BLOCKS_MAX	64

struct qemuvm_block {
	char		id[128];	/* the memdev's id: the RAM block's name */
	char		type[64];	/* memory-backend-ram, -memfd, -file */
	char		mem_path[PATH_MAX];	/* -file only */
	char		mapped_as[PATH_MAX];	/* its name in QEMU's maps */
	uint64_t	size;
	int		share;
	uint64_t	start, end;	/* the mapping in QEMU */
};

struct qemuvm {
	pid_t			pid;
	int			running;	/* the guest ran when asked */
	char			status[32];	/* query-status "status" */
	char			version[32];	/* "7.2.22" */
	char			package[128];
	char			machine[128];	/* "pc-i440fx-7.2" */
	json_t			*cmdline;	/* array of strings */
	unsigned		nblocks;
	struct qemuvm_block	blocks[QEMUVM_BLOCKS_MAX];
};

/*
 * Fill vm from the QEMU at the other end of q, process vm->pid (set by the
 * caller, who knows it).  -1 with what failed in err; call qemuvm_free()
 * either way.
 */
int	qemuvm_read(struct qmpc *q, struct qemuvm *vm, char *err,
	    size_t errlen);
void	qemuvm_free(struct qemuvm *vm);

/* The "maps" argument of snapshot-start naming every block's mapping. */
char	*qemuvm_maps_filter(const struct qemuvm *vm);

#endif /* MEMSNAPCTL_QEMUVM_H */
