/*
 * memsnapctl save --pid PID: snapshot a running process that knows nothing of
 * snapd (snapshot-start with "pid" and no userfaultfd: snapd attaches to
 * it, see snapd(8), ATTACH).
 *
 * snapd answers once the process's memory is armed and the process runs
 * again; that reply says how long the process was paused and which of its
 * mappings are saved live, were copied while it was stopped, or were
 * skipped.  save prints it at once (and flushes, so that a script reading
 * the output learns the armed instant as it happens), then, unless
 * --no-wait, follows the snapshot to its end the way "wait" does.  With -j
 * (or --json) both are JSON lines: the reply, then the final
 * query-snapshots entry.
 *
 * --test-hold passes a "test-hold" object through for the test suite
 * (proto/PROTOCOL.md, "Test hooks"); it is not in the help.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "memsnapctl.h"

static int	cmd_save_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_save_entry = {
	.name = "save",
	.args = { "--pid PID ...", 2, -1 },
	.flags = CMD_DAEMON,
	.help = "snapshot a running process by pid (attach)",
	.exec = cmd_save_exec,
};

/* The "snapshot-start" arguments from save's options; exits on a usage
 * error.  *wait is cleared by --no-wait. */
static json_t *
save_arguments(struct ctl *ctl, int argc, char **argv, int *wait)
{
	static const struct option	 longopts[] = {
		{ "pid",		required_argument,	NULL,	'p' },
		{ "maps",		required_argument,	NULL,	'm' },
		{ "name",		required_argument,	NULL,	'n' },
		{ "format",		required_argument,	NULL,	'f' },
		{ "level",		required_argument,	NULL,	'l' },
		{ "buffer-size",	required_argument,	NULL,	'b' },
		{ "max-bandwidth",	required_argument,	NULL,	'R' },
		{ "no-wait",		no_argument,		NULL,	'W' },
		{ "prearm",		no_argument,		NULL,	'P' },
		{ "no-prearm",		no_argument,		NULL,	'N' },
		{ "json",		no_argument,		NULL,	'j' },
		{ "test-hold",		required_argument,	NULL,	'H' },
		{ NULL,			0,			NULL,	0 },
	};
	json_t		*args, *hold;
	uint64_t	 pid = 0;
	int		 ch;

	args = json_object();
	/* getopt wants the command's name in argv[0]: it is argv[-1]. */
	argc++;
	argv--;
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (ctl_start_option("save", ch, optarg, args))
			continue;
		switch (ch) {
		case 'p':
			if (ctl_parse_id(optarg, &pid) == -1 || pid == 0 ||
			    pid > INT_MAX)
				usage_error("save: not a process id: %s",
				    optarg);
			break;
		case 'P':
		case 'N':
			json_object_set_new(args, "prearm",
			    json_boolean(ch == 'P'));
			break;
		case 'm':
			if (*optarg == '\0')
				usage_error("save: --maps is empty");
			json_object_set_new(args, "maps", json_string(optarg));
			break;
		case 'n':
			json_object_set_new(args, "name", json_string(optarg));
			break;
		case 'W':
			*wait = 0;
			break;
		case 'j':
			ctl->json = 1;
			break;
		case 'H':
			if ((hold = json_loads(optarg, 0, NULL)) == NULL ||
			    !json_is_object(hold))
				usage_error("save: --test-hold is not a JSON "
				    "object: %s", optarg);
			json_object_set_new(args, "test-hold", hold);
			break;
		default:
			usage_error("save: unknown option or missing "
			    "argument: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("save: unexpected argument %s", argv[optind]);
	if (pid == 0)
		usage_error("save: --pid PID is required");
	json_object_set_new(args, "pid", json_integer((json_int_t)pid));
	return args;
}

/* The armed reply, for people. */
static void
save_print_armed(const json_t *ret, uint64_t pid)
{
	const json_t	*a = json_object_get(ret, "attach");
	char		 pause[32], arm[32], stopped[32];

	printf("snapshot %" PRIu64 " (%s) armed: %s\n", json_u64(ret, "id"),
	    json_str(ret, "name", "?"), json_str(ret, "file", "?"));
	fmt_duration_us(json_u64(ret, "arm-us"), arm, sizeof(arm));
	if (a == NULL) {
		printf("  process %" PRIu64 ", armed in %s, %" PRIu64
		    " pages\n", pid, arm, json_u64(ret, "pages-total"));
		return;
	}
	printf("  process %" PRIu64 " paused %s (%" PRIu64 " threads), "
	    "armed in %s, %" PRIu64 " pages\n", pid,
	    fmt_duration_us(json_u64(a, "pause-us"), pause, sizeof(pause)),
	    json_u64(a, "threads"), arm, json_u64(ret, "pages-total"));
	printf("  mappings: %" PRIu64 " saved live, %" PRIu64 " copied while "
	    "stopped (%s), %" PRIu64 " skipped; userfaultfd by %s\n",
	    json_u64(a, "mappings-live"), json_u64(a, "mappings-stopped"),
	    fmt_bytes(json_u64(a, "bytes-stopped"), stopped, sizeof(stopped)),
	    json_u64(a, "mappings-skipped"), json_str(a, "uffd-via", "?"));
}

static int
cmd_save_exec(struct ctl *ctl, int argc, char **argv)
{
	json_t		*args, *ret;
	uint64_t	 pid, id;
	int		 wait = 1, status;

	args = save_arguments(ctl, argc, argv, &wait);
	pid = json_u64(args, "pid");
	if ((ret = ctl_execute(ctl, "snapshot-start", args, &status)) == NULL)
		return status;
	id = json_u64(ret, "id");
	if (ctl->json)
		ctl_print_json(ret);
	else
		save_print_armed(ret, pid);
	json_decref(ret);
	/* The armed instant is now: tell a reader at once. */
	fflush(stdout);
	if (!wait)
		return EXIT_OK;
	return ctl_wait(ctl, id);
}
