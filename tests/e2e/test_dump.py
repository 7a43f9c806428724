#!/usr/bin/env python3
"""GET /{id}/dump through nginx, and `procdiag dump`: the cores judged by
eu-readelf and gdb, the errors by their problem documents, the spool by the
space and file descriptors it leaves behind (none), the target by its state
(never left stopped)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import *  # noqa: E402,F401,F403


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
    nobody = h.sleep_as_nobody()
    a = s.get(dump_url(nobody.pid))
    h.assert_problem(a, 404)
    b = s.get(dump_url(h.unused_pid()))
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
    assert not helper_children(s.pd.pid, "dump-helper")
    line = h.wait_until(lambda: re.search(r"^HEAD /api/processes/%d/dump status=200.*$" % t.pid,
                                          s.stderr(), re.M), 5, "the HEAD log line")
    assert "stopped_us" not in line.group(0), line.group(0)


def test_mini_dump_is_a_core_gdb_opens_with_every_thread():
    s = h.shared()
    t = h.target("threads", 3)
    r = s.get(dump_url(t.pid), timeout=120)
    assert_core_response(r, "pdtarget")
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
        assert_core_response(r, "pdtarget")
        assert_resumed(t.pid)


def test_dump_type_reaches_the_engine():
    """A mini dump leaves a 24 MiB heap out, Heap and Full take it in."""
    s = h.shared()
    proc, pid = heap_target(24)
    comm = h.proc_stat(pid)["comm"].decode()
    sizes = {}
    for q in ("dumpType=0", "dumpType=Heap", "dumpType=2"):
        r = s.get(dump_url(pid, q), timeout=300)
        assert_core_response(r, re.sub(r"[^A-Za-z0-9._-]", "_", comm))
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
    assert_core_response(r, "pdtarget")
    assert r.header("X-Dump-Type") == "0x1004", r.headers
    assert r.header("X-Dump-Ignored-Bits") == "0x4", r.headers
    assert r.header("X-Dump-Ignored") == "MiniDumpWithHandleData", r.headers


def test_id_zero_dumps_the_site_process():
    with h.Stack(site=True) as s:
        t = h.target("threads", 4)
        s.set_site(t.pid)
        r = s.get(dump_url(0), timeout=120)
        assert_core_response(r, "pdtarget")
        assert_resumed(t.pid)
        d = tempfile.mkdtemp(prefix="pd-dump-")
        try:
            core = save(r.body, d)
            n, out = gdb_threads(h.PDTARGET, core)
            want = int(h.proc_status(t.pid)["Threads"])
            assert n == want, "gdb shows %d threads, the site process has %d:\n%s" % (
                n, want, out[-3000:])
        finally:
            shutil.rmtree(d, ignore_errors=True)
        assert s.get("/api/processes").status == 200


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
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(h.unused_pid()), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 1 and b"no such process" in r.stderr, r
        assert os.listdir(d) == []
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_dump_by_name():
    """dotnet-dump collect's -n: the one process of that name; several are
    refused (exit 1) with their pids; -p and -n together are a usage error."""
    d = tempfile.mkdtemp(prefix="pd-cli-")
    try:
        exe = os.path.join(d, "pdnamed-one")
        one = named_sleep(d, "pdnamed-one")
        out = os.path.join(d, "core")
        r = subprocess.run([h.PROCDIAG, "dump", "--name", "pdnamed-one", "-q", "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert r.returncode == 0, r
        assert readelf_type(out).startswith("CORE"), readelf_type(out)
        n, text = gdb_threads(exe, out)
        assert n == 1, text[-2000:]
        two = h.spawn([exe, "60"], stdout=subprocess.DEVNULL)
        h.wait_until(lambda: (h.proc_stat(two.pid) or {}).get("comm") == b"pdnamed-one", 5,
                     "the second named process")
        r = subprocess.run([h.PROCDIAG, "dump", "-n", "pdnamed-one", "-o", out + "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 1, r
        assert str(one.pid).encode() in r.stderr and str(two.pid).encode() in r.stderr, r.stderr
        assert not os.path.exists(out + "2")
        r = subprocess.run([h.PROCDIAG, "dump", "-n", "pdnamed-one", "-p", str(one.pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 2 and b"usage" in r.stderr, r
        r = subprocess.run([h.PROCDIAG, "dump", "--process-id", str(one.pid), "-q", "-o",
                            out + "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        assert r.returncode == 0 and os.path.getsize(out + "3") > 0, r
        assert_resumed(one.pid)
        assert_resumed(two.pid)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_dump_long_command_line_in_psinfo():
    """NT_PRPSINFO holds the start of the command line even when it is far
    longer than a page (Java and .NET command lines are)."""
    d = tempfile.mkdtemp(prefix="pd-cli-")
    try:
        long_arg = "x" * 6000
        p = h.spawn([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)",
                     "marker-arg", long_arg])
        assert h.read_line(p, timeout=30).startswith("ready")
        out = os.path.join(d, "core")
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(p.pid), "-q", "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert r.returncode == 0, r
        notes = subprocess.run([EU_READELF, "-n", out], stdout=subprocess.PIPE,
                               timeout=60).stdout.decode(errors="replace")
        m = re.search(r"psargs:\s*(.*)", notes)
        assert m and m.group(1).startswith(sys.executable), notes[:3000]
        h.kill_tree(p)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
