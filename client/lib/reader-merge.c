/*
 * snap_file_merge(): fold an incremental snapshot's chain into one full
 * zsnap file holding the memory as it was at the newest link's armed
 * instant, so the deltas can go.
 *
 * The pages come from reader_chain_walk() (reader-chain.c), which hands
 * out each page once from the newest link that saved it, as DATA, ZERO or
 * LOST; they go through proto/zsnapwrite.c, the format's one writer that
 * snapd uses too, one chunk at a time.  Memory stays at one chunk (1 MiB
 * and its compressed bound) plus what the walk and the index need, which
 * follow the files' bytes: nothing is sized by a count the file claims.
 *
 * Atomicity as snapd's own files: a temporary ".NAME.tmp-PID" in the
 * target's directory (O_EXCL | O_NOFOLLOW, mode 0600), fsync, renameat2
 * RENAME_NOREPLACE (an existing file is never replaced), fsync of the
 * directory; on any failure the temporary file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "ioutil.h"
#include "reader-internal.h"
#include "zsnapwrite.h"

#define MERGE_LEVEL	3	/* zstd's default level */

struct merge_state {
	const char		*path;
	int			 fd;		/* the temporary file */
	char			 tmpname[NAME_MAX + 1];
	struct zsnapw		 w;
	struct zsnapw_chunk	 chunk;
	ZSTD_CCtx		*cctx;
	int			 cctx_level;
	uint64_t		 pages[3];	/* DATA, ZERO, LOST */
};

static int
merge_write(void *arg, const void *buf, size_t len, char *err, size_t errlen)
{
	struct merge_state	*m = arg;

	if (ioutil_write_all(m->fd, buf, len, -1) == -1) {
		ioutil_set_error(err, errlen, "write %s: %s", m->tmpname,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Compress and write the chunk being filled, if anything is in it. */
static int
merge_flush(struct snap_file *f, struct merge_state *m)
{
	if (m->chunk.extent_count == 0)
		return 0;
	m->chunk.level = MERGE_LEVEL;
	zsnapw_compress(m->cctx, &m->cctx_level, &m->chunk);
	if (zsnapw_chunk_write(&m->w, &m->chunk) == -1) {
		reader_error(f, errno, "merge to %s: %s", m->path,
		    zsnapw_error(&m->w));
		return -1;
	}
	zsnapw_chunk_reset(&m->chunk);
	return 0;
}

static int
merge_apply(struct snap_file *f, void *arg, uint32_t region, uint64_t first,
    uint64_t count, uint32_t kind, const unsigned char *data)
{
	struct merge_state	*m = arg;

	if (kind == ZSNAP_EXTENT_DATA) {
		for (uint64_t i = 0; i < count; i++)
			while (zsnapw_chunk_page(&m->chunk, region, first + i,
			    data + i * ZSNAP_PAGE_SIZE) == ZSNAPW_FULL)
				if (merge_flush(f, m) == -1)
					return -1;
	} else if (kind == ZSNAP_EXTENT_ZERO || kind == ZSNAP_EXTENT_LOST) {
		while (zsnapw_chunk_add(&m->chunk, region, kind, first,
		    count) == ZSNAPW_FULL)
			if (merge_flush(f, m) == -1)
				return -1;
	} else {
		reader_error(f, EPROTO, "merge: region %u pages %llu+%llu "
		    "handed out as kind %u", region, (unsigned long long)first,
		    (unsigned long long)count, kind);
		return -1;
	}
	m->pages[kind] += count;
	return 0;
}

/* Everything between the open temporary file and its footer. */
static int
merge_write_file(struct snap_file *f, struct merge_state *m)
{
	struct zsnapw_region	*regions;
	struct zsnapw_header	 h;
	struct zsnapw_counts	 n;
	uint8_t			*rec = NULL;
	size_t			 reclen = 0;
	uint32_t		 index_crc;
	char			 err[ZSNAPW_ERROR_MAX];
	int			 rc;

	if (zsnapw_chunk_init(&m->chunk, err, sizeof(err)) == -1 ||
	    (m->cctx = zsnapw_cctx_new(MERGE_LEVEL, err, sizeof(err))) ==
	    NULL) {
		reader_error(f, errno, "merge to %s: %s", m->path, err);
		return -1;
	}
	m->cctx_level = MERGE_LEVEL;
	if (f->process && reader_process_load(f, &rec, &reclen) == -1)
		return -1;
	regions = calloc(f->info.region_count > 0 ? f->info.region_count : 1,
	    sizeof(*regions));
	if (regions == NULL) {
		reader_error(f, ENOMEM, "merge: cannot allocate %u regions",
		    f->info.region_count);
		free(rec);
		return -1;
	}
	for (uint32_t i = 0; i < f->info.region_count; i++) {
		regions[i].start = f->regions[i].start;
		regions[i].length = f->regions[i].length;
		regions[i].name = f->regions[i].name;
	}
	memset(&h, 0, sizeof(h));
	h.name = f->format == 0 ? f->raw_name : f->info.name;
	h.pid = f->info.pid;
	h.uid = f->info.uid;
	h.comm = f->info.comm;
	h.armed_realtime_ns = f->info.armed_realtime_ns;
	h.regions = regions;
	h.region_count = f->info.region_count;
	h.procrec = rec;
	h.procrec_len = reclen;
	rc = zsnapw_header(&m->w, &h);
	free(regions);
	free(rec);
	if (rc == -1) {
		reader_error(f, errno, "merge to %s: %s", m->path,
		    zsnapw_error(&m->w));
		return -1;
	}

	if (reader_chain_walk(f, ALL_REGIONS, 0, UINT64_MAX, merge_apply,
	    m) == -1 || merge_flush(f, m) == -1)
		return -1;
	n.pages_total = f->info.pages_total;
	n.pages_data = m->pages[ZSNAP_EXTENT_DATA];
	n.pages_zero = m->pages[ZSNAP_EXTENT_ZERO];
	n.pages_lost = m->pages[ZSNAP_EXTENT_LOST];
	if (n.pages_data + n.pages_zero + n.pages_lost != n.pages_total) {
		reader_error(f, EPROTO, "merge: the chain handed out %llu "
		    "pages of %llu", (unsigned long long)(n.pages_data +
		    n.pages_zero + n.pages_lost),
		    (unsigned long long)n.pages_total);
		return -1;
	}
	if (zsnapw_finish(&m->w, &n, &index_crc) == -1) {
		reader_error(f, errno, "merge to %s: %s", m->path,
		    zsnapw_error(&m->w));
		return -1;
	}
	return 0;
}

int
snap_file_merge(struct snap_file *f, const char *path)
{
	struct merge_state	 m;
	struct stat		 st;
	char			 buf[PATH_MAX];
	const char		*base;
	int			 dirfd, rc = -1, saved;

	if (f == NULL || path == NULL) {
		sc_set_error(NULL, EINVAL, "snap_file_merge: no file or no "
		    "path");
		return -1;
	}
	/* Refused before anything is created. */
	if (reader_check_coverage(f) == -1 || reader_chain_open(f) == -1)
		return -1;
	if ((dirfd = reader_target_dir(f, path, "merge", buf, sizeof(buf),
	    &base)) == -1)
		return -1;
	memset(&m, 0, sizeof(m));
	m.path = path;
	m.fd = -1;
	zsnapw_init(&m.w, f->info.name, merge_write, &m);
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		reader_error(f, EEXIST, "merge: %s already exists (it is never "
		    "replaced)", path);
		goto out;
	}
	if (snprintf(m.tmpname, sizeof(m.tmpname), ".%s.tmp-%ld", base,
	    (long)getpid()) >= (int)sizeof(m.tmpname)) {
		reader_error(f, ENAMETOOLONG, "merge: %s: name too long", path);
		goto out;
	}
	m.fd = openat(dirfd, m.tmpname, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (m.fd == -1) {
		reader_error(f, errno, "merge: create %s beside %s: %s",
		    m.tmpname, path, strerror(errno));
		goto out;
	}
	if (merge_write_file(f, &m) == -1)
		goto out;
	if (fsync(m.fd) == -1) {
		reader_error(f, errno, "merge: fsync %s: %s", m.tmpname,
		    strerror(errno));
		goto out;
	}
	if (renameat2(dirfd, m.tmpname, dirfd, base, RENAME_NOREPLACE) == -1) {
		reader_error(f, errno, "merge: rename %s to %s: %s", m.tmpname,
		    path, strerror(errno));
		goto out;
	}
	m.tmpname[0] = '\0';	/* in place: nothing to remove now */
	if (fsync(dirfd) == -1) {
		reader_error(f, errno, "merge: fsync the directory of %s: %s",
		    path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	if (m.fd != -1)
		close(m.fd);
	if (rc == -1 && m.tmpname[0] != '\0' && m.fd != -1)
		unlinkat(dirfd, m.tmpname, 0);
	zsnapw_chunk_free(&m.chunk);
	zsnapw_free(&m.w);
	ZSTD_freeCCtx(m.cctx);
	close(dirfd);
	errno = saved;
	return rc;
}
