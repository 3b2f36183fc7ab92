#!/bin/bash
# snapd under a real systemd: a minimal Debian booted with systemd-nspawn
# (tests/nspawn.sh), snapd installed into it as a user installs it, and
# every claim of memsnap.service and memsnap.socket proved from systemd's
# and snapd's own figures.  tests/integration/systemd_units.sh checks the
# same units offline and with stand-ins; this is the real thing.
#
#  0. Install: Snap's files are planted in the root first (tests/snapfiles.sh,
#     /run ones too); then ours go in (ours_install: `make install`, or the
#     Debian packages once the Makefile has a deb target), the group from
#     the sysusers file, the socket enabled.  /dev/userfaultfd is made as
#     devtmpfs makes it (root, 0600) and udev applies our rule to it
#     (`udevadm test`: udevd does not run in a container).
#  8. `systemd-analyze security memsnap.service`, live, on the shipped unit:
#     printed, and its exposure at most systemd/SECURITY.md's figure.
#  1. Socket activation: memsnap.service is inactive with no MainPID until
#     the first `memsnapctl status` through /run/memsnap/snapd.sock
#     (root:memsnap 0660); then active, its MainPID the pid snapd reports,
#     and snapd logged that it listens on the socket systemd passed.
#  4. `systemctl reload` applies a changed snapd.conf (buffer_size,
#     log_level: query-config shows them) with the same MainPID.
#  2. Type=notify: with the socket unit stopped, snapd reads its
#     configuration from a FIFO, so it runs but cannot be ready until the
#     test writes it: `systemctl start` has not returned and the unit is
#     activating with a MainPID and no socket; once written, start returns
#     and the socket snapd bound itself answers at the first try.
#  3. Watchdog: with a drop-in WatchdogSec=3, a snapd stopped with SIGSTOP
#     is killed and restarted by systemd: NRestarts + 1, a new MainPID, the
#     journal's "Watchdog timeout" and result 'watchdog'.
#  6. Hardening: snapd runs with the four capabilities (CapBnd, CapEff),
#     no_new_privs and a seccomp filter; a command the unit itself runs
#     (a drop-in ExecStartPost=, so in the service's namespaces, cgroup,
#     filter and bounding set) cannot write /etc, /usr or /root
#     (read-only file system) but can write /var/lib/memsnap and
#     /run/memsnap, and may open /dev/null and /dev/userfaultfd but not
#     /dev/net/tun: the device cgroup, since the same probe opens it with a
#     drop-in DevicePolicy=auto.
#  5. A user in group memsnap (useradd) snapshots its own process
#     (snapwork, bind-mounted from the build) through the socket: the
#     snapshot restores exactly, lands in /var/lib/memsnap/snapshots/
#     uid-UID/ owned by the user, and `memsnapctl verify` passes as them.
#     Root attaches to that user's process (`memsnapctl save --pid`).
#  7. `systemctl stop` during a snapshot held by the test hook (a drop-in
#     Environment=SNAPD_TEST_HOOKS=1): with `shutdown cancel` the snapshot
#     is cancelled and no file is left; with `shutdown finish` systemd
#     waits (deactivating) until the test releases the hold, and the
#     snapshot completes and restores exactly.  Both stops exit 0.
#  9. Snap's files are byte for byte as planted after each step, and after
#     ours are removed (ours_remove: `make uninstall`, or `apt-get purge`,
#     after which nothing of ours is left at all).
#
# Skipped under sanitizers (it tests packaging and systemd, not memory
# errors) and where the root cannot be built (no network on a first run).
set -u

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$TOP/tests/lib.sh"
. "$TOP/tests/snapfiles.sh"
. "$TOP/tests/nspawn.sh"

# fail: also show what systemd and snapd said.
fail() {
	echo "FAIL: $*" >&2
	if [ -n "${NSPAWN_INIT:-}" ]; then
		echo "--- journal of memsnap.service and memsnap.socket:" >&2
		nsx journalctl --no-pager -o short-monotonic -u memsnap.service \
		    -u memsnap.socket 2>&1 | tail -n 40 >&2
	fi
	exit 1
}

[ -z "${SANITIZE:-}" ] ||
	skip "tests the packaging and systemd integration, not memory errors: run without SANITIZE"
[ "$(id -u)" -eq 0 ] || skip "boots a container with systemd-nspawn: needs root"
[ -c /dev/userfaultfd ] || skip "no /dev/userfaultfd on this machine"
for b in "$SNAPD_BIN" "$MEMSNAPCTL_BIN" "$SNAPWORK"; do
	[ -x "$b" ] || fail "$b is missing: build it first (make tests)"
done

T=$(mktemp -d /tmp/snapd-real.XXXXXX) || fail "mktemp -d failed"
cleanup() {
	local rc=$?
	trap - EXIT
	nspawn_stop || rc=1
	[ -z "${KEEP_TEST_DIR:-}" ] && rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SOCK=/run/memsnap/snapd.sock
SNAPDIR=/var/lib/memsnap/snapshots
DROPIN=/etc/systemd/system/memsnap.service.d

# ---- installing and removing ours ------------------------------------------
# The Debian packages when the Makefile can build them, else make install.
if grep -q '^deb:' "$TOP/Makefile"; then
	INSTALL=deb
else
	INSTALL=make
fi

# ours_prepare: what ours_install needs on this side, before the boot.
ours_prepare() {
	case $INSTALL in
	deb)
		mkdir -p "$T/debs" || fail "mkdir $T/debs"
		make -s -C "$TOP" B="$B" deb DEBDIR="$T/debs" >"$T/make-deb.log" 2>&1 || {
			tail -n 30 "$T/make-deb.log" >&2
			fail "make deb failed (output above)"
		}
		# The debug symbols are no part of what a user installs.
		rm -f "$T/debs"/*-dbgsym_*.deb
		ls "$T/debs"/*.deb >/dev/null 2>&1 || fail "make deb made no package in $T/debs"
		echo "packages: $(cd "$T/debs" && echo *.deb)"
		NSPAWN_ARGS+=(--bind-ro="$T/debs:/mnt/memsnap-debs")
		;;
	esac
}

# ours_install: install snapd into the container as its user would, then
# do what the installation leaves to the administrator (make) or does
# itself (the packages): the group, the units known, the socket enabled.
ours_install() {
	case $INSTALL in
	deb)
		nsx env --chdir=/ DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
		    install -y $(cd "$T/debs" && ls *.deb | sed 's|^|/mnt/memsnap-debs/|') \
		    >"$T/apt-install.log" 2>&1 || {
			tail -n 30 "$T/apt-install.log" >&2
			fail "apt-get install of our packages failed in the container"
		}
		nsx dpkg-query -W -f '${Package}\n' 'memsnap*' 'libsnapclient*' \
		    2>/dev/null | sort >"$T/our-packages"
		local p
		for p in $(cat "$T/our-packages"); do
			nsx dpkg -L "$p"
		done | sort -u >"$T/our-files"
		# The package made the group and enabled and started the socket
		# itself, as Debian's policy has it.
		nsx getent group memsnap >/dev/null ||
			fail "installing the package did not create group memsnap"
		[ "$(nsx systemctl is-enabled memsnap.socket)" = enabled ] ||
			fail "installing the package did not enable memsnap.socket"
		[ "$(nsx systemctl is-active memsnap.socket)" = active ] ||
			fail "installing the package did not start memsnap.socket"
		[ "$(nsx systemctl is-active memsnap.service)" = inactive ] ||
			fail "installing the package started memsnap.service (the socket starts it)"
		echo "ok: the package made group memsnap and enabled and started memsnap.socket"
		;;
	make)
		make -s -C "$TOP" B="$B" install STAGEDIR="$T/stage" DESTDIR="$R" \
		    PREFIX=/usr >"$T/make-install.log" 2>&1 || {
			tail -n 30 "$T/make-install.log" >&2
			fail "make install DESTDIR=$R PREFIX=/usr failed (output above)"
		}
		(cd "$T/stage" && find . ! -type d | sed 's|^\.||' | sort) >"$T/our-files"
		nsx systemd-sysusers memsnap.conf || fail "systemd-sysusers memsnap.conf failed"
		nsx systemctl daemon-reload || fail "systemctl daemon-reload failed"
		;;
	esac
	nsx systemctl enable --now memsnap.socket >"$T/enable.log" 2>&1 || {
		cat "$T/enable.log" >&2
		fail "systemctl enable --now memsnap.socket failed"
	}
}

# ours_remove: take it all away again.
ours_remove() {
	nsx systemctl disable --now memsnap.socket memsnap.service >"$T/disable.log" 2>&1 || {
		cat "$T/disable.log" >&2
		fail "systemctl disable --now memsnap.socket memsnap.service failed"
	}
	case $INSTALL in
	deb)
		nsx env --chdir=/ DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
		    purge -y $(cat "$T/our-packages") >"$T/apt-purge.log" 2>&1 || {
			tail -n 30 "$T/apt-purge.log" >&2
			fail "apt-get purge $(cat "$T/our-packages" | tr '\n' ' ') failed"
		}
		;;
	make)
		make -s -C "$TOP" B="$B" uninstall DESTDIR="$R" PREFIX=/usr \
		    >"$T/make-uninstall.log" 2>&1 || {
			tail -n 30 "$T/make-uninstall.log" >&2
			fail "make uninstall DESTDIR=$R failed"
		}
		;;
	esac
}

# ours_gone: nothing of ours is left (packages: nothing at all; make
# uninstall keeps the configuration by design, and the state and the group
# it did not make).
ours_gone() {
	local f left=
	for f in $(cat "$T/our-files"); do
		[ "$INSTALL" = make ] && [ "$f" = /etc/memsnap/snapd.conf ] && continue
		# dpkg -L lists directories too (/lib is a link to usr/lib on
		# Debian 12): only files and links to files are ours alone.
		[ -e "$R$f" ] || [ -L "$R$f" ] || continue
		[ -d "$R$f" ] && continue
		left="$left $f"
	done
	[ -z "$left" ] || fail "left after removal:$left"
	nsx systemctl list-unit-files 'memsnap*' --no-legend | grep . &&
		fail "memsnap units are still known to systemd after removal"
	if [ "$INSTALL" = deb ]; then
		for f in /etc/memsnap /var/lib/memsnap /run/memsnap; do
			[ -e "$R$f" ] && fail "$f is left after apt-get purge"
		done
		nsx getent group memsnap && fail "group memsnap is left after apt-get purge"
	fi
	echo "ok: removed ($INSTALL): nothing of ours is left$([ "$INSTALL" = make ] &&
	    echo " but what make uninstall keeps by design (the configuration, state, group)")"
}

# ---- helpers -------------------------------------------------------------------
# prop PROPERTY [UNIT]: one property of a unit, as systemctl show gives it.
prop() {
	nsx systemctl show -P "$1" "${2:-memsnap.service}"
}

# journal_has REGEX [UNIT]: the unit's journal since this boot has a line
# matching REGEX (the journal is written asynchronously: poll up to 10 s).
journal_has() {
	local n=100
	while :; do
		nsx journalctl --no-pager -o cat -u "${2:-memsnap.service}" |
		    grep -Eq -- "$1" && return 0
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
		n=$((n - 1))
	done
}

# ctl ARGS...: memsnapctl as root in the container, on the unit's socket.
ctl() {
	nsx memsnapctl "$@"
}

# as_user CMD...: CMD as the test user, with the groups of its passwd entry.
as_user() {
	nsx setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups \
	    env HOME="/home/$USER_NAME" "$@"
}

dropin() {	# dropin NAME CONTENT: a drop-in of memsnap.service; reloads
	mkdir -p "$R$DROPIN" && printf '%s\n' "[Service]" "$2" >"$R$DROPIN/$1.conf" ||
		fail "cannot write the drop-in $DROPIN/$1.conf"
	nsx systemctl daemon-reload || fail "systemctl daemon-reload failed"
}

undropin() {
	rm -f "$R$DROPIN/$1.conf" || fail "cannot remove $DROPIN/$1.conf"
	nsx systemctl daemon-reload || fail "systemctl daemon-reload failed"
}

# snap_state NAME: the state of snapshot NAME in `memsnapctl list`, or none.
snap_state() {
	ctl -j list >"$T/list.json" 2>/dev/null || { echo none; return; }
	python3 - "$T/list.json" "$1" <<'EOF'
import json, sys
snaps = json.load(open(sys.argv[1]))
s = [x for x in snaps if x.get("name") == sys.argv[2]]
print(s[-1]["state"] if s else "none")
EOF
}

# ---- the container --------------------------------------------------------------
nspawn_root
# bpf(2) for DevicePolicy= and IPAddressDeny=; pidfd_getfd(2) for attach:
# nspawn's own filter refuses both (a container's limit, not the unit's).
NSPAWN_ARGS=(--system-call-filter="bpf pidfd_getfd"
    --bind-ro="$TESTS_BIN:/opt/memsnap-tests")
ours_prepare
t0=$SECONDS
nspawn_boot "${NSPAWN_ARGS[@]}"
R=/proc/$NSPAWN_INIT/root
echo "booted in $((SECONDS - t0)) s; installing with: $INSTALL"

# /dev/userfaultfd as devtmpfs makes it, in the container's own /dev (not
# a bind of this machine's node: udev below changes its group and mode).
dev=$(stat -c '%t %T' /dev/userfaultfd) || fail "stat /dev/userfaultfd"
set -- $dev
nsx mknod -m 0600 /dev/userfaultfd c $((0x$1)) $((0x$2)) ||
	fail "cannot make /dev/userfaultfd in the container"

# ---- 0 and 9: install, with Snap's files there first ------------------------------
snapfiles_plant "$R"
echo "ok: Snap's files planted ($(wc -l <"$T/snapfiles.before") entries)"
ours_install
snapfiles_check "$R" "after installing ours ($INSTALL)"
echo "ok: installed ($INSTALL); Snap's files untouched"

nsx getent group memsnap >"$T/group" || fail "no group memsnap after installing"
[ "$(prop ActiveState memsnap.socket)" = active ] || fail "memsnap.socket is not active after enable --now"
[ "$(nsx stat -c '%U:%G %a %F' "$SOCK")" = "root:memsnap 660 socket" ] ||
	fail "$SOCK is $(nsx stat -c '%U:%G %a %F' "$SOCK"), expected root:memsnap 660 socket"
echo "ok: memsnap.socket listening on $SOCK, root:memsnap 0660; group $(cat "$T/group")"

# udev applies our rule to the device (udevd itself needs a writable /sys).
nsx udevadm test /sys/devices/virtual/misc/userfaultfd >"$T/udev.log" 2>&1 ||
	{ tail -n 20 "$T/udev.log" >&2; fail "udevadm test on userfaultfd failed"; }
grep -q '60-memsnap-userfaultfd.rules:[0-9]* GROUP' "$T/udev.log" ||
	{ cat "$T/udev.log" >&2; fail "udev did not apply 60-memsnap-userfaultfd.rules to userfaultfd"; }
[ "$(nsx stat -c '%U:%G %a' /dev/userfaultfd)" = "root:memsnap 660" ] ||
	fail "/dev/userfaultfd is $(nsx stat -c '%U:%G %a' /dev/userfaultfd) after udev, expected root:memsnap 660"
echo "ok: udev gave /dev/userfaultfd to group memsnap, 0660 (60-memsnap-userfaultfd.rules)"

# ---- 8. systemd-analyze security, live -----------------------------------------
nsx systemd-analyze security --no-pager memsnap.service >"$T/security" 2>&1 ||
	{ cat "$T/security" >&2; fail "systemd-analyze security memsnap.service failed"; }
echo "--- systemd-analyze security memsnap.service (live, systemd $(nsx systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p')):"
cat "$T/security"
exposure=$(sed -n 's/.*Overall exposure level for memsnap.service: \([0-9.]*\).*/\1/p' "$T/security")
recorded=$(sed -n 's/^ *live → Overall exposure level for memsnap.service: \([0-9.]*\).*/\1/p' \
    "$TOP/systemd/SECURITY.md")
[ -n "$exposure" ] || fail "no exposure level in systemd-analyze security's output"
[ -n "$recorded" ] || fail "systemd/SECURITY.md records no live exposure level"
awk -v e="$exposure" -v r="$recorded" 'BEGIN { exit !(e <= r) }' ||
	fail "memsnap.service's live exposure is $exposure, above the $recorded systemd/SECURITY.md records"
echo "ok: live exposure $exposure (SECURITY.md: $recorded)"

# ---- 1. socket activation ---------------------------------------------------------
[ "$(prop ActiveState)" = inactive ] || fail "memsnap.service is $(prop ActiveState) before any client connected"
[ "$(prop MainPID)" = 0 ] || fail "memsnap.service has MainPID $(prop MainPID) before any client connected"
ctl -j status >"$T/status.json" 2>"$T/status.err" ||
	{ cat "$T/status.err" >&2; fail "memsnapctl status through $SOCK failed"; }
pid=$(json_get "$T/status.json" pid) || fail "no pid in memsnapctl status"
[ "$(prop ActiveState)" = active ] || fail "memsnap.service is $(prop ActiveState) after the first connection"
[ "$(prop MainPID)" = "$pid" ] || fail "memsnap.service's MainPID is $(prop MainPID), snapd says its pid is $pid"
journal_has 'listening on the socket systemd passed' ||
	fail "snapd did not log that it listens on the socket systemd passed"
[ "$(prop NRestarts)" = 0 ] || fail "memsnap.service restarted $(prop NRestarts) times"
echo "ok: socket activation: inactive, no MainPID; the first memsnapctl status started snapd (pid $pid = MainPID) on systemd's socket"
snapfiles_check "$R" "after socket activation"

# ---- 4. reload --------------------------------------------------------------------
sed -i -e 's/^buffer_size .*/buffer_size 32M/' -e 's/^log_level .*/log_level debug/' \
    "$R/etc/memsnap/snapd.conf" || fail "cannot edit snapd.conf"
grep -qx 'buffer_size 32M' "$R/etc/memsnap/snapd.conf" && grep -qx 'log_level debug' "$R/etc/memsnap/snapd.conf" ||
	fail "snapd.conf has no buffer_size and log_level lines to change"
nsx systemctl reload memsnap.service || fail "systemctl reload memsnap.service failed"
# ExecReload= sends SIGHUP and returns: poll until snapd has read it.
n=100
until ctl -j qmp '{"execute": "query-config"}' >"$T/config.json" 2>&1 &&
    [ "$(json_expr "$T/config.json" 'o["return"]["buffer_size"]')" = 33554432 ] &&
    [ "$(json_expr "$T/config.json" 'o["return"]["log_level"]')" = debug ]; do
	[ "$n" -gt 0 ] || { cat "$T/config.json" >&2; fail "query-config does not show buffer_size 32M and log_level debug 10 s after systemctl reload"; }
	sleep 0.1
	n=$((n - 1))
done
[ "$(prop MainPID)" = "$pid" ] || fail "systemctl reload changed MainPID from $pid to $(prop MainPID)"
journal_has 'configuration reloaded from /etc/memsnap/snapd.conf' ||
	fail "snapd did not log the reload"
echo "ok: systemctl reload: query-config shows buffer_size 33554432 and log_level debug; same MainPID $pid"

# ---- 2. Type=notify: start returns once snapd is ready ---------------------------
nsx systemctl stop memsnap.socket memsnap.service 2>/dev/null || fail "cannot stop memsnap.socket and memsnap.service"
nsx test -e "$SOCK" && fail "$SOCK is still there with memsnap.socket stopped"
nsx sh -c 'mkdir -p /run/memsnap-gate && mkfifo /run/memsnap-gate/snapd.conf' ||
	fail "cannot make the configuration FIFO"
dropin 50-gate "ExecStart=
ExecStart=/usr/sbin/snapd -c /run/memsnap-gate/snapd.conf"
nsx_bg "$T/start" systemctl start memsnap.service
START_PID=$NSX_PID
n=300
until [ "$(prop ActiveState)" = activating ] && [ "$(prop MainPID)" != 0 ]; do
	kill -0 "$START_PID" 2>/dev/null || { cat "$T/start.err" >&2; fail "systemctl start returned before snapd could be ready"; }
	[ "$n" -gt 0 ] || fail "memsnap.service did not start snapd within 30 s"
	sleep 0.1
	n=$((n - 1))
done
gated=$(prop MainPID)
[ "$(nsx cat /proc/$gated/comm)" = snapd ] || fail "MainPID $gated is not snapd"
kill -0 "$START_PID" 2>/dev/null || fail "systemctl start returned while snapd (pid $gated) was not ready"
[ "$(prop SubState)" = start ] || fail "memsnap.service is in $(prop SubState), expected start"
nsx test -e "$SOCK" && fail "$SOCK exists while snapd waits for its configuration"
echo "ok: snapd (pid $gated) is running but not ready: systemctl start waits, memsnap.service is activating/start"
# With S3 configured (an endpoint nothing listens on: only the start-up
# check matters here), the unit's lack of network must be said at start-up.
nsx sh -c 'umask 077 && printf "access_key k\nsecret_key s\n" >/etc/memsnap/s3-credentials' ||
	fail "cannot write /etc/memsnap/s3-credentials"
grep -q '^s3_endpoint ' "$R/etc/memsnap/snapd.conf" || fail "snapd.conf has no s3_endpoint line"
nsx sh -c 'sed "s|^s3_endpoint .*|s3_endpoint http://127.0.0.1:9|" /etc/memsnap/snapd.conf >/run/memsnap-gate/snapd.conf' ||
	fail "cannot write the configuration into the FIFO"
t_wait_gone "$START_PID" 300 || fail "systemctl start did not return within 30 s of snapd getting its configuration"
wait "$START_PID" || { cat "$T/start.err" >&2; fail "systemctl start memsnap.service failed"; }
# No retry: ready means the socket answers now.
ctl -j status >"$T/status.json" 2>"$T/status.err" ||
	{ cat "$T/status.err" >&2; fail "systemctl start returned but $SOCK did not answer at once"; }
[ "$(json_get "$T/status.json" pid)" = "$gated" ] || fail "the socket is answered by pid $(json_get "$T/status.json" pid), not $gated"
[ "$(prop ActiveState)" = active ] || fail "memsnap.service is $(prop ActiveState) after start returned"
# snapd's STATUS=: "ready; ..." at READY=1, then its figures once a second.
case $(prop StatusText) in
"ready; "*|*" snapshots running, "*" taken, "*" bytes written") ;;
*) fail "StatusText is '$(prop StatusText)', not a status snapd sent" ;;
esac
journal_has "listening on $SOCK" || fail "snapd did not log that it bound $SOCK itself"
echo "ok: Type=notify: start returned once snapd was ready; the socket it bound itself answered at once; StatusText '$(prop StatusText)'"
journal_has "s3: s3_endpoint is set but snapd may not open a TCP socket \\(Address family not supported by protocol\\)" ||
	fail "with s3_endpoint set, snapd under memsnap.service did not say at start-up that the unit gives it no network"
nsx rm -f /etc/memsnap/s3-credentials
echo "ok: with s3_endpoint set, snapd says at start-up that memsnap.service gives it no network (the drop-in of snapd.conf(5))"
undropin 50-gate
nsx systemctl stop memsnap.service || fail "systemctl stop memsnap.service failed"
nsx rm -rf /run/memsnap-gate

# ---- 3. the watchdog -----------------------------------------------------------------
# From here on: test hooks (step 7) and a short watchdog.
dropin 50-test "WatchdogSec=3
Environment=SNAPD_TEST_HOOKS=1"
nsx systemctl start memsnap.socket memsnap.service || fail "cannot start memsnap.socket and memsnap.service"
[ "$(prop WatchdogUSec)" = 3s ] || fail "WatchdogUSec is $(prop WatchdogUSec), expected 3s from the drop-in"
p0=$(prop MainPID)
r0=$(prop NRestarts)
nsx kill -STOP "$p0" || fail "kill -STOP $p0"
n=600
until [ "$(prop NRestarts)" = $((r0 + 1)) ] && p1=$(prop MainPID) &&
    [ "$p1" != 0 ] && [ "$p1" != "$p0" ] && [ "$(prop ActiveState)" = active ]; do
	[ "$n" -gt 0 ] || fail "snapd (pid $p0) stopped for 60 s and systemd did not restart it (NRestarts $(prop NRestarts), MainPID $(prop MainPID), $(prop ActiveState))"
	sleep 0.1
	n=$((n - 1))
done
journal_has 'Watchdog timeout \(limit 3s\)' || fail "no 'Watchdog timeout' in the journal"
journal_has "Killing process $p0 \(snapd\) with signal SIGABRT" || fail "systemd did not log killing $p0 with SIGABRT"
journal_has "Failed with result 'watchdog'" || fail "no result 'watchdog' in the journal"
ctl -j status >"$T/status.json" || fail "the restarted snapd does not answer"
[ "$(json_get "$T/status.json" pid)" = "$p1" ] || fail "the socket is answered by pid $(json_get "$T/status.json" pid), not MainPID $p1"
echo "ok: watchdog: snapd $p0 stopped, killed with SIGABRT after WatchdogSec=3 (result 'watchdog'), restarted as $p1 (NRestarts $r0 -> $((r0 + 1)))"

# ---- 6. hardening -------------------------------------------------------------------
main=$(prop MainPID)
nsx cat /proc/$main/status >"$T/main.status" || fail "cannot read snapd's status"
for kv in "CapBnd:	000000000008000b" "CapEff:	000000000008000b" \
    "CapAmb:	0000000000000000" "NoNewPrivs:	1" "Seccomp:	2"; do
	grep -qx "$kv" "$T/main.status" || { cat "$T/main.status" >&2; fail "snapd's status lacks '$kv'"; }
done
echo "ok: snapd runs with CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SYS_PTRACE only (0x8000b), no_new_privs, a seccomp filter"
# A command of the unit itself, after snapd is ready: everything of the
# service's sandbox applies to it.  Each probe prints one line.
cat >"$R/run/memsnap-probe" <<'EOF' || fail "cannot write the probe"
for f in /etc/memsnap/probe /usr/probe /root/probe /var/lib/memsnap/probe /run/memsnap/probe; do
	if msg=$( { : >"$f"; } 2>&1 ); then
		echo "memsnap-probe write $f ok"; rm -f "$f"
	else
		echo "memsnap-probe write $f refused: $msg"
	fi
done
for d in /dev/null /dev/userfaultfd /dev/net/tun; do
	if msg=$( ( exec 3<>"$d" ) 2>&1 ); then
		echo "memsnap-probe open $d ok"
	else
		echo "memsnap-probe open $d refused: $msg"
	fi
done
EOF
# run_probe: restart memsnap.service with the probe, its lines in $T/probe.
run_probe() {
	local inv n=100
	nsx systemctl restart memsnap.service || fail "cannot restart memsnap.service with the probe"
	inv=$(prop InvocationID)
	while nsx journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$inv" |
	    grep '^memsnap-probe ' >"$T/probe"; [ "$(wc -l <"$T/probe")" -lt 8 ]; do
		[ "$n" -gt 0 ] || { nsx journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$inv" >&2; fail "the probe's 8 lines are not in the journal after 10 s"; }
		sleep 0.1
		n=$((n - 1))
	done
}
dropin 60-probe "ExecStartPost=/bin/sh /run/memsnap-probe"
# The control: without the unit's device policy the same probe opens
# /dev/net/tun, so what refuses it below is DevicePolicy=closed.
dropin 61-devices "DevicePolicy=auto
DeviceAllow="
run_probe
grep -q "^memsnap-probe open /dev/net/tun ok" "$T/probe" ||
	fail "with DevicePolicy=auto the unit cannot open /dev/net/tun either: $(grep tun "$T/probe")"
undropin 61-devices
run_probe
sed 's/^/    /' "$T/probe"
for f in /etc/memsnap/probe /usr/probe /root/probe; do
	grep -q "^memsnap-probe write $f refused: .*Read-only file system" "$T/probe" ||
		fail "the unit's sandbox did not refuse writing $f with EROFS: $(grep " $f " "$T/probe")"
	nsx sh -c ": >$f && rm $f" || fail "the container itself cannot write $f: the probe proves nothing"
done
for f in /var/lib/memsnap/probe /run/memsnap/probe; do
	grep -q "^memsnap-probe write $f ok" "$T/probe" || fail "the unit cannot write $f: $(grep " $f " "$T/probe")"
done
for d in /dev/null /dev/userfaultfd; do
	grep -q "^memsnap-probe open $d ok" "$T/probe" || fail "the unit cannot open $d: $(grep " $d " "$T/probe")"
done
grep -q "^memsnap-probe open /dev/net/tun refused: .*Operation not permitted" "$T/probe" ||
	fail "the unit's device cgroup did not refuse /dev/net/tun: $(grep tun "$T/probe")"
echo "ok: sandbox: /etc, /usr, /root read-only, /var/lib/memsnap and /run/memsnap writable; /dev/null and /dev/userfaultfd open, /dev/net/tun refused (EPERM), which the unit opens with DevicePolicy=auto"
undropin 60-probe
nsx rm -f /run/memsnap-probe

# ---- 5. a member of group memsnap ------------------------------------------------
USER_NAME=memtest
nsx useradd --create-home --groups memsnap "$USER_NAME" || fail "useradd $USER_NAME failed"
uid=$(nsx id -u "$USER_NAME") || fail "id -u $USER_NAME"
as_user /opt/memsnap-tests/snapwork --socket "$SOCK" --size 16M --threads 2 \
    --name real-user --json >"$T/user.json" 2>"$T/user.json.err" ||
	{ show_snapwork "$T/user.json"; fail "snapwork as $USER_NAME (uid $uid) failed"; }
[ "$(json_get "$T/user.json" completed)" = true ] || { show_snapwork "$T/user.json"; fail "the user's snapshot did not complete"; }
[ "$(json_get "$T/user.json" wrong-pages)" = 0 ] || { show_snapwork "$T/user.json"; fail "the user's snapshot restored wrong pages"; }
file=$(json_get "$T/user.json" file)
[ "$file" = "$SNAPDIR/uid-$uid/real-user.zsnap" ] || fail "the user's snapshot is $file, expected $SNAPDIR/uid-$uid/real-user.zsnap"
[ "$(nsx stat -c '%U %a' "$file")" = "$USER_NAME 600" ] || fail "$file is $(nsx stat -c '%U %a' "$file"), expected $USER_NAME 600"
[ "$(nsx stat -c '%U %a' "$SNAPDIR/uid-$uid")" = "$USER_NAME 700" ] ||
	fail "$SNAPDIR/uid-$uid is $(nsx stat -c '%U %a' "$SNAPDIR/uid-$uid"), expected $USER_NAME 700"
as_user memsnapctl verify "$file" >"$T/verify" 2>&1 || { cat "$T/verify" >&2; fail "memsnapctl verify $file as $USER_NAME failed"; }
echo "ok: $USER_NAME (uid $uid, group memsnap) snapshotted itself: $(json_get "$T/user.json" pages) pages, 0 wrong, $file ($USER_NAME, 0600), verified as $USER_NAME"

# Root attaches to the user's process: ptrace and pidfd_getfd under the
# unit's filter and capabilities.
nsx_bg "$T/sleeper" setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups sleep 600
n=100
until target=$(nsx pgrep -u "$USER_NAME" -x sleep); do
	[ "$n" -gt 0 ] || fail "the user's sleep did not start"
	sleep 0.1
	n=$((n - 1))
done
ctl -j save --pid "$target" --name attached >"$T/save.json" 2>"$T/save.err" ||
	{ cat "$T/save.err" >&2; fail "memsnapctl save --pid $target (the user's process) failed under the unit"; }
ctl verify "$SNAPDIR/attached.zsnap" >"$T/verify" 2>&1 || { cat "$T/verify" >&2; fail "memsnapctl verify $SNAPDIR/attached.zsnap failed"; }
[ "$(nsx awk '/^TracerPid:/ { print $2 }' /proc/$target/status)" = 0 ] || fail "the user's process is still traced after the attach"
nsx kill "$target"
echo "ok: root attached to the user's process $target: $SNAPDIR/attached.zsnap verified, the process untraced"
snapfiles_check "$R" "after snapshots"

# ---- 7. systemctl stop during a snapshot ----------------------------------------------
# stop_case NAME: a snapshot of the user's snapwork held by the test hook
# until released; returns once `memsnapctl list` shows it running.
hold_snapshot() {
	nsx_bg "$T/$1.json" setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups \
	    /opt/memsnap-tests/snapwork --socket "$SOCK" --size 16M --threads 2 \
	    --name "$1" --json --may-fail --test-hold '{"until": "release"}'
	HOLD_PID=$NSX_PID
	n=300
	until [ "$(snap_state "$1")" = running ]; do
		kill -0 "$HOLD_PID" 2>/dev/null || { show_snapwork "$T/$1.json"; fail "snapwork $1 ended before its snapshot ran"; }
		[ "$n" -gt 0 ] || fail "snapshot $1 is not running after 30 s ($(snap_state "$1"))"
		sleep 0.1
		n=$((n - 1))
	done
}

# a. shutdown cancel (the default).
grep -qx 'shutdown cancel' "$R/etc/memsnap/snapd.conf" || fail "snapd.conf does not say 'shutdown cancel'"
hold_snapshot stop-cancel
main=$(prop MainPID)
nsx systemctl stop memsnap.service 2>/dev/null || fail "systemctl stop memsnap.service failed during a snapshot"
t_wait_gone "$HOLD_PID" 300 || fail "snapwork did not end within 30 s of snapd stopping"
wait "$HOLD_PID" || { show_snapwork "$T/stop-cancel.json"; fail "snapwork failed its own checks after the cancel"; }
[ "$(json_get "$T/stop-cancel.json" completed)" = false ] || fail "the snapshot completed although snapd.conf says 'shutdown cancel'"
json_get "$T/stop-cancel.json" error | grep -q 'shutting down' ||
	{ show_snapwork "$T/stop-cancel.json"; fail "the snapshot did not end for snapd shutting down"; }
journal_has 'shutting down: cancelling 1 running snapshots' || fail "snapd did not log cancelling the snapshot"
[ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] ||
	fail "snapd's stop: Result $(prop Result), exit status $(prop ExecMainStatus)"
nsx test -e "$SNAPDIR/uid-$uid/stop-cancel.zsnap" && fail "the cancelled snapshot left a file"
echo "ok: stop with 'shutdown cancel': the snapshot was cancelled ($(json_get "$T/stop-cancel.json" error)), no file, snapd $main exited 0"

# b. shutdown finish: systemd waits while the snapshot runs.
sed -i 's/^shutdown cancel$/shutdown finish/' "$R/etc/memsnap/snapd.conf" || fail "cannot edit snapd.conf"
hold_snapshot stop-finish
main=$(prop MainPID)
# A root connection opened now, in the container's pid namespace, lets the
# test release the hold once snapd no longer accepts new ones.
mkfifo "$T/release" || fail "mkfifo"
nsenter -t "$NSPAWN_INIT" -p python3 - "$R$SOCK" "$T/release" >"$T/releaser" 2>&1 <<'EOF' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
def cmd(c, i):
    c["id"] = i
    f.write(json.dumps(c).encode() + b"\n")
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            return m
f.readline()
cmd({"execute": "qmp_capabilities"}, 1)
print("connected", flush=True)
open(sys.argv[2]).read()			# the test says when
snaps = cmd({"execute": "query-snapshots"}, 2)["return"]
mine = [x for x in snaps if x["name"] == "stop-finish"]
print("state", mine[-1]["state"], flush=True)
print("release", json.dumps(cmd({"execute": "test-release", "arguments": {"id": mine[-1]["id"]}}, 3)), flush=True)
EOF
REL_PID=$!
NSX_PIDS+=("$REL_PID")
t_wait_line "$T/releaser" '^connected' 100 || { cat "$T/releaser" >&2; fail "the releasing connection did not connect"; }
nsx_bg "$T/stop" systemctl stop memsnap.service
STOP_PID=$NSX_PID
journal_has 'shutting down: waiting up to 30 s for 1 running snapshots' ||
	fail "snapd did not log waiting for the running snapshot"
[ "$(prop ActiveState)" = deactivating ] || fail "memsnap.service is $(prop ActiveState) while snapd waits, expected deactivating"
kill -0 "$STOP_PID" 2>/dev/null || fail "systemctl stop returned while the snapshot was still held"
kill -0 "$HOLD_PID" 2>/dev/null || fail "snapwork ended while the snapshot was still held"
timeout 10 sh -c 'echo go >"$1"' sh "$T/release" || { cat "$T/releaser" >&2; fail "the releasing connection is gone"; }
t_wait_gone "$STOP_PID" 600 || fail "systemctl stop did not return within 60 s of the release"
wait "$STOP_PID" || { cat "$T/stop.err" >&2; fail "systemctl stop memsnap.service failed"; }
wait "$REL_PID"
grep -q '^state running' "$T/releaser" || { cat "$T/releaser" >&2; fail "the snapshot was not running when released"; }
grep -q '^release .*"return"' "$T/releaser" || { cat "$T/releaser" >&2; fail "test-release failed"; }
t_wait_gone "$HOLD_PID" 300 || fail "snapwork did not end after the snapshot finished"
wait "$HOLD_PID" || { show_snapwork "$T/stop-finish.json"; fail "snapwork failed after 'shutdown finish'"; }
[ "$(json_get "$T/stop-finish.json" completed)" = true ] || { show_snapwork "$T/stop-finish.json"; fail "the snapshot did not complete with 'shutdown finish'"; }
[ "$(json_get "$T/stop-finish.json" wrong-pages)" = 0 ] || { show_snapwork "$T/stop-finish.json"; fail "the finished snapshot restored wrong pages"; }
[ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] ||
	fail "snapd's stop: Result $(prop Result), exit status $(prop ExecMainStatus)"
nsx test -f "$SNAPDIR/uid-$uid/stop-finish.zsnap" || fail "the finished snapshot has no file"
echo "ok: stop with 'shutdown finish': systemd waited (deactivating) until the hold was released; the snapshot completed, 0 wrong pages; snapd $main exited 0"
snapfiles_check "$R" "after stopping during snapshots"

# ---- 9. removal ------------------------------------------------------------------------
undropin 50-test
ours_remove
ours_gone
snapfiles_check "$R" "after removing ours ($INSTALL)"
echo "ok: Snap's files are byte for byte as planted"

nspawn_stop || fail "the container left mounts behind"
echo "snapd under a real systemd: OK (installed with $INSTALL, exposure $exposure)"
exit 0
