#!/bin/bash
# memsnapctl qemu-save (issue 13) when things go wrong, each fault forced at a
# known point by snapd's pause points (SNAPD_TEST_PAUSE_DIR, snapd(8) TEST
# HOOKS), never by timing:
#   - snapd killed while it holds QEMU's threads stopped: at its first
#     stop ("attach stopped", the guest running), at its second, the VM
#     stopped by qemu-save ("attach restopped", "attach armed"):
#     qemu-save fails, and the VM runs: QEMU not paused, not traced, no
#     userfaultfd, the guest writing on;
#   - snapd killed mid-sweep (the guest running again, snapd's writer held
#     in its sweep): the same;
#   - memsnapctl killed with SIGKILL while the VM is stopped: its watchdog
#     sends cont, and the VM runs once snapd lets QEMU go;
#   - the QMP connection closed under qemu-save while the VM is stopped (a
#     proxy between memsnapctl and QEMU drops it): qemu-save reconnects, conts,
#     and the save completes, one cut of the guest's writes;
#   - refused before anything is touched, the VM running on: a monitor
#     another client holds, a file backend on a disk file system;
#   - a VM already paused: saved, left paused, restored paused; cont then
#     runs it with 0 mismatches.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach to QEMU)"
qemu_install_or_skip
export SNAPD_TEST_PAUSE_DIR=$T/pause
mkdir -p -m 0700 "$SNAPD_TEST_PAUSE_DIR" || fail "mkdir $SNAPD_TEST_PAUSE_DIR"
snapd_config "buffer_size 4M"
snapd_start
snapd_attach_or_skip

first=512 last=16351
pages=$((last - first + 1))

# vm_runs_clean DIR WHAT: the VM runs, its guest writes on with no
# mismatch, and QEMU is neither traced nor holding a userfaultfd.
vm_runs_clean() {
	local d=$1 pid w tracer
	pid=$(cat "$d/pid")
	[ "$(guest_qmp "$d" '{"execute": "query-status"}' |
	    python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["status"])')" = running ] ||
		fail "$2: the VM is not running"
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")
	[ "$tracer" = 0 ] || fail "$2: QEMU is still traced by $tracer"
	if ls -l "/proc/$pid/fd" | grep -q userfaultfd; then
		fail "$2: QEMU still holds a userfaultfd"
	fi
	w=$(guest_progress "$d" writes)
	guest_wait_writes "$d" $((w + 4096)) 60
	[ "$(guest_progress "$d" mismatches)" -eq 0 ] ||
		fail "$2: the guest found mismatches: $(guest_progress "$d")"
	echo "ok: $2: the VM runs ($w -> $(guest_progress "$d" writes) pages written, 0 mismatches), QEMU untraced, no userfaultfd"
}

# held NAME: wait until snapd is held at NAME's pause point.
held() {
	local n=300
	until [ -e "$SNAPD_TEST_PAUSE_DIR/$1.paused" ]; do
		[ "$n" -gt 0 ] || { cat "$T/$1.err" >&2; fail "$1: snapd never paused"; }
		sleep 0.1
		n=$((n - 1))
	done
}

g=$T/vm
guest_start "$g" anon
guest_wait_writes "$g" 4096

# ---- snapd killed while QEMU is stopped, and mid-sweep ---------------------------
for point in "attach stopped" "attach restopped" "attach armed" "writer 0 200"; do
	name=kill-${point// /-}
	echo "$point" >"$SNAPD_TEST_PAUSE_DIR/$name.pause"
	"$MEMSNAPCTL_BIN" qemu-save --qmp "$g/qmp" --name "$name" >"$T/$name.out" 2>"$T/$name.err" &
	save=$!
	held "$name"
	snapd_kill
	rc=0
	wait "$save" || rc=$?
	[ "$rc" -ne 0 ] || fail "$name: qemu-save succeeded though snapd was killed"
	echo "($name: qemu-save exit $rc: $(tail -n 1 "$T/$name.err"))"
	vm_runs_clean "$g" "$name"
	snapd_start
done

# ---- memsnapctl killed while the VM is stopped --------------------------------------
name=kill-memsnapctl
echo "attach armed" >"$SNAPD_TEST_PAUSE_DIR/$name.pause"
"$MEMSNAPCTL_BIN" qemu-save --qmp "$g/qmp" --name "$name" >"$T/$name.out" 2>"$T/$name.err" &
save=$!
held "$name"
kill -KILL "$save"
wait "$save" 2>/dev/null
touch "$SNAPD_TEST_PAUSE_DIR/$name.go"
# snapd lets QEMU go once it has armed; QEMU then reads the watchdog's cont.
n=300
until [ "$(guest_qmp "$g" '{"execute": "query-status"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["status"])')" = running ]; do
	[ "$n" -gt 0 ] || fail "$name: the VM is still paused 30 s after snapd let QEMU go: the watchdog did not cont"
	sleep 0.1
	n=$((n - 1))
done
vm_runs_clean "$g" "$name"
# Its snapshot runs on in snapd; a second one of QEMU would be Busy.
n=300
until [ -e "$SNAPD_DIR/$name.vm/$name.raw" ]; do
	[ "$n" -gt 0 ] || fail "$name: the snapshot did not complete within 30 s"
	sleep 0.1
	n=$((n - 1))
done

# ---- the QMP connection dropped while the VM is stopped --------------------------
# The proxy forwards QMP (descriptors too) between its socket and QEMU's,
# and closes the client's first connection once $g/drop exists.
python3 - "$g/proxy" "$g/qmp" "$g/drop" <<'EOF' >"$T/proxy.log" 2>&1 &
import os, select, socket, sys, time
listen_path, qemu_path, drop = sys.argv[1:4]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(listen_path)
srv.listen(4)
dropped = False
while True:
    c, _ = srv.accept()
    q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    q.connect(qemu_path)
    live = True
    while live:
        if not dropped and os.path.exists(drop):
            dropped = True
            print("dropping the connection", flush=True)
            break
        r, _, _ = select.select([c, q], [], [], 0.05)
        for s in r:
            other = q if s is c else c
            data, fds, _, _ = socket.recv_fds(s, 65536, 4)
            if not data:
                live = False
                break
            socket.send_fds(other, [data], fds) if fds else other.sendall(data)
            for fd in fds:
                os.close(fd)
    c.close()
    q.close()
EOF
t_track $!
n=100
until [ -S "$g/proxy" ]; do
	[ "$n" -gt 0 ] || fail "the QMP proxy did not start: $(cat "$T/proxy.log")"
	sleep 0.1
	n=$((n - 1))
done
name=qmp-drop
echo "attach armed" >"$SNAPD_TEST_PAUSE_DIR/$name.pause"
"$MEMSNAPCTL_BIN" -j qemu-save --qmp "$g/proxy" --name "$name" >"$T/$name.out" 2>"$T/$name.err" &
save=$!
held "$name"
touch "$g/drop"
t_wait_line "$T/proxy.log" dropping || fail "the proxy did not drop the connection"
touch "$SNAPD_TEST_PAUSE_DIR/$name.go"
wait "$save" || { cat "$T/$name.err" >&2; fail "$name: qemu-save failed when its QMP connection was dropped"; }
grep -q "reconnecting" "$T/$name.err" || fail "$name: qemu-save did not say it reconnected: $(cat "$T/$name.err")"
"$GUESTCHECK" --json --pages "$first-$last" "$SNAPD_DIR/$name.vm/$name.raw/0.img" >"$T/$name.check" ||
	{ cat "$T/$name.check" >&2; fail "$name: the saved RAM is not one cut"; }
echo "ok: $name: $(tail -n 1 "$T/$name.err"); the save completed, one cut: $(cat "$T/$name.check")"
vm_runs_clean "$g" "$name"

# ---- refused before anything is touched -----------------------------------------
# refused NAME WHY ARGS...: qemu-save ARGS fails saying WHY, and leaves no
# VM snapshot directory.
refused() {
	local name=$1 why=$2 rc=0
	shift 2
	"$MEMSNAPCTL_BIN" qemu-save --name "$name" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
	[ "$rc" -eq 1 ] || fail "$name: qemu-save exit $rc, expected 1: $(cat "$T/$name.err")"
	grep -q "$why" "$T/$name.err" || fail "$name: the refusal does not say '$why': $(cat "$T/$name.err")"
	[ ! -e "$SNAPD_DIR/$name.vm" ] || fail "$name: a refused save left $SNAPD_DIR/$name.vm"
	echo "ok: $name: refused: $(cat "$T/$name.err")"
}
# Another client holds the monitor (QEMU serves one at a time).
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.recv(4096)
open(sys.argv[2], "w").close()
time.sleep(120)
' "$g/qmp" "$g/holding" &
holder=$!
t_track "$holder"
n=300
until [ -e "$g/holding" ]; do
	[ "$n" -gt 0 ] || fail "the monitor holder did not connect"
	sleep 0.1
	n=$((n - 1))
done
refused busy "another client holds the monitor" --qmp "$g/qmp"
kill "$holder"
wait "$holder" 2>/dev/null
vm_runs_clean "$g" "busy"
# A file backend on a disk file system cannot be protected while it runs.
if [ "$(stat -f -c %T "$T")" != tmpfs ]; then
	f=$T/vmfile
	guest_start "$f" file
	refused disk-file "not on tmpfs" --qmp "$f/qmp"
	vm_runs_clean "$f" "disk-file"
	guest_stop "$f"
fi

# ---- a paused VM is saved and left paused -----------------------------------------
guest_qmp "$g" '{"execute": "stop"}' >/dev/null || fail "QMP stop failed"
"$MEMSNAPCTL_BIN" -j qemu-save --qmp "$g/qmp" --name paused >"$T/paused.out" 2>"$T/paused.err" ||
	{ cat "$T/paused.err" >&2; fail "paused: qemu-save of a paused VM failed"; }
[ "$(guest_qmp "$g" '{"execute": "query-status"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["status"])')" = paused ] ||
	fail "paused: qemu-save resumed a VM that was paused"
"$GUESTCHECK" --pages "$first-$last" "$SNAPD_DIR/paused.vm/paused.raw/0.img" >/dev/null ||
	fail "paused: the saved RAM is not one cut"
guest_stop "$g"
"$MEMSNAPCTL_BIN" -j qemu-restore paused --exec >"$T/paused.restore" ||
	fail "paused: qemu-restore --exec failed: $(cat "$SNAPD_DIR/paused.vm/restore.log")"
pid=$(json_get "$T/paused.restore" pid)
t_track "$pid"
echo "$pid" >"$g/pid"
[ "$(guest_qmp "$g" '{"execute": "query-status"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["return"]["status"])')" = paused ] ||
	fail "paused: the restored VM runs, but it was saved paused"
guest_qmp "$g" '{"execute": "cont"}' >/dev/null || fail "QMP cont of the restored VM failed"
vm_runs_clean "$g" "paused: saved paused, left paused, restored paused, then cont"
guest_stop "$g"
