#!/bin/bash
# `make bench-lazy`: lazy restore against eager restore of the same snapshot.
#
#	tests/bench-lazy.sh [--size SIZE] [--runs N]
#
# Starts a throwaway snapd (tests/lib.sh), has snapwork snapshot one region
# of SIZE (default 1G) of mixed content (random and sequential writers,
# 15% never-touched and 15% zero-written pages, so DATA and ZERO runs, and
# chunks from the fault path as well as the sweep), then runs lazybench
# (tests/workload/lazybench.c) on the file: per run, the eager
# snap_file_restore() (first access = all pages; into fresh memory, and into
# memory populated beforehand, untimed) against
# snap_file_restore_lazy() (time to first access: from the call until a
# touched page is readable; total: until snap_lazy_wait() says every page
# is present), N runs (default 5), medians with minimum and maximum, and
# the ratios of medians.  The last line is lazybench's JSON object.
. "$(dirname "$0")/lib.sh"

LAZYBENCH=${LAZYBENCH:-$TESTS_BIN/lazybench}
size=1G
runs=5

usage() {
	echo "usage: tests/bench-lazy.sh [--size SIZE] [--runs N]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--size) [ $# -ge 2 ] || usage; size=$2; shift ;;
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
	-h|--help) usage ;;
	*) echo "tests/bench-lazy.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
[ -x "$LAZYBENCH" ] || fail "$LAZYBENCH is missing: build it first (make tests)"
t_init
snapd_config
snapd_start

out=$T/snap.json
echo "snapshotting $size of mixed content ..."
run_snapwork "$out" --size "$size" --threads 2 --pattern mixed --regions 1 \
    --untouched 15 --zero 15 --name bench-lazy ||
	{ show_snapwork "$out"; fail "snapwork did not verify the snapshot"; }
file=$(json_get "$out" file) || fail "no file in snapwork's report"
"$MEMSNAPCTL_BIN" info "$file" | sed 's/^/  /'
"$LAZYBENCH" --file "$file" --runs "$runs" || fail "lazybench failed"
