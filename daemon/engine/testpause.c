/*
 * Debug-only test hooks (testpause.h says what they do and who calls them).
 * Everything here is a no-op unless SNAPD_TEST_HOOKS=1 was set when the
 * daemon started.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snapshot-internal.h"
#include "testpause.h"

static int	testpause_on;
static char	testpause_dir[1024];

void
testpause_init(void)
{
	const char *on = getenv("SNAPD_TEST_HOOKS");
	const char *dir = getenv("SNAPD_TEST_PAUSE_DIR");

	if (on == NULL || strcmp(on, "1") != 0)
		return;
	testpause_on = 1;
	if (dir != NULL)
		snprintf(testpause_dir, sizeof(testpause_dir), "%s", dir);
	log_warnx("test hooks are enabled (SNAPD_TEST_HOOKS=1, pause "
	    "directory %s): for the test suite only, never in production",
	    testpause_dir[0] != '\0' ? testpause_dir : "none");
}

int
testpause_enabled(void)
{
	return testpause_on;
}

static const char *
testpause_pause_dir(void)
{
	return testpause_dir;
}

void
testpause_load(struct snapshot *s)
{
	char	 path[1200], line[128], where[16];
	FILE	*f;
	unsigned region;
	unsigned long long page;

	if (testpause_pause_dir()[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.pause", testpause_pause_dir(), s->name);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		int k;

		if (strncmp(line, "attach ", 7) == 0)
			continue;	/* testpause_phase()'s */
		if (sscanf(line, "%15s %u %llu", where, &region, &page) != 3 ||
		    (k = strcmp(where, "writer") == 0 ? TESTPAUSE_WRITER :
		    strcmp(where, "fault") == 0 ? TESTPAUSE_FAULT : -1) == -1) {
			log_warnx("snapshot %llu: test hook %s: expected lines "
			    "\"writer|fault REGION PAGE\" or \"attach PHASE\"",
			    (unsigned long long)s->id, path);
			break;
		}
		s->hook_on[k] = 1;
		s->hook_region[k] = region;
		s->hook_page[k] = page;
		log_warnx("snapshot %llu: test hook: the %s thread pauses at "
		    "region %u page %llu", (unsigned long long)s->id, where,
		    region, page);
	}
	fclose(f);
}

/* Create DIR/NAME.paused, then wait for DIR/NAME.go. */
static void
testpause_wait(const char *name, const char *what)
{
	char	path[1200];
	int	fd;

	snprintf(path, sizeof(path), "%s/%s.paused", testpause_pause_dir(), name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		log_warn("%s: test hook: create %s", what, path);
		return;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/%s.go", testpause_pause_dir(), name);
	for (int i = 0; i < TESTPAUSE_WAIT_S * 1000; i++) {
		if (access(path, F_OK) == 0)
			return;
		usleep(1000);
	}
	log_warnx("%s: test hook: no %s after %d s; going on", what, path,
	    TESTPAUSE_WAIT_S);
}

void
testpause_phase(const char *name, const char *phase)
{
	char	 path[1200], line[128];
	FILE	*f;
	int	 hit = 0;

	if (!testpause_on || testpause_pause_dir()[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.pause", testpause_pause_dir(), name);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (!hit && fgets(line, sizeof(line), f) != NULL)
		hit = strncmp(line, "attach ", 7) == 0 &&
		    strncmp(line + 7, phase, strlen(phase)) == 0 &&
		    (line[7 + strlen(phase)] == '\n' ||
		    line[7 + strlen(phase)] == '\0');
	fclose(f);
	if (!hit)
		return;
	log_warnx("snapshot %s: test hook: attach pauses at '%s'", name, phase);
	testpause_wait(name, name);
}

void
testpause_at(struct snapshot *s, int where, uint32_t region,
    uint64_t first, uint64_t count)
{
	char what[64];

	if (!s->hook_on[where] || s->hook_region[where] != region ||
	    s->hook_page[where] < first ||
	    s->hook_page[where] - first >= count ||
	    atomic_exchange(&s->hook_fired[where], 1))
		return;
	snprintf(what, sizeof(what), "snapshot %llu", (unsigned long long)s->id);
	testpause_wait(s->name, what);
}
