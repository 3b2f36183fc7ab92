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
#      a munmap while pre-armed fails the arm with the reason; a uffd
#      created by another process (a fork child, same addresses) is refused,
#      pre-armed or not, before anything is served.
#   3. With "shutdown finish", SIGTERM cancels a snapshot still waiting for
#      snapshot-arm at once (it has no instant to finish) instead of waiting
#      out shutdown_timeout.
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

def begin(peer, name, size, prearm=True, fd=None, m=None):
    """Map size bytes, hand snapd a uffd for them, start; (reply, map, addr)."""
    if m is None:
        m = mmap.mmap(-1, size)
        m.write(b"\x11" * size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    if fd is None:
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

# --- a userfaultfd of another process -----------------------------------------
def foreign_uffd():
    """A uffd made by a fork child, which shares our addresses; (fd, pid)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        a.close()
        socket.send_fds(b, [b"u"], [userfaultfd()])
        b.recv(1)                       # until the parent is done
        os._exit(0)
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    return fds[0], pid, a

for prearm in (False, True):
    m5 = mmap.mmap(-1, 16 * PAGE)
    m5.write(b"\x22" * 16 * PAGE)
    fd, child, link = foreign_uffd()
    r, m5, _ = begin(p, "proto-foreign-%d" % prearm, 16 * PAGE, prearm=prearm, fd=fd, m=m5)
    check(r is not None and "error" in r and "does not belong" in error_of(r)[1],
          "a uffd of another process is refused (prearm %s): %s" % (prearm, error_of(r)))
    m5[0:4] = b"mine"                   # ours was never protected
    link.close()
    os.waitpid(child, 0)
p.close()
sys.exit(1 if bad else 0)
PYEOF

# The pre-armed snapshot holds the writes made while pre-armed, not the one
# made after the arm.
file=$SNAPD_DIR/proto-prearm.zsnap
[ -f "$file" ] || file=$(find "$SNAPD_DIR" -name proto-prearm.zsnap | head -1)
[ -n "$file" ] && [ -f "$file" ] || fail "proto-prearm.zsnap was not written"
"$MEMSNAPCTL_BIN" verify "$file" >/dev/null || fail "memsnapctl verify $file failed"
"$MEMSNAPCTL_BIN" export "$file" --raw "$T/raw" >/dev/null || fail "memsnapctl export $file failed"
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

# ---- 3. SIGTERM with a pre-armed snapshot waiting ---------------------------
snapd_stop || fail "snapd did not stop cleanly"
snapd_config "shutdown finish" "shutdown_timeout 60"
snapd_start
fifo=$T/held
mkfifo "$fifo" || fail "mkfifo $fifo"
python3 - "$SNAPD_SOCK" >"$fifo" <<'PYEOF' &
import ctypes, json, mmap, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = s.makefile("rb")
f.readline()
def run(msg, fds=None):
    data = json.dumps(msg).encode() + b"\n"
    socket.send_fds(s, [data], fds) if fds else s.sendall(data)
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
run({"execute": "qmp_capabilities"})
m = mmap.mmap(-1, 1 << 20)
m.write(b"\x33" * (1 << 20))
fd = libc.syscall(323, 0o2000000 | 0o4000)
run({"execute": "getfd", "arguments": {"fdname": "u"}}, [fd])
os.close(fd)
r = run({"execute": "snapshot-start", "arguments": {"uffd": "u", "name": "held", "prearm": True,
        "regions": [{"start": ctypes.addressof(ctypes.c_char.from_buffer(m)), "length": 1 << 20}]}})
print("prearmed" if r.get("return", {}).get("state") == "prearmed" else "failed: %r" % r, flush=True)
time.sleep(30)                          # holds the connection, never arms
PYEOF
holder=$!
t_track "$holder"
read -r line <"$fifo" || fail "the pre-arming client said nothing"
[ "$line" = prearmed ] || fail "the pre-arming client: $line"
t0=$(date +%s%N)
kill -TERM "$SNAPD_PID"
t_wait_gone "$SNAPD_PID" 100 || fail "snapd did not exit within 10 s of SIGTERM with a pre-armed snapshot waiting"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "shutting down before snapshot-arm" "$SNAPD_LOG" ||
	fail "snapd's log does not say the pre-armed snapshot was cancelled"
kill "$holder" 2>/dev/null
SNAPD_PID=
[ "$ms" -lt 5000 ] || fail "SIGTERM took $ms ms with shutdown_timeout 60: the pre-armed snapshot was waited for"
echo "ok: SIGTERM with a pre-armed snapshot waiting: snapd cancelled it and exited in $ms ms (shutdown finish, timeout 60 s)"
