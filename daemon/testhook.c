/*
 * Debug-only test hooks (testhook.h says what they do and who calls them).
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
#include "testhook.h"

static int	 testhook_on;
static char	 testhook_dir[1024];

void
testhook_init(void)
{
	const char *on = getenv("SNAPD_TEST_HOOKS");
	const char *dir = getenv("SNAPD_TEST_PAUSE_DIR");

	if (on == NULL || strcmp(on, "1") != 0)
		return;
	testhook_on = 1;
	if (dir != NULL)
		snprintf(testhook_dir, sizeof(testhook_dir), "%s", dir);
	log_warnx("SNAPD_TEST_HOOKS=1: debug-only test hooks are enabled "
	    "(pause directory %s)", testhook_dir[0] ? testhook_dir : "none");
}

int
testhook_enabled(void)
{
	return testhook_on;
}

void
testhook_load(struct snapshot *s)
{
	char	 path[1200], where[16];
	FILE	*f;
	unsigned region;
	unsigned long long page;

	if (!testhook_on || testhook_dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.pause", testhook_dir, s->name);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fscanf(f, "%15s %u %llu", where, &region, &page) == 3) {
		int k = strcmp(where, "writer") == 0 ? TESTHOOK_WRITER :
		    strcmp(where, "fault") == 0 ? TESTHOOK_FAULT : -1;

		if (k == -1)
			break;
		s->hook_on[k] = 1;
		s->hook_region[k] = region;
		s->hook_page[k] = page;
		log_warnx("snapshot %llu: test hook: the %s thread pauses at "
		    "region %u page %llu", (unsigned long long)s->id, where,
		    region, page);
	}
	if (!feof(f))
		log_warnx("snapshot %llu: test hook %s: expected lines "
		    "\"writer|fault REGION PAGE\"", (unsigned long long)s->id,
		    path);
	fclose(f);
}

void
testhook_pause(struct snapshot *s, int where, uint32_t region,
    uint64_t first, uint64_t count)
{
	char	path[1200];
	int	fd;

	if (!s->hook_on[where] || s->hook_region[where] != region ||
	    s->hook_page[where] < first ||
	    s->hook_page[where] - first >= count ||
	    atomic_exchange(&s->hook_fired[where], 1))
		return;
	snprintf(path, sizeof(path), "%s/%s.paused", testhook_dir, s->name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		log_warn("snapshot %llu: test hook: create %s",
		    (unsigned long long)s->id, path);
		return;
	}
	close(fd);
	snprintf(path, sizeof(path), "%s/%s.go", testhook_dir, s->name);
	for (int i = 0; i < TESTHOOK_WAIT_S * 1000; i++) {
		if (access(path, F_OK) == 0)
			return;
		usleep(1000);
	}
	log_warnx("snapshot %llu: test hook: no %s after %d s; going on",
	    (unsigned long long)s->id, path, TESTHOOK_WAIT_S);
}
