#!/bin/bash
# Invariants 3 and 4 under the worst fault, snapd killed with SIGKILL at
# each stage of a snapshot.  Each stage is made to last by snapd's test hook
# (snapd(8), TEST HOOKS: the writer is held there until the snapshot is
# cancelled), so the kill lands in the stage it names on any machine:
#   arming       every page protected, the armed instant not yet reached;
#   buffer-full  a 64 KiB buffer under two random writers, the writer held:
#                killed while it is full and faults have waited
#                (buffer-full-waits > 0);
#   mid-sweep    the writer held with half of the pages saved;
#   finishing    the writer held with every page saved (index, footer,
#                fsync and rename still to do).
# Each time snapwork (--expect-fail --after-loss 2) keeps writing for two
# seconds after it sees snapd gone and must never be blocked for a second
# after the kill (how long writers waited on snapd before it is printed,
# not judged here), its memory must be intact, no file may carry a final
# snapshot name, and a leftover temporary file must not pass `memsnapctl
# verify`.  The kill comes from a poller holding one QMP connection and
# asking query-snapshots until the stage is reached.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "compression_threads 1"

# kill_when (tests/lib.sh) SIGKILLs snapd itself here.

# kill_case LABEL EXPR SNAPWORK-ARGS...: one snapshot, snapd killed when
# EXPR holds; then every check.
leftovers=0
kill_case() {
	local label=$1 expr=$2 out=$T/$1.json poll=$T/$1.poll rc=0 tmp found
	local gap live writes started msg
	shift 2
	snapd_start
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --expect-fail --run-after 30 \
	    --after-loss 2 --name "$label" "$@" >"$out" 2>"$out.err" &
	SNAPWORK_PID=$!
	t_track "$SNAPWORK_PID"
	if ! kill_when "$label" "$SNAPD_PID" "$expr" 40 >"$poll"; then
		cat "$poll" >&2
		kill -KILL "$SNAPWORK_PID" 2>/dev/null
		fail "$label: the snapshot never reached the stage to kill in ($expr)"
	fi
	wait "$SNAPD_PID" 2>/dev/null
	SNAPD_PID=
	echo "$label: killed snapd at $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["snapshot"]; print("state %s, %d/%d pages saved, buffer %d/%d, %d buffer-full waits (poll %d)" % (s["state"], s["pages-saved"], s["pages-total"], s["buffer-used"], s["buffer-size"], s["buffer-full-waits"], d["polls"]))' "$poll")"
	wait "$SNAPWORK_PID" || rc=$?
	[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "$label: snapwork failed (exit $rc): a writer was blocked or its memory damaged after snapd died"; }
	[ "$(json_get "$out" completed)" = false ] ||
		fail "$label: the snapshot completed although snapd was killed"
	gap=$(json_get "$out" writer-gap-max-us) || fail "$label: no writer-gap-max-us"
	live=$(json_get "$out" live-wrong-pages) || fail "$label: no live-wrong-pages"
	writes=$(json_get "$out" writes-during-snapshot) || fail "$label: no writes-during-snapshot"
	started=$(json_get "$out" start-failed) || fail "$label: no start-failed"
	before=$(json_get "$out" writer-gap-before-loss-us) || fail "$label: no writer-gap-before-loss-us"
	[ "$live" -eq 0 ] || fail "$label: $live live pages damaged"
	[ "$gap" -lt 1000000 ] || fail "$label: a writer made no progress for $gap us"
	[ "$writes" -gt 0 ] || fail "$label: no page written after the kill: the writers were blocked"
	if [ "$label" = arming ]; then
		[ "$started" = true ] ||
			fail "$label: snap_start() returned armed: the kill came after arming"
		grep -q "snapshot [0-9]* (pid [0-9]*, uid [0-9]*): started" "$SNAPD_LOG" ||
			fail "$label: snapd never started the snapshot: the kill came before arming"
		! grep -q "(pid [0-9]*, snapwork): armed" "$SNAPD_LOG" ||
			fail "$label: snapd logged armed: the kill came after arming"
	fi
	found=$(find "$SNAPD_DIR" -name "$label.*" -print)
	[ -z "$found" ] || fail "$label: a killed snapshot has a final name: $found"
	for tmp in "$SNAPD_DIR"/.*tmp-*; do
		[ -e "$tmp" ] || continue
		if msg=$("$MEMSNAPCTL_BIN" verify "$tmp" 2>&1); then
			fail "$label: the leftover temporary file $tmp passes memsnapctl verify: $msg"
		fi
		echo "$label: leftover $(basename "$tmp") ($(stat -c %s "$tmp") bytes) rejected: $(echo "$msg" | tail -n 1)"
		leftovers=$((leftovers + 1))
	done
	echo "ok: $label: longest writer gap after the kill $gap us (before it $before us), $writes writes after arming, memory intact, no final file"
	: >"$SNAPD_LOG"
}

hold() {
	echo "--test-hold={\"until\": \"cancel\", \"at\": \"$1\"}"
}
kill_case arming 's["state"] == "arming"' \
    --size 256M --threads 2 --pattern random "$(hold arming)"
kill_case buffer-full 's["state"] == "running" and s["buffer-full-waits"] > 0 and s["buffer-used"] >= s["buffer-size"]' \
    --size 256M --threads 2 --pattern random --buffer 64K "$(hold armed)"
kill_case mid-sweep 's["state"] == "running" and 0.2 <= s["pages-saved"] / s["pages-total"] <= 0.9' \
    --size 256M --threads 2 --pattern mixed --buffer 4M "$(hold half-swept)"
kill_case finishing 's["state"] == "finishing" and s["pages-saved"] + s["pages-lost"] >= s["pages-total"]' \
    --size 64M --threads 1 --pattern sequential --untouched 50 "$(hold finishing)"

# A restarted snapd removes the partial files its killed predecessors left.
if [ "$leftovers" -gt 0 ]; then
	: >"$SNAPD_LOG"
	snapd_start
	left=$(find "$SNAPD_DIR" -name '.*tmp-*' -print)
	[ -z "$left" ] || fail "a restarted snapd left partial snapshots: $left"
	grep -q "removed the partial snapshot" "$SNAPD_LOG" ||
		fail "a restarted snapd did not say it removed partial snapshots"
	echo "ok: a restarted snapd removed $leftovers partial snapshots"
	snapd_stop
fi
