/*
 * test-release: a test hook (testhold.h).  Ends the "release" hold of a
 * snapshot started with "test-hold": {"until": "release"}, so that the
 * test decides the moment its writer goes on.  Refused unless snapd was
 * started with SNAPD_TEST_HOOKS=1.
 */
#include "protocol.h"
#include "control.h"
#include "snapshots.h"
#include "testpause.h"
#include "cmd.h"

static enum cmd_retval
cmd_test_release_exec(struct cmd_ctx *ctx)
{
	struct snap_entry	*e;

	if (!testpause_enabled())
		return cmd_error(ctx, SNAPD_ERR_INVALID, "test-release is a "
		    "test hook: this snapd was not started with "
		    "SNAPD_TEST_HOOKS=1");
	if ((e = cmd_snapshot_lookup(ctx, "test-release", 1)) == NULL)
		return CMD_ERROR;
	snapshot_test_release(e->snap);
	return CMD_RETURN;
}

const struct cmd_entry cmd_test_release_entry = {
	.name = "test-release",
	.args = CMD_ARGS({ "id", CMD_ARG_INT, 1 }),
	.exec = cmd_test_release_exec,
};
