/*
 * memsnapctl cancel ID: stop a running snapshot (snapshot-cancel).  snapd
 * drops the protection and removes the partial file; the snapshot then
 * ends as cancelled.  On a completed snapshot that tracks its process's
 * writes (save --track) it ends the tracking instead, and the file stays.
 * Prints nothing on success (the reply with -j).
 */
#include <stdio.h>

#include "memsnapctl.h"

static int	cmd_cancel_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_cancel_entry = {
	.name = "cancel",
	.args = { "ID", 1, 1 },
	.flags = CMD_DAEMON,
	.help = "stop a running snapshot, or end a snapshot's tracking",
	.exec = cmd_cancel_exec,
};

static int
cmd_cancel_exec(struct ctl *ctl, int argc, char **argv)
{
	uint64_t	id;

	if (ctl_parse_id(argv[0], &id) == -1)
		usage_error("cancel: not a snapshot id: %s", argv[0]);
	return ctl_execute_quiet(ctl, "snapshot-cancel",
	    json_pack("{s:I}", "id", (json_int_t)id));
}
