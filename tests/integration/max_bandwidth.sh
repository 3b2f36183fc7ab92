#!/bin/bash
# snapshot-start's "max-bandwidth" (memsnapctl save --max-bandwidth) holds
# the writer to the rate, proven from snapd's own figures: a snapshot of a
# running stampwork (32 MiB, writing) at 16 MiB/s takes at least
#	(pages saved x 4096 - the bucket's 10 ms of burst) / rate
# seconds from armed to done (duration-us), however fast the disk is, and
# completes; pages saved on the fault path meanwhile are counted too.
# The limit is checked from below only: no upper time limit is asserted.
# Refused: max-bandwidth below one page a second (InvalidParameter from
# snapd, exit 2 from memsnapctl), and accepted: 0, no limit.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
snapd_config "buffer_size 4M"
snapd_start
snapd_attach_or_skip

rate=$((16 << 20))
stampwork_start sw --size 32M --threads 2 --pace-us 50
"$MEMSNAPCTL_BIN" -j save --pid "$STAMP_PID" --name limited --max-bandwidth 16M \
    >"$T/limited.out" 2>"$T/limited.err" ||
	fail "save --max-bandwidth 16M failed: $(cat "$T/limited.err")"
tail -n 1 "$T/limited.out" >"$T/limited.final"
[ "$(json_get "$T/limited.final" state)" = completed ] ||
	fail "the limited snapshot did not complete: $(cat "$T/limited.final")"
python3 - "$T/limited.final" "$rate" <<'PYEOF' || fail "the snapshot was faster than max-bandwidth allows"
import json, sys
o = json.load(open(sys.argv[1]))
rate = int(sys.argv[2])
pages = o["pages-total"] - o["pages-lost"]
floor_us = (pages * 4096 - rate // 100) / rate * 1e6
print("ok: %d pages (%d on the fault path) in %.2f s at max-bandwidth %d B/s: "
      "%.2f MiB/s, at least %.2f s allowed" % (pages, o["pages-faulted"],
      o["duration-us"] / 1e6, rate, pages * 4096 / o["duration-us"] * 1e6 / (1 << 20),
      floor_us / 1e6))
sys.exit(0 if o["duration-us"] >= floor_us else 1)
PYEOF

# No limit (0) is accepted; below a page a second is refused.
"$MEMSNAPCTL_BIN" -j save --pid "$STAMP_PID" --name unlimited --max-bandwidth 0 \
    >"$T/unlimited.out" 2>"$T/unlimited.err" ||
	fail "save --max-bandwidth 0 failed: $(cat "$T/unlimited.err")"
[ "$(tail -n 1 "$T/unlimited.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = completed ] ||
	fail "the unlimited snapshot did not complete"
echo "ok: max-bandwidth 0 is no limit"
out=$("$MEMSNAPCTL_BIN" qmp "{\"execute\": \"snapshot-start\", \"arguments\": {\"pid\": $STAMP_PID, \"max-bandwidth\": 4095}}" 2>&1) &&
	fail "max-bandwidth 4095 was accepted: $out"
case $out in *InvalidParameter*|*"max-bandwidth must be"*) ;; *) fail "max-bandwidth 4095: not InvalidParameter: $out" ;; esac
rc=0
out=$("$MEMSNAPCTL_BIN" save --pid "$STAMP_PID" --max-bandwidth 1K 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "save --max-bandwidth 1K: exit $rc, expected 2: $out"
case $out in *"--max-bandwidth is bytes a second"*) ;; *) fail "save --max-bandwidth 1K: $out" ;; esac
echo "ok: below one page a second is refused, by snapd and by memsnapctl"
