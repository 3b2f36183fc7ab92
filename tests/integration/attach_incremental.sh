#!/bin/bash
# Incremental snapshots by attach, proven on stampwork, a program that
# knows nothing of snapd:
#   - `memsnapctl save --pid P --track` takes a full snapshot by attach that
#     keeps following the process's writes; then three incremental ones by
#     attach (--parent ID once, --incremental twice: the newest tracked
#     snapshot of P, found by memsnapctl) while the writers keep going;
#   - every link is one instant of its own: stampcheck, reading the link
#     through libsnapclient (which follows the chain to the base), finds
#     each writer's cut with 0 pages wrong, the marker written before that
#     save and not the one written as soon as it reported armed; snapd's
#     writer is held after each armed reply until the test releases it, so
#     writes race every link (each writer's count at the end is past its
#     cut in every link); memsnapctl verify accepts every link;
#   - each incremental link says so: depth 1, 2, 3, its parent the link
#     before, pages-dirty a small part of pages-total (the writers are
#     paced), pages-dirty + pages-unchanged its live pages, and the
#     "attach" figures (pause, 9 threads) as any attach;
#   - the target stays healthy after each link (not traced, no thread
#     stopped, no userfaultfd among its fds, writers advancing), and its own
#     memory check passes at the end;
#   - refused, with the target left untraced: "maps" with "parent"; a
#     parent that tracks another process; --incremental for a process no
#     snapshot tracks; a full attach of a process whose writes are tracked;
#   - memsnapctl cancel on the newest link ends the tracking;
#   - a region of the parent unmapped since (a Python process unmaps 8 MiB
#     it mapped) fails the next incremental before anything is armed,
#     naming the region, and the parent keeps tracking;
#   - killing snapd while an incremental attach holds the target stopped
#     (pause point "attach stopped") leaves it running, untraced, healthy.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
[ -x "$STAMPCHECK" ] || fail "$STAMPCHECK is missing: build it first (make tests)"
export SNAPD_TEST_PAUSE_DIR=$T/pause
mkdir -p -m 0700 "$SNAPD_TEST_PAUSE_DIR" || fail "mkdir $SNAPD_TEST_PAUSE_DIR"
snapd_config "buffer_size 8M" "compression_threads 1"
snapd_start
snapd_attach_or_skip

# 64 writes every 150 ms per writer: about 1700 pages a second in all, a
# fraction of the 16384 pages between two links a second apart.
stampwork_start sw --size 64M --threads 4 --pace-us 150000
PID=$(cat "$T/sw/pid")

# link TAG SAVE-ARGS...: marker A-TAG, save (held after armed), marker
# B-TAG once armed, 0.5 s of racing writes, release, wait for the end.
link() {
	local tag=$1 id
	shift
	echo "marker-A-$tag-$RANDOM" >"$T/$tag.a"
	echo "marker-B-$tag-$RANDOM" >"$T/$tag.b"
	stamp_cmd sw "marker $(cat "$T/$tag.a")" >/dev/null
	save_start "$tag" --pid "$PID" --name "$tag" \
	    --test-hold '{"until": "release"}' "$@"
	save_armed "$tag" || fail "$tag: memsnapctl save never reported armed"
	stamp_cmd sw "marker $(cat "$T/$tag.b")" >/dev/null
	id=$(json_get "$T/$tag.armed" id) || fail "$tag: no id in the armed reply"
	sleep 0.5
	test_release "$id"
	save_finish "$tag" || { cat "$T/$tag.save.err" >&2; fail "$tag: memsnapctl save failed"; }
	echo "$id" >"$T/$tag.id"
	echo "$tag: reply $(cat "$T/$tag.armed")"
}

# The chain, links back to back (checked afterwards, so that the pages
# written between two links are those of about a second).
link base --track
link inc1 --parent "$(cat "$T/base.id")"
link inc2 --incremental
link inc3 --incremental
stamp_cmd sw status >/dev/null
stamp_healthy sw >/dev/null
echo "ok: a tracked base and three incremental snapshots by attach; target healthy"

prev=
depth=0
for tag in base inc1 inc2 inc3; do
	file=$(json_get "$T/$tag.armed" file) || fail "$tag: no file in the reply"
	[ -e "$file" ] || fail "$tag: the snapshot $file does not exist"
	"$MEMSNAPCTL_BIN" verify "$file" >/dev/null ||
		fail "$tag: memsnapctl verify refuses $file"
	"$STAMPCHECK" --marker "$(cat "$T/$tag.a")" --not-marker "$(cat "$T/$tag.b")" \
	    "$T/sw/info.json" "$file" >"$T/$tag.check" || {
		cat "$T/$tag.check" >&2
		fail "$tag: the link is not one instant of stampwork (stampcheck above)"
	}
	"$STAMPCHECK" --json "$T/sw/info.json" "$file" >"$T/$tag.check.json" ||
		fail "$tag: stampcheck --json failed"
	python3 - "$T/$tag.check.json" "$T/sw/out" "$T/$tag.save" "$depth" "$prev" <<'EOF' ||
import json, sys
cuts = [w["cut"] for w in json.loads(open(sys.argv[1]).read())["writers"]]
seqs = json.loads(open(sys.argv[2]).read().splitlines()[-1])["seqs"]
# The armed reply, then the final entry (pages-unchanged is counted as
# the snapshot is written).
r, f = [json.loads(l) for l in open(sys.argv[3]).read().splitlines()[:2]]
depth, prev = int(sys.argv[4]), sys.argv[5]
a, c = r.get("attach", {}), f.get("chain")
bad = []
if not all(s > x for x, s in zip(cuts, seqs)):
    bad.append("a writer wrote nothing after the armed instant: cuts %s, "
               "writes by now %s" % (cuts, seqs))
if a.get("threads") != 9 or "pause-us" not in a:
    bad.append("the attach figures are wrong: %s" % a)
if a.get("uffd-via") != ("parent" if depth > 0 else "syscall"):
    bad.append("uffd-via is %s at depth %d" % (a.get("uffd-via"), depth))
if c is None or c["depth"] != depth:
    bad.append("chain %s: depth is not %d" % (c, depth))
elif depth > 0:
    total, dirty, same = r["pages-total"], c["pages-dirty"], c["pages-unchanged"]
    if r["chain"]["pages-dirty"] != dirty or r["chain"]["depth"] != depth:
        bad.append("the armed reply's chain %s differs from the final %s"
                   % (r["chain"], c))
    if c["parent"] != int(prev):
        bad.append("parent %s, not %s" % (c["parent"], prev))
    if not 0 < dirty * 4 < total:
        bad.append("%d pages dirty of %d: not a small part" % (dirty, total))
    if same < total // 2:
        bad.append("only %d of %d pages unchanged" % (same, total))
    print("depth %d: %d dirty, %d unchanged of %d pages, pause %d us"
          % (depth, dirty, same, total, a["pause-us"]))
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
EOF
		fail "$tag: the figures are wrong (see above)"
	echo "ok: $tag: one instant, 0 pages wrong, marker A not B: $(tail -n 1 "$T/$tag.check")"
	prev=$(cat "$T/$tag.id")
	depth=$((depth + 1))
done

# ---- refusals -------------------------------------------------------------------
untraced() {
	[ "$(python3 "$STAMP_PY" tracer "$PID")" = 0 ] ||
		fail "$1 left stampwork traced"
}
if out=$("$MEMSNAPCTL_BIN" save --pid "$PID" --parent "$(cat "$T/inc3.id")" \
    --maps '[heap]' --name bad-maps 2>&1); then
	fail "an incremental attach with maps was taken: $out"
fi
case $out in *"'maps' does not go with 'parent'"*) ;; *) fail "maps with parent: wrong refusal: $out" ;; esac
untraced "the refusal of maps"
echo "ok: maps with parent refused: $out"

sleep 60 &
other=$!
t_track "$other"
if out=$("$MEMSNAPCTL_BIN" save --pid "$other" --parent "$(cat "$T/inc3.id")" \
    --name bad-pid 2>&1); then
	fail "an incremental attach of another process was taken: $out"
fi
case $out in *"tracks process $PID, not $other"*) ;; *) fail "another pid: wrong refusal: $out" ;; esac
if out=$("$MEMSNAPCTL_BIN" save --pid "$other" --incremental --name bad-none 2>&1); then
	fail "--incremental for an untracked process worked: $out"
fi
case $out in *"no snapshot of process $other tracks"*) ;; *) fail "--incremental, untracked: wrong refusal: $out" ;; esac
kill "$other"
echo "ok: a parent tracking another process and --incremental without one refused"
if out=$("$MEMSNAPCTL_BIN" save --pid "$PID" --name bad-full 2>&1); then
	fail "a full attach of a tracked process was taken: $out"
fi
case $out in *"tracks the writes of process $PID"*) ;; *) fail "a full attach of a tracked process: wrong refusal: $out" ;; esac
untraced "the refusal of a full attach"
echo "ok: a full attach of a tracked process refused: $out"

# The parent still tracks after the refusals: one more link is exact.
link inc4 --incremental
file=$(json_get "$T/inc4.armed" file)
"$STAMPCHECK" --marker "$(cat "$T/inc4.a")" --not-marker "$(cat "$T/inc4.b")" \
    "$T/sw/info.json" "$file" >"$T/inc4.check" ||
	{ cat "$T/inc4.check" >&2; fail "inc4: not one instant after the refusals"; }
[ "$(json_expr "$T/inc4.armed" 'o["chain"]["depth"]')" -eq 4 ] ||
	fail "inc4: depth is not 4"
echo "ok: after the refusals, the chain goes on: depth 4, exact"

# ---- for people: the chain's figures --------------------------------------------
id4=$(cat "$T/inc4.id")
"$MEMSNAPCTL_BIN" save --pid "$PID" --incremental --name inc5 >"$T/inc5.out" 2>&1 ||
	{ cat "$T/inc5.out" >&2; fail "memsnapctl save --incremental (inc5) failed"; }
cat "$T/inc5.out"
grep -q "skipped; userfaultfd of the parent's tracking$" "$T/inc5.out" ||
	fail "save does not say the incremental used its parent's userfaultfd"
grep -q "incremental from snapshot $id4, depth 5: [0-9]* pages dirty since it" "$T/inc5.out" ||
	fail "save's armed lines do not say the parent and the depth"
grep -Eq "^chain: depth 5, parent $id4, [1-9][0-9]* pages dirty, [1-9][0-9]* unchanged, 0 ranges saved whole; tracking" "$T/inc5.out" ||
	fail "save's last line does not give the chain's figures"
id5=$("$MEMSNAPCTL_BIN" -j qmp '{"execute": "query-snapshots"}' |
    python3 -c 'import json,sys; print([e["id"] for e in json.load(sys.stdin)["return"] if e["name"] == "inc5"][0])') ||
	fail "no snapshot inc5 in query-snapshots"
echo "ok: save says what an incremental link saved"

# ---- cancel ends the tracking -----------------------------------------------------
"$MEMSNAPCTL_BIN" cancel "$id5" || fail "memsnapctl cancel $id5 failed"
"$MEMSNAPCTL_BIN" -j qmp '{"execute": "query-snapshots"}' >"$T/after-cancel.json" ||
	fail "query-snapshots failed"
python3 - "$T/after-cancel.json" "$id5" <<'EOF' || fail "cancel did not end the tracking (see above)"
import json, sys
o = json.loads(open(sys.argv[1]).read())
e = [x for x in o["return"] if x["id"] == int(sys.argv[2])][0]
c = e.get("chain", {})
print("after cancel: %s" % json.dumps(c))
sys.exit(0 if c.get("tracking") is False and "cancelled" in c.get("untracked", "") else 1)
EOF
if out=$("$MEMSNAPCTL_BIN" save --pid "$PID" --incremental --name after-cancel 2>&1); then
	fail "--incremental after the cancel worked: $out"
fi
untraced "the refused --incremental after cancel"
stamp_healthy sw >/dev/null
echo "ok: cancel ended the tracking; --incremental is then refused: $out"

# ---- a region unmapped since the parent ---------------------------------------------
# A Python process (unmodified, too) maps and writes 8 MiB, and unmaps it on
# SIGUSR1: the incremental snapshot after that fails before anything is
# armed, naming the region, and the parent keeps tracking.
python3 - "$T/py" <<'EOF' &
import ctypes, mmap, os, signal, sys
out = sys.argv[1]
m = mmap.mmap(-1, 8 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, len(m), 4096):
    m[i] = 1
c = ctypes.c_char.from_buffer(m)
addr = ctypes.addressof(c)
del c
def unmap(sig, frame):
    m.close()
    open(out + ".unmapped", "w").write("ok\n")
signal.signal(signal.SIGUSR1, unmap)
open(out + ".tmp", "w").write("%d %x\n" % (os.getpid(), addr))
os.rename(out + ".tmp", out)
while True:
    signal.pause()
EOF
py=$!
t_track "$py"
t_wait_file "$T/py" || fail "the python target never started"
read -r _ pyaddr <"$T/py"
"$MEMSNAPCTL_BIN" -j save --pid "$py" --track --name py-base >"$T/py-base.save" 2>&1 ||
	{ cat "$T/py-base.save" >&2; fail "the tracked snapshot of the python target failed"; }
pybase=$(head -n 1 "$T/py-base.save" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
kill -USR1 "$py"
t_wait_file "$T/py.unmapped" || fail "the python target never unmapped its memory"
if out=$("$MEMSNAPCTL_BIN" save --pid "$py" --incremental --name py-inc 2>&1); then
	fail "an incremental snapshot of an unmapped region was taken: $out"
fi
case $out in *"0x$pyaddr+8388608) of the parent snapshot is no longer all mapped"*"unmapped since; take a full snapshot"*) ;;
*) fail "the unmapped region: wrong refusal (region 0x$pyaddr): $out" ;; esac
[ "$(python3 "$STAMP_PY" tracer "$py")" = 0 ] || fail "the refused incremental left the python target traced"
"$MEMSNAPCTL_BIN" -j qmp '{"execute": "query-snapshots"}' |
    python3 -c 'import json,sys; e=[e for e in json.load(sys.stdin)["return"] if e["id"] == int(sys.argv[1])][0]; sys.exit(0 if e["chain"]["tracking"] else 1)' "$pybase" ||
	fail "after the refused incremental, snapshot $pybase no longer tracks"
kill "$py"
echo "ok: a region unmapped since the parent: refused before arming ($out); the parent still tracks"

# ---- killing snapd while an incremental attach holds the target ---------------------
link base2 --track
echo "attach stopped" >"$SNAPD_TEST_PAUSE_DIR/kill.pause"
save_start kill --pid "$PID" --name kill --incremental
save_paused kill "attach stopped"
[ "$(python3 "$STAMP_PY" tracer "$PID")" != 0 ] ||
	fail "stampwork is not traced at the pause: the incremental did not stop it"
snapd_kill
save_finish kill && fail "save succeeded though snapd was killed"
stamp_healthy sw >/dev/null
echo "ok: snapd killed during an incremental attach: stampwork runs, untraced, no uffd"

stampwork_stop sw
echo "ok: stampwork's own check at the end: $(tail -n 1 "$T/sw/out")"
