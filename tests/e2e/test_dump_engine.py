#!/usr/bin/env python3
"""The dump engine through `procdiag dump-helper`, run directly with fds this
test opens (CONTRACT.md section 2), judged by gdb -batch, eu-stack,
eu-readelf and gcore, against tests/targets/dumptarget."""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402

DUMPTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "dumptarget")
NTHREADS = 4
PAGE = os.sysconf("SC_PAGE_SIZE")
_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        base = os.path.join(h.BUILDDIR, "_test")
        os.makedirs(base, exist_ok=True)
        _tmp = tempfile.mkdtemp(prefix="dump-engine-", dir=base)
    return _tmp


_kept = []


def _kill_kept():
    for p in _kept:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_kept)


class DumpTarget:
    """tests/targets/dumptarget. keep=True: it outlives the test that starts
    it (the harness kills spawn()ed processes after each test), until
    test_zzz_cleanup or exit."""

    def __init__(self, *args, settle=True, keep=False):
        if not os.access(DUMPTARGET, os.X_OK):
            raise AssertionError("%s is not built (make check builds it)" % DUMPTARGET)
        argv = [DUMPTARGET] + [str(a) for a in args]
        if keep:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         start_new_session=True)
            _kept.append(self.proc)
        else:
            self.proc = h.spawn(argv)
        line = h.read_line(self.proc)
        m = re.match(r"ready (\d+) global=(0x[0-9a-f]+) heap=(0x[0-9a-f]+) pattern=(\S+)", line)
        assert m, "dumptarget said %r" % line
        self.pid = int(m.group(1))
        self.global_addr = int(m.group(2), 16)
        self.heap_addr = int(m.group(3), 16)
        self.pattern = m.group(4)
        self.starttime = h.proc_stat(self.pid)["starttime"]
        if settle:
            h.settle(self.pid)

    def tids(self):
        return sorted(int(t) for t in os.listdir("/proc/%d/task" % self.pid))


def task_states(pid):
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid), "rb") as f:
                data = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(tid)] = data[data.rindex(b")") + 2:][:1].decode()
    return out


def none_traced_stopped(pid):
    return all(s != "t" for s in task_states(pid).values())


def assert_running(pid, within=1.0):
    h.wait_until(lambda: none_traced_stopped(pid), within,
                 "pid %d to run again (states %s)" % (pid, task_states(pid)))


class Helper:
    """One `procdiag dump-helper` run: .rc, .events (parsed JSON lines),
    .final, .path (the core), .stderr. With env (a PD_TEST_* hook) it
    runs the test build, which alone reads them."""

    def __init__(self, pid, content=0, start_time=0, env=None, extra=(), name=None):
        self.path = os.path.join(tmpdir(), name or "core.%d.%d" % (pid, content))
        out = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        r, w = os.pipe2(os.O_CLOEXEC)
        argv = [h.PROCDIAG_HOOKED if env else h.PROCDIAG, "dump-helper", "--pid", str(pid),
                "--start-time", str(start_time), "--content", str(content), "--out-fd", str(out),
                "--status-fd", str(w)]
        argv += list(extra)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, pass_fds=(out, w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        os.close(out)
        os.close(w)
        self.r = r

    def finish(self, timeout=60):
        import json
        data = b""
        with os.fdopen(self.r, "rb") as f:
            data = f.read()
        self.rc = self.proc.wait(timeout=timeout)
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert data.endswith(b"\n") or not data, "status not newline-terminated: %r" % data
        self.events = [json.loads(x) for x in data.decode().splitlines()]
        finals = [e for e in self.events if e["event"] in ("done", "error")]
        assert len(finals) == 1 and self.events[-1] is finals[0], \
            "want exactly one final event, last: %r" % self.events
        for e in self.events[:-1]:
            if e["event"] == "clone":  # its pid (test_clone.py)
                assert isinstance(e["pid"], int) and e["pid"] > 0, e
                continue
            assert e["event"] == "progress" and 0 <= e["done"] <= e["total"], e
        self.final = finals[0]
        return self


def dump(pid, content=0, **kw):
    hp = Helper(pid, content, **kw).finish()
    assert hp.rc == 0 and hp.final["event"] == "done", \
        "helper rc %s: %r %s" % (hp.rc, hp.final, hp.stderr)
    st = os.stat(hp.path)
    assert st.st_size == hp.final["size"], "file %d bytes, helper said %d" % (
        st.st_size, hp.final["size"])
    return hp


def gdb(core, *cmds, exe=DUMPTARGET, pid=None):
    """What cmds print, gdb having loaded core (of pid, when given): fails
    the test when gdb cannot load it (dumputil.gdb_core)."""
    return du.gdb_core(exe, core, *cmds, pid=pid)


def threads(core, exe=DUMPTARGET, pid=None):
    """{lwp: {"pc", "frames"}} from gdb's Python API."""
    return du.gdb_thread_info(exe, core, pid)


def expected_functions():
    return ["park_main"] + ["park_thread_%d" % i for i in range(NTHREADS)]


def assert_every_thread_and_function(core, t):
    """gdb finds every thread of t in core, each function in one backtrace."""
    ths = threads(core, pid=t.pid)
    assert sorted(ths) == t.tids(), "gdb threads %s, target %s\n%s" % (sorted(ths), t.tids(), ths)
    for fn in expected_functions():
        assert sum(fn in th["frames"] for th in ths.values()) == 1, "%s not in one bt:\n%s" % (
            fn, ths)


# --------------------------------------------------------------------------

_mini = {}


def mini_of_shared_target():
    """One target and its mini dump, shared by the first tests."""
    if not _mini:
        t = DumpTarget("threads", NTHREADS, keep=True)
        hp = dump(t.pid, 0, start_time=t.starttime)
        _mini.update(target=t, helper=hp)
    return _mini["target"], _mini["helper"]


def test_mini_gdb_shows_every_thread_and_function():
    t, hp = mini_of_shared_target()
    assert hp.final["threads"] == NTHREADS + 1, hp.final
    assert hp.final["stopped_us"] > 0, hp.final
    assert_running(t.pid)
    assert_every_thread_and_function(hp.path, t)
    # libthread_db worked on the mini core: threads are "Thread 0x... (LWP n)".
    out = gdb(hp.path, "info threads", pid=t.pid)
    assert len(re.findall(r"Thread 0x[0-9a-f]+ \(LWP \d+\)", out)) >= NTHREADS + 1, out
    # Shared libraries were found through the link_map chain.
    libs = gdb(hp.path, "info sharedlibrary", pid=t.pid)
    assert re.search(r"0x[0-9a-f]+\s+0x[0-9a-f]+\s+Yes.*libc\.so\.6", libs), libs


def test_mini_eu_stack_agrees():
    t, hp = mini_of_shared_target()
    # stdout only: eu-stack's complaints (stderr) must not split its lines.
    r = subprocess.run(["eu-stack", "--core", hp.path, "-e", DUMPTARGET],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    tids = sorted(int(x) for x in re.findall(r"^TID (\d+):", out, re.M))
    assert tids == t.tids(), out
    for fn in expected_functions():
        assert re.search(r"^#\d+\s+0x[0-9a-f]+ %s$" % fn, out, re.M), "%s missing:\n%s" % (fn, out)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    return []


def thread_features(pid):
    """The x86_Thread_features a thread has on (kernel 6.6 on), or []."""
    st = h.proc_status(pid) or {}
    return st.get("x86_Thread_features", "").split()


def test_notes_in_kernel_order():
    t, hp = mini_of_shared_target()
    out = subprocess.run(["eu-readelf", "-n", hp.path], stdout=subprocess.PIPE,
                         timeout=60).stdout.decode()
    notes = du.core_notes(hp.path)
    assert du.readelf_notes(hp.path) == [(o, len(d)) for o, _, d in notes], out[:3000]
    names = [du.NOTE_NAMES.get(t, t) for _, t, _ in notes]
    # A thread's notes, in the kernel's regset order: the xsave area where
    # the CPU has XSAVE, the shadow-stack pointer where the thread has a
    # shadow stack (CET: kernel, CPU and libc all willing).
    xsave = "xsave" in cpu_flags()
    per = ["PRSTATUS", "FPREGSET"] + (["X86_XSTATE"] if xsave else []) + \
        (["X86_SHSTK"] if "shstk" in thread_features(t.pid) else [])
    first = ["PRSTATUS", "PRPSINFO", "SIGINFO", "AUXV", "FILE"] + per[1:]
    assert names[:len(first)] == first, names
    threads_end = len(first) + len(per) * NTHREADS
    assert names[len(first):threads_end] == per * NTHREADS, names
    # Linux 6.12 on ends with the xsave layout (test_kernel_core.py holds
    # every note against the kernel's own core).
    want = ["X86_XSAVE_LAYOUT"] if xsave and du.kernel_version() >= (6, 12) else []
    assert names[threads_end:] == want, names
    assert all(o == "LINUX" for o, t, _ in notes if t in (0x202, 0x205)), notes
    # The first PRSTATUS is the leader's.
    m = re.search(r"PRSTATUS.*?\n.*?pid: (\d+)", out, re.S)
    assert m and int(m.group(1)) == t.pid, out[:2000]
    assert os.path.realpath(DUMPTARGET) in out  # NT_FILE names the executable


def test_layout_like_the_kernel():
    t, hp = mini_of_shared_target()
    out = subprocess.run(["eu-readelf", "-h", "-l", hp.path], stdout=subprocess.PIPE,
                         timeout=60).stdout.decode()
    assert re.search(r"Type:\s+CORE", out), out
    segs = re.findall(r"^\s+(NOTE|LOAD)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+"
                      r"(0x[0-9a-f]+)\s+(0x[0-9a-f]+)", out, re.M)
    assert segs and segs[0][0] == "NOTE", out
    loads = [tuple(int(x, 16) for x in s[1:]) for s in segs if s[0] == "LOAD"]
    prev_end, prev_off = 0, 0
    for off, vaddr, filesz, memsz in loads:
        assert vaddr % PAGE == 0 and memsz % PAGE == 0 and off % PAGE == 0, (off, vaddr)
        assert vaddr >= prev_end, "overlap or disorder at %#x" % vaddr
        assert filesz <= memsz and off >= prev_off
        prev_end, prev_off = vaddr + memsz, off + filesz
    assert prev_off == hp.final["size"], (prev_off, hp.final["size"])
    # Every mapping of the target is covered by PT_LOADs, address for address.
    with open("/proc/%d/maps" % t.pid) as f:
        maps = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    covered = set()
    for off, vaddr, filesz, memsz in loads:
        covered.add(vaddr)
    for start, end in maps:
        assert start in covered, "mapping %#x-%#x has no PT_LOAD" % (start, end)


def test_mini_is_small_and_full_is_sparse():
    t, hp = mini_of_shared_target()
    full = dump(t.pid, 8, start_time=t.starttime)
    mini_size = hp.final["size"]
    assert mini_size < 2 << 20, "mini is %d bytes" % mini_size
    assert full.final["size"] > mini_size
    # The untouched parts of the thread stacks are holes in the file.
    st = os.stat(full.path)
    assert st.st_blocks * 512 < st.st_size / 4, (st.st_blocks * 512, st.st_size)
    assert full.final["dumped_bytes"] <= full.final["size"]


def gdb_string(core, addr):
    out = gdb(core, "x/s %#x" % addr)
    m = re.search(r"0x[0-9a-f]+(?: <\w+>)?:\s+(\".*)", out)
    assert m, "gdb printed no string at %#x:\n%s" % (addr, out)
    return m.group(1)


def test_content_file_data_prints_the_global():
    t, hp = mini_of_shared_target()
    want = "PDGLOBAL-%d" % t.pid
    one = dump(t.pid, 1, start_time=t.starttime)
    out = gdb(one.path, "print pd_global", pid=t.pid)
    assert want in out, out
    out = gdb(hp.path, "print pd_global", pid=t.pid)
    assert re.search(r"^\$1 = ", out, re.M) and want not in out, out


def test_content_anon_and_full_print_the_heap():
    t, hp = mini_of_shared_target()
    for content in (2, 8):
        d = dump(t.pid, content, start_time=t.starttime)
        s = gdb_string(d.path, t.heap_addr)
        assert s.startswith('"' + t.pattern), "content %d: %s" % (content, s)
    assert t.pattern not in gdb_string(hp.path, t.heap_addr)
    one = dump(t.pid, 1, start_time=t.starttime, name="core.heap1")
    assert t.pattern not in gdb_string(one.path, t.heap_addr)


def test_gcore_agrees():
    t, hp = mini_of_shared_target()
    prefix = os.path.join(tmpdir(), "gcore")
    r = subprocess.run(["gcore", "-o", prefix, str(t.pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    gc = "%s.%d" % (prefix, t.pid)
    assert r.returncode == 0 and os.path.exists(gc), r.stdout
    assert_running(t.pid)
    ours = threads(hp.path, pid=t.pid)
    theirs = threads(gc, pid=t.pid)
    assert sorted(ours) == sorted(theirs) == t.tids(), (ours, theirs)
    for lwp in ours:
        assert ours[lwp]["pc"] == theirs[lwp]["pc"], "LWP %d: pc %#x vs gcore %#x" % (
            lwp, ours[lwp]["pc"], theirs[lwp]["pc"])
        assert ours[lwp]["frames"] == theirs[lwp]["frames"], (lwp, ours[lwp], theirs[lwp])
    assert sum("park_thread_1" in th["frames"] for th in ours.values()) == 1, ours


def test_start_time_mismatch_is_gone():
    t, _ = mini_of_shared_target()
    hp = Helper(t.pid, 0, start_time=t.starttime + 1).finish()
    assert hp.rc == 1 and hp.final["error"] == "gone", hp.final
    assert os.path.getsize(hp.path) == 0


def test_bad_arguments():
    r = subprocess.run([h.PROCDIAG, "dump-helper", "--pid", "1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    assert r.returncode == 2 and b"usage" in r.stderr, r
    r = subprocess.run([h.PROCDIAG, "--help"], stdout=subprocess.PIPE, timeout=10)
    assert b"dump-helper" not in r.stdout, "dump-helper is internal"


def test_zombie_is_refused():
    t = h.target("zombie")
    assert t.zombie and h.proc_stat(t.zombie)["state"] == "Z"
    hp = Helper(t.zombie, 0).finish()
    assert hp.rc == 1 and hp.final["error"] == "zombie", hp.final


def test_kernel_thread_is_refused():
    assert h.is_kernel_thread(2), "pid 2 is not kthreadd here"
    hp = Helper(2, 0).finish()
    assert hp.rc == 1 and hp.final["error"] == "kernel_thread", hp.final


def test_target_killed_during_freeze_is_gone():
    t = DumpTarget("threads", 2)
    hp = Helper(t.pid, 0, env={"PD_TEST_FROZEN_SLEEP_MS": "1500"})
    h.wait_until(lambda: "t" in task_states(t.pid).values(), 5, "the freeze")
    os.kill(t.pid, signal.SIGKILL)
    hp.finish()
    assert hp.rc == 1 and hp.final["error"] == "gone", hp.final


def test_helper_killed_during_freeze_leaves_target_running():
    t = DumpTarget("threads", NTHREADS)
    hp = Helper(t.pid, 0, env={"PD_TEST_FROZEN_SLEEP_MS": "30000"})
    h.wait_until(lambda: set(task_states(t.pid).values()) == {"t"}, 5, "every thread stopped")
    hp.proc.kill()
    hp.proc.wait(timeout=5)
    # The helper would have held it 30 s: only the kernel's detach at the
    # tracer's death lets it run within this wait.
    assert_running(t.pid, within=10)
    assert h.alive(t.pid, t.starttime)
    os.close(hp.r)
    # Nothing of the dead tracer sticks: a new dump works.
    dump(t.pid, 0, start_time=t.starttime, name="core.after-kill")


def test_signal_sent_during_freeze_is_delivered():
    t = DumpTarget("threads", 1)
    hp = Helper(t.pid, 0, env={"PD_TEST_FROZEN_SLEEP_MS": "500"})
    h.wait_until(lambda: set(task_states(t.pid).values()) == {"t"}, 5, "every thread stopped")
    os.kill(t.pid, signal.SIGUSR1)
    hp.finish()
    assert hp.rc == 0, hp.final
    assert_running(t.pid)
    os.kill(t.pid, signal.SIGUSR2)
    assert h.read_line(t.proc).strip() == "usr1 1"


def test_churning_target_never_left_stopped():
    t = DumpTarget("threads", 2, "churn", settle=False)
    for i in range(8):
        hp = dump(t.pid, 0, start_time=t.starttime, name="core.churn")
        assert hp.final["threads"] >= 4, hp.final  # main, 2 parked, churn (+ short-lived)
        assert_running(t.pid)
    ths = threads(hp.path, pid=t.pid)
    for fn in ("park_main", "park_thread_0", "park_thread_1"):
        assert any(fn in th["frames"] for th in ths.values()), (fn, ths)


def test_zombie_leader_dumped_through_a_live_thread():
    t = DumpTarget("threads", 2, "zombie-leader", settle=False)
    h.wait_until(lambda: h.proc_stat(t.pid)["state"] == "Z", 5, "the leader to exit")

    def parked():
        # Both threads asleep in their park functions (not still on the way).
        states = []
        for tid in os.listdir("/proc/%d/task" % t.pid):
            st = h.proc_stat(int(tid))
            if st and int(tid) != t.pid:
                states.append(st["state"])
        return len(states) == 2 and all(s == "S" for s in states)
    h.wait_until(parked, 5, "the two threads to park")
    hp = dump(t.pid, 0, start_time=t.starttime)
    assert hp.final["threads"] == 2, hp.final
    ths = threads(hp.path)
    for fn in ("park_thread_0", "park_thread_1"):
        assert any(fn in th["frames"] for th in ths.values()), (fn, ths)
    assert_running(t.pid)


def test_thread_that_never_stops_times_out_cleanly():
    t = DumpTarget("threads", 2, "vfork", settle=False)
    # The vfork parent thread sleeps uninterruptibly ("D").
    h.wait_until(lambda: "D" in task_states(t.pid).values(), 5, "a D-state thread")
    hp = Helper(t.pid, 0, extra=("--deadline-ms", "300")).finish()
    assert hp.rc == 1 and hp.final["error"] == "timeout", hp.final
    assert_running(t.pid)


def test_helper_dumps_its_own_parent():
    """The responder dumping itself runs the helper on its parent: here the
    parent is this test process."""
    hp = dump(os.getpid(), 0, name="core.parent")
    assert hp.final["threads"] >= 1, hp.final
    ths = threads(hp.path, exe=sys.executable, pid=os.getpid())
    assert os.getpid() in ths, ths
    assert none_traced_stopped(os.getpid())


def test_direct_write_past_the_memory_budget():
    """Proves: past the memory budget (--mem-budget; the server's is half of
    MemAvailable) the helper copies memory straight from the stopped target
    into the output (the direct mode, traced as "direct"), and that core is
    as complete as the others: gdb finds every thread and function, the
    global and the heap, and it has the size of the same target's dump
    through the other paths."""
    t, hp = mini_of_shared_target()
    d = dump(t.pid, 8, start_time=t.starttime, extra=("--mem-budget", "4096", "--trace"),
             name="core.direct")
    assert re.search(r"^dump-trace direct ", d.stderr, re.M), d.stderr
    assert d.final["dumped_bytes"] > 4096, d.final
    assert_running(t.pid)
    assert_every_thread_and_function(d.path, t)
    assert "PDGLOBAL-%d" % t.pid in gdb(d.path, "print pd_global", pid=t.pid)
    s = gdb_string(d.path, t.heap_addr)
    assert s.startswith('"' + t.pattern), s
    # The same target's full dump through the RAM or mapped path has the
    # same layout.
    full = dump(t.pid, 8, start_time=t.starttime, name="core.full")
    assert full.final["size"] == d.final["size"], (full.final, d.final)
    assert not re.search(r"^dump-trace", full.stderr, re.M), full.stderr


def test_zzz_cleanup():
    _kill_kept()
    if _tmp:
        shutil.rmtree(_tmp, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
