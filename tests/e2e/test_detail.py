#!/usr/bin/env python3
"""GET /{id}, /{id}/threads[/{tid}], /{id}/modules[/{base}],
/{id}/environments/{filter} against real targets, judged by /proc, ps and
eu-readelf."""
import calendar
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DETAIL_KEYS = {
    "id", "name", "machineName", "href", "user_name", "minidump", "parent", "children",
    "threads", "open_file_handles", "modules", "file_name", "command_line", "handle_count",
    "module_count", "thread_count", "start_time", "total_cpu_time", "user_cpu_time",
    "privileged_cpu_time", "working_set", "peak_working_set", "private_memory",
    "virtual_memory", "peak_virtual_memory", "paged_memory", "peak_paged_memory",
    "paged_system_memory", "non_paged_system_memory", "time_stamp",
    "environment_variables", "ppid", "state", "uid",
}
THREAD_KEYS = {
    "id", "href", "state", "process", "name", "current_priority", "base_priority",
    "priority_level", "start_time", "total_processor_time", "user_processor_time",
    "priviledged_processor_time",
}
MODULE_KEYS = {"base_address", "file_name", "file_path", "module_memory_size", "build_id",
               "href"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
TIMESPAN = re.compile(r"^(\d+\.)?(\d\d):(\d\d):(\d\d)\.(\d{7})$")
PRIORITY_LEVELS = {"Idle", "Lowest", "BelowNormal", "Normal", "AboveNormal", "Highest",
                   "TimeCritical"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MARKER = "PD_E2E_MARKER"


def iso_epoch(s):
    assert ISO.match(s), "not UTC ISO-8601 with 7 digits: %r" % s
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + int(s[20:27]) / 1e7


def timespan_seconds(s):
    m = TIMESPAN.match(s)
    assert m, "not a TimeSpan [d.]hh:mm:ss.fffffff: %r" % s
    days = int(m.group(1)[:-1]) if m.group(1) else 0
    hh, mm, ss = int(m.group(2)), int(m.group(3)), int(m.group(4))
    assert hh < 24 and mm < 60 and ss < 60, s
    return days * 86400 + hh * 3600 + mm * 60 + ss + int(m.group(5)) / 1e7


def started_at(pid):
    """Wall-clock start time of pid from /proc (uptime-based, ~10 ms)."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - uptime + h.proc_stat(pid)["starttime"] / CLK_TCK


def environ_of(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        data = f.read()
    out = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            if k and h.escape_bytes(k) not in out:
                out[h.escape_bytes(k)] = h.escape_bytes(v)
    return out


def maps_of(pid):
    """[(start, end, path)] of /proc/PID/maps lines that name a file."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6:
                a, b = parts[0].split("-")
                out.append((int(a, 16), int(b, 16), parts[5].rstrip("\n")))
    return out


def start_target(tmpdir):
    path = os.path.join(tmpdir, "held-open.txt")
    with open(path, "w") as f:
        f.write("x")
    t = h.target("threads", 4, "open", path, extra_env={MARKER: "hello-e2e", "pd_e2e_lower": "x"})
    return t, path


def test_detail_fields_match_proc_and_ps():
    s = h.shared()
    tmp = tempfile.mkdtemp(prefix="pd-e2e-detail-")
    try:
        t, held = start_target(tmp)
        d = s.json("/api/processes/%d" % t.pid)
        now = time.time()
        missing = DETAIL_KEYS - set(d)
        assert not missing, "detail lacks %s" % sorted(missing)
        pid = t.pid
        href = "%s/api/processes/%d" % (s.base, pid)
        assert d["id"] == pid and d["href"] == href, d
        assert d["name"] == "pdtarget" == h.ps(pid, "comm"), d["name"]
        assert d["minidump"] == href + "/dump", d["minidump"]
        assert d["ppid"] == os.getpid() == int(h.ps(pid, "ppid")), d["ppid"]
        assert d["parent"] == "%s/api/processes/%d" % (s.base, os.getpid()), d["parent"]
        assert d["children"] == [], d["children"]
        assert d["state"] == "Sleeping", d["state"]
        assert d["uid"] == os.getuid(), d
        assert d["user_name"] == "%s\\%s" % (socket.gethostname(), h.ps(pid, "user")), d
        # Threads: the main one and four blocked ones.
        tasks = sorted(int(x) for x in os.listdir("/proc/%d/task" % pid))
        assert d["thread_count"] == 5 == len(tasks) == int(h.ps(pid, "nlwp")), d["thread_count"]
        assert sorted(x["id"] for x in d["threads"]) == tasks, d["threads"]
        for th in d["threads"]:
            assert set(th) >= {"id", "href", "state"}, th
            assert th["href"] == "%s/threads/%d" % (href, th["id"]), th
        # Files and command line.
        assert d["file_name"] == os.path.realpath(h.PDTARGET), d["file_name"]
        assert d["command_line"] == "%s threads 4 open %s" % (h.PDTARGET, held), d["command_line"]
        assert d["command_line"] == h.ps(pid, "args"), (d["command_line"], h.ps(pid, "args"))
        assert held in d["open_file_handles"], d["open_file_handles"]
        assert d["handle_count"] == len(os.listdir("/proc/%d/fd" % pid)), d["handle_count"]
        assert d["handle_count"] == len(d["open_file_handles"]), d
        # Memory (a paused process: the numbers hold still).
        st = h.proc_status(pid)
        kb = lambda k: int(st[k].split()[0]) * 1024  # noqa: E731
        assert abs(d["working_set"] - kb("VmRSS")) <= 64 * 1024, (d["working_set"], st["VmRSS"])
        assert abs(d["working_set"] - int(h.ps(pid, "rss")) * 1024) <= 64 * 1024, d["working_set"]
        assert d["peak_working_set"] == kb("VmHWM"), (d["peak_working_set"], st["VmHWM"])
        assert d["virtual_memory"] == kb("VmSize"), (d["virtual_memory"], st["VmSize"])
        assert d["peak_virtual_memory"] == kb("VmPeak"), (d["peak_virtual_memory"], st["VmPeak"])
        assert d["paged_memory"] == kb("VmSwap"), (d["paged_memory"], st["VmSwap"])
        for k in ("peak_paged_memory", "paged_system_memory", "non_paged_system_memory"):
            assert d[k] == -1, "%s has no Linux counterpart: Kudu's -1, not %r" % (k, d[k])
        assert isinstance(d["private_memory"], int) and 0 < d["private_memory"] <= kb("VmRSS"), d
        # Times.
        assert abs(iso_epoch(d["start_time"]) - started_at(pid)) < 1.0, \
            (d["start_time"], started_at(pid))
        assert abs(iso_epoch(d["time_stamp"]) - now) < 5, d["time_stamp"]
        ps_ = h.proc_stat(pid)
        user = timespan_seconds(d["user_cpu_time"])
        sys_ = timespan_seconds(d["privileged_cpu_time"])
        assert abs(user - ps_["utime"] / CLK_TCK) < 1e-6, (d["user_cpu_time"], ps_["utime"])
        assert abs(sys_ - ps_["stime"] / CLK_TCK) < 1e-6, (d["privileged_cpu_time"], ps_["stime"])
        assert abs(timespan_seconds(d["total_cpu_time"]) - (user + sys_)) < 1e-6, d
        # Modules.
        assert d["module_count"] == len(d["modules"]), d
        names = [m["file_name"] for m in d["modules"]]
        assert "libc.so.6" in names and "pdtarget" in names, names
        assert names == sorted(names), "modules not sorted by file name: %s" % names
        for m in d["modules"]:
            assert re.match(r"^[0-9a-f]+$", m["base_address"]), m
            assert m["href"] == "%s/modules/%s" % (href, m["base_address"]), m
        # Environment.
        assert d["environment_variables"] == environ_of(pid), d["environment_variables"]
        assert d["environment_variables"][MARKER] == "hello-e2e"
        assert h.assert_hrefs(s, d) > 5
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_detail_under_every_prefix_links_stay_there():
    s = h.shared()
    t = h.target("threads", 1)
    for prefix in h.PREFIXES:
        d = s.json("%s/%d" % (prefix, t.pid))
        href = "%s%s/%d" % (s.base, prefix, t.pid)
        assert d["href"] == href and d["minidump"] == href + "/dump", d
        assert d["parent"] == "%s%s/%d" % (s.base, prefix, os.getpid()), d["parent"]
        for x in d["threads"]:
            assert x["href"].startswith(href + "/threads/"), x
        for x in d["modules"]:
            assert x["href"].startswith(href + "/modules/"), x


def test_id_zero_is_the_site_process():
    """id 0 is the process in site_pid_file (never procdiag by default: see
    test_attack_self.py); its detail links to its real id."""
    with h.Stack(site=True) as s:
        h.assert_problem(s.get("/api/processes/0"), 404, "id")  # no pid in the file yet
        t = h.target("threads", 2)
        s.set_site(t.pid)
        d = s.json("/api/processes/0")
        assert d["id"] == t.pid and d["name"] == "pdtarget", (d["id"], d["name"], t.pid)
        assert d["href"] == "%s/api/processes/%d" % (s.base, t.pid), d["href"]
        assert d["ppid"] == os.getpid(), d["ppid"]
        assert d["thread_count"] == len(os.listdir("/proc/%d/task" % t.pid))
        # The index links id 0 only where a site process is configured.
        assert s.json("/")["links"]["site_process"] == s.base + "/api/processes/0"
    assert "site_process" not in h.shared().json("/")["links"]


def test_tree_parent_and_children_links():
    s = h.shared()
    t = h.target("tree", 3)
    top, mid, leaf = t.chain
    url = lambda p: "%s/api/processes/%d" % (s.base, p)  # noqa: E731
    dt, dm, dl = (s.json("/api/processes/%d" % p) for p in (top, mid, leaf))
    assert dt["children"] == [url(mid)], dt["children"]
    assert dm["parent"] == url(top) and dm["ppid"] == top and dm["children"] == [url(leaf)], dm
    assert dl["parent"] == url(mid) and dl["ppid"] == mid and dl["children"] == [], dl
    for d, p in ((dt, top), (dm, mid), (dl, leaf)):
        assert d["ppid"] == int(h.ps(p, "ppid")), (d["ppid"], p)


def test_threads_list_and_detail():
    s = h.shared()
    t = h.target("threads", 3)
    base = "/api/processes/%d/threads" % t.pid
    lst = s.json(base)
    tasks = sorted(int(x) for x in os.listdir("/proc/%d/task" % t.pid))
    assert sorted(x["id"] for x in lst) == tasks, (lst, tasks)
    assert len(lst) == 4
    for x in lst:
        assert set(x) >= {"id", "href", "state"}, x
        assert x["href"] == "%s%s/%d" % (s.base, base, x["id"]), x
        d = s.json("%s/%d" % (base, x["id"]))
        missing = THREAD_KEYS - set(d)
        assert not missing, "thread detail lacks %s" % sorted(missing)
        assert d["id"] == x["id"] and d["href"] == x["href"], d
        assert d["process"] == "%s/api/processes/%d" % (s.base, t.pid), d["process"]
        with open("/proc/%d/task/%d/comm" % (t.pid, x["id"]), "rb") as f:
            assert d["name"] == h.escape_bytes(f.read().rstrip(b"\n")), d["name"]
        assert d["state"] == "Sleeping", d
        assert d["priority_level"] in PRIORITY_LEVELS, d
        assert isinstance(d["current_priority"], int) and isinstance(d["base_priority"], int), d
        assert d["priority_level"] == "Normal" and d["base_priority"] == 0, d
        iso_epoch(d["start_time"])
        for k in ("total_processor_time", "user_processor_time", "priviledged_processor_time"):
            timespan_seconds(d[k])
    # A tid of another process is not a thread of this one.
    h.assert_problem(s.get("%s/%d" % (base, os.getpid())), 404)
    h.assert_problem(s.get(base + "/abc"), 400, "tid")


def test_modules_list_and_detail_with_build_id():
    s = h.shared()
    t = h.target()
    base = "/api/processes/%d/modules" % t.pid
    lst = s.json(base)
    libc = [m for m in lst if m["file_name"] == "libc.so.6"]
    assert len(libc) == 1, lst
    maps = maps_of(t.pid)
    for m in lst:
        assert re.match(r"^[0-9a-f]+$", m["base_address"]), m
        assert m["href"] == "%s%s/%s" % (s.base, base, m["base_address"]), m
    d = s.json("%s/%s" % (base, libc[0]["base_address"]))
    missing = MODULE_KEYS - set(d)
    assert not missing, "module detail lacks %s" % sorted(missing)
    path = d["file_path"]
    assert os.path.basename(path) == "libc.so.6" == d["file_name"], d
    mine = [(a, b) for a, b, p in maps if p == path]
    assert mine, "%s is not in /proc/%d/maps" % (path, t.pid)
    assert int(d["base_address"], 16) == min(a for a, _ in mine), (d["base_address"], mine)
    assert d["module_memory_size"] == max(b for _, b in mine) - min(a for a, _ in mine), d
    out = subprocess.run(["eu-readelf", "-n", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=True).stdout.decode()
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert m, "eu-readelf found no build-id in %s" % path
    assert re.match(r"^[0-9a-f]{40}$", d["build_id"]), d["build_id"]
    assert d["build_id"] == m.group(1), (d["build_id"], m.group(1))
    # The executable is a module too, with its own build-id.
    exe = [m for m in lst if m["file_name"] == "pdtarget"]
    assert len(exe) == 1, lst
    h.assert_problem(s.get(base + "/1000"), 404, "baseAddress")
    h.assert_problem(s.get(base + "/xyz"), 400, "baseAddress")


def test_environments_filter():
    s = h.shared()
    t = h.target(extra_env={MARKER: "v1", "pd_e2e_lower": "v2", "OTHER_PD_VAR": "v3"})
    base = "/api/processes/%d/environments/" % t.pid
    everything = s.json(base + "all")
    assert everything == environ_of(t.pid), everything
    assert s.json(base + "ALL") == everything
    sub = s.json(base + "pd_e2e")
    assert sub == {MARKER: "v1", "pd_e2e_lower": "v2"}, sub
    assert s.json(base + "PD_E2E") == sub
    assert s.json(base + "no-such-variable-anywhere") == {}
    assert all(isinstance(v, str) for v in everything.values())


def test_zombie_detail():
    s = h.shared()
    t = h.target("zombie")
    z = t.zombie
    assert h.proc_stat(z)["state"] == "Z"
    d = s.json("/api/processes/%d" % z)
    assert d["id"] == z and d["ppid"] == t.pid and d["state"] == "Zombie", d
    assert d["name"] == "pdtarget", d
    # Kudu's values for what a zombie no longer has.
    assert d["file_name"] == "N/A" and d["command_line"] == "", d
    assert d["modules"] == [] and d["open_file_handles"] == [], d
    assert d["environment_variables"] == {} and d["working_set"] == -1, d
    assert d["parent"] == "%s/api/processes/%d" % (s.base, t.pid), d["parent"]
    parent = s.json("/api/processes/%d" % t.pid)
    assert "%s/api/processes/%d" % (s.base, z) in parent["children"], parent["children"]
    # Every sub-resource answers what a zombie has: its one thread, no
    # modules, and no environment to read (the kernel freed it): Kudu's {}.
    threads = s.json("/api/processes/%d/threads" % z)
    assert [(th["id"], th["state"]) for th in threads] == [(z, "Zombie")], threads
    assert s.json("/api/processes/%d/modules" % z) == []
    assert s.json("/api/processes/%d/environments/all" % z) == {}


def test_kernel_thread_detail():
    """kthreadd (pid 2, root): listed with allUsers, its detail has Kudu's
    values where a kernel thread has nothing (exe, command line,
    environment), and its parent link (ppid 0) is id -1, which is a 404."""
    assert os.geteuid() == 0, "the e2e tests run as root (CI does)"
    assert h.is_kernel_thread(2), "pid 2 is not kthreadd here"
    s = h.shared()
    items = s.json("/api/processes?allUsers=true")
    assert [it["name"] for it in items if it["id"] == 2] == ["kthreadd"]
    before = set(h.children_of(2))
    d = s.json("/api/processes/2")
    after = set(h.children_of(2))
    assert d["name"] == "kthreadd" and d["ppid"] == 0, d
    assert d["parent"] == "%s/api/processes/-1" % s.base, d["parent"]
    h.assert_problem(s.get("/api/processes/-1"), 404)
    assert d["file_name"] == "N/A" and d["command_line"] == "", d
    assert d["environment_variables"] == {}, d
    assert d["modules"] == [] and d["module_count"] == 0, d["modules"]
    assert d["working_set"] == -1 and d["private_memory"] == -1, d
    assert d["thread_count"] == 1, d
    # Kernel threads come and go (kworkers in bursts on a busy machine), so
    # the links are judged against listings taken just before and after:
    # every child that lived across the request is linked, and every link
    # is a child of kthreadd, seen in one listing or born and gone between.
    children = {int(u.rsplit("/", 1)[1]) for u in d["children"]}
    stable = before & after
    assert stable and stable <= children, sorted(stable - children)
    strays = {c for c in children - before - after if os.path.exists("/proc/%d" % c)}
    assert not strays, sorted(strays)
    r = s.get("/api/processes/2/threads")
    assert r.status == 200 and len(r.json()) == 1, r


def make_named_copy(tmpdir, name_bytes):
    path = os.path.join(os.fsencode(tmpdir), name_bytes)
    shutil.copy("/bin/sleep", path)
    os.chmod(path, 0o755)
    return path


def test_hostile_names_are_valid_json():
    """A comm with ') (', a non-UTF-8 byte, a quote and a backslash: the JSON
    stays valid UTF-8, the name is exact, with \\xFF for the bad byte, and
    the fields after the comm in /proc/PID/stat (ppid...) are still right."""
    s = h.shared()
    tmp = tempfile.mkdtemp(prefix="pd-e2e-names-")
    try:
        cases = [(b"a) b\xff(c", "a) b\\xFF(c"), (b'q"u\\o) (te', 'q"u\\o) (te')]
        procs = []
        for raw, want in cases:
            path = make_named_copy(tmp, raw)
            p = h.spawn([path, "60"], stdout=subprocess.DEVNULL)
            h.wait_until(lambda: (h.proc_stat(p.pid) or {}).get("comm") == raw, 5,
                         "comm of %r" % raw)
            h.settle(p.pid)
            procs.append((p, path, want))
        r = s.get("/api/processes")
        assert r.status == 200, r
        assert b"\xff" not in r.body
        items = {it["id"]: it for it in r.json()}
        for p, path, want in procs:
            assert items[p.pid]["name"] == want, (items[p.pid], want)
            r = s.get("/api/processes/%d" % p.pid)
            assert r.status == 200 and b"\xff" not in r.body, r
            d = r.json()
            assert d["name"] == want, (d["name"], want)
            assert d["ppid"] == os.getpid() and d["state"] == "Sleeping", d
            assert d["thread_count"] == 1, d
            assert d["file_name"] == h.escape_bytes(path), (d["file_name"], path)
            assert d["command_line"] == h.escape_bytes(path) + " 60", d["command_line"]
            t = s.json("/api/processes/%d/threads/%d" % (p.pid, p.pid))
            assert t["name"] == want, t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
