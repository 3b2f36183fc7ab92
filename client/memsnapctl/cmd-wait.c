/*
 * memsnapctl wait ID: wait for a snapshot to finish, showing its progress;
 * exit 0 if it completed, 1 if it failed or was cancelled (wait.c).
 */
#include "memsnapctl.h"

static int	cmd_wait_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_wait_entry = {
	.name = "wait",
	.args = { "ID", 1, 1 },
	.flags = CMD_DAEMON,
	.help = "wait for a snapshot, showing progress",
	.exec = cmd_wait_exec,
};

static int
cmd_wait_exec(struct ctl *ctl, int argc, char **argv)
{
	uint64_t	id;

	if (ctl_parse_id(argv[0], &id) == -1)
		usage_error("wait: not a snapshot id: %s", argv[0]);
	return ctl_wait(ctl, id);
}
