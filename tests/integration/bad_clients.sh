#!/bin/bash
# Proof 6, a bad client costs snapd one connection and nothing else: a
# client that sends garbage, one that passes a pipe as its "userfaultfd",
# one whose userfaultfd was already set up (UFFDIO_API, a registered
# range), one that sends 250 fds in one message, a thousand connections at
# once, and one that asks for regions it does not own or that are not
# mapped each get an error, while a snapwork snapshot running beside them
# completes with 0 wrong pages.  fds travel with python's socket.send_fds.
. "$(dirname "$0")/../lib.sh"
t_init
# A socket everyone may open, so that an unprivileged client can try too.
snapd_config "socket_mode 0666"
chmod 0711 "$T" || fail "chmod $T"
snapd_start

out=$T/beside.json
"$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 256M --threads 4 \
    --pattern mixed --buffer 4M --run-after 2 --name beside >"$out" 2>"$out.err" &
work=$!
t_track "$work"

timeout 120 python3 - "$SNAPD_SOCK" "$SNAPD_PID" <<'PYEOF' || fail "a bad client was not refused properly (see above)"
import ctypes, json, mmap, os, socket, sys, tempfile, time

SOCK = sys.argv[1]
SNAPD_PID = int(sys.argv[2])
failures = []

def snapd_fds(target=None):
    """snapd's open fds, or only those open on TARGET (the snapshot running
    beside us opens and closes fds of its own at any moment)."""
    d = "/proc/%d/fd" % SNAPD_PID
    n = 0
    for f in os.listdir(d):
        try:
            if target is None or os.readlink(os.path.join(d, f)) == target:
                n += 1
        except OSError:
            pass
    return n

def check(cond, what):
    if cond:
        print("ok:", what)
    else:
        print("FAILED:", what)
        failures.append(what)

class Client:
    def __init__(self, negotiate=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(SOCK)
        self.buf = b""
        greeting = self.read()
        assert greeting is not None and "QMP" in greeting, "no greeting: %r" % greeting
        if negotiate:
            r = self.cmd({"execute": "qmp_capabilities"})
            assert "return" in r, "qmp_capabilities refused: %r" % r

    def read(self):
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return None
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self):
        # The next reply, skipping events.
        while True:
            m = self.read()
            if m is None or "event" not in m:
                return m

    def send_raw(self, data, fds=None):
        if fds:
            socket.send_fds(self.s, [data[:1]], fds)
            data = data[1:]
        self.s.sendall(data)

    def cmd(self, obj, fds=None):
        self.send_raw(json.dumps(obj).encode() + b"\n", fds)
        return self.reply()

    def close(self):
        self.s.close()

def is_error(r, cls=None):
    return r is not None and "error" in r and (cls is None or r["error"].get("class") == cls)

def desc(r):
    return r["error"]["desc"] if is_error(r) else repr(r)

def alive():
    c = Client()
    r = c.cmd({"execute": "query-version", "id": "alive"})
    c.close()
    return r is not None and "return" in r

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_userfaultfd = 323       # x86_64
O_CLOEXEC, O_NONBLOCK = 0o2000000, 0o4000

def new_uffd():
    fd = libc.syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)
    if fd < 0:
        e = ctypes.get_errno()
        sys.exit("userfaultfd: %s" % os.strerror(e))
    return fd

# --- garbage -------------------------------------------------------------
c = Client(negotiate=False)
r = c.cmd({"execute": "query-status"})
check(is_error(r, "CommandNotFound"), "a command before negotiation is refused: " + desc(r))
c.send_raw(b"this is not json\n")
r = c.reply()
check(is_error(r, "ParseError"), "a line that is not JSON gets ParseError: " + desc(r))
r = c.cmd({"execute": "qmp_capabilities"})
check(r is not None and "return" in r, "the connection survives a ParseError")
for junk, what in ((b"[1, 2, 3]\n", "a JSON array"),
                   (b'{"execute": 42}\n', "a non-string command"),
                   (b'{"execute": "no-such-command"}\n', "an unknown command"),
                   (b'{"execute": "query-version", "bogus": 1}\n', "an unknown member"),
                   (b'{"execute": "snapshot-start", "arguments": {"regions": "x"}}\n', "snapshot-start with wrong types"),
                   (b'\x00\xff\xfe garbage \x01\x02\n', "binary garbage")):
    c.send_raw(junk)
    r = c.reply()
    check(is_error(r), "%s is refused: %s" % (what, desc(r)))
try:
    c.send_raw(b'{"execute": "query-version", "arguments": {"pad": "' + b"x" * 100000)
except OSError:
    pass        # snapd may close before reading it all
r = c.reply()
check(is_error(r, "MessageTooLarge"), "an oversized message gets MessageTooLarge: " + desc(r))
try:
    c.s.sendall(b'"}}\n{"execute": "query-version"}\n')
    r = c.reply()
except OSError:
    r = None
check(r is None, "the connection is closed after an oversized message")
c.close()
check(alive(), "snapd answers after the garbage")

# --- a pipe passed as the userfaultfd ---------------------------------------
buf = mmap.mmap(-1, 1 << 20)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
c = Client()
rfd, wfd = os.pipe()
r = c.cmd({"execute": "getfd", "arguments": {"fdname": "uffd"}, "id": 1}, [rfd])
check(r is not None and "return" in r, "getfd accepts a pipe (it cannot know yet)")
os.close(rfd)
r = c.cmd({"execute": "snapshot-start", "id": 2, "arguments": {
    "uffd": "uffd", "name": "pipe-as-uffd",
    "regions": [{"start": addr, "length": 1 << 20, "name": "buf"}]}})
check(is_error(r), "snapshot-start with a pipe as uffd is refused: " + desc(r))
os.close(wfd)
r = c.cmd({"execute": "snapshot-start", "id": 3, "arguments": {
    "uffd": "never-given", "regions": [{"start": addr, "length": 4096, "name": "buf"}]}})
check(is_error(r), "snapshot-start with an fdname never given is refused: " + desc(r))
c.close()

# --- regions not mapped or not the client's own ----------------------------
tmp = tempfile.TemporaryFile()
tmp.write(b"\1" * (1 << 16))
tmp.flush()
fmap = mmap.mmap(tmp.fileno(), 1 << 16, flags=mmap.MAP_PRIVATE)
faddr = ctypes.addressof(ctypes.c_char.from_buffer(fmap))
bad = [
    ("a region that is not mapped", [{"start": 0x10000, "length": 1 << 20, "name": "nothing"}]),
    ("a region beyond the user address space", [{"start": 0x7ffffffff000, "length": 1 << 20, "name": "top"}]),
    ("a kernel address (past 2^63)", [{"start": 0xffff888000000000, "length": 4096, "name": "kernel"}]),
    ("a region running past its mapping", [{"start": addr, "length": 64 << 20, "name": "past"}]),
    ("an unaligned region", [{"start": addr + 100, "length": 4096, "name": "odd"}]),
    ("a zero-length region", [{"start": addr, "length": 0, "name": "empty"}]),
    ("overlapping regions", [{"start": addr, "length": 8192, "name": "a"},
                             {"start": addr + 4096, "length": 8192, "name": "b"}]),
    ("a private file mapping", [{"start": faddr, "length": 1 << 16, "name": "file"}]),
    ("a bad region name", [{"start": addr, "length": 4096, "name": "../../etc"}]),
]
for what, regions in bad:
    c = Client()
    u = new_uffd()
    r = c.cmd({"execute": "getfd", "arguments": {"fdname": "u"}, "id": 1}, [u])
    # Like libsnapclient, keep no copy: a protection left behind would
    # then be dropped when snapd closes its fd instead of hanging us.
    os.close(u)
    check(r is not None and "return" in r, "getfd of a userfaultfd for " + what)
    r = c.cmd({"execute": "snapshot-start", "id": 2, "arguments": {
        "uffd": "u", "name": "bad", "regions": regions}})
    check(is_error(r), "%s is refused: %s" % (what, desc(r)))
    c.close()
    # Nothing may stay write-protected: this write must not block.
    buf[0:4096] = b"\2" * 4096
    fmap[0:16] = b"\3" * 16
check(alive(), "snapd answers after the bad regions")

# Another process's memory, asked by an unprivileged peer with its own
# user-mode-only uffd (or a pipe where even that is refused): snapd must
# refuse, never act on pid 1.
pid = os.fork()
if pid == 0:
    try:
        os.setgid(65534)
        os.setuid(65534)
        c = Client()
        fd = libc.syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1)
        if fd < 0:
            fd, wfd = os.pipe()
        c.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [fd])
        r = c.cmd({"execute": "snapshot-start", "id": 2, "arguments": {
            "uffd": "u", "pid": 1, "regions": [{"start": 0x400000, "length": 4096, "name": "init"}]}})
        ok = is_error(r)
        print(("ok:" if ok else "FAILED:"), "an unprivileged peer asking for pid 1's memory is refused:", desc(r))
        r = c.cmd({"execute": "snapshot-delete", "arguments": {"name": "beside"}})
        ok2 = is_error(r)
        print(("ok:" if ok2 else "FAILED:"), "an unprivileged peer cannot delete root's snapshot:", desc(r))
        os._exit(0 if ok and ok2 else 1)
    except Exception as e:
        print("FAILED: unprivileged client:", e)
        os._exit(1)
_, st = os.waitpid(pid, 0)
check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "the unprivileged client was refused")
# --- a userfaultfd already set up by the client ----------------------------
import fcntl, struct
UFFDIO_API = 0xc018aa3f
UFFDIO_REGISTER = 0xc020aa00
buf = mmap.mmap(-1, 1 << 20)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
fd = new_uffd()
fcntl.ioctl(fd, UFFDIO_API, bytearray(struct.pack("QQQ", 0xAA, 1, 0)))
fcntl.ioctl(fd, UFFDIO_REGISTER, bytearray(struct.pack("QQQQ", addr, 1 << 20, 2, 0)))
c = Client()
c.cmd({"execute": "getfd", "arguments": {"fdname": "used"}}, [fd])
os.close(fd)
r = c.cmd({"execute": "snapshot-start", "id": 3, "arguments": {
    "uffd": "used", "name": "used-uffd", "regions": [{"start": addr, "length": 1 << 20, "name": "b"}]}})
check(is_error(r) and "UFFDIO_API" in desc(r),
      "a userfaultfd already set up elsewhere is refused: " + desc(r))
buf[0:1] = b"x"     # and this process was not left write-protected
check(True, "the client can write its region after the refusal")
c.close()

# --- hundreds of fds in one message ----------------------------------------
base = snapd_fds("/dev/null")
c = Client()
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(250)]
try:
    socket.send_fds(c.s, [b'{"execute": "getfd", "arguments": {"fdname": "many"}}\n'], fds)
    r = c.reply()
except OSError as e:
    r = {"error": {"class": "sendmsg", "desc": str(e)}}
for f in fds:
    os.close(f)
check(r is None or is_error(r), "250 fds in one message are refused: %s" % (desc(r) if r else "connection closed"))
c.close()
time.sleep(0.3)
after = snapd_fds("/dev/null")
check(after <= base, "snapd kept none of them (%d fds on /dev/null before, %d after)" % (base, after))

# --- a thousand connections at once ----------------------------------------
conns, refused = [], 0
for i in range(1000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(SOCK)
        conns.append(s)
    except OSError:
        refused += 1
        s.close()
served = 0
for s in conns:
    try:
        d = s.recv(4096)
        if b"QMP" in d:
            served += 1
    except OSError:
        pass
for s in conns:
    s.close()
check(served <= 64, "a thousand connections: %d greeted, the rest refused or dropped (%d refused at connect)" % (served, refused))
time.sleep(0.5)
check(alive(), "snapd answers after a thousand connections")

check(alive(), "snapd answers after all bad clients")
sys.exit(1 if failures else 0)
PYEOF

rc=0
wait "$work" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "the snapshot beside the bad clients failed (exit $rc)"; }
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages in snapwork's report"
[ "$wrong" -eq 0 ] || fail "$wrong wrong pages in the snapshot beside the bad clients"
snapd_alive || fail "snapd is gone"
echo "ok: the snapshot beside the bad clients completed with 0 wrong pages"
