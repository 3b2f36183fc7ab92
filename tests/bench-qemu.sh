#!/bin/bash
# `make bench-qemu` (not in `make check`): QEMU's own background snapshot
# against `memsnapctl qemu-save`, on the same test guest, in the same run
# (issue 13).
#
#	tests/bench-qemu.sh [--runs N] [--mem SIZE] [--rate BYTES]
#	    [--buffer BYTES] [--window SECONDS]
#
# The guest is tests/guest/ under TCG with --mem of anonymous private RAM
# (default 1G; QEMU's background snapshot needs memory-backend-ram), all
# of it rewritten page after page as fast as the vCPU goes.  Four modes,
# each on a freshly booted guest, --runs times (default 3) in turn:
#   qemu-bg        background-snapshot + migrate to exec:cat > FILE,
#                  max-bandwidth unthrottled;
#   snapd          memsnapctl qemu-save (raw, --buffer-size --buffer, default
#                  256M), no limit;
#   qemu-bg@RATE,  the same, both at --rate bytes a second (default 40M:
#   snapd@RATE     QEMU's max-bandwidth, snapd's max-bandwidth).
# For each: the guest's pages written a second over --window seconds
# (default 3) before the snapshot and during it (its serial port's
# progress lines, sampled every 50 ms), for snapd also until its buffer
# first filled (the first SNAPSHOT_BUFFER_FULL); the time from start to
# completion; the pause (QEMU: query-migrate's downtime; snapd:
# qemu-save's stop-to-cont pause-us); QEMU's peak RSS; the machine's peak
# memory in use (MemTotal - MemAvailable) above what it was just before;
# snapd's buffer-full waits and longest stall.  Measured by
# tests/benchqemu.py.
#
# Output: one table of medians with [min..max] over the runs, one JSON
# line of every measurement, and as the very last line one JSON object of
# ratios snapd / QEMU of the medians.  The issue's targets: at the rate
# limit, the guest's writes until snapd's buffer fills >= 10x its writes
# under QEMU's background snapshot ("writes-until-full@rate"), and
# snapd's pause <= QEMU's downtime ("pause", "pause@rate" <= 1).
. "$(dirname "$0")/lib.sh"

RUNS=3
MEM=1G
RATE=40M
BUFFER=256M
WINDOW=3
usage() {
	echo "usage: tests/bench-qemu.sh [--runs N] [--mem SIZE] [--rate BYTES]" \
	    "[--buffer BYTES] [--window SECONDS]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	--runs) RUNS=$2 ;;
	--mem) MEM=$2 ;;
	--rate) RATE=$2 ;;
	--buffer) BUFFER=$2 ;;
	--window) WINDOW=$2 ;;
	*) usage ;;
	esac
	shift 2
done
case $RUNS in ''|*[!0-9]*|0) echo "--runs: a number of runs" >&2; exit 2 ;; esac
bytes() {
	python3 -c 'import re, sys
m = re.fullmatch(r"(\d+)([KMG]?)", sys.argv[1], re.I)
if not m: sys.exit("not bytes: " + sys.argv[1])
print(int(m[1]) << {"": 0, "k": 10, "m": 20, "g": 30}[m[2].lower()])' "$1" || exit 2
}
rate=$(bytes "$RATE")
[ "$rate" -gt 0 ] || { echo "--rate: more than 0" >&2; exit 2; }
bytes "$BUFFER" >/dev/null

t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach to QEMU)"
qemu_install_or_skip
snapd_config "buffer_size $BUFFER"
snapd_start
snapd_attach_or_skip
BENCH_PY=$TOP/tests/benchqemu.py

echo "guest: $MEM of anonymous RAM, TCG; snapd buffer $BUFFER; rate limit" \
    "$RATE ($rate bytes/s); $RUNS runs"
modes=("qemu-bg 0" "snapd 0" "qemu-bg $rate" "snapd $rate")
for run in $(seq 1 "$RUNS"); do
	for m in "${modes[@]}"; do
		set -- $m
		tag=$1-$2-$run
		d=$T/guest-$tag
		GUEST_MEM=$MEM GUEST_BOOT_WAIT=300 guest_start "$d" anon -append "last=999999999"
		python3 "$BENCH_PY" "$1" "$d" "$T/result-$tag.json" rate="$2" \
		    buffer="$BUFFER" window="$WINDOW" memsnapctl="$MEMSNAPCTL_BIN" \
		    socket="$SNAPD_SOCK" name="bench-$tag" file="$T/qemu-bg-$tag" \
		    2>"$T/$tag.err" || fail "$tag: $(tail -n 3 "$T/$tag.err")"
		guest_stop "$d"
		# 1 GiB a snapshot: keep the disk and the page cache clear.
		rm -rf "$T/qemu-bg-$tag" "$d"
		find "$SNAPD_DIR" -name "bench-$tag*" -prune -exec rm -rf {} +
		echo "run $run: $tag: $(cat "$T/result-$tag.json")"
	done
done

python3 - "$T" "$RUNS" "$rate" "$BUFFER" <<'EOF'
import glob, json, os, statistics, sys
d, runs, rate, buffer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
res = {}
for p in sorted(glob.glob(os.path.join(d, "result-*.json"))):
    r = json.load(open(p))
    key = r["mode"] + ("@rate" if r["rate"] else "")
    res.setdefault(key, []).append(r)
cols = ["qemu-bg", "snapd", "qemu-bg@rate", "snapd@rate"]
def med(col, k):
    v = [r[k] for r in res.get(col, []) if r.get(k) is not None]
    return statistics.median(v) if v else None
def cell(col, k):
    v = [r[k] for r in res.get(col, []) if r.get(k) is not None]
    if not v:
        return "-"
    f = lambda x: ("%.3g" % x) if isinstance(x, float) and abs(x) < 100 else str(round(x))
    return f(statistics.median(v)) + ("" if len(v) == 1 else " [%s..%s]" % (f(min(v)), f(max(v))))
rows = [("", *cols)]
for k, label in (("writes-per-s-before", "guest writes/s before"),
                 ("writes-per-s-during", "guest writes/s during"),
                 ("writes-per-s-until-full", "guest writes/s until buffer full"),
                 ("buffer-full-after-s", "buffer full after (s)"),
                 ("seconds", "time to finish (s)"),
                 ("pause-ms", "pause (ms)"),
                 ("arm-ms", "snapd: of which arming (ms)"),
                 ("qemu-rss-before-kib", "QEMU RSS before (KiB)"),
                 ("qemu-rss-peak-kib", "QEMU RSS peak (KiB)"),
                 ("machine-peak-extra-kib", "machine peak extra (KiB)"),
                 ("buffer-full-waits", "snapd buffer-full waits"),
                 ("stall-max-us", "snapd longest stall (us)"),
                 ("pages-faulted", "snapd pages on the fault path")):
    rows.append((label, *(cell(c, k) for c in cols)))
wid = [max(len(r[i]) for r in rows) for i in range(len(cols) + 1)]
print("medians of %d runs [min..max]; rate limit %d bytes/s; snapd buffer %s" % (runs, rate, buffer))
for r in rows:
    print("  ".join(r[i].ljust(wid[i]) if i == 0 else r[i].rjust(wid[i]) for i in range(len(r))))
print(json.dumps({"rate": rate, "buffer": buffer, "runs": res}))
def ratio(a, ka, b, kb):
    x, y = med(a, ka), med(b, kb)
    return round(x / y, 3) if x is not None and y else None
out = {}
for suffix in ("", "@rate"):
    s, q = "snapd" + suffix, "qemu-bg" + suffix
    out["writes-during" + suffix] = ratio(s, "writes-per-s-during", q, "writes-per-s-during")
    out["writes-until-full" + suffix] = ratio(s, "writes-per-s-until-full", q, "writes-per-s-during")
    out["time-to-finish" + suffix] = ratio(s, "seconds", q, "seconds")
    out["pause" + suffix] = ratio(s, "pause-ms", q, "pause-ms")
    out["qemu-rss-peak" + suffix] = ratio(s, "qemu-rss-peak-kib", q, "qemu-rss-peak-kib")
    out["machine-peak-extra" + suffix] = ratio(s, "machine-peak-extra-kib", q, "machine-peak-extra-kib")
print(json.dumps(out))
EOF
