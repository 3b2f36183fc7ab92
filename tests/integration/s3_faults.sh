#!/bin/bash
# Snapshots to S3 when S3 fails under them, against a real radosgw
# (tests/ceph.sh).  snapwork's four writers rewrite 128 MiB of
# incompressible pages while the snapshot goes to "to": "s3" in 5 MiB
# parts; each fault is made once the query-snapshots figures show two
# parts uploaded (the upload under way, most of it still to come):
#  - the start-up cleanup aborts what an earlier snapd left under host1/
#    (an upload s3probe leaves open there) and nothing under host10/ (a
#    prefix that merely starts the same);
#  - radosgw killed: the snapshot fails saying why, snapwork's writers
#    were never blocked for a second and its memory is intact; the upload
#    the snapshot could not abort is aborted by the next snapd's start-up
#    cleanup ("s3: aborted 1 unfinished uploads"), and s3cmd lists none;
#  - snapd killed (SIGKILL) mid-upload: the same, from the next start,
#    and no object appears;
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

# No retries: a refused connection fails the snapshot at once.
s3_snapd_config "compression_threads 1" "buffer_size 4M" \
    "s3_parts_in_flight 2" "s3_retries 0"

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

# s3work NAME ARGS...: snapwork taking NAME to S3 in the background, its
# report in $T/NAME.json; sets WORK_PID.
s3work() {
	local name=$1
	shift
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 128M --threads 4 \
	    --pattern mixed --incompressible --name "$name" --to s3 "$@" \
	    >"$T/$name.json" 2>"$T/$name.json.err" &
	WORK_PID=$!
	t_track "$WORK_PID"
}
TWO_PARTS='"upload" in s and s["upload"]["parts-uploaded"] >= 2'

# ---- radosgw killed mid-upload ---------------------------------------------------------
s3work gwkill --may-fail
kill_when gwkill "$RGW_PID" "$TWO_PARTS" 60 >"$T/gwkill.poll" ||
	{ cat "$T/gwkill.poll" >&2; fail "the upload never reached two parts"; }
rgw_kill
parts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"]["upload"]["parts-uploaded"])' "$T/gwkill.poll")
rc=0
wait "$WORK_PID" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$T/gwkill.json"; fail "snapwork's writers were blocked or its memory damaged when radosgw died"; }
[ "$(json_get "$T/gwkill.json" completed)" = false ] || fail "the snapshot completed without radosgw"
err=$(snap_entry gwkill 'e["error"]')
# The part in flight when radosgw died, or the next one: which request
# failed, against which service, and curl's reason.
echo "$err" | grep -Eq "^PUT s3://$S3_BUCKET/$S3_PREFIX/gwkill.zsnap part [0-9]+: .*${S3_ENDPOINT#http://}: [A-Z]" ||
	fail "the failure does not say which request failed where and why: $err"
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
s3work sigkill --expect-fail --run-after 30 --after-loss 1
kill_when sigkill "$SNAPD_PID" "$TWO_PARTS" 60 >"$T/sigkill.poll" ||
	{ cat "$T/sigkill.poll" >&2; fail "the upload never reached two parts"; }
wait "$SNAPD_PID" 2>/dev/null
SNAPD_PID=
wait "$WORK_PID" || { show_snapwork "$T/sigkill.json"; fail "snapwork's writers were blocked or its memory damaged when snapd died"; }
[ "$(s3_uploads | grep -c "^$S3_PREFIX/sigkill.zsnap ")" -eq 1 ] ||
	fail "the killed snapd's upload is not listed: $(s3_uploads)"
snapd_start
line=$(s3_cleanup_wait 1) || exit 1
[ -z "$(s3_uploads)" ] || fail "after snapd's restart uploads are left: $(s3_uploads)"
[ -z "$(s3_object_size "$S3_PREFIX/sigkill.zsnap")" ] || fail "a killed snapd's half snapshot became an object"
echo "ok: snapd killed mid-upload: the next one's $line; no object, no upload"

# ---- radosgw stopped for 10 s ------------------------------------------------------------
rss0=$(snapd_rss_kb)
s3work stalled --stuck-after 60
s3_stall stalled 10 "$T/samples"
wait "$WORK_PID" || { show_snapwork "$T/stalled.json"; fail "the snapshot did not complete and verify after SIGCONT"; }
[ "$(json_get "$T/stalled.json" wrong-pages)" -eq 0 ] || fail "the stalled snapshot has wrong pages"
snap_entry stalled e >"$T/stalled.entry"
python3 - "$T/samples" "$T/stalled.entry" "$rss0" "${SANITIZE:-}" <<'EOF' || fail "radosgw's stop was not absorbed as a slow disk is (above)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
e = json.load(open(sys.argv[2]))
rss0 = int(sys.argv[3])
u = e["upload"]
def show(key):
    return [r["e"][key] if not isinstance(key, tuple) else r["e"][key[0]][key[1]] for r in held]
# The first second lets the parts in flight and the buffers settle.
held = [r for r in rows if r["t"] >= 1.0]
if len(held) < 20:
    sys.exit("only %d samples while radosgw was stopped" % len(held))
if any(r["e"]["state"] != "running" for r in held):
    sys.exit("the snapshot left running while S3 was stopped: %s" % show("state"))
if len(set(show(("upload", "bytes-uploaded")))) != 1:
    sys.exit("bytes-uploaded moved while radosgw was stopped: %s" % show(("upload", "bytes-uploaded")))
if any(r["e"]["buffer-used"] != r["e"]["buffer-size"] for r in held):
    sys.exit("the writers were held while the page buffer was not full: buffer-used %s of %d"
             % (show("buffer-used"), held[0]["e"]["buffer-size"]))
if len(set(show("pages-saved"))) != 1:
    sys.exit("pages were saved while S3 took nothing: %s" % show("pages-saved"))
# Beside the page buffer and the part buffers: the compression ring and
# contexts, the read buffer, the threads' stacks and arenas.  ASan keeps
# freed memory in quarantine: RSS says nothing of snapd's bound there.
budget_kb = (e["buffer-size"] + u["memory"]) // 1024 + 32 * 1024
peak = max(r["rss-kb"] for r in rows)
spread = max(r["rss-kb"] for r in held) - min(r["rss-kb"] for r in held)
if sys.argv[4]:
    print("RSS bound not checked in a SANITIZE=%s build" % sys.argv[4])
elif peak - rss0 > budget_kb:
    sys.exit("snapd's RSS grew by %d KiB, more than buffer + parts + 32 MiB = %d KiB"
             % (peak - rss0, budget_kb))
if spread > 2048:
    sys.exit("snapd's RSS moved by %d KiB while S3 was stopped" % spread)
if u["waits"] == 0 or e["buffer-full-waits"] == 0:
    sys.exit("no write waited (upload waits %d, buffer-full-waits %d)"
             % (u["waits"], e["buffer-full-waits"]))
print("%d samples over %.1f s: RSS %d KiB before, peak +%d KiB (budget %d), %d KiB spread "
      "while stopped, bytes-uploaded still at %d, the page buffer full; then "
      "upload waits %d, buffer-full-waits %d, %d parts"
      % (len(rows), rows[-1]["t"], rss0, peak - rss0, budget_kb, spread,
         held[0]["e"]["upload"]["bytes-uploaded"], u["waits"], e["buffer-full-waits"],
         u["parts-uploaded"]))
EOF
echo "ok: radosgw stopped 10 s: the snapshot waited like one on a slow disk and completed, 0 wrong pages"
[ -z "$(s3_uploads)" ] || fail "uploads are left: $(s3_uploads)"
snapd_stop || fail "snapd did not stop cleanly"
