/*
 * The command table and the argument-shape check the dispatcher (control.c)
 * runs before any command, and the lookup of the snapshot a command names
 * by id, which several commands share.  A new command is a new
 * cmd-<name>.c holding its cmd_<name>_entry, one extern in cmd.h and one
 * line in cmd_table[] here.  Main thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol.h"
#include "control.h"
#include "snapshots.h"
#include "cmd.h"

/* Every command snapd knows, in the order PROTOCOL.md lists them. */
static const struct cmd_entry *const cmd_table[] = {
	&cmd_capabilities_entry,
	&cmd_query_version_entry,
	&cmd_query_status_entry,
	&cmd_query_metrics_entry,
	&cmd_query_config_entry,
	&cmd_getfd_entry,
	&cmd_closefd_entry,
	&cmd_snapshot_start_entry,
	&cmd_snapshot_arm_entry,
	&cmd_snapshot_cancel_entry,
	&cmd_query_snapshots_entry,
	&cmd_snapshot_delete_entry,
	&cmd_test_release_entry,
};
#define CMD_NCOMMANDS	(sizeof(cmd_table) / sizeof(cmd_table[0]))

const struct cmd_entry *
cmd_find(const char *name)
{
	for (size_t i = 0; i < CMD_NCOMMANDS; i++)
		if (strcmp(cmd_table[i]->name, name) == 0)
			return cmd_table[i];
	return NULL;
}

static const char *
cmd_arg_type_name(enum cmd_arg_type type)
{
	switch (type) {
	case CMD_ARG_STRING:
		return "a string";
	case CMD_ARG_INT:
		return "an integer";
	case CMD_ARG_BOOL:
		return "a boolean";
	case CMD_ARG_ARRAY:
		return "an array";
	case CMD_ARG_OBJECT:
		return "an object";
	}
	return "?";
}

static int
cmd_arg_type_ok(enum cmd_arg_type type, json_t *v)
{
	switch (type) {
	case CMD_ARG_STRING:
		return json_is_string(v);
	case CMD_ARG_INT:
		return json_is_integer(v);
	case CMD_ARG_BOOL:
		return json_is_boolean(v);
	case CMD_ARG_ARRAY:
		return json_is_array(v);
	case CMD_ARG_OBJECT:
		return json_is_object(v);
	}
	return 0;
}

int
cmd_check_args(const struct cmd_entry *entry, json_t *args, char *err,
    size_t errlen)
{
	static const struct cmd_arg	 none[] = { { NULL, 0, 0 } };
	const struct cmd_arg		*spec, *a;
	const char			*key;
	json_t				*v;

	spec = entry->args != NULL ? entry->args : none;
	json_object_foreach(args, key, v) {
		for (a = spec; a->name != NULL; a++)
			if (strcmp(a->name, key) == 0)
				break;
		if (a->name == NULL) {
			snprintf(err, errlen, "%s: unknown parameter '%.64s'",
			    entry->name, key);
			return -1;
		}
		if (!cmd_arg_type_ok(a->type, v)) {
			snprintf(err, errlen, "%s: parameter '%s' must be %s",
			    entry->name, a->name, cmd_arg_type_name(a->type));
			return -1;
		}
	}
	for (a = spec; a->name != NULL; a++) {
		if (a->required && json_object_get(args, a->name) == NULL) {
			snprintf(err, errlen, "%s: parameter '%s' is missing",
			    entry->name, a->name);
			return -1;
		}
	}
	return 0;
}

enum cmd_retval
cmd_error(struct cmd_ctx *ctx, const char *class, const char *fmt, ...)
{
	va_list ap;

	ctx->err_class = class;
	va_start(ap, fmt);
	vsnprintf(ctx->err_desc, sizeof(ctx->err_desc), fmt, ap);
	va_end(ap);
	return CMD_ERROR;
}

struct snap_entry *
cmd_snapshot_lookup(struct cmd_ctx *ctx, const char *verb, int need_running)
{
	struct snap_entry	*e;
	json_int_t		 id;

	id = json_integer_value(json_object_get(ctx->args, "id"));
	if (id <= 0 || (e = snapshots_find((uint64_t)id)) == NULL) {
		cmd_error(ctx, SNAPD_ERR_NOT_FOUND, "%s: no snapshot with id "
		    "%lld", verb, (long long)id);
		return NULL;
	}
	if (!snapshots_visible(e, ctx->conn->uid)) {
		cmd_error(ctx, SNAPD_ERR_PERMISSION, "%s: snapshot %lld is not "
		    "yours", verb, (long long)id);
		return NULL;
	}
	if (need_running && (e->done || e->snap == NULL)) {
		cmd_error(ctx, SNAPD_ERR_GENERIC, "%s: snapshot %lld has "
		    "already finished", verb, (long long)id);
		return NULL;
	}
	return e;
}
