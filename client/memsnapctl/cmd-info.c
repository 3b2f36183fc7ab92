/*
 * memsnapctl info FILE: what a snapshot holds, from its header, footer and
 * region table (snap_file_info, snap_file_region): no daemon needed.  It
 * does not check the pages' checksums; "verify" does.  A snapshot taken by
 * attach also has a process record (snap_file_process): its threads, and
 * every mapping of the process with what became of it (saved live, copied
 * while stopped, or skipped and why).  The record is checked as it is read.
 *
 * An incremental snapshot also shows its chain, link by link from the file
 * to its base (snap_file_chain_info: each parent opened and checked, not
 * verified), and the ranges it saved whole and why (snap_file_whole).  A
 * broken chain is shown as far as it holds, with why it breaks there; info
 * still describes the file (verify is what fails on it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "procrec.h"
#include "protocol.h"
#include "memsnapctl.h"
#include "utf8.h"

static int	cmd_info_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_info_entry = {
	.name = "info",
	.args = { "FILE", 1, 1 },
	.help = "describe a snapshot file: header, regions, pages, process",
	.exec = cmd_info_exec,
};

static void
armed_time(uint64_t ns, char *buf, size_t size)
{
	struct tm	 tm;
	time_t		 t = (time_t)(ns / 1000000000);
	char		 date[64];

	if (ns == 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
		snprintf(buf, size, "unknown");
		return;
	}
	snprintf(buf, size, "%s.%06" PRIu64, date, ns % 1000000000 / 1000);
	if (strftime(date, sizeof(date), " %z", &tm) > 0)
		strncat(buf, date, size - strlen(buf) - 1);
}

/* "rw-p" as /proc/PID/maps shows a mapping's protection and sharing. */
static void
mapping_perms(const struct procrec_mapping *m, char buf[5])
{
	buf[0] = m->prot & PROT_READ ? 'r' : '-';
	buf[1] = m->prot & PROT_WRITE ? 'w' : '-';
	buf[2] = m->prot & PROT_EXEC ? 'x' : '-';
	buf[3] = m->flags & PROCREC_M_SHARED ? 's' : 'p';
	buf[4] = '\0';
}

/* A string of the record as JSON needs it: valid UTF-8. */
static json_t *
json_utf8(const char *s)
{
	char	*copy = strdup(s);
	json_t	*j;

	if (copy == NULL)
		return NULL;
	utf8_sanitize(copy);
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *
process_json(const struct procrec *rec)
{
	json_t	*maps = json_array(), *o;
	char	 perms[5];

	for (uint32_t i = 0; i < rec->mapping_count; i++) {
		const struct procrec_mapping *m = &rec->mappings[i];

		mapping_perms(m, perms);
		json_array_append_new(maps, json_pack("{s:I, s:I, s:s, s:s, "
		    "s:o, s:o, s:o, s:I, s:I}",
		    "start", (json_int_t)m->start, "end", (json_int_t)m->end,
		    "perms", perms, "state", procrec_state_name(m->state),
		    "region", m->region >= 0 ?
		    json_integer(m->region) : json_null(),
		    "path", json_utf8(m->path), "reason", json_utf8(m->reason),
		    "offset", (json_int_t)m->offset,
		    "inode", (json_int_t)m->inode));
	}
	o = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:o}",
	    "pid", (json_int_t)rec->pid, "ppid", (json_int_t)rec->ppid,
	    "uid", (json_int_t)rec->uid, "gid", (json_int_t)rec->gid,
	    "comm", json_utf8(rec->comm), "psargs", json_utf8(rec->psargs),
	    "threads", (json_int_t)rec->thread_count, "mappings", maps);
	return o;
}

static void
process_print(const struct procrec *rec)
{
	struct kv	*kv = kv_new();
	struct table	*t;
	uint32_t	 n[3] = { 0, 0, 0 };
	char		 range[48], perms[5], region[16];

	for (uint32_t i = 0; i < rec->mapping_count; i++)
		if (rec->mappings[i].state <= PROCREC_SKIPPED)
			n[rec->mappings[i].state]++;
	putchar('\n');
	kv_add(kv, "command", "%s", rec->psargs);
	kv_add(kv, "threads", "%" PRIu32, rec->thread_count);
	kv_add(kv, "mappings", "%" PRIu32 ": %" PRIu32 " live, %" PRIu32
	    " stopped, %" PRIu32 " skipped", rec->mapping_count,
	    n[PROCREC_LIVE], n[PROCREC_STOPPED], n[PROCREC_SKIPPED]);
	kv_print(kv);
	if (rec->mapping_count == 0)
		return;
	t = table_new(6, "  START-END", "PERMS", "STATE", "REGION>", "PATH",
	    "REASON");
	for (uint32_t i = 0; i < rec->mapping_count; i++) {
		const struct procrec_mapping *m = &rec->mappings[i];

		snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64,
		    m->start, m->end);
		mapping_perms(m, perms);
		if (m->region >= 0)
			snprintf(region, sizeof(region), "%" PRId32, m->region);
		else
			snprintf(region, sizeof(region), "-");
		table_add(t, range, perms, procrec_state_name(m->state),
		    region, m->path, m->reason);
	}
	table_print(t);
}

/* The page counts every snapshot and every link of a chain has. */
static void
pages_json(json_t *o, const struct snap_file_info *in)
{
	json_object_set_new(o, "pages-total",
	    json_integer((json_int_t)in->pages_total));
	json_object_set_new(o, "pages-data",
	    json_integer((json_int_t)in->pages_data));
	json_object_set_new(o, "pages-zero",
	    json_integer((json_int_t)in->pages_zero));
	json_object_set_new(o, "pages-lost",
	    json_integer((json_int_t)in->pages_lost));
	json_object_set_new(o, "pages-parent",
	    json_integer((json_int_t)in->pages_parent));
}

/* The chain of an incremental snapshot: its links, as far as they hold. */
struct chain {
	struct snap_file_info	*links;
	uint32_t		 count;
	char			 error[512];	/* why it breaks, or "" */
};

static int
chain_load(struct snap_file *f, const struct snap_file_info *in,
    struct chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	if ((ch->links = calloc((size_t)in->depth + 1, sizeof(*ch->links))) ==
	    NULL)
		return -1;
	ch->links[0] = *in;
	for (ch->count = 1; ch->count <= in->depth; ch->count++) {
		if (snap_file_chain_info(f, ch->count,
		    &ch->links[ch->count]) == -1) {
			snprintf(ch->error, sizeof(ch->error), "%s",
			    snap_strerror(NULL));
			break;
		}
	}
	return 0;
}

/* Link k's file: the path given for the first, then each parent's. */
static const char *
chain_file(const struct chain *ch, const char *path, uint32_t k)
{
	return k == 0 ? path : ch->links[k - 1].parent_file;
}

static json_t *
chain_json(const struct chain *ch, const char *path)
{
	json_t	*a = json_array();

	for (uint32_t k = 0; k < ch->count; k++) {
		const struct snap_file_info *l = &ch->links[k];

		json_t *o = json_pack("{s:s, s:s, s:I, s:I}",
		    "file", chain_file(ch, path, k), "name", l->name,
		    "armed-realtime-ns", (json_int_t)l->armed_realtime_ns,
		    "depth", (json_int_t)l->depth);

		pages_json(o, l);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *
whole_json(struct snap_file *f, const struct snap_file_info *in)
{
	struct snap_file_whole	 w;
	json_t			*a = json_array();

	for (uint32_t i = 0; i < in->whole_count; i++) {
		if (snap_file_whole(f, i, &w) == -1)
			break;
		json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:s}",
		    "region", (json_int_t)w.region,
		    "first-page", (json_int_t)w.first_page,
		    "page-count", (json_int_t)w.page_count,
		    "reason", snap_whole_reason_name(w.reason)));
	}
	return a;
}

/* The members only an incremental snapshot has. */
static int
incremental_json(json_t *o, struct snap_file *f,
    const struct snap_file_info *in, const struct chain *ch, const char *path)
{
	json_t	*parent;
	char	 crc[16];

	snprintf(crc, sizeof(crc), "0x%08x", in->parent_index_crc);
	parent = json_pack("{s:s, s:s, s:I, s:s}", "file", in->parent_file,
	    "name", in->parent_name,
	    "armed-realtime-ns", (json_int_t)in->parent_armed_realtime_ns,
	    "index-crc", crc);
	if (json_object_set_new(o, "depth", json_integer(in->depth)) == -1 ||
	    json_object_set_new(o, "parent", parent) == -1 ||
	    json_object_set_new(o, "chain", chain_json(ch, path)) == -1 ||
	    json_object_set_new(o, "chain-error", ch->error[0] != '\0' ?
	    json_string(ch->error) : json_null()) == -1 ||
	    json_object_set_new(o, "whole", whole_json(f, in)) == -1)
		return -1;
	return 0;
}

static json_t *
info_json(const char *path, const struct snap_file_info *in,
    const struct snap_file_region *rg)
{
	json_t		*o, *regions;
	uint32_t	 i;

	regions = json_array();
	for (i = 0; i < in->region_count; i++)
		json_array_append_new(regions, json_pack("{s:I, s:s, s:I, s:I}",
		    "index", (json_int_t)i, "name", rg[i].name,
		    "start", (json_int_t)rg[i].start,
		    "length", (json_int_t)rg[i].length));
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s#, s:I, s:I, s:I}",
	    "file", path,
	    "format", in->format == 1 ? SNAPD_FORMAT_RAW : SNAPD_FORMAT_ZSNAP,
	    "name", in->name,
	    "pid", (json_int_t)in->pid,
	    "uid", (json_int_t)in->uid,
	    "comm", in->comm, (int)strnlen(in->comm, sizeof(in->comm)),
	    "armed-realtime-ns", (json_int_t)in->armed_realtime_ns,
	    "chunks", (json_int_t)in->chunk_count,
	    "file-size", (json_int_t)in->file_size);
	if (o != NULL) {
		json_object_set_new(o, "version", json_sprintf("%u.%u",
		    in->version_major, in->version_minor));
		pages_json(o, in);
		json_object_set_new(o, "incremental",
		    json_boolean(in->incremental));
		json_object_set_new(o, "regions", regions);
	} else
		json_decref(regions);
	return o;
}

static void
regions_print(const struct snap_file_info *in,
    const struct snap_file_region *rg)
{
	struct table	*t;
	char		 a[64], b[64], c[64], d[64];

	if (in->region_count == 0)
		return;
	t = table_new(5, "  INDEX>", "NAME", "START>", "END>", "LENGTH>");
	for (uint32_t i = 0; i < in->region_count; i++) {
		snprintf(a, sizeof(a), "%" PRIu32, i);
		snprintf(b, sizeof(b), "0x%" PRIx64, rg[i].start);
		snprintf(c, sizeof(c), "0x%" PRIx64,
		    rg[i].start + rg[i].length);
		fmt_bytes(rg[i].length, d, sizeof(d));
		table_add(t, a, rg[i].name, b, c, d);
	}
	table_print(t);
}

/* The chain, link by link, and the ranges saved whole. */
static void
incremental_print(struct snap_file *f, const struct snap_file_info *in,
    const struct chain *ch, const char *path)
{
	struct snap_file_whole	 w;
	struct table		*t;
	char			 a[32], b[32], c[32], d[32], when[96];

	printf("\nchain: %" PRIu32 " snapshots, this one %" PRIu32 " links "
	    "from the base%s\n", in->depth + 1, in->depth,
	    ch->error[0] != '\0' ? "; broken" : "");
	t = table_new(7, "  DEPTH>", "FILE", "NAME", "ARMED", "PAGES>",
	    "SAVED>", "PARENT>");
	for (uint32_t k = 0; k < ch->count; k++) {
		const struct snap_file_info *l = &ch->links[k];

		snprintf(a, sizeof(a), "%" PRIu32, l->depth);
		armed_time(l->armed_realtime_ns, when, sizeof(when));
		snprintf(b, sizeof(b), "%" PRIu64, l->pages_total);
		snprintf(c, sizeof(c), "%" PRIu64, l->pages_data +
		    l->pages_zero + l->pages_lost);
		snprintf(d, sizeof(d), "%" PRIu64, l->pages_parent);
		table_add(t, a, chain_file(ch, path, k), l->name, when, b, c, d);
	}
	table_print(t);
	if (ch->error[0] != '\0')
		printf("  broken: %s\n", ch->error);
	if (in->whole_count == 0)
		return;
	printf("\nsaved whole: %" PRIu32 " ranges\n", in->whole_count);
	t = table_new(4, "  REGION>", "FIRST>", "PAGES>", "REASON");
	for (uint32_t i = 0; i < in->whole_count; i++) {
		if (snap_file_whole(f, i, &w) == -1)
			break;
		snprintf(a, sizeof(a), "%" PRIu32, w.region);
		snprintf(b, sizeof(b), "%" PRIu64, w.first_page);
		snprintf(c, sizeof(c), "%" PRIu64, w.page_count);
		table_add(t, a, b, c, snap_whole_reason_name(w.reason));
	}
	table_print(t);
}

static void
info_print(const char *path, const struct snap_file_info *in,
    const struct snap_file_region *rg)
{
	struct kv	*kv = kv_new();
	char		 a[64], b[64], when[96];

	kv_add(kv, "file", "%s", path);
	if (in->format == 1)
		kv_add(kv, "format", "raw");
	else
		kv_add(kv, "format", "zsnap %u.%u", in->version_major,
		    in->version_minor);
	kv_add(kv, "name", "%s", in->name);
	kv_add(kv, "process", "%" PRIu32 " (%.16s), uid %" PRIu32, in->pid,
	    in->comm, in->uid);
	armed_time(in->armed_realtime_ns, when, sizeof(when));
	kv_add(kv, "armed", "%s", when);
	kv_add(kv, "size", "%s (%" PRIu64 " bytes)",
	    fmt_bytes(in->file_size, a, sizeof(a)), in->file_size);
	if (in->format != 1)
		kv_add(kv, "chunks", "%" PRIu64, in->chunk_count);
	if (in->incremental) {
		kv_add(kv, "pages", "%" PRIu64 " (%s): %" PRIu64 " data, %"
		    PRIu64 " zero, %" PRIu64 " lost, %" PRIu64 " parent",
		    in->pages_total,
		    fmt_bytes(in->pages_total * SNAPD_PAGE_SIZE, b, sizeof(b)),
		    in->pages_data, in->pages_zero, in->pages_lost,
		    in->pages_parent);
		armed_time(in->parent_armed_realtime_ns, when, sizeof(when));
		kv_add(kv, "parent", "%s (snapshot %s, armed %s, index crc "
		    "0x%08" PRIx32 ")", in->parent_file, in->parent_name, when,
		    in->parent_index_crc);
	} else
		kv_add(kv, "pages", "%" PRIu64 " (%s): %" PRIu64 " data, %"
		    PRIu64 " zero, %" PRIu64 " lost", in->pages_total,
		    fmt_bytes(in->pages_total * SNAPD_PAGE_SIZE, b, sizeof(b)),
		    in->pages_data, in->pages_zero, in->pages_lost);
	kv_add(kv, "regions", "%" PRIu32, in->region_count);
	kv_print(kv);
	regions_print(in, rg);
}

static int
cmd_info_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file_info	 in;
	struct snap_file_region	*rg = NULL;
	struct snap_file	*f;
	struct procrec		 rec;
	struct chain		 ch;
	json_t			*o;
	const char		*path = argv[0];
	uint32_t		 i;
	int			 rc = EXIT_OK, has_rec = 0;

	memset(&rec, 0, sizeof(rec));
	memset(&ch, 0, sizeof(ch));
	if ((f = snap_file_open(path)) == NULL)
		return ctl_file_failure(path, "info");
	if (snap_file_info(f, &in) == -1 ||
	    (has_rec = snap_file_process(f, &rec)) == -1) {
		rc = ctl_file_failure(path, "info");
		goto out;
	}
	rg = calloc(in.region_count > 0 ? in.region_count : 1, sizeof(*rg));
	if (rg == NULL) {
		ctl_warnx("info: %s: out of memory", path);
		rc = EXIT_FAILED;
		goto out;
	}
	for (i = 0; i < in.region_count; i++) {
		if (snap_file_region(f, i, &rg[i]) == -1) {
			rc = ctl_file_failure(path, "info");
			goto out;
		}
	}
	if (in.incremental && chain_load(f, &in, &ch) == -1) {
		ctl_warnx("info: %s: out of memory", path);
		rc = EXIT_FAILED;
		goto out;
	}
	if (!ctl->json) {
		info_print(path, &in, rg);
		if (in.incremental)
			incremental_print(f, &in, &ch, path);
		if (has_rec == 1)
			process_print(&rec);
		goto out;
	}
	o = info_json(path, &in, rg);
	if (o != NULL && ((has_rec == 1 &&
	    json_object_set_new(o, "process", process_json(&rec)) == -1) ||
	    (in.incremental && incremental_json(o, f, &in, &ch, path) == -1))) {
		json_decref(o);
		o = NULL;
	}
	if (o == NULL) {
		ctl_warnx("info: %s: cannot build JSON", path);
		rc = EXIT_FAILED;
		goto out;
	}
	ctl_print_json(o);
	json_decref(o);
out:
	procrec_free(&rec);
	free(ch.links);
	free(rg);
	snap_file_close(f);
	return rc;
}
