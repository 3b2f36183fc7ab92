/*
 * memsnapctl: main, the command table and usage.
 *
 *	memsnapctl [-hj] [-s socket] command [argument ...]
 *
 * The global options come before the command.  The dispatcher finds the
 * command in cmd_table, checks its argument count, connects to snapd when
 * the entry says CMD_DAEMON (so "info", "verify", "export" and "merge" work without
 * a daemon; "list" connects itself unless --remote) and runs it; the command returns the exit code.  usage() is
 * built from the same table, so the help cannot drift from the commands;
 * man/memsnapctl.1's SYNOPSIS is the first line of it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "memsnapctl.h"

static const struct cmd_entry *cmd_table[] = {
	&cmd_status_entry,
	&cmd_metrics_entry,
	&cmd_list_entry,
	&cmd_save_entry,
	&cmd_wait_entry,
	&cmd_cancel_entry,
	&cmd_delete_entry,
	&cmd_info_entry,
	&cmd_verify_entry,
	&cmd_export_entry,
	&cmd_merge_entry,
	&cmd_events_entry,
	&cmd_qmp_entry,
	&cmd_qemu_save_entry,
	&cmd_qemu_restore_entry,
	&cmd_qemu_list_entry,
	&cmd_qemu_delete_entry,
};
#define NCOMMANDS	(sizeof(cmd_table) / sizeof(cmd_table[0]))

static void
usage(FILE *f)
{
	char	 left[64];
	size_t	 i;

	fprintf(f,
	    "usage: memsnapctl [-hj] [-s socket] command [argument ...]\n"
	    "\n"
	    "  -h, --help         print this help\n"
	    "  -j, --json         print JSON for scripts\n"
	    "  -s, --socket PATH  snapd's socket (default $%s or %s)\n"
	    "\n"
	    "commands:\n", SNAPD_SOCKET_ENV, SNAPD_DEFAULT_SOCKET);
	for (i = 0; i < NCOMMANDS; i++) {
		snprintf(left, sizeof(left), "%s%s%s", cmd_table[i]->name,
		    *cmd_table[i]->args.usage != '\0' ? " " : "",
		    cmd_table[i]->args.usage);
		fprintf(f, "  %-22s %s\n", left, cmd_table[i]->help);
	}
	fprintf(f, "\nexit status: 0 ok, 1 failed, 2 usage error, "
	    "3 snapd not reachable\n");
}

void
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("memsnapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	usage(stderr);
	exit(EXIT_USAGE);
}

static const struct cmd_entry *
cmd_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(cmd_table[i]->name, name) == 0)
			return cmd_table[i];
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help",	no_argument,		NULL,	'h' },
		{ "json",	no_argument,		NULL,	'j' },
		{ "socket",	required_argument,	NULL,	's' },
		{ NULL,		0,			NULL,	0 },
	};
	const struct cmd_entry	*cmd;
	struct ctl		 ctl;
	int			 ch, rc;

	memset(&ctl, 0, sizeof(ctl));
	/* '+': stop at the command, whose own arguments may look like
	 * options (export's --raw). */
	while ((ch = getopt_long(argc, argv, "+hjs:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'j':
			ctl.json = 1;
			break;
		case 's':
			ctl.socket = optarg;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage_error("no command given");
	if ((cmd = cmd_find(argv[0])) == NULL)
		usage_error("unknown command: %s", argv[0]);
	argc--;
	argv++;
	if (argc < cmd->args.min ||
	    (cmd->args.max >= 0 && argc > cmd->args.max))
		usage_error("%s: %s; usage: memsnapctl %s %s", cmd->name,
		    argc < cmd->args.min ? "missing argument" :
		    "too many arguments", cmd->name, cmd->args.usage);

	if ((cmd->flags & CMD_DAEMON) && (rc = ctl_connect(&ctl)) != EXIT_OK)
		return rc;
	rc = cmd->exec(&ctl, argc, argv);
	snap_close(ctl.client);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		ctl_warnx("writing the output: %s", strerror(errno));
		if (rc == EXIT_OK)
			rc = EXIT_FAILED;
	}
	return rc;
}
