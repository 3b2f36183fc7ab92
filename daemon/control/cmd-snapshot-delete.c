/*
 * snapshot-delete: remove a finished snapshot (NAME.zsnap, or the NAME.raw
 * directory) from the peer's own snapshot directory; root's is the top
 * directory.  The peer names a snapshot, never a path.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "log.h"
#include "config.h"
#include "control.h"
#include "paths.h"
#include "snapshots.h"
#include "chain.h"
#include "cmd.h"

static enum cmd_retval
cmd_snapshot_delete_exec(struct cmd_ctx *ctx)
{
	const char	*name;
	char		 dir[PATH_MAX], err[512], dep[NAME_MAX + 1];
	int		 dirfd, rv, saved;

	name = json_string_value(json_object_get(ctx->args, "name"));
	if (!paths_name_valid(name))
		return cmd_error(ctx, SNAPD_ERR_INVALID, "snapshot-delete: "
		    "invalid name (use " SNAPD_NAME_RULE ")");
	dirfd = paths_peer_dir(config_get()->snapshot_dir, ctx->conn->uid,
	    ctx->conn->gid, dir, sizeof(dir), err, sizeof(err));
	if (dirfd == -1)
		return cmd_error(ctx, SNAPD_ERR_GENERIC, "snapshot-delete: %s",
		    err);
	if (snapshots_find_running(dir, name) != NULL) {
		close(dirfd);
		return cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-delete: "
		    "snapshot '%s' is still running; cancel it first", name);
	}
	if ((rv = chain_delete_check(dirfd, dir, name, dep,
	    sizeof(dep))) != 0) {
		saved = errno;
		close(dirfd);
		if (rv == -1)
			return cmd_error(ctx, SNAPD_ERR_GENERIC,
			    "snapshot-delete: read %s: %s", dir,
			    strerror(saved));
		return cmd_error(ctx, SNAPD_ERR_BUSY, "snapshot-delete: "
		    "snapshot '%s' is the parent of %s in %s, an incremental "
		    "snapshot that needs it: delete that one first, or fold "
		    "the chain into one full snapshot (memsnapctl merge)",
		    name, dep, dir);
	}
	rv = paths_delete(dirfd, name, err, sizeof(err));
	saved = errno;
	close(dirfd);
	if (rv == -1)
		return cmd_error(ctx, saved == ENOENT ? SNAPD_ERR_NOT_FOUND :
		    SNAPD_ERR_GENERIC, "snapshot-delete: %s: %s", dir, err);
	log_info("snapshot '%s' in %s deleted by uid %u", name, dir,
	    (unsigned)ctx->conn->uid);
	return CMD_RETURN;
}

const struct cmd_entry cmd_snapshot_delete_entry = {
	.name = "snapshot-delete",
	.args = CMD_ARGS({ "name", CMD_ARG_STRING, 1 }),
	.exec = cmd_snapshot_delete_exec,
};
