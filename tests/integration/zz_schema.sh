#!/bin/bash
# Every message any snapd sent during this test run is valid against
# proto/schema.json, checked with a real validator (python3-jsonschema,
# draft 2020-12).  Runs last (name order): tests/run.sh points every daemon
# of the run at one trace directory ($SNAPD_TRACE_DIR, through snapd's
# SNAPD_PROTOCOL_TRACE), where each daemon appends every message it
# receives and sends, one JSON line each.
#
# Checked, per daemon and per connection:
#   - every message sent validates against the schema's oneOf (greeting,
#     return, error, event);
#   - the first message of every connection is the greeting;
#   - every reply is paired with the command it answers (replies come in
#     command order): its id is the command's id, or absent when the
#     command had none; a line that was not a JSON object gets ParseError;
#   - a return validates against $defs/returns/COMMAND, and the command the
#     daemon accepted validates against $defs/commands/COMMAND;
#   - every event carries a timestamp (part of the schema).
# Fails listing each invalid message and why, and fails on an empty trace.
# Exit 0 pass, 77 skip (not run under tests/run.sh), 1 fail.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
schema=$TOP/proto/schema.json

[ -n "${SNAPD_TRACE_DIR:-}" ] ||
	{ echo "SKIP: SNAPD_TRACE_DIR is not set: run this through tests/run.sh"; exit 77; }
[ -d "$SNAPD_TRACE_DIR" ] || { echo "FAIL: trace directory $SNAPD_TRACE_DIR does not exist"; exit 1; }
[ -r "$schema" ] || { echo "FAIL: no schema at $schema"; exit 1; }

# Debian's python3-jsonschema is the validator the project names; use the
# system interpreter when it has it, else whichever python3 does.
py=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import jsonschema; jsonschema.Draft202012Validator' 2>/dev/null; then
		py=$p
		break
	fi
done
[ -n "$py" ] || { echo "FAIL: no python3 with jsonschema (apt-get install python3-jsonschema)"; exit 1; }

exec "$py" -W ignore - "$schema" "$SNAPD_TRACE_DIR" <<'PYEOF'
import collections, glob, json, os, sys
import jsonschema

schema_path, trace_dir = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
V = jsonschema.Draft202012Validator
V.check_schema(schema)
root = V(schema)

def sub_validator(pointer):
    # The whole document (so that every $ref resolves) with a $ref to one
    # of its definitions in place of the top-level oneOf.
    s = {k: v for k, v in schema.items() if k not in ("oneOf", "title", "description")}
    s["$ref"] = "#/$defs/" + pointer
    return V(s)

returns = {name: sub_validator("returns/" + name) for name in schema["$defs"]["returns"]}
events = {name: sub_validator("events/" + name) for name in schema["$defs"]["events"]}
kinds = {key: sub_validator(d) for key, d in (("QMP", "greeting"), ("return", "return-message"),
                                             ("error", "error-message"))}
commands = {name: sub_validator("commands/" + name) for name in schema["$defs"]["commands"]}

def why(validator, instance):
    errs = list(validator.iter_errors(instance))
    if not errs:
        return None
    e = jsonschema.exceptions.best_match(errs)
    # A oneOf failure's best match is vague: say what its closest branch
    # found wrong.
    while e.context:
        e = jsonschema.exceptions.best_match(e.context)
    where = "/".join(str(p) for p in e.absolute_path) or "(top)"
    return "at %s: %s" % (where, e.message[:300])

def why_server(m):
    # Valid against the oneOf?  If not, explain against the branch the
    # message means to be, rather than whichever the validator picked.
    if root.is_valid(m):
        return None
    if isinstance(m, dict):
        if isinstance(m.get("event"), str) and m["event"] in events:
            return why(events[m["event"]], m)
        for key, v in kinds.items():
            if key in m:
                return why(v, m)
    return why(root, m)

def short(m):
    t = json.dumps(m, separators=(",", ":"))
    return t if len(t) <= 240 else t[:240] + "..."

files = sorted(glob.glob(os.path.join(trace_dir, "*.trace")))
invalid = []
counts = collections.Counter()
seen_returns = collections.Counter()
seen_events = collections.Counter()
seen_errors = collections.Counter()
total_lines = 0

for path in files:
    pending = collections.defaultdict(collections.deque)   # conn -> commands
    nsent = collections.Counter()                          # conn -> messages sent
    name = os.path.basename(path)
    with open(path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    for lineno, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        total_lines += 1
        where = "%s:%d" % (name, lineno)
        try:
            t = json.loads(raw)
            conn, direction = t["conn"], t["dir"]
        except (ValueError, KeyError, TypeError) as e:
            invalid.append((where, raw[:200].decode("utf-8", "replace"), "trace line is not a trace record: %s" % e))
            continue
        if direction == "recv":
            counts["received"] += 1
            pending[conn].append(t)
            continue
        if direction != "send" or "msg" not in t:
            invalid.append((where, short(t), "trace record with dir %r and no msg" % direction))
            continue
        m = t["msg"]
        counts["sent"] += 1
        first = nsent[conn] == 0
        nsent[conn] += 1
        r = why_server(m)
        if r is not None:
            invalid.append((where, short(m), "not a valid server message: " + r))
            continue
        if "QMP" in m:
            counts["greeting"] += 1
            if conn == 0 or not first:
                invalid.append((where, short(m), "a greeting that is not the first message of its connection"))
            continue
        if first and conn != 0:
            invalid.append((where, short(m), "the first message of connection %d is not the greeting" % conn))
        if "event" in m:
            counts["event"] += 1
            seen_events[m["event"]] += 1
            continue
        # A reply.
        if "error" in m:
            counts["error"] += 1
            seen_errors[m["error"]["class"]] += 1
        else:
            counts["return"] += 1
        if conn == 0:
            # A peer refused at accept: no connection, no command.
            if "error" not in m or m["error"]["class"] != "Busy":
                invalid.append((where, short(m), "a refusal at accept that is not a Busy error"))
            continue
        if "error" in m and m["error"]["class"] == "MessageTooLarge":
            # Answers a message that was never complete, so never traced.
            if "id" in m:
                invalid.append((where, short(m), "MessageTooLarge carries an id it cannot know"))
            continue
        if not pending[conn]:
            invalid.append((where, short(m), "a reply on connection %d with no command to answer" % conn))
            continue
        cmd = pending[conn].popleft()
        cmsg = cmd.get("msg")
        if not isinstance(cmsg, dict):
            # Not JSON, or JSON but not an object.
            if "error" not in m or m["error"]["class"] != "ParseError":
                invalid.append((where, short(m), "the answer to %s (not a JSON object) is not ParseError" % short(cmd.get("msg", cmd.get("raw")))))
            elif "id" in m:
                invalid.append((where, short(m), "a ParseError carries an id"))
            continue
        if "id" in cmsg:
            if "id" not in m or m["id"] != cmsg["id"] or type(m["id"]) != type(cmsg["id"]):
                invalid.append((where, short(m), "the reply does not echo the command's id %s (command %s)" % (json.dumps(cmsg["id"]), short(cmsg))))
                continue
        elif "id" in m:
            invalid.append((where, short(m), "the reply has an id but its command %s had none" % short(cmsg)))
            continue
        if "return" in m:
            name_ = cmsg.get("execute")
            if not isinstance(name_, str) or name_ not in returns:
                invalid.append((where, short(m), "a return for %s, which has no return schema" % short(cmsg)))
                continue
            seen_returns[name_] += 1
            r = why(returns[name_], m["return"])
            if r is not None:
                invalid.append((where, short(m), "not a valid return of %s: %s" % (name_, r)))
            r = why(commands[name_], cmsg)
            if r is not None:
                invalid.append((where, short(cmsg), "the daemon accepted this %s, but the schema's command does not: %s" % (name_, r)))

print("trace: %d daemons, %d lines in %s" % (len(files), total_lines, trace_dir))
print("messages: %s" % ", ".join("%s %d" % kv for kv in sorted(counts.items())))
print("returns by command: %s" % (", ".join("%s %d" % kv for kv in sorted(seen_returns.items())) or "none"))
print("events: %s" % (", ".join("%s %d" % kv for kv in sorted(seen_events.items())) or "none"))
print("error classes: %s" % (", ".join("%s %d" % kv for kv in sorted(seen_errors.items())) or "none"))
if counts["sent"] == 0:
    print("FAIL: the trace holds no message sent by snapd: tracing is broken or no daemon ran")
    sys.exit(1)
if invalid:
    print("FAIL: %d invalid messages:" % len(invalid))
    for where, msg, reason in invalid[:100]:
        print("  %s: %s\n      message: %s" % (where, reason, msg))
    if len(invalid) > 100:
        print("  ... and %d more" % (len(invalid) - 100))
    sys.exit(1)
print("ok: every one of the %d messages snapd sent is valid" % counts["sent"])
sys.exit(0)
PYEOF
