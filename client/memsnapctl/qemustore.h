/*
 * Where VM snapshots live and what one holds: the qemu-* commands' one
 * reader and writer of a VM snapshot directory.
 *
 * A VM snapshot NAME is the directory NAME.vm inside the caller's snapshot
 * directory (snapd's snapshot_dir for root, snapshot_dir/uid-UID for
 * anyone else), holding:
 *
 *	NAME.raw/ or NAME.zsnap	guest RAM, written by snapd (one region per
 *				RAM block; raw images are usable as mem-path)
 *	devices			device state, written by QEMU
 *				(xen-save-devices-state)
 *	manifest.json		written last, by qemu-save: QEMU's version,
 *				machine type, command line, the RAM blocks
 *	restore.raw/		qemu-restore's expansion of NAME.zsnap
 *	restore.log		the restored QEMU's output (qemu-restore --exec)
 */
#ifndef MEMSNAPCTL_QEMUSTORE_H
#define MEMSNAPCTL_QEMUSTORE_H

#include <limits.h>

#include <jansson.h>

#include "qemuvm.h"
#include "memsnapctl.h"

#define QEMUSTORE_SUFFIX	".vm"
#define QEMUSTORE_MANIFEST	"manifest.json"
#define QEMUSTORE_DEVICES	"devices"
#define QEMUSTORE_RESTORE_RAW	"restore.raw"
#define QEMUSTORE_RESTORE_LOG	"restore.log"
#define QEMUSTORE_VERSION	1

/*
 * The caller's snapshot directory (from snapd's query-config) into dir.
 * Returns 0, or the exit code after printing why.
 */
int	qemustore_top(struct ctl *ctl, char *dir, size_t size);

/* dir/NAME.vm into path; 0, or EXIT_USAGE after printing why. */
int	qemustore_path(const char *dir, const char *name, char *path,
	    size_t size);

/*
 * Write path/manifest.json for vm, saved as snapshot ret (snapshot-start's
 * reply) in format, with the guest paused pause_us: through a temporary
 * file renamed into place.  -1 with err set.
 */
int	qemustore_write_manifest(const char *path, const char *name,
	    const struct qemuvm *vm, const json_t *ret, const char *format,
	    uint64_t pause_us, char *err, size_t errlen);

/* path/manifest.json, checked; NULL with err set. */
json_t	*qemustore_read_manifest(const char *path, char *err, size_t errlen);

/*
 * The RAM snapshot's file named by manifest m in VM directory path (into
 * file), if it exists: 1 found, 0 not (still being written, or failed).
 */
int	qemustore_ram_file(const char *path, const json_t *m, char *file,
	    size_t size);

/*
 * Remove VM directory path (of VM snapshot name) and what qemu-save and
 * qemu-restore put in it;
 * anything else makes it fail, naming the stranger.  -1 with err set.
 */
int	qemustore_remove(const char *path, const char *name, char *err,
	    size_t errlen);

#endif /* MEMSNAPCTL_QEMUSTORE_H */
