/*
 * memsnapctl qemu-save --qmp SOCKET [--name NAME]: save a running QEMU VM, its
 * device state from QEMU and its guest RAM live through snapd.
 *
 *  1. Over QMP: hand QEMU a descriptor of a memfd of ours for the device
 *     state (add-fd), find QEMU's pid by it, learn the VM (qemuvm.h).
 *  2. snapshot-start on snapd attaching to QEMU with "maps" naming the RAM
 *     blocks' mappings, "subdir" NAME.vm, "to" "disk" (a VM's files live
 *     together on snapd's disk; --to takes nothing else), "prearm" and
 *     "wait-arm": snapd stops QEMU's threads briefly, takes a userfaultfd,
 *     lets them go and write-protects the RAM while the guest runs.
 *  3. stop; xen-save-devices-state (live: false) into the descriptor;
 *     snapshot-arm: snapd stops QEMU's threads again and protects what the
 *     guest wrote since, the RAM's point in time, taken while the vCPUs are
 *     stopped, so it matches the device state; cont.  The guest's pause is
 *     stop to cont (printed, with its parts).  snapd saves the RAM while
 *     the guest runs.
 *  4. Into NAME.vm: the device state and the manifest (qemustore.h); then,
 *     unless --no-wait, follow the RAM snapshot to its end.
 *
 * A save never leaves a VM paused that ran: after stop, every failure conts
 * before it is reported (reconnecting to the socket if the connection was
 * lost), SIGINT, SIGTERM and SIGHUP wait until after cont, and a watchdog
 * process holding the QMP connection conts if memsnapctl dies before it
 * (SIGKILL).  If snapd dies, snapshot-start fails and we cont.  A VM that
 * was paused is saved and left paused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "qemustore.h"
#include "qmpc.h"
#include "memsnapctl.h"

/* How long the watchdog waits for QEMU to answer its cont. */
#define QSAVE_WATCHDOG_WAIT_MS	120000
#define QSAVE_WATCHDOG_ID	"memsnapctl-qemu-save-watchdog"

static int	cmd_qemu_save_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_qemu_save_entry = {
	.name = "qemu-save",
	.args = { "--qmp SOCKET [--name NAME] ...", 2, -1 },
	.flags = CMD_DAEMON,
	.help = "save a running QEMU VM: devices from QEMU, RAM live",
	.exec = cmd_qemu_save_exec,
};

struct qsave {
	const char	*socket;	/* --qmp */
	char		 name[SNAPD_NAME_MAX + 1];
	const char	*format;
	json_t		*args;		/* snapshot-start's, without pid/maps */
	int		 wait;
	struct qmpc	*q;
	struct qemuvm	 vm;
	int		 devfd;		/* memfd the device state goes to */
	int		 fdset;		/* add-fd's fdset-id, or -1 */
	int		 qemufd;	/* the descriptor QEMU holds it as */
	int		 stopped;	/* we stopped the guest */
	pid_t		 watchdog;
	int		 watchpipe;	/* write end: a byte means "done" */
	sigset_t	 oldmask;
	uint64_t	 t_stop, pause_us, prearm_us;
	/* The pause's parts: stop, device state, attach and arm, cont. */
	uint64_t	 t_stopped, t_devices, t_armed;
};

static uint64_t
qsave_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
qsave_options(struct ctl *ctl, struct qsave *s, int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "qmp",		required_argument,	NULL,	'q' },
		{ "name",		required_argument,	NULL,	'n' },
		{ "format",		required_argument,	NULL,	'f' },
		{ "level",		required_argument,	NULL,	'l' },
		{ "buffer-size",	required_argument,	NULL,	'b' },
		{ "max-bandwidth",	required_argument,	NULL,	'R' },
		{ "no-wait",		no_argument,		NULL,	'W' },
		{ "json",		no_argument,		NULL,	'j' },
		{ "to",			required_argument,	NULL,	'T' },
		{ NULL,			0,			NULL,	0 },
	};
	int		 ch;

	argc++;
	argv--;
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		if (ctl_start_option("qemu-save", ch, optarg, s->args))
			continue;
		switch (ch) {
		case 'q':
			s->socket = optarg;
			break;
		case 'n':
			snprintf(s->name, sizeof(s->name), "%s", optarg);
			break;
		case 'W':
			s->wait = 0;
			break;
		case 'j':
			ctl->json = 1;
			break;
		case 'T':
			if (strcmp(optarg, "disk") != 0)
				usage_error("qemu-save: --to %s: a VM is saved "
				    "to disk only (its RAM, device state and "
				    "manifest together in a NAME.vm directory "
				    "of snapd's)", optarg);
			break;
		default:
			usage_error("qemu-save: unknown option or missing "
			    "argument: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("qemu-save: unexpected argument %s", argv[optind]);
	if (s->socket == NULL)
		usage_error("qemu-save: --qmp SOCKET is required");
	if (json_object_get(s->args, "format") == NULL)
		json_object_set_new(s->args, "format",
		    json_string(SNAPD_FORMAT_RAW));
	/*
	 * The RAM goes beside the device state, in NAME.vm on snapd's disk,
	 * whatever snapd's default destination ("destination s3" included).
	 */
	json_object_set_new(s->args, "to", json_string("disk"));
	s->format = json_string_value(json_object_get(s->args, "format"));
}

/*
 * The watchdog's last act: cont on the connection fd, and wait (at most
 * QSAVE_WATCHDOG_WAIT_MS: snapd may hold QEMU stopped that long) for its
 * reply: QEMU drops the commands it has not run yet when the connection
 * closes, so going at once could lose it.  Only calls that are safe in a
 * forked child of ours.
 */
static void
qsave_watchdog_cont(int fd)
{
	static const char	 cont[] = "{\"execute\": \"cont\", "
				    "\"id\": \"" QSAVE_WATCHDOG_ID "\"}\n";
	static char		 buf[65536];
	struct pollfd		 pfd = { .fd = fd, .events = POLLIN };
	size_t			 len = 0;
	ssize_t			 got;

	if (write(fd, cont, sizeof(cont) - 1) != (ssize_t)sizeof(cont) - 1)
		return;
	while (poll(&pfd, 1, QSAVE_WATCHDOG_WAIT_MS) == 1) {
		if ((got = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0)
			return;
		len += (size_t)got;
		buf[len] = '\0';
		if (strstr(buf, QSAVE_WATCHDOG_ID) != NULL)
			return;
		if (len > sizeof(buf) / 2) {	/* keep the tail only */
			memmove(buf, buf + len - 64, 64);
			len = 64;
		}
	}
}

/*
 * A process that conts the guest if we die before we say we are done: it
 * holds the QMP connection and the read end of a pipe whose write end only
 * we hold; end of file without our byte means we are gone.  It ignores the
 * signals a terminal or a service manager sends us both.
 */
static int
qsave_watchdog_start(struct qsave *s, char *err, size_t errlen)
{
	ssize_t			 got;
	int			 p[2];
	char			 byte;

	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((s->watchdog = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (s->watchdog == 0) {
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		close(p[1]);
		do
			got = read(p[0], &byte, 1);
		while (got == -1 && errno == EINTR);
		if (got != 1 || byte != 'd')
			qsave_watchdog_cont(qmpc_fd(s->q));
		_exit(0);
	}
	close(p[0]);
	s->watchpipe = p[1];
	return 0;
}

static void
qsave_watchdog_done(struct qsave *s)
{
	if (s->watchdog <= 0)
		return;
	(void)!write(s->watchpipe, "d", 1);
	close(s->watchpipe);
	while (waitpid(s->watchdog, NULL, 0) == -1 && errno == EINTR)
		;
	s->watchdog = 0;
}

/*
 * Let the guest run again if we stopped it: on our connection, or, if that
 * failed, on a new one.  Then let pending signals through.
 */
static void
qsave_resume(struct qsave *s)
{
	char	 err[512];
	json_t	*v;

	if (!s->stopped)
		return;
	v = qmpc_execute(s->q, "cont", NULL, -1, err, sizeof(err));
	if (v == NULL && qmpc_broken(s->q)) {
		ctl_warnx("qemu-save: %s; reconnecting to %s to resume the "
		    "guest", err, s->socket);
		qmpc_close(s->q);
		if ((s->q = qmpc_open(s->socket, err, sizeof(err))) != NULL)
			v = qmpc_execute(s->q, "cont", NULL, -1, err,
			    sizeof(err));
	}
	s->pause_us = qsave_now_us() - s->t_stop;
	if (v == NULL)
		ctl_warnx("qemu-save: could not resume the guest: %s", err);
	json_decref(v);
	s->stopped = 0;
	qsave_watchdog_done(s);
	sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
}

/*
 * A memfd for the device state, passed to QEMU write-only (add-fd wants the
 * access mode xen-save-devices-state opens with).  -1 with err set.
 */
static int
qsave_device_fd(struct qsave *s, char *err, size_t errlen)
{
	char	 path[64];
	json_t	*v;
	int	 wfd;

	if ((s->devfd = memfd_create("snapd-qemu-devices", MFD_CLOEXEC)) ==
	    -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->devfd);
	if ((wfd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	v = qmpc_execute(s->q, "add-fd", json_pack("{s:s}", "opaque",
	    "memsnapctl qemu-save device state"), wfd, err, errlen);
	close(wfd);
	if (v == NULL)
		return -1;
	s->fdset = (int)json_integer_value(json_object_get(v, "fdset-id"));
	s->qemufd = (int)json_integer_value(json_object_get(v, "fd"));
	json_decref(v);
	return 0;
}

/* Does process pid hold our device-state memfd as its descriptor fd? */
static int
qsave_holds(const struct qsave *s, const struct stat *ours, pid_t pid)
{
	struct stat	st;
	char		path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, s->qemufd);
	return stat(path, &st) == 0 && st.st_dev == ours->st_dev &&
	    st.st_ino == ours->st_ino;
}

/*
 * Which process is the QEMU at the other end of the monitor: the one that
 * holds, as the descriptor add-fd named, the memfd we passed it.  Usually
 * the socket's peer (SO_PEERCRED); through a proxy, some other process,
 * found in /proc.  -1 with err set.
 */
static int
qsave_find_qemu(struct qsave *s, char *err, size_t errlen)
{
	struct dirent	*de;
	struct stat	 ours;
	DIR		*d;
	long		 pid;
	char		*end;

	if (fstat(s->devfd, &ours) == -1) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return -1;
	}
	if (qsave_holds(s, &ours, qmpc_pid(s->q))) {
		s->vm.pid = qmpc_pid(s->q);
		return 0;
	}
	if ((d = opendir("/proc")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			pid = strtol(de->d_name, &end, 10);
			if (*end == '\0' && pid > 0 &&
			    qsave_holds(s, &ours, (pid_t)pid)) {
				s->vm.pid = (pid_t)pid;
				break;
			}
		}
		closedir(d);
	}
	if (s->vm.pid > 0)
		return 0;
	snprintf(err, errlen, "cannot tell which process is the QEMU behind "
	    "%s (its peer, process %d, is not; none visible here holds the "
	    "descriptor it was given)", s->socket, (int)qmpc_pid(s->q));
	return -1;
}

/*
 * Before the pause: snapd attaches and protects the RAM while the guest
 * runs ("prearm", "wait-arm"), so that the pause need only protect again
 * what the guest writes meanwhile.  The snapshot's id, or 0 after printing
 * why (*status the exit code).
 */
static uint64_t
qsave_prearm(struct ctl *ctl, struct qsave *s, int *status)
{
	json_t		*ret;
	char		*maps;
	uint64_t	 id;

	if ((maps = qemuvm_maps_filter(&s->vm)) == NULL) {
		ctl_warnx("qemu-save: %s", strerror(ENOMEM));
		*status = EXIT_FAILED;
		return 0;
	}
	json_object_set_new(s->args, "pid", json_integer(s->vm.pid));
	json_object_set_new(s->args, "maps", json_string(maps));
	json_object_set_new(s->args, "prearm", json_true());
	json_object_set_new(s->args, "wait-arm", json_true());
	free(maps);
	json_incref(s->args);
	if ((ret = ctl_execute(ctl, "snapshot-start", s->args, status)) ==
	    NULL)
		return 0;
	id = json_u64(ret, "id");
	s->prearm_us = json_u64(ret, "prearm-us");
	json_decref(ret);
	return id;
}

/*
 * The pause: stop (if running), device state, snapshot-arm, cont.
 * Returns snapshot-arm's reply, or NULL with the guest running again if
 * it ran, after printing why (*status the exit code).
 */
static json_t *
qsave_pause(struct ctl *ctl, struct qsave *s, uint64_t id, int *status)
{
	char		 err[512], file[64];
	sigset_t	 block;
	json_t		*v, *ret = NULL;

	*status = EXIT_FAILED;
	if (s->vm.running) {
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGHUP);
		sigprocmask(SIG_BLOCK, &block, &s->oldmask);
		if (qsave_watchdog_start(s, err, sizeof(err)) == -1) {
			sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
			ctl_warnx("qemu-save: %s", err);
			return NULL;
		}
		s->t_stop = qsave_now_us();
		if ((v = qmpc_execute(s->q, "stop", NULL, -1, err,
		    sizeof(err))) == NULL) {
			ctl_warnx("qemu-save: %s", err);
			s->stopped = 1;		/* it may have stopped */
			qsave_resume(s);
			return NULL;
		}
		json_decref(v);
		s->stopped = 1;
	}
	s->t_stopped = qsave_now_us();
	snprintf(file, sizeof(file), "/dev/fdset/%d", s->fdset);
	v = qmpc_execute(s->q, "xen-save-devices-state", json_pack("{s:s,s:b}",
	    "filename", file, "live", 0), -1, err, sizeof(err));
	if (v == NULL)
		ctl_warnx("qemu-save: device state: %s", err);
	else {
		json_decref(v);
		s->t_devices = qsave_now_us();
		ret = ctl_execute(ctl, "snapshot-arm", json_pack("{s:I}", "id",
		    (json_int_t)id), status);
		s->t_armed = qsave_now_us();
	}
	qsave_resume(s);
	return ret;
}

/* Copy the device state into dir/devices.  -1 with err set. */
static int
qsave_write_devices(struct qsave *s, const char *dir, char *err,
    size_t errlen)
{
	char	 path[PATH_MAX + 16], buf[65536];
	ssize_t	 got;
	off_t	 off = 0;
	int	 fd;

	snprintf(path, sizeof(path), "%s/%s", dir, QEMUSTORE_DEVICES);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "create %s: %s", path, strerror(errno));
		return -1;
	}
	while ((got = pread(s->devfd, buf, sizeof(buf), off)) > 0) {
		if (write(fd, buf, (size_t)got) != got) {
			snprintf(err, errlen, "write %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		off += got;
	}
	if (got == -1 || off == 0 || fsync(fd) == -1 || close(fd) == -1) {
		snprintf(err, errlen, "%s: %s", path, off == 0 && got == 0 ?
		    "QEMU wrote no device state" : strerror(errno));
		return -1;
	}
	return 0;
}

static void
qsave_print(struct ctl *ctl, const struct qsave *s, const json_t *ret,
    const char *dir)
{
	char	 pause[32], arm[32], size[32];
	uint64_t ram = 0;
	json_t	*o;

	if (ctl->json) {
		o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:O}", "name",
		    s->name, "dir", dir, "pause-us", (json_int_t)s->pause_us,
		    "arm-us", (json_int_t)json_u64(ret, "arm-us"), "id",
		    (json_int_t)json_u64(ret, "id"), "running",
		    s->vm.running, "snapshot", ret);
		if (s->vm.running)
			json_object_set_new(o, "pause-parts-us", json_pack(
			    "{s:I, s:I, s:I, s:I}", "stop", (json_int_t)
			    (s->t_stopped - s->t_stop), "devices", (json_int_t)
			    (s->t_devices - s->t_stopped), "attach",
			    (json_int_t)(s->t_armed - s->t_devices), "cont",
			    (json_int_t)(s->t_stop + s->pause_us -
			    s->t_armed)));
		ctl_print_json(o);
		json_decref(o);
		return;
	}
	for (unsigned i = 0; i < s->vm.nblocks; i++)
		ram += s->vm.blocks[i].size;
	printf("VM %s (QEMU %s, %s, pid %d) saving into %s\n", s->name,
	    s->vm.version, s->vm.machine, (int)s->vm.pid, dir);
	if (s->vm.running)
		printf("  guest paused %s (stop %" PRIu64 " us, device state %"
		    PRIu64 " us, attach and arm %" PRIu64 " us, cont %" PRIu64
		    " us), ", fmt_duration_us(s->pause_us, pause,
		    sizeof(pause)), s->t_stopped - s->t_stop, s->t_devices -
		    s->t_stopped, s->t_armed - s->t_devices, s->t_stop +
		    s->pause_us - s->t_armed);
	else
		printf("  guest was paused (%s) and is left paused, ",
		    s->vm.status);
	printf("RAM armed in %s; %u RAM block(s), %s; snapshot %" PRIu64 "\n",
	    fmt_duration_us(json_u64(ret, "arm-us"), arm, sizeof(arm)),
	    s->vm.nblocks, fmt_bytes(ram, size, sizeof(size)),
	    json_u64(ret, "id"));
}

/* After the pause: device state, manifest, and the wait. */
static int
qsave_finish(struct ctl *ctl, struct qsave *s, json_t *ret)
{
	char	 dir[PATH_MAX], err[PATH_MAX * 2], *slash;
	int	 rc;

	snprintf(dir, sizeof(dir), "%s", json_str(ret, "file", ""));
	if ((slash = strrchr(dir, '/')) == NULL) {
		ctl_warnx("qemu-save: snapd named no file");
		return EXIT_FAILED;
	}
	*slash = '\0';
	if (qsave_write_devices(s, dir, err, sizeof(err)) == -1 ||
	    qemustore_write_manifest(dir, s->name, &s->vm, ret, s->format,
	    s->pause_us, err, sizeof(err)) == -1) {
		ctl_warnx("qemu-save: %s", err);
		return EXIT_FAILED;
	}
	qsave_print(ctl, s, ret, dir);
	fflush(stdout);
	if (!s->wait)
		return EXIT_OK;
	rc = ctl_wait(ctl, json_u64(ret, "id"));
	return rc;
}

static void
qsave_default_name(struct qsave *s)
{
	time_t	 now = time(NULL);
	char	 when[32];

	strftime(when, sizeof(when), "%Y%m%d-%H%M%S", gmtime(&now));
	snprintf(s->name, sizeof(s->name), "qemu-%d-%s", (int)s->vm.pid,
	    when);
}

static int
cmd_qemu_save_exec(struct ctl *ctl, int argc, char **argv)
{
	struct qsave	 s = { .devfd = -1, .fdset = -1, .wait = 1 };
	char		 err[512], sub[SNAPD_NAME_MAX + 8], path[PATH_MAX];
	json_t		*ret = NULL, *v;
	uint64_t	 id;
	char		 cancel[128];
	int		 rc = EXIT_FAILED;

	s.args = json_object();
	qsave_options(ctl, &s, argc, argv);
	if (s.name[0] != '\0' &&
	    (rc = qemustore_path(".", s.name, path, sizeof(path))) != 0) {
		json_decref(s.args);
		return rc;
	}
	rc = EXIT_FAILED;
	if ((s.q = qmpc_open(s.socket, err, sizeof(err))) == NULL ||
	    qsave_device_fd(&s, err, sizeof(err)) == -1 ||
	    qsave_find_qemu(&s, err, sizeof(err)) == -1 ||
	    qemuvm_read(s.q, &s.vm, err, sizeof(err)) == -1) {
		ctl_warnx("qemu-save: %s", err);
		goto remove;
	}
	if (s.name[0] == '\0')
		qsave_default_name(&s);
	snprintf(sub, sizeof(sub), "%s%s", s.name, QEMUSTORE_SUFFIX);
	json_object_set_new(s.args, "name", json_string(s.name));
	json_object_set_new(s.args, "subdir", json_string(sub));
	if ((id = qsave_prearm(ctl, &s, &rc)) != 0 &&
	    (ret = qsave_pause(ctl, &s, id, &rc)) == NULL) {
		/* Not armed: let it go now, quietly (it may be over). */
		snprintf(cancel, sizeof(cancel), "{\"execute\": "
		    "\"snapshot-cancel\", \"arguments\": {\"id\": %" PRIu64
		    "}}", id);
		free(snap_command(ctl->client, cancel));
	}
remove:
	/* QEMU closes the descriptor once the guest runs; the monitor is
	 * free again once we disconnect. */
	if (s.fdset != -1 && s.q != NULL) {
		v = qmpc_execute(s.q, "remove-fd", json_pack("{s:i}",
		    "fdset-id", s.fdset), -1, err, sizeof(err));
		json_decref(v);
	}
	qmpc_close(s.q);
	s.q = NULL;
	if (ret != NULL) {
		rc = qsave_finish(ctl, &s, ret);
		json_decref(ret);
	}
	qemuvm_free(&s.vm);
	qmpc_close(s.q);
	if (s.devfd != -1)
		close(s.devfd);
	json_decref(s.args);
	return rc;
}
