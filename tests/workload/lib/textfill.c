/*
 * The bytes of snapbench's pages, shared with holdwork (see workload.h):
 * half of every 4 KiB page pseudo-random, half text-like (words of an
 * English-like vocabulary, from a 16 MiB pool of snippets), so that zstd
 * has real work: neither incompressible nor trivial (zstd -3 makes it
 * about 67 % of its size).  These bytes must never change: benchmarks
 * compare runs against them.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define HALF_PAGE	(TEXTFILL_PAGE / 2)
#define POOL_SNIPPETS	8192u		/* text snippets of HALF_PAGE bytes */

static char	*pool;		/* POOL_SNIPPETS text snippets */

static const char *const vocabulary[] = {
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
	"was", "with", "be", "by", "on", "not", "he", "this", "are", "or",
	"his", "from", "at", "which", "but", "have", "an", "had", "they",
	"you", "were", "their", "one", "all", "we", "can", "her", "has",
	"there", "been", "if", "more", "when", "will", "would", "who", "so",
	"no", "snapshot", "memory", "page", "daemon", "writer", "fault",
	"buffer", "region", "process", "kernel", "thread", "compress",
	"request", "response", "session", "user", "value", "key", "index",
	"record", "table", "column", "string", "number", "timestamp",
	"status", "error", "warning", "info", "debug", "GET", "SET", "HTTP",
	"200", "404", "500", "2024-05-17", "12:04:33", "id=", "uid=",
	"true", "false", "null", "{", "}", "[", "]", ":", ",", "\"name\"",
	"\"count\"", "\"items\"", "localhost", "example.org", "/var/lib",
	"/usr/share", "application/json", "text/plain", "Mozilla/5.0",
};
#define VOCABULARY_SIZE	(sizeof(vocabulary) / sizeof(vocabulary[0]))

void
textfill_init(void)
{
	uint64_t state = 0x7e57da7a, r = 0;
	size_t pos = 0, end = (size_t)POOL_SNIPPETS * HALF_PAGE, len;
	const char *w;
	unsigned bits = 0;

	if (pool != NULL)
		return;
	if ((pool = malloc(end)) == NULL)
		die("text pool of %zu bytes: %s", end, strerror(errno));
	while (pos < end) {
		if (bits < 16) {
			state += 0x9e3779b97f4a7c15ull;
			r = mix64(state);
			bits = 64;
		}
		/* Two draws, the smaller wins: frequent words stay frequent. */
		{
			unsigned a = (r & 0xff) % VOCABULARY_SIZE;
			unsigned b = ((r >> 8) & 0xff) % VOCABULARY_SIZE;

			w = vocabulary[a < b ? a : b];
		}
		r >>= 16;
		bits -= 16;
		len = strlen(w);
		if (pos + len + 1 > end)
			len = end - pos - 1;
		memcpy(pool + pos, w, len);
		pos += len;
		pool[pos++] = (r & 7) == 0 ? '\n' : ' ';
	}
}

void
textfill_page(uint8_t *page, uint64_t i, uint64_t gen)
{
	uint64_t *w = (uint64_t *)page, seed = mix64(i << 8 ^ gen);
	unsigned k;

	for (k = 0; k < HALF_PAGE / sizeof(uint64_t); k++)
		w[k] = mix64(seed + k);
	memcpy(page + HALF_PAGE, pool + (seed % POOL_SNIPPETS) * HALF_PAGE,
	    HALF_PAGE);
}
