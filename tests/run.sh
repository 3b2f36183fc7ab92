#!/bin/bash
# Run every test: unit test binaries (build/tests/test_*), then integration
# scripts (tests/integration/*.sh), each in its own throwaway directory.
# A test passes with exit 0, is skipped with exit 77, fails otherwise.
# The last line is the summary CI reads: "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
export B SNAPD_BIN="$PWD/$B/snapd" MEMSNAPCTL_BIN="$PWD/$B/memsnapctl" \
	TESTS_BIN="$PWD/$B/tests" TOP="$PWD"
pass=0 fail=0 skip=0 failed=()
logdir=$(mktemp -d /tmp/snapd-tests.XXXXXX)
# Every daemon of the run traces its messages here (snapd(8),
# SNAPD_PROTOCOL_TRACE); tests/integration/zz_schema.sh, last in name
# order, validates them all against proto/schema.json.
mkdir "$logdir/trace"
export SNAPD_TRACE_DIR="$logdir/trace" SNAPD_PROTOCOL_TRACE="$logdir/trace"

# Each test's safety net, never what a test checks: generous, and more so
# under the sanitizers, which make the slowest tests (attach_stamp,
# qemu_faults) several times slower on a busy 2-CPU machine.
if [ -n "${SANITIZE:-}" ]; then
	test_timeout=${TEST_TIMEOUT:-900}
else
	test_timeout=${TEST_TIMEOUT:-600}
fi

run_one() {
	local name=$1; shift
	local log="$logdir/$name.log" t0=$(date +%s.%N) rc
	timeout --kill-after=10 "$test_timeout" "$@" >"$log" 2>&1
	rc=$?
	local dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	case $rc in
	0)  pass=$((pass + 1)); echo "PASS $name (${dt}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP $name: $(tail -n 1 "$log")" ;;
	*)  fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (exit $rc, ${dt}s)"
	    sed 's/^/    | /' "$log" | tail -n 40 ;;
	esac
}

filter=${TESTS:-}
for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t")
	[ -n "$filter" ] && [[ ! $n =~ $filter ]] && continue
	run_one "$n" "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$t" .sh)
	[ -n "$filter" ] && [[ ! $n =~ $filter ]] && continue
	run_one "$n" bash "$t"
done

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]} (logs in $logdir)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
