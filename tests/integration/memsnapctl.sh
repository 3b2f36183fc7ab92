#!/bin/bash
# memsnapctl against a real daemon, every command: status, list, wait, cancel,
# delete, info, verify, export, events, qmp; human output (aligned tables
# and key: value lists), --json parsed with python3; the exit codes of
# memsnapctl(1) (0 ok, 1 failed, 2 usage, 3 unreachable); `wait` drawing a
# progress bar on a terminal (a pty from `script -qc`) and plain lines
# otherwise; and a raw session on the socket with socat (greeting,
# qmp_capabilities, query-status).  Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
command -v socat >/dev/null || skip "socat is not installed"
command -v script >/dev/null || skip "script (util-linux) is not installed"
[ "$(id -u)" -eq 0 ] || skip "needs root (the slow snapshot's userfaultfd)"

snapd_config "compression_threads 1"
snapd_start
ctl() { "$MEMSNAPCTL_BIN" "$@"; }

# expect_rc CODE CMD...: run CMD, its output in $out; fail unless it exits CODE.
expect_rc() {
	local want=$1 rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want; output:
$out"
}

# aligned FILE: the lines of FILE (a header, then rows) form a table whose
# cells line up under the header: each cell starts where its header starts
# (left-aligned) or ends where it ends (right-aligned).
aligned() {
	python3 - "$1" <<'EOF'
import re, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
def cells(l):
    return [(m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", l)]
head = cells(lines[0])
for l in lines[1:]:
    c = cells(l)
    if len(c) != len(head):
        sys.exit("row has %d cells, header %d: %r" % (len(c), len(head), l))
    for (hs, he), (cs, ce) in zip(head, c):
        if cs != hs and ce != he:
            sys.exit("cell at %d..%d not under its header at %d..%d: %r" % (cs, ce, hs, he, l))
EOF
}

# ---- exit codes 2 and 3 ------------------------------------------------------
expect_rc 2 ctl
expect_rc 2 ctl no-such-command
case $out in *"unknown command"*"usage: memsnapctl"*) ;; *) fail "no usage after an unknown command: $out" ;; esac
expect_rc 2 ctl wait
expect_rc 2 ctl status extra
expect_rc 2 ctl --no-such-option status
expect_rc 2 ctl qmp 'not json'
expect_rc 3 ctl -s "$T/nothing.sock" status
case $out in *"cannot reach snapd"*) ;; *) fail "exit 3 without saying why: $out" ;; esac
SNAPD_SOCKET=$T/nothing.sock expect_rc 3 "$MEMSNAPCTL_BIN" list
expect_rc 0 ctl --help
case $out in "usage: memsnapctl"*"exit status"*) ;; *) fail "--help: $out" ;; esac
echo "ok: exit codes 2 (usage) and 3 (unreachable), --help"

# ---- events, followed while everything below happens -------------------------
ctl events >"$T/events.txt" 2>&1 &
ev_plain=$!
t_track "$ev_plain"
ctl --json events >"$T/events.json" 2>&1 &
ev_json=$!
t_track "$ev_json"
sleep 0.5

# ---- status ------------------------------------------------------------------
expect_rc 0 ctl status
for k in version pid uptime snapshots-active connections kernel-features; do
	case $out in *"$k"*) ;; *) fail "status does not show $k: $out" ;; esac
done
# key: value with the values aligned.
printf '%s\n' "$out" | python3 -c '
import sys
cols = {l.index(":") + 1 + len(l[l.index(":") + 1:]) - len(l[l.index(":") + 1:].lstrip()) for l in sys.stdin if ":" in l}
sys.exit(0 if len(cols) == 1 else "values start at columns %s" % sorted(cols))' || fail "status values are not aligned: $out"
expect_rc 0 ctl --json status
printf '%s' "$out" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["snapshots-active"] == 0 and s["pid"] > 0 and "wp-async" in s["kernel-features"], s' ||
	fail "status --json: $out"
echo "ok: status, human (aligned) and --json"

# ---- two snapshots to look at ------------------------------------------------
run_snapwork "$T/w1.json" --size 16M --name w1 || { show_snapwork "$T/w1.json"; fail "snapwork w1"; }
run_snapwork "$T/w2.json" --size 8M --name w2 --format raw || { show_snapwork "$T/w2.json"; fail "snapwork w2"; }

# ---- list ----------------------------------------------------------------------
expect_rc 0 ctl list
printf '%s\n' "$out" >"$T/list.txt"
[ "$(wc -l <"$T/list.txt")" -eq 3 ] || fail "list: expected a header and 2 rows: $out"
head -n 1 "$T/list.txt" | grep -q '^ *ID  *NAME  *STATE' || fail "list header: $out"
aligned "$T/list.txt" || fail "list is not an aligned table:
$out"
expect_rc 0 ctl --json list
printf '%s' "$out" >"$T/list.json"
w1=$(python3 - "$T/list.json" "$SNAPD_DIR" <<'EOF'
import json, sys
l = json.load(open(sys.argv[1]))
by = {s["name"]: s for s in l}
assert by["w1"]["state"] == "completed" and by["w1"]["file"] == sys.argv[2] + "/w1.zsnap", by
assert by["w2"]["format"] == "raw" and by["w2"]["file"] == sys.argv[2] + "/w2.raw", by
print(by["w1"]["id"])
EOF
) || fail "list --json: $out"
echo "ok: list, human (aligned table) and --json"

# ---- info, verify, export ------------------------------------------------------
f=$SNAPD_DIR/w1.zsnap
expect_rc 0 ctl info "$f"
case $out in *"name:"*w1*"pages:"*"4096"*"regions:"*) ;; *) fail "info: $out" ;; esac
printf '%s\n' "$out" | sed -n '/INDEX/,$p' >"$T/regions.txt"
aligned "$T/regions.txt" || fail "info's region table is not aligned:
$out"
expect_rc 0 ctl --json info "$f"
printf '%s' "$out" | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert i["name"] == "w1", i' || fail "info --json: $out"
expect_rc 0 ctl verify "$f"
case $out in *OK*) ;; *) fail "verify: $out" ;; esac
expect_rc 0 ctl --json verify "$f"
printf '%s' "$out" | python3 -c 'import json, sys; json.load(sys.stdin)' || fail "verify --json is not JSON: $out"
cp "$f" "$T/bad.zsnap"
size=$(stat -c %s "$T/bad.zsnap")
printf 'garbage!' | dd of="$T/bad.zsnap" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_rc 1 ctl verify "$T/bad.zsnap"
expect_rc 1 ctl info "$T/nothing.zsnap"
expect_rc 0 ctl export "$f" --raw "$T/exported"
[ -d "$T/exported" ] && [ -n "$(ls "$T/exported")" ] || fail "export wrote nothing into $T/exported"
expect_rc 2 ctl export "$f"
echo "ok: info (aligned, --json), verify (0 on a good file, 1 on a damaged one), export"

# ---- wait on a finished snapshot, delete --------------------------------------
expect_rc 0 ctl wait "$w1"
case $out in *"completed"*) ;; *) fail "wait on a completed snapshot: $out" ;; esac
expect_rc 0 ctl --json wait "$w1"
printf '%s' "$out" | python3 -c '
import json, sys
assert json.load(sys.stdin)["state"] == "completed"' || fail "wait --json: $out"
expect_rc 1 ctl wait 999
expect_rc 2 ctl wait notanumber
expect_rc 1 ctl cancel "$w1"
expect_rc 1 ctl cancel 999
expect_rc 0 ctl delete w2
[ ! -e "$SNAPD_DIR/w2.raw" ] || fail "delete w2 left $SNAPD_DIR/w2.raw"
expect_rc 1 ctl delete w2
expect_rc 1 ctl delete ../etc
echo "ok: wait (finished), cancel and delete with their exit codes"

# ---- wait on a running snapshot: progress bar on a tty, lines otherwise -------
# A snapshot that stays running until cancelled: snapd's test hook holds
# its writer half-way through the sweep (snapd(8), TEST HOOKS).
cat >"$T/slow.py" <<'EOF'
import ctypes, json, mmap, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
f.readline()
s.sendall(b'{"execute":"qmp_capabilities"}\n')
f.readline()
size = 64 << 20
m = mmap.mmap(-1, size)
m.write(os.urandom(size).translate(bytes((b"etaoinshrdlu cmfwy" * 15)[:256])))
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
u = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)     # userfaultfd, x86_64
if u < 0:
    sys.exit("userfaultfd: " + os.strerror(ctypes.get_errno()))
msg = json.dumps({"execute": "getfd", "arguments": {"fdname": "u"}}).encode() + b"\n"
socket.send_fds(s, [msg[:1]], [u])
s.sendall(msg[1:])
os.close(u)
f.readline()
s.sendall(json.dumps({"execute": "snapshot-start", "arguments": {"uffd": "u", "name": "slow",
    "test-hold": {"until": "cancel", "at": "half-swept"},
    "regions": [{"start": addr, "length": size, "name": "mem"}]}}).encode() + b"\n")
while True:
    r = json.loads(f.readline())
    if "event" not in r:
        break
if "return" not in r:
    sys.exit("snapshot-start: %r" % r)
print(r["return"]["id"], flush=True)
# Stay alive (our memory is what is saved) until it is over.
for l in f:
    e = json.loads(l)
    if e.get("event") in ("SNAPSHOT_COMPLETED", "SNAPSHOT_FAILED") and e["data"]["id"] == r["return"]["id"]:
        break
EOF
python3 "$T/slow.py" "$SNAPD_SOCK" >"$T/slow.id" 2>"$T/slow.err" &
slow_pid=$!
t_track "$slow_pid"
for _ in $(seq 100); do [ -s "$T/slow.id" ] && break; sleep 0.1; done
slow=$(cat "$T/slow.id")
[ -n "$slow" ] || fail "the slow snapshot did not start: $(cat "$T/slow.err")"
script -qc "$MEMSNAPCTL_BIN wait $slow" /dev/null >"$T/wait-tty.txt" 2>&1 &
w_tty=$!
ctl wait "$slow" >"$T/wait-plain.txt" 2>&1 &
w_plain=$!
# Progress comes once a second: wait for two updates in each (30 s at most).
for _ in $(seq 300); do
	[ "$(grep -c 'pages' "$T/wait-plain.txt")" -ge 2 ] &&
	    [ "$(tr '\r' '\n' <"$T/wait-tty.txt" | grep -c '^\[[#.]*\] *[0-9]*%')" -ge 2 ] && break
	sleep 0.1
done
expect_rc 0 ctl list
case $out in *slow*running*) ;; *) fail "list does not show the slow snapshot running: $out" ;; esac
expect_rc 0 ctl cancel "$slow"
rc=0; wait "$w_plain" || rc=$?
[ "$rc" -eq 1 ] || fail "wait on a cancelled snapshot exited $rc, not 1: $(cat "$T/wait-plain.txt")"
wait "$w_tty"
wait "$slow_pid"
python3 - "$T/wait-tty.txt" "$T/wait-plain.txt" <<'EOF' || fail "wait's progress output (see above)"
import re, sys
tty = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
plain = open(sys.argv[2], "rb").read().decode("utf-8", "replace")
bars = re.findall(r"\r\[[#.]+\] +\d+%", tty)
if len(bars) < 2:
    sys.exit("FAILED: on a terminal, expected a progress bar redrawn in place (\\r[###...] N%%), got %r" % tty[:400])
if "\r" in plain or "\x1b" in plain or "[#" in plain:
    sys.exit("FAILED: plain output has terminal control or a bar: %r" % plain[:400])
lines = [l for l in plain.splitlines() if re.search(r"\d+/\d+ pages", l)]
if len(lines) < 2:
    sys.exit("FAILED: expected progress as plain lines (N/M pages), got %r" % plain)
if not re.search(r"cancel", plain):
    sys.exit("FAILED: wait did not say the snapshot was cancelled: %r" % plain)
print("ok: wait: %d bar redraws on a tty; %d plain progress lines otherwise" % (len(bars), len(lines)))
EOF

# ---- events --------------------------------------------------------------------
sleep 0.5
kill "$ev_plain" "$ev_json" 2>/dev/null
wait "$ev_plain" "$ev_json" 2>/dev/null
for e in SNAPSHOT_ARMED SNAPSHOT_COMPLETED SNAPSHOT_PROGRESS SNAPSHOT_FAILED; do
	grep -q "$e" "$T/events.txt" || fail "memsnapctl events did not show $e:
$(cat "$T/events.txt")"
done
python3 - "$T/events.json" "$slow" <<'EOF' || fail "memsnapctl --json events (see above)"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = [e["event"] for e in evs]
assert all("timestamp" in e and "data" in e for e in evs), evs
failed = [e for e in evs if e["event"] == "SNAPSHOT_FAILED" and e["data"]["id"] == int(sys.argv[2])]
assert failed and failed[0]["data"]["cancelled"] is True, failed
assert names.count("SNAPSHOT_COMPLETED") >= 2, names
print("ok: events --json: %d events, one JSON object a line" % len(evs))
EOF
echo "ok: events, human and --json"

# ---- qmp -------------------------------------------------------------------------
expect_rc 0 ctl qmp '{"execute": "query-version"}'
printf '%s' "$out" | python3 -c '
import json, sys
assert json.load(sys.stdin)["return"]["protocol"] == 2' || fail "qmp query-version: $out"
expect_rc 1 ctl qmp '{"execute": "no-such-command"}'
case $out in *CommandNotFound*) ;; *) fail "qmp of an unknown command: $out" ;; esac
expect_rc 0 ctl --json qmp '{"execute": "query-snapshots", "id": 5}'
printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert isinstance(r["return"], list), r' || fail "qmp query-snapshots: $out"
echo "ok: qmp"

# ---- a raw session with socat ------------------------------------------------------
out=$(printf '%s\n' '{"execute":"qmp_capabilities","id":"caps"}' \
    '{"execute":"query-status","id":"st"}' | socat -t 2 - "UNIX-CONNECT:$SNAPD_SOCK")
python3 - <<EOF || fail "socat session: $out"
import json
lines = [json.loads(l) for l in '''$out'''.splitlines() if l.strip()]
assert "QMP" in lines[0] and lines[0]["QMP"]["protocol"] == 2, lines[0]
assert lines[1] == {"return": {}, "id": "caps"}, lines[1]
assert lines[2]["id"] == "st" and lines[2]["return"]["snapshots-active"] == 0, lines[2]
EOF
echo "ok: socat session: greeting, qmp_capabilities, query-status"
snapd_alive || fail "snapd is gone"
