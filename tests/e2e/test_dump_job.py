#!/usr/bin/env python3
"""The one dump job (lib/dumpjob.h, docs/DUMPS.md "One dump job"): every
front end (`procdiag dump`, the Kudu route, dotnet-monitor's /dump) reports
the same method and figures, the CLI's progress goes on through the bundle
phases and can be cancelled there, and one rule chooses a process by name."""
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import *  # noqa: E402,F401,F403

FIGURES = ("X-Dump-Freezing-Us", "X-Dump-Frozen-Us", "X-Dump-Copy-Us", "X-Dump-Copied-Bytes",
           "X-Dump-Extra-Memory", "X-Dump-Zero-Bytes")


def assert_figures(r):
    """The method and CRIU-style figures of a dump response."""
    assert r.header("X-Dump-Method") in ("stop", "clone"), r.headers
    nums = {}
    for name in FIGURES + ("X-Dump-Stopped-Us",):
        v = r.header(name)
        assert v is not None and v.isdigit(), (name, r.headers)
        nums[name] = int(v)
    if r.header("X-Dump-Method") == "stop":
        # Stopped for the whole copy: frozen is the stop.
        assert nums["X-Dump-Frozen-Us"] == nums["X-Dump-Stopped-Us"], r.headers
    assert nums["X-Dump-Copied-Bytes"] > 0, r.headers
    return nums


def test_every_route_reports_the_method_and_figures():
    """Proves: the Kudu route and dotnet-monitor's /dump give the same
    figures headers (X-Dump-Method, X-Dump-Frozen-Us, ...), from the job's
    one result; a zip's manifest holds them too."""
    s = h.shared()
    t = h.target("threads", 2)
    for url in (dump_url(t.pid, "dumpType=Full"), "/dump?pid=%d&type=Full" % t.pid):
        r = s.get(url, timeout=120)
        assert r.status == 200, (url, r)
        assert_figures(r)
        assert_resumed(t.pid)
    r = s.get(dump_url(t.pid, "dumpType=0&format=zip"), timeout=120)
    assert r.status == 200, r
    nums = assert_figures(r)
    d = tempfile.mkdtemp(prefix="pd-job-")
    try:
        path = save(r.body, d, "b.zip")
        m = json.loads(zipfile.ZipFile(path).read("manifest.json"))["dump"]
        assert m["method"] == r.header("X-Dump-Method"), m
        assert m["frozen_us"] == nums["X-Dump-Frozen-Us"], (m, r.headers)
        assert m["copied_bytes"] == nums["X-Dump-Copied-Bytes"], (m, r.headers)
        assert m["zero_bytes"] == nums["X-Dump-Zero-Bytes"], (m, r.headers)
        assert m["zero_method"] == r.header("X-Dump-Zero-Method"), (m, r.headers)
        for k in ("method_reason", "freezing_us", "copy_us", "extra_memory"):
            assert k in m, m
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_json_is_the_job_result():
    """Proves: `procdiag dump --json` prints the job's result (method,
    figures, sizes, the file) as one JSON object on stdout, raw and zip,
    and the summary names the method."""
    t = h.target("threads", 1)
    d = tempfile.mkdtemp(prefix="pd-job-")
    try:
        for extra, name in (([], "c"), (["--zip"], "c.zip")):
            out = os.path.join(d, name)
            r = subprocess.run([h.PROCDIAG, "dump", "-p", str(t.pid), "--json", "-o", out] + extra,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            assert r.returncode == 0, r
            doc = json.loads(r.stdout)
            assert doc["ok"] is True and doc["error"] == "" and doc["phase"] == "done", doc
            assert doc["method"] in ("stop", "clone"), doc
            assert doc["file"] == out, doc
            assert doc["size"] == os.path.getsize(out), (doc, os.path.getsize(out))
            assert doc["copied_bytes"] > 0 and doc["threads"] == 2, doc
            if doc["method"] == "stop":
                assert doc["frozen_us"] == doc["stopped_us"], doc
            if extra:
                z = zipfile.ZipFile(out)
                assert z.getinfo(doc["core_name"]).file_size == doc["core_size"], doc
            else:
                assert doc["core_size"] == doc["size"], doc
            assert ("method %s" % doc["method"]).encode() in r.stderr, r.stderr
        assert_resumed(t.pid)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_on_a_tty(argv, until=None):
    """Runs argv with its stderr on a pseudo-terminal (so it draws its
    progress bar); when `until` (bytes) first shows, SIGINT. Returns the
    exit status and everything written on the terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    text, sent = b"", False
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            assert ready, "no output for 120 s: %r" % text[-500:]
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer closed it
                break
            if not chunk:
                break
            text += chunk
            if until and not sent and until in text:
                p.send_signal(signal.SIGINT)
                sent = True
    finally:
        os.close(master)
    return p.wait(timeout=120), text


def test_cli_progress_goes_on_through_the_bundle():
    """Proves: the CLI's bar on a terminal shows the copy, then the bundle
    and compress phases of a zip (it used to stop with the copy)."""
    p, pid = heap_target(48)
    d = tempfile.mkdtemp(prefix="pd-job-")
    try:
        out = os.path.join(d, "b.zip")
        rc, text = run_on_a_tty([h.PROCDIAG, "dump", "-p", str(pid), "--type", "Full", "--zip",
                                 "-o", out])
        assert rc == 0, text[-2000:]
        i, j, k = text.find(b"copy"), text.find(b"bundle"), text.find(b"compress")
        assert 0 <= i < j < k, text[-2000:]
        assert b"100%" in text[k:], text[-2000:]
        assert zipfile.ZipFile(out).testzip() is None
        assert_resumed(pid)
    finally:
        h.kill_tree(p)
        shutil.rmtree(d, ignore_errors=True)


def test_cli_interrupt_while_compressing_leaves_nothing():
    """Proves: SIGINT during the compress phase cancels the job there (the
    progress callback is its cancel check): exit 1, "interrupted", no file
    and no spool left beside the output, the target runs."""
    p, pid = heap_target(96)
    d = tempfile.mkdtemp(prefix="pd-job-")
    try:
        out = os.path.join(d, "b.zip")
        rc, text = run_on_a_tty([h.PROCDIAG, "dump", "-p", str(pid), "--type", "Full", "--zip",
                                 "-o", out], until=b"compress")
        assert b"compress" in text, text[-2000:]
        assert rc == 1, (rc, text[-2000:])
        assert b"interrupted" in text, text[-2000:]
        assert os.listdir(d) == [], os.listdir(d)
        assert_resumed(pid)
    finally:
        h.kill_tree(p)
        shutil.rmtree(d, ignore_errors=True)


def test_client_gone_while_bundling_ends_the_job_there():
    """Proves: a client that goes away after the copy, while the zip is
    being written, ends the job there (its progress is the cancel check of
    every phase): the log names the phase, no spool is left, the slot is
    free for the next dump."""
    with Tmpfs("1g") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with started({}, hooked=False, config_lines=lines) as s:
            p, pid = heap_target(128)
            try:
                baseline = used_bytes(spool.path)
                phase = gone_after_the_copy(s, pid, "dumpType=Full&format=zip")
                assert phase in ("bundle", "compress"), phase
                assert_nothing_left(s, spool.path, baseline)
                assert_resumed(pid)
                r = s.get(dump_url(pid), timeout=120)
                assert r.status == 200, r
            finally:
                h.kill_tree(p)


def test_one_name_rule_for_the_cli_and_the_api():
    """Proves: `procdiag dump -n` chooses by the rule dotnet-monitor's
    ?name= uses (the listed name, ASCII case ignored): a process named
    pdJobNamed is found by either as PDJOBNAMED."""
    d = tempfile.mkdtemp(prefix="pd-job-")
    try:
        one = named_sleep(d, "pdJobNamed")
        out = os.path.join(d, "core")
        r = subprocess.run([h.PROCDIAG, "dump", "-n", "PDJOBNAMED", "-q", "--json", "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert r.returncode == 0, r
        assert json.loads(r.stdout)["core_name"] == "core.%d" % one.pid, r.stdout
        s = h.shared()
        r = s.get("/process?name=PDJOBNAMED")
        assert r.status == 200 and r.json()["pid"] == one.pid, r
        assert_resumed(one.pid)
        h.kill_tree(one)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
