#!/usr/bin/env python3
"""One measurement of `make bench-qemu` (tests/bench-qemu.sh), run as

  python3 tests/benchqemu.py MODE GUESTDIR OUT.json [option=value ...]

on a test guest (tests/guest/) that is already running in GUESTDIR (its
serial port in GUESTDIR/serial, QMP in GUESTDIR/qmp, QEMU's pid in
GUESTDIR/pid: tests/lib.sh's guest_start).  MODE is

  qemu-bg   QEMU's own background snapshot: migrate-set-capabilities
            background-snapshot on, max-bandwidth RATE (0: unthrottled, sent
            as 1 TiB/s), migrate to exec:cat > FILE, query-migrate polled
            until completed;
  snapd     memsnapctl -j qemu-save --qmp GUESTDIR/qmp --buffer-size BUFFER
            [--max-bandwidth RATE] (memsnapctl=, socket=, name=), followed by
            memsnapctl -j events so that the first SNAPSHOT_BUFFER_FULL is
            timed.

Options: rate=BYTES (0), buffer=SIZE (256M), warmup=SECONDS (2),
window=SECONDS (3: the guest's rate before), file=PATH (qemu-bg's output),
memsnapctl=PATH, socket=PATH, name=NAME.

Every 50 ms while it runs a sampler notes the guest's pages written (the
serial port's last progress line), QEMU's VmRSS and the machine's memory
in use (MemTotal - MemAvailable).  OUT gets one JSON object:
  writes-per-s-before     the guest's rate over `window` seconds before
  writes-per-s-during     over the whole snapshot, start to completion
  writes-per-s-until-full snapd: from the start to the first
                          SNAPSHOT_BUFFER_FULL (the whole snapshot if the
                          buffer never filled)
  seconds                 start to completion, as we saw it
  pause-ms                QEMU: query-migrate's downtime; snapd: qemu-save's
                          pause-us (stop to cont), of which arm-ms arming
  qemu-rss-peak-kib, qemu-rss-before-kib, machine-peak-extra-kib
  and snapd's own figures (buffer-full-waits, stall-max-us, ...).
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

LINE = re.compile(rb"guest: gen (\d+) page (\d+) writes (\d+) mismatches (\d+)")


def guest_writes(serial):
    """Pages written by the guest at its last progress line, or None."""
    try:
        with open(serial, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 512))
            tail = f.read()
    except OSError:
        return None
    found = LINE.findall(tail)
    return int(found[-1][2]) if found else None


def kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_used_kib():
    return kib("/proc/meminfo", "MemTotal") - kib("/proc/meminfo", "MemAvailable")


class Sampler(threading.Thread):
    def __init__(self, serial, qemu_pid, interval=0.05):
        super().__init__(daemon=True)
        self.serial, self.pid, self.interval = serial, qemu_pid, interval
        self.samples = []	# (monotonic s, writes, qemu rss KiB, used KiB)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), guest_writes(self.serial),
                                 kib("/proc/%d/status" % self.pid, "VmRSS"),
                                 mem_used_kib()))
            self.stop.wait(self.interval)

    def writes_at(self, t):
        """The guest's pages written at time t, interpolated between the
        samples around it (each sample holds the last progress line)."""
        pts = [(s[0], s[1]) for s in self.samples if s[1] is not None]
        before = [p for p in pts if p[0] <= t]
        after = [p for p in pts if p[0] >= t]
        if not before:
            return after[0][1]
        if not after:
            return before[-1][1]
        (t0, w0), (t1, w1) = before[-1], after[0]
        return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)

    def rate(self, t0, t1):
        return (self.writes_at(t1) - self.writes_at(t0)) / (t1 - t0) if t1 > t0 else 0

    def peak(self, i, t0, t1):
        vals = [s[i] for s in self.samples if t0 <= s[0] <= t1]
        return max(vals) if vals else 0

    def last_before(self, i, t):
        vals = [s[i] for s in self.samples if s[0] <= t]
        return vals[-1] if vals else 0


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(120)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = json.loads(self.f.readline())
            if "event" in m:
                continue
            if "error" in m:
                raise RuntimeError("%s: %s" % (name, m["error"].get("desc")))
            return m["return"]

    def close(self):
        self.s.close()


def run_qemu_bg(gdir, opt, res):
    q = QMP(os.path.join(gdir, "qmp"))
    rate = int(opt["rate"]) or (1 << 40)
    q.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "background-snapshot", "state": True}])
    q.cmd("migrate-set-parameters", **{"max-bandwidth": rate})
    t0 = time.monotonic()
    q.cmd("migrate", uri="exec:cat > " + opt["file"])
    while True:
        m = q.cmd("query-migrate")
        if m.get("status") in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.05)
    t1 = time.monotonic()
    q.close()
    if m["status"] != "completed":
        raise RuntimeError("QEMU's background snapshot %s: %s" %
                           (m["status"], m.get("error-desc", "")))
    res["pause-ms"] = m.get("downtime")
    res["qemu-total-time-ms"] = m.get("total-time")
    res["file-bytes"] = os.path.getsize(opt["file"])
    ram = m.get("ram", {})
    res["qemu-ram"] = {k: ram.get(k) for k in ("transferred", "normal", "duplicate", "mbps")}
    return t0, t1, None


def follow_events(cmd, seen, ready):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ready.set()
    for line in p.stdout:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "SNAPSHOT_BUFFER_FULL" and "full" not in seen:
            seen["full"] = time.monotonic()
    return p


def run_snapd(gdir, opt, res):
    ctl = [opt["memsnapctl"], "-s", opt["socket"], "-j"]
    seen, ready = {}, threading.Event()
    evproc = []
    th = threading.Thread(target=lambda: evproc.append(
        follow_events(ctl + ["events"], seen, ready)), daemon=True)
    th.start()
    ready.wait(10)
    time.sleep(0.3)		# subscribed before the save starts
    cmd = ctl + ["qemu-save", "--qmp", os.path.join(gdir, "qmp"), "--name",
                 opt["name"], "--buffer-size", opt["buffer"]]
    if int(opt["rate"]):
        cmd += ["--max-bandwidth", str(int(opt["rate"]))]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t1 = time.monotonic()
    time.sleep(0.2)
    if evproc:
        evproc[0].terminate()
    if p.returncode != 0:
        raise RuntimeError("qemu-save failed: " + p.stderr.decode(errors="replace"))
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    reply, final = lines[0], lines[-1]
    if final.get("state") != "completed":
        raise RuntimeError("the RAM snapshot did not complete: %s" % json.dumps(final))
    res["pause-ms"] = reply["pause-us"] / 1000
    res["arm-ms"] = reply.get("arm-us", 0) / 1000
    for k in ("buffer-size", "buffer-peak", "buffer-full-waits", "stall-max-us",
              "pages-total", "pages-faulted", "duration-us", "bytes-written"):
        res[k] = final.get(k)
    return t0, t1, seen.get("full")


def main(argv):
    mode, gdir, out = argv[1:4]
    opt = {"rate": "0", "buffer": "256M", "warmup": "2", "window": "3",
           "file": os.path.join(gdir, "qemu-bg.snapshot"), "name": "bench"}
    opt.update(a.split("=", 1) for a in argv[4:])
    pid = int(open(os.path.join(gdir, "pid")).read())
    s = Sampler(os.path.join(gdir, "serial"), pid)
    s.start()
    time.sleep(float(opt["warmup"]) + float(opt["window"]))
    res = {"mode": mode, "rate": int(opt["rate"])}
    tb = time.monotonic()
    res["writes-per-s-before"] = round(s.rate(tb - float(opt["window"]), tb))
    t0, t1, tfull = (run_qemu_bg if mode == "qemu-bg" else run_snapd)(gdir, opt, res)
    time.sleep(0.3)		# a progress line past the end
    s.stop.set()
    s.join()
    res["seconds"] = round(t1 - t0, 3)
    res["writes-per-s-during"] = round(s.rate(t0, t1))
    if mode == "snapd":
        res["buffer-full-after-s"] = round(tfull - t0, 3) if tfull else None
        res["writes-per-s-until-full"] = round(s.rate(t0, tfull if tfull else t1))
    res["qemu-rss-before-kib"] = s.last_before(2, t0)
    res["qemu-rss-peak-kib"] = s.peak(2, t0, t1)
    res["machine-peak-extra-kib"] = s.peak(3, t0, t1) - s.last_before(3, t0)
    with open(out, "w") as f:
        json.dump(res, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
