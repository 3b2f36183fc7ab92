#!/bin/bash
# Proof 3, no damaged snapshot passes for whole: `memsnapctl verify` accepts a
# good zsnap file and rejects a truncated copy, a copy with one flipped byte
# inside a chunk's compressed page data, and a copy with a damaged index,
# each with a message saying what is wrong.  The stock `zstd -t` accepts the
# good file (the format is a valid zstd stream) and rejects the flipped one.
. "$(dirname "$0")/../lib.sh"
t_init
command -v zstd >/dev/null || fail "zstd(1) is not installed"
snapd_config
snapd_start

out=$T/verify.json
run_snapwork "$out" --size 32M --threads 2 --pattern mixed --untouched 10 \
    --zero 10 --name verify-me || { show_snapwork "$out"; fail "snapwork failed"; }
good=$(json_get "$out" file) || fail "no file in snapwork's report"
[ -f "$good" ] || fail "snapshot $good does not exist"

# Byte offsets of the parts to damage, from the footer and index
# (proto/zsnap.h): "DATA_OFFSET DATA_LENGTH INDEX_OFFSET INDEX_LENGTH".
layout=$(python3 - "$good" <<'PYEOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
FOOTER = 8 + 72
magic, size = struct.unpack_from("<II", data, len(data) - FOOTER)
assert magic == 0x184D2A53 and size == 72, "no zsnap footer frame at the end"
fmagic, index_off, index_len, chunks = struct.unpack_from("<8sQQQ", data, len(data) - 72)
assert fmagic == b"ZSNAPEND", "bad footer magic"
m, isize = struct.unpack_from("<II", data, index_off)
assert m == 0x184D2A52, "no index frame at the footer's index_offset"
count, = struct.unpack_from("<Q", data, index_off + 8)
for e in range(count):
    off, length, seq, next_, crc, _ = struct.unpack_from("<QQIIII", data, index_off + 16 + 32 * e)
    cm, csize = struct.unpack_from("<II", data, off)
    assert cm == 0x184D2A51, "index entry %d does not point at a chunk frame" % e
    seq, nextents, dpages, dsize, dcrc, _ = struct.unpack_from("<IIIIII", data, off + 8)
    if dsize > 0:
        zoff = off + 8 + csize
        assert struct.unpack_from("<I", data, zoff)[0] == 0xFD2FB528, "no zstd frame after chunk %d" % e
        print(zoff, dsize, index_off, index_len)
        break
else:
    sys.exit("no chunk with page data")
PYEOF
) || fail "cannot read the layout of $good (is it a zsnap file?): $layout"
read -r data_off data_len index_off index_len <<<"$layout"

# flip FILE OFFSET: invert one byte in place.
flip() {
	python3 - "$1" "$2" <<'PYEOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xff]))
PYEOF
}

# expect_reject FILE WHAT REGEX: verify must fail and say REGEX.
expect_reject() {
	local file=$1 what=$2 regex=$3 msg rc=0
	msg=$("$MEMSNAPCTL_BIN" verify "$file" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "memsnapctl verify accepted $what: $msg"
	echo "$msg" | grep -Eiq -- "$regex" ||
	    fail "memsnapctl verify rejected $what without saying what is wrong (expected /$regex/): $msg"
	echo "ok: $what rejected: $(echo "$msg" | tail -n 1)"
}

msg=$("$MEMSNAPCTL_BIN" verify "$good" 2>&1) || fail "memsnapctl verify rejected the good file: $msg"
echo "ok: good file verified: $(echo "$msg" | tail -n 1)"
zstd -q -t "$good" || fail "zstd -t rejected the good file $good"
echo "ok: zstd -t accepts the good file"

size=$(stat -c %s "$good")
cp "$good" "$T/truncated.zsnap"
truncate -s $((size - 100)) "$T/truncated.zsnap"
expect_reject "$T/truncated.zsnap" "a truncated copy" 'footer|truncat|short|end of file|too small'

cp "$good" "$T/truncated-half.zsnap"
truncate -s $((size / 2)) "$T/truncated-half.zsnap"
expect_reject "$T/truncated-half.zsnap" "a copy cut in half" 'footer|truncat|short|end of file|too small'

cp "$good" "$T/flipped.zsnap"
flip "$T/flipped.zsnap" $((data_off + data_len / 2))
expect_reject "$T/flipped.zsnap" "a flipped byte in chunk data" 'chunk|checksum|crc|corrupt|decompress|zstd'
if zstd -q -t "$T/flipped.zsnap" 2>/dev/null; then
	fail "zstd -t accepted a flipped byte in a compressed frame"
fi
echo "ok: zstd -t rejects the flipped copy"

cp "$good" "$T/index.zsnap"
flip "$T/index.zsnap" $((index_off + 16 + 4))
expect_reject "$T/index.zsnap" "a damaged index" 'index'
