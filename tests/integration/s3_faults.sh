#!/bin/bash
# Snapshots to S3 when S3 fails under them, against a real radosgw
# (tests/ceph.sh).  Each snapshot is held by the test hook at half its
# pages ("until": "release", "at": "half-swept": its parts are being
# uploaded, the writer drains the buffer meanwhile) while the fault is
# made, then released:
#  - the start-up cleanup aborts what an earlier snapd left under
#    host1/ (an upload s3probe leaves open there) and nothing under
#    host10/ (a prefix that merely starts the same);
#  - radosgw killed: the snapshot fails saying why, snapwork's writers
#    were never blocked for a second and its memory is intact; the upload
#    the snapshot could not abort is aborted by the next snapd's start-up
#    cleanup ("s3: aborted 1 unfinished uploads"), and s3cmd lists none;
#  - snapd killed (SIGKILL) mid-upload: the same, from the next start;
#  - radosgw stopped (SIGSTOP) for 10 s: S3 takes nothing (bytes-uploaded
#    still), snapd's RSS stays flat and within the page buffer plus the
#    part buffers, the writers wait only while the buffer is full (every
#    sample shows it full), then after SIGCONT the snapshot completes and
#    restores to the armed instant, 0 wrong pages; its figures show the
#    writes that waited for a part buffer (upload waits) and for the page
#    buffer (buffer-full-waits).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../ceph.sh"
. "$(dirname "$0")/../s3snap.sh"
S3PROBE=${S3PROBE:-$TESTS_BIN/s3probe}
t_init
[ -x "$S3PROBE" ] || fail "$S3PROBE is missing: build it first (make tests)"
ceph_start
ceph_make_bucket "$S3_BUCKET"
S3=s3://$S3_BUCKET/$S3_PREFIX

s3_snapd_config "compression_threads 1" "buffer_size 4M" \
    "s3_parts_in_flight 2" "s3_retries 0" "s3_timeout 30"

# ---- the start-up cleanup ------------------------------------------------------------
head -c $((6 << 20)) /dev/urandom >"$T/six-mib"
for k in "$S3_PREFIX/left.zsnap" "${S3_PREFIX}0/other-host.zsnap"; do
	"$S3PROBE" --conf "$SNAPD_CONF" open "s3://$S3_BUCKET/$k" "$T/six-mib" \
	    $((5 << 20)) >"$T/open.json" 2>&1 || fail "s3probe open $k: $(cat "$T/open.json")"
done
[ "$(s3_uploads | wc -l)" -eq 2 ] || fail "s3cmd does not list the two open uploads: $(s3_uploads)"
snapd_start
line=$(s3_cleanup_wait 1) || exit 1
left=$(s3_uploads)
[ "$left" != "${left#"${S3_PREFIX}0/other-host.zsnap "}" ] && [ "$(echo "$left" | wc -l)" -eq 1 ] ||
	fail "after the cleanup the uploads left are: $left"
echo "ok: start-up cleanup: $line; ${S3_PREFIX}0/ untouched"
"$S3PROBE" --conf "$SNAPD_CONF" abort "s3://$S3_BUCKET/${S3_PREFIX}0/other-host.zsnap" \
    "${left#* }" >/dev/null 2>&1 || fail "cannot abort the other host's upload"

# held_start NAME ARGS...: snapwork taking NAME to S3 in the background,
# held at half its pages until released; waits until it holds (and has
# uploaded a part).  Sets HELD_PID and HELD_ID.
held_start() {
	local name=$1 n=600
	shift
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 128M --threads 4 \
	    --pattern mixed --incompressible --name "$name" --to s3 \
	    --test-hold '{"until": "release", "at": "half-swept"}' "$@" \
	    >"$T/$name.json" 2>"$T/$name.json.err" &
	HELD_PID=$!
	t_track "$HELD_PID"
	until HELD_ID=$(snap_entry "$name" 'e["id"]' 2>/dev/null) &&
	    grep -q "snapshot $HELD_ID: test hook: holding the writer" "$SNAPD_LOG" &&
	    [ "$(snap_entry "$name" 'e["upload"]["parts-uploaded"]')" -gt 0 ]; do
		kill -0 "$HELD_PID" 2>/dev/null || { show_snapwork "$T/$name.json"; fail "snapwork $name ended before the hold"; }
		[ "$n" -gt 0 ] || fail "snapshot $name never held with a part uploaded"
		sleep 0.1
		n=$((n - 1))
	done
}
release() {
	"$MEMSNAPCTL_BIN" -j qmp "{\"execute\": \"test-release\", \"arguments\": {\"id\": $1}}" \
	    >/dev/null || fail "test-release $1 failed"
}

# parts_idle NAME: wait (30 s) until snapshot NAME's held upload has no
# part in flight (parts-uploaded still for a second); prints the count.
parts_idle() {
	local a b n=30
	a=$(snap_entry "$1" 'e["upload"]["parts-uploaded"]')
	while sleep 1; b=$(snap_entry "$1" 'e["upload"]["parts-uploaded"]'); [ "$a" != "$b" ]; do
		[ "$n" -gt 0 ] || fail "snapshot $1's parts are still uploading after 30 s of hold"
		a=$b
		n=$((n - 1))
	done
	echo "$b"
}

# ---- radosgw killed mid-upload ---------------------------------------------------------
held_start gwkill --may-fail
parts=$(parts_idle gwkill) || exit 1
rgw_kill
release "$HELD_ID"
rc=0
wait "$HELD_PID" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$T/gwkill.json"; fail "snapwork's writers were blocked or its memory damaged when radosgw died"; }
[ "$(json_get "$T/gwkill.json" completed)" = false ] || fail "the snapshot completed without radosgw"
err=$(snap_entry gwkill 'e["error"]')
case $err in *"onnection refused"*) ;; *) fail "the failure does not say why: $err" ;; esac
[ "$(snap_entry gwkill 'e["state"]')" = failed ] || fail "the snapshot is $(snap_entry gwkill 'e["state"]')"
gap=$(json_get "$T/gwkill.json" writer-gap-max-us) || fail "no writer-gap-max-us in snapwork's report"
echo "ok: radosgw killed after $parts parts: the snapshot failed: $err; longest writer wait ${gap} us"
rgw_launch
n=$(s3_uploads | grep -c "^$S3_PREFIX/gwkill.zsnap ")
echo "ok: uploads the failed snapshot could not abort: $n"
snapd_stop || fail "snapd did not stop cleanly"
snapd_start
line=$(s3_cleanup_wait "$n") || exit 1
[ -z "$(s3_uploads)" ] || fail "after snapd's restart uploads are left: $(s3_uploads)"
echo "ok: after snapd's restart: $line; s3cmd lists none"

# ---- snapd killed mid-upload -------------------------------------------------------------
held_start sigkill --expect-fail --run-after 30 --after-loss 1
snapd_kill
wait "$HELD_PID" || { show_snapwork "$T/sigkill.json"; fail "snapwork's writers were blocked or its memory damaged when snapd died"; }
[ "$(s3_uploads | grep -c "^$S3_PREFIX/sigkill.zsnap ")" -eq 1 ] ||
	fail "the killed snapd's upload is not listed: $(s3_uploads)"
snapd_start
line=$(s3_cleanup_wait 1) || exit 1
[ -z "$(s3_uploads)" ] || fail "after snapd's restart uploads are left: $(s3_uploads)"
[ -z "$(s3_object_size "$S3_PREFIX/sigkill.zsnap")" ] || fail "a killed snapd's half snapshot became an object"
echo "ok: snapd killed mid-upload: the next one's $line; no object, no upload"

# ---- radosgw stopped for 10 s ------------------------------------------------------------
rss0=$(snapd_rss_kb)
held_start stalled --stuck-after 60
rgw_stop
release "$HELD_ID"
: >"$T/samples"
for i in $(seq 1 20); do
	sleep 0.5
	echo "$(snapd_rss_kb) $(snap_entry stalled '[e["upload"]["bytes-uploaded"], e["buffer-used"], e["buffer-size"], e["pages-saved"]]' | tr -d '[],')" >>"$T/samples"
done
rgw_cont
wait "$HELD_PID" || { show_snapwork "$T/stalled.json"; fail "the snapshot did not complete and verify after SIGCONT"; }
[ "$(json_get "$T/stalled.json" wrong-pages)" -eq 0 ] || fail "the stalled snapshot has wrong pages"
snap_entry stalled e >"$T/stalled.entry"
python3 - "$T/samples" "$T/stalled.entry" "$rss0" "${SANITIZE:-}" <<'EOF' || { cat "$T/samples" >&2; fail "radosgw's stop was not absorbed as a slow disk is (above)"; }
import json, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
e = json.load(open(sys.argv[2]))
rss0 = int(sys.argv[3])
u = e["upload"]
# The first second lets the parts in flight and the buffers settle.
held = rows[2:]
if len({r[1] for r in held}) != 1:
    sys.exit("bytes-uploaded moved while radosgw was stopped: %s" % [r[1] for r in held])
if any(r[2] != r[3] for r in held):
    sys.exit("writers waited while the page buffer was not full: buffer-used %s of %d"
             % ([r[2] for r in held], held[0][3]))
if len({r[4] for r in held}) != 1:
    sys.exit("pages were saved while S3 took nothing: %s" % [r[4] for r in held])
# Beside the page buffer and the part buffers: the compression ring and
# contexts, the read buffer, the threads' stacks and arenas.  ASan keeps
# freed memory in quarantine: RSS says nothing of snapd's bound there.
budget_kb = (e["buffer-size"] + u["memory"]) // 1024 + 32 * 1024
peak = max(r[0] for r in rows)
if sys.argv[4]:
    print("RSS bound not checked in a SANITIZE=%s build" % sys.argv[4])
elif peak - rss0 > budget_kb:
    sys.exit("snapd's RSS grew by %d KiB, more than buffer + parts + 32 MiB = %d KiB"
             % (peak - rss0, budget_kb))
spread = max(r[0] for r in held) - min(r[0] for r in held)
if spread > 2048:
    sys.exit("snapd's RSS moved by %d KiB while S3 was stopped" % spread)
if u["waits"] == 0 or e["buffer-full-waits"] == 0:
    sys.exit("no write waited (upload waits %d, buffer-full-waits %d)"
             % (u["waits"], e["buffer-full-waits"]))
print("RSS %d KiB before, peak +%d KiB (budget %d), %d KiB spread while stopped; "
      "upload waits %d, buffer-full-waits %d, %d parts"
      % (rss0, peak - rss0, budget_kb, spread, u["waits"], e["buffer-full-waits"],
         u["parts-uploaded"]))
EOF
echo "ok: radosgw stopped 10 s: the snapshot waited like one on a slow disk and completed, 0 wrong pages"
[ -z "$(s3_uploads)" ] || fail "uploads are left: $(s3_uploads)"
snapd_stop || fail "snapd did not stop cleanly"
