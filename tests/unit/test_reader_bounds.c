/*
 * test_reader_bounds: what a hostile snapshot file can make the reader do.
 *
 * Crafted files, well-formed but for one lie: regions claiming 2^34 or
 * 2^44 pages are judged in bounded memory and time (the coverage check
 * merges extents, it keeps no bitmap sized by the header), and a
 * duplicated extent plus a gap, which add up to the right page count, is
 * refused by restore and export as by verify, before any byte is written.
 * A sparse raw region file of 64 GiB is verified without reading its
 * holes.  A header claiming a process record that is not there is
 * refused at open, and so are parent frames claiming what is not there;
 * a chain of two files of 2^44 pages is followed in bounded memory.  A
 * lazy restore refuses what restore refuses, and maps LOST pages as
 * zeros, counted.  Each reader call is watched for the bytes it reads, its peak
 * memory (and, outside AddressSanitizer, an address space limit) and its
 * time (expect_bounded()).
 *
 * Exit 0 on pass, 1 on the first failure (after saying what was wrong).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "snapclient.h"
#include "zsnap.h"

#include "format-helpers.h"

#define PAGE	ZSNAP_PAGE_SIZE

static char		 tmpdir[] = "/tmp/test_reader_bounds.XXXXXX";

static void
path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}


/* ---- crafted files ------------------------------------------------------ */

struct craft_extent {
	uint32_t	chunk;		/* the chunk holding it; ascending */
	uint32_t	region;
	uint32_t	kind;		/* ZERO or LOST: crafted chunks hold no data */
	uint64_t	first;
	uint64_t	count;
};

static void
put16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

/* A skippable frame header at p, and the crc32c ending its payload. */
static void
craft_frame(unsigned char *p, uint32_t magic, uint32_t payload)
{
	zsnap_put32(p, magic);
	zsnap_put32(p + 4, payload);
	zsnap_put32(p + 8 + payload - 4, crc32c(0, p + 8, payload - 4));
}

/*
 * Write a zsnap file whose region i is pages[i] pages long and whose chunks
 * hold the extents x: every checksum, offset and count right (the footer's
 * page counts are the sums over x), so the file is well-formed in every
 * respect but the one a test is about.  flags go in the header, and the
 * frame (extra_len bytes, or none) right after it.
 */
static void
craft_zsnap_ext(const char *path, const uint64_t *pages, uint32_t nreg,
    const struct craft_extent *x, size_t nx, uint32_t flags,
    const unsigned char *extra, size_t extra_len)
{
	const size_t	 hdr = 8 + sizeof(struct zsnap_header) +
			    nreg * sizeof(struct zsnap_region) + 4 + extra_len;
	uint32_t	 nchunks = nx > 0 ? x[nx - 1].chunk + 1 : 0;
	uint64_t	 kinds[4] = { 0, 0, 0, 0 }, total = 0;
	unsigned char	*buf, *p, *idx, *ft;
	size_t		 len, ilen, k = 0;

	len = hdr + nchunks * (8 + sizeof(struct zsnap_chunk) + 4) +
	    nx * sizeof(struct zsnap_extent) +
	    (ilen = 8 + 8 + nchunks * sizeof(struct zsnap_index_entry) + 4) +
	    ZSNAP_FOOTER_FRAME_SIZE;
	if ((buf = calloc(1, len)) == NULL)
		die("out of memory");
	p = buf + 8;
	memcpy(p, ZSNAP_MAGIC, 8);
	put16(p + offsetof(struct zsnap_header, version_major), 1);
	zsnap_put32(p + offsetof(struct zsnap_header, page_size), PAGE);
	zsnap_put32(p + offsetof(struct zsnap_header, region_count), nreg);
	zsnap_put64(p + offsetof(struct zsnap_header, armed_realtime_ns), 1);
	memcpy(p + offsetof(struct zsnap_header, name), "crafted", 7);
	zsnap_put32(p + offsetof(struct zsnap_header, flags), flags);
	for (uint32_t i = 0; i < nreg; i++) {
		unsigned char *r = p + sizeof(struct zsnap_header) +
		    i * sizeof(struct zsnap_region);

		zsnap_put64(r + offsetof(struct zsnap_region, start),
		    (uint64_t)i << 58);
		zsnap_put64(r + offsetof(struct zsnap_region, length),
		    pages[i] * PAGE);
		snprintf((char *)r + offsetof(struct zsnap_region, name),
		    ZSNAP_NAME_MAX, "r%u", i);
		total += pages[i];
	}
	craft_frame(buf, ZSNAP_FRAME_HEADER, (uint32_t)(hdr - extra_len - 8));
	if (extra_len > 0)
		memcpy(buf + hdr - extra_len, extra, extra_len);

	p = buf + hdr;
	idx = buf + len - ZSNAP_FOOTER_FRAME_SIZE - ilen;
	for (uint32_t c = 0; c < nchunks; c++) {
		unsigned char	*e, *ent = idx + 16 +
				    c * sizeof(struct zsnap_index_entry);
		uint32_t	 n = 0, payload;

		for (e = p + 8 + sizeof(struct zsnap_chunk);
		    k < nx && x[k].chunk == c; k++, n++,
		    e += sizeof(struct zsnap_extent)) {
			zsnap_put32(e + offsetof(struct zsnap_extent, region),
			    x[k].region);
			zsnap_put32(e + offsetof(struct zsnap_extent, kind), x[k].kind);
			zsnap_put64(e + offsetof(struct zsnap_extent, first_page),
			    x[k].first);
			zsnap_put64(e + offsetof(struct zsnap_extent, page_count),
			    x[k].count);
			kinds[x[k].kind] += x[k].count;
		}
		payload = (uint32_t)(sizeof(struct zsnap_chunk) +
		    n * sizeof(struct zsnap_extent) + 4);
		zsnap_put32(p + 8 + offsetof(struct zsnap_chunk, seq), c);
		zsnap_put32(p + 8 + offsetof(struct zsnap_chunk, extent_count), n);
		craft_frame(p, ZSNAP_FRAME_CHUNK, payload);
		zsnap_put64(ent + offsetof(struct zsnap_index_entry, offset),
		    (uint64_t)(p - buf));
		zsnap_put64(ent + offsetof(struct zsnap_index_entry, length),
		    8 + payload);
		zsnap_put32(ent + offsetof(struct zsnap_index_entry, seq), c);
		zsnap_put32(ent + offsetof(struct zsnap_index_entry, extent_count), n);
		zsnap_put32(ent + offsetof(struct zsnap_index_entry, chunk_crc),
		    zsnap_get32(p + 8 + payload - 4));
		p += 8 + payload;
	}
	zsnap_put64(idx + 8, nchunks);
	craft_frame(idx, ZSNAP_FRAME_INDEX, (uint32_t)(ilen - 8));

	ft = buf + len - ZSNAP_FOOTER_FRAME_SIZE;
	zsnap_put32(ft, ZSNAP_FRAME_FOOTER);
	zsnap_put32(ft + 4, sizeof(struct zsnap_footer));
	ft += 8;
	memcpy(ft, ZSNAP_FOOTER_MAGIC, 8);
	zsnap_put64(ft + offsetof(struct zsnap_footer, index_offset),
	    (uint64_t)(idx - buf));
	zsnap_put64(ft + offsetof(struct zsnap_footer, index_length), ilen);
	zsnap_put64(ft + offsetof(struct zsnap_footer, chunk_count), nchunks);
	zsnap_put64(ft + offsetof(struct zsnap_footer, pages_total), total);
	zsnap_put64(ft + offsetof(struct zsnap_footer, pages_data), kinds[0]);
	zsnap_put64(ft + offsetof(struct zsnap_footer, pages_zero), kinds[1]);
	zsnap_put64(ft + offsetof(struct zsnap_footer, pages_lost), kinds[2]);
	zsnap_put32(ft + offsetof(struct zsnap_footer, flags),
	    kinds[2] > 0 ? ZSNAP_F_LOST_PAGES : 0);
	zsnap_put32(ft + offsetof(struct zsnap_footer, crc),
	    crc32c(0, ft, offsetof(struct zsnap_footer, crc)));
	write_all(path, buf, len);
	free(buf);
}

static void
craft_zsnap(const char *path, const uint64_t *pages, uint32_t nreg,
    const struct craft_extent *x, size_t nx)
{
	craft_zsnap_ext(path, pages, nreg, x, nx, 0, NULL, 0);
}

static long
maxrss_kib(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Bytes this process has read with read(2) and pread(2) so far. */
static unsigned long long
read_bytes(void)
{
	unsigned long long	 n = 0;
	char			 line[128];
	FILE			*io = fopen("/proc/self/io", "r");

	if (io == NULL)
		die("open /proc/self/io: %s", strerror(errno));
	while (fgets(line, sizeof(line), io) != NULL)
		if (sscanf(line, "rchar: %llu", &n) == 1)
			break;
	fclose(io);
	return n;
}

static double
now_seconds(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Open and verify a crafted file whose regions claim far more pages than
 * it holds bytes.  want is NULL when verify must accept, else a piece of
 * the message it must fail with.  The reader may read at most 16 MiB (a
 * sparse raw region file read page by page would be 64 GiB) and its memory
 * may not grow by more than 64 MiB whatever the header claims (a per-page
 * bitmap of these regions would take 2 GiB): checked with the peak RSS, and
 * outside
 * AddressSanitizer (which reserves terabytes of shadow) with an address
 * space limit too, so that a reader allocating by the header's claim fails
 * here rather than taking the machine's memory.  The time limit is only a
 * safety net, generous for a loaded machine.
 */
static void
expect_bounded(const char *what, const char *path, const char *want)
{
	struct snap_file	*f;
	long			 rss = maxrss_kib();
	unsigned long long	 read0 = read_bytes();
	double			 t0 = now_seconds(), dt;
	int			 rc = -1;
#ifndef __SANITIZE_ADDRESS__
	struct rlimit		 old, lim;
	unsigned long		 vm_pages = 0;
	FILE			*statm = fopen("/proc/self/statm", "r");

	if (statm == NULL || fscanf(statm, "%lu", &vm_pages) != 1)
		die("read /proc/self/statm: %s", strerror(errno));
	fclose(statm);
	if (getrlimit(RLIMIT_AS, &old) == -1)
		die("getrlimit: %s", strerror(errno));
	lim = old;
	lim.rlim_cur = vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
	if (setrlimit(RLIMIT_AS, &lim) == -1)
		die("setrlimit: %s", strerror(errno));
#endif
	if ((f = snap_file_open(path)) != NULL) {
		rc = snap_file_verify(f);
		snap_file_close(f);
	}
#ifndef __SANITIZE_ADDRESS__
	setrlimit(RLIMIT_AS, &old);
#endif
	dt = now_seconds() - t0;
	if (want == NULL && rc == -1)
		fail("%s: rejected: %s", what, snap_strerror(NULL));
	else if (want != NULL && rc == 0)
		fail("%s: verify accepted it", what);
	else if (want != NULL && strstr(snap_strerror(NULL), want) == NULL)
		fail("%s: expected a message with \"%s\", got \"%s\"", what, want,
		    snap_strerror(NULL));
	else if (want != NULL)
		printf("ok: %s rejected in %.3f s: %s\n", what, dt,
		    snap_strerror(NULL));
	else
		printf("ok: %s verified in %.3f s\n", what, dt);
	if (read_bytes() - read0 > 16u << 20)
		fail("%s: the reader read %llu MiB", what,
		    (read_bytes() - read0) >> 20);
	if (maxrss_kib() - rss > 64 * 1024)
		fail("%s: the reader's peak memory grew by %ld MiB", what,
		    (maxrss_kib() - rss) / 1024);
	if (dt > 20)
		fail("%s: took %.1f s", what, dt);
}

/* Regions of 2^32 and 2^44 pages described by a few hundred bytes. */
static void
test_huge_claims(void)
{
	static const uint64_t four[4] = { 1ull << 32, 1ull << 32, 1ull << 32,
	    1ull << 32 };
	static const uint64_t one[1] = { 1ull << 44 };
	static const struct craft_extent twice[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 1ull << 32 },
		{ 0, 1, ZSNAP_EXTENT_ZERO, 0, 1ull << 32 },
		{ 0, 2, ZSNAP_EXTENT_LOST, 0, 1ull << 32 },
		{ 1, 3, ZSNAP_EXTENT_ZERO, 0, (1ull << 32) - 2 },
		{ 1, 3, ZSNAP_EXTENT_ZERO, (1ull << 32) - 3, 1 },
	};
	static const struct craft_extent gap[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 1ull << 32 },
		{ 0, 1, ZSNAP_EXTENT_ZERO, 0, 1ull << 32 },
		{ 1, 2, ZSNAP_EXTENT_ZERO, 1, (1ull << 32) - 1 },
		{ 2, 3, ZSNAP_EXTENT_ZERO, 0, 1ull << 32 },
	};
	static const struct craft_extent zeros[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 1ull << 43 },
		{ 1, 0, ZSNAP_EXTENT_ZERO, 1ull << 43, 1ull << 43 },
	};
	char	path[8192];

	path_of(path, sizeof(path), "huge-twice.zsnap");
	craft_zsnap(path, four, 4, twice, 5);
	expect_bounded("2^34 pages claimed, the last region's page covered "
	    "twice", path, "region 3 page 4294967293: covered twice (both in "
	    "chunk 1)");

	path_of(path, sizeof(path), "huge-gap.zsnap");
	craft_zsnap(path, four, 4, gap, 4);
	expect_bounded("2^34 pages claimed, one page never covered", path,
	    "region 2 page 0: not covered by any extent (pages 0 to 0 "
	    "missing)");

	/* Legitimate: zero runs describe many pages in few bytes. */
	path_of(path, sizeof(path), "huge-zeros.zsnap");
	craft_zsnap(path, one, 1, zeros, 2);
	expect_bounded("2^44 zero pages in two runs", path, NULL);
}

/*
 * A raw snapshot's region file is sparse, its holes zero pages: a 64 GiB
 * file holding one page of data must verify without reading the holes.
 */
static void
test_raw_sparse(void)
{
	const uint64_t	 len = 1ull << 36, pages = len / PAGE;
	unsigned char	 page[PAGE];
	char		 dir[8192], file[8300], json[1024];
	int		 fd;

	path_of(dir, sizeof(dir), "sparse.raw");
	if (mkdir(dir, 0700) == -1)
		die("mkdir %s: %s", dir, strerror(errno));
	snprintf(file, sizeof(file), "%s/0.img", dir);
	memset(page, 0x5a, sizeof(page));
	if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1 ||
	    ftruncate(fd, (off_t)len) == -1 ||
	    pwrite(fd, page, PAGE, (off_t)(len / 2)) != PAGE || close(fd) == -1)
		die("write %s: %s", file, strerror(errno));
	snprintf(json, sizeof(json), "{\"format\": \"zsnap-raw\", "
	    "\"version_major\": 1, \"version_minor\": 0, \"page_size\": %u, "
	    "\"name\": \"sparse\", \"pid\": 1, \"uid\": 0, \"comm\": \"x\", "
	    "\"armed_realtime_ns\": 1, \"flags\": 0, \"pages_total\": %llu, "
	    "\"pages_data\": 1, \"pages_zero\": %llu, \"pages_lost\": 0, "
	    "\"regions\": [{\"index\": 0, \"start\": 0, \"length\": %llu, "
	    "\"name\": \"r0\", \"file\": \"0.img\", \"lost\": []}]}\n", PAGE,
	    (unsigned long long)pages, (unsigned long long)pages - 1,
	    (unsigned long long)len);
	snprintf(file, sizeof(file), "%s/snapshot.json", dir);
	write_all(file, (const unsigned char *)json, strlen(json));
	expect_bounded("a raw region file of 64 GiB, one page of data", dir,
	    NULL);
}

/*
 * A page covered twice and another never: the page count adds up, so a
 * reader that only counts "restores" it and leaves the gap's memory as it
 * was.  Restore and export must refuse the file, as verify does, before
 * writing anything, whichever region is asked for.
 */
static void
test_restore_coverage(void)
{
	static const uint64_t pages[2] = { 4, 2 };
	static const struct craft_extent x[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 2 },
		{ 0, 1, ZSNAP_EXTENT_ZERO, 0, 2 },
		{ 1, 0, ZSNAP_EXTENT_ZERO, 0, 1 },	/* page 0 again */
		{ 1, 0, ZSNAP_EXTENT_ZERO, 3, 1 },	/* page 2 never */
	};
	const char		*want = "dup-gap.zsnap: region 0 page 0: "
				    "covered twice (chunks 0 and 1)";
	unsigned char		 mem[4 * PAGE];
	char			 path[8192], dir[8192];
	struct snap_file	*f;
	struct stat		 st;

	path_of(path, sizeof(path), "dup-gap.zsnap");
	path_of(dir, sizeof(dir), "dup-gap.raw");
	craft_zsnap(path, pages, 2, x, 4);
	if ((f = snap_file_open(path)) == NULL)
		die("open %s: %s", path, snap_strerror(NULL));
	for (uint32_t r = 0; r < 2; r++) {
		memset(mem, 0xAA, sizeof(mem));
		errno = 0;
		if (snap_file_restore(f, r, mem, sizeof(mem), NULL) == 0)
			fail("duplicate extent and gap: region %u restored", r);
		else if (errno != EBADMSG ||
		    strstr(snap_strerror(NULL), want) == NULL)
			fail("duplicate extent and gap: restore of region %u: "
			    "errno %d, message \"%s\", expected EBADMSG and "
			    "\"%s\"", r, errno, snap_strerror(NULL), want);
		else
			printf("ok: restore of region %u refused: %s\n", r,
			    snap_strerror(NULL));
		if (mem[0] != 0xAA || memcmp(mem, mem + 1, sizeof(mem) - 1))
			fail("duplicate extent and gap: restore of region %u "
			    "wrote memory before refusing", r);
	}
	for (uint32_t r = 0; r < 2; r++) {
		errno = 0;
		if (snap_file_restore_lazy(f, r, NULL, 0, 0) != NULL)
			fail("duplicate extent and gap: region %u restored "
			    "lazily", r);
		else if (errno != EBADMSG ||
		    strstr(snap_strerror(NULL), want) == NULL)
			fail("duplicate extent and gap: lazy restore of region "
			    "%u: errno %d, message \"%s\", expected EBADMSG and "
			    "\"%s\"", r, errno, snap_strerror(NULL), want);
	}
	if (snap_file_export_raw(f, dir) == 0)
		fail("duplicate extent and gap: exported");
	else if (strstr(snap_strerror(NULL), want) == NULL)
		fail("duplicate extent and gap: export: \"%s\", expected \"%s\"",
		    snap_strerror(NULL), want);
	if (stat(dir, &st) == 0)
		fail("duplicate extent and gap: export left %s", dir);
	snap_file_close(f);
	expect_rejected("duplicate extent and gap", path, want);
}

/*
 * Lazy restore of ZERO and LOST pages: a LOST page's content is unknown,
 * and a lazy restore maps it as zeros (it cannot leave the caller's bytes,
 * which it discards so that every page faults) and counts it.  Both with
 * the sweep and, touching a LOST page first, without.
 */
static void
test_lazy_lost(void)
{
	static const uint64_t pages[1] = { 64 };
	static const struct craft_extent x[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 10 },
		{ 0, 0, ZSNAP_EXTENT_LOST, 10, 10 },
		{ 1, 0, ZSNAP_EXTENT_ZERO, 20, 44 },
	};
	struct snap_lazy_stats	 st;
	struct snap_lazy	*l;
	struct snap_file	*f;
	unsigned char		*mem;
	char			 path[8192];

	path_of(path, sizeof(path), "lost.zsnap");
	craft_zsnap(path, pages, 1, x, 3);
	if ((f = snap_file_open(path)) == NULL)
		die("open %s: %s", path, snap_strerror(NULL));
	mem = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	for (unsigned flags = 0; flags <= SNAP_LAZY_NO_SWEEP; flags++) {
		memset(mem, 0xAA, 64 * PAGE);
		if ((l = snap_file_restore_lazy(f, 0, mem, 64 * PAGE,
		    flags)) == NULL)
			die("lazy restore of %s: %s", path, snap_strerror(NULL));
		if (mem[15 * PAGE] != 0)
			fail("lazy restore: LOST page 15 reads %#x, not zero",
			    mem[15 * PAGE]);
		if (snap_lazy_close(l, &st) == -1)
			die("snap_lazy_close: %s", snap_strerror(NULL));
		for (size_t i = 0; i < 64 * PAGE; i++) {
			if (mem[i] != 0) {
				fail("lazy restore (flags %u): byte %zu is %#x, "
				    "not zero", flags, i, mem[i]);
				break;
			}
		}
		if (!st.complete || st.pages_present != 64 ||
		    st.pages_lost != 10 ||
		    st.pages_faulted + st.pages_swept != 64)
			fail("lazy restore (flags %u): complete %d, %llu pages "
			    "present, %llu lost, %llu faulted + %llu swept; "
			    "expected 64, 10 lost, 64 filled", flags,
			    st.complete, (unsigned long long)st.pages_present,
			    (unsigned long long)st.pages_lost,
			    (unsigned long long)st.pages_faulted,
			    (unsigned long long)st.pages_swept);
		else
			printf("ok: lazy restore (flags %u): LOST pages read "
			    "zero, 10 counted\n", flags);
	}
	munmap(mem, 64 * PAGE);
	snap_file_close(f);
}

/* The header says a process frame follows it, but a chunk does. */
static void
test_process_claim(void)
{
	static const uint64_t pages[1] = { 4 };
	static const struct craft_extent zero[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 4 },
	};
	unsigned char	*buf;
	size_t		 len;
	char		 path[8192];

	path_of(path, sizeof(path), "process-claimed.zsnap");
	craft_zsnap(path, pages, 1, zero, 1);
	buf = read_all(path, &len);
	zsnap_put32(buf + 8 + offsetof(struct zsnap_header, flags),
	    ZSNAP_F_PROCESS);
	craft_frame(buf, ZSNAP_FRAME_HEADER, zsnap_get32(buf + 4));
	write_all(path, buf, len);
	free(buf);
	expect_bounded("a process record claimed but not there", path,
	    "process frame at offset 244: the header says there is one, but "
	    "there is none");
}

/*
 * A parent frame for craft_zsnap_ext(): a link to file, "crafted" armed
 * at 1 (what craft_zsnap writes) with index_crc, at depth, claiming
 * whole_count ranges of which it holds nwhole (each region 0, page 0, one
 * page, reason 1); the frame's size field says size (0: its real size).
 */
static unsigned char *
craft_parent(const char *file, uint32_t index_crc, uint32_t depth,
    uint32_t whole_count, uint32_t nwhole, uint32_t size, size_t *len)
{
	uint32_t	 payload = (uint32_t)(sizeof(struct zsnap_parent) +
			    nwhole * sizeof(struct zsnap_whole) + 4);
	unsigned char	*buf = calloc(1, 8 + payload), *p = buf + 8;

	if (buf == NULL)
		die("out of memory");
	memcpy(p, "crafted", 7);
	snprintf((char *)p + offsetof(struct zsnap_parent, file),
	    ZSNAP_PARENT_FILE_MAX, "%s", file);
	zsnap_put64(p + offsetof(struct zsnap_parent, armed_realtime_ns), 1);
	zsnap_put32(p + offsetof(struct zsnap_parent, index_crc), index_crc);
	zsnap_put32(p + offsetof(struct zsnap_parent, depth), depth);
	zsnap_put32(p + offsetof(struct zsnap_parent, whole_count), whole_count);
	for (uint32_t i = 0; i < nwhole; i++) {
		unsigned char *w = p + sizeof(struct zsnap_parent) +
		    i * sizeof(struct zsnap_whole);

		zsnap_put32(w + offsetof(struct zsnap_whole, reason), 1);
		zsnap_put64(w + offsetof(struct zsnap_whole, page_count), 1);
	}
	craft_frame(buf, ZSNAP_FRAME_PARENT, payload);
	if (size != 0)
		zsnap_put32(buf + 4, size);
	*len = 8 + payload;
	return buf;
}

/*
 * Incremental files: a parent frame claiming what is not there is refused
 * before anything is allocated for it, as are PARENT pages without one; a
 * chain of two files whose regions are 2^44 pages, the newer holding them
 * in ten thousand alternating PARENT and ZERO runs, verifies and reads
 * through the chain in bounded memory and time.
 */
static void
test_parent_claims(void)
{
	static const uint64_t one[1] = { 1ull << 44 }, four[1] = { 4 };
	static const struct craft_extent zeros[] = {
		{ 0, 0, ZSNAP_EXTENT_ZERO, 0, 1ull << 44 },
	};
	static const struct craft_extent parent4[] = {
		{ 0, 0, ZSNAP_EXTENT_PARENT, 0, 4 },
	};
	static const struct {
		const char	*what, *file;
		uint32_t	 depth, whole_count, nwhole, size;
		const char	*want;
	} bad[] = {
		{ "a parent frame of 4 GiB claimed", "base.zsnap", 1, 0, 0,
		    0xFFFFFFF0u, "parent frame at offset 244: the header says "
		    "there is one, but there is none of a possible size there "
		    "(magic 0x184d2a55, size 4294967280)" },
		{ "2^32 whole ranges claimed, one there", "base.zsnap", 1,
		    0xFFFFFFFFu, 1, 0, "parent frame at offset 244: 372 bytes "
		    "do not hold 4294967295 whole ranges" },
		{ "a parent named by a path", "../base.zsnap", 1, 0, 0, 0,
		    "parent frame at offset 244: the parent's file is not a "
		    "file name of this directory" },
		{ "a chain 100000 links deep", "base.zsnap", 100000, 0, 0, 0,
		    "depth 100000 (this reader follows chains of 1 to 4096 "
		    "links)" },
	};
	enum { NRUNS = 10000 };
	struct craft_extent *runs;
	struct snap_file *f;
	unsigned char	*frame, *buf, page[2 * PAGE];
	size_t		 len, flen;
	uint32_t	 crc;
	uint64_t	 lost = 1;
	char		 path[8192];

	path_of(path, sizeof(path), "parent-claimed.zsnap");
	craft_zsnap_ext(path, four, 1, zeros, 0, ZSNAP_F_PARENT, NULL, 0);
	expect_bounded("a parent frame claimed but not there", path,
	    "parent frame at offset 244: the header says there is one, but "
	    "there is none");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		frame = craft_parent(bad[i].file, 0, bad[i].depth,
		    bad[i].whole_count, bad[i].nwhole, bad[i].size, &flen);
		path_of(path, sizeof(path), "parent-bad.zsnap");
		craft_zsnap_ext(path, four, 1, parent4, 1, ZSNAP_F_PARENT, frame,
		    flen);
		free(frame);
		expect_bounded(bad[i].what, path, bad[i].want);
		unlink(path);
	}

	path_of(path, sizeof(path), "parent-pages.zsnap");
	craft_zsnap(path, four, 1, parent4, 1);
	expect_bounded("PARENT pages without a parent", path, "extent 0: PARENT "
	    "pages in a snapshot without a parent");

	/* The chain: base.zsnap all zero, delta.zsnap on it. */
	path_of(path, sizeof(path), "base.zsnap");
	craft_zsnap(path, one, 1, zeros, 1);
	buf = read_all(path, &len);
	{
		uint64_t io = zsnap_get64(buf + len - ZSNAP_FOOTER_FRAME_SIZE +
		    8 + offsetof(struct zsnap_footer, index_offset));

		crc = zsnap_get32(buf + io + 8 + zsnap_get32(buf + io + 4) - 4);
	}
	free(buf);
	if ((runs = calloc(NRUNS, sizeof(*runs))) == NULL)
		die("out of memory");
	for (uint32_t i = 0; i < NRUNS; i++) {
		uint64_t step = (1ull << 44) / NRUNS;

		runs[i] = (struct craft_extent){ i / 1000, 0, i % 2 ?
		    ZSNAP_EXTENT_ZERO : ZSNAP_EXTENT_PARENT, i * step,
		    i + 1 < NRUNS ? step : (1ull << 44) - i * step };
	}
	frame = craft_parent("base.zsnap", crc, 1, 0, 0, 0, &flen);
	path_of(path, sizeof(path), "delta.zsnap");
	craft_zsnap_ext(path, one, 1, runs, NRUNS, ZSNAP_F_PARENT, frame, flen);
	free(frame);
	free(runs);
	expect_bounded("a chain of two files of 2^44 pages", path, NULL);

	/* The last page of one run and the first of the next, read. */
	memset(page, 0xAA, sizeof(page));
	if ((f = snap_file_open(path)) == NULL ||
	    snap_file_read(f, 0, (1ull << 44) / NRUNS - 1, 2, page, &lost) == -1)
		fail("read through a chain of 2^44 pages: %s",
		    snap_strerror(NULL));
	else if (!zsnap_page_is_zero(page) || !zsnap_page_is_zero(page + PAGE) ||
	    lost != 0)
		fail("read through a chain of 2^44 pages: not zero");
	else
		printf("ok: two pages read through a chain of 2^44 pages\n");
	snap_file_close(f);
}

int
main(void)
{
	char	cmd[4200];

	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	/* The process is small: expect_bounded() watches its peak memory. */
	test_huge_claims();
	test_raw_sparse();
	test_restore_coverage();
	test_process_claim();
	test_parent_claims();
	test_lazy_lost();

	if (getenv("TEST_KEEP") != NULL) {
		printf("test_reader_bounds: files kept in %s\n", tmpdir);
		return failures > 0;
	}
	if (failures > 0) {
		fprintf(stderr, "test_reader_bounds: %d failures; files kept "
		    "in %s\n", failures, tmpdir);
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_reader_bounds: could not remove %s\n",
		    tmpdir);
	printf("test_reader_bounds: all passed\n");
	return 0;
}
