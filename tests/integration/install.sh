#!/bin/bash
# `make install` and `make uninstall` put exactly the right files in place,
# and a program builds and runs against the installed library.
#
# Installs into a throwaway DESTDIR with PREFIX=/usr, checks every file
# (binaries, library with its soname links, static library, header,
# pkg-config file, manual pages, systemd units, udev rule, configuration),
# that the shared library exports nothing but the snap_* API, and that the
# installed unit starts the installed daemon.  Then it compiles a small C
# program with the flags pkg-config gives for the installed tree (shared and
# static), runs it with LD_LIBRARY_PATH: snap_connect() on a socket that
# does not exist must fail and snap_strerror() must say why.  A second
# install must keep an edited configuration; `make uninstall` must leave
# nothing installed but the configuration.
#
# The root already holds the files of Ubuntu's Snap package manager, whose
# daemon is also called snapd (tests/snapfiles.sh): install, reinstall and
# uninstall leave them byte for byte as they were.  A file of someone
# else's at a path make install writes makes it refuse, before it writes
# anything.
set -u

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build}
CC=${CC:-cc}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
. "$TOP/tests/snapfiles.sh"

for tool in make pkg-config "$CC" readelf nm; do
	command -v "$tool" >/dev/null || fail "$tool is needed and not installed"
done

T=$(mktemp -d /tmp/snapd-install.XXXXXX) || fail "mktemp -d failed"
trap 'rm -rf "$T"' EXIT
D=$T/dest		# DESTDIR
W=$T/work		# the test program, outside DESTDIR
mkdir -p "$D" "$W" || fail "mkdir $D $W"

# Every path `make install PREFIX=/usr` must create, relative to DESTDIR.
# SYSCONFDIR, UNITDIR and UDEVDIR do not follow PREFIX (Makefile).
VERSION=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' "$TOP/Makefile")
SOVERSION=$(sed -n 's/^SOVERSION[[:space:]]*=[[:space:]]*//p' "$TOP/Makefile")
[ -n "$VERSION" ] && [ -n "$SOVERSION" ] ||
	fail "cannot read VERSION and SOVERSION from $TOP/Makefile"
LIB=/usr/lib
FILES="
/usr/sbin/snapd
/usr/bin/memsnapctl
/usr/bin/snapd-qemu-hook
$LIB/libsnapclient.so.$VERSION
$LIB/libsnapclient.so.$SOVERSION
$LIB/libsnapclient.so
$LIB/libsnapclient.a
/usr/include/snapclient.h
/usr/include/procrec.h
$LIB/pkgconfig/libsnapclient.pc
/usr/share/man/man1/memsnapctl.1
/usr/share/man/man3/libsnapclient.3
/usr/share/man/man5/snapd.conf.5
/usr/share/man/man8/snapd.8
/lib/systemd/system/memsnap.service
/lib/systemd/system/memsnap.socket
/lib/systemd/system/memsnap-metrics.service
/lib/systemd/system/memsnap-metrics.timer
/lib/udev/rules.d/60-memsnap-userfaultfd.rules
/usr/lib/sysusers.d/memsnap.conf
/etc/memsnap/snapd.conf
/usr/share/memsnap/installed-files
"

do_make() {
	make -s -C "$TOP" B="$B" DESTDIR="$D" PREFIX=/usr "$@" \
	    >"$T/make.log" 2>&1 || {
		tail -n 30 "$T/make.log" >&2
		fail "make $* DESTDIR=$D PREFIX=/usr failed (output above)"
	}
}

snapfiles_plant "$D"
do_make install
snapfiles_check "$D" "after make install"

# ---- every file is there, with the right kind and mode ---------------------
for f in $FILES; do
	[ -e "$D$f" ] || fail "make install did not install $f"
done
for f in /usr/sbin/snapd /usr/bin/memsnapctl /usr/bin/snapd-qemu-hook; do
	[ -x "$D$f" ] || fail "$f is installed but not executable"
	[ -L "$D$f" ] && fail "$f should be a file, not a symlink"
done
for f in /usr/include/snapclient.h /usr/include/procrec.h $LIB/libsnapclient.a \
    $LIB/libsnapclient.so.$VERSION \
    /usr/share/man/man8/snapd.8 /etc/memsnap/snapd.conf \
    /lib/systemd/system/memsnap-metrics.service \
    /lib/systemd/system/memsnap-metrics.timer; do
	mode=$(stat -c %a "$D$f")
	[ "$mode" = 644 ] || fail "$f has mode $mode, expected 644"
done
for f in /usr/sbin/snapd /usr/bin/memsnapctl; do
	cmp -s "$D$f" "$TOP/$B/$(basename "$f")" ||
		fail "$f differs from the one built in $B"
done
# The hook runs the installed memsnapctl unless told otherwise.
grep -q 'MEMSNAPCTL:-/usr/bin/memsnapctl}' "$D/usr/bin/snapd-qemu-hook" ||
	fail "/usr/bin/snapd-qemu-hook does not default to /usr/bin/memsnapctl"
sh -n "$D/usr/bin/snapd-qemu-hook" || fail "/usr/bin/snapd-qemu-hook: sh -n failed"
cmp -s "$D/etc/memsnap/snapd.conf" "$TOP/conf/snapd.conf" ||
	fail "/etc/memsnap/snapd.conf differs from conf/snapd.conf"

# Soname links: libsnapclient.so -> .so.N -> .so.VERSION, and the library
# names itself .so.N, so programs linked with -lsnapclient record .so.N.
link=$(readlink "$D$LIB/libsnapclient.so")
[ "$link" = "libsnapclient.so.$SOVERSION" ] ||
	fail "libsnapclient.so points to '$link', expected libsnapclient.so.$SOVERSION"
link=$(readlink "$D$LIB/libsnapclient.so.$SOVERSION")
[ "$link" = "libsnapclient.so.$VERSION" ] ||
	fail "libsnapclient.so.$SOVERSION points to '$link', expected libsnapclient.so.$VERSION"
soname=$(readelf -d "$D$LIB/libsnapclient.so.$VERSION" |
    sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libsnapclient.so.$SOVERSION" ] ||
	fail "the library's SONAME is '$soname', expected libsnapclient.so.$SOVERSION"

# The shared library exports the snap_* API, the process record's decoder
# (procrec.h: procrec_decode, procrec_free, procrec_state_name) and nothing
# else.
nm -D --defined-only "$D$LIB/libsnapclient.so.$VERSION" >"$T/syms" ||
	fail "nm -D on the installed library failed"
awk '$2 ~ /^[TDBRVW]$/ { print $3 }' "$T/syms" | sed 's/@.*//' |
    grep -v -e '^snap_' -e '^LIBSNAPCLIENT_' -e '^procrec_decode$' \
    -e '^procrec_free$' -e '^procrec_state_name$' >"$T/extra"
[ -s "$T/extra" ] && fail "libsnapclient.so exports symbols outside the API: $(tr '\n' ' ' <"$T/extra")"
for fn in $(sed -n 's/.*[ *]\(snap_[a-z_]*\)(.*/\1/p' "$D/usr/include/snapclient.h"); do
	grep -qw "$fn" "$T/syms" ||
		fail "snapclient.h declares $fn but libsnapclient.so does not export it"
done

# pkg-config file describes this installation.
pc=$D$LIB/pkgconfig/libsnapclient.pc
grep -qx "prefix=/usr" "$pc" ||
	fail "libsnapclient.pc says $(grep '^prefix=' "$pc"), expected prefix=/usr (installed with PREFIX=/usr)"
grep -qx "Version: $VERSION" "$pc" || fail "libsnapclient.pc does not say Version: $VERSION"

# The installed unit starts the installed daemon.
execstart=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$D/lib/systemd/system/memsnap.service")
[ "$execstart" = /usr/sbin/snapd ] ||
	fail "installed memsnap.service runs '$execstart', but snapd was installed as /usr/sbin/snapd"

# ---- a program against the installed header and library --------------------
cat >"$W/connect.c" <<'EOF'
/* snap_connect() on a socket that does not exist fails, and says why. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <procrec.h>
#include <snapclient.h>

static int
check(const char *how, struct snap_client *c, int err)
{
	const char *msg = snap_strerror(NULL);

	if (c != NULL) {
		fprintf(stderr, "%s: snap_connect succeeded on a missing socket\n",
		    how);
		snap_close(c);
		return 1;
	}
	if (err != ENOENT) {
		fprintf(stderr, "%s: errno %d (%s), expected ENOENT\n", how, err,
		    strerror(err));
		return 1;
	}
	if (msg == NULL || strstr(msg, strerror(ENOENT)) == NULL) {
		fprintf(stderr, "%s: snap_strerror says \"%s\", which does not "
		    "say \"%s\"\n", how, msg ? msg : "(null)", strerror(ENOENT));
		return 1;
	}
	printf("%s: %s\n", how, msg);
	return 0;
}

int
main(int argc, char **argv)
{
	struct snap_client *c;
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: connect socket\n");
		return 2;
	}
	errno = 0;
	c = snap_connect(argv[1]);
	bad |= check("snap_connect(path)", c, errno);

	/* NULL means $SNAPD_SOCKET. */
	if (setenv("SNAPD_SOCKET", argv[1], 1) == -1) {
		perror("setenv");
		return 1;
	}
	errno = 0;
	c = snap_connect(NULL);
	bad |= check("snap_connect(NULL) with SNAPD_SOCKET", c, errno);
	/* procrec.h is installed beside it, its decoder exported. */
	if (strcmp(procrec_state_name(PROCREC_STOPPED), "stopped") != 0) {
		fprintf(stderr, "procrec_state_name(PROCREC_STOPPED) is wrong\n");
		bad = 1;
	}
	return bad;
}
EOF

export PKG_CONFIG_PATH=$D$LIB/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
pkg-config --exists libsnapclient ||
	fail "pkg-config does not find libsnapclient in $PKG_CONFIG_PATH: $(pkg-config --print-errors --exists libsnapclient 2>&1)"
cflags=$(pkg-config --cflags libsnapclient) || fail "pkg-config --cflags libsnapclient failed"
libs=$(pkg-config --libs libsnapclient) || fail "pkg-config --libs libsnapclient failed"
slibs=$(pkg-config --static --libs libsnapclient) || fail "pkg-config --static --libs libsnapclient failed"
case " $cflags $libs " in
*" -I$D/"*" -L$D/"*) ;;
*) fail "pkg-config flags do not point into the installed tree: $cflags $libs" ;;
esac

# A sanitizer build installs a sanitized library: link the program the same way.
san=
[ -n "${SANITIZE:-}" ] && san="-fsanitize=$SANITIZE"

# Use only the installed header: nothing from the source tree.
$CC $san -std=gnu11 -Wall -Wextra -Werror -o "$W/connect" "$W/connect.c" \
    $cflags $libs 2>"$W/cc.log" || {
	cat "$W/cc.log" >&2
	fail "cannot build against the installed library: $CC $cflags $libs"
}
# The static library, with the dependencies --static adds, linked
# dynamically themselves.
slibs=$(echo " $slibs " | sed 's/ -lsnapclient / -Wl,-Bstatic -lsnapclient -Wl,-Bdynamic /')
$CC $san -std=gnu11 -Wall -Wextra -Werror -o "$W/connect-static" "$W/connect.c" \
    $cflags $slibs 2>"$W/cc-static.log" || {
	cat "$W/cc-static.log" >&2
	fail "cannot link statically against the installed libsnapclient.a: $slibs"
}

export LD_LIBRARY_PATH=$D$LIB
ldd "$W/connect" | grep -q "libsnapclient.so.$SOVERSION => $D$LIB/" ||
	fail "the program does not load the installed library: $(ldd "$W/connect" | grep snapclient)"
ldd "$W/connect-static" | grep -q libsnapclient &&
	fail "the static program still needs libsnapclient.so"
for prog in connect connect-static; do
	"$W/$prog" "$T/no-such-dir/snapd.sock" >"$W/$prog.out" 2>&1 || {
		cat "$W/$prog.out" >&2
		fail "$prog: snap_connect on a missing socket did not fail as it should"
	}
	cat "$W/$prog.out"
done
unset LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

# ---- reinstalling keeps the administrator's configuration ------------------
echo "# edited by the administrator" >>"$D/etc/memsnap/snapd.conf"
do_make install
tail -n 1 "$D/etc/memsnap/snapd.conf" | grep -q "edited by the administrator" ||
	fail "a second make install overwrote /etc/memsnap/snapd.conf"

snapfiles_check "$D" "after a second make install"

# ---- uninstall leaves only the configuration -------------------------------
do_make uninstall
snapfiles_check "$D" "after make uninstall"
snap=$(for f in $SNAPFILES /usr/bin/snapctl.link; do echo "$f"; done | sort)
left=$(cd "$D" && find . ! -type d | sed 's|^\.||' | sort | comm -23 - <(echo "$snap"))
[ "$left" = /etc/memsnap/snapd.conf ] ||
	fail "make uninstall left behind: $(echo "$left" | grep -vx /etc/memsnap/snapd.conf | tr '\n' ' ')"

# ---- a file of someone else's where make install writes: refused ------------
echo "an administrator's own memsnapctl" >"$D/usr/bin/memsnapctl"
make -s -C "$TOP" B="$B" DESTDIR="$D" PREFIX=/usr install >"$T/refused.log" 2>&1 &&
	fail "make install overwrote /usr/bin/memsnapctl, which it did not install"
grep -q "refusing to overwrite files it did not install" "$T/refused.log" &&
    grep -qF "$D/usr/bin/memsnapctl" "$T/refused.log" || {
	cat "$T/refused.log" >&2
	fail "make install's refusal does not name $D/usr/bin/memsnapctl (output above)"
}
[ "$(cat "$D/usr/bin/memsnapctl")" = "an administrator's own memsnapctl" ] ||
	fail "the refused make install changed /usr/bin/memsnapctl"
[ -e "$D/usr/sbin/snapd" ] && fail "the refused make install installed /usr/sbin/snapd anyway"
rm -f "$D/usr/bin/memsnapctl"
snapfiles_check "$D" "after a refused make install"

echo "install, build against it, reinstall and uninstall: OK"
exit 0
