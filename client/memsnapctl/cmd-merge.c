/*
 * memsnapctl merge SNAPSHOT OUTPUT: fold an incremental snapshot's chain
 * into one full zsnap file (snap_file_merge), the memory as it was at
 * SNAPSHOT's own armed instant, then verify what was written before
 * saying so:
 *
 *	SNAPSHOT: merged 4 links into OUTPUT (N pages: D data, Z zero,
 *	    L lost); verified
 *
 * The chain's files are left alone: other deltas may depend on them.
 * Once merged, the user may delete the deltas, newest first (snapd
 * refuses to delete a parent another file depends on).  A failed merge
 * leaves no OUTPUT; one whose result does not verify removes it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "memsnapctl.h"

static int	cmd_merge_exec(struct ctl *, int, char **);

const struct cmd_entry cmd_merge_entry = {
	.name = "merge",
	.args = { "SNAPSHOT OUTPUT", 2, 2 },
	.help = "fold an incremental chain into one full snapshot file",
	.exec = cmd_merge_exec,
};

/* Verify the merged file; its info on success. */
static int
merge_check(const char *out, struct snap_file_info *info)
{
	struct snap_file	*m;
	int			 rc = -1;

	if ((m = snap_file_open(out)) == NULL)
		return -1;
	if (snap_file_verify(m) == 0 && snap_file_info(m, info) == 0) {
		if (info->incremental || info->depth != 0)
			ctl_warnx("merge: %s: still has a parent", out);
		else
			rc = 0;
	}
	snap_file_close(m);
	return rc;
}

static int
cmd_merge_exec(struct ctl *ctl, int argc, char **argv)
{
	struct snap_file_info	 in, mi;
	struct snap_file	*f;
	const char		*path = argv[0], *out = argv[1];
	json_t			*o;

	if ((f = snap_file_open(path)) == NULL)
		return ctl_file_failure(path, "merge");
	if (snap_file_info(f, &in) == -1 || snap_file_merge(f, out) == -1) {
		ctl_file_failure(path, "merge");
		snap_file_close(f);
		return EXIT_FAILED;
	}
	snap_file_close(f);
	if (merge_check(out, &mi) == -1) {
		ctl_file_failure(out, "merge: verify");
		/* Never leave a file that does not verify behind. */
		if (unlink(out) == -1)
			ctl_warnx("merge: remove %s: %s", out, strerror(errno));
		return EXIT_FAILED;
	}
	if (ctl->json) {
		o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
		    "file", path, "output", out,
		    "links", (json_int_t)in.depth + 1,
		    "pages-total", (json_int_t)mi.pages_total,
		    "pages-data", (json_int_t)mi.pages_data,
		    "pages-zero", (json_int_t)mi.pages_zero,
		    "pages-lost", (json_int_t)mi.pages_lost,
		    "chunks", (json_int_t)mi.chunk_count,
		    "verified", 1);
		ctl_print_json(o);
		json_decref(o);
	} else
		printf("%s: merged %" PRIu32 " link%s into %s (%" PRIu64
		    " pages: %" PRIu64 " data, %" PRIu64 " zero, %" PRIu64
		    " lost); verified\n", path, in.depth + 1,
		    in.depth == 0 ? "" : "s", out, mi.pages_total,
		    mi.pages_data, mi.pages_zero, mi.pages_lost);
	return EXIT_OK;
}
