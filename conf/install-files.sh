#!/bin/sh
# install-files.sh: what `make install` and `make uninstall` do with the
# staged tree (`make stage`), so that they never touch a file they did not
# install.
#
#   install-files.sh install STAGE DESTDIR MANIFEST CONFDIR
#   install-files.sh uninstall DESTDIR MANIFEST CONFDIR
#
# STAGE holds every file at its installed path (a symlink stays a symlink).
# MANIFEST (an installed path, under DESTDIR) lists what an earlier install
# put in place, one "HASH<TAB>PATH" line each: the file's SHA-256, or
# "link:TARGET" for a symlink.  Files under CONFDIR are configuration: kept
# when present, whoever made them, and never removed.
#
# install refuses, before writing anything, when a path it would write
# exists and the manifest does not list it: that file belongs to someone
# else (another package, another daemon named snapd, an administrator).
# It replaces each file atomically (a temporary file in the same directory,
# then rename), drops the files an earlier install put in place that this
# one no longer ships, and writes the manifest last.
#
# uninstall removes each file the manifest lists whose content is still
# what was installed; a file changed since is left in place and named.
set -eu

die() {
	echo "install-files.sh: $*" >&2
	exit 1
}

# The manifest's fingerprint of a path: its SHA-256, or link:TARGET.
fingerprint() {
	if [ -L "$1" ]; then
		printf 'link:%s\n' "$(readlink "$1")"
	else
		sha256sum <"$1" | cut -d' ' -f1
	fi
}

# listed PATH: the manifest's fingerprint for PATH, empty when not listed.
listed() {
	[ -f "$MANIFEST_FILE" ] || return 0
	awk -F '\t' -v p="$1" '$2 == p { print $1; exit }' "$MANIFEST_FILE"
}

is_conf() {
	case $1 in
	"$CONFDIR"/*) return 0 ;;
	esac
	return 1
}

do_install() {
	[ -d "$STAGE" ] || die "no staged tree in $STAGE (make stage)"
	files=$(cd "$STAGE" && find . ! -type d | sed 's|^\.||' | sort)
	[ -n "$files" ] || die "the staged tree $STAGE is empty"

	# Refuse first, so that a refused install changes nothing.
	foreign=
	for f in $files; do
		d=$DESTDIR$f
		[ -e "$d" ] || [ -L "$d" ] || continue
		is_conf "$f" && continue
		[ -n "$(listed "$f")" ] && continue
		foreign="$foreign $f"
	done
	if [ -n "$foreign" ]; then
		{
			echo "make install: refusing to overwrite files it did not install:"
			for f in $foreign; do echo "    $DESTDIR$f"; done
			echo "They belong to another package or to an administrator ($DESTDIR$MANIFEST lists what"
			echo "snapd's make install put in place).  Move them away, or install with another PREFIX."
		} >&2
		exit 1
	fi

	new=$(mktemp "${TMPDIR:-/tmp}/snapd-manifest.XXXXXX") || die "mktemp failed"
	trap 'rm -f "$new"' EXIT
	for f in $files; do
		s=$STAGE$f
		d=$DESTDIR$f
		dir=$(dirname "$d")
		mkdir -p "$dir" || die "cannot create $dir"
		if is_conf "$f" && { [ -e "$d" ] || [ -L "$d" ]; }; then
			echo "keeping $d (configuration is yours)"
			# Still ours to track if an earlier install made it.
			h=$(listed "$f")
			[ -n "$h" ] && printf '%s\t%s\n' "$h" "$f" >>"$new"
			continue
		fi
		tmp=$dir/.$(basename "$f").snapd-new
		rm -f "$tmp"
		cp -P --preserve=mode "$s" "$tmp" || die "cannot copy $s to $tmp"
		mv -fT "$tmp" "$d" || { rm -f "$tmp"; die "cannot rename $tmp to $d"; }
		printf '%s\t%s\n' "$(fingerprint "$d")" "$f" >>"$new"
	done

	# Files an earlier install put in place and this one does not ship.
	if [ -f "$MANIFEST_FILE" ]; then
		awk -F '\t' '{ print $2 }' "$MANIFEST_FILE" | while read -r f; do
			printf '%s\n' "$files" | grep -qxF "$f" && continue
			remove_if_ours "$f" "$(listed "$f")"
		done
	fi

	mkdir -p "$(dirname "$MANIFEST_FILE")" ||
		die "cannot create $(dirname "$MANIFEST_FILE")"
	cp "$new" "$MANIFEST_FILE.new" && chmod 0644 "$MANIFEST_FILE.new" &&
		mv -f "$MANIFEST_FILE.new" "$MANIFEST_FILE" ||
		die "cannot write $MANIFEST_FILE"
}

# remove_if_ours PATH FINGERPRINT: remove DESTDIR/PATH if it is still what
# was installed; configuration stays.
remove_if_ours() {
	d=$DESTDIR$1
	is_conf "$1" && { echo "left $d in place (configuration is yours)"; return 0; }
	[ -e "$d" ] || [ -L "$d" ] || return 0
	if [ "$(fingerprint "$d")" = "$2" ]; then
		rm -f "$d" || die "cannot remove $d"
	else
		echo "left $d in place: it changed since it was installed" >&2
	fi
}

do_uninstall() {
	if [ ! -f "$MANIFEST_FILE" ]; then
		echo "nothing to uninstall: $MANIFEST_FILE does not exist"
		return 0
	fi
	while IFS="$(printf '\t')" read -r h f; do
		remove_if_ours "$f" "$h"
	done <"$MANIFEST_FILE"
	rm -f "$MANIFEST_FILE" || die "cannot remove $MANIFEST_FILE"
	rmdir "$(dirname "$MANIFEST_FILE")" 2>/dev/null || :
}

case ${1:-} in
install)
	[ $# -eq 5 ] || die "usage: install-files.sh install STAGE DESTDIR MANIFEST CONFDIR"
	STAGE=$2 DESTDIR=$3 MANIFEST=$4 CONFDIR=$5
	MANIFEST_FILE=$DESTDIR$MANIFEST
	do_install
	;;
uninstall)
	[ $# -eq 4 ] || die "usage: install-files.sh uninstall DESTDIR MANIFEST CONFDIR"
	DESTDIR=$2 MANIFEST=$3 CONFDIR=$4
	MANIFEST_FILE=$DESTDIR$MANIFEST
	do_uninstall
	;;
*)
	die "usage: install-files.sh install STAGE DESTDIR MANIFEST CONFDIR | uninstall DESTDIR MANIFEST CONFDIR"
	;;
esac
