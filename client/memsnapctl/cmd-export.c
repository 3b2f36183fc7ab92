/*
 * memsnapctl export FILE --raw DIR|--core CORE: write a snapshot in
 * another form.  --raw: a raw directory, one sparse, mmap-able file per
 * region (snap_file_export_raw); an incremental snapshot is reconstructed
 * from its chain, as the memory was at its own armed instant, and a
 * broken chain refused.  --core: an ELF core file of a snapshot
 * taken by attach, for gdb (core.c).  The option may come before or after
 * FILE, and as --raw=DIR or --core=CORE.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "memsnapctl.h"

static int	cmd_export_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_export_entry = {
	.name = "export",
	.args = { "FILE --raw DIR|--core CORE", 2, 3 },
	.help = "write a snapshot as a raw directory or an ELF core",
	.exec = cmd_export_exec,
};

static int
export_raw(struct ctl *ctl, struct snap_file *f, const char *path,
    const char *dir)
{
	json_t	*o;

	if (snap_file_export_raw(f, dir) == -1)
		return ctl_file_failure(path, "export");
	if (ctl->json) {
		o = json_pack("{s:s, s:s}", "file", path, "raw", dir);
		ctl_print_json(o);
		json_decref(o);
	}
	return EXIT_OK;
}

static int
export_core(struct ctl *ctl, struct snap_file *f, const char *path,
    const char *core)
{
	struct core_stats	 st;
	char			 err[1024];
	json_t			*o;

	if (core_write(f, core, &st, err, sizeof(err)) == -1) {
		ctl_warnx("export: %s: %s", path, err);
		return EXIT_FAILED;
	}
	if (st.pages_lost > 0 && !ctl->json)
		ctl_warnx("export: %s: %" PRIu64 " pages were lost in the "
		    "snapshot; they are zero in %s", path, st.pages_lost, core);
	if (ctl->json) {
		o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
		    "file", path, "core", core,
		    "threads", (json_int_t)st.threads,
		    "mappings", (json_int_t)st.mappings,
		    "mappings-saved", (json_int_t)st.mappings_saved,
		    "bytes-saved", (json_int_t)st.bytes_saved,
		    "pages-lost", (json_int_t)st.pages_lost);
		ctl_print_json(o);
		json_decref(o);
	}
	return EXIT_OK;
}

/* "--NAME VALUE" or "--NAME=VALUE" at argv[*i]: the value, or NULL. */
static const char *
export_option(const char *name, int argc, char **argv, int *i)
{
	size_t	n = strlen(name);

	if (strcmp(argv[*i], name) == 0 && *i + 1 < argc)
		return argv[++*i];
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	return NULL;
}

static int
cmd_export_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file	*f;
	const char		*path = NULL, *dir = NULL, *core = NULL, *v;
	int			 i, rc;

	for (i = 0; i < argc; i++) {
		if ((v = export_option("--raw", argc, argv, &i)) != NULL)
			dir = v;
		else if ((v = export_option("--core", argc, argv, &i)) != NULL)
			core = v;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage_error("export: unknown option %s", argv[i]);
		else if (path == NULL)
			path = argv[i];
		else
			usage_error("export: more than one FILE");
	}
	if (dir != NULL && core != NULL)
		usage_error("export: --raw or --core, not both");
	if (path == NULL || (dir == NULL && core == NULL) ||
	    (dir != NULL && *dir == '\0') || (core != NULL && *core == '\0'))
		usage_error("export: need FILE and --raw DIR or --core CORE");

	if ((f = snap_file_open(path)) == NULL)
		return ctl_file_failure(path, "export");
	if (dir != NULL)
		rc = export_raw(ctl, f, path, dir);
	else
		rc = export_core(ctl, f, path, core);
	snap_file_close(f);
	return rc;
}
