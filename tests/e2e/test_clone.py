#!/usr/bin/env python3
"""The copy-on-write clone (docs/DUMPS.md, "Copy-on-write clone"): the dump
helper clones its frozen target, thaws it at once and copies the clone.
Judged on tests/targets/clonetarget (real processes, real cgroups, real
seccomp), the cores by gdb and eu-stack."""
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402
import test_dump_engine as te  # noqa: E402

CLONETARGET = os.path.join(h.BUILDDIR, "tests", "targets", "clonetarget")
PAGE = os.sysconf("SC_PAGE_SIZE")
FULL = 8  # --content: PD_DC_FULL
EU_STACK = shutil.which("eu-stack") or "/usr/bin/eu-stack"


class CloneTarget:
    """clonetarget ARGS: .pid (the target), .parent (its parent, which
    counts SIGCHLDs), .gen, .pages, .dontfork, .wipeonfork."""

    def __init__(self, *args, preexec_fn=None):
        if not os.access(CLONETARGET, os.X_OK):
            raise AssertionError("%s is not built (make check builds it)" % CLONETARGET)
        argv = [CLONETARGET] + [str(a) for a in args]
        self.proc = h.spawn(argv, preexec_fn=preexec_fn) if preexec_fn else h.spawn(argv)
        line = h.read_line(self.proc, timeout=60)
        m = re.match(r"ready (\d+) parent=(\d+) gen=(0x[0-9a-f]+|0) pages=(\d+) "
                     r"dontfork=(0x[0-9a-f]+|0) wipeonfork=(0x[0-9a-f]+|0)", line)
        assert m, "clonetarget said %r" % line
        self.pid, self.parent = int(m.group(1)), int(m.group(2))
        self.gen, self.pages = int(m.group(3), 16), int(m.group(4))
        self.dontfork, self.wipeonfork = int(m.group(5), 16), int(m.group(6), 16)
        self.starttime = h.proc_stat(self.pid)["starttime"]

    def report(self, who):
        """The SIGCHLDs (and, of the target, atfork runs) it counted."""
        os.kill(self.pid if who == "target" else self.parent, signal.SIGUSR1)
        while True:
            line = h.read_line(self.proc)
            if line.startswith(who + " "):
                return dict(kv.split("=") for kv in line.split()[1:])

    def children(self):
        """Processes whose parent is the target (the clone while it lives)."""
        return [(pid, st["state"]) for pid, st in h.children_of(self.pid).items()]

    def kill(self):
        for p in (self.pid, self.parent):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


class Core:
    """A core's memory, by address: its PT_LOADs over an mmap of the file."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, prot=mmap.PROT_READ)
        e_phoff, = struct.unpack_from("<Q", self.m, 0x20)
        e_phentsize, e_phnum = struct.unpack_from("<HH", self.m, 0x36)
        self.loads = []
        for i in range(e_phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = struct.unpack_from(
                "<IIQQQQQQ", self.m, e_phoff + i * e_phentsize)
            if p_type == 1:
                self.loads.append((p_vaddr, p_memsz, p_offset, p_filesz))

    def read(self, addr, n):
        for vaddr, memsz, off, filesz in self.loads:
            if vaddr <= addr and addr + n <= vaddr + memsz:
                k = addr - vaddr
                if k + n <= filesz:
                    return bytes(self.m[off + k:off + k + n])
                return b"\0" * n  # past p_filesz: not in the file
        raise AssertionError("0x%x is in no PT_LOAD" % addr)

    def close(self):
        self.m.close()
        self.f.close()


def dump(t, env=None, content=FULL):
    hp = te.dump(t.pid, content, start_time=t.starttime, env=env)
    clones = [e["pid"] for e in hp.events if e["event"] == "clone"]
    return hp, clones


def cloned(final):
    """Whether the dump cloned; a fall-back for want of memory headroom in a
    cgroup above the test's (a CI container's limit, other tests' targets in
    it at that moment) is this machine's state, not a failure: a skip."""
    m = re.match(r"cgroup (/\S+): memory headroom", final["reason"]) \
        if final["method"] == "stop" else None
    if m and cgroup_limited(m.group(1)):
        raise h.Skip(final["reason"])
    return final["method"] == "clone"


def cgroup_limited(d):
    """Whether the cgroup directory d (v2 or v1) really has a memory limit."""
    for name in ("memory.max", "memory.limit_in_bytes"):
        try:
            with open(os.path.join(d, name)) as f:
                v = f.read().strip()
        except OSError:
            continue
        return v != "max" and int(v) < 1 << 62
    return False


def assert_no_child_left(t):
    h.wait_until(lambda: not t.children(), 10,
                 "no child (zombie or not) under the target: %r" % (t.children(),))


def test_point_in_time():
    """Proves: the core is one instant of the whole process. A thread keeps
    writing its generation number into every page of a 256 MiB buffer, in
    order from both ends (page i, then page N-1-i), all through the copy
    (which runs after the target was thawed): the core holds at most one
    boundary, g+1 before g, in the first half, and the second half mirrors
    it but for the one pair the writer was between (a copy read in address
    order while the writer runs would see the halves differ). gdb and
    eu-stack read the core."""
    t = CloneTarget("gen", 256, "threads", 2)
    try:
        hp, clones = dump(t)
        f = hp.final
        assert cloned(f) and f["reason"] == "", f
        assert len(clones) == 1, hp.events
        assert f["frozen_us"] == f["stopped_us"] > 0 and f["copied_bytes"] >= 256 << 20, f
        for k in ("freezing_us", "copy_us", "extra_memory"):
            assert isinstance(f[k], int) and f[k] >= 0, f
        core = Core(hp.path)
        gens = [struct.unpack("<Q", core.read(t.gen + i * PAGE, 8))[0] for i in range(t.pages)]
        core.close()
        half = t.pages // 2
        first = gens[:half]
        boundaries = [i for i in range(1, half) if first[i] != first[i - 1]]
        assert len(boundaries) <= 1, "%d boundaries, the first at pages %s: %s" % (
            len(boundaries), boundaries[:5], [first[i - 1:i + 1] for i in boundaries[:5]])
        if boundaries:
            b = boundaries[0]
            assert first[b - 1] == first[b] + 1, (first[b - 1], first[b])
        torn = [i for i in range(half) if gens[i] != gens[t.pages - 1 - i]]
        assert len(torn) <= 1, "%d pages differ from their mirror, e.g. %s" % (
            len(torn), [(i, gens[i], gens[t.pages - 1 - i]) for i in torn[:5]])
        assert gens[-1] >= 1, "the writer had not begun: %d" % gens[-1]
        # The target runs on: its writer finishes the pass it was in.
        h.wait_until(lambda: int(t.report("target")["gen"]) >= gens[0], 60,
                     "the writer to finish pass %d" % gens[0])
        # gdb: every thread (main, two parked, the writer).
        n, info = du.gdb_threads(CLONETARGET, hp.path, t.pid)
        assert n == 5 and "writer" in info, info  # and the reporter
        out = subprocess.run([EU_STACK, "--core", hp.path, "-e", CLONETARGET],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.count("TID ") == 5, out.stdout + out.stderr
        assert_no_child_left(t)
    finally:
        t.kill()


def test_nothing_leaks_into_the_target():
    """Proves: no atfork handler runs, neither the target nor its parent
    gets a SIGCHLD, the clone is gone afterwards (no zombie, no child), and
    the target runs. Reading the clone copies none of the memory it shares
    with the idle target (its extra memory stays far below its 64 MiB)."""
    t = CloneTarget("threads", 3, "anon", 64)
    try:
        hp, clones = dump(t)
        assert cloned(hp.final), hp.final
        assert hp.final["extra_memory"] < 16 << 20, hp.final
        assert len(clones) == 1
        assert not os.path.exists("/proc/%d" % clones[0]), "the clone %d is left" % clones[0]
        assert_no_child_left(t)
        te.assert_running(t.pid)
        assert t.report("target") == {"sigchld": "0", "atfork": "0", "gen": "0", "wakes": "0",
                                      "badwake": "0", "badmask": "0"}
        assert t.report("parent") == {"sigchld": "0"}
    finally:
        t.kill()


def test_interrupted_system_calls_go_on_as_before():
    """Proves: the thread that ran the injected clone (and, after, the
    wait4 that reaps it) was blocked in a system call, and that call goes
    on as if nothing had happened: a pipe read (-ERESTARTSYS), a nanosleep
    (restart_syscall), pause (-ERESTARTNOHAND) never return, and a
    sigsuspend returns only for the SIGUSR2 sent after the dump, with the
    thread's signal mask as it was before it (the kernel's saved mask)."""
    for kind in ("read", "sleep", "pause", "sigsuspend"):
        t = CloneTarget("threads", 1, "anon", 4, "block", kind)
        try:
            hp, clones = dump(t)
            assert cloned(hp.final) and len(clones) == 1, (kind, hp.final)
            assert_no_child_left(t)
            os.kill(t.pid, signal.SIGUSR2)
            r = h.wait_until(lambda: (lambda r: r if r["wakes"] != "0" else None)(
                t.report("target")), 10, "the SIGUSR2 to wake the main thread")
            assert r["badwake"] == "0" and r["badmask"] == "0", (kind, r)
        finally:
            t.kill()


def test_dontfork_and_wipeonfork_come_from_the_target():
    """Proves: memory a fork does not carry (MADV_DONTFORK: not in the
    clone; MADV_WIPEONFORK: zeros in it) is in the core as the target had
    it, read while it was frozen."""
    t = CloneTarget("dontfork")
    try:
        hp, _ = dump(t)
        assert cloned(hp.final), hp.final
        core = Core(hp.path)
        assert core.read(t.dontfork, 10) == b"PDDONTFORK"
        assert core.read(t.wipeonfork, 12) == b"PDWIPEONFORK"
        core.close()
        assert_no_child_left(t)
    finally:
        t.kill()


def test_seccomp_forbidding_clone_falls_back_to_stop():
    """Proves: a target whose seccomp filter fails clone(2) (EPERM) is
    dumped stopped, as before, with the reason; the filter is judged
    before the call, so the target never ran the failing call, and nothing
    is left."""
    t = CloneTarget("seccomp", "threads", 2, "anon", 4)
    try:
        hp, clones = dump(t)
        assert hp.final["method"] == "stop", hp.final
        assert "seccomp" in hp.final["reason"], hp.final
        assert clones == []
        n, info = du.gdb_threads(CLONETARGET, hp.path, t.pid)
        assert n == 4, info  # main, two parked, the reporter
        assert_no_child_left(t)
        te.assert_running(t.pid)
        assert t.report("target")["sigchld"] == "0"
    finally:
        t.kill()


def cgroup_dir():
    """A memory cgroup child we may create: (v2 or v1 dir, limit file), or
    None with why."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        hier, ctrl, path = line.split(":", 2)
        if hier == "0" and not ctrl:
            for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                d = base + path
                try:
                    with open(os.path.join(d, "cgroup.subtree_control")) as s:
                        if "memory" in s.read().split():
                            return d, "memory.max"
                except OSError:
                    pass
    for line in lines:
        hier, ctrl, path = line.split(":", 2)
        if "memory" in ctrl.split(","):
            d = "/sys/fs/cgroup/memory" + path
            if os.path.exists(os.path.join(d, "memory.limit_in_bytes")):
                return d, "memory.limit_in_bytes"
    return None


def in_cgroup(limit_mib, *args):
    """A clonetarget started inside a new memory cgroup of limit_mib."""
    found = cgroup_dir()
    if not found:
        raise h.Skip("no memory cgroup (v2 or v1) this test may create a child in")
    parent, limit_file = found
    d = os.path.join(parent, "pd-clone-test-%d-%d" % (os.getpid(), limit_mib))
    try:
        os.mkdir(d)
        with open(os.path.join(d, limit_file), "w") as f:
            f.write(str(limit_mib << 20))
    except OSError as e:
        raise h.Skip("cannot make a memory cgroup under %s: %s" % (parent, e))
    procs = os.path.join(d, "cgroup.procs")

    def join():
        with open(procs, "w") as f:
            f.write("0")
    return CloneTarget(*args, preexec_fn=join), d


def remove_cgroup(d):
    h.wait_until(lambda: not open(os.path.join(d, "cgroup.procs")).read().strip(), 10,
                 "the cgroup to empty")
    os.rmdir(d)


def test_small_cgroup_headroom_falls_back_to_stop():
    """Proves: in a cgroup whose memory limit leaves less room than the
    target's anonymous memory (what its writes could make the clone cost),
    the dump does not clone: it stops and copies, and says why; with room
    enough, the same target is cloned."""
    for limit, method in ((96, "stop"), (512, "clone")):
        t, d = in_cgroup(limit, "anon", 64)
        try:
            hp, clones = dump(t)
            if method == "clone":
                cloned(hp.final)
            assert hp.final["method"] == method, (limit, hp.final)
            if method == "stop":
                assert "cgroup" in hp.final["reason"] and "headroom" in hp.final["reason"], \
                    hp.final
                assert clones == []
            assert_no_child_left(t)
        finally:
            t.kill()
            remove_cgroup(d)


def responder_dump(s, t):
    out = {}
    th = threading.Thread(target=lambda: out.update(
        r=s.get(du.dump_url(t.pid, "dumpType=2"), timeout=120)))
    th.daemon = True
    th.start()
    # The clone is the target's child while it lives: that is the event.
    h.wait_until(lambda: t.children(), 30, "the helper to clone the target")
    return th, out


def test_helper_killed_mid_dump_leaves_no_zombie():
    """Proves: a dump helper SIGKILLed while it copies the clone (test
    build: PD_TEST_CLONED_SLEEP_MS holds it there) leaves no child and no
    zombie under the target: PTRACE_O_EXITKILL kills the clone, and the
    responder has the target reap it; the target runs, the responder
    answers."""
    with du.started({"PD_TEST_CLONED_SLEEP_MS": "60000"}) as s:
        t = CloneTarget("threads", 2, "anon", 8)
        try:
            th, out = responder_dump(s, t)
            helpers = du.helper_children(s.pd.pid, "dump-helper")
            assert len(helpers) == 1, helpers
            te.assert_running(t.pid)
            os.kill(helpers[0], signal.SIGKILL)
            th.join(60)
            assert out["r"].status >= 500, out["r"].status
            assert_no_child_left(t)
            te.assert_running(t.pid)
            assert t.report("target")["sigchld"] == "0"
            assert t.report("parent") == {"sigchld": "0"}
            assert s.get("/api/processes").status == 200
        finally:
            t.kill()


def test_responder_killed_mid_dump_leaves_no_zombie():
    """Proves: when the responder is SIGKILLed mid-dump, its helper (told by
    PR_SET_PDEATHSIG's SIGTERM) kills its clone and has the target reap it:
    no child and no zombie under the target, which runs."""
    s = du.started({"PD_TEST_CLONED_SLEEP_MS": "60000"}).stack
    t = CloneTarget("threads", 2, "anon", 8)
    try:
        th, out = responder_dump(s, t)
        helpers = du.helper_children(s.pd.pid, "dump-helper")
        assert len(helpers) == 1, helpers
        s.terminated = True
        os.kill(s.pd.pid, signal.SIGKILL)
        assert_no_child_left(t)
        h.wait_until(lambda: not h.alive(helpers[0]), 10, "the helper to end")
        te.assert_running(t.pid)
        assert t.report("target")["sigchld"] == "0"
        assert t.report("parent") == {"sigchld": "0"}
        th.join(30)
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
        du.reap_our_zombies({s.pd.pid})
        t.kill()


def as_nobody():
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)


def test_clone_under_the_service_confinement():
    """Proves: run as the service runs (root with only CAP_SYS_PTRACE,
    CAP_KILL and CAP_DAC_READ_SEARCH, no new privileges, scope = nobody),
    a full dump of a target of the scope's user is taken from a clone
    (X-Dump-Method: clone), gdb finds every thread in the core, and the
    clone is reaped through the target: no child, no SIGCHLD."""
    with h.Stack(confined=True, config_lines=["scope = nobody"]) as s:
        t = CloneTarget("threads", 3, "anon", 8, preexec_fn=as_nobody)
        d = tempfile.mkdtemp(prefix="pd-e2e-clone-")
        try:
            assert h.proc_uid(t.pid) == 65534
            r = s.get(du.dump_url(t.pid, "dumpType=Full"), timeout=120)
            assert r.status == 200, r
            assert r.header("X-Dump-Method") == "clone", r.headers
            assert r.header("X-Dump-Method-Reason") in (None, ""), r.headers
            core = du.save(r.body, d)
            n, info = du.gdb_threads(CLONETARGET, core, pid=t.pid)
            assert n == len(os.listdir("/proc/%d/task" % t.pid)) == 5, info
            assert_no_child_left(t)
            te.assert_running(t.pid)
            assert t.report("target")["sigchld"] == "0"
            assert t.report("parent") == {"sigchld": "0"}
        finally:
            shutil.rmtree(d, ignore_errors=True)
            t.kill()


if __name__ == "__main__":
    h.main(globals())
