/*
 * Where the client side finds its S3 settings (internal, not installed):
 * the file $SNAP_S3_CONFIG names, else /etc/memsnap/snapd.conf, read by
 * s3_config_load() (proto/s3conf.h: its s3_* keys only, and the
 * credentials file s3_credentials names, which must be owned by the
 * caller's uid, getuid(), and readable by nobody else).  The reader
 * (reader-s3.c) and memsnapctl's list --remote share it, so both look in
 * the same place and say the same thing when it is wrong.
 */
#ifndef SNAPCLIENT_S3SETTINGS_H
#define SNAPCLIENT_S3SETTINGS_H

#include <stddef.h>

#include "s3.h"

#define SC_S3_CONFIG_ENV	"SNAP_S3_CONFIG"
#define SC_S3_CONFIG		"/etc/memsnap/snapd.conf"

/*
 * Load conf; 0, or -1 with errno set and err saying which file and why
 * ("S3 settings from /etc/memsnap/snapd.conf: ...").  A file that sets
 * no s3_endpoint is refused (EINVAL): there is no S3 service to reach.
 * On failure conf holds no key.
 */
int	sc_s3_settings(struct s3_config *conf, char *err, size_t errlen);

#endif /* SNAPCLIENT_S3SETTINGS_H */
