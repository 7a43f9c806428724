#!/usr/bin/env python3
"""API keys: 401 on every route without one, Bearer and Basic accepted,
wrong keys refused, keys never logged, no keys no start."""
import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def every_route(s, t):
    """(method, path) of every route of handlers/routes.c, under every
    prefix, with values that exist (so only the key decides)."""
    mods = s.json("/api/processes/%d/modules" % t.pid)
    base = mods[0]["base_address"]
    out = [("GET", "/"), ("GET", "/assets/table.js"), ("GET", "/assets/procdiag.css")]
    for p in h.PREFIXES:
        out += [
            ("GET", p),
            ("GET", p + "?view=table"),
            ("GET", "%s/%d/threads?view=table" % (p, t.pid)),
            ("GET", "%s/%d" % (p, t.pid)),
            ("DELETE", "%s/%d" % (p, t.pid)),
            ("POST", "%s/%d/stop" % (p, t.pid)),
            ("GET", "%s/%d/threads" % (p, t.pid)),
            ("GET", "%s/%d/threads/%d" % (p, t.pid, t.pid)),
            ("GET", "%s/%d/modules" % (p, t.pid)),
            ("GET", "%s/%d/modules/%s" % (p, t.pid, base)),
            ("GET", "%s/%d/environments/all" % (p, t.pid)),
        ]
    return out


def assert_401(r):
    """Two challenges, each on its own header line: a browser (Chromium)
    reads one challenge per line, and offers its login prompt only if the
    Basic one parses."""
    h.assert_problem(r, 401)
    www = r.headers.get_all("WWW-Authenticate") or []
    assert sorted(www) == ['Basic realm="procdiag", charset="UTF-8"',
                           'Bearer realm="procdiag"'], "WWW-Authenticate: %r" % www


def test_every_route_needs_a_key():
    s = h.shared()
    t = h.target("threads", 1)
    for method, path in every_route(s, t):
        assert_401(s.request(method, path, auth=False))
        if method == "GET":
            r = s.head(path, auth=False)
            assert r.status == 401 and r.body == b"", r
            assert len(r.headers.get_all("WWW-Authenticate") or []) == 2, r
    assert h.alive(t.pid), "an unauthenticated DELETE killed the target"
    # Unknown routes and pids answer 401 too: nothing leaks before the key.
    for path in ("/api/processes/nothing/here", "/api/processes/%d" % h.NO_PID,
                 "/api/processes/abc"):
        assert_401(s.get(path, auth=False))


def test_wrong_keys_are_401():
    s = h.shared()
    b64 = lambda x: base64.b64encode(x.encode()).decode()  # noqa: E731
    wrong = [
        "Bearer " + s.key[:-1],
        "Bearer " + s.key + "x",
        "Bearer",
        "Bearer ",
        "Basic " + b64("user:" + s.key[:-1]),
        "Basic " + b64(s.key),                # no colon: not user:password
        "Basic " + b64(s.key + ":"),          # the key as user name, no password
        "Basic !!!notbase64",
        "Basic",
        "Digest username=x",
        s.key,
        "Bearer " + "A" * 5000,
    ]
    for value in wrong:
        assert_401(s.get("/api/processes", auth=value))


def test_bearer_and_basic_are_accepted():
    s = h.shared()
    b64 = lambda x: base64.b64encode(x.encode()).decode()  # noqa: E731
    for value in ("Bearer " + s.key, "Basic " + b64("user:" + s.key),
                  "Basic " + b64(":" + s.key), "Basic " + b64("any user name:" + s.key)):
        r = s.get("/api/processes", auth=value)
        assert r.status == 200, (value, r)
        r.json()
    r = s.get("/api/processes", auth="basic")
    assert r.status == 200, r
    # The auth scheme is case-insensitive (RFC 9110 11.1).
    r = s.get("/api/processes", auth="bearer " + s.key)
    assert r.status == 200, r


def test_basic_works_on_every_route():
    s = h.shared()
    t = h.target("threads", 1)
    for method, path in every_route(s, t):
        if method != "GET":
            continue
        r = s.get(path, auth="basic")
        assert r.status == 200, r
        if not path.startswith("/assets/"):
            r.json()


def test_several_keys():
    with h.Stack(keys=2) as s:
        for k in s.keys:
            r = s.get("/api/processes", auth="Bearer " + k)
            assert r.status == 200, r
        assert_401(s.get("/api/processes", auth=False))


def test_keys_from_a_second_config_file():
    """--config twice (the packaged unit reads procdiag.conf, then keys.conf):
    keys of both files are accepted, and a later file's value wins over an
    earlier one's instead of counting as 'set twice'."""
    out = subprocess.run([h.PROCDIAG, "genkey"], stdout=subprocess.PIPE, check=True,
                         timeout=10).stdout.decode().splitlines()
    with h.Stack(config_lines=["log_requests = true"],
                 config_files=["# keys\n%s\nlog_requests = false\n" % out[1]]) as s:
        for k in (s.key, out[0]):
            r = s.get("/api/processes", auth="Bearer " + k)
            assert r.status == 200, r
        assert_401(s.get("/api/processes", auth="Bearer " + out[0] + "x"))
        assert "/api/processes" not in s.stderr(), \
            "log_requests = false of the second file did not win: " + s.stderr()[-500:]


def test_keys_are_never_logged():
    with h.Stack() as s:
        s.get("/api/processes")
        s.get("/api/processes", auth="basic")
        s.get("/api/processes", auth="Bearer " + s.key + "wrong")
        err = s.stderr()
        assert "status=200" in err or " 200 " in err, err[-500:]
        assert s.key not in err and s.key[:12] not in err, "the key is in the log"
        assert base64.b64encode(("user:" + s.key).encode()).decode()[:16] not in err


def test_no_auth_mode_warns_and_answers():
    with h.Stack(no_auth=True) as s:
        r = s.get("/api/processes", auth=False)
        assert r.status == 200, r
        r.json()
        assert "no-auth" in s.stderr().lower(), s.stderr()
        assert "WARNING" in s.stderr(), s.stderr()


def test_refuses_to_start_without_keys():
    with tempfile.TemporaryDirectory(prefix="pd-e2e-auth-") as d:
        conf = os.path.join(d, "procdiag.conf")
        with open(conf, "w") as f:
            f.write("# no keys\nscope = self\n")
        sock = os.path.join(d, "s.sock")
        r = subprocess.run([h.PROCDIAG, "serve", "--listen", "unix:" + sock, "--config", conf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        assert r.returncode != 0, r
        assert b"genkey" in r.stderr, r.stderr


def test_genkey_prints_key_and_config_line():
    out = subprocess.run([h.PROCDIAG, "genkey"], stdout=subprocess.PIPE, check=True,
                         timeout=10).stdout.decode().splitlines()
    assert len(out) == 2, out
    key, line = out
    m = re.match(r"^api_key_sha256 = ([0-9a-f]{64})$", line)
    assert m, line
    assert hashlib.sha256(key.encode()).hexdigest() == m.group(1)
    assert len(key) >= 32
    again = subprocess.run([h.PROCDIAG, "genkey"], stdout=subprocess.PIPE, check=True,
                           timeout=10).stdout.decode().splitlines()
    assert again[0] != key


if __name__ == "__main__":
    h.main(globals())
