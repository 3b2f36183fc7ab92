/*
 * snapctl delete NAME: remove a finished snapshot's file or raw directory
 * (snapshot-delete).  snapd checks the name and who may remove it; snapctl
 * never touches the snapshot directory itself.
 */
#include <stdio.h>

#include "snapctl.h"

static int	cmd_delete_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_delete_entry = {
	.name = "delete",
	.args = "NAME",
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_DAEMON,
	.help = "remove a finished snapshot",
	.exec = cmd_delete_exec,
};

static int
cmd_delete_exec(struct ctl *ctl, int argc, char **argv)
{
	json_t	*ret;
	int	 status;

	ret = ctl_execute(ctl, "snapshot-delete",
	    json_pack("{s:s}", "name", argv[0]), &status);
	if (ret == NULL)
		return status;
	if (ctl->json)
		ctl_print_json(ret);
	json_decref(ret);
	return EXIT_OK;
}
