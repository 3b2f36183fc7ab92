/*
 * memsnapctl qemu-delete NAME: remove VM snapshot NAME (its NAME.vm directory
 * and what qemu-save and qemu-restore wrote there), unless snapd is still
 * saving its RAM.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "qemustore.h"
#include "memsnapctl.h"

static int	cmd_qemu_delete_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_qemu_delete_entry = {
	.name = "qemu-delete",
	.args = { "NAME", 1, 1 },
	.flags = CMD_DAEMON,
	.help = "remove a VM snapshot",
	.exec = cmd_qemu_delete_exec,
};

static int
cmd_qemu_delete_exec(struct ctl *ctl, int argc, char **argv)
{
	char		 top[PATH_MAX], dir[PATH_MAX], err[512];
	json_t		*list, *e;
	size_t		 i, len;
	int		 rc;

	if ((rc = qemustore_top(ctl, top, sizeof(top))) != 0 ||
	    (rc = qemustore_path(top, argv[0], dir, sizeof(dir))) != 0)
		return rc;
	if ((list = ctl_execute(ctl, "query-snapshots", NULL, &rc)) == NULL)
		return rc;
	len = strlen(dir);
	json_array_foreach(list, i, e) {
		const char *file = json_str(e, "file", "");
		const char *state = json_str(e, "state", "");

		if (strncmp(file, dir, len) == 0 && file[len] == '/' &&
		    strcmp(state, "completed") != 0 &&
		    strcmp(state, "failed") != 0 &&
		    strcmp(state, "cancelled") != 0) {
			ctl_warnx("qemu-delete: snapd is still saving %s "
			    "(snapshot %llu, %s): cancel it first", argv[0],
			    (unsigned long long)json_u64(e, "id"), state);
			json_decref(list);
			return EXIT_FAILED;
		}
	}
	json_decref(list);
	if (qemustore_remove(dir, argv[0], err, sizeof(err)) == -1) {
		ctl_warnx("qemu-delete: %s", err);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}
