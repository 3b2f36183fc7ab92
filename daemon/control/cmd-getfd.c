/*
 * getfd and closefd: keep a descriptor sent with SCM_RIGHTS on the
 * connection under a name (as QMP does), or drop it.  snapshot-start then
 * takes its userfaultfd by that name.
 */
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "control.h"
#include "cmd.h"

static const struct cmd_arg cmd_getfd_args[] = {
	{ "fdname", CMD_ARG_STRING, 1 },
	{ NULL, 0, 0 }
};

static int
cmd_fdname_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SNAPD_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
			return 0;
	return 1;
}

static enum cmd_retval
cmd_getfd_exec(struct cmd_ctx *ctx)
{
	const char	*name;
	int		 fd;

	name = json_string_value(json_object_get(ctx->args, "fdname"));
	if (!cmd_fdname_valid(name))
		return cmd_error(ctx, SNAPD_ERR_INVALID, "getfd: fdname must "
		    "be 1 to %d printable characters without blanks",
		    SNAPD_NAME_MAX);
	if (ctx->nfds != 1)
		return cmd_error(ctx, SNAPD_ERR_INVALID, "getfd: expected "
		    "exactly one file descriptor with the message (SCM_RIGHTS), "
		    "got %d", ctx->nfds);
	fd = ctx->fds[0];
	ctx->fds[0] = -1;
	if (control_fd_store(ctx->conn, name, fd) == -1)
		return cmd_error(ctx, SNAPD_ERR_BUSY, "getfd: this connection "
		    "already holds %d descriptors", SNAPD_FDS_PER_CONNECTION_MAX);
	return CMD_RETURN;
}

static enum cmd_retval
cmd_closefd_exec(struct cmd_ctx *ctx)
{
	const char *name;

	name = json_string_value(json_object_get(ctx->args, "fdname"));
	if (control_fd_close(ctx->conn, name) == -1)
		return cmd_error(ctx, SNAPD_ERR_NOT_FOUND, "closefd: no "
		    "descriptor named '%.64s' on this connection", name);
	return CMD_RETURN;
}

const struct cmd_entry cmd_getfd_entry = {
	.name = "getfd",
	.args = cmd_getfd_args,
	.exec = cmd_getfd_exec,
};

const struct cmd_entry cmd_closefd_entry = {
	.name = "closefd",
	.args = cmd_getfd_args,
	.exec = cmd_closefd_exec,
};
