/*
 * Unit test of the client side's S3 settings and the credentials file
 * (proto/s3conf.c), on files in a temporary directory, no network.  What
 * must hold:
 *
 *   defaults	region us-east-1, path addressing, timeout 30, retries 4;
 *   keys	every s3_* key read, every other key (and its errors) left
 *		to the daemon; a bad s3_* value is "path:line: why";
 *   endpoint	a file without s3_endpoint says S3 is not configured;
 *   creds	"access_key V" / "secret_key V", quotes and comments; an
 *		unknown or duplicate key, a missing one, an empty value are
 *		refused naming the file and line, never a value;
 *   safety	a file with group or other bits, of another owner, a
 *		symbolic link or not a regular file is refused, naming the
 *		file and why.
 *
 * Exits 0 on pass, 1 on failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3conf.h"
#include "unit-check.h"

static char	dir[] = "/tmp/test_s3conf.XXXXXX";
static char	conf_path[256], cred_path[256];

static void
write_file(const char *path, mode_t mode, const char *text)
{
	FILE *f;

	unlink(path);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) == EOF ||
	    fclose(f) != 0 || chmod(path, mode) != 0) {
		perror(path);
		exit(1);
	}
}

/* Load conf (text) with the good credentials file: 0 or -1, err set. */
static int
load(const char *text, struct s3_config *c, char *err, size_t errlen)
{
	char body[2048];

	snprintf(body, sizeof(body), "%ss3_credentials %s\n", text, cred_path);
	write_file(conf_path, 0644, body);
	s3_config_defaults(c);
	err[0] = '\0';
	return s3_config_load(c, conf_path, getuid(), err, errlen);
}

static void
check_bad_conf(const char *text, const char *why)
{
	struct s3_config	c;
	char			err[512];

	if (load(text, &c, err, sizeof(err)) == 0)
		FAIL("conf accepted: %s", text);
	else if (strstr(err, why) == NULL || strstr(err, conf_path) == NULL)
		FAIL("conf '%s': message '%s' does not name the file and say "
		    "'%s'", text, err, why);
}

static void
check_conf(void)
{
	struct s3_config	c;
	char			err[512];

	write_file(cred_path, 0600, "# test keys\naccess_key AK1\n"
	    "secret_key \"s3cr et\"   # quoted: it holds a blank\n");
	if (load("s3_endpoint http://127.0.0.1:7480\n", &c, err,
	    sizeof(err)) != 0) {
		FAIL("defaults: refused: %s", err);
		return;
	}
	if (strcmp(c.region, "us-east-1") != 0 || !c.path_style ||
	    c.timeout != 30 || c.retries != 4)
		FAIL("defaults: region %s path %d timeout %d retries %d",
		    c.region, c.path_style, c.timeout, c.retries);
	if (strcmp(c.access_key, "AK1") != 0 ||
	    strcmp(c.secret_key, "s3cr et") != 0)
		FAIL("credentials: the keys were not read as written");
	if (load("# snapd.conf\nsocket /run/x.sock\nbuffer_size 64M\n"
	    "destination s3\ns3_url s3://b/p\ns3_part_size 8M\n"
	    "s3_endpoint https://s3.example.org\ns3_region eu-west-3\n"
	    "s3_addressing virtual\ns3_timeout 7\ns3_retries 0\n"
	    "unknown_key \"unterminated\n", &c, err, sizeof(err)) != 0) {
		FAIL("keys: refused: %s", err);
		return;
	}
	if (strcmp(c.endpoint, "https://s3.example.org") != 0 ||
	    strcmp(c.region, "eu-west-3") != 0 || c.path_style ||
	    c.timeout != 7 || c.retries != 0)
		FAIL("keys: endpoint %s region %s path %d timeout %d retries %d",
		    c.endpoint, c.region, c.path_style, c.timeout, c.retries);
	check_bad_conf("", "no s3_endpoint");
	check_bad_conf("s3_endpoint \"\"\n", "no s3_endpoint");
	check_bad_conf("s3_endpoint 127.0.0.1:7480\n", ":1: endpoint");
	check_bad_conf("s3_endpoint http://h/path\n", "no path");
	check_bad_conf("s3_endpoint http://h\ns3_region Bad_Region\n",
	    ":2: s3_region");
	check_bad_conf("s3_endpoint http://h\ns3_addressing host\n",
	    "path or virtual");
	check_bad_conf("s3_endpoint http://h\ns3_timeout 0\n", "s3_timeout");
	check_bad_conf("s3_endpoint http://h\ns3_retries 7x\n", "s3_retries");
	check_bad_conf("s3_endpoint http://h\ns3_timeout \"30\n",
	    "unterminated");
	check_bad_conf("s3_endpoint http://h\ns3_credentials relative\n",
	    "absolute");
}

static void
check_bad_creds(const char *text, mode_t mode, uid_t owner, const char *why)
{
	struct s3_config	c;
	char			err[512] = "";

	write_file(cred_path, mode, text);
	s3_config_defaults(&c);
	errno = 0;
	if (s3_credentials_load(&c, cred_path, owner, err, sizeof(err)) == 0) {
		FAIL("credentials accepted: '%s'", text);
		return;
	}
	if (errno == 0)
		FAIL("credentials '%s': errno not set", text);
	if (strstr(err, why) == NULL || strstr(err, cred_path) == NULL)
		FAIL("credentials '%s': message '%s' does not name the file "
		    "and say '%s'", text, err, why);
	if (strstr(err, "SECRETVALUE") != NULL || strstr(err, "AKVALUE") != NULL)
		FAIL("credentials: a key value in the message '%s'", err);
	if (c.access_key[0] != '\0' || c.secret_key[0] != '\0')
		FAIL("credentials '%s': a refused file set a key", text);
}

static void
check_creds(void)
{
	const char	*good = "access_key AKVALUE\nsecret_key SECRETVALUE\n";
	char		 link[300];
	struct s3_config c;
	char		 err[512];

	check_bad_creds("access_key AKVALUE\n", 0600, getuid(),
	    "no secret_key");
	check_bad_creds("secret_key SECRETVALUE\n", 0600, getuid(),
	    "no access_key");
	check_bad_creds("access_key AKVALUE\nsecret_key SECRETVALUE\n"
	    "secret_key SECRETVALUE\n", 0600, getuid(), ":3: duplicate key");
	check_bad_creds("access_key AKVALUE\nsecret SECRETVALUE\n", 0600,
	    getuid(), ":2: unknown key 'secret'");
	check_bad_creds("access_key AKVALUE\nsecret_key \"\"\n", 0600,
	    getuid(), ":2: secret_key is empty");
	check_bad_creds("access_key AKVALUE\nsecret_key \"SECRETVALUE\n", 0600,
	    getuid(), ":2: unterminated");
	check_bad_creds(good, 0644, getuid(), "mode 0644: group or others may "
	    "read it");
	check_bad_creds(good, 0620, getuid(), "mode 0620: group or others may "
	    "write it");
	check_bad_creds(good, 0600, getuid() + 1, "not");
	check_bad_creds(good, 0400, getuid() + 1, "owned by uid");
	/* The right file through a symbolic link: refused. */
	write_file(cred_path, 0600, good);
	snprintf(link, sizeof(link), "%s/link", dir);
	if (symlink(cred_path, link) != 0) {
		perror("symlink");
		exit(1);
	}
	s3_config_defaults(&c);
	if (s3_credentials_load(&c, link, getuid(), err, sizeof(err)) == 0)
		FAIL("a symbolic link to the credentials was followed");
	else if (strstr(err, "symbolic link") == NULL)
		FAIL("symbolic link: message '%s'", err);
	unlink(link);
	s3_config_defaults(&c);
	if (s3_credentials_load(&c, dir, getuid(), err, sizeof(err)) == 0 ||
	    strstr(err, "not a regular file") == NULL)
		FAIL("a directory as credentials: '%s'", err);
	if (s3_credentials_load(&c, cred_path, getuid(), err,
	    sizeof(err)) != 0 || strcmp(c.access_key, "AKVALUE") != 0 ||
	    strcmp(c.secret_key, "SECRETVALUE") != 0)
		FAIL("the good file at mode 0600 was refused: %s", err);
	write_file(cred_path, 0400, good);
	if (s3_credentials_load(&c, cred_path, getuid(), err,
	    sizeof(err)) != 0)
		FAIL("the good file at mode 0400 was refused: %s", err);
}

int
main(void)
{
	int rv;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/snapd.conf", dir);
	snprintf(cred_path, sizeof(cred_path), "%s/s3-credentials", dir);
	check_conf();
	check_creds();
	rv = unit_finish("s3conf");
	unlink(conf_path);
	unlink(cred_path);
	rmdir(dir);
	return rv;
}
