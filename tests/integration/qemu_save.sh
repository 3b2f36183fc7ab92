#!/bin/bash
# memsnapctl qemu-save and qemu-restore (issue 13) on Debian's QEMU, with the
# test guest (tests/guest/) rewriting its RAM under TCG all the while:
#   - saved live, with anonymous RAM (raw format) and with a shared memfd
#     backend (zsnap): the guest pauses only from stop to cont and runs on;
#     QEMU is left untraced and holding no userfaultfd; the RAM image is
#     one cut of the guest's writes (guestcheck), and one the serial port
#     puts at or after its last progress line before the save;
#   - a shared memfd's pages the guest never touched are not allocated by
#     the save (the memfd's RSS, the guest limited to its first pages);
#   - restored with qemu-restore --exec into a new QEMU, after the old one
#     is gone: the guest resumes, counts on from the cut, and finds no page
#     it did not leave so: 0 mismatches;
#   - the restored VM saved again: one cut too;
#   - qemu-list shows both, qemu-delete removes one, and the hook
#     (snapd-qemu-hook --json list) says the same.
# Exit 0 pass, 77 skip, 1 fail.
. "$(dirname "$0")/../lib.sh"
t_init
[ "$(id -u)" -eq 0 ] || skip "needs root (attach to QEMU)"
qemu_install_or_skip
snapd_config "buffer_size 16M"
snapd_start
snapd_attach_or_skip

first=512 last=16351
pages=$((last - first + 1))
HOOK=$TOP/client/qemu-hook/snapd-qemu-hook

# qemu_clean PID WHAT: QEMU PID is not traced and holds no userfaultfd.
qemu_clean() {
	local tracer
	tracer=$(awk '/^TracerPid:/ { print $2 }' "/proc/$1/status") ||
		fail "$2: QEMU $1 is gone"
	[ "$tracer" = 0 ] || fail "$2: QEMU $1 is still traced by $tracer"
	if ls -l "/proc/$1/fd" | grep -q userfaultfd; then
		fail "$2: QEMU $1 still holds a userfaultfd"
	fi
}

# running DIR: "true" or "false", from query-status.
running() {
	guest_qmp "$1" '{"execute": "query-status"}' |
	    python3 -c 'import json,sys; print(str(json.load(sys.stdin)["return"]["running"]).lower())'
}

# check_cut IMAGE TAG AFTER-WRITES: IMAGE is one cut of the guest's
# writes, at or after AFTER-WRITES pages written; sets CUT to the pages
# written at the cut.
check_cut() {
	"$GUESTCHECK" --json --pages "$first-$last" "$1" >"$T/$2.check" ||
		{ cat "$T/$2.check" >&2; fail "$2: the saved RAM is not one cut of the guest's writes"; }
	CUT=$(json_expr "$T/$2.check" "(o['gen'] - 1) * $pages + o['page'] - $first")
	[ "$CUT" -ge "$3" ] ||
		fail "$2: the cut ($CUT pages written) is before the guest's progress line before the save ($3)"
	echo "ok: $2: the RAM image is one cut: $(cat "$T/$2.check")"
}

# save_vm DIR NAME FORMAT: qemu-save the guest in DIR while it writes;
# checks the pause, that it ran on, and QEMU's state.  Sets BEFORE to the
# guest's writes before the save.
save_vm() {
	local d=$1 name=$2 fmt=$3 after pid
	pid=$(cat "$d/pid")
	BEFORE=$(guest_progress "$d" writes) || fail "$name: no progress"
	"$MEMSNAPCTL_BIN" -j qemu-save --qmp "$d/qmp" --name "$name" --format "$fmt" \
	    >"$T/$name.save" 2>"$T/$name.err" ||
		{ cat "$T/$name.err" >&2; fail "$name: qemu-save failed"; }
	head -n 1 "$T/$name.save" >"$T/$name.reply"
	[ "$(json_get "$T/$name.reply" running)" = true ] || fail "$name: the guest was not running?"
	[ "$(json_expr "$T/$name.save" "o['state']")" = completed ] ||
		fail "$name: the RAM snapshot did not complete: $(tail -n 1 "$T/$name.save")"
	[ "$(running "$d")" = true ] || fail "$name: the guest is paused after qemu-save"
	qemu_clean "$pid" "$name"
	guest_wait_writes "$d" $((BEFORE + 4096))
	after=$(guest_progress "$d" writes)
	echo "ok: $name: saved, paused $(json_get "$T/$name.reply" pause-us) us (stop to cont), armed in $(json_get "$T/$name.reply" arm-us) us; the guest ran on ($BEFORE -> $after pages written), QEMU untraced, no userfaultfd"
}

# ram_image NAME FORMAT: sets IMAGE to the saved RAM of VM snapshot NAME
# as a raw image.
ram_image() {
	local vm=$SNAPD_DIR/$1.vm
	IMAGE=$vm/$1.raw/0.img
	[ "$2" = raw ] && return
	"$MEMSNAPCTL_BIN" export "$vm/$1.zsnap" --raw "$T/$1.export" >/dev/null ||
		fail "$1: export --raw of the RAM failed"
	IMAGE=$T/$1.export/0.img
}

# restore_vm DIR NAME CUT: qemu-restore --exec NAME once the old QEMU is
# gone; the guest must count on from CUT with no mismatch.
restore_vm() {
	local d=$1 name=$2 cut=$3 pid w
	guest_stop "$d"
	"$MEMSNAPCTL_BIN" -j qemu-restore "$name" --exec >"$T/$name.restore" 2>"$T/$name.restore.err" ||
		{ cat "$T/$name.restore.err" "$SNAPD_DIR/$name.vm/restore.log" >&2; fail "$name: qemu-restore --exec failed"; }
	pid=$(json_get "$T/$name.restore" pid)
	t_track "$pid"
	echo "$pid" >"$d/pid"
	[ "$(running "$d")" = true ] || fail "$name: the restored guest is not running"
	guest_wait_writes "$d" $((cut + 2 * pages))
	guest_progress "$d" >"$T/$name.resumed"
	[ "$(json_get "$T/$name.resumed" mismatches)" -eq 0 ] ||
		fail "$name: the restored guest found pages it did not leave so: $(cat "$T/$name.resumed")"
	w=$(head -n 1 "$d/serial")
	echo "ok: $name: restored (QEMU $pid), the guest counts on from the cut ($cut pages) with 0 mismatches: $(cat "$T/$name.resumed")"
	echo "    its first line after the restore: $w"
}

# ---- anonymous RAM, raw --------------------------------------------------------
g=$T/anon
guest_start "$g" anon
guest_wait_writes "$g" $((pages + 4096))
save_vm "$g" anon raw
ram_image anon raw
check_cut "$IMAGE" anon "$BEFORE"
restore_vm "$g" anon "$CUT"
first_cut=$CUT
save_vm "$g" anon-again raw
ram_image anon-again raw
check_cut "$IMAGE" anon-again "$BEFORE"
[ "$CUT" -gt "$first_cut" ] || fail "anon-again: the second save's cut ($CUT) is not after the first's ($first_cut)"
echo "ok: the restored VM saved again, live: one cut, $CUT pages written"
guest_stop "$g"

# ---- shared memfd, zsnap --------------------------------------------------------
g=$T/memfd
guest_start "$g" memfd
guest_wait_writes "$g" $((pages + 4096))
save_vm "$g" memfd zsnap
ram_image memfd zsnap
check_cut "$IMAGE" memfd "$BEFORE"
restore_vm "$g" memfd "$CUT"
guest_stop "$g"

# ---- a shared memfd's untouched pages stay unallocated --------------------------
# The guest writes only pages 512..1535 (4 MiB of its 64): a save must not
# allocate the other 60 MiB by reading them.
g=$T/sparse
guest_start "$g" memfd -append "first=512 last=1535"
guest_wait_writes "$g" 4096
rss() {
	awk '/memfd:memory-backend-memfd/ { m = 1; next } m && /^Rss:/ { print $2; exit }' \
	    "/proc/$(cat "$g/pid")/smaps"
}
r0=$(rss)
save_vm "$g" sparse raw
r1=$(rss)
[ "$r1" -lt $((r0 + 8192)) ] ||
	fail "sparse: saving the memfd grew its RSS from $r0 kB to $r1 kB: snapd read pages the guest never touched through QEMU's mapping"
echo "ok: sparse: the memfd's RSS $r0 kB before the save, $r1 kB after (64 MiB mapped)"
guest_stop "$g"

# ---- list, delete, the hook ------------------------------------------------------
"$MEMSNAPCTL_BIN" qemu-list
MEMSNAPCTL=$MEMSNAPCTL_BIN "$HOOK" --json list >"$T/list.json" || fail "snapd-qemu-hook --json list failed"
python3 - "$T/list.json" <<'EOF' || fail "the hook's list is not what was saved"
import json, sys
got = {e["name"]: e for e in json.load(open(sys.argv[1]))}
want = {"anon", "anon-again", "memfd", "sparse"}
if set(got) != want:
    sys.exit("names %s, expected %s" % (sorted(got), sorted(want)))
for n, e in got.items():
    if e["state"] != "complete" or e["ram-bytes"] != 64 << 20 or e["qemu"] == "":
        sys.exit("%s: %s" % (n, e))
EOF
MEMSNAPCTL=$MEMSNAPCTL_BIN "$HOOK" delete anon || fail "snapd-qemu-hook delete anon failed"
[ ! -e "$SNAPD_DIR/anon.vm" ] || fail "qemu-delete left $SNAPD_DIR/anon.vm"
rc=0
MEMSNAPCTL=$MEMSNAPCTL_BIN "$HOOK" delete anon 2>"$T/del.err" || rc=$?
[ "$rc" -eq 1 ] || fail "deleting a VM snapshot that is gone: exit $rc, expected 1"
rc=0
MEMSNAPCTL=$MEMSNAPCTL_BIN "$HOOK" frobnicate 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "the hook with an unknown action: exit $rc, expected 2"
echo "ok: qemu-list, qemu-delete and the hook (list, delete, exit codes)"
