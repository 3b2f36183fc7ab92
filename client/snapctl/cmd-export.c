/*
 * snapctl export FILE --raw DIR: write a snapshot as a raw directory, one
 * sparse, mmap-able file per region (snap_file_export_raw).  --raw may come
 * before or after FILE, and as --raw=DIR.
 */
#include <stdio.h>
#include <string.h>

#include "snapctl.h"

static int	cmd_export_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_export_entry = {
	.name = "export",
	.args = { "FILE --raw DIR", 2, 3 },
	.help = "write a snapshot as a raw directory",
	.exec = cmd_export_exec,
};

static int
cmd_export_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file	*f;
	const char		*path = NULL, *dir = NULL;
	json_t			*o;
	int			 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strncmp(argv[i], "--raw=", 6) == 0)
			dir = argv[i] + 6;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage_error("export: unknown option %s", argv[i]);
		else if (path == NULL)
			path = argv[i];
		else
			usage_error("export: more than one FILE");
	}
	if (path == NULL || dir == NULL || *dir == '\0')
		usage_error("export: need FILE and --raw DIR");

	if ((f = snap_file_open(path)) == NULL)
		return ctl_file_failure(path, "export");
	if (snap_file_export_raw(f, dir) == -1) {
		snap_file_close(f);
		return ctl_file_failure(path, "export");
	}
	snap_file_close(f);
	if (ctl->json) {
		o = json_pack("{s:s, s:s}", "file", path, "raw", dir);
		ctl_print_json(o);
		json_decref(o);
	}
	return EXIT_OK;
}
