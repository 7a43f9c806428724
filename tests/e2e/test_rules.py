#!/usr/bin/env python3
"""Trigger rules ([rule NAME] sections, lib/ruleengine): real targets
(tests/targets/ruletarget) that spin, allocate, start threads and open fds
after a delay, a real responder sampling /proc every 200 ms behind real
nginx, the dumps it takes judged in the store and by gdb, and the states
GET /api/rules shows. docs/RULES.md says what is promised."""
import calendar
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import dumputil as du  # noqa: E402

RULETARGET = os.path.join(h.BUILDDIR, "tests", "targets", "ruletarget")
PERIOD_MS = 200
# What the scheduler of a loaded test machine may add to "for + one period"
# (a sample is a pass over /proc; the responder's thread may wait for a CPU).
SLACK_MS = 700


class RT:
    """A running ruletarget; .tag is in its command line (the rules' filter)."""

    def __init__(self, delay_ms, what, *args, tag=None):
        if not os.access(RULETARGET, os.X_OK):
            raise AssertionError("%s is not built (make check builds it)" % RULETARGET)
        self.tag = tag or "rt-%08x" % random.getrandbits(32)
        self.proc = h.spawn([RULETARGET, str(delay_ms), what] + [str(a) for a in args] +
                            [self.tag])
        words = h.read_line(self.proc).split()
        assert words[0] == "ready", words
        self.pid = int(words[1])
        self.go_ms = None

    def wait_go(self, timeout=20):
        """The wall clock (ms) at which it began to act."""
        words = h.read_line(self.proc, timeout).split()
        assert words[0] == "go", words
        self.go_ms = int(words[1])
        return self.go_ms

    def kill(self):
        h.kill_tree(self.proc)


def tag():
    return "rt-%08x" % random.getrandbits(32)


class RulesStack:
    """A responder sampling every PERIOD_MS with rules (config text) in a
    second --config file and a store of its own; .st the Stack, .store the
    store's directory. A context manager (removes the store at the end)."""

    def __init__(self, rules, extra=(), store=True):
        self.tmp = tempfile.mkdtemp(prefix="pd-e2e-rules-")
        self.store = os.path.join(self.tmp, "store")
        lines = ["rules_interval_ms = %d" % PERIOD_MS, "max_actions = 2"] + list(extra)
        if store:
            lines.append("store_dir = " + self.store)
        self.st = h.Stack(config_lines=lines, config_files=[rules])

    def __enter__(self):
        self.st.start()
        return self

    def __exit__(self, et, ev, tb):
        try:
            self.st.__exit__(et, ev, tb)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def stored(st, rule_name=None):
    """The store's entries (GET /api/dumps), oldest first, of one rule."""
    out = [e for e in st.json("/api/dumps") if rule_name is None or e.get("rule") == rule_name]
    return sorted(out, key=lambda e: e["created_ns"])


def entry_path(store, e, name=None):
    return os.path.join(store, e["id"], name or e["file"])


def assert_core_opens(store, e, pid):
    """The stored core of e opens in gdb as pid's, every thread there."""
    assert e["kind"] == "dump" and e["trigger"] == "rule", e
    core = entry_path(store, e)
    n, info = du.gdb_threads(RULETARGET, core, pid=pid)
    assert n >= 1, info
    return n


def iso_ms(s):
    """'2026-12-05T07:31:02.1234567Z' -> ms since the epoch."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{7})Z$", s)
    assert m, s
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + int(m.group(2)) // 10000


def rule(st, name):
    doc = st.json("/api/rules")
    for r in doc["rules"]:
        if r["name"] == name:
            return r
    raise AssertionError("no rule %r in %s" % (name, json.dumps(doc)))


def wait_state(st, name, cond, timeout, what):
    last = [None]

    def ok():
        last[0] = rule(st, name)
        return cond(last[0]["state"])
    try:
        h.wait_until(ok, timeout, what)
    except AssertionError:
        raise AssertionError("%s; rule %s is %s" % (what, name, json.dumps(last[0], indent=1)))
    return last[0]


def samples(st, n=3):
    """Lets n more sampling periods pass (judged by time: the engine's
    ticks are not in the API)."""
    time.sleep(n * PERIOD_MS / 1000.0)


# ---------------------------------------------------------------------------

def fired_in_time(s, go, for_ms):
    """The firing came after the condition held for `for` (the interval
    that first saw it may begin up to one period before the target began)
    and within for + one period (and the machine's slack)."""
    fired = iso_ms(s["last_fired"])
    assert fired >= go + for_ms - PERIOD_MS - 50, (fired - go, s)
    assert fired <= go + for_ms + PERIOD_MS + SLACK_MS, (fired - go, s)


def favour(pid):
    """Gives a CPU target the CPU it asks for on a busy test machine (its
    use must not depend on what else runs)."""
    os.setpriority(os.PRIO_PROCESS, pid, -10)


def test_cpu_above_fires_on_the_spinner_only():
    """Proves: cpu_above fires on a process that begins to spin, within for
    + one period and not before `for`, and never on one below the threshold
    that the same rule matches; its action (dump+stacks) lands in the store:
    the stacks as JSON and text, the core opening in gdb."""
    t = tag()
    rules = ("[rule hot]\ncmdline = %s\ntrigger = cpu_above 30\nfor = 1s\ncount = 0\n"
             "interval = 1h\naction = dump+stacks\n" % t)
    with RulesStack(rules) as rs:
        st = rs.st
        spin = RT(1000, "spin", tag=t)
        favour(spin.pid)
        busy = RT(0, "duty", 5, tag=t)  # about 5 % of a core: below
        busy.wait_go()
        go = spin.wait_go()
        r = wait_state(st, "hot", lambda s: s["fired"] >= 1, 10, "hot fired")
        s = r["state"]
        assert s["last"]["pid"] == spin.pid, s
        assert re.match(r"^cpu \d+(\.\d+)?%$", s["last"]["value"]), s
        fired_in_time(s, go, 1000)
        r = wait_state(st, "hot", lambda s: s["last"]["result"] != "running", 60, "action done")
        s = r["state"]
        assert s["last"]["result"] == "stored", s
        assert len(s["last"]["ids"]) == 2 and len(s["last"]["hrefs"]) == 2, s
        # the process below the threshold never fires, however long
        samples(st, 10)
        s = rule(st, "hot")["state"]
        assert s["fired"] == 1, s
        assert s["matched"] == 2, s
        entries = stored(st, "hot")
        assert [e["kind"] for e in entries] == ["stacks", "dump"], entries
        stk, dump = entries
        assert stk["pid"] == dump["pid"] == spin.pid, entries
        assert stk["value"] == dump["value"] == s["last"]["value"], entries
        assert dump["trigger_text"] == "cpu_above 30", dump
        with open(entry_path(rs.store, stk, "stacks.json")) as f:
            doc = json.load(f)
        assert doc["id"] == spin.pid and doc["threads"], doc
        with open(entry_path(rs.store, stk, "stacks.txt")) as f:
            assert ("PID %d" % spin.pid) in f.read()
        assert_core_opens(rs.store, dump, spin.pid)


h.main(globals())
