/*
 * Test hooks: requests that let the test suite create a condition (a full
 * buffer, snapshots overlapping, a snapshot that stays running) instead of
 * hoping timing produces it.  They are refused unless snapd was started
 * with SNAPD_TEST_HOOKS=1 in its environment, which no unit we ship sets;
 * snapd(8) documents them under TEST HOOKS.
 */
#ifndef SNAPD_TESTHOOKS_H
#define SNAPD_TESTHOOKS_H

#include <jansson.h>

#include "snapshot.h"

/* Read SNAPD_TEST_HOOKS and SNAPD_TEST_PAUSE_DIR; main(), once, at start. */
void		 testhooks_init(void);
/* 1 if this snapd accepts test hooks (SNAPD_TEST_HOOKS=1 at start). */
int		 testhooks_enabled(void);
/* SNAPD_TEST_PAUSE_DIR (testpause.h), "" when unset or hooks are off. */
const char	*testhooks_pause_dir(void);

/*
 * Fill req's hold from snapshot-start's "test-hold" argument (NULL: none).
 * Returns 0, or -1 with why set.
 */
int		 testhooks_hold(const json_t *arg, struct snapshot_request *req,
		    char *why, size_t whylen);

#endif /* SNAPD_TESTHOOKS_H */
