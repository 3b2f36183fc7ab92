#!/bin/bash
# Incremental snapshots, proven on a chain: a full, tracked snapshot and
# four incremental ones of 64 MiB that two writer threads keep changing,
# during each snapshot and between them (tests/workload/chainwork.c).
# Every link restores, following its chain to the base, to exactly the
# memory of its own armed instant (0 wrong pages), each taken with its
# buffer forced full (snapd's test hook holds its writer until a fault has
# waited for a free slot; buffer-full-waits > 0 from snapd's figures).  An
# incremental link saves only what was written since its parent: its
# pages-dirty is the hot tenth of the region, and its file a fraction of
# the base's.
#
# Then each event that changes memory without a write fault, between two
# snapshots (DONTNEED, munmap + mmap, mremap away and back, fork with the
# child writing its copy, THP split by mprotect): the next incremental
# snapshot is still exact and says what it saved whole and why.
#
# Last, what snapd refuses: an incremental from a link that is not the
# newest, with regions, after the tracking was cancelled; deleting a link
# another one depends on; a full snapshot of memory that is tracked.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "compression_threads 1"
snapd_start
CHAINWORK=$TESTS_BIN/chainwork

run_chain() {
	local out=$1 rc=0
	shift
	"$CHAINWORK" --socket "$SNAPD_SOCK" "$@" >"$out" 2>"$out.err" || rc=$?
	if [ $rc -ne 0 ]; then
		echo "--- chainwork messages:" >&2
		cat "$out.err" >&2
		echo "--- chainwork report:" >&2
		cat "$out" >&2
	fi
	return $rc
}

# ---- a chain of five, every link exact with its buffer full -------------
out=$T/chain.json
run_chain "$out" --size 64M --links 5 --threads 2 --hot 10 --buffer 64K \
    --force-full --interval 200 --name chain ||
	fail "the chain of five is not exact (see above)"
python3 - "$out" <<'EOF' || fail "the chain's figures are wrong (see above)"
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
links, pages = o["links"], o["pages"]
bad = []
if not o["exact"] or o["wrong-pages"] != 0:
    bad.append("not exact: %d wrong pages" % o["wrong-pages"])
for k, l in enumerate(links):
    c = l.get("chain")
    print("link %d: %d bytes, %d faulted, %d buffer-full waits, arm %d us, "
          "%d writes during, chain %s" % (k, l["bytes"], l["pages-faulted"],
          l["buffer-full-waits"], l["arm-us"], l["writes-during"],
          json.dumps(c)))
    if l["buffer-full-waits"] == 0:
        bad.append("link %d: the buffer never filled" % k)
    if l["wrong-pages"] or l["lost-pages"]:
        bad.append("link %d: %d wrong, %d lost" % (k, l["wrong-pages"], l["lost-pages"]))
    if c is None or c["depth"] != k:
        bad.append("link %d: depth is not %d: %s" % (k, k, c))
        continue
    if k == 0:
        continue
    if c.get("parent") != links[k - 1]["id"]:
        bad.append("link %d: parent %s, not link %d" % (k, c.get("parent"), k - 1))
    dirty, same = c["pages-dirty"], c["pages-unchanged"]
    # The hot tenth of the pages is written between two links, and
    # nothing else: at most a fifth dirty, the rest stored as the parent's.
    if not 0 < dirty <= pages // 5 or dirty + same != pages:
        bad.append("link %d: %d dirty + %d unchanged of %d pages" % (k, dirty, same, pages))
    if l["bytes"] * 3 > links[0]["bytes"]:
        bad.append("link %d: %d bytes, not a fraction of the base's %d" % (k, l["bytes"], links[0]["bytes"]))
    if c["saved-whole-count"] != 0:
        bad.append("link %d: saved whole without a reason: %s" % (k, c["saved-whole"]))
for b in bad:
    print("FAIL: " + b)
sys.exit(1 if bad else 0)
EOF

# ---- tracking-loss events between two snapshots --------------------------
for ev in dontneed munmap mremap fork thp-split; do
	extra=
	[ "$ev" = thp-split ] && extra=--thp
	out=$T/ev-$ev.json
	run_chain "$out" --size 32M --links 3 --threads 2 --hot 10 \
	    --buffer 64K --interval 100 --event "$ev" --event-link 0 \
	    --name "ev-$ev" $extra ||
		fail "$ev between two snapshots: the chain is not exact"
	python3 - "$out" "$ev" <<'EOF' || fail "$ev: the next snapshot does not say what it saved whole"
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
ev = sys.argv[2]
c = o["links"][1]["chain"]
want = {"dontneed": "discarded", "munmap": "unmapped", "mremap": "moved"}.get(ev)
reasons = sorted({w["reason"] for w in c["saved-whole"]})
print("%s: link 1 exact, %d dirty, saved whole: %s" % (ev, c["pages-dirty"], json.dumps(c["saved-whole"])))
if want is not None and want not in reasons:
    print("FAIL: %s: link 1 saved nothing whole as %s: %s" % (ev, want, reasons))
    sys.exit(1)
if want is None and c["saved-whole-count"] != 0:
    print("FAIL: %s kept tracking, yet link 1 saved ranges whole: %s" % (ev, reasons))
    sys.exit(1)
EOF
done
# ---- what snapd refuses ----------------------------------------------------
out=$T/refusals.json
run_chain "$out" --size 16M --links 3 --threads 1 --interval 50 \
    --name refuse --refusals || fail "the chain of the refusals is not exact"
python3 - "$out" <<'EOF' || fail "a refusal is missing or says the wrong thing"
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r = o["refusals"]
want = {
    "not-newest": ("InvalidParameter", "is not the newest of its chain"),
    "with-regions": ("InvalidParameter", "'regions' does not go with 'parent'"),
    "delete-parent": ("Busy", "is the parent of refuse-1.zsnap"),
    "full-while-tracked": ("", "tracks the process's writes for incremental"),
    "after-cancel": ("InvalidParameter", "no longer tracks the process's writes (tracking cancelled"),
}
bad = 0
for k, (cls, text) in want.items():
    print("%s: %s" % (k, r.get(k)))
    if not r.get(k, "").startswith(cls) or text not in r.get(k, ""):
        print("FAIL: %s: want %s ... %s" % (k, cls, text))
        bad = 1
sys.exit(bad)
EOF
snapd_alive || fail "snapd died"
echo "incremental: all checks passed"
