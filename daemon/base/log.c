/*
 * One log for the whole daemon: see log.h.
 *
 * Any thread may log.  The level is read without a lock (a stale level for
 * one line during SIGHUP reload is harmless); each line is formatted into a
 * local buffer and written with a single write(2), so lines from the fault
 * thread, the writer thread and the main loop never interleave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static enum log_level	 log_level = LOG_LEVEL_INFO;
static int		 log_sd_prefix;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

/* sd-daemon priorities: SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
static const char *const level_prefix[] = {
	[LOG_LEVEL_ERROR] = "<3>",
	[LOG_LEVEL_WARNING] = "<4>",
	[LOG_LEVEL_INFO] = "<6>",
	[LOG_LEVEL_DEBUG] = "<7>",
};

void
log_init(enum log_level level, int sd_prefix)
{
	log_level = level;
	log_sd_prefix = sd_prefix || getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

static void
log_vwrite(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	char	 line[2048];
	int	 saved_errno = errno;
	size_t	 len = 0;
	int	 n;

	if (level > log_level)
		return;
	if (log_sd_prefix)
		len = strlen(strcpy(line, level_prefix[level]));
	else {
		n = snprintf(line, sizeof(line), "snapd: ");
		len = (size_t)n;
	}
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	if (with_errno && len < sizeof(line) - 1) {
		n = snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(saved_errno));
		if (n > 0)
			len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	}
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
	errno = saved_errno;
}

/* then: what the function does after logging (fatal and fatalx exit). */
#define LOG_FN(name, level, with_errno, then)			\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_vwrite(level, with_errno, fmt, ap);			\
	va_end(ap);						\
	then;							\
}

LOG_FN(log_warn, LOG_LEVEL_WARNING, 1, (void)0)
LOG_FN(log_warnx, LOG_LEVEL_WARNING, 0, (void)0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0, (void)0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0, (void)0)
LOG_FN(fatal, LOG_LEVEL_ERROR, 1, exit(1))
LOG_FN(fatalx, LOG_LEVEL_ERROR, 0, exit(1))

void *
xmalloc(size_t size)
{
	void *p = malloc(size);

	if (p == NULL)
		fatal("malloc %zu bytes", size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL)
		fatal("calloc %zu x %zu bytes", n, size);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}
