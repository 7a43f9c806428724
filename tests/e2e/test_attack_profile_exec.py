#!/usr/bin/env python3
"""Profiles against a setuid exec (docs/DESIGN-NOTES.md, "Security review of
the 2026-12-05 features"): perf events survive an exec, a setuid one too, so
a profile of a nobody shell that execs a setuid-root program must never
answer a sample of the setuid image. Rounds of: a nobody shell that spins in
sh, then execs a setuid-root copy of dd that spins (in user space too) and
exits; each profiled by a scope = nobody responder run as docs/OPERATIONS.md
runs it (confined: the three capabilities)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from test_attack_exec import NOBODY, setuid_copy  # noqa: E402

ROUNDS = int(os.environ.get("PD_ATTACK_ROUNDS_PROFILE", "6"))
# ~0.5 s of sh, then ~1 s of the setuid dd (bs=1: a system call a byte, the
# user-space half of it sampled), then it exits: the profile (3 s) outlives
# it, so before the COMM-exec record was read the profile ended "exited"
# and answered every sample, the setuid image's with them.
SPIN = "i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done"


def target(suid):
    return h.spawn(NOBODY + ["sh", "-c", "%s; exec %s if=/dev/zero of=/dev/null bs=1 "
                             "count=500000" % (SPIN, suid)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def is_nobody_sh(pid):
    st = h.proc_stat(pid)
    return bool(st) and st["comm"] == b"sh" and h.proc_uid(pid) == 65534


def image_frames(doc, path):
    name = os.path.basename(path)
    return [f for f in doc.get("shared", {}).get("frames", [])
            if name in f.get("name", "") or path in f.get("file", "")]


def profile_rounds(s, prog, rounds, methods):
    """rounds profiles, each of a new nobody shell that execs prog during
    it. Returns (leaks, answers, raced, metas): leaks are the 200s holding
    a frame of prog."""
    leaks, answers, raced, metas = [], {}, 0, []
    for i in range(rounds):
        method = methods[i % len(methods)]
        p = target(prog)
        try:
            h.wait_until(lambda: is_nobody_sh(p.pid), 5, "the nobody shell")
            r = s.get("/api/processes/%d/profile?seconds=3&hz=99&method=%s"
                      % (p.pid, method), headers={"Accept": "application/json"})
            raced += p.poll() is not None or not is_nobody_sh(p.pid)
        finally:
            h.kill_tree(p)
        answers[(method, r.status)] = answers.get((method, r.status), 0) + 1
        if r.status == 200:
            doc = r.json()
            meta = doc["procdiag"]
            assert meta["method"] == method, meta
            metas.append(meta)
            found = image_frames(doc, prog)
            if found:
                leaks.append((i, method, meta, found[:3]))
        else:
            h.assert_problem(r, 404)
    h.diag("%s: %d rounds, %d exec'd during the profile; answers %s"
           % (os.path.basename(prog), rounds, raced, sorted(answers.items())))
    assert raced == rounds, "only %d of %d profiles straddled the exec" % (raced, rounds)
    return leaks, answers, metas


def test_profile_of_a_process_that_execs_a_setuid_program():
    """perf and ptrace: every round's profile starts on the nobody shell and
    the shell execs the setuid dd during it; the answer is a 404
    problem+json (the scope judged after the exec: root's now) or a 200 of
    the samples before the exec, never a frame of suid-dd. (This kernel,
    6.18, delivers no perf sample after a setuid exec anyway; the COMM-exec
    record is what holds where one does: the next test shows it.)"""
    d, suid = setuid_copy("dd")
    try:
        with h.Stack(confined=True, config_lines=["scope = nobody"]) as s:
            leaks, answers, metas = profile_rounds(s, suid, ROUNDS, ("perf", "perf", "ptrace"))
            assert not leaks, "the setuid image was answered: %s" % leaks
            assert all(m["ended"] == "exec" for m in metas if m["method"] == "perf"), metas
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_profile_drops_everything_from_an_exec_on():
    """perf: a nobody shell that execs an ordinary program (a plain copy of
    dd, still nobody's: in scope) during the profile: 200, ended "exec",
    complete false, the shell's samples and not one of the new image's (the
    ring's COMM-exec record ends it; without it dd's frames were answered)."""
    d = tempfile.mkdtemp(prefix="pd-e2e-exec-")
    os.chmod(d, 0o755)
    plain = os.path.join(d, "plain-dd")
    shutil.copy(shutil.which("dd"), plain)
    os.chmod(plain, 0o755)
    try:
        with h.Stack(confined=True, config_lines=["scope = nobody"]) as s:
            leaks, answers, metas = profile_rounds(s, plain, 3, ("perf",))
            assert answers == {("perf", 200): 3}, answers
            assert not leaks, "samples after the exec were answered: %s" % leaks
            for m in metas:
                assert m["ended"] == "exec" and not m["complete"] and m["samples"] > 0, m
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals(), timeout=600)
