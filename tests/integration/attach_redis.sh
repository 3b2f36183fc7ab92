#!/bin/bash
# Attach (issue 12) on a program we did not write: Debian's redis-server
# (installed when missing), private to the test (a unix socket in $T, no
# TCP, no persistence), under redis-benchmark SET/GET load all along.
#   - SET a marker key to A (a long random value), `memsnapctl save --pid`
#     with the writer held after the armed reply, and as soon as save
#     prints armed SET it to B; then release.  The snapshot, exported as
#     raw images, holds A and not B: the point in time is the armed
#     instant, for a process that knows nothing of snapd.
#   - Throughout, a probe's GETs (tests/redisprobe.py) all come back: redis
#     never stopped answering for longer than the attach pause allows;
#     afterwards redis still answers, holds every key it had before (a
#     thousand keys with known values and the key count), B is live.
#   - redis is left healthy: not traced, no thread stopped, no userfaultfd.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
redis_install_or_skip
snapd_config "buffer_size 16M" "compression_threads 1"
snapd_start
snapd_attach_or_skip

redis_start "$T/redis"
rnd() { head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
A=snapd-attach-A-$(rnd)
B=snapd-attach-B-$(rnd)

# Known data: a thousand keys with values derived from a random seed, and
# bulk from redis-benchmark.
seed=$(rnd | head -c 16)
for i in $(seq 1 1000); do
	echo "SET known:$i $seed-$i"
done | rcli >/dev/null || fail "cannot fill redis"
redis-benchmark -s "$REDIS_SOCK" -q -t set -n 50000 -r 50000 -d 256 >/dev/null ||
	fail "redis-benchmark could not fill redis"
[ "$(rcli set marker "$A")" = OK ] || fail "SET marker A failed"
keys=$(rcli dbsize)

# Load, and a probe of latency, all along.
redis-benchmark -s "$REDIS_SOCK" -q -t set,get -n 100000000 -r 50000 -d 256 \
    -c 8 >"$T/benchmark.out" 2>&1 &
BENCH=$!
t_track "$BENCH"
python3 "$REDIS_PY" probe "$REDIS_SOCK" "$T/probe.log" 5 &
PROBE=$!
t_track "$PROBE"
sleep 1
t0=$(python3 "$REDIS_PY" now)

save_start redis --pid "$REDIS_PID" --name redis --test-hold '{"until": "release"}'
save_armed redis || fail "memsnapctl save never reported armed"
[ "$(rcli set marker "$B")" = OK ] || fail "SET marker B after armed failed"
id=$(json_get "$T/redis.armed" id)
sleep 1
test_release "$id"
save_finish redis || { cat "$T/redis.save.err" >&2; fail "memsnapctl save failed"; }
sleep 1
t1=$(python3 "$REDIS_PY" now)
kill -TERM "$PROBE"
wait "$PROBE"
kill -TERM "$BENCH" 2>/dev/null
wait "$BENCH" 2>/dev/null
echo "reply: $(cat "$T/redis.armed")"

# Redis answered throughout.
python3 "$REDIS_PY" window "$T/probe.log" - "$t0" "$t1" >"$T/window.json"
echo "probe during the snapshot: $(cat "$T/window.json")"
[ "$(json_get "$T/window.json" failed)" -eq 0 ] || fail "redis did not answer some GETs during the snapshot"
[ "$(json_get "$T/window.json" gets)" -gt 100 ] || fail "too few GETs answered during the snapshot"
pause=$(json_expr "$T/redis.armed" 'o["attach"]["pause-us"]')
gap=$(json_get "$T/window.json" answer-gap-max-us)
# The longest silence may exceed the pause by scheduling on a busy machine,
# not by seconds.
[ "$gap" -lt $((pause + 2000000)) ] ||
	fail "redis was silent for $gap us, the attach pause was $pause us"

# The image holds A, not B.
file=$(json_get "$T/redis.armed" file)
"$MEMSNAPCTL_BIN" verify "$file" >/dev/null || fail "memsnapctl verify refuses $file"
"$MEMSNAPCTL_BIN" export "$file" --raw "$T/redis.raw" || fail "memsnapctl export --raw failed"
python3 "$STAMP_PY" find "$T/redis.raw" "$A" "$B" >"$T/found.json" || fail "cannot search the images"
echo "found in the images: $(cat "$T/found.json")"
[ "$(json_expr "$T/found.json" "o['$A']")" -ge 1 ] || fail "the snapshot does not hold marker A"
[ "$(json_expr "$T/found.json" "o['$B']")" -eq 0 ] || fail "the snapshot holds marker B, written after the armed instant"

# Redis still answers and holds its data.
[ "$(rcli get marker)" = "$B" ] || fail "redis lost the marker: $(rcli get marker)"
[ "$(rcli dbsize)" -ge "$keys" ] || fail "redis had $keys keys, now $(rcli dbsize)"
bad=0
for i in 1 17 500 999 1000; do
	[ "$(rcli get "known:$i")" = "$seed-$i" ] || bad=$((bad + 1))
done
[ "$bad" -eq 0 ] || fail "$bad known keys lost their values"
h=$(python3 "$STAMP_PY" health "$REDIS_PID" 1) || fail "redis-server is not healthy after the snapshot: $h"
echo "ok: marker A in the snapshot, B not; redis answered throughout (longest silence $gap us, pause $pause us), kept its $keys keys, healthy: $h"
