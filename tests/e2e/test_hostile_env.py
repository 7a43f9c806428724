#!/usr/bin/env python3
"""A privileged server takes no orders from its environment: procdiag itself
(not the test build, tests/procdiag-hooked) started with every variable that
once steered it, or that steers the test build, set to something hostile.
Each test names what it proves."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import *  # noqa: E402,F401,F403


class Hostile:
    """The hostile environment: a dump helper of the attacker's that leaves
    a marker, hooks that would hold the target frozen (a FIFO nobody writes:
    forever; else a minute), a memory budget of one byte, phase tracing."""

    def __init__(self):
        base = os.path.join(h.BUILDDIR, "_test")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="hostile-", dir=base)
        os.chmod(self.dir, 0o755)
        self.marker = os.path.join(self.dir, "helper-was-run")
        self.script = os.path.join(self.dir, "evil-helper")
        with open(self.script, "w") as f:
            f.write("#!/bin/sh\necho \"$@\" > '%s'\nexit 1\n" % self.marker)
        os.chmod(self.script, 0o755)
        self.fifo = os.path.join(self.dir, "frozen.fifo")
        os.mkfifo(self.fifo)
        self.env = {
            "PD_DUMP_HELPER": self.script,
            "PD_TEST_FROZEN_SLEEP_MS": "60000",
            "PD_TEST_FROZEN_WAIT": self.fifo,
            "PD_TEST_STACKS_FROZEN_SLEEP_MS": "60000",
            "PD_TEST_CLONED_SLEEP_MS": "60000",
            "PD_TEST_MEM_BUDGET": "1",
            "PD_DUMP_TRACE": "1",
        }

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def fifo_has_reader(self):
        """A helper obeying PD_TEST_FROZEN_WAIT has the FIFO open."""
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False  # ENXIO: no reader
        os.close(fd)  # and so EOF releases it
        return True

    def assert_obeyed_nothing(self, stderr):
        assert not os.path.exists(self.marker), "PD_DUMP_HELPER's script was run"
        assert "dump-trace" not in stderr, "PD_DUMP_TRACE was obeyed: " + stderr[-2000:]


def while_running(fn, pid, hostile):
    """Runs fn() in a thread; until it returns, watches for the one thing an
    obeyed hook does: a helper waiting on the FIFO, the target frozen under
    it. Returns fn's result."""
    res = {}
    th = threading.Thread(target=lambda: res.update(r=fn()))
    th.start()
    seen = []

    def done_or_held():
        if hostile.fifo_has_reader():
            seen.append(("held on the FIFO", frozen(pid)))
            return True
        return not th.is_alive()

    h.wait_until(done_or_held, 60, "the request to finish")
    th.join(60)
    assert not seen, "a test hook held the target: %s" % seen
    assert "r" in res, "the request raised in its thread"
    return res["r"]


def test_serve_ignores_every_hostile_variable():
    """Proves: procdiag serve, started with PD_DUMP_HELPER, PD_TEST_* and
    PD_DUMP_TRACE set, takes a dump and stacks as usual: its own binary is
    the helper (the attacker's script never runs), no hook holds the target
    frozen (the FIFO it would wait on never gets a reader, and the target
    runs after each answer), and nothing is traced."""
    with Hostile() as hostile, started(hostile.env, hooked=False) as s:
        assert s.binary == h.PROCDIAG
        proc, pid = heap_target(4)
        r = while_running(lambda: s.get(dump_url(pid, "dumpType=2")), pid, hostile)
        assert_core_response(r, "python3")
        core = save(r.body, hostile.dir)
        assert readelf_type(core).startswith("CORE"), readelf_type(core)
        assert_resumed(pid)
        t = h.target("threads", 2)
        doc = while_running(lambda: s.json("/api/processes/%d/stacks" % t.pid), t.pid, hostile)
        assert len(doc["threads"]) == 3, doc
        assert_resumed(t.pid)
        # Twice: the stacks helper is long-lived, a second request reuses it.
        doc = while_running(lambda: s.json("/api/processes/%d/stacks" % t.pid), t.pid, hostile)
        assert len(doc["threads"]) == 3, doc
        assert_resumed(t.pid)
        hostile.assert_obeyed_nothing(s.stderr())
        h.kill_tree(proc)


def test_cli_ignores_every_hostile_variable():
    """Proves: procdiag dump and procdiag stacks, with the same environment,
    run their own binary as the helper and obey no hook."""
    with Hostile() as hostile:
        env = dict(os.environ)
        env.update(hostile.env)
        t = h.target("threads", 2)
        out = os.path.join(hostile.dir, "cli.core")

        def dump():
            return subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "-q", "-o", out],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                  timeout=120)

        r = while_running(dump, t.pid, hostile)
        assert r.returncode == 0, r.stderr
        assert readelf_type(out).startswith("CORE"), readelf_type(out)
        assert_resumed(t.pid)
        r = while_running(lambda: subprocess.run(
            [h.PROCDIAG, "stacks", "-p", str(t.pid)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, timeout=120), t.pid, hostile)
        assert r.returncode == 0 and len(re.findall(rb"(?m)^TID \d+:", r.stdout)) == 3, r
        assert_resumed(t.pid)
        hostile.assert_obeyed_nothing(r.stderr.decode("utf-8", "replace"))


def test_helper_is_the_running_binary_even_once_replaced():
    """Proves: the helpers are the inode the server runs from, not what is
    at its path now: with the server's binary replaced on disk by a script
    (as an upgrade or an attacker with write access to it would), a dump
    and stacks still work and the script never runs."""
    with Hostile() as hostile:
        binary = os.path.join(hostile.dir, "procdiag")
        shutil.copy2(h.PROCDIAG, binary)
        s = h.Stack()
        s.binary = binary
        with s:
            new = binary + ".new"
            shutil.copy2(hostile.script, new)
            os.rename(new, binary)
            t = h.target("threads", 2)
            r = s.get(dump_url(t.pid, "dumpType=0"))
            assert r.status == 200 and r.body[:4] == b"\x7fELF", r
            doc = s.json("/api/processes/%d/stacks" % t.pid)
            assert len(doc["threads"]) == 3, doc
            assert_resumed(t.pid)
            hostile.assert_obeyed_nothing(s.stderr())


def test_production_binary_has_no_hooks():
    """Proves: the hooks' variable names are compiled out of procdiag (the
    installed one too, in installed mode), and into the test build only."""
    def has(path, needle):
        with open(path, "rb") as f:
            return needle in f.read()

    for needle in (b"PD_TEST_", b"PD_DUMP_HELPER", b"PD_DUMP_TRACE"):
        assert not has(h.PROCDIAG, needle), "%s is in %s" % (needle, h.PROCDIAG)
    if not h.INSTALLED:
        assert has(h.PROCDIAG_HOOKED, b"PD_TEST_FROZEN_SLEEP_MS")


def test_ignored_signals_are_not_inherited():
    """Proves: a responder started with SIGQUIT, SIGHUP, SIGTERM and SIGINT
    ignored (as a shell starts a background job, or a hostile starter)
    takes them back: SIGHUP ends it again."""
    if h.INSTALLED:
        return  # the installed service is started by its own unit
    import signal

    def ignore():
        for sig in (signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)

    d = tempfile.mkdtemp(prefix="sigign-")
    sock = os.path.join(d, "s")
    p = subprocess.Popen([h.PROCDIAG, "serve", "--no-auth", "--listen", "unix:" + sock],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=ignore)
    try:
        def sig_ignored():
            with open("/proc/%d/status" % p.pid) as f:
                return int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", f.read(), re.M).group(1), 16)

        h.wait_until(lambda: os.path.exists(sock), 30, "the responder's socket")
        # The socket is bound before the server sets SIGPIPE aside (its own
        # choice, made as it starts serving): wait for that, then judge the
        # inherited ones in the same reading.
        ign = h.wait_until(lambda: (lambda v: v if v & (1 << (signal.SIGPIPE - 1)) else None)(
            sig_ignored()), 30, "SIGPIPE ignored by the serving responder")
        for sig in (signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            assert not ign & (1 << (sig - 1)), ("still ignored", sig, hex(ign))
        os.kill(p.pid, signal.SIGHUP)
        assert p.wait(timeout=30) == -signal.SIGHUP
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
