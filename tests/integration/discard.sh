#!/bin/bash
# Invariant 5, nothing silent, and invariant 3 while the process reshapes
# its memory during a snapshot.  snapwork's main thread discards the last
# quarter of its 256 MiB region right after arming, while two writers keep
# writing the rest, then writes the pages that are still mapped once.  None
# of that quarter is saved yet when it goes: snapd's test hook holds the
# writer's sweep (draining the buffer meanwhile) until snapd has read the
# discard event.  The kinds:
#   dontneed  madvise(MADV_DONTNEED)	(UFFD_EVENT_REMOVE)
#   munmap    munmap()			(UFFD_EVENT_UNMAP)
#   mremap    mremap() to a new address	(UFFD_EVENT_REMAP)
# For each: the snapshot completes within bounded time, every page it does
# not report LOST is exact (a LOST page outside the discarded range, or a
# discarded page saved with the wrong bytes, is a silent wrong page), and
# neither the writers nor the discarding thread are blocked for a second.
# After dontneed and munmap the unsaved pages are gone, so pages-lost must
# be > 0; snapd follows pages mremap moves and saves them from their new
# address, so there the range must come out exact (LOST allowed, not
# required).  With "on_discard fail" the snapshot fails instead,
# saying why, and the process runs on unharmed.
# And fork(): a child forked mid-snapshot writes its copy of the range and
# exits; the parent's snapshot and memory stay exact, the child never hangs.
#
# Every case runs, then the failures are listed together.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start

FAILED=()
case_fail() {
	echo "FAIL: $*" >&2
	FAILED+=("$*")
}

# run_case LABEL SNAPWORK-ARGS...: run snapwork under a time limit; sets
# $out and returns snapwork's status (124 for the time limit).
run_case() {
	local label=$1 rc=0
	shift
	out=$T/$label.json
	timeout -k 5 60 "$SNAPWORK" --socket "$SNAPD_SOCK" --json --name "$label" \
	    --size 256M --threads 2 --pattern mixed --buffer 4M "$@" \
	    >"$out" 2>"$out.err" || rc=$?
	return $rc
}

for kind in dontneed munmap mremap; do
	label=discard-$kind
	t0=$(date +%s.%N)
	rc=0
	run_case "$label" --discard "$kind" --test-hold '{"until": "discard"}' || rc=$?
	dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	if [ "$rc" -ne 0 ]; then
		show_snapwork "$out"
		case_fail "$label: snapwork failed (exit $rc after ${dt}s): $(tail -n 1 "$out.err")"
		continue
	fi
	lost=$(json_get "$out" pages-lost)
	inrange=$(json_get "$out" lost-in-range)
	wrong=$(json_get "$out" wrong-pages)
	astall=$(json_get "$out" action-stall-max-us)
	gap=$(json_get "$out" writer-gap-max-us)
	range=$(json_get "$out" range-pages)
	echo "$label: ${dt}s, $lost pages lost ($inrange restored as LOST in the $range-page range), $wrong wrong, longest step after the discard $astall us, writer gap $gap us"
	if [ "$kind" != mremap ] && [ "$lost" -eq 0 ]; then
		case_fail "$label: pages-lost is 0 although $range unsaved pages were discarded: silent"
		continue
	fi
	[ "$inrange" -eq "$lost" ] || { case_fail "$label: snapd reports $lost lost, the file holds $inrange LOST pages in the range"; continue; }
	[ "$wrong" -eq 0 ] || { case_fail "$label: $wrong wrong pages"; continue; }
	[ "$astall" -lt 1000000 ] || { case_fail "$label: a write after the discard took $astall us"; continue; }
	[ "$gap" -lt 1000000 ] || { case_fail "$label: a writer made no progress for $gap us"; continue; }
	echo "ok: $label"
done

label=fork
rc=0
run_case "$label" --fork || rc=$?
if [ "$rc" -ne 0 ]; then
	show_snapwork "$out"
	case_fail "$label: snapwork failed (exit $rc): $(tail -n 1 "$out.err")"
else
	child=$(json_get "$out" child-us)
	wrong=$(json_get "$out" wrong-pages)
	echo "ok: $label: the child wrote its copy and exited in $child us; parent: $wrong wrong pages, live memory intact"
fi

# on_discard fail: the snapshot fails and says why.
snapd_stop || case_fail "snapd did not stop cleanly"
snapd_config "on_discard fail"
: >"$SNAPD_LOG"
snapd_start
label=discard-policy-fail
rc=0
run_case "$label" --discard dontneed --may-fail --test-hold '{"until": "discard"}' || rc=$?
if [ "$rc" -ne 0 ]; then
	show_snapwork "$out"
	case_fail "$label: the workload was hurt (exit $rc): $(tail -n 1 "$out.err")"
else
	completed=$(json_get "$out" completed)
	reason=$(json_get "$out" error 2>/dev/null) || reason=
	if [ "$completed" != false ]; then
		case_fail "$label: the snapshot completed although pages were discarded under on_discard fail"
	elif ! echo "$reason" | grep -qi discard; then
		case_fail "$label: the failure does not say pages were discarded: $reason"
	elif [ -n "$(find "$SNAPD_DIR" -name "*$label*")" ]; then
		case_fail "$label: the failed snapshot left a file: $(find "$SNAPD_DIR" -name "*$label*")"
	else
		echo "ok: $label: failed: $reason"
	fi
fi

if [ ${#FAILED[@]} -gt 0 ]; then
	fail "${#FAILED[@]} case(s) failed: $(printf '%s; ' "${FAILED[@]}")"
fi
