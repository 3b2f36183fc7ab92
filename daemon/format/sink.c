/*
 * Sinks: see sink.h.  The file sink is the atomic-save pattern of redis's
 * rdbSave(): write a temporary name, fsync, rename into place, fsync the
 * directory so the rename itself survives a crash.  Unlike redis we refuse
 * to replace an existing snapshot (RENAME_NOREPLACE) and never follow a
 * symbolic link the client could have planted (O_NOFOLLOW | O_EXCL).
 *
 * Run by the snapshot's writer thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ioutil.h"
#include "log.h"
#include "sink.h"

struct sink_file {
	struct sink	 base;		/* first: a struct sink * is a struct sink_file * */
	int		 fd;
	int		 dirfd;
	char		 tmpname[NAME_MAX + 1];
	char		 name[NAME_MAX + 1];
};

/* Set s's error message; errno is kept. */
#define sink_set_error(s, ...)						\
	ioutil_set_error((s)->error, sizeof((s)->error), __VA_ARGS__)

/* ---- file sink ---------------------------------------------------------- */

static int
file_write(struct sink *s, const void *buf, size_t len)
{
	struct sink_file	*f = (struct sink_file *)s;

	if (ioutil_write_all(f->fd, buf, len, -1) == -1) {
		sink_set_error(s, "write %s: %s", f->tmpname, strerror(errno));
		return -1;
	}
	return 0;
}

static int
file_sync(struct sink *s)
{
	struct sink_file	*f = (struct sink_file *)s;

	if (fsync(f->fd) == -1) {
		sink_set_error(s, "fsync %s: %s", f->tmpname, strerror(errno));
		return -1;
	}
	return 0;
}

static int
file_finish(struct sink *s)
{
	struct sink_file	*f = (struct sink_file *)s;

	if (file_sync(s) == -1)
		return -1;
	if (close(f->fd) == -1) {
		f->fd = -1;
		sink_set_error(s, "close %s: %s", f->tmpname, strerror(errno));
		return -1;
	}
	f->fd = -1;
	if (renameat2(f->dirfd, f->tmpname, f->dirfd, f->name,
	    RENAME_NOREPLACE) == -1) {
		sink_set_error(s, "rename %s to %s: %s", f->tmpname, f->name,
		    strerror(errno));
		return -1;
	}
	/*
	 * From here the file is in place under its final name: the rename
	 * cannot be undone, so a failing directory fsync is reported but
	 * the sink counts as finished (abort must not unlink anything).
	 */
	s->finished = 1;
	if (fsync(f->dirfd) == -1) {
		sink_set_error(s, "fsync of the directory of %s: %s", f->name,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
file_abort(struct sink *s)
{
	struct sink_file	*f = (struct sink_file *)s;

	if (f->fd != -1) {
		close(f->fd);
		f->fd = -1;
	}
	if (!s->finished && unlinkat(f->dirfd, f->tmpname, 0) == -1 &&
	    errno != ENOENT)
		log_warn("remove %s", f->tmpname);
}

static void
file_free(struct sink *s)
{
	struct sink_file	*f = (struct sink_file *)s;

	if (f->fd != -1)
		close(f->fd);
	if (f->dirfd != -1)
		close(f->dirfd);
	free(f);
}

static const struct sink_ops file_ops = {
	.write = file_write,
	.sync = file_sync,
	.finish = file_finish,
	.abort = file_abort,
	.free = file_free,
};

struct sink *
sink_file_open(int dirfd, const char *name, const char *suffix, mode_t mode,
    uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct sink_file	*f;
	int			 n, m, saved;

	f = xcalloc(1, sizeof(*f));
	f->base.ops = &file_ops;
	f->fd = -1;
	n = snprintf(f->tmpname, sizeof(f->tmpname), ".%s%s.tmp-%ld", name,
	    suffix, (long)getpid());
	m = snprintf(f->name, sizeof(f->name), "%s%s", name, suffix);
	if (n < 0 || (size_t)n >= sizeof(f->tmpname) || m < 0 ||
	    (size_t)m >= sizeof(f->name)) {
		snprintf(err, errlen, "snapshot file name %s%s: too long", name,
		    suffix);
		free(f);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((f->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		saved = errno;
		snprintf(err, errlen, "duplicate directory descriptor for %s: %s",
		    f->name, strerror(saved));
		free(f);
		errno = saved;
		return NULL;
	}
	f->fd = openat(f->dirfd, f->tmpname,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (f->fd == -1) {
		saved = errno;
		snprintf(err, errlen, "create %s: %s", f->tmpname,
		    strerror(saved));
		close(f->dirfd);
		free(f);
		errno = saved;
		return NULL;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchown(f->fd, uid, gid) == -1) {
		saved = errno;
		snprintf(err, errlen, "chown %s to %ld:%ld: %s", f->tmpname,
		    (long)uid, (long)gid, strerror(saved));
		file_abort(&f->base);
		file_free(&f->base);
		errno = saved;
		return NULL;
	}
	return &f->base;
}

const char *
sink_file_name(const struct sink *s)
{
	if (s->ops != &file_ops)
		return NULL;
	return ((const struct sink_file *)s)->name;
}

/* ---- generic ------------------------------------------------------------ */

int
sink_write(struct sink *s, const void *buf, size_t len)
{
	if (s->finished || s->aborted) {
		sink_set_error(s, "write after the output was %s",
		    s->finished ? "committed" : "aborted");
		errno = EINVAL;
		return -1;
	}
	if (s->ops->write(s, buf, len) == -1)
		return -1;
	s->bytes += len;
	return 0;
}

int
sink_sync(struct sink *s)
{
	return s->ops->sync(s);
}

int
sink_finish(struct sink *s)
{
	if (s->finished || s->aborted) {
		sink_set_error(s, "output already %s",
		    s->finished ? "committed" : "aborted");
		errno = EINVAL;
		return -1;
	}
	return s->ops->finish(s);
}

void
sink_abort(struct sink *s)
{
	if (s->aborted)
		return;
	s->ops->abort(s);
	s->aborted = 1;
}

void
sink_free(struct sink *s)
{
	if (s == NULL)
		return;
	if (!s->finished)
		sink_abort(s);
	s->ops->free(s);
}

uint64_t
sink_bytes(const struct sink *s)
{
	return s->bytes;
}

const char *
sink_error(const struct sink *s)
{
	return s->error;
}
