#!/usr/bin/env python3
"""Absolute links, built the safe way (docs/CONFIGURATION.md, "Links").

An operator's nginx location written by hand with nothing but the stock
`include fastcgi_params;` (Debian's file, which sends HTTP_HOST as $host),
on a port that is not 80: the links in JSON answers are followed as a client
follows them (to the host and port they name) and answer 200. The same
with public_url set, behind a second, prefix-stripping proxy. A request
whose Host header differs from its absolute-form target (the attack
Debian's fastcgi_params describes) does not get that Host into links.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

# What an operator writes: one location, the stock include, the socket.
# The second server stands for "another proxy" in front: it strips /diag/
# and passes the rest on to the first. It listens on a unix socket, so that
# the public name of the site (front.example:8443) needs no port of this
# machine; the client below reaches that name through the socket, as
# `curl --unix-socket` would.
HAND_CONF = """@USER@
worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    server {
        listen @LISTEN@;
        server_name localhost;
        location / {
            include fastcgi_params;
            fastcgi_pass unix:@SOCKET@;
        }
    }
    server {
        listen unix:@PREFIX@/front.sock;
        location /diag/ {
            proxy_pass http://@LISTEN@/;
        }
    }
}
"""
FRONT = "http://front.example:8443/diag"

_stacks = {}


def stack(kind):
    """The hand-written site, plain or with public_url (one of each per run)."""
    if kind not in _stacks or _stacks[kind].stopped:
        lines = {"hand": [], "public": ["public_url = " + FRONT + "/"],
                 "proxy": ["trust_proxy = true"]}[kind]
        _stacks[kind] = h.Stack(config_lines=lines, nginx_conf=HAND_CONF).start()
    return _stacks[kind]


def fetch(s, url, method="GET", headers=None):
    """Follows an absolute link where it points: TCP to its host and port,
    or, for front.example, the front proxy's socket."""
    u = urllib.parse.urlsplit(url)
    assert u.scheme == "http", url
    if u.hostname == "front.example":
        conn = http.client.HTTPConnection(u.netloc, timeout=30)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.settimeout(30)
        conn.sock.connect(os.path.join(s.dir, "front.sock"))
    else:
        assert u.hostname == "127.0.0.1", url  # the only address anything listens on
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        hd = {"Authorization": "Bearer " + s.key}
        hd.update(headers or {})
        conn.request(method, u.path + ("?" + u.query if u.query else ""), headers=hd)
        r = conn.getresponse()
        return h.Response(method, url, r.status, r.headers, r.read())
    finally:
        conn.close()


def links(doc):
    """Every http(s) string in a JSON document."""
    out = []
    if isinstance(doc, dict):
        for v in doc.values():
            out += links(v)
    elif isinstance(doc, list):
        for v in doc:
            out += links(v)
    elif isinstance(doc, str) and re.match(r"^https?://", doc):
        out.append(doc)
    return out


def walk(s, start, root):
    """From start, follows links breadth first: every link starts with root,
    and each one followed answers 200 JSON. Dump links are checked, not
    followed (a dump stops the process). Returns how many were followed."""
    seen, todo, n = set(), [start], 0
    while todo and n < 40:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        assert url.startswith(root + "/"), (url, root)
        if urllib.parse.urlsplit(url).path.endswith("/dump"):
            continue
        r = fetch(s, url)
        m = re.search(r"/processes/(\d+)(?:/|$)", urllib.parse.urlsplit(url).path)
        if r.status == 404 and m and not os.path.exists("/proc/" + m.group(1)):
            continue  # a child that exited meanwhile: its link was right
        assert r.status == 200, (url, r)
        assert r.content_type == "application/json", (url, r)
        n += 1
        # Process lists are long: a few of their entries are enough.
        todo += [x for x in links(r.json()) if x not in seen][:8]
    return n


def first_href(body):
    m = re.search(rb'"href": "([^"]*)"', body)
    assert m, body[:300]
    return m.group(1).decode()


def raw_get(s, target, host):
    """One request as a client can send it, absolute-form target included."""
    data = h.raw_http(s.port, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                              "Connection: close\r\n\r\n" % (target, host, s.key))
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def test_stock_fastcgi_params_and_no_override():
    """The harness copies the machine's own fastcgi_params, which sends
    HTTP_HOST as $host (Debian's fix), and no config of ours undoes it."""
    s = stack("hand")
    with open(os.path.join(s.dir, "fastcgi_params"), "rb") as f, \
            open("/etc/nginx/fastcgi_params", "rb") as g:
        assert f.read() == g.read()
    with open("/etc/nginx/fastcgi_params") as f:
        assert re.search(r"^\s*fastcgi_param\s+HTTP_HOST\s+\$host\s*;", f.read(), re.M), \
            "this nginx's fastcgi_params passes the raw Host header: links would carry it"
    for rel in ("nginx/procdiag.conf", "nginx/dev.conf.in", "packaging/package-test.sh"):
        with open(os.path.join(h.SRCDIR, rel)) as f:
            for line in f:
                line = line.split("#")[0]
                assert not re.search(r"HTTP_HOST|\$http_host", line), (rel, line)


def test_links_navigate_with_the_stock_include():
    """On a port that is not 80, links carry it (SERVER_PORT) and lead to
    answers; the same through the snippet the package installs."""
    for s in (stack("hand"), h.shared()):
        assert s.port != 80
        index = s.json("/")
        assert index["links"]["processes"] == s.base + "/api/processes", index
        n = walk(s, s.base + "/", s.base)
        n += walk(s, s.base + "/api/processes/%d" % os.getpid(), s.base)
        d = s.json("/api/processes/%d" % os.getpid())
        for key in ("threads", "modules"):
            for item in d[key][:3]:
                assert fetch(s, item["href"]).status == 200, item
                n += 1
        assert n >= 20, n


def test_the_host_header_does_not_reach_links():
    """The absolute-form attack of Debian's fastcgi_params comment: the
    target names one host, the Host header another. The Host header's port
    is not taken either: nginx's $host has none, SERVER_PORT is the port
    nginx accepted on."""
    for s in (stack("hand"), h.shared()):
        for target, host in (("http://127.0.0.1:%d/api/processes/%d" % (s.port, os.getpid()), "malformedhost"),
                             ("http://127.0.0.1:%d/api/processes/%d" % (s.port, os.getpid()), "evil.example:80"),
                             ("/api/processes/%d" % os.getpid(), "127.0.0.1:1")):
            status, body = raw_get(s, target, host)
            assert status == "HTTP/1.1 200 OK", (target, host, status, body[:300])
            assert b"malformedhost" not in body and b"evil.example" not in body, body[:300]
            href = first_href(body)
            assert href.startswith(s.base + "/api/processes/"), (host, href)
            assert fetch(s, href).status == 200, href


def test_public_url_links_navigate_behind_a_prefix_proxy():
    """public_url: every link starts with it, whatever the request said; they
    work through the proxy that strips the prefix."""
    s = stack("public")
    n = walk(s, FRONT + "/", FRONT)
    n += walk(s, FRONT + "/api/processes/%d" % os.getpid(), FRONT)
    assert n >= 10, n
    # Neither the Host nor the forwarded headers matter now.
    r = s.get("/api/processes/%d" % os.getpid(), headers={"Host": "other.example:1",
                                           "X-Forwarded-Host": "evil.example"})
    assert r.json()["href"].startswith(FRONT + "/api/processes/"), r.json()
    status, body = raw_get(s, "http://127.0.0.1:%d/api/processes/%d" % (s.port, os.getpid()), "malformedhost")
    assert first_href(body).startswith(FRONT + "/api/processes/"), body[:300]
    # The public origin (no path) is ours for the cross-site check, another is not.
    pid = h.unused_pid()
    r = fetch(s, FRONT + "/api/processes/%d/stop" % pid, "POST",
              {"Origin": "http://front.example:8443", "Content-Length": "0"})
    assert r.status == 404, r
    r = fetch(s, FRONT + "/api/processes/%d/stop" % pid, "POST",
              {"Origin": "http://127.0.0.1:%d" % s.port, "Content-Length": "0"})
    assert r.status == 403, r


def test_forwarded_headers_only_when_trusted():
    """X-Forwarded-Proto/-Host/-Port build links only with trust_proxy; the
    port nginx accepted on is then not added (it is not the proxy's)."""
    fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "diag.example"}
    s = h.shared()
    r = s.get("/api/processes/%d" % os.getpid(), headers=fwd)
    assert r.json()["href"].startswith(s.base + "/api/processes/"), r.json()["href"]
    s = stack("proxy")
    r = s.get("/api/processes/%d" % os.getpid(), headers=fwd)
    assert r.json()["href"].startswith("https://diag.example/api/processes/"), r.json()["href"]
    r = s.get("/api/processes/%d" % os.getpid(), headers=dict(fwd, **{"X-Forwarded-Port": "8443"}))
    assert r.json()["href"].startswith("https://diag.example:8443/api/processes/"), r.json()
    # A hostile forwarded host is passed over for the request's own.
    r = s.get("/api/processes/%d" % os.getpid(), headers={"X-Forwarded-Host": "evil.example/x\"y"})
    assert r.json()["href"].startswith(s.base + "/api/processes/"), r.json()["href"]


def test_public_url_is_checked_at_start():
    """A bad public_url stops procdiag at start with a message naming it, in
    the config (FILE:LINE) and on the command line (--public-url, status 2)."""
    bad = ("ftp://x", "http://", "http:/x", "http://a b", "http://user@host", "http://host:0",
           "http://host:65536", "http://host/a?b=1", "http://host/#f", "http://host/../x",
           "http://host/a//b", "http://host/a b", "http://[::1", "http://[fe80::1%25eth0]",
           "http://host/\"x", "http://h\u00e9st/", "http://" + "a" * 300, "http://_/")
    d = tempfile.mkdtemp(prefix="pd-e2e-links-")
    try:
        conf = os.path.join(d, "p.conf")
        for v in bad:
            with open(conf, "w") as f:
                f.write("# test\npublic_url = %s\n" % v)
            r = subprocess.run([h.PROCDIAG, "serve", "--no-auth", "--listen",
                                "unix:" + os.path.join(d, "s.sock"), "--config", conf],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, timeout=10)
            err = r.stderr.decode("utf-8", "replace")
            assert r.returncode == 1 and "p.conf:2: public_url " in err, (v, r)
            r = subprocess.run([h.PROCDIAG, "serve", "--no-auth", "--listen",
                                "unix:" + os.path.join(d, "s.sock"), "--public-url", v],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, timeout=10)
            assert r.returncode == 2 and b"--public-url " in r.stderr, (v, r)
            assert not os.path.exists(os.path.join(d, "s.sock")), v
    finally:
        subprocess.run(["rm", "-rf", d])


def test_serve_public_url_option():
    """--public-url, in its normal form (scheme lower-case, default port and
    trailing '/' left out), overrides the config's, and is what links use."""
    d = tempfile.mkdtemp(prefix="pd-e2e-links-")
    try:
        sock = os.path.join(d, "s.sock")
        conf = os.path.join(d, "p.conf")
        with open(conf, "w") as f:
            f.write("public_url = http://config.example\n")
        p = h.spawn([h.PROCDIAG, "serve", "--no-auth", "--listen", "unix:" + sock,
                     "--config", conf, "--public-url", "HTTPS://Cli.Example:443/pd/"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        h.wait_until(lambda: os.path.exists(sock) or p.poll() is not None, 10, "the socket")
        out = h.fcgi_request(sock, h.fcgi_params_for("GET", "/api/processes/%d" % os.getpid()))[0]
        status, _, body = h.split_cgi(out)
        assert status == 200, out
        doc = json.loads(body)
        assert doc["href"].startswith("https://Cli.Example/pd/api/processes/"), doc["href"]
        p.terminate()
        assert p.wait(timeout=10) == 0
        assert b"links start with https://Cli.Example/pd" in p.stderr.read()
    finally:
        subprocess.run(["rm", "-rf", d])


def test_dev_and_harness_render_the_same_nginx_config():
    """./dev's render_nginx and harness.render_nginx write the same files."""
    d = tempfile.mkdtemp(prefix="pd-e2e-render-")
    try:
        a, b = os.path.join(d, "dev"), os.path.join(d, "harness")
        sock = os.path.join(d, "procdiag.sock")
        with open(os.path.join(h.SRCDIR, "dev")) as f:
            fn = re.search(r"^render_nginx\(\) \{\n.*?^\}\n", f.read(), re.M | re.S).group(0)
        r = subprocess.run(["bash", "-c", fn + 'render_nginx "$@"', "render", d + "/X",
                            "127.0.0.1:8080", sock], cwd=h.SRCDIR, env=dict(os.environ,
                                                                            NGINX=h.NGINX),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, r
        os.rename(d + "/X", a)
        h.render_nginx(d + "/X", "127.0.0.1:8080", sock)
        os.rename(d + "/X", b)
        for name in ("nginx.conf", "procdiag-locations.conf", "fastcgi_params", "mime.types"):
            with open(os.path.join(a, name)) as f, open(os.path.join(b, name)) as g:
                assert f.read() == g.read(), name
    finally:
        subprocess.run(["rm", "-rf", d])


def test_the_private_stacks_stop_cleanly():
    problems = []
    for s in _stacks.values():
        problems += s.stop()
    assert not problems, problems


if __name__ == "__main__":
    h.main(globals())
