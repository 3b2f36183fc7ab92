#!/bin/bash
# The attach tests' own instruments, proven without snapd: stampwork runs
# and checks itself, and stampcheck accepts a true instant of its memory
# and rejects every kind of damage a wrong snapshot would show.
#   - stampwork with four writers: the instant is made with SIGSTOP (every
#     thread stopped wherever it was, a write possibly half done) and
#     its data region read through /proc/PID/mem into a raw snapshot
#     (tests/stamp.py rawsnap); marker A is written before, B after;
#   - stampcheck finds one cut per writer with 0 wrong pages, the
#     untouched range zero, the marker A and not B;
#   - the same snapshot with one page holding a write after the cut
#     ("newer"), one page torn by a concurrent copy (its tail newer than
#     its head), a byte in the untouched range, or asked for marker B:
#     each is rejected, with the figure that says why;
#   - stampwork then runs on (not stopped, not traced, writers advancing,
#     its blocked threads saw nothing wrong) and its self-check at stop
#     passes.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ -x "$STAMPCHECK" ] || fail "$STAMPCHECK is missing: build it first (make tests)"

stampwork_start sw --size 16M --threads 4 --pace-us 50
info=$T/sw/info.json
stamp_cmd sw "marker before-the-instant-A" >/dev/null
sleep 0.2
kill -STOP "$STAMP_PID"
n=100
while python3 - "$STAMP_PID" <<'EOF'
import os, sys
pid = sys.argv[1]
for t in os.listdir("/proc/%s/task" % pid):
    for line in open("/proc/%s/task/%s/status" % (pid, t)):
        if line.startswith("State:") and line.split()[1] not in ("T", "t"):
            sys.exit(0)
sys.exit(1)
EOF
do
	[ "$n" -gt 0 ] || fail "stampwork's threads did not all stop within 10 s of SIGSTOP"
	sleep 0.1
	n=$((n - 1))
done
python3 "$STAMP_PY" rawsnap "$STAMP_PID" "$info" "$T/a.raw" || fail "cannot read stampwork's memory"
kill -CONT "$STAMP_PID"
stamp_cmd sw "marker after-the-instant-B" >/dev/null

"$STAMPCHECK" --marker before-the-instant-A --not-marker after-the-instant-B \
    "$info" "$T/a.raw" >"$T/good.txt" ||
	{ cat "$T/good.txt" >&2; fail "stampcheck rejects a true instant"; }
"$STAMPCHECK" --json "$info" "$T/a.raw" >"$T/good.json" || fail "stampcheck --json rejects a true instant"
[ "$(json_get "$T/good.json" wrong-pages)" -eq 0 ] || fail "wrong pages in a true instant"
cat "$T/good.txt"
echo "ok: a true instant passes"

# reject HOW FIELD [STAMPCHECK-ARGS]: a copy damaged HOW must be refused,
# with FIELD (a member of the report) saying so.
reject() {
	local how=$1 field=$2 d=$T/$1.raw v
	shift 2
	cp -a "$T/a.raw" "$d" || fail "cp $T/a.raw"
	[ "$how" = marker ] || python3 "$STAMP_PY" corrupt "$d" "$info" "$how" ||
		fail "cannot damage the snapshot ($how)"
	if "$STAMPCHECK" --json "$@" "$info" "$d" >"$T/$how.json"; then
		cat "$T/$how.json" >&2
		fail "stampcheck accepts a snapshot damaged: $how"
	fi
	v=$(json_get "$T/$how.json" "$field") || fail "no $field in stampcheck's report"
	case $v in 0|true) cat "$T/$how.json" >&2; fail "$how: stampcheck failed, but $field is $v" ;; esac
	echo "ok: $how is refused ($field $v)"
}
reject newer wrong-pages
reject torn wrong-pages
reject untouched untouched-nonzero
reject marker marker-ok --marker after-the-instant-B
# marker-ok is false there: reject's case needs "false" refused, not 0.
[ "$(json_get "$T/marker.json" marker-ok)" = false ] || fail "marker B passed as the snapshot's marker"

stamp_healthy sw
stampwork_stop sw
echo "ok: stampwork healthy, and its self-check passes: $(tail -n 1 "$T/sw/out")"
