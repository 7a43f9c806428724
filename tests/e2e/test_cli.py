#!/usr/bin/env python3
"""The command line: procdiag ps and kill (dump and stacks have their own
tests), --help and --version on every command, and usage errors (exit 2).
Judged by /proc."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

PUBLIC = ("serve", "genkey", "ps", "dump", "stacks", "kill")


def run(*args, timeout=60):
    return subprocess.run([h.PROCDIAG] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_ps_lists_a_child_with_path_and_args():
    t = h.target("threads", 1)
    out = run("ps")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["PID", "USER", "RSS(KiB)"], lines[0]
    mine = [ln for ln in lines if ln.split()[:1] == [str(t.pid)]]
    assert all(ln.strip() for ln in lines), "an empty line: a newline was not escaped"
    assert len(mine) == 1, lines[:5]
    cols = mine[0].split()
    assert cols[1] == "root" or cols[1] == str(os.getuid()), cols
    assert cols[4] == "pdtarget" and cols[5] == os.path.realpath(h.PDTARGET), cols
    assert cols[6:] == ["threads", "1"], cols

    items = {p["pid"]: p for p in json.loads(run("ps", "--json").stdout)}
    p = items[t.pid]
    assert p["name"] == "pdtarget" and p["ppid"] == os.getpid(), p
    assert p["executable"] == os.path.realpath(h.PDTARGET), p
    assert p["arguments"] == "threads 1", p
    rss = h.status_bytes(t.pid, "VmRSS")
    assert abs(p["rss"] - rss) <= max(rss // 4, 256 * 1024), (p["rss"], rss)
    assert isinstance(p["cpuSeconds"], float) and p["cpuSeconds"] >= 0, p
    # Kernel threads only with --all.
    assert 2 not in items
    assert 2 in {p["pid"] for p in json.loads(run("ps", "--all", "--json").stdout)}


def test_kill_a_tree_leaves_nothing():
    t = h.target("tree", 3)
    assert len(t.chain) == 3
    out = run("kill", "-p", str(t.pid))
    assert out.returncode == 0, out.stderr
    assert b"killed 3 process(es)" in out.stdout, out.stdout
    h.wait_gone(t.chain)
    for p, st in t.starttimes.items():
        assert not h.alive(p, st), "pid %d survived" % p


def test_kill_refusals_and_exit_codes():
    r = run("kill", "-p", "2")
    assert r.returncode == 1 and b"kernel thread" in r.stderr, r
    r = run("kill", "-p", "1")
    assert r.returncode == 1, r
    r = run("kill", "-p", str(h.NO_PID))
    assert r.returncode == 3 and b"no process" in r.stderr, r
    assert h.alive(2) and h.alive(1)


def test_usage_errors_exit_2():
    for args in (("ps", "--bogus"), ("ps", "extra"), ("kill",), ("kill", "-p"),
                 ("kill", "-p", "abc"), ("kill", "--nope"), ("genkey", "x"),
                 ("no-such-command",), ()):
        r = run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert b"usage" in r.stderr, (args, r.stderr)


def test_help_and_version_everywhere():
    version = run("--version").stdout.decode().strip()
    assert version.startswith("procdiag "), version
    r = run("--help")
    assert r.returncode == 0
    for cmd in PUBLIC:
        assert ("  %s " % cmd).encode() in r.stdout, (cmd, r.stdout)
        hr = run(cmd, "--help")
        assert hr.returncode == 0 and b"usage: procdiag " + cmd.encode() in hr.stdout, \
            (cmd, hr.stdout[:200])
        vr = run(cmd, "--version")
        assert vr.returncode == 0 and vr.stdout.decode().strip() == version, (cmd, vr)
    # The internal helper is not advertised.
    assert b"dump-helper" not in r.stdout


if __name__ == "__main__":
    h.main(globals())
