#!/usr/bin/env python3
"""GET /{id}/stacks and GET /stacks?pid= through real nginx, and the CLI's
`procdiag stacks`; judged by /proc, eu-stack and eu-readelf. /stacks is held
to dotnet-monitor's formats (StacksTests, CallStackResults,
TextStacksFormatter, speedscope's file format)."""
import calendar
import os
import re
import shutil
import signal
import tempfile
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

STACKTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "stacktarget")
STKPARK = os.path.join(h.BUILDDIR, "tests", "targets", "libstkpark.so")

# Thread name -> the functions it must show, innermost first (a subsequence
# of its frames), and which of them have source lines.
PARKED = {
    "stacktarget": ["main_parked_here", "main"],
    "pd-alpha": ["alpha_parked_here", "alpha_outer", "alpha_main"],
    "pd-beta": ["nodebug_parked_here", "nodebug_outer", "beta_parked_here", "beta_main"],
    "pd-gamma": ["gamma_parked_here", "gamma_main"],
}
NODEBUG = {"nodebug_parked_here", "nodebug_outer"}


class StackTarget:
    def __init__(self, *args):
        if not os.access(STACKTARGET, os.X_OK) or not os.path.exists(STKPARK):
            raise AssertionError("%s is not built (make check builds it)" % STACKTARGET)
        self.proc = h.spawn([STACKTARGET] + [str(a) for a in args])
        words = h.read_line(self.proc).split()
        assert words[0] == "ready", words
        self.pid = int(words[1])
        self.tids = [int(w) for w in words[2:]]
        if args[0] != "churn":
            h.settle(self.pid)
        else:  # only the main thread holds still
            h.wait_until(lambda: task_states(self.pid).get(self.pid) == "S", 10, "main parked")


def task_ids(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


def task_states(pid):
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t), "rb") as f:
                d = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(t)] = d[d.rindex(b")") + 2:][:1].decode()
    return out


def symbols(thread):
    return [f["symbol"] for f in thread["frames"]]


def is_subsequence(want, have):
    it = iter(have)
    return all(w in it for w in want)


def check_parked(doc, t):
    """Every thread of t, each with its named functions in order."""
    by_id = {th["id"]: th for th in doc["threads"]}
    assert sorted(by_id) == task_ids(t.pid), (sorted(by_id), task_ids(t.pid))
    names = {th["name"]: th for th in doc["threads"]}
    assert set(names) == set(PARKED), sorted(names)
    assert names["stacktarget"]["id"] == t.pid
    assert [names[n]["id"] for n in ("pd-alpha", "pd-beta", "pd-gamma")] == t.tids
    for name, want in PARKED.items():
        th = names[name]
        assert "error" not in th, th
        assert th["state"] in ("Sleeping", "S"), th["state"]
        assert is_subsequence(want, symbols(th)), (name, symbols(th))
        for f in th["frames"]:
            assert re.fullmatch(r"0x[0-9a-f]+", f["pc"]), f
            if f["symbol"] in want and f["symbol"] not in NODEBUG:
                assert f["module"] == os.path.realpath(STACKTARGET), f
                assert f["file"].endswith("stacktarget.c") and f["line"] > 0, f
                assert re.fullmatch(r"[0-9a-f]{40}", f["build_id"]), f
            if f["symbol"] in NODEBUG:
                assert f["module"] == os.path.realpath(STKPARK), f
                assert f["file"] is None and f["line"] is None, f
                assert f["build_id"] == readelf_build_id(STKPARK), f
    # The innermost frame is the system call, in libc.
    for th in doc["threads"]:
        assert "libc.so" in th["frames"][0]["module"], th["frames"][0]
        assert th["frames"][0]["symbol"] in ("pause", "read"), th["frames"][0]


def readelf_build_id(path):
    out = subprocess.run(["eu-readelf", "-n", path], stdout=subprocess.PIPE, check=True,
                         timeout=30).stdout.decode()
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert m, out
    return m.group(1)


def eu_stack(pid):
    """{tid: [(pc, symbol or None)]} from `eu-stack -p PID`."""
    r = subprocess.run(["eu-stack", "-p", str(pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    out, cur = {}, None
    for line in r.stdout.decode().splitlines():
        m = re.match(r"TID (\d+):", line)
        if m:
            cur = out.setdefault(int(m.group(1)), [])
            continue
        m = re.match(r"#(\d+)\s+0x([0-9a-f]+)(?: (\S+))?", line)
        if m and cur is not None:
            cur.append((int(m.group(2), 16), m.group(3)))
    assert out, "eu-stack printed no thread: %r %r" % (r.stdout, r.stderr)
    return out


def stacks(s, pid, prefix="/api/processes", **kw):
    return s.json("%s/%d/stacks" % (prefix, pid), **kw)


# ---------------------------------------------------------------------------

def test_json_every_thread_every_function():
    s = h.shared()
    t = StackTarget("park")
    doc = stacks(s, t.pid)
    check_parked(doc, t)
    assert doc["id"] == t.pid and doc["name"] == "stacktarget", doc
    assert doc["process"] == s.base + "/api/processes/%d" % t.pid, doc["process"]
    assert isinstance(doc["stopped_us"], int) and doc["stopped_us"] > 0, doc
    # The target runs again.
    assert all(st != "t" for st in task_states(t.pid).values()), task_states(t.pid)


def test_text_like_eu_stack():
    s = h.shared()
    t = StackTarget("park")
    r = s.get("/api/processes/%d/stacks" % t.pid, headers={"Accept": "text/plain"})
    assert r.status == 200 and r.content_type == "text/plain", r
    text = r.body.decode()
    sections = re.split(r"(?m)^(?=TID \d+:)", text)
    assert sections[0].startswith("PID %d - process" % t.pid), sections[0]
    by_tid = {}
    for sec in sections[1:]:
        tid = int(re.match(r"TID (\d+):", sec).group(1))
        by_tid[tid] = sec
    assert sorted(by_tid) == task_ids(t.pid)
    tid_of = {"stacktarget": t.pid, "pd-alpha": t.tids[0], "pd-beta": t.tids[1],
              "pd-gamma": t.tids[2]}
    for name, want in PARKED.items():
        sec = by_tid[tid_of[name]]
        assert sec.split("\n")[0] == "TID %d: %s (Sleeping)" % (tid_of[name], name), sec
        syms = re.findall(r"(?m)^#\d+\s+0x[0-9a-f]{16} (\S+?)\+0x[0-9a-f]+ - ", sec)
        assert is_subsequence(want, syms), (name, syms)
        # Source lines follow the frames that have debug info.
        assert re.search(r"%s\+0x[0-9a-f]+ - \S+stacktarget\n    \S*stacktarget\.c:\d+"
                         % want[-1], sec), sec


def test_frames_match_eu_stack():
    s = h.shared()
    t = StackTarget("park")
    doc = stacks(s, t.pid)
    # eu-stack attaches itself: run it once procdiag has let go.
    theirs = eu_stack(t.pid)
    ours = {th["id"]: [(int(f["pc"], 16), f["symbol"]) for f in th["frames"]]
            for th in doc["threads"]}
    assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
    for tid in ours:
        assert ours[tid] == theirs[tid], "tid %d:\nours   %s\ntheirs %s" % (
            tid, [(hex(p), n) for p, n in ours[tid]], [(hex(p), n) for p, n in theirs[tid]])


def test_every_prefix():
    s = h.shared()
    t = StackTarget("park")
    for prefix in h.PREFIXES:
        doc = stacks(s, t.pid, prefix=prefix)
        check_parked(doc, t)
        assert doc["process"] == s.base + prefix + "/%d" % t.pid, doc["process"]
    # ?source=false: the same frames, no source lines.
    doc = s.json("/api/processes/%d/stacks?source=false" % t.pid)
    assert all(f["file"] is None and f["line"] is None
               for th in doc["threads"] for f in th["frames"]), doc
    names = {th["name"]: th for th in doc["threads"]}
    assert is_subsequence(PARKED["pd-alpha"], symbols(names["pd-alpha"]))


# --- dotnet-monitor's /stacks ----------------------------------------------

MON_FRAME_KEYS = {"methodName": str, "methodToken": int, "typeName": str, "moduleName": str,
                  "moduleVersionId": str, "hidden": bool}


def mon_stacks(s, pid, accept, ext):
    """GET /stacks?pid= with this Accept (None: no header); checks the
    attachment name {yyyyMMdd_HHmmss_fff}_{pid}.stacks.{ext}, UTC."""
    r = s.get("/stacks?pid=%d" % pid, headers={"Accept": accept} if accept else None)
    assert r.status == 200, r
    m = re.fullmatch(r'attachment; filename="(\d{8}_\d{6})_(\d{3})_(\d+)\.stacks\.%s"' % ext,
                     r.header("Content-Disposition") or "")
    assert m, r.headers
    when = calendar.timegm(time.strptime(m.group(1), "%Y%m%d_%H%M%S"))
    assert abs(when - time.time()) < 120 and int(m.group(3)) == pid, m.group(0)
    return r


def module_method(f):
    """What dotnet-monitor's frame is made of, from procdiag's frame."""
    mod = os.path.basename(f["module"]) if f["module"] else "UnknownModule"
    return mod, f["symbol"] or "UnknownFunction"


def test_dotnet_json_is_a_callstack_result():
    """Accept: application/json gives CallStackResult: every thread with
    its id and name, every frame with the model's members, the symbol as
    methodName and the module's file name as moduleName, in the order of
    procdiag's own document; extra members say where the frame is."""
    s = h.shared()
    t = StackTarget("park")
    ours = stacks(s, t.pid)
    r = mon_stacks(s, t.pid, "application/json", "json")
    assert r.content_type == "application/json", r
    doc = r.json()
    assert set(doc) == {"stacks"}, sorted(doc)
    by_id = {st["threadId"]: st for st in doc["stacks"]}
    assert sorted(by_id) == task_ids(t.pid), sorted(by_id)
    for th in ours["threads"]:
        st = by_id[th["id"]]
        assert st["threadName"] == th["name"], (st["threadName"], th["name"])
        assert len(st["frames"]) == len(th["frames"]), th["id"]
        for f, g in zip(th["frames"], st["frames"]):
            for k, typ in MON_FRAME_KEYS.items():
                assert isinstance(g[k], typ), (k, g)
            assert (g["moduleName"], g["methodName"]) == module_method(f), (f, g)
            assert g["typeName"] == "" and g["methodToken"] == 0 and g["hidden"] is False, g
            assert g["pc"] == f["pc"] and g.get("file") == f["file"], (f, g)
    alpha = by_id[t.tids[0]]
    want = [("stacktarget", fn) for fn in PARKED["pd-alpha"]]
    have = [(g["moduleName"], g["methodName"]) for g in alpha["frames"]]
    assert is_subsequence(want, have), have
    assert alpha["frames"][0]["moduleName"].startswith("libc.so"), alpha["frames"][0]
    # StacksTests: a second capture works as the first.
    again = mon_stacks(s, t.pid, "application/json", "json").json()
    assert sorted(st["threadId"] for st in again["stacks"]) == task_ids(t.pid)


def parse_text(text):
    """{tid: (title, [frame lines])} from TextStacksFormatter's layout."""
    out = {}
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        m = re.fullmatch(r"Thread: \(0x([0-9A-F]+)\)(?: (.*))?", lines[0])
        assert m, lines[0]
        frames = [ln for ln in lines[1:] if ln]
        assert all(ln.startswith("  ") and "!" in ln for ln in frames), frames
        out[int(m.group(1), 16)] = (m.group(2), [ln.strip() for ln in frames])
    return out


def test_dotnet_text_is_the_default():
    """No Accept header, */*, or a browser's Accept give text/plain, as
    dotnet-monitor negotiates; text/plain wins over application/json when
    both are named; each thread is `Thread: (0xTID) name` with its frames
    indented as module!method, then an empty line."""
    s = h.shared()
    t = StackTarget("park")
    ours = {th["id"]: th for th in stacks(s, t.pid)["threads"]}
    for accept in (None, "*/*", "text/plain", "application/json, text/plain", "text/*",
                   "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"):
        r = mon_stacks(s, t.pid, accept, "txt")
        assert r.content_type == "text/plain", (accept, r)
        text = r.body.decode()
        assert text.endswith("\n\n"), text[-50:]
        got = parse_text(text)
        assert sorted(got) == task_ids(t.pid), (accept, sorted(got))
        for tid, th in ours.items():
            title, frames = got[tid]
            assert title == th["name"], (title, th["name"])
            assert frames == ["%s!%s" % module_method(f) for f in th["frames"]], (tid, frames)
        alpha = got[t.tids[0]][1]
        assert is_subsequence(["stacktarget!" + fn for fn in PARKED["pd-alpha"]], alpha), alpha
    assert "Thread: (0x%X) pd-alpha\n" % t.tids[0] in text
    # A wildcard over application/ only: JSON.
    r = mon_stacks(s, t.pid, "application/*", "json")
    assert r.content_type == "application/json" and "stacks" in r.json(), r


def check_speedscope(doc):
    """The rules of speedscope's file-format-schema.json (draft-07) and of
    its importer for evented profiles: $schema, shared.frames with names,
    each profile evented with its unit and range, events opened and closed
    in nesting order on frames that exist."""
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json", doc
    assert isinstance(doc["exporter"], str) and isinstance(doc["name"], str), doc
    assert doc["activeProfileIndex"] == 0, doc
    frames = doc["shared"]["frames"]
    assert isinstance(frames, list), doc["shared"]
    for f in frames:
        assert isinstance(f["name"], str) and f["name"], f
        assert set(f) <= {"name", "file", "line", "col"}, f
        assert all(isinstance(f[k], str) for k in ("file",) if k in f), f
    assert len({f["name"] for f in frames}) == len(frames), "a frame is shared twice"
    for p in doc["profiles"]:
        assert p["type"] == "evented" and p["unit"] == "none", p
        assert isinstance(p["name"], str), p
        assert p["startValue"] == 0 and p["endValue"] == 1, p
        open_ = []
        last = p["startValue"]
        for e in p["events"]:
            assert set(e) == {"type", "frame", "at"}, e
            assert isinstance(e["frame"], int) and 0 <= e["frame"] < len(frames), e
            assert last <= e["at"] <= p["endValue"], e
            last = e["at"]
            if e["type"] == "O":
                open_.append(e["frame"])
            else:
                assert e["type"] == "C" and open_ and open_.pop() == e["frame"], e
        assert not open_, p["name"]


def test_dotnet_speedscope():
    """Accept: application/speedscope+json gives a speedscope file: one
    evented profile per thread named as the text's title, its frames
    opened at 0 in the stack's order (innermost first, as dotnet-monitor's
    SpeedscopeStacksFormatter does) and closed at 1 in reverse."""
    s = h.shared()
    t = StackTarget("park")
    ours = {th["id"]: th for th in stacks(s, t.pid)["threads"]}
    r = mon_stacks(s, t.pid, "application/speedscope+json", "json")
    assert r.content_type == "application/speedscope+json", r
    doc = r.json()
    check_speedscope(doc)
    names = [f["name"] for f in doc["shared"]["frames"]]
    profiles = {p["name"]: p for p in doc["profiles"]}
    assert len(profiles) == len(ours), sorted(profiles)
    for tid, th in ours.items():
        p = profiles["Thread: (0x%X) %s" % (tid, th["name"])]
        opened = [names[e["frame"]] for e in p["events"] if e["type"] == "O"]
        assert opened == ["%s!%s" % module_method(f) for f in th["frames"]], (tid, opened)
        assert all(e["at"] == 0 for e in p["events"] if e["type"] == "O"), p
        assert all(e["at"] == 1 for e in p["events"] if e["type"] == "C"), p
    alpha = profiles["Thread: (0x%X) pd-alpha" % t.tids[0]]
    i = names.index("stacktarget!alpha_parked_here")
    assert doc["shared"]["frames"][i]["file"].endswith("stacktarget.c"), doc["shared"]["frames"][i]
    assert i in [e["frame"] for e in alpha["events"]], alpha


def test_second_request_is_served_from_the_cache():
    s = h.shared()
    t = StackTarget("park")
    first = stacks(s, t.pid)
    second = stacks(s, t.pid)
    assert first["process_cached"] is False, first
    assert second["process_cached"] is True, second
    assert second["modules"] >= 4 and second["cached_modules"] == second["modules"], second
    check_parked(second, t)
    # A second process of the same binary: the Elf handles are shared.
    t2 = StackTarget("park")
    other = stacks(s, t2.pid)
    assert other["process_cached"] is False and other["cached_modules"] >= 3, other
    check_parked(other, t2)
    # The responder logs what it served from the cache (log_requests is on).
    assert "cached_modules=%d" % second["cached_modules"] in s.stderr(), s.stderr()[-500:]


def test_threads_coming_and_going():
    """A target that creates and ends threads without pause: 20 requests in a
    row succeed, and no thread is ever left stopped."""
    s = h.shared()
    t = StackTarget("churn")
    seen_short = 0
    for i in range(20):
        doc = stacks(s, t.pid)
        names = [th["name"] for th in doc["threads"]]
        assert "stacktarget" in names and "pd-churn" in names, names
        main = [th for th in doc["threads"] if th["id"] == t.pid][0]
        assert "main_parked_here" in symbols(main), symbols(main)
        seen_short += len(doc["threads"]) - 2
        states = task_states(t.pid)
        assert "t" not in states.values(), "left stopped after request %d: %s" % (i, states)
    h.wait_until(lambda: "t" not in task_states(t.pid).values(), 2, "no traced-stop")
    h.diag("short-lived threads caught: %d in 20 requests" % seen_short)
    assert h.alive(t.pid)


def test_errors():
    s = h.shared()
    for path in ("/stacks?pid=abc", "/stacks?pid=-1", "/stacks?pid=0"):
        h.assert_problem(s.get(path), 400, "pid")
    # No pid: the default process, as dotnet-monitor's routes choose it:
    # the site process, none here.
    for path in ("/stacks", "/stacks?pid="):
        h.assert_problem(s.get(path, headers={"Accept": "application/json"}), 400)
    h.assert_problem(s.get("/api/processes/abc/stacks"), 400, "id")
    h.assert_problem(s.get("/api/processes/%d/stacks?source=maybe" % os.getpid()), 400, "source")
    gone = subprocess.Popen(["true"])
    gone.wait()
    h.assert_problem(s.get("/api/processes/%d/stacks" % gone.pid), 404)
    # dotnet-monitor's route: a selection that finds nothing is a 400.
    h.assert_problem(s.get("/stacks?pid=%d" % gone.pid), 400, "pid")
    # Out of scope answers like a missing process.
    p = h.sleep_as_nobody()
    h.assert_problem(s.get("/api/processes/%d/stacks" % p.pid), 404)
    h.assert_problem(s.get("/stacks?pid=%d" % p.pid), 400, "pid")
    # A zombie and a kernel thread have no stacks: 409.
    z = h.target("zombie")
    h.assert_problem(s.get("/api/processes/%d/stacks" % z.zombie), 409)
    assert h.is_kernel_thread(2)
    if os.geteuid() == 0:
        h.assert_problem(s.get("/api/processes/2/stacks"), 409)


def test_already_traced_is_a_conflict():
    """Another tracer (gdb) holds the target: 409 with Retry-After (the
    tracer's pid is not told: it may be out of scope); afterwards the
    target is untouched and stacks work again."""
    s = h.shared()
    t = StackTarget("park")
    gdb = h.spawn(["gdb", "-q", "-nx", "-batch", "-p", str(t.pid), "-ex", "echo attached\\n",
                   "-ex", "shell sleep 30"], stderr=subprocess.DEVNULL)
    h.wait_until(lambda: (h.proc_status(t.pid) or {}).get("TracerPid", "0") != "0", 20,
                 "gdb to attach")
    r = s.get("/api/processes/%d/stacks" % t.pid)
    doc = h.assert_problem(r, 409)
    assert "already traced by another process" in doc["detail"], doc
    assert r.header("Retry-After"), r.headers
    h.kill_tree(gdb)
    h.wait_until(lambda: (h.proc_status(t.pid) or {}).get("TracerPid") == "0", 10, "gdb gone")
    # A killed gdb can leave its PTRACE_ATTACH's SIGSTOP behind (the very
    # reason procdiag seizes instead): that stop is gdb's, so undo it.
    os.kill(t.pid, signal.SIGCONT)
    h.settle(t.pid)
    check_parked(stacks(s, t.pid), t)


def test_the_responder_is_not_unwound():
    """The responder and its helper hold other clients' requests: their
    stacks are refused (403, test_attack_self.py has the attack); id 0 is
    the site process, none here, never the responder."""
    s = h.shared()
    t = StackTarget("park")
    check_parked(stacks(s, t.pid), t)  # the helper runs now
    helper = helper_pid(s.pd.pid)
    assert helper, "no stacks helper after a stacks request"
    for pid in (s.pd.pid, helper):
        h.assert_problem(s.get("/api/processes/%d/stacks" % pid), 403, "id")
    h.assert_problem(s.get("/api/processes/0/stacks"), 404, "id")
    assert helper_pid(s.pd.pid) == helper


def helper_pid(pd_pid):
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = h.proc_stat(int(name))
            if st and st["ppid"] == pd_pid:
                try:
                    with open("/proc/%s/cmdline" % name, "rb") as f:
                        if b"stacks-helper" in f.read():
                            return int(name)
                except OSError:
                    pass
    return None


def test_helper_killed_mid_freeze():
    """The helper dies (SIGKILL) while the target is frozen: the request
    fails with 500, the target runs on (PTRACE_SEIZE), and the next request
    is served by a new helper."""
    os.environ["PD_TEST_STACKS_FROZEN_SLEEP_MS"] = "3000"
    try:
        s = h.Stack(hooked=True).start()
    finally:
        del os.environ["PD_TEST_STACKS_FROZEN_SLEEP_MS"]
    try:
        t = StackTarget("park")
        res = {}
        th = threading.Thread(target=lambda: res.update(r=s.get("/stacks?pid=%d" % t.pid)))
        th.start()
        h.wait_until(lambda: "t" in task_states(t.pid).values(), 10, "the freeze")
        hp = helper_pid(s.pd.pid)
        assert hp, "no stacks-helper child of the responder"
        os.kill(hp, signal.SIGKILL)
        th.join(30)
        h.assert_problem(res["r"], 500)
        h.wait_until(lambda: "t" not in task_states(t.pid).values(), 5, "the target to run")
        h.settle(t.pid)
        # The next request is served by a new helper, which (with the hook
        # too) holds the target frozen while the request waits.
        th = threading.Thread(target=lambda: res.update(r2=s.get("/stacks?pid=%d" % t.pid)))
        th.start()
        h.wait_until(lambda: "t" in task_states(t.pid).values(), 10, "the second freeze")
        assert helper_pid(s.pd.pid) not in (None, hp)
        assert "r2" not in res, "answered while the target was still frozen"
        th.join(30)
        assert res["r2"].status == 200, res["r2"]
    finally:
        problems = s.stop()
    assert not problems, problems


def test_cli():
    t = StackTarget("park")
    r = subprocess.run([h.PROCDIAG, "stacks", "-p", str(t.pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r
    text = r.stdout.decode()
    for want in PARKED.values():
        for fn in want:
            assert re.search(r" %s\+0x" % fn, text), (fn, text)
    for tid in task_ids(t.pid):
        assert "TID %d:" % tid in text
    r = subprocess.run([h.PROCDIAG, "stacks", "--json", "-p", str(t.pid)],
                       stdout=subprocess.PIPE, timeout=60)
    assert r.returncode == 0
    import json
    doc = json.loads(r.stdout)
    assert sorted(th["id"] for th in doc["threads"]) == task_ids(t.pid)
    assert all(st != "t" for st in task_states(t.pid).values())
    for argv in (["stacks", "--bogus", "-p", str(t.pid)], ["stacks"], ["stacks", "-p", "x"],
                 ["stacks", "-p", str(t.pid), "extra"]):
        r = subprocess.run([h.PROCDIAG] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        assert r.returncode == 2, (argv, r)
        assert b"usage: procdiag stacks" in r.stderr, (argv, r.stderr)
    gone = subprocess.Popen(["true"])
    gone.wait()
    r = subprocess.run([h.PROCDIAG, "stacks", "-p", str(gone.pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 1 and b"not running" in r.stderr, r


h.main(globals())
