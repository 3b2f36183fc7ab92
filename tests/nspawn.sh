# A Debian root booted with systemd as PID 1 under systemd-nspawn, for the
# tests that need a real systemd (tests/integration/systemd_real.sh).
# Sourced, not run; the caller defines fail() and skip() and sets $T.
#
#	nspawn_root			# NSPAWN_ROOT: the cached root, built if missing
#	nspawn_boot [NSPAWN-ARGS...]	# boot it (volatile: a clean root each boot)
#	nsx CMD...			# run CMD inside, as root, in a clean environment
#	nspawn_stop			# power it off and wait (also from the EXIT trap)
#
# The root is made once with `debootstrap --variant=minbase` (about 80 s,
# 300 MB) from the archive this machine's apt uses, and kept in
# $NSPAWN_CACHE (/var/cache/snapd-tests) under a name derived from the
# suite, the architecture and the package list: changing the list builds a
# new root, and the old ones are removed.  It is built in a temporary
# directory and renamed into place, so an interrupted build never leaves a
# half root behind.  Booted with --volatile=overlay, every write goes to a
# tmpfs that vanishes with the container: the cached root stays as built.
#
# This machine's PID 1 is not systemd, which shapes the nspawn options:
#   --register=no --keep-unit	no machined or host manager to register with
#   SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
#				a pure cgroup v2 tree inside; with the host's
#				mixed layout the device cgroup program of
#				DevicePolicy= is silently not attached
#   --system-call-filter=bpf	nspawn's own seccomp filter refuses bpf(2),
#				which DevicePolicy= and IPAddressDeny= need
#   --private-network		only lo inside
# The container is entered with nsenter on its PID 1 (no machinectl).

NSPAWN_CACHE=${NSPAWN_CACHE:-/var/cache/snapd-tests}
# What the root holds beyond minbase: an init, D-Bus and udev as on a
# real machine; the libraries snapd, memsnapctl and the test workloads
# link (a package's Depends, so `apt-get install ./x.deb` needs no
# network; libsnapclient-dev needs the -dev ones: S3 brought libcurl and
# expat); adduser and passwd (useradd) for a package's maintainer
# scripts and the test's user; procps for ps.
NSPAWN_PACKAGES="systemd systemd-sysv dbus udev adduser passwd procps
libsystemd0 libevent-2.1-7 libevent-core-2.1-7 libevent-pthreads-2.1-7
libjansson4 libzstd1 libjansson-dev libzstd-dev libcurl4 libexpat1
libcurl4-openssl-dev libexpat1-dev"
NSPAWN_ROOT=
NSPAWN_PID=		# systemd-nspawn, a child of the test
NSPAWN_INIT=		# the container's PID 1, as this machine numbers it
NSPAWN_LOG=

# The host's Debian suite and the archive its apt sources name for it
# (one-line sources.list entries or deb822 .sources files).
nspawn_suite() {
	. /etc/os-release 2>/dev/null
	echo "${VERSION_CODENAME:-}"
}

nspawn_mirror() {
	local suite=$1 f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++
			if ($i ~ /^\[/ || $i ~ /\]$/) i++
			if ($(i + 1) == s) { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822: paragraphs of "Key: value"; a deb paragraph whose
		# Suites holds the suite itself (not -updates, -security).
		awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^Types:/) types = $i
				if ($i ~ /^URIs:/) uris = $i
				if ($i ~ /^Suites:/) suites = $i
			}
			if (types !~ /[ \t]deb([ \t]|$)/) next
			n = split(suites, w, /[ \t]+/)
			for (j = 2; j <= n; j++) if (w[j] == s) {
				split(uris, u, /[ \t]+/); print u[2]; exit
			}
		}' "$f"
	done
}

# nspawn_root: set NSPAWN_ROOT to the cached root, debootstrapping it
# first if there is none for this package list.  Skips the test when
# debootstrap or systemd-nspawn is missing (make deps installs them) or the
# archive cannot be reached.
nspawn_root() {
	local suite arch key mirror tmp pkgs old
	for tool in debootstrap systemd-nspawn nsenter flock; do
		command -v "$tool" >/dev/null ||
			skip "$tool is not installed (make deps installs debootstrap and systemd-container)"
	done
	suite=$(nspawn_suite)
	[ -n "$suite" ] || skip "cannot tell this machine's Debian suite from /etc/os-release"
	arch=$(dpkg --print-architecture) || skip "dpkg --print-architecture failed"
	pkgs=$(echo $NSPAWN_PACKAGES | tr ' ' '\n' | sort -u | tr '\n' ',' | sed 's/,$//')
	key=$(printf 'v1 minbase %s %s %s\n' "$suite" "$arch" "$pkgs" | sha256sum | cut -c1-16)
	NSPAWN_ROOT=$NSPAWN_CACHE/root-$suite-$key
	mkdir -p -m 0755 "$NSPAWN_CACHE" || fail "mkdir $NSPAWN_CACHE"
	# Runs using a root hold a shared lock on the cache until they exit;
	# a builder holds it exclusively (it removes roots of other lists).
	exec {NSPAWN_LOCKFD}>"$NSPAWN_CACHE/lock" || fail "cannot open $NSPAWN_CACHE/lock"
	flock -s -w 900 "$NSPAWN_LOCKFD" || fail "$NSPAWN_CACHE/lock held for 15 minutes"
	if [ -f "$NSPAWN_ROOT/.snapd-tests-root" ]; then
		echo "nspawn root: $NSPAWN_ROOT (cached)"
		return 0
	fi
	flock -x -w 900 "$NSPAWN_LOCKFD" || fail "$NSPAWN_CACHE/lock held for 15 minutes"
	if [ -f "$NSPAWN_ROOT/.snapd-tests-root" ]; then
		flock -s "$NSPAWN_LOCKFD"
		echo "nspawn root: $NSPAWN_ROOT (cached)"
		return 0
	fi
	mirror=$(nspawn_mirror "$suite" | head -n 1)
	[ -n "$mirror" ] || skip "no apt source for suite $suite in /etc/apt/sources.list*"
	# Leftovers of an interrupted build, and roots of other package lists.
	for old in "$NSPAWN_CACHE"/build.* "$NSPAWN_CACHE"/root-*; do
		[ -e "$old" ] && [ "$old" != "$NSPAWN_ROOT" ] || continue
		echo "removing $old (interrupted, or another package list)"
		rm -rf --one-file-system "$old"
	done
	tmp=$(mktemp -d "$NSPAWN_CACHE/build.XXXXXX") || fail "mktemp in $NSPAWN_CACHE"
	echo "nspawn root: debootstrap --variant=minbase $suite from $mirror into $tmp (once; about 80 s)"
	local t0=$SECONDS
	if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$tmp" "$mirror" \
	    >"$T/debootstrap.log" 2>&1; then
		tail -n 20 "$T/debootstrap.log"
		rm -rf --one-file-system "$tmp"
		skip "debootstrap $suite from $mirror failed: $(tail -n 1 "$T/debootstrap.log")"
	fi
	# Nothing to download later; no machine identity of its own (a
	# volatile boot makes one up).
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
	: >"$tmp/etc/machine-id"
	echo "$pkgs" >"$tmp/.snapd-tests-root"
	mv -T "$tmp" "$NSPAWN_ROOT" || fail "cannot rename $tmp to $NSPAWN_ROOT"
	echo "nspawn root: built in $((SECONDS - t0)) s, $(du -sm "$NSPAWN_ROOT" | cut -f1) MB"
	flock -s "$NSPAWN_LOCKFD"
}

# nspawn_boot [NSPAWN-ARGS...]: boot the root (nspawn_root first) with a
# volatile overlay and wait until its systemd has finished booting.  Sets
# NSPAWN_PID, NSPAWN_INIT and NSPAWN_LOG ($T/nspawn.log: the console).
nspawn_boot() {
	local n=300 pid st
	NSPAWN_LOG=$T/nspawn.log
	SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn --quiet \
	    --directory="$NSPAWN_ROOT" --machine="snapd-test-$$" --boot \
	    --volatile=overlay --register=no --keep-unit --private-network \
	    --console=read-only "$@" </dev/null >"$NSPAWN_LOG" 2>&1 &
	NSPAWN_PID=$!
	# Its PID 1: the child of nspawn that is 1 in its own pid namespace.
	while [ -z "$NSPAWN_INIT" ]; do
		for st in /proc/[0-9]*/status; do
			awk -v p="$NSPAWN_PID" '$1 == "PPid:" && $2 != p { exit 1 }
			    $1 == "NSpid:" { exit !(NF == 3 && $3 == 1) }' "$st" 2>/dev/null || continue
			pid=${st#/proc/}
			NSPAWN_INIT=${pid%/status}
			break
		done
		[ -n "$NSPAWN_INIT" ] && break
		kill -0 "$NSPAWN_PID" 2>/dev/null ||
			{ cat "$NSPAWN_LOG" >&2; fail "systemd-nspawn exited while starting (console above)"; }
		[ "$n" -gt 0 ] || fail "systemd-nspawn started no PID 1 within 30 s"
		sleep 0.1
		n=$((n - 1))
	done
	# is-system-running --wait returns once the boot is over: running, or
	# degraded if a unit of the minimal root failed (shown, not fatal).
	st=$(timeout 120 nsenter -t "$NSPAWN_INIT" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	    systemctl is-system-running --wait 2>&1)
	case $st in
	running) ;;
	degraded) echo "container booted degraded: $(nsx systemctl --failed --no-legend --plain | tr '\n' ' ')" ;;
	*) tail -n 30 "$NSPAWN_LOG" >&2; fail "the container did not finish booting within 120 s: '$st'" ;;
	esac
	echo "container up: systemd-nspawn pid $NSPAWN_PID, its PID 1 is $NSPAWN_INIT here"
}

# nsx CMD...: run CMD in the container (every namespace of its PID 1, so
# also its pid namespace and root), as root, with a clean environment.
# The process stays in this machine's cgroup, outside the container's.
nsx() {
	nsenter -t "$NSPAWN_INIT" -a env -i \
	    PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 SYSTEMD_PAGER= \
	    SYSTEMD_COLORS=0 "$@"
}

# nsx_bg OUT CMD...: nsx CMD in the background, stdout in OUT and stderr
# in OUT.err, stdin /dev/null; sets NSX_PID and remembers it: nspawn_stop
# kills what is left (nsenter reaps its child inside, and the container's
# PID namespace cannot end while a reaper outside it is stopped).
NSX_PIDS=()
nsx_bg() {
	local out=$1
	shift
	nsx "$@" </dev/null >"$out" 2>"$out.err" &
	NSX_PID=$!
	NSX_PIDS+=("$NSX_PID")
}

# nspawn_stop: power the container off (SIGRTMIN+4 to its systemd, as
# `systemctl poweroff` inside), kill it if it is not gone within 60 s, and
# wait for systemd-nspawn.  Safe to call twice, and from the EXIT trap.
nspawn_stop() {
	local pid n
	for pid in "${NSX_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	NSX_PIDS=()
	[ -n "$NSPAWN_PID" ] || return 0
	if [ -n "$NSPAWN_INIT" ] && kill -0 "$NSPAWN_INIT" 2>/dev/null; then
		kill -s RTMIN+4 "$NSPAWN_INIT" 2>/dev/null
		n=600
		while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$n" -gt 0 ]; do
			sleep 0.1
			n=$((n - 1))
		done
		if kill -0 "$NSPAWN_PID" 2>/dev/null; then
			echo "the container did not power off within 60 s; killing it" >&2
			kill -KILL "$NSPAWN_INIT" 2>/dev/null
		fi
	fi
	n=300
	while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID" 2>/dev/null
	wait "$NSPAWN_PID" 2>/dev/null
	NSPAWN_PID= NSPAWN_INIT=
	# nspawn mounts everything in a mount namespace of its own: nothing
	# may be left in ours.
	if grep -qF " $NSPAWN_ROOT" /proc/self/mountinfo; then
		grep -F " $NSPAWN_ROOT" /proc/self/mountinfo >&2
		echo "mounts of the container root are left (above)" >&2
		return 1
	fi
	return 0
}
