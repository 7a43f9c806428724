#!/usr/bin/env python3
"""procdiag's core notes held against the core the kernel itself writes for
the same process, note by note: owner, type, size, order, count per thread,
and the bytes of the notes that must not change between the two (NT_AUXV,
NT_FILE, NT_X86_XSAVE_LAYOUT). Nothing here is a constant of some CPU: the
xsave area, the layout note and which notes there are come from the kernel
this runs on.

The kernel writes its core where kernel.core_pattern says. A plain name
(no "|", no "/") is used as it is, the core landing in the target's cwd, a
scratch directory. Any other pattern (systemd-coredump's or apport's pipe,
an absolute path) is set to "core" for the crash and put back byte for byte
afterwards, on every path (a finally, and atexit behind it); a lock file
keeps two runs from saving each other's pattern. Where the pattern is not
usable and cannot be written (a read-only /proc/sys), the test fails saying
so: it never passes without the kernel's core (docs/TESTING.md)."""
import atexit
import ctypes
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402

DUMPTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "dumptarget")
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
# The same lock as test_crash.py (and anything else that changes or depends
# on core_pattern): /tmp/procdiag-core_pattern.lock.
LOCK = "/tmp/procdiag-core_pattern.lock"
NTHREADS = 3
NT_PRSTATUS, NT_AUXV, NT_FILE = 1, 6, 0x46494c45
NT_386_IOPERM, NT_X86_XSAVE_LAYOUT = 0x201, 0x205
# The notes that belong to a thread (its regsets); the rest are per process.
THREAD_NOTES = {NT_PRSTATUS, 2, 0x200, NT_386_IOPERM, 0x202, 0x204}

_saved = []  # [original pattern bytes] while we changed it


def _read_pattern():
    with open(CORE_PATTERN, "rb") as f:
        return f.read()


def _restore():
    """Puts the saved pattern back and checks it reads back the same."""
    while _saved:
        orig = _saved.pop()
        with open(CORE_PATTERN, "wb") as f:
            f.write(orig)
        now = _read_pattern()
        assert now == orig, "core_pattern reads %r after restoring %r" % (now, orig)


atexit.register(_restore)


def usable(pattern):
    """A pattern under which the kernel writes a file in the crashing
    process's cwd."""
    p = pattern.strip()
    return bool(p) and not p.startswith(b"|") and b"/" not in p


class kernel_cores:
    """Context manager: a usable core_pattern while inside (set and restored
    under a lock when the machine's is not, or always with force)."""

    def __init__(self, force=False):
        self.force = force

    def __enter__(self):
        self.lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            orig = _read_pattern()
            if self.force or not usable(orig):
                try:
                    with open(CORE_PATTERN, "wb") as f:
                        _saved.append(orig)
                        f.write(b"core\n")
                except OSError as e:
                    _saved.clear()
                    raise AssertionError(
                        "kernel.core_pattern is %r (not a plain file name) and cannot be "
                        "set for this test (%s): the kernel's own core, which this test "
                        "holds procdiag's against, cannot be had on this machine; run it "
                        "as root with a writable /proc/sys, or set kernel.core_pattern to "
                        "a plain name such as core" % (orig, e))
                assert usable(_read_pattern()), _read_pattern()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            _restore()
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            os.close(self.lock)
        return False


def shape(notes):
    return [(o, t, len(d)) for o, t, d in notes]


def by_thread(notes):
    """{pr_pid: [(owner, type, size)] of that thread's notes}."""
    out, cur = {}, None
    for o, t, d in notes:
        if t == NT_PRSTATUS:
            cur = int.from_bytes(d[32:36], "little")  # elf_prstatus.pr_pid
            assert cur not in out, "two NT_PRSTATUS for %d" % cur
            out[cur] = []
        if t in THREAD_NOTES:
            assert cur is not None, "thread note %#x before any NT_PRSTATUS" % t
            out[cur].append((o, t, len(d)))
    return out


def only(notes, ntype):
    found = [d for _, t, d in notes if t == ntype]
    assert len(found) <= 1, "%d notes of type %#x" % (len(found), ntype)
    return found[0] if found else None


class TwoCores:
    """dumptarget with NTHREADS threads and ioperm, dumped by procdiag
    (.ours) and then killed so that the kernel writes its own core
    (.kern). .pid, .tids, .have_ioperm."""

    def __init__(self, work):
        scratch = os.path.join(work, "cwd")  # the target's cwd: the kernel's core alone
        os.mkdir(scratch)
        self.ours = os.path.join(work, "procdiag.core")
        p = None
        try:
            with kernel_cores():
                # ioperm: the leader alone has an I/O bitmap, so its notes
                # differ from the other threads' (NT_386_IOPERM).
                p = subprocess.Popen([DUMPTARGET, "threads", str(NTHREADS), "ioperm"],
                                     cwd=scratch, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, start_new_session=True)
                line = h.read_line(p)
                assert line.startswith("ready %d " % p.pid), line
                self.pid = p.pid
                self.have_ioperm = line.split()[-1] == "ioperm=1"
                h.settle(self.pid)
                self.tids = sorted(int(x) for x in os.listdir("/proc/%d/task" % self.pid))
                r = subprocess.run([h.PROCDIAG, "dump", "-p", str(self.pid), "--type", "Mini",
                                    "-q", "-o", self.ours], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=120)
                assert r.returncode == 0, r.stderr.decode(errors="replace")
                du.assert_resumed(self.pid)
                self.crash(p, scratch)
        finally:
            if p is not None and p.returncode is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        files = os.listdir(scratch)
        assert len(files) == 1, "want the kernel's core alone in %s: %s" % (scratch, files)
        self.kern = os.path.join(scratch, files[0])

    def crash(self, p, scratch):
        """No core size limit, no memory in the core (the notes do not
        depend on coredump_filter), and SIGABRT sent to the leader itself:
        the leader is the dumping thread, whose notes come first, as ours."""
        resource.prlimit(self.pid, resource.RLIMIT_CORE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        with open("/proc/%d/coredump_filter" % self.pid, "w") as f:
            f.write("0")
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(self.pid, self.pid, signal.SIGABRT) == 0, \
            os.strerror(ctypes.get_errno())
        _, status = os.waitpid(self.pid, 0)
        p.returncode = -signal.SIGABRT
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT, status
        assert os.WCOREDUMP(status), "the kernel wrote no core (core_pattern %r, files %s)" % (
            _read_pattern(), os.listdir(scratch))


def readable(notes):
    return [(o, du.NOTE_NAMES.get(t, hex(t)), n) for o, t, n in shape(notes)]


def test_notes_match_the_kernels_own_core():
    if not os.access(DUMPTARGET, os.X_OK):
        raise AssertionError("%s is not built (make check builds it)" % DUMPTARGET)
    base = os.path.join(h.BUILDDIR, "_test")
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kernel-core-", dir=base)
    try:
        c = TwoCores(work)
        kern, ours = du.core_notes(c.kern), du.core_notes(c.ours)
        # The note reader agrees with eu-readelf on both files.
        for path, notes in ((c.kern, kern), (c.ours, ours)):
            assert du.readelf_notes(path) == [(o, len(d)) for o, _, d in notes], path
        h.diag("kernel %s notes: %s" % (os.uname().release, readable(kern)))
        # Owner, type, size and order of every note; per thread too.
        assert shape(ours) == shape(kern), "procdiag:\n%s\nkernel:\n%s" % (readable(ours),
                                                                            readable(kern))
        kt, ot = by_thread(kern), by_thread(ours)
        assert sorted(kt) == sorted(ot) == c.tids, (sorted(kt), sorted(ot), c.tids)
        assert list(kt)[0] == list(ot)[0] == c.pid, "the leader's notes come first"
        for tid in c.tids:
            assert ot[tid] == kt[tid], (tid, ot[tid], kt[tid])
        # NT_386_IOPERM: the leader's only, where the kernel has ioperm(2).
        with_io = [tid for tid in c.tids if any(t == NT_386_IOPERM for _, t, _ in kt[tid])]
        assert with_io == ([c.pid] if c.have_ioperm else []), (c.have_ioperm, kt)
        if not c.have_ioperm:
            h.diag("this kernel has no ioperm(2): NT_386_IOPERM not exercised")
        # Equal byte for byte: auxv, the file table, the xsave layout
        # (CPUID leaf 0xD; Linux 6.12 on).
        for ntype in (NT_AUXV, NT_FILE, NT_X86_XSAVE_LAYOUT):
            assert only(ours, ntype) == only(kern, ntype), "note %#x differs" % ntype
        assert (only(kern, NT_X86_XSAVE_LAYOUT) is not None) == (du.kernel_version() >= (6, 12))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_pattern_is_restored_byte_for_byte():
    """Whatever the pattern was, it reads the same after kernel_cores()
    set it (forced here: this machine's may be usable as it is), also when
    the body fails."""
    before = _read_pattern()
    try:
        with kernel_cores(force=True):
            assert _read_pattern() == b"core\n" and _saved == [before], _read_pattern()
            raise RuntimeError("a failing test body")
    except RuntimeError:
        pass
    assert _read_pattern() == before and not _saved, (before, _read_pattern())


if __name__ == "__main__":
    h.main(globals())
