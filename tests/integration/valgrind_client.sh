#!/bin/bash
# The client library's unit tests (test_client) under valgrind memcheck
# with --leak-check=full: no invalid access, no uninitialised use, no leak.
# tests/valgrind.sh does the work (and, run on its own, more programs).
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build}
if [ -n "${SANITIZE:-}" ]; then
	echo "SKIP: valgrind cannot run a SANITIZE=$SANITIZE build (plain make check runs it)"
	exit 77
fi
exec bash "$TOP/tests/valgrind.sh" "${TESTS_BIN:-$TOP/$B/tests}/test_client"
