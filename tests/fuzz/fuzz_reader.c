/*
 * libFuzzer target for the snapshot reader (client/lib/reader*.c): a zsnap
 * file or a raw snapshot directory is the most hostile input snapd's code
 * takes, since anyone can hand `memsnapctl verify` or snap_restore() a file.
 *
 * An input is one of two things:
 *
 *  - a zsnap file (anything not starting with '{'): written to a memfd and
 *    opened through /proc/self/fd/N;
 *  - a raw snapshot (an input starting with '{'): the bytes up to the first
 *    NUL are snapshot.json, the bytes after it fill the region files
 *    "R.img" of a fresh directory, one after the other, each made as long
 *    as snapshot.json says region R is (up to a cap, so a raw input can
 *    describe a valid snapshot; a longer region's file is left missing).
 *
 * Each snapshot is opened, queried (info, every region), verified, and
 * every region no larger than RESTORE_MAX is restored into a bounded buffer.
 * Properties checked besides the sanitizers': every failure comes with a
 * message; a snapshot that verifies restores every region, counts its lost
 * pages as the footer does, and exports as a raw directory that opens,
 * verifies and restores to exactly the same bytes (a differential check of
 * the zsnap and raw readers against each other).
 *
 * A snapshot's process record (snap_file_process(), procrec_decode()) is
 * read too: it must decode whenever the snapshot verifies, and the export
 * must carry the same record.
 *
 * Checksums stop blind mutation at the first frame, so a zsnap input is run
 * twice: as it is, and again with every checksum that its structure makes
 * findable recomputed (footer, header, process frame, parent frame,
 * chunks, index entries' chunk_crc, page data, index), which lets the
 * fuzzer reach the checks behind them.
 *
 * Single-threaded; the reader runs on libFuzzer's thread.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "crc32c.h"
#include "procrec.h"
#include "snapclient.h"
#include "zsnap.h"

/* Regions larger than this are not restored (one buffer of this size). */
#define RESTORE_MAX		(8u << 20)
/* Snapshots whose regions add up to more are not exported. */
#define EXPORT_MAX		(8u << 20)
/* Raw inputs: region files made, and their total size. */
#define RAW_REGIONS_MAX		64
#define RAW_BYTES_MAX		(4u << 20)
/* Page data the checksum fix-up decompresses per chunk. */
#define FIXUP_DATA_MAX		(4u << 20)
/* The byte every restore buffer starts filled with (LOST pages keep it). */
#define FILL_BYTE		0xa5

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int		 fuzz_memfd = -1;
static char		 fuzz_memfd_path[64];
static char		 fuzz_dir[256];		/* scratch directory */
static unsigned char	*fuzz_buf_a;		/* RESTORE_MAX each */
static unsigned char	*fuzz_buf_b;
static unsigned char	*fuzz_fixup_data;	/* FIXUP_DATA_MAX */

static void __attribute__((noreturn, format(printf, 1, 2)))
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_reader: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void *
fuzz_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "fuzz_reader: mmap %zu bytes: %s\n", len,
		    strerror(errno));
		exit(1);
	}
	return p;
}

/* At exit the scratch directory is empty: every input's files are gone. */
static void
fuzz_cleanup(void)
{
	rmdir(fuzz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("FUZZ_SCRATCH");

	if (base == NULL)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/fuzz_reader.XXXXXX", base);
	if (mkdtemp(fuzz_dir) == NULL) {
		fprintf(stderr, "fuzz_reader: mkdtemp %s: %s\n", fuzz_dir,
		    strerror(errno));
		exit(1);
	}
	atexit(fuzz_cleanup);
	if ((fuzz_memfd = memfd_create("fuzz_reader", MFD_CLOEXEC)) == -1) {
		fprintf(stderr, "fuzz_reader: memfd_create: %s\n",
		    strerror(errno));
		exit(1);
	}
	snprintf(fuzz_memfd_path, sizeof(fuzz_memfd_path), "/proc/self/fd/%d",
	    fuzz_memfd);
	fuzz_buf_a = fuzz_map(RESTORE_MAX);
	fuzz_buf_b = fuzz_map(RESTORE_MAX);
	fuzz_fixup_data = fuzz_map(FIXUP_DATA_MAX);
	return 0;
}

static void
fuzz_write_all(int fd, const void *buf, size_t len, const char *what)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "fuzz_reader: write %s: %s\n", what,
			    n < 0 ? strerror(errno) : "wrote nothing");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

/* A failing reader call must leave errno and a message saying why. */
static void
fuzz_check_failure(const char *call, int saved)
{
	const char *msg = snap_strerror(NULL);

	if (saved == 0)
		fuzz_fail("%s failed without setting errno (message: %s)",
		    call, msg);
	if (msg == NULL || msg[0] == '\0')
		fuzz_fail("%s failed without a message", call);
}

/* Remove a raw directory made by the harness or by an export. */
static void
fuzz_remove_raw(const char *dir, uint32_t regions)
{
	char path[512];

	for (uint32_t i = 0; i < regions; i++) {
		snprintf(path, sizeof(path), "%s/%u.img", dir, i);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", dir, ZSNAP_RAW_PROCESS);
	unlink(path);
	if (rmdir(dir) == -1 && errno != ENOENT) {
		fprintf(stderr, "fuzz_reader: rmdir %s: %s\n", dir,
		    strerror(errno));
		exit(1);
	}
}

/*
 * Restore region i of f into buf (filled with FILL_BYTE first).  Returns
 * what snap_file_restore() returned; *lost gets the lost pages.
 */
static int
fuzz_restore(struct snap_file *f, uint32_t i, uint64_t length,
    unsigned char *buf, uint64_t *lost)
{
	memset(buf, FILL_BYTE, (size_t)length);
	*lost = 0;
	return snap_file_restore(f, i, buf, (size_t)length, lost);
}

/*
 * The process record of f: 1 with *buf its encoding (malloc'ed), 0 if
 * there is none, -1 if it does not decode (with a message).
 */
static int
fuzz_process(struct snap_file *f, uint8_t **buf, size_t *len)
{
	struct procrec	rec;
	int		rc;

	*buf = NULL;
	errno = 0;
	if ((rc = snap_file_process(f, &rec)) == -1) {
		fuzz_check_failure("snap_file_process", errno);
		return -1;
	}
	if (rc == 1 && procrec_encode(&rec, buf, len) == -1)
		fuzz_fail("a decoded process record does not encode: %s",
		    strerror(errno));
	procrec_free(&rec);
	return rc;
}

/* The export carries the same process record as f, or none as f. */
static void
fuzz_export_process(struct snap_file *f, struct snap_file *x)
{
	uint8_t	*a, *b;
	size_t	 alen = 0, blen = 0;
	int	 ra = fuzz_process(f, &a, &alen), rb = fuzz_process(x, &b, &blen);

	if (ra != rb || (ra == 1 && (alen != blen || memcmp(a, b, alen) != 0)))
		fuzz_fail("the raw export's process record differs (%d/%d)",
		    ra, rb);
	free(a);
	free(b);
}

/*
 * A snapshot that verified: export it as raw, and the raw copy must open,
 * verify, say the same, carry the same process record and restore to the
 * same bytes.
 */
static void
fuzz_export_compare(struct snap_file *f, const struct snap_file_info *info)
{
	struct snap_file_info	 xinfo;
	struct snap_file_region	 r, xr;
	struct snap_file	*x;
	uint64_t		 lost_a, lost_b;
	char			 dir[512];
	static unsigned		 seq;

	snprintf(dir, sizeof(dir), "%s/export-%u.raw", fuzz_dir, seq++);
	if (snap_file_export_raw(f, dir) == -1)
		fuzz_fail("export of a verified snapshot failed: %s",
		    snap_strerror(NULL));
	if ((x = snap_file_open(dir)) == NULL)
		fuzz_fail("the raw export of a verified snapshot does not "
		    "open: %s", snap_strerror(NULL));
	if (snap_file_verify(x) == -1)
		fuzz_fail("the raw export of a verified snapshot does not "
		    "verify: %s", snap_strerror(NULL));
	if (snap_file_info(x, &xinfo) == -1)
		fuzz_fail("snap_file_info on the export: %s",
		    snap_strerror(NULL));
	if (xinfo.region_count != info->region_count ||
	    xinfo.pages_total != info->pages_total ||
	    xinfo.pages_data + xinfo.pages_zero !=
	    info->pages_data + info->pages_zero ||
	    xinfo.pages_lost != info->pages_lost ||
	    xinfo.pid != info->pid || xinfo.uid != info->uid ||
	    xinfo.armed_realtime_ns != info->armed_realtime_ns ||
	    strcmp(xinfo.name, info->name) != 0 ||
	    strcmp(xinfo.comm, info->comm) != 0)
		fuzz_fail("the raw export describes another snapshot: regions "
		    "%u/%u, pages %llu/%llu, lost %llu/%llu, name '%s'/'%s'",
		    xinfo.region_count, info->region_count,
		    (unsigned long long)xinfo.pages_total,
		    (unsigned long long)info->pages_total,
		    (unsigned long long)xinfo.pages_lost,
		    (unsigned long long)info->pages_lost, xinfo.name,
		    info->name);
	fuzz_export_process(f, x);
	for (uint32_t i = 0; i < info->region_count; i++) {
		if (snap_file_region(f, i, &r) == -1 ||
		    snap_file_region(x, i, &xr) == -1)
			fuzz_fail("region %u of a verified snapshot or its "
			    "export cannot be queried: %s", i,
			    snap_strerror(NULL));
		if (r.start != xr.start || r.length != xr.length ||
		    strcmp(r.name, xr.name) != 0)
			fuzz_fail("region %u differs in the export", i);
		if (fuzz_restore(f, i, r.length, fuzz_buf_a, &lost_a) == -1 ||
		    fuzz_restore(x, i, r.length, fuzz_buf_b, &lost_b) == -1)
			fuzz_fail("region %u of a verified snapshot or its "
			    "export does not restore: %s", i,
			    snap_strerror(NULL));
		if (lost_a != lost_b)
			fuzz_fail("region %u: %llu lost pages, %llu in the "
			    "export", i, (unsigned long long)lost_a,
			    (unsigned long long)lost_b);
		if (memcmp(fuzz_buf_a, fuzz_buf_b, (size_t)r.length) != 0)
			fuzz_fail("region %u restores to other bytes from the "
			    "raw export", i);
	}
	snap_file_close(x);
	fuzz_remove_raw(dir, info->region_count);
}

/* Open, query, verify and restore one snapshot at path. */
static void
fuzz_snapshot(const char *path)
{
	struct snap_file_info	 info;
	struct snap_file_region	 r;
	struct snap_file	*f;
	uint64_t		 lost, lost_sum = 0, bytes = 0;
	int			 verified, all_restored = 1;

	errno = 0;
	if ((f = snap_file_open(path)) == NULL) {
		fuzz_check_failure("snap_file_open", errno);
		return;
	}
	if (snap_file_info(f, &info) == -1)
		fuzz_fail("snap_file_info on an open snapshot: %s",
		    snap_strerror(NULL));
	if (info.region_count == 0)
		fuzz_fail("an open snapshot has no region");
	for (uint32_t i = 0; i < info.region_count; i++) {
		if (snap_file_region(f, i, &r) == -1)
			fuzz_fail("region %u of %u cannot be queried: %s", i,
			    info.region_count, snap_strerror(NULL));
		if (r.length == 0 || r.length % ZSNAP_PAGE_SIZE != 0)
			fuzz_fail("region %u has length %llu", i,
			    (unsigned long long)r.length);
		if (memchr(r.name, '\0', sizeof(r.name)) == NULL)
			fuzz_fail("region %u's name is not terminated", i);
		bytes += r.length;
	}
	if (snap_file_region(f, info.region_count, &r) != -1)
		fuzz_fail("region %u of %u can be queried", info.region_count,
		    info.region_count);

	errno = 0;
	verified = snap_file_verify(f) == 0;
	if (!verified)
		fuzz_check_failure("snap_file_verify", errno);
	{
		uint8_t	*rec;
		size_t	 len;

		if (fuzz_process(f, &rec, &len) == -1 && verified)
			fuzz_fail("a verified snapshot's process record does "
			    "not decode: %s", snap_strerror(NULL));
		free(rec);
	}

	for (uint32_t i = 0; i < info.region_count; i++) {
		snap_file_region(f, i, &r);
		if (r.length > RESTORE_MAX) {
			all_restored = 0;
			continue;
		}
		if (i == 0 && r.length > ZSNAP_PAGE_SIZE) {
			/* Too little memory is refused up front. */
			errno = 0;
			if (snap_file_restore(f, i, fuzz_buf_a,
			    (size_t)r.length - 1, NULL) != -1 || errno != EINVAL)
				fuzz_fail("restore of region 0 (%llu bytes) into "
				    "%llu bytes did not fail with EINVAL",
				    (unsigned long long)r.length,
				    (unsigned long long)r.length - 1);
		}
		errno = 0;
		if (fuzz_restore(f, i, r.length, fuzz_buf_a, &lost) == -1) {
			fuzz_check_failure("snap_file_restore", errno);
			if (verified)
				fuzz_fail("region %u of a verified snapshot "
				    "does not restore: %s", i,
				    snap_strerror(NULL));
			all_restored = 0;
			continue;
		}
		lost_sum += lost;
	}
	if (verified && all_restored && lost_sum != info.pages_lost)
		fuzz_fail("verified snapshot: restore found %llu lost pages, "
		    "the snapshot says %llu", (unsigned long long)lost_sum,
		    (unsigned long long)info.pages_lost);
	if (verified && bytes <= EXPORT_MAX)
		fuzz_export_compare(f, &info);
	snap_file_close(f);
}

/* ---- zsnap inputs -------------------------------------------------------- */

/* Recompute the crc32c of a skippable frame payload of plen bytes at p. */
static void
fixup_payload(unsigned char *p, uint64_t plen)
{
	zsnap_put32(p + plen - 4, crc32c(0, p, (size_t)plen - 4));
}

/*
 * Recompute every checksum of buf that its frames make findable, inner
 * ones first.  Returns 1 if anything changed.
 */
static int
fixup_checksums(unsigned char *buf, size_t n)
{
	const size_t	 fsz = ZSNAP_FOOTER_FRAME_SIZE;
	unsigned char	*ft, *idx, *e;
	uint64_t	 ioff, ilen, ipay, count;
	uint32_t	 before = crc32c(0, buf, n);

	if (n >= 8 && zsnap_get32(buf) == ZSNAP_FRAME_HEADER) {
		uint64_t hp = zsnap_get32(buf + 4);

		if (hp >= 4 && 8 + hp <= n)
			fixup_payload(buf + 8, hp);
		/*
		 * The process frame right after it, if there is one, and
		 * the parent frame after that (or after the header).
		 */
		if (8 + hp + 8 <= n &&
		    zsnap_get32(buf + 8 + hp) == ZSNAP_FRAME_PROCESS) {
			uint64_t pp = zsnap_get32(buf + 8 + hp + 4);

			if (pp >= 4 && 16 + hp + pp <= n)
				fixup_payload(buf + 16 + hp, pp);
			hp += 8 + pp;
		}
		if (8 + hp + 8 <= n &&
		    zsnap_get32(buf + 8 + hp) == ZSNAP_FRAME_PARENT) {
			uint64_t pp = zsnap_get32(buf + 8 + hp + 4);

			if (pp >= 4 && 16 + hp + pp <= n)
				fixup_payload(buf + 16 + hp, pp);
		}
	}
	if (n < fsz)
		return crc32c(0, buf, n) != before;
	ft = buf + n - fsz;
	if (zsnap_get32(ft) != ZSNAP_FRAME_FOOTER ||
	    zsnap_get32(ft + 4) != sizeof(struct zsnap_footer))
		return crc32c(0, buf, n) != before;

	ioff = zsnap_get64(ft + 8 + offsetof(struct zsnap_footer, index_offset));
	ilen = zsnap_get64(ft + 8 + offsetof(struct zsnap_footer, index_length));
	if (ioff < n - fsz && ilen >= 8 + 12 && ilen <= n - fsz - ioff &&
	    zsnap_get32(buf + ioff) == ZSNAP_FRAME_INDEX) {
		idx = buf + ioff;
		ipay = ilen - 8;
		count = zsnap_get64(idx + 8);
		e = idx + 16;
		for (uint64_t k = 0; k < count && e + 32 <= idx + 8 + ipay - 4;
		    k++, e += 32) {
			uint64_t coff = zsnap_get64(e), cpay;
			unsigned char *c;

			if (coff >= n || n - coff < 8 ||
			    zsnap_get32(buf + coff) != ZSNAP_FRAME_CHUNK)
				continue;
			c = buf + coff + 8;
			cpay = zsnap_get32(buf + coff + 4);
			if (cpay < sizeof(struct zsnap_chunk) + 4 ||
			    cpay > n - coff - 8)
				continue;
			{
				uint32_t pages = zsnap_get32(c + 8), fsize = zsnap_get32(c + 12);
				uint64_t zoff = coff + 8 + cpay;
				size_t want = (size_t)pages * ZSNAP_PAGE_SIZE, got;

				if (fsize > 0 && zoff <= n && fsize <= n - zoff &&
				    want <= FIXUP_DATA_MAX) {
					got = ZSTD_decompress(fuzz_fixup_data,
					    want, buf + zoff, fsize);
					if (!ZSTD_isError(got))
						zsnap_put32(c + 16, crc32c(0,
						    fuzz_fixup_data, got));
				}
			}
			fixup_payload(c, cpay);
			zsnap_put32(e + offsetof(struct zsnap_index_entry, chunk_crc),
			    zsnap_get32(c + cpay - 4));
		}
		fixup_payload(idx + 8, ipay);
	}
	zsnap_put32(ft + 8 + offsetof(struct zsnap_footer, crc),
	    crc32c(0, ft + 8, offsetof(struct zsnap_footer, crc)));
	return crc32c(0, buf, n) != before;
}

static void
fuzz_zsnap_file(const unsigned char *data, size_t size)
{
	if (ftruncate(fuzz_memfd, 0) == -1 ||
	    lseek(fuzz_memfd, 0, SEEK_SET) == -1) {
		fprintf(stderr, "fuzz_reader: reset memfd: %s\n",
		    strerror(errno));
		exit(1);
	}
	fuzz_write_all(fuzz_memfd, data, size, "memfd");
	fuzz_snapshot(fuzz_memfd_path);
}

static void
fuzz_zsnap(const uint8_t *data, size_t size)
{
	unsigned char *copy;

	fuzz_zsnap_file(data, size);
	if (size == 0 || (copy = malloc(size)) == NULL)
		return;
	memcpy(copy, data, size);
	if (fixup_checksums(copy, size))
		fuzz_zsnap_file(copy, size);
	free(copy);
}

/* ---- raw inputs ---------------------------------------------------------- */

static void
fuzz_raw(const uint8_t *data, size_t size)
{
	const unsigned char	*nul = memchr(data, '\0', size);
	size_t			 jlen = nul != NULL ? (size_t)(nul - data) : size;
	const unsigned char	*fill = nul != NULL ? nul + 1 : data + size;
	size_t			 left = (size_t)(data + size - fill);
	uint64_t		 total = 0;
	json_t			*root, *regions;
	char			 dir[512], path[600];
	static unsigned		 seq;
	int			 fd;

	snprintf(dir, sizeof(dir), "%s/input-%u.raw", fuzz_dir, seq++);
	if (mkdir(dir, 0700) == -1) {
		fprintf(stderr, "fuzz_reader: mkdir %s: %s\n", dir,
		    strerror(errno));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		fprintf(stderr, "fuzz_reader: create %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
	fuzz_write_all(fd, data, jlen, path);
	close(fd);

	/* The harness's own, lenient reading: only to size the files. */
	root = json_loadb((const char *)data, jlen, 0, NULL);
	regions = json_object_get(root, "regions");
	for (size_t i = 0; i < json_array_size(regions) &&
	    i < RAW_REGIONS_MAX; i++) {
		json_t		*len = json_object_get(json_array_get(regions,
				    i), "length");
		json_int_t	 length = json_integer_value(len);
		size_t		 part;

		if (!json_is_integer(len) || length <= 0 ||
		    (uint64_t)length > RAW_BYTES_MAX - total)
			continue;
		total += (uint64_t)length;
		snprintf(path, sizeof(path), "%s/%zu.img", dir, i);
		if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600)) == -1) {
			fprintf(stderr, "fuzz_reader: create %s: %s\n", path,
			    strerror(errno));
			exit(1);
		}
		part = left < (size_t)length ? left : (size_t)length;
		fuzz_write_all(fd, fill, part, path);
		fill += part;
		left -= part;
		if (ftruncate(fd, (off_t)length) == -1) {
			fprintf(stderr, "fuzz_reader: truncate %s: %s\n", path,
			    strerror(errno));
			exit(1);
		}
		close(fd);
	}
	json_decref(root);

	fuzz_snapshot(dir);
	fuzz_remove_raw(dir, RAW_REGIONS_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == '{')
		fuzz_raw(data, size);
	else
		fuzz_zsnap(data, size);
	return 0;
}
