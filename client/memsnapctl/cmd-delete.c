/*
 * memsnapctl delete NAME: remove a finished snapshot's file or raw directory
 * (snapshot-delete).  snapd checks the name and who may remove it; memsnapctl
 * never touches the snapshot directory itself.
 */
#include <stdio.h>

#include "memsnapctl.h"

static int	cmd_delete_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_delete_entry = {
	.name = "delete",
	.args = { "NAME", 1, 1 },
	.flags = CMD_DAEMON,
	.help = "remove a finished snapshot",
	.exec = cmd_delete_exec,
};

static int
cmd_delete_exec(struct ctl *ctl, int argc, char **argv)
{
	return ctl_execute_quiet(ctl, "snapshot-delete",
	    json_pack("{s:s}", "name", argv[0]));
}
