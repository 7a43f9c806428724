#!/usr/bin/env python3
"""compress=zstd and the parallel zip (docs/DUMPS.md, "Compression"), judged
by their real consumers: the zstd tool, unzip -t, Python's zipfile, then
eu-readelf and gdb on what they give back."""
import contextlib
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
from test_dump_job import run_on_a_tty  # noqa: E402  (the CLI on a pseudo-terminal)

ZSTD = shutil.which("zstd") or "/usr/bin/zstd"
PDBUNDLE = os.path.join(h.BUILDDIR, "tests", "tools", "pdbundle")


@contextlib.contextmanager
def workdir():
    """A temporary directory, removed afterwards."""
    d = tempfile.mkdtemp(prefix="pd-compress-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unzstd(path):
    """zstd -t passes; returns the decompressed file's path."""
    t = subprocess.run([ZSTD, "-t", "-q", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert t.returncode == 0, t.stdout.decode("utf-8", "replace")
    out = path + ".core"
    d = subprocess.run([ZSTD, "-d", "-q", "-o", out, path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert d.returncode == 0, d.stdout.decode("utf-8", "replace")
    return out


def assert_core_opens(core, threads):
    """eu-readelf, gdb and eu-stack open the core and find every thread."""
    assert readelf_type(core).startswith("CORE")
    n, gout = gdb_threads(h.PDTARGET, core)
    assert n == threads, gout[-2000:]
    r = subprocess.run(["eu-stack", "--core", core, "-e", h.PDTARGET], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    assert len(re.findall(r"^TID \d+:", out, re.M)) == threads, out[-2000:]


def check_zip(path, core_name, testzip=True):
    """unzip -t and zipfile (every CRC, unless the caller reads every entry
    itself) pass; returns zipfile's info of the core."""
    u = subprocess.run([UNZIP, "-t", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert u.returncode == 0 and b"No errors detected" in u.stdout, \
        u.stdout.decode("utf-8", "replace")[-2000:]
    with zipfile.ZipFile(path) as z:
        assert not testzip or z.testzip() is None
        info = z.getinfo(core_name)
    assert info.compress_type == zipfile.ZIP_DEFLATED, info
    return info


def test_bad_compress_is_400_naming_it():
    s = h.shared()
    t = h.target()
    for q in ("compress=gzip", "compress=zstd2", "compress=1", "dumpType=2&compress=xz"):
        doc = h.assert_problem(s.get(dump_url(t.pid, q)), 400, "compress")
        assert "compress" in doc["detail"], doc
    doc = h.assert_problem(s.get("/dump?pid=%d&compress=lz4" % t.pid), 400, "compress")
    # A zip is deflated, for every unzip: zstd inside it is refused, not ignored.
    for url in (dump_url(t.pid, "format=zip&compress=zstd"),
                "/dump?pid=%d&format=zip&compress=zstd" % t.pid):
        doc = h.assert_problem(s.get(url), 400, "compress")
        assert "zip" in doc["detail"], doc
    assert_resumed(t.pid)


def test_zstd_dump_over_http_is_the_core():
    s = h.shared()
    t = h.target("threads", 2)
    with workdir() as d:
        r = s.get(dump_url(t.pid, "dumpType=2&compress=zstd"), timeout=300)
        assert r.status == 200, r
        assert r.content_type == "application/zstd", r
        assert int(r.header("Content-Length")) == len(r.body)
        cd = r.header("Content-Disposition") or ""
        assert re.fullmatch(r'attachment; filename=".+-\d\d-\d\d-\d\d-\d\d-\d\d\.dmp\.zst"', cd), cd
        assert r.body[:4] == b"\x28\xb5\x2f\xfd", r.body[:4]  # a zstd frame
        assert_resumed(t.pid)
        core = unzstd(save(r.body, d, "full.zst"))
        assert_core_opens(core, 3)
        # Sparse runs compress to next to nothing: the stream is far below the core.
        assert len(r.body) * 4 < os.path.getsize(core), (len(r.body), os.path.getsize(core))
        # A HEAD says what a GET would send, without a dump.
        r = s.head(dump_url(t.pid, "compress=zstd"))
        assert r.status == 200 and r.content_type == "application/zstd", r
        assert (r.header("Content-Disposition") or "").endswith('.dmp.zst"'), r.headers
        # compress=none is the raw core, as without it.
        r = s.get(dump_url(t.pid, "compress=none"), timeout=300)
        assert r.status == 200 and r.content_type == "application/octet-stream", r
        assert (r.header("Content-Disposition") or "").endswith('.dmp"'), r.headers


def test_zstd_dump_on_monitor_route():
    s = h.shared()
    t = h.target("threads", 1)
    with workdir() as d:
        r = s.get("/dump?pid=%d&type=Mini&compress=ZSTD" % t.pid, timeout=300)
        assert r.status == 200, r
        assert r.content_type == "application/zstd", r
        cd = r.header("Content-Disposition") or ""
        assert re.fullmatch(r'attachment; filename="core_\d{8}_\d{6}_\d{3}\.zst"', cd), cd
        assert_core_opens(unzstd(save(r.body, d, "mini.zst")), 2)
        assert_resumed(t.pid)


def test_cli_zstd():
    t = h.target("threads", 2)
    with workdir() as d:
        out = os.path.join(d, "x.zst")
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--type", "Full", "--zstd",
                            "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
        assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
        assert_resumed(t.pid)
        assert os.stat(out).st_mode & 0o077 == 0, oct(os.stat(out).st_mode)
        assert_core_opens(unzstd(out), 3)
        # The default name gets .zst; --zstd with --zip is a usage error.
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--zstd", "-q"], cwd=d,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        assert r.returncode == 0, r.stderr
        made = [f for f in os.listdir(d) if re.fullmatch(r"core_\d{8}_\d{6}\.zst", f)]
        assert len(made) == 1, os.listdir(d)
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--zstd", "--zip", "-q"],
                           cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert r.returncode == 2 and b"--zstd" in r.stderr, r


def test_zip_of_a_full_dump_is_deflate_every_reader_checks():
    s = h.shared()
    t = h.target("threads", 2)
    with workdir() as d:
        r = s.get(dump_url(t.pid, "dumpType=2&format=zip"), timeout=300)
        assert r.status == 200 and r.content_type == "application/zip", r
        z = save(r.body, d, "full.zip")
        info = check_zip(z, "core.%d" % t.pid)
        assert info.file_size > 4 * info.compress_size, info  # holes cost nothing
        with zipfile.ZipFile(z) as zf:
            zf.extract(info, d)
        assert_core_opens(os.path.join(d, info.filename), 3)
        assert_resumed(t.pid)


def test_zip_core_entry_is_the_core_byte_for_byte_zip64_past_4gib():
    """A core with a hole that takes it past 4 GiB: the entry needs zip64,
    its deflate stream is cut into chunks (a hole's one block reused, data
    chunks primed with the bytes before them) and its CRC joined; unzip -t,
    zipfile's reading of the zip64 records and a byte compare of what
    unzip gives back against the file judge it."""
    t = h.target("threads", 1)
    with workdir() as d:
        core = os.path.join(d, "core")
        r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--type", "Full", "-q",
                            "-o", core], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        size = os.path.getsize(core)
        # Odd-sized data after the hole: the last chunk is short, not zeros.
        with open(core, "r+b") as f:
            f.seek((1 << 32) + 12345)
            f.write(os.urandom(3 << 20) + b"procdiag" * 100000)
        big = os.path.getsize(core)
        assert big > 1 << 32, big
        out = os.path.join(d, "b.zip")
        b = subprocess.run([PDBUNDLE, "--pid", str(t.pid), "--core", core, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        assert b.returncode == 0, (b.stdout, b.stderr)
        info = check_zip(out, "core.%d" % t.pid, testzip=False)
        assert info.file_size == big, (info.file_size, big)
        assert info.compress_size < big // 100, info  # a hole costs next to nothing
        # zipfile read its zip64 records above; unzip gives back the entry.
        unz = subprocess.Popen([UNZIP, "-p", out, info.filename], stdout=subprocess.PIPE)
        cmp = subprocess.run(["cmp", "-", core], stdin=unz.stdout, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        unz.stdout.close()
        assert unz.wait() == 0 and cmp.returncode == 0, cmp.stdout
        assert size < big


def bar_phases(text):
    """{phase: [percents drawn]} of the bar's lines ("compress [###] 42% ...")."""
    seen = {}
    for m in re.finditer(r"(\w+)\s+\[[# ]*\]\s+(\d+)%", text.decode("utf-8", "replace")):
        seen.setdefault(m.group(1), []).append(int(m.group(2)))
    return seen


def test_cli_bar_covers_compression_and_bundling():
    p, pid = heap_target(96)
    try:
        with workdir() as d:
            for flag, name in (("--zstd", "c.zst"), ("--zip", "c.zip")):
                rc, text = run_on_a_tty([h.PROCDIAG, "dump", "-p", str(pid), "--type", "Full",
                                         flag, "-o", os.path.join(d, name)])
                assert rc == 0, text[-2000:]
                phases = bar_phases(text)
                assert max(phases.get("copy", [0])) == 100, (flag, phases, text[-1000:])
                # The bar moves while the core (most of the bytes) is
                # compressed, not only at its end or over the small files.
                comp = phases.get("compress", [])
                assert max(comp, default=0) == 100, (flag, phases, text[-1000:])
                assert any(10 <= pct <= 90 for pct in comp), (flag, phases, text[-1000:])
                if flag == "--zip":
                    assert b"bundle..." in text, text[-1000:]
            assert_resumed(pid)
    finally:
        h.kill_tree(p)


def test_cli_interrupted_while_compressing_leaves_nothing():
    """SIGINT once the bar says the core is being compressed: exit 1, no
    file (not even the core's step), the target runs."""
    p, pid = heap_target(384)  # random bytes: zstd takes a while over them
    try:
        with workdir() as d:
            rc, text = run_on_a_tty([h.PROCDIAG, "dump", "-p", str(pid), "--type", "Full",
                                     "--zstd", "-o", os.path.join(d, "c.zst")], until=b"compress")
            assert rc == 1 and b"interrupted" in text, (rc, text[-1000:])
            assert os.listdir(d) == [], os.listdir(d)
            assert_resumed(pid)
    finally:
        h.kill_tree(p)


def test_client_gone_while_zstd_compresses_ends_the_job_there():
    """A client that goes away after the copy, while the zstd stream is
    written: the job ends there (the log names the compress phase), no spool
    is left, the slot is free for the next dump."""
    with Tmpfs("2g") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with started({}, hooked=False, config_lines=lines) as s:
            p, pid = heap_target(384)  # random bytes: zstd takes a while over them
            try:
                baseline = used_bytes(spool.path)
                phase = gone_after_the_copy(s, pid, "dumpType=Full&compress=zstd")
                assert phase == "compress", phase
                assert_nothing_left(s, spool.path, baseline)
                assert_resumed(pid)
                r = s.get(dump_url(pid, "compress=zstd"), timeout=120)
                assert r.status == 200 and r.content_type == "application/zstd", r
            finally:
                h.kill_tree(p)


if __name__ == "__main__":
    h.main(globals(), timeout=600)
