/*
 * Test hooks, the control layer's half: the "test-hold" argument that lets
 * the test suite create a condition (a full buffer, snapshots overlapping,
 * a snapshot that stays running) instead of hoping timing produces it.
 * Refused unless snapd was started with SNAPD_TEST_HOOKS=1 (testpause.h
 * has the switch), which no unit we ship sets; snapd(8) documents them.
 */
#ifndef SNAPD_TESTHOLD_H
#define SNAPD_TESTHOLD_H

#include <jansson.h>

#include "snapshot.h"

/*
 * Fill req's hold from snapshot-start's "test-hold" argument (NULL: none).
 * Returns 0, or -1 with why set.
 */
int		 testhold_parse(const json_t *arg, struct snapshot_request *req,
		    char *why, size_t whylen);

#endif /* SNAPD_TESTHOLD_H */
