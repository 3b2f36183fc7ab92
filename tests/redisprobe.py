#!/usr/bin/env python3
"""What the redis attach test and `make bench-redis` measure redis with,
run as `python3 tests/redisprobe.py COMMAND ...`:

  probe SOCKET OUT [INTERVAL_MS]
      Until SIGTERM: one GET at a time on its own connection to the
      redis-server at unix SOCKET, every INTERVAL_MS (default 5; 0: back to
      back), each logged in OUT as "SENT_NS LATENCY_US OK" (CLOCK_MONOTONIC;
      OK 0 when no answer came within 2 s or the connection failed: it then
      reconnects).  The latency a client sees, whatever else loads redis.

  memwatch OUT PID...
      Until SIGTERM, every 100 ms: "NS RSS_KB..." per PID (0 when gone),
      then the private memory (Private_Clean + Private_Dirty of
      smaps_rollup, KiB) of the children of the first PID: a fork child's
      copy-on-write.

  window PROBE MEMWATCH T0 T1
      One JSON line of figures for [T0, T1] (ns, CLOCK_MONOTONIC; "now"
      prints it): GETs answered, failed, latency p50/p99/max in us; the
      longest time between two answers; and, from MEMWATCH, the peak above
      the sample before T0 of the first PID's RSS, of the other PIDs' RSS
      and of the children's private memory, and the other PIDs' peak RSS,
      in KiB.

  now
      Print CLOCK_MONOTONIC in ns.
"""
import json
import os
import signal
import socket
import sys
import time

stop = False


def on_term(sig, frame):
    global stop
    stop = True


def resp_get(f, key):
    cmd = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
    f.write(cmd)
    f.flush()
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    if line.startswith(b"$") and line[1:3] != b"-1":
        n = int(line[1:])
        f.read(n + 2)
    elif line.startswith(b"-"):
        raise OSError(line.decode(errors="replace").strip())


def probe(path, out, interval_ms=5.0):
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log = open(out, "w", buffering=1 << 16)
    s = f = None
    while not stop:
        t0 = time.monotonic_ns()
        ok = 1
        try:
            if f is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2.0)
                s.connect(path)
                f = s.makefile("rwb")
            resp_get(f, b"redisprobe:key")
        except (OSError, ValueError):
            ok = 0
            try:
                s.close()
            except (OSError, AttributeError):
                pass
            s = f = None
        t1 = time.monotonic_ns()
        log.write("%d %d %d\n" % (t0, (t1 - t0) // 1000, ok))
        if not ok:
            time.sleep(0.05)
        elif interval_ms > 0:
            left = interval_ms / 1000.0 - (t1 - t0) / 1e9
            if left > 0:
                time.sleep(left)
    log.close()
    return 0


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    kids = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def private_kb(pid):
    n = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    n += int(line.split()[1])
    except OSError:
        pass
    return n


def memwatch(out, pids):
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(out, "w", buffering=1) as log:
        while not stop:
            kids = sum(private_kb(k) for k in children(pids[0]))
            log.write("%d %s %d\n" % (time.monotonic_ns(),
                      " ".join(str(rss_kb(p)) for p in pids), kids))
            time.sleep(0.1)
    return 0


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0
    i = min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def window(probe_log, mem_log, t0, t1):
    lat, fails, answers = [], 0, []
    with open(probe_log) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            sent, us, ok = int(parts[0]), int(parts[1]), int(parts[2])
            if sent < t0 or sent > t1:
                continue
            if ok:
                lat.append(us)
                answers.append(sent + us * 1000)
            else:
                fails += 1
    lat.sort()
    gap = 0
    for a, b in zip(answers, answers[1:]):
        gap = max(gap, (b - a) // 1000)
    res = {"seconds": round((t1 - t0) / 1e9, 3), "gets": len(lat),
           "failed": fails, "p50-us": pct(lat, 50), "p99-us": pct(lat, 99),
           "max-us": lat[-1] if lat else 0, "answer-gap-max-us": gap}
    base = None
    peak_first = peak_others = peak_kids = others_abs = 0
    if mem_log:
        with open(mem_log) as f:
            for line in f:
                v = [int(x) for x in line.split()]
                if len(v) < 3:
                    continue
                t, rss, kids = v[0], v[1:-1], v[-1]
                if t < t0:
                    base = rss
                    continue
                if t > t1:
                    break
                if base is None:
                    base = rss
                peak_first = max(peak_first, rss[0] - base[0])
                peak_others = max(peak_others,
                                  sum(rss[1:]) - sum(base[1:]))
                peak_kids = max(peak_kids, kids)
                others_abs = max(others_abs, sum(rss[1:]))
        res.update({"target-rss-growth-kib": peak_first,
                    "others-rss-growth-kib": peak_others,
                    "others-rss-peak-kib": others_abs,
                    "children-private-kib": peak_kids})
    print(json.dumps(res))
    return 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, a = argv[1], argv[2:]
    if cmd == "probe" and len(a) in (2, 3):
        return probe(a[0], a[1], float(a[2]) if len(a) > 2 else 5.0)
    if cmd == "memwatch" and len(a) >= 2:
        return memwatch(a[0], [int(x) for x in a[1:]])
    if cmd == "window" and len(a) == 4:
        return window(a[0], a[1] if a[1] != "-" else None, int(a[2]),
                      int(a[3]))
    if cmd == "now" and not a:
        print(time.monotonic_ns())
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
