#!/usr/bin/env python3
"""The FastCGI server itself: worker threads, a stalled client, clients that
leave, SIGTERM, inherited sockets, close-on-exec, request logs, and the nginx
configuration the project ships."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

O_CLOEXEC = 0o2000000


def socket_fds(pid):
    """The sockets pid holds open ("socket:[inode]")."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def stalled_connection(s):
    """A FastCGI connection that begins a request and never finishes its
    parameters: returned once the responder has accepted it, so the worker
    that did waits for the rest."""
    before = socket_fds(s.pd.pid)
    c = h.fcgi_connect(s.sock, timeout=30)
    c.sendall(h.fcgi_begin() + h.fcgi_record(h.FCGI_PARAMS, h.fcgi_pairs(
        {"REQUEST_METHOD": "GET", "DOCUMENT_URI": "/api/processes"})))
    h.wait_until(lambda: socket_fds(s.pd.pid) - before, 10,
                 "the responder to accept the stalled connection")
    return c


def assert_still_stalled(c):
    """Nothing was answered on c, and it is still open."""
    c.setblocking(False)
    try:
        data = c.recv(1)
    except BlockingIOError:
        return
    raise AssertionError("the stalled connection got %r (closed or answered)" % data)


def test_stalled_request_does_not_block_the_others():
    """A request that never completes holds no worker: with one worker
    thread, every other request is answered while the stalled one still
    waits for its parameters (request_read_timeout is an hour here)."""
    with h.Stack(threads=1, config_lines=["request_read_timeout = 3600"]) as s:
        c = stalled_connection(s)
        try:
            for _ in range(10):
                r = s.get("/api/processes", timeout=30)
                assert r.status == 200, r
            assert_still_stalled(c)
        finally:
            c.close()
        assert s.get("/api/processes").status == 200


def test_concurrent_requests_all_complete():
    with h.Stack(threads=2) as s:
        t = h.target("threads", 8, extra_env={"PD_E2E_BIG": "x" * 100000})
        results, errors = [], []

        def client(i):
            try:
                for j in range(10):
                    path = ("/api/processes/%d" % t.pid if (i + j) % 2 else
                            "/api/processes?allUsers=true")
                    r = s.get(path, timeout=30)
                    r.json()
                    results.append(r.status)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for x in threads:
            x.start()
        for x in threads:
            x.join()
        assert not errors, errors[:3]
        assert results == [200] * 160, sorted(set(results))


def test_clients_that_go_away():
    """Requests whose client hangs up at once, straight on the socket and
    through nginx, end cleanly; the responder serves on."""
    with h.Stack() as s:
        t = h.target(extra_env={"PD_E2E_BIG": "y" * 100000})
        params = h.fcgi_params_for("GET", "/api/processes/%d/environments/all" % t.pid,
                                   headers={"Authorization": "Bearer " + s.key})
        for _ in range(30):
            c = h.fcgi_connect(s.sock)
            c.sendall(h.fcgi_begin() + h.fcgi_record(h.FCGI_PARAMS, h.fcgi_pairs(params)) +
                      h.fcgi_record(h.FCGI_PARAMS) + h.fcgi_record(h.FCGI_STDIN))
            c.close()
        for _ in range(30):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(("GET /api/processes/%d/environments/all HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer %s\r\n\r\n" % (t.pid, s.key)).encode())
            c.close()
        # Wait until both ends are done with all 60: the responder logged
        # each, and nginx logged its 30 in the access log.
        logged = "GET /api/processes/%d/environments/all " % t.pid
        h.wait_until(lambda: s.stderr().count("\n" + logged) == 60, 30,
                     "the responder's 60 log lines")
        h.wait_until(lambda: access_log(s).count("\"" + logged) == 30, 30,
                     "nginx's 30 access log lines")
        r = s.get("/api/processes/%d/environments/all" % t.pid)
        assert r.status == 200 and len(r.json()["PD_E2E_BIG"]) == 100000, r
        assert s.pd.poll() is None, "the responder died"
        # nginx may note the clients it lost; the responder must not be blamed.
        log = s.nginx_log()
        assert "upstream prematurely closed" not in log, log[-1000:]


def access_log(s):
    with open(os.path.join(s.dir, "access.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def test_sigterm_exits_with_status_0():
    s = h.Stack().start()
    try:
        assert s.get("/api/processes").status == 200
        rc, _ = s.terminate_responder()
        assert rc == 0, "exit status %r on SIGTERM: %s" % (rc, s.stderr()[-500:])
    finally:
        problems = s.stop()
    assert not problems, problems


def test_sigterm_with_a_stalled_request_still_exits():
    s = h.Stack().start()
    c = stalled_connection(s)
    try:
        rc, _ = s.terminate_responder(timeout=15)
        assert rc is not None, "did not exit within 15s of SIGTERM"
        assert rc == 0, "exit status %r: %s" % (rc, s.stderr()[-500:])
    finally:
        c.close()
        s.stop()


def test_confined_like_the_service():
    """Started as the systemd unit starts it (root with exactly CAP_SYS_PTRACE,
    CAP_KILL and CAP_DAC_READ_SEARCH, no new privileges, scope = nobody), the
    responder and the helpers it runs hold those three capabilities and no
    more, and still see, unwind and dump a process of the scope's user."""
    t = h.sleep_as_nobody()
    with h.Stack(confined=True, config_lines=["scope = nobody"]) as s:
        d = s.json("/api/processes/%d" % t.pid)
        assert d["id"] == t.pid, d
        r = s.get("/api/processes/%d/dump?dumpType=0" % t.pid)
        assert r.status == 200 and r.body[:4] == b"\x7fELF", r
        r = s.get("/api/processes/%d/stacks" % t.pid, headers={"Accept": "application/json"})
        assert r.status == 200, r
        # Outside the scope: procdiag's own uid (root) is not nobody.
        h.assert_problem(s.get("/api/processes/%d" % os.getpid()), 404)
        status = h.proc_status(s.pd.pid)
        assert status["NoNewPrivs"] == "1", status


def test_inherited_socket_on_fd_0():
    """Without --listen, the listening socket is fd 0 (as spawn-fcgi hands
    it); requests are then served on it."""
    d = tempfile.mkdtemp(prefix="pd-e2e-fd0-")
    path = os.path.join(d, "s.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(16)
    p = subprocess.Popen([h.PROCDIAG, "serve", "--no-auth"], stdin=ls.fileno(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, LISTEN_FDS="", LISTEN_PID=""))
    ls.close()
    try:
        out, _, status = h.fcgi_request(path, h.fcgi_params_for("GET", "/api/processes"))
        st, headers, body = h.split_cgi(out)
        assert st == 200, out[:300]
        assert headers["content-type"].startswith("application/json"), headers
        assert b'"procdiag"' in body, body[:200]
        p.terminate()
        _, err = p.communicate(timeout=10)
        assert p.returncode == 0, (p.returncode, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.unlink(path)
        os.rmdir(d)


def test_every_fd_of_the_responder_is_close_on_exec():
    with h.Stack() as s:
        t = h.target()
        # Work that opens files: detail, modules with build-ids, environ.
        s.get("/api/processes/%d" % t.pid)
        s.get("/api/processes/%d/modules/%s" % (
            t.pid, s.json("/api/processes/%d/modules" % t.pid)[0]["base_address"]))
        pid = s.pd.pid
        bad = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            if int(fd) <= 2:
                continue
            try:
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                    info = f.read()
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except FileNotFoundError:
                continue
            flags = int(re.search(r"flags:\s*([0-7]+)", info).group(1), 8)
            if not flags & O_CLOEXEC:
                bad.append((fd, target))
        assert not bad, "fds without O_CLOEXEC: %s" % bad


def test_one_log_line_per_request():
    with h.Stack() as s:
        s.get("/api/processes")
        s.get("/api/processes/abc")
        s.delete("/api/processes/1")
        s.get("/api/processes", auth=False)
        # The line is written after the response: wait for the fifth (the
        # stack's own first request is the first).
        h.wait_until(lambda: s.stderr().count(" status=") >= 5, 10, "the fourth log line")
        lines = [l for l in s.stderr().splitlines() if "status=" in l]
        want = [("GET", "/api/processes", 200), ("GET", "/api/processes/abc", 400),
                ("DELETE", "/api/processes/1", 403), ("GET", "/api/processes", 401)]
        tail = lines[-4:]
        assert len(tail) == 4, lines
        # A worker logs after the body is sent, so the next request (on
        # another worker) may be logged first: each line once, in any order.
        for m, path, st in want:
            hits = [line for line in tail
                    if line.startswith("%s %s " % (m, path)) and "status=%d" % st in line]
            assert len(hits) == 1, (m, path, st, tail)
        for line in tail:
            assert re.search(r"bytes=\d+", line) and re.search(r"ms=\d+", line), line


def test_bad_command_lines():
    for argv in (["serve", "--threads", "0", "--no-auth", "--listen", "unix:/nonexistent/x"],
                 ["serve", "--threads", "abc", "--no-auth"],
                 ["serve", "--bogus"],
                 ["nonsense"]):
        r = subprocess.run([h.PROCDIAG] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=10)
        assert r.returncode == 2, (argv, r)
        assert r.stderr, argv


def test_nginx_config_is_clean():
    """The rendered dev config and, on its own, the operator's snippet inside
    a plain server block pass `nginx -t` without a warning."""
    d = tempfile.mkdtemp(prefix="pd-e2e-nginx-")
    try:
        sock = os.path.join(d, "procdiag.sock")
        h.render_nginx(d, "127.0.0.1:%d" % h.free_port(), sock)
        check_nginx_t(d, os.path.join(d, "nginx.conf"))
        # An operator's server: only the include, nothing of ours around it.
        op = os.path.join(d, "operator.conf")
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(op, "w") as f:
            f.write(user + "pid %s/op.pid;\nevents {}\nhttp {\n"
                    "  client_body_temp_path %s/tmp/body; proxy_temp_path %s/tmp/proxy;\n"
                    "  fastcgi_temp_path %s/tmp/fcgi; uwsgi_temp_path %s/tmp/uwsgi;\n"
                    "  scgi_temp_path %s/tmp/scgi; access_log off;\n"
                    "  server {\n    listen 127.0.0.1:%d;\n"
                    "    location / { root %s/html; }\n"
                    "    location ~ \\.php$ { return 403; }\n"
                    "    include %s/nginx/procdiag.conf;\n  }\n}\n"
                    % ((d,) * 6 + (h.free_port(), d, h.SRCDIR)))
        check_nginx_t(d, op)
    finally:
        subprocess.run(["rm", "-rf", d])


def check_nginx_t(prefix, conf):
    r = subprocess.run([h.NGINX, "-t", "-p", prefix, "-e", os.path.join(prefix, "error.log"),
                        "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    assert "[warn]" not in out and "[emerg]" not in out and "[alert]" not in out, out


def test_snippet_routes_through_nginx():
    """Paths the snippet claims reach procdiag; others do not. (The dump
    route is asked with a bad format: a 400 from procdiag, and no dump.)"""
    s = h.shared()
    for path in ("/api/processes", "/api/diagnostics/processes", "/diagnostics/processes",
                 "/api/processes/0/dump?format=tar", "/processes", "/process", "/stacks", "/env",
                 "/info", "/dump?format=tar"):
        # (JSON asked for: /stacks answers text by default, as dotnet-monitor's.)
        r = s.get(path, headers={"Accept": "application/json"})
        # procdiag answers (JSON or a problem), not nginx's own HTML pages.
        assert r.content_type in ("application/json", "application/problem+json"), (path, r)
        assert r.status != 502, (path, r)
    # The served assets (a regex location: only names procdiag may serve).
    r = s.get("/assets/table.js")
    assert r.status == 200 and r.content_type == "text/javascript", r
    h.assert_problem(s.get("/assets/nope.css"), 404, "name")
    for path in ("/index.html", "/api", "/api/other", "/processesX", "/dumps",
                 "/assets/", "/assets/x.php"):
        r = s.get(path)
        assert r.content_type == "text/html", (path, r)


if __name__ == "__main__":
    h.main(globals())
