#!/usr/bin/env python3
"""Issue 10, part 5 and the browser findings of part 6: attacks on procdiag
itself. A key holder whose scope holds procdiag's own uid (root here, the
worst case) must not get a dump or the stacks of the responder or of its
helpers, whose memory holds other clients' requests; id 0 is never procdiag
by default, and its 404 names no pid; a dump of the responder taken by root
itself holds no client's key; a page of another site cannot make a browser
start a dump or take stacks. Every test runs the responder as the service
runs (root with exactly the three capabilities, no new privileges)."""
import base64
import os
import shutil
import subprocess
import tempfile

import harness as h
from dumputil import helper_children as children_of

ROOT_SCOPE = ["scope = 0"]


def switches(pid):
    """How often pid's threads were scheduled: a ptrace stop wakes a sleeping
    thread, so a freeze shows here, without a clock."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def assert_refused_as_procdiag(s, pid):
    for path, param in (("/api/processes/%d/dump?dumpType=2", "id"),
                        ("/api/processes/%d/dump", "id"),
                        ("/api/diagnostics/processes/%d/stacks", "id"),
                        ("/dump?pid=%d&type=Full", "pid"),
                        ("/stacks?pid=%d", "pid")):
        r = s.get(path % pid, headers={"Accept": "application/json"})
        doc = h.assert_problem(r, 403, param)
        assert "procdiag" in doc["detail"], doc
    h.assert_problem(s.delete("/api/processes/%d" % pid), 403, "id")


def test_responder_and_helpers_are_not_dumped_or_unwound():
    """Dumps, stacks and kill of the responder and of its stacks helper: 403,
    with root (procdiag's uid) in scope. Both keep running."""
    with h.Stack(confined=True, config_lines=ROOT_SCOPE) as s:
        t = h.target("threads", 1)
        # The stacks helper starts with the first stacks request.
        assert s.get("/api/processes/%d/stacks" % t.pid).status == 200
        helpers = children_of(s.pd.pid)
        assert helpers, "no helper of the responder after a stacks request"
        for pid in [s.pd.pid] + helpers:
            st = h.proc_stat(pid)
            assert_refused_as_procdiag(s, pid)
            assert h.proc_stat(pid)["starttime"] == st["starttime"], pid
        # They still work: the helper answers the next request.
        assert s.get("/api/processes/%d/stacks" % t.pid).status == 200
        assert children_of(s.pd.pid) == helpers


def test_id_zero_is_not_procdiag():
    """Without site_pid_file, id 0 is a 404 naming `id` and saying how to
    set it; the dotnet-monitor routes' default process is a 400. Neither
    names a pid."""
    with h.Stack(confined=True, config_lines=ROOT_SCOPE) as s:
        for path in ("/api/processes/0", "/api/processes/0/dump?dumpType=2",
                     "/api/processes/0/stacks"):
            r = s.get(path, headers={"Accept": "application/json"})
            doc = h.assert_problem(r, 404, "id")
            assert "site_pid_file" in doc["detail"], doc
            assert str(s.pd.pid).encode() not in r.body, r.body
        for path in ("/process", "/dump?type=Full", "/stacks"):
            r = s.get(path, headers={"Accept": "application/json"})
            h.assert_problem(r, 400)
            assert str(s.pd.pid).encode() not in r.body, r.body


def test_id_zero_names_no_pid_when_out_of_scope():
    """id 0 is the pid in site_pid_file. When that process is out of the
    key's scope (or gone), the 404 says so without its pid; when it names
    procdiag itself, a dump is still refused."""
    tmp = tempfile.mkdtemp(prefix="pd-e2e-site-")
    pidfile = os.path.join(tmp, "site.pid")
    os.chmod(tmp, 0o755)
    try:
        nobody = h.sleep_as_nobody()
        with h.Stack(confined=True, config_lines=["scope = nobody",
                                                  "site_pid_file = " + pidfile]) as s:
            for pid in (s.pd.pid, 1):  # root's: out of scope
                with open(pidfile, "w") as f:
                    f.write("%d\n" % pid)
                r = s.get("/api/processes/0")
                doc = h.assert_problem(r, 404, "id")
                assert str(pid).encode() not in r.body, (pid, r.body)
                assert "site process" in doc["detail"], doc
            with open(pidfile, "w") as f:
                f.write("%d\n" % nobody.pid)
            assert s.json("/api/processes/0")["id"] == nobody.pid
            assert s.json("/process")["pid"] == nobody.pid
        with h.Stack(confined=True, config_lines=ROOT_SCOPE + ["site_pid_file = " + pidfile]) as s:
            with open(pidfile, "w") as f:
                f.write("%d\n" % s.pd.pid)
            h.assert_problem(s.get("/api/processes/0/dump?dumpType=2"), 403, "id")
            # No pid, uid or name: the configuration chose it, no parameter did.
            assert h.assert_problem(s.get("/dump?type=Full"), 403).get("parameter") is None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_no_credentials_in_a_dump_of_the_responder():
    """After authenticated requests with Bearer and Basic credentials (one
    of them refused), a full core of the responder, taken by root with the
    CLI (not through the API), holds neither key nor the Basic credential,
    in any form a client sent; it does hold the requests' other parameters,
    so the search looks where the keys were."""
    with h.Stack(confined=True, config_lines=ROOT_SCOPE, keys=2) as s:
        bearer, basic_key = s.keys
        wrong = "pd_" + "W" * 43
        basic = base64.b64encode(("alice:" + basic_key).encode()).decode()
        t = h.target("threads", 1)
        for i in range(8):
            assert s.get("/api/processes", auth="Bearer " + bearer).status == 200
            assert s.get("/api/processes/%d" % t.pid, auth="Basic " + basic).status == 200
        assert s.get("/api/processes", auth="Bearer " + wrong).status == 401
        marker = "pdmarker" + os.urandom(6).hex()
        for i in range(4):  # every worker's last request: its params stay allocated
            r = s.get("/api/processes/%d?x=%s" % (t.pid, marker), auth="Basic " + basic)
            assert r.status == 200, r
        core = os.path.join(s.dir, "responder.core")
        subprocess.run([h.PROCDIAG, "dump", "-p", str(s.pd.pid), "--type", "Full", "-o", core,
                        "-q"], check=True, timeout=120)
        with open(core, "rb") as f:
            data = f.read()
        os.unlink(core)
        assert marker.encode() in data, "the core does not hold the requests' parameters"
        for name, secret in (("bearer key", bearer), ("basic key", basic_key),
                             ("basic credential", basic), ("refused key", wrong),
                             ("basic user:key", "alice:" + basic_key)):
            n = data.count(secret.encode())
            assert n == 0, "the core holds the %s %d times" % (name, n)


def test_cross_site_get_of_a_dump_or_stacks_is_refused():
    """A dump or stacks GET sent by another site's page (Sec-Fetch-Site or a
    foreign Origin) is refused as a cross-site DELETE is, and the target is
    never stopped; the same requests from procdiag's own pages, typed in the
    address bar or sent by curl (no such headers) are served."""
    with h.Stack(confined=True, config_lines=ROOT_SCOPE) as s:
        t = h.target("threads", 1)
        paths = ["/api/processes/%d/dump" % t.pid, "/api/processes/%d/stacks" % t.pid,
                 "/diagnostics/processes/%d/dump?dumpType=2" % t.pid,
                 "/dump?pid=%d" % t.pid, "/stacks?pid=%d" % t.pid]
        before = switches(t.pid)
        for hdrs in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                     {"Origin": "http://evil.example"}, {"Origin": "null"},
                     {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}):
            for path in paths:
                r = s.get(path, headers=dict(hdrs, Accept="application/json"))
                h.assert_problem(r, 403)
                assert "another site" in r.json()["detail"], r.json()
        assert switches(t.pid) == before, "a refused request stopped the target"
        # Reading is not refused cross-site: no side effect.
        assert s.get("/api/processes/%d" % t.pid,
                     headers={"Sec-Fetch-Site": "cross-site"}).status == 200
        for hdrs in ({}, {"Sec-Fetch-Site": "same-origin", "Origin": s.base},
                     {"Sec-Fetch-Site": "none"}):
            r = s.get("/api/processes/%d/stacks" % t.pid, headers=hdrs)
            assert r.status == 200, (hdrs, r)
            r = s.get("/api/processes/%d/dump" % t.pid, headers=hdrs)
            assert r.status == 200 and r.body[:4] == b"\x7fELF", (hdrs, r)
        # The check above sees a freeze when there is one.
        assert switches(t.pid) != before


if __name__ == "__main__":
    h.main(globals())
