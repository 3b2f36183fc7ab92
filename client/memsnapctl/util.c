/*
 * What memsnapctl's commands share: reporting errors the one way
 * ("memsnapctl: what: why" on stderr, and the exit code it calls for),
 * running a command on snapd, formatting figures for people, and aligned
 * output (tables, "key: value" lists).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "memsnapctl.h"

static void *
ctl_alloc(size_t n, size_t size)
{
	void	*p;

	if ((p = calloc(n, size)) == NULL) {
		ctl_warnx("out of memory: %s", strerror(errno));
		exit(EXIT_FAILED);
	}
	return p;
}

static char *
ctl_strdup(const char *s)
{
	char	*p = ctl_alloc(1, strlen(s) + 1);

	return memcpy(p, s, strlen(s) + 1);
}

void
ctl_warnx(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fputs("memsnapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ctl_lib_failure(struct snap_client *c, const char *what)
{
	int	 err = errno;

	ctl_warnx("%s: %s", what, snap_strerror(c));
	/* On a connection, these mean snapd is gone or not answering. */
	if (c != NULL && (err == ECONNRESET || err == EPIPE ||
	    err == ETIMEDOUT))
		return EXIT_UNREACHABLE;
	return EXIT_FAILED;
}

int
ctl_connect(struct ctl *ctl)
{
	if ((ctl->client = snap_connect(ctl->socket)) == NULL) {
		ctl_warnx("cannot reach snapd: %s", snap_strerror(NULL));
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

/* The reader's message, naming the file if it does not already. */
int
ctl_file_failure(const char *path, const char *what)
{
	const char	*msg = snap_strerror(NULL);

	if (strstr(msg, path) != NULL)
		ctl_warnx("%s: %s", what, msg);
	else
		ctl_warnx("%s: %s: %s", what, path, msg);
	return EXIT_FAILED;
}

json_t *
ctl_execute(struct ctl *ctl, const char *cmd, json_t *args, int *status)
{
	json_t		*msg, *reply, *error, *ret;
	const char	*desc;
	char		*text, *line;

	msg = json_pack("{s:s, s:s}", "execute", cmd, "id", "memsnapctl");
	if (msg == NULL || (args != NULL &&
	    json_object_set_new(msg, "arguments", args) == -1) ||
	    (text = json_dumps(msg, JSON_COMPACT)) == NULL) {
		ctl_warnx("%s: cannot build the command", cmd);
		json_decref(msg);
		*status = EXIT_FAILED;
		return NULL;
	}
	json_decref(msg);
	line = snap_command(ctl->client, text);
	free(text);
	if (line == NULL) {
		*status = ctl_lib_failure(ctl->client, cmd);
		return NULL;
	}
	reply = json_loads(line, 0, NULL);
	free(line);
	if ((error = json_object_get(reply, "error")) != NULL) {
		desc = json_str(error, "desc", json_str(error, "class",
		    "failed"));
		/* snapd may name the command itself. */
		if (strncmp(desc, cmd, strlen(cmd)) == 0 &&
		    strncmp(desc + strlen(cmd), ": ", 2) == 0)
			ctl_warnx("%s", desc);
		else
			ctl_warnx("%s: %s", cmd, desc);
		json_decref(reply);
		*status = EXIT_FAILED;
		return NULL;
	}
	if ((ret = json_object_get(reply, "return")) == NULL) {
		ctl_warnx("%s: snapd's reply has no \"return\"", cmd);
		json_decref(reply);
		*status = EXIT_FAILED;
		return NULL;
	}
	json_incref(ret);
	json_decref(reply);
	*status = EXIT_OK;
	return ret;
}

int
ctl_execute_quiet(struct ctl *ctl, const char *cmd, json_t *args)
{
	json_t	*ret;
	int	 status;

	if ((ret = ctl_execute(ctl, cmd, args, &status)) == NULL)
		return status;
	if (ctl->json)
		ctl_print_json(ret);
	json_decref(ret);
	return EXIT_OK;
}

void
ctl_print_json(const json_t *value)
{
	char	*s = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s != NULL) {
		puts(s);
		free(s);
	}
}

int
ctl_parse_id(const char *s, uint64_t *id)
{
	char		*end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > INT64_MAX)
		return -1;
	*id = v;
	return 0;
}

uint64_t
json_u64(const json_t *obj, const char *key)
{
	json_int_t	 v = json_integer_value(json_object_get(obj, key));

	return v > 0 ? (uint64_t)v : 0;
}

const char *
json_str(const json_t *obj, const char *key, const char *dflt)
{
	const char	*s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : dflt;
}

const char *
fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
	static const char	*unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double			 v = (double)bytes;
	int			 i = -1;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return buf;
	}
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, size, "%.1f %s", v, unit[i]);
	return buf;
}

const char *
fmt_duration_us(uint64_t us, char *buf, size_t size)
{
	uint64_t	 s = us / 1000000;

	if (us < 1000)
		snprintf(buf, size, "%" PRIu64 " us", us);
	else if (us < 1000000)
		snprintf(buf, size, "%.1f ms", us / 1000.0);
	else if (s < 60)
		snprintf(buf, size, "%.2f s", us / 1000000.0);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
		    s % 60);
	else
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64
		    "s", s / 3600, s / 60 % 60, s % 60);
	return buf;
}

/* ---- aligned output ------------------------------------------------------ */

struct table {
	int	  ncols;
	size_t	  nrows;		/* header included */
	size_t	  size;
	char	**cells;		/* nrows * ncols */
	int	 *right;		/* per column */
};

struct table *
table_new(int ncols, ...)
{
	struct table	*t = ctl_alloc(1, sizeof(*t));
	va_list		 ap;
	const char	*h;
	size_t		 len;
	int		 i;

	t->ncols = ncols;
	t->size = 16;
	t->cells = ctl_alloc(t->size * ncols, sizeof(char *));
	t->right = ctl_alloc(ncols, sizeof(int));
	va_start(ap, ncols);
	for (i = 0; i < ncols; i++) {
		h = va_arg(ap, const char *);
		t->cells[i] = ctl_strdup(h);
		len = strlen(h);
		if (len > 0 && h[len - 1] == '>') {
			t->right[i] = 1;
			t->cells[i][len - 1] = '\0';
		}
	}
	va_end(ap);
	t->nrows = 1;
	return t;
}

void
table_add(struct table *t, ...)
{
	va_list	 ap;
	char	**n;
	int	 i;

	if (t->nrows == t->size) {
		n = ctl_alloc(t->size * 2 * t->ncols, sizeof(char *));
		memcpy(n, t->cells, t->size * t->ncols * sizeof(char *));
		free(t->cells);
		t->cells = n;
		t->size *= 2;
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] =
		    ctl_strdup(va_arg(ap, const char *));
	va_end(ap);
	t->nrows++;
}

void
table_print(struct table *t)
{
	size_t	*width = ctl_alloc(t->ncols, sizeof(size_t));
	size_t	 r, len;
	int	 i;
	char	*cell;

	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			len = strlen(t->cells[r * t->ncols + i]);
			if (len > width[i])
				width[i] = len;
		}
	}
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			cell = t->cells[r * t->ncols + i];
			if (i == t->ncols - 1 && !t->right[i])
				printf("%s", cell);	/* no trailing blanks */
			else if (t->right[i])
				printf("%*s", (int)width[i], cell);
			else
				printf("%-*s", (int)width[i], cell);
			printf(i == t->ncols - 1 ? "\n" : "  ");
			free(cell);
		}
	}
	free(width);
	free(t->cells);
	free(t->right);
	free(t);
}

struct kv {
	size_t	  n;
	size_t	  size;
	char	**key;
	char	**value;
};

struct kv *
kv_new(void)
{
	return ctl_alloc(1, sizeof(struct kv));
}

void
kv_add(struct kv *kv, const char *key, const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[8192];
	char	**k, **v;

	if (kv->n == kv->size) {
		kv->size = kv->size == 0 ? 16 : kv->size * 2;
		k = ctl_alloc(kv->size, sizeof(char *));
		v = ctl_alloc(kv->size, sizeof(char *));
		if (kv->n > 0) {
			memcpy(k, kv->key, kv->n * sizeof(char *));
			memcpy(v, kv->value, kv->n * sizeof(char *));
		}
		free(kv->key);
		free(kv->value);
		kv->key = k;
		kv->value = v;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kv->key[kv->n] = ctl_strdup(key);
	kv->value[kv->n] = ctl_strdup(buf);
	kv->n++;
}

void
kv_print(struct kv *kv)
{
	size_t	 i, width = 0;

	for (i = 0; i < kv->n; i++) {
		if (strlen(kv->key[i]) > width)
			width = strlen(kv->key[i]);
	}
	for (i = 0; i < kv->n; i++) {
		printf("%s:%*s %s\n", kv->key[i],
		    (int)(width - strlen(kv->key[i])), "", kv->value[i]);
		free(kv->key[i]);
		free(kv->value[i]);
	}
	free(kv->key);
	free(kv->value);
	free(kv);
}

/* "4096", "64K", "8M", "1G" (binary units): bytes, or -1. */
int
ctl_parse_bytes(const char *s, uint64_t *out)
{
	unsigned long long	 v;
	unsigned		 shift = 0;
	char			*end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end != '\0' || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int
ctl_start_option(const char *cmd, int ch, const char *arg, json_t *args)
{
	unsigned long	 level;
	uint64_t	 bytes;
	char		*end;

	switch (ch) {
	case 'f':
		if (strcmp(arg, SNAPD_FORMAT_ZSNAP) != 0 &&
		    strcmp(arg, SNAPD_FORMAT_RAW) != 0)
			usage_error("%s: --format is %s or %s, not %s", cmd,
			    SNAPD_FORMAT_ZSNAP, SNAPD_FORMAT_RAW, arg);
		json_object_set_new(args, "format", json_string(arg));
		return 1;
	case 'l':
		errno = 0;
		level = strtoul(arg, &end, 10);
		if (errno != 0 || *end != '\0' || end == arg ||
		    level < SNAPD_LEVEL_MIN || level > SNAPD_LEVEL_MAX)
			usage_error("%s: --level is %d to %d, not %s", cmd,
			    SNAPD_LEVEL_MIN, SNAPD_LEVEL_MAX, arg);
		json_object_set_new(args, "level",
		    json_integer((json_int_t)level));
		return 1;
	case 'b':
		if (ctl_parse_bytes(arg, &bytes) == -1 || bytes > INT64_MAX)
			usage_error("%s: --buffer-size is bytes (K, M, G "
			    "allowed), not %s", cmd, arg);
		json_object_set_new(args, "buffer-size",
		    json_integer((json_int_t)bytes));
		return 1;
	case 'R':
		if (ctl_parse_bytes(arg, &bytes) == -1 || bytes > INT64_MAX ||
		    (bytes != 0 && bytes < SNAPD_MAX_BANDWIDTH_MIN))
			usage_error("%s: --max-bandwidth is bytes a second (K, "
			    "M, G allowed), 0 or at least %u, not %s", cmd,
			    SNAPD_MAX_BANDWIDTH_MIN, arg);
		json_object_set_new(args, "max-bandwidth",
		    json_integer((json_int_t)bytes));
		return 1;
	}
	return 0;
}
