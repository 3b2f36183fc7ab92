#!/bin/bash
# The manual pages are clean mdoc and say what the programs do.
#
#  - `mandoc -T lint -W warning` reports nothing on any of the four pages,
#    and each has the sections a reader looks for;
#  - snapd.conf(5) documents every key of conf/snapd.conf and nothing else,
#    and every key `snapd -n` prints;
#  - memsnapctl(1) documents every command `memsnapctl --help` lists, and lists no
#    command that memsnapctl does not have;
#  - snapd(8)'s SYNOPSIS has the same options as `snapd -h`, and its
#    option list describes each of them; snapd(8)'s and memsnapctl(1)'s
#    SYNOPSIS read exactly as the programs' usage lines;
#  - libsnapclient(3) documents every function of snapclient.h, and no other.
#
# The checks that need no binary run first; if snapd or memsnapctl is not
# built, the test then skips (77), saying what it could not check.
set -u

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${B:-build}
SNAPD_BIN=${SNAPD_BIN:-$TOP/$B/snapd}
MEMSNAPCTL_BIN=${MEMSNAPCTL_BIN:-$TOP/$B/memsnapctl}
MAN=$TOP/man
PAGES="snapd.8 memsnapctl.1 snapd.conf.5 libsnapclient.3"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

command -v mandoc >/dev/null || fail "mandoc is not installed (make deps installs it)"
command -v python3 >/dev/null || fail "python3 is needed to compare the lists"
T=$(mktemp -d /tmp/snapd-man.XXXXXX) || fail "mktemp -d failed"
trap 'rm -rf "$T"' EXIT

# ---- mandoc lint, sections ---------------------------------------------------
for p in $PAGES; do
	[ -f "$MAN/$p" ] || fail "man/$p does not exist"
	mandoc -T lint -W warning "$MAN/$p" >"$T/lint" 2>&1
	rc=$?
	if [ -s "$T/lint" ] || [ $rc -ne 0 ]; then
		cat "$T/lint" >&2
		fail "mandoc -T lint -W warning man/$p: exit $rc, messages above"
	fi
	sections="NAME|SYNOPSIS|DESCRIPTION|FILES|EXAMPLES|SEE ALSO"
	case $p in snapd.8|memsnapctl.1) sections="$sections|EXIT STATUS" ;; esac
	IFS='|' read -r -a want <<<"$sections"
	for s in "${want[@]}"; do
		grep -qx "\.Sh $s" "$MAN/$p" || fail "man/$p has no $s section"
	done
done
echo "mandoc lint: clean on $PAGES"

# compare WHAT A_NAME A_FILE B_NAME B_FILE: the two lists (one item a line)
# must hold the same items; says which are missing on which side.
compare() {
	python3 - "$@" <<'EOF'
import sys
what, an, af, bn, bf = sys.argv[1:6]
a = set(l.strip() for l in open(af) if l.strip())
b = set(l.strip() for l in open(bf) if l.strip())
bad = False
if not a:
    print("FAIL: no %s found in %s" % (what, an), file=sys.stderr); bad = True
if not b:
    print("FAIL: no %s found in %s" % (what, bn), file=sys.stderr); bad = True
for x in sorted(a - b):
    print("FAIL: %s %r is in %s but not in %s" % (what, x, an, bn), file=sys.stderr)
    bad = True
for x in sorted(b - a):
    print("FAIL: %s %r is in %s but not in %s" % (what, x, bn, an), file=sys.stderr)
    bad = True
if not bad:
    print("%s: %s and %s agree (%s)" % (what, an, bn, " ".join(sorted(a))))
sys.exit(1 if bad else 0)
EOF
}

# The items of the first `.Bl` list after `.Sh SECTION` (or the whole page
# when SECTION is empty) given as `.It MACRO item`.
man_items() {
	python3 - "$@" <<'EOF'
import re, sys
path, section, macro = sys.argv[1:4]
lines = open(path).read().splitlines()
if section:
    try:
        i = lines.index(".Sh " + section)
    except ValueError:
        sys.exit("%s has no section %s" % (path, section))
    lines = lines[i + 1:]
    for j, l in enumerate(lines):
        if l.startswith(".Sh "):
            lines = lines[:j]
            break
depth = 0
for l in lines:
    if l.startswith(".Bl"):
        depth += 1
    elif l.startswith(".El"):
        depth -= 1
    m = re.match(r"\.It %s (\S+)" % macro, l)
    if m and depth == 1:
        print(m.group(1))
EOF
}

# ---- configuration keys --------------------------------------------------------
CONF=$TOP/conf/snapd.conf
[ -f "$CONF" ] || fail "conf/snapd.conf does not exist"
# A key is the first word of a setting line, or of a commented-out setting:
# "#key value" or "# key value" (exactly a key and one value: quoted, or a
# word, number, size or path not ending a sentence), as opposed to a
# comment's prose such as "# disconnected (1..3600)."
python3 - "$CONF" >"$T/conf-keys" <<'EOF' || fail "cannot read the keys of conf/snapd.conf"
import re, sys
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    m = re.match(r'^\s*([a-z][a-z0-9_]*)\s+\S', line)
    if m:
        print(m.group(1))
        continue
    m = re.match(r'^#\s?([a-z][a-z0-9_]*)\s+("[^"]*"|[A-Za-z0-9/_+-][A-Za-z0-9/._+-]*(?<![.,]))\s*$', line)
    if m:
        print(m.group(1))
EOF
man_items "$MAN/snapd.conf.5" DESCRIPTION Ic >"$T/man-keys" ||
	fail "cannot read the keys of man/snapd.conf.5"
compare "configuration key" conf/snapd.conf "$T/conf-keys" \
    snapd.conf.5 "$T/man-keys" || exit 1

# ---- libsnapclient functions -------------------------------------------------
sed -n 's/.*[ *]\(snap_[a-z_]*\)(.*/\1/p' "$TOP/client/lib/snapclient.h" \
    >"$T/h-funcs"
sed -n -e 's/^\.Fn \(snap_[a-z_]*\) .*/\1/p' -e 's/^\.Fo \(snap_[a-z_]*\)$/\1/p' \
    "$MAN/libsnapclient.3" | sort -u >"$T/man-funcs"
compare "library function" snapclient.h "$T/h-funcs" \
    "libsnapclient.3 SYNOPSIS" "$T/man-funcs" || exit 1
sed -n 's/^\.Nm \(snap_[a-z_]*\).*/\1/p' "$MAN/libsnapclient.3" >"$T/man-names"
compare "library function" snapclient.h "$T/h-funcs" \
    "libsnapclient.3 NAME" "$T/man-names" || exit 1

# ---- the programs ----------------------------------------------------------
missing=
for b in "$SNAPD_BIN" "$MEMSNAPCTL_BIN"; do
	[ -x "$b" ] || missing="$missing $b"
done
if [ -n "$missing" ]; then
	echo "SKIP: not built:$missing; the checks against the programs did not run"
	exit 77
fi

# Every key snapd -n prints as its effective configuration is documented.
"$SNAPD_BIN" -n -c "$CONF" >"$T/check.out" 2>&1 || {
	cat "$T/check.out" >&2
	fail "snapd -n -c conf/snapd.conf refuses the shipped configuration"
}
grep -q "configuration OK" "$T/check.out" ||
	fail "snapd -n -c conf/snapd.conf did not say \"configuration OK\""
grep -vx "configuration OK" "$T/check.out" |
    sed -n 's/^\([a-z][a-z0-9_]*\)[[:space:]].*/\1/p' >"$T/n-keys"
compare "configuration key" "snapd -n" "$T/n-keys" snapd.conf.5 "$T/man-keys" ||
	exit 1

# memsnapctl's commands: the help lists them one a line, indented, after a line
# starting "commands" (any case); the first word of each is the command.
"$MEMSNAPCTL_BIN" --help >"$T/help" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$T/help" >&2; fail "memsnapctl --help exited $rc, expected 0"; }
awk 'tolower($0) ~ /^commands/ { on = 1; next }
     on && /^[^ \t]/ { on = 0 }
     on && /^[ \t]+[a-z][a-z-]*([ \t]|$)/ { print $1 }' "$T/help" >"$T/help-cmds"
man_items "$MAN/memsnapctl.1" COMMANDS Cm >"$T/man-cmds" ||
	fail "cannot read the commands of man/memsnapctl.1"
compare "memsnapctl command" "memsnapctl --help" "$T/help-cmds" memsnapctl.1 \
    "$T/man-cmds" || { cat "$T/help" >&2; exit 1; }

# snapd's options: `snapd -h` prints "usage: snapd [-hnV] [-c file] ...".
"$SNAPD_BIN" -h >"$T/usage" 2>&1
rc=$?
[ $rc -eq 0 ] || { cat "$T/usage" >&2; fail "snapd -h exited $rc, expected 0"; }
grep -qi "usage:" "$T/usage" || { cat "$T/usage" >&2; fail "snapd -h printed no usage line"; }
# Flags, as "x" for a flag alone and "x ARG" for one taking an argument.
python3 - "$T/usage" >"$T/usage-flags" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
line = next(l for l in text.splitlines() if "usage:" in l.lower())
for group in re.findall(r"\[-([^]]*)\]", line):
    parts = group.split()
    if len(parts) == 1:
        for c in parts[0]:
            print(c)
    else:
        print(parts[0] + " ARG")
EOF
python3 - "$MAN/snapd.8" >"$T/man-flags" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
i = lines.index(".Sh SYNOPSIS")
for l in lines[i + 1:]:
    if l.startswith(".Sh "):
        break
    m = re.match(r"\.Op Fl (\S+)( Ar \S+)?$", l)
    if not m:
        continue
    if m.group(2):
        print(m.group(1) + " ARG")
    else:
        for c in m.group(1):
            print(c)
EOF
compare "snapd option" "snapd -h" "$T/usage-flags" "snapd.8 SYNOPSIS" \
    "$T/man-flags" || { cat "$T/usage" >&2; exit 1; }
cut -d' ' -f1 "$T/man-flags" >"$T/man-flag-letters"
man_items "$MAN/snapd.8" DESCRIPTION Fl >"$T/man-flag-items"
compare "snapd option" "snapd.8 SYNOPSIS" "$T/man-flag-letters" \
    "snapd.8 option list" "$T/man-flag-items" || exit 1

# Each program's usage line is its page's SYNOPSIS, word for word.
synopsis() {		# synopsis PAGE: the SYNOPSIS as rendered, one line
	mandoc -T ascii "$1" | col -b |
	    awk '/^SYNOPSIS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' |
	    tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}
usage_line() {		# usage_line FILE: the usage line, without "usage: "
	grep -i -m1 'usage:' "$1" | sed 's/.*[Uu]sage: *//; s/ *$//' | tr -s ' '
}
"$MEMSNAPCTL_BIN" --help >"$T/ctl-usage" 2>&1
for pair in "snapd.8 $T/usage" "memsnapctl.1 $T/ctl-usage"; do
	set -- $pair
	syn=$(synopsis "$MAN/$1")
	have=$(usage_line "$2")
	[ "$syn" = "$have" ] ||
		fail "man/$1 SYNOPSIS is \"$syn\" but the program's usage is \"$have\""
	echo "usage matches man/$1: $have"
done

echo "manual pages: OK"
exit 0
