/*
 * Writes the reader's seed corpus (tests/fuzz/corpus/reader/): small real
 * snapshots made by snapd's own encoders (daemon/output*.c), so the fuzzer
 * starts from files the daemon actually writes.  Every figure is fixed
 * (pid, uid, comm, armed time, page contents, one compression thread-less
 * pass at level 3), so the seeds come out the same on every run with the
 * same zstd.  Run by tests/fuzz/make_seeds.sh, not by the build.
 *
 *	make_seeds OUTDIR
 *
 * writes OUTDIR/NAME.zsnap for each zsnap seed and, for each raw seed,
 * OUTDIR/NAME.rawin in fuzz_reader's raw input form: snapshot.json, a NUL,
 * then every region file's bytes in region order; and OUTDIR/NAME.procrec,
 * process records (proto/procrec.h) for fuzz_procrec: the sample of
 * tests/unit/procrec-sample.h, and one without threads, mappings or auxv.
 *
 * Single-threaded (threads = 0: the encoder compresses on this thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "output.h"
#include "procrec-sample.h"

#define PAGE		ZSNAP_PAGE_SIZE
#define REGIONS_MAX	4

/* What to put at one run of pages: D data, Z zero, L lost, P parent's. */
struct seed_op {
	uint32_t	region;
	uint64_t	first;
	uint32_t	count;
	char		kind;
};

struct seed {
	const char		*name;
	enum output_format	 format;
	uint32_t		 region_count;
	uint64_t		 pages[REGIONS_MAX];
	const struct seed_op	*ops;		/* ends with count 0 */
	int			 process;	/* with the sample process record */
	int			 parent;	/* incremental, on simple.zsnap */
};

/* One data page, recognisable and compressible: its region and index. */
static void
seed_page(unsigned char *p, uint32_t region, uint64_t page)
{
	memset(p, 0, PAGE);
	for (size_t off = 0; off + 32 <= PAGE; off += 64)
		snprintf((char *)p + off, 32, "region %u page %llu", region,
		    (unsigned long long)page);
}

static void __attribute__((noreturn))
seed_fail(const char *name, const char *what, const char *why)
{
	fprintf(stderr, "make_seeds: %s: %s: %s\n", name, what, why);
	exit(1);
}

static void
seed_make(int dirfd, const struct seed *s)
{
	struct output_region	 regions[REGIONS_MAX];
	struct output_params	 p;
	struct output_result	 res;
	struct output		*out;
	struct zsnap_parent	 pa;
	const struct zsnap_whole whole = { 0, ZSNAP_WHOLE_DISCARDED, 0, 1 };
	unsigned char		*buf;
	uint8_t			*rec_buf = NULL;

	memset(regions, 0, sizeof(regions));
	for (uint32_t i = 0; i < s->region_count; i++) {
		regions[i].start = 0x7f0000000000ull + i * 0x10000000ull;
		regions[i].length = s->pages[i] * PAGE;
		snprintf(regions[i].name, sizeof(regions[i].name), "r%u-%s", i,
		    i == 0 ? "heap" : "data");
	}
	memset(&p, 0, sizeof(p));
	p.dirfd = dirfd;
	p.name = s->name;
	p.format = s->format;
	p.level = 3;
	p.threads = 0;
	p.owner_uid = (uid_t)-1;
	p.owner_gid = (gid_t)-1;
	p.mode = 0644;
	p.regions = regions;
	p.region_count = s->region_count;
	p.pid = 4242;
	p.uid = 1000;
	p.comm = "seedwork";
	p.armed_realtime_ns = 1700000000000000000ull;
	if (s->process) {
		struct procrec rec;

		procrec_sample(&rec);
		if (procrec_encode(&rec, &rec_buf, &p.procrec_len) == -1)
			seed_fail(s->name, "procrec_encode", strerror(errno));
		p.procrec = rec_buf;
	}
	if (s->parent) {
		/*
		 * The link names simple.zsnap, which the fuzzer never finds
		 * (it opens its inputs through /proc/self/fd): this seed
		 * reaches the parent frame's parser and the PARENT extents.
		 */
		memset(&pa, 0, sizeof(pa));
		memcpy(pa.name, "simple", 6);
		memcpy(pa.file, "simple.zsnap", 12);
		pa.armed_realtime_ns = 1699999940000000000ull;
		pa.index_crc = 0x12345678;
		pa.depth = 1;
		pa.whole_count = 1;
		p.parent = &pa;
		p.whole = &whole;
	}
	if ((out = output_open(&p)) == NULL)
		seed_fail(s->name, "output_open", output_open_error());
	free(rec_buf);

	for (const struct seed_op *op = s->ops; op->count != 0; op++) {
		if (op->kind == 'L') {
			if (output_lost(out, op->region, op->first,
			    op->count) == -1)
				seed_fail(s->name, "output_lost",
				    output_error(out));
			continue;
		}
		if (op->kind == 'P') {
			if (output_unchanged(out, op->region, op->first,
			    op->count) == -1)
				seed_fail(s->name, "output_unchanged",
				    output_error(out));
			continue;
		}
		if ((buf = calloc(op->count, PAGE)) == NULL)
			seed_fail(s->name, "calloc", strerror(errno));
		if (op->kind == 'D')
			for (uint32_t k = 0; k < op->count; k++)
				seed_page(buf + (size_t)k * PAGE, op->region,
				    op->first + k);
		if (output_pages(out, op->region, op->first, op->count,
		    buf) == -1)
			seed_fail(s->name, "output_pages", output_error(out));
		free(buf);
	}
	if (output_finish(out, &res) == -1)
		seed_fail(s->name, "output_finish", output_error(out));
	output_close(out);
}

static void
seed_copy_file(int dirfd, const char *name, FILE *to)
{
	char	buf[65536];
	size_t	n;
	FILE	*from;
	int	fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (from = fdopen(fd, "r")) == NULL)
		seed_fail(name, "open", strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), from)) > 0)
		if (fwrite(buf, 1, n, to) != n)
			seed_fail(name, "write", strerror(errno));
	if (ferror(from))
		seed_fail(name, "read", strerror(errno));
	fclose(from);
}

/*
 * NAME.raw/ into NAME.rawin (snapshot.json, NUL, region files), without
 * the trailing zero bytes: fuzz_reader pads every region file with zeros.
 */
static void
seed_raw_input(int dirfd, const struct seed *s)
{
	char	 path[256], file[300];
	FILE	*to;
	long	 keep = 0, pos = 0;
	int	 c;

	snprintf(path, sizeof(path), "%s.rawin", s->name);
	if ((to = fopen(path, "we")) == NULL)
		seed_fail(path, "create", strerror(errno));
	snprintf(file, sizeof(file), "%s.raw/snapshot.json", s->name);
	seed_copy_file(dirfd, file, to);
	if (fputc('\0', to) == EOF)
		seed_fail(path, "write", strerror(errno));
	for (uint32_t i = 0; i < s->region_count; i++) {
		snprintf(file, sizeof(file), "%s.raw/%u.img", s->name, i);
		seed_copy_file(dirfd, file, to);
	}
	if (fclose(to) == EOF)
		seed_fail(path, "write", strerror(errno));

	if ((to = fopen(path, "re")) == NULL)
		seed_fail(path, "open", strerror(errno));
	while ((c = fgetc(to)) != EOF) {
		pos++;
		if (c != 0 || keep == 0)
			keep = pos;	/* the NUL after snapshot.json stays */
	}
	fclose(to);
	if (truncate(path, keep) == -1)
		seed_fail(path, "truncate", strerror(errno));
}

/* Two data pages, a zero page, one more data page. */
static const struct seed_op ops_simple[] = {
	{ 0, 0, 2, 'D' }, { 0, 2, 1, 'Z' }, { 0, 3, 1, 'D' }, { 0, 0, 0, 0 }
};
/* Two regions, pages lost in the first, the second all zero. */
static const struct seed_op ops_lost[] = {
	{ 0, 0, 1, 'D' }, { 0, 1, 2, 'L' }, { 1, 0, 2, 'Z' }, { 0, 0, 0, 0 }
};
/* Pages out of order across regions, as the fault path saves them. */
static const struct seed_op ops_faults[] = {
	{ 1, 2, 1, 'D' }, { 0, 5, 1, 'D' }, { 0, 1, 1, 'D' }, { 1, 0, 2, 'Z' },
	{ 0, 0, 1, 'Z' }, { 0, 2, 3, 'D' }, { 0, 6, 2, 'D' }, { 1, 3, 1, 'L' },
	{ 0, 0, 0, 0 }
};
/* More data pages than one chunk holds (256): two chunks. */
static const struct seed_op ops_chunks[] = {
	{ 0, 0, 200, 'D' }, { 0, 200, 20, 'Z' }, { 0, 220, 100, 'D' },
	{ 0, 0, 0, 0 }
};
/* Raw: a data page and a zero page; a page lost in a second region. */
static const struct seed_op ops_raw_simple[] = {
	{ 0, 0, 1, 'D' }, { 0, 1, 1, 'Z' }, { 0, 0, 0, 0 }
};
static const struct seed_op ops_raw_lost[] = {
	{ 0, 0, 1, 'D' }, { 0, 1, 1, 'Z' }, { 1, 0, 1, 'L' }, { 1, 1, 1, 'Z' },
	{ 0, 0, 0, 0 }
};

/* Incremental: a page saved whole, two unchanged, one changed to zero. */
static const struct seed_op ops_incremental[] = {
	{ 0, 0, 1, 'D' }, { 0, 1, 2, 'P' }, { 0, 3, 1, 'Z' }, { 0, 0, 0, 0 }
};

static const struct seed seeds[] = {
	{ "simple", OUTPUT_ZSNAP, 1, { 4 }, ops_simple },
	{ "lost", OUTPUT_ZSNAP, 2, { 3, 2 }, ops_lost },
	{ "faults", OUTPUT_ZSNAP, 2, { 8, 4 }, ops_faults },
	{ "chunks", OUTPUT_ZSNAP, 1, { 320 }, ops_chunks },
	{ "raw-simple", OUTPUT_RAW, 1, { 2 }, ops_raw_simple },
	{ "raw-lost", OUTPUT_RAW, 2, { 2, 2 }, ops_raw_lost },
	{ "process", OUTPUT_ZSNAP, 2, { 3, 2 }, ops_lost, 1 },
	{ "incremental", OUTPUT_ZSNAP, 1, { 4 }, ops_incremental, 0, 1 },
};

/* OUTDIR/NAME.procrec: rec encoded. */
static void
seed_procrec(const char *name, const struct procrec *rec)
{
	char	 path[256];
	uint8_t	*buf;
	size_t	 len;
	FILE	*to;

	snprintf(path, sizeof(path), "%s.procrec", name);
	if (procrec_encode(rec, &buf, &len) == -1)
		seed_fail(path, "procrec_encode", strerror(errno));
	if ((to = fopen(path, "we")) == NULL ||
	    fwrite(buf, 1, len, to) != len || fclose(to) == EOF)
		seed_fail(path, "write", strerror(errno));
	free(buf);
}

static void
seed_procrecs(void)
{
	struct procrec	rec;

	procrec_sample(&rec);
	seed_procrec("sample", &rec);
	memset(&rec, 0, sizeof(rec));
	rec.machine = 62;
	rec.pid = 1;
	memcpy(rec.comm, "init", 5);
	seed_procrec("empty", &rec);
}

int
main(int argc, char **argv)
{
	int dirfd;

	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds OUTDIR\n");
		return 2;
	}
	log_init(LOG_LEVEL_WARNING, 0);
	if (chdir(argv[1]) == -1 ||
	    (dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		seed_fail(argv[1], "open directory", strerror(errno));
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		seed_make(dirfd, &seeds[i]);
		if (seeds[i].format == OUTPUT_RAW)
			seed_raw_input(dirfd, &seeds[i]);
	}
	seed_procrecs();
	close(dirfd);
	return 0;
}
