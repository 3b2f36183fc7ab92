/*
 * The raw format's writer: see rawdir.h.  The directory commit is the
 * atomic-save pattern of redis's rdbSave() applied to a directory: build
 * it under a temporary name, fsync every file and the directory, rename
 * it into place, fsync the parent so the rename itself survives a crash.
 * Like the zsnap file sink we refuse to replace an existing snapshot
 * (RENAME_NOREPLACE) and never follow a planted link (O_NOFOLLOW | O_EXCL).
 *
 * Allocation failures are error returns, never exits: the client library
 * links this file too, and in the daemon a snapshot's lost-run list is
 * sized by what the process did, so it may fail that snapshot only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ioutil.h"
#include "rawdir.h"
#include "zsnap.h"

struct rawdir_lost {
	uint64_t	first;
	uint64_t	count;
};

struct rawdir_file {
	int			 fd;
	uint64_t		 start;
	uint64_t		 length;
	char			*name;		/* the region's */
	struct rawdir_lost	*lost;
	size_t			 lost_count;
	size_t			 lost_cap;
};

struct rawdir {
	int			 parentfd;	/* a duplicate of the caller's */
	int			 tmpfd;		/* the temporary directory */
	int			 made;		/* we created tmpname */
	int			 committed;	/* renamed into place */
	int			 aborted;
	int			 process;	/* process.rec written */
	mode_t			 mode;
	uid_t			 uid;
	gid_t			 gid;
	uint32_t		 count;
	struct rawdir_file	*files;
	uint64_t		 bytes;
	char			 tmpname[NAME_MAX + 1];
	char			 name[NAME_MAX + 1];
	char			 error[RAWDIR_ERROR_MAX];
};

/* Set rd's error message; errno is kept. */
#define rawdir_set_error(rd, ...)					\
	ioutil_set_error((rd)->error, sizeof((rd)->error), __VA_ARGS__)

/* "WHAT TMPNAME/FILE: strerror(errno)", errno kept; returns -1. */
static int
rawdir_fail(struct rawdir *rd, const char *what, const char *file)
{
	rawdir_set_error(rd, "%s %s/%s: %s", what, rd->tmpname, file,
	    strerror(errno));
	return -1;
}

static void
rawdir_file_name(char *buf, size_t len, uint32_t region)
{
	snprintf(buf, len, "%u.img", region);
}

static int
rawdir_owned(const struct rawdir *rd)
{
	return rd->uid != (uid_t)-1 || rd->gid != (gid_t)-1;
}

static int
rawdir_usable(struct rawdir *rd)
{
	if (rd->committed || rd->aborted) {
		rawdir_set_error(rd, "%s: already %s", rd->name,
		    rd->committed ? "committed" : "aborted");
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Is [first, first + npages) inside region? */
static int
rawdir_check_range(struct rawdir *rd, uint32_t region, uint64_t first,
    uint64_t npages)
{
	uint64_t	pages;

	if (rawdir_usable(rd) == -1)
		return -1;
	if (region >= rd->count) {
		rawdir_set_error(rd, "%s: no region %u", rd->name, region);
		errno = EINVAL;
		return -1;
	}
	pages = rd->files[region].length / ZSNAP_PAGE_SIZE;
	if (first > pages || npages > pages - first) {
		rawdir_set_error(rd, "%s: region %u: pages %llu+%llu outside "
		    "its %llu", rd->name, region, (unsigned long long)first,
		    (unsigned long long)npages, (unsigned long long)pages);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int
rawdir_create(struct rawdir *rd, int parentfd,
    const struct rawdir_region *regions)
{
	char	file[32];

	if ((rd->parentfd = fcntl(parentfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		rawdir_set_error(rd, "duplicate directory descriptor for %s: %s",
		    rd->name, strerror(errno));
		return -1;
	}
	if (mkdirat(rd->parentfd, rd->tmpname, 0700) == -1) {
		rawdir_set_error(rd, "create directory %s: %s", rd->tmpname,
		    strerror(errno));
		return -1;
	}
	rd->made = 1;
	rd->tmpfd = openat(rd->parentfd, rd->tmpname,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rd->tmpfd == -1)
		return rawdir_fail(rd, "open directory", ".");
	if (rawdir_owned(rd) && fchown(rd->tmpfd, rd->uid, rd->gid) == -1)
		return rawdir_fail(rd, "chown", ".");

	for (uint32_t i = 0; i < rd->count; i++) {
		struct rawdir_file *rf = &rd->files[i];

		rf->start = regions[i].start;
		rf->length = regions[i].length;
		if ((rf->name = strdup(regions[i].name)) == NULL) {
			rawdir_set_error(rd, "%s: cannot copy region names",
			    rd->name);
			return -1;
		}
		rawdir_file_name(file, sizeof(file), i);
		rf->fd = openat(rd->tmpfd, file, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, rd->mode);
		if (rf->fd == -1)
			return rawdir_fail(rd, "create", file);
		if (rawdir_owned(rd) && fchown(rf->fd, rd->uid, rd->gid) == -1)
			return rawdir_fail(rd, "chown", file);
		if (ftruncate(rf->fd, (off_t)rf->length) == -1)
			return rawdir_fail(rd, "set the size of", file);
	}
	return 0;
}

struct rawdir *
rawdir_open(int parentfd, const char *name, mode_t mode, uid_t uid,
    gid_t gid, const struct rawdir_region *regions, uint32_t count,
    char *err, size_t errlen)
{
	struct rawdir	*rd;
	int		 n, m, saved;

	if (*name == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errlen, "raw directory name \"%s\": not a name "
		    "in a directory", name);
		errno = EINVAL;
		return NULL;
	}
	if ((rd = calloc(1, sizeof(*rd))) == NULL ||
	    (rd->files = calloc(count, sizeof(*rd->files))) == NULL) {
		free(rd);
		snprintf(err, errlen, "%s: cannot allocate %u regions", name,
		    count);
		errno = ENOMEM;
		return NULL;
	}
	rd->parentfd = -1;
	rd->tmpfd = -1;
	rd->mode = mode;
	rd->uid = uid;
	rd->gid = gid;
	rd->count = count;
	for (uint32_t i = 0; i < count; i++)
		rd->files[i].fd = -1;
	n = snprintf(rd->tmpname, sizeof(rd->tmpname), ".%s.tmp-%ld", name,
	    (long)getpid());
	m = snprintf(rd->name, sizeof(rd->name), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(rd->tmpname) || m < 0 ||
	    (size_t)m >= sizeof(rd->name)) {
		snprintf(err, errlen, "raw directory name %s: too long", name);
		rawdir_free(rd);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (rawdir_create(rd, parentfd, regions) == -1) {
		saved = errno;
		snprintf(err, errlen, "%s", rd->error);
		rawdir_free(rd);	/* removes what was made */
		errno = saved;
		return NULL;
	}
	return rd;
}

int
rawdir_pages(struct rawdir *rd, uint32_t region, uint64_t first,
    uint64_t npages, const void *data, uint64_t *zero)
{
	const unsigned char	*base = data;
	uint64_t		 i = 0, zeros = 0;
	char			 file[32];

	if (zero != NULL)
		*zero = 0;
	if (rawdir_check_range(rd, region, first, npages) == -1)
		return -1;
	/* One pwrite per run of non-zero pages; zero pages stay holes. */
	while (i < npages) {
		uint64_t run = i;

		while (run < npages &&
		    !zsnap_page_is_zero(base + run * ZSNAP_PAGE_SIZE))
			run++;
		if (run > i) {
			size_t len = (size_t)(run - i) * ZSNAP_PAGE_SIZE;

			if (ioutil_write_all(rd->files[region].fd,
			    base + i * ZSNAP_PAGE_SIZE, len,
			    (off_t)((first + i) * ZSNAP_PAGE_SIZE)) == -1) {
				rawdir_file_name(file, sizeof(file), region);
				return rawdir_fail(rd, "write", file);
			}
			rd->bytes += len;
			i = run;
		}
		while (i < npages &&
		    zsnap_page_is_zero(base + i * ZSNAP_PAGE_SIZE)) {
			zeros++;
			i++;
		}
	}
	if (zero != NULL)
		*zero = zeros;
	return 0;
}

/* Create file in the temporary directory, write all of buf, fsync. */
static int
rawdir_write_file(struct rawdir *rd, const char *file, const void *buf,
    size_t len)
{
	int	fd;

	fd = openat(rd->tmpfd, file, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, rd->mode);
	if (fd == -1)
		return rawdir_fail(rd, "create", file);
	if ((rawdir_owned(rd) && fchown(fd, rd->uid, rd->gid) == -1) ||
	    ioutil_write_all(fd, buf, len, -1) == -1 || fsync(fd) == -1) {
		rawdir_fail(rd, "write", file);
		close(fd);
		return -1;
	}
	rd->bytes += len;
	if (close(fd) == -1)
		return rawdir_fail(rd, "close", file);
	return 0;
}

int
rawdir_process(struct rawdir *rd, const void *rec, size_t len)
{
	if (rawdir_usable(rd) == -1)
		return -1;
	if (rd->process) {
		rawdir_set_error(rd, "%s: the process record is written "
		    "already", rd->name);
		errno = EEXIST;
		return -1;
	}
	if (rawdir_write_file(rd, ZSNAP_RAW_PROCESS, rec, len) == -1)
		return -1;
	rd->process = 1;
	return 0;
}

int
rawdir_lost(struct rawdir *rd, uint32_t region, uint64_t first,
    uint64_t npages)
{
	struct rawdir_file	*rf;
	struct rawdir_lost	*l;

	if (rawdir_check_range(rd, region, first, npages) == -1)
		return -1;
	rf = &rd->files[region];
	if (rf->lost_count > 0) {
		l = &rf->lost[rf->lost_count - 1];
		if (l->first + l->count == first) {
			l->count += npages;
			return 0;
		}
	}
	if (rf->lost_count == rf->lost_cap) {
		size_t	 cap = rf->lost_cap ? rf->lost_cap * 2 : 16;

		l = reallocarray(rf->lost, cap, sizeof(*rf->lost));
		if (l == NULL) {
			rawdir_set_error(rd, "%s: cannot record %zu lost runs "
			    "of region %u", rd->name, cap, region);
			errno = ENOMEM;
			return -1;
		}
		rf->lost = l;
		rf->lost_cap = cap;
	}
	rf->lost[rf->lost_count].first = first;
	rf->lost[rf->lost_count].count = npages;
	rf->lost_count++;
	return 0;
}

static int
rawdir_lost_compare(const void *a, const void *b)
{
	const struct rawdir_lost	*x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* A region's lost runs as snapshot.json lists them: sorted, merged. */
static json_t *
rawdir_json_lost(struct rawdir_file *rf)
{
	json_t	*lost;

	if ((lost = json_array()) == NULL)
		return NULL;
	if (rf->lost_count > 1)
		qsort(rf->lost, rf->lost_count, sizeof(*rf->lost),
		    rawdir_lost_compare);
	for (size_t k = 0; k < rf->lost_count;) {
		uint64_t first = rf->lost[k].first, count = rf->lost[k].count;

		/* Adjacent runs recorded apart (out of order) become one. */
		for (k++; k < rf->lost_count &&
		    first + count == rf->lost[k].first; k++)
			count += rf->lost[k].count;
		if (json_array_append_new(lost, json_pack("[II]",
		    (json_int_t)first, (json_int_t)count)) == -1) {
			json_decref(lost);
			return NULL;
		}
	}
	return lost;
}

/* snapshot.json (proto/FORMAT.md): every key, in this order. */
static json_t *
rawdir_json(struct rawdir *rd, const struct rawdir_info *info)
{
	json_t	*regions, *lost;
	char	 file[32];

	if ((regions = json_array()) == NULL)
		return NULL;
	for (uint32_t i = 0; i < rd->count; i++) {
		struct rawdir_file *rf = &rd->files[i];

		if ((lost = rawdir_json_lost(rf)) == NULL) {
			json_decref(regions);
			return NULL;
		}
		rawdir_file_name(file, sizeof(file), i);
		if (json_array_append_new(regions, json_pack("{sI sI sI ss ss so}",
		    "index", (json_int_t)i,
		    "start", (json_int_t)rf->start,
		    "length", (json_int_t)rf->length,
		    "name", rf->name,
		    "file", file,
		    "lost", lost)) == -1) {
			json_decref(regions);
			return NULL;
		}
	}
	return json_pack("{ss sI sI sI ss sI sI ss sI sI sI sI sI sI so}",
	    "format", "zsnap-raw",
	    "version_major", (json_int_t)ZSNAP_VERSION_MAJOR,
	    "version_minor", (json_int_t)ZSNAP_VERSION_MINOR,
	    "page_size", (json_int_t)ZSNAP_PAGE_SIZE,
	    "name", info->name,
	    "pid", (json_int_t)info->pid,
	    "uid", (json_int_t)info->uid,
	    "comm", info->comm,
	    "armed_realtime_ns", (json_int_t)info->armed_realtime_ns,
	    "flags", (json_int_t)((info->pages_lost > 0 ?
	    ZSNAP_F_LOST_PAGES : 0) | (rd->process ? ZSNAP_F_PROCESS : 0)),
	    "pages_total", (json_int_t)info->pages_total,
	    "pages_data", (json_int_t)info->pages_data,
	    "pages_zero", (json_int_t)info->pages_zero,
	    "pages_lost", (json_int_t)info->pages_lost,
	    "regions", regions);
}

/* Write snapshot.json, fsynced, into the temporary directory. */
static int
rawdir_write_json(struct rawdir *rd, const struct rawdir_info *info)
{
	json_t	*root;
	char	*text;
	size_t	 len;
	int	 rc;

	root = rawdir_json(rd, info);
	text = root != NULL ? json_dumps(root, JSON_INDENT(1) |
	    JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	if (text == NULL) {
		rawdir_set_error(rd, "%s: cannot build snapshot.json (out of "
		    "memory, or a name that is not UTF-8)", rd->name);
		errno = ENOMEM;
		return -1;
	}
	/* With its newline: the file ends in one. */
	len = strlen(text);
	text[len] = '\n';
	rc = rawdir_write_file(rd, "snapshot.json", text, len + 1);
	free(text);
	return rc;
}

int
rawdir_commit(struct rawdir *rd, const struct rawdir_info *info)
{
	char	file[32];

	if (rawdir_usable(rd) == -1)
		return -1;
	for (uint32_t i = 0; i < rd->count; i++) {
		struct rawdir_file *rf = &rd->files[i];

		rawdir_file_name(file, sizeof(file), i);
		if (fsync(rf->fd) == -1)
			return rawdir_fail(rd, "fsync", file);
		if (close(rf->fd) == -1) {
			rf->fd = -1;
			return rawdir_fail(rd, "close", file);
		}
		rf->fd = -1;
	}
	if (rawdir_write_json(rd, info) == -1)
		return -1;
	if (fsync(rd->tmpfd) == -1)
		return rawdir_fail(rd, "fsync", ".");
	if (renameat2(rd->parentfd, rd->tmpname, rd->parentfd, rd->name,
	    RENAME_NOREPLACE) == -1) {
		rawdir_set_error(rd, "rename %s to %s: %s", rd->tmpname,
		    rd->name, strerror(errno));
		return -1;
	}
	/*
	 * From here the directory is in place under its final name: the
	 * rename cannot be undone, so a failing fsync of the parent is
	 * reported but abort must not remove anything.
	 */
	rd->committed = 1;
	if (fsync(rd->parentfd) == -1) {
		rawdir_set_error(rd, "fsync of the directory of %s: %s",
		    rd->name, strerror(errno));
		return -1;
	}
	return 0;
}

/* Remove file from the temporary directory; keep the first failure. */
static void
rawdir_remove(struct rawdir *rd, const char *file, int *rc)
{
	if (unlinkat(rd->tmpfd, file, 0) == -1 && errno != ENOENT &&
	    *rc == 0) {
		rawdir_fail(rd, "remove", file);
		*rc = -1;
	}
}

int
rawdir_abort(struct rawdir *rd)
{
	char	file[32];
	int	rc = 0, saved = errno;

	if (rd->committed || rd->aborted)
		return 0;
	rd->aborted = 1;
	for (uint32_t i = 0; i < rd->count; i++) {
		if (rd->files[i].fd != -1) {
			close(rd->files[i].fd);
			rd->files[i].fd = -1;
		}
	}
	if (!rd->made)
		return 0;	/* not ours: nothing to remove */
	if (rd->tmpfd != -1) {
		for (uint32_t i = 0; i < rd->count; i++) {
			rawdir_file_name(file, sizeof(file), i);
			rawdir_remove(rd, file, &rc);
		}
		rawdir_remove(rd, "snapshot.json", &rc);
		rawdir_remove(rd, ZSNAP_RAW_PROCESS, &rc);
	}
	if (unlinkat(rd->parentfd, rd->tmpname, AT_REMOVEDIR) == -1 &&
	    errno != ENOENT && rc == 0) {
		rawdir_set_error(rd, "remove %s: %s", rd->tmpname,
		    strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		errno = saved;
	return rc;
}

void
rawdir_free(struct rawdir *rd)
{
	int	saved = errno;

	if (rd == NULL)
		return;
	rawdir_abort(rd);
	for (uint32_t i = 0; i < rd->count; i++) {
		if (rd->files[i].fd != -1)
			close(rd->files[i].fd);
		free(rd->files[i].name);
		free(rd->files[i].lost);
	}
	if (rd->tmpfd != -1)
		close(rd->tmpfd);
	if (rd->parentfd != -1)
		close(rd->parentfd);
	free(rd->files);
	free(rd);
	errno = saved;
}

uint64_t
rawdir_bytes(const struct rawdir *rd)
{
	return rd->bytes;
}

const char *
rawdir_name(const struct rawdir *rd)
{
	return rd->name;
}

const char *
rawdir_error(const struct rawdir *rd)
{
	return rd->error;
}
