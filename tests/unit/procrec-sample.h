/*
 * procrec-sample.h: one fixed process record (proto/procrec.h) with a bit
 * of everything (threads with registers, live, stopped and skipped
 * mappings, paths and reasons, an auxv), for the tests that need a record
 * to round-trip, write into a snapshot or seed a fuzzer with:
 * test_procrec.c, test_format.c and tests/fuzz/make_seeds.c.
 *
 * Header-only, static: every .c file in tests/unit is a test binary of its
 * own.  The strings are literals and the arrays static, so a sample is
 * never freed: do not pass it to procrec_free().
 */
#ifndef SNAPD_TEST_PROCREC_SAMPLE_H
#define SNAPD_TEST_PROCREC_SAMPLE_H

#include <string.h>
#include <sys/mman.h>

#include "procrec.h"

#define SAMPLE_THREADS	3
#define SAMPLE_MAPPINGS	4

static struct procrec_thread	sample_threads[SAMPLE_THREADS];
static struct procrec_mapping	sample_mappings[SAMPLE_MAPPINGS] = {
	{ 0x555555554000, 0x555555556000, 0, 0x803, 1234,
	    PROT_READ | PROT_EXEC, 0, PROCREC_SKIPPED, -1,
	    (char *)"/usr/bin/sample", (char *)"file-backed, not written" },
	{ 0x555555558000, 0x555555559000, 0x4000, 0x803, 1234,
	    PROT_READ | PROT_WRITE, 0, PROCREC_STOPPED, 1,
	    (char *)"/usr/bin/sample", (char *)"private file-backed: cannot "
	    "be write-protected" },
	{ 0x555555560000, 0x555555581000, 0, 0, 0, PROT_READ | PROT_WRITE, 0,
	    PROCREC_LIVE, 0, (char *)"[heap]", (char *)"" },
	{ 0x7ffff7fc1000, 0x7ffff7fc5000, 0, 0, 0, PROT_READ,
	    PROCREC_M_SHARED, PROCREC_SKIPPED, -1, (char *)"[vvar]",
	    (char *)"vvar cannot be read" },
};
static uint8_t			sample_auxv[64];

/* Fill rec with the sample: the same bytes on every call. */
static inline void
procrec_sample(struct procrec *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->machine = 62;	/* EM_X86_64 */
	rec->pid = 4242;
	rec->ppid = 1;
	rec->pgrp = rec->sid = 4242;
	rec->uid = rec->gid = 1000;
	memcpy(rec->comm, "sample", 7);
	memcpy(rec->psargs, "sample --serve 6379", 20);
	for (uint32_t t = 0; t < SAMPLE_THREADS; t++) {
		struct procrec_thread *th = &sample_threads[t];

		memset(th, 0, sizeof(*th));
		th->tid = 4242 + t;
		th->flags = t == 0 ? PROCREC_T_INJECTED : PROCREC_T_IN_SYSCALL;
		th->sigpend = t;
		th->sigblk = 0x10000ull << t;
		for (int r = 0; r < PROCREC_GREGS; r++)
			th->regs[r] = 0x1000ull * (t + 1) + (uint64_t)r;
		for (int b = 0; b < PROCREC_FPREGS_SIZE; b++)
			th->fpregs[b] = (uint8_t)(b * 7 + t);
	}
	for (unsigned k = 0; k < sizeof(sample_auxv); k++)
		sample_auxv[k] = (uint8_t)(k * 3 + 1);
	rec->thread_count = SAMPLE_THREADS;
	rec->threads = sample_threads;
	rec->mapping_count = SAMPLE_MAPPINGS;
	rec->mappings = sample_mappings;
	rec->auxv_len = sizeof(sample_auxv);
	rec->auxv = sample_auxv;
}

#endif /* SNAPD_TEST_PROCREC_SAMPLE_H */
