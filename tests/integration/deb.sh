#!/bin/bash
# `make deb` builds the three Debian packages, lintian-clean, holding
# exactly the right files, and leaves the source tree as it was.
#
#  - `make deb` succeeds and puts memsnap, libsnapclient0 and
#    libsnapclient-dev (VERSION of the Makefile, which debian/changelog must
#    name too) in $B/deb/; the tree's `git status` is the same before and
#    after, and debian/ holds no build leftovers.
#  - `dpkg-deb -c` of each package lists exactly the expected files and
#    symlinks (multiarch library directory, man pages compressed): no
#    make-install manifest, no stray file, and nothing at a path of
#    Debian's snapd package (Snap's, tests/snapfiles.sh), such as
#    /usr/bin/snapctl or anything under /usr/lib/snapd or /var/lib/snapd.
#  - `dpkg-deb -I`: sections, Multi-Arch, libsnapclient-dev depending on
#    libsnapclient0 of the same version, /etc/memsnap/snapd.conf the one
#    conffile, a symbols file naming every exported function, maintainer
#    scripts that create the group before the socket starts, enable and
#    start memsnap.socket but neither enable nor start memsnap.service or
#    memsnap-metrics.timer (only restart them on upgrade if running), stop
#    all three on removal, and purge the
#    state, the runtime directory and the group.
#  - The packaged unit runs /usr/sbin/snapd and uses /run/memsnap and
#    /var/lib/memsnap; the .pc names the multiarch directory.
#  - lintian --pedantic (its report, $B/deb/lintian.txt) has no E: or W:,
#    and blhc finds every compile and link line built with Debian's
#    hardening flags.
#
# Installing and purging the packages for real is the nspawn test's job.
set -u

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

# The package is never built with sanitizers: `make check` proves it.
[ -n "${SANITIZE:-}" ] && skip "the package build ignores SANITIZE; the plain run checks it"
for tool in dpkg-buildpackage dh lintian blhc dpkg-deb dpkg-architecture; do
	command -v "$tool" >/dev/null ||
		fail "$tool is not installed (make deps installs it)"
done
. "$TOP/tests/snapfiles.sh"

T=$(mktemp -d /tmp/snapd-deb.XXXXXX) || fail "mktemp -d failed"
trap 'rm -rf "$T"' EXIT
OUT=$TOP/$B/deb

VERSION=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' "$TOP/Makefile")
[ -n "$VERSION" ] || fail "cannot read VERSION from $TOP/Makefile"
debversion=$(dpkg-parsechangelog -l "$TOP/debian/changelog" -S Version) ||
	fail "cannot read the version of debian/changelog"
[ "$debversion" = "$VERSION" ] ||
	fail "debian/changelog is at $debversion, the Makefile's VERSION is $VERSION: add a changelog entry"
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

# ---- make deb, and the tree untouched ---------------------------------------
ingit=
if git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	ingit=1
	git -C "$TOP" status --porcelain --untracked-files=all >"$T/status.before" ||
		fail "git status failed"
fi
t0=$(date +%s)
make -s -C "$TOP" B="$B" deb >"$T/make.log" 2>&1 || {
	tail -n 40 "$T/make.log" >&2
	fail "make deb failed (output above)"
}
echo "make deb: $(( $(date +%s) - t0 )) s"
if [ -n "$ingit" ]; then
	git -C "$TOP" status --porcelain --untracked-files=all >"$T/status.after" ||
		fail "git status failed"
	diff "$T/status.before" "$T/status.after" >&2 ||
		fail "make deb changed the source tree (git status above: < before, > after)"
fi
for f in tmp files debhelper-build-stamp memsnap libsnapclient0 \
    libsnapclient-dev .debhelper memsnap.substvars; do
	[ -e "$TOP/debian/$f" ] && fail "make deb left debian/$f in the source tree"
done

# ---- three packages ---------------------------------------------------------
for p in memsnap libsnapclient0 libsnapclient-dev; do
	[ -f "$OUT/${p}_${VERSION}_$ARCH.deb" ] ||
		fail "make deb did not build $OUT/${p}_${VERSION}_$ARCH.deb: $(ls "$OUT")"
done
# Besides them, only their automatic debug symbols (-dbgsym).
extra=$(cd "$OUT" && ls *.deb | grep -v -x -e "memsnap_${VERSION}_$ARCH.deb" \
    -e "libsnapclient0_${VERSION}_$ARCH.deb" -e "libsnapclient-dev_${VERSION}_$ARCH.deb" \
    -e "memsnap-dbgsym_${VERSION}_$ARCH.deb" -e "libsnapclient0-dbgsym_${VERSION}_$ARCH.deb")
[ -z "$extra" ] || fail "make deb built unexpected packages: $extra"

# ---- contents ----------------------------------------------------------------
# Every file and symlink (directories follow from them), as "path" or
# "path -> target".
contents() {
	dpkg-deb -c "$1" | awk '$1 !~ /^d/ {
		p = $6; sub(/^\./, "", p)
		if ($1 ~ /^l/) p = p " -> " $8
		print p }' | sort
}

cat >"$T/memsnap.expected" <<EOF
/etc/memsnap/snapd.conf
/lib/systemd/system/memsnap-metrics.service
/lib/systemd/system/memsnap-metrics.timer
/lib/systemd/system/memsnap.service
/lib/systemd/system/memsnap.socket
/lib/udev/rules.d/60-memsnap-userfaultfd.rules
/usr/bin/memsnapctl
/usr/bin/snapd-qemu-hook
/usr/lib/sysusers.d/memsnap.conf
/usr/sbin/snapd
/usr/share/doc/memsnap/README.Debian
/usr/share/doc/memsnap/changelog.gz
/usr/share/doc/memsnap/copyright
/usr/share/lintian/overrides/memsnap
/usr/share/man/man1/memsnapctl.1.gz
/usr/share/man/man1/snapd-qemu-hook.1.gz -> memsnapctl.1.gz
/usr/share/man/man5/snapd.conf.5.gz
/usr/share/man/man8/snapd.8.gz
EOF
cat >"$T/libsnapclient0.expected" <<EOF
/usr/lib/$MA/libsnapclient.so.$VERSION
/usr/lib/$MA/libsnapclient.so.0 -> libsnapclient.so.$VERSION
/usr/share/doc/libsnapclient0/changelog.gz
/usr/share/doc/libsnapclient0/copyright
EOF
cat >"$T/libsnapclient-dev.expected" <<EOF
/usr/include/procrec.h
/usr/include/snapclient.h
/usr/lib/$MA/libsnapclient.a
/usr/lib/$MA/libsnapclient.so -> libsnapclient.so.0
/usr/lib/$MA/pkgconfig/libsnapclient.pc
/usr/share/doc/libsnapclient-dev/changelog.gz
/usr/share/doc/libsnapclient-dev/copyright
/usr/share/man/man3/libsnapclient.3.gz
EOF
for p in memsnap libsnapclient0 libsnapclient-dev; do
	deb=$OUT/${p}_${VERSION}_$ARCH.deb
	sort "$T/$p.expected" >"$T/$p.want"
	contents "$deb" >"$T/$p.got" || fail "dpkg-deb -c $deb failed"
	diff "$T/$p.want" "$T/$p.got" >&2 ||
		fail "$p holds other files than expected (diff above: < expected, > in the package)"
done

# Nothing of any package, debug symbols included, at a path of Snap's
# package or daemon, or inside one of its directories; no manifest.
for deb in "$OUT"/*.deb; do
	dpkg-deb -c "$deb" | awk '{ p = $6; sub(/^\./, "", p); sub(/\/$/, "", p); print p }'
done | sort -u >"$T/allpaths"
for f in $SNAPFILES; do
	grep -qxF "$f" "$T/allpaths" && fail "a package ships $f, a path of Snap's snapd package"
done
for d in $SNAPDIRS; do
	grep -q -e "^$d\$" -e "^$d/" "$T/allpaths" &&
		fail "a package ships files in $d, Snap's directory: $(grep "^$d" "$T/allpaths" | head -n 3)"
done
grep -q -e /installed-files -e /share/memsnap "$T/allpaths" &&
	fail "a package ships make install's manifest: $(grep -e /installed-files -e /share/memsnap "$T/allpaths")"

# ---- metadata ----------------------------------------------------------------
field() {
	dpkg-deb -f "$OUT/${1}_${VERSION}_$ARCH.deb" "$2"
}
[ "$(field memsnap Source)" = "" ] || fail "memsnap's source package is $(field memsnap Source), expected memsnap"
for p in libsnapclient0 libsnapclient-dev; do
	[ "$(field $p Source)" = memsnap ] || fail "$p comes from source $(field $p Source), expected memsnap"
	[ "$(field $p Multi-Arch)" = same ] || fail "$p is not Multi-Arch: same"
done
[ "$(field libsnapclient0 Section)" = libs ] || fail "libsnapclient0 is in section $(field libsnapclient0 Section), expected libs"
[ "$(field libsnapclient-dev Section)" = libdevel ] ||
	fail "libsnapclient-dev is in section $(field libsnapclient-dev Section), expected libdevel"
echo ", $(field libsnapclient-dev Depends)," | grep -qF ", libsnapclient0 (= $VERSION)," ||
	fail "libsnapclient-dev does not depend on libsnapclient0 (= $VERSION): $(field libsnapclient-dev Depends)"
# ${shlibs:Depends} filled in: the libraries snapd and the library link.
for dep in libc6 libevent-2.1-7 libzstd1 libjansson4 libsystemd0; do
	echo ", $(field memsnap Depends)" | grep -q ", $dep[ ,(]\|, $dep\$" ||
		fail "memsnap does not depend on $dep: $(field memsnap Depends)"
done
for dep in libc6 libzstd1 libjansson4; do
	echo ", $(field libsnapclient0 Depends)" | grep -q ", $dep[ ,(]\|, $dep\$" ||
		fail "libsnapclient0 does not depend on $dep: $(field libsnapclient0 Depends)"
done
# systemd-sysusers creates the group on install (${misc:Depends}).
field memsnap Depends | grep -q "systemd | systemd-standalone-sysusers" ||
	fail "memsnap does not depend on systemd-sysusers: $(field memsnap Depends)"

C=$T/control
for p in memsnap libsnapclient0 libsnapclient-dev; do
	mkdir -p "$C/$p" && dpkg-deb -e "$OUT/${p}_${VERSION}_$ARCH.deb" "$C/$p" ||
		fail "dpkg-deb -e of $p failed"
done
[ "$(cat "$C/memsnap/conffiles")" = /etc/memsnap/snapd.conf ] ||
	fail "memsnap's conffiles are '$(cat "$C/memsnap/conffiles" 2>/dev/null)', expected /etc/memsnap/snapd.conf"
for p in libsnapclient0 libsnapclient-dev; do
	[ -e "$C/$p/conffiles" ] && fail "$p has conffiles: $(cat "$C/$p/conffiles")"
done
head -n 1 "$C/libsnapclient0/symbols" | grep -qx "libsnapclient.so.0 libsnapclient0 #MINVER#" ||
	fail "libsnapclient0's symbols file does not start 'libsnapclient.so.0 libsnapclient0 #MINVER#'"
for fn in $(sed -n 's/.*[ *]\(snap_[a-z_]*\)(.*/\1/p' "$TOP/client/lib/snapclient.h") \
    procrec_decode procrec_free procrec_state_name; do
	# Under its version node (snap_start_to: LIBSNAPCLIENT_0.4).
	grep -Eq "^ $fn@LIBSNAPCLIENT_0(\.[0-9]+)? " "$C/libsnapclient0/symbols" ||
		fail "libsnapclient0's symbols file does not list $fn"
done

# Maintainer scripts.  postinst: the group, then the socket enabled and
# started; the service neither enabled on a fresh install nor started,
# only try-restarted on upgrade.
pi=$C/memsnap/postinst
sh -n "$pi" || fail "memsnap's postinst is not valid shell"
group=$(grep -n 'systemd-sysusers .*memsnap.conf' "$pi" | head -n 1 | cut -d: -f1)
start=$(grep -n "deb-systemd-invoke start 'memsnap.socket'" "$pi" | head -n 1 | cut -d: -f1)
[ -n "$group" ] || fail "memsnap's postinst does not run systemd-sysusers memsnap.conf"
[ -n "$start" ] || fail "memsnap's postinst does not start memsnap.socket"
[ "$group" -lt "$start" ] || fail "memsnap's postinst starts the socket before creating the group"
grep -A 4 "was-enabled defaults to true" "$pi" | grep -q "enable 'memsnap.socket'" ||
	fail "memsnap's postinst does not enable memsnap.socket on install"
for u in memsnap.service memsnap-metrics.timer memsnap-metrics.service; do
	grep -A 4 "was-enabled defaults to true" "$pi" | grep -q "$u" &&
		fail "memsnap's postinst enables $u on install"
	grep "deb-systemd-invoke" "$pi" | grep "$u" | grep -qv "try-restart" &&
		fail "memsnap's postinst starts $u: $(grep deb-systemd-invoke "$pi" | grep "$u")"
done
grep -q "deb-systemd-invoke try-restart 'memsnap-metrics.timer' 'memsnap.service'" "$pi" ||
	fail "memsnap's postinst does not restart a running memsnap.service and memsnap-metrics.timer on upgrade"
grep -q "deb-systemd-invoke stop 'memsnap.socket'" "$C/memsnap/prerm" ||
	fail "memsnap's prerm does not stop memsnap.socket"
grep -q "deb-systemd-invoke stop memsnap-metrics.timer memsnap-metrics.service" "$C/memsnap/prerm" ||
	fail "memsnap's prerm does not stop memsnap-metrics.timer and its service"
grep -q "deb-systemd-invoke stop memsnap.service" "$C/memsnap/prerm" ||
	fail "memsnap's prerm does not stop memsnap.service"
pr=$C/memsnap/postrm
sh -n "$pr" || fail "memsnap's postrm is not valid shell"
for want in "rm -rf \"\${DPKG_ROOT:-}/var/lib/memsnap\" \"\${DPKG_ROOT:-}/run/memsnap\"" \
    "groupdel memsnap" "deb-systemd-helper purge"; do
	grep -qF "$want" "$pr" || fail "memsnap's postrm does not purge with: $want"
done

# ---- the packaged files' own content ----------------------------------------
X=$T/x
for p in memsnap libsnapclient-dev; do
	dpkg-deb -x "$OUT/${p}_${VERSION}_$ARCH.deb" "$X" || fail "dpkg-deb -x of $p failed"
done
unit=$X/lib/systemd/system/memsnap.service
grep -qx 'ExecStart=/usr/sbin/snapd -c /etc/memsnap/snapd.conf' "$unit" ||
	fail "the packaged memsnap.service does not run /usr/sbin/snapd -c /etc/memsnap/snapd.conf"
grep -qx 'RuntimeDirectory=memsnap' "$unit" && grep -qx 'StateDirectory=memsnap memsnap/snapshots' "$unit" ||
	fail "the packaged memsnap.service does not use /run/memsnap and /var/lib/memsnap: $(grep Directory= "$unit" | tr '\n' ' ')"
grep -q 'snapd' <(grep -e '^RuntimeDirectory=' -e '^StateDirectory=' -e '^ReadWritePaths=' "$unit") &&
	fail "the packaged memsnap.service uses a directory named snapd, Snap's"
pc=$X/usr/lib/$MA/pkgconfig/libsnapclient.pc
grep -qx "libdir=/usr/lib/$MA" "$pc" || fail "libsnapclient.pc says $(grep ^libdir= "$pc"), expected libdir=/usr/lib/$MA"
grep -qx "prefix=/usr" "$pc" || fail "libsnapclient.pc says $(grep ^prefix= "$pc"), expected prefix=/usr"

# ---- lintian, blhc -------------------------------------------------------------
L=$OUT/lintian.txt
[ -s "$L" ] || fail "make deb wrote no lintian report ($L)"
if grep '^[EW]: ' "$L" >&2; then
	fail "lintian reports errors or warnings (above; report $L)"
fi
# Every tag left is overridden, with its reason in the override file.
if grep '^[IPX]: ' "$L" >&2; then
	fail "lintian tags neither fixed nor overridden (above; report $L)"
fi
# --bindnow: hardening=+all asks for -z now too.  (PIE is the compiler's
# default on Debian, so dpkg-buildflags does not spell it out, and blhc
# does not ask for it without --all.)
blhc --bindnow "$OUT/build.log" >"$T/blhc" 2>&1 || {
	head -n 5 "$T/blhc" >&2
	fail "blhc: $(wc -l <"$T/blhc") lines of the package build lack hardening flags (first above)"
}
echo "lintian --pedantic: $(grep -c '^O: ' "$L") overridden tags, nothing else; blhc: clean"
echo "make deb: memsnap, libsnapclient0, libsnapclient-dev: OK"
exit 0
