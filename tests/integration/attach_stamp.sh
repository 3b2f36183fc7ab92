#!/bin/bash
# Attach (issue 12), proven on stampwork, a program that knows nothing of
# snapd: `memsnapctl save --pid` snapshots it from outside and
#   - the snapshot is one instant: stampcheck finds, for each of its four
#     writers, one cut with every write before it present and none after
#     (0 pages wrong), the never-touched pages zero, and the marker written
#     before the save (A), not the one written as soon as save reported
#     armed (B); snapd's writer is held after the armed reply until the
#     test releases it, so writes race the snapshot on any machine (each
#     writer's count at the end is past its cut);
#   - the reply says what happened: the pause, 9 threads, mappings saved
#     live; the target is then healthy: not traced (TracerPid 0), no thread
#     stopped, no userfaultfd among its fds, writers advancing, and its
#     blocked threads (read, futex, nanosleep) saw nothing but what any
#     ptrace stop may do; at the end its own memory check passes;
#   - a signal sent while snapd holds it stopped (pause point "attach
#     stopped") is delivered afterwards;
#   - the same, second time, in the raw format, and third, pre-armed
#     (protected while the writers run, then stopped again);
#   - a target running as an unprivileged uid (vm.unprivileged_userfaultfd
#     0 there: its userfaultfd must come through /dev/userfaultfd) is
#     snapshotted by root just as well, and by its own uid as the kernel's
#     ptrace rules allow (no Yama here: a same-uid peer may);
#   - a peer of another uid gets PermissionDenied, for that process and for
#     a root one;
#   - a target already traced (strace -p) is refused with a message naming
#     the tracer, and is left as it was.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach, and clients of other uids)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is missing"
getent group users >/dev/null || skip "no 'users' group for the socket"
[ -x "$STAMPCHECK" ] || fail "$STAMPCHECK is missing: build it first (make tests)"

UT=61021	# the unprivileged target's uid
UP=61022	# another unprivileged peer
chmod 0711 "$T" || fail "chmod $T"
export SNAPD_TEST_PAUSE_DIR=$T/pause
mkdir -p -m 0700 "$SNAPD_TEST_PAUSE_DIR" || fail "mkdir $SNAPD_TEST_PAUSE_DIR"
snapd_config "socket_group users" "socket_mode 0660" "buffer_size 8M" \
    "compression_threads 1"
chmod 0711 "$SNAPD_DIR" || fail "chmod $SNAPD_DIR"
snapd_start
snapd_attach_or_skip

# snap_check SW TAG FORMAT [--as UID]: snapshot stampwork SW with marker
# A-TAG before and B-TAG as soon as save says armed, hold the writer for
# 0.5 s of racing writes, then check the snapshot and the target.
snap_check() {
	local sw=$1 tag=$2 format=$3 pid id file a b
	shift 3
	pid=$(cat "$T/$sw/pid")
	a=marker-A-$tag-$RANDOM$RANDOM b=marker-B-$tag-$RANDOM$RANDOM
	stamp_cmd "$sw" "marker $a" >/dev/null
	save_start "$tag" "$@" --pid "$pid" --name "$tag" --format "$format" \
	    --test-hold '{"until": "release"}'
	save_armed "$tag" || fail "$tag: memsnapctl save never reported armed"
	stamp_cmd "$sw" "marker $b" >/dev/null
	id=$(json_get "$T/$tag.armed" id) || fail "$tag: no id in the armed reply"
	sleep 0.5
	test_release "$id"
	save_finish "$tag" || { cat "$T/$tag.save.err" >&2; fail "$tag: memsnapctl save failed"; }
	stamp_cmd "$sw" status >/dev/null
	file=$(json_get "$T/$tag.armed" file) || fail "$tag: no file in the reply"
	[ -e "$file" ] || fail "$tag: the snapshot $file does not exist"
	"$MEMSNAPCTL_BIN" verify "$file" >/dev/null || fail "$tag: memsnapctl verify refuses $file"
	"$STAMPCHECK" --marker "$a" --not-marker "$b" "$T/$sw/info.json" \
	    "$file" >"$T/$tag.check" || {
		cat "$T/$tag.check" >&2
		fail "$tag: the snapshot of stampwork is not one instant (stampcheck above)"
	}
	"$STAMPCHECK" --json "$T/$sw/info.json" "$file" >"$T/$tag.check.json" ||
		fail "$tag: stampcheck --json failed"
	# Writes raced the snapshot: every writer got past its cut.
	python3 - "$T/$tag.check.json" "$T/$sw/out" <<'EOF' || fail "$tag: a writer wrote nothing after the armed instant: no race was proven"
import json, sys
cuts = [w["cut"] for w in json.loads(open(sys.argv[1]).read())["writers"]]
seqs = json.loads(open(sys.argv[2]).read().splitlines()[-1])["seqs"]
print("cuts %s, writes by now %s" % (cuts, seqs))
sys.exit(0 if all(s > c for c, s in zip(cuts, seqs)) else 1)
EOF
	cat "$T/$tag.check"
	echo "$tag: reply $(cat "$T/$tag.armed")"
	[ "$(json_expr "$T/$tag.armed" 'o["attach"]["threads"]')" -eq 9 ] ||
		fail "$tag: the reply counts $(json_expr "$T/$tag.armed" 'o["attach"]["threads"]') threads, stampwork has 9"
	[ "$(json_expr "$T/$tag.armed" 'o["attach"]["mappings-live"] > 0')" = true ] ||
		fail "$tag: no mapping saved live"
	VIA=$(json_expr "$T/$tag.armed" 'o["attach"]["uffd-via"]')
	stamp_healthy "$sw" >/dev/null
	echo "ok: $tag: one instant, 0 pages wrong, marker A not B; pause $(json_expr "$T/$tag.armed" 'o["attach"]["pause-us"]') us, userfaultfd by $VIA; target healthy"
}

# ---- root target ---------------------------------------------------------------
stampwork_start root --size 64M --threads 4 --pace-us 20
snap_check root root-zsnap zsnap

# A signal while the target is stopped arrives afterwards.
n0=$(stamp_cmd root status >/dev/null; stamp_field root signals)
echo "attach stopped" >"$SNAPD_TEST_PAUSE_DIR/root-signal.pause"
save_start root-signal --pid "$(cat "$T/root/pid")" --name root-signal --no-wait
save_paused root-signal "attach stopped"
st=$(grep '^State:' "/proc/$(cat "$T/root/pid")/status")
kill -USR2 "$(cat "$T/root/pid")"
touch "$SNAPD_TEST_PAUSE_DIR/root-signal.go"
save_armed root-signal || fail "save after the pause never armed"
save_finish root-signal || fail "save after the pause failed"
sleep 0.2
n1=$(stamp_cmd root status >/dev/null; stamp_field root signals)
[ "$n1" -eq $((n0 + 1)) ] || fail "a SIGUSR2 sent while stopped was not delivered once afterwards ($n0 before, $n1 after)"
stamp_healthy root >/dev/null
echo "ok: a signal sent while the target was stopped (${st//$'\t'/ }) was delivered afterwards"
"$MEMSNAPCTL_BIN" wait "$(json_get "$T/root-signal.armed" id)" >/dev/null ||
	fail "the snapshot taken across the signal failed"

snap_check root root-raw raw

# Pre-armed (the default from 256 MiB of live memory; asked here): the
# memory protected while the writers run, then a second stop for the
# instant.  Still one instant, the marker A and not B.
snap_check root root-prearm zsnap --prearm
[ "$(json_expr "$T/root-prearm.armed" 'o["attach"]["prearm"]')" = true ] ||
	fail "root-prearm: the reply does not say it was pre-armed"
echo "ok: pre-armed: first stop $(json_expr "$T/root-prearm.armed" 'o["attach"]["prearm-pause-us"]') us, the instant's stop $(json_expr "$T/root-prearm.armed" 'o["attach"]["pause-us"]') us"

# ---- a traced target is refused --------------------------------------------------
command -v strace >/dev/null || fail "strace is missing (make deps)"
strace -f -qq -p "$(cat "$T/root/pid")" -o /dev/null &
tracer=$!
t_track "$tracer"
n=100
until [ "$(python3 "$STAMP_PY" tracer "$(cat "$T/root/pid")")" = "$tracer" ]; do
	[ "$n" -gt 0 ] || fail "strace never attached"
	sleep 0.1
	n=$((n - 1))
done
if out=$("$MEMSNAPCTL_BIN" save --pid "$(cat "$T/root/pid")" --name traced 2>&1); then
	fail "a traced process was snapshotted: $out"
fi
case $out in *"traced by"*"$tracer"*) ;; *) fail "the refusal does not name the tracer $tracer: $out" ;; esac
[ "$(python3 "$STAMP_PY" tracer "$(cat "$T/root/pid")")" = "$tracer" ] ||
	fail "the refusal disturbed the tracer"
kill -INT "$tracer"
t_wait_gone "$tracer" 100 || fail "strace did not detach"
stamp_healthy root >/dev/null
echo "ok: a traced target is refused: $out"

# ---- an unprivileged target ------------------------------------------------------
stampwork_start user --as "$UT" --size 32M --threads 4 --pace-us 20
snap_check user user-by-root zsnap
if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ]; then
	[ "$VIA" = device ] ||
		fail "uid $UT cannot call userfaultfd(2) (vm.unprivileged_userfaultfd 0), yet uffd-via is $VIA"
fi
# By its own uid: the kernel's ptrace rules (no Yama, same uid) allow it.
if [ -e /proc/sys/kernel/yama/ptrace_scope ] &&
    [ "$(cat /proc/sys/kernel/yama/ptrace_scope)" != 0 ]; then
	echo "skipped: a same-uid peer (Yama ptrace_scope $(cat /proc/sys/kernel/yama/ptrace_scope) forbids it)"
else
	snap_check user user-by-self zsnap --as "$UT"
	f=$(json_get "$T/user-by-self.armed" file)
	case $f in "$SNAPD_DIR/uid-$UT/"*) ;; *) fail "uid $UT's snapshot is not in its directory: $f" ;; esac
fi

# ---- another uid is refused -------------------------------------------------------
for victim in user root; do
	out=$(setpriv --reuid=$UP --regid=$UP \
	    --groups="$(getent group users | cut -d: -f3)" "$MEMSNAPCTL_BIN" qmp \
	    "{\"execute\": \"snapshot-start\", \"arguments\": {\"pid\": $(cat "$T/$victim/pid")}}" 2>&1)
	case $out in *PermissionDenied*) ;; *) fail "uid $UP attaching to the $victim stampwork: no PermissionDenied: $out" ;; esac
	[ "$(python3 "$STAMP_PY" tracer "$(cat "$T/$victim/pid")")" = 0 ] ||
		fail "a refused attach left the $victim stampwork traced"
done
echo "ok: uid $UP gets PermissionDenied for uid $UT's and root's processes"

for sw in root user; do
	stamp_healthy "$sw" >/dev/null
	stampwork_stop "$sw"
	echo "ok: $sw stampwork's own check at the end: $(tail -n 1 "$T/$sw/out")"
done
