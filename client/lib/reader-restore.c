/*
 * Restoring a snapshot: into memory (snap_file_restore(), snap_restore(),
 * a page range with snap_file_read()) or into a raw snapshot directory (snap_file_export_raw(), which is what
 * `memsnapctl export --raw` runs).  All three go through
 * reader_chain_walk() (reader-chain.c), which hands out every page of an
 * incremental snapshot from the link of its chain that holds it, so each
 * gives the memory as it was at the file's own armed instant.
 *
 * Both first prove the whole file's coverage (reader_check_coverage():
 * every page of every region covered exactly once) and only then write,
 * so a file verify would refuse on coverage is refused here too, whichever
 * region is asked for, before a byte of the caller's memory or a file is
 * touched.  Page data is checked chunk by chunk as the walk reads it; a
 * checksum failure in the middle leaves the memory partly restored (and
 * the export's temporary directory removed), with the error saying where.
 * The export writes through proto/rawdir.c, snapd's own raw writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "rawdir.h"
#include "reader-internal.h"

/* Restore and read: pages land at (page - first) in addr. */
struct restore_state {
	unsigned char	*addr;
	uint64_t	 first;
	uint64_t	 pages;		/* restored or lost */
	uint64_t	 lost;
};

static int
restore_apply(struct snap_file *f, void *arg, uint32_t region, uint64_t first,
    uint64_t count, uint32_t kind, const unsigned char *data)
{
	struct restore_state	*r = arg;
	unsigned char		*dst = r->addr + (first - r->first) *
				    ZSNAP_PAGE_SIZE;
	size_t			 len = (size_t)count * ZSNAP_PAGE_SIZE;

	switch (kind) {
	case ZSNAP_EXTENT_DATA:
		memcpy(dst, data, len);
		break;
	case ZSNAP_EXTENT_ZERO:
		memset(dst, 0, len);
		break;
	case ZSNAP_EXTENT_LOST:
		r->lost += count;
		break;
	}
	r->pages += count;
	return 0;
}

int
snap_file_restore(struct snap_file *f, uint32_t index, void *addr, size_t len,
    uint64_t *pages_lost)
{
	struct restore_state	r;

	if (f == NULL || addr == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_restore: no file or no "
		    "address");
		return -1;
	}
	if (index >= f->info.region_count) {
		reader_error(f, EINVAL, "no region %u (the snapshot has %u)",
		    index, f->info.region_count);
		return -1;
	}
	if (len < f->regions[index].length) {
		reader_error(f, EINVAL, "region %u (%s) is %llu bytes, the "
		    "memory to restore it into only %zu", index,
		    f->regions[index].name,
		    (unsigned long long)f->regions[index].length, len);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.addr = addr;
	if (reader_check_coverage(f) == -1 ||
	    reader_chain_walk(f, index, 0, f->region_pages[index], restore_apply,
	    &r) == -1)
		return -1;
	if (r.pages != f->region_pages[index]) {
		reader_error(f, EBADMSG, "region %u (%s): the snapshot covers "
		    "%llu of its %llu pages", index, f->regions[index].name,
		    (unsigned long long)r.pages,
		    (unsigned long long)f->region_pages[index]);
		return -1;
	}
	if (pages_lost != NULL)
		*pages_lost = r.lost;
	return 0;
}

int
snap_restore(const char *path, const char *region_name, void *addr,
    size_t len)
{
	struct snap_file	*f;
	int			 rc = -1;

	if (region_name == NULL) {
		sc_set_error(NULL, EINVAL, "snap_restore: no region name");
		return -1;
	}
	if ((f = snap_file_open(path)) == NULL)
		return -1;
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		if (strcmp(f->regions[i].name, region_name) == 0) {
			rc = snap_file_restore(f, i, addr, len, NULL);
			snap_file_close(f);
			return rc;
		}
	}
	reader_error(f, ENOENT, "no region named \"%s\"", region_name);
	snap_file_close(f);
	errno = ENOENT;
	return -1;
}
/* ---- reading a page range --------------------------------------------------- */

int
snap_file_read(struct snap_file *f, uint32_t region, uint64_t first_page,
    uint64_t npages, void *buf, uint64_t *lost)
{
	struct restore_state	r = { buf, first_page, 0, 0 };

	if (f == NULL || buf == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_read: no file or no "
		    "buffer");
		return -1;
	}
	if (region >= f->info.region_count ||
	    first_page > f->region_pages[region] ||
	    npages > f->region_pages[region] - first_page ||
	    npages > SIZE_MAX / ZSNAP_PAGE_SIZE) {
		reader_error(f, EINVAL, "no pages %llu+%llu in region %u (the "
		    "snapshot has %u regions)", (unsigned long long)first_page,
		    (unsigned long long)npages, region, f->info.region_count);
		return -1;
	}
	memset(buf, 0, (size_t)npages * ZSNAP_PAGE_SIZE);
	if (npages > 0 && (reader_check_coverage(f) == -1 ||
	    reader_chain_walk(f, region, first_page, npages, restore_apply,
	    &r) == -1))
		return -1;
	if (r.pages != npages) {
		reader_error(f, EBADMSG, "region %u: the snapshot covers %llu "
		    "of pages %llu+%llu", region, (unsigned long long)r.pages,
		    (unsigned long long)first_page,
		    (unsigned long long)npages);
		return -1;
	}
	if (lost != NULL)
		*lost = r.lost;
	return 0;
}

/* ---- export as raw ------------------------------------------------------------ */

/*
 * The raw directory is written by proto/rawdir.c, the writer snapd's raw
 * output uses too: the same snapshot.json, files and commit.
 */
struct export_state {
	struct rawdir	*rd;
	const char	*dir;	/* as the caller named it, for messages */
	uint64_t	 pages[3];	/* by kind, as exported */
};

static int
export_apply(struct snap_file *f, void *arg, uint32_t region, uint64_t first,
    uint64_t count, uint32_t kind, const unsigned char *data)
{
	struct export_state	*x = arg;
	uint64_t		 zero = 0;
	int			 rc = 0;

	if (kind == ZSNAP_EXTENT_LOST)
		rc = rawdir_lost(x->rd, region, first, count);
	else if (kind == ZSNAP_EXTENT_DATA)
		rc = rawdir_pages(x->rd, region, first, count, data, &zero);
	else
		zero = count;	/* ZERO pages stay holes */
	if (rc == -1) {
		reader_error(f, errno, "export to %s: %s", x->dir,
		    rawdir_error(x->rd));
		return -1;
	}
	/* Raw tells DATA from ZERO by content, as snapd's raw output does. */
	if (kind == ZSNAP_EXTENT_LOST)
		x->pages[ZSNAP_EXTENT_LOST] += count;
	else {
		x->pages[ZSNAP_EXTENT_DATA] += count - zero;
		x->pages[ZSNAP_EXTENT_ZERO] += zero;
	}
	return 0;
}

/*
 * Split path into the directory that holds it, opened, and its last
 * component (trailing slashes dropped), in buf: the export's directory
 * and the merge's file are made in that directory.  what names the
 * operation in messages.
 */
int
reader_target_dir(struct snap_file *f, const char *path, const char *what,
    char *buf, size_t len, const char **base)
{
	const char	*parent;
	char		*slash;
	size_t		 n = strlen(path);
	int		 fd;

	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n >= len) {
		reader_error(f, ENAMETOOLONG, "%s: %s: name too long", what,
		    path);
		return -1;
	}
	memcpy(buf, path, n);
	buf[n] = '\0';
	if ((slash = strrchr(buf, '/')) == NULL) {
		parent = ".";
		*base = buf;
	} else {
		*slash = '\0';
		parent = slash == buf ? "/" : buf;
		*base = slash + 1;
	}
	if (**base == '\0' || strcmp(*base, ".") == 0 ||
	    strcmp(*base, "..") == 0) {
		reader_error(f, EINVAL, "%s: %s: not a name to create", what,
		    path);
		return -1;
	}
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		reader_error(f, errno, "%s: open directory %s: %s", what,
		    parent, strerror(errno));
	return fd;
}

/* The process record goes over as it is, once checked. */
static int
export_process(struct snap_file *f, struct rawdir *rd, const char *dir)
{
	uint8_t	*buf;
	size_t	 len;
	int	 rc;

	if (!f->process)
		return 0;
	if (reader_process_load(f, &buf, &len) == -1)
		return -1;
	if ((rc = rawdir_process(rd, buf, len)) == -1)
		reader_error(f, errno, "export to %s: %s", dir,
		    rawdir_error(rd));
	free(buf);
	return rc;
}

int
snap_file_export_raw(struct snap_file *f, const char *dir)
{
	struct export_state	 x = { NULL, dir, { 0, 0, 0 } };
	struct rawdir_region	*regions = NULL;
	struct rawdir_info	 info;
	char			 buf[PATH_MAX], err[RAWDIR_ERROR_MAX];
	const char		*base;
	uint32_t		 n;
	int			 parentfd, rc = -1, saved;

	if (f == NULL || dir == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_export_raw: no file or no "
		    "directory");
		return -1;
	}
	/* Refused before anything is created. */
	if (reader_check_coverage(f) == -1)
		return -1;
	n = f->info.region_count;
	if ((regions = calloc(n, sizeof(*regions))) == NULL) {
		reader_error(f, ENOMEM, "export: cannot allocate %u regions", n);
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		regions[i].start = f->regions[i].start;
		regions[i].length = f->regions[i].length;
		regions[i].name = f->regions[i].name;
	}
	if ((parentfd = reader_target_dir(f, dir, "export", buf, sizeof(buf),
	    &base)) == -1) {
		free(regions);
		return -1;
	}
	x.rd = rawdir_open(parentfd, base, 0600, (uid_t)-1, (gid_t)-1,
	    regions, n, err, sizeof(err));
	if (x.rd == NULL) {
		reader_error(f, errno, "export to %s: %s", dir, err);
		goto out;
	}
	if (export_process(f, x.rd, dir) == -1 ||
	    reader_chain_walk(f, ALL_REGIONS, 0, UINT64_MAX, export_apply,
	    &x) == -1)
		goto out;
	memset(&info, 0, sizeof(info));
	info.name = f->info.name;
	info.pid = f->info.pid;
	info.uid = f->info.uid;
	info.comm = f->info.comm;
	info.armed_realtime_ns = f->info.armed_realtime_ns;
	info.pages_total = f->info.pages_total;
	info.pages_data = x.pages[ZSNAP_EXTENT_DATA];
	info.pages_zero = x.pages[ZSNAP_EXTENT_ZERO];
	info.pages_lost = x.pages[ZSNAP_EXTENT_LOST];
	if (rawdir_commit(x.rd, &info) == -1) {
		reader_error(f, errno, "export to %s: %s", dir,
		    rawdir_error(x.rd));
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	rawdir_free(x.rd);	/* removes the temporary directory on failure */
	close(parentfd);
	free(regions);
	errno = saved;
	return rc;
}
