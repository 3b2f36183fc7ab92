#!/bin/bash
# The security model, shown with real unprivileged clients (uids 61001 and
# 61002, no passwd entry needed; setpriv and setuid children) against a
# root snapd:
#   - the socket is root:users 0660 and a peer outside the group cannot
#     connect at all;
#   - an unprivileged peer snapshots its own memory (libsnapclient through
#     /dev/userfaultfd, as vm.unprivileged_userfaultfd is 0) into
#     snapshot_dir/uid-UID/, a directory it owns (0700), a file it owns
#     (0600); it may not name another process (pid);
#   - another unprivileged peer neither sees (query-snapshots, events,
#     memsnapctl list and wait) nor cancels nor deletes it; root sees all;
#   - names are a strict alphabet: ../, absolute, hidden, too long: refused;
#   - symlinks planted by the user (NAME.zsnap -> /etc/passwd, the temp
#     file's name -> a path in /etc, uid-UID itself -> /etc) make snapd
#     refuse or fail, never read or write through them: /etc is untouched.
#   - privilege is judged in snapd's user namespace: uid 61001 inside its
#     own namespace (unshare -U -r, where it shows every capability) may not
#     name a root process being snapshotted (held pre-armed, never armed),
#     and a root peer naming that process with a userfaultfd of its own mm
#     (the same addresses mapped in the peer) fails the owner proof at arm,
#     though the process's pages are already uffd-wp;
#   - max_snapshots_per_uid (4): a user's fifth pre-armed snapshot is Busy,
#     another user is still served.
# /dev/userfaultfd is opened to the users group for the run and restored
# by the EXIT trap.  Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (to run clients as other uids)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is missing"
getent group users >/dev/null || skip "no 'users' group for the socket"
[ -c /dev/userfaultfd ] || skip "no /dev/userfaultfd: unprivileged clients cannot make a full userfaultfd"

UA=61001 UB=61002 UC=61003
GUSERS=$(getent group users | cut -d: -f3)
t_uffd_to_group users

as_a() { setpriv --reuid=$UA --regid=$UA --groups=$GUSERS "$@"; }
as_b() { setpriv --reuid=$UB --regid=$UB --groups=$GUSERS "$@"; }

snapd_config "socket_group users" "socket_mode 0660" "buffer_size 8M" \
    "compression_threads 1"
chmod 0711 "$T" "$SNAPD_DIR" || fail "chmod $T $SNAPD_DIR"
snapd_start

# ---- the socket ----------------------------------------------------------
st=$(stat -c '%U:%G %a' "$SNAPD_SOCK")
[ "$st" = "root:users 660" ] || fail "socket is $st, expected root:users 660"
echo "ok: socket is $st"
out=$(setpriv --reuid=$UC --regid=$UC --clear-groups "$MEMSNAPCTL_BIN" status 2>&1)
rc=$?
[ "$rc" -eq 3 ] || fail "a peer outside the socket's group reached snapd (memsnapctl exit $rc): $out"
case $out in *"ermission denied"*) ;; *) fail "no 'Permission denied' for a peer outside the group: $out" ;; esac
echo "ok: a peer outside the group cannot connect: $out"

# ---- an unprivileged peer snapshots its own memory -----------------------
out=$T/a1.json
as_a "$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 32M --threads 2 \
    --name a1 >"$out" 2>"$out.err" || { show_snapwork "$out"; fail "uid $UA could not snapshot its own memory"; }
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages in snapwork's report"
[ "$wrong" -eq 0 ] || fail "$wrong wrong pages in uid $UA's snapshot"
f=$SNAPD_DIR/uid-$UA/a1.zsnap
[ -f "$f" ] || fail "uid $UA's snapshot is not at $f: $(ls -laR "$SNAPD_DIR")"
st=$(stat -c '%u:%g %a' "$f")
[ "$st" = "$UA:$UA 600" ] || fail "$f is $st, expected $UA:$UA 600"
st=$(stat -c '%u %a' "$SNAPD_DIR/uid-$UA")
[ "$st" = "$UA 700" ] || fail "$SNAPD_DIR/uid-$UA is $st, expected $UA 700"
[ -z "$(find "$SNAPD_DIR" -maxdepth 1 -name 'a1*')" ] || fail "uid $UA's snapshot landed in the top directory"
echo "ok: uid $UA's snapshot is $f, owner $UA, mode 0600, in a 0700 directory it owns"

# ---- the other peer and root, through memsnapctl ----------------------------
as_b "$MEMSNAPCTL_BIN" --json list >"$T/b-list.json" || fail "memsnapctl list as uid $UB failed"
python3 - "$T/b-list.json" <<'EOF' || fail "uid $UB sees another uid's snapshots"
import json, sys
l = json.load(open(sys.argv[1]))
sys.exit(1 if any(s["name"] == "a1" for s in l) else 0)
EOF
"$MEMSNAPCTL_BIN" --json list >"$T/root-list.json" || fail "memsnapctl list as root failed"
a1=$(python3 - "$T/root-list.json" "$UA" <<'EOF'
import json, sys
l = json.load(open(sys.argv[1]))
ids = [s["id"] for s in l if s["name"] == "a1" and s["uid"] == int(sys.argv[2])]
print(ids[0] if ids else "")
EOF
)
[ -n "$a1" ] || fail "root does not see uid $UA's snapshot a1: $(cat "$T/root-list.json")"
echo "ok: memsnapctl list: uid $UB does not see a1, root does (id $a1)"
out=$(as_b "$MEMSNAPCTL_BIN" wait "$a1" 2>&1) && fail "uid $UB could wait on uid $UA's snapshot: $out"
echo "ok: memsnapctl wait $a1 as uid $UB: $out"
out=$(as_b "$MEMSNAPCTL_BIN" cancel "$a1" 2>&1) && fail "uid $UB could cancel uid $UA's snapshot: $out"
case $out in *PermissionDenied*|*NotFound*|*"not yours"*|*"no snapshot"*) ;;
*) fail "cancel of another uid's snapshot: unexpected message: $out" ;; esac
echo "ok: memsnapctl cancel $a1 as uid $UB: $out"
out=$(as_b "$MEMSNAPCTL_BIN" delete a1 2>&1) && fail "uid $UB could delete uid $UA's snapshot: $out"
[ -f "$f" ] || fail "uid $UB's delete removed $f"
echo "ok: memsnapctl delete a1 as uid $UB: $out; the file is still there"

# ---- the rest, with clients that speak the protocol themselves -----------
# An md5 of /etc/passwd and a listing of /etc before and after.
etc_before=$(ls -A /etc | md5sum)
passwd_before=$(md5sum </etc/passwd)

timeout 120 python3 - "$SNAPD_SOCK" "$SNAPD_DIR" "$UA" "$UB" "$GUSERS" "$SNAPD_PID" <<'PYEOF' || fail "see the FAILED lines above"
import ctypes, fcntl, json, mmap, os, select, socket, sys, time

SOCK, DIR = sys.argv[1], sys.argv[2]
UA, UB, GUSERS, SNAPD_PID = (int(x) for x in sys.argv[3:7])
failures = []

def check(cond, what):
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failures.append(what)

class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(SOCK)
        self.buf = b""
        self.events = []
        g = self.read()
        assert g and "QMP" in g, "no greeting: %r" % g
        r = self.cmd({"execute": "qmp_capabilities"})
        assert "return" in r, r

    def read(self, timeout=30):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self):
        while True:
            m = self.read()
            if m is None or "event" not in m:
                return m
            self.events.append(m)

    def cmd(self, obj, fds=None):
        data = json.dumps(obj).encode() + b"\n"
        if fds:
            socket.send_fds(self.s, [data[:1]], fds)
            data = data[1:]
        self.s.sendall(data)
        return self.reply()

    def drain(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            m = self.read(max(0.05, end - time.time()))
            if m is None:
                break
            if "event" in m:
                self.events.append(m)

def err(r):
    return r["error"]["class"] + ": " + r["error"]["desc"] if r and "error" in r else repr(r)

libc = ctypes.CDLL(None, use_errno=True)
USERFAULTFD_IOC_NEW = 0xAA00

def new_uffd():
    # What libsnapclient does when the syscall is refused: the device.
    dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
    fd = fcntl.ioctl(dev, USERFAULTFD_IOC_NEW, os.O_CLOEXEC | os.O_NONBLOCK)
    os.close(dev)
    return fd

def start(c, name, size=1 << 20, extra=None):
    """Start a snapshot of a fresh mapping of ours; returns (reply, mapping)."""
    m = mmap.mmap(-1, size)
    m.write(b"\x5a" * size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    u = new_uffd()
    r = c.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [u])
    os.close(u)
    assert "return" in r, r
    args = {"uffd": "u", "regions": [{"start": addr, "length": size, "name": "mem"}]}
    if name is not None:
        args["name"] = name
    args.update(extra or {})
    return c.cmd({"execute": "snapshot-start", "arguments": args, "id": name}), m

def as_user(uid, fn):
    """Run fn() in a child with uid (and the socket's group); True if it passed."""
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            os.setgroups([GUSERS])
            os.setgid(uid)
            os.setuid(uid)
            rc = 0 if fn() else 1
        except Exception as e:
            print("FAILED: uid %d: %r" % (uid, e))
        sys.stdout.flush()
        os._exit(rc)
    _, st = os.waitpid(pid, 0)
    return os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0

def sub(checks):
    # Inside a child: print each check, pass if all held.
    ok = True
    for cond, what in checks:
        print(("ok: " if cond else "FAILED: ") + what)
        ok = ok and cond
    return ok

# ---- events and cancel across uids, with a running snapshot -------------
# Subscribers: root, and uid B (in a child, reading for the whole scene).
root_ev = Client()
r_b, w_b = os.pipe()
bpid = os.fork()
if bpid == 0:
    os.close(r_b)
    os.setgroups([GUSERS]); os.setgid(UB); os.setuid(UB)
    c = Client()
    os.write(w_b, b"subscribed\n")
    c.drain(8)
    os.write(w_b, json.dumps(c.events).encode())
    os._exit(0)
os.close(w_b)
fb = os.fdopen(r_b)
check(fb.readline() == "subscribed\n", "uid %d subscribed to events" % UB)

r_a, w_a = os.pipe()
go_r, go_w = os.pipe()
apid = os.fork()
if apid == 0:
    # uid A: a snapshot held running until it is cancelled (snapd's test
    # hook), which B then fails to cancel and A cancels itself once the
    # parent says so.
    os.close(r_a)
    os.close(go_w)
    os.setgroups([GUSERS]); os.setgid(UA); os.setuid(UA)
    c = Client()
    r, m = start(c, "slow", size=4 << 20, extra={"test-hold": {"until": "cancel"}})
    os.write(w_a, json.dumps(r).encode() + b"\n")
    ok = "return" in r
    os.read(go_r, 1)
    r2 = c.cmd({"execute": "snapshot-cancel", "arguments": {"id": r["return"]["id"]}}) if ok else None
    # Wait for the event (30 s at most).
    end = time.time() + 30
    while time.time() < end and not any(e["event"] == "SNAPSHOT_FAILED" for e in c.events):
        c.drain(0.5)
    names = [(e["event"], e["data"].get("cancelled")) for e in c.events]
    os.write(w_a, json.dumps({"cancel": r2, "events": names}).encode() + b"\n")
    os._exit(0)
os.close(w_a)
os.close(go_r)
fa = os.fdopen(r_a)
r = json.loads(fa.readline())
check("return" in r, "uid %d started a slow snapshot of its own memory: %s" % (UA, r.get("return", err(r))))
slow = r["return"]["id"]
check(r["return"]["file"] == "%s/uid-%d/slow.zsnap" % (DIR, UA), "its file will be in uid-%d/: %s" % (UA, r["return"]["file"]))

def b_cancels():
    c = Client()
    r = c.cmd({"execute": "snapshot-cancel", "arguments": {"id": slow}})
    q = c.cmd({"execute": "query-snapshots"})
    return sub([
        ("error" in r and r["error"]["class"] in ("PermissionDenied", "NotFound"),
         "uid %d cannot cancel uid %d's running snapshot %d: %s" % (UB, UA, slow, err(r))),
        ("return" in q and all(s["uid"] == UB for s in q["return"]),
         "uid %d's query-snapshots holds only its own: %s" % (UB, [s["name"] for s in q.get("return", [])])),
    ])
check(as_user(UB, b_cancels), "uid %d was refused" % UB)
q = root_ev.cmd({"execute": "query-snapshots"})
mine = [s for s in q["return"] if s["id"] == slow]
check(mine and mine[0]["state"] in ("arming", "running", "finishing"),
      "root sees uid %d's snapshot %d still running after uid %d's attempt: %s" % (UA, slow, UB, mine and mine[0]["state"]))
os.write(go_w, b"x")
os.close(go_w)
res = json.loads(fa.readline())
check(res["cancel"] is not None and "return" in res["cancel"], "uid %d cancels its own snapshot: %r" % (UA, res["cancel"]))
check(("SNAPSHOT_FAILED", True) in [tuple(x) for x in res["events"]], "uid %d got its SNAPSHOT_FAILED (cancelled): %s" % (UA, res["events"]))
os.waitpid(apid, 0)
check(not os.path.exists("%s/uid-%d/slow.zsnap" % (DIR, UA)), "the cancelled snapshot left no file")

b_events = json.loads(fb.read() or "[]")
os.waitpid(bpid, 0)
check(not any(e["data"].get("id") == slow for e in b_events),
      "uid %d received none of uid %d's events (got %d events)" % (UB, UA, len(b_events)))
root_ev.drain(1)
check(any(e["data"].get("id") == slow and e["event"] == "SNAPSHOT_ARMED" for e in root_ev.events) and
      any(e["data"].get("id") == slow and e["event"] == "SNAPSHOT_FAILED" for e in root_ev.events),
      "root received uid %d's SNAPSHOT_ARMED and SNAPSHOT_FAILED" % UA)
root_ev.s.close()

# ---- what an unprivileged peer may not ask -------------------------------
def a_refusals():
    c = Client()
    checks = []
    r, _ = start(c, "other", extra={"pid": 1})
    checks.append(("error" in r and r["error"]["class"] == "PermissionDenied",
                   "uid %d may not name another process (pid 1): %s" % (UA, err(r))))
    for bad in ("../../etc/passwd", "/etc/passwd", "../x", ".hidden", "a/b", "x" * 64, "", "a b", "sn\u00e4p"):
        r, _ = start(c, bad)
        checks.append(("error" in r and r["error"]["class"] == "InvalidParameter",
                       "snapshot name %r refused: %s" % (bad, err(r))))
        r = c.cmd({"execute": "snapshot-delete", "arguments": {"name": bad}})
        checks.append(("error" in r and r["error"]["class"] == "InvalidParameter",
                       "delete of %r refused: %s" % (bad, err(r))))
    r = c.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [new_uffd()])
    r = c.cmd({"execute": "snapshot-start", "arguments": {"uffd": "u", "name": "rn",
               "regions": [{"start": 1 << 30, "length": 4096, "name": "../../etc"}]}})
    checks.append(("error" in r and r["error"]["class"] == "InvalidParameter",
                   "region name '../../etc' refused: %s" % err(r)))
    r = c.cmd({"execute": "closefd", "arguments": {"fdname": "u"}})
    # A bigger buffer than the configuration's is cut down, not granted.
    r, m = start(c, "bigbuf", extra={"buffer-size": 1 << 30})
    checks.append(("return" in r, "a snapshot asking a 1 GiB buffer runs: %s" % r.get("return", err(r))))
    time.sleep(0.5)
    q = c.cmd({"execute": "query-snapshots"})
    bb = [s for s in q["return"] if s["name"] == "bigbuf"]
    checks.append((bb and bb[0]["buffer-size"] <= 8 << 20,
                   "its buffer was cut to the configured 8 MiB: %s" % (bb and bb[0]["buffer-size"])))
    return sub(checks)
check(as_user(UA, a_refusals), "uid %d's forbidden requests were all refused" % UA)

# ---- symlinks planted by the user ----------------------------------------
probe = "secprobe-%d" % os.getpid()
def a_symlinks():
    c = Client()
    d = "%s/uid-%d" % (DIR, UA)
    checks = []
    # NAME.zsnap -> /etc/passwd
    os.symlink("/etc/passwd", d + "/evil.zsnap")
    r, _ = start(c, "evil")
    checks.append(("error" in r, "a snapshot over a planted NAME.zsnap -> /etc/passwd is refused: %s" % err(r)))
    r = c.cmd({"execute": "snapshot-delete", "arguments": {"name": "evil"}})
    checks.append(("error" in r and os.path.islink(d + "/evil.zsnap"),
                   "delete does not act through the symlink: %s" % err(r)))
    # NAME.raw -> /etc
    os.symlink("/etc", d + "/evilraw.raw")
    r, _ = start(c, "evilraw", extra={"format": "raw"})
    checks.append(("error" in r, "a raw snapshot over a planted NAME.raw -> /etc is refused: %s" % err(r)))
    r = c.cmd({"execute": "snapshot-delete", "arguments": {"name": "evilraw"}})
    checks.append(("error" in r and os.path.islink(d + "/evilraw.raw"),
                   "delete of NAME.raw -> /etc does not act through it: %s" % err(r)))
    # The temp file's name -> a path in /etc (snapd names it
    # .NAME.zsnap.tmp-PID with its own pid).
    os.symlink("/etc/%s-tmp" % probe, "%s/.%s.zsnap.tmp-%d" % (d, probe, SNAPD_PID))
    r, _ = start(c, probe)
    if "return" in r:
        # Armed, then failed creating the file: wait for the event.
        c.drain(3)
        failed = [e for e in c.events if e["event"] == "SNAPSHOT_FAILED" and e["data"]["id"] == r["return"]["id"]]
        checks.append((bool(failed), "a snapshot whose temp name is a planted symlink fails: %s" %
                       (failed and failed[0]["data"]["error"])))
    else:
        checks.append((True, "a snapshot whose temp name is a planted symlink is refused: %s" % err(r)))
    checks.append((not os.path.lexists("/etc/%s-tmp" % probe), "nothing was created in /etc through it"))
    return sub(checks)
check(as_user(UA, a_symlinks), "uid %d's planted symlinks were not followed" % UA)

# uid-UID itself replaced by a symlink to /etc (the user cannot do this in
# a root-owned snapshot_dir; root plays the attacker to show snapd still
# refuses), then by a directory owned by someone else.
d = "%s/uid-%d" % (DIR, UA)
os.rename(d, d + ".saved")
os.symlink("/etc", d)
def a_dir_symlink():
    c = Client()
    r, _ = start(c, probe)
    r2 = c.cmd({"execute": "snapshot-delete", "arguments": {"name": "passwd"}})
    return sub([("error" in r, "snapshot-start with uid-%d -> /etc is refused: %s" % (UA, err(r))),
                ("error" in r2, "snapshot-delete with uid-%d -> /etc is refused: %s" % (UA, err(r2)))])
check(as_user(UA, a_dir_symlink), "a symlinked per-uid directory is refused")
os.unlink(d)
os.mkdir(d, 0o700)          # root's, not the user's
def a_dir_foreign():
    c = Client()
    r, _ = start(c, probe)
    return sub([("error" in r, "snapshot-start with uid-%d owned by root is refused: %s" % (UA, err(r)))])
check(as_user(UA, a_dir_foreign), "a per-uid directory owned by another uid is refused")
os.rmdir(d)
os.rename(d + ".saved", d)
check(not any(n.startswith(probe) or n.startswith("." + probe) for n in os.listdir("/etc")),
      "no %s* file in /etc" % probe)

# ---- root sees everything -------------------------------------------------
def b_snapshot():
    c = Client()
    r, _ = start(c, "b1")
    c.drain(2)
    mine = [e["event"] for e in c.events if "return" in r and e["data"].get("id") == r["return"]["id"]]
    return sub([("return" in r, "uid %d takes a snapshot of its own: %s" % (UB, r.get("return", err(r)))),
                ("SNAPSHOT_COMPLETED" in mine, "uid %d receives its own snapshot's events: %s" % (UB, mine))])
check(as_user(UB, b_snapshot), "uid %d's snapshot" % UB)
c = Client()
q = c.cmd({"execute": "query-snapshots"})
uids = {s["uid"] for s in q["return"]}
check({UA, UB} <= uids, "root's query-snapshots shows both users' snapshots (uids %s)" % sorted(uids))
r = c.cmd({"execute": "snapshot-delete", "arguments": {"name": "b1"}})
check("error" in r and r["error"]["class"] == "NotFound",
      "root's snapshot-delete names its own directory, never a user's: %s" % err(r))
sys.exit(1 if failures else 0)
PYEOF

# ---- privilege in snapd's namespace, owner proof, per-uid cap -------------
command -v unshare >/dev/null || skip "unshare (util-linux) is missing"
mkdir -m 0755 "$T/py" || fail "mkdir $T/py"
cat >"$T/py/peer.py" <<'PYEOF'
# A raw protocol client: python3 peer.py SOCK ROLE [ARGS...]; one JSON line
# of results on stdout.  The region lives at a fixed address (ADDR) so that
# a hostile peer can map the same addresses in its own process.
import ctypes, fcntl, json, os, sys
from qmp import QMP     # copied beside this script
SOCK, ROLE = sys.argv[1], sys.argv[2]
ADDR, SIZE = 0x5e0000000000, 1 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]

def region(addr, fill):
    # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS|FIXED_NOREPLACE
    a = libc.mmap(addr, SIZE, 3, 0x02 | 0x20 | 0x100000, -1, 0)
    assert a == addr, "mmap at 0x%x: errno %d" % (addr, ctypes.get_errno())
    ctypes.memmove(a, fill * SIZE, SIZE)

def new_uffd():
    dev = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
    fd = fcntl.ioctl(dev, 0xAA00, os.O_CLOEXEC | os.O_NONBLOCK)
    os.close(dev)
    return fd

class Client(QMP):
    def __init__(self):
        QMP.__init__(self, SOCK)
    def start(self, name, addr, extra=None):
        u = new_uffd()
        self.cmd({"execute": "getfd", "arguments": {"fdname": "u"}}, [u])
        os.close(u)
        args = {"uffd": "u", "name": name, "regions": [{"start": addr, "length": SIZE}]}
        args.update(extra or {})
        return self.cmd({"execute": "snapshot-start", "arguments": args})

out = {}
if ROLE == "victim":
    # Root's process with a secret, held pre-armed (every page uffd-wp,
    # never armed) until its stdin closes.
    region(ADDR, b"S")
    c = Client()
    out["prearm"] = c.start("victim", ADDR, {"prearm": True})
    print(json.dumps(out), flush=True)
    sys.stdin.read()
elif ROLE == "thief":
    # Name the victim by pid, with a uffd of our own mm at its addresses.
    region(ADDR, b"T")
    c = Client()
    out["uid-seen"] = os.getuid()
    out["start"] = c.start(sys.argv[4], ADDR, {"pid": int(sys.argv[3])})
    print(json.dumps(out), flush=True)
elif ROLE == "prearm-many":
    # Pre-arm N snapshots of our own memory and keep them until stdin closes.
    c = Client()
    out["starts"] = []
    for i in range(int(sys.argv[3])):
        region(ADDR + i * (4 << 20), b"P")
        out["starts"].append(c.start("many%d" % i, ADDR + i * (4 << 20), {"prearm": True}))
    print(json.dumps(out), flush=True)
    sys.stdin.read()
PYEOF
# In a directory the other uids may list: Python's import needs that.
cp "$TOP/tests/qmp.py" "$T/py/qmp.py" || fail "cannot copy tests/qmp.py"
chmod 0644 "$T/py/peer.py" "$T/py/qmp.py"
# A python3 the other uids can run: root's may live under /root.
pybin=
for p in /usr/bin/python3 "$(python3 -c 'import sys; print(sys.executable)')"; do
	as_a "$p" -c '' 2>/dev/null && { pybin=$p; break; }
done
[ -n "$pybin" ] || skip "no python3 that uid $UA can run"
coproc VICTIM { exec python3 "$T/py/peer.py" "$SNAPD_SOCK" victim; }
victim_pid=$VICTIM_PID
t_track "$victim_pid"
read -r line <&"${VICTIM[0]}" || fail "the victim said nothing"
echo "victim (pid $victim_pid, root): $line"
case $line in *'"return"'*) ;; *) fail "the victim's pre-arm failed: $line" ;; esac

out=$(as_a unshare -U -r "$pybin" "$T/py/peer.py" "$SNAPD_SOCK" thief "$victim_pid" nsthief 2>&1)
echo "uid $UA in its own user namespace names pid $victim_pid: $out"
case $out in *'"uid-seen": 0'*) ;; *) fail "the peer is not root in its own namespace: $out" ;; esac
case $out in *PermissionDenied*) ;; *) fail "a namespaced non-root peer was not refused: $out" ;; esac
[ ! -e "$SNAPD_DIR/uid-$UA/nsthief.zsnap" ] || fail "a snapshot of root's process landed in uid-$UA"
echo "ok: uid $UA with every capability in its own namespace may not name a pid"

out=$(python3 "$T/py/peer.py" "$SNAPD_SOCK" thief "$victim_pid" roothief 2>&1)
echo "root names pid $victim_pid with a uffd of its own mm: $out"
case $out in *"does not belong to process $victim_pid"*) ;;
*) fail "a uffd of another mm passed the owner check on uffd-wp pages: $out" ;; esac
[ ! -e "$SNAPD_DIR/roothief.zsnap" ] || fail "the foreign uffd's snapshot completed"
echo "ok: a uffd of another mm fails the owner proof although the pages are uffd-wp"
eval "exec ${VICTIM[1]}>&-"
wait "$victim_pid" 2>/dev/null

coproc MANY { exec setpriv --reuid=$UB --regid=$UB --groups=$GUSERS "$pybin" "$T/py/peer.py" "$SNAPD_SOCK" prearm-many 5; }
many_pid=$MANY_PID
t_track "$many_pid"
read -r line <&"${MANY[0]}" || fail "the pre-arming user said nothing"
python3 - "$line" <<'PYEOF' || fail "max_snapshots_per_uid: $line"
import json, sys
s = json.loads(sys.argv[1])["starts"]
ok = all("return" in r for r in s[:4]) and s[4].get("error", {}).get("class") == "Busy" \
    and "max_snapshots_per_uid" in s[4]["error"]["desc"]
print(("ok: " if ok else "FAILED: ") + "uid 61002 pre-arms four; its fifth: %s" % s[4])
sys.exit(0 if ok else 1)
PYEOF
out=$T/a2.json
as_a "$SNAPWORK" --socket "$SNAPD_SOCK" --json --size 4M --name a2 >"$out" 2>"$out.err" ||
	{ show_snapwork "$out"; fail "uid $UA was not served while uid $UB holds its cap"; }
echo "ok: uid $UA is still served while uid $UB holds its four"
eval "exec ${MANY[1]}>&-"
wait "$many_pid" 2>/dev/null

[ "$(md5sum </etc/passwd)" = "$passwd_before" ] || fail "/etc/passwd changed"
[ "$(ls -A /etc | md5sum)" = "$etc_before" ] || fail "the listing of /etc changed"
echo "ok: /etc/passwd and the listing of /etc are unchanged"
[ -f "$f" ] || fail "uid $UA's snapshot a1 disappeared"
as_a "$MEMSNAPCTL_BIN" delete a1 || fail "uid $UA cannot delete its own snapshot"
[ ! -e "$f" ] || fail "uid $UA's delete left $f"
echo "ok: uid $UA deletes its own snapshot"
snapd_alive || fail "snapd is gone"
