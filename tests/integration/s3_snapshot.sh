#!/bin/bash
# Snapshots snapd streams into S3, against a real one-node Ceph with its
# radosgw (tests/ceph.sh):
#  - start-up: the cleanup thread logs "s3: aborted 0 unfinished uploads
#    under s3://snaps/host1/"; query-config shows every S3 key and the
#    credentials file's path, never a key;
#  - point in time, to S3: snapwork's four writers hammer 128 MiB with a
#    1 MiB buffer held full (test-hold "buffer-full") while the snapshot
#    goes to "to": "s3"; the object restores to the armed instant's memory,
#    0 wrong pages, read back through libsnapclient's ranged GETs; s3cmd (a
#    client we did not write) downloads it: `zstd -t` and `memsnapctl
#    verify` pass on the download and its export equals the armed-instant
#    memory snapwork dumped; the figures say so many 5 MiB parts, the
#    object's size, the part buffers' memory; no multipart upload is left;
#  - cancelled mid-upload: no object, and the upload is aborted; while it
#    is held, its two uploader threads ("s3-upload") run at nice 10;
#  - attach to S3 (memsnapctl save --pid --to s3), and with "subdir" (the
#    key's component before the name);
#  - refused at snapshot-start, nothing armed (no "armed" log line, arm-us
#    0 in the figures): the same name again (the object exists), a bucket
#    that does not exist, wrong keys (after a reload; by attach too, the
#    process let go: not stopped, not traced, no uffd), raw, track ("not
#    yet"), 60 GiB of regions for 10000 parts of 5 MiB (its write right
#    after the refusal returns at once);
#  - a non-root peer's snapshot lands under host1/uid-UID/; its "to" with
#    a URL is refused;
#  - the credentials file: 0644 or owned by another uid makes snapd -n and
#    a start fail naming the file and why, and a reload keep the old
#    configuration.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../ceph.sh"
. "$(dirname "$0")/../s3snap.sh"
t_init
command -v zstd >/dev/null || t_apt_install_or_skip zstd
ceph_start
ceph_make_bucket "$S3_BUCKET"
CREDS=$CEPH_DIR/s3-credentials
S3=s3://$S3_BUCKET/$S3_PREFIX

s3_snapd_config "compression_threads 1" "s3_parts_in_flight 2" "s3_retries 1"
snapd_start
line=$(s3_cleanup_wait 0) || exit 1
echo "ok: start-up cleanup: $line"

# ---- query-config: the S3 keys, never a key ----------------------------------------
"$MEMSNAPCTL_BIN" -j qmp '{"execute": "query-config"}' >"$T/config.json" ||
	fail "query-config failed"
python3 - "$T/config.json" "$S3_ENDPOINT" "$S3" "$CREDS" <<'EOF' || fail "query-config's S3 keys are wrong (above)"
import json, sys
c = json.load(open(sys.argv[1]))["return"]
want = {"s3_endpoint": sys.argv[2], "s3_url": sys.argv[3],
        "s3_credentials": sys.argv[4], "s3_part_size": 5 << 20,
        "s3_parts_in_flight": 2, "s3_retries": 1, "s3_timeout": 30,
        "s3_region": "us-east-1", "s3_addressing": "path",
        "destination": "disk"}
for k, v in want.items():
    if c.get(k) != v:
        sys.exit("query-config %s is %r, not %r" % (k, c.get(k), v))
EOF
for f in "$T/config.json" "$SNAPD_LOG"; do
	grep -q -e "$S3_SECRET_KEY" -e "$S3_ACCESS_KEY" "$f" && fail "$f holds an S3 key"
done
echo "ok: query-config has the S3 keys and the credentials' path, and no key"

# ---- point in time, to S3, the buffer forced full ----------------------------------
out=$T/pit.json
if ! run_snapwork "$out" --size 128M --threads 4 --pattern mixed \
    --buffer 1M --name pit --to s3 --dump-expected "$T/pit.expected" \
    --test-hold '{"until": "buffer-full"}'; then
	show_snapwork "$out"
	fail "snapwork did not verify the snapshot it took to S3"
fi
file=$(json_get "$out" file) || fail "no file in snapwork's report"
[ "$file" = "$S3/pit.zsnap" ] || fail "the snapshot is $file, not $S3/pit.zsnap"
wrong=$(json_get "$out" wrong-pages)
waits=$(json_get "$out" buffer-full-waits)
during=$(json_get "$out" writes-during-snapshot)
faulted=$(json_get "$out" pages-faulted)
[ "$wrong" -eq 0 ] || fail "$wrong pages of the object differ from the armed instant"
[ "$during" -gt 0 ] && [ "$faulted" -gt 0 ] ||
	fail "nothing was written during the snapshot ($during writes, $faulted pages faulted): nothing was proven"
[ "$waits" -gt 0 ] || fail "the 1 MiB buffer never filled: the synchronous path was not exercised"
echo "ok: $file restores to the armed instant: 0 wrong pages; $during writes during it, $faulted pages on the fault path, $waits buffer-full waits"

bytes=$(snap_entry pit 'e["bytes-written"]') || exit 1
size=$(s3_object_size "$S3_PREFIX/pit.zsnap")
[ "$size" = "$bytes" ] || fail "s3cmd sees $S3/pit.zsnap as ${size:-missing}, snapd wrote $bytes bytes"
python3 - "$T/query.json" "$bytes" <<'EOF' || fail "the upload figures are wrong (above)"
import json, sys
e = [x for x in json.load(open(sys.argv[1]))["return"] if x["name"] == "pit"][-1]
u, size, part = e["upload"], int(sys.argv[2]), 5 << 20
if u["parts-uploaded"] != (size + part - 1) // part:
    sys.exit("parts-uploaded %d for %d bytes in parts of 5 MiB" % (u["parts-uploaded"], size))
if u["bytes-uploaded"] != size:
    sys.exit("bytes-uploaded %d, the object has %d" % (u["bytes-uploaded"], size))
if u["memory"] != 3 * part:
    sys.exit("memory %d, not 5 MiB x (2 in flight + 1)" % u["memory"])
if e["file"] != "s3://snaps/host1/pit.zsnap" or e["state"] != "completed":
    sys.exit("entry %s is %s" % (e["file"], e["state"]))
EOF
echo "ok: s3cmd sees the object, $bytes bytes; figures: $(snap_entry pit 'e["upload"]')"
[ -z "$(s3_uploads)" ] || fail "multipart uploads are left: $(s3_uploads)"
echo "ok: no multipart upload is left"

"$MEMSNAPCTL_BIN" verify "$file" >"$T/verify.out" 2>&1 ||
	fail "memsnapctl verify $file: $(cat "$T/verify.out")"
s3c get "$file" "$T/pit.zsnap" >"$T/get.out" 2>&1 || fail "s3cmd get $file: $(cat "$T/get.out")"
zstd -q -t "$T/pit.zsnap" || fail "zstd -t rejects the object s3cmd downloaded"
"$MEMSNAPCTL_BIN" verify "$T/pit.zsnap" >"$T/verify.local" 2>&1 ||
	fail "memsnapctl verify of the download: $(cat "$T/verify.local")"
"$MEMSNAPCTL_BIN" export "$T/pit.zsnap" --raw "$T/pit.raw" || fail "export --raw of the download failed"
for img in "$T"/pit.expected/*.img; do
	cmp "$img" "$T/pit.raw/$(basename "$img")" ||
		fail "the download's $(basename "$img") is not the armed instant's memory"
done
echo "ok: the object as s3cmd downloads it: zstd -t, verify and its export equal the armed-instant memory ($(cat "$T/verify.out"))"

# ---- cancelled mid-upload: the upload is aborted -------------------------------------------
held_start cancelled cancel --may-fail
# Held mid-upload: its uploaders (2 parts in flight) run below the process,
# at the writer's nice 10.
ups=$(ps -L -o ni=,comm= -p "$SNAPD_PID" | awk '$2 == "s3-upload"')
[ "$(printf '%s\n' "$ups" | grep -c .)" -eq 2 ] ||
	fail "snapd has not 2 s3-upload threads mid-upload: $(ps -L -o tid=,ni=,comm= -p "$SNAPD_PID" | tr '\n' ';')"
printf '%s\n' "$ups" | awk '$1 != 10 { exit 1 }' ||
	fail "the s3-upload threads are not at nice 10: $(printf '%s' "$ups" | tr '\n' ';')"
echo "ok: mid-upload, 2 s3-upload threads at nice 10"
"$MEMSNAPCTL_BIN" cancel "$HELD_ID" >/dev/null || fail "memsnapctl cancel $HELD_ID failed"
wait "$HELD_PID" || { show_snapwork "$T/cancelled.json"; fail "snapwork was hurt by the cancel"; }
[ "$(snap_entry cancelled 'e["state"]')" = cancelled ] ||
	fail "the snapshot is $(snap_entry cancelled 'e["state"]') after the cancel"
[ -z "$(s3_uploads)" ] || fail "the cancelled snapshot's upload is left: $(s3_uploads)"
[ -z "$(s3_object_size "$S3_PREFIX/cancelled.zsnap")" ] || fail "a cancelled snapshot became an object"
echo "ok: cancelled after $(snap_entry cancelled 'e["upload"]["parts-uploaded"]') parts: no object, no upload left"

# ---- attach, to S3 ---------------------------------------------------------------------
sleep 300 &
sleeper=$!
t_track "$sleeper"
t_wait_exec "$sleeper" sleep
"$MEMSNAPCTL_BIN" save --pid "$sleeper" --name attached --to s3 >"$T/save.out" 2>&1 ||
	fail "memsnapctl save --pid --to s3: $(cat "$T/save.out")"
"$MEMSNAPCTL_BIN" verify "$S3/attached.zsnap" >"$T/verify.out" 2>&1 ||
	fail "verify $S3/attached.zsnap: $(cat "$T/verify.out")"
echo "ok: attach to S3: $(cat "$T/verify.out")"
# "subdir" is one more component of the key, before the name.
"$MEMSNAPCTL_BIN" -j qmp "{\"execute\": \"snapshot-start\", \"arguments\": {\"pid\": $sleeper, \"name\": \"in-sub\", \"subdir\": \"vm1\", \"to\": \"s3\"}}" \
    >"$T/sub.json" || fail "attach with subdir to S3: $(cat "$T/sub.json")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["return"]["id"])' "$T/sub.json") ||
	fail "no id in $(cat "$T/sub.json")"
"$MEMSNAPCTL_BIN" wait "$id" >/dev/null 2>&1 || fail "snapshot $id (subdir vm1) did not complete"
[ "$(snap_entry in-sub 'e["file"]')" = "$S3/vm1/in-sub.zsnap" ] && [ -n "$(s3_object_size "$S3_PREFIX/vm1/in-sub.zsnap")" ] ||
	fail "the subdir's snapshot is $(snap_entry in-sub 'e["file"]'), not $S3/vm1/in-sub.zsnap in S3"
echo "ok: with subdir vm1 the object is $S3/vm1/in-sub.zsnap"

# ---- refused at snapshot-start, nothing armed --------------------------------------------
# refused NAME WHAT MESSAGE-REGEX SNAPWORK-ARGS...: snapwork's start fails
# saying MESSAGE; if snapd made a snapshot NAME it failed without arming.
refused() {
	local name=$1 what=$2 re=$3 o=$T/refused-$1.json id
	shift 3
	run_snapwork "$o" --size 8M --threads 2 --name "$name" "$@" &&
		fail "$what: snapwork's snapshot-start was not refused"
	grep -Eq "$re" "$o.err" ||
		{ cat "$o.err" >&2; fail "$what: snapwork's error does not say \"$re\""; }
	if id=$(snap_entry "$name" 'e["id"]' 2>/dev/null); then
		[ "$(snap_entry "$name" 'e["state"]')" = failed ] &&
		[ "$(snap_entry "$name" 'e["arm-us"]')" = 0 ] &&
		[ "$(snap_entry "$name" 'e["pages-saved"]')" = 0 ] ||
			fail "$what: snapshot $id ran: $(snap_entry "$name" e)"
		! grep -q "snapshot $id (pid [0-9]*, .*): armed" "$SNAPD_LOG" ||
			fail "$what: snapshot $id was armed"
	fi
	echo "ok: $what refused, nothing armed: $(grep -Eo "$re.*" "$o.err" | head -n 1)"
}
refused pit "the same name again" "an object of this name exists" --to s3
[ "$(s3_object_size "$S3_PREFIX/pit.zsnap")" = "$bytes" ] || fail "the existing object changed"
refused nobucket "a bucket that does not exist" "NoSuchBucket" \
    --to s3://no-such-bucket-here/x
refused raw "raw to S3" "raw format cannot go to S3" --format raw --to s3
[ -z "$(s3_uploads)" ] || fail "refused starts left uploads: $(s3_uploads)"

out=$("$MEMSNAPCTL_BIN" save --pid "$sleeper" --name tracked --track --to s3 2>&1) &&
	fail "a tracked snapshot to S3 was not refused: $out"
case $out in *"not yet"*) ;; *) fail "the tracked snapshot's refusal does not say \"not yet\": $out" ;; esac
echo "ok: track to S3 refused: $out"

# Too large for 10000 parts of 5 MiB (48.8 GiB): a peer with 60 GiB mapped
# (never touched: no memory used) hands it over with its own userfaultfd.
# Refused before anything is protected: its write right after returns.
PYTHONPATH=$TOP/tests timeout 60 python3 - "$SNAPD_SOCK" >"$T/big.out" 2>&1 <<'EOF' ||
import ctypes, fcntl, json, os, sys, time
from qmp import QMP
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
size = 60 << 30
a = libc.mmap(None, size, 3, 0x02 | 0x20 | 0x4000, -1, 0)	# private, anonymous, noreserve
if a in (None, ctypes.c_void_p(-1).value):
    sys.exit("mmap 60 GiB: errno %d" % ctypes.get_errno())
uffd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)		# userfaultfd(2)
if uffd < 0:
    dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
    uffd = fcntl.ioctl(dev, 0xAA00, os.O_CLOEXEC | os.O_NONBLOCK)
    os.close(dev)
c = QMP(sys.argv[1])
c.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [uffd])
os.close(uffd)
r = c.cmd({"execute": "snapshot-start", "arguments": {"uffd": "u", "name": "big",
          "to": "s3", "regions": [{"start": a, "length": size}]}})
print(json.dumps(r))
t0 = time.monotonic()
ctypes.memset(a + (size >> 1), 1, 4096)
print("wrote a page in %.0f us" % ((time.monotonic() - t0) * 1e6))
sys.exit(0 if "error" in r else 1)
EOF
	fail "60 GiB to S3 in 5 MiB parts was not refused: $(cat "$T/big.out")"
grep -q '48.8 GiB.*raise s3_part_size' "$T/big.out" ||
	fail "the refusal does not say the largest snapshot and the key: $(cat "$T/big.out")"
echo "ok: too large for S3 refused: $(grep -o 'its regions.*s3_part_size[^"]*' "$T/big.out"); $(tail -n 1 "$T/big.out")"

# Wrong keys, read on a reload.
(umask 077 && printf 'access_key %s\nsecret_key wrong-secret-key-0123456789\n' \
    "$S3_ACCESS_KEY" >"$T/wrong-credentials") || fail "cannot write wrong credentials"
cp "$SNAPD_CONF" "$T/good.conf"
sed -i "s|^s3_credentials .*|s3_credentials $T/wrong-credentials|" "$SNAPD_CONF"
reloads=$(grep -c "configuration reloaded" "$SNAPD_LOG")
kill -HUP "$SNAPD_PID"
until [ "$(grep -c "configuration reloaded" "$SNAPD_LOG")" -gt "$reloads" ]; do sleep 0.1; done
refused badkeys "wrong keys" "HTTP 403" --to s3
out=$("$MEMSNAPCTL_BIN" save --pid "$sleeper" --name badkeys-attach --to s3 2>&1) &&
	fail "an attach to S3 with wrong keys was not refused: $out"
case $out in *"HTTP 403"*) ;; *) fail "the attach's refusal does not give S3's answer: $out" ;; esac
[ "$(snap_entry badkeys-attach 'e["arm-us"]')" = 0 ] || fail "the attach with wrong keys armed"
h=$(python3 "$STAMP_PY" health "$sleeper" 1) || fail "the attached process was left unwell: $h"
echo "ok: an attach with wrong keys refused, the process let go: $h"
cp "$T/good.conf" "$SNAPD_CONF"
reloads=$(grep -c "configuration reloaded" "$SNAPD_LOG")
kill -HUP "$SNAPD_PID"
until [ "$(grep -c "configuration reloaded" "$SNAPD_LOG")" -gt "$reloads" ]; do sleep 0.1; done

# ---- a peer other than root ------------------------------------------------------------
if [ -c /dev/userfaultfd ] && command -v setpriv >/dev/null && getent group users >/dev/null; then
	U=61011
	GUSERS=$(getent group users | cut -d: -f3)
	t_uffd_to_group users
	chgrp users "$SNAPD_SOCK" && chmod 0660 "$SNAPD_SOCK" && chmod 0711 "$T" ||
		fail "cannot open the socket to the users group"
	# Its own settings and keys, as the library wants them: its file, 0600.
	mkdir -m 0700 "$T/u" && cp "$CREDS" "$T/u/creds" &&
	    sed "s|^s3_credentials .*|s3_credentials $T/u/creds|" "$SNAPD_CONF" >"$T/u/s3.conf" &&
	    chown -R "$U:$U" "$T/u" || fail "cannot give uid $U its settings"
	as_u() { SNAP_S3_CONFIG=$T/u/s3.conf setpriv --reuid=$U --regid=$U --groups="$GUSERS" "$@"; }
	out=$T/user.json
	as_u "$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 16M --threads 2 \
	    --name user --to s3 >"$out" 2>"$out.err" ||
		{ show_snapwork "$out"; fail "uid $U could not snapshot to S3"; }
	[ "$(json_get "$out" file)" = "$S3/uid-$U/user.zsnap" ] ||
		fail "uid $U's snapshot is $(json_get "$out" file), not under $S3/uid-$U/"
	[ -n "$(s3_object_size "$S3_PREFIX/uid-$U/user.zsnap")" ] || fail "s3cmd does not see uid $U's object"
	echo "ok: uid $U's snapshot is $S3/uid-$U/user.zsnap, 0 wrong pages"
	out=$T/user-url.json
	as_u "$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 4M --threads 1 \
	    --name other --to "s3://$S3_BUCKET/other" >"$out" 2>"$out.err" &&
		fail "uid $U wrote to a URL of its choosing"
	grep -q "only root may name an S3 URL" "$out.err" ||
		{ cat "$out.err" >&2; fail "uid $U's URL was refused without saying why"; }
	echo "ok: uid $U's \"to\": \"s3://$S3_BUCKET/other\" refused: $(grep -o "only root.*" "$out.err")"
else
	echo "note: no /dev/userfaultfd, setpriv or users group: the non-root part is not run"
fi

# ---- the credentials file's rules ------------------------------------------------------
check_refused() {	# WHAT REGEX: snapd -n and a start fail saying REGEX
	local what=$1 re=$2 out
	out=$("$SNAPD_BIN" -n -c "$SNAPD_CONF" 2>&1) && fail "snapd -n accepted $what"
	echo "$out" | grep -q "$CREDS.*$re" || fail "snapd -n on $what does not name the file and say \"$re\": $out"
	out=$(timeout 20 "$SNAPD_BIN" -c "$T/other.conf" 2>&1) && fail "snapd started with $what"
	echo "$out" | grep -q "$CREDS.*$re" || fail "snapd's refusal to start on $what does not name the file and say \"$re\": $out"
	echo "$out" | grep -q -e "$S3_SECRET_KEY" -e "$S3_ACCESS_KEY" && fail "a refusal quotes a key"
	echo "ok: $what: snapd -n and a start refuse it: $(echo "$out" | grep -o "$CREDS.*" | head -n 1)"
}
sed "s|^socket .*|socket $T/other.sock|" "$SNAPD_CONF" >"$T/other.conf"
chmod 0644 "$CREDS"
check_refused "a credentials file others may read" "0644"
reloads=$(grep -c "keeping the current one" "$SNAPD_LOG")
kill -HUP "$SNAPD_PID"
t_wait_line "$SNAPD_LOG" "reload: .*$CREDS.*0644" 100 ||
	fail "the reload did not say why it refused the credentials"
until [ "$(grep -c "keeping the current one" "$SNAPD_LOG")" -gt "$reloads" ]; do sleep 0.1; done
chmod 0600 "$CREDS"
run_snapwork "$T/after.json" --size 4M --threads 1 --name after-reload --to s3 ||
	{ show_snapwork "$T/after.json"; fail "after a refused reload the old configuration does not work"; }
echo "ok: a reload with a 0644 credentials file keeps the old configuration, which still works"
chown 61012 "$CREDS"
check_refused "a credentials file another uid owns" "61012"
chown 0 "$CREDS"
grep -q -e "$S3_SECRET_KEY" -e "$S3_ACCESS_KEY" "$SNAPD_LOG" && fail "snapd's log holds an S3 key"
[ -z "$(s3_uploads)" ] || fail "multipart uploads are left: $(s3_uploads)"
snapd_stop || fail "snapd did not stop cleanly"
echo "ok: no key in snapd's log, no upload left"
