/*
 * What the bundled workloads (snapwork, snapbench, snaprace) share: option
 * parsing, die(), a clock and a mixer.  Every .c file beside this header
 * is linked into every workload binary.
 */
#ifndef SNAPD_WORKLOAD_H
#define SNAPD_WORKLOAD_H

#include <stdint.h>

/* "512M", "1G", "4KiB", "123": bytes; 0 or -1 if not a size. */
int	parse_size(const char *s, uint64_t *out);
/* A decimal number up to max; 0 or -1. */
int	parse_uint(const char *s, unsigned max, unsigned *out);

/* Print "PROGRAM: message" on stderr (stdout flushed first) and exit 1. */
void	die(const char *fmt, ...)
	    __attribute__((noreturn, format(printf, 1, 2)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t	now_ns(void);
/* A 64-bit mix of x (splitmix64's finalizer): the workloads' page bytes
 * are built from it, so it must never change. */
uint64_t	mix64(uint64_t x);
/* qsort(3) comparison of two uint64_t. */
int		cmp_u64(const void *a, const void *b);

/* The 4 KiB page content of snapbench and holdwork (textfill.c): half
 * pseudo-random, half text-like.  textfill_init() makes the 16 MiB text
 * pool once (dies if it cannot); textfill_page() writes page i's bytes at
 * generation gen. */
#define TEXTFILL_PAGE	4096u
void		textfill_init(void);
void		textfill_page(uint8_t *page, uint64_t i, uint64_t gen);

#endif /* SNAPD_WORKLOAD_H */
