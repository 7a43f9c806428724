#!/usr/bin/env python3
"""DELETE /{id} and POST /{id}/stop: whole trees, nothing left, nothing
protected touched."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def chain_with_starttimes(t):
    return [(p, t.starttimes[p]) for p in t.chain]


def assert_killed(r, t, pids=None):
    assert r.status == 204, r
    assert r.body == b"", r
    # procdiag answers 204 once the whole tree has exited: nothing to wait for.
    left = h.wait_gone(pids or chain_with_starttimes(t), timeout=0)
    assert not left, "still running after a 204: %s" % left


def test_delete_three_level_tree():
    s = h.shared()
    t = h.target("tree", 3)
    assert all(h.alive(p) for p in t.chain)
    assert_killed(s.delete("/api/processes/%d" % t.pid), t)
    t.proc.wait(timeout=5)
    assert t.proc.returncode == -9, "top was not SIGKILLed: %s" % t.proc.returncode
    # And it is gone from the list and the detail.
    assert t.pid not in {it["id"] for it in s.json("/api/processes")}
    h.assert_problem(s.get("/api/processes/%d" % t.chain[-1]), 404)


def test_post_stop_kills_tree_under_every_prefix():
    s = h.shared()
    for prefix in h.PREFIXES:
        t = h.target("tree", 3, "threads", 2)
        assert_killed(s.post("%s/%d/stop" % (prefix, t.pid)), t)


def test_delete_middle_of_tree_spares_the_parent():
    s = h.shared()
    t = h.target("tree", 3)
    top, mid, leaf = t.chain
    assert_killed(s.delete("/api/processes/%d" % mid), t,
                  [(mid, t.starttimes[mid]), (leaf, t.starttimes[leaf])])
    assert h.alive(top, t.starttimes[top]), "the parent of the killed subtree died"


def test_delete_wide_tree():
    """A process with many direct children, each with a child of its own."""
    s = h.shared()
    script = ("import os, sys, time\n"
              "pids = []\n"
              "for i in range(20):\n"
              "    r, w = os.pipe()\n"
              "    p = os.fork()\n"
              "    if p == 0:\n"
              "        q = os.fork()\n"
              "        if q == 0:\n"
              "            os.write(w, b'%d\\n' % os.getpid()); time.sleep(600); os._exit(0)\n"
              "        os.write(w, b'%d\\n' % os.getpid()); time.sleep(600); os._exit(0)\n"
              "    os.close(w)\n"
              "    data = b''\n"
              "    while data.count(b'\\n') < 2:\n"
              "        data += os.read(r, 100)\n"
              "    pids += data.split()\n"
              "print('ready', os.getpid(), *[int(x) for x in pids], flush=True)\n"
              "time.sleep(600)\n")
    p = h.spawn([sys.executable, "-c", script])
    words = h.read_line(p).split()
    assert words[0] == "ready", words
    pids = [int(w) for w in words[1:]]
    assert len(pids) == 41, pids
    items = [(x, h.proc_stat(x)["starttime"]) for x in pids]
    r = s.delete("/api/processes/%d" % pids[0])
    assert r.status == 204, r
    left = h.wait_gone(items, timeout=0)
    assert not left, "left alive after a 204: %s" % left


def test_kill_zombies_parent():
    """The parent of a zombie is killed; the zombie, already dead, is no
    obstacle: the kernel hands it to us (the harness is a subreaper), and
    we reap it with the status it exited with (0), untouched."""
    s = h.shared()
    t = h.target("zombie", "threads", 1)
    assert h.proc_stat(t.zombie)["state"] == "Z"
    r = s.delete("/api/processes/%d" % t.pid)
    assert r.status == 204 and r.body == b"", r
    t.proc.wait(timeout=5)
    assert t.proc.returncode == -9, "the parent was not SIGKILLed: %s" % t.proc.returncode
    st = h.proc_stat(t.zombie)
    assert st and st["state"] == "Z" and st["ppid"] == os.getpid(), st
    pid, status = os.waitpid(t.zombie, os.WNOHANG)
    assert pid == t.zombie and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert h.proc_stat(t.zombie) is None


def test_delete_a_zombie_itself():
    s = h.shared()
    t = h.target("zombie")
    r = s.delete("/api/processes/%d" % t.zombie)
    # It is dead already: signalled (a no-op) and found exited at once: 204.
    assert r.status == 204 and r.body == b"", r
    assert h.alive(t.pid), "killing the zombie killed its parent"
    assert h.proc_stat(t.zombie)["state"] == "Z", "the zombie was reaped by someone"


def test_protected_processes_are_403():
    s = h.shared()
    # the responder's parent, an ancestor: the harness, or what started the
    # installed service (never the test itself then: it is in scope)
    me = h.proc_stat(s.pd.pid)["ppid"] if h.INSTALLED else os.getpid()
    for pid, what in ((1, "pid 1"), (s.pd.pid, "the responder"),
                      (me, "the responder's parent")):
        for method, path in (("DELETE", "/api/processes/%d" % pid),
                             ("POST", "/api/processes/%d/stop" % pid),
                             ("DELETE", "/diagnostics/processes/%d" % pid)):
            r = s.request(method, path)
            h.assert_problem(r, 403)
    # id 0 is the site process, none here (never the responder itself).
    h.assert_problem(s.delete("/api/processes/0"), 404, "id")
    assert s.pd.poll() is None, "the responder killed itself"
    assert h.alive(1)


def test_kill_unknown_and_out_of_scope_is_404():
    s = h.shared()
    nobody = h.sleep_as_nobody()
    for method, path in (("DELETE", "/api/processes/%d"), ("POST", "/api/processes/%d/stop")):
        h.assert_problem(s.request(method, path % nobody.pid), 404)
        h.assert_problem(s.request(method, path % h.unused_pid()), 404)
    assert h.alive(nobody.pid), "an out-of-scope process was killed"


def test_kill_kernel_thread_is_403_and_nothing_is_signalled():
    """Kernel threads are refused (403) before anything is signalled: a leaf
    kernel thread, and kthreadd itself, whose tree holds every kernel thread
    (a few of them, nfsd or lockd, would accept SIGKILL)."""
    assert os.geteuid() == 0, "the e2e tests run as root (CI does)"
    s = h.shared()
    leaf = kernel_leaf_ignoring_sigkill()
    # PF_KTHREAD: a kernel thread, not a user-mode helper the kernel starts
    # as kthreadd's child (a core_pattern pipe handler).
    before = {p: st for p, st in h.children_of(2).items() if st["flags"] & 0x00200000}
    for pid in (leaf, 2):
        r = s.delete("/api/processes/%d" % pid)
        doc = h.assert_problem(r, 403)
        assert "kernel thread" in doc["detail"] and doc.get("parameter") == "id", doc
    assert h.alive(leaf) and h.alive(2)
    assert len(before) > 5, before
    # Kernel threads come and go on their own (kworkers); none of the
    # long-lived named ones may be gone.
    gone = [(p, st["comm"]) for p, st in before.items()
            if not h.alive(p, st["starttime"]) and not st["comm"].startswith(b"kworker")]
    assert not gone, "kernel threads gone after a refused kill: %r" % gone


def kernel_leaf_ignoring_sigkill():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = h.proc_stat(int(d))
            if st:
                kids.setdefault(st["ppid"], []).append(int(d))
    for pid in sorted(kids.get(2, [])):
        if pid in kids or not h.is_kernel_thread(pid):
            continue
        ign = int((h.proc_status(pid) or {}).get("SigIgn", "0"), 16)
        if ign & (1 << 8):  # SIGKILL (9) is ignored
            return pid
    raise AssertionError("no kernel thread that ignores SIGKILL was found")


def test_cross_site_kill_is_refused():
    """A browser holding the Basic credentials would send them with a form
    another site's page posts to /stop: a foreign Origin or Sec-Fetch-Site
    cross-site is a 403 and nothing is signalled; our own origin works."""
    s = h.shared()
    t = h.target("threads", 1)
    for hdrs in ({"Origin": "http://evil.example"},
                 {"Origin": "null"},
                 {"Sec-Fetch-Site": "cross-site"},
                 {"Sec-Fetch-Site": "same-site", "Origin": s.base}):
        for method, path in (("DELETE", "/api/processes/%d"), ("POST", "/api/processes/%d/stop")):
            r = s.request(method, path % t.pid, headers=hdrs)
            h.assert_problem(r, 403)
            assert h.alive(t.pid, t.starttimes[t.pid]), (hdrs, "the target was killed")
    # GET is never refused for its origin: links from anywhere may be followed.
    assert s.get("/api/processes/%d" % t.pid, headers={"Origin": "http://evil.example"}).status == 200
    r = s.post("/api/processes/%d/stop" % t.pid,
               headers={"Origin": s.base, "Sec-Fetch-Site": "same-origin"})
    assert r.status == 204, r
    assert not h.wait_gone([(t.pid, t.starttimes[t.pid])], timeout=0), "alive after a 204"

if __name__ == "__main__":
    h.main(globals())
