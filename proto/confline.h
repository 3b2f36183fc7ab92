/*
 * One line of the snapd.conf(5) grammar, shared by the daemon's
 * configuration (daemon/control/config.c) and by the files read on both
 * sides (the S3 settings and credentials, proto/s3conf.c): "key value",
 * '#' starting a comment outside double quotes, blank lines ignored, a
 * value optionally in double quotes (needed when it is empty or holds
 * blanks; a value never contains '"').
 */
#ifndef SNAPD_CONFLINE_H
#define SNAPD_CONFLINE_H

#include <stddef.h>

/*
 * Split line into key and value, in place.  1 with *key and *value set,
 * 0 for a blank or comment line, -1 with a message in err (it names the
 * key, never the value: a value may be a secret).
 */
int	confline_split(char *line, char **key, char **value, char *err,
	    size_t errlen);

#endif /* SNAPD_CONFLINE_H */
