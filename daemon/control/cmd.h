/*
 * Control commands, in tmux's manner: every command is one file
 * (cmd-<name>.c) holding its entry, cmd_<name>_entry (name, argument spec,
 * flags, exec), with the spec and the exec static beside it, and one line
 * in cmd_table[] (cmd.c), the only list of them.  memsnapctl's commands
 * (client/memsnapctl/) read the same way.  The dispatcher in control.c checks,
 * once for every command, that it exists, that capabilities were
 * negotiated (CMD_BEFORE_NEGOTIATION), and the shape of the arguments
 * against the spec (unknown members, missing required ones, wrong JSON
 * types), so a command's exec sees only well-formed arguments and checks
 * their values.  Who may do what is the command's own check, against its
 * arguments (snapshot-start's pid, cmd_snapshot_lookup's owner), since no
 * command is refused to a peer outright.
 *
 * Everything runs on the main thread.
 */
#ifndef SNAPD_CMD_H
#define SNAPD_CMD_H

#include <stddef.h>

#include <jansson.h>

struct conn;
struct snap_entry;

/* What an exec did. */
enum cmd_retval {
	CMD_RETURN,	/* reply {"return": ctx->ret} (or {} if NULL) */
	CMD_ERROR,	/* reply {"error": ctx->err_class, ctx->err_desc} */
	CMD_DEFER,	/* the command replies later (control_reply()) */
};

struct cmd_ctx {
	struct conn	*conn;		/* the peer that asked */
	json_t		*args;		/* borrowed; always an object */
	json_t		*id;		/* borrowed; NULL if absent */
	int		*fds;		/* fds that came with this message: */
	int		 nfds;		/* take one by setting its slot to -1 */
	json_t		*ret;		/* CMD_RETURN: a new reference, or NULL */
	const char	*err_class;	/* CMD_ERROR: SNAPD_ERR_* */
	char		 err_desc[512];
};

enum cmd_arg_type {
	CMD_ARG_STRING,
	CMD_ARG_INT,
	CMD_ARG_BOOL,
	CMD_ARG_ARRAY,
	CMD_ARG_OBJECT,
};

/* One argument a command takes; a spec is an array ending with a NULL name. */
struct cmd_arg {
	const char		*name;		/* NULL ends a spec */
	enum cmd_arg_type	 type;
	int			 required;
};

/*
 * A command's argument spec, written in its entry:
 * .args = CMD_ARGS({ "id", CMD_ARG_INT, 1 }) adds the NULL name that ends it.
 */
#define CMD_ARGS(...)							\
	((const struct cmd_arg[]){ __VA_ARGS__, { NULL, 0, 0 } })

#define CMD_BEFORE_NEGOTIATION	0x1	/* only before qmp_capabilities */

struct cmd_entry {
	const char		*name;
	const struct cmd_arg	*args;		/* NULL: takes no arguments */
	int			 flags;
	enum cmd_retval		(*exec)(struct cmd_ctx *);
};

const struct cmd_entry *cmd_find(const char *name);

/* Check args (an object) against the entry's spec; -1 with a message. */
int		cmd_check_args(const struct cmd_entry *entry, json_t *args,
		    char *err, size_t errlen);

/* Set the error of ctx and return CMD_ERROR. */
enum cmd_retval	cmd_error(struct cmd_ctx *ctx, const char *class,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The snapshot a command names by its "id" argument (an integer the spec
 * requires), if it exists and the peer may see it, and, with need_running,
 * has not finished.  Otherwise NULL, with ctx's error set (NotFound,
 * PermissionDenied, GenericError), each message starting "verb: ".
 */
struct snap_entry *cmd_snapshot_lookup(struct cmd_ctx *ctx, const char *verb,
		    int need_running);

/* One entry per cmd-*.c file; cmd_table[] (cmd.c) lists them. */
extern const struct cmd_entry	cmd_capabilities_entry;
extern const struct cmd_entry	cmd_query_version_entry;
extern const struct cmd_entry	cmd_query_status_entry;
extern const struct cmd_entry	cmd_query_metrics_entry;
extern const struct cmd_entry	cmd_query_config_entry;
extern const struct cmd_entry	cmd_getfd_entry;
extern const struct cmd_entry	cmd_closefd_entry;
extern const struct cmd_entry	cmd_snapshot_start_entry;
extern const struct cmd_entry	cmd_snapshot_arm_entry;
extern const struct cmd_entry	cmd_snapshot_cancel_entry;
extern const struct cmd_entry	cmd_query_snapshots_entry;
extern const struct cmd_entry	cmd_snapshot_delete_entry;
extern const struct cmd_entry	cmd_test_release_entry;

#endif /* SNAPD_CMD_H */
