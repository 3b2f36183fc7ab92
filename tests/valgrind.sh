#!/bin/bash
# Memcheck over the client library: every program given on the command
# line, or by default the client library's unit tests (test_client, the
# connection half against a scripted peer; test_format, the reader on good
# and damaged files; test_reader_bounds, the reader on crafted files that
# claim far more than they hold), then memsnapctl's readers (info, verify,
# export) on a real snapshot and on a truncated copy, each under
#	valgrind --error-exitcode=1 --leak-check=full
# with definite, indirect and possible leaks counted as errors.  Exit 0 if
# memcheck is clean on all, 77 if valgrind is not installed, 1 otherwise.
# tests/integration/valgrind_client.sh runs it on test_client alone.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
B=${B:-build}
TESTS_BIN=${TESTS_BIN:-$TOP/$B/tests}
MEMSNAPCTL_BIN=${MEMSNAPCTL_BIN:-$TOP/$B/memsnapctl}
SNAPD_BIN=${SNAPD_BIN:-$TOP/$B/snapd}
SNAPWORK=${SNAPWORK:-$TESTS_BIN/snapwork}

if ! command -v valgrind >/dev/null; then
	echo "SKIP: valgrind is not installed (apt-get install valgrind)"
	exit 77
fi
W=$(mktemp -d /tmp/snapd-valgrind.XXXXXX) || { echo "FAIL: mktemp -d"; exit 1; }
DAEMON=
trap '[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
failed=()

# memcheck LABEL EXPECT CMD...: run CMD under memcheck; EXPECT is the exit
# status the program itself should have (memsnapctl verify of a damaged file
# exits 1); valgrind's own error exit is 99 so the two cannot mix.
memcheck() {
	local label=$1 expect=$2 rc=0
	shift 2
	valgrind -q --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect,possible \
	    --log-file="$W/$label.vg" "$@" >"$W/$label.out" 2>&1 || rc=$?
	# Valgrind 3.19 does not know userfaultfd(2): its notes are not errors.
	grep -v -e 'unhandled amd64-linux syscall' -e 'write your own handler' \
	    -e README_MISSING -e 'consider this a bug' -e 'valgrind.org/support' \
	    -e 'unhandled ioctl' -e 'spurious value errors' -e 'proper wrapper' \
	    "$W/$label.vg" >"$W/$label.vg.errors"
	if [ "$rc" -eq 99 ] || [ -s "$W/$label.vg.errors" ]; then
		echo "FAIL $label: memcheck found errors:"
		sed 's/^/    | /' "$W/$label.vg.errors"
		failed+=("$label")
	elif [ "$rc" -ne "$expect" ]; then
		echo "FAIL $label: exit $rc, expected $expect:"
		tail -n 20 "$W/$label.out" | sed 's/^/    | /'
		failed+=("$label")
	else
		echo "ok: $label: memcheck clean (exit $rc)"
	fi
}

if [ $# -gt 0 ]; then
	for p in "$@"; do
		[ -x "$p" ] || { echo "FAIL: $p is not built"; exit 1; }
		memcheck "$(basename "$p")" 0 "$p"
	done
else
	for t in test_client test_format test_reader_bounds; do
		[ -x "$TESTS_BIN/$t" ] || { echo "FAIL: $TESTS_BIN/$t is not built (make tests)"; exit 1; }
		memcheck "$t" 0 "$TESTS_BIN/$t"
	done
	# memsnapctl's readers on a real snapshot, written by a throwaway snapd.
	mkdir -p "$W/snaps"
	printf 'socket %s\nsnapshot_dir %s\n' "$W/sock" "$W/snaps" >"$W/snapd.conf"
	"$SNAPD_BIN" -c "$W/snapd.conf" >"$W/snapd.log" 2>&1 &
	DAEMON=$!
	for _ in $(seq 50); do [ -S "$W/sock" ] && break; sleep 0.1; done
	if "$SNAPWORK" --socket "$W/sock" --size 8M --threads 1 --untouched 20 \
	    --zero 10 --name vg >"$W/snapwork.out" 2>&1; then
		f=$W/snaps/vg.zsnap
		size=$(stat -c %s "$f")
		head -c $((size / 2)) "$f" >"$W/half.zsnap"
		memcheck memsnapctl-info 0 "$MEMSNAPCTL_BIN" info "$f"
		memcheck memsnapctl-verify 0 "$MEMSNAPCTL_BIN" verify "$f"
		memcheck memsnapctl-export 0 "$MEMSNAPCTL_BIN" export "$f" --raw "$W/raw"
		memcheck memsnapctl-verify-truncated 1 "$MEMSNAPCTL_BIN" verify "$W/half.zsnap"
		memcheck memsnapctl-list 0 "$MEMSNAPCTL_BIN" -s "$W/sock" list
	else
		echo "FAIL: could not make a snapshot to read:"
		sed 's/^/    | /' "$W/snapwork.out" "$W/snapd.log"
		failed+=("snapshot")
	fi
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL: memcheck: ${failed[*]}"
	exit 1
fi
echo "ok: memcheck clean"
