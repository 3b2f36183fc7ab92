/*
 * memsnapctl status: snapd's own figures (query-status), one "key: value"
 * line each, in the order snapd gives them.  Sizes and times are shown
 * for people as well as exactly; nested objects (kernel-features) become
 * one line of name=yes/no pairs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memsnapctl.h"

static int	cmd_status_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_status_entry = {
	.name = "status",
	.args = { "", 0, 0 },
	.flags = CMD_DAEMON,
	.help = "show snapd's figures",
	.exec = cmd_status_exec,
};

/* One value for people; key says what it measures. */
static void
status_value(const char *key, const json_t *v, char *buf, size_t size)
{
	char		 h[32];
	const char	*k;
	const json_t	*sub;
	size_t		 len;
	char		*s;

	switch (json_typeof(v)) {
	case JSON_INTEGER:
		if (strstr(key, "bytes") != NULL)
			snprintf(buf, size, "%s (%" JSON_INTEGER_FORMAT ")",
			    fmt_bytes((uint64_t)json_integer_value(v), h,
			    sizeof(h)), json_integer_value(v));
		else if ((len = strlen(key)) > 3 &&
		    strcmp(key + len - 3, "-ms") == 0)
			snprintf(buf, size, "%s", fmt_duration_us(
			    (uint64_t)json_integer_value(v) * 1000, h,
			    sizeof(h)));
		else
			snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
			    json_integer_value(v));
		break;
	case JSON_STRING:
		snprintf(buf, size, "%s", json_string_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
		break;
	case JSON_OBJECT:
		buf[0] = '\0';
		json_object_foreach((json_t *)v, k, sub) {
			len = strlen(buf);
			if (json_is_boolean(sub))
				snprintf(buf + len, size - len, "%s%s=%s",
				    len > 0 ? " " : "", k,
				    json_is_true(sub) ? "yes" : "no");
			else {
				s = json_dumps(sub, JSON_COMPACT |
				    JSON_ENCODE_ANY);
				snprintf(buf + len, size - len, "%s%s=%s",
				    len > 0 ? " " : "", k, s ? s : "?");
				free(s);
			}
		}
		break;
	default:
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(buf, size, "%s", s != NULL ? s : "?");
		free(s);
		break;
	}
}

static int
cmd_status_exec(struct ctl *ctl, int argc, char **argv)
{
	json_t		*ret, *v;
	const char	*key;
	struct kv	*kv;
	char		 buf[1024];
	int		 status;

	if ((ret = ctl_execute(ctl, "query-status", NULL, &status)) == NULL)
		return status;
	if (ctl->json) {
		ctl_print_json(ret);
		json_decref(ret);
		return EXIT_OK;
	}
	kv = kv_new();
	json_object_foreach(ret, key, v) {
		status_value(key, v, buf, sizeof(buf));
		kv_add(kv, key, "%s", buf);
	}
	kv_print(kv);
	json_decref(ret);
	return EXIT_OK;
}
