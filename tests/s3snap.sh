# Helpers for the tests of snapshots snapd takes to S3 (sourced after
# tests/lib.sh and tests/ceph.sh, once ceph_start has run).
#
#	s3_snapd_config "buffer_size 4M"	# snapd_config with the S3 keys
#	snapd_start
#	s3_cleanup_wait				# the start-up cleanup's line
#	snap_entry NAME 'e["upload"]["parts-uploaded"]'
#	s3_uploads				# unfinished uploads in the bucket
#	held_start NAME cancel; ...		# a snapshot held mid-upload
#	s3_stall NAME 10 OUT			# radosgw stopped under it
#
# The bucket is $S3_BUCKET, snapd's s3_url s3://$S3_BUCKET/$S3_PREFIX; the
# client side (libsnapclient, memsnapctl) reads the same file through
# $SNAP_S3_CONFIG.

S3_BUCKET=${S3_BUCKET:-snaps}
S3_PREFIX=${S3_PREFIX:-host1}

# s3_snapd_config [KEY VALUE]...: snapd_config with s3_endpoint, s3_url,
# the harness's credentials file, 5 MiB parts, then the arguments (a key
# given twice is an error: do not repeat these).
s3_snapd_config() {
	snapd_config "s3_endpoint $S3_ENDPOINT" \
	    "s3_url s3://$S3_BUCKET/$S3_PREFIX" \
	    "s3_credentials $CEPH_DIR/s3-credentials" \
	    "s3_part_size 5M" "$@"
	export SNAP_S3_CONFIG=$SNAPD_CONF
}

# s3_cleanup_wait [N]: wait (30 s) for snapd's start-up cleanup to log that
# it aborted N (any, by default) unfinished uploads; prints the line.
s3_cleanup_wait() {
	local re="s3: aborted ${1:-[0-9]*} unfinished uploads under s3://$S3_BUCKET/$S3_PREFIX/"
	t_wait_line "$SNAPD_LOG" "$re" 300 ||
		fail "snapd never logged \"$re\" (the start-up cleanup)"
	grep -o "s3: aborted.*" "$SNAPD_LOG" | tail -n 1
}

# snap_entry NAME EXPR: the Python expression EXPR over e, the newest
# query-snapshots entry named NAME; fails if there is none.
snap_entry() {
	"$MEMSNAPCTL_BIN" -j qmp '{"execute": "query-snapshots"}' >"$T/query.json" ||
		fail "query-snapshots failed: $(cat "$T/query.json")"
	python3 - "$T/query.json" "$1" "$2" <<'EOF'
import json, sys
o = json.load(open(sys.argv[1]))
es = [x for x in o["return"] if x["name"] == sys.argv[2]]
if not es:
    sys.exit("no snapshot named %s in query-snapshots" % sys.argv[2])
v = eval(sys.argv[3], {}, {"e": es[-1]})
print(json.dumps(v) if isinstance(v, (bool, dict, list)) else v)
EOF
}

# s3_uploads: the unfinished multipart uploads in the bucket, as s3cmd (a
# client we did not write) lists them: one "KEY UPLOAD-ID" line each.
s3_uploads() {
	s3c multipart "s3://$S3_BUCKET" >"$T/multipart.out" 2>&1 ||
		fail "s3cmd multipart s3://$S3_BUCKET failed: $(cat "$T/multipart.out")"
	awk -v b="s3://$S3_BUCKET/" 'index($2, b) == 1 { print substr($2, length(b) + 1), $3 }' \
	    "$T/multipart.out"
}

# s3_object_size KEY: the size s3cmd sees of object KEY in the bucket, or
# nothing if there is none.
s3_object_size() {
	s3c ls "s3://$S3_BUCKET/$1" 2>/dev/null |
	    awk -v u="s3://$S3_BUCKET/$1" '$4 == u { print $3 }'
}

# held_start NAME UNTIL ARGS...: snapwork taking NAME (128 MiB of 4
# writers, incompressible) to S3 in the background, held by the test hook
# at half its pages until UNTIL (release, cancel); waits until it holds
# and has uploaded a part.  Sets HELD_PID and HELD_ID.
held_start() {
	local name=$1 until=$2 n=600
	shift 2
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 128M --threads 4 \
	    --pattern mixed --incompressible --name "$name" --to s3 \
	    --test-hold "{\"until\": \"$until\", \"at\": \"half-swept\"}" "$@" \
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
# release ID: end snapshot ID's hold "until release".
release() {
	"$MEMSNAPCTL_BIN" -j qmp "{\"execute\": \"test-release\", \"arguments\": {\"id\": $1}}" \
	    >/dev/null || fail "test-release $1 failed"
}

# s3_stall NAME SECONDS OUT: once snapshot NAME has uploaded two parts,
# stop radosgw ($RGW_PID, SIGSTOP) for SECONDS, sampling snapd's RSS and
# the snapshot's figures every 0.2 s into OUT, one JSON line each ("t":
# seconds since the stop, "rss-kb", the query-snapshots entry), then let
# it go on (SIGCONT, whatever happens).  Fails if the snapshot ends first.
s3_stall() {
	PYTHONPATH=$TOP/tests python3 - "$SNAPD_SOCK" "$1" "$RGW_PID" "$SNAPD_PID" \
	    "$2" "$3" <<'EOF' || fail "could not stall snapshot $1's upload (above)"
import json, os, signal, sys, time
from qmp import QMP
sock, name, rgw, snapd, secs, out = sys.argv[1:7]
rgw, snapd, secs = int(rgw), int(snapd), float(secs)
c = QMP(sock)
def entry():
    es = [x for x in c.cmd({"execute": "query-snapshots"})["return"] if x["name"] == name]
    return es[-1] if es else None
def rss():
    for l in open("/proc/%d/status" % snapd):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
end = time.monotonic() + 60
while True:
    e = entry()
    if e and e["state"] in ("completed", "failed", "cancelled"):
        sys.exit("snapshot %s ended (%s) before two parts were uploaded" % (name, e["state"]))
    if e and "upload" in e and e["upload"]["parts-uploaded"] >= 2:
        break
    if time.monotonic() > end:
        sys.exit("snapshot %s uploaded no two parts in 60 s" % name)
    time.sleep(0.01)
t0 = time.monotonic()
os.kill(rgw, signal.SIGSTOP)
try:
    with open(out, "w") as f:
        while time.monotonic() - t0 < secs:
            e = entry()
            f.write(json.dumps({"t": time.monotonic() - t0, "rss-kb": rss(), "e": e}) + "\n")
            time.sleep(0.2)
finally:
    os.kill(rgw, signal.SIGCONT)
EOF
}

# snapd_rss_kb: snapd's resident memory now, in KiB.
snapd_rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$SNAPD_PID/status"
}
