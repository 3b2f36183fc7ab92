/*
 * The raw encoder: a directory NAME.raw with one sparse file "R.img" per
 * region (page i at offset i * ZSNAP_PAGE_SIZE, zero pages left as holes,
 * so the file can be mmap'ed as the region's memory) and "snapshot.json",
 * written last, describing the regions, the page counts and the LOST runs.
 *
 * Atomicity as for zsnap: everything is built in ".NAME.raw.tmp-PID"
 * (mkdirat, mode 0700) and output_finish() fsyncs every file and the
 * directory, then renames it to NAME.raw without replacing anything.
 * Runs on the snapshot's writer thread.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "output-impl.h"
#include "sink.h"

struct raw_lost {
	uint64_t	first;
	uint64_t	count;
};

struct raw_region {
	int		 fd;
	struct raw_lost	*lost;
	size_t		 lost_count;
	size_t		 lost_cap;
};

struct raw_out {
	int		 dirfd;		/* the snapshot directory (dup) */
	int		 tmpfd;		/* the temporary directory */
	char		 tmpname[NAME_MAX + 1];
	char		 name[NAME_MAX + 1];
	struct raw_region *regions;
	uint64_t	 bytes;
	int		 json_written;
	int		 renamed;
};

static int
raw_fail(struct output *out, const char *what, const char *file)
{
	struct raw_out	*r = out->priv;

	output_set_error(out, "%s %s/%s: %s", what, r->tmpname, file,
	    strerror(errno));
	return -1;
}

static int
raw_open(struct output *out)
{
	const struct output_params *p = &out->params;
	struct raw_out	*r;
	char		 file[32];
	int		 n, m;

	r = xcalloc(1, sizeof(*r));
	out->priv = r;
	r->dirfd = -1;
	r->tmpfd = -1;
	r->regions = xcalloc(p->region_count, sizeof(*r->regions));
	for (uint32_t i = 0; i < p->region_count; i++)
		r->regions[i].fd = -1;

	n = snprintf(r->tmpname, sizeof(r->tmpname), ".%s%s.tmp-%ld", p->name,
	    ZSNAP_RAW_SUFFIX, (long)getpid());
	m = snprintf(r->name, sizeof(r->name), "%s%s", p->name,
	    ZSNAP_RAW_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(r->tmpname) || m < 0 ||
	    (size_t)m >= sizeof(r->name)) {
		output_set_error(out, "snapshot %s: name too long", p->name);
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((r->dirfd = fcntl(p->dirfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		output_set_error(out, "snapshot %s: duplicate directory "
		    "descriptor: %s", p->name, strerror(errno));
		r->dirfd = -1;
		return -1;
	}
	if (mkdirat(r->dirfd, r->tmpname, 0700) == -1) {
		output_set_error(out, "create directory %s: %s", r->tmpname,
		    strerror(errno));
		r->tmpname[0] = '\0';	/* not ours: close must not remove it */
		return -1;
	}
	r->tmpfd = openat(r->dirfd, r->tmpname,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->tmpfd == -1)
		return raw_fail(out, "open directory", ".");
	if ((p->owner_uid != (uid_t)-1 || p->owner_gid != (gid_t)-1) &&
	    fchown(r->tmpfd, p->owner_uid, p->owner_gid) == -1)
		return raw_fail(out, "chown", ".");

	for (uint32_t i = 0; i < p->region_count; i++) {
		struct raw_region *rr = &r->regions[i];

		snprintf(file, sizeof(file), "%u.img", i);
		rr->fd = openat(r->tmpfd, file, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, p->mode);
		if (rr->fd == -1)
			return raw_fail(out, "create", file);
		if ((p->owner_uid != (uid_t)-1 || p->owner_gid != (gid_t)-1) &&
		    fchown(rr->fd, p->owner_uid, p->owner_gid) == -1)
			return raw_fail(out, "chown", file);
		if (ftruncate(rr->fd, (off_t)p->regions[i].length) == -1)
			return raw_fail(out, "set the size of", file);
	}
	return 0;
}

/* pwrite all of buf at off, retrying short writes and EINTR. */
static int
raw_pwrite(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t	n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
raw_pages(struct output *out, uint32_t region, uint64_t first,
    uint32_t npages, const void *data)
{
	struct raw_out		*r = out->priv;
	const unsigned char	*base = data;
	uint32_t		 i = 0;
	char			 file[32];

	/* One pwrite per run of non-zero pages; zero pages stay holes. */
	while (i < npages) {
		uint32_t run = i;

		while (run < npages &&
		    !zsnap_page_is_zero(base + (size_t)run * ZSNAP_PAGE_SIZE))
			run++;
		if (run > i) {
			size_t len = (size_t)(run - i) * ZSNAP_PAGE_SIZE;

			if (raw_pwrite(r->regions[region].fd,
			    base + (size_t)i * ZSNAP_PAGE_SIZE, len,
			    (first + i) * ZSNAP_PAGE_SIZE) == -1) {
				snprintf(file, sizeof(file), "%u.img", region);
				return raw_fail(out, "write", file);
			}
			r->bytes += len;
			out->pages_data += run - i;
			i = run;
		}
		while (i < npages &&
		    zsnap_page_is_zero(base + (size_t)i * ZSNAP_PAGE_SIZE)) {
			out->pages_zero++;
			i++;
		}
	}
	return 0;
}

static int
raw_lost(struct output *out, uint32_t region, uint64_t first, uint64_t npages)
{
	struct raw_out		*r = out->priv;
	struct raw_region	*rr = &r->regions[region];

	if (rr->lost_count > 0) {
		struct raw_lost *l = &rr->lost[rr->lost_count - 1];

		if (l->first + l->count == first) {
			l->count += npages;
			return 0;
		}
	}
	if (rr->lost_count == rr->lost_cap) {
		rr->lost_cap = rr->lost_cap ? rr->lost_cap * 2 : 16;
		rr->lost = reallocarray(rr->lost, rr->lost_cap,
		    sizeof(*rr->lost));
		if (rr->lost == NULL)
			fatal("snapshot %s: lost page list", out->name);
	}
	rr->lost[rr->lost_count].first = first;
	rr->lost[rr->lost_count].count = npages;
	rr->lost_count++;
	return 0;
}

static uint64_t
raw_bytes(const struct output *out)
{
	const struct raw_out	*r = out->priv;

	return r->bytes;
}

static int
lost_compare(const void *a, const void *b)
{
	const struct raw_lost	*x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static json_t *
raw_json(struct output *out)
{
	const struct output_params *p = &out->params;
	struct raw_out	*r = out->priv;
	json_t		*root, *regions;
	char		 file[32];

	regions = json_array();
	for (uint32_t i = 0; i < p->region_count; i++) {
		struct raw_region *rr = &r->regions[i];
		json_t	*lost = json_array();

		if (rr->lost_count > 0)
			qsort(rr->lost, rr->lost_count, sizeof(*rr->lost),
			    lost_compare);
		for (size_t k = 0; k < rr->lost_count; k++)
			json_array_append_new(lost, json_pack("[II]",
			    (json_int_t)rr->lost[k].first,
			    (json_int_t)rr->lost[k].count));
		snprintf(file, sizeof(file), "%u.img", i);
		json_array_append_new(regions, json_pack("{sI sI sI ss ss so}",
		    "index", (json_int_t)i,
		    "start", (json_int_t)p->regions[i].start,
		    "length", (json_int_t)p->regions[i].length,
		    "name", p->regions[i].name,
		    "file", file,
		    "lost", lost));
	}
	root = json_pack("{ss sI sI sI ss sI sI ss sI sI sI sI sI sI so}",
	    "format", "zsnap-raw",
	    "version_major", (json_int_t)ZSNAP_VERSION_MAJOR,
	    "version_minor", (json_int_t)ZSNAP_VERSION_MINOR,
	    "page_size", (json_int_t)ZSNAP_PAGE_SIZE,
	    "name", p->name,
	    "pid", (json_int_t)p->pid,
	    "uid", (json_int_t)p->uid,
	    "comm", p->comm,
	    "armed_realtime_ns", (json_int_t)p->armed_realtime_ns,
	    "flags", (json_int_t)(out->pages_lost > 0 ? ZSNAP_F_LOST_PAGES : 0),
	    "pages_total", (json_int_t)out->pages_total,
	    "pages_data", (json_int_t)out->pages_data,
	    "pages_zero", (json_int_t)out->pages_zero,
	    "pages_lost", (json_int_t)out->pages_lost,
	    "regions", regions);
	if (root == NULL)
		fatalx("snapshot %s: building snapshot.json failed", out->name);
	return root;
}

static int
raw_finish(struct output *out, struct output_result *result)
{
	const struct output_params *p = &out->params;
	struct raw_out	*r = out->priv;
	json_t		*root;
	char		*text, file[32];
	int		 fd;

	for (uint32_t i = 0; i < p->region_count; i++) {
		snprintf(file, sizeof(file), "%u.img", i);
		if (fsync(r->regions[i].fd) == -1)
			return raw_fail(out, "fsync", file);
		if (close(r->regions[i].fd) == -1) {
			r->regions[i].fd = -1;
			return raw_fail(out, "close", file);
		}
		r->regions[i].fd = -1;
	}

	root = raw_json(out);
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (text == NULL)
		fatalx("snapshot %s: encoding snapshot.json failed", out->name);
	fd = openat(r->tmpfd, "snapshot.json", O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, p->mode);
	if (fd == -1) {
		free(text);
		return raw_fail(out, "create", "snapshot.json");
	}
	r->json_written = 1;
	if (((p->owner_uid != (uid_t)-1 || p->owner_gid != (gid_t)-1) &&
	    fchown(fd, p->owner_uid, p->owner_gid) == -1) ||
	    sink_write_all(fd, text, strlen(text)) == -1 ||
	    sink_write_all(fd, "\n", 1) == -1 || fsync(fd) == -1) {
		free(text);
		close(fd);
		return raw_fail(out, "write", "snapshot.json");
	}
	r->bytes += strlen(text) + 1;
	free(text);
	if (close(fd) == -1)
		return raw_fail(out, "close", "snapshot.json");
	if (fsync(r->tmpfd) == -1)
		return raw_fail(out, "fsync", ".");

	if (renameat2(r->dirfd, r->tmpname, r->dirfd, r->name,
	    RENAME_NOREPLACE) == -1) {
		output_set_error(out, "rename %s to %s: %s", r->tmpname,
		    r->name, strerror(errno));
		return -1;
	}
	r->renamed = 1;
	if (fsync(r->dirfd) == -1) {
		output_set_error(out, "fsync of the directory of %s: %s",
		    r->name, strerror(errno));
		return -1;
	}
	result->bytes = r->bytes;
	snprintf(result->path, sizeof(result->path), "%s", r->name);
	return 0;
}

static void
raw_close(struct output *out)
{
	const struct output_params *p = &out->params;
	struct raw_out	*r = out->priv;
	char		 file[32];

	if (r == NULL)
		return;
	for (uint32_t i = 0; i < p->region_count; i++) {
		if (r->regions[i].fd != -1)
			close(r->regions[i].fd);
		free(r->regions[i].lost);
	}
	/* Unless it is in place, remove the temporary directory we made. */
	if (!r->renamed && r->tmpfd != -1) {
		for (uint32_t i = 0; i < p->region_count; i++) {
			snprintf(file, sizeof(file), "%u.img", i);
			if (unlinkat(r->tmpfd, file, 0) == -1 && errno != ENOENT)
				log_warn("snapshot %s: remove %s/%s", out->name,
				    r->tmpname, file);
		}
		if (unlinkat(r->tmpfd, "snapshot.json", 0) == -1 &&
		    errno != ENOENT)
			log_warn("snapshot %s: remove %s/snapshot.json",
			    out->name, r->tmpname);
	}
	if (!r->renamed && r->tmpname[0] != '\0' && r->dirfd != -1 &&
	    unlinkat(r->dirfd, r->tmpname, AT_REMOVEDIR) == -1 &&
	    errno != ENOENT)
		log_warn("snapshot %s: remove %s", out->name, r->tmpname);
	if (r->tmpfd != -1)
		close(r->tmpfd);
	if (r->dirfd != -1)
		close(r->dirfd);
	free(r->regions);
	free(r);
	out->priv = NULL;
}

const struct output_format_ops output_raw_ops = {
	.open = raw_open,
	.pages = raw_pages,
	.lost = raw_lost,
	.bytes = raw_bytes,
	.finish = raw_finish,
	.close = raw_close,
};
