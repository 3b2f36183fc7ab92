/*
 * guestcheck: check offline that a RAM image of the test guest
 * (tests/guest/) is one instant of its writes.
 *
 *	guestcheck [--json] [--pages FIRST-LAST] IMAGE
 *	guestcheck --forge KIND [--pages FIRST-LAST] IMAGE
 *	guestcheck --serial FILE
 *
 * IMAGE is the guest's physical memory from guest physical address 0 (the
 * file QEMU uses as mem-path, a copy of it, a restored snapshot); it may
 * be sparse, and a tail it lacks reads as zero.  FIRST-LAST are the pages
 * the guest rewrites (its command line's first= and last=; by default
 * 512-16351, as the guest's).
 *
 * The guest writes generation G = 1, 2, ... into pages FIRST..LAST in
 * ascending order, word after word (guestpage.h).  So the image is an
 * instant of it if and only if there is one cut (G, P, W), the next word
 * the guest was going to write: every page before P holds generation G,
 * every page after P generation G - 1 (generation 0 is all zero), page P
 * holds G in words 0..W-1 and G - 1 from word W on.  guestcheck reads
 * which generation each word holds (the pattern is a bijection of the
 * generation for a given place), sorts each page as one generation, one
 * generation over the one before it (split at a word), or neither, and
 * finds the cut that the fewest pages contradict.  It prints the cut
 * ("consistent: gen G page P word W") and exits 0, or how many pages
 * contradict the best cut and the first of them, and exits 1.  With
 * --json it prints one JSON object instead: consistent, gen, page, word,
 * bad-pages, first-bad-pages.
 *
 * --forge KIND damages IMAGE in place, in the middle page of the range,
 * the way a wrong snapshot would, so that a test can prove guestcheck
 * refuses it (IMAGE must be consistent first):
 *	torn	the page holds generation G - 2 (a copy that missed two
 *		rounds; in generation 1, G + 1: one from the future)
 *	split	the page's first half holds G - 1 and its second half G
 *		(torn the wrong way round)
 *	flip	one bit of one word flipped
 *
 * --serial FILE prints the numbers of the guest's last complete progress
 * line in FILE ("guest: gen G page P writes W mismatches M") as one JSON
 * object {"gen", "page", "writes", "mismatches"}; exits 1 if there is none.
 *
 * Exit status: 0 consistent (or done), 1 not consistent (or no progress
 * line), 2 a usage error or a file it cannot read or write.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "guestpage.h"

#define CANDIDATES_MAX	64	/* generations tried for the best cut */
#define SHOWN_BAD_MAX	8	/* offending pages named in the report */

/* What one page of the image holds: words [0, split) generation head,
 * words [split, GUESTPAGE_WORDS) generation tail.  One generation is
 * split 0, head == tail. */
struct page_class {
	uint32_t	 head;
	uint32_t	 tail;
	uint32_t	 split;
	int		 bad;		/* neither one generation nor G over G - 1 */
	uint32_t	 bad_word;	/* if bad, the first word that says so */
	uint32_t	 bad_gen;	/* and the generation it holds */
};

struct image {
	uint32_t		 first;
	uint32_t		 last;
	uint32_t		 pages;
	uint32_t		*words;		/* pages FIRST..LAST */
	struct page_class	*class;
};

/* A cut: the next word the guest writes is word `word' of page `page'
 * (an index into the range) in generation gen; bad pages contradict it. */
struct cut {
	uint32_t	 gen;
	uint32_t	 page;
	uint32_t	 word;
	uint32_t	 bad;
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: guestcheck [--json] [--pages FIRST-LAST] IMAGE\n"
	    "       guestcheck --forge torn|split|flip [--pages FIRST-LAST] "
	    "IMAGE\n"
	    "       guestcheck --serial FILE\n");
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail_io(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "guestcheck: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static void
pages_parse(const char *s, uint32_t *first, uint32_t *last)
{
	unsigned long	 a, b;
	char		*end;

	errno = 0;
	a = strtoul(s, &end, 10);
	if (end == s || *end != '-')
		usage();
	s = end + 1;
	b = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || a > b ||
	    b >= UINT32_MAX / GUESTPAGE_SIZE)
		usage();
	*first = (uint32_t)a;
	*last = (uint32_t)b;
}

/* Read pages FIRST..LAST of the image; what the file lacks is zero. */
static void
image_read(const char *path, struct image *im)
{
	size_t	 len = (size_t)im->pages * GUESTPAGE_SIZE, got = 0;
	off_t	 off = (off_t)im->first * GUESTPAGE_SIZE;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		fail_io("%s: %s", path, strerror(errno));
	if ((im->words = calloc(im->pages, GUESTPAGE_SIZE)) == NULL ||
	    (im->class = calloc(im->pages, sizeof(*im->class))) == NULL)
		fail_io("out of memory");
	while (got < len) {
		n = pread(fd, (char *)im->words + got, len - got, off + got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fail_io("%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
}

static void
image_write_page(const char *path, const struct image *im, uint32_t i)
{
	const char	*p = (const char *)(im->words + i * GUESTPAGE_WORDS);
	int		 fd;

	if ((fd = open(path, O_WRONLY)) == -1)
		fail_io("%s: %s", path, strerror(errno));
	if (pwrite(fd, p, GUESTPAGE_SIZE, (off_t)(im->first + i) *
	    GUESTPAGE_SIZE) != GUESTPAGE_SIZE || close(fd) == -1)
		fail_io("%s: cannot write page %" PRIu32 ": %s", path,
		    im->first + i, strerror(errno));
}

/* Which generations page i of the range holds (struct page_class). */
static void
page_classify(struct image *im, uint32_t i)
{
	const uint32_t		*w = im->words + i * GUESTPAGE_WORDS;
	struct page_class	*c = &im->class[i];
	uint32_t		 page = im->first + i, k, g;

	c->head = c->tail = guestpage_gen(w[0], page, 0);
	c->split = 0;
	c->bad = c->head == GUESTPAGE_NOT_A_GEN;
	c->bad_word = 0;
	c->bad_gen = c->head;
	for (k = 1; k < GUESTPAGE_WORDS && !c->bad; k++) {
		g = guestpage_gen(w[k], page, k);
		if (g == c->tail)
			continue;
		if (c->split == 0 && c->head != 0 && g == c->head - 1) {
			c->split = k;
			c->tail = g;
		} else {
			c->bad = 1;
			c->bad_word = k;
			c->bad_gen = g;
		}
	}
}

static int
page_is_gen(const struct page_class *c, uint32_t gen)
{
	return !c->bad && c->split == 0 && c->head == gen;
}

/* Can page c be the cut's page in generation gen (split, or not yet
 * written: generation gen - 1 throughout)? */
static int
page_is_cut(const struct page_class *c, uint32_t gen)
{
	if (c->bad)
		return 0;
	if (c->split == 0)
		return c->head == gen - 1;
	return c->head == gen && c->tail == gen - 1;
}

static int
candidate_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The generations worth trying as G: for every page, the generation it
 * holds and the one after (it may be the last page of G - 1 or the first
 * of G), or its head when split.  A consistent image has at most three
 * distinct ones; a damaged one could have many, so only the
 * CANDIDATES_MAX that the most pages propose are kept.
 */
static uint32_t
candidates_find(const struct image *im, uint32_t *cand)
{
	uint32_t	*all, *count, n = 0, i, distinct = 0, best, j, kept;

	if ((all = calloc((size_t)im->pages * 2, sizeof(*all))) == NULL ||
	    (count = calloc((size_t)im->pages * 2, sizeof(*count))) == NULL)
		fail_io("out of memory");
	for (i = 0; i < im->pages; i++) {
		const struct page_class	*c = &im->class[i];

		if (c->bad)
			continue;
		if (c->split != 0) {
			all[n++] = c->head;
			continue;
		}
		if (c->head > 0)
			all[n++] = c->head;
		if (c->head < GUESTPAGE_GEN_MAX)
			all[n++] = c->head + 1;
	}
	qsort(all, n, sizeof(*all), candidate_cmp);
	for (i = 0; i < n; i++) {
		if (distinct > 0 && all[distinct - 1] == all[i]) {
			count[distinct - 1]++;
			continue;
		}
		all[distinct] = all[i];
		count[distinct++] = 1;
	}
	for (kept = 0; kept < CANDIDATES_MAX && kept < distinct; kept++) {
		for (best = 0, j = 1; j < distinct; j++)
			if (count[j] > count[best])
				best = j;
		cand[kept] = all[best];
		count[best] = 0;
	}
	free(all);
	free(count);
	return kept;
}

/*
 * The cut with the fewest contradicting pages.  For a generation G and
 * cut page c, the pages before c must hold G, the pages after c G - 1,
 * and c must be a cut page: a prefix count of pages not holding G and a
 * suffix count of pages not holding G - 1 give each c in one pass.
 */
static struct cut
cut_best(const struct image *im)
{
	struct cut	 best = { 1, 0, 0, UINT32_MAX };
	uint32_t	 cand[CANDIDATES_MAX], ncand, k, i, gen, before, *after;

	if ((after = calloc((size_t)im->pages + 1, sizeof(*after))) == NULL)
		fail_io("out of memory");
	ncand = candidates_find(im, cand);
	if (ncand == 0)
		cand[ncand++] = 1;
	for (k = 0; k < ncand; k++) {
		gen = cand[k];
		after[im->pages] = 0;
		for (i = im->pages; i > 0; i--)
			after[i - 1] = after[i] +
			    !page_is_gen(&im->class[i - 1], gen - 1);
		for (before = 0, i = 0; i < im->pages; i++) {
			uint32_t	 bad = before + after[i + 1] +
			    !page_is_cut(&im->class[i], gen);

			if (bad < best.bad) {
				best.gen = gen;
				best.page = i;
				best.word = im->class[i].split;
				best.bad = bad;
			}
			before += !page_is_gen(&im->class[i], gen);
		}
	}
	free(after);
	return best;
}

/* Does page i contradict cut? */
static int
cut_contradicts(const struct image *im, const struct cut *cut, uint32_t i)
{
	const struct page_class	*c = &im->class[i];

	if (i < cut->page)
		return !page_is_gen(c, cut->gen);
	if (i > cut->page)
		return !page_is_gen(c, cut->gen - 1);
	return !page_is_cut(c, cut->gen);
}

static void
page_describe(const struct image *im, uint32_t i, char *buf, size_t len)
{
	const struct page_class	*c = &im->class[i];

	char			 held[32] = "no generation's word";

	if (c->bad && c->bad_gen != GUESTPAGE_NOT_A_GEN)
		snprintf(held, sizeof(held), "generation %" PRIu32,
		    c->bad_gen);
	if (c->bad && c->bad_word == 0)
		snprintf(buf, len, "word 0 holds %s", held);
	else if (c->bad)
		snprintf(buf, len, "generation %" PRIu32 " up to word %"
		    PRIu32 "%s, then word %" PRIu32 " holds %s", c->head,
		    c->split != 0 ? c->split : c->bad_word,
		    c->split != 0 ? " and the one before it" : "",
		    c->bad_word, held);
	else if (c->split == 0)
		snprintf(buf, len, "generation %" PRIu32, c->head);
	else
		snprintf(buf, len, "generation %" PRIu32 " up to word %"
		    PRIu32 ", then %" PRIu32, c->head, c->split, c->tail);
}

static int
check_report(const struct image *im, int json)
{
	struct cut	 cut = cut_best(im);
	json_t		*o, *shown;
	uint32_t	 i, n = 0;
	char		 what[128], *s;

	shown = json_array();
	for (i = 0; i < im->pages && n < SHOWN_BAD_MAX; i++) {
		if (!cut_contradicts(im, &cut, i))
			continue;
		n++;
		json_array_append_new(shown, json_integer(im->first + i));
		if (!json) {
			page_describe(im, i, what, sizeof(what));
			printf("page %" PRIu32 ": %s, expected %s\n",
			    im->first + i, what,
			    i < cut.page ? "the cut's generation" :
			    i > cut.page ? "the generation before the cut's" :
			    "the cut page");
		}
	}
	if (json) {
		o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:o}",
		    "consistent", cut.bad == 0,
		    "gen", (json_int_t)cut.gen,
		    "page", (json_int_t)(im->first + cut.page),
		    "word", (json_int_t)cut.word,
		    "bad-pages", (json_int_t)cut.bad,
		    "first-bad-pages", shown);
		if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL)
			fail_io("out of memory");
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		json_decref(shown);
		printf("%s: gen %" PRIu32 " page %" PRIu32 " word %" PRIu32,
		    cut.bad == 0 ? "consistent" : "inconsistent", cut.gen,
		    im->first + cut.page, cut.word);
		if (cut.bad != 0)
			printf(": %" PRIu32 " of %" PRIu32 " pages contradict "
			    "the best cut", cut.bad, im->pages);
		printf("\n");
	}
	return cut.bad == 0 ? 0 : 1;
}

/* Damage the middle page of a consistent image (see the top). */
static void
image_forge(const char *path, struct image *im, const char *kind)
{
	struct cut	 cut = cut_best(im);
	uint32_t	 i = im->pages / 2, page = im->first + i, k, gen;
	uint32_t	*w = im->words + i * GUESTPAGE_WORDS;

	if (cut.bad != 0)
		fail_io("%s: not consistent to begin with (%" PRIu32
		    " pages contradict the best cut)", path, cut.bad);
	if (strcmp(kind, "torn") == 0) {
		gen = cut.gen >= 2 ? cut.gen - 2 : cut.gen + 1;
		for (k = 0; k < GUESTPAGE_WORDS; k++)
			w[k] = guestpage_word(gen, page, k);
		printf("forged torn: page %" PRIu32 " holds generation %"
		    PRIu32 " (the cut is in generation %" PRIu32 ")\n",
		    page, gen, cut.gen);
	} else if (strcmp(kind, "split") == 0) {
		for (k = 0; k < GUESTPAGE_WORDS; k++)
			w[k] = guestpage_word(k < GUESTPAGE_WORDS / 2 ?
			    cut.gen - 1 : cut.gen, page, k);
		printf("forged split: page %" PRIu32 " holds generation %"
		    PRIu32 " up to word %u, then %" PRIu32 "\n", page,
		    cut.gen - 1, GUESTPAGE_WORDS / 2, cut.gen);
	} else if (strcmp(kind, "flip") == 0) {
		w[100] ^= 1;
		printf("forged flip: page %" PRIu32 " word 100 has bit 0 "
		    "flipped\n", page);
	} else
		usage();
	image_write_page(path, im, i);
}

/* The numbers of the last complete progress line of the guest's serial
 * output, as one JSON object. */
static int
serial_progress(const char *path)
{
	unsigned long long	 gen, page, writes, mismatches, v[4];
	char			*line = NULL;
	size_t			 cap = 0;
	ssize_t			 len;
	FILE			*f;
	int			 found = 0, end;

	if ((f = fopen(path, "r")) == NULL)
		fail_io("%s: %s", path, strerror(errno));
	while ((len = getline(&line, &cap, f)) != -1) {
		/* The guest may be half way through its last line. */
		if (line[len - 1] != '\n')
			break;
		end = 0;
		if (sscanf(line, "guest: gen %llu page %llu writes %llu "
		    "mismatches %llu\n%n", &v[0], &v[1], &v[2], &v[3],
		    &end) != 4 || end != len)
			continue;
		gen = v[0];
		page = v[1];
		writes = v[2];
		mismatches = v[3];
		found = 1;
	}
	free(line);
	fclose(f);
	if (!found) {
		fprintf(stderr, "guestcheck: %s: no progress line\n", path);
		return 1;
	}
	printf("{\"gen\": %llu, \"page\": %llu, \"writes\": %llu, "
	    "\"mismatches\": %llu}\n", gen, page, writes, mismatches);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json",	no_argument,		NULL, 'j' },
		{ "pages",	required_argument,	NULL, 'p' },
		{ "forge",	required_argument,	NULL, 'f' },
		{ "serial",	required_argument,	NULL, 's' },
		{ NULL,		0,			NULL, 0 },
	};
	struct image	 im = { GUESTPAGE_FIRST, GUESTPAGE_LAST, 0, NULL, NULL };
	const char	*forge = NULL, *serial = NULL;
	uint32_t	 i;
	int		 ch, json = 0, rc;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j': json = 1; break;
		case 'p': pages_parse(optarg, &im.first, &im.last); break;
		case 'f': forge = optarg; break;
		case 's': serial = optarg; break;
		default: usage();
		}
	}
	if (serial != NULL) {
		if (argc != optind || forge != NULL)
			usage();
		return serial_progress(serial);
	}
	if (argc - optind != 1)
		usage();
	im.pages = im.last - im.first + 1;
	image_read(argv[optind], &im);
	for (i = 0; i < im.pages; i++)
		page_classify(&im, i);
	if (forge != NULL) {
		image_forge(argv[optind], &im, forge);
		rc = 0;
	} else
		rc = check_report(&im, json);
	free(im.words);
	free(im.class);
	return rc;
}
