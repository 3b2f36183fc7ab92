#!/bin/bash
# `make bench-s3` (and the section of `make bench` after bench-incr): a
# snapshot to S3 against the same snapshot to local disk, and against the
# same memory compressed by zstd and uploaded by s3cmd (a client we did
# not write), all in one run on the same Ceph and the same memory.
#
#	tests/bench-s3.sh [--quick] [--size SIZE] [--runs N]
#
# Starts a one-node Ceph with its radosgw (tests/ceph.sh; its OSD's block
# file and snapd's snapshot directory on the same file system), snapd
# with the shipped defaults (compression_level 3, compression_threads 2,
# buffer_size 64M, s3_part_size 64M, s3_parts_in_flight 2) and s3_url
# s3://snaps/host1, and one holdwork (tests/workload/holdwork.c): SIZE
# (default 1G) of snapbench's page content (half pseudo-random, half
# text-like: zstd -3 makes it about 67 % of its size), idle in read(2)
# throughout.  Each of --runs runs (default 3) times, in an order that
# rotates from run to run so that none always goes first:
#   disk	`memsnapctl save --pid P --maps ADDR-END --to disk`: attach,
#		arm, compress, write and fsync the file, until save returns
#		(the snapshot completed);
#   s3		the same with --to s3: the object streamed in multipart
#		parts, until CompleteMultipartUpload has answered;
#   zstd+s3cmd	the same bytes read directly from /proc/P/mem (dd bs=1M),
#		piped into `zstd -3 -T2` (snapd's level and threads), piped
#		into `s3cmd put - s3://snaps/host1/...` (s3cmd's default
#		15 MiB parts, one at a time), from the start of the read
#		until s3cmd has exited with the object complete.
# Wall clock, memsnapctl and the pipeline started by this script; nothing
# is cached or dropped on purpose (the memory is resident, the files are
# deleted after each run, the objects too, and radosgw's garbage
# collector is run (untimed) so that the OSD does not fill).  Reports the
# medians of the runs, with their spread (min-max over median: the
# machine's noise), as times, throughput (MB/s: 10^6 bytes of memory a
# second), the ratios S3/disk and snapd-S3/(zstd+s3cmd) (medians of each
# run's ratio), the sizes of the file and the objects, snapd's own arm
# and duration figures and its upload figures (parts, retries, waits,
# part-buffer memory), and the load average before and after: the
# machine is a shared 2-core VM, and other work may run beside.  The
# last line is one JSON object with every median.
#
# --quick is the smoke run: 256 MiB, one run.  Exits 77 when Ceph cannot
# be installed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph.sh"
. "$(dirname "$0")/s3snap.sh"

HOLDWORK=${HOLDWORK:-$TESTS_BIN/holdwork}
size=1G runs=3 quick=

usage() {
	echo "usage: tests/bench-s3.sh [--quick] [--size SIZE] [--runs N]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--size) [ $# -ge 2 ] || usage; size=$2; shift ;;
	--runs) [ $# -ge 2 ] || usage; runs=$2; shift ;;
	-h|--help) usage ;;
	*) echo "tests/bench-s3.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
[ -n "$quick" ] && size=256M runs=1
case $runs in ''|*[!0-9]*|0) echo "tests/bench-s3.sh: --runs $runs: not a count" >&2; usage ;; esac
[ -x "$HOLDWORK" ] || fail "$HOLDWORK is missing: build it first (make tests)"

t_init
command -v zstd >/dev/null || t_apt_install_or_skip zstd
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ceph_start
ceph_make_bucket "$S3_BUCKET"
S3=s3://$S3_BUCKET/$S3_PREFIX
snapd_config "s3_endpoint $S3_ENDPOINT" "s3_url $S3" \
    "s3_credentials $CEPH_DIR/s3-credentials"
export SNAP_S3_CONFIG=$SNAPD_CONF
snapd_start
s3_cleanup_wait 0 >/dev/null || exit 1

# The memory: holdwork, its stdin a FIFO it holds open itself.
mkfifo "$T/hold.ctl" || fail "mkfifo $T/hold.ctl"
"$HOLDWORK" --size "$size" 0<>"$T/hold.ctl" >"$T/hold.out" 2>"$T/hold.err" &
HOLD_PID=$!
t_track "$HOLD_PID"
t_wait_line "$T/hold.out" '^ready ' 1200 ||
	{ cat "$T/hold.err" >&2; fail "holdwork did not fill $size within 120 s"; }
read -r _ pid addr len <"$T/hold.out"
[ "$pid" = "$HOLD_PID" ] || fail "holdwork says pid $pid, not $HOLD_PID"
end=$(printf '0x%x' $((addr + len)))
maps=$(printf '%x-%x' "$addr" "$((addr + len))")

echo "S3 snapshots: $((len >> 20)) MiB of idle memory (holdwork pid $pid, $addr-$end), $runs runs"
echo "machine: shared 2-core VM ($(nproc) CPUs), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); load average before: $load_before"
echo "snapd: $(grep -Ev '^#|^socket|^snapshot_dir|^s3_credentials' "$SNAPD_CONF" | tr '\n' ';' | sed 's/;$//; s/;/; /g'), the rest shipped defaults"
echo "ceph: $S3_ENDPOINT, one OSD (BlueStore on a sparse file in $T, the file system of snapd's snapshot directory: $(findmnt -n -o SOURCE,FSTYPE -T "$T" | tr -s ' '))"
echo "alternative: dd if=/proc/$pid/mem bs=1M | zstd -3 -T2 | $(s3cmd --version) put - (default 15 MiB parts)"
echo

# snapd_run KIND R: memsnapctl save of the held memory to KIND (disk, s3);
# the wall time into $T/KIND-R.time, the final entry into $T/KIND-R.json.
snapd_run() {
	local kind=$1 r=$2 t0 t1
	t0=$EPOCHREALTIME
	"$MEMSNAPCTL_BIN" -j save --pid "$pid" --maps "$maps" --name "$kind-$r" \
	    --to "$kind" >"$T/$kind-$r.out" 2>"$T/$kind-$r.err" ||
		{ cat "$T/$kind-$r.err" >&2; fail "run $r: memsnapctl save --to $kind failed"; }
	t1=$EPOCHREALTIME
	echo "$t0 $t1" >"$T/$kind-$r.time"
	tail -n 1 "$T/$kind-$r.out" >"$T/$kind-$r.json"
}

# zstd_run R: the same bytes from /proc/PID/mem through zstd -3 -T2 into
# s3cmd put from stdin; the wall time into $T/zstd-R.time.
zstd_run() {
	local r=$1 t0 t1 url=$S3/zstd-$1.zst
	t0=$EPOCHREALTIME
	( set -o pipefail
	  dd if="/proc/$pid/mem" bs=1M iflag=skip_bytes,count_bytes skip=$((addr)) \
	      count="$len" status=none |
	  zstd -q -3 -T2 -c |
	  s3c --no-progress put - "$url" >"$T/zstd-$r.s3cmd" ) 2>"$T/zstd-$r.err" ||
		{ cat "$T/zstd-$r.err" >&2; fail "run $r: dd | zstd | s3cmd put - $url failed"; }
	t1=$EPOCHREALTIME
	echo "$t0 $t1" >"$T/zstd-$r.time"
}

# tidy R: the file and the objects of run R gone, their space given back
# to the OSD (radosgw's garbage collector, at once).  Untimed.
tidy() {
	local r=$1 o k
	rm -f "$SNAPD_DIR/disk-$r.zsnap"
	s3c info "$S3/zstd-$r.zst" >"$T/info-zstd-$r" 2>&1 ||
		fail "s3cmd info $S3/zstd-$r.zst: $(cat "$T/info-zstd-$r")"
	for o in "s3-$r.zsnap" "zstd-$r.zst"; do
		k=$S3_PREFIX/$o
		s3_object_size "$k" >"$T/size-$o"
		s3c del "s3://$S3_BUCKET/$k" >"$T/del.out" 2>&1 ||
			fail "s3cmd del s3://$S3_BUCKET/$k: $(cat "$T/del.out")"
	done
	radosgw_admin gc process --include-all >"$T/gc.out" 2>&1 ||
		fail "radosgw-admin gc process: $(tail -n 3 "$T/gc.out")"
}

kinds=(disk s3 zstd)
for r in $(seq 1 "$runs"); do
	order=()
	for i in 0 1 2; do
		order+=("${kinds[$(( (r - 1 + i) % 3 ))]}")
	done
	for kind in "${order[@]}"; do
		case $kind in
		disk|s3) snapd_run "$kind" "$r" ;;
		zstd) zstd_run "$r" ;;
		esac
	done
	disk_bytes=$(stat -c %s "$SNAPD_DIR/disk-$r.zsnap") || fail "run $r: no $SNAPD_DIR/disk-$r.zsnap"
	echo "$disk_bytes" >"$T/size-disk-$r"
	tidy "$r"
	echo "run $r (${order[*]}): disk $(awk '{ printf "%.2f", $2 - $1 }' "$T/disk-$r.time") s," \
	    "s3 $(awk '{ printf "%.2f", $2 - $1 }' "$T/s3-$r.time") s," \
	    "zstd+s3cmd $(awk '{ printf "%.2f", $2 - $1 }' "$T/zstd-$r.time") s"
done
[ -z "$(s3_uploads)" ] || fail "multipart uploads are left: $(s3_uploads)"
echo stop >"$T/hold.ctl"
t_wait_gone "$HOLD_PID" 1200 || fail "holdwork did not stop within 120 s"
wait "$HOLD_PID" || { cat "$T/hold.err" >&2; fail "holdwork's memory changed while held (above)"; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo

python3 - "$T" "$runs" "$len" "$S3" "$load_before" "$load_after" <<'EOF'
import json, re, statistics, sys
d, runs, size, s3 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
load = {"before": [float(x) for x in sys.argv[5].split()],
        "after": [float(x) for x in sys.argv[6].split()]}

def secs(kind, r):
    t0, t1 = open("%s/%s-%d.time" % (d, kind, r)).read().split()
    return float(t1) - float(t0)

def num(path):
    s = open(path).read().strip()
    if not s:
        sys.exit("%s is empty: an object was missing" % path)
    return int(s)

rs = []
for r in range(1, runs + 1):
    row = {"disk-s": secs("disk", r), "s3-s": secs("s3", r), "zstd-s3cmd-s": secs("zstd", r)}
    for kind in ("disk", "s3"):
        e = json.load(open("%s/%s-%d.json" % (d, kind, r)))
        if e.get("state") != "completed":
            sys.exit("run %d: the %s snapshot is %s" % (r, kind, e.get("state")))
        if e["pages-total"] * 4096 != size:
            sys.exit("run %d: the %s snapshot saved %d pages, not the %d bytes read by the pipeline"
                     % (r, kind, e["pages-total"], size))
        row[kind] = e
        reply = json.loads(open("%s/%s-%d.out" % (d, kind, r)).readline())
        row[kind + "-attach"] = reply.get("return", reply)["attach"]
    row["disk-bytes"] = num("%s/size-disk-%d" % (d, r))
    row["s3-bytes"] = num("%s/size-s3-%d.zsnap" % (d, r))
    row["zstd-bytes"] = num("%s/size-zstd-%d.zst" % (d, r))
    if row["s3-bytes"] != row["s3"]["bytes-written"]:
        sys.exit("run %d: s3cmd sees %d bytes, snapd wrote %d" % (r, row["s3-bytes"], row["s3"]["bytes-written"]))
    if row["s3"]["file"] != "%s/s3-%d.zsnap" % (s3, r):
        sys.exit("run %d: the S3 snapshot is %s" % (r, row["s3"]["file"]))
    # s3cmd's multipart ETag ends in -PARTS (a single PUT has none: 1).
    m = re.search(r"MD5 sum:\s*\S+?(?:-(\d+))?$", open("%s/info-zstd-%d" % (d, r)).read(), re.M)
    if not m:
        sys.exit("run %d: s3cmd info shows no MD5 sum of the zstd object" % r)
    row["s3cmd-parts"] = int(m.group(1) or 1)
    rs.append(row)

def med(f):
    v = sorted(f(r) for r in rs)
    m = statistics.median(v)
    return m, (v[-1] - v[0]) / m if m else 0.0

mb = size / 1e6
out = {"size": size, "runs": runs, "load-before": load["before"], "load-after": load["after"]}
print("%-22s %10s %8s %10s %14s %12s" % ("", "time, s", "spread", "MB/s", "size, MiB", "of memory"))
for key, label, sizekey in (("disk-s", "snapd to disk", "disk-bytes"),
                            ("s3-s", "snapd to S3", "s3-bytes"),
                            ("zstd-s3cmd-s", "zstd -3 -T2 | s3cmd", "zstd-bytes")):
    m, s = med(lambda r, k=key: r[k])
    b, _ = med(lambda r, k=sizekey: r[k])
    print("%-22s %10.2f %7.0f%% %10.1f %14.1f %11.1f%%" % (label, m, s * 100, mb / m, b / 2**20, 100.0 * b / size))
    out[key] = m
    out[key[:-2] + "-spread"] = s
    out[key[:-2] + "-mbps"] = mb / m
    out[sizekey] = b
ratios = {}
for key, label, a, b in (("ratio-s3-disk", "S3 / disk", "s3-s", "disk-s"),
                         ("ratio-s3-zstd-s3cmd", "snapd S3 / zstd+s3cmd", "s3-s", "zstd-s3cmd-s")):
    m, s = med(lambda r: r[a] / r[b])
    print("%-22s %10.3f %7.0f%%   (median of each run's ratio; spread over the runs)" % (label, m, s * 100))
    out[key] = m
    out[key + "-spread"] = s
for kind in ("disk", "s3"):
    pause, _ = med(lambda r: r[kind + "-attach"]["pause-us"])
    prearm, _ = med(lambda r: r[kind + "-attach"].get("prearm-pause-us", 0))
    dur, _ = med(lambda r: r[kind]["duration-us"])
    before, _ = med(lambda r: r[kind + "-s"] - r[kind]["duration-us"] / 1e6)
    print("snapd to %-4s: the process paused %.1f ms (%.1f ms more to pre-arm), armed to done %.2f s,"
          " %.2f s of the wall time before it (attach, pre-arm%s)"
          % (kind, pause / 1e3, prearm / 1e3, dur / 1e6, before, ", the upload's start" if kind == "s3" else ""))
    out[kind + "-pause-ms"] = pause / 1e3
    out[kind + "-prearm-pause-ms"] = prearm / 1e3
    out[kind + "-duration-s"] = dur / 1e6
    out[kind + "-before-armed-s"] = before
up = {k: med(lambda r, k=k: r["s3"]["upload"][k])[0]
      for k in ("parts-uploaded", "bytes-uploaded", "retries", "waits", "memory")}
print("snapd's upload: %d parts, %d retries, %d writes waited for a part buffer, %.0f MiB of part buffers (medians)"
      % (up["parts-uploaded"], up["retries"], up["waits"], up["memory"] / 2**20))
out["upload"] = up
parts, _ = med(lambda r: r["s3cmd-parts"])
print("s3cmd's upload: %d parts, one at a time" % parts)
out["s3cmd-parts"] = parts
print("load average (1, 5, 15 min): %s before, %s after; a shared 2-core VM: other work may have run beside"
      % (" ".join("%.2f" % x for x in load["before"]), " ".join("%.2f" % x for x in load["after"])))
print(json.dumps(out))
EOF
