#!/bin/bash
# The control protocol, end to end, against the real daemon: greeting,
# capabilities negotiation, every query, id echo, and abuse (unknown
# commands, malformed and non-object JSON, unknown members, oversized
# messages, a client stalling mid-message, too many connections).  After
# the abuse the daemon must still serve a fresh client.  Also "snapd -n" on
# good and bad configurations, and a clean exit on SIGTERM.
#
# Starts its own daemon ($SNAPD_BIN, default build/snapd) on its own socket
# with a throwaway configuration in a mktemp -d directory; talks to it with
# socat.  Exit 0 pass, 77 skip, 1 fail.
set -u
cd "$(dirname "$0")/../.."
SNAPD_BIN=${SNAPD_BIN:-$PWD/build/snapd}

command -v socat >/dev/null || { echo "socat is not installed"; exit 77; }
[ -x "$SNAPD_BIN" ] || { echo "FAIL: no daemon at $SNAPD_BIN"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (userfaultfd, socket ownership)"; exit 77; }

dir=$(mktemp -d /tmp/snapd-protocol.XXXXXX)
sock=$dir/snapd.sock
log=$dir/snapd.log
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	echo "--- last daemon log lines:"
	tail -n 20 "$log" 2>/dev/null
	exit 1
}

# expect TEXT LINE STRING...: line LINE of TEXT holds every STRING.
expect() {
	local text=$1 n=$2 line
	shift 2
	line=$(printf '%s\n' "$text" | sed -n "${n}p")
	for s in "$@"; do
		case $line in
		*"$s"*) ;;
		*) fail "reply line $n: expected '$s' in: $line" ;;
		esac
	done
}
# refute TEXT LINE STRING: line LINE of TEXT does not hold STRING.
refute() {
	local line
	line=$(printf '%s\n' "$1" | sed -n "${2}p")
	case $line in
	*"$3"*) fail "reply line $2: did not expect '$3' in: $line" ;;
	esac
}
lines() { printf '%s\n' "$1" | grep -c .; }

# session: send stdin to a new connection, print what came back.
session() { socat -t 3 - "UNIX-CONNECT:$sock"; }

cat >"$dir/snapd.conf" <<EOF
# throwaway configuration for tests/integration/protocol.sh
socket "$sock"
snapshot_dir "$dir/snapshots"
max_message_size 1K
client_timeout 2
max_connections_per_uid 4
log_level debug
EOF

# ---- snapd -n ---------------------------------------------------------
out=$("$SNAPD_BIN" -n -c "$dir/snapd.conf" 2>&1) || fail "snapd -n on a good config: $out"
case $out in
*"configuration OK"*) ;;
*) fail "snapd -n did not say configuration OK: $out" ;;
esac
case $out in
*"max_message_size 1K"*"client_timeout 2"*) ;;
*) fail "snapd -n did not print the effective configuration: $out" ;;
esac
# What -n prints is itself a valid configuration.
printf '%s\n' "$out" | grep -v '^configuration OK$' >"$dir/printed.conf"
"$SNAPD_BIN" -n -c "$dir/printed.conf" >/dev/null 2>&1 ||
	fail "the configuration snapd -n printed does not parse"
printf 'format raw\nnosuch 1\ncompression_level 42\n' >"$dir/bad.conf"
out=$("$SNAPD_BIN" -n -c "$dir/bad.conf" 2>&1) && fail "snapd -n accepted a bad config"
case $out in
*"$dir/bad.conf:2: unknown key 'nosuch'"*) ;;
*) fail "snapd -n: no file:line message for an unknown key: $out" ;;
esac
case $out in
*"$dir/bad.conf:3: compression_level 42 out of range (1..19)"*) ;;
*) fail "snapd -n: no file:line message for a range error: $out" ;;
esac
case $out in
*"configuration OK"*) fail "snapd -n said OK on a bad config" ;;
esac
"$SNAPD_BIN" -n -c "$dir/missing.conf" >/dev/null 2>&1 &&
	fail "snapd -n accepted a missing config file"
"$SNAPD_BIN" -V | grep -q '^snapd ' || fail "snapd -V printed no version"

# ---- start the daemon -------------------------------------------------
"$SNAPD_BIN" -c "$dir/snapd.conf" 2>"$log" &
pid=$!
for _ in $(seq 50); do
	[ -S "$sock" ] && break
	kill -0 "$pid" 2>/dev/null || fail "snapd exited at start"
	sleep 0.1
done
[ -S "$sock" ] || fail "no socket at $sock after 5 s"
[ "$(stat -c %a "$sock")" = 660 ] || fail "socket mode is $(stat -c %a "$sock"), not 660"
[ -d "$dir/snapshots" ] || fail "snapshot_dir was not created"

# ---- one session through every command --------------------------------
out=$(session <<'EOF'
{"execute": "query-version", "id": 7}
{"execute": "qmp_capabilities"}
{"execute": "qmp_capabilities"}
{"execute": "query-version", "id": "abc"}
{"execute": "query-status", "id": {"a": [1, 2]}}
{"execute": "query-config", "id": 3}
{"execute": "no-such-command", "id": 4}
{"execute": 
[1, 2, 3]
"just a string"
{"execute": "query-version", "bogus": 1, "id": 5}
{"execute": "query-version", "arguments": [], "id": 6}
{"execute": "query-version", "arguments": {"x": 1}, "id": 8}
{"arguments": {}, "id": 9}
{"execute": "getfd", "arguments": {"fdname": "u"}, "id": 10}
{"execute": "snapshot-start", "arguments": {"uffd": "nosuchfd", "regions": [{"start": 4096, "length": 4096, "name": "r"}]}, "id": 11}
{"execute": "snapshot-start", "arguments": {"uffd": "u"}, "id": 12}
{"execute": "snapshot-cancel", "arguments": {"id": 99}, "id": 13}
{"execute": "query-snapshots", "id": 14}
{"execute": "snapshot-delete", "arguments": {"name": "../../etc/passwd"}, "id": 15}
{"execute": "snapshot-delete", "arguments": {"name": "nothing-here"}, "id": 16}
{"execute": "closefd", "arguments": {"fdname": "u"}, "id": 17}
{"execute": "query-version", "id": null}
EOF
)
[ "$(lines "$out")" -eq 24 ] || fail "expected 24 lines (greeting + 23 replies), got:
$out"
expect "$out" 1 '{"QMP":' '"protocol":2' '"package":"snapd ' '"capabilities":[]' '"features":{'
expect "$out" 2 '"class":"CommandNotFound"' "Expecting capabilities negotiation with 'qmp_capabilities'" '"id":7'
expect "$out" 3 '{"return":{}}'
expect "$out" 4 '"class":"CommandNotFound"'
expect "$out" 5 '"return":{"version":"' '"protocol":2' '"id":"abc"'
expect "$out" 6 '"return":{"version":' '"snapshots-active":0' '"connections":' '"uptime-ms":' '"kernel-features":{' '"id":{"a":[1,2]}'
expect "$out" 7 "\"socket\":\"$sock\"" '"max_message_size":1024' '"client_timeout":2' '"buffer_size":67108864' '"format":"zsnap"' '"id":3'
expect "$out" 8 '"class":"CommandNotFound"' 'no-such-command' '"id":4'
expect "$out" 9 '"class":"ParseError"'
refute "$out" 9 '"id"'
expect "$out" 10 '"class":"ParseError"' 'not a JSON object'
expect "$out" 11 '"class":"ParseError"'
expect "$out" 12 '"class":"InvalidParameter"' "bogus" '"id":5'
expect "$out" 13 '"class":"InvalidParameter"' "arguments" '"id":6'
expect "$out" 14 '"class":"InvalidParameter"' "'x'" '"id":8'
expect "$out" 15 '"class":"InvalidParameter"' "execute" '"id":9'
expect "$out" 16 '"class":"InvalidParameter"' 'descriptor' '"id":10'
expect "$out" 17 '"class":"InvalidParameter"' 'nosuchfd' '"id":11'
expect "$out" 18 '"class":"InvalidParameter"' 'regions' '"id":12'
expect "$out" 19 '"class":"NotFound"' '"id":13'
expect "$out" 20 '{"return":[],"id":14}'
expect "$out" 21 '"class":"InvalidParameter"' '"id":15'
expect "$out" 22 '"class":"NotFound"' '"id":16'
expect "$out" 23 '"class":"NotFound"' '"id":17'
expect "$out" 24 '"return":{"version":' '"id":null'

# ---- oversized messages close the connection ---------------------------
big=$(head -c 2000 /dev/zero | tr '\0' x)
out=$( { printf '{"execute":"qmp_capabilities"}\n{"execute":"query-version","id":"%s"}\n' "$big"
	printf '{"execute":"query-version","id":"after"}\n'; } | session)
[ "$(lines "$out")" -eq 3 ] || fail "oversized message: expected greeting, {} and MessageTooLarge, got:
$out"
expect "$out" 3 '"class":"MessageTooLarge"'
# Without a newline: as soon as the limit is passed.
out=$( { printf '{"execute":"qmp_capabilities"}\n'; head -c 1500 /dev/zero | tr '\0' y; } | session)
[ "$(lines "$out")" -eq 3 ] || fail "oversized partial message: got:
$out"
expect "$out" 3 '"class":"MessageTooLarge"'
# Exactly the limit (1024 bytes with the newline) is fine.
pad=$(head -c $((1024 - 36)) /dev/zero | tr '\0' z)
msg="{\"execute\":\"query-version\",\"id\":\"$pad\"}"
[ $(( ${#msg} + 1 )) -eq 1024 ] || fail "test bug: message is $(( ${#msg} + 1 )) bytes"
out=$(printf '{"execute":"qmp_capabilities"}\n%s\n' "$msg" | session)
expect "$out" 3 '"return":{"version":'
# One byte more is not.
out=$(printf '{"execute":"qmp_capabilities"}\n%s \n' "$msg" | session)
expect "$out" 3 '"class":"MessageTooLarge"'

# ---- a client stalling mid-message is dropped after client_timeout ------
start=$(date +%s)
out=$( { printf '{"execute":"qmp_'; sleep 4; printf 'capabilities"}\n'; } | session 2>/dev/null)
[ "$(lines "$out")" -eq 1 ] || fail "stalled client was answered after the timeout:
$out"
grep -q "sent part of a message and nothing for 2 seconds" "$log" ||
	fail "no log line about dropping the stalled client"

# ---- connections per uid are capped -------------------------------------
bg=()
for i in 1 2 3 4; do
	sleep 3 | socat -t 1 - "UNIX-CONNECT:$sock" >/dev/null &
	bg+=($!)
done
sleep 0.5
out=$(session </dev/null)
expect "$out" 1 '"class":"Busy"' 'too many connections for uid'
for p in "${bg[@]}"; do wait "$p"; done

# ---- the daemon still serves a fresh client ---------------------------
kill -0 "$pid" 2>/dev/null || fail "snapd died during the abuse"
out=$(printf '{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"fresh"}\n' | session)
expect "$out" 1 '{"QMP":'
expect "$out" 2 '{"return":{}}'
expect "$out" 3 '"snapshots-active":0' '"id":"fresh"'

# ---- SIGTERM: clean exit, socket removed --------------------------------
kill -TERM "$pid"
for _ in $(seq 50); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "snapd still running 5 s after SIGTERM"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "snapd exited $rc after SIGTERM"
[ -e "$sock" ] && fail "socket $sock left behind"
# ---- the protocol trace: never appended to another daemon's file ---------
# pids are reused within a test run, and a trace is read per connection id,
# which every daemon counts from 1.  Force the reuse: a shell learns its own
# pid P, the trace directory gets files that daemons with pid P left, and the
# shell then becomes snapd (exec keeps P).
tdir=$dir/trace
mkdir -m 0700 "$tdir" || fail "mkdir $tdir"
mkfifo "$dir/go" || fail "mkfifo $dir/go"
SNAPD_PROTOCOL_TRACE=$tdir sh -c 'echo $$ >"$1"; read -r _ <"$2"; shift 2; exec "$@"' \
    sh "$dir/shell.pid" "$dir/go" "$SNAPD_BIN" -c "$dir/snapd.conf" 2>"$log" &
pid=$!
for _ in $(seq 100); do
	[ -s "$dir/shell.pid" ] && break
	sleep 0.1
done
[ "$(cat "$dir/shell.pid" 2>/dev/null)" = "$pid" ] || fail "the shell did not say its pid"
old0='{"time":1.000000,"pid":'$pid',"conn":1,"dir":"send","msg":{"earlier":0}}'
old1='{"time":2.000000,"pid":'$pid',"conn":1,"dir":"send","msg":{"earlier":1}}'
printf '%s\n' "$old0" >"$tdir/snapd-$pid.trace"
printf '%s\n' "$old1" >"$tdir/snapd-$pid.1.trace"
echo go >"$dir/go"
for _ in $(seq 100); do
	[ -S "$sock" ] && break
	sleep 0.1
done
out=$(printf '{"execute":"qmp_capabilities","id":"traced"}\n' | session)
expect "$out" 2 '"id":"traced"'
[ "$(cat "$tdir/snapd-$pid.trace")" = "$old0" ] ||
	fail "snapd wrote into the trace an earlier daemon with its pid left: $(cat "$tdir/snapd-$pid.trace")"
[ "$(cat "$tdir/snapd-$pid.1.trace")" = "$old1" ] ||
	fail "snapd wrote into snapd-$pid.1.trace, an earlier daemon's"
new=$tdir/snapd-$pid.2.trace
[ -f "$new" ] || fail "no trace snapd-$pid.2.trace; the directory holds: $(ls "$tdir")"
grep -q '"conn":1,"dir":"send","msg":{"QMP":' "$new" || fail "$new lacks the greeting: $(cat "$new")"
grep -q '"id":"traced"' "$new" || fail "$new lacks the traced command: $(cat "$new")"
grep -q "protocol trace: every message goes to $new" "$log" ||
	fail "snapd's log does not name its trace file $new"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "snapd exited $rc after SIGTERM"

echo "protocol: all checks passed"
exit 0
