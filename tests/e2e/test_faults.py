#!/usr/bin/env python3
"""The dump's failure paths, gathered: each test names what it proves. In
every case the target ends up running (never left in a ptrace or group
stop), the spool ends up empty (no file, no space, no descriptor held), no
helper is left behind, and the responder keeps answering."""
import os
import re
import shutil
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import *  # noqa: E402,F401,F403


def test_no_room_in_spool_is_507_and_nothing_left():
    """Proves: a spool without room for the dump is a 507 before the target is
    stopped, and nothing is left in it."""
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


def test_second_dump_is_429_and_others_answer_while_one_runs():
    """Proves: the dump limit (max_dumps = 1) holds while a download is in
    progress (429 with Retry-After); list, detail and kill keep answering;
    a client that stops reading and goes away frees the slot and the spool
    (resume_timeout = 0: no spool kept for a resume, test_download.py)."""
    with Tmpfs("512m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0", "resume_timeout = 0"]
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


def test_monitor_and_kudu_dumps_share_the_limit():
    """Proves: dotnet-monitor's /dump and Kudu's /{id}/dump count against the
    same limit."""
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


def test_client_gone_during_the_dump_leaves_nothing():
    """Proves: a client that hangs up once the dump has started (its helper
    runs, or the target is frozen), while the helper works, leaves nothing
    behind and the target running (three times)."""
    with Tmpfs("512m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with h.Stack(config_lines=lines) as s:
            proc, pid = heap_target(128)
            baseline = used_bytes(spool.path)
            for i in range(3):
                sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
                sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                              % (dump_url(pid, "dumpType=2"), s.key)).encode())
                h.wait_until(lambda: helper_children(s.pd.pid) or frozen(pid), 10,
                             "the dump to start (a helper, or the target frozen)")
                sock.close()
                logged = r"GET /api/processes/%d/dump status=" % pid
                h.wait_until(lambda: len(re.findall(logged, s.stderr())) == i + 1, 30,
                             "the dump's request log line")
                line = re.findall(logged + ".*", s.stderr())[-1]
                assert "client_gone" in line, line
                assert_nothing_left(s, spool.path, baseline)
                assert_resumed(pid)
            assert s.get("/api/processes").status == 200
            h.kill_tree(proc)


def test_others_answer_while_a_dump_is_frozen_and_a_second_is_429():
    """Proves: while a target is held frozen by a dump, the other routes answer
    at once and a second dump is a 429; the first dump then completes and
    reports how long the target was stopped."""
    with started({SLOW_FREEZE: "2000"}) as s:
        t = h.target("threads", 2)
        out = {}
        th = threading.Thread(target=lambda: out.update(r=s.get(dump_url(t.pid), timeout=60)))
        th.start()
        try:
            h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
            assert s.get("/api/processes").status == 200
            assert s.get("/api/processes/%d" % t.pid).status == 200
            victim = h.target()
            assert s.delete("/api/processes/%d" % victim.pid).status == 204
            r = s.get(dump_url(victim.pid if h.alive(victim.pid) else t.pid))
            h.assert_problem(r, 429)
            assert r.header("Retry-After") == "10", r.headers
            # All of that happened while the first dump held the target.
            assert frozen(t.pid), "the freeze ended before the checks did"
        finally:
            th.join(60)
        r = out["r"]
        stopped = assert_core_response(r, "pdtarget")
        assert stopped >= 2000 * 1000, stopped
        assert_resumed(t.pid)


def test_client_abort_during_the_freeze_resumes_the_target_at_once():
    """Proves: a client that hangs up while the target is frozen makes the
    responder kill its helper, so the target runs again long before the
    helper's freeze (60 s) would have ended, and the spool is empty."""
    with Tmpfs("64m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with started({SLOW_FREEZE: "60000"}, config_lines=lines) as s:
            t = h.target("threads", 3)
            baseline = used_bytes(spool.path)
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                          % (dump_url(t.pid), s.key)).encode())
            h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
            assert spool_fds(s.pd.pid, spool.path), "the dump does not use the spool"
            sock.close()
            h.wait_until(lambda: not_stopped(t.pid), 20, "the target to run again")
            assert_nothing_left(s, spool.path, baseline)
            h.wait_until(lambda: "dump=cancelled" in s.stderr(), 5, "the log line")
            assert s.get("/api/processes").status == 200


def test_responder_killed_during_the_freeze_target_runs_again():
    """Proves: SIGKILL of the responder mid-freeze takes its helper with it
    (PR_SET_PDEATHSIG) and the kernel detaches the seized target, which runs
    again long before the helper's freeze (60 s) would have ended."""
    s = started({SLOW_FREEZE: "60000"}).stack
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
        h.wait_until(lambda: not_stopped(t.pid), 20, "the target to run again")
        h.wait_until(lambda: not any(h.alive(p) for p in helpers), 2, "the helper to die")
        th.join(30)
    finally:
        # nginx rightly logs the dropped connection: not this test's concern.
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
        reap_our_zombies({s.pd.pid})
    assert_resumed(t.pid)


def test_target_killed_during_the_freeze_is_404_and_the_responder_is_fine():
    """Proves: a target that dies while it is frozen is a 404, the status
    every route gives a process that is gone (handlers/problem.c; not a 500
    or a hang), nothing is left in the spool and the responder answers on."""
    with Tmpfs("64m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0"]
        with started({SLOW_FREEZE: "3000"}, config_lines=lines) as s:
            t = h.target("threads", 2)
            baseline = used_bytes(spool.path)
            out = {}
            th = threading.Thread(target=lambda: out.update(r=s.get(dump_url(t.pid), timeout=60)))
            th.start()
            try:
                h.wait_until(lambda: frozen(t.pid), 5, "the dump to freeze the target")
                os.kill(t.pid, signal.SIGKILL)
            finally:
                th.join(60)
            doc = h.assert_problem(out["r"], 404)
            assert str(t.pid) in doc["detail"], doc
            h.wait_gone([t.pid])
            assert_nothing_left(s, spool.path, baseline)
            assert s.get("/api/processes").status == 200


if __name__ == "__main__":
    h.main(globals())
