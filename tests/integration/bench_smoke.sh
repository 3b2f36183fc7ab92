#!/bin/bash
# The benchmark works: `tests/bench.sh --quick` (256 MiB, one run, 4 KiB and
# THP pages) finishes, and the last line it prints is one JSON object with
# every key that scripts and the README read, each a positive finite number,
# plus a per-configuration entry for both page kinds.  A smoke test of the
# benchmark's plumbing, not of snapd's performance: no timing is asserted.
# Then the same for `tests/bench-s3.sh --quick` (a 256 MiB snapshot to S3
# on a one-node Ceph, to disk, and zstd | s3cmd put, one run, about 20 s):
# its last line has every figure, positive, for 256 MiB, the object sizes
# agree, and snapd's upload counted its parts (skipped, with a note, where
# Ceph cannot be installed).
. "$(dirname "$0")/../lib.sh"
t_init
[ -x "$TESTS_BIN/snapbench" ] || fail "$TESTS_BIN/snapbench is missing: build it first (make tests)"

# bench_quick OUT SCRIPT: tests/SCRIPT --quick, its output into OUT; fails
# showing both ends of it unless it exits 0, or 77 (a skip: returns 77).
bench_quick() {
	local out=$1 rc=0
	B=$B bash "$TOP/tests/$2" --quick >"$out" 2>"$out.err" || rc=$?
	[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] && return "$rc"
	echo "--- tests/$2 --quick output (last lines):" >&2
	tail -n 30 "$out" >&2
	echo "--- its messages:" >&2
	tail -n 30 "$out.err" >&2
	fail "tests/$2 --quick exited with status $rc"
}

out=$T/bench.out
bench_quick "$out" bench.sh || skip "$(tail -n 1 "$out")"

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

# ---- tests/bench-s3.sh --quick ---------------------------------------------
[ -x "$TESTS_BIN/holdwork" ] || fail "$TESTS_BIN/holdwork is missing: build it first (make tests)"
out=$T/bench-s3.out
if ! bench_quick "$out" bench-s3.sh; then
	echo "note: tests/bench-s3.sh --quick skipped: $(tail -n 1 "$out")"
	exit 0
fi
python3 - "$out" <<'PYEOF' || { echo "--- its output:" >&2; tail -n 30 "$out" >&2; fail "the last line of tests/bench-s3.sh --quick is not the expected JSON report"; }
import json, math, sys
lines = open(sys.argv[1]).read().splitlines()
try:
    r = json.loads(lines[-1])
except (IndexError, ValueError) as e:
    sys.exit("last line is not JSON (%s)" % e)
if not isinstance(r, dict):
    sys.exit("last line is JSON but not an object")
bad = []
for k in ("disk-s", "s3-s", "zstd-s3cmd-s", "disk-mbps", "s3-mbps", "zstd-s3cmd-mbps",
          "ratio-s3-disk", "ratio-s3-zstd-s3cmd", "disk-bytes", "s3-bytes", "zstd-bytes",
          "disk-duration-s", "s3-duration-s"):
    v = r.get(k)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        bad.append("%s is %r, not a positive number" % (k, v))
if r.get("size") != 256 << 20 or r.get("runs") != 1:
    bad.append("size %r, runs %r: --quick is 256 MiB, one run" % (r.get("size"), r.get("runs")))
if not bad:
    if r["s3-bytes"] != r["disk-bytes"]:
        bad.append("the object has %d bytes, the same snapshot on disk %d" % (r["s3-bytes"], r["disk-bytes"]))
    if not r["zstd-bytes"] < r["size"] * 0.9:
        bad.append("zstd made %d bytes of %d: the memory is not compressible as it should be"
                   % (r["zstd-bytes"], r["size"]))
    u = r.get("upload", {})
    if u.get("bytes-uploaded") != r["s3-bytes"] or not u.get("parts-uploaded", 0) >= 1:
        bad.append("snapd's upload figures %r do not match the object (%d bytes)" % (u, r["s3-bytes"]))
if bad:
    sys.exit("\n".join(bad))
print("ok: bench-s3 --quick: S3/disk %.2f, S3/(zstd+s3cmd) %.2f, %d parts uploaded"
      % (r["ratio-s3-disk"], r["ratio-s3-zstd-s3cmd"], r["upload"]["parts-uploaded"]))
PYEOF
