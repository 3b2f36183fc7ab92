#!/bin/bash
# Proof 4, the readers agree with each other and with the truth: `memsnapctl
# export --raw DIR` writes each region as a file that is byte for byte the
# memory of the armed instant, which snapwork (having checked that the
# library's restore gives exactly that) dumps with --dump-expected.  The
# raw output format's own region files must be the same bytes too.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start

for format in zsnap raw; do
	out=$T/export-$format.json
	expected=$T/expected-$format
	run_snapwork "$out" --size 48M --threads 3 --pattern mixed --regions 3 \
	    --untouched 15 --zero 15 --format "$format" --name "export-$format" \
	    --dump-expected "$expected" ||
		{ show_snapwork "$out"; fail "$format: snapwork did not verify the snapshot"; }
	file=$(json_get "$out" file) || fail "$format: no file in snapwork's report"
	exported=$T/exported-$format
	msg=$("$MEMSNAPCTL_BIN" export --raw "$exported" "$file" 2>&1) ||
		fail "$format: memsnapctl export --raw $exported $file failed: $msg"
	for r in 0 1 2; do
		[ -f "$exported/$r.img" ] || fail "$format: export wrote no $exported/$r.img"
		cmp "$expected/$r.img" "$exported/$r.img" ||
			fail "$format: exported region $r differs from the memory at the armed instant"
		if [ "$format" = raw ]; then
			cmp "$expected/$r.img" "$file/$r.img" ||
				fail "raw: the snapshot's own $r.img differs from the memory at the armed instant"
		fi
	done
	echo "ok: $format: export --raw of 3 regions equals the armed-instant memory byte for byte"
done
