#!/bin/bash
# The benchmark works: `tests/bench.sh --quick` (256 MiB, one run, 4 KiB and
# THP pages) finishes, and the last line it prints is one JSON object with
# every key that scripts and the README read, each a positive finite number,
# plus a per-configuration entry for both page kinds.  A smoke test of the
# benchmark's plumbing, not of snapd's performance: no timing is asserted.
. "$(dirname "$0")/../lib.sh"
t_init
[ -x "$TESTS_BIN/snapbench" ] || fail "$TESTS_BIN/snapbench is missing: build it first (make tests)"

out=$T/bench.out
rc=0
B=$B bash "$TOP/tests/bench.sh" --quick >"$out" 2>"$out.err" || rc=$?
if [ "$rc" -eq 77 ]; then
	skip "$(tail -n 1 "$out")"
fi
if [ "$rc" -ne 0 ]; then
	echo "--- tests/bench.sh --quick output (last lines):" >&2
	tail -n 30 "$out" >&2
	echo "--- its messages:" >&2
	tail -n 30 "$out.err" >&2
	fail "tests/bench.sh --quick exited with status $rc"
fi

python3 - "$out" <<'PYEOF' || { echo "--- its output:" >&2; tail -n 40 "$out" >&2; fail "the last line of tests/bench.sh --quick is not the expected JSON report"; }
import json, math, sys

lines = open(sys.argv[1]).read().splitlines()
if not lines:
    sys.exit("tests/bench.sh printed nothing")
try:
    report = json.loads(lines[-1])
except ValueError as e:
    sys.exit("last line is not JSON (%s): %r" % (e, lines[-1][:200]))
if not isinstance(report, dict):
    sys.exit("last line is JSON but not an object: %r" % lines[-1][:200])

required = ["pause_ratio", "stall_p50_ratio_random", "stall_p99_ratio_random",
            "stall_fault_p50_ratio_random", "stall_fault_p99_ratio_random",
            "fault_fraction_random", "fork_fault_fraction_random",
            "throughput_ratio_random", "throughput_ratio_sequential",
            "idle_time_ratio_zstd", "peak_extra_mib", "buffer_mib",
            "size_gib"]

def check(obj, where):
    bad = []
    for key in required:
        if key not in obj:
            bad.append("%s: no key %s" % (where, key))
            continue
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad.append("%s: %s is %r, not a number" % (where, key, v))
        elif not math.isfinite(v) or v <= 0:
            bad.append("%s: %s is %r, not a positive finite number "
                       "(a measurement did not happen)" % (where, key, v))
    return bad

problems = check(report, "top level")
if not problems and abs(report["size_gib"] - 0.25) > 1e-9:
    problems.append("size_gib is %r, but --quick measures 256 MiB (0.25)"
                    % report["size_gib"])
if not problems and report["buffer_mib"] != 64:
    problems.append("buffer_mib is %r, but the benchmark's snapd has a "
                    "64 MiB buffer" % report["buffer_mib"])
configs = report.get("configs")
if not isinstance(configs, dict):
    problems.append("no configs object with the per-run figures")
else:
    for key in ("256M-4k", "256M-thp"):
        if key not in configs:
            problems.append("configs has no %s entry (has %s)"
                            % (key, ", ".join(sorted(configs)) or "none"))
        else:
            problems += check(configs[key], "configs." + key)
if problems:
    sys.exit("\n".join(problems))
print("ok: %d keys; pause_ratio %.3f, stall_fault_p50_ratio_random %.3f, "
      "idle_time_ratio_zstd %.3f, peak_extra_mib %.1f (buffer %.0f MiB)"
      % (len(report), report["pause_ratio"],
         report["stall_fault_p50_ratio_random"],
         report["idle_time_ratio_zstd"], report["peak_extra_mib"],
         report["buffer_mib"]))
PYEOF
