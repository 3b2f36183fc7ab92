/*
 * Control commands, in tmux's manner: every command is one file
 * (cmd-<name>.c) holding its exec function and its argument spec, and one
 * line in cmd_table[] (cmd.c).  The dispatcher in control.c checks, once
 * for every command, that it exists, that capabilities were negotiated,
 * the CMD_ROOT_ONLY flag, and the shape of the arguments against the spec
 * (unknown members, missing required ones, wrong JSON types), so a
 * command's exec sees only well-formed arguments and checks their values.
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

struct cmd_arg {
	const char		*name;		/* NULL ends a spec */
	enum cmd_arg_type	 type;
	int			 required;
};

#define CMD_BEFORE_NEGOTIATION	0x1	/* only before qmp_capabilities */
#define CMD_ROOT_ONLY		0x2	/* peers with uid 0 only */

struct cmd_entry {
	const char		*name;
	int			 flags;
	const struct cmd_arg	*args;
	enum cmd_retval		(*exec)(struct cmd_ctx *);
};

extern const struct cmd_entry	cmd_table[];

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

/* Argument specs and exec functions, one pair per cmd-*.c file. */
extern const struct cmd_arg	cmd_no_args[];
extern const struct cmd_arg	cmd_getfd_args[];
extern const struct cmd_arg	cmd_snapshot_start_args[];
extern const struct cmd_arg	cmd_snapshot_arm_args[];
extern const struct cmd_arg	cmd_snapshot_cancel_args[];
extern const struct cmd_arg	cmd_test_release_args[];
extern const struct cmd_arg	cmd_snapshot_delete_args[];

enum cmd_retval	cmd_capabilities_exec(struct cmd_ctx *);
enum cmd_retval	cmd_query_version_exec(struct cmd_ctx *);
enum cmd_retval	cmd_query_status_exec(struct cmd_ctx *);
enum cmd_retval	cmd_getfd_exec(struct cmd_ctx *);
enum cmd_retval	cmd_closefd_exec(struct cmd_ctx *);
enum cmd_retval	cmd_snapshot_start_exec(struct cmd_ctx *);
enum cmd_retval	cmd_snapshot_arm_exec(struct cmd_ctx *);
enum cmd_retval	cmd_snapshot_cancel_exec(struct cmd_ctx *);
enum cmd_retval	cmd_test_release_exec(struct cmd_ctx *);
enum cmd_retval	cmd_query_snapshots_exec(struct cmd_ctx *);
enum cmd_retval	cmd_snapshot_delete_exec(struct cmd_ctx *);
enum cmd_retval	cmd_query_config_exec(struct cmd_ctx *);

#endif /* SNAPD_CMD_H */
