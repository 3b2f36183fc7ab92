/*
 * memsnapctl qemu-restore NAME [--exec]: what brings a VM saved by qemu-save
 * back, printed, or run with --exec.
 *
 * QEMU is started with the command line it was saved from, except that
 * every saved RAM block becomes
 *	-object memory-backend-file,id=ID,size=SIZE,mem-path=IMAGE,share=off
 * (the raw image of the block, mapped private: the snapshot stays as it
 * is, so it can be restored again; a zsnap snapshot is first expanded into
 * NAME.vm/restore.raw), the machine is told to use it (-machine
 * memory-backend=ID, for the RAM of a plain -m), and
 *	-incoming defer -global migration.send-configuration=off -S
 * are added.  Then over QMP: migrate-incoming with "exec:cat DEVICES",
 * which loads the device state, and cont if the guest ran when saved.
 * (QMP's xen-load-devices-state would do the same, but QEMU 7.2 aborts on
 * an assertion in it.)
 *
 * --exec copies each image into a memfd of its own first (its data only,
 * not its holes), which the new QEMU maps shared as
 * mem-path=/proc/self/fd/N,share=on: shared memory, which userfaultfd can
 * write-protect, so the restored VM can be saved live again (a private
 * mapping of a file cannot be).  It adds a QMP socket of its own (in a
 * temporary directory, removed afterwards) to drive the new QEMU, which
 * keeps the saved command line's own monitor: the restored VM is saved
 * again through that.  The new QEMU's output goes to NAME.vm/restore.log.
 * If loading fails, the new QEMU is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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

static int	cmd_qemu_restore_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_qemu_restore_entry = {
	.name = "qemu-restore",
	.args = { "NAME [--exec]", 1, 3 },
	.flags = CMD_DAEMON,
	.help = "print (or run, --exec) what brings a saved VM back",
	.exec = cmd_qemu_restore_exec,
};

#define QRESTORE_WAIT_MS	60000

struct qrestore {
	char	 dir[PATH_MAX];		/* NAME.vm */
	char	 devices[PATH_MAX + 16];
	json_t	*m;			/* the manifest */
	json_t	*argv;			/* QEMU's, rewritten */
	json_t	*images;		/* block id -> image path */
	char	 tmpdir[64], sock[96];
};

/* "-opt" or "--opt" is option opt. */
static int
qrestore_is(const char *arg, const char *opt)
{
	if (arg[0] != '-')
		return 0;
	arg += arg[1] == '-' ? 2 : 1;
	return strcmp(arg, opt) == 0;
}

/* Whether an -object value (key=value or JSON) has id id. */
static int
qrestore_object_id(const char *val, const char *id)
{
	json_t		*o;
	const char	*p;
	size_t		 len = strlen(id);
	int		 yes;

	if (val[0] == '{') {
		o = json_loads(val, 0, NULL);
		yes = json_str(o, "id", NULL) != NULL &&
		    strcmp(json_str(o, "id", ""), id) == 0;
		json_decref(o);
		return yes;
	}
	for (p = val; (p = strstr(p, "id=")) != NULL; p += 3)
		if ((p == val || p[-1] == ',') &&
		    strncmp(p + 3, id, len) == 0 &&
		    (p[3 + len] == ',' || p[3 + len] == '\0'))
			return 1;
	return 0;
}

/* s with every ',' doubled, as QEMU's key=value syntax wants. */
static void
qrestore_escape(char *out, size_t size, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 2 < size; s++) {
		out[o++] = *s;
		if (*s == ',')
			out[o++] = ',';
	}
	out[o] = '\0';
}

/* Append the strings of array more (stolen) to argv. */
static void
qrestore_append(json_t *argv, json_t *more)
{
	json_array_extend(argv, more);
	json_decref(more);
}

/*
 * The saved command line with the RAM blocks and -incoming set; share:
 * the images are this VM's own copies (share=on), not the snapshot's.
 */
static void
qrestore_build_argv(struct qrestore *r, int share)
{
	json_t		*saved = json_object_get(r->m, "cmdline"), *b;
	json_t		*blocks = json_object_get(r->m, "blocks");
	size_t		 i, j;
	char		 obj[PATH_MAX * 2 + 256], esc[PATH_MAX * 2];

	r->argv = json_array();
	for (i = 0; i < json_array_size(saved); i++) {
		const char *a = json_string_value(json_array_get(saved, i));
		const char *next = json_string_value(json_array_get(saved,
		    i + 1));
		int drop = 0;

		if (i > 0 && next != NULL && (qrestore_is(a, "incoming") ||
		    qrestore_is(a, "object")))
			json_array_foreach(blocks, j, b)
				if (qrestore_is(a, "incoming") ||
				    qrestore_object_id(next, json_str(b, "id",
				    "")))
					drop = 1;
		if (drop) {
			i++;		/* and its value */
			continue;
		}
		if (i > 0 && (qrestore_is(a, "S") ||
		    qrestore_is(a, "daemonize")))
			continue;
		json_array_append_new(r->argv, json_string(a));
	}
	json_array_foreach(blocks, j, b) {
		qrestore_escape(esc, sizeof(esc), json_str(r->images,
		    json_str(b, "id", ""), ""));
		snprintf(obj, sizeof(obj), "memory-backend-file,id=%s,size=%"
		    JSON_INTEGER_FORMAT ",mem-path=%s,share=%s",
		    json_str(b, "id", ""), json_integer_value(
		    json_object_get(b, "size")), esc, share ? "on" : "off");
		json_array_append_new(r->argv, json_string("-object"));
		json_array_append_new(r->argv, json_string(obj));
	}
	if (json_array_size(blocks) == 1) {
		snprintf(obj, sizeof(obj), "memory-backend=%s",
		    json_str(json_array_get(blocks, 0), "id", ""));
		json_array_append_new(r->argv, json_string("-machine"));
		json_array_append_new(r->argv, json_string(obj));
	}
	qrestore_append(r->argv, json_pack("[s,s,s,s,s]", "-incoming",
	    "defer", "-global", "migration.send-configuration=off", "-S"));
}

/*
 * The raw image of every block into r->images, expanding a zsnap snapshot
 * into restore.raw first.  Returns 0, or the exit code after printing why.
 */
static int
qrestore_images(struct qrestore *r)
{
	struct snap_file_info	 info;
	struct snap_file_region	 reg;
	struct snap_file	*f;
	json_t			*b;
	char			 ram[PATH_MAX + 32], raw[PATH_MAX + 32];
	char			 img[PATH_MAX + 64];
	size_t			 j;
	struct stat		 st;

	if (!qemustore_ram_file(r->dir, r->m, ram, sizeof(ram))) {
		ctl_warnx("qemu-restore: %s: no RAM snapshot (still being "
		    "saved, or its save failed)", ram);
		return EXIT_FAILED;
	}
	snprintf(raw, sizeof(raw), "%s", ram);
	if (strcmp(json_str(r->m, "format", ""), SNAPD_FORMAT_ZSNAP) == 0) {
		snprintf(raw, sizeof(raw), "%s/%s", r->dir,
		    QEMUSTORE_RESTORE_RAW);
		if (lstat(raw, &st) == -1) {
			if ((f = snap_file_open(ram)) == NULL)
				return ctl_file_failure(ram, "open");
			if (snap_file_export_raw(f, raw) == -1) {
				snap_file_close(f);
				return ctl_file_failure(ram, "expand");
			}
			snap_file_close(f);
		}
	}
	if ((f = snap_file_open(raw)) == NULL || snap_file_info(f, &info) ==
	    -1) {
		if (f != NULL)
			snap_file_close(f);
		return ctl_file_failure(raw, "open");
	}
	r->images = json_object();
	json_array_foreach(json_object_get(r->m, "blocks"), j, b) {
		uint64_t start = (uint64_t)json_integer_value(
		    json_object_get(b, "host-start"));

		for (uint32_t i = 0; i < info.region_count; i++)
			if (snap_file_region(f, i, &reg) == 0 &&
			    reg.start == start) {
				snprintf(img, sizeof(img), "%s/%u.img", raw, i);
				json_object_set_new(r->images, json_str(b,
				    "id", ""), json_string(img));
			}
		if (json_object_get(r->images, json_str(b, "id", "")) ==
		    NULL) {
			ctl_warnx("qemu-restore: %s holds no region for RAM "
			    "block %s", raw, json_str(b, "id", "?"));
			snap_file_close(f);
			return EXIT_FAILED;
		}
	}
	snap_file_close(f);
	return 0;
}

/* Print argv as one shell command line, quoted where it must be. */
static void
qrestore_print_shell(const json_t *argv)
{
	const json_t	*a;
	size_t		 i;

	json_array_foreach(argv, i, a) {
		const char *s = json_string_value(a);

		if (i > 0)
			putchar(' ');
		if (*s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,./:@%+") ==
		    strlen(s)) {
			fputs(s, stdout);
			continue;
		}
		putchar('\'');
		for (; *s != '\0'; s++)
			if (*s == '\'')
				fputs("'\\''", stdout);
			else
				putchar(*s);
		putchar('\'');
	}
	putchar('\n');
}

/* The migrate-incoming URI: cat of the device state, quoted for sh. */
static void
qrestore_uri(const struct qrestore *r, char *uri, size_t size)
{
	size_t o = (size_t)snprintf(uri, size, "exec:cat '");

	for (const char *s = r->devices; *s != '\0' && o + 5 < size; s++)
		if (*s == '\'') {
			memcpy(uri + o, "'\\''", 4);
			o += 4;
		} else
			uri[o++] = *s;
	snprintf(uri + o, size - o, "'");
}

static int
qrestore_print(struct ctl *ctl, const struct qrestore *r)
{
	char	 uri[PATH_MAX * 2];
	json_t	*o;
	int	 run = json_is_true(json_object_get(r->m, "running"));

	qrestore_uri(r, uri, sizeof(uri));
	if (ctl->json) {
		o = json_pack("{s:O, s:[{s:s, s:{s:s}}]}", "argv", r->argv,
		    "qmp", "execute", "migrate-incoming", "arguments", "uri",
		    uri);
		if (run)
			json_array_append_new(json_object_get(o, "qmp"),
			    json_pack("{s:s}", "execute", "cont"));
		ctl_print_json(o);
		json_decref(o);
		return EXIT_OK;
	}
	qrestore_print_shell(r->argv);
	o = json_pack("{s:s, s:{s:s}}", "execute", "migrate-incoming",
	    "arguments", "uri", uri);
	printf("# then, on its QMP monitor:\n# ");
	ctl_print_json(o);
	json_decref(o);
	if (run)
		printf("# {\"execute\": \"cont\"}\n");
	return EXIT_OK;
}

/* Start QEMU; its pid, or -1 after printing why. */
static pid_t
qrestore_spawn(const struct qrestore *r)
{
	char	 log[PATH_MAX + 16], **argv;
	size_t	 n = json_array_size(r->argv);
	pid_t	 pid;
	int	 fd, null;

	snprintf(log, sizeof(log), "%s/%s", r->dir, QEMUSTORE_RESTORE_LOG);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1 || (null = open("/dev/null", O_RDONLY |
	    O_CLOEXEC)) == -1) {
		ctl_warnx("qemu-restore: open %s: %s", log, strerror(errno));
		return -1;
	}
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL) {
		ctl_warnx("qemu-restore: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)json_string_value(json_array_get(r->argv,
		    i));
	fflush(NULL);
	if ((pid = fork()) == 0) {
		setsid();
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		dprintf(2, "memsnapctl qemu-restore: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	if (pid == -1)
		ctl_warnx("qemu-restore: fork: %s", strerror(errno));
	free(argv);
	close(fd);
	close(null);
	return pid;
}

static void
qrestore_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Connect to the new QEMU's monitor, waiting for it; NULL after printing. */
static struct qmpc *
qrestore_connect(const struct qrestore *r, pid_t pid)
{
	struct qmpc	*q;
	char		 err[512];
	int		 status;

	for (int waited = 0; waited < QRESTORE_WAIT_MS; waited += 50) {
		if (access(r->sock, F_OK) == 0 &&
		    (q = qmpc_open(r->sock, err, sizeof(err))) != NULL)
			return q;
		if (waitpid(pid, &status, WNOHANG) == pid &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
			ctl_warnx("qemu-restore: QEMU exited (status 0x%x) "
			    "before its monitor answered: see %s/%s", status,
			    r->dir, QEMUSTORE_RESTORE_LOG);
			return NULL;
		}
		qrestore_sleep_ms(50);
	}
	ctl_warnx("qemu-restore: the new QEMU's monitor %s did not answer "
	    "in %d s", r->sock, QRESTORE_WAIT_MS / 1000);
	return NULL;
}

/* migrate-incoming, wait for it, cont.  -1 after printing why. */
static int
qrestore_load(const struct qrestore *r, struct qmpc *q)
{
	char		 uri[PATH_MAX * 2], err[512];
	const char	*st = "?";
	json_t		*v;

	qrestore_uri(r, uri, sizeof(uri));
	v = qmpc_execute(q, "migrate-incoming", json_pack("{s:s}", "uri",
	    uri), -1, err, sizeof(err));
	for (int waited = 0; v != NULL && waited < QRESTORE_WAIT_MS;
	    waited += 20) {
		json_decref(v);
		if ((v = qmpc_execute(q, "query-migrate", NULL, -1, err,
		    sizeof(err))) == NULL)
			break;
		st = json_str(v, "status", "");
		if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0)
			break;
		qrestore_sleep_ms(20);
	}
	if (v == NULL || strcmp(st, "completed") != 0) {
		if (v != NULL)
			snprintf(err, sizeof(err), "loading the device state "
			    "ended as '%.32s' (see %.300s/%s)", st, r->dir,
			    QEMUSTORE_RESTORE_LOG);
		ctl_warnx("qemu-restore: %s", err);
		json_decref(v);
		return -1;
	}
	json_decref(v);
	if (json_is_true(json_object_get(r->m, "running"))) {
		if ((v = qmpc_execute(q, "cont", NULL, -1, err,
		    sizeof(err))) == NULL) {
			ctl_warnx("qemu-restore: %s", err);
			return -1;
		}
		json_decref(v);
	}
	return 0;
}

/*
 * Copy image (its data, not its holes) into a new memfd of size bytes,
 * inherited by the QEMU we start.  Its descriptor, or -1 after printing.
 */
static int
qrestore_copy(const char *image, uint64_t size)
{
	static char	 buf[1 << 20];
	off_t		 data, hole;
	ssize_t		 got;
	int		 in, fd;

	if ((in = open(image, O_RDONLY | O_CLOEXEC)) == -1) {
		ctl_warnx("qemu-restore: open %s: %s", image, strerror(errno));
		return -1;
	}
	if ((fd = memfd_create("snapd-restore", 0)) == -1 ||
	    ftruncate(fd, (off_t)size) == -1) {
		ctl_warnx("qemu-restore: a memfd of %" PRIu64 " bytes: %s",
		    size, strerror(errno));
		goto fail;
	}
	for (data = 0; (data = lseek(in, data, SEEK_DATA)) != -1;
	    data = hole) {
		hole = lseek(in, data, SEEK_HOLE);
		for (off_t off = data; off < hole; off += got) {
			size_t want = (size_t)(hole - off) < sizeof(buf) ?
			    (size_t)(hole - off) : sizeof(buf);

			if ((got = pread(in, buf, want, off)) <= 0 ||
			    pwrite(fd, buf, (size_t)got, off) != got) {
				ctl_warnx("qemu-restore: copy %s: %s", image,
				    got == 0 ? "short read" : strerror(errno));
				goto fail;
			}
		}
	}
	if (errno != ENXIO) {
		ctl_warnx("qemu-restore: read %s: %s", image, strerror(errno));
		goto fail;
	}
	close(in);
	return fd;
fail:
	close(in);
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Every block's image copied into a memfd the new QEMU maps shared as
 * /proc/self/fd/N: shmem, which snapd can write-protect, so the restored
 * VM can be saved live again (a private mapping of the image could not).
 * The descriptors into fds (json_array_size(blocks) of them).  -1 after
 * printing.
 */
static int
qrestore_copies(struct qrestore *r, int *fds)
{
	json_t	*b;
	size_t	 j;
	char	 path[64];

	json_array_foreach(json_object_get(r->m, "blocks"), j, b) {
		fds[j] = qrestore_copy(json_str(r->images, json_str(b, "id",
		    ""), ""), json_u64(b, "size"));
		if (fds[j] == -1) {
			while (j-- > 0)
				close(fds[j]);
			return -1;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[j]);
		json_object_set_new(r->images, json_str(b, "id", ""),
		    json_string(path));
	}
	return 0;
}

static int
qrestore_exec(struct ctl *ctl, struct qrestore *r)
{
	struct qmpc	*q = NULL;
	size_t		 nblocks = json_array_size(json_object_get(r->m,
			    "blocks"));
	pid_t		 pid, qemu = -1;
	char		 arg[160];
	int		 rc = EXIT_FAILED, fds[QEMUVM_BLOCKS_MAX];
	json_t		*o;

	snprintf(r->tmpdir, sizeof(r->tmpdir), "/tmp/memsnapctl-restore-XXXXXX");
	if (mkdtemp(r->tmpdir) == NULL) {
		ctl_warnx("qemu-restore: mkdtemp: %s", strerror(errno));
		return EXIT_FAILED;
	}
	snprintf(r->sock, sizeof(r->sock), "%s/qmp", r->tmpdir);
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", r->sock);
	if (qrestore_copies(r, fds) == -1) {
		rmdir(r->tmpdir);
		return EXIT_FAILED;
	}
	qrestore_build_argv(r, 1);
	qrestore_append(r->argv, json_pack("[s,s]", "-qmp", arg));
	pid = qrestore_spawn(r);
	for (size_t j = 0; j < nblocks; j++)
		close(fds[j]);
	if (pid != -1 &&
	    (q = qrestore_connect(r, pid)) != NULL) {
		qemu = qmpc_pid(q);
		if (qrestore_load(r, q) == 0)
			rc = EXIT_OK;
		else
			kill(qemu, SIGTERM);
	} else if (pid != -1)
		kill(pid, SIGTERM);
	qmpc_close(q);
	unlink(r->sock);
	rmdir(r->tmpdir);
	if (rc != EXIT_OK)
		return rc;
	if (ctl->json) {
		o = json_pack("{s:i, s:b, s:s}", "pid", (int)qemu, "running",
		    json_is_true(json_object_get(r->m, "running")), "log",
		    QEMUSTORE_RESTORE_LOG);
		ctl_print_json(o);
		json_decref(o);
	} else
		printf("VM %s restored: QEMU pid %d, %s\n", json_str(r->m,
		    "name", "?"), (int)qemu, json_is_true(json_object_get(
		    r->m, "running")) ? "running" : "paused, as it was saved");
	return rc;
}

static int
cmd_qemu_restore_exec(struct ctl *ctl, int argc, char **argv)
{
	struct qrestore	 r;
	const char	*name = NULL;
	char		 top[PATH_MAX], err[512];
	int		 run = 0, rc;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--exec") == 0)
			run = 1;
		else if (strcmp(argv[i], "-j") == 0 ||
		    strcmp(argv[i], "--json") == 0)
			ctl->json = 1;
		else if (argv[i][0] == '-' || name != NULL)
			usage_error("qemu-restore: unexpected argument %s",
			    argv[i]);
		else
			name = argv[i];
	if (name == NULL)
		usage_error("qemu-restore: NAME is required");
	if ((rc = qemustore_top(ctl, top, sizeof(top))) != 0 ||
	    (rc = qemustore_path(top, name, r.dir, sizeof(r.dir))) != 0)
		return rc;
	if ((r.m = qemustore_read_manifest(r.dir, err, sizeof(err))) == NULL) {
		ctl_warnx("qemu-restore: %s", err);
		return EXIT_FAILED;
	}
	snprintf(r.devices, sizeof(r.devices), "%s/%s", r.dir,
	    json_str(r.m, "devices", QEMUSTORE_DEVICES));
	if ((rc = qrestore_images(&r)) == 0) {
		if (run)
			rc = qrestore_exec(ctl, &r);
		else {
			qrestore_build_argv(&r, 0);
			rc = qrestore_print(ctl, &r);
		}
	}
	json_decref(r.argv);
	json_decref(r.images);
	json_decref(r.m);
	return rc;
}
