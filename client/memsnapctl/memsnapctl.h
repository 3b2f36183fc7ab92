/*
 * memsnapctl: the operator's command-line client of snapd.
 *
 * Each command lives in its own cmd-NAME.c and is one struct cmd_entry in
 * the table in memsnapctl.c; the dispatcher there checks the argument count
 * and connects to snapd for entries flagged CMD_DAEMON, so commands do
 * neither.  util.c holds what several commands share: running a command
 * and reporting its failure, formatting sizes and durations, aligned
 * tables; wait.c follows a snapshot to its end ("wait" and "save").
 * memsnapctl is single-threaded.
 */
#ifndef MEMSNAPCTL_H
#define MEMSNAPCTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "snapclient.h"

/* Exit codes (memsnapctl(1) lists them). */
#define EXIT_OK			0
#define EXIT_FAILED		1	/* command failed, snapshot failed, damage */
#define EXIT_USAGE		2
#define EXIT_UNREACHABLE	3	/* cannot reach snapd, or it went away */

struct ctl {
	int			 json;		/* -j: JSON output for scripts */
	const char		*socket;	/* -s, or NULL for the default */
	struct snap_client	*client;	/* for CMD_DAEMON commands */
};

#define CMD_DAEMON	0x1	/* connects to snapd */

/* The arguments a command takes, checked by the dispatcher. */
struct cmd_args {
	const char	*usage;		/* as usage() shows them */
	int		 min;
	int		 max;		/* -1: no limit */
};

struct cmd_entry {
	const char	*name;
	struct cmd_args	 args;
	int		 flags;		/* CMD_* */
	const char	*help;		/* one line */
	int		(*exec)(struct ctl *, int argc, char **argv);
};

extern const struct cmd_entry	cmd_status_entry;
extern const struct cmd_entry	cmd_metrics_entry;
extern const struct cmd_entry	cmd_list_entry;
extern const struct cmd_entry	cmd_wait_entry;
extern const struct cmd_entry	cmd_save_entry;
extern const struct cmd_entry	cmd_cancel_entry;
extern const struct cmd_entry	cmd_delete_entry;
extern const struct cmd_entry	cmd_info_entry;
extern const struct cmd_entry	cmd_verify_entry;
extern const struct cmd_entry	cmd_export_entry;
extern const struct cmd_entry	cmd_merge_entry;
extern const struct cmd_entry	cmd_events_entry;
extern const struct cmd_entry	cmd_qmp_entry;
extern const struct cmd_entry	cmd_qemu_save_entry;
extern const struct cmd_entry	cmd_qemu_restore_entry;
extern const struct cmd_entry	cmd_qemu_list_entry;
extern const struct cmd_entry	cmd_qemu_delete_entry;

/* memsnapctl.c */
void	usage_error(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/* wait.c: follow snapshot id to its end, showing progress, and print the
 * outcome (its final query-snapshots entry with -j); returns the exit
 * code: EXIT_OK if it completed, EXIT_FAILED if it failed or was
 * cancelled. */
int	ctl_wait(struct ctl *ctl, uint64_t id);

/* util.c */
void	ctl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Connect ctl->client to snapd (the dispatcher does for CMD_DAEMON
 * commands); the exit code, EXIT_UNREACHABLE after saying why. */
int	ctl_connect(struct ctl *ctl);
/* Report a failed library call on c (NULL: a snap_file_* call) under
 * what; returns the exit code it calls for. */
int	ctl_lib_failure(struct snap_client *c, const char *what);
/* Report a failed snap_file_* call on path; returns EXIT_FAILED. */
int	ctl_file_failure(const char *path, const char *what);
/* Run cmd on snapd; returns its "return" value (a new reference) or NULL
 * after printing why, with *status the exit code. args is stolen. */
json_t	*ctl_execute(struct ctl *ctl, const char *cmd, json_t *args,
	    int *status);
/* Run cmd on snapd for its effect: prints nothing, or the reply with -j;
 * returns the exit code.  args is stolen. */
int	ctl_execute_quiet(struct ctl *ctl, const char *cmd, json_t *args);
void	ctl_print_json(const json_t *value);
int	ctl_parse_id(const char *s, uint64_t *id);
/* "4096", "64K", "8M", "1G" (binary units) into *out: 0, or -1. */
int	ctl_parse_bytes(const char *s, uint64_t *out);
/* The snapshot-start options commands share, by getopt letter: 'f'
 * --format, 'l' --level, 'b' --buffer-size, 'R' --max-bandwidth, into
 * args; exits on a usage error naming cmd.  1 if ch was one of them. */
int	ctl_start_option(const char *cmd, int ch, const char *arg,
	    json_t *args);

uint64_t	 json_u64(const json_t *obj, const char *key);
const char	*json_str(const json_t *obj, const char *key, const char *dflt);

const char	*fmt_bytes(uint64_t bytes, char *buf, size_t size);
const char	*fmt_duration_us(uint64_t us, char *buf, size_t size);

/* An aligned table: columns separated by two spaces, numbers right-aligned
 * where the column's header ends with '>' (stripped when printed). */
struct table;
struct table	*table_new(int ncols, ...);	/* ncols header strings */
void		 table_add(struct table *t, ...);	/* ncols strings */
void		 table_print(struct table *t);		/* prints and frees */

/* "key: value" lines with the values aligned. */
struct kv;
struct kv	*kv_new(void);
void		 kv_add(struct kv *kv, const char *key, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
void		 kv_print(struct kv *kv);			/* prints and frees */

#endif /* MEMSNAPCTL_H */
