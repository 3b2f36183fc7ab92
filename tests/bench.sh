#!/bin/bash
# `make bench`: measure snapd against fork(), zstd and dd on the same memory.
#
#	tests/bench.sh [--quick] [--size SIZE]... [--runs N] [--window SECONDS]
#
# Starts a throwaway snapd (tests/lib.sh) on a private socket and snapshot
# directory, then runs snapbench (tests/workload/snapbench.c) once per
# memory size and page kind: 1 GiB and 4 GiB (--size adds more, e.g.
# --size 8G), each with 4 KiB pages and with transparent huge pages.  Each
# snapbench run measures, --runs times, the pause to arm against fork()
# (pre-armed, a random writer busy until snap_start() returns, and in one
# step); for a random and a sequential writer the latency of the first
# writes that fault (snapd: the page is still uffd-wp; fork: still shared
# with the child, a copy-on-write fault, both read from the page's
# /proc/self/pagemap entry before the store), the fraction of first writes
# that fault, and the writer's throughput with that check's time taken
# out; the idle snapshot's wall time against `zstd -T0` and `dd`; and the
# peak extra memory against fork's copy-on-write growth; and reports
# medians.  fork's tests run before and again after snapd's in every run:
# its ratios are against the median of both samples, and "fork noise" is
# the largest spread between them, the machine's noise that no ratio here
# is more precise than (snapbench.c's header says how each figure is made).
# After each snapbench run, armprobe (tests/workload/armprobe.c) measures
# the floor under the one-step pause on the same size and page kind with no
# snapd at all: another process write-protecting the memory through its
# userfaultfd, plus the time the process then needs to run again, against
# fork() ("its floor / fork").
#
# --quick is the smoke run: 256 MiB, one run, both page kinds.
# --runs N sets the runs per size; by default snapbench's own (5 below
# 1 GiB, 3 from 1 GiB), except that sizes above 1 GiB run once, so that
# the whole benchmark stays within about ten minutes on two CPUs.
# --window S stops each first-write test after S seconds (default: none up
# to 1 GiB; 4 s above, for the same reason).  A write test otherwise ends
# when the snapshot does or when the writer has written every page.
#
# Output: each run's table, then a summary table, then as the very last
# line one JSON object: the 1 GiB 4 KiB run's figures at the top level
# (the first size when 1 GiB is not measured) with, under "configs", every
# run's figures keyed "SIZE-KIND".  Ratios are snapd / alternative of
# medians from the same run; the summary's fault fractions are percent.
. "$(dirname "$0")/lib.sh"

SNAPBENCH=${SNAPBENCH:-$TESTS_BIN/snapbench}
ARMPROBE=${ARMPROBE:-$TESTS_BIN/armprobe}
extra=()
runs=
window=
quick=

usage() {
	echo "usage: tests/bench.sh [--quick] [--size SIZE]... [--runs N] [--window SECONDS]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--size) [ $# -ge 2 ] || usage; extra+=("$2"); shift ;;
	--size=*) extra+=("${1#--size=}") ;;
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
	--runs=*) runs=${1#--runs=} ;;
	--window) [ $# -ge 2 ] || usage; window=$2; shift ;;
	--window=*) window=${1#--window=} ;;
	-h|--help) usage ;;
	*) echo "tests/bench.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
if [ -n "$quick" ]; then
	sizes=(256M "${extra[@]}")
	runs=${runs:-1}
else
	sizes=(1G 4G "${extra[@]}")
fi
[ -x "$SNAPBENCH" ] || fail "$SNAPBENCH is missing: build it first (make tests)"
[ -x "$ARMPROBE" ] || fail "$ARMPROBE is missing: build it first (make tests)"
command -v zstd >/dev/null || fail "zstd is needed for the throughput comparison (apt-get install zstd)"
command -v dd >/dev/null || fail "dd is needed for the throughput comparison"

# Bytes of a size argument, for the memory check and the window default.
size_bytes() {
	python3 -c '
import re, sys
m = re.fullmatch(r"(\d+)([KMGT]?)(i?B)?", sys.argv[1], re.I)
if not m:
    sys.exit("tests/bench.sh: --size %s: not a size (BYTES with K, M, G or T)" % sys.argv[1])
print(int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()])
' "$1"
}

t_init
started=$(date +%s)
ncpu=$(nproc)
# The configuration under test: the shipped defaults, with zstd worker
# threads on every CPU as `zstd -T0` uses.
snapd_config "buffer_size 64M" "compression_level 3" \
    "compression_threads ${BENCH_COMPRESSION_THREADS:-$ncpu}" "log_level warning"
snapd_start
echo "snapd $SNAPD_BIN, socket $SNAPD_SOCK, configuration:"
grep -v '^#' "$SNAPD_CONF" | sed 's/^/    /'
echo "machine: $ncpu CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), THP $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
echo

results=()
for size in "${sizes[@]}"; do
	bytes=$(size_bytes "$size") || exit 2
	avail=$(( $(awk '/MemAvailable/ { print $2 }' /proc/meminfo) * 1024 ))
	# The memory, the fork test's copies and the image in the page cache.
	if [ "$avail" -lt $((bytes * 3)) ]; then
		echo "skipping $size: it needs about 3 x $size of available memory ($((avail >> 20)) MiB available)"
		continue
	fi
	w=$window r=$runs
	if [ "$bytes" -gt $((1 << 30)) ]; then
		[ -n "$w" ] || w=4
		[ -n "$r" ] || r=1
	fi
	for kind in 4k thp; do
		args=(--socket "$SNAPD_SOCK" --tmpdir "$T" --size "$size" --window "${w:-0}")
		[ "$kind" = thp ] && args+=(--thp)
		[ -n "$r" ] && args+=(--runs "$r")
		out=$T/bench-$size-$kind.out
		echo "=== $size, $kind pages: snapbench ${args[*]}"
		rc=0
		"$SNAPBENCH" "${args[@]}" >"$out" 2>"$out.err" || rc=$?
		sed 's/^snapbench: //' "$out.err"
		if [ "$rc" -ne 0 ] || ! tail -n 1 "$out" | grep -q '^{'; then
			cat "$out"
			fail "snapbench $size $kind failed (exit $rc)"
		fi
		sed '$d' "$out"
		echo
		snapd_alive || fail "snapd died during the $size $kind run"
		# The floor under the one-step pause, without snapd.
		aargs=(--size "$size" --runs 3)
		[ "$kind" = thp ] && aargs+=(--thp)
		"$ARMPROBE" "${aargs[@]}" >"$out.arm" ||
			fail "armprobe $size $kind failed"
		echo "one-step arm floor (armprobe): $(head -n 1 "$out.arm")"
		echo
		results+=("$size-$kind" "$out")
	done
done
[ ${#results[@]} -gt 0 ] || fail "no size could be measured"

snapd_stop || fail "snapd did not stop cleanly (exit $?)"
echo "benchmark took $(($(date +%s) - started)) s; load average during it: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "${results[@]}" <<'PYEOF'
import json, sys

args = sys.argv[1:]
configs = {}
for key, path in zip(args[0::2], args[1::2]):
    with open(path) as f:
        configs[key] = json.loads(f.read().splitlines()[-1])
    with open(path + ".arm") as f:
        arm = json.loads(f.read().splitlines()[-1])
    floor = arm["protect_ms"] + arm["resume_ms"]
    configs[key].update({"arm_floor_protect_ms": arm["protect_ms"],
                         "arm_floor_resume_ms": arm["resume_ms"],
                         "arm_floor_fork_ms": arm["fork_ms"],
                         "arm_floor_ratio": floor / arm["fork_ms"]})

# (label, key, target, scale): scale 100 shows a fraction in percent.
rows = [
    ("pause / fork (pre-armed)", "pause_ratio", "<= 0.5", 1),
    ("pause / fork (in one step)", "pause_ratio_direct", "<= 0.8", 1),
    ("  its floor / fork (armprobe)", "arm_floor_ratio", "", 1),
    ("  floor: protect, ms", "arm_floor_protect_ms", "", 1),
    ("  floor: resume after it, ms", "arm_floor_resume_ms", "", 1),
    ("random faulting write p50 / fork COW", "stall_fault_p50_ratio_random", "<= 1.5", 1),
    ("random faulting write p99 / fork COW", "stall_fault_p99_ratio_random", "", 1),
    ("random faulting write p50, us", "stall_fault_p50_us_random", "", 1),
    ("random fork COW fault p50, us", "fork_stall_fault_p50_us_random", "", 1),
    ("random writes faulted, % (snapd)", "fault_fraction_random", "", 100),
    ("random writes faulted, % (fork)", "fork_fault_fraction_random", "", 100),
    ("sequential faulting write p50 / COW", "stall_fault_p50_ratio_sequential", "", 1),
    ("sequential writes faulted, % (snapd)", "fault_fraction_sequential", "", 100),
    ("sequential writes faulted, % (fork)", "fork_fault_fraction_sequential", "", 100),
    ("random writer pages/s / fork", "throughput_ratio_random", "", 1),
    ("sequential writer pages/s / fork", "throughput_ratio_sequential", ">= 1", 1),
    ("fork noise: largest spread, %", "fork_noise_spread_pct_max", "", 1),
    ("idle snapshot time / zstd -T0", "idle_time_ratio_zstd", "<= 1.2", 1),
    ("idle snapshot time / dd", "idle_time_ratio_dd", "", 1),
    ("peak extra MiB (snapd)", "peak_extra_mib", "<= buffer+32", 1),
    ("peak extra MiB (fork COW)", "fork_peak_extra_mib", "", 1),
    ("buffer MiB", "buffer_mib", "", 1),
]
keys = list(configs)
print("summary (snapd / alternative, medians; lower is better unless noted)")
print("%-38s" % "" + "".join("%14s" % k for k in keys) + "   target")
print("%-38s" % "runs (medians of)" + "".join("%14s" % configs[k].get("runs", "-") for k in keys))
def cell(v, scale):
    return "%14.3f" % (v * scale) if isinstance(v, (int, float)) else "%14s" % "-"
for label, key, target, scale in rows:
    print("%-38s" % label + "".join(cell(configs[k].get(key), scale) for k in keys) + "   " + target)
print()

top = None
for k in keys:
    if k.startswith("1G-4k"):
        top = k
if top is None:
    top = keys[0]
out = dict(configs[top])
out["config"] = top
out["configs"] = configs
print(json.dumps(out, sort_keys=True, separators=(",", ":")))
PYEOF
