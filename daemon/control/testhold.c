/*
 * The "test-hold" argument of snapshot-start (testhold.h), accepted only
 * when the test-hook switch is on (testpause.h).
 *
 * "test-hold": {"until": U, "at": A} holds the snapshot's writer once, at
 * A, until U:
 *   U "buffer-full"		a fault has waited for a free buffer slot
 *   U "running", "count": N	N snapshots have been running at once
 *   U "cancel"			the snapshot is cancelled
 *   U "discard"			the process discarded, unmapped or moved
 *				memory (the writer drains the buffer meanwhile)
 *   U "release"			a test-release command names the snapshot
 *				(the writer drains the buffer meanwhile)
 *   A "armed" (the default)	after the armed reply and the output is
 *				open, before any drain or sweep
 *   A "arming"			protected, before the armed instant (the
 *				process is still paused)
 *   A "half-swept"		half of the pages saved
 *   A "finishing"		every page saved, before index and rename
 *   A "done"			the final state set, before the main thread
 *				learns it (only the condition ends this one)
 *
 * Every hold but one at "done" also ends on failure, cancel or the
 * process's exit; every hold after SNAPSHOT_HOLD_MAX_MS (snapshot.h).  All
 * are logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "testhold.h"
#include "testpause.h"

int
testhold_parse(const json_t *arg, struct snapshot_request *req, char *why,
    size_t whylen)
{
	static const char *const at_names[] = {
		[SNAPSHOT_HOLD_AT_ARMED] = "armed",
		[SNAPSHOT_HOLD_AT_ARMING] = "arming",
		[SNAPSHOT_HOLD_AT_HALF] = "half-swept",
		[SNAPSHOT_HOLD_AT_FINISHING] = "finishing",
		[SNAPSHOT_HOLD_AT_DONE] = "done",
	};
	const char	*until, *at;
	json_t		*count;
	size_t		 i;

	if (arg == NULL)
		return 0;
	if (!testpause_enabled()) {
		snprintf(why, whylen, "test-hold is a test hook: this snapd "
		    "was not started with SNAPD_TEST_HOOKS=1");
		return -1;
	}
	{
		const char	*key;
		json_t		*v;

		json_object_foreach((json_t *)arg, key, v)
			if (strcmp(key, "until") != 0 &&
			    strcmp(key, "count") != 0 && strcmp(key, "at") != 0) {
				snprintf(why, whylen, "test-hold: unknown member "
				    "'%.64s'", key);
				return -1;
			}
	}
	until = json_string_value(json_object_get(arg, "until"));
	count = json_object_get(arg, "count");
	if ((at = json_string_value(json_object_get(arg, "at"))) != NULL) {
		for (i = 0; i < sizeof(at_names) / sizeof(at_names[0]); i++)
			if (strcmp(at, at_names[i]) == 0)
				break;
		if (i == sizeof(at_names) / sizeof(at_names[0])) {
			snprintf(why, whylen, "test-hold: \"at\" must be "
			    "\"armed\", \"arming\", \"half-swept\", "
			    "\"finishing\" or \"done\"");
			return -1;
		}
		req->hold_at = (enum snapshot_hold_at)i;
	} else if (json_object_get(arg, "at") != NULL) {
		snprintf(why, whylen, "test-hold: \"at\" must be a string");
		return -1;
	}
	if (until == NULL)
		snprintf(why, whylen, "test-hold needs \"until\": "
		    "\"buffer-full\", \"running\", \"cancel\", "
		    "\"discard\" or \"release\"");
	else if (strcmp(until, "buffer-full") == 0 && count == NULL)
		req->hold = SNAPSHOT_HOLD_BUFFER_FULL;
	else if (strcmp(until, "cancel") == 0 && count == NULL)
		req->hold = SNAPSHOT_HOLD_CANCEL;
	else if (strcmp(until, "discard") == 0 && count == NULL)
		req->hold = SNAPSHOT_HOLD_DISCARD;
	else if (strcmp(until, "release") == 0 && count == NULL)
		req->hold = SNAPSHOT_HOLD_RELEASE;
	else if (strcmp(until, "running") == 0 && json_is_integer(count) &&
	    json_integer_value(count) >= 1 &&
	    json_integer_value(count) <= 1024) {
		req->hold = SNAPSHOT_HOLD_RUNNING;
		req->hold_count = (unsigned)json_integer_value(count);
	} else
		snprintf(why, whylen, "test-hold: \"until\" must be "
		    "\"buffer-full\", \"cancel\", \"discard\", "
		    "\"release\", or \"running\" with a \"count\" of "
		    "1..1024");
	return req->hold == SNAPSHOT_HOLD_NONE ? -1 : 0;
}
