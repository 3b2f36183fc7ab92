#!/bin/bash
# Eight snapshots at once: eight snapwork processes of 64 MiB each, two
# writer threads apiece (mixed random and sequential), each with a 1 MiB
# buffer, all snapshotting through one snapd at the same time.  Every
# snapshot must complete and hold exactly its own process's memory at its
# own armed instant (0 wrong pages each), and snapd must still be running.
# That they overlap is made a fact, not hoped for: snapd's test hook holds
# each snapshot's writer until all eight have been armed at once, and
# snapd's own figure (query-status snapshots-running-peak) must say 8.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "max_snapshots 16" "compression_threads 1"
snapd_start

N=8
pids=()
for i in $(seq 1 $N); do
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --name "concurrent-$i" \
	    --size 64M --threads 2 --pattern mixed --buffer 1M \
	    --test-hold "{\"until\": \"running\", \"count\": $N}" \
	    >"$T/c$i.json" 2>"$T/c$i.json.err" &
	pids+=($!)
	t_track $!
done
bad=0
for i in $(seq 1 $N); do
	rc=0
	wait "${pids[$((i - 1))]}" || rc=$?
	out=$T/c$i.json
	if [ "$rc" -ne 0 ]; then
		show_snapwork "$out"
		echo "FAIL: concurrent-$i: snapwork failed (exit $rc)" >&2
		bad=$((bad + 1))
		continue
	fi
	echo "concurrent-$i: $(json_get "$out" wrong-pages) wrong pages," \
	    "$(json_get "$out" writes-during-snapshot) writes during," \
	    "$(json_get "$out" pages-faulted) pages faulted," \
	    "$(json_get "$out" buffer-full-waits) buffer-full waits," \
	    "$(json_get "$out" duration-us) us"
done
[ "$bad" -eq 0 ] || fail "$bad of $N concurrent snapshots failed"
snapd_alive || fail "snapd died"
"$MEMSNAPCTL_BIN" --json status >"$T/status.json" || fail "memsnapctl status failed"
peak=$(json_get "$T/status.json" snapshots-running-peak) || fail "no snapshots-running-peak in query-status"
[ "$peak" -eq "$N" ] || fail "snapd says at most $peak snapshots ran at once, not $N: they did not overlap"
echo "ok: $N concurrent snapshots, $peak running at once (snapd's figure), all exact"
