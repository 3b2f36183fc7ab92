#!/bin/bash
# tests/repeat.sh N [TARGET]: is the suite's verdict deterministic?
#
# Clones what is committed here (HEAD) into a fresh directory, as CI does,
# then runs `make TARGET` (default `check`; `check-sanitizers` for the
# sanitizer runs) there N times in a row, with nothing changed in between.
# Each run's summary line and the names of the tests that failed are
# printed as it ends; the last line says how many runs passed:
#
#	repeat: 5 of 5 runs passed
#
# Exits 0 only if every run passed.  The logs of failed runs are kept (the
# path is printed); the clone is removed at the end unless KEEP=1.
# `make check-repeat N=5` runs it.
set -u
n=${1:-}
target=${2:-check}
case $n in
'' | *[!0-9]* | 0) echo "usage: tests/repeat.sh N [TARGET]" >&2; exit 2 ;;
esac
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/snapd-repeat.XXXXXX) || exit 1
git clone -q "$top" "$work/tree" || { echo "repeat: git clone of $top failed" >&2; exit 1; }
echo "repeat: $n runs of 'make $target' in a fresh clone of $(git -C "$top" rev-parse --short HEAD) ($work/tree)"
passed=0
for i in $(seq 1 "$n"); do
	log=$work/run-$i.log
	t0=$(date +%s)
	(cd "$work/tree" && make "$target") >"$log" 2>&1
	rc=$?
	dt=$(($(date +%s) - t0))
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tr '\n' ';')
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "repeat: run $i: passed in ${dt}s: $summary"
	else
		echo "repeat: run $i: FAILED (exit $rc) in ${dt}s: $summary $(grep -E '^failed: ' "$log" | tr '\n' ' ')"
		echo "repeat: run $i: log kept in $log"
	fi
done
echo "repeat: $passed of $n runs passed"
if [ "$passed" -eq "$n" ] && [ -z "${KEEP:-}" ]; then
	rm -rf "$work"
fi
[ "$passed" -eq "$n" ]
