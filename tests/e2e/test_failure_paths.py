#!/usr/bin/env python3
"""Failure paths of kill, dump and stacks that only odd conditions reach,
made for real where the kernel lets a test make them (a tracer that holds a
killed process at its exit, a descendant of another uid, a tracer that is
already there, a responder without CAP_SYS_PTRACE), and with the test
build's hooks (lib/testhooks.h, tests/procdiag-hooked) where it does not (a
disk that fills while the target is frozen, a freeze that never converges). Each test names what it
proves; in every case the target ends up running (or gone, for a kill) and
the responder keeps answering."""
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import *  # noqa: E402,F401,F403

DUMPTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "dumptarget")

# A second tracer, as a debugger would be: seizes argv[1] with the ptrace
# options argv[2], says "ready", and once a line (or EOF) comes on stdin
# resumes every stop of its tracee until the tracee is gone.
TRACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid, opts = int(sys.argv[1]), int(sys.argv[2])
if libc.ptrace(0x4206, pid, None, ctypes.c_void_p(opts)) != 0:  # PTRACE_SEIZE
    print("seize failed: errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(1)
print("ready", flush=True)
sys.stdin.readline()
while True:
    try:
        _, st = os.waitpid(pid, 0x40000000)  # __WALL
    except ChildProcessError:
        break
    if os.WIFEXITED(st) or os.WIFSIGNALED(st):
        break
    libc.ptrace(7, pid, None, None)  # PTRACE_CONT
"""
PTRACE_O_TRACEEXIT = 0x40


def tracer(pid, opts=0):
    """A TRACER process holding pid; .stdin releases it."""
    p = subprocess.Popen([sys.executable, "-c", TRACER, str(pid), str(opts)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    h._spawned.append(p)
    line = h.read_line(p)
    assert line == "ready\n", line
    h.wait_until(lambda: h.proc_status(pid).get("TracerPid") == str(p.pid), 5, "the tracer")
    return p


def release(tr):
    tr.stdin.write(b"go\n")
    tr.stdin.close()


def state(pid):
    st = h.proc_stat(pid)
    return st["state"] if st else None


# -- kill -------------------------------------------------------------------

def test_kill_that_leaves_a_process_alive_is_500_naming_it():
    """Proves: when SIGKILL does not end a process within the wait (here a
    tracer with PTRACE_O_TRACEEXIT holds it at its exit, as a debugger
    can), DELETE answers 500 with `alive` listing it, instead of a 204 for
    a tree that is not gone; once the tracer lets go, it is gone."""
    s = h.shared()
    t = h.target("tree", 2)
    top, leaf = t.chain
    tr = tracer(leaf, PTRACE_O_TRACEEXIT)
    r = s.delete("/api/processes/%d" % top)
    doc = h.assert_problem(r, 500)
    assert doc["alive"] == [leaf], doc
    assert str(leaf) in doc["detail"], doc
    # The rest of the tree is gone; the held one sits at its exit, killed.
    assert not h.wait_gone([(top, t.starttimes[top])]), "the top survived"
    assert state(leaf) == "t", h.proc_stat(leaf)
    release(tr)
    assert not h.wait_gone([(leaf, t.starttimes[leaf])]), "still there once released"


def test_kill_skips_descendants_outside_the_scope():
    """Proves: a kill signals only the in-scope part of a tree: a child
    running as another uid (nobody) under an in-scope parent is skipped
    (logged as skipped=1), keeps running, and the answer is still 204."""
    s = h.shared()
    parent = h.spawn([sys.executable, "-c",
                      "import subprocess, sys, time\n"
                      "c = subprocess.Popen(['setpriv', '--reuid=65534', '--regid=65534',"
                      " '--clear-groups', 'sleep', '600'])\n"
                      "print('ready', c.pid, flush=True)\n"
                      "time.sleep(600)\n"])
    words = h.read_line(parent).split()
    assert words[0] == "ready", words
    child = int(words[1])
    h.wait_until(lambda: h.proc_uid(child) == 65534 and
                 (h.proc_stat(child) or {}).get("comm") == b"sleep", 5, "the child as nobody")
    child_start = h.proc_stat(child)["starttime"]
    try:
        r = s.delete("/api/processes/%d" % parent.pid)
        assert r.status == 204, r
        parent.wait(timeout=5)
        assert parent.returncode == -signal.SIGKILL, parent.returncode
        assert h.alive(child, child_start), "the out-of-scope child was killed"
        assert h.proc_uid(child) == 65534
        if not h.INSTALLED:
            h.wait_until(lambda: "killed=1 skipped=1" in s.stderr(), 5, "the request log")
    finally:
        os.kill(child, signal.SIGKILL)
        h.wait_gone([(child, child_start)])


# -- the kernel refuses ptrace -----------------------------------------------

def test_target_held_by_another_tracer():
    """Proves: a process another tracer already holds cannot be seized
    (the kernel refuses PTRACE_SEIZE): a dump and stacks answer 409 with
    Retry-After, as docs/API.md says; the process is never
    stopped by procdiag, runs on under its tracer, and no helper is left."""
    s = h.shared()
    t = h.target("threads", 2)
    tr = tracer(t.pid)
    r = s.get(dump_url(t.pid, "dumpType=0"))
    doc = h.assert_problem(r, 409)
    assert "traced" in doc["detail"], doc
    assert r.header("Retry-After"), r.headers
    r = s.get("/api/processes/%d/stacks" % t.pid)
    doc = h.assert_problem(r, 409)
    assert "traced" in doc["detail"] and str(tr.pid) not in doc["detail"], doc
    assert r.header("Retry-After"), r.headers
    assert_resumed(t.pid)
    assert h.proc_status(t.pid)["TracerPid"] == str(tr.pid)
    if not h.INSTALLED:
        assert not [p for p in helper_children(s.pd.pid) if state(p) == "Z"]
    release(tr)
    tr.kill()
    tr.wait()
    h.wait_until(lambda: h.proc_status(t.pid)["TracerPid"] == "0", 5, "the tracer to go")
    # Without the other tracer the same dump works.
    assert s.get(dump_url(t.pid, "dumpType=0")).status == 200
    assert_resumed(t.pid)


# A process that made itself non-dumpable (as ssh-agent and gpg-agent do):
# only CAP_SYS_PTRACE over it lets another process trace it or read its maps.
NOT_DUMPABLE = ("import ctypes, os, time\n"
                "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0\n"
                "print('ready', os.getpid(), flush=True)\n"
                "time.sleep(600)\n")


def test_kernel_refuses_ptrace_without_the_capability():
    """Proves: a responder without CAP_SYS_PTRACE (same uid as the target,
    every other capability kept) is refused by the kernel on a process that
    set PR_SET_DUMPABLE 0: a dump and stacks answer 403 naming it, as
    docs/API.md says (not a 500), and the process runs on untouched."""
    p = h.spawn([sys.executable, "-c", NOT_DUMPABLE])
    pid = int(h.read_line(p).split()[1])
    wrapper = os.path.join(h.BUILDDIR, "_test", "no-ptrace-%d" % os.getpid())
    os.makedirs(os.path.dirname(wrapper), exist_ok=True)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace "
                "'%s' \"$@\"\n" % h.PROCDIAG)
    os.chmod(wrapper, 0o755)
    try:
        s = h.Stack()
        s.binary = wrapper
        with s:
            doc = h.assert_problem(s.get(dump_url(pid, "dumpType=0")), 403, "id")
            assert "trace" in doc["detail"], doc
            h.assert_problem(s.get("/api/processes/%d/stacks" % pid), 403)
            assert_resumed(pid)
            assert h.proc_status(pid)["TracerPid"] == "0"
            assert s.get("/api/processes/%d" % pid).status == 200
    finally:
        os.unlink(wrapper)


# -- the freeze never converges ----------------------------------------------

def churn_target():
    p = h.spawn([DUMPTARGET, "threads", "2", "churn"])
    line = h.read_line(p)
    assert line.startswith("ready "), line
    return p, int(line.split()[1])


def test_freeze_retry_limit_gives_up_and_resumes():
    """Proves: a freeze that runs out of rounds (lib/freeze.c MAX_ROUNDS,
    reached in the test build by PD_TEST_FREEZE_ROUNDS=1: what a target
    whose threads never stop appearing does) gives up: a dump and stacks
    answer 503 with Retry-After (one status for a timeout on every route,
    handlers/problem.c), the dump "could not be stopped"; the churning
    target runs on, no helper and no thread of it is left a zombie or
    stopped, and the next request works as usual."""
    with started({"PD_TEST_FREEZE_ROUNDS": "1"}) as s:
        p, pid = churn_target()
        r = s.get(dump_url(pid, "dumpType=0"))
        doc = h.assert_problem(r, 503)
        assert "could not be stopped" in doc["detail"], doc
        assert r.header("Retry-After") == "10", r.headers
        assert_resumed(pid)
        r = s.get("/api/processes/%d/stacks" % pid)
        h.assert_problem(r, 503)
        assert r.header("Retry-After") == "1", r.headers
        assert_resumed(pid)
        h.wait_until(lambda: not helper_children(s.pd.pid, "dump-helper"), 5,
                     "the dump helper to be reaped")
        assert all(state(c) != "Z" for c in helper_children(s.pd.pid))
        # A thread left stopped stays so in every reading; the target's
        # churning threads pass through exit (a moment as Z, or gone
        # between the listing and the read) and are not held against it.
        stuck = []

        def none_stuck():
            stuck[:] = [(x, state(int(x))) for x in os.listdir("/proc/%d/task" % pid)]
            stuck[:] = [xs for xs in stuck if xs[1] in ("Z", "t", "T")]
            return not stuck
        try:
            h.wait_until(none_stuck, 5, "no thread of the target stopped or a zombie")
        except AssertionError as e:
            raise AssertionError("%s: %r" % (e, stuck)) from None
        assert h.alive(pid)
        h.kill_tree(p)
    # The same target under procdiag itself, without the hook, is dumped.
    s = h.shared()
    p, pid = churn_target()
    assert s.get(dump_url(pid, "dumpType=0")).status == 200
    assert_resumed(pid)
    h.kill_tree(p)


# -- the disk fills while the target is frozen -------------------------------

def test_disk_filling_after_the_freeze_is_507_and_nothing_left():
    """Proves: the spool filling up after the room check and the freeze (a
    neighbour takes the space while the target is frozen; the helper then
    writes memory straight to the spool, the direct mode of a target past
    the memory budget) ends in 507, not a truncated core: the target runs
    on, no helper and no spool file or space is left, and the responder
    answers. Test build: PD_TEST_MEM_BUDGET picks the direct mode,
    PD_TEST_FROZEN_WAIT holds the freeze until the disk is full."""
    with Tmpfs("64m") as spool:
        fifo = os.path.join(h.BUILDDIR, "_test", "frozen-%d.fifo" % os.getpid())
        os.mkfifo(fifo)
        env = {"PD_TEST_MEM_BUDGET": "4096", "PD_TEST_FROZEN_WAIT": fifo}
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        try:
            with started(env, config_lines=lines) as s:
                proc, pid = heap_target(8)
                baseline = used_bytes(spool.path)
                res = {}
                th = threading.Thread(
                    target=lambda: res.update(r=s.get(dump_url(pid, "dumpType=2"))))
                th.start()
                wfd = hold_frozen(fifo, th, res)
                assert frozen(pid), "the helper waits, the target runs"
                # The disk fills now.
                filler = os.path.join(spool.path, "filler")
                with open(filler, "wb") as f:
                    chunk = b"\xa5" * (1 << 20)
                    try:
                        while True:
                            f.write(chunk)
                            f.flush()
                    except OSError:
                        pass
                assert os.statvfs(spool.path).f_bavail == 0
                os.close(wfd)  # EOF: the helper goes on, into a full disk
                th.join(60)
                doc = h.assert_problem(res["r"], 507)
                assert "ran out of space" in doc["detail"], doc
                assert_resumed(pid)
                os.unlink(filler)
                assert_nothing_left(s, spool.path, baseline)
                assert s.get("/api/processes").status == 200
                h.kill_tree(proc)
        finally:
            os.unlink(fifo)


if __name__ == "__main__":
    h.main(globals())
