/*
 * libFuzzer target for the snapd.conf(5) parser (daemon/control/config.c): the
 * input is a configuration file, written to a memfd and loaded with
 * config_load() through /proc/self/fd/N, exactly as `snapd -c FILE` does.
 *
 * Properties checked besides the sanitizers':
 *  - config_load() fails if and only if it wrote at least one error, every
 *    error line starts with "FILE:" (the "file:line: message" contract),
 *    and a failure sets errno to EINVAL and leaves conf untouched;
 *  - a configuration that loads prints (config_print()) as a file that
 *    loads again without errors to the very same configuration, and turns
 *    into a JSON object with one member per key (config_to_json()).
 *
 * Single-threaded; config.c runs on libFuzzer's thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "config.h"

/* Keys in snapd.conf(5); config_to_json() has one member per key. */
#define CONFIG_KEYS	28

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int	fuzz_fd[2] = { -1, -1 };
static char	fuzz_path[2][64];

static void __attribute__((noreturn, format(printf, 1, 2)))
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_config: property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(LOG_LEVEL_ERROR, 0);
	for (int i = 0; i < 2; i++) {
		if ((fuzz_fd[i] = memfd_create("fuzz_config", MFD_CLOEXEC)) ==
		    -1) {
			fprintf(stderr, "fuzz_config: memfd_create: %s\n",
			    strerror(errno));
			exit(1);
		}
		snprintf(fuzz_path[i], sizeof(fuzz_path[i]), "/proc/self/fd/%d",
		    fuzz_fd[i]);
	}
	return 0;
}

static void
fuzz_set_file(int i, const void *data, size_t size)
{
	const unsigned char *p = data;

	if (ftruncate(fuzz_fd[i], 0) == -1 ||
	    lseek(fuzz_fd[i], 0, SEEK_SET) == -1) {
		fprintf(stderr, "fuzz_config: reset memfd: %s\n",
		    strerror(errno));
		exit(1);
	}
	while (size > 0) {
		ssize_t n = write(fuzz_fd[i], p, size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "fuzz_config: write memfd: %s\n",
			    n < 0 ? strerror(errno) : "wrote nothing");
			exit(1);
		}
		p += n;
		size -= (size_t)n;
	}
}

/*
 * Load file i into conf; errors are collected and checked against the
 * contract.  Returns what config_load() returned.
 */
static int
fuzz_load(int i, struct config *conf)
{
	struct config	 before;
	FILE		*errf;
	char		*errs = NULL, *line, *next;
	size_t		 errlen = 0, plen = strlen(fuzz_path[i]);
	int		 rv, saved;

	if ((errf = open_memstream(&errs, &errlen)) == NULL) {
		fprintf(stderr, "fuzz_config: open_memstream: %s\n",
		    strerror(errno));
		exit(1);
	}
	memcpy(&before, conf, sizeof(before));
	errno = 0;
	rv = config_load(conf, fuzz_path[i], errf);
	saved = errno;
	fclose(errf);

	if (rv == 0 && errlen != 0)
		fuzz_fail("config_load succeeded but reported: %s", errs);
	if (rv == -1) {
		if (errlen == 0)
			fuzz_fail("config_load failed without a message");
		if (saved != EINVAL)
			fuzz_fail("config_load failed with errno %d (%s), not "
			    "EINVAL, for a readable file", saved,
			    strerror(saved));
		if (memcmp(&before, conf, sizeof(before)) != 0)
			fuzz_fail("a failed config_load changed the "
			    "configuration");
		for (line = errs; *line != '\0'; line = next) {
			next = strchr(line, '\n');
			if (next == NULL)
				fuzz_fail("error output does not end with a "
				    "newline: %s", line);
			*next++ = '\0';
			if (strncmp(line, fuzz_path[i], plen) != 0 ||
			    line[plen] != ':')
				fuzz_fail("error line without \"file:\": %s",
				    line);
		}
	}
	free(errs);
	return rv;
}

static void
fuzz_compare(const struct config *a, const struct config *b)
{
#define FIELD_DIFF(f)	(a->f != b->f)
	if (strcmp(a->socket, b->socket) != 0 ||
	    strcmp(a->socket_group, b->socket_group) != 0 ||
	    strcmp(a->snapshot_dir, b->snapshot_dir) != 0 ||
	    FIELD_DIFF(socket_mode) || FIELD_DIFF(format) ||
	    FIELD_DIFF(compression_level) || FIELD_DIFF(compression_threads) ||
	    FIELD_DIFF(pressure_level) ||
	    FIELD_DIFF(buffer_size) || FIELD_DIFF(max_snapshots) ||
	    FIELD_DIFF(max_snapshots_per_uid) ||
	    FIELD_DIFF(max_message_size) ||
	    FIELD_DIFF(max_connections_per_uid) ||
	    FIELD_DIFF(client_timeout) || FIELD_DIFF(on_discard) ||
	    FIELD_DIFF(shutdown) || FIELD_DIFF(shutdown_timeout) ||
	    FIELD_DIFF(log_level) || FIELD_DIFF(destination) ||
	    strcmp(a->s3_endpoint, b->s3_endpoint) != 0 ||
	    strcmp(a->s3_region, b->s3_region) != 0 ||
	    FIELD_DIFF(s3_addressing) ||
	    strcmp(a->s3_credentials, b->s3_credentials) != 0 ||
	    FIELD_DIFF(s3_timeout) || FIELD_DIFF(s3_retries) ||
	    strcmp(a->s3_url, b->s3_url) != 0 ||
	    FIELD_DIFF(s3_part_size) || FIELD_DIFF(s3_parts_in_flight))
		fuzz_fail("config_print output loads as another "
		    "configuration (socket '%s'/'%s', snapshot_dir '%s'/'%s', "
		    "buffer_size %llu/%llu)", a->socket, b->socket,
		    a->snapshot_dir, b->snapshot_dir,
		    (unsigned long long)a->buffer_size,
		    (unsigned long long)b->buffer_size);
#undef FIELD_DIFF
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 conf, again;
	json_t		*json;
	char		*printed = NULL;
	size_t		 plen = 0;
	FILE		*pf;

	config_defaults(&conf);
	fuzz_set_file(0, data, size);
	if (fuzz_load(0, &conf) == -1)
		return 0;

	if ((pf = open_memstream(&printed, &plen)) == NULL) {
		fprintf(stderr, "fuzz_config: open_memstream: %s\n",
		    strerror(errno));
		exit(1);
	}
	config_print(&conf, pf);
	fclose(pf);
	fuzz_set_file(1, printed, plen);
	config_defaults(&again);
	if (fuzz_load(1, &again) == -1)
		fuzz_fail("config_print output does not load:\n%s", printed);
	fuzz_compare(&conf, &again);
	free(printed);

	json = config_to_json(&conf);
	if (!json_is_object(json) || json_object_size(json) != CONFIG_KEYS)
		fuzz_fail("config_to_json gave %zu members, not %d",
		    json_object_size(json), CONFIG_KEYS);
	json_decref(json);
	return 0;
}
