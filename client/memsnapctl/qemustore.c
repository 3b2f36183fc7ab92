/*
 * VM snapshot directories (qemustore.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "zsnap.h"
#include "qemustore.h"

int
qemustore_top(struct ctl *ctl, char *dir, size_t size)
{
	json_t		*conf;
	const char	*top;
	int		 status;

	if ((conf = ctl_execute(ctl, "query-config", NULL, &status)) == NULL)
		return status;
	top = json_str(conf, "snapshot_dir", NULL);
	if (top == NULL) {
		ctl_warnx("query-config: snapd did not say its snapshot_dir");
		json_decref(conf);
		return EXIT_FAILED;
	}
	if (geteuid() == 0)
		snprintf(dir, size, "%s", top);
	else
		snprintf(dir, size, "%s/uid-%u", top, (unsigned)geteuid());
	json_decref(conf);
	return 0;
}

int
qemustore_path(const char *dir, const char *name, char *path, size_t size)
{
	size_t	len = strlen(name);

	if (len == 0 || len + strlen(QEMUSTORE_SUFFIX) > SNAPD_NAME_MAX ||
	    name[0] == '.' || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len) {
		ctl_warnx("not a VM snapshot name: '%s' (use 1 to %d of "
		    "[A-Za-z0-9._-], not starting with '.')", name,
		    SNAPD_NAME_MAX - (int)strlen(QEMUSTORE_SUFFIX));
		return EXIT_USAGE;
	}
	snprintf(path, size, "%s/%s%s", dir, name, QEMUSTORE_SUFFIX);
	return 0;
}

static json_t *
qemustore_blocks(const struct qemuvm *vm)
{
	json_t	*a = json_array();

	for (unsigned i = 0; i < vm->nblocks; i++) {
		const struct qemuvm_block	*b = &vm->blocks[i];
		json_t				*o;

		o = json_pack("{s:s, s:s, s:I, s:b, s:I}", "id", b->id,
		    "type", b->type, "size", (json_int_t)b->size, "share",
		    b->share, "host-start", (json_int_t)b->start);
		if (b->mem_path[0] != '\0')
			json_object_set_new(o, "mem-path",
			    json_string(b->mem_path));
		json_array_append_new(a, o);
	}
	return a;
}

int
qemustore_write_manifest(const char *path, const char *name,
    const struct qemuvm *vm, const json_t *ret, const char *format,
    uint64_t pause_us, char *err, size_t errlen)
{
	char	 tmp[PATH_MAX + 32], dst[PATH_MAX + 32], when[32];
	time_t	 now = time(NULL);
	json_t	*m;
	int	 rc;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	m = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:i, s:b, "
	    "s:s, s:O, s:o, s:s, s:s, s:I, s:I, s:I}",
	    "snapd-qemu-save", QEMUSTORE_VERSION, "name", name, "saved", when,
	    "status", vm->status,
	    "qemu", "version", vm->version, "package", vm->package,
	    "machine", vm->machine, "pid", (int)vm->pid,
	    "running", vm->running, "devices", QEMUSTORE_DEVICES,
	    "cmdline", vm->cmdline, "blocks", qemustore_blocks(vm),
	    "format", format, "ram-snapshot", json_str(ret, "name", name),
	    "snapshot-id", (json_int_t)json_u64(ret, "id"),
	    "pause-us", (json_int_t)pause_us,
	    "arm-us", (json_int_t)json_u64(ret, "arm-us"));
	if (m == NULL) {
		snprintf(err, errlen, "manifest: cannot build it");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", path, QEMUSTORE_MANIFEST);
	snprintf(dst, sizeof(dst), "%s/%s", path, QEMUSTORE_MANIFEST);
	rc = json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(m);
	if (rc == -1 || rename(tmp, dst) == -1) {
		snprintf(err, errlen, "write %s: %s", dst, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

json_t *
qemustore_read_manifest(const char *path, char *err, size_t errlen)
{
	char		 file[PATH_MAX + 32];
	json_error_t	 jerr;
	json_t		*m, *b;
	size_t		 i;

	snprintf(file, sizeof(file), "%s/%s", path, QEMUSTORE_MANIFEST);
	if ((m = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		snprintf(err, errlen, "%s: %s", file, access(file, F_OK) == 0 ?
		    jerr.text : "no manifest: not a VM snapshot, or its save "
		    "did not finish");
		return NULL;
	}
	if (json_integer_value(json_object_get(m, "snapd-qemu-save")) !=
	    QEMUSTORE_VERSION ||
	    !json_is_array(json_object_get(m, "cmdline")) ||
	    json_array_size(json_object_get(m, "cmdline")) == 0 ||
	    json_array_size(json_object_get(m, "blocks")) == 0 ||
	    json_array_size(json_object_get(m, "blocks")) > QEMUVM_BLOCKS_MAX ||
	    strchr(json_str(m, "devices", "/"), '/') != NULL ||
	    json_str(m, "ram-snapshot", NULL) == NULL ||
	    json_str(m, "format", NULL) == NULL)
		goto bad;
	json_array_foreach(json_object_get(m, "cmdline"), i, b)
		if (!json_is_string(b))
			goto bad;
	json_array_foreach(json_object_get(m, "blocks"), i, b)
		if (json_str(b, "id", NULL) == NULL ||
		    json_integer_value(json_object_get(b, "size")) <= 0 ||
		    !json_is_integer(json_object_get(b, "host-start")))
			goto bad;
	return m;
bad:
	snprintf(err, errlen, "%s: not a manifest this memsnapctl reads "
	    "(version %d)", file, QEMUSTORE_VERSION);
	json_decref(m);
	return NULL;
}

int
qemustore_ram_file(const char *path, const json_t *m, char *file,
    size_t size)
{
	struct stat	st;

	snprintf(file, size, "%s/%s.%s", path, json_str(m, "ram-snapshot",
	    "?"), json_str(m, "format", "?"));
	return lstat(file, &st) == 0;
}

/* Remove directory sub of dirfd holding regular files only. */
static int
qemustore_remove_flat(int dirfd, const char *sub, char *err, size_t errlen)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1) {
			snprintf(err, errlen, "remove %s/%s: %s", sub,
			    de->d_name, strerror(errno));
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return unlinkat(dirfd, sub, AT_REMOVEDIR);
}

int
qemustore_remove(const char *path, const char *name, char *err,
    size_t errlen)
{
	char	 zsnap[SNAPD_NAME_MAX + 16], raw[SNAPD_NAME_MAX + 16];
	const char *files[] = { QEMUSTORE_DEVICES, QEMUSTORE_RESTORE_LOG,
		    zsnap, QEMUSTORE_MANIFEST };
	int	 dirfd;

	err[0] = '\0';
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd == -1) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(zsnap, sizeof(zsnap), "%s%s", name, ZSNAP_SUFFIX);
	snprintf(raw, sizeof(raw), "%s%s", name, ZSNAP_RAW_SUFFIX);
	if (qemustore_remove_flat(dirfd, QEMUSTORE_RESTORE_RAW, err,
	    errlen) == -1 || qemustore_remove_flat(dirfd, raw, err,
	    errlen) == -1)
		goto fail;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (unlinkat(dirfd, files[i], 0) == -1 && errno != ENOENT) {
			snprintf(err, errlen, "remove %s/%s: %s", path,
			    files[i], strerror(errno));
			goto fail;
		}
	close(dirfd);
	if (rmdir(path) == -1) {
		snprintf(err, errlen, "remove %s: %s (files qemu-save did not "
		    "write are left alone)", path, strerror(errno));
		return -1;
	}
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "remove in %s: %s", path,
		    strerror(errno));
	close(dirfd);
	return -1;
}
