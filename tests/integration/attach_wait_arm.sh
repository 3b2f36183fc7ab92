#!/bin/bash
# Attach with "wait-arm" (what memsnapctl qemu-save uses): snapd attaches,
# pre-arms while the process runs and answers "prearmed"; the client arms
# with snapshot-arm, and snapd stops the process again, protects what was
# written meanwhile, lets it go and only then answers, with the "attach"
# figures of both stops.  The stampwork target checks its memory; its
# marker before snapshot-arm is in the snapshot, and the one after is not
# (stampcheck: one instant, the arm's).  The protocol's refusals: wait-arm
# without attach, with "prearm": false; snapshot-arm twice.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
snapd_config "buffer_size 16M"
snapd_start
snapd_attach_or_skip

stampwork_start sw --size 64M --threads 4 --pace-us 20
pid=$STAMP_PID
stamp_cmd sw "marker before-prearm" >/dev/null

python3 - "$TOP/tests" "$SNAPD_SOCK" "$pid" "$T" <<'PYEOF' || fail "wait-arm (see above)"
import json, sys, time
sys.path.insert(0, sys.argv[1])
from qmp import QMP
sock, pid, T = sys.argv[2], int(sys.argv[3]), sys.argv[4]
q = QMP(sock)

def err(r, what):
    if "error" not in r:
        sys.exit("%s: accepted: %s" % (what, r))
    return r["error"]["desc"]

print("refused:", err(q.cmd({"execute": "snapshot-start", "arguments": {
    "wait-arm": True, "uffd": "x", "regions": [{"start": 4096, "length": 4096}]}}),
    "wait-arm without attach"))
print("refused:", err(q.cmd({"execute": "snapshot-start", "arguments": {
    "pid": pid, "wait-arm": True, "prearm": False}}), "wait-arm with prearm false"))

r = q.cmd({"execute": "snapshot-start", "arguments": {
    "pid": pid, "wait-arm": True, "name": "wa"}})
if "return" not in r or r["return"].get("state") != "prearmed":
    sys.exit("snapshot-start with wait-arm: expected a prearmed reply: %s" % r)
sid = r["return"]["id"]
print("prearmed:", json.dumps(r["return"]))
open(T + "/wa.id", "w").write("%d\n" % sid)
# The process runs while pre-armed: it answers a marker command.
before = len(open(T + "/sw/out").readlines())
with open(T + "/sw/ctl", "w") as f:
    f.write("marker before-arm\n")
for _ in range(100):
    if len(open(T + "/sw/out").readlines()) > before:
        break
    time.sleep(0.1)
else:
    sys.exit("stampwork did not answer while pre-armed: it is not running")
r = q.cmd({"execute": "snapshot-arm", "arguments": {"id": sid}})
if "return" not in r:
    sys.exit("snapshot-arm: %s" % r)
a = r["return"].get("attach")
if not a or not a.get("prearm") or "prearm-pause-us" not in a or "pause-us" not in a:
    sys.exit("snapshot-arm's reply lacks the attach figures of both stops: %s" % r)
print("armed:", json.dumps(r["return"]))
print("refused:", err(q.cmd({"execute": "snapshot-arm", "arguments": {"id": sid}}),
                      "snapshot-arm twice"))
PYEOF
stamp_cmd sw "marker after-arm" >/dev/null
"$MEMSNAPCTL_BIN" wait "$(cat "$T/wa.id")" >/dev/null || fail "the wait-arm snapshot did not complete"
"$STAMPCHECK" --marker before-arm --not-marker after-arm "$T/sw/info.json" "$SNAPD_DIR/wa.zsnap" >"$T/check" ||
	{ cat "$T/check" >&2; fail "the wait-arm snapshot is not one instant holding the marker set before snapshot-arm"; }
echo "ok: one instant, at snapshot-arm: $(tail -n 1 "$T/check")"
stampwork_stop sw
echo "ok: the target's own check: $(tail -n 1 "$T/sw/out")"
