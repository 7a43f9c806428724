"""Helpers shared by the dump tests (test_dump.py, test_faults.py): targets
with a heap, the spool and helper checks, cores judged by eu-readelf and gdb."""
import calendar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

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


def script_target(script, mib):
    """A Python target running script with mib as its argument, once it
    printed "ready PID": (Popen, pid)."""
    p = h.spawn([sys.executable, "-c", script, str(mib)])
    words = h.read_line(p, timeout=60).split()
    assert words[0] == "ready", words
    pid = int(words[1])
    h.settle(pid)
    return p, pid


def heap_target(mib):
    return script_target(HEAP_SCRIPT, mib)


def named_sleep(d, name):
    """A sleep 60 whose comm is name (a copy of /bin/sleep in d)."""
    exe = os.path.join(d, name)
    shutil.copy("/bin/sleep", exe)
    p = h.spawn([exe, "60"], stdout=subprocess.DEVNULL)
    h.wait_until(lambda: (h.proc_stat(p.pid) or {}).get("comm") == name.encode(), 5,
                 "the process named " + name)
    return p


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


def helper_children(pd_pid, kind=None):
    """Processes whose parent is the responder (its helpers); with kind
    ("dump-helper", "stacks-helper"), only those whose command line says so
    (a stacks helper is kept running between requests)."""
    out = []
    for pid in h.children_of(pd_pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if kind is None or kind.encode() in argv:
            out.append(pid)
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


def gone_after_the_copy(stack, pid, query):
    """GETs the dump of pid with query on a socket of its own and closes it
    once the dump helper is gone (the copy ended, the job goes on with the
    core); returns the phase the request's log line says it was cancelled
    in."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=120)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer "
                  "%s\r\nConnection: close\r\n\r\n"
                  % (dump_url(pid, query), stack.port, stack.key)).encode())
    h.wait_until(lambda: helper_children(stack.pd.pid, "dump-helper"), 30,
                 "the dump helper to start")
    h.wait_until(lambda: not helper_children(stack.pd.pid, "dump-helper"), 60,
                 "the copy to end")
    sock.close()
    m = h.wait_until(lambda: re.search(
        r"GET /api/processes/%d/dump\S* .*dump=cancelled phase=(\w+)" % pid,
        stack.stderr()), 60, "the cancelled request's log line")
    return m.group(1)


def save(body, d, name="core"):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(body)
    return path


def readelf_type(path):
    r = subprocess.run([EU_READELF, "-h", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    m = re.search(r"^\s*Type:\s*(.*)$", r.stdout.decode("utf-8", "replace"), re.M)
    assert r.returncode == 0 and m, (r.stdout[:2000], r.stderr[:2000])
    return m.group(1).strip()


# Run by gdb once the core is loaded: every thread's LWP, PC and the
# function names of its frames, as one JSON line on stdout. A thread gdb
# knows only from libthread_db (a dead leader) has no registers: pc None.
_THREADS_PY = ("import json\n"
               "out = {}\n"
               "for t in gdb.selected_inferior().threads():\n"
               "    t.switch()\n"
               "    row = {'pc': None, 'frames': []}\n"
               "    out[t.ptid[1]] = row\n"
               "    try:\n"
               "        f = gdb.newest_frame()\n"
               "        row['pc'] = f.pc()\n"
               "    except gdb.error as e:\n"
               "        row['error'] = str(e)\n"
               "        continue\n"
               "    while f is not None:\n"
               "        row['frames'].append(f.name())\n"
               "        try:\n"
               "            f = f.older()\n"
               "        except gdb.error:\n"
               "            break\n"
               "print('PD-THREADS ' + json.dumps(out))\n")


def gdb_core(exe, core, *cmds, pid=None, pre=(), cwd=None):
    """gdb -batch on exe and core running cmds; returns what they printed
    on stdout. Fails the test unless gdb loaded the core (the process id in
    it is pid, when given) and exited 0: gdb says "not a core dump" and
    still exits 0 when it cannot load one. gdb's warnings go to stderr and
    are never parsed (gdb 13 warns about `.reg-xstate` on CPUs whose xsave
    layout it does not know, for the kernel's cores too)."""
    argv = [GDB, "-nx", "-batch", "-ex", "set auto-load safe-path /", "-ex", "set width 0",
            "-ex", "set height 0"]
    for c in list(pre) + list(cmds):
        argv += ["-ex", c]
    want = "== %d" % pid if pid is not None else "> 0"
    argv += ["-ex", "python assert gdb.selected_inferior().pid %s, "
             "'no core of the expected process loaded: pid %%d' %% gdb.selected_inferior().pid"
             % want]
    if exe is not None:
        argv.append(exe)
    if core is not None:
        argv.append(core)
    env = dict(os.environ)
    env.pop("DEBUGINFOD_URLS", None)  # never the network
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                       timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, "gdb exit %d on %s:\n%s\n--- stderr:\n%s" % (
        r.returncode, core, out[-3000:], err[-3000:])
    return out


def gdb_thread_info(exe, core, pid=None):
    """{lwp: {"pc": int or None, "frames": [function name or None,
    innermost first]}} of every thread gdb finds in core, through gdb's Python API
    (no parsing of gdb's layout)."""
    out = gdb_core(exe, core, "python exec(%r)" % _THREADS_PY, pid=pid)
    lines = [x for x in out.splitlines() if x.startswith("PD-THREADS ")]
    assert len(lines) == 1, out[-3000:]
    return {int(k): v for k, v in json.loads(lines[0][len("PD-THREADS "):]).items()}


def gdb_threads(exe, core, pid=None):
    """(number of threads gdb finds in core, their info as text)."""
    info = gdb_thread_info(exe, core, pid)
    return len(info), json.dumps(info, indent=1)


def assert_kudu_dump_name(r, comm, ext):
    """Kudu's attachment name: NAME-INSTANCE-MM-dd-HH-mm-ss.EXT, INSTANCE the
    first 6 characters of the host name, the time UTC (within 2 minutes)."""
    cd = r.header("Content-Disposition") or ""
    m = re.fullmatch(r'attachment; filename="(.+)-([^-]*)-(\d\d-\d\d-\d\d-\d\d-\d\d)\.(\w+)"',
                     cd)
    assert m, cd
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()[:6])
    assert m.group(1) == comm and m.group(2) == host and m.group(4) == ext, cd
    now = time.gmtime()
    stamp = time.strptime("%d-%s" % (now.tm_year, m.group(3)), "%Y-%m-%d-%H-%M-%S")
    assert abs(calendar.timegm(stamp) - calendar.timegm(now)) < 120, (cd, now)


def assert_core_response(r, comm):
    """A raw core from a Kudu route: its headers and Kudu's file name; returns
    X-Dump-Stopped-Us."""
    assert r.status == 200, r
    assert r.content_type == "application/octet-stream", r
    assert int(r.header("Content-Length")) == len(r.body), r.headers
    assert r.body[:4] == b"\x7fELF", r.body[:16]
    assert_kudu_dump_name(r, comm, "dmp")
    stopped = r.header("X-Dump-Stopped-Us")
    assert stopped is not None and stopped.isdigit(), r.headers
    return int(stopped)


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


# The test build's knob (lib/testhooks.h): the helper keeps the target frozen
# this long.
SLOW_FREEZE = "PD_TEST_FROZEN_SLEEP_MS"


class started:
    """A Stack of the test build (its hooks read env; hooked=False: of
    procdiag itself) whose responder (and so its helpers) has env added; as
    a context manager it stops the stack and reports its problems."""

    def __init__(self, env, hooked=True, **kw):
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.stack = h.Stack(hooked=hooked, **kw).start()
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


def hold_frozen(fifo, th, res, timeout=30):
    """The write end of the test build's PD_TEST_FROZEN_WAIT FIFO, once the
    helper of the dump that thread th runs (its answer goes in res) waits on
    it, its target frozen. Held open it keeps the helper waiting; closing it
    lets the helper go on."""
    def writer_end():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert th.is_alive(), "the dump ended before the freeze: %r" % res
            return None
    return h.wait_until(writer_end, timeout, "the helper to freeze the target")


def frozen(pid):
    """Some thread of pid is in a ptrace stop."""
    return not not_stopped(pid)


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




# Note types of an x86-64 core (include/uapi/linux/elf.h).
NOTE_NAMES = {1: "PRSTATUS", 2: "FPREGSET", 3: "PRPSINFO", 6: "AUXV", 0x200: "386_TLS",
              0x201: "386_IOPERM", 0x202: "X86_XSTATE", 0x204: "X86_SHSTK",
              0x205: "X86_XSAVE_LAYOUT", 0x46494c45: "FILE", 0x53494749: "SIGINFO"}


def core_notes(path):
    """[(owner, type, desc bytes)] of every note in the PT_NOTE segments of
    an ELF64 core, in file order: read here with struct, not by procdiag's
    own reader (lib/coreread.c)."""
    import struct
    with open(path, "rb") as f:
        eh = f.read(64)
        assert eh[:4] == b"\x7fELF" and eh[4] == 2, "not an ELF64 file: %s" % path
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        phdrs = f.read(phentsize * phnum)
        out = []
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", phdrs,
                                                                      i * phentsize)
            if p_type != 4:  # PT_NOTE
                continue
            f.seek(p_offset)
            data = f.read(p_filesz)
            off = 0
            while off + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from("<III", data, off)
                off += 12
                name = data[off:off + namesz].rstrip(b"\0").decode()
                off += (namesz + 3) & ~3
                out.append((name, ntype, data[off:off + descsz]))
                off += (descsz + 3) & ~3
            assert off == len(data), "%s: notes end at %d of %d" % (path, off, len(data))
    return out


def readelf_notes(path):
    """[(owner, size)] of every note as eu-readelf -n lists them."""
    r = subprocess.run([EU_READELF, "-n", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, (out[-2000:], r.stderr[-2000:])
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r"^  (\S+)\s+(\d+)\s+\S", out, re.M)]


def kernel_version():
    """(major, minor) of the running kernel."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return int(m.group(1)), int(m.group(2))
