#!/bin/bash
# The S3 client (proto/s3.h, through tests/workload/s3probe) against a
# real Ceph radosgw (tests/ceph.sh), and against s3cmd, a client we did
# not write.  What must hold:
#
#   bytes      a PUT reads back byte-exact; a ranged GET of the middle is
#              exactly those bytes; a range past the end is EBADMSG naming
#              where the object ends; HEAD gives the size and the MD5 ETag
#   list       a listing longer than a page (--page 3) gives every key once,
#              keys that need encoding (blank, '+', '=', UTF-8) included
#   multipart  5 MiB + 5 MiB + 1 byte completed: byte-exact through our GET
#              and through s3cmd (sha256), s3cmd sees a 3-part object; an
#              aborted upload leaves no object and no upload (s3cmd
#              multipart); uploads left open are listed (paged), as s3cmd
#              lists them
#   errors     a wrong secret: EACCES with S3's code, neither key in the
#              message; a missing bucket: ENOENT NoSuchBucket; radosgw
#              killed: retried (tries = retries + 1) then ECONNREFUSED;
#              radosgw stopped: ETIMEDOUT after the timeout; the cancel flag
#              ends a stalled request and a retry loop promptly (ECANCELED)
#   files      the credentials file is refused at mode 0644, owned by
#              another uid, or a symbolic link, the message naming the
#              file and why and never a key
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../ceph.sh"

S3PROBE=${S3PROBE:-$TESTS_BIN/s3probe}
BUCKET=snapdtest
CHECKS=0
t_init
[ -x "$S3PROBE" ] || fail "$S3PROBE is missing: build it first (make tests)"
t0=$(date +%s.%N)
ceph_start
ceph_make_bucket "$BUCKET"

CONF=$T/client.conf
cat >"$CONF" <<EOF
# the client side's S3 settings (s3_config_load), other keys ignored
socket $T/unused.sock
s3_endpoint $S3_ENDPOINT
s3_region $S3_REGION
s3_addressing path
s3_credentials $CEPH_DIR/s3-credentials
s3_timeout 10
s3_retries 2
EOF

# probe NAME ARGS...: s3probe on $CONF, its JSON in $T/NAME.json.
probe() {
	local name=$1 rc=0
	shift
	"$S3PROBE" --conf "${PROBE_CONF:-$CONF}" "$@" >"$T/$name.json" \
	    2>"$T/$name.err" || rc=$?
	return $rc
}

# ok NAME ARGS...: the request succeeds.
ok() {
	probe "$@" || fail "$*: $(cat "$T/$1.json" "$T/$1.err")"
	CHECKS=$((CHECKS + 1))
}

# refused NAME ERRNO TEXT ARGS...: the request fails with ERRNO and a
# message holding TEXT, and neither key appears in what s3probe printed.
refused() {
	local name=$1 want=$2 text=$3 got msg
	shift 3
	probe "$name" "$@" && fail "$name: $* succeeded: $(cat "$T/$name.json")"
	got=$(json_get "$T/$name.json" errno) || fail "$name: no errno: $(cat "$T/$name.json" "$T/$name.err")"
	msg=$(json_get "$T/$name.json" error)
	[ "$got" = "$want" ] || fail "$name: errno $got, not $want: $msg"
	case $msg in *"$text"*) ;; *) fail "$name: message '$msg' does not say '$text'" ;; esac
	! grep -qF -e "$S3_SECRET_KEY" -e "$S3_ACCESS_KEY" -e wrongSecret "$T/$name.json" "$T/$name.err" ||
		fail "$name: a key appears in the output: $msg"
	echo "$name: $got: $msg"
	CHECKS=$((CHECKS + 1))
}

field() {
	json_expr "$T/$1.json" "o$2"
}

# ---- bytes ------------------------------------------------------------------
head -c $((1048576 + 123)) /dev/urandom >"$T/obj"
size=$(stat -c %s "$T/obj")
ok put put "s3://$BUCKET/bytes/obj" "$T/obj"
ok get get "s3://$BUCKET/bytes/obj" 0 "$size" "$T/obj.back"
cmp "$T/obj" "$T/obj.back" || fail "the object read back differs from what was put"
ok middle get "s3://$BUCKET/bytes/obj" 4097 100000 "$T/obj.middle"
cmp "$T/obj.middle" <(tail -c +4098 "$T/obj" | head -c 100000) ||
	fail "the ranged GET of bytes 4097..104096 differs"
refused past EBADMSG "ends at $size" get "s3://$BUCKET/bytes/obj" $((size - 1000)) 5000 "$T/x"
refused after EBADMSG "ends before byte $size" get "s3://$BUCKET/bytes/obj" "$size" 10 "$T/x"
ok head head "s3://$BUCKET/bytes/obj"
[ "$(field head '["size"]')" = "$size" ] || fail "HEAD size $(field head '["size"]'), not $size"
[ "$(field head '["etag"]')" = "$(md5sum <"$T/obj" | cut -d' ' -f1)" ] ||
	fail "HEAD ETag $(field head '["etag"]') is not the object's MD5"
echo "bytes: $size bytes put and read back, range and HEAD right"

# ---- list -------------------------------------------------------------------
keys=("list/a b+c=d" "list/caf$(printf '\xc3\xa9')" list/k1 list/k2 list/k3 list/k4 list/sub/k5)
head -c 10 /dev/urandom >"$T/small"
for k in "${keys[@]}"; do
	ok putk put "s3://$BUCKET/$k" "$T/small"
done
ok list --page 3 list "s3://$BUCKET/list/"
got=$(json_expr "$T/list.json" '"\n".join(sorted(x["key"] for x in o["keys"]))')
want=$(printf '%s\n' "${keys[@]}" | LC_ALL=C sort)
[ "$got" = "$want" ] || fail "a listing in pages of 3 gave
$got
not
$want"
[ "$(field list '["keys"][0]["size"]')" = 10 ] || fail "listed size is not 10"
ok getk get "s3://$BUCKET/list/a b+c=d" 0 10 "$T/small.back"
cmp "$T/small" "$T/small.back" || fail "the key with a blank, '+' and '=' reads back different"
echo "list: ${#keys[@]} keys in pages of 3, each once"

# ---- multipart --------------------------------------------------------------
MIB5=$((5 << 20))
head -c $((2 * MIB5 + 1)) /dev/urandom >"$T/big"
ok upload upload "s3://$BUCKET/mp/big" "$T/big" "$MIB5"
[ "$(field upload '["parts"].__len__()')" = 3 ] || fail "not 3 parts: $(cat "$T/upload.json")"
ok bigback get "s3://$BUCKET/mp/big" 0 $((2 * MIB5 + 1)) "$T/big.back"
cmp "$T/big" "$T/big.back" || fail "the 3-part object read back differs"
s3c info "s3://$BUCKET/mp/big" >"$T/info" 2>&1 || fail "s3cmd info: $(cat "$T/info")"
grep -q "File size: $((2 * MIB5 + 1))\$" "$T/info" || fail "s3cmd info: $(cat "$T/info")"
grep -q 'MD5 sum: .*-3$' "$T/info" || fail "s3cmd does not see a 3-part object: $(cat "$T/info")"
s3c get "s3://$BUCKET/mp/big" "$T/big.s3cmd" >"$T/s3cmd-get.out" 2>&1 ||
	fail "s3cmd get: $(cat "$T/s3cmd-get.out")"
[ "$(sha256sum <"$T/big.s3cmd")" = "$(sha256sum <"$T/big")" ] ||
	fail "s3cmd reads the 3-part object with another sha256"
CHECKS=$((CHECKS + 3))
echo "multipart: 5 MiB + 5 MiB + 1 byte, byte-exact here and through s3cmd"

ok aborted open "s3://$BUCKET/mp/aborted" "$T/big" "$MIB5"
id=$(field aborted '["upload_id"]')
ok abort abort "s3://$BUCKET/mp/aborted" "$id"
refused nobject ENOENT "404" head "s3://$BUCKET/mp/aborted"
s3c multipart "s3://$BUCKET" >"$T/mp.s3cmd" 2>&1 || fail "s3cmd multipart: $(cat "$T/mp.s3cmd")"
! grep -qF "$id" "$T/mp.s3cmd" || fail "the aborted upload $id is still listed by s3cmd"
refused reabort ENOENT NoSuchUpload abort "s3://$BUCKET/mp/aborted" "$id"
echo "abort: no object, no upload left"

ok left1 open "s3://$BUCKET/mp/left1" "$T/small" "$MIB5"
ok left2 open "s3://$BUCKET/mp/left2" "$T/small" "$MIB5"
ok uploads --page 1 list-uploads "s3://$BUCKET/mp/"
for n in 1 2; do
	want=$(field "left$n" '["upload_id"]')
	[ "$(json_expr "$T/uploads.json" "[u['upload_id'] for u in o['uploads'] if u['key'] == 'mp/left$n']")" = "[\"$want\"]" ] ||
		fail "upload mp/left$n ($want) not listed once: $(cat "$T/uploads.json")"
	s3c multipart "s3://$BUCKET" >"$T/mp.s3cmd" 2>&1 && grep -qF "$want" "$T/mp.s3cmd" ||
		fail "s3cmd does not list the open upload $want"
done
[ "$(field uploads '["uploads"].__len__()')" = 2 ] || fail "not 2 uploads: $(cat "$T/uploads.json")"
ok abort1 abort "s3://$BUCKET/mp/left1" "$(field left1 '["upload_id"]')"
ok abort2 abort "s3://$BUCKET/mp/left2" "$(field left2 '["upload_id"]')"
echo "uploads left open: both listed in pages of 1, as s3cmd lists them"

# ---- errors -----------------------------------------------------------------
(umask 077 && sed 's/^secret_key .*/secret_key wrongSecret0123456789/' \
    "$CEPH_DIR/s3-credentials" >"$T/bad-credentials") || fail "cannot write $T/bad-credentials"
sed "s|^s3_credentials .*|s3_credentials $T/bad-credentials|" "$CONF" >"$T/bad.conf"
PROBE_CONF=$T/bad.conf refused badkey EACCES "HTTP 403 SignatureDoesNotMatch" put "s3://$BUCKET/x" "$T/small"
[ "$(field badkey '["tries"]')" = 1 ] || fail "a 403 was retried"
refused nobucket ENOENT "HTTP 404 NoSuchBucket" list "s3://nobucket-$$/"
refused nobucket2 ENOENT "NoSuchBucket" head-bucket "nobucket-$$"

rgw_kill
refused refused ECONNREFUSED "Connection refused" --retries 2 head-bucket "$BUCKET"
[ "$(field refused '["tries"]')" = 3 ] || fail "tries $(field refused '["tries"]'), not retries + 1 = 3"
# Back-off: 250 ms then 500 ms between the tries.
[ "$(field refused '["elapsed_ms"]')" -ge 700 ] || fail "three tries in $(field refused '["elapsed_ms"]') ms: no back-off"
# Cancel between tries: the back-off ends at once.
refused cancelretry ECANCELED cancelled --retries 10 --cancel-after 600 head-bucket "$BUCKET"
[ "$(field cancelretry '["elapsed_ms"]')" -lt 2000 ] || fail "cancel during back-off took $(field cancelretry '["elapsed_ms"]') ms"
[ "$(field cancelretry '["tries"]')" -lt 11 ] || fail "cancel did not stop the retries"
rgw_restart
ok again head-bucket "$BUCKET"
echo "radosgw restarted (pid $RGW_PID): the client reaches it again"

rgw_stop
refused stalled ETIMEDOUT "no progress for 2 s" --timeout 2 --retries 0 head-bucket "$BUCKET"
ms=$(field stalled '["elapsed_ms"]')
[ "$ms" -ge 1900 ] && [ "$ms" -lt 10000 ] || fail "ETIMEDOUT after $ms ms with a 2 s timeout"
refused cancel ECANCELED cancelled --timeout 30 --retries 4 --cancel-after 500 list "s3://$BUCKET/"
ms=$(field cancel '["elapsed_ms"]')
[ "$ms" -lt 3000 ] || fail "the cancel flag ended a stalled request after $ms ms"
[ "$(field cancel '["tries"]')" = 1 ] || fail "a cancelled request was retried"
rgw_cont
ok thawed head-bucket "$BUCKET"

# ---- credentials files ------------------------------------------------------
cp -p "$CEPH_DIR/s3-credentials" "$T/cred"
sed "s|^s3_credentials .*|s3_credentials $T/cred|" "$CONF" >"$T/cred.conf"
PROBE_CONF=$T/cred.conf ok credok head-bucket "$BUCKET"
chmod 0644 "$T/cred"
PROBE_CONF=$T/cred.conf refused mode644 EACCES "credentials file $T/cred: mode 0644: group or others may read it" head-bucket "$BUCKET"
chmod 0600 "$T/cred"
if [ "$(id -u)" -eq 0 ]; then
	chown 12345 "$T/cred"
	PROBE_CONF=$T/cred.conf refused owner EACCES "credentials file $T/cred: owned by uid 12345, not 0" head-bucket "$BUCKET"
	chown 0 "$T/cred"
else
	echo "owner: not checked (giving a file away needs root; test_s3conf checks it)"
fi
ln -s "$T/cred" "$T/cred.link"
sed "s|^s3_credentials .*|s3_credentials $T/cred.link|" "$CONF" >"$T/link.conf"
PROBE_CONF=$T/link.conf refused symlink ELOOP "credentials file $T/cred.link: a symbolic link" head-bucket "$BUCKET"

t1=$(date +%s.%N)
printf 'PASS: %d checks in %.1f s (Ceph up in %s s)\n' "$CHECKS" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$CEPH_START_SECONDS"
