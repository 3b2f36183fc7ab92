#!/bin/sh
# make-deb.sh OUTDIR: `make deb`.  Builds the Debian packages (debian/) with
# dpkg-buildpackage in a temporary copy of the source tree, so the tree
# itself is never touched (no debian/tmp, no build/ of another
# configuration, no debian/files), and puts the .deb files, the .changes
# and .buildinfo, the build log and lintian's report in OUTDIR.
#
# The copy holds what git would commit from the working tree: tracked files
# as they are now (uncommitted changes included, deleted ones left out) and
# untracked files that are not ignored; outside a git checkout, everything
# but build directories.  Fails if the build fails or lintian --pedantic
# reports any error (E:) or warning (W:); info (I:) and pedantic (P:) tags
# are listed in OUTDIR/lintian.txt, each overridden in debian/*.lintian-overrides
# with the reason.
set -eu

out=${1:?usage: make-deb.sh OUTDIR}
cd "$(dirname "$0")/.."
top=$PWD
case $out in /*) ;; *) out=$top/$out ;; esac

for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "make deb: $tool is missing (apt-get install dpkg-dev debhelper lintian, or make deps)" >&2
		exit 1
	}
done

tmp=$(mktemp -d /tmp/memsnap-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$tmp/memsnap-$version
mkdir "$src"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard --deduplicate |
	    xargs -0 sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] || continue; printf "%s\0" "$f"; done' sh |
	    tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . |
	    tar -xf - -C "$src"
fi

rm -rf "$out"
mkdir -p "$out"
# A make above us (make deb B=... SANITIZE=...) must not pass its variables
# to debian/rules' own make: the package is built from the variables
# debian/rules gives, and nothing else.
unset MAKEFLAGS MFLAGS MAKELEVEL
echo "make deb: building memsnap $version in $src (log: $out/build.log)"
(cd "$src" && dpkg-buildpackage -b -us -uc -Jauto) >"$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log" >&2
	echo "make deb: dpkg-buildpackage failed (whole log: $out/build.log)" >&2
	exit 1
}
changes=$(cd "$tmp" && ls memsnap_"$version"_*.changes)
mv "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$out"/

# --pedantic shows P: tags, -I the I: ones, --show-overrides the overridden
# ones (O:) so the report lists every tag and what became of it.
lintian --pedantic -I --show-overrides --fail-on none "$out/$changes" \
    >"$out/lintian.txt" 2>"$out/lintian.stderr" || {
	cat "$out/lintian.stderr" >&2
	echo "make deb: lintian failed to run" >&2
	exit 1
}
ls -l "$out"/*.deb | sed 's|^|make deb: |'
if grep -q '^[EW]: ' "$out/lintian.txt"; then
	grep '^[EW]: ' "$out/lintian.txt" >&2
	echo "make deb: lintian reports errors or warnings (all tags: $out/lintian.txt)" >&2
	exit 1
fi
echo "make deb: lintian --pedantic: no errors, no warnings ($(grep -c '^[IP]: ' "$out/lintian.txt") info or pedantic tags, $(grep -c '^O: ' "$out/lintian.txt") overridden; $out/lintian.txt)"
