#!/bin/bash
# The accept loop and the per-connection limits hold, and each costs the
# misbehaving peer its connection, never snapd or another client:
#   1. fd exhaustion: snapd's RLIMIT_NOFILE is cut (prlimit) and clients
#      connect until it runs out; the extra ones are refused (Busy); once
#      they close, a new client is served again.  Then one client makes
#      snapd keep fds (getfd) until accept() itself fails with EMFILE: the
#      waiting peers are told (through the reserve fd) rather than left
#      hanging, snapd logs it and lives, and once the fds are freed a new
#      client is served;
#   2. a client that never reads its output is dropped once its queued
#      output passes the cap (1 MiB here), while another client's snapshot
#      completes with 0 wrong pages;
#   3. a client stalling mid-message is dropped after client_timeout, an
#      idle one (nothing half sent) is not;
#   4. connections per uid are capped, and the cap is per uid: another
#      uid is still served, and a freed slot is usable again.
#   5. a region of 2^62 bytes or past the process's mappings, a region on
#      MAP_HUGETLB memory (a few 2 MiB pages are reserved for the run and
#      nr_hugepages restored) and a UFFD_USER_MODE_ONLY uffd are refused
#      with a clear error; snapd lives and the process is never blocked.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (prlimit on snapd, a second uid)"
command -v prlimit >/dev/null || skip "prlimit (util-linux) is missing"

# ---- 1. fd exhaustion ------------------------------------------------------
snapd_config "max_connections_per_uid 4096" "log_level debug"
snapd_start
base=$(ls /proc/"$SNAPD_PID"/fd | wc -l)
limit=$((base + 16))
prlimit --pid "$SNAPD_PID" --nofile=$limit:$limit || fail "prlimit on snapd"
echo "snapd holds $base fds; RLIMIT_NOFILE now $limit"

timeout 60 python3 - "$SNAPD_SOCK" <<'PYEOF' || fail "fd exhaustion (see above)"
import json, socket, sys, time
SOCK = sys.argv[1]

def greet(s, timeout):
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\n" not in buf:
            d = s.recv(4096)
            if not d:
                return "closed"
            buf += d
    except socket.timeout:
        return "waiting"
    except ConnectionResetError:
        return "closed"
    m = json.loads(buf.split(b"\n")[0])
    if "QMP" in m:
        return "served"
    return "refused: " + m["error"]["class"] + ": " + m["error"]["desc"]

held, outcomes = [], []
for i in range(64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    held.append(s)
    o = greet(s, 1.5)
    outcomes.append(o)
    if o != "served" and len(outcomes) - outcomes.index(o) >= 4:
        break
served = outcomes.count("served")
others = [o for o in outcomes if o != "served"]
print("connections: %d served, then: %s" % (served, others))
if served == 0 or not others:
    sys.exit("FAILED: expected some connections served and then refused or left waiting")
if not any(o.startswith("refused: Busy") or o in ("waiting", "closed") for o in others):
    sys.exit("FAILED: an unserved connection got something other than Busy: %s" % others)
# The served ones still work while the table is full.
s = held[0]
s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":1}\n')
s.settimeout(5)
data = b""
while data.count(b"\n") < 2:
    d = s.recv(65536)
    if not d:
        sys.exit("FAILED: a served connection was closed while fds ran out")
    data += d
st = json.loads(data.split(b"\n")[1])
print("ok: a connection accepted before the exhaustion still works: %d connections" % st["return"]["connections"])
for s in held:
    s.close()
# snapd pauses accepting for a second after EMFILE: give it a few.
deadline = time.time() + 10
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    o = greet(s, 3)
    if o == "served":
        break
    s.close()
    if time.time() > deadline:
        sys.exit("FAILED: no new client served within 10 s of closing the others: %s" % o)
    time.sleep(0.2)
s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-version","id":"after"}\n')
data = b""
while data.count(b"\n") < 2:
    d = s.recv(4096)
    if not d:
        break
    data += d
if b'"id":"after"' not in data:
    sys.exit("FAILED: the new client was not answered: %r" % data)
print("ok: after the others closed, a new client is served")
s.close()

# Now make accept() itself fail: one client fills snapd's table with fds
# it asks snapd to keep (getfd), until snapd cannot take one more.
import os
h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
h.connect(SOCK)
if greet(h, 3) != "served":
    sys.exit("FAILED: the fd-holding client was not served")
h.sendall(b'{"execute":"qmp_capabilities"}\n')
h.settimeout(5)
hbuf = b""
def hreply():
    global hbuf
    while b"\n" not in hbuf:
        d = h.recv(4096)
        if not d:
            return None
        hbuf += d
    l, hbuf = hbuf.split(b"\n", 1)
    return json.loads(l)
hreply()
kept = 0
for i in range(16):
    r, w = os.pipe()
    msg = json.dumps({"execute": "getfd", "arguments": {"fdname": "f%d" % i}}).encode() + b"\n"
    socket.send_fds(h, [msg[:1]], [r])
    h.sendall(msg[1:])
    os.close(r)
    os.close(w)
    rep = hreply()
    if rep is None or "error" in rep:
        break
    kept += 1
print("snapd keeps %d of our fds; its table is full" % kept)
waiting = []
outcomes = []
for i in range(3):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    o = greet(s, 1.5)
    outcomes.append(o)
    if o == "waiting":
        waiting.append(s)
print("new connections while it is full: %s" % outcomes)
if "served" in outcomes:
    sys.exit("FAILED: a connection was served although snapd's fd table is full")
if not any("out of file descriptors" in o for o in outcomes):
    sys.exit("FAILED: no peer was told snapd is out of file descriptors")
h.close()
for s in waiting:
    o = greet(s, 5)
    if o != "served":
        sys.exit("FAILED: a connection that waited was not served once fds were freed: %s" % o)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(SOCK)
o = greet(s, 5)
if o != "served":
    sys.exit("FAILED: a new client was not served once the fds were freed: %s" % o)
print("ok: accept() failing with EMFILE: peers told (or left waiting, then served); once the fds were freed a new client is served")
PYEOF
grep -q "control socket: accept: Too many open files" "$SNAPD_LOG" ||
	fail "snapd did not log running out of descriptors"
snapd_alive || fail "snapd died of fd exhaustion"
echo "ok: snapd logged the exhaustion and lives"
snapd_stop || fail "snapd did not exit cleanly after fd exhaustion"

# ---- 2-4: one daemon with short limits -------------------------------------
snapd_config "max_connections_per_uid 3" "client_timeout 2" "socket_mode 0666"
chmod 0711 "$T" || fail "chmod $T"
snapd_start

# 2. A client that never reads, beside a snapshot.
out=$T/beside.json
"$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 128M --threads 2 \
    --pattern mixed --buffer 4M --run-after 1 --name beside >"$out" 2>"$out.err" &
work=$!
t_track "$work"
timeout 60 python3 - "$SNAPD_SOCK" <<'PYEOF' || fail "the client that never reads (see above)"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b'{"execute":"qmp_capabilities"}\n')
cmd = b'{"execute":"query-config","id":12345}\n' * 200
sent = 0
t0 = time.time()
try:
    while time.time() - t0 < 30:
        s.sendall(cmd)
        sent += len(cmd)
except (BrokenPipeError, ConnectionResetError):
    pass
# Everything that was queued for us before the drop may still be in our
# receive queue; after it, EOF.
s.settimeout(10)
got = 0
try:
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
except (ConnectionResetError, socket.timeout) as e:
    if isinstance(e, socket.timeout):
        sys.exit("FAILED: the connection of a client that never reads was not closed (%d bytes sent)" % sent)
print("ok: the client that never read was dropped after sending %d bytes of commands (%d bytes of replies reached it)" % (sent, got))
PYEOF
grep -q "output queued and not read; dropping it" "$SNAPD_LOG" ||
	fail "snapd did not log dropping the client that never reads"
rc=0
wait "$work" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "the snapshot beside the client that never reads failed (exit $rc)"; }
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages in snapwork's report"
[ "$wrong" -eq 0 ] || fail "$wrong wrong pages in the snapshot beside the client that never reads"
echo "ok: the snapshot beside it completed with 0 wrong pages"

# 3 and 4.
timeout 60 python3 - "$SNAPD_SOCK" <<'PYEOF' || fail "stall or per-uid cap (see above)"
import json, os, socket, sys, time
SOCK = sys.argv[1]
failures = []
def check(cond, what):
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failures.append(what)

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.settimeout(10)
    return s

def line(s, timeout=10):
    s.settimeout(timeout)
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            d = s.recv(1)
            if not d:
                return None
            buf += d
    except (socket.timeout, ConnectionResetError):
        return None
    return json.loads(buf)

# A connection snapd greets, retried for 10 s: a slot freed by a close is
# free once snapd has seen the close, which takes a moment.
def served():
    deadline = time.time() + 10
    while True:
        s = conn()
        if "QMP" in (line(s) or {}):
            return s
        s.close()
        if time.time() > deadline:
            return None
        time.sleep(0.05)

# 3. Stalled vs idle.
idle, stall = conn(), conn()
check("QMP" in line(idle) and "QMP" in line(stall), "two clients greeted")
stall.sendall(b'{"execute":"qmp_cap')
t0 = time.time()
r = line(stall, 10)
dt = time.time() - t0
check(r is None and 1.5 <= dt <= 6, "the client stalling mid-message was dropped after %.1f s (client_timeout 2)" % dt)
idle.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-version","id":"idle"}\n')
r1, r2 = line(idle), line(idle)
check(r2 is not None and r2.get("id") == "idle", "the idle client is still served after %.1f s" % (time.time() - t0))
idle.close()
stall.close()

# 4. Per-uid cap of 3.
held = [served() for _ in range(3)]
check(all(s is not None for s in held), "three root connections served")
extra = conn()
r = line(extra)
check(r is not None and r.get("error", {}).get("class") == "Busy" and "too many connections for uid 0" in r["error"]["desc"],
      "a fourth root connection is refused: %s" % r)
check(line(extra, 2) is None, "and closed")
extra.close()
pid = os.fork()
if pid == 0:
    os.setgid(65534)
    os.setuid(65534)
    s = conn()
    ok = "QMP" in (line(s) or {})
    os._exit(0 if ok else 1)
_, st = os.waitpid(pid, 0)
check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "uid 65534 is still served while root is at its cap")
held.pop().close()
check(served() is not None, "a freed slot serves root again")
sys.exit(1 if failures else 0)
PYEOF
# 5. Requests that once took snapd down or froze the process: a region of
# 2^62 bytes (the page bitmaps' allocation failed and snapd exited), a
# region outside the process's mappings, a region on MAP_HUGETLB memory
# (accepted, its writers then waited for the whole snapshot), and a
# UFFD_USER_MODE_ONLY uffd (accepted; read(2) into the region then failed
# with EFAULT).  Each must be refused with a clear error, snapd alive, the
# process unblocked.
hp_saved=$(cat /proc/sys/vm/nr_hugepages)
restore_hugepages() {
	local rc=$?
	echo "$hp_saved" >/proc/sys/vm/nr_hugepages 2>/dev/null
	(exit $rc)
	t_cleanup
}
trap restore_hugepages EXIT
echo $((hp_saved + 4)) >/proc/sys/vm/nr_hugepages 2>/dev/null
hp_free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
timeout 60 python3 - "$SNAPD_SOCK" "$hp_free" "$TOP/tests" <<'PYEOF' || fail "hostile regions or uffd (see above)"
import ctypes, mmap, os, sys, time
SOCK, HP_FREE = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from qmp import QMP
failures = []
def check(cond, what):
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failures.append(what)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.syscall.restype = ctypes.c_long

class Client(QMP):
    def __init__(self):
        QMP.__init__(self, SOCK)
    def start(self, name, start, length, user_mode_only=False):
        # userfaultfd(2): 323 on x86-64; flag 1 is UFFD_USER_MODE_ONLY.
        u = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK | (1 if user_mode_only else 0))
        assert u >= 0, "userfaultfd: errno %d" % ctypes.get_errno()
        self.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [u])
        os.close(u)
        return self.cmd({"execute": "snapshot-start", "arguments": {"uffd": "u", "name": name,
                         "regions": [{"start": start, "length": length}]}})

def err(r):
    return r["error"]["class"] + ": " + r["error"]["desc"] if r and "error" in r else repr(r)

c = Client()
m = mmap.mmap(-1, 1 << 20)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
r = c.start("huge", addr, 1 << 62)
check(r is not None and r.get("error", {}).get("class") == "InvalidParameter" and "not all mapped" in r["error"]["desc"],
      "a region of 2^62 bytes is refused: %s" % err(r))
r = c.cmd({"execute": "query-status"}) if r is not None else None
check(r is not None and "return" in r, "snapd still answers after it")
c = Client()
r = c.start("beyond", addr, 64 << 20)
check(r.get("error", {}).get("class") == "InvalidParameter" and "not all mapped" in r["error"]["desc"],
      "a region reaching past the mapping is refused: %s" % err(r))

# MAP_PRIVATE|ANONYMOUS|HUGETLB
if HP_FREE >= 2:
    h = libc.mmap(None, 4 << 20, 3, 0x02 | 0x20 | 0x40000, -1, 0)
    check(h not in (None, ctypes.c_void_p(-1).value), "MAP_HUGETLB of 4 MiB (errno %d)" % ctypes.get_errno())
    ctypes.memset(h, 0x11, 4 << 20)
    r = c.start("hugetlb", h, 4 << 20)
    check(r.get("error", {}).get("class") == "InvalidParameter" and "hugetlbfs" in r["error"]["desc"],
          "a region on MAP_HUGETLB memory is refused: %s" % err(r))
    t0 = time.monotonic()
    for off in range(0, 4 << 20, 4096):
        ctypes.memset(h + off, 0x22, 1)
    dt = time.monotonic() - t0
    check(dt < 1.0, "writes to the huge pages are not held (%.3f s for 1024 writes)" % dt)
else:
    print("note: no huge pages free: the hugetlbfs case is not run")

# A user-mode-only uffd: refused at arm, and a read(2) into the region works.
r = c.start("usermode", addr, 1 << 20, user_mode_only=True)
check(r.get("error") is not None and "UFFD_USER_MODE_ONLY" in r["error"]["desc"],
      "a UFFD_USER_MODE_ONLY uffd is refused: %s" % err(r))
rfd, wfd = os.pipe()
os.write(wfd, b"x" * 4096)
n = libc.read(rfd, ctypes.c_void_p(addr), 4096)
check(n == 4096, "read(2) into the region afterwards: %d (errno %d)" % (n, ctypes.get_errno()))
sys.exit(1 if failures else 0)
PYEOF
[ "$hp_free" -ge 2 ] || skip "the kernel gave no huge pages (nr_hugepages $((hp_saved + 4)) asked, $hp_free free): the hugetlbfs case did not run"
snapd_alive || fail "snapd is gone"
echo "ok: snapd survived every limit"
