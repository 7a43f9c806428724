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
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import dumputil as du  # noqa: E402

RULETARGET = os.path.join(h.BUILDDIR, "tests", "targets", "ruletarget")
PERIOD_MS = 200


class RT:
    """A running ruletarget; .tag is in its command line (the rules' filter)."""

    def __init__(self, delay_ms, what, *args, tag=None, comm=None):
        if not os.access(RULETARGET, os.X_OK):
            raise AssertionError("%s is not built (make check builds it)" % RULETARGET)
        self.tag = tag or "rt-%08x" % random.getrandbits(32)
        self.proc = h.spawn([RULETARGET, str(delay_ms), what] + [str(a) for a in args] +
                            [self.tag], extra_env={"RT_COMM_HEX": comm.hex()} if comm else None)
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
    that first saw it may begin up to one period before the target began).
    How soon after is the scheduler's business on a loaded machine (a
    spinner may get a third of a core): no upper bound here, the callers'
    waits are generous; bench/rules.sh is where latency is measured."""
    fired = iso_ms(s["last_fired"])
    assert fired >= go + for_ms - PERIOD_MS - 50, (fired - go, s)


def favour(pid):
    """Gives a CPU target the CPU it asks for on a busy test machine (its
    use must not depend on what else runs)."""
    os.setpriority(os.PRIO_PROCESS, pid, -10)


def test_cpu_above_fires_on_the_spinner_only():
    """Proves: cpu_above fires on a process that begins to spin, not before
    `for`, and never on one below the threshold
    that the same rule matches (no interval: it could fire at every sample);
    its action (dump+stacks) lands in the store: the stacks as JSON and
    text, the core opening in gdb."""
    t = tag()
    rules = ("[rule hot]\ncmdline = %s\ntrigger = cpu_above 15\nfor = 1s\ncount = 0\n"
             "interval = 0\naction = dump+stacks\n" % t)
    with RulesStack(rules) as rs:
        st = rs.st
        busy = RT(0, "duty", 3, tag=t)  # about 3 % of a core: below
        busy.wait_go()
        spin = RT(1000, "spin", tag=t)
        favour(spin.pid)
        go = spin.wait_go()
        r = wait_state(st, "hot", lambda s: s["fired"] >= 1, 10, "hot fired")
        s = r["state"]
        assert s["last"]["pid"] == spin.pid, s
        assert re.match(r"^cpu \d+(\.\d+)?%$", s["last"]["value"]), s
        fired_in_time(s, go, 1000)
        first = s["last"]
        r = wait_state(st, "hot", lambda s: s["last"]["result"] != "running", 60, "action done")
        s = r["state"]
        if s["last"]["at"] == first["at"]:
            assert s["last"]["result"] == "stored", s
            assert len(s["last"]["ids"]) == 2 and len(s["last"]["hrefs"]) == 2, s
        # the process below the threshold never fires, however long
        samples(st, 10)
        s = rule(st, "hot")["state"]
        assert s["matched"] == 2, s
        entries = stored(st, "hot")
        after = rule(st, "hot")["state"]
        # The spinner keeps firing while we read: every firing finished
        # before the listing stored both files, and none stored more.
        assert 2 * (s["fired"] - s["running"]) <= len(entries) <= 2 * after["fired"], \
            (s, after, entries)
        assert all(e["pid"] == spin.pid for e in entries), entries
        assert [e["kind"] for e in entries[:2]] == ["stacks", "dump"], entries
        stk, dump = entries[:2]
        assert stk["value"] == dump["value"] == first["value"], entries
        assert dump["trigger_text"] == "cpu_above 15", dump
        # whose process: the uid the engine judged when the rule fired
        # (the responder's scope judges the entries by it, docs/STORE.md)
        assert stk["uid"] == dump["uid"] == os.stat("/proc/%d" % spin.pid).st_uid, entries
        with open(entry_path(rs.store, stk, "stacks.json")) as f:
            doc = json.load(f)
        assert doc["id"] == spin.pid and doc["threads"], doc
        with open(entry_path(rs.store, stk, "stacks.txt")) as f:
            assert ("PID %d" % spin.pid) in f.read()
        assert_core_opens(rs.store, dump, spin.pid)


def above_rule_fires_on_the_big_one(trigger, what, big, small, value_re, check=None):
    """A rule `trigger` (for = 600ms, a Mini dump, no interval) matching two
    targets: the one that does `what big` after a delay fires within for +
    one period, its core opens in gdb; the one that does `what small` never,
    however long."""
    t = tag()
    rules = ("[rule r]\ncmdline = %s\ntrigger = %s\nfor = 600ms\ncount = 0\ninterval = 0\n"
             "dump_type = Mini\n" % (t, trigger))
    with RulesStack(rules) as rs:
        st = rs.st
        low = RT(0, what, small, tag=t)
        low.wait_go()
        high = RT(800, what, big, tag=t)
        go = high.wait_go()
        r = wait_state(st, "r", lambda s: s["fired"] >= 1, 10, "r fired")
        s = r["state"]
        assert s["last"]["pid"] == high.pid, s
        assert re.match(value_re, s["last"]["value"]), s
        fired_in_time(s, go, 600)
        samples(st, 8)
        s = wait_state(st, "r", lambda s: s["running"] == 0 or s["fired"] > 3, 60,
                       "actions done")["state"]
        assert s["matched"] == 2, s
        entries = stored(st, "r")
        assert entries and all(e["pid"] == high.pid for e in entries), entries
        e = entries[0]
        assert e["dumpType"] == "Mini" and re.match(value_re, e["value"]), e
        n = assert_core_opens(rs.store, e, high.pid)
        if check:
            check(n, e)


def test_rss_above():
    """Proves: rss_above fires on the target that allocates 96 MiB, not on
    the one with 4 MiB."""
    above_rule_fires_on_the_big_one("rss_above 48M", "alloc", 96, 4,
                                    r"^rss \d+ bytes \(\d+ MiB\)$")


def test_threads_above():
    """Proves: threads_above fires on the target that starts 24 threads
    (and its core holds them all), not on the one with 3."""
    def check(n, e):
        assert n == 25, (n, e)
    above_rule_fires_on_the_big_one("threads_above 12", "threads", 24, 3, r"^threads 25$",
                                    check)


def test_fds_above():
    """Proves: fds_above (/proc/PID/fd counted) fires on the target that
    opens 80 fds, not on the one that opens 5."""
    above_rule_fires_on_the_big_one("fds_above 40", "fds", 80, 5, r"^fds 8\d$")


def test_cpu_below_of_the_machine():
    """Proves: cpu_below with `machine` (the value divided by the CPUs) fires
    on an idle process, not before `for`, and never on a spinning one
    the same rule matches. The bound is a quarter of one core in the
    machine's terms, so a spinner stays above it on any number of CPUs."""
    t = tag()
    bound = "%.2f" % (25.0 / os.sysconf("SC_NPROCESSORS_ONLN"))
    rules = ("[rule idle]\ncmdline = %s\ntrigger = cpu_below %s machine\nfor = 600ms\n"
             "count = 0\ninterval = 0\naction = stacks\n" % (t, bound))
    with RulesStack(rules) as rs:
        st = rs.st
        spin = RT(0, "spin", tag=t)
        favour(spin.pid)
        spin.wait_go()
        samples(st, 8)  # the spinner alone: never below
        s = rule(st, "idle")["state"]
        assert s["fired"] == 0 and s["matched"] == 1, s
        quiet = RT(0, "idle", tag=t)
        go = quiet.wait_go()
        r = wait_state(st, "idle", lambda s: s["fired"] >= 1, 10, "idle fired")
        s = r["state"]
        assert s["last"]["pid"] == quiet.pid, s
        assert re.match(r"^cpu \d+(\.\d+)?% of the machine$", s["last"]["value"]), s
        # its first CPU value needs two samples: one period more than `for`
        fired_in_time(s, go, 600 + PERIOD_MS)
        samples(st, 8)
        assert all(e["pid"] == quiet.pid for e in stored(st, "idle")), stored(st, "idle")


def test_site_name_and_regex_filters():
    """Proves: `site = true` takes only the site process (id 0, as
    site_pid_file says at each sample), `name` the executable's name and
    `cmdline_regex` a POSIX extended regex; a process that matches all but
    one filter is never taken."""
    t = tag()
    rules = ("[rule site]\nsite = true\nname = ruletarget\ncmdline_regex = ^%s .* %s$\n"
             "trigger = timer 1\ncount = 0\ninterval = 0\naction = stacks\n"
             % (re.escape(RULETARGET), t))
    st = h.Stack(config_lines=["rules_interval_ms = %d" % PERIOD_MS], site=True,
                 config_files=["store_dir = %s\n" % "@STORE@" + rules])
    tmp = tempfile.mkdtemp(prefix="pd-e2e-rules-")
    st.config_files = [f.replace("@STORE@", os.path.join(tmp, "store")) for f in st.config_files]
    try:
        with st:
            a = RT(0, "idle", tag=t)
            b = RT(0, "idle", tag=t)
            other = RT(0, "idle", tag=t + "x")  # the regex's $ refuses it
            st.set_site(other.pid)
            samples(st, 8)
            s = rule(st, "site")["state"]
            assert s["fired"] == 0 and s["matched"] == 0, s
            st.set_site(b.pid)
            r = wait_state(st, "site", lambda s: s["fired"] >= 2, 10, "site fired twice")
            samples(st, 3)
            entries = [e for e in st.json("/api/dumps") if e.get("rule") == "site"]
            assert entries and all(e["pid"] == b.pid for e in entries), entries
            assert r["filter"] == {"site": True, "name": "ruletarget",
                                   "cmdline_regex": "^%s .* %s$" % (re.escape(RULETARGET), t)}, r
            assert a.pid != b.pid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_timer_count_interval_and_states():
    """Proves: a timer rule fires every period, count times exactly, never
    two firings closer than interval; /api/rules shows it armed, then
    cooling down between firings, then exhausted with its last result and
    links that download the stored stacks; the Rules page shows it."""
    t = tag()
    rules = ("[rule tick]\ncmdline = %s\ntrigger = timer 1\ncount = 3\ninterval = 2s\n"
             "action = stacks\n" % t)
    with RulesStack(rules) as rs:
        st = rs.st
        s = rule(st, "tick")["state"]
        assert s["status"] == "armed" and s["fired"] == 0 and s["last"] is None, s
        rt = RT(0, "idle", tag=t)
        r = wait_state(st, "tick", lambda s: s["fired"] >= 1, 10, "first firing")
        seen = {r["state"]["status"]}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = rule(st, "tick")
            seen.add(r["state"]["status"])
            if r["state"]["status"] == "exhausted":
                break
            time.sleep(0.1)
        s = r["state"]
        assert s["status"] == "exhausted" and s["fired"] == 3, s
        assert "cooling_down" in seen, seen
        assert s["last"]["result"] == "stored" and s["last"]["pid"] == rt.pid, s
        assert s["last"]["value"] == "timer 1 s", s
        body = st.get(s["last"]["hrefs"][0].split(st.base, 1)[1] + "?file=stacks.txt")
        assert body.status == 200 and ("PID %d" % rt.pid).encode() in body.body, body
        samples(st, 8)  # the count holds
        entries = stored(st, "tick")
        assert len(entries) == 3, entries
        assert all(e["kind"] == "stacks" and e["pid"] == rt.pid for e in entries), entries
        gaps = [b["fired_ms"] - a["fired_ms"] for a, b in zip(entries, entries[1:])]
        # fired_ms is the wall clock, the interval is kept on the monotonic
        # one: each read in whole ms, so 1 ms either way
        assert all(g >= 2000 - 2 for g in gaps), gaps
        links = st.json("/")["links"]
        assert links["rules"] == st.base + "/api/rules", links
        page = st.get("/api/rules", headers={"Accept": "text/html"})
        assert page.status == 200 and page.content_type == "text/html", page
        assert b"tick" in page.body and b"exhausted" in page.body, page.body[:2000]


def test_count_and_interval_give_exactly_the_allowed_dumps():
    """Proves: a condition that holds all the time gives exactly count
    dumps, interval apart, each a whole core that opens in gdb; and a second
    rule with count 0 (unlimited) goes on firing."""
    t = tag()
    rules = ("[rule two]\ncmdline = %s\ntrigger = threads_above 2\ncount = 2\ninterval = 1500ms\n"
             "dump_type = Mini\n"
             "[rule many]\ncmdline = %s\ntrigger = threads_above 2\ncount = 0\ninterval = 1s\n"
             "action = stacks\n" % (t, t))
    with RulesStack(rules) as rs:
        st = rs.st
        rt = RT(0, "threads", 4, tag=t)
        wait_state(st, "two", lambda s: s["status"] == "exhausted", 20, "two exhausted")
        samples(st, 10)
        entries = stored(st, "two")
        assert len(entries) == 2, entries
        gap = entries[1]["fired_ms"] - entries[0]["fired_ms"]
        assert gap >= 1500 - 2, gap  # ms of two clocks: see the timer test
        for e in entries:
            assert assert_core_opens(rs.store, e, rt.pid) == 5
        s = rule(st, "many")["state"]
        assert s["fired"] >= 3 and s["status"] != "exhausted", s


def test_zip_and_zstd_formats():
    """Proves: format = zip stores the bundle (the core and the binaries it
    needs) and format = zstd the core as one zstd stream, each opening in
    gdb once unpacked, through the same job as a raw core."""
    t = tag()
    rules = ("[rule z]\ncmdline = %s\ntrigger = timer 1\nformat = zip\ndump_type = Mini\n"
             "[rule s]\ncmdline = %s\ntrigger = timer 1\nformat = zstd\ndump_type = Mini\n"
             % (t, t))
    with RulesStack(rules) as rs:
        st = rs.st
        rt = RT(0, "idle", tag=t)
        for n in ("z", "s"):
            wait_state(st, n, lambda s: s["status"] == "exhausted", 60, n + " exhausted")
        (z,) = stored(st, "z")
        (s,) = stored(st, "s")
        assert z["file"] == "core.%d.zip" % rt.pid and z["format"] == "zip", z
        assert s["file"] == "core.%d.zst" % rt.pid and s["format"] == "zstd", s
        tmp = tempfile.mkdtemp(prefix="pd-e2e-rules-")
        try:
            with zipfile.ZipFile(entry_path(rs.store, z)) as zf:
                names = zf.namelist()
                assert ("core.%d" % rt.pid) in names, names
                zf.extract("core.%d" % rt.pid, tmp)
            du.gdb_threads(RULETARGET, os.path.join(tmp, "core.%d" % rt.pid), pid=rt.pid)
            out = os.path.join(tmp, "core.zst.out")
            subprocess.run(["zstd", "-q", "-d", entry_path(rs.store, s), "-o", out], check=True,
                           timeout=60)
            du.gdb_threads(RULETARGET, out, pid=rt.pid)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_quota_refusal_is_recorded_as_skipped():
    """Proves: an action the store refuses (the core is larger than
    store_max_bytes) is recorded as skipped with the reason, and nothing of
    it is stored."""
    t = tag()
    rules = "[rule big]\ncmdline = %s\ntrigger = rss_above 16M\n" % t
    with RulesStack(rules, extra=["store_max_bytes = 1M"]) as rs:
        st = rs.st
        RT(0, "alloc", 64, tag=t)
        r = wait_state(st, "big", lambda s: s["last"] and s["last"]["result"] != "running", 60,
                       "big done")
        s = r["state"]
        assert s["last"]["result"] == "skipped", s
        assert "quota" in s["last"]["detail"], s
        assert s["last"]["ids"] == [], s
        assert s["status"] == "exhausted", s
        assert stored(st) == [], stored(st)
        assert os.listdir(rs.store) == [], os.listdir(rs.store)


def test_one_action_per_process():
    """Proves: two rules that fire on the same process at once do not act
    on it together: the second waits for the first to end."""
    t = tag()
    rules = ("[rule a]\ncmdline = %s\ntrigger = threads_above 2\n"
             "[rule b]\ncmdline = %s\ntrigger = threads_above 2\n" % (t, t))
    with RulesStack(rules) as rs:
        st = rs.st
        rt = RT(0, "threads", 4, tag=t)
        for n in ("a", "b"):
            wait_state(st, n, lambda s: s["status"] == "exhausted", 60, n + " exhausted")
        entries = stored(st)
        assert sorted(e["rule"] for e in entries) == ["a", "b"], entries
        (a,) = [e for e in entries if e["rule"] == "a"]
        (b,) = [e for e in entries if e["rule"] == "b"]
        for e in entries:
            assert e["pid"] == rt.pid and e["figures"]["threads"] == 5, e
        # one after the other: the later one began after the earlier one ended
        first, second = sorted([a, b], key=lambda e: e["created_ns"])
        assert iso_ms(rule(st, second["rule"])["state"]["last_fired"]) * 1000000 >= \
            first["created_ns"] - 1000000, (first, second)


def test_a_hostile_process_name_is_escaped():
    """Proves: a process whose comm is not UTF-8 (and holds control bytes)
    fires like any other; its name reaches /api/rules and the store's meta
    escaped (\\xNN), never dropped and never breaking the document."""
    t = tag()
    comm = b"rt\xff\x01<b>\xc3"
    rules = "[rule odd]\ncmdline = %s\ntrigger = timer 1\naction = stacks\n" % t
    with RulesStack(rules) as rs:
        st = rs.st
        rt = RT(0, "idle", tag=t, comm=comm)
        r = wait_state(st, "odd", lambda s: s["status"] == "exhausted", 20, "odd exhausted")
        s = r["state"]
        assert s["last"]["result"] == "stored", s
        want = h.escape_bytes(comm)
        assert s["last"]["process"] == want, (s, want)
        (e,) = stored(st, "odd")
        assert e["process"] == want and e["pid"] == rt.pid, e
        page = st.get("/api/rules", headers={"Accept": "text/html"})
        assert page.status == 200 and b"<b>" not in page.body, page.body[:3000]


def test_sigterm_cancels_a_running_action():
    """Proves: SIGTERM while a rule's dump runs (the hooked build holds the
    target frozen for a minute) cancels it: procdiag exits 0 long before
    that minute, the target runs again, and the store holds nothing of it."""
    t = tag()
    rules = "[rule slow]\ncmdline = %s\ntrigger = threads_above 2\ndump_type = Mini\n" % t
    tmp = tempfile.mkdtemp(prefix="pd-e2e-rules-")
    store = os.path.join(tmp, "store")
    os.environ["PD_TEST_FROZEN_SLEEP_MS"] = "60000"
    try:
        st = h.Stack(config_lines=["rules_interval_ms = %d" % PERIOD_MS, "store_dir = " + store],
                     config_files=[rules], hooked=True)
        st.start()
    finally:
        del os.environ["PD_TEST_FROZEN_SLEEP_MS"]
    try:
        rt = RT(0, "threads", 4, tag=t)
        wait_state(st, "slow", lambda s: s["running"] == 1, 10, "the dump running")
        h.wait_until(lambda: not du.not_stopped(rt.pid), 10, "the target frozen")
        rc, took = st.terminate_responder(timeout=30)
        assert rc == 0 and took < 20, (rc, took, st.stderr())
        du.assert_resumed(rt.pid)
        assert os.listdir(store) == [], os.listdir(store)
    finally:
        st.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def serve_fails(config_text, extra=()):
    """procdiag serve with config_text: (exit status, stderr)."""
    d = tempfile.mkdtemp(prefix="pd-e2e-rules-")
    try:
        path = os.path.join(d, "bad.conf")
        with open(path, "w") as f:
            f.write(config_text)
        r = subprocess.run([h.PROCDIAG, "serve", "--no-auth", "--listen",
                            "unix:" + os.path.join(d, "s.sock"), "--config", path] + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return r.returncode, r.stderr.decode("utf-8", "replace"), path
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bad_rule_config_is_a_startup_error():
    """Proves: a bad rule stops the responder at start with a message that
    names the file and the line."""
    store = "store_dir = /tmp/pd-e2e-rules-never\n"
    cases = [
        (store + "[rule a]\ntrigger = cpu_above lots\n", 3, "trigger cpu_above"),
        (store + "[rule a]\ntrigger = timer 5\nthreads = 4\n", 4, "unknown key 'threads'"),
        (store + "[rule a]\nname = x\n", 2, "rule 'a' has no trigger"),
        (store + "[rule a]\ntrigger = timer 5\n\n[rule a]\ntrigger = timer 6\n", 5,
         "a second rule named 'a'"),
        (store + "[rule bad name]\n", 2, "a rule name"),
        (store + "[rules]\n", 2, "unknown section"),
        ("\n[rule a]\ntrigger = rss_above 1G\n", 2, "no store_dir"),
    ]
    for text, line, fragment in cases:
        rc, err, path = serve_fails(text)
        assert rc != 0, (text, err)
        assert ("%s:%d: " % (path, line)) in err and fragment in err, (text, err)
    assert not os.path.exists("/tmp/pd-e2e-rules-never")


def test_cli_rules_prints_the_configured_rules():
    """Proves: `procdiag rules --config FILE` prints every rule in the
    config's normal form (and as JSON with --json), and a bad config is an
    error naming file and line."""
    d = tempfile.mkdtemp(prefix="pd-e2e-rules-")
    try:
        path = os.path.join(d, "r.conf")
        with open(path, "w") as f:
            f.write("store_dir = %s/store\n[rule hot]\nname = php-fpm\n"
                    "trigger = cpu_above 80.5 machine\nfor = 10s\naction = dump+stacks\n"
                    "format = zstd\ncount = 3\ninterval = 120s\n[rule boom]\n"
                    "trigger = crash SEGV,ABRT\n" % d)
        r = subprocess.run([h.PROCDIAG, "rules", "--config", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, r
        out = r.stdout.decode()
        assert ("[rule hot]\nname = php-fpm\ntrigger = cpu_above 80.50 machine\nfor = 10s\n"
                "action = dump+stacks\ndump_type = Full\nformat = zstd\ncount = 3\n"
                "interval = 2m\n") in out, out
        assert "[rule boom]\ntrigger = crash SEGV,ABRT\n" in out, out
        r = subprocess.run([h.PROCDIAG, "rules", "--json", "--config", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        doc = json.loads(r.stdout)
        assert [x["name"] for x in doc["rules"]] == ["hot", "boom"], doc
        assert doc["rules"][0]["limits"] == {"count": 3, "interval": "2m",
                                             "interval_ms": 120000}, doc
        with open(path, "a") as f:
            f.write("bogus = 1\n")
        r = subprocess.run([h.PROCDIAG, "rules", "--config", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode != 0 and ("%s:12: unknown key 'bogus'" % path).encode() in r.stderr, r
    finally:
        shutil.rmtree(d, ignore_errors=True)


h.main(globals())
