/*
 * The client side's S3 settings: which file, and a message naming it
 * (s3settings.h).  secure_getenv(): in a set-user-ID program the
 * environment does not choose the file (nor so the credentials read).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3conf.h"
#include "s3settings.h"

int
sc_s3_settings(struct s3_config *conf, char *err, size_t errlen)
{
	const char	*path, *from;
	char		 why[S3_ERROR_MAX];
	int		 saved;

	if ((path = secure_getenv(SC_S3_CONFIG_ENV)) != NULL && *path != '\0')
		from = " ($" SC_S3_CONFIG_ENV ")";
	else {
		path = SC_S3_CONFIG;
		from = "";
	}
	why[0] = '\0';
	errno = 0;
	if (s3_config_load(conf, path, getuid(), why, sizeof(why)) == -1) {
		saved = errno != 0 ? errno : EINVAL;
		explicit_bzero(conf, sizeof(*conf));
		/* "PATH:LINE: what" names the file already. */
		if (strncmp(why, path, strlen(path)) == 0)
			snprintf(err, errlen, "S3 settings%s: %s", from, why);
		else
			snprintf(err, errlen, "S3 settings from %s%s: %s", path,
			    from, why[0] != '\0' ? why : strerror(saved));
		errno = saved;
		return -1;
	}
	if (conf->endpoint[0] == '\0') {
		explicit_bzero(conf, sizeof(*conf));
		snprintf(err, errlen, "S3 settings from %s%s: no s3_endpoint: "
		    "no S3 service to reach", path, from);
		errno = EINVAL;
		return -1;
	}
	return 0;
}
