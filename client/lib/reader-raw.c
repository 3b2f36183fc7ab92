/*
 * Reading raw snapshots: a NAME.raw directory (proto/FORMAT.md, "raw") of
 * one sparse file per region, "R.img", and snapshot.json describing them.
 *
 * snapshot.json is parsed strictly (every member, the file names exactly
 * "R.img", lost runs sorted and inside their region) and every region file
 * must be a regular file exactly as long as its region.  Coverage holds by
 * construction: the walk hands out every page of every region once, a LOST
 * run as one extent and the rest as runs of DATA and ZERO pages told apart
 * by content.  Holes are skipped with SEEK_DATA/SEEK_HOLE, not read, so a
 * sparse file of a terabyte costs what its data costs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "reader-internal.h"

static int
json_u64(struct snap_file *f, json_t *obj, const char *key, const char *where,
    uint64_t *v)
{
	json_t	*j = json_object_get(obj, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"%s\" is missing "
		    "or not a non-negative integer", where, key);
		return -1;
	}
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int
json_str(struct snap_file *f, json_t *obj, const char *key, const char *where,
    char *dst, size_t len)
{
	json_t	*j = json_object_get(obj, key);

	if (!json_is_string(j) || json_string_length(j) >= len ||
	    strlen(json_string_value(j)) != json_string_length(j)) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"%s\" is missing, "
		    "not a string or longer than %zu bytes", where, key,
		    len - 1);
		return -1;
	}
	memcpy(dst, json_string_value(j), json_string_length(j) + 1);
	return 0;
}

static int
raw_open_region_file(struct snap_file *f, uint32_t i)
{
	char	file[32];
	int	fd;

	snprintf(file, sizeof(file), "%u.img", i);
	fd = openat(f->fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		reader_error(f, errno, "region %u: open %s: %s", i, file,
		    strerror(errno));
	return fd;
}

static int
raw_parse_region(struct snap_file *f, json_t *jr, uint32_t i)
{
	struct snap_file_region	*g = &f->regions[i];
	struct stat		 st;
	json_t			*lost, *pair;
	char			 where[48], file[32], want[32];
	uint64_t		 index, next = 0;
	size_t			 k;
	int			 fd;

	snprintf(where, sizeof(where), "region %u", i);
	if (!json_is_object(jr) || json_u64(f, jr, "index", where, &index) ||
	    json_u64(f, jr, "start", where, &g->start) ||
	    json_u64(f, jr, "length", where, &g->length) ||
	    json_str(f, jr, "name", where, g->name, sizeof(g->name)) ||
	    json_str(f, jr, "file", where, file, sizeof(file))) {
		if (!json_is_object(jr))
			reader_error(f, EBADMSG, "snapshot.json: %s: not an "
			    "object", where);
		return -1;
	}
	snprintf(want, sizeof(want), "%u.img", i);
	if (index != i || strcmp(file, want) != 0) {
		reader_error(f, EBADMSG, "snapshot.json: %s: index %llu and file "
		    "\"%s\", expected %u and \"%s\"", where,
		    (unsigned long long)index, file, i, want);
		return -1;
	}
	if (g->length == 0 || g->length % ZSNAP_PAGE_SIZE != 0 ||
	    g->length > READER_REGION_BYTES_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: %s (%s): length %llu is "
		    "not a positive multiple of the page size below 2^56", where,
		    g->name, (unsigned long long)g->length);
		return -1;
	}
	f->region_pages[i] = g->length / ZSNAP_PAGE_SIZE;

	lost = json_object_get(jr, "lost");
	if (!json_is_array(lost)) {
		reader_error(f, EBADMSG, "snapshot.json: %s: \"lost\" is missing "
		    "or not an array", where);
		return -1;
	}
	if (json_array_size(lost) > 0) {
		f->lost[i] = calloc(json_array_size(lost), sizeof(**f->lost));
		if (f->lost[i] == NULL) {
			reader_error(f, ENOMEM, "cannot allocate %zu lost runs",
			    json_array_size(lost));
			return -1;
		}
	}
	json_array_foreach(lost, k, pair) {
		struct reader_range *l = &f->lost[i][k];
		json_t *a = json_array_get(pair, 0), *b = json_array_get(pair, 1);

		if (!json_is_array(pair) || json_array_size(pair) != 2 ||
		    !json_is_integer(a) || !json_is_integer(b) ||
		    json_integer_value(a) < 0 || json_integer_value(b) <= 0) {
			reader_error(f, EBADMSG, "snapshot.json: %s: lost run %zu "
			    "is not [first, count]", where, k);
			return -1;
		}
		l->first = (uint64_t)json_integer_value(a);
		l->count = (uint64_t)json_integer_value(b);
		if (l->first < next || l->first >= f->region_pages[i] ||
		    l->count > f->region_pages[i] - l->first) {
			reader_error(f, EBADMSG, "snapshot.json: %s: lost run %zu "
			    "(pages %llu+%llu) overlaps another, is out of order "
			    "or outside the region (%llu pages)", where, k,
			    (unsigned long long)l->first,
			    (unsigned long long)l->count,
			    (unsigned long long)f->region_pages[i]);
			return -1;
		}
		next = l->first + l->count;
		f->lost_count[i]++;
	}

	if ((fd = raw_open_region_file(f, i)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		reader_error(f, errno, "region %u: stat %s: %s", i, file,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != g->length) {
		reader_error(f, EBADMSG, "region %u: %s is %s of %llu bytes, "
		    "expected a file of %llu", i, file,
		    S_ISREG(st.st_mode) ? "a file" : "not a regular file",
		    (unsigned long long)st.st_size,
		    (unsigned long long)g->length);
		return -1;
	}
	f->info.file_size += (uint64_t)st.st_size;
	return 0;
}

/*
 * Reads snapshot.json, at most READER_JSON_BYTES_MAX bytes, and parses it
 * into *root, which must be an object; *size is the file's length.
 */
static int
raw_json_load(struct snap_file *f, json_t **root, uint64_t *size)
{
	struct stat	 st;
	json_error_t	 jerr;
	json_t		*doc = NULL;
	char		*text = NULL;
	int		 fd, rc = -1;

	fd = openat(f->fd, "snapshot.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		reader_error(f, errno == ENOENT ? EBADMSG : errno,
		    "open snapshot.json: %s%s", strerror(errno),
		    errno == ENOENT ? " (not a raw snapshot, or an incomplete "
		    "one)" : "");
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > READER_JSON_BYTES_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: not a regular file of "
		    "at most %u bytes", READER_JSON_BYTES_MAX);
		goto out;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %lld bytes",
		    (long long)st.st_size);
		goto out;
	}
	if (reader_pread(f, fd, text, (size_t)st.st_size, 0,
	    "snapshot.json") == -1)
		goto out;
	doc = json_loadb(text, (size_t)st.st_size, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (doc == NULL || !json_is_object(doc)) {
		reader_error(f, EBADMSG, "snapshot.json: line %d: %s",
		    doc ? 1 : jerr.line, doc ? "not an object" : jerr.text);
		goto out;
	}
	*root = doc;
	doc = NULL;
	*size = (uint64_t)st.st_size;
	rc = 0;
out:
	json_decref(doc);
	free(text);
	close(fd);
	return rc;
}

/*
 * The top-level members of snapshot.json: the format and version this
 * reader must know, then the snapshot's description into f->info.
 */
static int
raw_parse_top(struct snap_file *f, json_t *root)
{
	char		format[32];
	uint64_t	major, minor, page_size, v;

	if (json_str(f, root, "format", "top level", format, sizeof(format)) ||
	    json_u64(f, root, "version_major", "top level", &major) ||
	    json_u64(f, root, "version_minor", "top level", &minor) ||
	    json_u64(f, root, "page_size", "top level", &page_size))
		return -1;
	f->info.version_major = (unsigned)major;
	f->info.version_minor = (unsigned)minor;
	if (strcmp(format, "zsnap-raw") != 0 || major != ZSNAP_VERSION_MAJOR ||
	    page_size != ZSNAP_PAGE_SIZE) {
		reader_error(f, ENOTSUP, "snapshot.json: format \"%s\" version "
		    "%llu.%llu, page size %llu: this reader knows \"zsnap-raw\" "
		    "%u.x with %u-byte pages", format, (unsigned long long)major,
		    (unsigned long long)minor, (unsigned long long)page_size,
		    ZSNAP_VERSION_MAJOR, ZSNAP_PAGE_SIZE);
		return -1;
	}
	if (json_str(f, root, "name", "top level", f->info.name,
	    sizeof(f->info.name)) ||
	    json_str(f, root, "comm", "top level", f->info.comm,
	    sizeof(f->info.comm)) ||
	    json_u64(f, root, "armed_realtime_ns", "top level",
	    &f->info.armed_realtime_ns) ||
	    json_u64(f, root, "pages_total", "top level", &f->info.pages_total) ||
	    json_u64(f, root, "pages_data", "top level", &f->info.pages_data) ||
	    json_u64(f, root, "pages_zero", "top level", &f->info.pages_zero) ||
	    json_u64(f, root, "pages_lost", "top level", &f->info.pages_lost))
		return -1;
	if (json_u64(f, root, "pid", "top level", &v))
		return -1;
	f->info.pid = (uint32_t)v;
	if (json_u64(f, root, "uid", "top level", &v))
		return -1;
	f->info.uid = (uint32_t)v;
	if (json_u64(f, root, "flags", "top level", &v))
		return -1;
	f->flags = (uint32_t)v;
	f->process = (f->flags & ZSNAP_F_PROCESS) != 0;
	return 0;
}

/* The "regions" array: 1 to READER_REGIONS_MAX regions, each checked. */
static int
raw_parse_regions(struct snap_file *f, json_t *root)
{
	json_t	*regions, *jr;
	size_t	 i, count;

	regions = json_object_get(root, "regions");
	count = json_array_size(regions);
	if (!json_is_array(regions) || count == 0 || count > READER_REGIONS_MAX) {
		reader_error(f, EBADMSG, "snapshot.json: \"regions\" is not an "
		    "array of 1 to %u regions", READER_REGIONS_MAX);
		return -1;
	}
	f->info.region_count = (uint32_t)count;
	f->regions = calloc(count, sizeof(*f->regions));
	f->region_pages = calloc(count, sizeof(*f->region_pages));
	f->lost = calloc(count, sizeof(*f->lost));
	f->lost_count = calloc(count, sizeof(*f->lost_count));
	if (f->regions == NULL || f->region_pages == NULL || f->lost == NULL ||
	    f->lost_count == NULL) {
		reader_error(f, ENOMEM, "cannot allocate %zu regions", count);
		return -1;
	}
	json_array_foreach(regions, i, jr) {
		if (raw_parse_region(f, jr, (uint32_t)i) == -1)
			return -1;
	}
	return 0;
}

int
reader_raw_open(struct snap_file *f)
{
	json_t		*root = NULL;
	uint64_t	 json_size;
	int		 rc = -1;

	if (raw_json_load(f, &root, &json_size) == -1)
		return -1;
	if (raw_parse_top(f, root) == -1 || raw_parse_regions(f, root) == -1)
		goto out;
	f->info.file_size += json_size;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/*
 * How region file fd lies from page first on, for count pages: *hole pages
 * of hole first (zeros the file system holds no block for), then *data
 * pages that may hold data.  Holes are found with SEEK_DATA/SEEK_HOLE so
 * that they cost nothing to walk; where the file system cannot tell, every
 * page may hold data.  A page only partly in a hole counts as data.
 */
static void
raw_layout(int fd, uint64_t first, uint64_t count, uint64_t *hole,
    uint64_t *data)
{
	const uint64_t	off = first * ZSNAP_PAGE_SIZE;
	off_t		d, h;

	*hole = 0;
	*data = count;
	if ((d = lseek(fd, (off_t)off, SEEK_DATA)) == -1) {
		if (errno == ENXIO) {	/* only hole from off to the end */
			*hole = count;
			*data = 0;
		}
		return;
	}
	if ((uint64_t)d > off)
		*hole = (uint64_t)d / ZSNAP_PAGE_SIZE - first;
	if (*hole >= count) {
		*hole = count;
		*data = 0;
		return;
	}
	*data = count - *hole;
	if ((h = lseek(fd, d, SEEK_HOLE)) != -1 && (uint64_t)h > (uint64_t)d &&
	    ((uint64_t)h + ZSNAP_PAGE_SIZE - 1) / ZSNAP_PAGE_SIZE - first -
	    *hole < *data)
		*data = ((uint64_t)h + ZSNAP_PAGE_SIZE - 1) / ZSNAP_PAGE_SIZE -
		    first - *hole;
}

/*
 * Emit pages [first, first + count) of region i: holes as ZERO extents
 * without reading them, the rest read in batches and split into runs of
 * DATA and ZERO pages by content.
 */
static int
raw_walk_range(struct snap_file *f, int fd, uint32_t i, uint64_t first,
    uint64_t count, reader_cb *cb, void *arg)
{
	const size_t	 batch = READER_RAW_BATCH_PAGES;
	char		 what[48];

	snprintf(what, sizeof(what), "region %u file %u.img", i, i);
	if (reader_reserve(f, (void **)&f->data, &f->data_cap,
	    batch * ZSNAP_PAGE_SIZE) == -1)
		return -1;
	while (count > 0) {
		uint64_t	hole, data;
		size_t		n, k = 0;

		raw_layout(fd, first, count, &hole, &data);
		if (hole > 0) {
			struct reader_extent e = { i, ZSNAP_EXTENT_ZERO, first,
			    hole };

			if (cb(f, arg, NO_CHUNK, &e, NULL) == -1)
				return -1;
			first += hole;
			count -= hole;
			continue;
		}
		n = data < batch ? (size_t)data : batch;
		if (reader_pread(f, fd, f->data, n * ZSNAP_PAGE_SIZE,
		    first * ZSNAP_PAGE_SIZE, what) == -1)
			return -1;
		/* Group the batch into runs of DATA and ZERO pages. */
		while (k < n) {
			struct reader_extent	 e;
			size_t			 run = k;
			int			 zero;
			const unsigned char	*pg;

			pg = f->data + k * ZSNAP_PAGE_SIZE;
			zero = zsnap_page_is_zero(pg);
			do {
				run++;
				pg = f->data + run * ZSNAP_PAGE_SIZE;
			} while (run < n && zsnap_page_is_zero(pg) == zero);
			e.region = i;
			e.kind = zero ? ZSNAP_EXTENT_ZERO : ZSNAP_EXTENT_DATA;
			e.first = first + k;
			e.count = run - k;
			if (cb(f, arg, NO_CHUNK, &e, zero ? NULL :
			    f->data + k * ZSNAP_PAGE_SIZE) == -1)
				return -1;
			k = run;
		}
		first += n;
		count -= n;
	}
	return 0;
}

int
reader_raw_walk(struct snap_file *f, uint32_t region, uint64_t first,
    uint64_t count, reader_cb *cb, void *arg)
{
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		uint64_t	page, last;
		int		fd;

		if (region != ALL_REGIONS && region != i)
			continue;
		page = first < f->region_pages[i] ? first : f->region_pages[i];
		last = count < f->region_pages[i] - page ? page + count :
		    f->region_pages[i];
		if ((fd = raw_open_region_file(f, i)) == -1)
			return -1;
		for (size_t k = 0; k <= f->lost_count[i]; k++) {
			uint64_t end = k < f->lost_count[i] ?
			    f->lost[i][k].first : last;
			struct reader_extent e;

			if (end > last)
				end = last;
			if (end > page && raw_walk_range(f, fd, i, page,
			    end - page, cb, arg) == -1) {
				close(fd);
				return -1;
			}
			if (k == f->lost_count[i] || f->lost[i][k].first >= last)
				break;
			e.region = i;
			e.kind = ZSNAP_EXTENT_LOST;
			e.first = f->lost[i][k].first;
			e.count = f->lost[i][k].count;
			if (e.first + e.count > page &&
			    cb(f, arg, NO_CHUNK, &e, NULL) == -1) {
				close(fd);
				return -1;
			}
			if (e.first + e.count > page)
				page = e.first + e.count;
		}
		close(fd);
	}
	return 0;
}
