/*
 * Debug-only test hooks, the engine's half: the switch (SNAPD_TEST_HOOKS=1
 * in snapd's environment at start, read by testpause_init(); testhold.h, in
 * the control layer, parses the hold a test asks for), and pause points:
 * pause a snapshot's writer or fault thread at one chosen page, so that the regression tests in tests/integration/races.sh
 * can land an exec, an exit or an mremap exactly between the claim of a
 * page and its read, instead of hoping timing produces it.
 *
 * Off unless SNAPD_TEST_HOOKS=1 was in the environment when snapd started
 * (testpause_enabled()); a production daemon never looks at the files
 * below.  With it, and SNAPD_TEST_PAUSE_DIR=DIR in snapd's environment
 * (set by whoever starts snapd, never by a client):
 *
 *   DIR/NAME.pause, read when snapshot NAME arms, holds up to one line
 *	"writer REGION PAGE" and one "fault REGION PAGE", and lines
 *	"attach PHASE" (testpause_phase(), for attach.h's phases).
 *   The writer thread (after claiming the sweep run holding that page,
 *   before reading it) or the fault thread (after claiming that page for a
 *   fault, before reading it) creates DIR/NAME.paused, then waits until
 *   DIR/NAME.go exists, at most TESTPAUSE_WAIT_S seconds.  Once per
 *   thread and snapshot.
 *
 * testpause_load() runs on the writer thread while arming; testpause_at()
 * on the writer or fault thread.  The pause state lives in struct snapshot
 * (hook_*, indexed by TESTPAUSE_WRITER/FAULT), written at arm before the
 * fault thread serves faults; after that only `hook_fired` changes
 * (atomically).
 */
#ifndef SNAPD_TESTPAUSE_H
#define SNAPD_TESTPAUSE_H

#include <stdint.h>

#define TESTPAUSE_WRITER		0
#define TESTPAUSE_FAULT		1
#define TESTPAUSE_WAIT_S		30

struct snapshot;

/* Read SNAPD_TEST_HOOKS and SNAPD_TEST_PAUSE_DIR; main(), once, at start. */
void	testpause_init(void);
/* 1 if this snapd accepts test hooks (SNAPD_TEST_HOOKS=1 at start). */
int	testpause_enabled(void);
void	testpause_load(struct snapshot *s);
/*
 * Pause the calling thread if DIR/NAME.pause holds the line "attach PHASE"
 * (attach.h names the phases).
 */
void	testpause_phase(const char *name, const char *phase);
/* Pause if [first, first+count) of region `region` holds the hook's page. */
void	testpause_at(struct snapshot *s, int where, uint32_t region,
	    uint64_t first, uint64_t count);

#endif /* SNAPD_TESTPAUSE_H */
