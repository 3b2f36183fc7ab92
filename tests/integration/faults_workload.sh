#!/bin/bash
# The process being snapshotted is killed (SIGKILL) in the middle of its
# snapshot, once while snapd sweeps (4 MiB buffer) and once while its
# writers wait on a full buffer (64 KiB).  snapd's test hook holds the
# writer there (half-way through the sweep; before its first drain) until
# the snapshot ends, so the kill lands in that stage.  Each time:
#   - the snapshot fails with a reason, in query-snapshots and in the
#     SNAPSHOT_FAILED event an event subscriber receives;
#   - the partial file is removed (nothing of it left in the directory);
#   - snapd keeps serving: a second snapshot right after completes and
#     verifies;
#   - snapd holds as many fds afterwards as before (no uffd, pidfd, file
#     or connection leaked).
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start


# snapshot_field NAME KEY: KEY of the last snapshot named NAME.
snapshot_field() {
	"$MEMSNAPCTL_BIN" --json list | python3 -c '
import json, sys
snaps = [s for s in json.load(sys.stdin) if s.get("name") == sys.argv[1]]
if not snaps:
    sys.exit("no snapshot named " + sys.argv[1])
print(snaps[-1].get(sys.argv[2], ""))' "$1" "$2"
}

fd_count() {
	ls "/proc/$SNAPD_PID/fd" | wc -l
}

events=$T/events.log
"$MEMSNAPCTL_BIN" --json events >"$events" 2>&1 &
t_track $!
sleep 0.5
fds_before=$(fd_count)
echo "snapd $SNAPD_PID holds $fds_before fds before"

# killed_case LABEL EXPR SNAPWORK-ARGS...
killed_case() {
	local label=$1 expr=$2 out=$T/$1.json rc=0 state reason n left
	shift 2
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --name "$label" "$@" \
	    >"$out" 2>"$out.err" &
	pid=$!
	t_track "$pid"
	kill_when "$label" "$pid" "$expr" 30 >"$T/$label.poll" ||
		{ cat "$T/$label.poll" >&2; kill -KILL "$pid"; fail "$label: the snapshot never reached the stage to kill the workload in ($expr)"; }
	wait "$pid" 2>/dev/null
	echo "$label: killed the workload at $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshot"]; print("%d/%d pages saved, buffer %d/%d, %d buffer-full waits" % (s["pages-saved"], s["pages-total"], s["buffer-used"], s["buffer-size"], s["buffer-full-waits"]))' "$T/$label.poll")"

	n=100
	while :; do
		state=$(snapshot_field "$label" state) || fail "$label: query-snapshots: $state"
		[ "$state" = running ] || [ "$state" = arming ] || [ "$state" = finishing ] || break
		[ "$n" -gt 0 ] || fail "$label: the snapshot is still $state 10 s after its process died"
		sleep 0.1
		n=$((n - 1))
	done
	[ "$state" = failed ] || fail "$label: the snapshot of a killed process ended $state, not failed"
	reason=$(snapshot_field "$label" error)
	[ -n "$reason" ] || fail "$label: query-snapshots gives no reason for the failure"
	echo "$label: query-snapshots: failed: $reason"
	echo "$reason" | grep -Eiq 'exit|process|no such' ||
		fail "$label: the reason does not say the process went away: $reason"
	n=50
	until grep -q "SNAPSHOT_FAILED.*\"$label\"" "$events"; do
		[ "$n" -gt 0 ] || { cat "$events" >&2; fail "$label: no SNAPSHOT_FAILED event for the snapshot"; }
		sleep 0.1
		n=$((n - 1))
	done
	grep "SNAPSHOT_FAILED.*\"$label\"" "$events" | grep -q '"error": *"[^"]' ||
		fail "$label: SNAPSHOT_FAILED has no reason: $(grep SNAPSHOT_FAILED "$events")"
	left=$(find "$SNAPD_DIR" -name "*$label*" -print)
	[ -z "$left" ] || fail "$label: the partial file was not removed: $left"
	echo "ok: $label: failed with a reason, event sent, partial file removed"
}

killed_case mid-sweep 's["state"] == "running" and 0.1 <= s["pages-saved"] / s["pages-total"] <= 0.8' \
    --size 256M --threads 2 --pattern mixed --buffer 4M \
    --test-hold '{"until": "cancel", "at": "half-swept"}'
killed_case buffer-full 's["state"] == "running" and s["buffer-full-waits"] > 0 and s["buffer-used"] >= s["buffer-size"]' \
    --size 256M --threads 2 --pattern random --buffer 64K \
    --test-hold '{"until": "cancel"}'

out=$T/after.json
run_snapwork "$out" --size 64M --threads 2 --pattern mixed --buffer 4M --name after ||
	{ show_snapwork "$out"; fail "the snapshot right after the killed ones did not verify"; }
file=$(json_get "$out" file) || fail "no file in snapwork's report"
"$MEMSNAPCTL_BIN" verify "$file" >/dev/null 2>&1 || fail "memsnapctl verify rejected $file"
echo "ok: a snapshot right after completed and verified"

# The events connection is still open; snapwork's connections are closed
# once snapd has seen them go.
n=50
while fds_after=$(fd_count); [ "$fds_after" -ne "$fds_before" ]; do
	[ "$n" -gt 0 ] || { ls -l "/proc/$SNAPD_PID/fd" >&2; fail "snapd holds $fds_after fds after the killed snapshots, $fds_before before: a leak"; }
	sleep 0.1
	n=$((n - 1))
done
echo "ok: snapd holds $fds_after fds after, as before"
snapd_alive || fail "snapd died"
