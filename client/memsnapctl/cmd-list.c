/*
 * memsnapctl list: every snapshot snapd will show this user (query-snapshots),
 * running and recently finished, as an aligned table.  The last column is
 * the file, or why the snapshot failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "memsnapctl.h"

static int	cmd_list_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_list_entry = {
	.name = "list",
	.args = { "", 0, 0 },
	.flags = CMD_DAEMON,
	.help = "list snapshots, running and finished",
	.exec = cmd_list_exec,
};

static int
cmd_list_exec(struct ctl *ctl, int argc, char **argv)
{
	struct table	*t;
	json_t		*ret, *e;
	size_t		 i;
	uint64_t	 saved, total;
	char		 id[24], pid[24], progress[64], size[32], time[32];
	char		 detail[1024];
	const char	*state;
	int		 status;

	if ((ret = ctl_execute(ctl, "query-snapshots", NULL,
	    &status)) == NULL)
		return status;
	if (ctl->json) {
		ctl_print_json(ret);
		json_decref(ret);
		return EXIT_OK;
	}
	if (json_array_size(ret) == 0) {
		json_decref(ret);
		return EXIT_OK;
	}
	t = table_new(8, "ID>", "NAME", "STATE", "PID>", "PAGES>", "WRITTEN>",
	    "TIME>", "FILE");
	json_array_foreach(ret, i, e) {
		saved = json_u64(e, "pages-saved");
		total = json_u64(e, "pages-total");
		state = json_str(e, "state", "?");
		snprintf(id, sizeof(id), "%" PRIu64, json_u64(e, "id"));
		snprintf(pid, sizeof(pid), "%" PRIu64, json_u64(e, "pid"));
		snprintf(progress, sizeof(progress), "%" PRIu64 "/%" PRIu64
		    " %3d%%", saved, total, total > 0 ?
		    (int)(saved * 100 / total) : 0);
		fmt_bytes(json_u64(e, "bytes-written"), size, sizeof(size));
		fmt_duration_us(json_u64(e, "duration-us"), time,
		    sizeof(time));
		if (json_object_get(e, "error") != NULL)
			snprintf(detail, sizeof(detail), "(%s)",
			    json_str(e, "error", ""));
		else
			snprintf(detail, sizeof(detail), "%s",
			    json_str(e, "file", ""));
		table_add(t, id, json_str(e, "name", ""), state, pid,
		    progress, size, time, detail);
	}
	table_print(t);
	json_decref(ret);
	return EXIT_OK;
}
