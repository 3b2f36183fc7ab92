# Helpers for the integration scripts and the demo (sourced, not run).
#
# Each script gets its own throwaway directory $T (mktemp -d), its own
# snapd on its own socket with a throwaway configuration, and an EXIT trap
# that kills everything it started and removes $T, in the manner of tmux's
# regress scripts and redis's start_server.
#
#	. "$(dirname "$0")/../lib.sh"
#	t_init
#	snapd_config "buffer_size 4M"	# socket and snapshot_dir are in $T
#	snapd_start
#	"$SNAPWORK" --socket "$SNAPD_SOCK" ...
#
# Paths come from the environment (tests/run.sh sets them):
# $SNAPD_BIN, $MEMSNAPCTL_BIN, $TESTS_BIN; the defaults are under $TOP/$B.

set -u

TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
B=${B:-build}
SNAPD_BIN=${SNAPD_BIN:-$TOP/$B/snapd}
MEMSNAPCTL_BIN=${MEMSNAPCTL_BIN:-$TOP/$B/memsnapctl}
TESTS_BIN=${TESTS_BIN:-$TOP/$B/tests}
SNAPWORK=${SNAPWORK:-$TESTS_BIN/snapwork}

T=
T_PIDS=()
SNAPD_PID=
SNAPD_CONF=
SNAPD_SOCK=
SNAPD_DIR=
SNAPD_LOG=

# Report a failure (with snapd's log tail, which usually says why) and exit.
fail() {
	echo "FAIL: $*" >&2
	if [ -n "$SNAPD_LOG" ] && [ -s "$SNAPD_LOG" ]; then
		echo "--- last lines of snapd's log ($SNAPD_LOG):" >&2
		tail -n 20 "$SNAPD_LOG" >&2
	fi
	exit 1
}

# Skip the test (exit 77) saying why, on the last line.
skip() {
	echo "SKIP: $*"
	exit 77
}

# Remove $T, but only a directory the harness made: mktemp's
# /tmp/snapd-*.XXXXXX (t_init's, or a script's own).  A T set by hand to
# anything else (sourcing this file with T=/tmp once emptied /tmp) is
# left, saying so.
t_remove_dir() {
	[ -n "$T" ] && [ -d "$T" ] && [ -z "${KEEP_TEST_DIR:-}" ] || return 0
	case $T in
	/tmp/snapd-*.??????) rm -rf "$T" ;;
	*) echo "tests/lib.sh: not removing $T: not a /tmp/snapd-*.XXXXXX" \
	    "directory of the harness" >&2 ;;
	esac
}

t_cleanup() {
	local pid rc=$?
	trap - EXIT
	for pid in "${T_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${T_PIDS[@]}"; do
		t_wait_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	t_remove_dir
	exit $rc
}

# Wait up to $2 tenths of a second for process $1 to be gone.
t_wait_gone() {
	local pid=$1 n=${2:-100}
	while [ "$n" -gt 0 ]; do
		kill -0 "$pid" 2>/dev/null || return 0
		# A zombie child of ours counts as gone.
		case $(ps -o stat= -p "$pid" 2>/dev/null) in Z*) return 0 ;; esac
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# Wait up to $2 tenths of a second (default 100) for file $1 to exist and
# not be empty.
t_wait_file() {
	local n=${2:-100}
	until [ -s "$1" ]; do
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
		n=$((n - 1))
	done
}

# Make the throwaway directory and install the EXIT trap.  Checks that the
# binaries exist and that this machine can do what snapd needs.
t_init() {
	local b
	T=$(mktemp -d /tmp/snapd-test.XXXXXX) || fail "mktemp -d: cannot make a test directory"
	trap t_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	for b in "$SNAPD_BIN" "$MEMSNAPCTL_BIN" "$SNAPWORK"; do
		[ -x "$b" ] || fail "$b is missing: build it first (make tests)"
	done
	if [ "$(id -u)" -ne 0 ] && ! [ -r /dev/userfaultfd -a -w /dev/userfaultfd ]; then
		skip "needs root or access to /dev/userfaultfd for write-protect userfaultfd"
	fi
	command -v python3 >/dev/null || fail "python3 is needed to talk to snapd's socket"
}

# t_tmpfs_snapdir SIZE: make the snapshot directory a SIZE tmpfs (a disk
# that fills up), or skip the test where no tmpfs can be mounted.  At exit
# snapd is stopped before the tmpfs is unmounted.
t_tmpfs_snapdir() {
	mount -t tmpfs -o "size=$1,mode=0700" snapd-test "$SNAPD_DIR" 2>"$T/mount.err" ||
		skip "cannot mount a $1 tmpfs on the snapshot directory: $(cat "$T/mount.err")"
	trap 'rc=$?; snapd_stop >/dev/null 2>&1; umount "$SNAPD_DIR" 2>/dev/null || umount -l "$SNAPD_DIR"; (exit $rc); t_cleanup' EXIT
}

# Remember a background process so the EXIT trap kills it.
# t_wait_line FILE REGEX [TENTHS]: wait (default 10 s) for a line of FILE
# to match REGEX (a program's "ready" line); 1 if none did.
t_wait_line() {
	local n=${3:-100}
	while [ "$n" -gt 0 ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# t_wait_exec PID PROGRAM: wait until process PID runs PROGRAM.  A child
# started with `PROGRAM &` is a copy of the shell until it has exec'ed;
# a snapshot attached before that loses its address space to the exec.
t_wait_exec() {
	local n=100 want
	want=$(readlink -f "$(command -v "$2")") || fail "no program $2"
	while [ "$(readlink "/proc/$1/exe" 2>/dev/null)" != "$want" ]; do
		kill -0 "$1" 2>/dev/null || fail "process $1 exited before running $2"
		[ "$n" -gt 0 ] || fail "process $1 did not exec $2 within 10 s"
		sleep 0.1
		n=$((n - 1))
	done
}

t_track() {
	T_PIDS+=("$1")
}

# t_apt_install_or_skip PACKAGE...: install Debian packages a test needs
# (as `make deps` installs: apt-get, waiting up to 120 s for the package
# lock, updating the lists only if the first try fails); skips the test
# if that cannot be done.
t_apt_install_or_skip() {
	[ "$(id -u)" -eq 0 ] || skip "$1 is not installed and installing needs root"
	echo "installing $*"
	{ DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
	    install -y -qq "$@" ||
	  { apt-get -o DPkg::Lock::Timeout=120 update -qq &&
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
	    install -y -qq "$@"; }; } >"$T/apt.log" 2>&1 ||
		skip "cannot install $*: $(tail -n 1 "$T/apt.log")"
}

# t_uffd_to_group GROUP: open /dev/userfaultfd to GROUP, mode 0660, for
# this test's unprivileged clients; the EXIT trap puts the device's group
# and mode back before whatever it did already.
t_uffd_to_group() {
	local group=$1 saved prev
	saved=$(stat -c '%g %a' /dev/userfaultfd) || fail "stat /dev/userfaultfd"
	eval "set -- $(trap -p EXIT)"
	prev=${3:-t_cleanup}
	# t_cleanup exits with $?: give it the script's status, not chmod's.
	# shellcheck disable=SC2064
	trap "rc=\$?; chgrp ${saved% *} /dev/userfaultfd 2>/dev/null; chmod ${saved#* } /dev/userfaultfd 2>/dev/null; (exit \$rc); $prev" EXIT
	chgrp "$group" /dev/userfaultfd && chmod 0660 /dev/userfaultfd ||
		fail "cannot open /dev/userfaultfd to the $group group"
}

# Write $T/snapd.conf: socket and snapshot_dir inside $T, then each
# argument as one "key value" line.
snapd_config() {
	local line
	SNAPD_CONF=$T/snapd.conf
	SNAPD_SOCK=$T/snapd.sock
	SNAPD_DIR=$T/snapshots
	SNAPD_LOG=$T/snapd.log
	mkdir -p -m 0700 "$SNAPD_DIR" || fail "mkdir $SNAPD_DIR"
	{
		echo "# throwaway configuration of $0"
		echo "socket $SNAPD_SOCK"
		echo "snapshot_dir $SNAPD_DIR"
		for line in "$@"; do
			echo "$line"
		done
	} >"$SNAPD_CONF" || fail "cannot write $SNAPD_CONF"
	export SNAPD_SOCKET=$SNAPD_SOCK
}

# Does the socket answer with a QMP greeting?
snapd_answers() {
	python3 - "$SNAPD_SOCK" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(1.0)
s.connect(sys.argv[1])
data = b""
while b"\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.exit(0 if b'"QMP"' in data else 1)
EOF
}

# Start snapd in the background on the configuration (snapd_config first)
# and wait up to 10 s until its socket answers.  Under tests/run.sh it
# traces every message into the run's $SNAPD_TRACE_DIR (zz_schema.sh).
snapd_start() {
	local n=100
	[ -n "$SNAPD_CONF" ] || snapd_config
	SNAPD_TEST_HOOKS=${SNAPD_TEST_HOOKS-1} \
	SNAPD_PROTOCOL_TRACE=${SNAPD_TRACE_DIR:-${SNAPD_PROTOCOL_TRACE:-}} \
	    "$SNAPD_BIN" -c "$SNAPD_CONF" >>"$SNAPD_LOG" 2>&1 &
	SNAPD_PID=$!
	t_track "$SNAPD_PID"
	while [ "$n" -gt 0 ]; do
		if ! kill -0 "$SNAPD_PID" 2>/dev/null; then
			wait "$SNAPD_PID" 2>/dev/null
			fail "snapd exited while starting (exit $?)"
		fi
		snapd_answers && return 0
		sleep 0.1
		n=$((n - 1))
	done
	fail "snapd's socket $SNAPD_SOCK did not answer within 10 s"
}

snapd_alive() {
	[ -n "$SNAPD_PID" ] && kill -0 "$SNAPD_PID" 2>/dev/null
}

# Stop snapd (SIGTERM, then SIGKILL after 10 s); returns its exit status.
snapd_stop() {
	local rc=0
	[ -n "$SNAPD_PID" ] || return 0
	kill -TERM "$SNAPD_PID" 2>/dev/null
	if ! t_wait_gone "$SNAPD_PID" 100; then
		echo "snapd did not stop within 10 s of SIGTERM; killing it" >&2
		kill -KILL "$SNAPD_PID" 2>/dev/null
	fi
	wait "$SNAPD_PID" 2>/dev/null || rc=$?
	SNAPD_PID=
	return $rc
}

# Kill snapd with SIGKILL at once (the "snapd dies" case).
snapd_kill() {
	[ -n "$SNAPD_PID" ] || return 0
	kill -KILL "$SNAPD_PID" 2>/dev/null
	wait "$SNAPD_PID" 2>/dev/null
	SNAPD_PID=
}

# json_expr FILE EXPR: the Python expression EXPR over o, the last JSON
# object line of FILE (nested members: o["attach"]["pause-us"]); fails if
# it is None (a member missing).
json_expr() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
o = None
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if line.startswith("{"):
            try:
                o = json.loads(line)
            except ValueError:
                pass
if o is None:
    sys.exit("no JSON object in " + sys.argv[1])
try:
    v = eval(sys.argv[2], {}, {"o": o})
except (KeyError, IndexError, TypeError):
    v = None
if v is None:
    sys.exit("no %s in the JSON of %s" % (sys.argv[2], sys.argv[1]))
print(json.dumps(v) if isinstance(v, (bool, dict, list)) else v)
EOF
}

# json_get FILE KEY: print one member of the JSON object in FILE (the last
# line that is a JSON object); booleans print as true/false, lists and
# objects as JSON.
json_get() {
	json_expr "$1" "o.get('$2')"
}

# run_snapwork OUT ARGS...: run snapwork with --json on this test's socket,
# its JSON report in OUT and its messages in OUT.err; returns its status.
run_snapwork() {
	local out=$1 rc=0
	shift
	"$SNAPWORK" --socket "$SNAPD_SOCK" --json "$@" >"$out" 2>"$out.err" || rc=$?
	return $rc
}

# Show a snapwork run's messages and report, for a failure's context.
show_snapwork() {
	echo "--- snapwork messages:" >&2
	cat "$1.err" >&2
	echo "--- snapwork report:" >&2
	cat "$1" >&2
}

# kill_when NAME PID EXPR TIMEOUT: poll query-snapshots on one connection
# until snapshot NAME satisfies the Python expression EXPR over its object
# s, then SIGKILL PID (the workload, or snapd itself).  Prints one JSON
# line: killed, polls, the states seen, the snapshot as last seen.
kill_when() {
	python3 - "$SNAPD_SOCK" "$@" <<'EOF'
import json, os, signal, socket, sys, time
path, name, pid, expr, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
f = s.makefile("rwb", buffering=0)
def reply(i):
    while True:
        line = f.readline()
        if not line:
            sys.exit("snapd closed the connection while polling")
        m = json.loads(line)
        if "QMP" in m or "event" in m:
            continue
        if m.get("id") == i:
            return m
f.write(b'{"execute":"qmp_capabilities","id":0}\n')
reply(0)
end = time.monotonic() + timeout
n, last, seen = 0, None, {}
while time.monotonic() < end:
    n += 1
    f.write(b'{"execute":"query-snapshots","id":%d}\n' % n)
    snaps = [x for x in reply(n).get("return", []) if x.get("name") == name]
    if not snaps:
        continue
    last = snaps[-1]
    seen[last["state"]] = seen.get(last["state"], 0) + 1
    if last["state"] in ("completed", "failed", "cancelled"):
        break
    if eval(expr, {}, {"s": last}):
        os.kill(pid, signal.SIGKILL)
        print(json.dumps({"killed": True, "polls": n, "states": seen, "snapshot": last}))
        sys.exit(0)
    time.sleep(0.001)
print(json.dumps({"killed": False, "polls": n, "states": seen, "snapshot": last}))
sys.exit(1)
EOF
}

# ---- stampwork, the attach tests' target (tests/workload/stampwork.c) ------
STAMPWORK=${STAMPWORK:-$TESTS_BIN/stampwork}
STAMPCHECK=${STAMPCHECK:-$TESTS_BIN/stampcheck}
STAMP_PY=$TOP/tests/stamp.py

# stampwork_start NAME [--as UID] [STAMPWORK-ARGS...]: run stampwork in the
# background (as UID with setpriv, no passwd entry needed), its files in
# $T/NAME/: info.json, out (its replies, one JSON line each), err, ctl (the
# FIFO its commands come from; it holds the FIFO open itself, so it never
# sees end of file).  Waits up to 10 s for the info; sets STAMP_PID.
stampwork_start() {
	local name=$1 d=$T/$1 n=100 pid
	local -a as=()
	shift
	if [ "${1:-}" = --as ]; then
		as=(setpriv --reuid="$2" --regid="$2" --clear-groups)
		shift 2
	fi
	[ -x "$STAMPWORK" ] || fail "$STAMPWORK is missing: build it first (make tests)"
	mkdir -p "$d" && mkfifo "$d/ctl" || fail "cannot make $d/ctl"
	[ ${#as[@]} -eq 0 ] || chown "${as[1]#--reuid=}" "$d" ||
		fail "chown $d"
	"${as[@]}" "$STAMPWORK" --info "$d/info.json" "$@" 0<>"$d/ctl" \
	    >"$d/out" 2>"$d/err" &
	pid=$!
	t_track "$pid"
	echo "$pid" >"$d/pid"
	while [ ! -s "$d/info.json" ]; do
		kill -0 "$pid" 2>/dev/null || { cat "$d/err" >&2; fail "stampwork $name exited while starting"; }
		[ "$n" -gt 0 ] || fail "stampwork $name wrote no info within 10 s"
		sleep 0.1
		n=$((n - 1))
	done
	STAMP_PID=$pid
}

# stamp_cmd NAME COMMAND: send a command to stampwork NAME and print its
# reply (a JSON line); fails if none comes within 10 s (a target left
# stopped or blocked answers nothing).
stamp_cmd() {
	local d=$T/$1 before n=100
	before=$(wc -l <"$d/out")
	echo "$2" >"$d/ctl" || fail "stampwork $1: cannot send '$2'"
	while [ "$(wc -l <"$d/out")" -le "$before" ]; do
		[ "$n" -gt 0 ] || fail "stampwork $1 (pid $(cat "$d/pid")) did not answer '$2' within 10 s"
		sleep 0.1
		n=$((n - 1))
	done
	tail -n 1 "$d/out"
}

# stamp_field NAME KEY: KEY of stampwork NAME's last reply (json_get).
stamp_field() {
	json_get "$T/$1/out" "$2"
}

# stamp_info NAME KEY: KEY of stampwork NAME's info.
stamp_info() {
	json_get "$T/$1/info.json" "$2"
}

# stampwork_stop NAME: ask stampwork NAME to stop and check itself; fails
# unless it exits 0 (no anomaly, memory intact) within 10 s.  Its final
# report is then the last line of $T/NAME/out.  Not in $(...): it waits
# for its child.
stampwork_stop() {
	local d=$T/$1 pid rc=0
	pid=$(cat "$d/pid")
	echo stop >"$d/ctl" || fail "stampwork $1: cannot send stop"
	t_wait_gone "$pid" 100 || fail "stampwork $1 (pid $pid) did not stop within 10 s of 'stop'"
	wait "$pid" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "--- stampwork $1's messages:" >&2
		cat "$d/err" >&2
		tail -n 1 "$d/out" >&2
		fail "stampwork $1 failed its own checks (exit $rc)"
	fi
}

# stamp_healthy NAME [SECONDS]: stampwork NAME is not traced, not stopped,
# holds no userfaultfd (tests/stamp.py health) and its writers advance.
stamp_healthy() {
	local d=$T/$1 pid s1 s2 h
	pid=$(cat "$d/pid")
	h=$(python3 "$STAMP_PY" health "$pid" "${2:-1}") ||
		fail "stampwork $1 (pid $pid) is not healthy: $h"
	stamp_cmd "$1" status >/dev/null
	s1=$(stamp_field "$1" seqs)
	sleep 0.3
	stamp_cmd "$1" status >/dev/null
	s2=$(stamp_field "$1" seqs)
	python3 -c 'import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); sys.exit(0 if all(y > x for x, y in zip(a, b)) else 1)' "$s1" "$s2" ||
		fail "stampwork $1: a writer made no progress in 0.3 s: $s1 then $s2"
	[ "$(stamp_field "$1" anomalies)" -eq 0 ] ||
		{ cat "$d/err" >&2; fail "stampwork $1 reports anomalies"; }
	echo "$h"
}

# ---- memsnapctl save (attach) ---------------------------------------------------

# snapd_attach_or_skip: skip the test if this snapd cannot attach by pid
# yet (a snapshot-start with "pid" and no "uffd" refused for want of one).
# The probe names a process that has exited, so nothing is attached.
snapd_attach_or_skip() {
	local gone out
	true &
	gone=$!
	wait "$gone"
	out=$("$MEMSNAPCTL_BIN" -j qmp "{\"execute\": \"snapshot-start\", \"arguments\": {\"pid\": $gone}}" 2>&1 | tr -s ' \n' ' ')
	case $out in
	*"'uffd' is missing"*) skip "this snapd cannot attach by pid yet (issue 12): $out" ;;
	esac
}

# save_start TAG [--as UID] SAVE-ARGS...: `memsnapctl -j save SAVE-ARGS` in the
# background (as UID, in the users group, with setpriv), its JSON lines in
# $T/TAG.save (the armed reply, then the final entry), its messages in
# $T/TAG.save.err; sets SAVE_PID.
save_start() {
	local tag=$1
	local -a as=()
	shift
	if [ "${1:-}" = --as ]; then
		as=(setpriv --reuid="$2" --regid="$2" \
		    --groups="$(getent group users | cut -d: -f3)")
		shift 2
	fi
	"${as[@]}" "$MEMSNAPCTL_BIN" -j save "$@" >"$T/$tag.save" 2>"$T/$tag.save.err" &
	SAVE_PID=$!
	t_track "$SAVE_PID"
}

# save_armed TAG [TENTHS]: wait (default 30 s) until save TAG has printed
# its armed reply; writes it to $T/TAG.armed.  Returns 1 (messages on
# stderr) if save ended without one.
save_armed() {
	local tag=$1 n=${2:-300}
	while ! head -n 1 "$T/$tag.save" 2>/dev/null | grep -q '"id"'; do
		# save may print and exit (--no-wait) between the two looks:
		# look at its output once more after it has gone.
		if ! kill -0 "$SAVE_PID" 2>/dev/null || [ "$n" -le 0 ]; then
			head -n 1 "$T/$tag.save" 2>/dev/null | grep -q '"id"' &&
				break
			cat "$T/$tag.save.err" "$T/$tag.save" >&2
			return 1
		fi
		sleep 0.05
		n=$((n - 1))
	done
	head -n 1 "$T/$tag.save" >"$T/$tag.armed"
}

# save_paused TAG PHASE: wait (30 s) until snapd has paused the snapshot
# named TAG that save TAG started (the test pause PHASE, written to
# $SNAPD_TEST_PAUSE_DIR/TAG.pause); fails if save ends first.
save_paused() {
	local tag=$1 n=300
	until [ -e "$SNAPD_TEST_PAUSE_DIR/$tag.paused" ]; do
		[ "$n" -gt 0 ] || fail "snapd never paused at '$2'"
		kill -0 "$SAVE_PID" 2>/dev/null ||
			{ cat "$T/$tag.save.err" >&2; fail "save $tag ended before the pause at '$2'"; }
		sleep 0.1
		n=$((n - 1))
	done
}

# save_finish TAG: wait for save TAG; returns its exit status.
save_finish() {
	local rc=0
	wait "$SAVE_PID" || rc=$?
	SAVE_PID=
	return $rc
}


# test_release ID: end the "release" test hold of snapshot ID.
test_release() {
	"$MEMSNAPCTL_BIN" qmp "{\"execute\": \"test-release\", \"arguments\": {\"id\": $1}}" >/dev/null ||
		fail "test-release of snapshot $1 failed"
}

# ---- redis-server (attach_redis.sh, bench-redis.sh) ----------------------------
REDIS_PY=$TOP/tests/redisprobe.py

# redis_install_or_skip: redis-server, redis-cli and redis-benchmark from
# Debian, installed when missing (t_apt_install_or_skip).
redis_install_or_skip() {
	local p
	for p in redis-server redis-cli redis-benchmark; do
		command -v "$p" >/dev/null || break
	done
	command -v "$p" >/dev/null && return 0
	t_apt_install_or_skip redis-server redis-tools
}

# redis_start DIR [REDIS-ARGS...]: a private redis-server, no TCP (port 0),
# its unix socket DIR/redis.sock, no persistence (no save points, no AOF;
# BGSAVE still writes DIR/dump.rdb), log in DIR/redis.log; waits up to
# 10 s for PONG.  Sets REDIS_PID and REDIS_SOCK.
redis_start() {
	local d=$1 n=100
	shift
	mkdir -p "$d" || fail "mkdir $d"
	REDIS_SOCK=$d/redis.sock
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
	    --save "" --appendonly no --dir "$d" --dbfilename dump.rdb \
	    --daemonize no --logfile "$d/redis.log" "$@" &
	REDIS_PID=$!
	t_track "$REDIS_PID"
	until [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" = PONG ]; do
		kill -0 "$REDIS_PID" 2>/dev/null || { tail "$d/redis.log" >&2; fail "redis-server exited while starting"; }
		[ "$n" -gt 0 ] || fail "redis-server did not answer within 10 s"
		sleep 0.1
		n=$((n - 1))
	done
}

# rcli ARGS...: redis-cli on the private server.
rcli() {
	redis-cli -s "$REDIS_SOCK" "$@"
}

# redis_info FIELD: one field of INFO.
redis_info() {
	rcli info all | tr -d '\r' | sed -n "s/^$1://p"
}

# ---- QEMU and the test guest (tests/guest/, tests/integration/guest_*.sh) ----
# The guest rewrites its RAM in generations and counts what it finds not
# as it left it; guestcheck says whether a RAM image is one cut of its
# writes.  A guest's files are in its own DIR: serial (its progress
# lines), qmp (QEMU's QMP socket), qemu.pid (QEMU's -pidfile), pid (the
# same, as we started it), qemu.log, ram (file-backed RAM).
GUEST_ELF=${GUEST_ELF:-$TESTS_BIN/guest.elf}
GUESTCHECK=${GUESTCHECK:-$TESTS_BIN/guestcheck}

# qemu_install_or_skip: qemu-system-x86_64 from Debian (qemu-system-x86),
# installed when missing (t_apt_install_or_skip).
qemu_install_or_skip() {
	command -v qemu-system-x86_64 >/dev/null && return 0
	t_apt_install_or_skip qemu-system-x86
}

# guest_start DIR [anon|memfd|file] [QEMU-ARGS...]: boot the test guest
# in QEMU in the background (TCG, $GUEST_MEM of RAM, default 64M; RAM
# anonymous by default, a shared memfd, or DIR/ram shared with the file,
# so that the file is the guest's RAM); QEMU-ARGS are added (-append
# "first=F last=L").  Waits up to $GUEST_BOOT_WAIT seconds (default 30)
# for the QMP socket to answer and for the first progress line (a large
# guest clears all its pages first).  Sets GUEST_PID; the EXIT trap kills
# QEMU.  Not in $(...): it starts a child the test waits for.
guest_start() {
	local d=$1 kind=${2:-anon} n=$((${GUEST_BOOT_WAIT:-30} * 10)) mem
	local size=${GUEST_MEM:-64M}
	shift
	[ $# -eq 0 ] || shift
	[ -x "$GUEST_ELF" ] || fail "$GUEST_ELF is missing: build it first (make tests)"
	[ -x "$GUESTCHECK" ] || fail "$GUESTCHECK is missing: build it first (make tests)"
	mkdir -p "$d" || fail "mkdir $d"
	case $kind in
	anon)	mem=memory-backend-ram,id=pc.ram,size=$size ;;
	memfd)	mem=memory-backend-memfd,id=pc.ram,size=$size,share=on ;;
	file)	mem=memory-backend-file,id=pc.ram,size=$size,mem-path=$d/ram,share=on ;;
	*)	fail "guest_start: RAM is anon, memfd or file, not '$kind'" ;;
	esac
	rm -f "$d/serial" "$d/qmp" "$d/qemu.pid" "$d/pid"
	qemu-system-x86_64 -accel tcg -m "$size" -kernel "$GUEST_ELF" \
	    -nodefaults -display none -serial "file:$d/serial" \
	    -qmp "unix:$d/qmp,server=on,wait=off" -pidfile "$d/qemu.pid" \
	    -object "$mem" -machine memory-backend=pc.ram "$@" \
	    >"$d/qemu.log" 2>&1 &
	GUEST_PID=$!
	t_track "$GUEST_PID"
	echo "$GUEST_PID" >"$d/pid"
	until [ -S "$d/qmp" ] && guest_qmp "$d" '{"execute": "query-status"}' >/dev/null 2>&1 &&
	    "$GUESTCHECK" --serial "$d/serial" >/dev/null 2>&1; do
		guest_alive "$d" || fail "QEMU exited while starting the guest: $(tail -n 3 "$d/qemu.log")"
		[ "$n" -gt 0 ] || fail "the guest in $d showed no progress within ${GUEST_BOOT_WAIT:-30} s (serial: $(tail -n 2 "$d/serial" 2>/dev/null))"
		sleep 0.1
		n=$((n - 1))
	done
}

# guest_alive DIR: is the guest's QEMU running?
guest_alive() {
	[ -s "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null
}

# guest_qmp DIR JSON: send one QMP command to the guest's QEMU (a
# connection of its own: QEMU serves one QMP client at a time) and print
# the reply as one JSON line; returns 1 if the reply is an error or
# QEMU closed the socket.
guest_qmp() {
	python3 - "$TOP/tests" "$1/qmp" "$2" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from qmp import QMP
r = QMP(sys.argv[2]).cmd(json.loads(sys.argv[3]))
if r is None:
    sys.exit("QEMU closed the QMP socket of " + sys.argv[2])
print(json.dumps(r))
sys.exit(1 if "error" in r else 0)
EOF
}

# guest_progress DIR [KEY]: the numbers of the guest's last progress
# line as one JSON object {"gen", "page", "writes", "mismatches"}
# (guestcheck --serial), or only KEY's; returns 1 if there is none yet.
guest_progress() {
	"$GUESTCHECK" --serial "$1/serial" >"$1/progress.json" || return 1
	if [ $# -ge 2 ]; then
		json_get "$1/progress.json" "$2"
	else
		cat "$1/progress.json"
	fi
}

# guest_wait_writes DIR N [SECONDS]: wait (default 120 s, many times what
# TCG needs on a loaded machine) until the guest has written N pages in
# all; fails if QEMU exits first.
guest_wait_writes() {
	local d=$1 want=$2 n=$((${3:-120} * 10)) w
	while :; do
		w=$(guest_progress "$d" writes 2>/dev/null) || w=0
		[ "$w" -ge "$want" ] && return 0
		guest_alive "$d" || fail "QEMU exited while the guest in $d ran: $(tail -n 3 "$d/qemu.log")"
		[ "$n" -gt 0 ] || fail "the guest in $d wrote $w pages, not $want, within ${3:-120} s"
		sleep 0.1
		n=$((n - 1))
	done
}

# guest_stop DIR: kill the guest's QEMU (SIGTERM, then SIGKILL after
# 10 s) and wait for it.  Not in $(...).
guest_stop() {
	local d=$1 pid
	[ -s "$d/pid" ] || return 0
	pid=$(cat "$d/pid")
	kill -TERM "$pid" 2>/dev/null
	t_wait_gone "$pid" 100 || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$d/pid"
}
