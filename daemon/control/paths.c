/*
 * Snapshot names and per-peer snapshot directories (see paths.h).
 *
 * The peer's directory is opened with openat(O_DIRECTORY | O_NOFOLLOW) and
 * checked with fstat on the open fd, so a symlink or a directory swapped in
 * by someone else is refused rather than followed; deletion works inside
 * that fd with unlinkat and never follows a symlink either.
 *
 * Main thread only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol.h"
#include "zsnap.h"
#include "log.h"
#include "paths.h"

int
paths_name_valid(const char *name)
{
	size_t len;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return 0;
	for (len = 0; name[len] != '\0'; len++) {
		char c = name[len];

		if (len >= SNAPD_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/*
 * Open (creating it, mode 0700, if missing) directory sub of parentfd,
 * never through a symlink, and check that it is a directory owned by uid:
 * one made here is given to uid and gid.  Its fd, with parent/sub in path;
 * or -1 with errno set and what failed in err.
 */
static int
paths_owned_dir(int parentfd, const char *parent, const char *sub, uid_t uid,
    gid_t gid, char *path, size_t pathlen, char *err, size_t errlen)
{
	struct stat	 st;
	int		 fd, created = 0, saved;

	snprintf(path, pathlen, "%s/%s", parent, sub);
	if (mkdirat(parentfd, sub, 0700) == 0)
		created = 1;
	else if (errno != EEXIST) {
		saved = errno;
		snprintf(err, errlen, "mkdir %s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	fd = openat(parentfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	if (created && uid != 0 && (fchown(fd, uid, gid) == -1 ||
	    fchmod(fd, 0700) == -1)) {
		saved = errno;
		snprintf(err, errlen, "chown %s to uid %u: %s", path,
		    (unsigned)uid, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		snprintf(err, errlen, "stat %s: %s", path, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid) {
		snprintf(err, errlen, "%s: not a directory owned by uid %u "
		    "(owner %u); refusing to use it", path, (unsigned)uid,
		    (unsigned)st.st_uid);
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int
paths_peer_dir(const char *top, uid_t uid, gid_t gid, char *path,
    size_t pathlen, char *err, size_t errlen)
{
	char	 sub[32];
	int	 topfd, fd, saved;

	topfd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (topfd == -1) {
		saved = errno;
		snprintf(err, errlen, "open %s: %s", top, strerror(saved));
		errno = saved;
		return -1;
	}
	if (uid == 0) {
		snprintf(path, pathlen, "%s", top);
		return topfd;
	}
	snprintf(sub, sizeof(sub), "uid-%u", (unsigned)uid);
	fd = paths_owned_dir(topfd, top, sub, uid, gid, path, pathlen, err,
	    errlen);
	saved = errno;
	close(topfd);
	errno = saved;
	return fd;
}

int
paths_sub_dir(int peerfd, const char *peer, const char *sub, uid_t uid,
    gid_t gid, char *path, size_t pathlen, char *err, size_t errlen)
{
	if (!paths_name_valid(sub)) {
		snprintf(err, errlen, "invalid directory name");
		errno = EINVAL;
		return -1;
	}
	return paths_owned_dir(peerfd, peer, sub, uid, gid, path, pathlen, err,
	    errlen);
}

int
paths_snapshot_exists(int dirfd, const char *name)
{
	struct stat	st;
	char		file[SNAPD_NAME_MAX + 16];

	snprintf(file, sizeof(file), "%s%s", name, ZSNAP_SUFFIX);
	if (fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	snprintf(file, sizeof(file), "%s%s", name, ZSNAP_RAW_SUFFIX);
	return fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Remove the raw directory file (its regular files, then itself). */
static int
paths_delete_raw(int dirfd, const char *file, char *err, size_t errlen)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd, saved;

	fd = openat(dirfd, file, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		snprintf(err, errlen, "open %s: %s", file, strerror(saved));
		errno = saved;
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		snprintf(err, errlen, "read %s: %s", file, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    unlinkat(fd, de->d_name,
		    S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == -1) {
			saved = errno;
			snprintf(err, errlen, "remove %s/%s: %s", file,
			    de->d_name, strerror(saved));
			closedir(d);
			errno = saved;
			return -1;
		}
	}
	saved = errno;
	closedir(d);
	if (saved != 0) {
		snprintf(err, errlen, "read %s: %s", file, strerror(saved));
		errno = saved;
		return -1;
	}
	if (unlinkat(dirfd, file, AT_REMOVEDIR) == -1) {
		saved = errno;
		snprintf(err, errlen, "rmdir %s: %s", file, strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

int
paths_delete(int dirfd, const char *name, char *err, size_t errlen)
{
	struct stat	st;
	char		file[SNAPD_NAME_MAX + 16];
	int		saved, found = 0;

	if (!paths_name_valid(name)) {
		snprintf(err, errlen, "invalid snapshot name");
		errno = EINVAL;
		return -1;
	}
	snprintf(file, sizeof(file), "%s%s", name, ZSNAP_SUFFIX);
	if (fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		found = 1;
		if (!S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "%s is not a regular file; not "
			    "removing it", file);
			errno = EPERM;
			return -1;
		}
		if (unlinkat(dirfd, file, 0) == -1) {
			saved = errno;
			snprintf(err, errlen, "unlink %s: %s", file,
			    strerror(saved));
			errno = saved;
			return -1;
		}
	}
	snprintf(file, sizeof(file), "%s%s", name, ZSNAP_RAW_SUFFIX);
	if (fstatat(dirfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		found = 1;
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s is not a directory; not "
			    "removing it", file);
			errno = EPERM;
			return -1;
		}
		if (paths_delete_raw(dirfd, file, err, errlen) == -1)
			return -1;
	}
	if (!found) {
		snprintf(err, errlen, "no snapshot named '%s'", name);
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/*
 * Remove the partial snapshots ('.NAME.SUFFIX.tmp-PID', file or raw
 * directory) of dirfd whose writer, snapd process PID, no longer runs:
 * left by a snapd that was killed.  Only such names are touched, never
 * through a symlink.  Returns how many were removed.
 */
static int
paths_remove_partials_in(int dirfd, const char *where)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd, removed = 0;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		log_warn("%s: cannot look for partial snapshots", where);
		if (fd != -1)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		const char	*tmp = strstr(de->d_name, ".tmp-");
		char		*end, err[256];
		struct stat	 st;
		long		 pid;

		if (de->d_name[0] != '.' || tmp == NULL)
			continue;
		pid = strtol(tmp + 5, &end, 10);
		if (*end != '\0' || pid <= 0 ||
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;	/* not ours, or its writer still runs */
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISREG(st.st_mode) ?
		    unlinkat(dirfd, de->d_name, 0) == 0 :
		    S_ISDIR(st.st_mode) && paths_delete_raw(dirfd, de->d_name,
		    err, sizeof(err)) == 0) {
			log_info("%s: removed the partial snapshot %s left by "
			    "snapd process %ld", where, de->d_name, pid);
			removed++;
		} else
			log_warn("%s: cannot remove the partial snapshot %s",
			    where, de->d_name);
	}
	closedir(d);
	return removed;
}

/*
 * Partial snapshots in dirfd and, depth levels down, in its directories
 * that are not snapshots themselves: per-uid directories, and the ones a
 * client named with "subdir".
 */
static int
paths_remove_partials_tree(int dirfd, const char *where, int depth)
{
	struct dirent	*de;
	DIR		*d;
	int		 removed, fd;

	removed = paths_remove_partials_in(dirfd, where);
	if (depth == 0 || (fd = dup(dirfd)) == -1)
		return removed;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return removed;
	}
	while ((de = readdir(d)) != NULL) {
		size_t	len = strlen(de->d_name);
		char	sub[PATH_MAX];
		int	subfd;

		if (de->d_name[0] == '.' || (len > strlen(ZSNAP_RAW_SUFFIX) &&
		    strcmp(de->d_name + len - strlen(ZSNAP_RAW_SUFFIX),
		    ZSNAP_RAW_SUFFIX) == 0))
			continue;
		subfd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (subfd == -1)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", where, de->d_name);
		removed += paths_remove_partials_tree(subfd, sub, depth - 1);
		close(subfd);
	}
	closedir(d);
	return removed;
}

int
paths_remove_partials(const char *top)
{
	int	topfd, removed;

	topfd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (topfd == -1)
		return 0;
	/* top/uid-UID/SUBDIR at most */
	removed = paths_remove_partials_tree(topfd, top, 2);
	close(topfd);
	return removed;
}
