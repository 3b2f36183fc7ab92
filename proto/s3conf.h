/*
 * The S3 settings of a snapd.conf(5)-grammar file, for readers outside the
 * daemon (the client library, memsnapctl): the s3_endpoint, s3_region,
 * s3_addressing, s3_credentials, s3_timeout and s3_retries keys, every
 * other key ignored, and the credentials file s3_credentials names
 * (s3_credentials_load(), owned by cred_owner).  The daemon parses the same
 * keys in its own configuration (daemon/control/config.c) with the same
 * defaults: region "us-east-1", addressing "path", timeout 30, retries 4.
 *
 * 0, or -1 with errno set and "path:line: what" (or the credentials
 * file's refusal) in err.
 */
#ifndef SNAPD_S3CONF_H
#define SNAPD_S3CONF_H

#include <stddef.h>
#include <sys/types.h>

#include "s3.h"

#define S3CONF_DEFAULT_REGION	"us-east-1"
#define S3CONF_DEFAULT_TIMEOUT	30
#define S3CONF_DEFAULT_RETRIES	4
#define S3CONF_DEFAULT_CREDENTIALS	"/etc/memsnap/s3-credentials"

void	s3_config_defaults(struct s3_config *conf);
int	s3_config_load(struct s3_config *conf, const char *path,
	    uid_t cred_owner, char *err, size_t errlen);

#endif /* SNAPD_S3CONF_H */
