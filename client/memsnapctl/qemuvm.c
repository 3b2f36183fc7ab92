/*
 * A running QEMU as qemu-save sees it (qemuvm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "qemuvm.h"

/* One mapping of /proc/PID/smaps. */
struct qemuvm_map {
	uint64_t	start, end;
	char		perms[5];
	char		path[PATH_MAX];
	int		thp_or_ksm;	/* VmFlags has hg or mg */
};

/* The string at key of obj, or "" (into buf, size bytes). */
static void
qemuvm_copy(char *buf, size_t size, const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	snprintf(buf, size, "%s", s != NULL ? s : "");
}

static int
qemuvm_read_cmdline(struct qemuvm *vm, char *err, size_t errlen)
{
	char	 path[64], *buf;
	ssize_t	 got;
	size_t	 len = 0, size = 1 << 20;
	int	 fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)vm->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(size)) == NULL) {
		close(fd);
		snprintf(err, errlen, "read %s: %s", path, strerror(ENOMEM));
		return -1;
	}
	while (len < size && (got = read(fd, buf + len, size - len)) > 0)
		len += (size_t)got;
	close(fd);
	if (len == 0 || len == size) {
		free(buf);
		snprintf(err, errlen, "read %s: %s", path, len == 0 ?
		    "empty (has QEMU exited?)" : "longer than 1 MiB");
		return -1;
	}
	vm->cmdline = json_array();
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
		json_array_append_new(vm->cmdline,
		    json_stringn(buf + off, strnlen(buf + off, len - off)));
	free(buf);
	return 0;
}

/* status, version, machine type: -1 with err set. */
static int
qemuvm_read_facts(struct qmpc *q, struct qemuvm *vm, char *err,
    size_t errlen)
{
	json_t	*v, *ver;

	if ((v = qmpc_execute(q, "query-status", NULL, -1, err,
	    errlen)) == NULL)
		return -1;
	vm->running = json_is_true(json_object_get(v, "running"));
	qemuvm_copy(vm->status, sizeof(vm->status), v, "status");
	json_decref(v);
	if ((v = qmpc_execute(q, "query-version", NULL, -1, err,
	    errlen)) == NULL)
		return -1;
	ver = json_object_get(v, "qemu");
	snprintf(vm->version, sizeof(vm->version), "%" JSON_INTEGER_FORMAT
	    ".%" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT,
	    json_integer_value(json_object_get(ver, "major")),
	    json_integer_value(json_object_get(ver, "minor")),
	    json_integer_value(json_object_get(ver, "micro")));
	qemuvm_copy(vm->package, sizeof(vm->package), v, "package");
	json_decref(v);
	v = qmpc_execute(q, "qom-get", json_pack("{s:s,s:s}", "path",
	    "/machine", "property", "type"), -1, err, errlen);
	if (v == NULL)
		return -1;
	snprintf(vm->machine, sizeof(vm->machine), "%s",
	    json_string_value(v) != NULL ? json_string_value(v) : "");
	/* "pc-i440fx-7.2-machine" is the QOM type of machine pc-i440fx-7.2 */
	if (strlen(vm->machine) > 8 && strcmp(vm->machine +
	    strlen(vm->machine) - 8, "-machine") == 0)
		vm->machine[strlen(vm->machine) - 8] = '\0';
	json_decref(v);
	return 0;
}

/* A qom-get of a string property of /objects/id into buf. */
static int
qemuvm_qom_string(struct qmpc *q, const char *id, const char *prop,
    char *buf, size_t size, char *err, size_t errlen)
{
	char	 path[160];
	json_t	*v;

	snprintf(path, sizeof(path), "/objects/%s", id);
	v = qmpc_execute(q, "qom-get", json_pack("{s:s,s:s}", "path", path,
	    "property", prop), -1, err, errlen);
	if (v == NULL)
		return -1;
	snprintf(buf, size, "%s", json_string_value(v) != NULL ?
	    json_string_value(v) : "");
	json_decref(v);
	return 0;
}

static int
qemuvm_read_memdevs(struct qmpc *q, struct qemuvm *vm, char *err,
    size_t errlen)
{
	json_t	*list, *m;
	size_t	 i;

	if ((list = qmpc_execute(q, "query-memdev", NULL, -1, err,
	    errlen)) == NULL)
		return -1;
	if (json_array_size(list) == 0 ||
	    json_array_size(list) > QEMUVM_BLOCKS_MAX) {
		snprintf(err, errlen, "QEMU has %zu memory backends; "
		    "qemu-save handles 1 to %d", json_array_size(list),
		    QEMUVM_BLOCKS_MAX);
		json_decref(list);
		return -1;
	}
	json_array_foreach(list, i, m) {
		struct qemuvm_block *b = &vm->blocks[vm->nblocks++];

		qemuvm_copy(b->id, sizeof(b->id), m, "id");
		b->size = (uint64_t)json_integer_value(json_object_get(m,
		    "size"));
		b->share = json_is_true(json_object_get(m, "share"));
		if (qemuvm_qom_string(q, b->id, "type", b->type,
		    sizeof(b->type), err, errlen) == -1 ||
		    (strcmp(b->type, "memory-backend-file") == 0 &&
		    qemuvm_qom_string(q, b->id, "mem-path", b->mem_path,
		    sizeof(b->mem_path), err, errlen) == -1)) {
			json_decref(list);
			return -1;
		}
	}
	json_decref(list);
	return 0;
}

/* The mappings of QEMU's address space, with VmFlags. */
static struct qemuvm_map *
qemuvm_read_maps(pid_t pid, size_t *n, char *err, size_t errlen)
{
	struct qemuvm_map	*maps = NULL, *m = NULL;
	size_t			 cap = 0;
	char			 path[64], line[PATH_MAX + 128];
	FILE			*f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return NULL;
	}
	*n = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long	 s, e;
		char			 perms[5];
		int			 off = 0;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%llx-%llx %4s %*x %*x:%*x %*u %n", &s, &e,
		    perms, &off) >= 3 && off > 0) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 256;
				m = realloc(maps, cap * sizeof(*maps));
				if (m == NULL) {
					snprintf(err, errlen, "read %s: %s",
					    path, strerror(ENOMEM));
					goto fail;
				}
				maps = m;
			}
			m = &maps[(*n)++];
			memset(m, 0, sizeof(*m));
			m->start = s;
			m->end = e;
			memcpy(m->perms, perms, sizeof(m->perms));
			snprintf(m->path, sizeof(m->path), "%s", line + off);
		} else if (m != NULL && strncmp(line, "VmFlags:", 8) == 0)
			m->thp_or_ksm = strstr(line, " hg") != NULL ||
			    strstr(line, " mg") != NULL;
	}
	fclose(f);
	if (*n == 0) {
		snprintf(err, errlen, "%s: no mappings (has QEMU exited?)",
		    path);
		free(maps);
		return NULL;
	}
	return maps;
fail:
	fclose(f);
	free(maps);
	return NULL;
}

/* Whether mapping m may hold block b, judged by what b is. */
static int
qemuvm_may_hold(const struct qemuvm_block *b, const struct qemuvm_map *m)
{
	if (m->end - m->start != b->size || m->perms[0] != 'r' ||
	    m->perms[1] != 'w')
		return 0;
	if (strcmp(b->type, "memory-backend-file") == 0)
		return strcmp(m->path, b->mapped_as) == 0;
	if (strcmp(b->type, "memory-backend-memfd") == 0)
		return strncmp(m->path, "/memfd:memory-backend-memfd", 27) == 0;
	if (strcmp(b->type, "memory-backend-ram") == 0)
		return m->path[0] == '\0' || strcmp(m->path,
		    "/dev/zero (deleted)") == 0;
	return 0;
}

/*
 * The one mapping that may hold block b: of several, only those QEMU marked
 * (THP, KSM) count if any is marked.  NULL if none; *other the second
 * candidate when there is no one.
 */
static const struct qemuvm_map *
qemuvm_find(const struct qemuvm_block *b, const struct qemuvm_map *maps,
    size_t n, const struct qemuvm_map **other)
{
	const struct qemuvm_map	*found = NULL;
	int			 any_marked = 0;

	*other = NULL;
	for (size_t j = 0; j < n; j++)
		if (qemuvm_may_hold(b, &maps[j]) && maps[j].thp_or_ksm)
			any_marked = 1;
	for (size_t j = 0; j < n; j++) {
		if (!qemuvm_may_hold(b, &maps[j]) ||
		    (any_marked && !maps[j].thp_or_ksm))
			continue;
		if (found == NULL)
			found = &maps[j];
		else if (*other == NULL)
			*other = &maps[j];
	}
	return found;
}

/* Find the mapping of every block; -1 with err set. */
static int
qemuvm_match(struct qemuvm *vm, const struct qemuvm_map *maps, size_t n,
    char *err, size_t errlen)
{
	for (unsigned i = 0; i < vm->nblocks; i++) {
		struct qemuvm_block	*b = &vm->blocks[i];
		const struct qemuvm_map	*found, *other;

		if ((found = qemuvm_find(b, maps, n, &other)) == NULL) {
			snprintf(err, errlen, "RAM block %s (%s, %" PRIu64
			    " bytes): no mapping of QEMU process %d holds it",
			    b->id, b->type, b->size, (int)vm->pid);
			return -1;
		}
		if (other != NULL) {
			snprintf(err, errlen, "RAM block %s (%s, %" PRIu64
			    " bytes): two mappings of QEMU process %d could "
			    "hold it, 0x%" PRIx64 " and 0x%" PRIx64 ", and "
			    "QEMU %s does not say which; give the backend a "
			    "mem-path or a size of its own", b->id, b->type,
			    b->size, (int)vm->pid, found->start, other->start,
			    vm->version);
			return -1;
		}
		b->start = found->start;
		b->end = found->end;
	}
	return 0;
}

/*
 * The name QEMU's mapping of a memory-backend-file shows in its maps, into
 * b->mapped_as, and a check that userfaultfd can write-protect it: a
 * shared mapping on tmpfs (a memfd named as /proc/self/fd/N included, as
 * qemu-restore --exec gives one).  A disk file's pages, or a private
 * mapping's, cannot be protected while the guest runs.  -1 with err set.
 */
static int
qemuvm_file_backend(struct qemuvm *vm, struct qemuvm_block *b, char *err,
    size_t errlen)
{
	struct statfs	 sf;
	char		 path[PATH_MAX + 32];
	ssize_t		 len;

	/* QEMU's /proc/self is /proc/PID to us. */
	if (strncmp(b->mem_path, "/proc/self/", 11) == 0)
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)vm->pid,
		    b->mem_path + 11);
	else
		snprintf(path, sizeof(path), "%s", b->mem_path);
	if (strncmp(path, "/proc/", 6) == 0 && strstr(path, "/fd/") != NULL) {
		len = readlink(path, b->mapped_as, sizeof(b->mapped_as) - 1);
		if (len >= 0)
			b->mapped_as[len] = '\0';
	} else if (realpath(path, b->mapped_as) == NULL)
		len = -1;
	else
		len = 0;
	if (len == -1 || statfs(path, &sf) == -1) {
		snprintf(err, errlen, "RAM block %s: mem-path %s: %s", b->id,
		    b->mem_path, strerror(errno));
		return -1;
	}
	if (sf.f_type != TMPFS_MAGIC || !b->share) {
		snprintf(err, errlen, "RAM block %s: mem-path %s is %s, whose "
		    "pages userfaultfd cannot write-protect while the guest "
		    "runs: use share=on with a mem-path on tmpfs (/dev/shm), "
		    "or memory-backend-memfd", b->id, b->mem_path,
		    sf.f_type != TMPFS_MAGIC ? "not on tmpfs" :
		    "mapped private (share=off)");
		return -1;
	}
	return 0;
}

int
qemuvm_read(struct qmpc *q, struct qemuvm *vm, char *err, size_t errlen)
{
	struct qemuvm_map	*maps;
	size_t			 n;
	int			 rc;

	pid_t	pid = vm->pid;

	memset(vm, 0, sizeof(*vm));
	vm->pid = pid;
	if (qemuvm_read_facts(q, vm, err, errlen) == -1 ||
	    qemuvm_read_memdevs(q, vm, err, errlen) == -1 ||
	    qemuvm_read_cmdline(vm, err, errlen) == -1)
		return -1;
	for (unsigned i = 0; i < vm->nblocks; i++)
		if (strcmp(vm->blocks[i].type, "memory-backend-file") == 0 &&
		    qemuvm_file_backend(vm, &vm->blocks[i], err, errlen) == -1)
			return -1;
	if ((maps = qemuvm_read_maps(vm->pid, &n, err, errlen)) == NULL)
		return -1;
	rc = qemuvm_match(vm, maps, n, err, errlen);
	free(maps);
	return rc;
}

void
qemuvm_free(struct qemuvm *vm)
{
	json_decref(vm->cmdline);
	vm->cmdline = NULL;
}

char *
qemuvm_maps_filter(const struct qemuvm *vm)
{
	size_t	 size = (size_t)vm->nblocks * 40 + 1;
	char	*s = malloc(size);
	size_t	 off = 0;

	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (unsigned i = 0; i < vm->nblocks; i++)
		off += (size_t)snprintf(s + off, size - off, "%s%" PRIx64
		    "-%" PRIx64, i ? "," : "", vm->blocks[i].start,
		    vm->blocks[i].end);
	return s;
}
