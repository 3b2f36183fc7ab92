#!/bin/bash
# The bounded fuzz run of make check: every parser that takes outside input
# (the zsnap/raw reader, snapd.conf, the control socket's choke point) is
# fuzzed for 20 seconds under AddressSanitizer and UBSan, starting from its
# seed corpus and replaying every regression input (tests/fuzz/run.sh).
# Passes when no target crashes, leaks or times out; skips (77) only when
# clang's libFuzzer is not installed.  `make fuzz` is the long run.
. "$(dirname "$0")/../lib.sh"
cd "$TOP" || fail "cannot cd to $TOP"
B=$B FUZZ_SECONDS=20 tests/fuzz/run.sh
rc=$?
case $rc in
0)	exit 0 ;;
77)	skip "clang's libFuzzer is not installed" ;;
*)	fail "tests/fuzz/run.sh exited $rc" ;;
esac
