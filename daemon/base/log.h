/*
 * Logging for snapd, in the OpenBSD daemons' manner.
 *
 * log_warn() and fatal() append ": strerror(errno)"; the x variants do not.
 * Every function preserves errno.  Lines go to stderr; under systemd
 * (JOURNAL_STREAM set, or log_init(..., 1)) each is prefixed with the
 * sd-daemon priority ("<3>" ...) so journald files it at the right level.
 * Messages name the object ("snapshot 7 (pid 4242): ..."), not the function.
 * Safe to call from any thread: each line is one write(2).
 */
#ifndef SNAPD_LOG_H
#define SNAPD_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void	log_init(enum log_level level, int sd_prefix);
void	log_set_level(enum log_level level);
enum log_level log_get_level(void);
int	log_level_parse(const char *name, enum log_level *level);
const char *log_level_name(enum log_level level);

void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* Allocation that cannot fail: out of memory in the daemon is fatal. */
void	*xmalloc(size_t size);
void	*xcalloc(size_t n, size_t size);
char	*xstrdup(const char *s);

#endif /* SNAPD_LOG_H */
