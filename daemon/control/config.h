/*
 * snapd's configuration: snapd.conf(5) parsed into one struct config.
 *
 * The grammar is one "key value" per line, '#' starting a comment outside
 * double quotes, blank lines ignored, a value optionally in double quotes
 * (needed when it is empty or holds blanks; a value never contains '"').
 * Sizes take K, M, G or T suffixes (powers of 1024).  Every error is
 * reported as "file:line: message" and parsing goes on to the end of the
 * file so that all errors show at once.
 *
 * The daemon keeps one current configuration (config_get()); the main
 * thread replaces it on SIGHUP with config_set().  Only the main thread
 * reads or writes it.
 */
#ifndef SNAPD_CONFIG_H
#define SNAPD_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <sys/types.h>

#include <jansson.h>

#include "log.h"
#include "output.h"
#include "snapshot.h"

/* What SIGTERM does to running snapshots. */
enum shutdown_mode {
	SHUTDOWN_CANCEL = 0,	/* cancel them at once */
	SHUTDOWN_FINISH,	/* let them finish, up to shutdown_timeout */
};

#define CONFIG_GROUP_MAX	64

struct config {
	char			socket[PATH_MAX];
	char			socket_group[CONFIG_GROUP_MAX];	/* "" is root's */
	mode_t			socket_mode;
	char			snapshot_dir[PATH_MAX];
	enum output_format	format;
	int			compression_level;
	int			compression_threads;
	int			pressure_level;		/* 0: never hurry */
	uint64_t		buffer_size;			/* bytes */
	int			max_snapshots;
	int			max_snapshots_per_uid;	/* root is not counted */
	uint64_t		max_message_size;		/* bytes */
	int			max_connections_per_uid;
	int			client_timeout;			/* seconds */
	enum discard_policy	on_discard;
	enum shutdown_mode	shutdown;
	int			shutdown_timeout;		/* seconds */
	enum log_level		log_level;
};

/* Fill conf with the built-in defaults (those of conf/snapd.conf). */
void		 config_defaults(struct config *conf);

/*
 * Parse path into conf, starting from the defaults.  Returns 0 on success;
 * -1 if the file could not be read or had errors, each written to errf as
 * one "path:line: message" line (or "path: open: strerror"), with errno
 * set (ENOENT when the file does not exist).  conf is untouched on error.
 */
int		 config_load(struct config *conf, const char *path, FILE *errf);

/* Write conf in the snapd.conf grammar; config_load() reads it back equal. */
void		 config_print(const struct config *conf, FILE *f);

/* conf as a JSON object, one member per key (sizes in bytes), for
 * query-config.  Returns a new reference. */
json_t		*config_to_json(const struct config *conf);

/* Names of the enumerated values, as the file spells them. */
const char	*config_format_name(enum output_format format);
const char	*config_discard_name(enum discard_policy policy);
const char	*config_shutdown_name(enum shutdown_mode mode);

/* The daemon's current configuration (defaults until config_set()). */
const struct config *config_get(void);
void		 config_set(const struct config *conf);

#endif /* SNAPD_CONFIG_H */
