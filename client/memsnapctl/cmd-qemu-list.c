/*
 * memsnapctl qemu-list: the VM snapshots in the caller's snapshot directory,
 * from their manifests: name, when saved, QEMU and machine, RAM, and
 * whether the RAM snapshot is complete.
 */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "qemustore.h"
#include "memsnapctl.h"

static int	cmd_qemu_list_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_qemu_list_entry = {
	.name = "qemu-list",
	.args = { "", 0, 0 },
	.flags = CMD_DAEMON,
	.help = "list VM snapshots",
	.exec = cmd_qemu_list_exec,
};

/* One VM snapshot as a JSON object, from directory path. */
static json_t *
qlist_entry(const char *path, const char *name)
{
	char	 err[512], ram[PATH_MAX + 32];
	json_t	*m, *b, *o;
	uint64_t bytes = 0;
	size_t	 i;

	if ((m = qemustore_read_manifest(path, err, sizeof(err))) == NULL)
		return json_pack("{s:s, s:s, s:s}", "name", name, "state",
		    "incomplete", "error", err);
	json_array_foreach(json_object_get(m, "blocks"), i, b)
		bytes += json_u64(b, "size");
	o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:s}", "name", name,
	    "state", qemustore_ram_file(path, m, ram, sizeof(ram)) ?
	    "complete" : "saving or failed", "saved", json_str(m, "saved", ""),
	    "qemu", json_str(json_object_get(m, "qemu"), "version", ""),
	    "ram-bytes", (json_int_t)bytes, "running",
	    json_is_true(json_object_get(m, "running")), "machine",
	    json_str(m, "machine", ""), "dir", path);
	json_decref(m);
	return o;
}

static int
cmd_qemu_list_exec(struct ctl *ctl, int argc, char **argv)
{
	char		 top[PATH_MAX], path[PATH_MAX * 2], name[256], size[32];
	struct dirent	*de;
	struct table	*t;
	json_t		*all = json_array(), *e;
	size_t		 i, len, slen = strlen(QEMUSTORE_SUFFIX);
	DIR		*d;
	int		 rc;

	if ((rc = qemustore_top(ctl, top, sizeof(top))) != 0)
		return rc;
	if ((d = opendir(top)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			len = strlen(de->d_name);
			if (de->d_name[0] == '.' || len <= slen ||
			    strcmp(de->d_name + len - slen,
			    QEMUSTORE_SUFFIX) != 0)
				continue;
			snprintf(name, sizeof(name), "%.*s", (int)(len - slen),
			    de->d_name);
			snprintf(path, sizeof(path), "%s/%s", top, de->d_name);
			json_array_append_new(all, qlist_entry(path, name));
		}
		closedir(d);
	}
	if (ctl->json) {
		ctl_print_json(all);
		json_decref(all);
		return EXIT_OK;
	}
	t = table_new(6, "NAME", "STATE", "SAVED", "QEMU", "MACHINE", "RAM>");
	json_array_foreach(all, i, e)
		table_add(t, json_str(e, "name", ""), json_str(e, "state", ""),
		    json_str(e, "saved", ""), json_str(e, "qemu", ""),
		    json_str(e, "machine", ""), fmt_bytes(json_u64(e,
		    "ram-bytes"), size, sizeof(size)));
	table_print(t);
	json_decref(all);
	return EXIT_OK;
}
