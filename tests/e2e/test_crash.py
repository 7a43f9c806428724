#!/usr/bin/env python3
"""procdiag crash-handler (docs/CRASH.md) as the kernel runs it: installed in
kernel.core_pattern, real processes dying of SIGSEGV and SIGABRT, their
cores piped by the kernel.

Every test installs the handler with `--install` (a pattern of at most 127
bytes: the binary and its config under a short /tmp directory, the binary a
symlink) and puts the machine's core_pattern and core_pipe_limit back byte
for byte in a `finally`, even when the test fails, and once more at exit.
An flock on /tmp/procdiag-core_pattern.lock is held around every change (and
test_kernel_core.py takes it too), so two test files never save each
other's pattern."""
import atexit
import concurrent.futures
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402
import test_bundle as tb  # noqa: E402

CRASHTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "crashtarget")
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"
LOCK = "/tmp/procdiag-core_pattern.lock"
STATE = ".crash-state.json"

_originals = []  # [(path, bytes)] to put back at exit if a finally could not


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _restore_originals():
    while _originals:
        path, data = _originals.pop()
        if _read(path) != data:
            _write(path, data if data != b"\n" else b"\n")
        assert _read(path) == data, (path, _read(path), data)


atexit.register(_restore_originals)


class Handler:
    """procdiag's crash handler in core_pattern inside the with block.

    conf: the config text; "{store}" in it is the store directory.
    previous: a core_pattern (bytes) set before --install, so that it is
    the one the install remembers (the machine's own otherwise).
    tmpfs: a size for a tmpfs mounted on the store directory."""

    def __init__(self, conf, previous=None, tmpfs=None):
        self.conf, self.previous, self.tmpfs = conf, previous, tmpfs
        self.dir = None
        self.lock = None

    def __enter__(self):
        self.lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.orig = _read(CORE_PATTERN)
            self.orig_limit = _read(PIPE_LIMIT)
            _originals.append((PIPE_LIMIT, self.orig_limit))
            _originals.append((CORE_PATTERN, self.orig))
            # A short directory: the pattern must fit the kernel's 127 bytes.
            self.dir = tempfile.mkdtemp(prefix="pdc", dir="/tmp")
            os.chmod(self.dir, 0o755)
            self.exe = os.path.join(self.dir, "pd")
            os.symlink(os.path.abspath(h.PROCDIAG), self.exe)
            self.store = os.path.join(self.dir, "st")
            os.mkdir(self.store, 0o700)
            if self.tmpfs:
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % self.tmpfs,
                                "pdcrash", self.store], check=True)
            self.config = os.path.join(self.dir, "c")
            with open(self.config, "w") as f:
                f.write(self.conf.replace("{store}", self.store))
            os.chmod(self.config, 0o644)
            self.saved = os.path.join(self.dir, "saved")
            self.targets = os.path.join(self.dir, "t")
            os.mkdir(self.targets)
            if self.previous is not None:
                _write(CORE_PATTERN, self.previous)
            self.before = _read(CORE_PATTERN)
            r = self.cli("--install", "-c", self.config, "--exe", self.exe)
            assert r.returncode == 0, r.stderr
            self.pattern = _read(CORE_PATTERN)
            assert self.pattern.startswith(b"|" + self.exe.encode() + b" crash-handler"), \
                self.pattern
            assert len(self.pattern.rstrip(b"\n")) <= 127, self.pattern
            assert int(_read(PIPE_LIMIT)) > 0, "--install leaves core_pipe_limit 0"
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cli(self, *args):
        return subprocess.run([h.PROCDIAG, "crash-handler", "--saved", self.saved] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)

    def __exit__(self, *exc):
        try:
            if self.dir and os.path.exists(self.saved):
                r = self.cli("--uninstall", "--force")
                if r.returncode:
                    h.diag("--uninstall: " + r.stderr)
        finally:
            try:
                _restore_originals()
            finally:
                if self.dir:
                    if self.tmpfs:
                        subprocess.run(["umount", "-l", self.store], stderr=subprocess.DEVNULL)
                    shutil.rmtree(self.dir, ignore_errors=True)
                fcntl.flock(self.lock, fcntl.LOCK_UN)
                os.close(self.lock)
        return False

    def target(self, name="crashtarget"):
        """A copy of crashtarget named name (its comm)."""
        exe = os.path.join(self.targets, name)
        if not os.path.exists(exe):
            shutil.copy(CRASHTARGET, exe)
        return exe

    def entries(self):
        """{id: meta} of the store's entries (a directory not starting
        with '.'); every one is complete: meta.json and its files."""
        out = {}
        for e in sorted(os.listdir(self.store)):
            if e.startswith("."):
                continue
            d = os.path.join(self.store, e)
            with open(os.path.join(d, "meta.json")) as f:
                out[e] = json.load(f)
        return out

    def leftovers(self):
        """What the store holds besides entries and the state files."""
        return [e for e in os.listdir(self.store)
                if e.startswith(".") and not e.startswith(".crash-state")
                and e not in (".lock", ".store.lock")]

    def state(self):
        try:
            with open(os.path.join(self.store, STATE)) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"rules": {}, "failures": []}


def kernel_log_has(text):
    """Whether the kernel log holds text: the handler's stderr is /dev/kmsg
    when the kernel starts it (the journal reads it from there)."""
    r = subprocess.run(["dmesg"], stdout=subprocess.PIPE, check=True)
    return text in r.stdout.decode(errors="replace")


def handlers_of(pid):
    """The crash handlers running for pid (its %P among their arguments)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"crash-handler" in argv and str(pid).encode() in argv[argv.index(b"crash-handler"):]:
            out.append(int(d))
    return out


def wait_handled(pid):
    """Until the handler is done with pid: the process goes as soon as the
    core is read, the entry is committed (and the state written) after."""
    h.wait_until(lambda: not handlers_of(pid), 120, "the crash handler of %d to end" % pid)


def crash(exe, how="segv", mib=0, timeout=120, handled=True, extra=()):
    """Runs exe (a crashtarget), makes it crash, waits for its death; its
    pid. The wait ends when the kernel let it go: after the handler closed
    its pipe (core_pipe_limit > 0)."""
    cwd = tempfile.mkdtemp(prefix="pdcwd")
    try:
        p = subprocess.Popen([exe, how, "mib", str(mib)] + list(extra), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, cwd=cwd)
        words = p.stdout.readline().split()
        assert words and words[0] == b"ready", words
        pid = int(words[1])
        p.stdin.write(b"go\n")
        p.stdin.flush()
        rc = p.wait(timeout=timeout)
        want = -signal.SIGSEGV if how == "segv" else -signal.SIGABRT
        assert rc == want, (rc, want)
        if handled:
            wait_handled(pid)
        return pid
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def one_rule(rule, filt, top=(), trigger="crash", count=0, interval=0):
    """A config: the store, the top-level lines top, and one crash rule
    taking the processes filt says."""
    return "\n".join(["store_dir = {store}"] + list(top) + [
        "[rule %s]" % rule, filt, "trigger = " + trigger, "count = %s" % count,
        "interval = %s" % interval]) + "\n"


RULES = """store_dir = {store}
crash_timeout = 60
[rule segv-raw]
name = crashtarget
trigger = crash SEGV,ABRT
count = 0
interval = 0
[rule segv-zip]
name = crashzip
trigger = crash SEGV
format = zip
count = 0
interval = 0
[rule segv-zstd]
name = crashzstd
trigger = crash
format = zstd
count = 0
interval = 0
"""


def top_frame(bt):
    m = re.search(r"^#0\s+(?:0x[0-9a-f]+ in )?(\w+)", bt, re.M)
    assert m, bt
    return m.group(1)


def test_segv_lands_in_the_store_as_a_sparse_core():
    with Handler(RULES) as hd:
        exe = hd.target()
        # While the handler writes, a lister never sees a partial entry:
        # every entry listed has its meta.json and its whole file.
        seen, errors, stop = [], [], threading.Event()

        def lister():
            try:
                while not stop.is_set():
                    for eid, meta in hd.entries().items():
                        size = os.path.getsize(os.path.join(hd.store, eid, meta["file"]))
                        core_size = meta["figures"]["core_size"]
                        assert size == meta["size"] == core_size, (size, meta)
                        seen.append(eid)
            except BaseException as e:  # noqa: B902 - reported by the test
                errors.append(e)
        t = threading.Thread(target=lister)
        t.start()
        try:
            pid = crash(exe, mib=64)
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        assert seen, "the lister never saw the entry"
        (eid, meta), = hd.entries().items()
        assert meta["trigger"] == "crash" and meta["rule"] == "segv-raw", meta
        assert meta["signal"] == signal.SIGSEGV and meta["signal_name"] == "SEGV", meta
        assert meta["pid"] == pid and meta["process"] == "crashtarget", meta
        assert meta["format"] == "raw" and meta["method"] == "kernel", meta
        core = os.path.join(hd.store, eid, "core.%d" % pid)
        st = os.stat(core)
        assert st.st_size == meta["figures"]["core_size"] and st.st_size > 64 << 20, (st, meta)
        assert meta["dumpType"] == "Full" and meta["core_name"] == "core.%d" % pid, meta
        # Sparse: the blocks of zeros are holes (the random heap is not).
        assert st.st_blocks * 512 < st.st_size, (st.st_blocks * 512, st.st_size)
        assert du.readelf_type(core).startswith("CORE")
        bt = du.gdb_core(exe, core, "bt", pid=pid)
        assert top_frame(bt) == "crash_by_segv", bt
        assert re.search(r"^#1\s+.* in main \(", bt, re.M), bt
        assert hd.leftovers() == [], hd.leftovers()
        rule = hd.state()["rules"]["segv-raw"]
        assert rule["count"] == 1 and rule.get("last_id") == eid, rule
        # Listed like any kept dump: by the CLI, and by the API, whose
        # download is the same bytes.
        r = subprocess.run([h.PROCDIAG, "dumps", "--config", hd.config, "--json", "list"],
                           stdout=subprocess.PIPE, check=True, timeout=60)
        (listed,) = json.loads(r.stdout)
        assert listed["id"] == eid and listed["trigger"] == "crash", listed
        with h.Stack(config_lines=["store_dir = " + hd.store]) as s:
            (api,) = s.json("/api/dumps")
            assert api["id"] == eid and api["trigger"] == "crash" and api["rule"] == "segv-raw"
            got = s.get("/api/dumps/" + eid, timeout=120)
            assert got.status == 200, got
            with open(core, "rb") as f:
                assert got.body == f.read()


def test_segv_zip_opens_in_gdb_on_the_bundle_alone():
    with Handler(RULES) as hd:
        exe = hd.target("crashzip")
        pid = crash(exe)
        h.wait_until(lambda: len(hd.entries()) == 1, 60, "one entry")
        (eid, meta), = hd.entries().items()
        assert meta["rule"] == "segv-zip" and meta["format"] == "zip", meta
        assert meta["bundle"]["binaries"] >= 2, meta  # the target and libc at least
        z = os.path.join(hd.store, eid, "core.%d.zip" % pid)
        names, man = tb.check_zip(z)
        assert "core.%d" % pid in names, names
        mods = {m["path"]: m for m in man["modules"]}
        assert exe in mods and mods[exe]["binary_included"], mods.keys()
        # The binary is gone from the disk: gdb has the bundle only.
        os.unlink(exe)
        try:
            folder = tb.extract(z)
            bt = tb.gdb_bundle(folder, tb.tmpdir(), os.path.join(folder, "open-core.gdb"),
                               "info sharedlibrary", "bt")
            libs = tb.shared_libraries(bt, folder)
            assert any("libc.so" in x for x in libs), libs
            assert top_frame(bt) == "crash_by_segv", bt
            assert re.search(r"^#1\s+.* in main \(", bt, re.M), bt
        finally:
            tb.cleanup()


def test_zstd_and_abrt():
    with Handler(RULES) as hd:
        zexe, exe = hd.target("crashzstd"), hd.target()
        zpid = crash(zexe)
        apid = crash(exe, "abrt")
        h.wait_until(lambda: len(hd.entries()) == 2, 60, "two entries")
        by_pid = {m["pid"]: (e, m) for e, m in hd.entries().items()}
        eid, meta = by_pid[zpid]
        assert meta["format"] == "zstd" and meta["rule"] == "segv-zstd", meta
        zst = os.path.join(hd.store, eid, "core.%d.zst" % zpid)
        core = os.path.join(hd.dir, "unzstd")
        subprocess.run(["zstd", "-q", "-d", zst, "-o", core], check=True)
        assert os.path.getsize(core) == meta["figures"]["core_size"]
        assert top_frame(du.gdb_core(zexe, core, "bt", pid=zpid)) == "crash_by_segv"
        eid, meta = by_pid[apid]
        assert meta["signal"] == signal.SIGABRT and meta["signal_name"] == "ABRT", meta
        bt = du.gdb_core(exe, os.path.join(hd.store, eid, "core.%d" % apid), "bt", pid=apid)
        assert re.search(r"^#\d+\s+.* in crash_by_abort \(", bt, re.M), bt


RECORDER = """#!/bin/sh
# Records what it was run with, as a core_pattern handler.
out=%s
/bin/cat > "$out.core"
i=0
for a in "$@"; do i=$((i+1)); last=$a; printf '%%s\\n' "$a"; done > "$out.args"
/bin/readlink "/proc/$$/fd/$last" > "$out.fd" 2>&1
/usr/bin/env > "$out.env"
/bin/mv "$out.args" "$out.done"
"""


def expected_args(exe, pid):
    """What the kernel gives for %P %p %i %I %s %e %u %g %c %h %d %E %f of
    crashtarget's main thread dying of SIGSEGV (%F checked apart)."""
    lim = (2 ** 64 - 1 if resource_core_hard() == -1 else resource_core_hard())
    return [str(pid)] * 4 + ["11", os.path.basename(exe)[:15], "0", "0", str(lim),
                             socket.gethostname(), "1", exe.replace("/", "!"),
                             os.path.basename(exe)]


def resource_core_hard():
    import resource
    return resource.getrlimit(resource.RLIMIT_CORE)[1]


def recorded(base, exe, what):
    """Crashes exe and returns the environment the recorder script got,
    after checking its arguments, its pidfd and the core on its stdin."""
    pid = crash(exe)
    h.wait_until(lambda: os.path.exists(base + ".done"), 30, what)
    with open(base + ".done") as f:
        args = f.read().splitlines()
    with open(base + ".fd") as f:
        fd = f.read().strip()
    with open(base + ".core", "rb") as f:
        magic = f.read(4)
    with open(base + ".env") as f:
        env = f.read()
    for name in (".done", ".fd", ".core", ".env"):
        os.unlink(base + name)
    assert magic == b"\x7fELF", magic
    assert args[:-1] == expected_args(exe, pid), (args, expected_args(exe, pid))
    assert fd == "anon_inode:[pidfd]", fd
    return env


def test_unmatched_crash_writes_nothing_or_is_chained():
    conf = "crash_chain = %s\n" + RULES
    rec_dir = tempfile.mkdtemp(prefix="pdr", dir="/tmp")
    try:
        os.chmod(rec_dir, 0o755)
        script = os.path.join(rec_dir, "r")
        base = os.path.join(rec_dir, "o")
        with open(script, "w") as f:
            f.write(RECORDER % base)
        os.chmod(script, 0o755)
        prev = ("|%s %%P %%p %%i %%I %%s %%e %%u %%g %%c %%h %%d %%E %%f %%F" % script).encode()
        # What the kernel itself gives that handler: the judge.
        with Handler(conf.replace("crash_chain = %s\n", ""), previous=prev) as hd:
            _write(CORE_PATTERN, prev)
            kenv = recorded(base, hd.target("crashother"), "the recorder's args")
        # crash_chain = false: an unmatched crash leaves no trace.
        with Handler(conf % "false", previous=prev) as hd:
            exe = hd.target("crashother")
            crash(exe)
            assert hd.entries() == {} and hd.leftovers() == [], os.listdir(hd.store)
            assert not os.path.exists(base + ".done") and not os.path.exists(base + ".core")
            assert hd.state()["failures"] == [], hd.state()
        # crash_chain = true: the previous handler gets it, as from the kernel.
        with Handler(conf % "true", previous=prev) as hd:
            assert recorded(base, hd.target("crashother"), "the chained handler") == kenv
            assert hd.entries() == {}, hd.entries()
    finally:
        shutil.rmtree(rec_dir, ignore_errors=True)


def test_procdiag_itself_is_never_stored():
    """The responder's memory holds other clients' keys: its unit's
    LimitCORE=0 means no core, which the kernel ignores for a pipe; the
    handler refuses it, even to a rule that names it."""
    conf = one_rule("greedy", "name = procdiag")
    with Handler(conf) as hd:
        sock = os.path.join(hd.dir, "s")
        p = subprocess.Popen([h.PROCDIAG, "serve", "--no-auth", "--listen", "unix:" + sock],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_until(lambda: os.path.exists(sock), 30, "the responder's socket")
        # SIGQUIT, not SIGSEGV: a sanitizer build catches SIGSEGV itself
        # and exits; SIGQUIT it leaves to the kernel, which dumps its core.
        os.kill(p.pid, signal.SIGQUIT)
        assert p.wait(timeout=60) == -signal.SIGQUIT
        wait_handled(p.pid)
        assert hd.entries() == {} and hd.leftovers() == [], os.listdir(hd.store)
        assert kernel_log_has("pid %d (procdiag) is procdiag: its core is not stored" % p.pid)
        assert hd.entries() == {} and hd.leftovers() == [], os.listdir(hd.store)
        assert hd.state()["failures"] == [], hd.state()


def test_a_hostile_comm_is_kept_and_cannot_forge_a_log_line():
    """A comm is any bytes but NUL: a newline cannot forge a second line in
    the kernel log, bytes that are not UTF-8 reach meta.json escaped."""
    comm = b"ev\nil\xff"
    conf = one_rule("weird", "cmdline = comm " + comm.hex())
    with Handler(conf) as hd:
        pid = crash(hd.target(), extra=["comm", comm.hex()])
        (eid, meta), = hd.entries().items()
        assert meta["rule"] == "weird" and meta["process"] == "ev\nil\\xFF", meta
        # dmesg shows the byte 0xff as \xff; the newline is a '?'.
        assert kernel_log_has("pid %d (ev?il\\xff), signal SEGV, rule weird: stored as %s"
                              % (pid, eid))


def test_install_twice_and_uninstall_restore_byte_for_byte():
    odd = b"pdcore.%e.%p  x"
    with Handler("crash_timeout = 5\n", previous=odd) as hd:
        assert hd.before == odd + b"\n", hd.before
        pat = _read(CORE_PATTERN)
        r = hd.cli("--install", "-c", hd.config, "--exe", hd.exe)
        assert r.returncode == 0, r.stderr
        assert _read(CORE_PATTERN) == pat
        st = hd.cli("--status")
        assert "previous core_pattern = pdcore.%e.%p  x\n" in st.stdout, st.stdout
        r = hd.cli("--uninstall")
        assert r.returncode == 0, r.stderr
        assert _read(CORE_PATTERN) == odd + b"\n", _read(CORE_PATTERN)
        assert _read(PIPE_LIMIT) == hd.orig_limit, (_read(PIPE_LIMIT), hd.orig_limit)
        assert not os.path.exists(hd.saved)
        # Nothing saved now: a second --uninstall changes nothing.
        r = hd.cli("--uninstall")
        assert r.returncode == 1 and "not installed" in r.stderr, r.stderr
        assert _read(CORE_PATTERN) == odd + b"\n"


def test_count_and_interval_limits():
    conf = """store_dir = {store}
[rule two]
name = crashtarget
trigger = crash SEGV
count = 2
interval = 0
[rule spaced]
name = crashspaced
trigger = crash SEGV
count = 0
interval = 1h
[rule racing]
name = crashracing
trigger = crash SEGV
count = 2
interval = 0
"""
    with Handler(conf) as hd:
        exe, spaced = hd.target(), hd.target("crashspaced")
        pids = [crash(exe) for _ in range(3)]
        spids = [crash(spaced) for _ in range(2)]
        h.wait_until(lambda: len(hd.entries()) == 3, 30, "three entries")
        got = sorted((m["rule"], m["pid"]) for m in hd.entries().values())
        assert got == sorted([("two", pids[0]), ("two", pids[1]), ("spaced", spids[0])]), got
        st = hd.state()
        assert st["rules"]["two"]["count"] == 2 and st["rules"]["spaced"]["count"] == 1, st
        assert st["failures"] == [], st
        out = hd.cli("--status").stdout
        assert "rule two: 2 stored, last %s\n" % st["rules"]["two"]["last_id"] in out, out
        # Four at once, count 2: the handlers run in parallel, exactly two
        # store a core.
        racing = hd.target("crashracing")
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            rpids = list(ex.map(lambda _: crash(racing), range(4)))
        h.wait_until(lambda: len(hd.entries()) == 5, 30, "five entries")
        got = [m["pid"] for m in hd.entries().values() if m["rule"] == "racing"]
        assert len(got) == 2 and set(got) <= set(rpids), (got, rpids)
        assert hd.state()["rules"]["racing"]["count"] == 2, hd.state()


def crash_fails(hd, error):
    """A 16 MiB crashtarget crashes, rule "big" takes it and fails: one
    failure record says error, nothing is stored, nothing is left over."""
    pid = crash(hd.target(), mib=16)
    h.wait_until(lambda: hd.state()["failures"], 30, "a failure record")
    f, = hd.state()["failures"]
    assert f["pid"] == pid and f["rule"] == "big" and f["error"] == error, f
    assert hd.entries() == {} and hd.leftovers() == [], os.listdir(hd.store)
    return pid


def test_full_store_records_a_failure_and_leaves_nothing():
    conf = one_rule("big", "name = crashtarget", top=["store_max_count = 0"])
    with Handler(conf, tmpfs="4m") as hd:
        pid = crash_fails(hd, "no_space")
        assert kernel_log_has("pid %d (crashtarget), signal SEGV, rule big: not captured: "
                              "no_space: " % pid)
        # The space is free again: nothing partial holds it.
        assert du.used_bytes(hd.store) < 256 << 10, du.used_bytes(hd.store)
        assert hd.state()["rules"]["big"]["count"] == 0, hd.state()
        st = hd.cli("--status").stdout
        assert "rule big: 0 stored\n" in st, st
        assert re.search(r"^failure: \d+ pid %d big: no_space: writing the core" % pid, st,
                         re.M), st
    # The store's own quota: the same, without a full disk.
    with Handler(conf.replace("store_max_count = 0", "store_max_bytes = 1M")) as hd:
        crash_fails(hd, "quota")


def test_the_dying_process_is_not_held_past_crash_timeout():
    """The handler waits for the state file's lock, which this test holds
    and never lets go while the target dies: the alarm ends the wait, the
    core is drained, the process goes, the failure is recorded later."""
    conf = one_rule("slow", "name = crashtarget", top=["crash_timeout = 2"])
    with Handler(conf) as hd:
        lock = os.open(os.path.join(hd.store, ".crash-state.lock"), os.O_RDWR | os.O_CREAT,
                       0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            exe = hd.target()
            pid = crash(exe, mib=8, timeout=90, handled=False)
            assert not os.path.exists("/proc/%d" % pid)
            assert hd.entries() == {}, hd.entries()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)
        wait_handled(pid)
        f, = hd.state()["failures"]
        assert f["pid"] == pid and f["error"] == "timeout", f
        assert hd.entries() == {} and hd.leftovers() == [], os.listdir(hd.store)


if __name__ == "__main__":
    h.main(globals())
