/*
 * Where snapshots live, and which names they may have.
 *
 * A root peer's snapshots are in snapshot_dir itself; any other peer's in
 * snapshot_dir/uid-UID/, a directory owned by that uid, mode 0700, that snapd
 * creates on first use.  A peer names a snapshot, never a path: names are
 * checked against a strict alphabet and every file operation is relative to
 * the peer's directory fd, never following symlinks.
 *
 * Called on the main thread.
 */
#ifndef SNAPD_PATHS_H
#define SNAPD_PATHS_H

#include <stddef.h>
#include <sys/types.h>

/* 1 if name is [A-Za-z0-9._-]{1,63} and does not start with '.'. */
int	paths_name_valid(const char *name);

/*
 * Open (creating it if needed) the directory uid's snapshots live in, under
 * top.  Returns an O_DIRECTORY fd (close-on-exec), with the directory's path
 * in path; or -1 with errno set and a message saying what failed in err.
 */
int	paths_peer_dir(const char *top, uid_t uid, gid_t gid, char *path,
	    size_t pathlen, char *err, size_t errlen);

/*
 * Open (creating it, mode 0700, if missing) the directory sub, a name as
 * paths_name_valid() takes, inside the peer directory peerfd (path peer),
 * never through a symlink, and only if it is a directory owned by uid.
 * Returns an O_DIRECTORY fd with peer/sub in path; or -1 with errno set and
 * what failed in err.
 */
int	paths_sub_dir(int peerfd, const char *peer, const char *sub, uid_t uid,
	    gid_t gid, char *path, size_t pathlen, char *err, size_t errlen);

/*
 * Remove snapshot name (NAME.zsnap, or the NAME.raw directory with its
 * files) inside dirfd, never following a symlink.  Returns 0, or -1 with
 * errno set (ENOENT when there is no such snapshot) and a message in err.
 */
int	paths_delete(int dirfd, const char *name, char *err, size_t errlen);

/* 1 if NAME.zsnap or NAME.raw exists in dirfd (as anything). */
int	paths_snapshot_exists(int dirfd, const char *name);

/* At start-up: remove partial snapshots left by a killed snapd, in the
 * snapshot directory, its per-uid directories and the subdirectories
 * clients named ("subdir").  Returns the count. */
int	paths_remove_partials(const char *top);

#endif /* SNAPD_PATHS_H */
