#!/bin/bash
# Proof 5, the application never hangs because of snapd: snapd is killed
# with SIGKILL during a snapshot, once right after arming and once in the
# middle of its sweep.  snapwork keeps writing throughout and, once snapd is
# gone, must never be blocked for a second (the kernel drops every
# protection when the uffd's last fd closes; --after-loss 2: it keeps
# writing two seconds after it sees snapd gone, and only that is judged),
# its memory must be intact, and no file may appear under a final snapshot
# name.  snapd's test hook holds the writer in the stage named (right after
# the armed reply; half-way through the sweep) until snapd dies, so the
# kill lands there on any machine; meanwhile the 4 MiB buffer fills and
# faulting writes wait for a slot, as they must: how long is printed
# (writer-gap-before-loss-us), not judged, since it is the time the poller
# takes to see the stage and kill.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
SNAPWORK_PID=

# run_killed LABEL AT EXPR: start a snapshot held at AT, kill snapd once
# snapwork says "armed" and query-snapshots shows EXPR, and check the
# outcome.
run_killed() {
	local label=$1 at=$2 expr=$3 out=$T/kill-$1.json n rc=0 found
	snapd_start
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --expect-fail --size 256M \
	    --threads 4 --pattern mixed --buffer 4M --run-after 60 \
	    --after-loss 2 \
	    --test-hold "{\"until\": \"cancel\", \"at\": \"$at\"}" \
	    --name "killed-$label" >"$out" 2>"$out.err" &
	SNAPWORK_PID=$!
	t_track "$SNAPWORK_PID"
	n=300
	until grep -q '^armed$' "$out" 2>/dev/null; do
		kill -0 "$SNAPWORK_PID" 2>/dev/null ||
			{ show_snapwork "$out"; fail "$label: snapwork exited before arming"; }
		[ "$n" -gt 0 ] || fail "$label: snapwork did not arm within 30 s"
		sleep 0.1
		n=$((n - 1))
	done
	snapd_alive || fail "$label: snapd died on its own before the kill"
	kill_when "killed-$label" "$SNAPD_PID" "$expr" 30 >"$T/$label.poll" ||
		{ cat "$T/$label.poll" >&2; fail "$label: the snapshot never reached the stage to kill in ($expr)"; }
	snapd_kill
	echo "$label: killed snapd when $expr"
	wait "$SNAPWORK_PID" || rc=$?
	[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "$label: snapwork failed (exit $rc): a writer was blocked or memory damaged"; }
	completed=$(json_get "$out" completed) || fail "$label: no report from snapwork"
	[ "$completed" = false ] ||
		fail "$label: the snapshot completed before snapd was killed, so nothing was tested"
	gap=$(json_get "$out" writer-gap-max-us) || fail "$label: no writer-gap-max-us"
	before=$(json_get "$out" writer-gap-before-loss-us) || fail "$label: no writer-gap-before-loss-us"
	live=$(json_get "$out" live-wrong-pages) || fail "$label: no live-wrong-pages"
	writes=$(json_get "$out" writes-during-snapshot) || fail "$label: no writes-during-snapshot"
	[ "$live" -eq 0 ] || fail "$label: $live live pages damaged"
	[ "$gap" -lt 1000000 ] || fail "$label: a writer made no progress for $gap us"
	[ "$writes" -gt 0 ] || fail "$label: no writes after arming: the writers were blocked"
	found=$(find "$SNAPD_DIR" \( -name '*.zsnap' -o -name '*.raw' \) -print)
	[ -z "$found" ] || fail "$label: a killed snapshot is visible under a final name: $found"
	echo "ok: $label: longest writer gap after the kill ${gap} us (before it, waiting on the held snapshot: ${before} us), $writes writes, memory intact, no final file"
}

run_killed at-arm armed 's["state"] == "running"'
run_killed mid-sweep half-swept 's["state"] == "running" and s["pages-saved"] * 2 >= s["pages-total"]'
