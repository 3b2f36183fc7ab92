#!/bin/bash
# Pre-arm: snapshot-start with "prearm": true protects the regions while the
# process keeps running, and snapshot-arm, sent once the process is stopped,
# protects again only the pages written meanwhile; that is the point in time.
#   1. snapwork's writers (half random, half sequential) run through the
#      pre-arm and 200 ms after it; the snapshot holds exactly the memory at
#      snapshot-arm (0 wrong pages), and the writes made while pre-armed
#      were let through, not lost.
#   2. The protocol, with a raw client: the pre-armed reply, a process that
#      writes every page while pre-armed is not blocked, snapshot-arm's
#      reply counts those pages; snapshot-arm is refused for an unknown id,
#      a snapshot started without prearm, and twice; a client that closes
#      before snapshot-arm cancels its snapshot and its memory is writable;
#      a munmap while pre-armed fails the arm with the reason.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start

out=$T/prearm.json
if ! run_snapwork "$out" --size 256M --threads 4 --pattern mixed \
    --buffer 4M --prearm 200 --name prearm; then
	show_snapwork "$out"
	fail "snapwork did not verify the pre-armed snapshot (see above)"
fi
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages in snapwork's report"
prearm_us=$(json_get "$out" prearm-us) || fail "no prearm-us in snapwork's report"
pause=$(json_get "$out" armed-pause-us) || fail "no armed-pause-us"
[ "$wrong" -eq 0 ] || { show_snapwork "$out"; fail "$wrong pages differ from the instant of snapshot-arm"; }
grep -q "pages written since the pre-arm" "$SNAPD_LOG" ||
	fail "snapd's log does not say how many pages were written while pre-armed"
echo "ok: pre-armed in $prearm_us us while 4 writers ran; pause at snapshot-arm $pause us; 0 wrong pages"

timeout 120 python3 - "$SNAPD_SOCK" <<'PYEOF' || fail "the pre-arm protocol (see above)"
import ctypes, json, mmap, os, socket, sys, time

SOCK = sys.argv[1]
PAGE = 4096
bad = []

def check(cond, what):
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        bad.append(what)

class Peer:
    """One control connection: line-framed JSON, events kept aside."""
    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(SOCK)
        self.lines = self.sock.makefile("rb")
        self.events = []
        assert "QMP" in self.next_message()
        assert "return" in self.run("qmp_capabilities")

    def next_message(self):
        line = self.lines.readline()
        return json.loads(line) if line else None

    def run(self, command, args=None, fds=None):
        msg = {"execute": command}
        if args is not None:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)
        while True:
            m = self.next_message()
            if m is None or "event" not in m:
                return m
            self.events.append(m)

    def close(self):
        self.lines.close()
        self.sock.close()

def error_of(r):
    return (r["error"]["class"], r["error"]["desc"]) if r and "error" in r else (None, repr(r))

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

def userfaultfd():
    fd = libc.syscall(323, 0o2000000 | 0o4000)     # x86_64; O_CLOEXEC|O_NONBLOCK
    if fd < 0:
        sys.exit("userfaultfd: " + os.strerror(ctypes.get_errno()))
    return fd

def begin(peer, name, size, prearm=True):
    """Map size bytes, hand snapd a uffd for them, start; (reply, map, addr)."""
    m = mmap.mmap(-1, size)
    m.write(b"\x11" * size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    fd = userfaultfd()
    r = peer.run("getfd", {"fdname": "wp"}, [fd])
    os.close(fd)
    assert "return" in r, r
    args = {"uffd": "wp", "name": name,
            "regions": [{"start": addr, "length": size, "name": "m"}]}
    if prearm:
        args["prearm"] = True
    return peer.run("snapshot-start", args), m, addr

def state_of(peer, sid):
    for s in peer.run("query-snapshots")["return"]:
        if s["id"] == sid:
            return s["state"]
    return None

def wait_state(peer, sid, states, seconds=10):
    end = time.time() + seconds
    st = state_of(peer, sid)
    while st not in states and time.time() < end:
        time.sleep(0.05)
        st = state_of(peer, sid)
    return st

# --- pre-armed, written, armed ---------------------------------------------
p = Peer()
size = 64 * PAGE
r, m, addr = begin(p, "proto-prearm", size)
ret = r.get("return", {}) if r else {}
check(ret.get("state") == "prearmed" and "prearm-us" in ret and "arm-us" not in ret,
      "snapshot-start with prearm answers once pre-armed: %r" % (r,))
sid = ret.get("id")
check(state_of(p, sid) == "prearmed", "query-snapshots shows it prearmed")
t0 = time.time()
for i in range(0, size, 2 * PAGE):      # every other page, while pre-armed
    m[i:i + 4] = b"pre!"
took = time.time() - t0
check(took < 2, "32 writes while pre-armed took %.3f s (not blocked)" % took)
r = p.run("snapshot-arm", {"id": sid})
ret = r.get("return", {}) if r else {}
check(ret.get("prearm-pages", 0) >= 32 and "arm-us" in ret,
      "snapshot-arm answers once armed, with the pages written meanwhile: %r" % (r,))
m[0:4] = b"aft!"                        # after the instant: not in the file
r = p.run("snapshot-arm", {"id": sid})
check(error_of(r)[0] == "GenericError", "a second snapshot-arm is refused: %s" % (error_of(r),))
check(wait_state(p, sid, ("completed", "failed")) == "completed", "the pre-armed snapshot completed")

# --- refusals ----------------------------------------------------------------
r = p.run("snapshot-arm", {"id": 999999})
check(error_of(r)[0] == "NotFound", "snapshot-arm of an unknown id: %s" % (error_of(r),))
r, m2, _ = begin(p, "proto-direct", 16 * PAGE, prearm=False)
did = r["return"]["id"]
r = p.run("snapshot-arm", {"id": did})
check(error_of(r)[0] == "GenericError" and "not pre-armed" in error_of(r)[1],
      "snapshot-arm of a snapshot started without prearm: %s" % (error_of(r),))
wait_state(p, did, ("completed", "failed"))

# --- the client goes away before snapshot-arm ------------------------------
q = Peer()
r, m3, _ = begin(q, "proto-gone", 32 * PAGE)
gid = r["return"]["id"]
q.close()
st = wait_state(p, gid, ("cancelled", "failed", "completed"))
check(st == "cancelled", "closing the connection before snapshot-arm cancels it (state %s)" % st)
t0 = time.time()
for i in range(0, 32 * PAGE, PAGE):
    m3[i:i + 4] = b"free"
check(time.time() - t0 < 2, "its memory is writable afterwards")

# --- munmap while pre-armed ----------------------------------------------------
r, m4, addr4 = begin(p, "proto-unmap", 32 * PAGE)
uid_ = r["return"]["id"]
check(libc.munmap(addr4 + 16 * PAGE, 16 * PAGE) == 0, "munmap half of the pre-armed region")
time.sleep(0.2)
r = p.run("snapshot-arm", {"id": uid_})
check(r is not None and "error" in r and "unmapped" in error_of(r)[1],
      "the arm after a munmap fails with the reason: %s" % (error_of(r),))
check(wait_state(p, uid_, ("failed", "cancelled", "completed")) == "failed", "that snapshot failed")
m4[0:4] = b"live"                       # and the rest is not protected
check(True, "the rest of that region is writable")
p.close()
sys.exit(1 if bad else 0)
PYEOF

# The pre-armed snapshot holds the writes made while pre-armed, not the one
# made after the arm.
file=$SNAPD_DIR/proto-prearm.zsnap
[ -f "$file" ] || file=$(find "$SNAPD_DIR" -name proto-prearm.zsnap | head -1)
[ -n "$file" ] && [ -f "$file" ] || fail "proto-prearm.zsnap was not written"
"$SNAPCTL_BIN" verify "$file" >/dev/null || fail "snapctl verify $file failed"
"$SNAPCTL_BIN" export "$file" --raw "$T/raw" >/dev/null || fail "snapctl export $file failed"
python3 - "$T/raw" <<'PYEOF' || fail "the pre-armed snapshot's content is wrong"
import glob, sys
img = glob.glob(sys.argv[1] + "/*.img")
assert len(img) == 1, img
data = open(img[0], "rb").read()
PAGE = 4096
for i in range(64):
    want = b"pre!" if i % 2 == 0 else b"\x11\x11\x11\x11"
    got = data[i * PAGE:i * PAGE + 4]
    if got != want:
        sys.exit("page %d starts %r, expected %r" % (i, got, want))
print("ok: the file holds the writes made while pre-armed and not the one after the arm")
PYEOF
snapd_alive || fail "snapd is gone"
