#!/bin/bash
# snap_file_restore_lazy(): a real snapshot, restored lazily, page for page
# the memory of the armed instant.  snapwork snapshots 3 regions of mixed
# content (DATA pages, never-touched and zero-written pages, so ZERO runs,
# in many chunks, with writers running so that fault-path chunks scatter
# pages) and dumps the armed-instant memory; lazycheck
# (tests/workload/lazycheck.c, whose header says what each mode proves)
# then restores every region:
#   touch    4 threads touch every page in random order while the sweep
#            runs: exact, and faulted + swept = pages, both non-zero;
#   sweep    no touch: the sweep alone completes the region, exact;
#   close    no sweep, 8 pages touched: wait times out, close fills the rest;
#   race     no sweep, 4 threads on the same page at once: a fault message
#            for a page already filled is seen, and no page filled twice;
#   corrupt  a byte flipped in one chunk's page data, with the sweep and
#            without: the touchers all finish, the restore reports the
#            checksum error, and every page reads its bytes or zeros.
. "$(dirname "$0")/../lib.sh"
LAZYCHECK=${LAZYCHECK:-$TESTS_BIN/lazycheck}
[ -x "$LAZYCHECK" ] || fail "$LAZYCHECK is missing: build it first (make tests)"
t_init
snapd_config
snapd_start

out=$T/snap.json
expected=$T/expected
run_snapwork "$out" --size 48M --threads 3 --pattern mixed --regions 3 \
    --untouched 15 --zero 15 --name lazy --dump-expected "$expected" ||
	{ show_snapwork "$out"; fail "snapwork did not verify the snapshot"; }
file=$(json_get "$out" file) || fail "no file in snapwork's report"
chunks=$("$MEMSNAPCTL_BIN" --json info "$file" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["chunks"])') ||
	fail "memsnapctl info $file failed"
[ "$chunks" -ge 20 ] || fail "the snapshot has $chunks chunks, wanted many"
echo "ok: snapshot $file, $chunks chunks"

for mode in touch sweep close race; do
	"$LAZYCHECK" --file "$file" --expected "$expected" --mode "$mode" \
	    --threads 4 >"$T/$mode.log" 2>&1 ||
		{ cat "$T/$mode.log" >&2; fail "lazycheck --mode $mode failed"; }
	cat "$T/$mode.log"
	echo "ok: $mode"
done

# Flip one byte in the middle of the page data of a chunk of the middle
# of the file (its zstd frame follows its metadata frame).
bad=$T/corrupt.zsnap
cp "$file" "$bad"
python3 - "$bad" <<'PY' || fail "cannot corrupt $bad"
import struct, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    data = f.read()
    foot = data[-72:]
    index_offset, = struct.unpack_from("<Q", foot, 8)
    count, = struct.unpack_from("<Q", data, index_offset + 8)
    for i in range(count // 2, count):
        off, length, seq, ext = struct.unpack_from("<QQII", data,
                                                   index_offset + 16 + 32 * i)
        meta = 8 + 24 + 24 * ext + 4
        if length > meta + 64:
            at = off + meta + (length - meta) // 2
            f.seek(at)
            f.write(bytes([data[at] ^ 0x40]))
            print("flipped byte %d in chunk %d" % (at, i))
            break
    else:
        sys.exit("no chunk with page data")
PY
# With the sweep the handler may meet the chunk first; without it only a
# toucher's fault reads it, so that toucher is blocked on the failing fault.
for sweep in "" --no-sweep; do
	"$LAZYCHECK" --file "$bad" --expected "$expected" --mode corrupt \
	    --threads 4 $sweep >"$T/corrupt.log" 2>&1 ||
		{ cat "$T/corrupt.log" >&2; fail "lazycheck --mode corrupt $sweep failed"; }
	cat "$T/corrupt.log"
	grep -q "snap_lazy_wait: .*chunk [0-9]* at offset [0-9]*: page data" "$T/corrupt.log" ||
		fail "the corrupt chunk's error does not say which chunk and what"
	echo "ok: corrupt chunk reported, no toucher hung ${sweep:-(sweep on)}"
done
