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
import subprocess
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


def rules_stack(rules, extra=(), store=True):
    """A responder sampling every PERIOD_MS with rules (config text) in a
    second --config file, and a store in its directory."""
    lines = ["rules_interval_ms = %d" % PERIOD_MS, "max_actions = 2"] + list(extra)
    st = h.Stack(config_lines=lines, config_files=[rules])
    if store:
        st.store_dir = None
        # the store's directory is made inside the stack's temp dir at start
        st.config_lines.append("store_dir = @STORE@")
    return st


def start(st):
    """Starts st with its store_dir placeholder made a directory of its own."""
    if any("@STORE@" in l for l in st.config_lines):
        d = h.Stack._tmpdir(st)
        st.store_dir = os.path.join(d, "store")
        st.config_lines = [l.replace("@STORE@", st.store_dir) for l in st.config_lines]
    st.start()
    return st


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

def test_cpu_above_fires_on_the_spinner_only():
    t = tag()
    rules = ("[rule hot]\ncmdline = %s\ntrigger = cpu_above 60\nfor = 1s\ncount = 0\n"
             "interval = 1h\naction = stacks\n" % t)
    st = start(rules_stack(rules))
    try:
        spin = RT(1000, "spin", tag=t)
        busy = RT(0, "duty", 25, tag=t)  # about 25 % of a core: below the threshold
        busy.wait_go()
        go = spin.wait_go()
        r = wait_state(st, "hot", lambda s: s["fired"] >= 1, 10, "hot fired")
        s = r["state"]
        assert s["last"]["pid"] == spin.pid, s
        assert s["last"]["value"].startswith("cpu "), s
        fired = iso_ms(s["last_fired"])
        # held for `for` (the interval that saw the spin may begin up to a
        # period before it), and within for + one period
        assert fired >= go + 1000 - PERIOD_MS - 50, (fired - go, s)
        assert fired <= go + 1000 + PERIOD_MS + SLACK_MS, (fired - go, s)
        # the process below the threshold never fires, however long
        samples(st, 10)
        s = rule(st, "hot")["state"]
        assert s["fired"] == 1, s
        assert s["matched"] == 2, s
    finally:
        st.stop()


h.main(globals())
