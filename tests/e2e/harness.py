"""End-to-end test harness: a real procdiag behind a real nginx, real targets.

Python 3 standard library only. A test file defines functions named test_*
and ends with `harness.main(globals())`, which runs them in the order they
are defined and prints TAP (automake's tap-driver.sh reads it):

    1..N
    ok 1 - test_name
    not ok 2 - test_other
    # Traceback ...

Nothing is skipped: a missing tool is a failure (./dev test installs them);
only installed mode (below) skips the tests it cannot run.

Environment (set by `make check`; defaults suit running a file by hand from
the top of a built tree): PD_BUILDDIR (where procdiag and
tests/targets/pdtarget are), PD_SRCDIR (where nginx/ is), PD_NGINX (default
/usr/sbin/nginx), PD_PROCDIAG (the procdiag binary; default
PD_BUILDDIR/procdiag). PROCDIAG_HOOKED is the test build of it
(tests/procdiag-hooked, with lib/testhooks.h's hooks; docs/TESTING.md): a
test that steers the engine through a PD_TEST_* variable runs that one
(Stack(hooked=True)); procdiag itself ignores them.

Installed mode (packaging/package-test.sh, run by ./dev test): with
PD_E2E_TARGET=installed the tests talk to an already running, installed
procdiag behind the system nginx instead of starting their own:
  PD_E2E_BASE       its base URL, http://127.0.0.1:PORT
  PD_E2E_KEY        an API key it accepts
  PD_E2E_PID        the responder's pid (id 0; watched for crashes/restarts)
  PD_E2E_LOG        optional: a file with the responder's stderr
  PD_E2E_NGINX_LOG  optional: nginx's error log
shared() then returns that responder. A test that needs a responder of its
own (another config, no auth, or one it stops) is reported as skipped
("# SKIP" in TAP) in this mode, and only in this mode.

The pieces:
  Stack        procdiag + nginx in a temp dir, as a context manager; HTTP
               helpers get/head/delete/post/put/request returning Response
  shared()     one Stack per test file, started on first use, stopped (and
               checked for crashes) at the end of the run
  spawn()      start a process that is killed at exit if still running
  target()     start tests/targets/pdtarget and wait for its "ready" line
  proc_stat(), proc_status(), alive(), wait_gone(), ps()  the judges' side
"""

import base64
import ctypes
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("PD_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("PD_BUILDDIR") or SRCDIR
NGINX = os.environ.get("PD_NGINX") or "/usr/sbin/nginx"
PROCDIAG = os.environ.get("PD_PROCDIAG") or os.path.join(BUILDDIR, "procdiag")
PROCDIAG_HOOKED = os.path.join(BUILDDIR, "tests", "procdiag-hooked")
INSTALLED = os.environ.get("PD_E2E_TARGET") == "installed"
# Installed mode's settings, taken out of the environment so that the
# targets the tests start do not inherit them (test_detail filters the
# environment by "pd_e2e").
E2E_ENV = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PD_E2E_")}
PDTARGET = os.path.join(BUILDDIR, "tests", "targets", "pdtarget")
SNIPPET_SOCKET = "unix:/run/procdiag/procdiag.sock"

# What a crashed or sanitizer-flagged responder leaves on stderr.
CRASH_PATTERNS = re.compile(
    r"Segmentation fault|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
    r"ThreadSanitizer|runtime error:|Assertion .* failed|Aborted|core dumped|"
    r"double free|free\(\): invalid|corrupted (size|double)|stack smashing|"
    r"malloc\(\): ")
# What nginx logs when the responder drops a request on the floor.
NGINX_BAD = re.compile(r"upstream prematurely closed|Connection reset by peer|"
                       r"\[alert\]|\[crit\]|\[emerg\]")

# The tests judge with plain `assert`: under python3 -O or PYTHONOPTIMIZE
# every one of them would be gone and each file would pass. Refuse to run.
if not __debug__:
    sys.stdout.write("Bail out! assert is disabled (python3 -O or PYTHONOPTIMIZE=%r): "
                     "these tests would check nothing\n" % os.environ.get("PYTHONOPTIMIZE"))
    sys.stdout.flush()
    sys.exit(1)

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper():
    """Orphaned descendants of our targets (a killed tree's leaves) are
    re-parented to us instead of to pid 1, so we can reap them: some pid 1s
    (containers, VMs) never do, and zombies would pile up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_become_subreaper()


def diag(msg):
    """A TAP comment line."""
    for line in str(msg).splitlines() or [""]:
        sys.stdout.write("# " + line + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# /proc and ps: the independent judges

def proc_stat(pid):
    """/proc/PID/stat parsed safely (comm may hold ') ' and any byte).
    Returns a dict, or None if the process does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    lpar = data.index(b"(")
    rpar = data.rindex(b")")
    rest = data[rpar + 2:].split()
    return {
        "pid": int(data[:lpar]),
        "comm": data[lpar + 1:rpar],
        "state": rest[0].decode(),
        "ppid": int(rest[1]),
        "pgrp": int(rest[2]),
        "flags": int(rest[6]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
        "num_threads": int(rest[17]),
        "starttime": int(rest[19]),
    }


def proc_status(pid):
    """/proc/PID/status as {key: value string}, or None."""
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {}
    for line in data.split(b"\n"):
        if b":" in line:
            k, v = line.split(b":", 1)
            out[k.decode()] = v.strip().decode("utf-8", "replace")
    return out


def children_of(ppid):
    """{pid: proc_stat} of the processes whose parent is ppid now."""
    out = {}
    for name in os.listdir("/proc"):
        st = proc_stat(int(name)) if name.isdigit() else None
        if st and st["ppid"] == ppid:
            out[st["pid"]] = st
    return out


def status_bytes(pid, key):
    """A `kB` line of /proc/PID/status in bytes, or None."""
    st = proc_status(pid) or {}
    v = st.get(key)
    if v is None:
        return None
    return int(v.split()[0]) * 1024


def proc_uid(pid):
    return os.stat("/proc/%d" % pid).st_uid


def ps(pid, fmt):
    """`ps -o FMT= -p PID`, stripped, or None when ps knows no such pid."""
    r = subprocess.run(["ps", "-o", fmt + "=", "-p", str(pid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", "replace").strip()


def is_kernel_thread(pid):
    st = proc_stat(pid)
    return bool(st and st["flags"] & 0x00200000)  # PF_KTHREAD


def alive(pid, starttime=None):
    """True while PID runs: exists, is not a zombie (a zombie is dead, only
    not yet reaped), and, if given, still has that start time (no reuse)."""
    st = proc_stat(pid)
    if st is None or st["state"] in ("Z", "X", "x"):
        return False
    return starttime is None or st["starttime"] == starttime


def sleep_as_nobody():
    """A `sleep 60` running as uid 65534: a process outside the default scope
    (procdiag's own uid). Spawned, so it is killed at exit."""
    p = spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"],
              stdout=subprocess.DEVNULL)
    wait_until(lambda: proc_uid(p.pid) == 65534 and (proc_stat(p.pid) or {}).get("comm") == b"sleep",
               5, "sleep as nobody")
    return p


# A valid pid no process can have: pids stay below pid_max, which is at
# most PID_MAX_LIMIT (4194304 on 64-bit kernels).
NO_PID = 4194304


def unused_pid():
    """A pid no process has now (counting down from pid_max)."""
    with open("/proc/sys/kernel/pid_max") as f:
        top = int(f.read())
    for pid in range(top - 1, 1, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise AssertionError("no unused pid")


def wait_gone(pids, timeout=5.0):
    """Waits until none of pids (a list of (pid, starttime) or pids) is alive;
    returns the ones still alive."""
    items = [p if isinstance(p, tuple) else (p, None) for p in pids]
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans()
        left = [p for p, s in items if alive(p, s)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def wait_until(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Processes we start

_spawned = []  # Popen objects, killed (whole process group) at exit


def spawn(argv, env=None, stdout=subprocess.PIPE, cwd=None, extra_env=None, **kw):
    """Starts argv in a new session (so its whole tree can be killed) and
    remembers it; whatever is still running at exit is SIGKILLed."""
    if extra_env:
        env = dict(os.environ if env is None else env)
        env.update(extra_env)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, env=env, cwd=cwd,
                         start_new_session=True, **kw)
    _spawned.append(p)
    return p


def read_line(proc, timeout=10.0):
    """One line of proc's stdout (a PIPE), or AssertionError on timeout/EOF."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no line from pid %d within %.1fs (got %r)" %
                                 (proc.pid, timeout, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            c = os.read(fd, 1)
            if not c:
                raise AssertionError("pid %d closed stdout (exit %r) after %r" %
                                     (proc.pid, proc.poll(), buf))
            buf += c
    return buf.decode()


class Target:
    """A running tests/targets/pdtarget: .proc (Popen), .pid, .chain (pids
    top down for `tree`), .zombie (pid or None)."""

    def __init__(self, proc, line):
        words = line.split()
        if not words or words[0] != "ready":
            raise AssertionError("pdtarget said %r" % line)
        self.proc = proc
        self.zombie = None
        if "zombie" in words:
            i = words.index("zombie")
            self.zombie = int(words[i + 1])
            words = words[:i]
        self.chain = [int(w) for w in words[1:]]
        self.pid = self.chain[0]
        self.starttimes = {p: proc_stat(p)["starttime"] for p in self.chain}

    def kill(self):
        kill_tree(self.proc)


def target(*args, env=None, extra_env=None):
    """Starts pdtarget with args (e.g. "threads", 4) and waits until ready."""
    if not os.access(PDTARGET, os.X_OK):
        raise AssertionError("%s is not built (make check builds it)" % PDTARGET)
    p = spawn([PDTARGET] + [str(a) for a in args], env=env, extra_env=extra_env)
    t = Target(p, read_line(p))
    # "ready" is printed just before the last pause(): wait until every
    # thread of the chain sleeps, so states and CPU times hold still.
    settle(*t.chain)
    return t


def settle(*pids, timeout=10):
    """Waits until every thread of pids sleeps (a started program is done
    loading and sits in its wait)."""
    wait_until(lambda: all(all_tasks_sleep(p) for p in pids), timeout,
               "%s to settle" % (pids,))


def all_tasks_sleep(pid):
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return False
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if data[data.rindex(b")") + 2:][:1] != b"S":
            return False
    return True


def kill_tree(proc):
    """SIGKILLs the process group a spawn()ed process leads, then reaps."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    reap_orphans()


def reap_orphans():
    """Reaps zombies re-parented to us (we are a subreaper): members of the
    process groups spawn() made, other than their leaders (the Popen objects
    wait for those themselves). Children of subprocess.run() are in our own
    process group and are left alone."""
    groups = {p.pid for p in _spawned}
    for pid, st in children_of(os.getpid()).items():
        if pid not in groups and st["state"] == "Z" and st["pgrp"] in groups:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def cleanup_spawned():
    for p in _spawned:
        if p.poll() is None:
            kill_tree(p)
    reap_orphans()


# --------------------------------------------------------------------------
# HTTP

class Response:
    """status, headers (case-insensitive .get), body (bytes). Unpacks as
    (status, headers, body)."""

    def __init__(self, method, path, status, headers, body):
        self.method, self.path = method, path
        self.status, self.headers, self.body = status, headers, body

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def header(self, name):
        return self.headers.get(name)

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        """The body as JSON; it must be strict UTF-8 and strict JSON."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("%s %s: body is not UTF-8: %s" % (self.method, self.path, e))
        try:
            return json.loads(text, parse_constant=_no_constant)
        except ValueError as e:
            raise AssertionError("%s %s: body is not JSON: %s: %r" %
                                 (self.method, self.path, e, self.body[:300]))

    def __repr__(self):
        return "<%s %s -> %d %s %r>" % (self.method, self.path, self.status, self.content_type,
                                        self.body[:400])


def _no_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


# The service's capabilities (packaging/procdiag.service.in): CAP_KILL (5),
# CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19).
CONFINED_CAPS = "+kill,+dac_read_search,+sys_ptrace"
CONFINED_CAPS_MASK = (1 << 5) | (1 << 2) | (1 << 19)


def confined_argv(argv):
    """argv run as root with exactly the service's three capabilities and
    no new privileges, as systemd runs procdiag.service."""
    if os.geteuid() != 0:
        raise AssertionError("a confined responder needs the tests to run as root")
    return ["setpriv", "--bounding-set=-all," + CONFINED_CAPS,
            "--inh-caps=-all," + CONFINED_CAPS, "--ambient-caps=-all," + CONFINED_CAPS,
            "--no-new-privs"] + list(argv)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def render_nginx(prefix, listen, sock, template=None):
    """Writes prefix/nginx.conf from nginx/dev.conf.in and
    prefix/procdiag-locations.conf from nginx/procdiag.conf (the snippet, its
    socket replaced), as ./dev does. template: the text of another nginx.conf
    with the same @PLACEHOLDERS@, used instead of dev.conf.in."""
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    os.makedirs(os.path.join(prefix, "html"), exist_ok=True)
    for f in ("mime.types", "fastcgi_params"):
        shutil.copy(os.path.join("/etc/nginx", f), prefix)
    with open(os.path.join(SRCDIR, "nginx", "procdiag.conf")) as f:
        snippet = f.read()
    if SNIPPET_SOCKET not in snippet:
        raise AssertionError("nginx/procdiag.conf does not name %s" % SNIPPET_SOCKET)
    with open(os.path.join(prefix, "procdiag-locations.conf"), "w") as f:
        f.write(snippet.replace(SNIPPET_SOCKET, "unix:" + sock))
    if template is None:
        with open(os.path.join(SRCDIR, "nginx", "dev.conf.in")) as f:
            template = f.read()
    conf = template
    user = "user root;" if os.geteuid() == 0 else "# (not root: workers keep this user)"
    conf = (conf.replace("@PREFIX@", prefix).replace("@LISTEN@", listen)
            .replace("@SOCKET@", sock).replace("@USER@", user))
    left = re.findall(r"@[A-Z_]+@", conf)
    if left:
        raise AssertionError("the nginx.conf template has unknown placeholders %s" % left)
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)


_stacks = []


class NeedsOwnStack(Exception):
    """Raised in installed mode by a test that needs a responder of its own;
    main() reports the test as skipped."""


class Skip(Exception):
    """Raised by a test whose condition this machine cannot make (a memory
    cgroup it may create, say), with why; main() reports it as skipped."""


class _Installed:
    """The installed responder, seen like a Popen: pid, poll(), returncode."""

    def __init__(self, pid):
        self.pid = pid
        st = proc_stat(pid)
        if st is None:
            raise AssertionError("PD_E2E_PID=%d: no such process" % pid)
        self.starttime = st["starttime"]
        self.returncode = None

    def poll(self):
        if self.returncode is None and not alive(self.pid, self.starttime):
            self.returncode = -1  # gone (or restarted under another pid)
        return self.returncode


class Stack:
    """procdiag serve + nginx in a temp dir. Use as a context manager, or
    start()/stop(). Attributes: port, base ("http://127.0.0.1:PORT"), key,
    sock, dir, pd (Popen of the responder), nginx (Popen). hooked=True runs
    the test build (PROCDIAG_HOOKED) as the responder. nginx_conf: an
    nginx.conf template to use instead of nginx/dev.conf.in (render_nginx())."""

    def __init__(self, no_auth=False, threads=None, config_lines=(), keys=1, config_files=(),
                 hooked=False, confined=False, nginx_conf=None, site=False):
        self.binary = PROCDIAG_HOOKED if hooked else PROCDIAG
        # confined: run as docs/OPERATIONS.md runs the service (root with
        # exactly CONFINED_CAPS, no new privileges), not with all of root's.
        self.confined = confined
        self.nginx_conf = nginx_conf
        self.config_files = list(config_files)  # more --config files, read after the first
        self.attach = False  # installed mode: shared() attaches to the installed responder
        self.no_auth = no_auth
        self.threads = threads
        self.config_lines = list(config_lines)
        # site: configure site_pid_file (id 0) in the stack's dir; set_site()
        # writes the pid into it.
        self.site = site
        self.site_pidfile = None
        self.nkeys = keys
        self.keys = []
        self.key = None
        self.pd = self.nginx = None
        self.dir = None
        self.port = None
        self.stopped = False
        self.terminated = False  # SIGTERM sent on purpose

    # -- life cycle --------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, et, ev, tb):
        problems = self.stop()
        if problems and et is None:
            raise AssertionError("; ".join(problems))
        if problems:
            diag("also: " + "; ".join(problems))
        return False

    def _tmpdir(self):
        base = os.path.join(BUILDDIR, "_test")
        try:
            os.makedirs(base, exist_ok=True)
            d = tempfile.mkdtemp(prefix="e2e-", dir=base)
        except OSError:
            d = tempfile.mkdtemp(prefix="pd-e2e-")
        # A unix socket path has at most 107 bytes.
        if len(os.path.join(d, "procdiag.sock")) > 100:
            shutil.rmtree(d, ignore_errors=True)
            d = tempfile.mkdtemp(prefix="pd-e2e-")
        os.chmod(d, 0o755)
        return d

    def _attach_installed(self):
        if not self.attach:
            raise NeedsOwnStack("needs a responder of its own (installed mode)")
        for k in ("PD_E2E_BASE", "PD_E2E_KEY", "PD_E2E_PID"):
            if not E2E_ENV.get(k):
                raise AssertionError("PD_E2E_TARGET=installed needs %s" % k)
        self.base = E2E_ENV["PD_E2E_BASE"].rstrip("/")
        m = re.match(r"^http://127\.0\.0\.1:(\d+)$", self.base)
        if not m:
            raise AssertionError("PD_E2E_BASE must be http://127.0.0.1:PORT: %r" % self.base)
        self.port = int(m.group(1))
        self.key = E2E_ENV["PD_E2E_KEY"]
        self.keys = [self.key]
        self.pd = _Installed(int(E2E_ENV["PD_E2E_PID"]))
        self.pd_err_path = E2E_ENV.get("PD_E2E_LOG") or os.devnull
        self.nginx_log_path = E2E_ENV.get("PD_E2E_NGINX_LOG") or os.devnull
        self.dir = self._tmpdir()
        self.sock = self.conf = None
        _stacks.append(self)
        r = self.get("/api/processes")
        if r.status != 200:
            raise AssertionError("the installed procdiag does not answer: %r" % r)
        return self

    def start(self):
        if INSTALLED:
            return self._attach_installed()
        for tool in (self.binary, NGINX):
            if not os.access(tool, os.X_OK):
                raise AssertionError("%s is missing (./dev test builds and installs it)" % tool)
        self.dir = self._tmpdir()
        self.sock = os.path.join(self.dir, "procdiag.sock")
        self.conf = os.path.join(self.dir, "procdiag.conf")
        lines = ["# e2e test configuration"]
        for _ in range(self.nkeys if not self.no_auth else 0):
            out = subprocess.run([PROCDIAG, "genkey"], stdout=subprocess.PIPE, check=True,
                                 timeout=10).stdout.decode().splitlines()
            assert len(out) == 2 and out[1].startswith("api_key_sha256 = "), out
            self.keys.append(out[0])
            lines.append(out[1])
        self.key = self.keys[0] if self.keys else None
        if not any(l.partition("=")[0].strip() == "scope" for l in self.config_lines):
            lines.append("scope = self")
        lines.extend(self.config_lines)
        if self.site:
            self.site_pidfile = os.path.join(self.dir, "site.pid")
            lines.append("site_pid_file = " + self.site_pidfile)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

        argv = [self.binary, "serve", "--listen", "unix:" + self.sock, "--config", self.conf]
        if self.confined:
            argv = confined_argv(argv)
        for i, text in enumerate(self.config_files):
            path = os.path.join(self.dir, "extra-%d.conf" % i)
            with open(path, "w") as f:
                f.write(text)
            argv += ["--config", path]
        if self.no_auth:
            argv.append("--no-auth")
        if self.threads:
            argv += ["--threads", str(self.threads)]
        self.pd_err_path = os.path.join(self.dir, "procdiag.stderr")
        self._pd_err = open(self.pd_err_path, "wb")
        self.pd = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._pd_err,
                                   stderr=self._pd_err)
        _stacks.append(self)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.pd.poll() is not None:
                raise AssertionError("procdiag exited with %s at start: %s" %
                                     (self.pd.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise AssertionError("procdiag made no socket in 10s: " + self.stderr())
            time.sleep(0.01)

        for attempt in range(5):
            self.port = free_port()
            self.base = "http://127.0.0.1:%d" % self.port
            render_nginx(self.dir, "127.0.0.1:%d" % self.port, self.sock, self.nginx_conf)
            ngargs = [NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                      "-c", os.path.join(self.dir, "nginx.conf")]
            t = subprocess.run(ngargs + ["-t", "-q"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            if t.returncode != 0:
                raise AssertionError("nginx -t failed: " + t.stdout.decode("utf-8", "replace"))
            self.nginx = subprocess.Popen(ngargs + ["-g", "daemon off;"],
                                          stdin=subprocess.DEVNULL)
            if self._wait_port():
                break
            self.nginx.wait()
            self.nginx = None
            log = self.nginx_log()
            if "Address already in use" not in log:
                raise AssertionError("nginx did not start: " + log[-2000:])
        else:
            raise AssertionError("no free port for nginx after 5 tries")
        # Ready when a request makes it through nginx to procdiag.
        r = self.get("/api/processes")
        if r.status == 502:
            raise AssertionError("nginx cannot reach procdiag: %r %s" % (r, self.nginx_log()))
        if self.confined:
            caps = proc_status(self.pd.pid) or {}
            for field in ("CapEff", "CapPrm", "CapBnd"):
                if int(caps.get(field, "0"), 16) != CONFINED_CAPS_MASK:
                    raise AssertionError("confined procdiag has %s %s" %
                                         (field, caps.get(field)))
        return self

    def _wait_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.01)
        return False

    def stderr(self):
        try:
            with open(self.pd_err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def nginx_log(self):
        try:
            with open(getattr(self, "nginx_log_path", None) or
                      os.path.join(self.dir, "error.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def problems(self):
        """What is wrong with the responder so far: died, crashed, or nginx
        saw it drop a request. Empty when all is well."""
        out = []
        if self.pd is not None and self.pd.poll() is not None and not self.terminated:
            out.append("procdiag died (exit %s)" % self.pd.returncode)
        err = self.stderr()
        m = CRASH_PATTERNS.search(err)
        if m:
            out.append("procdiag stderr shows a crash: %r" % err[max(0, m.start() - 200):
                                                                m.end() + 500])
        m = NGINX_BAD.search(self.nginx_log())
        if m:
            log = self.nginx_log()
            out.append("nginx error.log: %r" % log[max(0, m.start() - 200):m.end() + 300])
        return out

    def terminate_responder(self, timeout=10.0):
        """SIGTERM to procdiag; returns (exit status, seconds it took)."""
        if INSTALLED:
            raise NeedsOwnStack("stops the responder (installed mode)")
        t0 = time.monotonic()
        self.terminated = True
        self.pd.send_signal(signal.SIGTERM)
        try:
            rc = self.pd.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.pd.kill()
            self.pd.wait()
            rc = None
        return rc, time.monotonic() - t0

    def set_site(self, pid):
        """Makes pid the site process (id 0); needs Stack(site=True)."""
        if INSTALLED or not self.site_pidfile:
            raise NeedsOwnStack("needs a responder with a site_pid_file of its own")
        with open(self.site_pidfile + ".new", "w") as f:
            f.write("%d\n" % pid)
        os.rename(self.site_pidfile + ".new", self.site_pidfile)

    def stop(self):
        """Stops nginx and procdiag; returns the list of problems seen."""
        if self.stopped:
            return []
        problems = self.problems()
        if INSTALLED:  # not ours to stop
            self.stopped = True
            shutil.rmtree(self.dir, ignore_errors=True)
            return problems
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGTERM)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        if self.pd is not None and self.pd.poll() is None:
            rc, secs = self.terminate_responder()
            if rc is None:
                problems.append("procdiag did not exit within 10 s of SIGTERM")
            elif rc != 0:
                problems.append("procdiag exited with %s on SIGTERM" % rc)
        self.stopped = True
        if self.pd is not None:
            self._pd_err.close()
            m = CRASH_PATTERNS.search(self.stderr())
            if m and not any("crash" in p for p in problems):
                problems.append("procdiag stderr shows a crash: %r" %
                                self.stderr()[m.start():][:600])
        if problems:
            diag("kept %s for inspection" % self.dir)
        elif self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self.dir))  # _test/, once empty
            except OSError:
                pass
        return problems

    # -- HTTP ----------------------------------------------------------------
    def auth_header(self, auth):
        if auth is True:
            if self.key is None:
                return None
            return "Bearer " + self.key
        if auth == "basic":
            return "Basic " + base64.b64encode(("user:" + self.key).encode()).decode()
        if auth in (False, None):
            return None
        return auth  # a literal header value

    def url(self, path):
        return self.base + path

    def request(self, method, path, headers=None, auth=True, body=None, timeout=30):
        """One request on a fresh connection. path is sent as given (quote it
        yourself). auth: True (Bearer key), "basic", False, or a header value."""
        h = {}
        a = self.auth_header(auth)
        if a:
            h["Authorization"] = a
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Response(method, path, r.status, r.headers, data)
        finally:
            conn.close()

    def get(self, path, headers=None, auth=True, **kw):
        return self.request("GET", path, headers=headers, auth=auth, **kw)

    def head(self, path, headers=None, auth=True, **kw):
        return self.request("HEAD", path, headers=headers, auth=auth, **kw)

    def delete(self, path, headers=None, auth=True, **kw):
        return self.request("DELETE", path, headers=headers, auth=auth, **kw)

    def post(self, path, headers=None, auth=True, body=b"", **kw):
        return self.request("POST", path, headers=headers, auth=auth, body=body, **kw)

    def put(self, path, headers=None, auth=True, body=b"", **kw):
        return self.request("PUT", path, headers=headers, auth=auth, body=body, **kw)

    def json(self, path, status=200, **kw):
        """GET path, assert the status and a JSON content type, return the JSON."""
        r = self.get(path, **kw)
        assert r.status == status, "GET %s: expected %d, got %r" % (path, status, r)
        assert r.content_type == "application/json", r
        return r.json()


def raw_http(port, text, timeout=30):
    """Sends text, a whole HTTP/1.1 request as a client may write it
    ("Connection: close"), to 127.0.0.1:port over a plain socket; returns
    all the bytes the server sent until it closed."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        c.sendall(text.encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return data
            data += chunk
    finally:
        c.close()


_shared = None


def shared():
    """One Stack (auth on, default threads) for the whole test file."""
    global _shared
    if _shared is None or _shared.stopped:
        s = Stack()
        s.attach = True
        _shared = s.start()
    return _shared


# --------------------------------------------------------------------------
# FastCGI spoken directly to the responder's socket (no nginx)

FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_STDERR = \
    1, 3, 4, 5, 6, 7


def fcgi_record(rtype, content=b"", rid=1):
    pad = (8 - len(content) % 8) % 8
    return bytes([1, rtype, rid >> 8, rid & 255, len(content) >> 8, len(content) & 255, pad, 0]) \
        + content + b"\0" * pad


def fcgi_pairs(params):
    out = b""
    for k, v in params.items():
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        for n in (len(k), len(v)):
            out += bytes([n]) if n < 128 else (n | 0x80000000).to_bytes(4, "big")
        out += k + v
    return out


def fcgi_begin(role=1, keep_conn=False):
    return fcgi_record(FCGI_BEGIN_REQUEST, bytes([0, role, 1 if keep_conn else 0, 0, 0, 0, 0, 0]))


def fcgi_connect(sock_path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    return s


def fcgi_request(sock_path, params, timeout=10):
    """A whole request straight to the responder. Returns (stdout bytes,
    stderr bytes, app status)."""
    s = fcgi_connect(sock_path, timeout)
    try:
        s.sendall(fcgi_begin() + fcgi_record(FCGI_PARAMS, fcgi_pairs(params)) +
                  fcgi_record(FCGI_PARAMS) + fcgi_record(FCGI_STDIN))
        out, err, buf = b"", b"", b""
        while True:
            while len(buf) >= 8:
                clen = (buf[4] << 8) | buf[5]
                total = 8 + clen + buf[6]
                if len(buf) < total:
                    break
                rtype, content, buf = buf[1], buf[8:8 + clen], buf[total:]
                if rtype == FCGI_STDOUT:
                    out += content
                elif rtype == FCGI_STDERR:
                    err += content
                elif rtype == FCGI_END_REQUEST:
                    return out, err, int.from_bytes(content[:4], "big")
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("responder closed the connection without END_REQUEST "
                                     "(stdout so far %r)" % out[:300])
            buf += chunk
    finally:
        s.close()


def fcgi_params_for(method, path, query="", headers=None):
    """The parameters nginx would send for a request (enough for procdiag)."""
    p = {"REQUEST_METHOD": method, "DOCUMENT_URI": path, "QUERY_STRING": query,
         "REQUEST_URI": path + ("?" + query if query else ""), "SCRIPT_NAME": path,
         "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http", "SERVER_NAME": "localhost",
         "SERVER_PORT": "80", "SERVER_ADDR": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
         "HTTP_HOST": "localhost", "GATEWAY_INTERFACE": "CGI/1.1", "CONTENT_LENGTH": ""}
    for k, v in (headers or {}).items():
        p["HTTP_" + k.upper().replace("-", "_")] = v
    return p


def split_cgi(out):
    """A CGI response (Status:, headers, blank line, body) into
    (status, {lower-case name: value}, body)."""
    head, _, body = out.partition(b"\r\n\r\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").split("\r\n"):
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "status" in headers:
        status = int(headers["status"].split()[0])
    return status, headers, body


# --------------------------------------------------------------------------
# Assertions used by several files

PREFIXES = ("/api/processes", "/api/diagnostics/processes", "/diagnostics/processes")


def assert_problem(r, status, parameter=None):
    """r is an RFC 9457 problem with this status (and this parameter)."""
    assert r.status == status, "expected %d, got %r" % (status, r)
    assert r.content_type == "application/problem+json", "not problem+json: %r" % r
    doc = r.json()
    assert isinstance(doc, dict), r
    for k, t in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(doc.get(k), t), "problem member %s missing or not %s: %r" % (k, t, doc)
    assert doc["status"] == status, doc
    assert doc["detail"], doc
    if parameter is not None:
        assert doc.get("parameter") == parameter, \
            "expected parameter %r, got %r" % (parameter, doc)
    return doc


def assert_hrefs(stack, doc, path="$"):
    """Every href-like value in doc is absolute under the stack's base URL."""
    n = 0
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("href", "minidump", "parent", "process") and v is not None:
                assert isinstance(v, str) and v.startswith(stack.base + "/"), \
                    "%s.%s = %r is not under %s" % (path, k, v, stack.base)
                n += 1
            elif k == "children":
                for c in v:
                    assert c.startswith(stack.base + "/"), "%s.children: %r" % (path, c)
                    n += 1
            else:
                n += assert_hrefs(stack, v, path + "." + k)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            n += assert_hrefs(stack, v, "%s[%d]" % (path, i))
    return n


def escape_bytes(b):
    """procdiag's rendering of /proc bytes: UTF-8 kept, other bytes \\xNN."""
    out = []
    i = 0
    while i < len(b):
        for n in (4, 3, 2, 1):
            chunk = b[i:i + n]
            try:
                s = chunk.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(s) == 1:
                out.append(s)
                i += n
                break
        else:
            out.append("\\x%02X" % b[i])
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------
# The runner

class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test took too long")


def main(ns, timeout=180):
    """Runs every test_* function of the module namespace ns, in order."""
    tests = [(k, v) for k, v in ns.items() if k.startswith("test_") and callable(v)]
    only = sys.argv[1:]
    if only:
        tests = [(k, v) for k, v in tests if k in only]
    # One more test at the end: the shared stack, if used, stopped cleanly.
    print("1..%d" % (len(tests) + 1))
    sys.stdout.flush()
    failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for i, (name, fn) in enumerate(tests, 1):
        t0 = time.monotonic()
        err = skip = None
        signal.alarm(timeout)
        try:
            fn()
        except (NeedsOwnStack, Skip) as e:
            skip = str(e)
        except BaseException as e:  # noqa: B902 - report everything, go on
            if isinstance(e, KeyboardInterrupt):
                raise
            err = traceback.format_exc()
        finally:
            signal.alarm(0)
        if err is None and _shared is not None and not _shared.stopped:
            p = _shared.problems()
            if p:
                err = "after this test: " + "; ".join(p)
                _shared.stop()
        try:
            cleanup_spawned()
        except Exception:  # noqa: BLE001
            pass
        if err is None and skip is not None:
            print("ok %d - %s # SKIP %s" % (i, name, skip))
        elif err is None:
            print("ok %d - %s (%.2fs)" % (i, name, time.monotonic() - t0))
        else:
            failed += 1
            print("not ok %d - %s" % (i, name))
            diag(err.rstrip())
        sys.stdout.flush()
    p = _shared.stop() if _shared is not None and not _shared.stopped else []
    if p:
        failed += 1
        print("not ok %d - responder stopped cleanly" % (len(tests) + 1))
        diag("; ".join(p))
    else:
        print("ok %d - responder stopped cleanly" % (len(tests) + 1))
    for s in list(_stacks):
        if not s.stopped:
            s.stop()
    cleanup_spawned()
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
