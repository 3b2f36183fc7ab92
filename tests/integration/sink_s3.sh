#!/bin/bash
# The daemon's S3 sink (daemon/format/sink-s3.c) against a real one-node
# Ceph radosgw (tests/ceph.sh), driven by tests/workload/sinks3probe, each
# claim checked from the sink's own figures and from s3cmd, a client we did
# not write.  Parts of 5 MiB, the S3 minimum, 2 in flight (3 buffers):
#   - objects are byte-exact (SHA-256 of what s3cmd downloads against what
#     the probe wrote) for 3.5 parts in uneven writes, many small writes,
#     writes straddling parts, exactly one part, and an empty object;
#   - nothing is visible under the key before finish, only the upload;
#   - abort, and free without finish, leave no object and no upload;
#   - back-pressure: radosgw stopped (SIGSTOP), the writes stop after 3
#     parts of buffering and memory stays at the buffers; after SIGCONT the
#     object completes byte-exact;
#   - radosgw killed mid-upload: the write fails naming the part and the
#     reason, after retries; abort works once radosgw is back; without it,
#     the upload is left, named in a warning, for s3_multipart_list to find;
#   - a complete that timed out but went through (radosgw stopped, then
#     thawed): the abort removes the object it made;
#   - the cancel flag ends a stalled write with ECANCELED at once, and the
#     stalled uploads with it;
#   - EFBIG past 10000 parts; an existing key, a missing bucket and wrong
#     credentials fail at open.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../ceph.sh"

# SINKS3PROBE: another build of the probe (build-thread/tests/sinks3probe
# for the sink's threads under TSan, with SANITIZE=thread).
PROBE=${SINKS3PROBE:-$TESTS_BIN/sinks3probe}
MIB=$((1 << 20))
PART=$((5 * MIB))
# What the probe may grow beyond its 3 part buffers while stalled: its
# own write buffer and curl's, more under a sanitizer's shadow memory.
case ${SANITIZE:-} in
*thread*)	SLACK=$((96 * MIB)) ;;
?*)		SLACK=$((16 * MIB)) ;;
*)		SLACK=$((8 * MIB)) ;;
esac

t_init
[ -x "$PROBE" ] || fail "$PROBE is missing: build it first (make tests)"
ceph_start
ceph_make_bucket snaps

# Every probe's stderr goes to a file of $T/*.err: the end checks them for
# sanitizer reports (a probe expected to fail exits 1, as ASan would).
probe() {
	"$PROBE" --endpoint "$S3_ENDPOINT" \
	    --credentials "$CEPH_DIR/s3-credentials" --bucket snaps "$@" \
	    2>>"$T/probes.err"
}

# field NAME LINE: VALUE of "NAME=VALUE" in LINE.
field() {
	sed -n "s/.*[ ]$1=\([^ :]*\).*/\1/p" <<<"$2"
}

# object_size KEY: its size as s3cmd lists it, nothing if there is none.
object_size() {
	s3c ls "s3://snaps/$1" 2>"$T/ls.err" | awk -v u="s3://snaps/$1" '$4 == u { print $3 }'
}

# uploads: the bucket's multipart uploads in progress, as s3cmd lists them.
uploads() {
	s3c multipart s3://snaps 2>&1
}

# check_object KEY COPY: the object s3cmd downloads is COPY, byte for byte.
check_object() {
	local want got
	rm -f "$T/got"
	s3c get --force "s3://snaps/$1" "$T/got" >"$T/get.out" 2>&1 ||
		{ cat "$T/get.out" >&2; fail "s3cmd get s3://snaps/$1 failed"; }
	want=$(sha256sum <"$2" | cut -d' ' -f1)
	got=$(sha256sum <"$T/got" | cut -d' ' -f1)
	[ "$want" = "$got" ] ||
		fail "s3://snaps/$1: SHA-256 $got, the probe wrote $want ($(stat -c %s "$T/got") vs $(stat -c %s "$2") bytes)"
}

# finished_object KEY SIZE PARTS ARGS...: the probe writes SIZE bytes to
# KEY (ARGS say how) and finishes; the sink's figures, s3cmd's listing
# and the bytes agree.
finished_object() {
	local key=$1 size=$2 parts=$3 out fin
	shift 3
	out=$(probe --key "$key" --size "$size" --copy "$T/copy" "$@") ||
		fail "probe $key: exit $? ($out)"
	grep -q '^open .* live=1 ' <<<"$out" || fail "$key: not live while open: $out"
	fin=$(grep '^finished ' <<<"$out") || fail "$key: no finished line: $out"
	[ "$(field bytes "$fin")" = "$size" ] || fail "$key: sink wrote $(field bytes "$fin") bytes, not $size"
	[ "$(field uploaded "$fin")" = "$size" ] || fail "$key: sink uploaded $(field uploaded "$fin") bytes, not $size"
	[ "$(field parts "$fin")" = "$parts" ] || fail "$key: $(field parts "$fin") parts, not $parts"
	[ "$(field live "$fin")" = 0 ] || fail "$key: still live after finish"
	[ "$(object_size "$key")" = "$size" ] || fail "$key: s3cmd lists $(object_size "$key") bytes, not $size"
	check_object "$key" "$T/copy"
	echo "$key: $size bytes, parts: $parts, byte-exact"
}

# A probe in the background, one at a time: its stdin a FIFO the test
# writes a line to at each hold, its stdout $T/NAME.out.
PROBE_PID= PROBE_FD= PROBE_OUT= PROBE_ERR=
probe_start() {
	local name=$1
	shift
	PROBE_OUT=$T/$name.out PROBE_ERR=$T/$name.err
	mkfifo "$T/$name.in" || fail "mkfifo $T/$name.in"
	"$PROBE" --endpoint "$S3_ENDPOINT" \
	    --credentials "$CEPH_DIR/s3-credentials" --bucket snaps "$@" \
	    <"$T/$name.in" >"$PROBE_OUT" 2>"$PROBE_ERR" &
	PROBE_PID=$!
	t_track "$PROBE_PID"
	exec {PROBE_FD}>"$T/$name.in"
}
probe_release() {
	echo go >&"$PROBE_FD"
}
# probe_line REGEX [TENTHS]: the probe's first line matching REGEX, after
# waiting for it (default 30 s).
probe_line() {
	t_wait_line "$PROBE_OUT" "$1" "${2:-300}" ||
		{ cat "$PROBE_OUT" "$PROBE_ERR" >&2; fail "probe printed no line matching '$1'"; }
	grep -m1 "$1" "$PROBE_OUT"
}
# probe_end: close its stdin, wait for it; its exit status in PROBE_RC.
probe_end() {
	exec {PROBE_FD}>&-
	wait "$PROBE_PID"
	PROBE_RC=$?
}

# ---- byte-exact objects -------------------------------------------------
finished_object t/three-and-a-half.zsnap $((7 * PART / 2)) 4 --writes uneven
finished_object t/small-writes.zsnap $((PART + 123457)) 2 --writes small
finished_object t/straddling.zsnap $((12 * MIB)) 3 --writes 3M
finished_object t/one-part.zsnap $PART 1 --writes 5M
finished_object t/empty.zsnap 0 1

# ---- nothing visible before finish --------------------------------------
probe_start held --key t/held.zsnap --size $((12 * MIB)) --writes uneven \
    --copy "$T/held.copy" --hold-before-end
id=$(field upload_id "$(probe_line '^open ')")
probe_line '^hold end' >/dev/null
[ -z "$(object_size t/held.zsnap)" ] || fail "t/held.zsnap is visible before finish"
uploads | grep -q -- "$id" || fail "s3cmd multipart does not list upload $id while it runs: $(uploads)"
probe --list t/ | grep -qx "upload t/held.zsnap $id" ||
	fail "s3_multipart_list does not list upload $id: $(probe --list t/)"
probe_release
probe_end
[ "$PROBE_RC" = 0 ] || fail "held probe: exit $PROBE_RC: $(cat "$PROBE_OUT" "$PROBE_ERR")"
[ "$(object_size t/held.zsnap)" = $((12 * MIB)) ] || fail "t/held.zsnap not there after finish"
check_object t/held.zsnap "$T/held.copy"
! uploads | grep -q -- "$id" || fail "upload $id still listed after finish"
echo "held: nothing under the key before finish, upload $id listed; whole after"

# ---- abort, and free without finish -------------------------------------
# (the hold at 12 MiB syncs: both full parts are uploaded before the end)
for end in abort free; do
	out=$(probe --key "t/$end.zsnap" --size $((12 * MIB)) --end "$end" \
	    --hold-at $((12 * MIB)) <<<go) || fail "probe --end $end: exit $? ($out)"
	id=$(field upload_id "$out")
	stats=$(grep '^stats ' <<<"$out") || fail "$end: no stats line: $out"
	[ "$(field parts "$stats")" = 2 ] || fail "$end: $(field parts "$stats") parts uploaded before the end, not 2: $out"
	grep -q '^aborted live=0 ' <<<"$out" || fail "$end: no aborted line: $out"
	[ -z "$(object_size "t/$end.zsnap")" ] || fail "$end: an object t/$end.zsnap exists"
	! uploads | grep -q -- "$id" || fail "$end: upload $id is left: $(uploads)"
	echo "$end: 2 parts uploaded, then no object and no upload $id"
done

# ---- back-pressure: radosgw stopped -------------------------------------
probe_start stall --key t/stalled.zsnap --size $((40 * MIB)) --writes 1M \
    --timeout 60 --copy "$T/stall.copy" --hold-at 0 --report-after 4
open=$(probe_line '^open ')
probe_line '^hold 0 ' >/dev/null
rgw_stop
probe_release
report=$(probe_line '^report ' 150)
rgw_cont
echo "stalled: $report"
[ "$(field bytes "$report")" = $((3 * PART)) ] ||
	fail "radosgw stopped: the writer got $(field bytes "$report") bytes in, not 3 parts ($((3 * PART)))"
[ "$(field parts "$report")" = 0 ] || fail "radosgw stopped, yet $(field parts "$report") parts uploaded"
[ "$(field waits "$report")" -ge 1 ] || fail "the stalled writer is not counted as waiting: $report"
grown=$(( $(field rss_kib "$report") - $(field rss_kib "$open") ))
[ "$grown" -le $(( (3 * PART + SLACK) / 1024 )) ] ||
	fail "memory grew by $grown KiB while stalled, more than 3 buffers and $((SLACK / MIB)) MiB"
probe_end
[ "$PROBE_RC" = 0 ] || fail "stalled probe: exit $PROBE_RC: $(cat "$PROBE_OUT" "$PROBE_ERR")"
fin=$(grep '^finished ' "$PROBE_OUT")
[ "$(field parts "$fin")" = 8 ] || fail "after SIGCONT: $fin"
[ "$(field waits "$fin")" -ge 1 ] || fail "after SIGCONT: no wait counted: $fin"
check_object t/stalled.zsnap "$T/stall.copy"
echo "stalled: memory grew $grown KiB; after SIGCONT $fin, byte-exact"

# ---- radosgw killed mid-upload, abort after its restart -----------------
probe_start killed --key t/killed.zsnap --size $((40 * MIB)) --writes 1M \
    --timeout 5 --retries 2 --hold-at $((6 * MIB)) --hold-before-end
id=$(field upload_id "$(probe_line '^open ')")
held=$(probe_line '^hold 6291456 ')
[ "$(field parts "$held")" = 1 ] || fail "killed: part 1 not uploaded before the kill: $held"
rgw_kill
probe_release
probe_line '^hold end' 600 >/dev/null
failed=$(grep -E '^(write|finish) failed ' "$PROBE_OUT") || fail "killed: no failure: $(cat "$PROBE_OUT")"
echo "killed: $failed"
grep -q 'errno=ECONNREFUSED' <<<"$failed" || fail "killed: not ECONNREFUSED: $failed"
# Parts 2 and 3 go up side by side: either may fail first.
grep -qE 'PUT s3://snaps/t/killed.zsnap part [23]: ' <<<"$failed" ||
	fail "killed: the message does not name part 2 or 3: $failed"
grep -q 'Connection refused' <<<"$failed" || fail "killed: the message does not say why: $failed"
grep -q '(3 tries)' <<<"$failed" || fail "killed: not after 3 tries (--retries 2): $failed"
stats=$(grep '^stats ' "$PROBE_OUT")
[ "$(field retries "$stats")" -ge 2 ] || fail "killed: retries not counted: $stats"
rgw_restart
probe_release
probe_end
[ "$PROBE_RC" = 1 ] || fail "killed probe: exit $PROBE_RC, not 1"
grep -q '^aborted live=0 ' "$PROBE_OUT" || fail "killed: no aborted line: $(cat "$PROBE_OUT")"
! uploads | grep -q -- "$id" || fail "killed: upload $id is left after abort: $(uploads)"
[ -z "$(object_size t/killed.zsnap)" ] || fail "killed: an object t/killed.zsnap exists"
echo "killed: after radosgw's restart abort removed upload $id"

# ---- killed and not back: the upload is left for the start-up cleanup ---
probe_start left --key t/left.zsnap --size $((12 * MIB)) --writes 1M \
    --timeout 5 --retries 1 --hold-at $((6 * MIB))
id=$(field upload_id "$(probe_line '^open ')")
probe_line '^hold 6291456 ' >/dev/null
rgw_kill
probe_release
probe_line '^aborted ' 600 >/dev/null
probe_end
[ "$PROBE_RC" = 1 ] || fail "left probe: exit $PROBE_RC, not 1"
grep -q "abort multipart upload $id: .*Connection refused" "$PROBE_ERR" ||
	fail "left: no warning naming upload $id: $(cat "$PROBE_ERR")"
rgw_restart
uploads | grep -q -- "$id" || fail "left: s3cmd does not list upload $id: $(uploads)"
probe --list t/ | grep -qx "upload t/left.zsnap $id" ||
	fail "left: s3_multipart_list does not find upload $id"
s3c abortmp s3://snaps/t/left.zsnap "$id" >/dev/null || fail "s3cmd abortmp $id failed"
echo "left: $(grep -m1 "abort multipart upload $id" "$PROBE_ERR")"
echo "left: s3cmd and s3_multipart_list find upload $id after the restart"

# ---- a complete that timed out, yet went through -------------------------
# radosgw stopped before the finish: HEAD and CompleteMultipartUpload time
# out (3 s, no retry) and the finish fails; after SIGCONT radosgw reads the
# complete still in its socket and makes the object.  The abort then finds
# no upload, and removes the object (a multipart ETag of our 2 parts).
probe_start late --key t/late.zsnap --size $((2 * PART)) --writes 1M \
    --timeout 3 --retries 0 --hold-at $((2 * PART)) --hold-before-abort
id=$(field upload_id "$(probe_line '^open ')")
probe_line "^hold $((2 * PART)) parts=2" >/dev/null
rgw_stop
probe_release
probe_line '^hold abort' 300 >/dev/null
rgw_cont
failed=$(grep '^finish failed ' "$PROBE_OUT") || fail "late: no failed finish: $(cat "$PROBE_OUT")"
grep -q 'errno=ETIMEDOUT: POST s3://snaps/t/late.zsnap complete' <<<"$failed" || fail "late: $failed"
n=100
until [ -n "$(object_size t/late.zsnap)" ] || [ "$n" -eq 0 ]; do
	sleep 0.1
	n=$((n - 1))
done
late=$(object_size t/late.zsnap)
probe_release
probe_end
[ "$PROBE_RC" = 1 ] || fail "late probe: exit $PROBE_RC, not 1"
if [ -n "$late" ]; then
	grep -q 's3://snaps/t/late.zsnap: completed although its snapshot failed; removed' "$PROBE_ERR" ||
		fail "late: the object appeared, and the abort did not say it removed it: $(cat "$PROBE_ERR")"
	echo "late: $failed; the object appeared after SIGCONT and the abort removed it"
else
	echo "late: $failed; radosgw dropped the complete, the abort removed the upload"
fi
[ -z "$(object_size t/late.zsnap)" ] || fail "late: t/late.zsnap is left after the abort"
! uploads | grep -q -- "$id" || fail "late: upload $id is left: $(uploads)"

# ---- cancel during a stall ----------------------------------------------
probe_start cancel --key t/cancel.zsnap --size $((40 * MIB)) --writes 1M \
    --timeout 60 --hold-at 0 --cancel-after 2 --hold-before-end
id=$(field upload_id "$(probe_line '^open ')")
probe_line '^hold 0 ' >/dev/null
threads=$(ls "/proc/$PROBE_PID/task" | wc -l)	# with its 2 uploaders
rgw_stop
probe_release
failed=$(probe_line '^write failed ' 150)
probe_line '^hold end' >/dev/null
echo "cancel: $failed"
grep -q 'errno=ECANCELED' <<<"$failed" || fail "cancel: not ECANCELED: $failed"
[ "$(field cancel_ms "$failed")" -le 1000 ] || fail "cancel: the write took $(field cancel_ms "$failed") ms to return"
# The stalled uploads end too, radosgw still stopped: the uploader threads
# are gone within a few seconds (curl polls the sink's stop flag).
n=50
while [ "$(ls "/proc/$PROBE_PID/task" | wc -l)" -gt $((threads - 2)) ]; do
	[ "$n" -gt 0 ] || fail "cancel: the uploaders still run 5 s after the cancel ($(ls "/proc/$PROBE_PID/task" | wc -l) threads, $threads before)"
	sleep 0.1
	n=$((n - 1))
done
rgw_cont
probe_release
probe_end
aborted=$(grep '^aborted live=0 ' "$PROBE_OUT") || fail "cancel: no aborted line: $(cat "$PROBE_OUT")"
! uploads | grep -q -- "$id" || fail "cancel: upload $id is left: $(uploads)"
echo "cancel: the stalled uploads ended at once; after SIGCONT $aborted, no upload left"

# ---- limits and refusals at open ----------------------------------------
out=$(probe --key t/efbig.zsnap --efbig --end abort) || fail "efbig: exit $? ($out)"
grep -q '^efbig errno=EFBIG: s3://snaps/t/efbig.zsnap: larger than 10000 parts of 5 MiB$' <<<"$out" ||
	fail "efbig: $out"
! uploads | grep -q t/efbig.zsnap || fail "efbig: upload left"
out=$(probe --key t/one-part.zsnap --size 1) && fail "an existing key was replaced"
grep -q '^open failed errno=EEXIST: s3://snaps/t/one-part.zsnap: ' <<<"$out" || fail "existing key: $out"
out=$(probe --bucket nosuchbucket --key x.zsnap --size 1) && fail "missing bucket accepted"
grep -q '^open failed errno=ENOENT: .*NoSuchBucket' <<<"$out" || fail "missing bucket: $out"
(umask 077 && printf 'access_key %s\nsecret_key wrongsecret123\n' "$S3_ACCESS_KEY" >"$T/bad-credentials")
out=$(probe --credentials "$T/bad-credentials" --key t/bad.zsnap --size 1) &&
	fail "wrong credentials accepted"
grep -q '^open failed errno=EACCES: .*403' <<<"$out" || fail "wrong credentials: $out"
! grep -q wrongsecret <<<"$out" || fail "the secret key is in the message: $out"
echo "EFBIG past 10000 parts; an existing key, a missing bucket, wrong credentials refused at open"
[ -z "$(uploads | grep -E 't/(efbig|bad|x)\.zsnap')" ] || fail "uploads left: $(uploads)"

if grep -E 'Sanitizer|runtime error:' "$T"/*.err >&2; then
	fail "a sanitizer reported on the probe (above)"
fi
exit 0
