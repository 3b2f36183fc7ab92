#!/bin/bash
# The test hooks (snapd(8), TEST HOOKS) are off unless snapd was started
# with SNAPD_TEST_HOOKS=1: without it a snapshot-start carrying "test-hold"
# and the test-release command are refused with a message that says why,
# and nothing is armed.  With it,
# a malformed hold is refused the same way.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config

# start_refused LABEL HOLD PATTERN: snapwork's start must be refused with
# a message matching PATTERN.
start_refused() {
	local label=$1 hold=$2 pattern=$3 out=$T/$1.json rc=0
	run_snapwork "$out" --size 4M --threads 1 --name "$label" \
	    --test-hold "$hold" || rc=$?
	[ "$rc" -ne 0 ] || fail "$label: a snapshot with test-hold $hold was accepted"
	grep -q "$pattern" "$out.err" ||
		fail "$label: the refusal does not say '$pattern': $(cat "$out.err")"
	[ -z "$(find "$SNAPD_DIR" -name "$label*")" ] ||
		fail "$label: a refused snapshot left a file"
	echo "ok: $label: refused: $(tail -n 1 "$out.err")"
}

SNAPD_TEST_HOOKS=0 snapd_start
grep -q "test hooks are enabled" "$SNAPD_LOG" && fail "snapd says test hooks are enabled with SNAPD_TEST_HOOKS=0"
start_refused off '{"until": "cancel"}' "not started with SNAPD_TEST_HOOKS=1"
out=$("$MEMSNAPCTL_BIN" qmp '{"execute": "test-release", "arguments": {"id": 1}}' 2>&1) &&
	fail "test-release was accepted without SNAPD_TEST_HOOKS=1: $out"
case $out in *SNAPD_TEST_HOOKS=1*) ;; *) fail "the refused test-release does not say why: $out" ;; esac
echo "ok: test-release refused: $out"
snapd_stop || fail "snapd did not stop cleanly"

snapd_start
grep -q "test hooks are enabled" "$SNAPD_LOG" || fail "snapd does not warn that test hooks are enabled"
start_refused bad-until '{"until": "never"}' '"until" must be'
start_refused bad-at '{"until": "cancel", "at": "nowhere"}' '"at" must be'
start_refused bad-member '{"until": "cancel", "sleep": 5}' "unknown member"
start_refused bad-count '{"until": "running", "count": 0}' "count"
out=$T/on.json
run_snapwork "$out" --size 4M --threads 1 --name on \
    --test-hold '{"until": "buffer-full"}' --buffer 64K ||
	{ show_snapwork "$out"; fail "a snapshot held until its buffer filled did not verify"; }
[ "$(json_get "$out" buffer-full-waits)" -gt 0 ] || fail "held until buffer-full, yet no fault waited"
echo "ok: with SNAPD_TEST_HOOKS=1 a held snapshot completes exactly"

# A failed snapshot reports its error in query-snapshots at every moment,
# also between the engine's final state and the main thread learning it is
# done (a fresh-clone run once caught a "failed" entry without "error").
# The moment is made to last: the writer is held at "done" until released.
# The failure is certain: 64 MiB of incompressible pages into an 8 MiB
# tmpfs (ENOSPC).
snapd_stop || fail "snapd did not stop cleanly"
t_tmpfs_snapdir 8m
snapd_start
out=$T/done.json
"$SNAPWORK" --socket "$SNAPD_SOCK" --json --name done --size 64M --threads 1 \
    --incompressible --may-fail --test-hold '{"until": "release", "at": "done"}' \
    >"$out" 2>"$out.err" &
work=$!
t_track "$work"
python3 - "$SNAPD_SOCK" <<'PYEOF' || fail "a failed snapshot held at done (see above)"
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
def run(cmd, i):
    f.write(json.dumps(dict(cmd, id=i)).encode() + b"\n")
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            return m
f.readline()
run({"execute": "qmp_capabilities"}, 0)
end, n, snap = time.monotonic() + 60, 0, None
while time.monotonic() < end:
    n += 1
    found = [x for x in run({"execute": "query-snapshots"}, n)["return"] if x["name"] == "done"]
    if found and found[-1]["state"] in ("failed", "cancelled", "completed"):
        snap = found[-1]
        break
    time.sleep(0.01)
if snap is None:
    sys.exit("FAILED: the snapshot never reached a final state")
print("held at done: state %s, error %r" % (snap["state"], snap.get("error")))
if snap["state"] != "failed" or "No space left on device" not in snap.get("error", ""):
    sys.exit("FAILED: a failed snapshot's entry lacks its error: %r" % snap)
r = run({"execute": "test-release", "arguments": {"id": snap["id"]}}, n + 1)
if "return" not in r:
    sys.exit("FAILED: test-release: %r" % r)
PYEOF
rc=0
wait "$work" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "the workload of the failed snapshot was hurt (exit $rc)"; }
[ "$(json_get "$out" completed)" = false ] || fail "64 MiB incompressible completed on an 8 MiB tmpfs"
echo "ok: a failed snapshot shows its error while its end is held back"
