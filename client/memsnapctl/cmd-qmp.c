/*
 * memsnapctl qmp JSON: send one raw command and print snapd's reply, for
 * poking at the protocol by hand.  Capabilities are already negotiated.
 * The reply is printed indented, or as snapd sent it with -j; exit 1 when
 * it is an error reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "memsnapctl.h"

static int	cmd_qmp_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_qmp_entry = {
	.name = "qmp",
	.args = { "JSON", 1, 1 },
	.flags = CMD_DAEMON,
	.help = "send one raw command, print the reply",
	.exec = cmd_qmp_exec,
};

static int
cmd_qmp_exec(struct ctl *ctl, int argc, char **argv)
{
	json_t	*reply;
	char	*line, *pretty;
	int	 rc;

	if ((line = snap_command(ctl->client, argv[0])) == NULL) {
		if (errno == EINVAL) {
			ctl_warnx("qmp: %s", snap_strerror(ctl->client));
			return EXIT_USAGE;
		}
		return ctl_lib_failure(ctl->client, "qmp");
	}
	reply = json_loads(line, 0, NULL);
	rc = json_object_get(reply, "error") != NULL ? EXIT_FAILED : EXIT_OK;
	if (ctl->json || reply == NULL ||
	    (pretty = json_dumps(reply, JSON_INDENT(2))) == NULL)
		puts(line);
	else {
		puts(pretty);
		free(pretty);
	}
	json_decref(reply);
	free(line);
	return rc;
}
