/*
 * snapd: options, configuration, the control socket (created, or taken
 * from systemd), signals and systemd notification, then the event loop.
 *
 * The main thread runs everything here and every libevent callback; each
 * snapshot's fault and writer threads belong to the engine (snapshot.c).
 *
 * Signals: SIGTERM and SIGINT stop accepting, cancel running snapshots (or,
 * with "shutdown finish", let them run for up to shutdown_timeout seconds
 * first; a second signal cancels at once), wait for each one's DONE and
 * exit 0.  SIGHUP reloads the configuration; keys that cannot change while
 * the socket is open are kept and logged as such.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <systemd/sd-daemon.h>

#include "protocol.h"
#include "log.h"
#include "paths.h"
#include "config.h"
#include "control.h"
#include "snapshot.h"
#include "report.h"
#include "attaching.h"
#include "s3cleanup.h"
#include "testpause.h"

static struct event_base	*main_base;
static const char		*main_config_path;	/* NULL: the default */
static int			 main_level_override = -1;
static int			 main_stopping;
static struct event		*main_shutdown_ev;
static char			 main_status[256];

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: snapd [-hnV] [-c file] [-l level]\n");
	exit(status);
}

/*
 * Load the configuration: path, or the default file, or (if the default
 * file does not exist) the built-in defaults.  Errors go to errf.
 */
static int
main_load_config(struct config *conf, FILE *errf)
{
	FILE *null;
	int rv;

	if (main_config_path != NULL)
		return config_load(conf, main_config_path, errf);
	if ((null = fopen("/dev/null", "we")) == NULL)
		return config_load(conf, SNAPD_DEFAULT_CONFIG, errf);
	rv = config_load(conf, SNAPD_DEFAULT_CONFIG, null);
	fclose(null);
	if (rv == 0)
		return 0;
	if (errno == ENOENT) {
		config_defaults(conf);
		return 0;
	}
	/* Run it again to show the errors. */
	return config_load(conf, SNAPD_DEFAULT_CONFIG, errf);
}

/*
 * The configuration and, when it names an S3 endpoint, its credentials
 * file: a file that is missing, unreadable, or that another user could
 * read or replace fails the whole load, with the file and the reason in
 * errf (never a key).
 */
static int
main_load_all(struct config *conf, FILE *errf)
{
	char err[S3_ERROR_MAX];

	if (main_load_config(conf, errf) == -1)
		return -1;
	if (config_load_credentials(conf, err, sizeof(err)) == -1) {
		fprintf(errf, "s3_credentials: %s\n", err);
		config_forget_credentials(conf);
		return -1;
	}
	return 0;
}

/* mkdir -p with mode for the missing components. */
static int
main_mkdirs(const char *path, mode_t mode)
{
	char	buf[PATH_MAX];
	size_t	len = strlen(path);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, mode) == -1 && errno != EEXIST)
				return -1;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

/* Refuse to take over a socket someone still listens on. */
static void
main_remove_stale_socket(const struct sockaddr_un *sun)
{
	struct stat	st;
	int		fd;

	if (lstat(sun->sun_path, &st) == -1) {
		if (errno == ENOENT)
			return;
		fatal("control socket %s: stat", sun->sun_path);
	}
	if (!S_ISSOCK(st.st_mode))
		fatalx("control socket %s: exists and is not a socket; not "
		    "removing it", sun->sun_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("control socket: socket");
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		fatalx("control socket %s: another snapd is listening on it",
		    sun->sun_path);
	close(fd);
	if (unlink(sun->sun_path) == -1 && errno != ENOENT)
		fatal("control socket %s: remove stale socket", sun->sun_path);
	log_info("removed stale control socket %s", sun->sun_path);
}

/*
 * The listening socket: systemd's (socket activation) when it passed one,
 * else a new one at conf->socket, root:socket_group, socket_mode.
 */
static int
main_listen(const struct config *conf, int *activated)
{
	struct sockaddr_un	 sun;
	struct group		*gr;
	gid_t			 gid;
	mode_t			 old;
	char			 parent[PATH_MAX], *slash;
	int			 n, fd;

	*activated = 0;
	n = sd_listen_fds(1);
	if (n < 0)
		log_warnx("systemd socket activation: %s; creating the socket "
		    "instead", strerror(-n));
	if (n > 0) {
		fd = SD_LISTEN_FDS_START;
		if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
			fatalx("systemd passed fd %d, which is not a listening "
			    "Unix stream socket", fd);
		for (int i = 1; i < n; i++) {
			log_warnx("systemd passed %d sockets; ignoring fd %d",
			    n, SD_LISTEN_FDS_START + i);
			close(SD_LISTEN_FDS_START + i);
		}
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
			fatal("control socket: set close-on-exec");
		*activated = 1;
		log_info("listening on the socket systemd passed (fd %d)", fd);
		return fd;
	}

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(conf->socket) >= sizeof(sun.sun_path))
		fatalx("control socket %s: path longer than %zu bytes",
		    conf->socket, sizeof(sun.sun_path) - 1);
	strcpy(sun.sun_path, conf->socket);

	snprintf(parent, sizeof(parent), "%s", conf->socket);
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
		*slash = '\0';
		if (main_mkdirs(parent, 0755) == -1)
			fatal("control socket: mkdir %s", parent);
	}
	main_remove_stale_socket(&sun);

	if (conf->socket_group[0] == '\0')
		gid = geteuid() == 0 ? 0 : (gid_t)-1;
	else {
		errno = 0;
		if ((gr = getgrnam(conf->socket_group)) == NULL)
			fatalx("socket_group %s: %s", conf->socket_group,
			    errno ? strerror(errno) : "no such group");
		gid = gr->gr_gid;
	}

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		fatal("control socket: socket");
	/* Nobody may connect before chown and chmod have run. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("control socket %s: bind", conf->socket);
	umask(old);
	if (chown(conf->socket, geteuid() == 0 ? 0 : (uid_t)-1, gid) == -1)
		fatal("control socket %s: chown to group %s", conf->socket,
		    conf->socket_group[0] ? conf->socket_group : "root");
	if (chmod(conf->socket, conf->socket_mode) == -1)
		fatal("control socket %s: chmod %04o", conf->socket,
		    (unsigned)conf->socket_mode);
	if (listen(fd, 128) == -1)
		fatal("control socket %s: listen", conf->socket);
	log_info("listening on %s", conf->socket);
	return fd;
}

static void
main_exit_loop(void *arg)
{
	if (main_stopping)
		event_base_loopexit(main_base, NULL);
}

static void
main_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	log_info("shutdown: shutdown_timeout passed; cancelling running "
	    "snapshots");
	snapshots_cancel_all("snapd is shutting down");
}

static void
main_stop(void)
{
	const struct config		*conf = config_get();
	struct snapshots_counters	 n;

	snapshots_counters(&n);
	if (main_stopping) {
		log_info("shutdown: second signal; cancelling running "
		    "snapshots now");
		snapshots_cancel_all("snapd is shutting down");
		return;
	}
	main_stopping = 1;
	sd_notify(0, "STOPPING=1");
	control_stop_accepting();
	if (n.active == 0) {
		log_info("shutting down");
		event_base_loopexit(main_base, NULL);
		return;
	}
	if (conf->shutdown == SHUTDOWN_FINISH && conf->shutdown_timeout > 0) {
		struct timeval tv = { conf->shutdown_timeout, 0 };

		log_info("shutting down: waiting up to %d s for %u running "
		    "snapshots", conf->shutdown_timeout, n.active);
		snapshots_cancel_unarmed("snapd is shutting down before "
		    "snapshot-arm");
		main_shutdown_ev = evtimer_new(main_base,
		    main_shutdown_timeout, NULL);
		if (main_shutdown_ev == NULL)
			fatalx("cannot create the shutdown timer");
		event_add(main_shutdown_ev, &tv);
	} else {
		log_info("shutting down: cancelling %u running snapshots",
		    n.active);
		snapshots_cancel_all("snapd is shutting down");
	}
}

static void
main_reload(void)
{
	struct config	 conf;
	const struct config *cur = config_get();
	char		*errs = NULL, *line, *save;
	size_t		 errlen = 0;
	FILE		*errf;

	if ((errf = open_memstream(&errs, &errlen)) == NULL)
		fatal("reload: open_memstream");
	if (main_load_all(&conf, errf) == -1) {
		fclose(errf);
		for (line = strtok_r(errs, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			log_warnx("reload: %s", line);
		log_warnx("reload: configuration has errors; keeping the "
		    "current one");
		free(errs);
		return;
	}
	fclose(errf);
	free(errs);

#define KEEP_STR(field, key)						\
	if (strcmp(conf.field, cur->field) != 0) {			\
		log_warnx("reload: %s cannot change while snapd runs; "	\
		    "keeping \"%s\" (restart to use \"%s\")", key,	\
		    cur->field, conf.field);				\
		memcpy(conf.field, cur->field, sizeof(conf.field));	\
	}
	KEEP_STR(socket, "socket");
	KEEP_STR(socket_group, "socket_group");
	KEEP_STR(snapshot_dir, "snapshot_dir");
#undef KEEP_STR
	if (conf.socket_mode != cur->socket_mode) {
		log_warnx("reload: socket_mode cannot change while snapd "
		    "runs; keeping %04o", (unsigned)cur->socket_mode);
		conf.socket_mode = cur->socket_mode;
	}
	if (main_level_override != -1)
		conf.log_level = (enum log_level)main_level_override;
	config_set(&conf);
	config_forget_credentials(&conf);
	log_set_level(conf.log_level);
	log_info("configuration reloaded from %s", main_config_path != NULL ?
	    main_config_path : SNAPD_DEFAULT_CONFIG);
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		main_stop();
		break;
	case SIGHUP:
		main_reload();
		break;
	}
}

/* STATUS= for systemctl status, when it changed. */
static void
main_status_update(evutil_socket_t fd, short what, void *arg)
{
	struct snapshots_counters	n;
	char				status[256];

	snapshots_counters(&n);
	snprintf(status, sizeof(status), "STATUS=%s%u snapshots running, "
	    "%llu taken, %llu bytes written", main_stopping ?
	    "stopping; " : "", n.active, (unsigned long long)n.total,
	    (unsigned long long)n.bytes_written);
	if (strcmp(status, main_status) != 0) {
		sd_notify(0, status);
		memcpy(main_status, status, sizeof(status));
	}
}

static void
main_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}

/* The options; returns 1 for -n (check the configuration and exit). */
static int
main_options(int argc, char **argv)
{
	enum log_level	level;
	int		ch, check = 0;

	while ((ch = getopt(argc, argv, "c:hl:nV")) != -1) {
		switch (ch) {
		case 'c':
			main_config_path = optarg;
			break;
		case 'h':
			usage(0);
		case 'l':
			if (log_level_parse(optarg, &level) == -1) {
				fprintf(stderr, "snapd: -l %s: not a log level "
				    "(error, warning, info, debug)\n", optarg);
				usage(1);
			}
			main_level_override = (int)level;
			break;
		case 'n':
			check = 1;
			break;
		case 'V':
			printf("snapd %s (control protocol %d)\n",
			    SNAPD_VERSION, SNAPD_PROTOCOL_VERSION);
			exit(0);
		default:
			usage(1);
		}
	}
	if (optind != argc)
		usage(1);
	return check;
}

/* The events of the main loop besides the socket's: signals and timers. */
struct main_events {
	struct event	*sig[3];
	struct event	*status;
	struct event	*watchdog;
};

static void
main_events_add(struct main_events *ev)
{
	static const int	sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct timeval		one = { 1, 0 };
	uint64_t		watchdog_usec = 0;

	for (int i = 0; i < 3; i++) {
		ev->sig[i] = evsignal_new(main_base, sigs[i], main_signal, NULL);
		if (ev->sig[i] == NULL || event_add(ev->sig[i], NULL) == -1)
			fatalx("libevent: cannot watch signal %d", sigs[i]);
	}
	ev->status = event_new(main_base, -1, EV_PERSIST, main_status_update,
	    NULL);
	if (ev->status == NULL)
		fatalx("libevent: cannot create the status timer");
	event_add(ev->status, &one);
	ev->watchdog = NULL;
	if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
		struct timeval half = {
			(time_t)(watchdog_usec / 2 / 1000000),
			(suseconds_t)(watchdog_usec / 2 % 1000000)
		};

		ev->watchdog = event_new(main_base, -1, EV_PERSIST,
		    main_watchdog, NULL);
		if (ev->watchdog == NULL)
			fatalx("libevent: cannot create the watchdog timer");
		event_add(ev->watchdog, &half);
	}
}

static void
main_events_free(struct main_events *ev)
{
	for (int i = 0; i < 3; i++)
		event_free(ev->sig[i]);
	event_free(ev->status);
	if (ev->watchdog != NULL)
		event_free(ev->watchdog);
	if (main_shutdown_ev != NULL)
		event_free(main_shutdown_ev);
}

int
main(int argc, char **argv)
{
	struct config		conf;
	struct main_events	ev;
	char			why[512];
	int			check, listen_fd, activated;

	log_init(LOG_LEVEL_INFO, 0);
	testpause_init();
	check = main_options(argc, argv);

	if (main_load_all(&conf, stderr) == -1) {
		if (check)
			return 1;
		fatalx("%s: configuration has errors; not starting",
		    main_config_path ? main_config_path : SNAPD_DEFAULT_CONFIG);
	}
	if (main_level_override != -1)
		conf.log_level = (enum log_level)main_level_override;
	if (check) {
		config_print(&conf, stdout);
		printf("configuration OK\n");
		return 0;
	}
	config_set(&conf);
	config_forget_credentials(&conf);	/* config_get() has them */
	log_set_level(conf.log_level);
	signal(SIGPIPE, SIG_IGN);

	if (snapshot_probe_kernel(why, sizeof(why)) == -1)
		fatalx("kernel: %s", why);
	if (main_mkdirs(conf.snapshot_dir, 0755) == -1)
		fatal("snapshot_dir %s: mkdir", conf.snapshot_dir);
	paths_remove_partials(conf.snapshot_dir);

	if (evthread_use_pthreads() == -1)
		fatalx("libevent: cannot use pthreads");
	if ((main_base = event_base_new()) == NULL)
		fatalx("libevent: cannot create the event base");

	listen_fd = main_listen(&conf, &activated);
	report_init(main_base);
	attaching_init(main_base);
	snapshots_set_idle_cb(main_exit_loop, NULL);
	control_init(main_base, listen_fd);
	main_events_add(&ev);
	s3cleanup_start(config_get());		/* its own thread */

	log_info("snapd %s ready (pid %d)", SNAPD_VERSION, (int)getpid());
	sd_notify(0, "READY=1\nSTATUS=ready; 0 snapshots running");
	if (event_base_dispatch(main_base) == -1)
		fatalx("libevent: event loop failed");

	control_close_all();
	snapshots_free_all();
	report_free_all();
	main_events_free(&ev);
	close(listen_fd);
	if (!activated && unlink(conf.socket) == -1 && errno != ENOENT)
		log_warn("control socket %s: remove", conf.socket);
	event_base_free(main_base);
	log_info("exiting");
	return 0;
}
