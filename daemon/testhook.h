/*
 * Debug-only test hooks: pause a snapshot's writer or fault thread at one
 * chosen page, so that the regression tests in tests/integration/races.sh
 * can land an exec, an exit or an mremap exactly between the claim of a
 * page and its read, instead of hoping timing produces it.
 *
 * Refused unless SNAPD_TEST_HOOKS=1 is in the environment when snapd starts
 * (testhook_init() reads it once, from main()); a production daemon never
 * looks at the files below.  With it, and SNAPD_TEST_PAUSE_DIR=DIR:
 *
 *   DIR/NAME.pause, read when snapshot NAME arms, holds up to one line
 *	"writer REGION PAGE" and one "fault REGION PAGE".
 *   The writer thread (after claiming the sweep run holding that page,
 *   before reading it) or the fault thread (after claiming that page for a
 *   fault, before reading it) creates DIR/NAME.paused, then waits until
 *   DIR/NAME.go exists, at most TESTHOOK_WAIT_S seconds.  Once per
 *   thread and snapshot.
 *
 * testhook_load() runs on the writer thread while arming; testhook_pause()
 * on the writer or fault thread.  The pause state lives in struct snapshot
 * (hook_*, indexed by TESTHOOK_WRITER/FAULT), written at arm before the
 * fault thread serves faults; after that only `hook_fired` changes
 * (atomically).
 */
#ifndef SNAPD_TESTHOOK_H
#define SNAPD_TESTHOOK_H

#include <stdint.h>

#define TESTHOOK_WRITER		0
#define TESTHOOK_FAULT		1
#define TESTHOOK_WAIT_S		30

struct snapshot;

void	testhook_init(void);
int	testhook_enabled(void);
void	testhook_load(struct snapshot *s);
/* Pause if [first, first+count) of region `region` holds the hook's page. */
void	testhook_pause(struct snapshot *s, int where, uint32_t region,
	    uint64_t first, uint64_t count);

#endif /* SNAPD_TESTHOOK_H */
