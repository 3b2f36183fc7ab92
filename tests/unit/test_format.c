/*
 * test_format: the snapshot formats end to end, writer and reader.
 *
 * Writes snapshots through the daemon's output API (output.h) into a
 * mkdtemp directory — random and compressible data pages, zero pages,
 * LOST pages, several regions, pages given out of order one by one (as
 * the fault path does) and in runs (as the writer walk does) — then reads
 * them back with libsnapclient's reader: restore compared byte for byte,
 * export to raw compared, `zstd -t` on the file, verify on the good file
 * and on damaged copies (truncated, a flipped byte in a chunk's compressed
 * data, a damaged index, a flipped header byte, a page covered twice),
 * each rejected with the message that says what and where.  The raw
 * format gets the same round trip.  Also checks CRC-32C and the atomic
 * commit (no temporary left behind, no existing snapshot replaced), and
 * the process record (proto/procrec.h) in both formats: read back, verified,
 * carried over by the export, a damaged one rejected; snap_file_read() of
 * page ranges against what the process held.
 * What a hostile file can make the reader do is test_reader_bounds.c's.
 *
 * Exit 0 on pass, 1 on the first failure (after saying what was wrong).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "output.h"
#include "procrec-sample.h"
#include "snapclient.h"
#include "zsnap.h"

#include "format-helpers.h"

#define PAGE	ZSNAP_PAGE_SIZE
#define NREG	4

static char		 tmpdir[] = "/tmp/test_format.XXXXXX";
static uint64_t		 rng_state;
/* The process record open_output() gives the output, or NULL. */
static const uint8_t	*out_procrec;
static size_t		 out_procrec_len;

struct op {
	uint32_t	region;
	uint64_t	first;
	uint64_t	count;
	int		lost;
};

struct layout {
	struct output_region	 regions[NREG];
	unsigned char		*mem[NREG];	/* what the process held */
	unsigned char		*lost[NREG];	/* 1 per lost page */
	uint64_t		 pages[NREG];
	uint64_t		 n_data, n_zero, n_lost;
	struct op		*ops;
	size_t			 nops;
};

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- crc32c ------------------------------------------------------------- */

static void
test_crc32c(void)
{
	unsigned char	buf[8192];
	uint32_t	a, b;

	if (crc32c(0, "123456789", 9) != 0xE3069283u)
		fail("crc32c(\"123456789\") = %08x, expected e3069283",
		    crc32c(0, "123456789", 9));
	if (crc32c_portable(0, "123456789", 9) != 0xE3069283u)
		fail("crc32c_portable(\"123456789\") = %08x, expected e3069283",
		    crc32c_portable(0, "123456789", 9));
	if (crc32c(0, "", 0) != 0)
		fail("crc32c of nothing is %08x, expected 0", crc32c(0, "", 0));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rng();
	for (int t = 0; t < 200; t++) {
		size_t off = rng() % 64, len = rng() % (sizeof(buf) - 64);
		size_t cut = len ? rng() % len : 0;

		a = crc32c(0, buf + off, len);
		b = crc32c_portable(0, buf + off, len);
		if (a != b)
			fail("crc32c %08x != table-driven %08x (offset %zu, "
			    "length %zu)", a, b, off, len);
		b = crc32c(crc32c(0, buf + off, cut), buf + off + cut, len - cut);
		if (a != b)
			fail("crc32c chained at %zu of %zu: %08x, whole %08x",
			    cut, len, b, a);
	}
}

/* ---- building a snapshot's worth of memory ------------------------------ */

static void
fill_page(unsigned char *p, int kind)
{
	switch (kind) {
	case 0:		/* zero */
		memset(p, 0, PAGE);
		break;
	case 1:		/* random: incompressible */
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t v = rng();

			memcpy(p + i, &v, 8);
		}
		break;
	default:	/* compressible text-like, zero but for one byte */
		memset(p, 0, PAGE);
		p[rng() % PAGE] = (unsigned char)(1 + rng() % 255);
		if (kind == 3)
			for (size_t i = 0; i < PAGE; i++)
				p[i] = (unsigned char)("snapd "[i % 6]);
		break;
	}
}

static void
add_op(struct layout *l, uint32_t region, uint64_t first, uint64_t count,
    int lost)
{
	l->ops = realloc(l->ops, (l->nops + 1) * sizeof(*l->ops));
	if (l->ops == NULL)
		die("out of memory");
	l->ops[l->nops++] = (struct op){ region, first, count, lost };
}

/*
 * heap: 3000 pages, mixed, given in runs of 1..256 in address order;
 * frag: 6000 pages, one in sixteen data, given one by one in random
 *	 order (the fault path) so chunks fill up with extents; two LOST runs;
 * zeros: 64 zero pages, one run; tiny: one data page.
 */
static void
layout_build(struct layout *l)
{
	static const char *const names[NREG] = { "heap", "frag", "zeros", "tiny" };
	static const uint64_t pages[NREG] = { 3000, 6000, 64, 1 };
	uint64_t	*order, n;
	size_t		 first_ops;

	memset(l, 0, sizeof(*l));
	for (uint32_t r = 0; r < NREG; r++) {
		l->pages[r] = pages[r];
		l->regions[r].start = 0x7f0000000000ull + r * 0x10000000ull;
		l->regions[r].length = pages[r] * PAGE;
		snprintf(l->regions[r].name, sizeof(l->regions[r].name), "%s",
		    names[r]);
		l->mem[r] = malloc(pages[r] * PAGE);
		l->lost[r] = calloc(pages[r], 1);
		if (l->mem[r] == NULL || l->lost[r] == NULL)
			die("out of memory");
	}
	for (uint64_t p = 0; p < pages[0]; p++)
		fill_page(l->mem[0] + p * PAGE, (p / 37) % 3 == 0 ? 0 :
		    (int)(1 + rng() % 3));
	for (uint64_t p = 0; p < pages[1]; p++)
		fill_page(l->mem[1] + p * PAGE, p % 16 ? 0 : (int)(1 + rng() % 3));
	for (uint64_t p = 0; p < pages[2]; p++)
		fill_page(l->mem[2] + p * PAGE, 0);
	fill_page(l->mem[3], 1);
	for (uint64_t p = 100; p < 150; p++)
		l->lost[1][p] = 1;
	l->lost[1][2000] = 1;

	for (uint64_t p = 0; p < pages[0];) {
		uint64_t c = 1 + rng() % 256;

		if (c > pages[0] - p)
			c = pages[0] - p;
		add_op(l, 0, p, c, 0);
		p += c;
	}
	order = malloc(pages[1] * sizeof(*order));
	n = 0;
	for (uint64_t p = 0; p < pages[1]; p++)
		if (!l->lost[1][p])
			order[n++] = p;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = rng() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i < n; i++)
		add_op(l, 1, order[i], 1, 0);
	free(order);
	add_op(l, 1, 100, 50, 1);
	add_op(l, 1, 2000, 1, 1);
	add_op(l, 2, 0, 64, 0);
	add_op(l, 3, 0, 1, 0);
	/*
	 * Interleave everything, as fault path and walk interleave, except
	 * that frag's pages below 2000 come first (in their random order):
	 * nearly all zero and scattered, they fill a chunk's extent list
	 * before its data buffer, whatever the seed.
	 */
	first_ops = 0;
	for (size_t i = 0; i < l->nops; i++) {
		if (l->ops[i].region == 1 && !l->ops[i].lost &&
		    l->ops[i].first < 2000) {
			struct op t = l->ops[first_ops];

			l->ops[first_ops++] = l->ops[i];
			l->ops[i] = t;
		}
	}
	for (size_t i = l->nops - 1; i > first_ops; i--) {
		size_t j = first_ops + rng() % (i - first_ops + 1);
		struct op t = l->ops[i];

		l->ops[i] = l->ops[j];
		l->ops[j] = t;
	}
	for (uint32_t r = 0; r < NREG; r++)
		for (uint64_t p = 0; p < pages[r]; p++) {
			const unsigned char *pg = l->mem[r] + p * PAGE;

			if (l->lost[r][p])
				l->n_lost++;
			else if (pg[0] == 0 && !memcmp(pg, pg + 1, PAGE - 1))
				l->n_zero++;
			else
				l->n_data++;
		}
}

static void
layout_free(struct layout *l)
{
	for (uint32_t r = 0; r < NREG; r++) {
		free(l->mem[r]);
		free(l->lost[r]);
	}
	free(l->ops);
}

static struct output *
open_output(struct layout *l, int dirfd, const char *name,
    enum output_format format, int threads)
{
	struct output_params	 p;
	struct output		*out;

	memset(&p, 0, sizeof(p));
	p.dirfd = dirfd;
	p.name = name;
	p.format = format;
	p.level = 3;
	p.threads = threads;
	p.owner_uid = (uid_t)-1;
	p.owner_gid = (gid_t)-1;
	p.mode = 0600;
	p.regions = l->regions;
	p.region_count = NREG;
	p.pid = 4242;
	p.uid = 1000;
	p.comm = "testproc";
	p.armed_realtime_ns = 1700000000123456789ull;
	p.procrec = out_procrec;
	p.procrec_len = out_procrec_len;
	if ((out = output_open(&p)) == NULL)
		die("output_open %s: %s", name, output_open_error());
	return out;
}

/* Save the layout.  skip/dup: give page dup of region 0 twice, skip page skip. */
static void
write_snapshot(struct layout *l, int dirfd, const char *name,
    enum output_format format, int threads, int64_t skip, int64_t dup,
    struct output_result *res)
{
	struct output	*out = open_output(l, dirfd, name, format, threads);

	for (size_t i = 0; i < l->nops; i++) {
		const struct op *o = &l->ops[i];
		int rc;

		if (o->lost)
			rc = output_lost(out, o->region, o->first, o->count);
		else if (o->region == 0 && skip >= 0 &&
		    (uint64_t)skip >= o->first &&
		    (uint64_t)skip < o->first + o->count) {
			/* Give the op minus the skipped page, and dup again. */
			rc = 0;
			if ((uint64_t)skip > o->first)
				rc = output_pages(out, 0, o->first,
				    (uint32_t)(skip - (int64_t)o->first),
				    l->mem[0] + o->first * PAGE);
			if (rc == 0 && (uint64_t)skip + 1 < o->first + o->count)
				rc = output_pages(out, 0, (uint64_t)skip + 1,
				    (uint32_t)(o->first + o->count -
				    (uint64_t)skip - 1),
				    l->mem[0] + ((uint64_t)skip + 1) * PAGE);
			if (rc == 0)
				rc = output_pages(out, 0, (uint64_t)dup, 1,
				    l->mem[0] + (uint64_t)dup * PAGE);
		} else
			rc = output_pages(out, o->region, o->first,
			    (uint32_t)o->count, l->mem[o->region] +
			    o->first * PAGE);
		if (rc == -1)
			die("%s: output op %zu: %s", name, i, output_error(out));
	}
	if (output_bytes(out) == 0)
		fail("%s: output_bytes is 0 after all pages", name);
	if (output_finish(out, res) == -1)
		die("%s: output_finish: %s", name, output_error(out));
	output_close(out);
	if (res->pages_total != l->n_data + l->n_zero + l->n_lost ||
	    res->pages_data != l->n_data || res->pages_zero != l->n_zero ||
	    res->pages_lost != l->n_lost)
		fail("%s: result counts total %llu data %llu zero %llu lost %llu,"
		    " expected %llu %llu %llu %llu", name,
		    (unsigned long long)res->pages_total,
		    (unsigned long long)res->pages_data,
		    (unsigned long long)res->pages_zero,
		    (unsigned long long)res->pages_lost,
		    (unsigned long long)(l->n_data + l->n_zero + l->n_lost),
		    (unsigned long long)l->n_data, (unsigned long long)l->n_zero,
		    (unsigned long long)l->n_lost);
}

/* Restore every region of path and compare with the layout. */
static void
check_restore(struct layout *l, const char *path)
{
	struct snap_file	*f;
	struct snap_file_info	 info;

	if ((f = snap_file_open(path)) == NULL) {
		fail("open %s: %s", path, snap_strerror(NULL));
		return;
	}
	if (snap_file_info(f, &info) == -1)
		fail("info %s: %s", path, snap_strerror(NULL));
	if (info.region_count != NREG || info.pid != 4242 || info.uid != 1000 ||
	    strcmp(info.comm, "testproc") != 0 ||
	    info.armed_realtime_ns != 1700000000123456789ull ||
	    info.pages_data != l->n_data || info.pages_zero != l->n_zero ||
	    info.pages_lost != l->n_lost || info.version_major != 1)
		fail("%s: info does not match what was written (regions %u pid "
		    "%u comm %s data %llu zero %llu lost %llu)", path,
		    info.region_count, info.pid, info.comm,
		    (unsigned long long)info.pages_data,
		    (unsigned long long)info.pages_zero,
		    (unsigned long long)info.pages_lost);
	if (snap_file_verify(f) == -1)
		fail("verify %s: %s", path, snap_strerror(NULL));
	for (uint32_t r = 0; r < NREG; r++) {
		struct snap_file_region	 reg;
		size_t			 len = l->pages[r] * PAGE;
		unsigned char		*buf = malloc(len);
		uint64_t		 lost = 0, want_lost = 0;

		if (snap_file_region(f, r, &reg) == -1 ||
		    reg.start != l->regions[r].start || reg.length != len ||
		    strcmp(reg.name, l->regions[r].name) != 0)
			fail("%s: region %u table entry differs", path, r);
		memset(buf, 0xAA, len);
		if (snap_file_restore(f, r, buf, len, &lost) == -1) {
			fail("restore %s region %u: %s", path, r,
			    snap_strerror(NULL));
			free(buf);
			continue;
		}
		for (uint64_t p = 0; p < l->pages[r]; p++) {
			const unsigned char *got = buf + p * PAGE;

			if (l->lost[r][p]) {
				want_lost++;
				if (got[0] != 0xAA || memcmp(got, got + 1,
				    PAGE - 1) != 0) {
					fail("%s: region %u page %llu is LOST "
					    "but restore wrote it", path, r,
					    (unsigned long long)p);
					break;
				}
			} else if (memcmp(got, l->mem[r] + p * PAGE, PAGE) != 0) {
				fail("%s: region %u page %llu differs after "
				    "restore", path, r, (unsigned long long)p);
				break;
			}
		}
		if (lost != want_lost)
			fail("%s: region %u: restore counted %llu lost pages, "
			    "expected %llu", path, r, (unsigned long long)lost,
			    (unsigned long long)want_lost);
		free(buf);
	}
	/* A buffer too small is refused, not overrun. */
	{
		unsigned char small[PAGE];

		if (snap_file_restore(f, 0, small, sizeof(small), NULL) == 0)
			fail("%s: restore into a one-page buffer succeeded",
			    path);
	}
	snap_file_close(f);

	/* The convenience call, by name. */
	{
		size_t		 len = l->pages[3] * PAGE;
		unsigned char	*buf = calloc(1, len);

		if (snap_restore(path, "tiny", buf, len) == -1)
			fail("snap_restore %s tiny: %s", path,
			    snap_strerror(NULL));
		else if (memcmp(buf, l->mem[3], len) != 0)
			fail("snap_restore %s tiny: content differs", path);
		if (snap_restore(path, "nosuch", buf, len) == 0 ||
		    strstr(snap_strerror(NULL), "no region named") == NULL)
			fail("snap_restore %s nosuch: expected \"no region "
			    "named\", got \"%s\"", path, snap_strerror(NULL));
		free(buf);
	}
}

/* ---- damaged copies ----------------------------------------------------- */

static void
test_damage(const char *good)
{
	unsigned char	*buf;
	size_t		 len;
	char		 path[8192], needle[256];
	const unsigned char *ft, *idx;
	uint64_t	 index_off, chunks, c1_off, c1_payload, frame_off;
	uint32_t	 frame_size;

	buf = read_all(good, &len);
	ft = buf + len - ZSNAP_FOOTER_FRAME_SIZE + ZSNAP_SKIP_HDR_SIZE;
	index_off = zsnap_get64(ft + offsetof(struct zsnap_footer, index_offset));
	chunks = zsnap_get64(ft + offsetof(struct zsnap_footer, chunk_count));
	if (chunks < 3)
		die("%s has %llu chunks; the layout should need more than 2",
		    good, (unsigned long long)chunks);
	idx = buf + index_off + ZSNAP_SKIP_HDR_SIZE + 8;

	/* Both flush rules were exercised: a full data buffer, a full
	 * extent list. */
	{
		uint32_t max_extents = 0, max_data = 0;

		for (uint64_t i = 0; i < chunks; i++) {
			const unsigned char *e = idx +
			    i * sizeof(struct zsnap_index_entry);
			uint64_t off = zsnap_get64(e);
			uint32_t ec = zsnap_get32(e + offsetof(struct
			    zsnap_index_entry, extent_count));
			uint32_t dp = zsnap_get32(buf + off + ZSNAP_SKIP_HDR_SIZE +
			    offsetof(struct zsnap_chunk, data_pages));

			if (ec > max_extents)
				max_extents = ec;
			if (dp > max_data)
				max_data = dp;
		}
		if (max_extents != 1024 || max_data != 256)
			fail("%s: chunks hold at most %u extents and %u data "
			    "pages, expected 1024 and 256 (both limits hit)",
			    good, max_extents, max_data);
	}

	/* Truncated: the footer is gone. */
	path_of(path, sizeof(path), "truncated.zsnap");
	write_all(path, buf, len - 100);
	snprintf(needle, sizeof(needle), "truncated or incomplete: no zsnap "
	    "footer at end of file (size %zu)", len - 100);
	expect_rejected("truncated copy", path, needle);

	/* One flipped byte in chunk 1's compressed page data. */
	c1_off = zsnap_get64(idx + sizeof(struct zsnap_index_entry) +
	    offsetof(struct zsnap_index_entry, offset));
	c1_payload = zsnap_get32(buf + c1_off + 4);
	frame_off = c1_off + ZSNAP_SKIP_HDR_SIZE + c1_payload;
	frame_size = zsnap_get32(buf + c1_off + ZSNAP_SKIP_HDR_SIZE +
	    offsetof(struct zsnap_chunk, data_frame_size));
	if (frame_size < 64)
		die("chunk 1 has a %u-byte data frame, too small to damage",
		    frame_size);
	buf[frame_off + frame_size / 2] ^= 0x10;
	path_of(path, sizeof(path), "flipped-data.zsnap");
	write_all(path, buf, len);
	buf[frame_off + frame_size / 2] ^= 0x10;
	snprintf(needle, sizeof(needle), "chunk 1 at offset %llu: page data",
	    (unsigned long long)c1_off);
	expect_rejected("flipped byte in compressed data", path, needle);

	/* A flipped byte in chunk 1's extent list. */
	buf[c1_off + ZSNAP_SKIP_HDR_SIZE + sizeof(struct zsnap_chunk) + 9] ^= 1;
	path_of(path, sizeof(path), "flipped-chunk.zsnap");
	write_all(path, buf, len);
	buf[c1_off + ZSNAP_SKIP_HDR_SIZE + sizeof(struct zsnap_chunk) + 9] ^= 1;
	snprintf(needle, sizeof(needle), "chunk 1 at offset %llu: header "
	    "checksum mismatch", (unsigned long long)c1_off);
	expect_rejected("flipped byte in a chunk header", path, needle);

	/* A damaged index entry. */
	buf[index_off + ZSNAP_SKIP_HDR_SIZE + 8 + 40] ^= 0x04;
	path_of(path, sizeof(path), "damaged-index.zsnap");
	write_all(path, buf, len);
	buf[index_off + ZSNAP_SKIP_HDR_SIZE + 8 + 40] ^= 0x04;
	snprintf(needle, sizeof(needle), "index at offset %llu: checksum "
	    "mismatch", (unsigned long long)index_off);
	expect_rejected("damaged index", path, needle);

	/* A flipped header byte (in the snapshot's name). */
	buf[ZSNAP_SKIP_HDR_SIZE + offsetof(struct zsnap_header, name) + 1] ^= 2;
	path_of(path, sizeof(path), "flipped-header.zsnap");
	write_all(path, buf, len);
	buf[ZSNAP_SKIP_HDR_SIZE + offsetof(struct zsnap_header, name) + 1] ^= 2;
	expect_rejected("flipped header byte", path,
	    "header at offset 0: checksum mismatch");

	/* A flipped footer byte. */
	buf[len - 20] ^= 1;
	path_of(path, sizeof(path), "flipped-footer.zsnap");
	write_all(path, buf, len);
	buf[len - 20] ^= 1;
	snprintf(needle, sizeof(needle), "footer at offset %zu: checksum "
	    "mismatch", len - ZSNAP_FOOTER_FRAME_SIZE);
	expect_rejected("flipped footer byte", path, needle);

	/* Not a snapshot at all. */
	path_of(path, sizeof(path), "garbage.zsnap");
	write_all(path, (const unsigned char *)"hello, world\n", 13);
	expect_rejected("not a snapshot", path, "not a zsnap file");

	/*
	 * Every byte of a zsnap file is under some checksum (metadata crc32c,
	 * page data crc32c and zstd's own), so any single flipped byte must
	 * be rejected, by open or by verify.
	 */
	path_of(path, sizeof(path), "random-flip.zsnap");
	for (int t = 0; t < 150; t++) {
		size_t			 pos = rng() % len;
		unsigned char		 bit = (unsigned char)(1u << (rng() % 8));
		struct snap_file	*f;

		buf[pos] ^= bit;
		write_all(path, buf, len);
		buf[pos] ^= bit;
		if ((f = snap_file_open(path)) != NULL) {
			if (snap_file_verify(f) == 0)
				fail("flipping bit %#x of byte %zu (of %zu) went "
				    "unnoticed", bit, pos, len);
			snap_file_close(f);
		}
	}

	/* The untouched copy still passes: the flips were undone. */
	path_of(path, sizeof(path), "copy.zsnap");
	write_all(path, buf, len);
	{
		struct snap_file *f = snap_file_open(path);

		if (f == NULL || snap_file_verify(f) == -1)
			fail("the restored copy does not verify: %s",
			    snap_strerror(NULL));
		snap_file_close(f);
	}
	free(buf);
}

/* ---- the tests ---------------------------------------------------------- */

static void
test_zsnap(struct layout *l, int dirfd, int threads)
{
	struct output_result	 res;
	char			 path[8192], cmd[16600], exp[8192];
	const char		*name = threads ? "snap-mt" : "snap";
	struct stat		 st;

	write_snapshot(l, dirfd, name, OUTPUT_ZSNAP, threads, -1, -1, &res);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, res.path);
	if (strcmp(res.path, threads ? "snap-mt.zsnap" : "snap.zsnap") != 0)
		fail("result path is \"%s\"", res.path);
	if (stat(path, &st) == -1 || (uint64_t)st.st_size != res.bytes)
		fail("%s: size on disk %lld, result says %llu", path,
		    (long long)st.st_size, (unsigned long long)res.bytes);
	if ((st.st_mode & 0777) != 0600)
		fail("%s: mode %o, expected 600", path, st.st_mode & 0777);
	check_restore(l, path);

	snprintf(cmd, sizeof(cmd), "zstd -q -t '%s'", path);
	if (system(cmd) != 0)
		fail("`%s` failed: the file is not a valid zstd stream", cmd);

	/* Export as raw, read that back. */
	snprintf(exp, sizeof(exp), "%s/%s-export.raw", tmpdir, name);
	{
		struct snap_file *f = snap_file_open(path);

		if (f == NULL || snap_file_export_raw(f, exp) == -1)
			fail("export %s to %s: %s", path, exp,
			    snap_strerror(NULL));
		else if (snap_file_export_raw(f, exp) == 0)
			fail("export to an existing %s succeeded", exp);
		snap_file_close(f);
	}
	check_restore(l, exp);
	if (!threads)
		test_damage(path);
}

static void
test_raw(struct layout *l, int dirfd)
{
	struct output_result	 res;
	char			 path[8192], img[8400];
	struct stat		 st;
	int			 fd;

	write_snapshot(l, dirfd, "rawsnap", OUTPUT_RAW, 0, -1, -1, &res);
	if (strcmp(res.path, "rawsnap.raw") != 0)
		fail("raw result path is \"%s\"", res.path);
	path_of(path, sizeof(path), res.path);
	check_restore(l, path);

	/* The all-zero region is one hole. */
	snprintf(img, sizeof(img), "%s/2.img", path);
	if (stat(img, &st) == -1 || st.st_size != 64 * PAGE || st.st_blocks != 0)
		fail("%s: size %lld, %lld blocks: expected a %u-byte hole",
		    img, (long long)st.st_size, (long long)st.st_blocks,
		    64 * PAGE);

	/* A region file cut short is refused at open. */
	snprintf(img, sizeof(img), "%s/0.img", path);
	if ((fd = open(img, O_WRONLY)) == -1 || ftruncate(fd, PAGE) == -1)
		die("truncate %s: %s", img, strerror(errno));
	close(fd);
	expect_rejected("raw snapshot with a short region file", path,
	    "region 0: 0.img is a file of 4096 bytes, expected a file of");
}

/* A page given twice (and another never) makes a file verify rejects. */
static void
test_twice(struct layout *l, int dirfd)
{
	struct output_result	 res;
	char			 path[8192];

	write_snapshot(l, dirfd, "twice", OUTPUT_ZSNAP, 0, 17, 5, &res);
	path_of(path, sizeof(path), "twice.zsnap");
	expect_rejected("a page covered twice", path, "region 0 page 5: "
	    "covered twice (");
}

/* Atomicity: an abandoned output leaves nothing; nothing is replaced. */
static void
test_atomic(struct layout *l, int dirfd)
{
	struct output_result	 res;
	struct output		*out;
	struct dirent		*de;
	DIR			*d;

	out = open_output(l, dirfd, "abandoned", OUTPUT_ZSNAP, 0);
	if (output_pages(out, 0, 0, 1, l->mem[0]) == -1)
		fail("abandoned: output_pages: %s", output_error(out));
	output_close(out);
	out = open_output(l, dirfd, "abandoned-raw", OUTPUT_RAW, 0);
	output_close(out);

	/* Incomplete: finish must refuse. */
	out = open_output(l, dirfd, "incomplete", OUTPUT_ZSNAP, 0);
	if (output_pages(out, 3, 0, 1, l->mem[3]) == -1)
		fail("incomplete: output_pages: %s", output_error(out));
	if (output_finish(out, &res) == 0)
		fail("output_finish accepted a snapshot missing pages");
	else if (strstr(output_error(out), "incomplete: 1 of") == NULL)
		fail("incomplete: unexpected message \"%s\"", output_error(out));
	output_close(out);

	/* Out of range pages are refused. */
	out = open_output(l, dirfd, "range", OUTPUT_ZSNAP, 0);
	if (output_pages(out, 3, 1, 1, l->mem[3]) == 0 ||
	    output_pages(out, NREG, 0, 1, l->mem[3]) == 0 ||
	    output_lost(out, 0, 2999, 2) == 0)
		fail("output accepted pages outside the regions");
	output_close(out);

	/* An existing snapshot is not replaced. */
	out = open_output(l, dirfd, "snap", OUTPUT_ZSNAP, 0);
	for (size_t i = 0; i < l->nops; i++) {
		const struct op *o = &l->ops[i];

		if (o->lost)
			output_lost(out, o->region, o->first, o->count);
		else
			output_pages(out, o->region, o->first,
			    (uint32_t)o->count, l->mem[o->region] +
			    o->first * PAGE);
	}
	if (output_finish(out, &res) == 0)
		fail("output_finish replaced the existing snap.zsnap");
	else if (strstr(output_error(out), "rename") == NULL ||
	    strstr(output_error(out), "File exists") == NULL)
		fail("replace: unexpected message \"%s\"", output_error(out));
	output_close(out);

	if ((d = opendir(tmpdir)) == NULL)
		die("opendir %s: %s", tmpdir, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".tmp") != NULL)
			fail("temporary %s left behind", de->d_name);
	closedir(d);
}

/* snap_file_read() of a few ranges of every region against the layout. */
static void
check_read(struct layout *l, struct snap_file *f, const char *what)
{
	unsigned char	*buf = malloc(64 * PAGE);
	uint64_t	 lost, want;

	for (uint32_t r = 0; r < NREG; r++) {
		uint64_t first = r == 0 ? 5 : 0;
		uint64_t n = l->pages[r] - first < 64 ? l->pages[r] - first : 64;

		if (snap_file_read(f, r, first, n, buf, &lost) == -1) {
			fail("%s: read region %u: %s", what, r,
			    snap_strerror(NULL));
			continue;
		}
		want = 0;
		for (uint64_t i = 0; i < n; i++) {
			int is_lost = l->lost[r][first + i];

			want += is_lost;
			if (is_lost ? !zsnap_page_is_zero(buf + i * PAGE) :
			    memcmp(buf + i * PAGE, l->mem[r] + (first + i) *
			    PAGE, PAGE) != 0)
				fail("%s: region %u page %llu read wrong", what,
				    r, (unsigned long long)(first + i));
		}
		if (lost != want)
			fail("%s: region %u: %llu lost, expected %llu", what, r,
			    (unsigned long long)lost, (unsigned long long)want);
	}
	if (snap_file_read(f, 0, l->pages[0], 1, buf, NULL) == 0)
		fail("%s: read past region 0's end succeeded", what);
	free(buf);
}

/* The record is there, equal to what was written, and verifies. */
static void
check_process(struct layout *l, const char *path, const uint8_t *rec_buf,
    size_t rec_len, const char *what)
{
	struct snap_file	*f = snap_file_open(path);
	struct procrec		 rec;
	uint8_t			*again;
	size_t			 again_len;

	if (f == NULL || snap_file_verify(f) == -1) {
		fail("%s: %s", what, snap_strerror(NULL));
		snap_file_close(f);
		return;
	}
	if (snap_file_process(f, &rec) != 1)
		fail("%s: no process record: %s", what, snap_strerror(NULL));
	else if (procrec_encode(&rec, &again, &again_len) == -1 ||
	    again_len != rec_len || memcmp(again, rec_buf, rec_len) != 0)
		fail("%s: the process record read back differs", what);
	else
		free(again);
	procrec_free(&rec);
	check_read(l, f, what);
	snap_file_close(f);
}

static void
test_process(struct layout *l, int dirfd)
{
	struct output_result	 res;
	struct procrec		 rec;
	struct snap_file	*f;
	uint8_t			*buf, *file;
	size_t			 len, flen;
	char			 path[8192], exp[8192], damaged[8300];

	procrec_sample(&rec);
	if (procrec_encode(&rec, &buf, &len) == -1)
		die("procrec_encode: %s", strerror(errno));
	out_procrec = buf;
	out_procrec_len = len;
	write_snapshot(l, dirfd, "proc", OUTPUT_ZSNAP, 0, -1, -1, &res);
	write_snapshot(l, dirfd, "procraw", OUTPUT_RAW, 0, -1, -1, &res);
	out_procrec = NULL;
	out_procrec_len = 0;

	path_of(path, sizeof(path), "proc.zsnap");
	check_restore(l, path);
	check_process(l, path, buf, len, "zsnap with a process record");
	snprintf(exp, sizeof(exp), "%s/proc-export.raw", tmpdir);
	if ((f = snap_file_open(path)) == NULL ||
	    snap_file_export_raw(f, exp) == -1)
		fail("export %s: %s", path, snap_strerror(NULL));
	snap_file_close(f);
	check_process(l, exp, buf, len, "its raw export");
	path_of(path, sizeof(path), "procraw.raw");
	check_process(l, path, buf, len, "raw with a process record");

	/* A snapshot without one says so; a damaged one is refused. */
	path_of(path, sizeof(path), "snap.zsnap");
	if ((f = snap_file_open(path)) == NULL ||
	    snap_file_process(f, &rec) != 0 || rec.threads != NULL)
		fail("a snapshot without a process record has one");
	snap_file_close(f);
	path_of(path, sizeof(path), "proc.zsnap");
	file = read_all(path, &flen);
	/* The header frame's size, its own, then 100 bytes into the record. */
	file[ZSNAP_SKIP_HDR_SIZE + zsnap_get32(file + 4) + 8 + 100] ^= 1;
	path_of(damaged, sizeof(damaged), "proc-damaged.zsnap");
	write_all(damaged, file, flen);
	free(file);
	expect_rejected("a flipped byte in the process record", damaged,
	    "process frame at offset ");
	snprintf(damaged, sizeof(damaged), "%s/process.rec", exp);
	if (truncate(damaged, (off_t)len - 1) == -1)
		die("truncate %s: %s", damaged, strerror(errno));
	expect_rejected("a raw process.rec cut short", exp, "process.rec: ");
	free(buf);
}

/* ---- incremental snapshots: the writer's half ------------------------- */

/* The crc32c that ends the index payload of the zsnap file in buf. */
static uint32_t
file_index_crc(const unsigned char *buf, size_t len)
{
	const unsigned char *ft = buf + len - ZSNAP_FOOTER_FRAME_SIZE +
	    ZSNAP_SKIP_HDR_SIZE;
	uint64_t off = zsnap_get64(ft + offsetof(struct zsnap_footer,
	    index_offset));
	uint32_t payload = zsnap_get32(buf + off + 4);

	return zsnap_get32(buf + off + ZSNAP_SKIP_HDR_SIZE + payload - 4);
}

/* An output of the layout's regions with a parent link, or NULL. */
static struct output *
open_incremental(struct layout *l, int dirfd, const char *name,
    enum output_format format, const struct zsnap_parent *pa,
    const struct zsnap_whole *whole)
{
	struct output_params	 p;

	memset(&p, 0, sizeof(p));
	p.dirfd = dirfd;
	p.name = name;
	p.format = format;
	p.level = 3;
	p.owner_uid = (uid_t)-1;
	p.owner_gid = (gid_t)-1;
	p.regions = l->regions;
	p.region_count = NREG;
	p.pid = 4242;
	p.comm = "testproc";
	p.armed_realtime_ns = 1700000001000000000ull;
	p.parent = pa;
	p.whole = whole;
	return output_open(&p);
}

/* The delta's pages (with_tiny: all of them, else region 3's is missing). */
static void
write_delta(struct layout *l, struct output *out, int with_tiny)
{
	unsigned char	*pg = calloc(10, PAGE);

	for (int i = 0; i < 10; i++)
		if (i % 2)
			fill_page(pg + (size_t)i * PAGE, 1);
	if ((with_tiny && output_unchanged(out, 3, 0, 1) == -1) ||
	    output_unchanged(out, 0, 0, 10) == -1 ||
	    output_pages(out, 0, 10, 10, pg) == -1 ||
	    output_unchanged(out, 0, 20, 20) == -1 ||
	    output_lost(out, 0, 40, 1) == -1 ||
	    output_unchanged(out, 0, 41, l->pages[0] - 41) == -1 ||
	    output_unchanged(out, 1, 0, l->pages[1]) == -1 ||
	    output_pages(out, 2, 0, 64, l->mem[2]) == -1)
		die("delta: %s", output_error(out));
	free(pg);
}

/*
 * A delta on snap.zsnap: region 0's pages 10..19 changed (saved again,
 * five of them zero), page 40 lost, region 2 saved whole (a whole range,
 * reason "discarded"), everything else unchanged.  The file must carry
 * the flag, the parent frame as given, PARENT extents, the counts, and
 * the index crc the result reports; the writer must refuse what would
 * make a file a reader refuses.
 */
static void
test_incremental_writer(struct layout *l, int dirfd)
{
	struct zsnap_parent	 pa;
	struct zsnap_whole	 whole[2];
	struct output_result	 res, base;
	struct output		*out;
	unsigned char		*buf;
	const unsigned char	*fr, *ft;
	size_t			 len;
	uint64_t		 hdr_end;
	char			 path[8192];

	/* The base: its index crc is what the delta's link records. */
	path_of(path, sizeof(path), "snap.zsnap");
	buf = read_all(path, &len);
	memset(&base, 0, sizeof(base));
	base.index_crc = file_index_crc(buf, len);
	free(buf);

	memset(&pa, 0, sizeof(pa));
	snprintf(pa.name, sizeof(pa.name), "snap");
	snprintf(pa.file, sizeof(pa.file), "snap.zsnap");
	pa.armed_realtime_ns = 1700000000123456789ull;
	pa.index_crc = base.index_crc;
	pa.depth = 1;
	pa.whole_count = 1;
	whole[0] = (struct zsnap_whole){ 2, ZSNAP_WHOLE_DISCARDED, 0, 64 };

	/* Not incremental: output_unchanged is refused, with a message. */
	out = open_output(l, dirfd, "notincr", OUTPUT_ZSNAP, 0);
	errno = 0;
	if (output_unchanged(out, 0, 0, 1) == 0 || errno != EINVAL ||
	    strstr(output_error(out), "not incremental") == NULL)
		fail("output_unchanged without a parent: errno %d, \"%s\"",
		    errno, output_error(out));
	output_close(out);

	/* Raw refuses a parent. */
	errno = 0;
	if ((out = open_incremental(l, dirfd, "rawincr", OUTPUT_RAW, &pa,
	    whole)) != NULL || errno != EINVAL ||
	    strstr(output_open_error(), "incremental snapshots are zsnap "
	    "only") == NULL)
		fail("raw with a parent: errno %d, \"%s\"", errno,
		    output_open_error());
	output_close(out);

	/* Links a reader would refuse are refused at open. */
	{
		struct zsnap_parent bad = pa;
		struct zsnap_whole badw = { 0, 9, 0, 1 };

		bad.whole_count = ZSNAP_WHOLE_MAX + 1;
		if ((out = open_incremental(l, dirfd, "bad", OUTPUT_ZSNAP, &bad,
		    whole)) != NULL)
			fail("a parent frame of %u whole ranges was accepted",
			    bad.whole_count);
		output_close(out);
		bad = pa;
		snprintf(bad.file, sizeof(bad.file), "../snap.zsnap");
		if ((out = open_incremental(l, dirfd, "bad", OUTPUT_ZSNAP, &bad,
		    whole)) != NULL || strstr(output_open_error(),
		    "is not a file name of this directory") == NULL)
			fail("parent file ../snap.zsnap: \"%s\"",
			    output_open_error());
		output_close(out);
		bad = pa;
		bad.depth = 0;
		if ((out = open_incremental(l, dirfd, "bad", OUTPUT_ZSNAP, &bad,
		    whole)) != NULL)
			fail("a parent at depth 0 was accepted");
		output_close(out);
		if ((out = open_incremental(l, dirfd, "bad", OUTPUT_ZSNAP, &pa,
		    &badw)) != NULL || strstr(output_open_error(),
		    "no known reason") == NULL)
			fail("a whole range of reason 9: \"%s\"",
			    output_open_error());
		output_close(out);
	}

	if ((out = open_incremental(l, dirfd, "delta", OUTPUT_ZSNAP, &pa,
	    whole)) == NULL)
		die("open delta: %s", output_open_error());
	/* The copy is the output's: the caller's may change at once. */
	whole[0].reason = 99;
	/* Out of range, as for any page. */
	if (output_unchanged(out, 3, 1, 1) == 0)
		fail("output_unchanged past region 3's end was accepted");
	/* One page short: finish refuses, counting parent pages as saved. */
	write_delta(l, out, 0);
	if (output_finish(out, &res) == 0 || strstr(output_error(out),
	    "incomplete: 9064 of 9065 pages saved") == NULL)
		fail("delta one page short: \"%s\"", output_error(out));
	output_close(out);

	whole[0].reason = 2;
	if ((out = open_incremental(l, dirfd, "delta", OUTPUT_ZSNAP, &pa,
	    whole)) == NULL)
		die("open delta: %s", output_open_error());
	whole[0].reason = 99;
	write_delta(l, out, 1);
	if (output_finish(out, &res) == -1)
		die("delta: %s", output_error(out));
	output_close(out);
	if (res.pages_total != 9065 || res.pages_data != 5 ||
	    res.pages_zero != 5 + 64 || res.pages_lost != 1 ||
	    res.pages_parent != 9065 - 75)
		fail("delta: counts total %llu data %llu zero %llu lost %llu "
		    "parent %llu", (unsigned long long)res.pages_total,
		    (unsigned long long)res.pages_data,
		    (unsigned long long)res.pages_zero,
		    (unsigned long long)res.pages_lost,
		    (unsigned long long)res.pages_parent);

	path_of(path, sizeof(path), "delta.zsnap");
	buf = read_all(path, &len);
	if (res.index_crc != file_index_crc(buf, len))
		fail("delta: result index_crc %08x, the file's %08x",
		    res.index_crc, file_index_crc(buf, len));
	if (!(zsnap_get32(buf + ZSNAP_SKIP_HDR_SIZE + offsetof(struct
	    zsnap_header, flags)) & ZSNAP_F_PARENT))
		fail("delta: header without ZSNAP_F_PARENT");
	hdr_end = ZSNAP_SKIP_HDR_SIZE + zsnap_get32(buf + 4);
	fr = buf + hdr_end;
	if (zsnap_get32(fr) != ZSNAP_FRAME_PARENT ||
	    zsnap_get32(fr + 4) != sizeof(struct zsnap_parent) +
	    sizeof(struct zsnap_whole) + 4)
		fail("delta: no parent frame of one whole range after the "
		    "header (magic %#x, size %u)", zsnap_get32(fr),
		    zsnap_get32(fr + 4));
	else {
		const unsigned char *pp = fr + ZSNAP_SKIP_HDR_SIZE;
		const unsigned char *w = pp + sizeof(struct zsnap_parent);
		uint32_t plen = zsnap_get32(fr + 4);

		if (crc32c(0, pp, plen - 4) != zsnap_get32(pp + plen - 4) ||
		    strcmp((const char *)pp, "snap") != 0 ||
		    strcmp((const char *)pp + offsetof(struct zsnap_parent,
		    file), "snap.zsnap") != 0 ||
		    zsnap_get64(pp + offsetof(struct zsnap_parent,
		    armed_realtime_ns)) != 1700000000123456789ull ||
		    zsnap_get32(pp + offsetof(struct zsnap_parent,
		    index_crc)) != base.index_crc ||
		    zsnap_get32(pp + offsetof(struct zsnap_parent, depth)) != 1 ||
		    zsnap_get32(pp + offsetof(struct zsnap_parent,
		    whole_count)) != 1 || zsnap_get32(w) != 2 ||
		    zsnap_get32(w + 4) != ZSNAP_WHOLE_UNMAPPED ||
		    zsnap_get64(w + 8) != 0 || zsnap_get64(w + 16) != 64)
			fail("delta: the parent frame is not what was given");
		/* The first chunk follows it, with a PARENT extent first. */
		fr += ZSNAP_SKIP_HDR_SIZE + plen;
		if (zsnap_get32(fr) != ZSNAP_FRAME_CHUNK ||
		    zsnap_get32(fr + ZSNAP_SKIP_HDR_SIZE +
		    sizeof(struct zsnap_chunk) + 4) != ZSNAP_EXTENT_PARENT)
			fail("delta: the first chunk does not follow the "
			    "parent frame with a PARENT extent");
	}
	ft = buf + len - ZSNAP_FOOTER_FRAME_SIZE + ZSNAP_SKIP_HDR_SIZE;
	if (zsnap_get64(ft + offsetof(struct zsnap_footer, pages_data)) != 5 ||
	    zsnap_get64(ft + offsetof(struct zsnap_footer, pages_zero)) != 69 ||
	    zsnap_get64(ft + offsetof(struct zsnap_footer, pages_lost)) != 1)
		fail("delta: footer counts are not the result's");
	free(buf);
}

int
main(void)
{
	struct layout	 l;
	const char	*seed = getenv("TEST_SEED");
	char		 cmd[4200];
	int		 dirfd;

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x9E3779B97F4A7C15ull;
	if (rng_state == 0)
		rng_state = 1;
	printf("test_format: seed %#llx\n", (unsigned long long)rng_state);
	if (mkdtemp(tmpdir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	if ((dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY)) == -1)
		die("open %s: %s", tmpdir, strerror(errno));

	test_crc32c();
	layout_build(&l);
	test_zsnap(&l, dirfd, 0);
	test_zsnap(&l, dirfd, 2);
	test_raw(&l, dirfd);
	test_twice(&l, dirfd);
	test_atomic(&l, dirfd);
	test_process(&l, dirfd);
	test_incremental_writer(&l, dirfd);
	layout_free(&l);
	close(dirfd);

	if (getenv("TEST_KEEP") != NULL) {
		printf("test_format: files kept in %s\n", tmpdir);
		return failures > 0;
	}
	if (failures > 0) {
		fprintf(stderr, "test_format: %d failures; files kept in %s\n",
		    failures, tmpdir);
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_format: could not remove %s\n", tmpdir);
	printf("test_format: all passed\n");
	return 0;
}
