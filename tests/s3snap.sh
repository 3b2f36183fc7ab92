# Helpers for the tests of snapshots snapd takes to S3 (sourced after
# tests/lib.sh and tests/ceph.sh, once ceph_start has run).
#
#	s3_snapd_config "buffer_size 4M"	# snapd_config with the S3 keys
#	snapd_start
#	s3_cleanup_wait				# the start-up cleanup's line
#	snap_entry NAME 'e["upload"]["parts-uploaded"]'
#	s3_uploads				# unfinished uploads in the bucket
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

# snapd_rss_kb: snapd's resident memory now, in KiB.
snapd_rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$SNAPD_PID/status"
}
