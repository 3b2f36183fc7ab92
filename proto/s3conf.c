/*
 * S3 settings and credentials from files in the snapd.conf(5) grammar
 * (confline.c): s3_config_load() for readers outside the daemon (see
 * s3conf.h), s3_credentials_load() for both sides (see s3.h).
 *
 * A credentials file is opened without following a symbolic link and
 * checked on the open descriptor (owner, no group or other bits), so that
 * what is checked is what is read.  Its values never reach a message:
 * errors name the file, the line and the key.  The buffers that held the
 * file are wiped before they are freed.
 *
 * Thread-safe: nothing here keeps state.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "confline.h"
#include "ioutil.h"
#include "s3-internal.h"
#include "s3conf.h"

#define S3_CREDENTIALS_MAX	(64 * 1024)	/* larger is not a key file */

void
s3_config_defaults(struct s3_config *conf)
{
	memset(conf, 0, sizeof(*conf));
	snprintf(conf->region, sizeof(conf->region), "%s",
	    S3CONF_DEFAULT_REGION);
	conf->path_style = 1;
	conf->timeout = S3CONF_DEFAULT_TIMEOUT;
	conf->retries = S3CONF_DEFAULT_RETRIES;
}

/* Read the whole of the open credentials file fd (path for messages). */
static char *
s3_credentials_read(int fd, const char *path, char *err, size_t errlen)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;

	if ((buf = malloc(S3_CREDENTIALS_MAX + 1)) == NULL) {
		ioutil_set_error(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	while (len < S3_CREDENTIALS_MAX && (n = read(fd, buf + len,
	    S3_CREDENTIALS_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ioutil_set_error(err, errlen, "%s: read: %s", path,
			    strerror(errno));
			explicit_bzero(buf, len);
			free(buf);
			return NULL;
		}
		len += (size_t)n;
	}
	if (len == S3_CREDENTIALS_MAX) {
		ioutil_set_error(err, errlen, "%s: larger than %d bytes: not "
		    "a credentials file", path, S3_CREDENTIALS_MAX);
		explicit_bzero(buf, len);
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* Parse the file's text into access and secret (both in conf only if the
 * whole file is right). */
static int
s3_credentials_parse(struct s3_config *conf, char *text, const char *path,
    char *err, size_t errlen)
{
	char		 access[sizeof(conf->access_key)] = "";
	char		 secret[sizeof(conf->secret_key)] = "";
	char		*line, *next, *key, *value, msg[256];
	unsigned	 lineno = 0;
	int		 rv = -1;

	for (line = text; line != NULL; line = next) {
		char	*dst;
		size_t	 dstlen;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		switch (confline_split(line, &key, &value, msg, sizeof(msg))) {
		case 0:
			continue;
		case -1:
			ioutil_set_error(err, errlen, "%s:%u: %s", path, lineno,
			    msg);
			goto out;
		}
		if (strcmp(key, "access_key") == 0) {
			dst = access;
			dstlen = sizeof(access);
		} else if (strcmp(key, "secret_key") == 0) {
			dst = secret;
			dstlen = sizeof(secret);
		} else {
			ioutil_set_error(err, errlen, "%s:%u: unknown key '%.64s' "
			    "(access_key or secret_key)", path, lineno, key);
			goto out;
		}
		if (dst[0] != '\0') {
			ioutil_set_error(err, errlen, "%s:%u: duplicate key '%s'",
			    path, lineno, key);
			goto out;
		}
		if (value[0] == '\0' || strlen(value) >= dstlen) {
			ioutil_set_error(err, errlen, "%s:%u: %s is %s", path,
			    lineno, key, value[0] == '\0' ? "empty" : "too long");
			goto out;
		}
		memcpy(dst, value, strlen(value) + 1);
	}
	if (access[0] == '\0' || secret[0] == '\0') {
		ioutil_set_error(err, errlen, "%s: no %s line", path,
		    access[0] == '\0' ? "access_key" : "secret_key");
		goto out;
	}
	memcpy(conf->access_key, access, sizeof(access));
	memcpy(conf->secret_key, secret, sizeof(secret));
	rv = 0;
out:
	explicit_bzero(access, sizeof(access));
	explicit_bzero(secret, sizeof(secret));
	if (rv == -1)
		errno = EINVAL;
	return rv;
}

int
s3_credentials_load(struct s3_config *conf, const char *path, uid_t owner,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*text;
	int		 fd, rv, saved;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		saved = errno;
		ioutil_set_error(err, errlen, "credentials file %s: %s", path,
		    saved == ELOOP ? "a symbolic link (refused)" :
		    strerror(saved));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		ioutil_set_error(err, errlen, "credentials file %s: fstat: %s",
		    path, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		ioutil_set_error(err, errlen, "credentials file %s: not a "
		    "regular file", path);
		close(fd);
		errno = EINVAL;
		return -1;
	}
	if (st.st_uid != owner) {
		ioutil_set_error(err, errlen, "credentials file %s: owned by "
		    "uid %u, not %u", path, (unsigned)st.st_uid,
		    (unsigned)owner);
		close(fd);
		errno = EACCES;
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		ioutil_set_error(err, errlen, "credentials file %s: mode %04o: "
		    "group or others may %s it (chmod 600)", path,
		    (unsigned)(st.st_mode & 07777),
		    (st.st_mode & 044) != 0 ? "read" :
		    (st.st_mode & 022) != 0 ? "write" : "execute");
		close(fd);
		errno = EACCES;
		return -1;
	}
	text = s3_credentials_read(fd, path, err, errlen);
	saved = errno;
	close(fd);
	if (text == NULL) {
		errno = saved;
		return -1;
	}
	rv = s3_credentials_parse(conf, text, path, err, errlen);
	saved = errno;
	explicit_bzero(text, strlen(text));
	free(text);
	errno = saved;
	return rv;
}

/* One s3_* key's value into conf (or credentials); -1 with msg. */
static int
s3_config_set(struct s3_config *conf, char *credentials, size_t credlen,
    const char *key, const char *value, char *msg, size_t msglen)
{
	char	 scheme[8], host[256];
	char	*end;
	long	 n;

	if (strcmp(key, "s3_endpoint") == 0) {
		if (value[0] != '\0' && s3_endpoint_split(value, scheme,
		    sizeof(scheme), host, sizeof(host), msg, msglen) == -1)
			return -1;
		if (strlen(value) >= sizeof(conf->endpoint)) {
			snprintf(msg, msglen, "s3_endpoint is too long");
			return -1;
		}
		snprintf(conf->endpoint, sizeof(conf->endpoint), "%s", value);
	} else if (strcmp(key, "s3_region") == 0) {
		if (value[0] == '\0' || strlen(value) >= sizeof(conf->region) ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
		    strlen(value)) {
			snprintf(msg, msglen, "s3_region '%.64s' is not a "
			    "region (a-z, 0-9, '-')", value);
			return -1;
		}
		snprintf(conf->region, sizeof(conf->region), "%s", value);
	} else if (strcmp(key, "s3_addressing") == 0) {
		if (strcmp(value, "path") != 0 && strcmp(value, "virtual") != 0) {
			snprintf(msg, msglen, "s3_addressing is path or "
			    "virtual, not '%.64s'", value);
			return -1;
		}
		conf->path_style = strcmp(value, "path") == 0;
	} else if (strcmp(key, "s3_credentials") == 0) {
		if (value[0] != '/' || strlen(value) >= credlen) {
			snprintf(msg, msglen, "s3_credentials is an absolute "
			    "path");
			return -1;
		}
		snprintf(credentials, credlen, "%s", value);
	} else if (strcmp(key, "s3_timeout") == 0 ||
	    strcmp(key, "s3_retries") == 0) {
		int timeout = strcmp(key, "s3_timeout") == 0;

		errno = 0;
		n = strtol(value, &end, 10);
		if (value[0] == '\0' || *end != '\0' || errno != 0 ||
		    n < (timeout ? 1 : 0) || n > (timeout ? 3600 : 100)) {
			snprintf(msg, msglen, "%s is %s, not '%.64s'", key,
			    timeout ? "1 to 3600 (seconds)" : "0 to 100", value);
			return -1;
		}
		if (timeout)
			conf->timeout = (int)n;
		else
			conf->retries = (int)n;
	}
	/* Any other key is the daemon's. */
	return 0;
}

int
s3_config_load(struct s3_config *conf, const char *path, uid_t cred_owner,
    char *err, size_t errlen)
{
	struct s3_config	 c;
	FILE			*f;
	char			*line = NULL, *key, *value, msg[384];
	char			 credentials[PATH_MAX] = S3CONF_DEFAULT_CREDENTIALS;
	size_t			 cap = 0;
	unsigned		 lineno = 0;
	int			 rv = 0, saved;

	if ((f = fopen(path, "re")) == NULL) {
		saved = errno;
		ioutil_set_error(err, errlen, "%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	s3_config_defaults(&c);
	while (rv == 0 && getline(&line, &cap, f) != -1) {
		lineno++;
		rv = confline_split(line, &key, &value, msg, sizeof(msg));
		if (rv == 1 && strncmp(key, "s3_", 3) != 0)
			rv = 0;		/* another key: not ours */
		else if (rv == 1)
			rv = s3_config_set(&c, credentials, sizeof(credentials),
			    key, value, msg, sizeof(msg));
		else if (rv == -1 && strncmp(key, "s3_", 3) != 0)
			rv = 0;		/* another key's error: the daemon's */
		if (rv == -1)
			ioutil_set_error(err, errlen, "%s:%u: %s", path, lineno,
			    msg);
	}
	if (rv == 0 && ferror(f)) {
		ioutil_set_error(err, errlen, "%s: read: %s", path,
		    strerror(errno));
		rv = -1;
	}
	free(line);
	fclose(f);
	if (rv == 0 && c.endpoint[0] == '\0') {
		ioutil_set_error(err, errlen, "%s: no s3_endpoint: S3 is not "
		    "configured", path);
		rv = -1;
	}
	if (rv == -1) {
		errno = EINVAL;
		return -1;
	}
	if (s3_credentials_load(&c, credentials, cred_owner, err, errlen) == -1) {
		saved = errno;
		explicit_bzero(&c, sizeof(c));
		errno = saved;
		return -1;
	}
	*conf = c;
	explicit_bzero(&c, sizeof(c));
	return 0;
}
