#!/bin/bash
# memsnapctl metrics: snapd's daemon-wide figures in Prometheus's text
# format are valid (promtool check metrics, from Debian's prometheus
# package: missing, the test fails) and say exactly what snapd's own
# per-snapshot figures (query-snapshots) say, for snapshots finished and
# running:
#   - a fresh daemon: snapd_up 1, every counter and histogram 0;
#   - three snapshots, each made to be what it is, not left to timing:
#     "full" with a 64 KiB buffer that the test hook keeps full until a
#     fault has waited for a free slot (buffer-full waits > 0, faults
#     certain), "plain", and "held", held half-way through its sweep until
#     cancelled (its buffer as large as its memory, so its process never
#     waits meanwhile), so it is running while the figures are read and
#     then counts as failed and cancelled;
#   - while "held" runs: 1 running, its buffer's size, the finished ones'
#     counters plus its live figures;
#   - at the end: started 3, completed 2, failed 1, cancelled 1, running 0,
#     bytes, pages saved, faulted, swept, lost, huge pages and buffer-full
#     waits the sums of the three snapshots' figures; the arm histogram
#     counts the 3 arms, each in the bucket its arm-us says, with their sum;
#     the fault-stall histogram counts at least one fault, at most one per
#     page faulted, and its highest non-empty bucket is the one of the
#     largest stall-max-us; buckets cumulative, +Inf equal to _count;
#     counters never went down from the reading while "held" ran;
#   - --output replaces the file atomically (a new inode by rename: a hard
#     link to the old one keeps the old text), mode 0644 under umask 077,
#     no temporary file left; an unwritable destination fails (exit 1)
#     saying why and leaves nothing; snapd unreachable writes snapd_up 0
#     and exits 3;
#   - the shipped memsnap-metrics.service's command line works as is
#     (pointed at this test's socket and directory).
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
command -v promtool >/dev/null ||
	fail "promtool is not installed: it is in Debian's prometheus package (make deps installs it)"

snapd_config "compression_threads 1"
snapd_start
ctl() { "$MEMSNAPCTL_BIN" "$@"; }

# check_prom FILE: promtool finds nothing to say about FILE.
check_prom() {
	promtool check metrics <"$1" >"$T/promtool.out" 2>&1 || {
		cat "$T/promtool.out" >&2
		fail "promtool check metrics on $1 (above); the text:
$(cat "$1")"
	}
	[ -s "$T/promtool.out" ] && { cat "$T/promtool.out" >&2; fail "promtool check metrics has remarks on $1 (above)"; }
	return 0
}

# ---- a fresh daemon -----------------------------------------------------------
ctl metrics >"$T/fresh.prom" || fail "memsnapctl metrics exited $? on a fresh daemon"
check_prom "$T/fresh.prom"
python3 - "$T/fresh.prom" <<'EOF' || fail "the fresh daemon's metrics (above)"
import sys
vals = {}
for l in open(sys.argv[1]):
    if l.startswith("#") or not l.strip():
        continue
    k, v = l.rsplit(" ", 1)
    vals[k] = float(v)
assert vals.pop("snapd_up") == 1, "snapd_up is not 1"
vals.pop("snapd_uptime_seconds")
nonzero = {k: v for k, v in vals.items() if v != 0}
assert not nonzero, "a fresh daemon has non-zero figures: %r" % nonzero
print("ok: fresh daemon: snapd_up 1, %d figures, all 0" % len(vals))
EOF

# ---- two snapshots that complete -------------------------------------------------
run_snapwork "$T/full.json" --size 32M --threads 2 --pattern mixed --buffer 64K \
    --name full --test-hold '{"until": "buffer-full"}' ||
	{ show_snapwork "$T/full.json"; fail "snapwork full"; }
[ "$(json_get "$T/full.json" buffer-full-waits)" -gt 0 ] ||
	{ show_snapwork "$T/full.json"; fail "held until buffer-full, yet no fault waited"; }
run_snapwork "$T/plain.json" --size 8M --threads 1 --name plain ||
	{ show_snapwork "$T/plain.json"; fail "snapwork plain"; }

# ---- one held running until cancelled ---------------------------------------------
# Its buffer holds the whole region: the process never waits on it while
# the writer is held.
"$SNAPWORK" --socket "$SNAPD_SOCK" --json --name held --size 16M --threads 1 \
    --buffer 16M --may-fail --test-hold '{"until": "cancel", "at": "half-swept"}' \
    >"$T/held.json" 2>"$T/held.json.err" &
held_pid=$!
t_track "$held_pid"
held=
for _ in $(seq 300); do
	held=$(ctl --json list | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if x["name"] == "held" and x["state"] == "running"]
print(s[0]["id"] if s else "")')
	[ -n "$held" ] && break
	kill -0 "$held_pid" 2>/dev/null || { show_snapwork "$T/held.json"; fail "snapwork held exited before its snapshot ran"; }
	sleep 0.1
done
[ -n "$held" ] || fail "the held snapshot was not running within 30 s"
ctl metrics >"$T/running.prom" || fail "memsnapctl metrics exited $? while a snapshot ran"
ctl --json list >"$T/running-list.json" || fail "memsnapctl --json list"
check_prom "$T/running.prom"
ctl cancel "$held" || fail "memsnapctl cancel $held"
rc=0
wait "$held_pid" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$T/held.json"; fail "snapwork held exited $rc after the cancel"; }
ctl wait "$held" >/dev/null 2>&1	# 1: it was cancelled; returns once done

# ---- the figures at the end -----------------------------------------------------------
ctl metrics >"$T/end.prom" || fail "memsnapctl metrics exited $?"
ctl --json list >"$T/end-list.json" || fail "memsnapctl --json list"
check_prom "$T/end.prom"
python3 - "$T/running.prom" "$T/running-list.json" "$T/end.prom" "$T/end-list.json" <<'EOF' ||
import json, re, sys

def parse(path):
    vals, types, helps = {}, {}, set()
    for l in open(path):
        l = l.rstrip("\n")
        m = re.match(r"# (HELP|TYPE) (\S+) (.*)", l)
        if m:
            if m.group(1) == "TYPE":
                types[m.group(2)] = m.group(3)
            else:
                helps.add(m.group(2))
            continue
        k, v = l.rsplit(" ", 1)
        vals[k] = float(v)
    assert set(types) == helps, "HELP and TYPE differ: %r" % (set(types) ^ helps)
    for n, t in types.items():
        assert n.startswith("snapd_"), n
        assert (t == "counter") == n.endswith("_total"), "%s is a %s" % (n, t)
    return vals, types

def buckets(vals, name):
    b = []
    for k, v in vals.items():
        m = re.fullmatch(name + r'_bucket\{le="([^"]+)"\}', k)
        if m:
            b.append((float(m.group(1)), v))
    b.sort()
    return b

run, run_types = parse(sys.argv[1])
end, types = parse(sys.argv[3])
snaps = {s["name"]: s for s in json.load(open(sys.argv[4]))}
live = {s["name"]: s for s in json.load(open(sys.argv[2]))}
assert set(snaps) == {"full", "plain", "held"}, snaps.keys()
fin = [snaps["full"], snaps["plain"]]

# While "held" ran.
assert run["snapd_snapshots_running"] == 1, run
assert run["snapd_snapshots_started_total"] == 3, run
assert run["snapd_snapshots_completed_total"] == 2, run
assert run["snapd_snapshots_failed_total"] == 0, run
assert run["snapd_buffer_size_bytes"] == live["held"]["buffer-size"] == 16 << 20, \
    (run["snapd_buffer_size_bytes"], live["held"]["buffer-size"])
for key, name in (("pages-saved", "snapd_pages_saved_total"),
                  ("pages-faulted", "snapd_pages_faulted_total"),
                  ("bytes-written", "snapd_written_bytes_total")):
    done = sum(s[key] for s in fin)
    assert run[name] >= done, (name, run[name], done)
assert run["snapd_arm_pause_seconds_count"] == 3, run

# At the end.
assert end["snapd_up"] == 1
assert snaps["held"]["state"] == "cancelled", snaps["held"]
assert [s["state"] for s in fin] == ["completed", "completed"], fin
want = {"snapd_snapshots_running": 0, "snapd_snapshots_started_total": 3,
        "snapd_snapshots_completed_total": 2, "snapd_snapshots_failed_total": 1,
        "snapd_snapshots_cancelled_total": 1, "snapd_buffer_used_bytes": 0,
        "snapd_buffer_size_bytes": 0}
for key, name in (("bytes-written", "snapd_written_bytes_total"),
                  ("pages-saved", "snapd_pages_saved_total"),
                  ("pages-faulted", "snapd_pages_faulted_total"),
                  ("pages-swept", "snapd_pages_swept_total"),
                  ("pages-lost", "snapd_pages_lost_total"),
                  ("huge-faulted", "snapd_huge_pages_faulted_total"),
                  ("huge-swept", "snapd_huge_pages_swept_total"),
                  ("buffer-full-waits", "snapd_buffer_full_waits_total")):
    want[name] = sum(s[key] for s in snaps.values())
for name, v in want.items():
    assert end[name] == v, "%s is %s; snapd's own figures say %s" % (name, end[name], v)
assert end["snapd_buffer_full_waits_total"] > 0
assert end["snapd_pages_faulted_total"] > 0 and end["snapd_pages_swept_total"] > 0
for s in fin:
    assert s["pages-saved"] == s["pages-faulted"] + s["pages-swept"] == s["pages-total"], s

# Counters only grow.
for name, t in types.items():
    if t == "counter":
        assert end[name] >= run[name], (name, run[name], end[name])

# Histograms: cumulative, monotonic, +Inf == _count.
for h in ("snapd_arm_pause_seconds", "snapd_fault_stall_seconds"):
    assert types[h] == "histogram", types
    b = buckets(end, h)
    assert b[-1][0] == float("inf") and len(b) >= 2, b
    assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), (h, b)
    assert all(b[i][0] < b[i + 1][0] for i in range(len(b) - 1)), (h, b)
    assert b[-1][1] == end[h + "_count"], (h, b, end[h + "_count"])

def bucket_of(bounds, us):
    # bounds in seconds; the index of the first bound >= us microseconds
    for i, le in enumerate(bounds):
        if us <= round(le * 1e6):
            return i
    return len(bounds)

arm = buckets(end, "snapd_arm_pause_seconds")
bounds = [le for le, _ in arm[:-1]]
expect = [0] * len(arm)
for s in snaps.values():
    expect[bucket_of(bounds, s["arm-us"])] += 1
cum = [sum(expect[:i + 1]) for i in range(len(expect))]
assert [c for _, c in arm] == cum, ("arm buckets", arm, "from arm-us", cum)
assert end["snapd_arm_pause_seconds_count"] == 3
assert round(end["snapd_arm_pause_seconds_sum"] * 1e6) == sum(s["arm-us"] for s in snaps.values()), \
    (end["snapd_arm_pause_seconds_sum"], [s["arm-us"] for s in snaps.values()])

stall = buckets(end, "snapd_fault_stall_seconds")
n = end["snapd_fault_stall_seconds_count"]
assert 1 <= n <= end["snapd_pages_faulted_total"], (n, end["snapd_pages_faulted_total"])
counts = [stall[0][1]] + [stall[i][1] - stall[i - 1][1] for i in range(1, len(stall))]
top = max(i for i, c in enumerate(counts) if c > 0)
worst = max(s["stall-max-us"] for s in snaps.values())
assert top == bucket_of(bounds, worst), ("stall buckets", stall, "highest", top, "stall-max-us", worst)
assert end["snapd_fault_stall_seconds_sum"] * 1e6 >= worst

print("ok: 3 snapshots (2 completed, 1 cancelled): %d bytes, %d pages saved (%d faulted, %d swept), "
      "%d buffer-full waits; arm histogram %s; %d fault stalls, the longest %d us in bucket %d"
      % (end["snapd_written_bytes_total"], end["snapd_pages_saved_total"],
         end["snapd_pages_faulted_total"], end["snapd_pages_swept_total"],
         end["snapd_buffer_full_waits_total"], [int(c) for _, c in arm], n, worst, top))
EOF
	fail "the metrics do not say what snapd's own figures say (above)"

# ---- --output: atomic, 0644, nothing left behind ------------------------------------
out=$T/textfile
mkdir "$out" || fail "mkdir $out"
echo "old" >"$out/memsnap.prom"
ln "$out/memsnap.prom" "$T/old-link" || fail "ln"
ino=$(stat -c %i "$out/memsnap.prom")
(umask 077 && ctl metrics --output "$out/memsnap.prom") || fail "metrics --output exited $?"
check_prom "$out/memsnap.prom"
[ "$(stat -c %a "$out/memsnap.prom")" = 644 ] ||
	fail "--output wrote mode $(stat -c %a "$out/memsnap.prom") under umask 077, not 0644"
[ "$(stat -c %i "$out/memsnap.prom")" != "$ino" ] && [ "$(cat "$T/old-link")" = old ] ||
	fail "--output rewrote the file in place instead of renaming a new one over it"
[ "$(ls -A "$out")" = memsnap.prom ] ||
	fail "--output left other files in $out: $(ls -A "$out")"
grep -qx 'snapd_snapshots_completed_total 2' "$out/memsnap.prom" ||
	fail "--output's file does not hold the figures: $(cat "$out/memsnap.prom")"
rc=0
msg=$(ctl metrics --output "$T/no/such/dir/memsnap.prom" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "metrics --output into a missing directory exited $rc, not 1: $msg"
case $msg in *"No such file or directory"*) ;; *) fail "the failure does not say why: $msg" ;; esac
[ ! -e "$T/no" ] || fail "a failed --output created something"
echo "ok: --output: renamed into place, mode 0644, nothing left behind; a bad directory fails saying why"

rc=0
ctl -s "$T/nothing.sock" metrics --output "$out/down.prom" 2>"$T/down.err" || rc=$?
[ "$rc" -eq 3 ] || fail "metrics with snapd unreachable exited $rc, not 3"
check_prom "$out/down.prom"
grep -qx 'snapd_up 0' "$out/down.prom" || fail "snapd unreachable, yet no snapd_up 0: $(cat "$out/down.prom")"
[ "$(grep -vc '^#' "$out/down.prom")" -eq 1 ] || fail "snapd unreachable, yet figures: $(cat "$out/down.prom")"
echo "ok: snapd unreachable: snapd_up 0, exit 3"

# ---- the shipped unit's command line -----------------------------------------------------
cmdline=$(sed -n 's/^ExecStart=memsnapctl //p' "$TOP/systemd/memsnap-metrics.service")
[ -n "$cmdline" ] || fail "memsnap-metrics.service has no ExecStart=memsnapctl line"
# shellcheck disable=SC2086
set -- $cmdline
args=()
while [ $# -gt 0 ]; do
	case $1 in
	-s) args+=(-s "$SNAPD_SOCK"); shift ;;
	--output) args+=(--output "$out/unit.prom"); shift ;;
	*) args+=("$1") ;;
	esac
	shift
done
ctl "${args[@]}" || fail "the unit's command line (memsnapctl ${args[*]}) exited $?"
check_prom "$out/unit.prom"
echo "ok: memsnap-metrics.service's command line: memsnapctl ${args[*]}"

snapd_alive || fail "snapd is gone"
