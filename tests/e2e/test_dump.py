#!/usr/bin/env python3
"""GET /{id}/dump through nginx, and `procdiag dump`: the cores judged by
eu-readelf and gdb, the errors by their problem documents, the spool by the
space and file descriptors it leaves behind (none), the target by its state
(never left stopped)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GDB = shutil.which("gdb") or "/usr/bin/gdb"
EU_READELF = shutil.which("eu-readelf") or "/usr/bin/eu-readelf"
UNZIP = shutil.which("unzip") or "/usr/bin/unzip"

# A process with `mib` MiB of touched, non-zero heap: big enough that a
# full dump outgrows the socket buffers between the responder and a client
# that stops reading.
HEAP_SCRIPT = ("import os, sys, time\n"
               "mib = int(sys.argv[1])\n"
               "block = os.urandom(1 << 20)\n"
               "heap = [bytearray(block) for _ in range(mib)]\n"
               "print('ready', os.getpid(), flush=True)\n"
               "time.sleep(600)\n")


def heap_target(mib):
    p = h.spawn([sys.executable, "-c", HEAP_SCRIPT, str(mib)])
    words = h.read_line(p, timeout=30).split()
    assert words[0] == "ready", words
    pid = int(words[1])
    h.settle(pid)
    return p, pid


def not_stopped(pid):
    """Every thread of pid runs (or sleeps): none in a ptrace stop ('t')
    or a group stop ('T')."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        state = data[data.rindex(b")") + 2:][:1]
        if state in (b"t", b"T"):
            return False
    return True


def assert_resumed(pid, timeout=2.0):
    h.wait_until(lambda: not_stopped(pid), timeout, "pid %d to run again" % pid)
    st = h.proc_stat(pid)
    assert st is not None and st["state"] not in ("t", "T"), st


def helper_children(pd_pid):
    """Processes whose parent is the responder (dump helpers)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = h.proc_stat(int(name))
            if st and st["ppid"] == pd_pid:
                out.append(int(name))
    return out


def spool_fds(pd_pid, spool):
    """The responder's fds on files in the spool directory or in memfds."""
    out = []
    fddir = "/proc/%d/fd" % pd_pid
    for fd in os.listdir(fddir):
        try:
            target = os.readlink(os.path.join(fddir, fd))
        except OSError:
            continue
        if target.startswith(spool + "/") or target.startswith("/memfd:procdiag"):
            out.append(target)
    return out


def used_bytes(path):
    sv = os.statvfs(path)
    return (sv.f_blocks - sv.f_bfree) * sv.f_frsize


class Tmpfs:
    """A tmpfs of the given size (we are root), unmounted at the end."""

    def __init__(self, size):
        base = os.path.join(h.BUILDDIR, "_test")
        os.makedirs(base, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix="spool-", dir=base)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                        self.path], check=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path], check=False)
        os.rmdir(self.path)
        return False


def assert_nothing_left(stack, spool, baseline):
    """No helper left, no spool fd left open, the spool's space back."""
    h.wait_until(lambda: not helper_children(stack.pd.pid), 5, "the helper to be reaped")
    h.wait_until(lambda: not spool_fds(stack.pd.pid, spool), 5,
                 "the responder to close its spool")
    h.wait_until(lambda: used_bytes(spool) <= baseline, 5, "the spool's space to be freed")
    assert os.listdir(spool) == [], os.listdir(spool)


def dump_url(pid, query="", prefix="/api/processes"):
    return "%s/%d/dump%s" % (prefix, pid, ("?" + query) if query else "")


def save(body, d, name="core"):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(body)
    return path


def readelf_type(path):
    r = subprocess.run([EU_READELF, "-h", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    m = re.search(r"^\s*Type:\s*(.*)$", r.stdout.decode("utf-8", "replace"), re.M)
    assert m, r.stdout[:2000]
    return m.group(1).strip()


def gdb_threads(exe, core):
    r = subprocess.run([GDB, "-batch", "-nx", "-ex", "info threads", exe, core],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    return len(re.findall(r"^\*?\s+\d+\s+(?:Thread 0x[0-9a-f]+ )?\(?LWP \d+", out, re.M)), out


def assert_core_response(r, pid, comm):
    assert r.status == 200, r
    assert r.content_type == "application/octet-stream", r
    assert int(r.header("Content-Length")) == len(r.body), r.headers
    assert r.body[:4] == b"\x7fELF", r.body[:16]
    cd = r.header("Content-Disposition") or ""
    m = re.fullmatch(r'attachment; filename="core_([A-Za-z0-9._-]+)_(\d+)_(\d{8}_\d{6}Z)"', cd)
    assert m, cd
    assert m.group(1) == comm and int(m.group(2)) == pid, cd
    stamp = time.strptime(m.group(3), "%Y%m%d_%H%M%SZ")
    assert abs(time.mktime(stamp) - time.mktime(time.gmtime())) < 120, cd
    stopped = r.header("X-Dump-Stopped-Us")
    assert stopped is not None and stopped.isdigit(), r.headers
    return int(stopped)


# --------------------------------------------------------------------------
# Parameters and refusals: answered before any dump is taken

def test_bad_dump_type_is_400_naming_it():
    s = h.shared()
    t = h.target("threads", 1)
    for q in ("dumpType=0x80000000", "dumpType=abc", "dumpType=-1", "dumpType=0x2000000",
              "dumpType=4294967296", "dumpType=Minis", "DUMPTYPE=1.5"):
        doc = h.assert_problem(s.get(dump_url(t.pid, q)), 400, "dumpType")
        assert "dumpType" in doc["detail"], doc
    doc = h.assert_problem(s.get(dump_url(t.pid, "dumpType=0x80000000")), 400, "dumpType")
    assert doc.get("undefinedBits") == "0x80000000", doc
    assert_resumed(t.pid)


def test_bad_format_is_400_naming_it():
    s = h.shared()
    t = h.target()
    for q in ("format=tar", "format=zipx", "format=ZIP2", "dumpType=2&format=tar"):
        doc = h.assert_problem(s.get(dump_url(t.pid, q)), 400, "format")
        assert "format" in doc["detail"], doc


def test_unknown_and_out_of_scope_are_404():
    s = h.shared()
    nobody = h.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      "sleep", "60"], stdout=subprocess.DEVNULL)
    h.wait_until(lambda: h.proc_uid(nobody.pid) == 65534 and
                 h.proc_stat(nobody.pid)["comm"] == b"sleep", 5, "sleep as nobody")
    a = s.get(dump_url(nobody.pid))
    h.assert_problem(a, 404)
    b = s.get(dump_url(unused_pid()))
    h.assert_problem(b, 404)
    # Out of scope looks exactly like absent.
    assert a.json()["title"] == b.json()["title"]
    assert not_stopped(nobody.pid)
    h.assert_problem(s.get("/api/processes/abc/dump"), 400, "id")


def test_zombie_and_kernel_thread_are_409():
    s = h.shared()
    t = h.target("zombie")
    assert h.proc_stat(t.zombie)["state"] == "Z"
    doc = h.assert_problem(s.get(dump_url(t.zombie)), 409)
    assert "zombie" in doc["detail"], doc
    doc = h.assert_problem(s.get(dump_url(2)), 409)  # kthreadd
    assert "kernel thread" in doc["detail"], doc
    assert h.alive(t.pid)


def test_no_room_in_spool_is_507_and_nothing_left():
    with Tmpfs("1m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with h.Stack(config_lines=lines) as s:
            proc, pid = heap_target(8)
            baseline = used_bytes(spool.path)
            for q in ("dumpType=2", "dumpType=0", "dumpType=Heap"):
                doc = h.assert_problem(s.get(dump_url(pid, q)), 507)
                assert "spool" in doc["detail"], doc
            assert_nothing_left(s, spool.path, baseline)
            assert_resumed(pid)
            # The responder is fine, and answers the list.
            assert s.get("/api/processes").status == 200
            h.kill_tree(proc)


def test_head_takes_no_dump():
    s = h.shared()
    t = h.target()
    r = s.head(dump_url(t.pid, "dumpType=Full"))
    assert r.status == 200, r
    assert r.body == b""
    assert r.content_type == "application/octet-stream", r
    assert "attachment" in (r.header("Content-Disposition") or ""), r.headers
    assert r.header("X-Dump-Type") == "0x2", r.headers
    assert r.header("Content-Length") is None, r.headers
    assert r.header("X-Dump-Stopped-Us") is None, r.headers
    assert not helper_children(s.pd.pid)
    line = h.wait_until(lambda: re.search(r"^HEAD /api/processes/%d/dump status=200.*$" % t.pid,
                                          s.stderr(), re.M), 5, "the HEAD log line")
    assert "stopped_us" not in line.group(0), line.group(0)


# --------------------------------------------------------------------------
# Real dumps (need the dump engine: `procdiag dump-helper`)

def test_mini_dump_is_a_core_gdb_opens_with_every_thread():
    s = h.shared()
    t = h.target("threads", 3)
    r = s.get(dump_url(t.pid), timeout=120)
    assert_core_response(r, t.pid, "pdtarget")
    assert r.header("X-Dump-Type") == "0x0", r.headers
    assert r.header("X-Dump-Ignored-Bits") == "0x0", r.headers
    assert r.header("X-Dump-Threads") == "4", r.headers
    assert_resumed(t.pid)
    d = tempfile.mkdtemp(prefix="pd-dump-")
    try:
        core = save(r.body, d)
        assert readelf_type(core).startswith("CORE"), readelf_type(core)
        n, out = gdb_threads(h.PDTARGET, core)
        assert n == 4, "gdb shows %d threads, want 4:\n%s" % (n, out[-3000:])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    # The stopped time is in the request log too.
    h.wait_until(lambda: re.search(r"GET /api/processes/%d/dump status=200 .*stopped_us=\d+"
                                   % t.pid, s.stderr()), 5, "the log line")


def test_dump_under_every_prefix_and_names():
    s = h.shared()
    t = h.target("threads", 1)
    for prefix, q in zip(h.PREFIXES, ("dumpType=Mini", "dumpType=0", "")):
        r = s.get(dump_url(t.pid, q, prefix), timeout=120)
        assert_core_response(r, t.pid, "pdtarget")
        assert_resumed(t.pid)


def test_dump_type_reaches_the_engine():
    """A mini dump leaves a 24 MiB heap out, Heap and Full take it in."""
    s = h.shared()
    proc, pid = heap_target(24)
    comm = h.proc_stat(pid)["comm"].decode()
    sizes = {}
    for q in ("dumpType=0", "dumpType=Heap", "dumpType=2"):
        r = s.get(dump_url(pid, q), timeout=300)
        assert_core_response(r, pid, re.sub(r"[^A-Za-z0-9._-]", "_", comm))
        sizes[q] = len(r.body)
        assert_resumed(pid)
    assert sizes["dumpType=0"] < 24 << 20 < sizes["dumpType=Heap"], sizes
    assert sizes["dumpType=2"] > 24 << 20, sizes
    h.kill_tree(proc)


ZOMBIE_LEADER_SCRIPT = ("import ctypes, os, threading, time\n"
                        "def worker():\n"
                        "    print('ready', os.getpid(), flush=True)\n"
                        "    while True:\n"
                        "        time.sleep(1)\n"
                        "threading.Thread(target=worker).start()\n"
                        "time.sleep(0.1)\n"
                        "ctypes.CDLL(None).pthread_exit(None)\n")


def test_dead_leader_with_a_live_thread_is_dumped():
    """The main thread called pthread_exit: /proc says Z for the process,
    but a thread runs, so it is no zombie and is dumped."""
    s = h.shared()
    p = h.spawn([sys.executable, "-c", ZOMBIE_LEADER_SCRIPT])
    pid = int(h.read_line(p).split()[1])
    h.wait_until(lambda: h.proc_stat(pid)["state"] == "Z", 5, "the leader to exit")
    r = s.get(dump_url(pid), timeout=120)
    assert r.status == 200, r
    assert r.body[:4] == b"\x7fELF"
    assert_resumed(pid)


def test_ignored_bits_are_reported():
    s = h.shared()
    t = h.target()
    # WithHandleData (no Linux meaning) | WithThreadInfo (always there).
    r = s.get(dump_url(t.pid, "dumpType=0x1004"), timeout=120)
    assert_core_response(r, t.pid, "pdtarget")
    assert r.header("X-Dump-Type") == "0x1004", r.headers
    assert r.header("X-Dump-Ignored-Bits") == "0x4", r.headers
    assert r.header("X-Dump-Ignored") == "MiniDumpWithHandleData", r.headers


def test_id_zero_dumps_the_responder_itself():
    s = h.shared()
    r = s.get(dump_url(0), timeout=120)
    assert_core_response(r, s.pd.pid, "procdiag")
    assert_resumed(s.pd.pid)
    d = tempfile.mkdtemp(prefix="pd-dump-")
    try:
        core = save(r.body, d)
        n, out = gdb_threads(h.PROCDIAG, core)
        want = int(h.proc_status(s.pd.pid)["Threads"])
        assert n == want, "gdb shows %d threads, the responder has %d:\n%s" % (
            n, want, out[-3000:])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert s.get("/api/processes").status == 200


def start_download(stack, path):
    """Sends a GET on a raw socket and reads only the response head; the
    body is left unread, so the responder blocks writing it."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=120)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n\r\n" % (path, stack.port, stack.key))
    sock.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "connection closed after %r" % head
        head += chunk
    status = int(head.split(b" ", 2)[1])
    return sock, status, head


def test_second_dump_is_429_and_others_answer_while_one_runs():
    with Tmpfs("512m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with h.Stack(config_lines=lines) as s:
            proc, pid = heap_target(96)
            baseline = used_bytes(spool.path)
            sock, status, head = start_download(s, dump_url(pid, "dumpType=2"))
            try:
                assert status == 200, head
                # The first dump holds its slot while its body is unread.
                r = s.get(dump_url(pid))
                h.assert_problem(r, 429)
                assert r.header("Retry-After").isdigit(), r.headers
                # List, detail and kill keep answering.
                assert s.get("/api/processes").status == 200
                assert s.get("/api/processes/%d" % pid).status == 200
                victim = h.target()
                assert s.delete("/api/processes/%d" % victim.pid).status == 204
                assert_resumed(pid)
            finally:
                # A client that goes away mid-download.
                sock.close()
            assert_nothing_left(s, spool.path, baseline)
            assert_resumed(pid)
            h.wait_until(lambda: re.search(r"/dump status=200 .*client_gone", s.stderr()), 5,
                         "the aborted download in the log")
            # The slot is free again.
            r = s.get(dump_url(pid), timeout=120)
            assert r.status == 200, r
            assert_nothing_left(s, spool.path, baseline)
            h.kill_tree(proc)


def test_client_gone_during_the_dump_leaves_nothing():
    """The client hangs up right after asking, while the helper works."""
    with Tmpfs("512m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with h.Stack(config_lines=lines) as s:
            proc, pid = heap_target(128)
            baseline = used_bytes(spool.path)
            for _ in range(3):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
                sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                              % (dump_url(pid, "dumpType=2"), s.key)).encode())
                time.sleep(0.02)
                sock.close()
                assert_nothing_left(s, spool.path, baseline)
                assert_resumed(pid)
            assert s.get("/api/processes").status == 200
            h.kill_tree(proc)


# The engine's test-only knob: the helper keeps the target frozen this long.
SLOW_FREEZE = "PD_TEST_FROZEN_SLEEP_MS"


class started:
    """A Stack whose responder (and so its helpers) has env added; as a
    context manager it stops the stack and reports its problems."""

    def __init__(self, env, **kw):
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.stack = h.Stack(**kw).start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def __enter__(self):
        return self.stack

    def __exit__(self, et, ev, tb):
        return self.stack.__exit__(et, ev, tb)


def frozen(pid):
    """Some thread of pid is in a ptrace stop."""
    return not not_stopped(pid)


def test_others_answer_while_a_dump_is_frozen_and_a_second_is_429():
    with started({SLOW_FREEZE: "2000"}) as s:
        t = h.target("threads", 2)
        out = {}
        th = threading.Thread(target=lambda: out.update(r=s.get(dump_url(t.pid), timeout=60)))
        th.start()
        try:
            h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
            t0 = time.monotonic()
            assert s.get("/api/processes").status == 200
            assert s.get("/api/processes/%d" % t.pid).status == 200
            victim = h.target()
            assert s.delete("/api/processes/%d" % victim.pid).status == 204
            r = s.get(dump_url(victim.pid if h.alive(victim.pid) else t.pid))
            h.assert_problem(r, 429)
            assert r.header("Retry-After") == "10", r.headers
            # All of that happened while the first dump held the target.
            assert frozen(t.pid), "the freeze ended before the checks did"
            assert time.monotonic() - t0 < 1.5
        finally:
            th.join(60)
        r = out["r"]
        stopped = assert_core_response(r, t.pid, "pdtarget")
        assert stopped >= 2000 * 1000, stopped
        assert_resumed(t.pid)


def test_client_abort_during_the_freeze_resumes_the_target_at_once():
    with Tmpfs("64m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with started({SLOW_FREEZE: "4000"}, config_lines=lines) as s:
            t = h.target("threads", 3)
            baseline = used_bytes(spool.path)
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                          % (dump_url(t.pid), s.key)).encode())
            h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
            assert spool_fds(s.pd.pid, spool.path), "the dump does not use the spool"
            sock.close()
            t0 = time.monotonic()
            h.wait_until(lambda: not_stopped(t.pid), 1.5, "the target to run again")
            assert time.monotonic() - t0 < 1.5
            assert_nothing_left(s, spool.path, baseline)
            h.wait_until(lambda: "dump=cancelled" in s.stderr(), 5, "the log line")
            assert s.get("/api/processes").status == 200


def reap_our_zombies(skip):
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in skip:
            st = h.proc_stat(int(name))
            if st and st["ppid"] == me and st["state"] == "Z" and st["comm"] == b"procdiag":
                try:
                    os.waitpid(int(name), os.WNOHANG)
                except ChildProcessError:
                    pass


def test_responder_killed_during_the_freeze_target_runs_within_a_second():
    s = started({SLOW_FREEZE: "10000"}).stack
    t = h.target("threads", 2)
    try:
        th = threading.Thread(target=lambda: s.get(dump_url(t.pid), timeout=30))
        th.daemon = True
        th.start()
        h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
        helpers = helper_children(s.pd.pid)
        assert helpers, "no helper under the responder"
        s.terminated = True
        os.kill(s.pd.pid, signal.SIGKILL)
        t0 = time.monotonic()
        h.wait_until(lambda: not_stopped(t.pid), 1.0, "the target to run again")
        assert time.monotonic() - t0 < 1.0
        h.wait_until(lambda: not any(h.alive(p) for p in helpers), 2, "the helper to die")
        th.join(30)
    finally:
        # nginx rightly logs the dropped connection: not this test's concern.
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
        reap_our_zombies({s.pd.pid})
    assert_resumed(t.pid)


def test_zip_bundle():
    s = h.shared()
    t = h.target("threads", 2)
    r = s.get(dump_url(t.pid, "format=zip"), timeout=300)
    assert r.status == 200, r
    assert r.content_type == "application/zip", r
    assert int(r.header("Content-Length")) == len(r.body)
    assert (r.header("Content-Disposition") or "").endswith('.zip"'), r.headers
    assert_resumed(t.pid)
    d = tempfile.mkdtemp(prefix="pd-zip-")
    try:
        z = save(r.body, d, "bundle.zip")
        u = subprocess.run([UNZIP, "-t", z], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert u.returncode == 0, u.stdout.decode("utf-8", "replace")[-2000:]
        names = zipfile.ZipFile(z).namelist()
        assert "core.%d" % t.pid in names, names
        assert "manifest.json" in names, names
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# The command line

def test_cli_dump_to_file():
    t = h.target("threads", 2)
    d = tempfile.mkdtemp(prefix="pd-cli-")
    try:
        out = os.path.join(d, "x.core")
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode == 0, err
        assert "stopped for" in err, err
        assert readelf_type(out).startswith("CORE")
        n, gout = gdb_threads(h.PDTARGET, out)
        assert n == 3, gout[-2000:]
        assert os.stat(out).st_mode & 0o077 == 0, oct(os.stat(out).st_mode)
        assert_resumed(t.pid)
        # An existing file is not replaced.
        before = os.stat(out)
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert r.returncode == 1 and b"exists" in r.stderr, r
        assert os.stat(out).st_mtime_ns == before.st_mtime_ns
        # The default name, in the current directory.
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--type", "Mini", "-q"],
                           cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert r.returncode == 0, r.stderr
        made = [f for f in os.listdir(d) if re.fullmatch(r"core_\d{8}_\d{6}", f)]
        assert len(made) == 1, os.listdir(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_zip():
    t = h.target("threads", 1)
    d = tempfile.mkdtemp(prefix="pd-cli-")
    try:
        out = os.path.join(d, "b.zip")
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--zip", "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
        assert_resumed(t.pid)
        u = subprocess.run([UNZIP, "-t", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert u.returncode == 0, u.stdout.decode("utf-8", "replace")[-2000:]
        names = zipfile.ZipFile(out).namelist()
        assert "core.%d" % t.pid in names, names
        assert os.listdir(d) == ["b.zip"], os.listdir(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_refusals():
    t = h.target("zombie")
    d = tempfile.mkdtemp(prefix="pd-cli-")
    try:
        out = os.path.join(d, "c")
        for argv, rc, text in (
                (["--type", "abc"], 2, b"--type"),
                (["--type", "0x80000000"], 2, b"0x80000000"),
                ([], 1, None),  # the zombie
        ):
            pid = t.zombie if not argv else t.pid
            r = subprocess.run([h.PROCDIAG, "dump", "-p", str(pid), "-o", out] + argv,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            assert r.returncode == rc, (argv, r)
            if text:
                assert text in r.stderr, r.stderr
            assert not os.path.exists(out)
        r = subprocess.run([h.PROCDIAG, "dump"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 2 and b"usage" in r.stderr, r
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(unused_pid()), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 1 and b"no such process" in r.stderr, r
        assert os.listdir(d) == []
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unused_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        top = int(f.read())
    for pid in range(top - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise AssertionError("no unused pid")



# --------------------------------------------------------------------------
# dotnet-monitor's GET /dump?pid=&uid=&name=&type=

def test_monitor_dump_route():
    """The same dumps at dotnet-monitor's route: the process chosen by pid,
    uid or name, `type` WithHeap by default (as theirs), its errors naming
    the parameter."""
    s = h.shared()
    t = h.target("threads", 2)
    r = s.get("/dump?pid=%d" % t.pid, timeout=120)
    assert_core_response(r, t.pid, "pdtarget")
    assert r.header("X-Dump-Type") == "0x201", r.headers
    tmp = tempfile.mkdtemp(prefix="pd-e2e-mondump-")
    try:
        n, out = gdb_threads(h.PDTARGET, save(r.body, tmp))
        assert n == 3, out[-2000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    uid = s.json("/process?pid=%d" % t.pid)["uid"]
    r = s.get("/dump?uid=%s&type=Mini" % uid, timeout=120)
    assert_core_response(r, t.pid, "pdtarget")
    assert r.header("X-Dump-Type") == "0x0", r.headers
    h.assert_problem(s.get("/dump?pid=abc"), 400, "pid")
    h.assert_problem(s.get("/dump?pid=%d&type=Bogus" % t.pid), 400, "type")
    h.assert_problem(s.get("/dump?pid=%d&format=tar" % t.pid), 400, "format")
    h.assert_problem(s.get("/dump?pid=4194303"), 404, "pid")
    h.assert_problem(s.get("/dump?name=no-such-process-here"), 404, "name")
    assert_resumed(t.pid)


def test_monitor_and_kudu_dumps_share_the_limit():
    with Tmpfs("512m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with h.Stack(config_lines=lines) as s:
            proc, pid = heap_target(96)
            sock, status, head = start_download(s, dump_url(pid, "dumpType=2"))
            try:
                assert status == 200, head
                r = s.get("/dump?pid=%d" % pid)
                h.assert_problem(r, 429)
                assert r.header("Retry-After").isdigit(), r.headers
            finally:
                sock.close()
            assert_resumed(pid)
            h.kill_tree(proc)

if __name__ == "__main__":
    h.main(globals())
