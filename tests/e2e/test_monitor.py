#!/usr/bin/env python3
"""The dotnet-monitor-style routes (/processes, /process, /env, /info) and
their process selection (pid, uid, name), through nginx, judged by /proc."""
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

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
    # The default process is the site process: the responder by default.
    assert [p["pid"] for p in a.values() if p["isDefault"]] == [s.pd.pid], a.get(s.pd.pid)
    assert len({p["uid"] for p in a.values()}) == len(a), "two processes share a uid"


def test_uid_is_per_instance_not_per_pid():
    """A uid names one run of a process: a new process never has an old one's
    uid, and an old uid no longer selects anything once its process is gone."""
    s = h.shared()
    t = h.target("threads", 1)
    uid = s.json("/process?pid=%d" % t.pid)["uid"]
    t.kill()
    h.assert_problem(s.get("/process?uid=%s" % uid), 404, "uid")
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
    s = h.shared()
    d = s.json("/process")
    assert d["pid"] == s.pd.pid and d["name"] == "procdiag", d


def test_selection_errors():
    """No match is a 404 naming the parameter; an ambiguous name a 400 that
    lists the candidates; malformed values a 400."""
    s = h.shared()
    t = h.target("threads", 1)
    other = s.json("/process?pid=%d" % s.pd.pid)["uid"]
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mon-")
    try:
        twins = named_sleepers(tmp, "pdmon-twin", 2)
        doc = h.assert_problem(s.get("/process?name=pdmon-twin"), 400, "name")
        assert sorted(doc["pids"]) == sorted(p.pid for p in twins), doc
        assert all(str(p.pid) in doc["detail"] for p in twins), doc
        h.assert_problem(s.get("/env?name=pdmon-twin"), 400, "name")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    h.assert_problem(s.get("/process?name=pdmon-nothing-has-this"), 404, "name")
    h.assert_problem(s.get("/process?uid=00000000-0000-8000-8000-000000000000"), 404, "uid")
    h.assert_problem(s.get("/process?pid=4194303"), 404, "pid")
    h.assert_problem(s.get("/process?pid=%d&uid=%s" % (t.pid, other)), 404, "uid")
    h.assert_problem(s.get("/process?pid=%d&name=bash" % t.pid), 404, "name")
    for q, param in (("pid=abc", "pid"), ("pid=0", "pid"), ("pid=-1", "pid"),
                     ("uid=xyz", "uid"), ("uid=%s" % other[:-1], "uid")):
        h.assert_problem(s.get("/process?" + q), 400, param)
    # Out of scope answers like nonexistent.
    nobody = h.sleep_as_nobody()
    h.assert_problem(s.get("/process?pid=%d" % nobody.pid), 404, "pid")
    assert nobody.pid not in [p["pid"] for p in s.json("/processes")]


def test_env():
    s = h.shared()
    t = h.target("threads", 1, extra_env={"PDMON_MARK": "a=b c", "PDMON_EMPTY": ""})
    env = s.json("/env?pid=%d" % t.pid)
    assert env["PDMON_MARK"] == "a=b c" and env["PDMON_EMPTY"] == "", env
    with open("/proc/%d/environ" % t.pid, "rb") as f:
        names = {kv.split(b"=", 1)[0].decode() for kv in f.read().split(b"\0") if kv}
    assert set(env) == names, set(env) ^ names
    h.assert_problem(s.get("/env?pid=4194303"), 404, "pid")


def test_info():
    s = h.shared()
    info = s.json("/info")
    version = subprocess.run([h.PROCDIAG, "--version"], stdout=subprocess.PIPE,
                             check=True).stdout.decode().split()[-1]
    assert info["version"] == version, (info, version)
    assert info["operatingSystem"] == "linux", info
    names = {c["name"] for c in info["capabilities"]}
    assert {"processes", "environment", "kill", "dumps", "stacks"} <= names, info


def test_monitor_routes_need_a_key_and_take_head():
    s = h.shared()
    for path in ("/processes", "/process", "/env?pid=%d" % os.getpid(), "/info"):
        h.assert_problem(s.get(path, auth=False), 401)
        r = s.head(path)
        assert r.status == 200 and r.body == b"", (path, r)
        doc = s.request("DELETE", path)
        h.assert_problem(doc, 405)
        assert doc.header("Allow") == "GET, HEAD", doc


if __name__ == "__main__":
    h.main(globals())
