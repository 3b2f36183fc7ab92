/*
 * Unit test of snapd.conf parsing (daemon/control/config.c) and of the snapshot
 * name checker (daemon/control/paths.c).
 *
 * Good and bad configurations are written to temporary files and parsed;
 * every bad one must fail with exactly the expected "file:line: message"
 * lines.  The shipped conf/snapd.conf must parse to the built-in defaults,
 * and config_print() output must parse back to the same configuration.
 * Exits 0 on pass, 1 (saying what was wrong) on failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "paths.h"
#include "unit-check.h"

static char	tmpdir[] = "/tmp/test_config.XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char	path[512];
	FILE		*f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL) {
		fprintf(stderr, "create %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* Parse path; return the error text (malloc'ed) and the result. */
static int
load(const char *path, struct config *conf, char **errors)
{
	size_t	 len = 0;
	FILE	*errf = open_memstream(errors, &len);
	int	 rv;

	if (errf == NULL) {
		fprintf(stderr, "open_memstream: %s\n", strerror(errno));
		exit(1);
	}
	rv = config_load(conf, path, errf);
	fclose(errf);
	return rv;
}

static int
config_equal(const struct config *a, const struct config *b)
{
	return strcmp(a->socket, b->socket) == 0 &&
	    strcmp(a->socket_group, b->socket_group) == 0 &&
	    a->socket_mode == b->socket_mode &&
	    strcmp(a->snapshot_dir, b->snapshot_dir) == 0 &&
	    a->format == b->format &&
	    a->compression_level == b->compression_level &&
	    a->compression_threads == b->compression_threads &&
	    a->pressure_level == b->pressure_level &&
	    a->buffer_size == b->buffer_size &&
	    a->max_snapshots == b->max_snapshots &&
	    a->max_snapshots_per_uid == b->max_snapshots_per_uid &&
	    a->max_message_size == b->max_message_size &&
	    a->max_connections_per_uid == b->max_connections_per_uid &&
	    a->client_timeout == b->client_timeout &&
	    a->on_discard == b->on_discard &&
	    a->shutdown == b->shutdown &&
	    a->shutdown_timeout == b->shutdown_timeout &&
	    a->log_level == b->log_level &&
	    a->destination == b->destination &&
	    strcmp(a->s3_endpoint, b->s3_endpoint) == 0 &&
	    strcmp(a->s3_region, b->s3_region) == 0 &&
	    a->s3_addressing == b->s3_addressing &&
	    strcmp(a->s3_credentials, b->s3_credentials) == 0 &&
	    a->s3_timeout == b->s3_timeout &&
	    a->s3_retries == b->s3_retries &&
	    strcmp(a->s3_url, b->s3_url) == 0 &&
	    a->s3_part_size == b->s3_part_size &&
	    a->s3_parts_in_flight == b->s3_parts_in_flight;
}

/* Print conf, parse it back, compare. */
static void
check_roundtrip(const struct config *conf, const char *what)
{
	struct config	 back;
	char		*text = NULL, *errors = NULL;
	size_t		 len = 0;
	FILE		*f = open_memstream(&text, &len);

	config_print(conf, f);
	fclose(f);
	if (load(write_file("printed.conf", text), &back, &errors) != 0)
		FAIL("%s: printed configuration does not parse:\n%s---\n%s",
		    what, text, errors);
	else if (!config_equal(conf, &back))
		FAIL("%s: printed configuration parses to something else:\n%s",
		    what, text);
	free(text);
	free(errors);
}

struct bad_case {
	const char	*text;
	const char	*errors;	/* expected, each line "F:LINE: msg" */
};

static const struct bad_case bad_cases[] = {
	{ "frobnicate 1\n", "F:1: unknown key 'frobnicate'\n" },
	{ "# comment\n\nformat\n", "F:3: missing value for 'format'\n" },
	{ "format   # nothing\n", "F:1: missing value for 'format'\n" },
	{ "format zip\n",
	    "F:1: bad value 'zip' for format: expected zsnap|raw\n" },
	{ "compression_level 0\n",
	    "F:1: compression_level 0 out of range (1..19)\n" },
	{ "compression_level 20\n",
	    "F:1: compression_level 20 out of range (1..19)\n" },
	{ "compression_level 3x\n",
	    "F:1: bad value '3x' for compression_level: expected an integer\n" },
	{ "compression_level -1\n",
	    "F:1: bad value '-1' for compression_level: expected an integer\n" },
	{ "compression_threads 65\n",
	    "F:1: compression_threads 65 out of range (0..64)\n" },
	{ "pressure_level 20\n",
	    "F:1: pressure_level 20 out of range (0..19)\n" },
	{ "buffer_size 2K\n",
	    "F:1: buffer_size 2K out of range (4K..64G)\n" },
	{ "buffer_size 65G\n",
	    "F:1: buffer_size 65G out of range (4K..64G)\n" },
	{ "buffer_size 1Q\n",
	    "F:1: bad value '1Q' for buffer_size: expected a size (bytes, or "
	    "with a K, M, G or T suffix)\n" },
	{ "buffer_size 99999999999999999999999\n",
	    "F:1: bad value '99999999999999999999999' for buffer_size: "
	    "expected a size (bytes, or with a K, M, G or T suffix)\n" },
	{ "buffer_size 17179869184T\n",
	    "F:1: buffer_size 17179869184T out of range\n" },
	{ "max_snapshots 0\n", "F:1: max_snapshots 0 out of range (1..1024)\n" },
	{ "max_snapshots 1025\n",
	    "F:1: max_snapshots 1025 out of range (1..1024)\n" },
	{ "max_snapshots_per_uid 0\n",
	    "F:1: max_snapshots_per_uid 0 out of range (1..1024)\n" },
	{ "max_message_size 1023\n",
	    "F:1: max_message_size 1023 out of range (1K..16M)\n" },
	{ "max_message_size 17M\n",
	    "F:1: max_message_size 17M out of range (1K..16M)\n" },
	{ "max_connections_per_uid 4097\n",
	    "F:1: max_connections_per_uid 4097 out of range (1..4096)\n" },
	{ "client_timeout 0\n",
	    "F:1: client_timeout 0 out of range (1..3600)\n" },
	{ "shutdown_timeout 3601\n",
	    "F:1: shutdown_timeout 3601 out of range (0..3600)\n" },
	{ "on_discard ignore\n",
	    "F:1: bad value 'ignore' for on_discard: expected record|fail\n" },
	{ "shutdown later\n",
	    "F:1: bad value 'later' for shutdown: expected cancel|finish\n" },
	{ "log_level verbose\n",
	    "F:1: bad value 'verbose' for log_level: expected "
	    "error|warning|info|debug\n" },
	{ "socket_mode 0668\n",
	    "F:1: bad value '0668' for socket_mode: expected an octal mode\n" },
	{ "socket_mode 01777\n",
	    "F:1: socket_mode 01777 out of range (0000..0777)\n" },
	{ "socket relative/path\n",
	    "F:1: bad value 'relative/path' for socket: expected an absolute "
	    "path\n" },
	{ "snapshot_dir \"\"\n",
	    "F:1: bad value '' for snapshot_dir: expected an absolute path\n" },
	{ "socket_group no-such-group-here\n",
	    "F:1: bad value 'no-such-group-here' for socket_group: no such "
	    "group\n" },
	{ "socket \"/run/x\n",
	    "F:1: unterminated quoted value for 'socket'\n" },
	{ "socket \"/run/x\" extra\n",
	    "F:1: unexpected text after the value of 'socket'\n" },
	{ "format zsnap raw\n",
	    "F:1: unexpected text after the value of 'format'\n" },
	{ "socket /run/a\"b\n",
	    "F:1: bad value for 'socket': stray '\"' (quote the whole value)\n" },
	{ "format raw\nformat zsnap\n",
	    "F:2: duplicate key 'format' (first set on line 1)\n" },
	{ "s3_endpoint ftp://x\n",
	    "F:1: bad value 'ftp://x' for s3_endpoint: expected \"\" or a URL "
	    "starting with http:// or https://\n" },
	{ "s3_endpoint http://127.0.0.1:7480/bucket\n",
	    "F:1: bad value 'http://127.0.0.1:7480/bucket' for s3_endpoint: no "
	    "path after the host: the bucket is named by s3_url\n" },
	{ "s3_endpoint http://127.0.0.1:7480/\n",
	    "F:1: bad value 'http://127.0.0.1:7480/' for s3_endpoint: no path "
	    "after the host: the bucket is named by s3_url\n" },
	{ "s3_endpoint http://h:0\n",
	    "F:1: bad value 'http://h:0' for s3_endpoint: the port must be "
	    "1..65535\n" },
	{ "s3_endpoint http://user:pw@h\n",
	    "F:1: bad value 'http://user:pw@h' for s3_endpoint: no user or "
	    "password in the URL (the keys go in the s3_credentials file)\n" },
	{ "s3_endpoint http://h?x=1\n",
	    "F:1: bad value 'http://h?x=1' for s3_endpoint: only "
	    "http(s)://HOST[:PORT] (no user, path or query)\n" },
	{ "s3_endpoint https://\n",
	    "F:1: bad value 'https://' for s3_endpoint: no host name after "
	    "the scheme\n" },
	{ "s3_region \"us east\"\n",
	    "F:1: bad value 'us east' for s3_region: expected 1 to 63 "
	    "letters, digits, '-' or '_'\n" },
	{ "s3_addressing vhost\n",
	    "F:1: bad value 'vhost' for s3_addressing: expected "
	    "path|virtual\n" },
	{ "s3_part_size 4M\n",
	    "F:1: s3_part_size 4M out of range (5M..5G)\n" },
	{ "s3_part_size 6G\n",
	    "F:1: s3_part_size 6G out of range (5M..5G)\n" },
	{ "s3_parts_in_flight 0\n",
	    "F:1: s3_parts_in_flight 0 out of range (1..16)\n" },
	{ "s3_parts_in_flight 17\n",
	    "F:1: s3_parts_in_flight 17 out of range (1..16)\n" },
	{ "s3_timeout 0\n",
	    "F:1: s3_timeout 0 out of range (1..3600)\n" },
	{ "s3_credentials keys.txt\n",
	    "F:1: bad value 'keys.txt' for s3_credentials: expected an "
	    "absolute path\n" },
	{ "destination tape\n",
	    "F:1: bad value 'tape' for destination: expected disk|s3\n" },
	{ "# the URL alone\ns3_url s3://snaps/host1\ndestination s3\n",
	    "F:3: destination s3 needs s3_endpoint and s3_url\n" },
	{ "s3_endpoint http://127.0.0.1:7480\ndestination s3\n",
	    "F:2: destination s3 needs s3_endpoint and s3_url\n" },
	{ "s3_endpoint http://127.0.0.1:7480\ns3_url s3://snaps\n"
	    "destination s3\nformat raw\n",
	    "F:3: destination s3 does not go with format raw: a raw snapshot "
	    "is a directory of files written in place, not one stream (use "
	    "format zsnap)\n" },
	/* Every error is reported, not just the first. */
	{ "format raw\nbogus 1\n\n  compression_level 99\nformat raw\n",
	    "F:2: unknown key 'bogus'\n"
	    "F:4: compression_level 99 out of range (1..19)\n"
	    "F:5: duplicate key 'format' (first set on line 1)\n" },
};

static void
check_bad(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct config	 conf, orig;
		const char	*path = write_file("bad.conf", bad_cases[i].text);
		char		*errors = NULL, expect[2048], *p;
		const char	*q;

		/* Expected text with F replaced by the file's path. */
		for (p = expect, q = bad_cases[i].errors; *q != '\0'; q++) {
			if (*q == 'F' && (q == bad_cases[i].errors ||
			    q[-1] == '\n') && q[1] == ':') {
				p += sprintf(p, "%s", path);
				continue;
			}
			*p++ = *q;
		}
		*p = '\0';

		config_defaults(&conf);
		conf.max_snapshots = 7;
		orig = conf;
		if (load(path, &conf, &errors) != -1)
			FAIL("case %zu (%s) parsed without error", i,
			    bad_cases[i].text);
		else if (strcmp(errors, expect) != 0)
			FAIL("case %zu (%s):\nexpected:\n%sgot:\n%s", i,
			    bad_cases[i].text, expect, errors);
		if (!config_equal(&conf, &orig))
			FAIL("case %zu: a failed load changed the configuration",
			    i);
		free(errors);
	}
}

static void
check_good(void)
{
	struct config	 conf, def;
	char		*errors = NULL;
	const char	*path;

	path = write_file("good.conf",
	    "# a comment\n"
	    "\n"
	    "   socket   \"/tmp/dir with space/s.sock\"   # trailing comment\n"
	    "socket_group \"root\"\n"
	    "socket_mode 0600\n"
	    "snapshot_dir /srv/snaps#comment right after\n"
	    "\tformat raw\n"
	    "compression_level 19\n"
	    "compression_threads 64\n"
	    "pressure_level 0\n"
	    "buffer_size 1G\n"
	    "max_snapshots 1\n"
	    "max_snapshots_per_uid 2\n"
	    "max_message_size 16M\n"
	    "max_connections_per_uid 4096\n"
	    "client_timeout 3600\n"
	    "on_discard fail\n"
	    "shutdown finish\n"
	    "shutdown_timeout 0\n"
	    "s3_endpoint https://[::1]:7480\n"
	    "s3_region eu-west-3\n"
	    "s3_addressing virtual\n"
	    "s3_credentials /etc/keys\n"
	    "s3_timeout 5\n"
	    "s3_retries 0\n"
	    "s3_url s3://snaps/host-1/\n"
	    "s3_part_size 5G\n"
	    "s3_parts_in_flight 16\n"
	    "log_level debug\r\n");
	if (load(path, &conf, &errors) != 0) {
		FAIL("good config failed:\n%s", errors);
		free(errors);
		return;
	}
	free(errors);
	if (strcmp(conf.socket, "/tmp/dir with space/s.sock") != 0)
		FAIL("socket is '%s'", conf.socket);
	if (strcmp(conf.socket_group, "root") != 0)
		FAIL("socket_group is '%s'", conf.socket_group);
	if (conf.socket_mode != 0600)
		FAIL("socket_mode is %o", (unsigned)conf.socket_mode);
	if (strcmp(conf.snapshot_dir, "/srv/snaps") != 0)
		FAIL("snapshot_dir is '%s'", conf.snapshot_dir);
	if (conf.format != OUTPUT_RAW || conf.compression_level != 19 ||
	    conf.compression_threads != 64 || conf.pressure_level != 0 ||
	    conf.buffer_size != 1ULL << 30 ||
	    conf.max_snapshots != 1 || conf.max_snapshots_per_uid != 2 ||
	    conf.max_message_size != 16 << 20 ||
	    conf.max_connections_per_uid != 4096 ||
	    conf.client_timeout != 3600 || conf.on_discard != DISCARD_FAIL ||
	    conf.shutdown != SHUTDOWN_FINISH || conf.shutdown_timeout != 0 ||
	    conf.log_level != LOG_LEVEL_DEBUG)
		FAIL("good config: some value is not what the file says");
	if (strcmp(conf.s3_endpoint, "https://[::1]:7480") != 0 ||
	    strcmp(conf.s3_region, "eu-west-3") != 0 ||
	    conf.s3_addressing != ADDRESSING_VIRTUAL ||
	    strcmp(conf.s3_credentials, "/etc/keys") != 0 ||
	    conf.s3_timeout != 5 || conf.s3_retries != 0 ||
	    strcmp(conf.s3_url, "s3://snaps/host-1/") != 0 ||
	    conf.s3_part_size != 5ULL << 30 || conf.s3_parts_in_flight != 16 ||
	    conf.destination != DESTINATION_DISK)
		FAIL("good config: some S3 value is not what the file says");
	check_roundtrip(&conf, "good config");

	/* The default destination S3, with what it needs. */
	if (load(write_file("s3.conf", "destination s3\n"
	    "s3_endpoint http://127.0.0.1:7480\n"
	    "s3_url s3://snaps\n"), &conf, &errors) != 0)
		FAIL("destination s3 config failed:\n%s", errors);
	else if (conf.destination != DESTINATION_S3)
		FAIL("destination is not s3");
	free(errors);
	errors = NULL;
	check_roundtrip(&conf, "destination s3");

	/* Plain byte counts and odd sizes print exactly and parse back. */
	config_defaults(&def);
	def.buffer_size = 4096 * 3 + 4096;	/* 16K */
	def.max_message_size = 1025;
	check_roundtrip(&def, "odd sizes");

	/* Empty file: the defaults. */
	if (load(write_file("empty.conf", ""), &conf, &errors) != 0)
		FAIL("empty config failed:\n%s", errors);
	free(errors);
	config_defaults(&def);
	if (!config_equal(&conf, &def))
		FAIL("an empty file does not give the defaults");
	check_roundtrip(&def, "defaults");

	/* A missing file: -1 with ENOENT and a message naming it. */
	errors = NULL;
	errno = 0;
	if (load("/nonexistent/snapd.conf", &conf, &errors) != -1 ||
	    errno != ENOENT)
		FAIL("a missing file did not fail with ENOENT");
	else if (strcmp(errors, "/nonexistent/snapd.conf: open: No such file "
	    "or directory\n") != 0)
		FAIL("missing file message: %s", errors);
	free(errors);
}

static void
check_shipped(void)
{
	struct config	 conf, def;
	char		 path[1024], *errors = NULL;
	const char	*top = getenv("TOP");

	snprintf(path, sizeof(path), "%s/conf/snapd.conf", top ? top : ".");
	if (load(path, &conf, &errors) != 0) {
		FAIL("shipped %s does not parse:\n%s", path, errors);
		free(errors);
		return;
	}
	free(errors);
	config_defaults(&def);
	if (!config_equal(&conf, &def))
		FAIL("shipped %s does not hold the built-in defaults", path);

	/* ... and it sets every key explicitly. */
	{
		char	*text = NULL, line[512];
		size_t	 len = 0;
		FILE	*f = open_memstream(&text, &len), *shipped;

		config_print(&def, f);
		fclose(f);
		for (char *k = strtok(text, "\n"); k != NULL;
		    k = strtok(NULL, "\n")) {
			int found = 0;

			*strchr(k, ' ') = '\0';
			if ((shipped = fopen(path, "r")) == NULL)
				break;
			while (fgets(line, sizeof(line), shipped) != NULL)
				if (strncmp(line, k, strlen(k)) == 0 &&
				    line[strlen(k)] == ' ')
					found = 1;
			fclose(shipped);
			if (!found)
				FAIL("shipped %s does not set key %s", path, k);
		}
		free(text);
	}
}

static void
check_json(void)
{
	struct config	 conf;
	json_t		*o;

	config_defaults(&conf);
	o = config_to_json(&conf);
	if (json_object_size(o) != 28)
		FAIL("query-config object has %zu members, not 28",
		    json_object_size(o));
	/* The credentials file's path, never the keys it holds. */
	if (strcmp(json_string_value(json_object_get(o, "s3_credentials")),
	    "/etc/memsnap/s3-credentials") != 0)
		FAIL("s3_credentials in JSON is not the default path");
	if (json_integer_value(json_object_get(o, "s3_part_size")) != 64 << 20)
		FAIL("s3_part_size in JSON is not 64 MiB in bytes");
	{
		const char	*key;
		json_t		*v;

		json_object_foreach(o, key, v)
			if (strstr(key, "access") != NULL ||
			    strstr(key, "secret") != NULL)
				FAIL("query-config has a member '%s'", key);
	}
	if (json_integer_value(json_object_get(o,
	    "max_snapshots_per_uid")) != 4)
		FAIL("max_snapshots_per_uid in JSON is not the default 4");
	if (json_integer_value(json_object_get(o, "buffer_size")) != 64 << 20)
		FAIL("buffer_size in JSON is not in bytes");
	if (strcmp(json_string_value(json_object_get(o, "format")), "zsnap"))
		FAIL("format in JSON is not \"zsnap\"");
	if (json_integer_value(json_object_get(o, "compression_level")) != 3)
		FAIL("compression_level in JSON is not 3");
	json_decref(o);
}

/*
 * The credentials file: read only with an endpoint, refused when others
 * may read it, and never quoted in the refusal.
 */
static void
check_credentials(void)
{
	struct config	 conf;
	char		 err[S3_ERROR_MAX];
	const char	*path;

	path = write_file("creds", "# test keys\naccess_key AKIDUNITTEST\n"
	    "secret_key \"unit-secret/key+1\"\n");
	config_defaults(&conf);
	snprintf(conf.s3_credentials, sizeof(conf.s3_credentials), "%s", path);
	strcpy(conf.s3_access_key, "stale");
	if (config_load_credentials(&conf, err, sizeof(err)) != 0 ||
	    conf.s3_access_key[0] != '\0')
		FAIL("without s3_endpoint the keys are not cleared");
	strcpy(conf.s3_endpoint, "http://127.0.0.1:7480");
	if (chmod(path, 0600) == -1)
		FAIL("chmod %s: %s", path, strerror(errno));
	if (config_load_credentials(&conf, err, sizeof(err)) != 0)
		FAIL("a 0600 credentials file of root's is refused: %s", err);
	else if (strcmp(conf.s3_access_key, "AKIDUNITTEST") != 0 ||
	    strcmp(conf.s3_secret_key, "unit-secret/key+1") != 0)
		FAIL("the keys read are '%s' and '%s'", conf.s3_access_key,
		    conf.s3_secret_key);
	if (chmod(path, 0644) == -1)
		FAIL("chmod %s: %s", path, strerror(errno));
	if (config_load_credentials(&conf, err, sizeof(err)) != -1)
		FAIL("a 0644 credentials file is accepted");
	else if (strstr(err, path) == NULL || strstr(err, "0644") == NULL)
		FAIL("the refusal does not name the file and its mode: %s",
		    err);
	else if (strstr(err, "AKIDUNITTEST") != NULL ||
	    strstr(err, "unit-secret") != NULL)
		FAIL("the refusal quotes a key: %s", err);
	if (conf.s3_access_key[0] != '\0' || conf.s3_secret_key[0] != '\0')
		FAIL("a refused file leaves keys behind");
}

static void
check_names(void)
{
	static const char *good[] = {
		"a", "snap-1", "A.b_c-9", "x.", "0",
		"123456789012345678901234567890123456789012345678901234567890123",
	};
	static const char *bad[] = {
		"", ".hidden", "..", "a/b", "../x", "a b", "é", "a\n", "a*",
		"1234567890123456789012345678901234567890123456789012345678901234",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!paths_name_valid(good[i]))
			FAIL("name '%s' refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (paths_name_valid(bad[i]))
			FAIL("name '%s' accepted", bad[i]);
	if (paths_name_valid(NULL))
		FAIL("NULL name accepted");
}

int
main(void)
{
	char cmd[600];

	if (mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	check_bad();
	check_good();
	check_shipped();
	check_json();
	check_credentials();
	check_names();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", tmpdir);
	if (failures > 0) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("config and name tests passed\n");
	return 0;
}
