/*
 * snapctl info FILE: what a snapshot holds, from its header, footer and
 * region table (snap_file_info, snap_file_region): no daemon needed.  It
 * does not check checksums; "verify" does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol.h"
#include "snapctl.h"

static int	cmd_info_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_info_entry = {
	.name = "info",
	.args = { "FILE", 1, 1 },
	.help = "describe a snapshot file: header, regions, page counts",
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
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s#, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I}",
	    "file", path,
	    "format", in->format == 1 ? SNAPD_FORMAT_RAW : SNAPD_FORMAT_ZSNAP,
	    "name", in->name,
	    "pid", (json_int_t)in->pid,
	    "uid", (json_int_t)in->uid,
	    "comm", in->comm, (int)strnlen(in->comm, sizeof(in->comm)),
	    "armed-realtime-ns", (json_int_t)in->armed_realtime_ns,
	    "chunks", (json_int_t)in->chunk_count,
	    "pages-total", (json_int_t)in->pages_total,
	    "pages-data", (json_int_t)in->pages_data,
	    "pages-zero", (json_int_t)in->pages_zero,
	    "pages-lost", (json_int_t)in->pages_lost,
	    "file-size", (json_int_t)in->file_size);
	if (o != NULL) {
		json_object_set_new(o, "version", json_sprintf("%u.%u",
		    in->version_major, in->version_minor));
		json_object_set_new(o, "regions", regions);
	} else
		json_decref(regions);
	return o;
}

static int
cmd_info_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file_info	 in;
	struct snap_file_region	*rg = NULL;
	struct snap_file	*f;
	struct table		*t;
	struct kv		*kv;
	json_t			*o;
	const char		*path = argv[0];
	char			 a[64], b[64], c[64], when[96];
	uint32_t		 i;
	int			 rc = EXIT_OK;

	if ((f = snap_file_open(path)) == NULL)
		return ctl_file_failure(path, "info");
	if (snap_file_info(f, &in) == -1) {
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
	if (ctl->json) {
		if ((o = info_json(path, &in, rg)) == NULL) {
			ctl_warnx("info: %s: cannot build JSON", path);
			rc = EXIT_FAILED;
			goto out;
		}
		ctl_print_json(o);
		json_decref(o);
		goto out;
	}

	kv = kv_new();
	kv_add(kv, "file", "%s", path);
	if (in.format == 1)
		kv_add(kv, "format", "raw");
	else
		kv_add(kv, "format", "zsnap %u.%u", in.version_major,
		    in.version_minor);
	kv_add(kv, "name", "%s", in.name);
	kv_add(kv, "process", "%" PRIu32 " (%.16s), uid %" PRIu32, in.pid,
	    in.comm, in.uid);
	armed_time(in.armed_realtime_ns, when, sizeof(when));
	kv_add(kv, "armed", "%s", when);
	kv_add(kv, "size", "%s (%" PRIu64 " bytes)",
	    fmt_bytes(in.file_size, a, sizeof(a)), in.file_size);
	if (in.format != 1)
		kv_add(kv, "chunks", "%" PRIu64, in.chunk_count);
	kv_add(kv, "pages", "%" PRIu64 " (%s): %" PRIu64 " data, %" PRIu64
	    " zero, %" PRIu64 " lost", in.pages_total,
	    fmt_bytes(in.pages_total * SNAPD_PAGE_SIZE, b, sizeof(b)),
	    in.pages_data, in.pages_zero, in.pages_lost);
	kv_add(kv, "regions", "%" PRIu32, in.region_count);
	kv_print(kv);
	if (in.region_count > 0) {
		t = table_new(5, "  INDEX>", "NAME", "START>", "END>",
		    "LENGTH>");
		for (i = 0; i < in.region_count; i++) {
			snprintf(a, sizeof(a), "%" PRIu32, i);
			snprintf(b, sizeof(b), "0x%" PRIx64, rg[i].start);
			snprintf(c, sizeof(c), "0x%" PRIx64,
			    rg[i].start + rg[i].length);
			fmt_bytes(rg[i].length, when, sizeof(when));
			table_add(t, a, rg[i].name, b, c, when);
		}
		table_print(t);
	}
out:
	free(rg);
	snap_file_close(f);
	return rc;
}
