#!/bin/bash
# Invariants 5 and 6 when the address space changes in the middle of a
# read, forced with snapd's debug-only test hook (daemon/engine/testpause.h:
# SNAPD_TEST_HOOKS=1 pauses the writer or fault thread after it claimed a
# page and before it read it) and tests/workload/snaprace.c:
#   exec            the process execs while the writer holds a claimed run:
#                   the snapshot fails saying the armed address space is
#                   gone, and no file holds the new image's pages
#   main-exit       the main thread exits, another runs on: completes, exact
#   mremap-writer   pages move while the writer reads them and before snapd
#                   has read the move: saved from their new place, exact
#   mremap-fault    the same on the fault path
#   moves-overflow  more moves than snapd follows: the rest LOST, none wrong
#   pending-flood   300 faults wait on the writer's run and a discard event
#                   is queued: the snapshot still completes
. "$(dirname "$0")/../lib.sh"
t_init
mkdir -p "$T/hooks"
export SNAPD_TEST_HOOKS=1 SNAPD_TEST_PAUSE_DIR=$T/hooks
snapd_config
snapd_start
SNAPRACE=$TESTS_BIN/snaprace
[ -x "$SNAPRACE" ] || fail "$SNAPRACE is missing: build it first (make tests)"

FAILED=()
case_fail() {
	echo "FAIL: $*" >&2
	FAILED+=("$*")
}

# run_case MODE: run snaprace; sets $out; returns its status.
run_case() {
	local rc=0
	out=$T/$1.json
	timeout -k 5 90 "$SNAPRACE" --socket "$SNAPD_SOCK" --hooks "$T/hooks" \
	    --name "race-$1" --mode "$1" >"$out" 2>"$out.err" || rc=$?
	return $rc
}

# check MODE EXPECT_LOST: completed, hook reached, no wrong page, every
# page snapd counts lost is LOST in the file, and EXPECT_LOST of them.
check() {
	local mode=$1 want=$2 rc=0
	run_case "$mode" || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$out.err" >&2
		case_fail "$mode: snaprace failed (exit $rc): $(tail -n 1 "$out.err")"
		return
	fi
	local hook completed err lost inlost wrong
	hook=$(json_get "$out" hook) completed=$(json_get "$out" completed)
	err=$(json_get "$out" error) lost=$(json_get "$out" pages-lost)
	inlost=$(json_get "$out" lost-pages) wrong=$(json_get "$out" wrong-pages)
	echo "$mode: hook $hook, completed $completed ($err), $lost lost, $inlost LOST in the file, $wrong wrong"
	[ "$hook" = true ] || { case_fail "$mode: snapd's test hook never paused: the race was not forced"; return; }
	[ "$completed" = true ] || { case_fail "$mode: the snapshot failed: $err"; return; }
	[ "$wrong" -eq 0 ] || { case_fail "$mode: $wrong pages saved with bytes they did not hold when armed"; return; }
	[ "$lost" -eq "$inlost" ] || { case_fail "$mode: snapd says $lost lost, the file holds $inlost LOST pages"; return; }
	[ "$lost" -eq "$want" ] || { case_fail "$mode: $lost pages lost, expected $want"; return; }
	echo "ok: $mode"
}

# exec: snaprace execs itself into an image with other bytes at the
# region's address; the snapshot must fail with the reason.
rc=0
run_case exec &
pid=$!
t_track "$pid"
state=
for _ in $(seq 300); do
	"$MEMSNAPCTL_BIN" -s "$SNAPD_SOCK" -j list >"$T/list.json" 2>/dev/null
	state=$(python3 - "$T/list.json" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1])):
    if s.get("name") == "race-exec" and s.get("state") in ("completed", "failed", "cancelled"):
        print(s["state"] + "\t" + s.get("error", ""))
PY
)
	[ -n "$state" ] && break
	sleep 0.1
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
echo "exec: ${state:-no result}"
if [ ! -e "$T/hooks/race-exec.paused" ]; then
	case_fail "exec: snapd's test hook never paused: the race was not forced"
elif [ "${state%%	*}" != failed ]; then
	case_fail "exec: the snapshot of a process that exec'ed mid-sweep ended '${state:-nowhere}' instead of failing"
elif ! echo "$state" | grep -q "address space is gone"; then
	case_fail "exec: the failure does not say why: $state"
elif [ -n "$(find "$SNAPD_DIR" -name '*race-exec*')" ]; then
	case_fail "exec: the failed snapshot left a file"
else
	echo "ok: exec"
fi

check main-exit 0
check mremap-writer 0
check mremap-fault 0
check moves-overflow 6
check pending-flood 64

if [ ${#FAILED[@]} -gt 0 ]; then
	fail "${#FAILED[@]} case(s) failed: $(printf '%s; ' "${FAILED[@]}")"
fi
