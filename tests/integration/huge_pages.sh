#!/bin/bash
# Transparent huge pages stay huge through a snapshot, and the snapshot is
# exact (tests/workload/hugework.c, 64 MiB of MADV_HUGEPAGE memory = 32
# huge pages, restored and compared page by page):
#  - idle: the sweep saves every huge page whole (huge-swept 32) and the
#    memory keeps all of them (the owner check toggles a whole huge page,
#    not its first 4 KiB);
#  - a sequential writer, every write meeting a protected page (snapd's
#    writer is held until the workload has written everything): each huge
#    page after the first is copied whole on one fault (the first is
#    entered 4 KiB by 4 KiB while the stream is recognised) and stays huge;
#  - a random writer, held the same way: never a 2 MiB copy for one word
#    (huge-faulted 0), the pages it hits are split as fork's COW splits them;
#  - pre-armed, a random writer writing every page meanwhile: each first
#    write lets its whole huge page through, and everything stays huge.
# The buffer (80 MiB) holds the whole region, so a huge page's copy never
# falls back to 4 KiB for want of free slots: the counts are exact.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "buffer_size 80M"
snapd_start

HUGEWORK=$TESTS_BIN/hugework
blocks=32

run() {
	local name=$1 rc=0
	shift
	"$HUGEWORK" --socket "$SNAPD_SOCK" --size 64M "$@" >"$T/$name.json" \
	    2>"$T/$name.err" || rc=$?
	if [ "$rc" -eq 77 ]; then
		skip "$(tail -n 1 "$T/$name.json")"
	fi
	if [ "$rc" -ne 0 ]; then
		cat "$T/$name.err" "$T/$name.json" >&2
		fail "$name: hugework failed (exit $rc)"
	fi
	wrong=$(json_get "$T/$name.json" wrong) || fail "$name: no report"
	lost=$(json_get "$T/$name.json" lost)
	before=$(json_get "$T/$name.json" thp-before-kb)
	after=$(json_get "$T/$name.json" thp-after-kb)
	hf=$(json_get "$T/$name.json" huge-faulted)
	hs=$(json_get "$T/$name.json" huge-swept)
	[ "$wrong" -eq 0 ] && [ "$lost" -eq 0 ] ||
		fail "$name: $wrong pages differ from the armed instant, $lost lost"
	echo "$name: exact; THP $before -> $after kB, huge-faulted $hf, huge-swept $hs"
}

run idle --writes idle
[ "$before" -eq $((blocks * 2048)) ] || skip "the kernel gave only $before kB of huge pages"
[ "$hs" -eq "$blocks" ] || fail "idle: the sweep saved $hs of $blocks huge pages whole"
[ "$after" -eq "$before" ] || fail "idle: THP $before kB before, $after kB after the snapshot"

run sequential --writes sequential
[ "$hf" -eq $((blocks - 1)) ] ||
	fail "sequential: $hf huge pages copied whole on a fault, expected $((blocks - 1))"
[ "$after" -ge $(((blocks - 1) * 2048)) ] ||
	fail "sequential: only $after kB of THP left after the snapshot"

run random --writes random
[ "$hf" -eq 0 ] || fail "random: $hf huge pages copied whole for a random writer"

run prearm --prearm
[ "$hs" -eq "$blocks" ] || fail "prearm: the sweep saved $hs of $blocks huge pages whole"
[ "$after" -eq "$before" ] || fail "prearm: THP $before kB before, $after kB after the snapshot"

echo "ok: huge pages stay huge through idle, sequential and pre-armed snapshots, every snapshot exact"
