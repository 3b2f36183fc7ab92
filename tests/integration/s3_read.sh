#!/bin/bash
# Reading snapshots stored in S3: zsnap files made on disk by snapd (a 256
# MiB snapshot of incompressible memory from snapwork, a small one with a
# process record from attach, and test_chain's base and four deltas) are
# put into a real radosgw (tests/ceph.sh) with s3cmd, a client we did not
# write; then memsnapctl reads them as s3://BUCKET/KEY through
# libsnapclient's ranged GETs:
#  - info, info --json and verify print the same as for the local files
#    (the name aside); export --raw writes byte-identical directories;
#    lazycheck restores lazily from S3 page for page;
#  - a chain uploaded side by side verifies and exports as on disk; with a
#    parent object missing it is refused naming the link;
#  - a truncated object and one with a flipped byte are BAD, saying why;
#  - list --remote lists exactly the .zsnap objects put under the prefix
#    (not those of a prefix that merely starts the same, nor other keys);
#  - wrong keys, a credentials file others may read, a settings file that
#    is missing or names no endpoint give errors naming what is wrong, and
#    the secret key appears in no output;
#  - the GETs radosgw logs are counted: info of the 256 MiB object takes 2
#    (head and tail), verify fewer than size/1MiB + 10 (a GET per small
#    read would be thousands) and no more than one pass of 4 MiB windows,
#    export and a lazy restore no more than two passes (the chunks'
#    metadata, then the data).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../ceph.sh"
CTL=$MEMSNAPCTL_BIN
GEN=$TESTS_BIN/test_chain
LAZYCHECK=${LAZYCHECK:-$TESTS_BIN/lazycheck}
for b in "$GEN" "$LAZYCHECK"; do
	[ -x "$b" ] || fail "$b is missing: build it first (make tests)"
done
t_init
ceph_start
ceph_make_bucket snaps
RGW_LOG=$CEPH_DIR/log/client.rgw.log

# ---- snapshots made on disk ----------------------------------------------------
snapd_config
snapd_start
run_snapwork "$T/big.json" --size 256M --threads 2 --incompressible \
    --name big --dump-expected "$T/big.expected" ||
	{ show_snapwork "$T/big.json"; fail "snapwork did not verify its snapshot"; }
BIG=$SNAPD_DIR/big.zsnap
[ -s "$BIG" ] || fail "snapwork's snapshot is not $BIG"
sleep 300 &
SLEEPER=$!
t_track "$SLEEPER"
t_wait_exec "$SLEEPER" sleep
"$CTL" save --pid "$SLEEPER" --name proc >"$T/save.out" 2>&1 ||
	{ cat "$T/save.out"; fail "memsnapctl save --pid $SLEEPER failed"; }
PROC=$SNAPD_DIR/proc.zsnap
kill "$SLEEPER"
snapd_stop
C=$T/chain
mkdir "$C" && "$GEN" --write "$C" >/dev/null || fail "test_chain --write $C failed"
echo "ok: made $BIG ($(stat -c %s "$BIG") bytes), $PROC and a chain of 5"

# ---- into S3, with s3cmd -----------------------------------------------------------
put() {		# FILE KEY
	s3c put "$1" "s3://snaps/$2" >"$T/put.out" 2>&1 ||
		{ cat "$T/put.out"; fail "s3cmd put $1 s3://snaps/$2 failed"; }
}
put "$BIG" host1/big.zsnap
put "$PROC" host1/proc.zsnap
for k in 0 1 2 3 4; do
	put "$C/c$k.zsnap" "host1/chain/c$k.zsnap"
done
# The same chain with its c2 missing.
for k in 0 1 3 4; do
	put "$C/c$k.zsnap" "host1/nochain/c$k.zsnap"
done
# Damaged copies of proc.zsnap: cut short, and a byte flipped in its chunks.
size=$(stat -c %s "$PROC")
head -c $((size - 100)) "$PROC" >"$T/truncated.zsnap"
cp "$PROC" "$T/flipped.zsnap"
python3 - "$T/flipped.zsnap" "$((size / 2))" <<'PYEOF' || fail "cannot flip a byte"
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PYEOF
put "$T/truncated.zsnap" host1/bad/truncated.zsnap
put "$T/flipped.zsnap" host1/bad/flipped.zsnap
# Not to be listed under s3://snaps/host1: another key, another prefix.
echo notes >"$T/notes.txt"
put "$T/notes.txt" host1/notes.txt
put "$PROC" host10/other.zsnap
put "$PROC" host1.zsnap

# The client's settings: the s3_* keys of a snapd.conf-grammar file.
cat >"$T/s3.conf" <<EOF
# read by libsnapclient through \$SNAP_S3_CONFIG
snapshot_dir /nonexistent/ignored
s3_endpoint $S3_ENDPOINT
s3_region $S3_REGION
s3_addressing path
s3_credentials $CEPH_DIR/s3-credentials
s3_timeout 10
s3_retries 1
EOF
export SNAP_S3_CONFIG=$T/s3.conf
S3=s3://snaps/host1

# ---- info, verify, export: as for the local file ------------------------------------
same_as_local() {	# LOCAL URL
	local l=$1 u=$2 n
	n=$(basename "$l")
	"$CTL" info "$l" >"$T/$n.info.local" 2>&1 || { cat "$T/$n.info.local"; fail "info $l failed"; }
	"$CTL" info "$u" >"$T/$n.info.s3" 2>&1 || { cat "$T/$n.info.s3"; fail "info $u failed"; }
	sed -i "s|$l|FILE|; s|$u|FILE|" "$T/$n.info.local" "$T/$n.info.s3"
	diff "$T/$n.info.local" "$T/$n.info.s3" >&2 || fail "info of $u differs from info of $l"
	"$CTL" -j info "$l" | sed "s|\"$l\"|\"FILE\"|" >"$T/$n.json.local" || fail "info -j $l failed"
	"$CTL" -j info "$u" | sed "s|\"$u\"|\"FILE\"|" >"$T/$n.json.s3" || fail "info -j $u failed"
	cmp -s "$T/$n.json.local" "$T/$n.json.s3" || fail "info -j of $u differs from that of $l"
	out_l=$("$CTL" verify "$l") || fail "verify $l: $out_l"
	out_u=$("$CTL" verify "$u") || fail "verify $u: $out_u"
	[ "${out_l#"$l"}" = "${out_u#"$u"}" ] ||
		fail "verify $u says \"$out_u\", verify $l \"$out_l\""
	"$CTL" export "$l" --raw "$T/$n.raw.local" || fail "export $l failed"
	"$CTL" export "$u" --raw "$T/$n.raw.s3" || fail "export $u failed"
	diff -r "$T/$n.raw.local" "$T/$n.raw.s3" >&2 ||
		fail "export --raw of $u is not byte-identical to that of $l"
	echo "ok: $u: info, info -j, verify (\"${out_u#"$u": }\") and export --raw as for $l"
}
same_as_local "$PROC" "$S3/proc.zsnap"
grep -q "^threads" "$T/proc.zsnap.info.s3" || grep -q "mappings" "$T/proc.zsnap.info.s3" ||
	{ cat "$T/proc.zsnap.info.s3"; fail "info of $S3/proc.zsnap shows no process record"; }
same_as_local "$BIG" "$S3/big.zsnap"
for r in "$T/big.expected"/*.img; do
	cmp -s "$r" "$T/big.zsnap.raw.s3/$(basename "$r")" ||
		fail "export of $S3/big.zsnap: $(basename "$r") is not the armed instant's memory"
done

# Lazy restore from S3: every page of the armed instant.
for mode in touch sweep; do
	"$LAZYCHECK" --file "$S3/big.zsnap" --expected "$T/big.expected" \
	    --mode "$mode" --threads 4 >"$T/lazy-$mode.log" 2>&1 ||
		{ cat "$T/lazy-$mode.log" >&2; fail "lazycheck --mode $mode from S3 failed"; }
done
echo "ok: lazy restore from $S3/big.zsnap (touch, sweep): the armed instant's memory"

# ---- chains ---------------------------------------------------------------------------
out=$("$CTL" verify "$S3/chain/c4.zsnap") || fail "verify of the chain in S3: $out"
[ "$out" = "$S3/chain/c4.zsnap: $("$CTL" verify "$C/c4.zsnap" | sed "s|^$C/c4.zsnap: ||")" ] ||
	fail "verify $S3/chain/c4.zsnap says \"$out\""
echo "$out" | grep -q "; chain of 5 verified)$" || fail "verify of the chain in S3: \"$out\""
"$CTL" export "$S3/chain/c4.zsnap" --raw "$T/c4.raw" || fail "export of the chain in S3 failed"
for r in 0 1 2; do
	cmp -s "$T/c4.raw/$r.img" "$C/expect-4-$r.img" ||
		fail "export of $S3/chain/c4.zsnap: region $r is not the memory at link 4"
done
echo "ok: $out; export --raw is the memory at link 4"
want="chain link c3.zsnap -> c2.zsnap: c2.zsnap is missing (no object $S3/nochain/c2.zsnap)"
for cmd in verify export; do
	args=("$S3/nochain/c4.zsnap")
	[ $cmd = export ] && args+=(--raw "$T/nochain.raw")
	out=$("$CTL" $cmd "${args[@]}" 2>&1) && fail "$cmd of a chain missing c2 succeeded: $out"
	echo "$out" | grep -qF -- "$want" || fail "$cmd of a chain missing c2 says \"$out\""
done
[ -e "$T/nochain.raw" ] && fail "export of a broken chain left $T/nochain.raw"
echo "ok: a missing parent object: $out"

# ---- damaged objects -------------------------------------------------------------------
out=$("$CTL" verify "$S3/bad/truncated.zsnap" 2>&1) && fail "verify of a truncated object passed: $out"
echo "$out" | grep -q "^$S3/bad/truncated.zsnap: BAD: truncated or incomplete: no zsnap footer" ||
	fail "verify of a truncated object says \"$out\""
out=$("$CTL" verify "$S3/bad/flipped.zsnap" 2>&1) && fail "verify of an altered object passed: $out"
echo "$out" | grep -Eq "^$S3/bad/flipped.zsnap: BAD: chunk [0-9]+ at offset [0-9]+: .*(checksum|corrupt)" ||
	fail "verify of an altered object says \"$out\""
out_l=$("$CTL" verify "$T/flipped.zsnap" 2>&1)
[ "${out#"$S3/bad/flipped.zsnap"}" = "${out_l#"$T/flipped.zsnap"}" ] ||
	fail "verify of the altered object says \"$out\", of the local copy \"$out_l\""
echo "ok: damaged objects refused: $out"
out=$("$CTL" verify "$S3/none.zsnap" 2>&1) && fail "verify of a missing object passed"
echo "$out" | grep -q "^memsnapctl: verify: $S3/none.zsnap: HEAD $S3/none.zsnap: HTTP 404" ||
	fail "verify of a missing object says \"$out\""
out=$("$CTL" info "$S3/chain" 2>&1) && fail "info of a prefix passed"
echo "$out" | grep -q "raw snapshots are not read from S3" || fail "info of a prefix says \"$out\""
echo "ok: a missing object and a prefix: $out"

# ---- list --remote ---------------------------------------------------------------------
"$CTL" -j list --remote "$S3" >"$T/list.json" 2>&1 || { cat "$T/list.json"; fail "list --remote $S3 failed"; }
python3 - "$T/list.json" "$(stat -c %s "$BIG")" <<'PYEOF' || fail "list --remote -j is not the objects put"
import json, sys
o = json.load(open(sys.argv[1]))
want = {"host1/big.zsnap", "host1/proc.zsnap", "host1/bad/truncated.zsnap",
        "host1/bad/flipped.zsnap"}
want |= {"host1/chain/c%d.zsnap" % k for k in range(5)}
want |= {"host1/nochain/c%d.zsnap" % k for k in (0, 1, 3, 4)}
got = [x["key"] for x in o]
assert sorted(got) == sorted(want), sorted(set(got) ^ want)
for x in o:
    assert x["file"] == "s3://snaps/" + x["key"] and x["mtime"] > 1.7e9, x
    if x["key"] == "host1/big.zsnap":
        assert x["size"] == int(sys.argv[2]), x
PYEOF
"$CTL" list --remote "$S3/" >"$T/list.txt" 2>&1 || { cat "$T/list.txt"; fail "list --remote $S3/ failed"; }
[ "$(grep -c "s3://snaps/host1/.*\.zsnap$" "$T/list.txt")" = 13 ] && [ "$(wc -l <"$T/list.txt")" = 14 ] ||
	{ cat "$T/list.txt"; fail "list --remote $S3/ does not show the 13 objects"; }
grep -q "^ *[0-9.]* MiB  20[0-9-]* [0-9:]*  $S3/big.zsnap$" "$T/list.txt" ||
	{ cat "$T/list.txt"; fail "list --remote does not show big.zsnap's size and time"; }
out=$("$CTL" list --remote s3://snaps/host1/chain 2>&1) || fail "list --remote of the chain: $out"
[ "$(echo "$out" | grep -c zsnap)" = 5 ] || fail "list --remote of the chain's prefix shows \"$out\""
out=$("$CTL" list --remote s3://nosuchbucket 2>&1) && fail "list --remote of a missing bucket passed"
echo "$out" | grep -q "NoSuchBucket" || fail "list --remote of a missing bucket says \"$out\""
echo "ok: list --remote lists the 13 zsnap objects put under $S3, and no other"

# ---- wrong settings: clear errors, no secret --------------------------------------------
refused() {	# WHAT NEEDLE CMD...: CMD must fail saying NEEDLE, never the secret
	local what=$1 needle=$2 out
	shift 2
	out=$("$@" 2>&1) && fail "$what: $* succeeded"
	echo "$out" | grep -qF -- "$needle" || fail "$what: $* says \"$out\", expected \"$needle\""
	case $out in *"$S3_SECRET_KEY"*|*"$WRONG_SECRET"*) fail "$what: the secret key is in the output" ;; esac
	echo "ok: $what: $out"
}
WRONG_SECRET=wrongSecretKey0123456789abcdefABCDEFxyz
(umask 077 && printf 'access_key %s\nsecret_key %s\n' "$S3_ACCESS_KEY" "$WRONG_SECRET" >"$T/wrong-credentials")
sed "s|^s3_credentials .*|s3_credentials $T/wrong-credentials|" "$T/s3.conf" >"$T/wrong.conf"
SNAP_S3_CONFIG=$T/wrong.conf refused "a wrong secret key" "HTTP 403" \
    "$CTL" verify "$S3/proc.zsnap"
SNAP_S3_CONFIG=$T/wrong.conf refused "a wrong secret key (list)" "HTTP 403 SignatureDoesNotMatch" \
    "$CTL" list --remote "$S3"
cp "$CEPH_DIR/s3-credentials" "$T/loose-credentials" && chmod 0644 "$T/loose-credentials"
sed "s|^s3_credentials .*|s3_credentials $T/loose-credentials|" "$T/s3.conf" >"$T/loose.conf"
SNAP_S3_CONFIG=$T/loose.conf refused "a credentials file others may read" \
    "$T/loose-credentials" "$CTL" info "$S3/proc.zsnap"
SNAP_S3_CONFIG=$T/loose.conf refused "a credentials file others may read (mode)" \
    "0644" "$CTL" export "$S3/proc.zsnap" --raw "$T/loose.raw"
[ -e "$T/loose.raw" ] && fail "a refused export left $T/loose.raw"
SNAP_S3_CONFIG=$T/none.conf refused "a missing settings file" "$T/none.conf" \
    "$CTL" verify "$S3/proc.zsnap"
grep -v "^s3_endpoint" "$T/s3.conf" >"$T/noendpoint.conf"
SNAP_S3_CONFIG=$T/noendpoint.conf refused "no s3_endpoint" "no s3_endpoint" \
    "$CTL" verify "$S3/proc.zsnap"

# ---- how many GETs reading the 256 MiB object costs ---------------------------------------
# radosgw logs every request ("GET /snaps/KEY HTTP/1.1" 206 ...); a marker
# request after the command, once logged, says the log holds the command's.
MARK=0
rgw_log_mark() {
	MARK=$((MARK + 1))
	curl -s -o /dev/null "$S3_ENDPOINT/snaps/mark-$MARK"
	t_wait_line "$RGW_LOG" "GET /snaps/mark-$MARK " 100 || fail "radosgw did not log the marker request"
}
big_gets() {	# CMD...: GETS, the GETs of big.zsnap radosgw served for CMD
	local before
	rgw_log_mark
	before=$(grep -c '"GET /snaps/host1/big.zsnap HTTP' "$RGW_LOG")
	"$@" >"$T/gets.out" 2>&1 || { cat "$T/gets.out"; fail "$* failed"; }
	rgw_log_mark
	GETS=$(( $(grep -c '"GET /snaps/host1/big.zsnap HTTP' "$RGW_LOG") - before ))
}
size=$(stat -c %s "$BIG")
big_gets "$CTL" info "$S3/big.zsnap"
echo "info of $S3/big.zsnap: $GETS GETs"
[ "$GETS" -le 2 ] || fail "info sent $GETS GETs: opening should take the head and the tail, 2"
big_gets "$CTL" verify "$S3/big.zsnap"
# The brief's bound, and the design's: one pass in 4 MiB windows.
limit=$((size / 1048576 + 10))
tight=$((size / 4194304 + 6))
echo "verify of $S3/big.zsnap ($size bytes, $((size / 1048576)) MiB): $GETS GETs (limit $limit; one pass in 4 MiB windows: $tight)"
[ "$GETS" -gt 0 ] || fail "no GET of big.zsnap in radosgw's log: is the count real?"
[ "$GETS" -lt "$limit" ] || fail "verify sent $GETS GETs for $size bytes, not fewer than $limit"
[ "$GETS" -le "$tight" ] || fail "verify sent $GETS GETs for $size bytes: more than one pass in 4 MiB windows ($tight)"
big_gets "$CTL" export "$S3/big.zsnap" --raw "$T/big-gets.raw"
echo "export --raw of $S3/big.zsnap: $GETS GETs (the coverage check reads the chunks' metadata first)"
[ "$GETS" -le $((2 * tight)) ] || fail "export sent $GETS GETs: more than two passes in 4 MiB windows"
big_gets "$LAZYCHECK" --file "$S3/big.zsnap" --expected "$T/big.expected" --mode sweep
echo "lazy restore (sweep) of $S3/big.zsnap: $GETS GETs (the page index, which the coverage check shares, reads the chunks' metadata first)"
[ "$GETS" -le $((2 * tight)) ] || fail "lazy restore sent $GETS GETs: more than two passes in 4 MiB windows"
exit 0
