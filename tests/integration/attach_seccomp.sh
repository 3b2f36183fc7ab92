#!/bin/bash
# Attach to a process whose seccomp filter is against userfaultfd(2), as a
# hardened service's may be (tests/workload/seccompwork.c):
#  - a snapd that may suspend the filter (root with CAP_SYS_ADMIN and no
#    filter of its own) does so for the injection only: the uffd is made
#    by the syscall, even under a filter that kills on it, and the process
#    runs on with its filter in force;
#  - a snapd that may not (CAP_SYS_ADMIN dropped, as under the shipped
#    unit) gets EPERM from the filter and makes the uffd through
#    /dev/userfaultfd instead.
# Each time the process's pattern must hold and its filter still refuse.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "attach with seccomp suspended needs root"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
WORK=$TESTS_BIN/seccompwork
[ -x "$WORK" ] || fail "$WORK is missing: build it first (make tests)"

# start MODE: start seccompwork; sets pid.
start() {
	"$WORK" "$1" >"$T/work-$1.out" 2>&1 &
	pid=$!
	t_track "$pid"
	t_wait_line "$T/work-$1.out" "^ready $pid" || fail "seccompwork $1 did not start: $(cat "$T/work-$1.out")"
	[ "$(awk '/^Seccomp:/ { print $2 }' /proc/$pid/status)" = 2 ] ||
		fail "seccompwork $1 has no seccomp filter"
}

# attach NAME VIA: memsnapctl save; the uffd must have been made VIA.
attach() {
	"$MEMSNAPCTL_BIN" -j save --pid "$pid" --name "$1" >"$T/$1.json" 2>"$T/$1.err" ||
		fail "$1: memsnapctl save --pid $pid: $(cat "$T/$1.err")"
	via=$(head -n 1 "$T/$1.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["attach"]["uffd-via"])')
	[ "$via" = "$2" ] || fail "$1: the uffd was made by '$via', expected '$2'"
}

# finish MODE: the process must still run, untraced, and be well.
finish() {
	kill -0 "$pid" 2>/dev/null || fail "seccompwork $1 died: $(cat "$T/work-$1.out")"
	[ "$(awk '/^TracerPid:/ { print $2 }' /proc/$pid/status)" = 0 ] ||
		fail "seccompwork $1 is still traced"
	ls -l /proc/$pid/fd | grep -q userfaultfd && fail "seccompwork $1 holds a userfaultfd"
	kill -TERM "$pid"
	wait "$pid" || fail "seccompwork $1: $(cat "$T/work-$1.out")"
	grep -q '^ok' "$T/work-$1.out" || fail "seccompwork $1 did not report: $(cat "$T/work-$1.out")"
}

snapd_config
snapd_start
for mode in eperm kill; do
	start $mode
	attach "suspended-$mode" syscall
	finish $mode
done
snapd_stop || fail "snapd exited with an error"

# Without CAP_SYS_ADMIN snapd may not suspend the filter.
SNAPD_BIN_REAL=$SNAPD_BIN
SNAPD_BIN=$T/snapd-no-sys-admin
cat >"$SNAPD_BIN" <<EOF
#!/bin/sh
exec setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin "$SNAPD_BIN_REAL" "\$@"
EOF
chmod +x "$SNAPD_BIN"
snapd_start
start eperm
attach "filtered-eperm" device
finish eperm
snapd_stop || fail "snapd exited with an error"
echo "ok: the filter suspended for the injection (syscall, also under a killing filter); without CAP_SYS_ADMIN the uffd came through /dev/userfaultfd"
