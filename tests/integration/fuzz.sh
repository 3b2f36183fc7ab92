#!/bin/bash
# The fuzz targets in make check: every parser that takes outside input
# (the zsnap/raw reader, the process record's decoder, snapd.conf, the
# control socket's choke point) is
# run once on every file of its seed corpus and of its regression inputs
# (tests/fuzz/{corpus,regress}/NAME), under AddressSanitizer and UBSan,
# and on nothing else: `tests/fuzz/run.sh --replay`.  Deterministic: it
# passes or fails the same way every time, and fails when any input
# crashes, leaks, runs out of memory or takes over 25 s (a safety net).
# Skips (77) only when clang's libFuzzer is not installed.  Exploring for
# new inputs, whose verdict depends on luck and time, is `make fuzz`.
. "$(dirname "$0")/../lib.sh"
cd "$TOP" || fail "cannot cd to $TOP"
B=$B REPLAY_TIMEOUT=25 tests/fuzz/run.sh --replay
rc=$?
case $rc in
0)	exit 0 ;;
77)	skip "clang's libFuzzer is not installed" ;;
*)	fail "tests/fuzz/run.sh --replay exited $rc" ;;
esac
