#!/bin/bash
# snapd works as a systemd service: its units are valid and confined, it
# accepts a socket handed over by socket activation, and it tells systemd
# when it is ready, that it is alive, and when it stops.
#
#  1. `systemd-analyze verify` passes on memsnap.service and memsnap.socket (on
#     copies whose ExecStart names the snapd just built), `systemd-analyze
#     security` rates the service at most 3.0, and the settings the daemon
#     depends on are there (four capabilities, /dev/userfaultfd allowed,
#     nothing that would hide it).  The same verify passes on
#     memsnap-metrics.service (its ExecStart naming the memsnapctl just
#     built) and memsnap-metrics.timer, which is shipped disabled and runs
#     it every 15 s; the service writes Debian's node_exporter textfile
#     directory with no capability, and rates at most 2.0.
#  2. `systemd-socket-activate -l SOCK snapd -c CONF`: a client connecting to
#     SOCK gets the QMP greeting and can talk to snapd, which did not create
#     the socket of its configuration instead.
#  3. Readiness: with NOTIFY_SOCKET pointing at a datagram socket this test
#     listens on, snapd sends STATUS= and READY=1, and only once its socket
#     answers; with WATCHDOG_USEC set it sends WATCHDOG=1 in time; on SIGTERM
#     it sends STOPPING=1 and exits 0.
set -u

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build}
SNAPD_BIN=${SNAPD_BIN:-$TOP/$B/snapd}
MEMSNAPCTL_BIN=${MEMSNAPCTL_BIN:-$TOP/$B/memsnapctl}

fail() {
	echo "FAIL: $*" >&2
	if [ -n "${LOG:-}" ] && [ -s "$LOG" ]; then
		echo "--- snapd's log ($LOG):" >&2
		tail -n 20 "$LOG" >&2
	fi
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

for tool in systemd-analyze systemd-socket-activate python3; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
[ -x "$SNAPD_BIN" ] || skip "$SNAPD_BIN is not built (make)"

T=$(mktemp -d /tmp/snapd-units.XXXXXX) || fail "mktemp -d failed"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

# ---- 1. the unit files ------------------------------------------------------
U=$T/units
mkdir "$U" || fail "mkdir $U"
grep -q '^ExecStart=/usr/local/sbin/snapd -c /etc/memsnap/snapd.conf$' \
    "$TOP/systemd/memsnap.service" ||
	fail "memsnap.service does not run /usr/local/sbin/snapd -c /etc/memsnap/snapd.conf"
sed "s|^ExecStart=/usr/local/sbin/snapd |ExecStart=$SNAPD_BIN |" \
    "$TOP/systemd/memsnap.service" >"$U/memsnap.service" || fail "cannot copy memsnap.service"
cp "$TOP/systemd/memsnap.socket" "$U/memsnap.socket" || fail "cannot copy memsnap.socket"
PROM=/var/lib/prometheus/node-exporter/memsnap.prom
grep -qxF "ExecStart=memsnapctl -s /run/memsnap/snapd.sock metrics --output $PROM" \
    "$TOP/systemd/memsnap-metrics.service" ||
	fail "memsnap-metrics.service does not run memsnapctl ... metrics --output $PROM"
sed "s|^ExecStart=memsnapctl |ExecStart=$MEMSNAPCTL_BIN |" \
    "$TOP/systemd/memsnap-metrics.service" >"$U/memsnap-metrics.service" ||
	fail "cannot copy memsnap-metrics.service"
cp "$TOP/systemd/memsnap-metrics.timer" "$U/memsnap-metrics.timer" ||
	fail "cannot copy memsnap-metrics.timer"

# verify exits 0 on mere warnings (an unknown key, a misspelt section), so
# any output at all is a failure.
(cd "$U" && systemd-analyze verify --man=no memsnap.service memsnap.socket \
    memsnap-metrics.service memsnap-metrics.timer) >"$T/verify" 2>&1
rc=$?
if [ $rc -ne 0 ] || [ -s "$T/verify" ]; then
	cat "$T/verify" >&2
	fail "systemd-analyze verify memsnap.service memsnap.socket memsnap-metrics.service memsnap-metrics.timer: exit $rc, messages above"
fi
echo "systemd-analyze verify: clean (memsnap and memsnap-metrics units)"

systemd-analyze security --offline=true --no-pager "$U/memsnap.service" \
    >"$T/security" 2>&1 || {
	cat "$T/security" >&2
	fail "systemd-analyze security --offline=true memsnap.service failed"
}
exposure=$(sed -n 's/.*Overall exposure level for memsnap.service: \([0-9.]*\).*/\1/p' "$T/security")
[ -n "$exposure" ] || { cat "$T/security" >&2; fail "no overall exposure level in systemd-analyze security's output"; }
awk -v e="$exposure" 'BEGIN { exit !(e <= 3.0) }' || {
	grep '✗' "$T/security" >&2
	fail "memsnap.service's exposure is $exposure, more than 3.0: its confinement was weakened (see SECURITY.md)"
}
echo "systemd-analyze security: exposure $exposure"

# The metrics writer: a oneshot every 15 s, not enabled by installing it
# (no WantedBy but the timer's), with no capability, writing only the
# textfile directory.
systemd-analyze security --offline=true --no-pager "$U/memsnap-metrics.service" \
    >"$T/security-metrics" 2>&1 || {
	cat "$T/security-metrics" >&2
	fail "systemd-analyze security --offline=true memsnap-metrics.service failed"
}
exposure=$(sed -n 's/.*Overall exposure level for memsnap-metrics.service: \([0-9.]*\).*/\1/p' "$T/security-metrics")
awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }' || {
	cat "$T/security-metrics" >&2
	fail "memsnap-metrics.service's exposure is '$exposure', more than 2.0"
}
for kv in Type=oneshot CapabilityBoundingSet= ProtectSystem=strict \
    ReadWritePaths=/var/lib/prometheus/node-exporter SuccessExitStatus=3 \
    RestrictAddressFamilies=AF_UNIX; do
	grep -qxF "$kv" "$U/memsnap-metrics.service" || fail "memsnap-metrics.service lacks $kv"
done
grep -q '^\[Install\]' "$U/memsnap-metrics.service" &&
	fail "memsnap-metrics.service has an [Install] section: the timer starts it"
for kv in OnUnitActiveSec=15s WantedBy=timers.target; do
	grep -qxF "$kv" "$U/memsnap-metrics.timer" || fail "memsnap-metrics.timer lacks $kv"
done
echo "memsnap-metrics: a oneshot every 15 s, exposure $exposure"

# Settings snapd depends on, and settings that would break it.
unit_value() {		# unit_value FILE KEY: the values of KEY, one a line
	sed -n "s/^$2=//p" "$1"
}
caps=$(unit_value "$U/memsnap.service" CapabilityBoundingSet | tr ' ' '\n' | sort | tr '\n' ' ')
[ "$caps" = "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SYS_PTRACE " ] ||
	fail "CapabilityBoundingSet is '$caps'; snapd needs exactly CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SYS_PTRACE"
for kv in Type=notify WatchdogSec=30 Restart=on-failure ProtectSystem=strict \
    ProtectHome=read-only NoNewPrivileges=yes RestrictAddressFamilies=AF_UNIX \
    'DeviceAllow=/dev/userfaultfd rw' 'ExecReload=/bin/kill -HUP $MAINPID'; do
	grep -qxF "$kv" "$U/memsnap.service" || fail "memsnap.service lacks $kv"
done
for kv in PrivateDevices=yes PrivateDevices=true PrivateUsers=yes \
    PrivateUsers=true ProtectProc=invisible ProtectProc=noaccess; do
	grep -qxF "$kv" "$U/memsnap.service" &&
		fail "memsnap.service has $kv, which hides what snapd needs"
done
for kv in ListenStream=/run/memsnap/snapd.sock SocketMode=0660; do
	grep -qxF "$kv" "$U/memsnap.socket" || fail "memsnap.socket lacks $kv"
done
for kv in RuntimeDirectory=memsnap 'StateDirectory=memsnap memsnap/snapshots' \
    ReadWritePaths=/var/lib/memsnap; do
	grep -qxF "$kv" "$U/memsnap.service" || fail "memsnap.service lacks $kv"
done
# Nothing we ship names a unit, socket, directory or group of Ubuntu's Snap
# package manager, whose daemon is also snapd (README, "Names").
grep -nE '(/run/snapd([/.-]|$)|/var/lib/snapd|/var/cache/snapd|/usr/lib/snapd|\<snapd\.(service|socket)\>|Directory=snapd|Group=snapd|GROUP="snapd"|^g snapd )' \
    "$TOP"/systemd/memsnap.* "$TOP"/systemd/*.rules "$TOP/conf/snapd.conf" >"$T/snapnames" &&
	fail "our units, rules or configuration name Snap's: $(cat "$T/snapnames")"
grep -qxF 'KERNEL=="userfaultfd", GROUP="memsnap", MODE="0660"' \
    "$TOP/systemd/60-memsnap-userfaultfd.rules" ||
	fail "60-memsnap-userfaultfd.rules does not give group memsnap rw on /dev/userfaultfd"

# ---- a throwaway configuration -------------------------------------------------
CONF=$T/snapd.conf
mkdir -m 0755 "$T/snapshots" || fail "mkdir $T/snapshots"
cat >"$CONF" <<EOF || fail "cannot write $CONF"
# throwaway configuration of $0
socket $T/snapd.sock
snapshot_dir $T/snapshots
log_level debug
EOF

# ---- 2. socket activation ----------------------------------------------------
# talk SOCK: connect, expect the greeting, negotiate, ask for the version.
talk() {
	python3 - "$1" <<'EOF'
import json, socket, sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
buf = b""

def line():
    global buf
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("snapd closed the connection; had %r" % buf)
        buf += chunk
    l, buf = buf.split(b"\n", 1)
    return json.loads(l)

g = line()
if "QMP" not in g or g["QMP"].get("protocol") != 2:
    sys.exit("not a protocol 2 QMP greeting: %r" % g)
print("greeting:", json.dumps(g))
for cmd in ({"execute": "qmp_capabilities", "id": 1},
            {"execute": "query-version", "id": 2}):
    s.sendall(json.dumps(cmd).encode() + b"\n")
    while True:
        r = line()
        if "event" not in r:
            break
    if "return" not in r or r.get("id") != cmd["id"]:
        sys.exit("%s: unexpected reply %r" % (cmd["execute"], r))
    print(cmd["execute"], "->", json.dumps(r))
EOF
}

LOG=$T/activated.log
systemd-socket-activate -l "$T/s.sock" "$SNAPD_BIN" -c "$CONF" >"$LOG" 2>&1 &
APID=$!
PIDS+=("$APID")
for _ in $(seq 100); do
	[ -S "$T/s.sock" ] && break
	kill -0 "$APID" 2>/dev/null || fail "systemd-socket-activate exited at once"
	sleep 0.1
done
[ -S "$T/s.sock" ] || fail "systemd-socket-activate did not create $T/s.sock within 10 s"
talk "$T/s.sock" || fail "no greeting through the activated socket $T/s.sock"
[ -e "$T/snapd.sock" ] &&
	fail "socket-activated snapd created $T/snapd.sock of its configuration as well"
if [ -x "$MEMSNAPCTL_BIN" ]; then
	"$MEMSNAPCTL_BIN" -s "$T/s.sock" status >"$T/status" 2>&1 || {
		cat "$T/status" >&2
		fail "memsnapctl -s $T/s.sock status failed on the activated daemon"
	}
fi
kill -TERM "$APID"
rc=0
for _ in $(seq 150); do
	kill -0 "$APID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$APID" 2>/dev/null && fail "socket-activated snapd did not exit within 15 s of SIGTERM"
wait "$APID" || rc=$?
[ $rc -eq 0 ] || fail "socket-activated snapd exited $rc after SIGTERM, expected 0"
echo "socket activation: greeting and commands through the handed-over socket"

# ---- 3. readiness, watchdog, stopping -------------------------------------------
LOG=$T/notify.log
python3 - "$SNAPD_BIN" "$CONF" "$T" "$LOG" <<'EOF' || fail "sd_notify protocol (details above)"
import json, os, signal, socket, stat, subprocess, sys, time

snapd, conf, tmp, log = sys.argv[1:5]
path = os.path.join(tmp, "notify.sock")
sock_path = os.path.join(tmp, "snapd.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(path)
got = []		# every assignment received, in order

def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    print("notifications received:", got, file=sys.stderr)
    if p.poll() is None:
        p.kill()
    sys.exit(1)

def wait_for(what, timeout):
    """Read notifications until one equals what (or starts with it when it
    ends in '='); returns the time it arrived."""
    end = time.monotonic() + timeout
    while True:
        for g in got:
            if g == what or (what.endswith("=") and g.startswith(what)):
                return
        left = end - time.monotonic()
        if left <= 0:
            fail("no %s within %.0f s" % (what, timeout))
        if p.poll() is not None and not got_pending():
            fail("snapd exited (status %d) before sending %s" % (p.returncode, what))
        ns.settimeout(min(left, 0.2))
        try:
            data = ns.recv(65536)
        except socket.timeout:
            continue
        got.extend(l for l in data.decode().split("\n") if l)

def got_pending():
    ns.setblocking(False)
    try:
        data = ns.recv(65536)
    except BlockingIOError:
        return False
    finally:
        ns.setblocking(True)
    got.extend(l for l in data.decode().split("\n") if l)
    return True

def greeting():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    data = b""
    while b"\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return b'"QMP"' in data

env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
env.pop("WATCHDOG_PID", None)
env.pop("LISTEN_FDS", None)
env.pop("LISTEN_PID", None)
with open(log, "w") as lf:
    p = subprocess.Popen([snapd, "-c", conf], env=env, stdout=lf, stderr=lf)

wait_for("READY=1", 10)
# READY=1 means really ready: the socket answers now, without retrying.
try:
    ok = greeting()
except OSError as e:
    fail("READY=1 was sent but %s does not answer: %s" % (sock_path, e))
if not ok:
    fail("READY=1 was sent but %s sent no greeting" % sock_path)
mode = stat.S_IMODE(os.stat(sock_path).st_mode)
if mode != 0o660:
    fail("%s has mode %o, socket_mode's default is 0660" % (sock_path, mode))
if not any(g.startswith("STATUS=") for g in got):
    wait_for("STATUS=", 2)
# WATCHDOG_USEC=1 s: a ping is due every half second at most.
t0 = time.monotonic()
n0 = got.count("WATCHDOG=1")
while got.count("WATCHDOG=1") < n0 + 2:
    if time.monotonic() - t0 > 3:
        fail("fewer than 2 WATCHDOG=1 in 3 s with WATCHDOG_USEC=1000000")
    got_pending() or time.sleep(0.05)
print("ready:", [g for g in got if not g.startswith("WATCHDOG")])

p.send_signal(signal.SIGTERM)
wait_for("STOPPING=1", 10)
try:
    rc = p.wait(15)
except subprocess.TimeoutExpired:
    fail("snapd did not exit within 15 s of SIGTERM")
if rc != 0:
    fail("snapd exited %d after SIGTERM, expected 0" % rc)
print("stopping: STOPPING=1 and exit 0; notifications:",
      [g for g in got if g != "WATCHDOG=1"], "+ %d WATCHDOG=1" % got.count("WATCHDOG=1"))
EOF

echo "systemd units, socket activation and sd_notify: OK"
exit 0
