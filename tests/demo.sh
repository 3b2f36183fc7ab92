#!/bin/bash
# `make demo`: snapshot a live 1 GiB workload and prove the snapshot right.
#
# Starts snapd on a private socket and directory with a throwaway
# configuration, runs snapwork (1 GiB, 4 writer threads, half random and
# half sequential writers, a 16 MiB buffer) which snapshots itself while
# writing and checks every restored page against its own record of the
# armed instant, prints the figures, runs `memsnapctl verify` on the file, and
# stops and removes everything it started.  Exits non-zero on any failure.
. "$(dirname "$0")/lib.sh"
t_init
snapd_config
echo "starting snapd (config $SNAPD_CONF, socket $SNAPD_SOCK)"
snapd_start

out=$T/demo.json
echo "running snapwork: 1 GiB, 4 writer threads (mixed random/sequential), 16 MiB buffer"
rc=0
run_snapwork "$out" --size 1G --threads 4 --pattern mixed --buffer 16M \
    --name demo || rc=$?
if ! grep -q '^{' "$out"; then
	show_snapwork "$out"
	fail "snapwork produced no report (exit $rc)"
fi

python3 - "$out" <<'PYEOF'
import json, sys
r = None
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
mib = lambda b: b / 1048576.0
rows = [
    ("snapshot", "%s (%s)" % (r["file"] or "-", "completed" if r["completed"] else "NOT completed: " + r.get("error", "?"))),
    ("memory", "%d MiB, %d writer threads, %s pattern" % (r["size-bytes"] >> 20, r["threads"], r["pattern"])),
    ("armed pause", "%d us as the application saw it (snapd armed in %d us)" % (r["armed-pause-us"], r["arm-us"])),
    ("pages", "%d (%d zero, %d lost)" % (r["pages"], r["pages-zero"], r["pages-lost"])),
    ("copied on the fault path", "%d pages (%.1f%%)" % (r["pages-faulted"], 100.0 * r["pages-faulted"] / max(r["pages"], 1))),
    ("buffer-full waits", "%d (buffer %d MiB, peak %.1f MiB)" % (r["buffer-full-waits"], r["buffer-size"] >> 20, mib(r["buffer-peak"]))),
    ("duration", "%.3f s (%.0f MiB/s)" % (r["duration-us"] / 1e6, mib(r["size-bytes"]) / max(r["duration-us"] / 1e6, 1e-6))),
    ("size on disk", "%.1f MiB (%.1f%% of memory)" % (mib(r["size-on-disk"]), 100.0 * r["size-on-disk"] / r["size-bytes"])),
    ("longest writer stall", "%d us (snapd held a fault at most %d us)" % (r["writer-stall-max-us"], r["stall-max-us"])),
    ("writes during snapshot", "%d" % r["writes-during-snapshot"]),
    ("verification", "%d wrong pages of %d restored; live memory %d wrong -> %s" % (
        r["wrong-pages"], r["workload-pages"], r["live-wrong-pages"], "PASS" if r["pass"] else "FAIL")),
]
print()
for k, v in rows:
    print("  %-26s %s" % (k + ":", v))
print()
PYEOF
[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "snapwork: the snapshot was not verified (exit $rc)"; }

file=$(json_get "$out" file) || fail "no file in snapwork's report"
echo "memsnapctl verify $file"
"$MEMSNAPCTL_BIN" verify "$file" || fail "memsnapctl verify rejected $file"
snapd_stop || fail "snapd did not stop cleanly (exit $?)"
echo "demo passed"
