#!/bin/bash
# Regenerate the seed corpora in tests/fuzz/corpus/: they are checked in,
# and this is how they were made, so they can be remade the same way.
#
#	tests/fuzz/make_seeds.sh	(B=build-dir for the scratch binary)
#
#   reader/   small real snapshots written by snapd's own encoders
#             (tests/fuzz/make_seeds.c): *.zsnap files (one with a process
#             record, one incremental), and raw snapshots as *.rawin
#             (snapshot.json, a NUL, the region files)
#   procrec/  process records encoded by proto/procrec.c (make_seeds.c)
#   config/   the shipped conf/snapd.conf and variations on it, good and bad
#   control/  every command of proto/PROTOCOL.md, after qmp_capabilities,
#             and malformed or out-of-order messages
#   s3xml/    S3 replies (listings, an upload's id, errors) as radosgw sent
#             them, and AWS shapes it does not send
#
# Existing seeds of the same names are replaced; others are left alone.
set -eu
cd "$(dirname "$0")/../.."
B=${B:-build}
CC=${CC:-cc}
C=tests/fuzz/corpus
mkdir -p "$C/reader" "$C/procrec" "$C/config" "$C/control" "$C/s3xml" "$B/fuzz"

# ---- reader ----------------------------------------------------------------
PKGS="libzstd jansson libcurl expat"
"$CC" -std=gnu11 -O1 -D_GNU_SOURCE -pthread -DSNAPD_VERSION='"seeds"' \
    -Iproto -Idaemon/base -Idaemon/format -Itests/unit \
    $(pkg-config --cflags $PKGS) \
    -o "$B/fuzz/make_seeds" tests/fuzz/make_seeds.c daemon/format/*.c \
    daemon/base/log.c \
    proto/*.c $(pkg-config --libs $PKGS)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$B/fuzz/make_seeds" "$tmp"
cp "$tmp"/*.zsnap "$tmp"/*.rawin "$C/reader/"
cp "$tmp"/*.procrec "$C/procrec/"

# ---- config ----------------------------------------------------------------
cp conf/snapd.conf "$C/config/shipped.conf"
cat >"$C/config/minimal.conf" <<'EOF'
socket /tmp/snapd.sock
snapshot_dir /var/tmp/snapshots
buffer_size 16M
EOF
cat >"$C/config/every-key.conf" <<'EOF'
socket "/run/memsnap/snapd.sock"
socket_group "root"
socket_mode 0600
snapshot_dir "/srv/snap shots"
format raw
compression_level 19
compression_threads 0
pressure_level 0
buffer_size 4k
max_snapshots 1024
max_snapshots_per_uid 1
max_message_size 16m
max_connections_per_uid 4096
client_timeout 3600
on_discard fail
shutdown finish
shutdown_timeout 0
log_level debug
EOF
printf 'format zsnap\r\nbuffer_size 1G\r\n# a comment\r\n\r\nlog_level warning\r\n' \
    >"$C/config/crlf.conf"
cat >"$C/config/comments.conf" <<'EOF'
	# indented comment
socket_mode 0660	# trailing comment
snapshot_dir "/var/lib/memsnap/#not-a-comment" # but this is
buffer_size 64G#comment right after the value
max_message_size 1K
log_level error
EOF
cat >"$C/config/errors.conf" <<'EOF'
no_such_key 1
format zsnap
format raw
compression_level 20
compression_threads -1
buffer_size 1P
buffer_size_x 3
max_message_size 18446744073709551616
socket relative/path
socket_mode 0999
socket_group "no-such-group-here"
snapshot_dir "/unterminated
log_level loud
shutdown_timeout 1 2
on_discard rec"ord
client_timeout
max_snapshots ""
EOF

# ---- control ---------------------------------------------------------------
neg='{"execute": "qmp_capabilities"}'
ctl() {	# ctl NAME LINE...: one message per line, after the handshake
	local name=$1; shift
	{ echo "$neg"; printf '%s\n' "$@"; } >"$C/control/$name"
}
ctl query-version '{"execute": "query-version", "id": 1}'
ctl query-status '{"execute": "query-status", "id": "s"}'
ctl query-metrics '{"execute": "query-metrics", "id": "m"}'
ctl query-config '{"execute": "query-config", "arguments": {}}'
ctl query-snapshots '{"execute": "query-snapshots", "id": [1, {"a": null}]}'
ctl getfd-closefd '{"execute": "getfd", "arguments": {"fdname": "uffd"}, "id": 1}' \
    '{"execute": "closefd", "arguments": {"fdname": "uffd"}, "id": 2}' \
    '{"execute": "closefd", "arguments": {"fdname": "uffd"}, "id": 3}'
ctl snapshot-start '{"execute": "getfd", "arguments": {"fdname": "uffd"}, "id": 1}' \
    '{"execute": "snapshot-start", "arguments": {"uffd": "uffd", "regions": [{"start": 140737488289792, "length": 1073741824, "name": "heap"}], "name": "snap-x", "format": "raw", "level": 3, "buffer-size": 1048576, "pid": 1}, "id": 2}'
ctl snapshot-start-regions '{"execute": "snapshot-start", "arguments": {"uffd": "none", "regions": [{"start": 4096, "length": 8192}, {"start": 8192, "length": 4096, "name": ".bad"}]}}' \
    '{"execute": "getfd", "arguments": {"fdname": "u"}}' \
    '{"execute": "snapshot-start", "arguments": {"uffd": "u", "regions": [{"start": 4097, "length": 4096}]}}' \
    '{"execute": "snapshot-start", "arguments": {"uffd": "u", "regions": []}}'
ctl snapshot-cancel '{"execute": "snapshot-cancel", "arguments": {"id": 1}, "id": 7}' \
    '{"execute": "snapshot-cancel", "arguments": {"id": -1}}'
ctl snapshot-delete '{"execute": "snapshot-delete", "arguments": {"name": "snap-1"}}' \
    '{"execute": "snapshot-delete", "arguments": {"name": "../../etc/passwd"}}'
ctl malformed 'not json' '[1, 2]' '{"execute": 5}' '{"arguments": {}}' \
    '{"execute": "query-version", "arguments": []}' \
    '{"execute": "query-version", "extra": 1}' \
    '{"execute": "query-version", "id": 1, "id": 2}' \
    '{"execute": "no-such-command"}' \
    '{"execute": "query-version", "arguments": {"x": 1}}' \
    '{"execute": "getfd", "arguments": {"fdname": 5}}' \
    '{"execute": "getfd"}' \
    '{"execute": "qmp_capabilities"}' \
    '' '   ' '{"execute": "query-version", "id": 18446744073709551616}'
printf '%s\n' '{"execute": "query-version"}' '{"execute": "qmp_capabilities"}' \
    '{"execute": "qmp_capabilities"}' >"$C/control/before-negotiation"
printf '%s\n{"execute": "query-status"' "$neg" >"$C/control/partial"
{ echo "$neg"; printf '{"execute": "query-version", "id": "'
  head -c 5000 /dev/zero | tr '\0' 'x'; printf '"}\n'
  echo '{"execute": "query-version"}'; } >"$C/control/too-large"
# ---- s3xml -----------------------------------------------------------------
# Replies as radosgw (Ceph 16.2.15) sent them to curl in tests/ceph.sh's
# cluster, and two AWS shapes it did not send (a Message, an error after a
# 200 status line).
cat >"$C/s3xml/error-nosuchbucket.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message></Message><BucketName>nobucket</BucketName><RequestId>tx000006bb3a5968fab97b8-006b1107d0-1008-default</RequestId><HostId>1008-default-default</HostId></Error>
EOF
cat >"$C/s3xml/error-signature.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message></Message><RequestId>tx00000b33d4e62aed7d503-006b1107d0-1008-default</RequestId><HostId>1008-default-default</HostId></Error>
EOF
cat >"$C/s3xml/initiate.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>snapdtest</Bucket><Key>seedkey</Key><UploadId>2~6FWTufZmYS_Cih12v2IstDy7YPH2-nB</UploadId></InitiateMultipartUploadResult>
EOF
cat >"$C/s3xml/list-truncated.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>snapdtest</Name><Prefix>p/</Prefix><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>p/k1</Key><LastModified>2026-12-03T06:02:31.316Z</LastModified><ETag>&quot;e2098d651e27ea6046e53134afdb3043&quot;</ETag><Size>5000</Size><StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents><Contents><Key>p/k2</Key><LastModified>2026-12-03T06:02:31.340Z</LastModified><ETag>&quot;e2098d651e27ea6046e53134afdb3043&quot;</ETag><Size>5000</Size><StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents><NextContinuationToken>p/k2</NextContinuationToken><KeyCount>2</KeyCount></ListBucketResult>
EOF
cat >"$C/s3xml/uploads-truncated.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>snapdtest</Bucket><NextKeyMarker>open</NextKeyMarker><NextUploadIdMarker>2~W4mEXF49FgP4OXOhY2XUfVnYmPqPb_g</NextUploadIdMarker><MaxUploads>1</MaxUploads><IsTruncated>true</IsTruncated><Upload><Key>open</Key><UploadId>2~W4mEXF49FgP4OXOhY2XUfVnYmPqPb_g</UploadId><Initiator><ID>snapdtest</ID><DisplayName>snapd tests</DisplayName></Initiator><Owner><ID>snapdtest</ID><DisplayName>snapd tests</DisplayName></Owner><StorageClass>STANDARD</StorageClass><Initiated>2026-12-03T06:02:19.136Z</Initiated></Upload></ListMultipartUploadsResult>
EOF
cat >"$C/s3xml/complete.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://127.0.0.1/snapdtest/big</Location><Bucket>snapdtest</Bucket><Key>big</Key><ETag></ETag></CompleteMultipartUploadResult>
EOF
cat >"$C/s3xml/complete-error.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>

          <Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId></Error>
EOF

echo "seeds written to $C/{reader,procrec,config,control,s3xml}"
