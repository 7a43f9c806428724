#!/usr/bin/env python3
"""Every error status of the API, each an application/problem+json document;
404 for out-of-scope pids exactly as for missing ones; HEAD on every GET
route; every href absolute."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def get_routes(pid, tid, base):
    out = ["/"]
    for p in h.PREFIXES:
        out += [p, "%s/%d" % (p, pid), "%s/%d/threads" % (p, pid),
                "%s/%d/threads/%d" % (p, pid, tid), "%s/%d/modules" % (p, pid),
                "%s/%d/modules/%s" % (p, pid, base), "%s/%d/environments/all" % (p, pid),
                "%s/%d/environments/PATH" % (p, pid)]
    return out


def shape(doc, pid):
    """A problem document with the pid and the path taken out."""
    d = dict(doc)
    d.pop("instance", None)
    d["detail"] = d["detail"].replace(str(pid), "N")
    return d


def test_unknown_routes_are_404():
    s = h.shared()
    for path in ("/api/processes/1/nothing", "/api/processes/1/threads/1/more",
                 "/api/processesX", "/api/processes/1/modules/abc/def",
                 "/diagnostics/processes/1/environments", "/api/diagnostics/processes/1/x"):
        h.assert_problem(s.get(path), 404)


def test_unknown_pid_is_404_on_every_id_route():
    s = h.shared()
    pid = h.unused_pid()
    for path in get_routes(pid, pid, "1000")[1:]:
        if path.endswith("/%d" % pid) or "/%d/" % pid in path:
            doc = h.assert_problem(s.get(path), 404)
            if path.endswith("/%d" % pid):
                assert doc["detail"] == "Process with an Id of %d is not running." % pid, doc
    for method, path in (("DELETE", "/api/processes/%d"), ("POST", "/api/processes/%d/stop")):
        h.assert_problem(s.request(method, path % pid), 404)


def test_out_of_scope_pid_looks_like_a_missing_one():
    """A process of another user (nobody), with scope = self: not listed
    (with or without allUsers), and every route answers the same 404 body
    as for a pid that does not exist."""
    s = h.shared()
    p = h.sleep_as_nobody()
    missing = h.unused_pid()
    for q in ("", "?allUsers=true"):
        assert p.pid not in {it["id"] for it in s.json("/api/processes" + q)}, q
    for sub in ("", "/threads", "/threads/%d", "/modules", "/modules/1000",
                "/environments/all"):
        a = s.get("/api/processes/%d%s" % (p.pid, sub.replace("%d", str(p.pid))))
        b = s.get("/api/processes/%d%s" % (missing, sub.replace("%d", str(missing))))
        da, db = h.assert_problem(a, 404), h.assert_problem(b, 404)
        assert shape(da, p.pid) == shape(db, missing), (da, db)
        assert sorted(a.headers.keys()) == sorted(b.headers.keys()), (a.headers, b.headers)
    for method, path in (("DELETE", "/api/processes/%d"), ("POST", "/api/processes/%d/stop")):
        da = h.assert_problem(s.request(method, path % p.pid), 404)
        db = h.assert_problem(s.request(method, path % missing), 404)
        assert shape(da, p.pid) == shape(db, missing), (da, db)
    assert h.alive(p.pid)


def test_malformed_ids_are_400_naming_id():
    s = h.shared()
    for bad in ("abc", "-2", "99999999999", "4194305", "1.5", "0x10", "%201", "+1",
                "1e3", "%E2%82%AC"):
        for prefix in h.PREFIXES:
            for method, sub in (("GET", ""), ("GET", "/threads"), ("GET", "/modules"),
                                ("GET", "/environments/all"), ("DELETE", ""),
                                ("POST", "/stop")):
                r = s.request(method, "%s/%s%s" % (prefix, bad, sub))
                doc = h.assert_problem(r, 400, "id")
                assert doc["title"] == "Bad Request", doc
    # -1 is the parent link of a process without a parent: no process has it.
    for prefix in h.PREFIXES:
        for method, sub in (("GET", ""), ("GET", "/threads"), ("DELETE", ""),
                            ("POST", "/stop")):
            doc = h.assert_problem(s.request(method, "%s/-1%s" % (prefix, sub)), 404)
            assert "-1" in doc["detail"], doc


def test_malformed_tid_and_base_address_are_400():
    s = h.shared()
    t = h.target()
    for bad in ("abc", "-1", "99999999999"):
        h.assert_problem(s.get("/api/processes/%d/threads/%s" % (t.pid, bad)), 400, "tid")
    for bad in ("xyz", "-1", "12345678901234567890"):
        h.assert_problem(s.get("/api/processes/%d/modules/%s" % (t.pid, bad)), 400,
                         "baseAddress")
    h.assert_problem(s.get("/api/processes/%d/threads/%d" % (t.pid, h.unused_pid())), 404)
    h.assert_problem(s.get("/api/processes/%d/modules/1000" % t.pid), 404)


def test_malformed_query_is_400_naming_it():
    s = h.shared()
    h.assert_problem(s.get("/api/processes?allUsers=maybe"), 400, "allUsers")
    doc = h.assert_problem(s.get("/api/processes?allUsers=%zz"), 400)
    assert doc.get("parameter") == "allUsers", doc


def test_every_true_false_parameter_parses_alike():
    """Proves: every true|false query parameter (allUsers, exact, source,
    store, async) is parsed by one rule: true/false in any case, 1/0, or
    empty (the default) are taken; any other value is a 400 naming the
    parameter, with the same detail, and nothing is done (no dump, no
    stacks)."""
    s = h.shared()
    t = h.target()
    try:
        base = "/api/processes/%d" % t.pid
        cases = [("/api/processes?", "allUsers"),
                 (base + "/environments/PATH?", "exact"),
                 (base + "/stacks?", "source"),
                 (base + "/dump?", "store"),
                 (base + "/stacks?", "async")]
        for path, name in cases:
            doc = h.assert_problem(s.get(path + name + "=maybe"), 400, name)
            assert doc["detail"] == "%s must be true or false, not 'maybe'." % name, doc
        for path, name in cases[:3]:
            for v in ("TRUE", "False", "1", "0", ""):
                r = s.get(path + name + "=" + v)
                assert r.status == 200, (path, name, v, r.status, r.body[:300])
        assert h.alive(t.pid)
    finally:
        t.kill()


def test_wrong_methods_are_405_with_allow():
    s = h.shared()
    t = h.target()
    cases = [
        ("PUT", "/api/processes", {"GET", "HEAD"}),
        ("POST", "/api/processes", {"GET", "HEAD"}),
        ("DELETE", "/api/processes", {"GET", "HEAD"}),
        ("PATCH", "/api/processes/%d" % t.pid, {"GET", "HEAD", "DELETE"}),
        ("POST", "/api/processes/%d" % t.pid, {"GET", "HEAD", "DELETE"}),
        ("GET", "/api/processes/%d/stop" % t.pid, {"POST"}),
        ("DELETE", "/api/processes/%d/threads" % t.pid, {"GET", "HEAD"}),
        ("PUT", "/", {"GET", "HEAD"}),
    ]
    for method, path, allow in cases:
        r = s.request(method, path)
        h.assert_problem(r, 405)
        got = {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}
        assert got == allow, "%s %s: Allow %r, expected %r" % (method, path, got, allow)
    assert h.alive(t.pid)


def raw_head(port, path, auth):
    """HEAD over a raw socket, reading until the server closes: returns
    (status, headers, bytes after the header block)."""
    data = h.raw_http(port, "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                            "Connection: close\r\n\r\n" % (path, port, auth), timeout=10)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def test_head_on_every_get_route():
    s = h.shared()
    t = h.target("threads", 1)
    base = s.json("/api/processes/%d/modules" % t.pid)[0]["base_address"]
    missing = h.unused_pid()
    paths = get_routes(t.pid, t.pid, base) + ["/api/processes/%d" % missing,
                                               "/api/processes/abc", "/api/processes/1/x"]
    for path in paths:
        g = s.get(path)
        status, headers, rest = raw_head(s.port, path, "Bearer " + s.key)
        assert status == g.status, "HEAD %s: %d, GET: %r" % (path, status, g)
        assert rest == b"", "HEAD %s sent a body: %r" % (path, rest[:200])
        ct = headers.get("content-type", "").split(";")[0]
        assert ct == g.content_type, (path, ct, g.content_type)
        # Where the answer holds still (errors, the index), HEAD announces
        # the length GET sends.
        if "content-length" in headers and (g.status != 200 or path == "/"):
            assert int(headers["content-length"]) == len(g.body), (path, headers, g)


def test_every_error_is_problem_json():
    """One of each status, checked for the RFC 9457 members."""
    s = h.shared()
    t = h.target()
    h.assert_problem(s.get("/api/processes/abc"), 400, "id")
    h.assert_problem(s.get("/api/processes", auth=False), 401)
    h.assert_problem(s.delete("/api/processes/1"), 403)
    h.assert_problem(s.get("/api/processes/%d" % h.unused_pid()), 404)
    h.assert_problem(s.put("/api/processes"), 405)
    doc = h.assert_problem(s.get("/api/processes/%d/nothing" % t.pid), 404)
    assert doc["type"] == "about:blank", doc
    assert doc["title"] == "Not Found", doc
    assert doc.get("instance") == "/api/processes/%d/nothing" % t.pid, doc
    # (500, a kill that leaves a process alive, is in test_failure_paths.py.)


def test_every_href_is_absolute():
    s = h.shared()
    t = h.target("tree", 2, "threads", 2)
    n = 0
    for prefix in h.PREFIXES:
        n += h.assert_hrefs(s, s.json(prefix))
        d = s.json("%s/%d" % (prefix, t.pid))
        n += h.assert_hrefs(s, d)
        assert d["children"], d
        n += h.assert_hrefs(s, s.json("%s/%d/threads" % (prefix, t.pid)))
        mods = s.json("%s/%d/modules" % (prefix, t.pid))
        n += h.assert_hrefs(s, mods)
        n += h.assert_hrefs(s, s.json("%s/%d/threads/%d" % (prefix, t.pid, t.pid)))
        n += h.assert_hrefs(s, s.json("%s/%d/modules/%s" % (prefix, t.pid,
                                                           mods[0]["base_address"])))
    assert n > 50, n
    # Following the links leads somewhere real.
    d = s.json("/api/processes/%d" % t.pid)
    for link in [d["parent"]] + d["children"] + [x["href"] for x in d["threads"]] + \
            [x["href"] for x in d["modules"]]:
        assert s.get(link[len(s.base):]).status == 200, link


def test_index():
    s = h.shared()
    doc = s.json("/")
    assert isinstance(doc, dict), doc
    urls = re.findall(r'"(https?://[^"]+)"', s.get("/").body.decode())
    assert urls, doc
    for u in urls:
        assert u.startswith(s.base + "/"), u
        assert s.get(u[len(s.base):]).status == 200, u
    assert any(u == s.base + "/api/processes" for u in urls), urls


if __name__ == "__main__":
    h.main(globals())
