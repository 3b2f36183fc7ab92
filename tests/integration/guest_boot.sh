#!/bin/bash
# The QEMU tests' guest (tests/guest/) and its checker, proven without
# snapd:
#   - the guest boots under TCG with file-backed RAM shared with the file
#     (share=on: the file is its RAM) and reports progress on its serial
#     port, 0 mismatches;
#   - stopped by QMP, it writes no more, and a copy of its RAM file is one
#     cut of its writes (guestcheck), the cut at or past its last
#     progress line and at most 2048 pages past it (stopped while it
#     printed the next line);
#   - the same copy damaged three ways (a page two generations old, a
#     page torn the wrong way round, a bit flipped) is refused, the page
#     named;
#   - resumed by QMP, it goes on from where it was and finds nothing
#     amiss: 0 mismatches.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
qemu_install_or_skip

g=$T/guest
first=512 last=16351
pages=$((last - first + 1))
guest_start "$g" file
echo "booted: $(head -n 1 "$g/serial")"
# Past generation 2, so that "torn" can put a page two generations back.
guest_wait_writes "$g" $((2 * pages + 4096))
guest_qmp "$g" '{"execute": "stop"}' >/dev/null || fail "QMP stop failed"
[ "$(guest_qmp "$g" '{"execute": "query-status"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["running"])')" = False ] ||
	fail "the guest still runs after QMP stop"
guest_progress "$g" >"$T/stopped.json" || fail "no progress line"
cp --sparse=always "$g/ram" "$T/ram.copy" || fail "cannot copy the guest's RAM file"
sleep 0.5
guest_progress "$g" >"$T/stopped-later.json"
cmp -s "$T/stopped.json" "$T/stopped-later.json" ||
	fail "the stopped guest went on: $(cat "$T/stopped.json") then $(cat "$T/stopped-later.json")"

"$GUESTCHECK" --json --pages "$first-$last" "$T/ram.copy" >"$T/check.json" ||
	{ cat "$T/check.json" >&2; fail "guestcheck rejects the RAM of a stopped guest"; }
"$GUESTCHECK" --pages "$first-$last" "$T/ram.copy"
# The pages written before the cut, by the image and by the serial port.
cut_writes=$(json_expr "$T/check.json" "(o['gen'] - 1) * $pages + o['page'] - $first")
serial_writes=$(json_get "$T/stopped.json" writes)
# The guest prints after every 2048th page: stopped while printing, it has
# written exactly 2048 pages past the last complete line.
[ "$cut_writes" -ge "$serial_writes" ] && [ "$cut_writes" -le $((serial_writes + 2048)) ] ||
	fail "the image's cut ($cut_writes pages written) is not within 2048 pages after the serial's last line ($serial_writes)"
[ "$(json_get "$T/stopped.json" mismatches)" -eq 0 ] ||
	fail "the guest found mismatches: $(cat "$T/stopped.json")"
echo "ok: the stopped guest's RAM is one cut, $cut_writes pages written (serial: $serial_writes)"

# forged KIND: a copy damaged KIND must be refused, one page named.
forged() {
	local f=$T/$1.raw
	cp --sparse=always "$T/ram.copy" "$f" || fail "cp $T/ram.copy"
	"$GUESTCHECK" --forge "$1" --pages "$first-$last" "$f" || fail "guestcheck --forge $1 failed"
	if "$GUESTCHECK" --json --pages "$first-$last" "$f" >"$T/$1.json"; then
		cat "$T/$1.json" >&2
		fail "guestcheck accepts an image forged $1"
	fi
	[ "$(json_get "$T/$1.json" bad-pages)" -eq 1 ] ||
		{ cat "$T/$1.json" >&2; fail "$1: not exactly one bad page"; }
	[ "$(json_get "$T/$1.json" consistent)" = false ] ||
		fail "$1: guestcheck failed but says consistent"
	echo "ok: $1 is refused: $(json_expr "$T/$1.json" "o['first-bad-pages']")"
}
forged torn
forged split
forged flip

t0=$(date +%s.%N)
guest_qmp "$g" '{"execute": "cont"}' >/dev/null || fail "QMP cont failed"
guest_wait_writes "$g" $((serial_writes + 2 * pages))
guest_progress "$g" >"$T/resumed.json"
t1=$(date +%s.%N)
[ "$(json_get "$T/resumed.json" mismatches)" -eq 0 ] ||
	fail "the resumed guest found mismatches: $(cat "$T/resumed.json")"
# A figure for the log, never a verdict: at least this fast.
rate=$(awk -v a="$t0" -v b="$t1" -v n=$(($(json_get "$T/resumed.json" writes) - serial_writes)) \
    'BEGIN { printf "%.0f", n / (b - a) }')
echo "ok: resumed, $(cat "$T/resumed.json"); at least $rate pages/s under TCG"
guest_stop "$g"
