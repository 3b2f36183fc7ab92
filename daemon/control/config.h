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
#include "s3.h"
#include "snapshot.h"

/* What SIGTERM does to running snapshots. */
enum shutdown_mode {
	SHUTDOWN_CANCEL = 0,	/* cancel them at once */
	SHUTDOWN_FINISH,	/* let them finish, up to shutdown_timeout */
};

/* Where a snapshot-start without "to" writes its snapshot. */
enum config_destination {
	DESTINATION_DISK = 0,	/* snapshot_dir */
	DESTINATION_S3,		/* s3_url */
};

/* How requests name the bucket (struct s3_config's path_style). */
enum config_addressing {
	ADDRESSING_PATH = 0,	/* ENDPOINT/BUCKET/KEY */
	ADDRESSING_VIRTUAL,	/* BUCKET.HOST/KEY */
};

#define CONFIG_GROUP_MAX	64
#define CONFIG_ENDPOINT_MAX	256	/* struct s3_config's endpoint */
#define CONFIG_REGION_MAX	64	/* and its region */
/* "s3://" BUCKET "/" KEY-PREFIX, and the NUL. */
#define CONFIG_S3_URL_MAX	(5 + S3_BUCKET_MAX + 1 + S3_KEY_MAX + 1)

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

	/* S3 (snapd.conf(5), "S3"): no S3 while s3_endpoint is "". */
	char			s3_endpoint[CONFIG_ENDPOINT_MAX];
	char			s3_region[CONFIG_REGION_MAX];
	enum config_addressing	s3_addressing;
	char			s3_credentials[PATH_MAX];
	int			s3_timeout;			/* seconds */
	int			s3_retries;
	char			s3_url[CONFIG_S3_URL_MAX];	/* "" or s3://B/P */
	uint64_t		s3_part_size;			/* bytes */
	int			s3_parts_in_flight;
	enum config_destination	destination;

	/*
	 * The keys of the s3_credentials file, filled by
	 * config_load_credentials() (empty without an s3_endpoint).  Not
	 * keys of the file: never printed, never in query-config, never
	 * logged.
	 */
	char			s3_access_key[sizeof(((struct s3_config *)0)->access_key)];
	char			s3_secret_key[sizeof(((struct s3_config *)0)->secret_key)];
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

/*
 * With an s3_endpoint, read the s3_credentials file into conf's keys
 * (s3_credentials_load(), owned by root, no group or other permission);
 * without one, clear them.  0, or -1 with errno set and a message naming
 * the file and what is wrong in err.  The daemon calls it at start-up
 * (refusing to start on failure) and on reload (keeping the old
 * configuration on failure); config_load() never reads the file.
 */
int		 config_load_credentials(struct config *conf, char *err,
		    size_t errlen);

/* conf's S3 settings and keys as the S3 client takes them. */
void		 config_s3(const struct config *conf, struct s3_config *s3);

/* Overwrite conf's keys (a copy about to be dropped). */
void		 config_forget_credentials(struct config *conf);

/* Write conf in the snapd.conf grammar; config_load() reads it back equal. */
void		 config_print(const struct config *conf, FILE *f);

/* conf as a JSON object, one member per key (sizes in bytes), for
 * query-config.  Returns a new reference. */
json_t		*config_to_json(const struct config *conf);

/* Names of the enumerated values, as the file spells them. */
const char	*config_format_name(enum output_format format);
const char	*config_discard_name(enum discard_policy policy);
const char	*config_shutdown_name(enum shutdown_mode mode);
const char	*config_destination_name(enum config_destination d);

/* The daemon's current configuration (defaults until config_set()). */
const struct config *config_get(void);
void		 config_set(const struct config *conf);

#endif /* SNAPD_CONFIG_H */
