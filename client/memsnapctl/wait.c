/*
 * Waiting for a snapshot to finish, shared by "wait" and "save": follow its
 * events until it completes or fails, then print the outcome; exit 0 if it
 * completed, 1 if it failed or was cancelled.
 *
 * The caller's connection is negotiated before the snapshot is looked up,
 * and the library queues events that arrive while a command waits for its
 * reply, so no event can fall between the look-up and the wait.  While it
 * runs, each SNAPSHOT_PROGRESS event (at most one a second) redraws a
 * progress bar when stdout is a terminal (pages saved / total, rate, ETA),
 * or prints a plain line otherwise; -j prints only the final
 * query-snapshots entry.  The final figures come from snap_wait(), which
 * asks snapd again.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"
#include "memsnapctl.h"

struct progress {
	uint64_t	 id;
	int		 tty;
	int		 quiet;		/* -j: no progress output */
	int		 drawn;		/* a bar is on the line */
	uint64_t	 saved;
	uint64_t	 total;
	double		 last_t;	/* event time of the last sample, s */
	uint64_t	 last_saved;
	double		 rate;		/* pages/s, smoothed; 0 unknown */
};

static int
terminal_width(void)
{
	struct winsize	 ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	return 80;
}

static void
progress_draw(struct progress *p)
{
	char		 rate[32], eta[32], text[160], bar[256];
	double		 frac, left;
	int		 width, barw, fill, i;

	frac = p->total > 0 ? (double)p->saved / (double)p->total : 0;
	if (frac > 1)
		frac = 1;
	if (p->rate > 0) {
		snprintf(rate, sizeof(rate), "%.1f MiB/s",
		    p->rate * SNAPD_PAGE_SIZE / (1024 * 1024));
		left = (double)(p->total - p->saved) / p->rate;
		snprintf(eta, sizeof(eta), "ETA %d:%02d", (int)left / 60,
		    (int)left % 60);
	} else {
		snprintf(rate, sizeof(rate), "-- MiB/s");
		snprintf(eta, sizeof(eta), "ETA --:--");
	}
	snprintf(text, sizeof(text), " %3d%% %" PRIu64 "/%" PRIu64
	    " pages  %s  %s", (int)(frac * 100), p->saved, p->total, rate, eta);
	if (!p->tty) {
		/* A line as it happens, also into a pipe or a log file. */
		printf("snapshot %" PRIu64 ":%s\n", p->id, text);
		fflush(stdout);
		return;
	}
	width = terminal_width();
	barw = width - (int)strlen(text) - 3;
	if (barw > (int)sizeof(bar) - 1)
		barw = sizeof(bar) - 1;
	if (barw < 10)
		barw = 10;
	fill = (int)(frac * barw);
	for (i = 0; i < barw; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[barw] = '\0';
	printf("\r[%s]%s\033[K", bar, text);
	fflush(stdout);
	p->drawn = 1;
}

static void
progress_update(struct progress *p, const json_t *data, double t)
{
	double	 dt, r;

	p->saved = json_u64(data, "pages-saved");
	if (json_u64(data, "pages-total") > 0)
		p->total = json_u64(data, "pages-total");
	if (p->last_t > 0 && t > p->last_t && p->saved >= p->last_saved) {
		dt = t - p->last_t;
		r = (double)(p->saved - p->last_saved) / dt;
		p->rate = p->rate > 0 ? 0.7 * p->rate + 0.3 * r : r;
	}
	p->last_t = t;
	p->last_saved = p->saved;
}

/* Handle one event line; returns 1 when it ends snapshot p->id. */
static int
progress_event(struct progress *p, const char *line)
{
	json_t		*ev, *data, *ts;
	const char	*name;
	double		 t;
	int		 done = 0;

	if ((ev = json_loads(line, 0, NULL)) == NULL)
		return 0;
	name = json_str(ev, "event", "");
	data = json_object_get(ev, "data");
	if (json_u64(data, "id") != p->id) {
		json_decref(ev);
		return 0;
	}
	if (strcmp(name, SNAPD_EV_PROGRESS) == 0) {
		ts = json_object_get(ev, "timestamp");
		t = (double)json_u64(ts, "seconds") +
		    (double)json_u64(ts, "microseconds") / 1e6;
		progress_update(p, data, t);
		if (!p->quiet)
			progress_draw(p);
	} else if (strcmp(name, SNAPD_EV_COMPLETED) == 0 ||
	    strcmp(name, SNAPD_EV_FAILED) == 0)
		done = 1;
	json_decref(ev);
	return done;
}

/* Find snapshot id in query-snapshots; *entry gets a new reference. */
static int
wait_lookup(struct ctl *ctl, uint64_t id, json_t **entry)
{
	json_t	*list, *e;
	size_t	 i;
	int	 status;

	if ((list = ctl_execute(ctl, "query-snapshots", NULL,
	    &status)) == NULL)
		return status;
	json_array_foreach(list, i, e) {
		if (json_is_integer(json_object_get(e, "id")) &&
		    json_u64(e, "id") == id) {
			*entry = json_incref(e);
			json_decref(list);
			return EXIT_OK;
		}
	}
	json_decref(list);
	ctl_warnx("wait: snapshot %" PRIu64 ": no such snapshot", id);
	return EXIT_FAILED;
}

static int
state_is_final(const char *state)
{
	return strcmp(state, "completed") == 0 ||
	    strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0;
}

static void
result_print(const struct snap_result *r)
{
	char	 size[32], dur[32], peak[32];

	if (!r->completed) {
		printf("snapshot %" PRIu64 " (%s) failed: %s\n", r->id,
		    r->name, r->error);
		return;
	}
	printf("snapshot %" PRIu64 " (%s) completed: %s\n"
	    "  %s, %" PRIu64 " pages (%" PRIu64 " copied on fault, %" PRIu64
	    " zero, %" PRIu64 " lost) in %s\n"
	    "  armed in %" PRIu64 " us, longest stall %" PRIu64 " us, "
	    "buffer peak %s, %" PRIu64 " waits for a full buffer\n",
	    r->id, r->name, r->file,
	    fmt_bytes(r->size, size, sizeof(size)), r->pages,
	    r->pages_faulted, r->pages_zero, r->pages_lost,
	    fmt_duration_us(r->duration_us, dur, sizeof(dur)),
	    r->arm_us, r->stall_max_us,
	    fmt_bytes(r->buffer_peak, peak, sizeof(peak)),
	    r->buffer_full_waits);
}

int
ctl_wait(struct ctl *ctl, uint64_t id)
{
	struct progress		 p;
	struct snap_result	 res;
	json_t			*entry = NULL;
	char			*line;
	int			 rc;

	memset(&p, 0, sizeof(p));
	p.id = id;
	if ((rc = wait_lookup(ctl, p.id, &entry)) != EXIT_OK)
		return rc;
	p.quiet = ctl->json;
	p.tty = !ctl->json && isatty(STDOUT_FILENO);
	p.total = json_u64(entry, "pages-total");
	p.saved = json_u64(entry, "pages-saved");

	if (!state_is_final(json_str(entry, "state", "completed"))) {
		if (p.tty)
			progress_draw(&p);
		for (;;) {
			line = snap_next_event(ctl->client, -1);
			if (line == NULL) {
				if (p.drawn)
					putchar('\n');
				return ctl_lib_failure(ctl->client, "wait");
			}
			rc = progress_event(&p, line);
			free(line);
			if (rc)
				break;
		}
		if (p.drawn)
			putchar('\n');
	}
	json_decref(entry);

	if (snap_wait(ctl->client, p.id, &res, 30000) == -1)
		return ctl_lib_failure(ctl->client, "wait");
	if (ctl->json) {
		entry = NULL;
		if ((rc = wait_lookup(ctl, p.id, &entry)) != EXIT_OK)
			return rc;
		ctl_print_json(entry);
		json_decref(entry);
	} else
		result_print(&res);
	return res.completed ? EXIT_OK : EXIT_FAILED;
}
