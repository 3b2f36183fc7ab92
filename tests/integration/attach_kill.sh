#!/bin/bash
# Attach (issue 12) under the worst fault: snapd killed with SIGKILL at
# every phase of attaching to a process, and in the middle of the sweep
# that follows.  snapd's pause points (SNAPD_TEST_PAUSE_DIR, snapd(8) TEST
# HOOKS) hold it exactly there, so the kill lands in the phase it names on
# any machine:
#   stopped    every thread stopped (PTRACE_SEIZE + PTRACE_INTERRUPT);
#   injected   userfaultfd() run inside the target;
#   fd-taken   snapd holds the fd (pidfd_getfd), the target's copy still
#              open;
#   closing    the close() of the target's copy injected;
#   armed      the memory write-protected, the target not yet resumed;
#   restopped  a pre-arm's second stop (snapshot-start's "prearm"), the
#              memory protected while it ran, not yet armed;
#   mid-sweep  the target running again, snapd's writer held in its sweep
#              of the data region at the marker page (which no fault saves
#              first), by the "writer REGION PAGE" pause, with --maps
#              choosing that region alone (region 0); the faults meanwhile
#              fill the 4 MiB buffer, so writers may be blocked on snapd
#              when it dies.
# The injection phases again with an unprivileged target, whose uffd comes
# through /dev/userfaultfd (a socket pair, a received descriptor and the
# new uffd made in it, each to be closed by the target's own thread), and
# "stopped" and "armed" with a pre-arm.
# After each kill the target (stampwork, four writers, threads blocked in
# read, futex and nanosleep) must run on: not traced (TracerPid 0), no
# thread left stopped, no userfaultfd among its fds, every writer
# advancing, no anomaly seen by its blocked threads; a snapshot under its
# final name must be whole and one instant (at "armed" the writer may
# finish while the target is still held), and none killed mid-sweep; and
# at its stop the target's own check of its memory must pass.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach)"
export SNAPD_TEST_PAUSE_DIR=$T/pause
mkdir -p -m 0700 "$SNAPD_TEST_PAUSE_DIR" || fail "mkdir $SNAPD_TEST_PAUSE_DIR"
snapd_config "buffer_size 4M" "compression_threads 1"

# final_is_whole NAME SW: a snapshot NAME under its final name must be
# whole and one instant of stampwork SW (at "armed" the target is still
# held stopped, so snapd's writer may finish before the kill: that is a
# good snapshot, taken while nothing moved).
final_is_whole() {
	local f
	for f in "$SNAPD_DIR/$1".*; do
		[ -e "$f" ] || continue
		"$MEMSNAPCTL_BIN" verify "$f" >/dev/null ||
			fail "$1: a killed snapshot has a final name and is not whole: $f"
		"$STAMPCHECK" --marker "before-$1" "$T/$2/info.json" "$f" >"$T/$1.check" ||
			{ cat "$T/$1.check" >&2; fail "$1: the snapshot finished before the kill is not one instant"; }
		echo "($1: the snapshot completed before the kill; it is whole and one instant)"
	done
}

# kill_at PHASE PAUSE-LINE [--as UID] [SAVE-ARGS...]: one target (as UID),
# one attach, snapd killed where PAUSE-LINE holds it; then every check.
# PHASE names the run (the snapshot and its files).
kill_at() {
	local phase=$1 line=$2 sw=sw-$1 pid tracer n h
	local -a as=()
	shift 2
	if [ "${1:-}" = --as ]; then
		as=(--as "$2")
		shift 2
	fi
	snapd_start
	snapd_attach_or_skip
	stampwork_start "$sw" "${as[@]}" --size 64M --threads 4 --pace-us 20
	pid=$STAMP_PID
	stamp_cmd "$sw" "marker before-$phase" >/dev/null
	echo "$line" >"$SNAPD_TEST_PAUSE_DIR/$phase.pause"
	save_start "$phase" --pid "$pid" --name "$phase" --no-wait "$@"
	n=300
	until [ -e "$SNAPD_TEST_PAUSE_DIR/$phase.paused" ]; do
		if [ "$n" -le 0 ] || ! kill -0 "$SAVE_PID" 2>/dev/null; then
			cat "$T/$phase.save.err" "$T/$phase.save" >&2
			fail "$phase: snapd never paused at '$line'"
		fi
		sleep 0.1
		n=$((n - 1))
	done
	tracer=$(python3 "$STAMP_PY" tracer "$pid")
	snapd_kill
	if [ ${#as[@]} -gt 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ]; then
		grep -q "through /dev/userfaultfd" "$SNAPD_LOG" ||
			fail "$phase: the unprivileged target's uffd was not being made through /dev/userfaultfd"
	fi
	save_finish "$phase" && [ "$phase" != mid-sweep ] &&
		echo "($phase: save succeeded before the kill, with --no-wait)"
	# The kernel detaches a dead tracer's tracees; give it a moment.
	h=$(python3 "$STAMP_PY" health "$pid" 1) ||
		fail "$phase: after snapd's death the target is not healthy: $h"
	stamp_healthy "$sw" >/dev/null
	final_is_whole "$phase" "$sw"
	stamp_cmd "$sw" "marker after-$phase" >/dev/null
	stampwork_stop "$sw"
	echo "ok: $phase: killed snapd (the target's tracer then: $tracer); target runs on: $h"
	echo "    its own check: $(tail -n 1 "$T/$sw/out")"
	rm -f "$SNAPD_TEST_PAUSE_DIR/$phase".*
	: >"$SNAPD_LOG"
}

for phase in stopped injected fd-taken closing armed; do
	kill_at "$phase" "attach $phase"
done
command -v setpriv >/dev/null || skip "setpriv (util-linux) is missing"
chmod 0711 "$T" || fail "chmod $T"	# the unprivileged target's files
for phase in injected fd-taken closing; do
	kill_at "user-$phase" "attach $phase" --as 61022
done
for phase in stopped restopped armed; do
	kill_at "prearm-$phase" "attach $phase" --prearm
done

# Mid-sweep: --maps names the data region's range alone, so that it is
# region 0 of the snapshot.
snapd_start
snapd_attach_or_skip
stampwork_start sw-mid-sweep --size 64M --threads 4 --pace-us 20
pid=$STAMP_PID
stamp_cmd sw-mid-sweep "marker before-mid-sweep" >/dev/null
maps=$(python3 - "$T/sw-mid-sweep/info.json" <<'EOF'
import json, sys
i = json.load(open(sys.argv[1]))
print("%x-%x" % (i["region-start"], i["region-start"] + i["region-size"]))
EOF
)
# The marker page: populated (the marker written before the save) and not
# written during the snapshot, so the sweep, not a fault, claims it.  (A
# never-touched page will not do: the engine may count it zero at arm,
# and the sweep then never claims it.)
page=$(stamp_info sw-mid-sweep marker-page)
echo "writer 0 $page" >"$SNAPD_TEST_PAUSE_DIR/mid-sweep.pause"
save_start mid-sweep --pid "$pid" --name mid-sweep --maps "$maps" --format raw
save_armed mid-sweep || fail "mid-sweep: save never armed"
n=300
until [ -e "$SNAPD_TEST_PAUSE_DIR/mid-sweep.paused" ]; do
	[ "$n" -gt 0 ] || fail "mid-sweep: snapd's writer never paused at the marker page"
	sleep 0.1
	n=$((n - 1))
done
[ "$(json_expr "$T/mid-sweep.armed" 'o["attach"]["mappings-live"]')" -ge 1 ] ||
	fail "mid-sweep: the data region is not saved live"
saved=$("$MEMSNAPCTL_BIN" -j list | python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin) if x.get("name")=="mid-sweep"]; print("%d/%d" % (s[0]["pages-saved"], s[0]["pages-total"]) if s else "?")')
snapd_kill
save_finish mid-sweep && fail "mid-sweep: save reported success though snapd was killed"
h=$(python3 "$STAMP_PY" health "$pid" 1) ||
	fail "mid-sweep: after snapd's death the target is not healthy: $h"
stamp_healthy sw-mid-sweep >/dev/null
found=$(find "$SNAPD_DIR" -name "mid-sweep.*" -print)
[ -z "$found" ] || fail "mid-sweep: a snapshot killed mid-sweep has a final name: $found"
stampwork_stop sw-mid-sweep
echo "ok: mid-sweep: killed snapd with $saved pages saved; target runs on: $h"
echo "    its own check: $(tail -n 1 "$T/sw-mid-sweep/out")"
