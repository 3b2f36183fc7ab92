#!/bin/bash
# Attach to a process whose memory is a shared memfd (as QEMU's guest RAM
# with memory-backend-memfd,share=on): snapd reads such a region through
# its own description of the file (daemon/engine/readfile.c), never through
# /proc/PID/mem, whose reads would fault in, and so allocate, every hole.
#   - the target maps a 256 MiB memfd MAP_SHARED and writes pattern A into
#     16 MiB of it (every 16th page); the rest was never touched;
#   - `memsnapctl save --pid` snapshots it; snapd's writer is held after the
#     armed reply while the target writes pattern B over every A page and
#     into 16 never-touched pages (faults served from the file, holes
#     included), then released;
#   - the snapshot holds A in every touched page and zeros everywhere else
#     (nothing of B); a second one, in the raw format, holds B (the 16
#     pages included) while the target writes C;
#   - the memfd did not grow: its st_blocks after the snapshot are those
#     before, plus the 16 pages the target itself wrote (before the fix:
#     the whole 256 MiB, measured), and the mapping's Rss likewise;
#   - the target checks its own memory at the end (all C).
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
snapd_config "buffer_size 8M" "compression_threads 1"
snapd_start
snapd_attach_or_skip

cat >"$T/target.py" <<'EOF'
import mmap, os, struct, sys, json
PAGE, SIZE, STEP, EXTRA = 4096, 256 << 20, 16, 16
fd = os.memfd_create("snapshm", 0)
os.ftruncate(fd, SIZE)
m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
touched = range(0, SIZE // PAGE, STEP)
extra = [p + STEP // 2 for p in range(0, SIZE // PAGE, SIZE // PAGE // EXTRA)]

def fill(p, tag):
    return struct.pack("<QQ", p, tag) * (PAGE // 16)

def info(**kw):
    st = os.fstat(fd)
    rss = None
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            if "-" in line.split()[0] and len(line.split()) >= 5:
                inside = "memfd:snapshm" in line
                if inside:
                    start = int(line.split("-")[0], 16)
            elif inside and line.startswith("Rss:"):
                rss = int(line.split()[1])
    kw.update(pid=os.getpid(), start=start, blocks=st.st_blocks, rss_kb=rss)
    print(json.dumps(kw), flush=True)

for p in touched:
    m[p * PAGE:(p + 1) * PAGE] = fill(p, 0xA)
info(state="ready")
for line in sys.stdin:
    if line.startswith("write "):
        tag = int(line.split()[1], 16)
        for p in list(touched) + extra:
            m[p * PAGE:(p + 1) * PAGE] = fill(p, tag)
        info(state="written")
    elif line.strip() == "status":
        info(state="status")
    elif line.strip() == "check":
        bad = [p for p in list(touched) + extra
               if m[p * PAGE:(p + 1) * PAGE] != fill(p, 0xC)]
        info(state="checked", bad=len(bad))
    else:
        break
EOF

# check_raw DIR START TAG EXTRA: region at START of the raw directory DIR
# holds pattern TAG in every 16th page (and in the 16 extra pages if EXTRA
# is 1) and zeros elsewhere.
check_raw() {
	python3 - "$1" "$2" "$3" "$4" <<'EOF'
import json, struct, sys
PAGE, SIZE, STEP, EXTRA = 4096, 256 << 20, 16, 16
d, start, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 16)
extra = set(p + STEP // 2 for p in range(0, SIZE // PAGE, SIZE // PAGE // EXTRA))
if sys.argv[4] != "1":
    extra = set()
meta = json.load(open(d + "/snapshot.json"))
r = [r for r in meta["regions"] if r["start"] == start]
if len(r) != 1 or r[0]["length"] != SIZE:
    sys.exit("no region of %d bytes at 0x%x: %s" % (SIZE, start, meta["regions"]))
if r[0]["lost"]:
    sys.exit("pages lost: %s" % r[0]["lost"])
zero = bytes(PAGE)
bad = 0
with open("%s/%d.img" % (d, r[0]["index"]), "rb") as f:
    for p in range(SIZE // PAGE):
        page = f.read(PAGE)
        want = struct.pack("<QQ", p, tag) * (PAGE // 16) \
            if p % STEP == 0 or p in extra else zero
        if page != want:
            if bad < 5:
                print("page %d: %r..." % (p, page[:16]))
            bad += 1
print("region %d: %d pages, %d wrong" % (r[0]["index"], SIZE // PAGE, bad))
sys.exit(1 if bad else 0)
EOF
}

mkfifo "$T/target.in" || fail "mkfifo"
python3 "$T/target.py" <"$T/target.in" >"$T/target.out" 2>"$T/target.err" &
TARGET=$!
t_track "$TARGET"
exec 7>"$T/target.in"
t_wait_line "$T/target.out" '"ready"' || fail "the target did not start: $(cat "$T/target.err")"
start=$(json_get "$T/target.out" start)
blocks0=$(json_get "$T/target.out" blocks)
rss0=$(json_get "$T/target.out" rss_kb)
[ "$blocks0" -eq $((16 << 11)) ] || fail "the target's memfd holds $blocks0 blocks, not 16 MiB"

# Round 1 holds A (no extra page yet), the target writes B; round 2
# holds B (extra pages included), the target writes C.
n=0
for format in zsnap raw; do
	tag=shm-$format
	case $format in zsnap) have=A next=B extra=0 ;; raw) have=B next=C extra=1 ;; esac
	save_start "$tag" --pid "$TARGET" --name "$tag" --format "$format" \
	    --test-hold '{"until": "release"}'
	save_armed "$tag" || fail "$tag: memsnapctl save never reported armed"
	id=$(json_get "$T/$tag.armed" id) || fail "$tag: no id in the armed reply"
	echo "write $next" >&7
	n=$((n + 1))
	k=100
	until [ "$(grep -c '"written"' "$T/target.out")" -ge "$n" ]; do
		[ "$k" -gt 0 ] || fail "$tag: the target did not write"
		sleep 0.1
		k=$((k - 1))
	done
	test_release "$id"
	save_finish "$tag" || { cat "$T/$tag.save.err" >&2; fail "$tag: memsnapctl save failed"; }
	file=$(json_get "$T/$tag.armed" file) || fail "$tag: no file in the reply"
	"$MEMSNAPCTL_BIN" verify "$file" >/dev/null || fail "$tag: memsnapctl verify refuses $file"
	if [ "$format" = zsnap ]; then
		"$MEMSNAPCTL_BIN" export --raw "$T/$tag.export" "$file" >/dev/null ||
			fail "$tag: export --raw failed"
		file=$T/$tag.export
	fi
	check_raw "$file" "$start" "$have" "$extra" ||
		fail "$tag: the snapshot is not the memfd's content at the armed instant"
	echo status >&7
	sleep 0.3
	blocks=$(tail -n 1 "$T/target.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["blocks"])')
	rss=$(tail -n 1 "$T/target.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rss_kb"])')
	# The target's own writes into 16 holes: 16 pages, 128 blocks of 512.
	[ "$blocks" -eq $((blocks0 + 128)) ] ||
		fail "$tag: the memfd grew from $blocks0 to $blocks blocks (expected $((blocks0 + 128)): the 16 pages the target wrote)"
	[ "$rss" -le $((rss0 + 64)) ] ||
		fail "$tag: the mapping's Rss grew from $rss0 to $rss kB"
	echo "ok: $tag: $have in every touched page, zeros elsewhere, nothing of $next; memfd $blocks0 -> $blocks blocks, Rss $rss0 -> $rss kB"
	rss0=$rss
done

echo check >&7
t_wait_line "$T/target.out" '"checked"' || fail "the target did not check its memory"
[ "$(json_get "$T/target.out" bad)" = 0 ] || fail "the target's memory is not what it wrote"
echo quit >&7
exec 7>&-
t_wait_gone "$TARGET" 50 || fail "the target did not exit"
echo "ok: the target's memory is intact"
