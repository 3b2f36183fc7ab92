# Ubuntu's (and Debian's) Snap package manager also names its daemon snapd.
# These helpers plant recognisable stand-ins for the files of its package
# (Debian 12's snapd 2.57.6, `dpkg -c`) and of its running daemon in a root
# directory, and later prove them untouched: same bytes, same modes, and no
# file added to or removed from Snap's directories.  Sourced, not run.
#
#	snapfiles_plant ROOT		# before anything of ours is installed
#	snapfiles_check ROOT WHEN	# after each step; fails naming the step

# Snap's files, relative to ROOT.  The first group ships in its package;
# the second its daemon makes at run time (socket and runtime directory,
# state, `snap save` snapshots).
SNAPFILES="
/lib/systemd/system/snapd.service
/lib/systemd/system/snapd.socket
/lib/systemd/system/snapd.seeded.service
/lib/systemd/system/snapd.apparmor.service
/usr/lib/snapd/snapd
/usr/lib/snapd/snapctl
/usr/bin/snap
/usr/bin/snapctl
/usr/lib/tmpfiles.d/snapd.conf
/usr/lib/environment.d/990-snapd.conf
/usr/share/man/man8/snap.8.gz
/usr/share/doc/snapd/copyright
/etc/apt/apt.conf.d/20snapd.conf
/run/snapd.socket
/run/snapd-snap.socket
/run/snapd/lock/snapd.lock
/var/lib/snapd/state.json
/var/lib/snapd/snapshots/1_core_16-2.61_x1.zip
/var/lib/snapd/snaps/core_16202.snap
/var/cache/snapd/names
"
# Directories whose whole listing must stay Snap's own.
SNAPDIRS="/usr/lib/snapd /run/snapd /var/lib/snapd /var/cache/snapd /usr/share/doc/snapd"

snapfiles_plant() {
	local root=$1 f
	for f in $SNAPFILES; do
		mkdir -p "$root$(dirname "$f")" || fail "mkdir for Snap's $f"
		[ -e "$root$f" ] && fail "$root$f exists before Snap's stand-in was planted"
		# A comment in each file's own syntax, so that the programs
		# that read them (apt, systemd, tmpfiles) take them in their stride.
		c='#'
		case $f in /etc/apt/*) c=// ;; esac
		printf '%s Snap package manager file %s: not snapd the live-snapshot daemon\n' \
		    "$c" "$f" >"$root$f" || fail "cannot plant Snap's $f"
	done
	chmod 0755 "$root/usr/lib/snapd/snapd" "$root/usr/bin/snap" "$root/usr/lib/snapd/snapctl"
	ln -sf ../lib/snapd/snapctl "$root/usr/bin/snapctl.link" || fail "ln"
	snapfiles_listing "$root" >"${T:?}/snapfiles.before" ||
		fail "cannot list Snap's files in $root"
}

# Every Snap file and directory entry with its mode and SHA-256.
snapfiles_listing() {
	local root=$1 f
	{
		for f in $SNAPFILES /usr/bin/snapctl.link; do
			echo "$f"
		done
		for f in $SNAPDIRS; do
			(cd "$root" && find ".$f" | sed 's|^\.||')
		done
	} | sort -u | while read -r f; do
		if [ -L "$root$f" ]; then
			echo "$f link $(readlink "$root$f")"
		elif [ -f "$root$f" ]; then
			echo "$f $(stat -c %a "$root$f") $(sha256sum <"$root$f" | cut -d' ' -f1)"
		elif [ -d "$root$f" ]; then
			echo "$f dir $(stat -c %a "$root$f")"
		else
			echo "$f missing"
		fi
	done
}

snapfiles_check() {
	local root=$1 when=$2
	snapfiles_listing "$root" >"${T:?}/snapfiles.now" ||
		fail "cannot list Snap's files in $root $when"
	diff "${T:?}/snapfiles.before" "${T:?}/snapfiles.now" >&2 ||
		fail "Snap's files changed $when (diff above: < before, > now)"
}
