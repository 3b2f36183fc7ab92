#!/bin/bash
# Eight snapshots at once: eight snapwork processes of 64 MiB each, two
# writer threads apiece (mixed random and sequential), each with a 1 MiB
# buffer, all snapshotting through one snapd at the same time.  Every
# snapshot must complete and hold exactly its own process's memory at its
# own armed instant (0 wrong pages each), and snapd must still be running.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "max_snapshots 16" "compression_threads 1"
snapd_start

# Sample how many snapshots snapd runs at once, to prove they overlapped.
(
	while [ ! -e "$T/stop" ]; do
		"$SNAPCTL_BIN" --json status 2>/dev/null | python3 -c '
import json, sys
print(json.load(sys.stdin)["snapshots-active"])' 2>/dev/null
		sleep 0.05
	done
) >"$T/active" &
sampler=$!
t_track $sampler

N=8
pids=()
for i in $(seq 1 $N); do
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --name "concurrent-$i" \
	    --size 64M --threads 2 --pattern mixed --buffer 1M \
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
touch "$T/stop"
wait $sampler
active=$(sort -n "$T/active" | tail -n 1)
[ "$bad" -eq 0 ] || fail "$bad of $N concurrent snapshots failed"
snapd_alive || fail "snapd died"
[ "${active:-0}" -ge 4 ] || fail "at most ${active:-0} snapshots ran at once: they did not overlap"
echo "ok: $N concurrent snapshots, up to $active at once, all exact"
