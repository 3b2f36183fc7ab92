/*
 * The page pattern of the test guest (tests/guest/guest.c), defined once
 * for the guest that writes it and for guestcheck
 * (tests/workload/guestcheck.c) that reads it back out of a RAM image.
 *
 * The guest rewrites pages FIRST..LAST of its RAM in generations
 * G = 1, 2, 3, ...: page after page in ascending order, word after word.
 * Word w of page P in generation G is guestpage_word(G, P, w); in
 * generation 0 (fresh RAM) every word is 0.  So any instant of the
 * guest's memory shows one cut (G, P, w): the pages before P hold
 * generation G, the pages after P generation G - 1, and page P holds
 * G in words 0..w-1 and G - 1 from word w on.
 *
 * The word is a bijection of G for a fixed (P, w): murmur3's 32-bit
 * finalizer of G xor a salt of the word's place.  So guestpage_gen() can
 * tell which generation any word holds, and a word of another place (a
 * page copied to the wrong address) or a flipped bit reads as some other
 * generation.  The salt has its top bit set and a generation never does,
 * so G xor salt is never 0 and neither is the word: a zero word is
 * always generation 0.
 *
 * Only 32-bit arithmetic: the guest is a freestanding i386 program
 * without libgcc.  Never change the pattern without rebuilding both.
 */
#ifndef SNAPD_GUESTPAGE_H
#define SNAPD_GUESTPAGE_H

#include <stdint.h>

#define GUESTPAGE_SIZE		4096u
#define GUESTPAGE_WORDS		(GUESTPAGE_SIZE / 4)

/* The default range in a 64 MiB guest: from 2 MiB (above the kernel,
 * loaded at 1 MiB, and its stack) to 132 KiB below the top of RAM. */
#define GUESTPAGE_FIRST		512u
#define GUESTPAGE_LAST		16351u

/* The largest generation the pattern can tell apart (the salt's top bit
 * is the generation's too). */
#define GUESTPAGE_GEN_MAX	0x7fffffffu
#define GUESTPAGE_NOT_A_GEN	0xffffffffu

static inline uint32_t
guestpage_salt(uint32_t page, uint32_t word)
{
	return ((page * GUESTPAGE_WORDS + word) * 0x9e3779b1u) | 0x80000000u;
}

/* murmur3's fmix32, and its inverse (each step undone in reverse order:
 * x ^= x >> 13 is undone by x ^= x >> 13 ^ x >> 26; the multipliers
 * are odd, so they have inverses modulo 2^32). */
static inline uint32_t
guestpage_fmix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	x *= 0xc2b2ae35u;
	x ^= x >> 16;
	return x;
}

static inline uint32_t
guestpage_unfmix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7ed1b41du;
	x ^= (x >> 13) ^ (x >> 26);
	x *= 0xa5cb9243u;
	x ^= x >> 16;
	return x;
}

/* Word `word' of page `page' in generation `gen' (0 for generation 0). */
static inline uint32_t
guestpage_word(uint32_t gen, uint32_t page, uint32_t word)
{
	if (gen == 0)
		return 0;
	return guestpage_fmix(gen ^ guestpage_salt(page, word));
}

/* The generation whose word `word' of page `page' is v, or
 * GUESTPAGE_NOT_A_GEN if v is no generation's. */
static inline uint32_t
guestpage_gen(uint32_t v, uint32_t page, uint32_t word)
{
	uint32_t	 gen;

	if (v == 0)
		return 0;
	/* A nonzero word decoding to 0 is no generation's either. */
	gen = guestpage_unfmix(v) ^ guestpage_salt(page, word);
	return gen == 0 || gen > GUESTPAGE_GEN_MAX ? GUESTPAGE_NOT_A_GEN : gen;
}

#endif /* SNAPD_GUESTPAGE_H */
