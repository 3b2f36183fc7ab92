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
out=$("$SNAPCTL_BIN" qmp '{"execute": "test-release", "arguments": {"id": 1}}' 2>&1) &&
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
