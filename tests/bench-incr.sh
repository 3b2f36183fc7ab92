#!/bin/bash
# `make bench-incr` (and the last section of `make bench`): incremental
# snapshots against the full snapshot they follow, and what tracking writes
# costs the application between snapshots, on the same memory in the same
# run (tests/workload/incrbench.c says how each figure is made).
#
#	tests/bench-incr.sh [--size SIZE] [--runs N] [--window SECONDS]
#
# Default: a 4 GiB region of 4 KiB pages, 1 % and 10 % of its pages written
# between two snapshots, 3 runs, 5 s windows; each run twice, with the
# pages written spread one by one over the region ("scattered", the worst
# case for protecting them again: nearly every 2 MiB holds one) and in runs
# of 256 KiB ("clustered").  Reports medians of the runs
# with their spread (min-max over median, the machine's noise), as ratios:
#   pause, time, size	incremental / full, against the goal of 1.5 x the
#			dirty fraction plus the fixed cost (an incremental
#			with nothing written, over the full: also reported)
#   writes on/off	the writer's writes a second while snapd tracks,
#			over the same writer with nothing tracking (goal 0.95)
# Then armprobe (tests/workload/armprobe.c), without snapd, on the same
# size: the floor under a pause, a whole-region protect against one page
# protected again in every 2 MiB (each with the time the process then needs
# to run again), and their ratio, which no pause for pages written all over
# the region can go below on this machine.
# The last line is one JSON object with every median, by shape, and the
# floor.
. "$(dirname "$0")/lib.sh"

INCRBENCH=${INCRBENCH:-$TESTS_BIN/incrbench}
ARMPROBE=${ARMPROBE:-$TESTS_BIN/armprobe}
size=4G runs=3 window=5

usage() {
	echo "usage: tests/bench-incr.sh [--size SIZE] [--runs N] [--window SECONDS]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--size) [ $# -ge 2 ] || usage; size=$2; shift ;;
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
	--window) [ $# -ge 2 ] || usage; window=$2; shift ;;
	-h|--help) usage ;;
	*) echo "tests/bench-incr.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
for b in "$INCRBENCH" "$ARMPROBE"; do
	[ -x "$b" ] || fail "$b is missing: build it first (make tests)"
done

t_init
ncpu=$(nproc)
snapd_config "buffer_size 64M" "compression_level 3" \
    "compression_threads ${BENCH_COMPRESSION_THREADS:-$ncpu}" "log_level warning"
snapd_start
echo "incremental snapshots: $size of 4 KiB pages, $runs runs, ${window} s writer windows," \
    "$ncpu CPUs, kernel $(uname -r)"
for r in $(seq 1 "$runs"); do
	for shape in scattered clustered; do
		flag=
		[ "$shape" = clustered ] && flag=--clustered
		"$INCRBENCH" --socket "$SNAPD_SOCK" --size "$size" \
		    --window "$window" --run "$r" $flag \
		    >"$T/$shape-$r.json" 2>"$T/$shape-$r.err" ||
			{ cat "$T/$shape-$r.err" >&2; fail "incrbench run $r ($shape) failed"; }
		rm -f "$SNAPD_DIR"/*.zsnap
	done
done
all=()
for shape in scattered clustered; do
python3 - "$T" "$runs" "$shape" <<'EOF' | tee "$T/$shape.summary"
import json, statistics, sys
d, runs, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rs = [json.loads(open("%s/%s-%d.json" % (d, shape, r)).read()) for r in range(1, runs + 1)]
print("pages written: %s" % shape)

def med(f):
    v = sorted(f(r) for r in rs)
    m = statistics.median(v)
    spread = (v[-1] - v[0]) / m if m else 0.0
    return m, spread

out = {"shape": shape, "size": rs[0]["size"], "runs": runs, "window-s": rs[0]["window-s"]}
full = {k: med(lambda r, k=k: r["full"][k]) for k in ("pause-us", "time-us", "bytes")}
none = {k: med(lambda r, k=k: r["incr-none"][k]) for k in ("pause-us", "time-us", "bytes")}
print("full snapshot: pause %.1f ms (spread %.0f%%), time %.2f s (%.0f%%), %.1f MiB" % (
    full["pause-us"][0] / 1e3, full["pause-us"][1] * 100, full["time-us"][0] / 1e6,
    full["time-us"][1] * 100, full["bytes"][0] / 2**20))
print("fixed cost (incremental, nothing written): pause %.2f ms, time %.1f ms, %d bytes" % (
    none["pause-us"][0] / 1e3, none["time-us"][0] / 1e3, none["bytes"][0]))
out["full"] = {k: v[0] for k, v in full.items()}
out["fixed"] = {k: v[0] for k, v in none.items()}
print("%-8s %22s %22s %22s %22s" % ("dirty", "pause incr/full", "time incr/full",
      "size incr/full", "writes on/off"))
for key in sorted(k for k in rs[0] if k.startswith("incr-") and k != "incr-none"):
    pct = int(key.split("-")[1])
    f = pct / 100.0
    row = {}
    for k in ("pause-us", "time-us", "bytes"):
        row[k] = med(lambda r, k=k: r[key][k] / r["full"][k])
    row["writes"] = med(lambda r: r[key]["writes-on"] / r["off-%d" % pct])
    goal = {k: 1.5 * f + none[k][0] / full[k][0] for k in ("pause-us", "time-us", "bytes")}
    cells = []
    for k in ("pause-us", "time-us", "bytes"):
        m, s = row[k]
        cells.append("%.3f (goal %.3f) %s" % (m, goal[k], "ok" if m <= goal[k] else "MISS"))
    m, s = row["writes"]
    cells.append("%.3f (goal 0.95) %s" % (m, "ok" if m >= 0.95 else "MISS"))
    print("%-8s %s" % ("%d %%" % pct, "  ".join(cells)))
    # What the window lost to tracking, over the pages first written in it:
    # the cost of a tracked first write.  A window that the first writes do
    # not fill (ratio near 0) gives only a lower bound.
    w = rs[0]["window-s"]
    cost_us = statistics.median((1 - min(r[key]["writes-on"] / r["off-%d" % pct], 1.0)) * w * 1e6 /
                                r[key]["pages-written"] for r in rs)
    interval = 20 * cost_us * rs[0][key]["pages-written"] / 1e6
    print("%-8s a tracked first write costs %s%.0f us; writes on/off reaches 0.95 over %s%.0f s between snapshots"
          % ("", ">= " if m < 0.05 else "", cost_us, ">= " if m < 0.05 else "", interval))
    row["first-write-us"] = (cost_us, 0)
    row["interval-s-for-0.95"] = (interval, 0)
    print("%-8s spread: pause %.0f%%, time %.0f%%, size %.0f%%, writes %.0f%%" % ("", row["pause-us"][1] * 100,
          row["time-us"][1] * 100, row["bytes"][1] * 100, row["writes"][1] * 100))
    out[key] = {k: v[0] for k, v in row.items()}
    out[key]["goal"] = goal
print(json.dumps(out))
EOF
	all+=("$(tail -n 1 "$T/$shape.summary")")
done
"$ARMPROBE" --size "$size" --runs 3 >"$T/floor" || fail "armprobe --size $size failed"
floor=$(python3 - "$T/floor" <<'EOF'
import json, sys
a = json.loads(open(sys.argv[1]).read().splitlines()[-1])
whole = a["protect_ms"] + a["resume_ms"]
spread = a["spread_protect_ms"] + a["spread_resume_ms"]
a["spread_over_whole"] = spread / whole if whole else 0.0
print("floor without snapd (armprobe, medians of 3): protect all %.1f ms + resume %.1f ms = %.1f ms;"
      % (a["protect_ms"], a["resume_ms"], whole))
print("  one written page in every 2 MiB (%d calls): protect %.1f ms + resume %.1f ms = %.1f ms,"
      % (a["spread_calls"], a["spread_protect_ms"], a["spread_resume_ms"], spread))
print("  %.2f of the whole: the least a pause for pages written all over the region costs here" % a["spread_over_whole"])
print(json.dumps(a))
EOF
) || fail "armprobe's output: $(cat "$T/floor")"
echo "$floor" | sed '$d'
printf '{"scattered": %s, "clustered": %s, "floor": %s}\n' "${all[0]}" "${all[1]}" \
    "$(echo "$floor" | tail -n 1)"
