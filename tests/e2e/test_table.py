#!/usr/bin/env python3
"""The live table's light JSON (GET /api/processes?view=table) keeps the fds
of the processes it lists open from one reading to the next (lib/top.h):
its rows stay right when processes exit, when a pid is reused by another
process, when a process changes owner and leaves or enters the scope, and
the responder's own descriptors stay bounded as processes come and go
(also when RLIMIT_NOFILE bounds how many it may keep). A poll within
250 ms of a reading answers from it."""
import collections
import os
import re
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GAP = 0.3  # more than PD_TOP_MIN_GAP_NS: the next poll reads /proc again


def rows(s):
    time.sleep(GAP)
    return {p["id"]: p for p in s.json("/api/processes?view=table")["processes"]}


def listed(s):
    return {p["id"] for p in s.json("/api/processes")}


def proc_fds(pid):
    """The pids whose /proc/PID or /proc/PID/stat process pid holds open,
    one entry per fd (the machine is shared: other processes come and go,
    so the tests count these, by pid, not the responder's fd total)."""
    held = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"^/proc/(\d+)(/stat)?$", link)
        if m:
            held.append(int(m.group(1)))
    return held


def proc_pids():
    return {int(d) for d in os.listdir("/proc") if d.isdigit()}


def sleepers(n, secs):
    ps = [h.spawn(["sleep", str(secs)], stdout=subprocess.DEVNULL) for _ in range(n)]
    h.wait_until(lambda: all((h.proc_stat(p.pid) or {}).get("comm") == b"sleep" for p in ps),
                 10, "the sleepers exec'd")
    return ps


def reap(ps):
    for p in ps:
        p.kill()
    for p in ps:
        p.wait()


def test_rows_go_when_processes_exit():
    s = h.shared()
    ps = sleepers(5, 60)
    r = rows(s)
    for p in ps:
        assert r[p.pid]["command_line"] == "sleep 60" and r[p.pid]["name"] == "sleep", r[p.pid]
    reap(ps[:3])
    r = rows(s)
    assert not {p.pid for p in ps[:3]} & set(r), "exited processes still listed"
    for p in ps[3:]:
        assert r[p.pid]["command_line"] == "sleep 60", r[p.pid]
    reap(ps[3:])


def test_reused_pid_is_the_new_process():
    """A pid whose process was read (its fds kept) and then ended, taken by
    another process: the row is the new one's (command line, start), never
    the kept one's."""
    s = h.shared()
    for attempt in range(30):
        a = sleepers(1, 60)[0]
        pid = a.pid
        r = rows(s)
        assert r[pid]["command_line"] == "sleep 60", r[pid]
        reap([a])
        time.sleep(0.05)  # a later start time, at the clock tick's grain
        # The next pid the kernel hands out: pid (root may set it).
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        b = h.spawn(["sleep", "61"], stdout=subprocess.DEVNULL)
        if b.pid == pid:
            break
        reap([b])  # another process took it first: again
    else:
        raise AssertionError("could not have a pid reused in 30 attempts")
    h.wait_until(lambda: (h.proc_stat(pid) or {}).get("comm") == b"sleep", 5, "sleep 61 exec'd")
    for _ in range(2):  # the first reading of the new process, and one through kept fds
        r = rows(s)
        assert r[pid]["command_line"] == "sleep 61", r[pid]
        assert r[pid]["uptime_seconds"] < 30, r[pid]
    reap([b])


SETEUID = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
def to(uid):
    os.seteuid(uid)
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/PID/* owned by the euid again
    os.write(1, b"done\n")
signal.signal(signal.SIGUSR1, lambda *a: to(65534))
signal.signal(signal.SIGUSR2, lambda *a: to(0))
os.write(1, b"ready\n")
while True:
    signal.pause()
"""


def test_owner_change_leaves_and_enters_the_scope():
    """scope = self (the responder's uid, root here): a process whose euid
    becomes nobody's leaves the table (as it leaves the list), and comes back
    when it becomes root again; the owner is read afresh at each reading,
    not kept with its fds."""
    s = h.shared()
    assert os.geteuid() == 0, "this test changes a process's uid: run as root"
    p = h.spawn([sys.executable, "-c", SETEUID])
    assert h.read_line(p) == "ready\n"
    try:
        r = rows(s)
        assert p.pid in r and r[p.pid]["user"] == "root", r.get(p.pid)
        rows(s)  # read again: its fds are kept now
        for sig, inside in ((signal.SIGUSR1, False), (signal.SIGUSR2, True),
                            (signal.SIGUSR1, False), (signal.SIGUSR2, True)):
            os.kill(p.pid, sig)
            assert h.read_line(p) == "done\n"
            assert h.proc_uid(p.pid) == (0 if inside else 65534)
            r = rows(s)
            assert (p.pid in r) == inside, (inside, r.get(p.pid))
            assert (p.pid in listed(s)) == inside, "the list and the table disagree"
            if inside:
                assert r[p.pid]["user"] == "root" and r[p.pid]["name"].startswith("python"), r[p.pid]
    finally:
        h.kill_tree(p)


def test_fds_bounded_as_processes_come_and_go():
    """Rounds of 150 processes started, listed (their rows right) and
    ended: while they run the responder keeps two fds of each; once they are
    gone, none of theirs is left, it keeps at most two per process, and
    fds of processes that ended around a reading go with the next one.
    The responder's RLIMIT_NOFILE is raised to its hard limit first: the
    processes whose fds are kept are bounded by it (an eighth, at most
    4096) and taken in pid order, so the machine's own processes (hundreds
    of kernel threads on a big one) come before the sleepers."""
    with h.Stack() as s:
        _, hard = resource.prlimit(s.pd.pid, resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            resource.prlimit(s.pd.pid, resource.RLIMIT_NOFILE, (hard, hard))
        bound = 4096 if hard == resource.RLIM_INFINITY else min(hard // 8, 4096)
        need = len(proc_pids()) + 150 + 100
        if bound < need:
            raise h.Skip("the responder may keep the fds of %d processes (hard RLIMIT_NOFILE "
                         "%d), fewer than the %d this machine would need" % (bound, hard, need))
        for _ in range(3):
            ps = sleepers(150, 60)
            mine = {p.pid for p in ps}
            r = rows(s)
            for p in ps:
                assert r[p.pid]["command_line"] == "sleep 60", r.get(p.pid)
            held = proc_fds(s.pd.pid)
            assert sum(1 for x in held if x in mine) == 2 * len(mine), "not kept"
            reap(ps)
            before = proc_pids()
            r = rows(s)
            held = proc_fds(s.pd.pid)
            after = proc_pids()
            assert not mine & set(r)
            assert not mine & set(held), ("fds of ended processes left open",
                                          sorted(mine & set(held))[:10])
            # At most two per process, and only of processes the reading
            # could have seen: listed before or after it, or started and
            # ended between the two listings (the machine's other processes
            # come and go around it; on a busy one, any number).
            per = collections.Counter(held)
            assert max(per.values(), default=0) <= 2, per.most_common(3)
            transient = set(held) - (before | after)
            # Those had ended by the second listing: the next reading drops
            # their fds (a pid reused meanwhile is a new process, listed).
            if transient:
                rows(s)
                left = transient & set(proc_fds(s.pd.pid)) - proc_pids()
                assert not left, ("fds of ended processes kept past a reading",
                                  sorted(left)[:10])


def test_fds_bounded_by_rlimit():
    """With RLIMIT_NOFILE at 256, at most 256 / 8 processes have their fds
    kept (two each); the others are read by name, their rows as right."""
    with h.Stack() as s:
        subprocess.run(["prlimit", "--pid", str(s.pd.pid), "--nofile=256:256"], check=True)
        most = []
        for _ in range(2):
            ps = sleepers(100, 60)
            r = rows(s)
            for p in ps:
                assert r[p.pid]["command_line"] == "sleep 60", r.get(p.pid)
            most.append(len(proc_fds(s.pd.pid)))
            reap(ps)
            r = rows(s)
            assert not {p.pid for p in ps} & set(r)
            assert not {p.pid for p in ps} & set(proc_fds(s.pd.pid))
            most.append(len(proc_fds(s.pd.pid)))
        # The bound is reached (100 processes and more) and never passed.
        assert max(most) == 2 * (256 // 8), most


def test_polls_within_the_gap_share_a_reading():
    s = h.shared()
    time.sleep(GAP)
    a = s.json("/api/processes?view=table")
    b = s.json("/api/processes?view=table")
    # Back to back (well within 250 ms unless the machine stalls): the same
    # reading, so the same time stamp; after the gap, a new one.
    if a["time_stamp"] != b["time_stamp"]:
        b = s.json("/api/processes?view=table")
        c = s.json("/api/processes?view=table")
        assert b["time_stamp"] == c["time_stamp"], (b["time_stamp"], c["time_stamp"])
    time.sleep(GAP)
    d = s.json("/api/processes?view=table")
    assert d["time_stamp"] != b["time_stamp"]


if __name__ == "__main__":
    h.main(globals())
