#!/usr/bin/env python3
"""Issue 10, sections 2 and 3, tried as an attacker would, against the
responder run as the service runs (root with exactly CAP_SYS_PTRACE,
CAP_KILL and CAP_DAC_READ_SEARCH, scope = nobody):

- a process owner who plants a debug file (a symlink, or a root-only file
  a root process left at that name, or a directory link) for a module
  without a build-id never gets a byte procdiag read with its privileges;
  a debug file the owner can read is still bundled;
- a small process with a huge debug file never makes the server hold a
  memory spool past spool_memory_max, and leaves nothing in spool_dir.

The target is tests/targets/nobidtarget (pdtarget linked without a
build-id), copied into a directory nobody owns and given a .gnu_debuglink
with objcopy, as a user would build it."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NOBID = os.path.join(h.BUILDDIR, "tests", "targets", "nobidtarget")
BIGSTACK = os.path.join(h.BUILDDIR, "tests", "targets", "bigstack")
NOBODY = 65534
LINK = "nobid.dbg"

_dirs = []


def tmpdir(owner=0, mode=0o755):
    d = tempfile.mkdtemp(prefix="pd-attack-", dir="/tmp")
    os.chown(d, owner, owner)
    os.chmod(d, mode)
    _dirs.append(d)
    return d


def cleanup():
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)
    _dirs.clear()


def nobody_program():
    """A directory owned by nobody holding `nobid` (no build-id) whose
    .gnu_debuglink names nobid.dbg, and the genuine debug file's bytes."""
    d = tmpdir(NOBODY)
    exe = os.path.join(d, "nobid")
    shutil.copy(NOBID, exe)
    dbg = os.path.join(d, LINK)
    subprocess.run(["objcopy", "--only-keep-debug", exe, dbg], check=True)
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + dbg, exe], check=True)
    with open(dbg, "rb") as f:
        genuine = f.read()
    os.unlink(dbg)
    for p in (d, exe):
        os.chown(p, NOBODY, NOBODY)
    assert b".note.gnu.build-id" not in open(exe, "rb").read(), "nobidtarget has a build-id"
    return d, exe, genuine


def start_as_nobody(exe):
    p = h.spawn(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                 exe])
    t = h.Target(p, h.read_line(p))
    h.settle(t.pid)
    assert h.proc_uid(t.pid) == NOBODY
    return t


def secret_elf(genuine, mode=0o600, where=None):
    """A root-owned ELF file (the genuine debug file with a secret tail)
    with mode, in a root-owned directory; returns (path, secret)."""
    secret = os.urandom(24).hex().encode()
    d = where or tmpdir(0, 0o755)
    p = os.path.join(d, "secret.dbg")
    with open(p, "wb") as f:
        f.write(genuine + b"SECRET:" + secret)
    os.chmod(p, mode)
    return p, secret


def zip_of(s, pid):
    r = s.get("/api/processes/%d/dump?dumpType=0&format=zip" % pid, timeout=300)
    assert r.status == 200, r
    return zipfile.ZipFile(io.BytesIO(r.body))


def module(z, path):
    man = json.loads(z.read("manifest.json"))
    for m in man["modules"]:
        if m["path"] == path:
            return m
    raise AssertionError("no module %s in %s" % (path, [m["path"] for m in man["modules"]]))


def assert_not_leaked(z, secret, digest):
    for name in z.namelist():
        data = z.read(name)
        assert secret not in data, "%s holds the secret" % name
        assert hashlib.sha256(data).hexdigest() != digest, "%s is the secret file" % name


def check_refused(s, exe, secret_path, secret):
    """One attack: nothing of secret_path reaches the zip, and the module
    says its debug file is missing."""
    with open(secret_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    t = start_as_nobody(exe)
    try:
        z = zip_of(s, t.pid)
        assert_not_leaked(z, secret, digest)
        m = module(z, exe)
        assert m["build_id"] is None, m
        assert not m["debug_included"], m
        assert m["binary_included"], m
    finally:
        t.kill()


def test_planted_debug_files_are_read_as_the_owner_could():
    """Proves: for a module without a build-id, a .gnu_debuglink name that
    is a symlink to a root-only file, a root-only file itself, or sits in a
    directory the owner cannot search, is not bundled; the owner's own
    debug file is, byte for byte."""
    d, exe, genuine = nobody_program()
    dbg = os.path.join(d, LINK)
    with h.Stack(confined=True, config_lines=["scope = nobody"]) as s:
        # 1. <dir>/nobid.dbg -> a root-owned 0600 ELF file elsewhere
        secret_path, secret = secret_elf(genuine)
        os.symlink(secret_path, dbg)
        os.lchown(dbg, NOBODY, NOBODY)
        check_refused(s, exe, secret_path, secret)
        os.unlink(dbg)
        # 2. a root-owned 0600 ELF file left at that very name (no link)
        shutil.copy(secret_path, dbg)
        os.chmod(dbg, 0o600)
        check_refused(s, exe, dbg, secret)
        os.unlink(dbg)
        # 3. <dir>/.debug -> a root-only (0700) directory whose nobid.dbg
        # is itself world-readable: the directory cannot be searched
        hidden = tmpdir(0, 0o700)
        hidden_path, hidden_secret = secret_elf(genuine, mode=0o644, where=hidden)
        os.rename(hidden_path, os.path.join(hidden, LINK))
        dotdebug = os.path.join(d, ".debug")
        os.symlink(hidden, dotdebug)
        os.lchown(dotdebug, NOBODY, NOBODY)
        check_refused(s, exe, os.path.join(hidden, LINK), hidden_secret)
        os.unlink(dotdebug)
        # Positive control: the owner's own debug file, through a relative
        # link as distributions make them, is bundled as it is.
        os.mkdir(os.path.join(d, "real"))
        with open(os.path.join(d, "real", LINK), "wb") as f:
            f.write(genuine)
        os.symlink("real/../real/" + LINK, dbg)
        for p in (os.path.join(d, "real"), os.path.join(d, "real", LINK)):
            os.chown(p, NOBODY, NOBODY)
        os.lchown(dbg, NOBODY, NOBODY)
        t = start_as_nobody(exe)
        try:
            z = zip_of(s, t.pid)
            m = module(z, exe)
            assert m["debug_included"], m
            assert z.read(m["debug_entry"]) == genuine, m
        finally:
            t.kill()


def spool_memfds(root_pid):
    """Sizes of the spool memfds open in root_pid and its children."""
    pids = [root_pid]
    for e in os.listdir("/proc"):
        if e.isdigit():
            st = h.proc_stat(int(e))
            if st and st.get("ppid") == root_pid:
                pids.append(int(e))
    sizes = []
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            p = "/proc/%d/fd/%s" % (pid, fd)
            try:
                if os.readlink(p).startswith("/memfd:procdiag-spool"):
                    st = os.stat(p)
                    sizes.append(max(st.st_size, st.st_blocks * 512))
            except OSError:
                continue
    return sizes


def test_huge_debug_file_never_passes_the_memory_spool():
    """Proves: a 1 MB process with a planted 200 MB debug file (readable by
    its owner) and spool_memory_max = 8M: no memory spool of the responder or
    its helpers ever holds more than 8 MiB while the zip is made; the answer
    is the complete zip from a disk spool (or a 507 naming the limit), and
    spool_dir is empty afterwards."""
    limit = 8 << 20
    d, exe, genuine = nobody_program()
    big = os.path.join(d, LINK)
    with open(big, "wb") as f:
        f.write(genuine)
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    os.chown(big, NOBODY, NOBODY)
    big_size = os.path.getsize(big)
    spool = tmpdir(0, 0o700)
    lines = ["scope = nobody", "spool_dir = " + spool, "spool_memory_max = 8M"]
    with h.Stack(confined=True, config_lines=lines) as s:
        t = start_as_nobody(exe)
        seen, stop = watch_spools(s.pd.pid)
        try:
            r = s.get("/api/processes/%d/dump?dumpType=0&format=zip" % t.pid, timeout=600)
        finally:
            stop()
            t.kill()
        assert seen, "the watcher never saw a spool (the core's memfd)"
        assert max(seen) <= limit, "a memory spool held %d bytes" % max(seen)
        if r.status == 507:
            doc = h.assert_problem(r, 507)
            h.diag("507: " + doc["detail"])
            assert "spool" in doc["detail"], doc
        else:
            assert r.status == 200, r
            z = zipfile.ZipFile(io.BytesIO(r.body))
            m = module(z, exe)
            assert m["debug_included"], m
            info = z.getinfo(m["debug_entry"])
            assert info.file_size == big_size, info
            with open(big, "rb") as f, z.open(info) as g:
                while True:
                    a, b = f.read(1 << 20), g.read(1 << 20)
                    assert a == b, "the debug file in the zip differs"
                    if not a:
                        break
            assert "spool=disk" in s.stderr(), "the zip was not spooled on disk"
        assert os.listdir(spool) == [], os.listdir(spool)
        h.wait_until(lambda: not spool_memfds(s.pd.pid), 10, "the spools to be closed")


def watch_spools(pid):
    """Starts sampling the spool memfds of pid's tree; returns (sizes seen,
    stop function)."""
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.extend(spool_memfds(pid))

    w = threading.Thread(target=watch)
    w.start()

    def stop():
        done.set()
        w.join()
    return seen, stop


def test_core_past_its_estimate_leaves_the_memory_spool():
    """Proves: a mini dump far larger than its estimate (8 threads whose
    stacks reach 4 MiB deep: a 32 MiB core estimated at a few MiB) is
    written under spool_memory_max = 16M, never past it, and is then taken
    again on disk: a complete core, nothing left in spool_dir."""
    limit = 16 << 20
    p = h.spawn(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                 BIGSTACK, "8", "4"])
    pid = int(h.read_line(p).split()[1])
    h.settle(pid)
    spool = tmpdir(0, 0o700)
    lines = ["scope = nobody", "spool_dir = " + spool, "spool_memory_max = 16M"]
    with h.Stack(confined=True, config_lines=lines) as s:
        seen, stop = watch_spools(s.pd.pid)
        try:
            r = s.get("/api/processes/%d/dump?dumpType=0" % pid, timeout=300)
        finally:
            stop()
            h.kill_tree(p)
        assert r.status == 200, r
        assert r.body[:4] == b"\x7fELF" and len(r.body) > limit, len(r.body)
        assert seen, "the watcher never saw the memory spool"
        assert max(seen) <= limit, "a memory spool held %d bytes" % max(seen)
        log = s.stderr()
        assert "spool=memory_full" in log and "spool=disk" in log, log[-2000:]
        assert os.listdir(spool) == [], os.listdir(spool)


if __name__ == "__main__":
    try:
        h.main(globals())
    finally:
        cleanup()
