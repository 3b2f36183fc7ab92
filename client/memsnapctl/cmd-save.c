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
 * --track keeps following the process's writes once the snapshot is
 * done, so that an incremental one may follow: --parent ID takes one from
 * snapshot ID, --incremental from the newest snapshot of the process that
 * tracks (found with query-snapshots).  An incremental one saves only the
 * pages written since its parent; the reply's "chain" says how many.
 *
 * --to DEST says where the snapshot goes: "disk" (snapd's snapshot
 * directory), "s3" (the S3 URL snapd is configured with) or
 * "s3://BUCKET/PREFIX" (root only; snapd checks); without it, snapd's
 * default ("destination" in snapd.conf).  The armed reply and the end
 * name the file, "s3://BUCKET/KEY" for one in S3, which info, verify and
 * export read as they read a path.
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
#include "s3.h"

static int	cmd_save_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_save_entry = {
	.name = "save",
	.args = { "--pid PID ...", 2, -1 },
	.flags = CMD_DAEMON,
	.help = "snapshot a running process by pid (attach)",
	.exec = cmd_save_exec,
};

/* --to: "disk", "s3" or an S3 URL snapd could write under; exits if not. */
static void
save_destination(const char *to)
{
	char	bucket[S3_BUCKET_MAX + 1], key[S3_KEY_MAX + 1], err[256];

	if (strcmp(to, "disk") == 0 || strcmp(to, "s3") == 0)
		return;
	if (!s3_is_url(to))
		usage_error("save: --to is disk, s3 or s3://BUCKET/PREFIX, "
		    "not %s", to);
	if (s3_url_parse(to, bucket, sizeof(bucket), key, sizeof(key), err,
	    sizeof(err)) == -1)
		usage_error("save: --to %s: %s", to, err);
}

/* The "snapshot-start" arguments from save's options; exits on a usage
 * error.  *wait is cleared by --no-wait, *incremental set by
 * --incremental. */
static json_t *
save_arguments(struct ctl *ctl, int argc, char **argv, int *wait,
    int *incremental)
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
		{ "track",		no_argument,		NULL,	't' },
		{ "parent",		required_argument,	NULL,	'a' },
		{ "incremental",	no_argument,		NULL,	'i' },
		{ "to",			required_argument,	NULL,	'T' },
		{ NULL,			0,			NULL,	0 },
	};
	json_t		*args, *hold;
	uint64_t	 pid = 0, parent;
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
		case 't':
			json_object_set_new(args, "track", json_true());
			break;
		case 'a':
			if (ctl_parse_id(optarg, &parent) == -1 || parent == 0 ||
			    parent > INT64_MAX)
				usage_error("save: not a snapshot id: %s",
				    optarg);
			json_object_set_new(args, "parent",
			    json_integer((json_int_t)parent));
			break;
		case 'i':
			*incremental = 1;
			break;
		case 'T':
			save_destination(optarg);
			json_object_set_new(args, "to", json_string(optarg));
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
	if (*incremental && json_object_get(args, "parent") != NULL)
		usage_error("save: --incremental finds the parent itself: it "
		    "does not go with --parent");
	json_object_set_new(args, "pid", json_integer((json_int_t)pid));
	return args;
}

/*
 * --incremental: the parent is the newest snapshot of process pid that
 * tracks its writes (its query-snapshots entry has "chain": {"tracking":
 * true}); set as "parent" in args.  The exit code.
 */
static int
save_find_parent(struct ctl *ctl, json_t *args, uint64_t pid)
{
	json_t		*ret, *e;
	uint64_t	 found = 0;
	size_t		 i;
	int		 status;

	if ((ret = ctl_execute(ctl, "query-snapshots", NULL, &status)) == NULL)
		return status;
	json_array_foreach(ret, i, e) {
		const json_t *c = json_object_get(e, "chain");

		if (json_u64(e, "pid") == pid && c != NULL &&
		    json_is_true(json_object_get(c, "tracking")) &&
		    json_u64(e, "id") > found)
			found = json_u64(e, "id");
	}
	json_decref(ret);
	if (found == 0) {
		ctl_warnx("save: no snapshot of process %" PRIu64 " tracks its "
		    "writes: take one with --track first", pid);
		return EXIT_FAILED;
	}
	json_object_set_new(args, "parent", json_integer((json_int_t)found));
	return EXIT_OK;
}

/*
 * The "chain" member, for people: of the armed reply (tracking, or the
 * pages written since the parent), or of the final entry of an
 * incremental snapshot (the pages stored as the parent's are counted as
 * the snapshot is written).
 */
static void
save_print_chain(const json_t *o, int final)
{
	const json_t *c = json_object_get(o, "chain");

	if (c == NULL)
		return;
	if (json_object_get(c, "parent") == NULL) {
		if (!final)
			printf("  tracking the process's writes: an incremental "
			    "snapshot may follow (save --incremental)\n");
	} else if (!final)
		printf("  incremental from snapshot %" PRIu64 ", depth %"
		    PRIu64 ": %" PRIu64 " pages dirty since it\n",
		    json_u64(c, "parent"), json_u64(c, "depth"),
		    json_u64(c, "pages-dirty"));
	else
		printf("chain: depth %" PRIu64 ", parent %" PRIu64 ", %"
		    PRIu64 " pages dirty, %" PRIu64 " unchanged, %" PRIu64
		    " ranges saved whole%s\n", json_u64(c, "depth"),
		    json_u64(c, "parent"), json_u64(c, "pages-dirty"),
		    json_u64(c, "pages-unchanged"),
		    json_u64(c, "saved-whole-count"),
		    json_is_true(json_object_get(c, "tracking")) ?
		    "; tracking the process's writes" : "");
}

/* After an incremental snapshot completed: its final chain figures. */
static int
save_print_final(struct ctl *ctl, uint64_t id)
{
	json_t		*ret, *e;
	size_t		 i;
	int		 status;

	if ((ret = ctl_execute(ctl, "query-snapshots", NULL, &status)) == NULL)
		return status;
	json_array_foreach(ret, i, e)
		if (json_u64(e, "id") == id)
			save_print_chain(e, 1);
	json_decref(ret);
	return EXIT_OK;
}

/* The armed reply, for people. */
static void
save_print_armed(const json_t *ret, uint64_t pid)
{
	const json_t	*a = json_object_get(ret, "attach");
	const char	*via;
	char		 pause[32], arm[32], stopped[32];

	printf("snapshot %" PRIu64 " (%s) armed: %s\n", json_u64(ret, "id"),
	    json_str(ret, "name", "?"), json_str(ret, "file", "?"));
	fmt_duration_us(json_u64(ret, "arm-us"), arm, sizeof(arm));
	if (a == NULL) {
		printf("  process %" PRIu64 ", armed in %s, %" PRIu64
		    " pages\n", pid, arm, json_u64(ret, "pages-total"));
		save_print_chain(ret, 0);
		return;
	}
	printf("  process %" PRIu64 " paused %s (%" PRIu64 " threads), "
	    "armed in %s, %" PRIu64 " pages\n", pid,
	    fmt_duration_us(json_u64(a, "pause-us"), pause, sizeof(pause)),
	    json_u64(a, "threads"), arm, json_u64(ret, "pages-total"));
	via = json_str(a, "uffd-via", "?");
	printf("  mappings: %" PRIu64 " saved live, %" PRIu64 " copied while "
	    "stopped (%s), %" PRIu64 " skipped; userfaultfd %s%s\n",
	    json_u64(a, "mappings-live"), json_u64(a, "mappings-stopped"),
	    fmt_bytes(json_u64(a, "bytes-stopped"), stopped, sizeof(stopped)),
	    json_u64(a, "mappings-skipped"), strcmp(via, "parent") == 0 ?
	    "of the parent's tracking" : "by ", strcmp(via, "parent") == 0 ?
	    "" : via);
	save_print_chain(ret, 0);
}

static int
cmd_save_exec(struct ctl *ctl, int argc, char **argv)
{
	json_t		*args, *ret;
	uint64_t	 pid, id;
	int		 wait = 1, incremental = 0, status;

	args = save_arguments(ctl, argc, argv, &wait, &incremental);
	pid = json_u64(args, "pid");
	if (incremental && (status = save_find_parent(ctl, args, pid)) !=
	    EXIT_OK) {
		json_decref(args);
		return status;
	}
	if ((ret = ctl_execute(ctl, "snapshot-start", args, &status)) == NULL)
		return status;
	id = json_u64(ret, "id");
	incremental = json_object_get(json_object_get(ret, "chain"),
	    "parent") != NULL;
	if (ctl->json)
		ctl_print_json(ret);
	else
		save_print_armed(ret, pid);
	json_decref(ret);
	/* The armed instant is now: tell a reader at once. */
	fflush(stdout);
	if (!wait)
		return EXIT_OK;
	if ((status = ctl_wait(ctl, id)) != EXIT_OK || ctl->json ||
	    !incremental)
		return status;
	return save_print_final(ctl, id);
}
