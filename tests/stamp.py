#!/usr/bin/env python3
"""Helpers the attach tests share (tests/integration/attach_*.sh), run as
`python3 tests/stamp.py COMMAND ...`:

  health PID [SECONDS]
      Is process PID healthy after an attach?  Not traced (TracerPid 0 in
      /proc/PID/status), no thread stopped (State t or T in any
      /proc/PID/task/*/status) after SECONDS (default 1) of samples, and
      no userfaultfd among its fds (a link to
      anon_inode:[userfaultfd] in /proc/PID/fd).  Prints one JSON line;
      exits 1 if not.

  tracer PID
      Print the pid tracing PID (TracerPid), 0 if none.

  rawsnap PID INFO DIR
      Write stampwork's data region, read through /proc/PID/mem while
      the caller keeps the process stopped, as a raw snapshot directory
      (proto/FORMAT.md, "raw"): what stampcheck reads, without snapd, so
      the checker itself can be proven against a known instant.

  corrupt DIR INFO HOW
      Damage a raw snapshot of stampwork the way a broken snapshot would
      be: "newer" puts a later stamp into one page of writer 0, "torn"
      makes one page's tail newer than its head, "untouched" writes a
      byte into the never-touched range.

  find DIR TEXT...
      Search every file under DIR (raw images) for each TEXT; prints
      one JSON line {TEXT: count}.
"""
import json
import os
import struct
import sys
import time

PAGE = 4096
MAGIC = 0x5354


def status_fields(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def uffd_fds(pid):
    n = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if "userfaultfd" in t:
                n.append(fd)
    except OSError:
        pass
    return n


def health(pid, seconds=1.0):
    end = time.monotonic() + seconds
    stopped_seen = 0
    samples = 0
    tracer = 0
    stopped = []
    while True:
        samples += 1
        st = status_fields("/proc/%d/status" % pid)
        if not st:
            print(json.dumps({"pid": pid, "alive": False}))
            return 1
        tracer = int(st.get("TracerPid", "0"))
        stopped = []
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            tasks = []
        for t in tasks:
            ts = status_fields("/proc/%d/task/%s/status" % (pid, t))
            if ts.get("State", "").startswith(("t", "T")):
                stopped.append(int(t))
        if stopped:
            stopped_seen += 1
        else:
            stopped_seen = 0
        if time.monotonic() >= end:
            break
        time.sleep(0.05)
    fds = uffd_fds(pid)
    # Judged on the last sample, SECONDS after the first: a thread still
    # stopped then was left stopped.
    ok = tracer == 0 and stopped_seen == 0 and not fds
    print(json.dumps({"pid": pid, "alive": True, "tracer": tracer,
                      "stopped-threads": stopped,
                      "stopped-samples": stopped_seen, "samples": samples,
                      "uffd-fds": fds, "healthy": ok}))
    return 0 if ok else 1


def layout(info):
    with open(info) as f:
        return json.load(f)


def rawsnap(pid, info, d):
    lay = layout(info)
    start, size = lay["region-start"], lay["region-size"]
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as m:
        m.seek(start)
        data = b""
        while len(data) < size:
            chunk = m.read(size - len(data))
            if not chunk:
                sys.exit("short read of /proc/%d/mem" % pid)
            data += chunk
    os.makedirs(d)
    with open(os.path.join(d, "0.img"), "wb") as f:
        f.write(data)
    pages = size // PAGE
    zero = sum(1 for i in range(pages)
               if data[i * PAGE:(i + 1) * PAGE].count(0) == PAGE)
    meta = {"format": "zsnap-raw", "version_major": 1, "version_minor": 0,
            "page_size": PAGE, "name": "stamp-offline", "pid": pid,
            "uid": os.getuid(), "comm": "stampwork",
            "armed_realtime_ns": time.time_ns(), "flags": 0,
            "pages_total": pages, "pages_data": pages - zero,
            "pages_zero": zero, "pages_lost": 0,
            "regions": [{"index": 0, "start": start, "length": size,
                         "name": "stamp", "file": "0.img", "lost": []}]}
    with open(os.path.join(d, "snapshot.json"), "w") as f:
        json.dump(meta, f)
    return 0


def corrupt(d, info, how):
    lay = layout(info)
    img = os.path.join(d, "0.img")
    with open(img, "r+b") as f:
        first = lay["writer-first-page"]
        if how == "untouched":
            f.seek(lay["untouched-first-page"] * PAGE + 100)
            f.write(b"\x01")
            return 0
        # Writer 0's part: find the page of its cut (the highest head).
        P = lay["pages-per-thread"]
        best, bestp = 0, 0
        for p in range(P):
            f.seek((first + p) * PAGE)
            w = struct.unpack("<Q", f.read(8))[0]
            if w >> 48 == MAGIC and (w >> 40) & 0xff == 0:
                s = w & ((1 << 40) - 1)
                if s > best:
                    best, bestp = s, p
        if best == 0:
            sys.exit("writer 0 wrote nothing")
        # A page other than the cut's, and not the one just after it.
        p = (bestp + P // 2) % P
        off = (first + p) * PAGE
        f.seek(off)
        head = struct.unpack("<Q", f.read(8))[0]
        if how == "newer":
            # Its next write, which came after the cut.
            new = head + P if head else (MAGIC << 48) | (p + 1 + P)
            f.seek(off)
            f.write(struct.pack("<Q", new))
            f.seek(off + PAGE - 8)
            f.write(struct.pack("<Q", new))
        elif how == "torn":
            new = head + P if head else (MAGIC << 48) | (p + 1 + P)
            f.seek(off + PAGE - 8)
            f.write(struct.pack("<Q", new))
        else:
            sys.exit("corrupt: newer, torn or untouched, not " + how)
    return 0


def find(d, texts):
    found = {t: 0 for t in texts}
    needles = [(t, t.encode()) for t in texts]
    keep = max(len(n) for _, n in needles) - 1
    for root, _, files in os.walk(d):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                tail = b""
                while True:
                    block = f.read(1 << 22)
                    if not block:
                        break
                    buf = tail + block
                    for t, n in needles:
                        found[t] += buf.count(n)
                        # do not count twice what the overlap held
                        found[t] -= tail.count(n)
                    tail = buf[-keep:] if keep else b""
    print(json.dumps(found))
    return 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "health" and len(args) in (1, 2):
        return health(int(args[0]), float(args[1]) if len(args) > 1 else 1.0)
    if cmd == "tracer" and len(args) == 1:
        print(int(status_fields("/proc/%s/status" % args[0])
                  .get("TracerPid", "0")))
        return 0
    if cmd == "rawsnap" and len(args) == 3:
        return rawsnap(int(args[0]), args[1], args[2])
    if cmd == "corrupt" and len(args) == 3:
        return corrupt(args[0], args[1], args[2])
    if cmd == "find" and len(args) >= 2:
        return find(args[0], args[1:])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
