#!/bin/bash
# The disk under a snapshot: slow, then full.
#
# Slow disk: the writer is made slow with zstd level 19 (the writer thread
# compresses, so a slow compressor is a slow sink seen from the buffer;
# pressure_level 0 keeps it at 19 when the buffer fills).  A
# throttled block device would be closer to a slow disk, but this machine
# has neither dm-delay (no kernel modules) nor an io controller in its
# cgroup v2 hierarchy, and cgroup v1 blkio throttling does not see buffered
# writes.  With an 8 MiB buffer and two random writers on 64 MiB:
#   - back-pressure works: faults wait for a free slot (buffer-full-waits
#     > 0; snapd's test hook holds the writer until that has happened, so
#     the buffer fills on any machine) and the snapshot is still exact;
#   - buffer-peak (SNAPSHOT_COMPLETED and query-snapshots) never exceeds
#     the configured buffer;
#   - snapd's peak RSS (VmHWM, the kernel's high-water mark, so no moment
#     is missed) stays below the buffer plus a fixed 48 MiB working set,
#     plus the shared libraries' pages resident at start (RssFile: the
#     libraries snapd links, libcurl's TLS stack among them, are not
#     memory a snapshot takes).
#
# Full disk: the snapshot directory is an 8 MiB tmpfs and the workload is
# 64 MiB of incompressible pages.  The snapshot fails cleanly with "No space
# left on device" in its reason, the partial file is removed (the tmpfs is
# empty again), the workload is unaffected (no live page wrong, never
# blocked for a second), and a small snapshot right after completes there.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "pressure_level 0"
snapd_start

BUFFER=$((8 << 20))
rss_kib() {
	awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SNAPD_PID/status"
}
rss_start=$(rss_kib VmRSS)
rss_files=$(rss_kib RssFile)

out=$T/slow.json
run_snapwork "$out" --size 64M --threads 2 --pattern random --buffer "$BUFFER" \
    --level 19 --name slow --test-hold '{"until": "buffer-full"}' ||
	{ show_snapwork "$out"; fail "slow disk: snapwork did not verify the snapshot"; }
rss_peak=$(rss_kib VmHWM)
waits=$(json_get "$out" buffer-full-waits) || fail "no buffer-full-waits"
peak=$(json_get "$out" buffer-peak) || fail "no buffer-peak"
stall=$(json_get "$out" stall-max-us) || fail "no stall-max-us"
qpeak=$("$MEMSNAPCTL_BIN" --json list | python3 -c '
import json, sys
print([s for s in json.load(sys.stdin) if s["name"] == "slow"][-1]["buffer-peak"])') ||
	fail "query-snapshots has no snapshot named slow"
echo "slow disk: $waits buffer-full waits, longest fault held $stall us; buffer peak $peak (query-snapshots $qpeak) of $BUFFER bytes"
echo "slow disk: snapd VmRSS $rss_start KiB at start ($rss_files KiB of it its files' pages), peak (VmHWM) $rss_peak KiB"
[ "$waits" -gt 0 ] || fail "slow disk: the buffer never filled (buffer-full-waits 0): back-pressure was not exercised"
[ "$peak" -le "$BUFFER" ] || fail "slow disk: buffer peak $peak bytes exceeds the configured $BUFFER"
[ "$qpeak" -le "$BUFFER" ] || fail "slow disk: query-snapshots buffer-peak $qpeak exceeds the configured $BUFFER"
limit=$(((BUFFER >> 10) + 48 * 1024 + rss_files))
# ASan keeps freed memory in quarantine and maps shadow memory: RSS says
# nothing about snapd's own bound there (the buffer peak above still does).
if [ -n "${SANITIZE:-}" ]; then
	echo "slow disk: RSS bound not checked in a SANITIZE=$SANITIZE build"
	limit=$((rss_peak + 1))
fi
[ "$rss_peak" -lt "$limit" ] ||
	fail "slow disk: snapd's peak RSS $rss_peak KiB exceeds buffer + 48 MiB + its files' pages ($limit KiB): memory is not bounded by the buffer"
echo "ok: slow disk: back-pressure, buffer peak within the buffer, RSS peak $rss_peak KiB < $limit KiB"
snapd_stop || fail "snapd did not stop cleanly"

# ---- full disk ----
t_tmpfs_snapdir 8m
snapd_start
out=$T/full.json
run_snapwork "$out" --size 64M --threads 2 --pattern random --incompressible \
    --may-fail --name full ||
	{ show_snapwork "$out"; fail "full disk: the workload was hurt (blocked for a second or memory damaged)"; }
completed=$(json_get "$out" completed) || fail "no completed"
reason=$(json_get "$out" error 2>/dev/null) || reason=
gap=$(json_get "$out" writer-gap-max-us) || fail "no writer-gap-max-us"
live=$(json_get "$out" live-wrong-pages) || fail "no live-wrong-pages"
[ "$completed" = false ] || fail "full disk: a 64 MiB incompressible snapshot completed on an 8 MiB tmpfs"
echo "full disk: failed: $reason"
case $reason in
*"No space left on device"*) ;;
*) fail "full disk: the reason does not say No space left on device: $reason" ;;
esac
qreason=$("$MEMSNAPCTL_BIN" --json list | python3 -c '
import json, sys
print([s for s in json.load(sys.stdin) if s["name"] == "full"][-1].get("error", ""))')
case $qreason in
*"No space left on device"*) ;;
*) fail "full disk: query-snapshots does not say No space left on device: $qreason" ;;
esac
[ "$live" -eq 0 ] || fail "full disk: $live live pages damaged"
[ "$gap" -lt 1000000 ] || fail "full disk: a writer made no progress for $gap us"
left=$(find "$SNAPD_DIR" -mindepth 1 -print)
[ -z "$left" ] || fail "full disk: the partial file was not removed: $left"
echo "ok: full disk: clean failure, partial file removed, longest writer gap $gap us, memory intact"

out=$T/small.json
run_snapwork "$out" --size 4M --threads 1 --name small ||
	{ show_snapwork "$out"; fail "full disk: a small snapshot after the failed one did not complete"; }
echo "ok: full disk: a 4 MiB snapshot right after completed on the same tmpfs"
