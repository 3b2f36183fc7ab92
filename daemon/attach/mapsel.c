/*
 * Choosing the mappings of an attached process (mapsel.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "compat.h"
#include "mapsel.h"
#include "procmaps.h"
#include "protocol.h"

#define TMPFS_MAGIC_	0x01021994

struct mapsel_filter {
	unsigned	n;
	struct {
		int		 range;
		uint64_t	 lo, hi;
		char		 glob[256];
	} item[MAPSEL_FILTER_ITEMS_MAX];
};

/* One item: "START-END" in hex (0x optional) or a glob. */
static int
mapsel_parse_item(const char *s, size_t len, struct mapsel_filter *f,
    char *why, size_t whylen)
{
	char		buf[256], *dash, *end1, *end2;
	unsigned	i = f->n;

	if (len == 0 || len >= sizeof(buf)) {
		snprintf(why, whylen, "maps: item %u is %s", i + 1,
		    len == 0 ? "empty" : "longer than 255 bytes");
		return -1;
	}
	if (i == MAPSEL_FILTER_ITEMS_MAX) {
		snprintf(why, whylen, "maps: more than %d items",
		    MAPSEL_FILTER_ITEMS_MAX);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	f->item[i].range = 0;
	if ((dash = strchr(buf, '-')) != NULL && strpbrk(buf, "*?[/") == NULL) {
		*dash = '\0';
		errno = 0;
		f->item[i].lo = strtoull(buf, &end1, 16);
		f->item[i].hi = strtoull(dash + 1, &end2, 16);
		if (errno != 0 || *end1 != '\0' || *end2 != '\0' ||
		    end1 == buf || end2 == dash + 1 ||
		    f->item[i].hi <= f->item[i].lo) {
			snprintf(why, whylen, "maps: item %u ('%s-%s') is "
			    "not a range START-END of hex addresses", i + 1,
			    buf, dash + 1);
			return -1;
		}
		f->item[i].range = 1;
	} else
		memcpy(f->item[i].glob, buf, len + 1);
	f->n++;
	return 0;
}

static int
mapsel_parse_filter(const char *filter, struct mapsel_filter *f, char *why,
    size_t whylen)
{
	f->n = 0;
	if (filter == NULL)
		return 0;
	for (const char *p = filter;;) {
		size_t len = strcspn(p, ",");

		if (mapsel_parse_item(p, len, f, why, whylen) == -1)
			return -1;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	return 0;
}

int
mapsel_filter_check(const char *filter, char *why, size_t whylen)
{
	struct mapsel_filter *f = malloc(sizeof(*f));
	int rc;

	if (f == NULL) {
		snprintf(why, whylen, "maps: %s", strerror(errno));
		return -1;
	}
	rc = mapsel_parse_filter(filter, f, why, whylen);
	free(f);
	return rc;
}

static int
mapsel_filter_match(const struct mapsel_filter *f,
    const struct procrec_mapping *m)
{
	const char *name = m->path[0] != '\0' ? m->path : "[anon]";

	if (f->n == 0)
		return 1;
	for (unsigned i = 0; i < f->n; i++) {
		if (f->item[i].range) {
			if (m->start < f->item[i].hi && m->end > f->item[i].lo)
				return 1;
		} else if (fnmatch(f->item[i].glob, name, 0) == 0)
			return 1;
	}
	return 0;
}

/* Does a private file mapping hold pages the process wrote (anonymous)? */
static int
mapsel_has_written(int pagemap, const struct procrec_mapping *m)
{
	struct page_region	vec;
	struct pm_scan_arg	arg = {
		.size = sizeof(arg),
		.start = m->start,
		.end = m->end,
		.vec = (uint64_t)(uintptr_t)&vec,
		.vec_len = 1,
		.max_pages = 1,
		.category_inverted = PAGE_IS_FILE,
		.category_mask = PAGE_IS_FILE,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_FILE,
	};
	int n;

	if (pagemap == -1)
		return 1;
	n = ioctl(pagemap, PAGEMAP_SCAN, &arg);
	return n != 0;		/* found one, or cannot tell: copy it */
}

/*
 * Is a shared mapping shmem (shared anonymous, memfd, SysV, tmpfs)?  By
 * its name where that says it, else by the file system of the mapped file
 * (map_files needs CAP_SYS_ADMIN, which the shipped unit does not give;
 * then the path as the process names it, if snapd sees the same one).
 */
static int
mapsel_is_shmem(pid_t pid, const struct procrec_mapping *m)
{
	struct statfs	sfs;
	char		path[96];
	const char	*n = m->path;

	if (strncmp(n, "/memfd:", 7) == 0 || strncmp(n, "/SYSV", 5) == 0 ||
	    strncmp(n, "/dev/zero", 9) == 0 || strncmp(n, "/dev/shm/", 9) == 0)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
	    (unsigned long long)m->start, (unsigned long long)m->end);
	if (statfs(path, &sfs) == 0)
		return sfs.f_type == TMPFS_MAGIC_;
	return n[0] == '/' && statfs(n, &sfs) == 0 &&
	    sfs.f_type == TMPFS_MAGIC_;
}

/*
 * Bytes of memory and swap the machine has: a mapping larger than that
 * cannot be populated, only reserved (a sanitizer's shadow, a runtime's
 * arena); protecting it would mean a marker for every page of it.
 */
static uint64_t
mapsel_machine_bytes(void)
{
	static uint64_t	 bytes;
	unsigned long long kb, total = 0;
	char		 line[128];
	FILE		*f;

	if (bytes != 0 || (f = fopen("/proc/meminfo", "re")) == NULL)
		return bytes != 0 ? bytes : UINT64_MAX;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1 ||
		    sscanf(line, "SwapTotal: %llu kB", &kb) == 1)
			total += kb;
	fclose(f);
	bytes = total != 0 ? total * 1024 : UINT64_MAX;
	return bytes;
}

static int
mapsel_is_anon_name(const char *name)
{
	return name[0] == '\0' || strcmp(name, "[heap]") == 0 ||
	    strncmp(name, "[stack", 6) == 0 || strncmp(name, "[anon", 5) == 0;
}

/*
 * The default classification of one mapping: its state, and the reason
 * for a skip (or for a copy while stopped).
 */
static uint32_t
mapsel_classify(pid_t pid, struct procmaps *pm, int pagemap,
    const struct procrec_mapping *m, const char **reason)
{
	struct procmaps_vma	vma;
	const char		*n = m->path;
	int			w = (m->prot & PROT_WRITE) != 0;

	*reason = "";
	if ((m->prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) == 0)
		return *reason = "no access (a guard page)", PROCREC_SKIPPED;
	if (strncmp(n, "[vvar", 5) == 0 || strcmp(n, "[vsyscall]") == 0)
		return *reason = "kernel data the process cannot write",
		    PROCREC_SKIPPED;
	if (procmaps_find(pm, m->start, &vma) == 1 && vma.start <= m->start &&
	    vma.page_size > 4096)
		return *reason = "hugetlbfs memory: not supported yet",
		    PROCREC_SKIPPED;
	if (strcmp(n, "[vdso]") == 0)
		return *reason = "kernel code page: copied while stopped",
		    PROCREC_STOPPED;
	if (m->end - m->start > mapsel_machine_bytes())
		return *reason = "larger than the machine's memory and swap: "
		    "a sparse reservation (a sanitizer's shadow, a runtime's "
		    "arena), which saving would mean protecting page by page: "
		    "not supported yet", PROCREC_SKIPPED;
	if (m->flags & PROCREC_M_SHARED) {
		if (!mapsel_is_shmem(pid, m))
			return *reason = "shared file mapping: its content "
			    "is in the file", PROCREC_SKIPPED;
		if (w)
			return PROCREC_LIVE;
		return *reason = "read-only shared memory: copied while "
		    "stopped", PROCREC_STOPPED;
	}
	if (mapsel_is_anon_name(n) || n[0] == '[') {
		if (w)
			return PROCREC_LIVE;
		return *reason = "read-only anonymous memory: copied while "
		    "stopped", PROCREC_STOPPED;
	}
	if (m->prot & PROT_EXEC)
		return *reason = "program code: its content is the file's",
		    PROCREC_SKIPPED;
	if (!mapsel_has_written(pagemap, m))
		return *reason = "file mapping never written: its content "
		    "is the file's", PROCREC_SKIPPED;
	return *reason = "file mapping with written pages (uffd-wp cannot "
	    "protect it): copied while stopped", PROCREC_STOPPED;
}

/* Parse one /proc/PID/maps line into m (path strdup'ed). */
static int
mapsel_parse_line(const char *line, struct procrec_mapping *m)
{
	unsigned long long	start, end, off, ino;
	unsigned		maj, min;
	char			perms[8];
	int			pos = 0;
	const char		*name;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end,
	    perms, &off, &maj, &min, &ino, &pos) < 7 || strlen(perms) < 4 ||
	    end <= start)
		return -1;
	name = pos > 0 ? line + pos : "";
	memset(m, 0, sizeof(*m));
	m->start = start;
	m->end = end;
	m->offset = off;
	m->dev = ((uint64_t)maj << 32) | min;
	m->inode = ino;
	m->prot = (perms[0] == 'r' ? PROT_READ : 0) |
	    (perms[1] == 'w' ? PROT_WRITE : 0) |
	    (perms[2] == 'x' ? PROT_EXEC : 0);
	m->flags = perms[3] == 's' ? PROCREC_M_SHARED : 0;
	m->region = -1;
	if ((m->path = strndup(name, strcspn(name, "\n"))) == NULL)
		return -1;
	if (strlen(m->path) >= PROCREC_PATH_MAX)
		m->path[PROCREC_PATH_MAX - 1] = '\0';
	return 0;
}

/* Read every mapping of pid into ms->maps. */
static int
mapsel_read_maps(struct mapsel *ms, pid_t pid, char *why, size_t whylen)
{
	char	 path[64], *line = NULL;
	size_t	 cap = 0, mcap = 0;
	FILE	*f;
	int	 rc = -1;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(why, whylen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		if (ms->nmaps == mcap) {
			struct procrec_mapping *n;

			mcap = mcap ? mcap * 2 : 64;
			if (mcap > PROCREC_MAPPINGS_MAX ||
			    (n = realloc(ms->maps, mcap * sizeof(*n))) == NULL) {
				snprintf(why, whylen, "%s: more than %d "
				    "mappings, or %s", path,
				    PROCREC_MAPPINGS_MAX, strerror(ENOMEM));
				goto out;
			}
			ms->maps = n;
		}
		if (mapsel_parse_line(line, &ms->maps[ms->nmaps]) == -1) {
			snprintf(why, whylen, "%s: cannot parse line %u", path,
			    ms->nmaps + 1);
			goto out;
		}
		ms->nmaps++;
	}
	rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

/* A region name for mapping i: "m<i>-<its name's last part>". */
static void
mapsel_region_name(const struct procrec_mapping *m, uint32_t i, char *out,
    size_t len)
{
	const char	*n = m->path, *slash = strrchr(n, '/');
	size_t		 k;

	if (slash != NULL)
		n = slash + 1;
	if (*n == '\0')
		n = "anon";
	k = (size_t)snprintf(out, len, "m%u-", i);
	for (; *n != '\0' && k + 1 < len && k < SNAPD_NAME_MAX; n++)
		if ((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		    (*n >= '0' && *n <= '9') || *n == '.' || *n == '_' ||
		    *n == '-')
			out[k++] = *n;
		else if (*n != '[' && *n != ']')
			out[k++] = '_';
	out[k] = '\0';
}

/* Decide every mapping's fate and build the regions. */
static int
mapsel_decide(struct mapsel *ms, pid_t pid, int pidfd,
    const struct mapsel_filter *f, uint64_t stopped_max, char *why,
    size_t whylen)
{
	struct procmaps	 pm;
	char		 path[64];
	int		 pagemap;

	if (procmaps_open(&pm, pid, pidfd) == -1) {
		snprintf(why, whylen, "read the mappings of process %d: %s",
		    (int)pid, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	ms->regions = calloc(ms->nmaps, sizeof(*ms->regions));
	for (uint32_t i = 0; ms->regions != NULL && i < ms->nmaps; i++) {
		struct procrec_mapping	*m = &ms->maps[i];
		const char		*reason;
		uint32_t		 st;
		uint64_t		 len = m->end - m->start;

		/* The filter first: classifying may read the pagemap. */
		if (!mapsel_filter_match(f, m))
			st = PROCREC_SKIPPED, reason = "not chosen by maps";
		else
			st = mapsel_classify(pid, &pm, pagemap, m, &reason);
		if (st == PROCREC_STOPPED &&
		    ms->bytes_stopped + len > stopped_max)
			st = PROCREC_SKIPPED, reason = "copying it while "
			    "stopped would pass the buffer size";
		m->state = st;
		m->reason = strdup(reason);
		if (st == PROCREC_SKIPPED) {
			ms->skipped++;
			continue;
		}
		struct output_region *r = &ms->regions[ms->nregions];

		r->start = m->start;
		r->length = len;
		r->flags = st == PROCREC_STOPPED ? OUTPUT_REGION_STOPPED : 0;
		mapsel_region_name(m, i, r->name, sizeof(r->name));
		m->region = (int32_t)ms->nregions++;
		if (st == PROCREC_STOPPED) {
			ms->stopped++;
			ms->bytes_stopped += len;
		} else {
			ms->live++;
			ms->pages_live += len / 4096;
		}
	}
	if (pagemap != -1)
		close(pagemap);
	procmaps_close(&pm);
	if (ms->regions == NULL) {
		snprintf(why, whylen, "regions: %s", strerror(ENOMEM));
		return -1;
	}
	return 0;
}

int
mapsel_choose(struct mapsel *ms, pid_t pid, int pidfd, const char *filter,
    uint64_t stopped_max, char *why, size_t whylen)
{
	struct mapsel_filter *f;
	int rc = -1;

	memset(ms, 0, sizeof(*ms));
	if ((f = malloc(sizeof(*f))) == NULL) {
		snprintf(why, whylen, "maps: %s", strerror(errno));
		return -1;
	}
	if (mapsel_parse_filter(filter, f, why, whylen) == -1 ||
	    mapsel_read_maps(ms, pid, why, whylen) == -1 ||
	    mapsel_decide(ms, pid, pidfd, f, stopped_max, why, whylen) == -1)
		goto out;
	for (uint32_t i = 0; i < ms->nmaps; i++)
		if (ms->maps[i].reason == NULL) {
			snprintf(why, whylen, "mappings: %s", strerror(ENOMEM));
			goto out;
		}
	if (ms->nregions == 0) {
		snprintf(why, whylen, "no mapping of process %d to save%s",
		    (int)pid, filter != NULL ? " matches maps" : "");
		goto out;
	}
	rc = 0;
out:
	free(f);
	if (rc == -1)
		mapsel_free(ms);
	return rc;
}

/* The index of the region of n at r that overlaps [start, end), or -1. */
static int32_t
mapsel_region_overlap(const struct output_region *r, uint32_t n,
    uint64_t start, uint64_t end)
{
	for (uint32_t k = 0; k < n; k++)
		if (r[k].start < end && start < r[k].start + r[k].length)
			return (int32_t)k;
	return -1;
}

/* Mapping m takes region k's kind (k -1: skipped, mapped since). */
static int
mapsel_match_one(struct mapsel *ms, struct procrec_mapping *m, int32_t k,
    const struct output_region *r)
{
	const char *reason = "";

	if (k == -1) {
		m->state = PROCREC_SKIPPED;
		reason = "mapped since the chain's full snapshot, whose "
		    "regions every incremental one saves";
		ms->skipped++;
	} else if (r[k].flags & OUTPUT_REGION_STOPPED) {
		m->state = PROCREC_STOPPED;
		reason = "copied while stopped, as in the parent snapshot";
		ms->stopped++;
		ms->bytes_stopped += m->end - m->start;
	} else {
		m->state = PROCREC_LIVE;
		ms->live++;
		ms->pages_live += (m->end - m->start) / 4096;
	}
	m->region = k;
	free(m->reason);
	if ((m->reason = strdup(reason)) == NULL)
		return -1;
	return 0;
}

int
mapsel_match(struct mapsel *ms, pid_t pid, const struct output_region *regions,
    uint32_t nregions, char *why, size_t whylen)
{
	struct output_region	*copy;

	for (uint32_t k = 0; k < nregions; k++) {
		uint64_t addr = regions[k].start;
		uint64_t end = regions[k].start + regions[k].length;

		for (uint32_t i = 0; i < ms->nmaps && addr < end; i++)
			if (ms->maps[i].start <= addr && addr < ms->maps[i].end)
				addr = ms->maps[i].end;
		if (addr < end) {
			snprintf(why, whylen, "region %u ('%s', 0x%llx+%llu) "
			    "of the parent snapshot is no longer all mapped in "
			    "process %d (nothing at 0x%llx): it was unmapped "
			    "since; take a full snapshot", k, regions[k].name,
			    (unsigned long long)regions[k].start,
			    (unsigned long long)regions[k].length, (int)pid,
			    (unsigned long long)addr);
			return -1;
		}
	}
	if ((copy = calloc(nregions, sizeof(*copy))) == NULL) {
		snprintf(why, whylen, "regions: %s", strerror(errno));
		return -1;
	}
	memcpy(copy, regions, nregions * sizeof(*copy));
	free(ms->regions);
	ms->regions = copy;
	ms->nregions = nregions;
	ms->live = ms->stopped = ms->skipped = 0;
	ms->pages_live = ms->bytes_stopped = 0;
	for (uint32_t i = 0; i < ms->nmaps; i++) {
		struct procrec_mapping	*m = &ms->maps[i];
		int32_t			 k = mapsel_region_overlap(regions,
					    nregions, m->start, m->end);

		if (k != -1 && (m->start < regions[k].start || m->end >
		    regions[k].start + regions[k].length)) {
			snprintf(why, whylen, "mapping 0x%llx-0x%llx (%s) runs "
			    "past region %d ('%s') of the parent snapshot: it "
			    "grew or moved since, and its new pages would be "
			    "missing; take a full snapshot",
			    (unsigned long long)m->start,
			    (unsigned long long)m->end,
			    m->path[0] != '\0' ? m->path : "anonymous", k,
			    regions[k].name);
			return -1;
		}
		if (mapsel_match_one(ms, m, k, regions) == -1) {
			snprintf(why, whylen, "mappings: %s", strerror(ENOMEM));
			return -1;
		}
	}
	return 0;
}

void
mapsel_free(struct mapsel *ms)
{
	for (uint32_t i = 0; ms->maps != NULL && i < ms->nmaps; i++) {
		free(ms->maps[i].path);
		free(ms->maps[i].reason);
	}
	free(ms->maps);
	free(ms->regions);
	memset(ms, 0, sizeof(*ms));
}
