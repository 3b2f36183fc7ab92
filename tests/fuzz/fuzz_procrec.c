/*
 * libFuzzer target for the process record's decoder (proto/procrec.c):
 * its bytes come from snapshot files anyone can craft, and memsnapctl info,
 * verify, export and the core export all decode them.
 *
 * Each input is decoded twice: as it is, and with its trailing crc32c
 * recomputed, so that mutations reach the checks behind the checksum.
 * Properties checked besides the sanitizers': a rejection always says
 * why and leaves the record empty; an accepted record re-encodes, its
 * encoding decodes to a record that encodes to the same bytes again (the
 * encoding is canonical after one round), and the decoder never keeps
 * more than a small multiple of the input in memory (checked through the
 * sizes of what it returned).
 *
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "procrec.h"
#include "zsnap.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void __attribute__((noreturn))
fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_procrec: property violated: %s\n", what);
	abort();
}

/* Bytes the decoded record holds: bounded by what the input held. */
static size_t
record_bytes(const struct procrec *rec)
{
	size_t n = (size_t)rec->thread_count * sizeof(*rec->threads) +
	    (size_t)rec->mapping_count * sizeof(*rec->mappings) + rec->auxv_len;

	for (uint32_t i = 0; i < rec->mapping_count; i++)
		n += strlen(rec->mappings[i].path) + 1 +
		    strlen(rec->mappings[i].reason) + 1;
	return n;
}

static void
fuzz_one(const uint8_t *data, size_t size)
{
	struct procrec	 rec, again;
	uint8_t		*a, *b;
	size_t		 alen, blen;
	char		 why[256];

	if (procrec_decode(data, size, &rec, why, sizeof(why)) == -1) {
		if (why[0] == '\0' || errno == 0)
			fuzz_fail("a rejection without a reason or errno");
		if (rec.threads != NULL || rec.mappings != NULL ||
		    rec.auxv != NULL || rec.thread_count != 0)
			fuzz_fail("a rejected record is not left empty");
		return;
	}
	/* A mapping of 60 bytes becomes a struct and two short strings. */
	if (record_bytes(&rec) > 16 * size + 4096)
		fuzz_fail("the decoded record is far larger than its bytes");
	if (procrec_encode(&rec, &a, &alen) == -1)
		fuzz_fail("an accepted record does not encode");
	if (procrec_decode(a, alen, &again, why, sizeof(why)) == -1)
		fuzz_fail("a re-encoded record does not decode");
	if (procrec_encode(&again, &b, &blen) == -1)
		fuzz_fail("a twice-decoded record does not encode");
	if (alen != blen || memcmp(a, b, alen) != 0)
		fuzz_fail("encoding is not stable after one round");
	free(a);
	free(b);
	procrec_free(&again);
	procrec_free(&rec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t	*copy;

	fuzz_one(data, size);
	if (size < 4 || (copy = malloc(size)) == NULL)
		return 0;
	memcpy(copy, data, size);
	zsnap_put32(copy + size - 4, crc32c(0, copy, size - 4));
	fuzz_one(copy, size);
	free(copy);
	return 0;
}
