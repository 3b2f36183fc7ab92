"""A raw client of snapd's control socket for the integration scripts that
play hostile or unusual peers (tests/integration/security.sh, limits.sh):
greeting and capabilities done, one command at a time, fds attached with
SCM_RIGHTS the QMP way (on the message's first byte).  Events that arrive
meanwhile are kept in .events."""
import json
import socket


class QMP:
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.events = []
        self.f.readline()
        self.cmd({"execute": "qmp_capabilities"})

    def cmd(self, obj, fds=None):
        """Send obj; return the reply, or None if snapd closed the socket."""
        data = json.dumps(obj).encode() + b"\n"
        if fds:
            socket.send_fds(self.s, [data[:1]], fds)
            data = data[1:]
        self.s.sendall(data)
        while True:
            line = self.f.readline()
            if not line:
                return None
            m = json.loads(line)
            if "event" not in m:
                return m
            self.events.append(m)
