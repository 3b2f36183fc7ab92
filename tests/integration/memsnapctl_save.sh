#!/bin/bash
# memsnapctl save speaks the attach interface (/work/spec/attach.md) right,
# whether or not this snapd attaches yet: it names a process that has
# exited, so snapd refuses either way and nothing is attached.
#   - every option lands in snapshot-start's arguments as the protocol
#     spells them (pid, maps, name, format, level, buffer-size and
#     max-bandwidth with their K/M/G suffixes worked out, test-hold as an
#     object), and no "uffd": read back
#     from snapd's protocol trace;
#   - snapd's refusal is printed as "memsnapctl: snapshot-start: ..." and
#     save exits 1;
#   - usage errors exit 2 naming what is wrong: no --pid, a pid that is not
#     one, an unknown option, a stray argument, a bad format, level, buffer
#     size, max-bandwidth or test-hold.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
# Our own trace file, unless the run traces into its directory.
[ -n "${SNAPD_TRACE_DIR:-}" ] || export SNAPD_PROTOCOL_TRACE=$T/trace.jsonl
snapd_config
snapd_start

true &
gone=$!
wait "$gone"
name=save-args-$RANDOM$RANDOM
rc=0
out=$("$MEMSNAPCTL_BIN" save --pid "$gone" --maps '[heap],*libc*,7f0000000000-7f0000100000' \
    --name "$name" --format raw --level 7 --buffer-size 8M --max-bandwidth 40M \
    --test-hold '{"until": "release"}' --no-wait 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "memsnapctl save of exited process $gone: exit $rc, expected 1: $out"
case $out in "memsnapctl: snapshot-start: "*) ;; *) fail "save's refusal does not read 'memsnapctl: snapshot-start: ...': $out" ;; esac
echo "ok: refused, exit 1: $out"

python3 - "${SNAPD_TRACE_DIR:-$SNAPD_PROTOCOL_TRACE}" "$name" "$gone" <<'EOF' || fail "snapshot-start's arguments are not what save was given"
import json, os, sys
where, name, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = [os.path.join(where, f) for f in os.listdir(where)] if os.path.isdir(where) else [where]
found = None
for p in files:
    for line in open(p, errors="replace"):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        # Other daemons' traces share the directory: any JSON may be there.
        if not isinstance(m, dict) or not isinstance(m.get("msg"), dict):
            continue
        msg = m["msg"]
        if m.get("dir") == "recv" and msg.get("execute") == "snapshot-start" and \
                isinstance(msg.get("arguments"), dict) and \
                msg["arguments"].get("name") == name:
            found = msg["arguments"]
if found is None:
    sys.exit("no snapshot-start named %s in the trace %s" % (name, where))
want = {"pid": pid, "maps": "[heap],*libc*,7f0000000000-7f0000100000",
        "name": name, "format": "raw", "level": 7,
        "buffer-size": 8 << 20, "max-bandwidth": 40 << 20,
        "test-hold": {"until": "release"}}
print("sent: " + json.dumps(found))
if found != want:
    sys.exit("expected %s" % json.dumps(want))
EOF
echo "ok: every option reached snapshot-start as the protocol spells it, and no uffd"

# usage_case WHY ARGS...: save ARGS is a usage error (exit 2) whose message
# holds WHY.
usage_case() {
	local why=$1 rc=0 out
	shift
	out=$("$MEMSNAPCTL_BIN" save "$@" 2>&1) || rc=$?
	[ "$rc" -eq 2 ] || fail "memsnapctl save $*: exit $rc, expected 2 (usage): $out"
	case $out in *"$why"*) ;; *) fail "memsnapctl save $*: the message does not say '$why': $out" ;; esac
}
usage_case "--pid PID is required" --name x --no-wait
usage_case "not a process id: 0" --pid 0
usage_case "not a process id: abc" --pid abc
usage_case "unknown option" --pid 1 --frobnicate
usage_case "unexpected argument stray" --pid 1 stray
usage_case "--format is zsnap or raw" --pid 1 --format tar
usage_case "--level is 1 to 19" --pid 1 --level 20
usage_case "--buffer-size is bytes" --pid 1 --buffer-size 8X
usage_case "--max-bandwidth is bytes a second" --pid 1 --max-bandwidth 8X
usage_case "--max-bandwidth is bytes a second" --pid 1 --max-bandwidth 4095
usage_case "--test-hold is not a JSON object" --pid 1 --test-hold '[1]'
usage_case "--maps is empty" --pid 1 --maps ''
echo "ok: usage errors exit 2 and say what is wrong"
