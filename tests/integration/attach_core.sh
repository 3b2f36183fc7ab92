#!/bin/bash
# A live core dump: `memsnapctl export --core` of a snapshot taken by attach
# is an ELF core that gdb opens with the executable, showing every thread
# of the process in the function it was in when snapd stopped it.  The
# target, corework, knows nothing of snapd: four threads (main in
# pthread_join, the others in core_thread_sleeper/nanosleep,
# core_thread_reader/read and core_thread_spinner/core_spin_loop).  Also:
# readelf lists the notes (one NT_PRSTATUS and NT_PRFPREG per thread,
# NT_PRPSINFO, NT_AUXV, NT_FILE), gdb reads a .bss pointer and the heap
# string it points to from the core, the target runs on untraced, and a
# snapshot taken without attach is refused saying why.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "attach needs root (or CAP_SYS_PTRACE) here"
for tool in gdb readelf; do
	command -v $tool >/dev/null && continue
	[ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null ||
		skip "$tool is not installed (apt-get install gdb binutils)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb binutils \
	    >"$T/apt.log" 2>&1 || skip "cannot install gdb and binutils: $(tail -n 1 "$T/apt.log")"
done
COREWORK=$TESTS_BIN/corework
[ -x "$COREWORK" ] || fail "$COREWORK is missing: build it first (make tests)"
snapd_config
snapd_start

# attach PID NAME FORMAT: snapshot-start by pid, wait until it completed;
# prints the armed reply's file.
attach() {
	python3 - "$SNAPD_SOCK" "$1" "$2" "$3" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
f.write('{"execute":"qmp_capabilities"}\n'); f.flush(); f.readline()
f.write(json.dumps({"execute": "snapshot-start", "arguments":
    {"pid": int(sys.argv[2]), "name": sys.argv[3], "format": sys.argv[4]}}) + "\n"); f.flush()
snap = None
for line in f:
    m = json.loads(line)
    if "error" in m:
        sys.exit("snapshot-start: %s" % m["error"].get("desc"))
    if "return" in m:
        snap = m["return"]
    elif m.get("event") == "SNAPSHOT_COMPLETED" and snap is not None and \
            m.get("data", {}).get("id") == snap["id"]:
        print(snap["file"])
        sys.exit(0)
    elif m.get("event") in ("SNAPSHOT_FAILED", "SNAPSHOT_CANCELLED") and \
            snap is not None and m.get("data", {}).get("id") == snap["id"]:
        sys.exit("snapshot %s: %s" % (m["event"], json.dumps(m["data"])))
sys.exit("snapd closed the connection")
PY
}

"$COREWORK" >"$T/corework.out" 2>&1 &
pid=$!
t_track "$pid"
t_wait_line "$T/corework.out" "^ready $pid" || fail "corework did not start: $(cat "$T/corework.out")"
threads=$(ls /proc/$pid/task | wc -l)
[ "$threads" -eq 4 ] || fail "corework has $threads threads, expected 4"

for format in zsnap raw; do
	file=$(attach "$pid" "core-$format" "$format" 2>"$T/attach.err") || fail "$format: attach: $(cat "$T/attach.err")"
	kill -0 "$pid" 2>/dev/null || fail "$format: corework died after the snapshot"
	tracer=$(awk '/^TracerPid:/ { print $2 }' /proc/$pid/status)
	[ "$tracer" = 0 ] || fail "$format: corework is still traced (TracerPid $tracer) after the snapshot"

	core=$T/corework-$format.core
	"$MEMSNAPCTL_BIN" -j export --core "$core" "$file" >"$T/export.json" 2>"$T/export.err" ||
		fail "$format: memsnapctl export --core $core $file: $(cat "$T/export.err")"
	[ -f "$core" ] || fail "$format: export --core wrote no $core"
	ls "$T" | grep -q "corework-$format.core.tmp-" && fail "$format: export --core left its temporary file"
	[ "$(json_get "$T/export.json" threads)" = 4 ] ||
		fail "$format: export --core reports $(json_get "$T/export.json" threads) threads, expected 4"
	echo "ok: $format: export --core: $(cat "$T/export.json")"

	# The notes, as readelf reads them.
	readelf -h "$core" >"$T/readelf.h" 2>&1 || fail "$format: readelf -h $core: $(cat "$T/readelf.h")"
	grep -q 'CORE (Core file)' "$T/readelf.h" || fail "$format: not an ELF core: $(cat "$T/readelf.h")"
	grep -q 'X86-64' "$T/readelf.h" || fail "$format: not an x86_64 core: $(cat "$T/readelf.h")"
	readelf -n "$core" >"$T/readelf.n" 2>&1 || fail "$format: readelf -n $core: $(cat "$T/readelf.n")"
	for note in "NT_PRSTATUS:4" "NT_FPREGSET:4" "NT_PRPSINFO:1" "NT_AUXV:1" "NT_FILE:1"; do
		n=$(grep -c "${note%:*}" "$T/readelf.n")
		[ "$n" = "${note#*:}" ] ||
			{ cat "$T/readelf.n" >&2; fail "$format: readelf -n lists $n ${note%:*} notes, expected ${note#*:}"; }
	done
	echo "ok: $format: readelf -n: NT_PRSTATUS and NT_FPREGSET for each of 4 threads, NT_PRPSINFO, NT_AUXV, NT_FILE"

	# Every saved mapping's bytes in the core are the snapshot's region at
	# that address, as export --raw writes it (the core reads them
	# CORE_READ_PAGES at a time; the 8 MiB thread stacks take several).
	"$MEMSNAPCTL_BIN" export --raw "$T/raw-$format" "$file" 2>"$T/raw.err" ||
		fail "$format: memsnapctl export --raw: $(cat "$T/raw.err")"
	python3 - "$core" "$T/raw-$format" <<'PY' || fail "$format: the core's PT_LOAD bytes are not the snapshot's"
import json, os, struct, sys
core, raw = sys.argv[1], sys.argv[2]
regions = {r["start"]: (i, r["length"]) for i, r in
           enumerate(json.load(open(os.path.join(raw, "snapshot.json")))["regions"])}
with open(core, "rb") as f:
    eh = f.read(64)
    phoff, = struct.unpack_from("<Q", eh, 32)
    phnum, = struct.unpack_from("<H", eh, 56)
    f.seek(phoff)
    phs = [struct.unpack("<IIQQQQQQ", f.read(56)) for _ in range(phnum)]
    saved = 0
    for typ, flags, off, vaddr, paddr, filesz, memsz, align in phs:
        if typ != 1 or filesz == 0:
            continue
        if vaddr not in regions or regions[vaddr][1] != filesz or memsz != filesz:
            sys.exit("PT_LOAD %#x+%#x: no region of that address and size" % (vaddr, filesz))
        f.seek(off)
        with open(os.path.join(raw, "%d.img" % regions[vaddr][0]), "rb") as r:
            left = filesz
            while left > 0:
                n = min(left, 1 << 20)
                if f.read(n) != r.read(n).ljust(n, b"\0"):
                    sys.exit("PT_LOAD %#x+%#x differs from region %d" % (vaddr, filesz, regions[vaddr][0]))
                left -= n
        saved += 1
    if saved != len(regions):
        sys.exit("%d PT_LOAD segments with bytes, %d regions" % (saved, len(regions)))
PY
	echo "ok: $format: every PT_LOAD with bytes equals its region in export --raw"

	# gdb: every thread, in its function; the marks, from the core's memory.
	gdb -batch -nx -ex 'info threads' -ex 'thread apply all bt' \
	    -ex 'print core_data_marker' -ex 'print core_heap_marker' \
	    -ex 'info proc mappings' "$COREWORK" "$core" >"$T/gdb.out" 2>&1 ||
		{ cat "$T/gdb.out" >&2; fail "$format: gdb could not read the core"; }
	# Each thread's backtrace: exactly one of corework's thread functions,
	# the call it waits in below it, and main's thread is the process's pid.
	python3 - "$T/gdb.out" "$pid" <<'PY' || { cat "$T/gdb.out" >&2; fail "$format: gdb's backtraces are not corework's threads"; }
import re, sys
text, pid = open(sys.argv[1]).read(), sys.argv[2]
blocks = re.findall(r"^Thread \d+ \(Thread \S+ \(LWP (\d+)\)\):\n((?:#.*\n?)+)", text, re.M)
want = {"main": r"pthread_join", "core_thread_sleeper": r"nanosleep",
        "core_thread_reader": r"__libc_read|\bread\b", "core_thread_spinner": r"core_spin_loop"}
seen = {}
for lwp, bt in blocks:
    fns = [f for f in want if re.search(r"(?:in |#\d+ +)%s \(" % f, bt)]
    if len(fns) != 1:
        sys.exit("thread LWP %s: in %s of %s:\n%s" % (lwp, fns or "none", list(want), bt))
    f = fns[0]
    if not re.search(want[f], bt):
        sys.exit("thread LWP %s in %s but not in %s:\n%s" % (lwp, f, want[f], bt))
    if f in seen:
        sys.exit("two threads in %s" % f)
    seen[f] = lwp
if len(blocks) != 4 or len(seen) != 4:
    sys.exit("%d threads in gdb's backtraces, expected 4: %s" % (len(blocks), seen))
if seen["main"] != pid:
    sys.exit("main runs in LWP %s, not the pid %s" % (seen["main"], pid))
PY
	grep -q "\"corework data $pid\"" "$T/gdb.out" ||
		{ cat "$T/gdb.out" >&2; fail "$format: gdb did not read core_data_marker from the core"; }
	grep -q "\"corework heap $pid\"" "$T/gdb.out" ||
		{ cat "$T/gdb.out" >&2; fail "$format: gdb did not read the heap string core_heap_marker points to"; }
	# info proc mappings comes from NT_FILE.
	for obj in "$COREWORK" "libc.so"; do
		grep -qE "^ +0x[0-9a-f]+ +0x[0-9a-f]+ .*$obj" "$T/gdb.out" ||
			{ cat "$T/gdb.out" >&2; fail "$format: gdb's info proc mappings (NT_FILE) does not show $obj"; }
	done
	sed -n '/^Thread [0-9]/,/^$/p' "$T/gdb.out" | grep -E '^(Thread|#)' | head -n 40
	echo "ok: $format: gdb shows 4 threads, each in its function, main in LWP $pid, the marks of .data, .bss and the heap, the files mapped"
done

kill -0 "$pid" 2>/dev/null || fail "corework died"
kill "$pid"

# A snapshot taken without attach: refused, saying why; no file left.
out=$T/plain.json
run_snapwork "$out" --size 4M --name plain ||
	{ show_snapwork "$out"; fail "snapwork did not verify its snapshot"; }
plain=$(json_get "$out" file) || fail "no file in snapwork's report"
if "$MEMSNAPCTL_BIN" export --core "$T/plain.core" "$plain" 2>"$T/plain.err"; then
	fail "export --core of a snapshot taken without attach succeeded"
fi
grep -q "taken without attach: no threads to write a core from" "$T/plain.err" ||
	fail "export --core of a snapshot without attach says: $(cat "$T/plain.err")"
[ -e "$T/plain.core" ] && fail "a refused export --core left $T/plain.core"
ls "$T" | grep -q 'plain.core.tmp-' && fail "a refused export --core left its temporary file"
echo "ok: a snapshot taken without attach: $(cat "$T/plain.err")"
