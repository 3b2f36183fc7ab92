/*
 * Restoring a snapshot: into memory (snap_file_restore(), snap_restore())
 * or into a raw snapshot directory (snap_file_export_raw(), which is what
 * `snapctl export --raw` runs).
 *
 * Both first prove the whole file's coverage (reader_check_coverage():
 * every page of every region covered exactly once) and only then write,
 * so a file verify would refuse on coverage is refused here too, whichever
 * region is asked for, before a byte of the caller's memory or a file is
 * touched.  Page data is checked chunk by chunk as the walk reads it; a
 * checksum failure in the middle leaves the memory partly restored (and
 * the export's temporary directory removed), with the error saying where.
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

#include "error.h"
#include "reader-internal.h"

struct restore_state {
	unsigned char	*addr;
	uint64_t	 pages;		/* restored or lost */
	uint64_t	 lost;
};

static int
restore_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct restore_state	*r = arg;
	unsigned char		*dst = r->addr + e->first * ZSNAP_PAGE_SIZE;
	size_t			 len = (size_t)e->count * ZSNAP_PAGE_SIZE;

	switch (e->kind) {
	case ZSNAP_EXTENT_DATA:
		memcpy(dst, data, len);
		break;
	case ZSNAP_EXTENT_ZERO:
		memset(dst, 0, len);
		break;
	case ZSNAP_EXTENT_LOST:
		r->lost += e->count;
		break;
	}
	r->pages += e->count;
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
	    reader_walk(f, index, 0, restore_extent, &r) == -1)
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
/* ---- export as raw ------------------------------------------------------------ */

struct export_state {
	int			 dirfd;
	const char		*dir;	/* the temporary directory, for messages */
	int			*fds;
	struct reader_range	**lost;
	size_t			*lost_count;
	size_t			*lost_cap;
};

static int
export_pwrite(struct snap_file *f, struct export_state *x, uint32_t region,
    const unsigned char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t	n = pwrite(x->fds[region], buf, len, (off_t)off);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			reader_error(f, n < 0 ? errno : EIO, "export: write "
			    "%s/%u.img: %s", x->dir, region,
			    n < 0 ? strerror(errno) : "wrote nothing");
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
export_extent(struct snap_file *f, void *arg, uint64_t chunk,
    const struct reader_extent *e, const unsigned char *data)
{
	struct export_state	*x = arg;
	uint32_t		 r = e->region;

	if (e->kind == ZSNAP_EXTENT_LOST) {
		if (x->lost_count[r] == x->lost_cap[r]) {
			size_t	 cap = x->lost_cap[r] ? x->lost_cap[r] * 2 : 16;
			void	*p = reallocarray(x->lost[r], cap,
			    sizeof(**x->lost));

			if (p == NULL) {
				reader_error(f, ENOMEM, "export: cannot allocate "
				    "%zu lost runs", cap);
				return -1;
			}
			x->lost[r] = p;
			x->lost_cap[r] = cap;
		}
		x->lost[r][x->lost_count[r]].first = e->first;
		x->lost[r][x->lost_count[r]].count = e->count;
		x->lost_count[r]++;
		return 0;
	}
	if (e->kind != ZSNAP_EXTENT_DATA)
		return 0;	/* zero pages stay holes */
	/* One write per run of non-zero pages, so the file stays sparse. */
	for (uint64_t i = 0; i < e->count;) {
		const unsigned char *pg = data + i * ZSNAP_PAGE_SIZE;
		uint64_t run = i;

		while (run < e->count && !zsnap_page_is_zero(pg)) {
			run++;
			pg += ZSNAP_PAGE_SIZE;
		}
		if (run > i && export_pwrite(f, x, r, data + i * ZSNAP_PAGE_SIZE,
		    (size_t)(run - i) * ZSNAP_PAGE_SIZE,
		    (e->first + i) * ZSNAP_PAGE_SIZE) == -1)
			return -1;
		i = run < e->count ? run + 1 : run;
	}
	return 0;
}

static int
range_compare(const void *a, const void *b)
{
	const struct reader_range	*x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* snapshot.json as daemon/output-raw.c writes it (see proto/FORMAT.md). */
static json_t *
export_json(struct snap_file *f, struct export_state *x)
{
	json_t	*root, *regions;
	char	 file[32];

	if ((regions = json_array()) == NULL)
		return NULL;
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		json_t	*lost = json_array();

		if (lost == NULL) {
			json_decref(regions);
			return NULL;
		}
		if (x->lost_count[i] > 0)
			qsort(x->lost[i], x->lost_count[i],
			    sizeof(*x->lost[i]), range_compare);
		for (size_t k = 0; k < x->lost_count[i]; k++) {
			/* Adjacent runs from different chunks become one. */
			if (k > 0 && x->lost[i][k - 1].first +
			    x->lost[i][k - 1].count == x->lost[i][k].first) {
				json_t *prev = json_array_get(lost,
				    json_array_size(lost) - 1);
				json_t *cnt = json_array_get(prev, 1);

				json_integer_set(cnt, json_integer_value(cnt) +
				    (json_int_t)x->lost[i][k].count);
				continue;
			}
			json_array_append_new(lost, json_pack("[II]",
			    (json_int_t)x->lost[i][k].first,
			    (json_int_t)x->lost[i][k].count));
		}
		snprintf(file, sizeof(file), "%u.img", i);
		json_array_append_new(regions, json_pack("{sI sI sI ss ss so}",
		    "index", (json_int_t)i,
		    "start", (json_int_t)f->regions[i].start,
		    "length", (json_int_t)f->regions[i].length,
		    "name", f->regions[i].name,
		    "file", file,
		    "lost", lost));
	}
	root = json_pack("{ss sI sI sI ss sI sI ss sI sI sI sI sI sI so}",
	    "format", "zsnap-raw",
	    "version_major", (json_int_t)ZSNAP_VERSION_MAJOR,
	    "version_minor", (json_int_t)ZSNAP_VERSION_MINOR,
	    "page_size", (json_int_t)ZSNAP_PAGE_SIZE,
	    "name", f->info.name,
	    "pid", (json_int_t)f->info.pid,
	    "uid", (json_int_t)f->info.uid,
	    "comm", f->info.comm,
	    "armed_realtime_ns", (json_int_t)f->info.armed_realtime_ns,
	    "flags", (json_int_t)(f->info.pages_lost > 0 ?
	    ZSNAP_F_LOST_PAGES : 0),
	    "pages_total", (json_int_t)f->info.pages_total,
	    "pages_data", (json_int_t)f->info.pages_data,
	    "pages_zero", (json_int_t)f->info.pages_zero,
	    "pages_lost", (json_int_t)f->info.pages_lost,
	    "regions", regions);
	return root;
}

static int
export_finish(struct snap_file *f, struct export_state *x, const char *dir)
{
	json_t	*root;
	char	*text;
	int	 fd, rc = -1;

	for (uint32_t i = 0; i < f->info.region_count; i++) {
		if (fsync(x->fds[i]) == -1) {
			reader_error(f, errno, "export: fsync %s/%u.img: %s",
			    x->dir, i, strerror(errno));
			return -1;
		}
	}
	if ((root = export_json(f, x)) == NULL ||
	    (text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER)) ==
	    NULL) {
		json_decref(root);
		reader_error(f, ENOMEM, "export: cannot build snapshot.json");
		return -1;
	}
	json_decref(root);
	fd = openat(x->dirfd, "snapshot.json", O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		reader_error(f, errno, "export: create %s/snapshot.json: %s",
		    x->dir, strerror(errno));
		free(text);
		return -1;
	}
	for (size_t off = 0, len = strlen(text); off < len;) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			reader_error(f, n < 0 ? errno : EIO, "export: write "
			    "%s/snapshot.json: %s", x->dir,
			    n < 0 ? strerror(errno) : "wrote nothing");
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) == -1) {
		reader_error(f, errno, "export: write %s/snapshot.json: %s",
		    x->dir, strerror(errno));
		goto out;
	}
	if (fsync(x->dirfd) == -1) {
		reader_error(f, errno, "export: fsync %s: %s", x->dir,
		    strerror(errno));
		goto out;
	}
	if (renameat2(AT_FDCWD, x->dir, AT_FDCWD, dir, RENAME_NOREPLACE) == -1) {
		reader_error(f, errno, "export: rename %s to %s: %s", x->dir,
		    dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(text);
	close(fd);
	return rc;
}

int
snap_file_export_raw(struct snap_file *f, const char *dir)
{
	struct export_state	 x;
	char			 tmp[PATH_MAX], file[32];
	uint32_t		 n;
	int			 rc = -1, made = 0, saved;

	if (f == NULL || dir == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_export_raw: no file or no "
		    "directory");
		return -1;
	}
	/* Refused before anything is created. */
	if (reader_check_coverage(f) == -1)
		return -1;
	n = f->info.region_count;
	memset(&x, 0, sizeof(x));
	x.dirfd = -1;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dir, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		reader_error(f, ENAMETOOLONG, "export: %s: name too long", dir);
		return -1;
	}
	x.dir = tmp;
	x.fds = malloc(n * sizeof(*x.fds));
	x.lost = calloc(n, sizeof(*x.lost));
	x.lost_count = calloc(n, sizeof(*x.lost_count));
	x.lost_cap = calloc(n, sizeof(*x.lost_cap));
	if (x.fds == NULL || x.lost == NULL || x.lost_count == NULL ||
	    x.lost_cap == NULL) {
		reader_error(f, ENOMEM, "export: cannot allocate %u regions", n);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		x.fds[i] = -1;
	if (mkdir(tmp, 0700) == -1) {
		reader_error(f, errno, "export: create directory %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	made = 1;
	x.dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x.dirfd == -1) {
		reader_error(f, errno, "export: open directory %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%u.img", i);
		x.fds[i] = openat(x.dirfd, file, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (x.fds[i] == -1 || ftruncate(x.fds[i],
		    (off_t)f->regions[i].length) == -1) {
			reader_error(f, errno, "export: create %s/%s: %s", tmp,
			    file, strerror(errno));
			goto out;
		}
	}
	if (reader_walk(f, ALL_REGIONS, 0, export_extent, &x) == -1 ||
	    export_finish(f, &x, dir) == -1)
		goto out;
	made = 0;	/* renamed into place: keep it */
	rc = 0;
out:
	saved = errno;
	for (uint32_t i = 0; x.fds != NULL && i < n; i++) {
		if (x.fds[i] != -1)
			close(x.fds[i]);
		if (made && x.dirfd != -1) {
			snprintf(file, sizeof(file), "%u.img", i);
			unlinkat(x.dirfd, file, 0);
		}
	}
	if (made) {
		if (x.dirfd != -1)
			unlinkat(x.dirfd, "snapshot.json", 0);
		rmdir(tmp);
	}
	if (x.dirfd != -1)
		close(x.dirfd);
	for (uint32_t i = 0; x.lost != NULL && i < n; i++)
		free(x.lost[i]);
	free(x.fds);
	free(x.lost);
	free(x.lost_count);
	free(x.lost_cap);
	errno = saved;
	return rc;
}
