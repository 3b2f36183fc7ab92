/*
 * snapd.conf(5): the parser, the printer and the JSON view of the
 * configuration (see config.h for the grammar).
 *
 * One table, config_keys[], names every key with its type, range and where
 * it lives in struct config; the parser, the printer and config_to_json()
 * all walk that table, so a new key is one line there (plus its default in
 * config_defaults() and its paragraph in conf/snapd.conf).
 *
 * Runs on the main thread only.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "config.h"
#include "confline.h"
#include "utf8.h"

enum config_type {
	CONFIG_PATH,		/* absolute path, char[PATH_MAX] */
	CONFIG_GROUP,		/* group name or "", char[CONFIG_GROUP_MAX] */
	CONFIG_OCTAL,		/* mode_t */
	CONFIG_INT,		/* int, decimal */
	CONFIG_SIZE,		/* uint64_t, with K/M/G/T suffixes */
	CONFIG_ENUM,		/* int-sized enum, one of names[] */
};

struct config_key {
	const char		*name;
	enum config_type	 type;
	size_t			 offset;
	uint64_t		 min, max;
	const char *const	*names;		/* CONFIG_ENUM: index = value */
};

/* Indexed by enum output_format. */
static const char *const format_names[] = {
	SNAPD_FORMAT_ZSNAP, SNAPD_FORMAT_RAW, NULL
};
static const char *const discard_names[] = { "record", "fail", NULL };
static const char *const shutdown_names[] = { "cancel", "finish", NULL };
static const char *const level_names[] = {
	"error", "warning", "info", "debug", NULL
};

#define KIB	1024ULL
#define MIB	(1024ULL * KIB)
#define GIB	(1024ULL * MIB)
#define TIB	(1024ULL * GIB)

#define OFF(field)	offsetof(struct config, field)

static const struct config_key config_keys[] = {
	{ "socket", CONFIG_PATH, OFF(socket), 0, 0, NULL },
	{ "socket_group", CONFIG_GROUP, OFF(socket_group), 0, 0, NULL },
	{ "socket_mode", CONFIG_OCTAL, OFF(socket_mode), 0, 0777, NULL },
	{ "snapshot_dir", CONFIG_PATH, OFF(snapshot_dir), 0, 0, NULL },
	{ "format", CONFIG_ENUM, OFF(format), 0, 0, format_names },
	{ "compression_level", CONFIG_INT, OFF(compression_level),
	    SNAPD_LEVEL_MIN, SNAPD_LEVEL_MAX, NULL },
	{ "compression_threads", CONFIG_INT, OFF(compression_threads), 0, 64, NULL },
	{ "pressure_level", CONFIG_INT, OFF(pressure_level), 0,
	    SNAPD_LEVEL_MAX, NULL },
	{ "buffer_size", CONFIG_SIZE, OFF(buffer_size), SNAPD_BUFFER_SIZE_MIN,
	    SNAPD_BUFFER_SIZE_MAX, NULL },
	{ "max_snapshots", CONFIG_INT, OFF(max_snapshots), 1, 1024, NULL },
	{ "max_snapshots_per_uid", CONFIG_INT, OFF(max_snapshots_per_uid), 1,
	    1024, NULL },
	{ "max_message_size", CONFIG_SIZE, OFF(max_message_size), KIB, 16 * MIB,
	    NULL },
	{ "max_connections_per_uid", CONFIG_INT, OFF(max_connections_per_uid),
	    1, 4096, NULL },
	{ "client_timeout", CONFIG_INT, OFF(client_timeout), 1, 3600, NULL },
	{ "on_discard", CONFIG_ENUM, OFF(on_discard), 0, 0, discard_names },
	{ "shutdown", CONFIG_ENUM, OFF(shutdown), 0, 0, shutdown_names },
	{ "shutdown_timeout", CONFIG_INT, OFF(shutdown_timeout), 0, 3600, NULL },
	{ "log_level", CONFIG_ENUM, OFF(log_level), 0, 0, level_names },
};
#define CONFIG_NKEYS	(sizeof(config_keys) / sizeof(config_keys[0]))

/* Every enum field is stored as an int: make sure the compiler agrees. */
_Static_assert(sizeof(enum output_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum discard_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum shutdown_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");

static struct config	config_current;
static int		config_current_set;

void
config_defaults(struct config *conf)
{
	memset(conf, 0, sizeof(*conf));
	strcpy(conf->socket, SNAPD_DEFAULT_SOCKET);
	conf->socket_group[0] = '\0';
	conf->socket_mode = 0660;
	strcpy(conf->snapshot_dir, SNAPD_DEFAULT_SNAPSHOT_DIR);
	conf->format = OUTPUT_ZSNAP;
	conf->compression_level = 3;
	conf->compression_threads = 2;
	conf->pressure_level = 1;
	conf->buffer_size = 64 * MIB;
	conf->max_snapshots = 16;
	conf->max_snapshots_per_uid = 4;
	conf->max_message_size = SNAPD_MESSAGE_MAX_DEFAULT;
	conf->max_connections_per_uid = 32;
	conf->client_timeout = 30;
	conf->on_discard = DISCARD_RECORD;
	conf->shutdown = SHUTDOWN_CANCEL;
	conf->shutdown_timeout = 30;
	conf->log_level = LOG_LEVEL_INFO;
}

const struct config *
config_get(void)
{
	if (!config_current_set) {
		config_defaults(&config_current);
		config_current_set = 1;
	}
	return &config_current;
}

void
config_set(const struct config *conf)
{
	config_current = *conf;
	config_current_set = 1;
}

const char *
config_format_name(enum output_format format)
{
	return format == OUTPUT_RAW ? SNAPD_FORMAT_RAW : SNAPD_FORMAT_ZSNAP;
}

const char *
config_discard_name(enum discard_policy policy)
{
	return policy == DISCARD_FAIL ? "fail" : "record";
}

const char *
config_shutdown_name(enum shutdown_mode mode)
{
	return mode == SHUTDOWN_FINISH ? "finish" : "cancel";
}

static const struct config_key *
config_key_find(const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* "1..19" style range text for messages. */
static void
config_range_text(const struct config_key *k, char *buf, size_t len)
{
	if (k->type == CONFIG_OCTAL)
		snprintf(buf, len, "%04" PRIo64 "..%04" PRIo64, k->min, k->max);
	else
		snprintf(buf, len, "%" PRIu64 "..%" PRIu64, k->min, k->max);
}

/* The largest K/M/G/T unit that divides v exactly, as text ("64M"). */
static void
config_size_text(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "TGMK";
	static const uint64_t mult[] = { TIB, GIB, MIB, KIB };

	for (size_t i = 0; i < 4; i++) {
		if (v != 0 && v % mult[i] == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", v / mult[i], units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

/* Decimal digits only, into *out; -1 if not a number or it overflows. */
static int
config_parse_uint(const char *s, int base, uint64_t *out, const char **end)
{
	uint64_t	v = 0;
	int		digits = 0;

	for (; *s != '\0'; s++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else
			break;
		if (d >= base)
			return -1;
		if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)d;
		digits++;
	}
	if (digits == 0)
		return -1;
	*out = v;
	*end = s;
	return 0;
}

/*
 * The setters below each take one key's value text for one type and store
 * it in field; 0, or -1 with a message (no "file:line: " prefix) in err.
 */

/* An absolute path, short enough to take a file name after it. */
static int
config_set_path(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	if (value[0] != '/') {
		snprintf(err, errlen,
		    "bad value '%s' for %s: expected an "
		    "absolute path", value, k->name);
		return -1;
	}
	if (strlen(value) >= PATH_MAX - 64) {
		snprintf(err, errlen, "bad value for %s: path too long",
		    k->name);
		return -1;
	}
	strcpy(field, value);
	return 0;
}

/* A group that exists, or "" for none. */
static int
config_set_group(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	if (strlen(value) >= CONFIG_GROUP_MAX) {
		snprintf(err, errlen,
		    "bad value for %s: group name too "
		    "long", k->name);
		return -1;
	}
	if (value[0] != '\0') {
		errno = 0;
		if (getgrnam(value) == NULL) {
			snprintf(err, errlen, "bad value '%s' for %s: %s",
			    value, k->name, errno != 0 ? strerror(errno) :
			    "no such group");
			return -1;
		}
	}
	strcpy(field, value);
	return 0;
}

/*
 * A number in base, nothing after it, within k's range, into *v; what
 * names the expected form in the message ("integer", "octal mode").
 */
static int
config_parse_ranged(const struct config_key *k, const char *value, int base,
    const char *what, uint64_t *v, char *err, size_t errlen)
{
	char		 range[64];
	const char	*end;

	if (config_parse_uint(value, base, v, &end) == -1 || *end != '\0') {
		snprintf(err, errlen,
		    "bad value '%s' for %s: expected an "
		    "%s", value, k->name, what);
		return -1;
	}
	if (*v < k->min || *v > k->max) {
		config_range_text(k, range, sizeof(range));
		snprintf(err, errlen, "%s %s out of range (%s)", k->name,
		    value, range);
		return -1;
	}
	return 0;
}

/* A byte count with an optional K, M, G or T suffix, within k's range. */
static int
config_set_size(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	uint64_t	 v, mult = 1;
	const char	*end;

	if (config_parse_uint(value, 10, &v, &end) == -1)
		goto badsize;
	switch (*end) {
	case '\0':
		break;
	case 'K': case 'k':
		mult = KIB;
		break;
	case 'M': case 'm':
		mult = MIB;
		break;
	case 'G': case 'g':
		mult = GIB;
		break;
	case 'T': case 't':
		mult = TIB;
		break;
	default:
		goto badsize;
	}
	if (*end != '\0' && end[1] != '\0')
		goto badsize;
	if (v > UINT64_MAX / mult) {
		snprintf(err, errlen, "%s %s out of range", k->name, value);
		return -1;
	}
	v *= mult;
	if (v < k->min || v > k->max) {
		char lo[32], hi[32];

		config_size_text(k->min, lo, sizeof(lo));
		config_size_text(k->max, hi, sizeof(hi));
		snprintf(err, errlen, "%s %s out of range (%s..%s)",
		    k->name, value, lo, hi);
		return -1;
	}
	*(uint64_t *)field = v;
	return 0;

badsize:
	snprintf(err, errlen, "bad value '%s' for %s: expected a size (bytes, "
	    "or with a K, M, G or T suffix)", value, k->name);
	return -1;
}

/* One of k's names; the value stored is its index. */
static int
config_set_enum(const struct config_key *k, char *field, const char *value,
    char *err, size_t errlen)
{
	char	 choices[128] = "";
	size_t	 n = 0;

	for (int i = 0; k->names[i] != NULL; i++) {
		if (strcmp(k->names[i], value) == 0) {
			*(int *)field = i;
			return 0;
		}
	}
	for (int i = 0; k->names[i] != NULL; i++) {
		n += (size_t)snprintf(choices + n,
		    sizeof(choices) - n, "%s%s", i ? "|" : "",
		    k->names[i]);
		if (n >= sizeof(choices))
			break;
	}
	snprintf(err, errlen, "bad value '%s' for %s: expected %s",
	    value, k->name, choices);
	return -1;
}

/*
 * Set one key from its value text.  Returns 0, or -1 with a message (no
 * "file:line: " prefix) in err.
 */
static int
config_set_value(struct config *conf, const struct config_key *k,
    const char *value, char *err, size_t errlen)
{
	char		*field = (char *)conf + k->offset;
	uint64_t	 v;

	/* Paths and group names go into query-config's JSON reply. */
	if ((k->type == CONFIG_PATH || k->type == CONFIG_GROUP) &&
	    !utf8_valid(value)) {
		snprintf(err, errlen, "bad value for %s: not valid UTF-8",
		    k->name);
		return -1;
	}
	switch (k->type) {
	case CONFIG_PATH:
		return config_set_path(k, field, value, err, errlen);
	case CONFIG_GROUP:
		return config_set_group(k, field, value, err, errlen);
	case CONFIG_OCTAL:
		if (config_parse_ranged(k, value, 8, "octal mode", &v, err,
		    errlen) == -1)
			return -1;
		*(mode_t *)field = (mode_t)v;
		return 0;
	case CONFIG_INT:
		if (config_parse_ranged(k, value, 10, "integer", &v, err,
		    errlen) == -1)
			return -1;
		*(int *)field = (int)v;
		return 0;
	case CONFIG_SIZE:
		return config_set_size(k, field, value, err, errlen);
	case CONFIG_ENUM:
		return config_set_enum(k, field, value, err, errlen);
	}
	snprintf(err, errlen, "internal error: key %s has no type", k->name);
	return -1;
}

int
config_load(struct config *conf, const char *path, FILE *errf)
{
	struct config	 c;
	FILE		*f;
	char		*line = NULL, *key, *value, msg[512];
	size_t		 cap = 0;
	unsigned	 lineno = 0, seen[CONFIG_NKEYS];
	int		 errors = 0, rv;

	if ((f = fopen(path, "re")) == NULL) {
		int saved = errno;

		fprintf(errf, "%s: open: %s\n", path, strerror(saved));
		errno = saved;
		return -1;
	}
	config_defaults(&c);
	memset(seen, 0, sizeof(seen));
	while (getline(&line, &cap, f) != -1) {
		const struct config_key *k;

		lineno++;
		rv = confline_split(line, &key, &value, msg, sizeof(msg));
		if (rv == 0)
			continue;
		if (rv == -1) {
			fprintf(errf, "%s:%u: %s\n", path, lineno, msg);
			errors++;
			continue;
		}
		if ((k = config_key_find(key)) == NULL) {
			fprintf(errf, "%s:%u: unknown key '%s'\n", path, lineno,
			    key);
			errors++;
			continue;
		}
		if (seen[k - config_keys] != 0) {
			fprintf(errf, "%s:%u: duplicate key '%s' (first set on "
			    "line %u)\n", path, lineno, key,
			    seen[k - config_keys]);
			errors++;
			continue;
		}
		seen[k - config_keys] = lineno;
		if (config_set_value(&c, k, value, msg, sizeof(msg)) == -1) {
			fprintf(errf, "%s:%u: %s\n", path, lineno, msg);
			errors++;
		}
	}
	if (ferror(f)) {
		int saved = errno;

		fprintf(errf, "%s: read: %s\n", path, strerror(saved));
		errors++;
	}
	free(line);
	fclose(f);
	if (errors > 0) {
		errno = EINVAL;
		return -1;
	}
	*conf = c;
	return 0;
}

/* One key's value as text, the way the file spells it (unquoted). */
static void
config_value_text(const struct config *conf, const struct config_key *k,
    char *buf, size_t len)
{
	const char *field = (const char *)conf + k->offset;

	switch (k->type) {
	case CONFIG_PATH:
	case CONFIG_GROUP:
		snprintf(buf, len, "%s", field);
		break;
	case CONFIG_OCTAL:
		snprintf(buf, len, "%04o", (unsigned)*(const mode_t *)field);
		break;
	case CONFIG_INT:
		snprintf(buf, len, "%d", *(const int *)field);
		break;
	case CONFIG_SIZE:
		config_size_text(*(const uint64_t *)field, buf, len);
		break;
	case CONFIG_ENUM:
		snprintf(buf, len, "%s", k->names[*(const int *)field]);
		break;
	}
}

void
config_print(const struct config *conf, FILE *f)
{
	char buf[PATH_MAX + 16];

	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct config_key *k = &config_keys[i];

		config_value_text(conf, k, buf, sizeof(buf));
		if (k->type == CONFIG_PATH || k->type == CONFIG_GROUP)
			fprintf(f, "%s \"%s\"\n", k->name, buf);
		else
			fprintf(f, "%s %s\n", k->name, buf);
	}
}

json_t *
config_to_json(const struct config *conf)
{
	json_t	*o = json_object();
	char	 buf[PATH_MAX + 16];

	if (o == NULL)
		fatalx("out of memory building the configuration object");
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		const char *field = (const char *)conf + k->offset;
		json_t *v;

		switch (k->type) {
		case CONFIG_INT:
			v = json_integer(*(const int *)field);
			break;
		case CONFIG_SIZE:
			v = json_integer((json_int_t)*(const uint64_t *)field);
			break;
		default:
			config_value_text(conf, k, buf, sizeof(buf));
			v = json_string(buf);
			break;
		}
		if (v == NULL || json_object_set_new(o, k->name, v) == -1)
			fatalx("out of memory building the configuration object");
	}
	return o;
}
