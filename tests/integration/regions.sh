#!/bin/bash
# Proof 2, every kind of page is saved exactly: pages never touched before
# the snapshot (unpopulated, and written for the first time while it runs),
# pages written with zeros, several separate mappings, and a 2 MiB-aligned
# region of transparent huge pages, in both output formats (zsnap and raw).
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start

for format in zsnap raw; do
	out=$T/regions-$format.json
	if ! run_snapwork "$out" --size 96M --threads 4 --pattern mixed \
	    --regions 5 --thp --untouched 30 --zero 20 --buffer 8M \
	    --format "$format" --name "regions-$format"; then
		show_snapwork "$out"
		fail "$format: snapwork did not verify the snapshot"
	fi
	wrong=$(json_get "$out" wrong-pages) || fail "$format: no wrong-pages in the report"
	pages=$(json_get "$out" pages) || fail "$format: no pages in the report"
	wpages=$(json_get "$out" workload-pages) || fail "$format: no workload-pages"
	zero=$(json_get "$out" pages-zero) || fail "$format: no pages-zero"
	thp=$(json_get "$out" thp-bytes) || fail "$format: no thp-bytes"
	file=$(json_get "$out" file) || fail "$format: no file"
	[ "$wrong" -eq 0 ] || { show_snapwork "$out"; fail "$format: $wrong wrong pages"; }
	[ "$pages" -eq "$wpages" ] || fail "$format: snapshot has $pages pages, the workload $wpages"
	# Every page that was all zero at the armed instant (never touched,
	# written with zeros, or in a huge page around them) is a zero page
	# of the snapshot, whatever was written to it afterwards.
	azero=$(json_get "$out" armed-zero-pages) || fail "$format: no armed-zero-pages"
	[ "$zero" -eq "$azero" ] || fail "$format: $zero pages stored as zero, but $azero were zero at the armed instant"
	[ "$azero" -gt $((wpages / 3)) ] || fail "$format: only $azero of $wpages pages zero at arm: the workload did not leave pages untouched or zero"
	case $format in
	zsnap)	[ -f "$file" ] || fail "zsnap: $file is not a file"
		case $file in *.zsnap) ;; *) fail "zsnap: $file lacks the .zsnap suffix" ;; esac ;;
	raw)	[ -d "$file" ] || fail "raw: $file is not a directory"
		[ -f "$file/snapshot.json" ] || fail "raw: $file/snapshot.json is missing"
		for r in 0 1 2 3 4; do
			[ -f "$file/$r.img" ] || fail "raw: $file/$r.img is missing"
		done ;;
	esac
	if [ "$thp" -eq 0 ]; then
		echo "note: $format: no transparent huge page backed the THP region (THP disabled?)"
	fi
	echo "ok: $format: $pages pages in 5 regions saved exactly ($zero zero, THP $((thp >> 20)) MiB)"
done
