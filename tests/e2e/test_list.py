#!/usr/bin/env python3
"""GET /api/processes (and its two other prefixes) through nginx, judged by
/proc and ps."""
import os
import pwd
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ITEM_KEYS = {"id", "name", "machineName", "href", "user_name"}


def unescape(name):
    """procdiag's \\xNN back to bytes (names that really contain a backslash
    followed by xNN are ambiguous; none of ours do)."""
    return re.sub(rb"\\x([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  name.encode("utf-8"))


def snapshot_uids():
    """{pid: (uid, starttime)} of every process now."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = h.proc_stat(int(d))
                if st:
                    out[int(d)] = (os.stat("/proc/" + d).st_uid, st["starttime"])
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def test_list_items_have_kudu_fields():
    s = h.shared()
    items = s.json("/api/processes")
    assert isinstance(items, list) and items, items
    host = socket.gethostname()
    for it in items:
        assert ITEM_KEYS <= set(it), "missing fields in %r" % it
        assert isinstance(it["id"], int) and it["id"] > 0, it
        assert isinstance(it["name"], str) and it["name"], it
        assert it["machineName"] == host, (it, host)
        assert it["href"] == "%s/api/processes/%d" % (s.base, it["id"]), it
        # Kudu's DOMAIN\\user form: the host stands for the domain.
        assert it["user_name"].startswith(host + "\\"), it


def test_list_contains_own_processes_with_ps_values():
    s = h.shared()
    t = h.target("threads", 2)
    items = {it["id"]: it for it in s.json("/api/processes")}
    me = os.getuid()
    for pid in (t.pid, os.getpid(), s.pd.pid):
        assert pid in items, "pid %d (ours) is not listed" % pid
        it = items[pid]
        assert it["name"] == h.escape_bytes(h.proc_stat(pid)["comm"]), it
        assert it["name"] == h.ps(pid, "comm"), (it, h.ps(pid, "comm"))
        user = it["user_name"].split("\\")[1]
        assert user == pwd.getpwuid(me).pw_name == h.ps(pid, "user"), it


def test_list_is_the_scope_of_our_uid():
    """Every process of our uid that lived through the request is listed;
    nothing of another uid is (scope = self)."""
    s = h.shared()
    me = os.getuid()
    before = snapshot_uids()
    items = s.json("/api/processes")
    after = snapshot_uids()
    listed = {it["id"] for it in items}
    stable = {p for p, v in before.items() if after.get(p) == v}
    must = {p for p in stable if before[p][0] == me}
    missing = must - listed
    assert not missing, "processes of uid %d not listed: %s" % (me, sorted(missing))
    for p in listed:
        # (A pid seen neither before nor after lived only during the scan.)
        v = before.get(p) or after.get(p)
        assert v is None or v[0] == me, "listed pid %d belongs to uid %d" % (p, v[0])
    assert len(items) == len(listed), "a pid is listed twice"


def test_list_sorted_by_lower_case_name_then_pid():
    s = h.shared()
    items = s.json("/api/processes?allUsers=true")
    keys = [(unescape(it["name"]).lower(), it["id"]) for it in items]
    for a, b in zip(keys, keys[1:]):
        assert a <= b, "not sorted: %r before %r" % (a, b)


def test_list_under_every_prefix():
    s = h.shared()
    t = h.target()
    for prefix in h.PREFIXES:
        items = s.json(prefix)
        mine = [it for it in items if it["id"] == t.pid]
        assert len(mine) == 1, "%s does not list pid %d" % (prefix, t.pid)
        assert mine[0]["href"] == "%s%s/%d" % (s.base, prefix, t.pid), mine
        for it in items:
            assert it["href"].startswith(s.base + prefix + "/"), it


def test_list_all_users_includes_kthreadd():
    """As root with scope self, kthreadd (pid 2, root) is listed; with
    allUsers too, and the parameter name is case-insensitive."""
    assert os.geteuid() == 0, "the e2e tests run as root (CI does)"
    s = h.shared()
    for q in ("?allUsers=true", "?allusers=TRUE", "?allUsers=1", ""):
        items = s.json("/api/processes" + q)
        k = [it for it in items if it["id"] == 2]
        assert len(k) == 1 and k[0]["name"] == "kthreadd", (q, k)
    items = s.json("/api/processes?allUsers=false")
    assert any(it["id"] == os.getpid() for it in items)


def test_list_bad_all_users_is_400():
    s = h.shared()
    h.assert_problem(s.get("/api/processes?allUsers=maybe"), 400, "allUsers")


def test_list_while_processes_come_and_go():
    """Processes exiting while the list is built never break it: always 200
    and valid JSON, from several clients at once."""
    s = h.shared()
    # Each round of a churn shell forks three processes and writes one byte.
    counts = [os.path.join(s.dir, "churn-%d" % i) for i in range(2)]
    churn = []
    for c in counts:
        with open(c, "wb") as out:
            churn.append(h.spawn(["sh", "-c", "while :; do /bin/true & /bin/true & /bin/true & "
                                  "wait; printf .; done"], stdout=out))
    errors = []

    def forked():
        return 3 * sum(os.path.getsize(c) for c in counts)

    first = forked()
    # The clients go on until the churn has made 100 processes (bounded).
    deadline = time.monotonic() + 60

    def client(n):
        try:
            i = 0
            while i < n or forked() - first < 100:
                if time.monotonic() > deadline:
                    errors.append("the churn made only %d processes in 60 s" % (forked() - first))
                    return
                i += 1
                r = s.get("/api/processes" + ("?allUsers=true" if i % 2 else ""))
                if r.status != 200:
                    errors.append(repr(r))
                    return
                items = r.json()
                assert isinstance(items, list) and all(ITEM_KEYS <= set(x) for x in items)
                pid = items[i % len(items)]["id"]
                d = s.get("/api/processes/%d" % pid)
                # A process reaped in between is a 404 (and stays gone); one
                # that is there, even a zombie, a 200.
                if d.status == 404:
                    h.assert_problem(d, 404)
                    if h.proc_stat(pid) is not None:
                        errors.append("404 for pid %d, which is there: %r" % (pid, d))
                elif d.status != 200:
                    errors.append(repr(d))
                else:
                    d.json()
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %s" % (type(e).__name__, e))

    threads = [threading.Thread(target=client, args=(40,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    forks = forked() - first
    for c in churn:
        h.kill_tree(c)
    assert not errors, errors[:5]
    assert forks >= 100, "the churn made only %d processes while the lists ran" % forks


def names_by_pid(items):
    return {it["id"]: it["name"] for it in items}


def wait_comm(pid, comm, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = h.proc_stat(pid)
        if st and st["comm"] == comm:
            return
        time.sleep(0.02)
    raise AssertionError("pid %d never became %r" % (pid, comm))


def test_list_follows_every_change():
    """Each list reflects /proc at its scan: a new process appears, a process
    that exec()s shows its new name under the same pid (the same pid set
    must not be answered from the previous rendering), one that exited is
    gone."""
    s = h.shared()
    marker = os.path.join(s.dir, "go-exec")
    p = h.spawn(["sh", "-c", "while [ ! -e %s ]; do sleep 0.01; done; exec sleep 100" % marker],
                stdout=subprocess.DEVNULL)
    wait_comm(p.pid, b"sh")
    assert names_by_pid(s.json("/api/processes")).get(p.pid) == "sh"
    open(marker, "w").close()
    wait_comm(p.pid, b"sleep")
    assert names_by_pid(s.json("/api/processes")).get(p.pid) == "sleep"
    h.kill_tree(p)
    assert p.pid not in names_by_pid(s.json("/api/processes"))


def test_list_max_age_answers_an_older_scan():
    """With list_max_age_ms set, a list within that age is the previous scan
    (a process started since is not in it yet) while the detail is fresh;
    with the default (0) the next list has it (test above)."""
    with h.Stack(config_lines=["list_max_age_ms = 60000"]) as s:
        s.json("/api/processes")
        t = h.target("threads", 1)
        try:
            assert t.pid not in names_by_pid(s.json("/api/processes"))
            assert s.json("/api/processes/%d" % t.pid)["id"] == t.pid
        finally:
            h.kill_tree(t.proc)


def test_list_head():
    s = h.shared()
    g = s.get("/api/processes")
    r = s.head("/api/processes")
    assert r.status == 200, r
    assert r.body == b"", r
    assert r.content_type == g.content_type == "application/json"


if __name__ == "__main__":
    h.main(globals())
