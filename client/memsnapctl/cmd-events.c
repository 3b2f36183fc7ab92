/*
 * memsnapctl events: follow snapd's events as they happen, one line each,
 * until interrupted or snapd goes away (exit 3).  With -j each event is
 * printed as snapd sent it; otherwise as
 *
 *	12:34:56.789 SNAPSHOT_PROGRESS id=3 pages-saved=1200 ...
 *
 * Output is flushed after every line so it can be piped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memsnapctl.h"

static int	cmd_events_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_events_entry = {
	.name = "events",
	.args = { "", 0, 0 },
	.flags = CMD_DAEMON,
	.help = "follow events live, one per line",
	.exec = cmd_events_exec,
};

static void
event_print(const char *line)
{
	json_t		*ev, *data, *v;
	json_int_t	 sec, usec;
	const char	*key;
	struct tm	 tm;
	time_t		 t;
	char		 when[32], *s;

	if ((ev = json_loads(line, 0, NULL)) == NULL) {
		puts(line);
		return;
	}
	v = json_object_get(ev, "timestamp");
	sec = json_integer_value(json_object_get(v, "seconds"));
	usec = json_integer_value(json_object_get(v, "microseconds"));
	t = (time_t)sec;
	if (localtime_r(&t, &tm) != NULL &&
	    strftime(when, sizeof(when), "%H:%M:%S", &tm) > 0)
		printf("%s.%03d ", when, (int)(usec / 1000));
	printf("%s", json_str(ev, "event", "?"));
	data = json_object_get(ev, "data");
	json_object_foreach(data, key, v) {
		if (json_is_string(v))
			printf(" %s=%s", key, json_string_value(v));
		else {
			s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			printf(" %s=%s", key, s != NULL ? s : "?");
			free(s);
		}
	}
	putchar('\n');
	json_decref(ev);
}

static int
cmd_events_exec(struct ctl *ctl, int argc, char **argv)
{
	char	*line;

	for (;;) {
		if ((line = snap_next_event(ctl->client, -1)) == NULL)
			return ctl_lib_failure(ctl->client, "events");
		if (ctl->json)
			puts(line);
		else
			event_print(line);
		free(line);
		if (fflush(stdout) == EOF) {
			ctl_warnx("events: writing the output: %s",
			    strerror(errno));
			return EXIT_FAILED;
		}
	}
}
