#!/bin/bash
# Incremental snapshot files through memsnapctl: a chain of known content
# (a base and four deltas, written by test_chain --write with the daemon's
# own writer) is described by `memsnapctl info` link by link, in text and
# JSON; `memsnapctl verify` checks the whole chain ("chain of 5
# verified"); `memsnapctl export --raw` of every link gives exactly the
# memory at that link, region file by region file.  A broken chain (the
# parent deleted, replaced by another snapshot, a flipped byte in it) is
# refused by verify and export with a message naming the link, while info
# still describes the file and says where the chain breaks.  `memsnapctl
# merge` of every link gives a full file (no chain) that verifies and
# exports to the same memory, leaves the chain's files as they were, never
# replaces a file, and on a broken chain fails leaving nothing.  No daemon.
. "$(dirname "$0")/../lib.sh"
T=$(mktemp -d /tmp/snapd-test.XXXXXX) || fail "mktemp -d failed"
trap t_cleanup EXIT
CTL=$MEMSNAPCTL_BIN
GEN=$TESTS_BIN/test_chain
[ -x "$CTL" ] || fail "$CTL is missing: build it first (make)"
[ -x "$GEN" ] || fail "$GEN is missing: build it first (make tests)"
command -v python3 >/dev/null || fail "python3 is needed to read JSON"

C=$T/chain
mkdir "$C"
"$GEN" --write "$C" || fail "test_chain --write $C failed"

# info: the chain, every link, the counts and the whole ranges.
"$CTL" info "$C/c4.zsnap" >"$T/info.txt" 2>&1 || { cat "$T/info.txt"; fail "info c4 failed"; }
grep -q "^chain: 5 snapshots, this one 4 links from the base$" "$T/info.txt" ||
	{ cat "$T/info.txt"; fail "info does not show a chain of 5"; }
for k in 0 1 2 3; do
	grep -Eq "^ +$k +c$k\.zsnap +c$k " "$T/info.txt" ||
		{ cat "$T/info.txt"; fail "info does not list link c$k.zsnap at depth $k"; }
done
grep -Eq "^pages: .* parent$" "$T/info.txt" || fail "info does not count parent pages"
grep -Eq "^ +2 +0 +1 +untracked$" "$T/info.txt" || fail "info does not show the whole range of region 2"

"$CTL" --json info "$C/c4.zsnap" >"$T/info.json" || fail "info --json c4 failed"
python3 - "$T/info.json" <<'PYEOF' || fail "info --json c4 is not what was written"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["incremental"] is True and o["depth"] == 4, o
assert o["parent"]["file"] == "c3.zsnap" and o["parent"]["name"] == "c3", o["parent"]
assert o["parent"]["index-crc"].startswith("0x"), o["parent"]
chain = o["chain"]
assert [l["name"] for l in chain] == ["c4", "c3", "c2", "c1", "c0"], chain
assert [l["depth"] for l in chain] == [4, 3, 2, 1, 0], chain
assert [l["file"] for l in chain[1:]] == ["c3.zsnap", "c2.zsnap", "c1.zsnap", "c0.zsnap"]
assert all(l["pages-data"] + l["pages-zero"] + l["pages-lost"] + l["pages-parent"] ==
           l["pages-total"] for l in chain), chain
assert chain[-1]["pages-parent"] == 0 and o["pages-parent"] == chain[0]["pages-parent"] > 0
assert o["chain-error"] is None
assert [(w["region"], w["reason"]) for w in o["whole"]] == [(0, "untracked"), (2, "untracked")], o["whole"]
PYEOF
"$CTL" --json info "$C/c0.zsnap" >"$T/info0.json" || fail "info --json c0 failed"
python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); assert o["incremental"] is False and o["pages-parent"] == 0 and "chain" not in o, o' \
    "$T/info0.json" || fail "info --json of the base shows a chain"

# verify: every link, the whole chain.
for k in 1 2 3 4; do
	out=$("$CTL" verify "$C/c$k.zsnap") || fail "verify c$k: $out"
	echo "$out" | grep -q "; chain of $((k + 1)) verified)$" ||
		fail "verify c$k says \"$out\", not a chain of $((k + 1))"
done
out=$("$CTL" verify "$C/c0.zsnap") || fail "verify c0: $out"
echo "$out" | grep -q "chain of" && fail "verify of the base mentions a chain: $out"
"$CTL" --json verify "$C/c4.zsnap" | python3 -c 'import json, sys; o = json.load(sys.stdin); assert o["ok"] and o["chain"] == 5, o' ||
	fail "verify --json c4 does not say a chain of 5"

# FILE K WHAT: export --raw of FILE must be exactly the memory at link K.
same_memory() {
	local r lost x=$T/$(basename "$1").raw
	"$CTL" export "$1" --raw "$x" || fail "export of $3 failed"
	for r in 0 1 2; do
		cmp -s "$x/$r.img" "$C/expect-$2-$r.img" ||
			fail "export of $3: region $r differs from the memory at link $2"
	done
	lost=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["pages_lost"])' "$x/snapshot.json")
	[ "$lost" = "$(cat "$C/expect-$2.lost")" ] ||
		fail "export of $3 says $lost pages lost, the memory at link $2 had $(cat "$C/expect-$2.lost")"
	"$CTL" verify "$x" >/dev/null || fail "the export of $3 does not verify"
}

# export --raw of every link: exactly the memory at that link.
for k in 0 1 2 3 4; do
	same_memory "$C/c$k.zsnap" $k "c$k"
done

# merge of every link: one full file, verified, the same memory.
(cd "$C" && sha256sum c?.zsnap) >"$T/chain.sum"
for k in 0 1 2 3 4; do
	out=$("$CTL" merge "$C/c$k.zsnap" "$T/m$k.zsnap") || fail "merge c$k: $out"
	links="$((k + 1)) link"; [ $k -gt 0 ] && links="${links}s"
	echo "$out" | grep -q "merged $links into $T/m$k.zsnap (.*); verified$" ||
		fail "merge c$k says \"$out\""
	out=$("$CTL" verify "$T/m$k.zsnap") || fail "verify of merged c$k: $out"
	echo "$out" | grep -q "chain of" && fail "the merge of c$k still has a chain: $out"
	same_memory "$T/m$k.zsnap" $k "the merge of c$k"
done
(cd "$C" && sha256sum -c --quiet "$T/chain.sum") || fail "merge changed the chain's files"
[ "$(stat -c %a "$T/m4.zsnap")" = 600 ] || fail "the merged file is mode $(stat -c %a "$T/m4.zsnap"), not 600"
ls -a "$C" "$T" | grep -q '\.tmp-' && fail "merge left a temporary file"
out=$("$CTL" merge "$C/c4.zsnap" "$T/m0.zsnap" 2>&1) && fail "merge replaced an existing file"
echo "$out" | grep -q "already exists" || fail "merge onto a file says \"$out\""
"$CTL" --json merge "$C/c4.zsnap" "$T/mj.zsnap" >"$T/merge.json" || fail "merge --json c4 failed"
python3 - "$T/merge.json" "$(cat "$C/expect-4.lost")" <<'PYEOF' || fail "merge --json c4 is not what was merged"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["links"] == 5 and o["verified"] is True and o["pages-lost"] == int(sys.argv[2]), o
assert o["pages-total"] == o["pages-data"] + o["pages-zero"] + o["pages-lost"], o
PYEOF
echo "ok: merge of every link verifies and exports as the memory at that link"

# Broken chains: verify, export and merge refuse them naming the link; info
# still describes the file.
broken() {	# WHAT NEEDLE: c4 of $B must be refused with NEEDLE
	local out
	out=$("$CTL" verify "$B/c4.zsnap" 2>&1) && fail "$1: verify accepted c4: $out"
	echo "$out" | grep -qF -- "$2" || fail "$1: verify says \"$out\", expected \"$2\""
	out=$("$CTL" export "$B/c4.zsnap" --raw "$B/x.raw" 2>&1) && fail "$1: export succeeded"
	echo "$out" | grep -qF -- "$2" || fail "$1: export says \"$out\", expected \"$2\""
	[ -e "$B/x.raw" ] && fail "$1: export left $B/x.raw"
	ls -a "$B" | grep -q tmp && fail "$1: export left a temporary directory"
	out=$("$CTL" merge "$B/c4.zsnap" "$B/m.zsnap" 2>&1) && fail "$1: merge succeeded"
	echo "$out" | grep -qF -- "$2" || fail "$1: merge says \"$out\", expected \"$2\""
	ls -a "$B" | grep -q 'm\.zsnap' && fail "$1: merge left a file"
	echo "ok: $1: $out"
}
B=$T/missing
cp -a "$C" "$B" && rm "$B/c2.zsnap"
broken "parent deleted" "chain link c3.zsnap -> c2.zsnap: c2.zsnap is missing"
"$CTL" info "$B/c4.zsnap" >"$T/info-broken.txt" || fail "info of a file with a broken chain failed"
grep -q "^  broken: .*chain link c3.zsnap -> c2.zsnap: c2.zsnap is missing" "$T/info-broken.txt" ||
	{ cat "$T/info-broken.txt"; fail "info does not say where the chain breaks"; }
"$CTL" --json info "$B/c4.zsnap" | python3 -c 'import json, sys; o = json.load(sys.stdin); assert len(o["chain"]) == 2 and "c2.zsnap is missing" in o["chain-error"], o' ||
	fail "info --json does not show the chain up to the break"

B=$T/replaced
cp -a "$C" "$B" && cp "$C/c0.zsnap" "$B/c2.zsnap"
broken "parent replaced" "chain link c3.zsnap -> c2.zsnap: c2.zsnap is not the parent recorded"

B=$T/flipped
cp -a "$C" "$B"
size=$(stat -c %s "$B/c1.zsnap")
# A byte in the middle of c1's chunks (its header frame is far smaller).
python3 - "$B/c1.zsnap" "$((size / 2))" <<'PYEOF' || fail "cannot flip a byte"
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))
PYEOF
broken "a flipped byte in a parent" "chain link c2.zsnap -> c1.zsnap: $B/c1.zsnap: chunk"
exit 0
