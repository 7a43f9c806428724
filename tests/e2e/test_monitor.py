#!/usr/bin/env python3
"""The dotnet-monitor-style routes (/processes, /process, /env, /info,
/dump) and their process selection (pid, uid, name), through nginx, judged
by /proc, eu-readelf and gdb; the assertions of dotnet-monitor's own
functional tests (ProcessTests, DumpTests, InfoTests) where they apply."""
import calendar
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import assert_resumed, gdb_threads, heap_target, readelf_type, save  # noqa: E402

UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return b" ".join(f.read().rstrip(b"\0").split(b"\0")).decode()


def named_sleepers(tmpdir, name, n):
    """n processes whose comm is name (copies of /bin/sleep)."""
    path = os.path.join(tmpdir, name)
    shutil.copy("/bin/sleep", path)
    procs = [h.spawn([path, "60"], stdout=subprocess.DEVNULL) for _ in range(n)]
    for p in procs:
        h.wait_until(lambda p=p: (h.proc_stat(p.pid) or {}).get("comm") == name.encode(),
                     5, "%s running" % name)
    return procs


def test_processes_lists_instances_with_stable_uids():
    s = h.shared()
    t1, t2 = h.target("threads", 1), h.target("threads", 1)
    a = {p["pid"]: p for p in s.json("/processes")}
    b = {p["pid"]: p for p in s.json("/processes")}
    for t in (t1, t2):
        it = a[t.pid]
        assert set(it) == {"pid", "uid", "name", "isDefault"}, it
        assert it["name"] == "pdtarget" and it["isDefault"] is False, it
        assert UID_RE.match(it["uid"]), it
        assert b[t.pid]["uid"] == it["uid"], "uid changed between two calls"
    assert a[t1.pid]["uid"] != a[t2.pid]["uid"]
    # The default process is the site process: none is configured here.
    assert [p["pid"] for p in a.values() if p["isDefault"]] == [], a.get(s.pd.pid)
    assert len({p["uid"] for p in a.values()}) == len(a), "two processes share a uid"


def test_uid_is_per_instance_not_per_pid():
    """A uid names one run of a process: a new process never has an old one's
    uid, and an old uid no longer selects anything once its process is gone."""
    s = h.shared()
    t = h.target("threads", 1)
    uid = s.json("/process?pid=%d" % t.pid)["uid"]
    t.kill()
    h.assert_problem(s.get("/process?uid=%s" % uid), 400, "uid")
    t2 = h.target("threads", 1)
    assert s.json("/process?pid=%d" % t2.pid)["uid"] != uid


def test_process_by_pid_uid_and_name():
    s = h.shared()
    t = h.target("threads", 2)
    d = s.json("/process?pid=%d" % t.pid)
    assert set(d) == {"pid", "uid", "name", "commandLine", "operatingSystem",
                      "processArchitecture"}, d
    assert d["pid"] == t.pid and d["name"] == "pdtarget", d
    assert d["commandLine"] == cmdline(t.pid), (d["commandLine"], cmdline(t.pid))
    assert d["operatingSystem"] == "linux", d
    want = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert d["processArchitecture"] == want, d
    assert s.json("/process?uid=%s" % d["uid"])["pid"] == t.pid
    assert s.json("/process?uid=%s" % d["uid"].upper())["pid"] == t.pid
    assert s.json("/process?pid=%d&uid=%s&name=pdtarget" % (t.pid, d["uid"]))["pid"] == t.pid
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mon-")
    try:
        (one,) = named_sleepers(tmp, "pdmon-unique", 1)
        assert s.json("/process?name=pdmon-unique")["pid"] == one.pid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_process_default_is_the_site_process():
    """No pid, uid or name: the site process (site_pid_file), the one
    /processes marks isDefault; none configured or running: a 400."""
    with h.Stack(site=True) as s:
        h.assert_problem(s.get("/process"), 400)
        t = h.target("threads", 1)
        s.set_site(t.pid)
        d = s.json("/process")
        assert d["pid"] == t.pid and d["name"] == "pdtarget", d
        assert [p["pid"] for p in s.json("/processes") if p["isDefault"]] == [t.pid]
        assert s.json("/env").get("PATH") == os.environ.get("PATH")


def test_selection_errors():
    """dotnet-monitor answers 400 to every selection that does not name
    exactly one process (ProcessTests' VerifyInvalidRequestException: an
    unknown pid, an unknown uid, a pid with another process's uid), naming
    the parameter; an ambiguous name lists the candidates."""
    s = h.shared()
    t = h.target("threads", 1)
    other = s.json("/process?pid=%d" % s.pd.pid)["uid"]
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mon-")
    try:
        twins = named_sleepers(tmp, "pdmon-twin", 2)
        doc = h.assert_problem(s.get("/process?name=pdmon-twin"), 400, "name")
        assert sorted(doc["pids"]) == sorted(p.pid for p in twins), doc
        assert all(str(p.pid) in doc["detail"] for p in twins), doc
        h.assert_problem(s.get("/env?name=PDMON-TWIN"), 400, "name")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for route in ("/process", "/env", "/dump", "/stacks"):
        h.assert_problem(s.get(route + "?name=pdmon-nothing-has-this"), 400, "name")
        h.assert_problem(s.get(route + "?uid=00000000-0000-8000-8000-000000000000"), 400, "uid")
        h.assert_problem(s.get(route + "?pid=%d" % h.NO_PID), 400, "pid")
        h.assert_problem(s.get(route + "?pid=%d&uid=%s" % (t.pid, other)), 400, "uid")
        h.assert_problem(s.get(route + "?pid=%d&name=bash" % t.pid), 400, "name")
    for q, param in (("pid=abc", "pid"), ("pid=0", "pid"), ("pid=-1", "pid"),
                     ("uid=xyz", "uid"), ("uid=%s" % other[:-1], "uid")):
        h.assert_problem(s.get("/process?" + q), 400, param)
    # Out of scope answers like nonexistent.
    nobody = h.sleep_as_nobody()
    a = h.assert_problem(s.get("/process?pid=%d" % nobody.pid), 400, "pid")
    b = h.assert_problem(s.get("/process?pid=%d" % h.unused_pid()), 400, "pid")
    assert a["title"] == b["title"], (a, b)
    assert nobody.pid not in [p["pid"] for p in s.json("/processes")]


LONGNAME = "peer-target-longname"


def start_longname(tmpdir):
    """pdtarget copied under a name longer than comm's 15 bytes."""
    path = os.path.join(tmpdir, LONGNAME)
    shutil.copy(h.PDTARGET, path)
    p = h.spawn([path, "threads", "1"])
    t = h.Target(p, h.read_line(p))
    h.settle(t.pid)
    assert h.proc_stat(t.pid)["comm"] == LONGNAME[:15].encode(), h.proc_stat(t.pid)
    return t


def test_name_is_the_executable_not_comm():
    """The name is the executable's file name from the command line, as
    ProcessInfoImpl takes it, not the kernel's 15-byte comm; it selects
    case-insensitively, as DiagProcessFilter compares."""
    s = h.shared()
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mon-")
    try:
        t = start_longname(tmp)
        listed = {p["pid"]: p for p in s.json("/processes")}
        assert listed[t.pid]["name"] == LONGNAME, listed[t.pid]
        d = s.json("/process?pid=%d" % t.pid)
        assert d["name"] == LONGNAME, d
        for name in (LONGNAME, LONGNAME.upper(), "Peer-Target-LongName"):
            assert s.json("/process?name=%s" % name)["pid"] == t.pid, name
            assert s.json("/process?pid=%d&name=%s" % (t.pid, name))["pid"] == t.pid, name
        # dotnet-monitor's consistency check: pid, uid and name agree.
        by = [s.json("/process?pid=%d" % t.pid), s.json("/process?uid=%s" % d["uid"]),
              s.json("/process?pid=%d&uid=%s&name=%s" % (t.pid, d["uid"], LONGNAME))]
        assert len({(x["pid"], x["uid"], x["name"]) for x in by}) == 1, by
        # The comm is not the name.
        h.assert_problem(s.get("/process?name=%s" % LONGNAME[:15]), 400, "name")
        env = s.json("/env?name=%s" % LONGNAME.upper())
        assert env.get("PATH") == os.environ.get("PATH"), sorted(env)
        # A short comm is the whole name.
        assert listed[s.pd.pid]["name"] == "procdiag", listed[s.pd.pid]
        # A command line rewritten as a title (php-fpm's "php-fpm: pool www")
        # names nothing: the comm stays the name, cut or not.
        titled = h.spawn(["sleep: pdmon pool www", "60"], executable="/bin/sleep",
                         stdout=subprocess.DEVNULL)
        other = h.spawn(["pdmon-other-argv0", "threads", "1"],
                        executable=os.path.join(tmp, LONGNAME))
        h.read_line(other)
        for p, comm in ((titled, "sleep"), (other, LONGNAME[:15])):
            h.wait_until(lambda p=p, comm=comm: (h.proc_stat(p.pid) or {}).get("comm") ==
                         comm.encode(), 5, comm)
            assert s.json("/process?pid=%d" % p.pid)["name"] == comm, comm
            listed = {x["pid"]: x for x in s.json("/processes")}
            assert listed[p.pid]["name"] == comm, listed[p.pid]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_env():
    s = h.shared()
    t = h.target("threads", 1, extra_env={"PDMON_MARK": "a=b c", "PDMON_EMPTY": ""})
    env = s.json("/env?pid=%d" % t.pid)
    assert env["PDMON_MARK"] == "a=b c" and env["PDMON_EMPTY"] == "", env
    with open("/proc/%d/environ" % t.pid, "rb") as f:
        names = {kv.split(b"=", 1)[0].decode() for kv in f.read().split(b"\0") if kv}
    assert set(env) == names, set(env) ^ names
    h.assert_problem(s.get("/env?pid=%d" % h.NO_PID), 400, "pid")


def test_info():
    """InfoTests: a version, the diagnostic port mode, and every capability
    dotnet-monitor names (MonitorCapabilityConstants), each with enabled:
    call_stacks is procdiag's; the others are in-process .NET features."""
    s = h.shared()
    info = s.json("/info")
    version = subprocess.run([h.PROCDIAG, "--version"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().split()[-1]
    assert info["version"] == version, (info, version)
    assert info["operatingSystem"] == "linux", info
    assert info["diagnosticPortMode"] == "Connect" and info["diagnosticPortName"] is None, info
    assert "runtimeVersion" in info and info["runtimeVersion"] is None, info
    caps = info["capabilities"]
    assert all(set(c) == {"name", "enabled"} and isinstance(c["enabled"], bool)
               for c in caps), caps
    assert len(caps) == 5, caps
    enabled = {c["name"]: c["enabled"] for c in caps}
    assert enabled == {"exceptions": False, "parameters": False, "call_stacks": True,
                       "metrics": False, "http_egress": False}, caps
    # What it says is so: stacks answer.
    r = s.get("/stacks?pid=%d" % h.target("threads", 1).pid)
    assert r.status == 200, r


STAMP_RE = r"(\d{8}_\d{6})_(\d{3})"


def assert_recent_stamp(stamp, ms):
    """A yyyyMMdd_HHmmss stamp in UTC, within two minutes of now."""
    when = calendar.timegm(time.strptime(stamp, "%Y%m%d_%H%M%S"))
    assert abs(when - time.time()) < 120, stamp
    assert 0 <= int(ms) <= 999, ms


def assert_monitor_core(r, pid, dump_type):
    """A core as DumpOperation names it: core_{yyyyMMdd_HHmmss_fff}, UTC."""
    assert r.status == 200, r
    assert r.content_type == "application/octet-stream", r
    m = re.fullmatch(r'attachment; filename="core_%s"' % STAMP_RE,
                     r.header("Content-Disposition") or "")
    assert m, r.headers
    assert_recent_stamp(m.group(1), m.group(2))
    assert r.header("X-Dump-Type") == dump_type, r.headers
    if r.method == "GET":
        assert int(r.header("Content-Length")) == len(r.body) and r.body[:4] == b"\x7fELF", r


def test_dump_type_numbers_and_names():
    """`type` is dotnet-monitor's DumpType (Full = 1, Mini = 2, WithHeap = 3,
    Triage = 4; names in any case; WithHeap by default), not MINIDUMP_TYPE:
    type=2 is a mini dump that leaves a 24 MiB heap out, WithHeap takes it."""
    s = h.shared()
    proc, pid = heap_target(24)
    # HEAD gives the headers a GET starts with, without a dump.
    for q, bits in (("", "0x201"), ("type=1", "0x2"), ("type=2", "0x0"), ("type=3", "0x201"),
                    ("type=4", "0x100000"), ("type=full", "0x2"), ("type=MINI", "0x0"),
                    ("type=withHeap", "0x201"), ("type=Triage", "0x100000")):
        assert_monitor_core(s.head("/dump?pid=%d&%s" % (pid, q)), pid, bits)
    for bad in ("0", "5", "0x201", "Heap", "Normal", "Full,Mini", "1.0", "-1"):
        doc = h.assert_problem(s.get("/dump?pid=%d&type=%s" % (pid, bad)), 400, "type")
        assert "Full, Mini, WithHeap or Triage" in doc["detail"], doc
    mini = s.get("/dump?pid=%d&type=2" % pid, timeout=300)
    assert_monitor_core(mini, pid, "0x0")
    assert_resumed(pid)
    heap = s.get("/dump?pid=%d&type=WITHHEAP" % pid, timeout=300)
    assert_monitor_core(heap, pid, "0x201")
    assert_resumed(pid)
    assert len(mini.body) < 24 << 20 < len(heap.body), (len(mini.body), len(heap.body))
    h.kill_tree(proc)


def test_dump_route_selects_and_names():
    """DumpTests: a dump by pid and by uid that gdb opens with every thread;
    the process stays discoverable; the zip has the same name plus .zip."""
    s = h.shared()
    t = h.target("threads", 2)
    r = s.get("/dump?pid=%d" % t.pid, timeout=120)
    assert_monitor_core(r, t.pid, "0x201")
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mondump-")
    try:
        core = save(r.body, tmp)
        assert readelf_type(core).startswith("CORE"), readelf_type(core)
        n, out = gdb_threads(h.PDTARGET, core)
        assert n == 3, out[-2000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert s.json("/process?pid=%d" % t.pid)["pid"] == t.pid
    uid = s.json("/process?pid=%d" % t.pid)["uid"]
    assert_monitor_core(s.get("/dump?uid=%s&type=Mini" % uid, timeout=120), t.pid, "0x0")
    r = s.head("/dump?pid=%d&format=zip" % t.pid)
    assert r.status == 200 and r.content_type == "application/zip", r
    m = re.fullmatch(r'attachment; filename="core_%s\.zip"' % STAMP_RE,
                     r.header("Content-Disposition") or "")
    assert m, r.headers
    h.assert_problem(s.get("/dump?pid=abc"), 400, "pid")
    h.assert_problem(s.get("/dump?pid=%d&format=tar" % t.pid), 400, "format")
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mondump-")
    try:
        lt = start_longname(tmp)
        r = s.get("/dump?name=%s&type=Mini" % LONGNAME.upper(), timeout=120)
        assert_monitor_core(r, lt.pid, "0x0")
        assert_resumed(lt.pid)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert_resumed(t.pid)


def test_monitor_routes_need_a_key_and_take_head():
    s = h.shared()
    for path in ("/processes", "/process?pid=%d" % os.getpid(), "/env?pid=%d" % os.getpid(),
                 "/info"):
        h.assert_problem(s.get(path, auth=False), 401)
        r = s.head(path)
        assert r.status == 200 and r.body == b"", (path, r)
        doc = s.request("DELETE", path)
        h.assert_problem(doc, 405)
        assert doc.header("Allow") == "GET, HEAD", doc


if __name__ == "__main__":
    h.main(globals())
