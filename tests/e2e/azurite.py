"""Azurite (Microsoft's Azure Storage emulator, tests/azurite, installed by
./dev) for the egress tests: started on a free loopback port in a temporary
directory with a random account and key of its own (AZURITE_ACCOUNTS), and
killed in finally. The tests judge what procdiag uploaded with this
module's own SharedKey signer and urllib, never with procdiag's code.

Also a small TCP proxy, put in front of the real Azurite, that cuts a
connection (once, or every one) after some bytes, or holds the traffic at
a gate until the test opens it."""
import base64
import datetime
import email.utils
import hashlib
import hmac
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import harness as h

BIN = os.path.join(h.SRCDIR, "tests", "azurite", "node_modules", ".bin", "azurite-blob")
API = "2021-08-06"


class Azurite:
    """One Azurite blob service. account/key: a random account of its own."""

    def __init__(self, location=None, port=None, account=None, key=None):
        if not os.access(BIN, os.X_OK):
            raise h.Skip("no Azurite at %s: ./dev installs it (npm ci --prefix tests/azurite)" % BIN)
        self.own_dir = location is None
        self.dir = location or tempfile.mkdtemp(prefix="pd-e2e-azurite-")
        self.port = port or h.free_port()
        self.account = account or "pd" + secrets.token_hex(4)
        self.key = key or base64.b64encode(secrets.token_bytes(64)).decode()
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/%s" % (self.port, self.account)

    def start(self):
        env = dict(os.environ, AZURITE_ACCOUNTS="%s:%s" % (self.account, self.key))
        self.log = open(os.path.join(self.dir, "azurite.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", self.dir,
             "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("Azurite exited: %s" % self.tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("Azurite did not listen: %s" % self.tail())

    def tail(self):
        try:
            with open(os.path.join(self.dir, "azurite.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=9):
        """SIGKILL (default), or a graceful SIGTERM: Azurite saves its
        metadata (else every 5 s) and exits."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.close()

    # --- the REST API, signed here (SharedKey), judged with urllib ---------

    def request(self, method, path, query=None, headers=None, body=b""):
        """path: "/container[/blob]" unescaped. Returns (status, headers, body)."""
        query = dict(query or {})
        headers = dict(headers or {})
        headers["x-ms-date"] = email.utils.formatdate(usegmt=True)
        headers["x-ms-version"] = API
        if method == "PUT":  # else urllib adds its form type unsigned
            headers.setdefault("Content-Type", "application/octet-stream")
        epath = urllib.parse.quote(path)
        clen = str(len(body)) if body else ""
        ctype = headers.get("Content-Type", "")
        canon_h = "".join("%s:%s\n" % (k.lower(), headers[k].strip())
                          for k in sorted(headers, key=str.lower) if k.lower().startswith("x-ms-"))
        canon_r = "/%s/%s%s" % (self.account, self.account, epath)
        for k in sorted(query):
            canon_r += "\n%s:%s" % (k.lower(), query[k])
        sts = "\n".join([method, "", "", clen, "", ctype, "", "", "", "", "", ""]) + "\n" \
            + canon_h + canon_r
        sig = base64.b64encode(hmac.new(base64.b64decode(self.key), sts.encode(),
                                        hashlib.sha256).digest()).decode()
        headers["Authorization"] = "SharedKey %s:%s" % (self.account, sig)
        url = self.url + epath + ("?" + urllib.parse.urlencode(query) if query else "")
        req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def create_container(self, name):
        st, _, body = self.request("PUT", "/" + name, {"restype": "container"})
        assert st == 201, (st, body)

    def blob_names(self, container):
        st, _, body = self.request("GET", "/" + container, {"restype": "container", "comp": "list"})
        assert st == 200, (st, body)
        import re
        return re.findall(r"<Name>([^<]*)</Name>", body.decode())

    def get_blob(self, container, name):
        """(status, headers, bytes)"""
        return self.request("GET", "/%s/%s" % (container, name))

    def uncommitted(self, container, name):
        """The uncommitted block ids of a blob that may not exist."""
        import re
        st, _, body = self.request("GET", "/%s/%s" % (container, name),
                                   {"comp": "blocklist", "blocklisttype": "uncommitted"})
        if st != 200:
            return []
        return re.findall(r"<Name>([^<]*)</Name>", body.decode())

    def account_sas(self, permissions="racwdl", days=1):
        """An account SAS (sv 2019-12-12: the string-to-sign without an
        encryption scope) made here, for blobs, services/containers/objects."""
        se = (datetime.datetime.utcnow() + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        f = {"sv": "2019-12-12", "ss": "b", "srt": "sco", "sp": permissions, "se": se,
             "spr": "https,http"}
        sts = "\n".join([self.account, f["sp"], f["ss"], f["srt"], "", f["se"], "", f["spr"],
                         f["sv"], ""])
        f["sig"] = base64.b64encode(hmac.new(base64.b64decode(self.key), sts.encode(),
                                             hashlib.sha256).digest()).decode()
        return urllib.parse.urlencode(f), f["sig"]


class Proxy:
    """A TCP proxy on a free loopback port to upstream_port. Modes:
    cut_once_after=N: the connection that carries the client's byte N
    (counted over all connections) is closed there, once; cut_every_after=N:
    every connection is closed after N bytes from the client;
    gate_after=N: traffic from the client stops at byte N (all connections)
    until open_gate(). cuts counts the connections cut, accepted those
    taken."""

    def __init__(self, upstream_port, cut_once_after=None, cut_every_after=None, gate_after=None):
        self.upstream = upstream_port
        self.cut_once_after = cut_once_after
        self.cut_every_after = cut_every_after
        self.gate_after = gate_after
        self.gate = threading.Event()
        self.gated = threading.Event()
        self.sent = 0
        self.cuts = 0
        self.accepted = 0  # connections taken
        self.lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def open_gate(self):
        self.gate_after = None
        self.gate.set()

    def close(self):
        self.closing = True
        self.gate.set()
        try:
            self.ls.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            state = {"n": 0, "dead": False}
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._up, args=(c, u, state), daemon=True).start()
            threading.Thread(target=self._down, args=(u, c, state), daemon=True).start()

    def _kill(self, c, u, state):
        state["dead"] = True
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _up(self, c, u, state):
        try:
            while True:
                data = c.recv(16384)
                if not data:
                    state["eof"] = True
                    u.shutdown(socket.SHUT_WR)
                    return
                with self.lock:
                    start = self.sent
                    self.sent += len(data)
                    state["n"] += len(data)
                    cut = False
                    if self.cut_once_after is not None and start < self.cut_once_after <= self.sent:
                        data = data[:self.cut_once_after - start]
                        self.cut_once_after = None
                        cut = True
                    if self.cut_every_after is not None and state["n"] > self.cut_every_after:
                        data = data[:max(0, len(data) - (state["n"] - self.cut_every_after))]
                        cut = True
                    gate = self.gate_after is not None and self.sent >= self.gate_after
                if data:
                    u.sendall(data)
                if cut:
                    with self.lock:
                        self.cuts += 1
                    self._kill(c, u, state)
                    return
                if gate:
                    self.gated.set()
                    self.gate.wait()
        except OSError:
            pass
        finally:
            if not state["dead"] and not state.get("eof"):
                self._kill(c, u, state)

    def _down(self, u, c, state):
        try:
            while True:
                data = u.recv(16384)
                if not data:
                    break
                c.sendall(data)
        except OSError:
            pass
        finally:
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
