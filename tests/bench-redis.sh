#!/bin/bash
# `make bench-redis` (not in `make check`): snapd's attach against redis's
# own BGSAVE, on the same redis-server, in the same run (issue 12).
#
#	tests/bench-redis.sh [--gib N] [--value-size BYTES] [--buffer BYTES]
#	    [--baseline SECONDS] [--no-snapd]
#
# A private redis-server from Debian (installed when missing; a unix
# socket, no persistence of its own) is filled with at least --gib GiB
# (default 4) of used_memory by redis-benchmark SETs of --value-size bytes
# (default 1000) on random keys, the same key space the load then uses.
# Then, with redis-benchmark running SET/GET (20 clients) and a probe
# timing one GET every 2 ms on its own connection (tests/redisprobe.py),
# three windows:
#   baseline  --baseline seconds (default 5) of load alone;
#   BGSAVE    from BGSAVE until rdb_bgsave_in_progress is 0 again;
#   snapd     `memsnapctl save --pid` of the same redis-server until it
#	      completes (a throwaway snapd, buffer --buffer, default 64M).
# For each: throughput (commands processed per second, from INFO's
# total_commands_processed), the probe's p50/p99/max latency, the longest
# stall (latest_fork_usec for BGSAVE; for snapd the longer of the attach
# reply's pause-us and prearm-pause-us, its two stops when pre-armed),
# the time to finish, and the peak extra memory, sampled from
# /proc every 100 ms: for BGSAVE redis's RSS growth plus the fork child's
# private memory (its copy-on-write); for snapd redis's RSS growth plus
# snapd's peak RSS.  --no-snapd, or a snapd that cannot attach yet,
# measures the BGSAVE half and says why the other is missing.
#
# Output: a table, one JSON line of every figure, and as the very last
# line one JSON object of ratios snapd / BGSAVE (null where not measured):
# max-stall, p50, p99, max-latency, throughput, time-to-finish,
# peak-extra-memory.  The issue's targets: max-stall <= 0.25, p99 <= 1,
# peak extra memory <= buffer + 64 MiB whatever the dataset size.
. "$(dirname "$0")/lib.sh"

GIB=4
VALUE=1000
BUFFER=64M
BASELINE=5
SNAPD=1
while [ $# -gt 0 ]; do
	case $1 in
	--gib) GIB=$2; shift ;;
	--value-size) VALUE=$2; shift ;;
	--buffer) BUFFER=$2; shift ;;
	--baseline) BASELINE=$2; shift ;;
	--no-snapd) SNAPD=0 ;;
	*) echo "usage: tests/bench-redis.sh [--gib N] [--value-size BYTES]" \
	    "[--buffer BYTES] [--baseline SECONDS] [--no-snapd]" >&2; exit 2 ;;
	esac
	shift
done
case $GIB in ''|*[!0-9.]*) echo "--gib: a number of GiB" >&2; exit 2 ;; esac

t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach, and to install redis)"
redis_install_or_skip
target=$(python3 -c "print(int($GIB * (1 << 30)))")
avail=$(awk '/^MemAvailable:/ { print $2 * 1024 }' /proc/meminfo)
# redis, then in the worst case as much again for BGSAVE's copy-on-write.
python3 -c "import sys; sys.exit(0 if $avail > 2.2 * $target else 1)" ||
	fail "$GIB GiB of redis needs about $((2 * ${GIB%.*} + 1)) GiB free for BGSAVE's copy-on-write; $((avail >> 30)) GiB available (try --gib smaller)"

snapd_config "buffer_size $BUFFER"
snapd_start
why_no_snapd=
if [ "$SNAPD" -eq 0 ]; then
	why_no_snapd="--no-snapd"
else
	gone=$(true & echo $!)
	out=$("$MEMSNAPCTL_BIN" qmp "{\"execute\": \"snapshot-start\", \"arguments\": {\"pid\": $gone}}" 2>&1)
	case $out in *"'uffd' is missing"*) why_no_snapd="this snapd cannot attach by pid yet (issue 12)" ;; esac
fi

redis_start "$T/redis"
keys=$(python3 -c "print(int($target / ($VALUE + 80) * 1.1))")
echo "filling redis to $GIB GiB: SETs of $VALUE bytes on $keys random keys"
round=0
while [ "$(redis_info used_memory)" -lt "$target" ]; do
	round=$((round + 1))
	[ "$round" -le 12 ] || fail "redis holds $(redis_info used_memory_human) after 12 rounds of filling"
	redis-benchmark -s "$REDIS_SOCK" -q -t set -n "$keys" -r "$keys" \
	    -d "$VALUE" -P 64 -c 4 >/dev/null 2>&1 || fail "redis-benchmark could not fill redis"
	echo "  round $round: $(redis_info used_memory_human), $(rcli dbsize) keys"
done
dataset=$(redis_info used_memory)

redis-benchmark -s "$REDIS_SOCK" -q -t set,get -n 2000000000 -r "$keys" \
    -d "$VALUE" -c 20 >"$T/benchmark.out" 2>&1 &
BENCH=$!
t_track "$BENCH"
python3 "$REDIS_PY" probe "$REDIS_SOCK" "$T/probe.log" 2 &
PROBE=$!
t_track "$PROBE"
python3 "$REDIS_PY" memwatch "$T/mem.log" "$REDIS_PID" "$SNAPD_PID" &
MEMWATCH=$!
t_track "$MEMWATCH"
sleep 2

now() { python3 "$REDIS_PY" now; }
cmds() { redis_info total_commands_processed; }

# window NAME T0 T1 C0 C1: note one window; its figures go into
# $T/NAME.json at the end, once the probe has written all its samples.
windows=()
window() {
	windows+=("$*")
}
window_figures() {
	python3 "$REDIS_PY" window "$T/probe.log" "$T/mem.log" "$2" "$3" |
	    python3 -c 'import json, sys
w = json.load(sys.stdin)
w["throughput"] = round((int(sys.argv[2]) - int(sys.argv[1])) / w["seconds"]) if w["seconds"] > 0 else 0
print(json.dumps(w))' "$4" "$5" >"$T/$1.json"
}

# ---- baseline ------------------------------------------------------------------
c0=$(cmds); t0=$(now)
sleep "$BASELINE"
t1=$(now); c1=$(cmds)
window baseline "$t0" "$t1" "$c0" "$c1"

# ---- BGSAVE --------------------------------------------------------------------
c0=$(cmds); t0=$(now)
rcli bgsave >/dev/null || fail "BGSAVE refused"
sleep 0.2
while [ "$(redis_info rdb_bgsave_in_progress)" != 0 ]; do
	sleep 0.2
done
t1=$(now); c1=$(cmds)
[ "$(redis_info rdb_last_bgsave_status)" = ok ] || fail "BGSAVE failed: $(tail -n 3 "$T/redis/redis.log")"
window bgsave "$t0" "$t1" "$c0" "$c1"
fork_us=$(redis_info latest_fork_usec)
rm -f "$T/redis/dump.rdb"
sleep 3

# ---- snapd ---------------------------------------------------------------------
pause_us=
if [ -z "$why_no_snapd" ]; then
	c0=$(cmds); t0=$(now)
	"$MEMSNAPCTL_BIN" -j save --pid "$REDIS_PID" --name bench >"$T/save.out" 2>"$T/save.err" ||
		fail "memsnapctl save failed: $(cat "$T/save.err")"
	t1=$(now); c1=$(cmds)
	head -n 1 "$T/save.out" >"$T/save.armed"
	pause_us=$(json_expr "$T/save.armed" 'max(o["attach"]["pause-us"], o["attach"].get("prearm-pause-us", 0))') || fail "no pause-us in the reply"
	window snapd "$t0" "$t1" "$c0" "$c1"
fi
kill -TERM "$PROBE" "$MEMWATCH" "$BENCH" 2>/dev/null
wait "$PROBE" "$MEMWATCH" 2>/dev/null
wait "$BENCH" 2>/dev/null
for w in "${windows[@]}"; do
	window_figures $w
done

python3 - "$T" "$dataset" "$fork_us" "${pause_us:-}" "$why_no_snapd" <<'EOF'
import json, os, sys
d, dataset, fork_us, pause_us, why = sys.argv[1:6]
def load(name):
    p = os.path.join(d, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
base, bg, sn = load("baseline"), load("bgsave"), load("snapd")
bg["stall-us"] = int(fork_us)
bg["extra-memory-kib"] = bg["target-rss-growth-kib"] + bg["children-private-kib"]
if sn is not None:
    sn["stall-us"] = int(pause_us)
    sn["extra-memory-kib"] = sn["target-rss-growth-kib"] + sn["others-rss-peak-kib"]
rows = [("", "baseline", "BGSAVE", "snapd")]
def fig(w, k):
    return "-" if w is None or k not in w else str(w[k])
for k, label in (("throughput", "throughput (commands/s)"),
                 ("p50-us", "GET latency p50 (us)"),
                 ("p99-us", "GET latency p99 (us)"),
                 ("max-us", "GET latency max (us)"),
                 ("stall-us", "longest stall (us)"),
                 ("seconds", "time to finish (s)"),
                 ("extra-memory-kib", "peak extra memory (KiB)")):
    rows.append((label, fig(base, k), fig(bg, k), fig(sn, k)))
wid = [max(len(r[i]) for r in rows) for i in range(4)]
print("redis-server holding %.2f GiB (used_memory)" % (int(dataset) / (1 << 30)))
for r in rows:
    print("  ".join(r[i].ljust(wid[i]) if i == 0 else r[i].rjust(wid[i]) for i in range(4)))
if sn is None:
    print("snapd: not measured: " + why)
print(json.dumps({"dataset-bytes": int(dataset), "baseline": base,
                  "bgsave": bg, "snapd": sn, "snapd-missing": why or None}))
def ratio(k):
    if sn is None or not bg.get(k):
        return None
    return round(sn[k] / bg[k], 3)
print(json.dumps({"max-stall": ratio("stall-us"), "p50": ratio("p50-us"),
                  "p99": ratio("p99-us"), "max-latency": ratio("max-us"),
                  "throughput": ratio("throughput"),
                  "time-to-finish": ratio("seconds"),
                  "peak-extra-memory": ratio("extra-memory-kib")}))
EOF
