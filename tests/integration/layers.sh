#!/bin/bash
# The tree's layers, checked from its #include lines (STYLE.md: a folder
# per layer, a lower layer never includes a higher one, no include
# circles).  Lowest first:
#   proto/				what both sides agree on
#   daemon/base/			the log
#   daemon/format/			output formats and the sink
#   daemon/engine/			one snapshot: arm, fault, writer, buffer
#   daemon/attach/			stopping a process, injecting, choosing mappings
#   daemon/control/			socket, commands, the snapshot list, main
#   client/lib/, then client/memsnapctl/	the client side: proto/ only
# A file may include headers of its own layer and of the layers below it;
# the client side never includes a daemon header, proto/ neither.  Fails
# naming each include that breaks that, and each circle among headers.
set -u
cd "$(dirname "$0")/../.."
python3 - <<'PYEOF'
import glob, os, re, sys

order = ["proto", "daemon/base", "daemon/format", "daemon/engine",
         "daemon/attach", "daemon/control", "client/lib", "client/memsnapctl"]
rank = {layer: i for i, layer in enumerate(order)}
# The client side sits beside the daemon, not above it.
daemon = {l for l in order if l.startswith("daemon/")}

files = [f for l in order for f in glob.glob(l + "/*.[ch]")]
where = {}
for f in files:
    name = os.path.basename(f)
    if f.endswith(".h"):
        if name in where:
            sys.exit("FAIL: two headers named %s: %s and %s" % (name, where[name], f))
        where[name] = os.path.dirname(f)

bad, edges = [], {}
for f in files:
    layer = os.path.dirname(f)
    for n, line in enumerate(open(f, encoding="utf-8"), 1):
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
        if not m:
            continue
        inc = os.path.basename(m.group(1))
        if inc not in where:
            bad.append("%s:%d includes \"%s\", which is no header of the tree" % (f, n, m.group(1)))
            continue
        to = where[inc]
        if f.endswith(".h"):
            edges.setdefault(os.path.basename(f), set()).add(inc)
        if layer.startswith("client/") and to in daemon:
            bad.append("%s:%d: the client side includes the daemon's %s" % (f, n, inc))
        elif layer == "proto" and to != "proto":
            bad.append("%s:%d: proto/ includes %s/%s" % (f, n, to, inc))
        elif layer in daemon and to not in daemon and to != "proto":
            bad.append("%s:%d: the daemon includes the client's %s" % (f, n, inc))
        elif rank[to] > rank[layer]:
            bad.append("%s:%d: %s includes %s from the higher layer %s" % (f, n, layer, inc, to))

# Circles among headers (depth-first search).
state = {}
def visit(h, path):
    state[h] = 1
    for nxt in sorted(edges.get(h, ())):
        if state.get(nxt) == 1:
            bad.append("include circle: " + " -> ".join(path[path.index(nxt):] + [nxt])
                       if nxt in path else "include circle through " + nxt)
        elif nxt not in state:
            visit(nxt, path + [nxt])
    state[h] = 2
for h in sorted(edges):
    if h not in state:
        visit(h, [h])

for b in bad:
    print("FAIL: " + b)
if bad:
    sys.exit(1)
print("ok: %d files in %d layers; every include goes to its own layer or a lower one; no include circle" % (len(files), len(order)))
PYEOF
