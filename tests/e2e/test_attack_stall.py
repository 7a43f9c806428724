#!/usr/bin/env python3
"""Issue 10, part 4 and two of its smaller findings: what a client can hold
without a key, and for how long (docs/OPERATIONS.md, "Connections without a
key").

- A member of the socket's group opens 10 x `threads` FastCGI connections
  that send only FCGI_BEGIN_REQUEST, or trickle their parameters a byte at a
  time, and keeps that many open: authenticated requests through nginx are
  still answered, and every stalled connection is closed at
  request_read_timeout.
- A client that reads a dump slower than download_min_rate is cut; the slot
  and the spool are given back; the target was never stopped by it.
- SIGTERM: a download in flight completes byte-complete, a request that
  arrives during the drain gets 503 with Retry-After, and the responder
  exits 0 once the download is done; past drain_timeout a download is cut.

Every responder here runs as the service does (root with exactly the three
capabilities, scope = nobody), and every attacker as nobody."""
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# The attacker, run as nobody: keeps `n` connections to the socket open,
# half sending only FCGI_BEGIN_REQUEST, half trickling their parameters one
# byte at a time; a connection the responder closes is opened again. Prints
# "open" once all n are open, then "closed K" each time the responder has
# closed K more; stops when its stdin closes, and prints "opened M".
ATTACKER = r"""
import os, select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
def rec(t, c=b""):
    pad = (8 - len(c) % 8) % 8
    return bytes([1, t, 0, 1, len(c) >> 8, len(c) & 255, pad, 0]) + c + b"\0" * pad
BEGIN = rec(1, bytes([0, 1, 0, 0, 0, 0, 0, 0]))
PARAMS = rec(4, bytes([14, 3]) + b"REQUEST_METHODGET" * 40)
conns = {}  # socket -> bytes still to trickle (None: BEGIN only)
opened = closed = 0
def connect(i):
    global opened
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(BEGIN)
    conns[s] = PARAMS if i % 2 else None
    opened += 1
for i in range(n):
    connect(i)
print("open", flush=True)
last = 0
while True:
    r, _, _ = select.select(list(conns) + [sys.stdin], [], [], 0.1)
    if sys.stdin in r:
        break
    for s in r:
        try:
            gone = s.recv(4096) == b""
        except OSError:
            gone = True
        if gone:
            i = 1 if conns.pop(s) is not None else 0
            s.close()
            closed += 1
            connect(i)
    for s, rest in list(conns.items()):
        if rest:
            try:
                s.send(rest[:1])
                conns[s] = rest[1:]
            except OSError:
                pass
    if closed != last:
        print("closed", closed, flush=True)
        last = closed
print("opened", opened, flush=True)
"""


# The other attacker, as nobody: n connections, on each `count` copies of
# the request read from stdin sent one after the other, none of the answers
# read (a thread each: the sends block while the responder does not read). Prints
# "closed K" once every send has ended, K being the connections whose send
# failed because the responder closed them.
PIPELINER = r"""
import socket, sys, threading, time
path, n, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
req = sys.stdin.buffer.read()
closed = []
def send(c):
    # One at a time, a little apart: libfcgi reads a request with a buffer
    # of 8 KiB and drops what it read past it, which would end the attack.
    try:
        for _ in range(count):
            c.sendall(req)
            time.sleep(0.002)
    except OSError:
        closed.append(c)
conns = []
for _ in range(n):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    conns.append(c)
ts = [threading.Thread(target=send, args=(c,)) for c in conns]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("closed", len(closed), flush=True)
"""


def socket_for_group(s, gid=65534):
    """The socket as the packaged service makes it, 0660 root:GROUP, with
    nobody's group (65534) as GROUP: nobody can then connect to it, as a
    member of the socket's group (www-data on Debian) would."""
    os.chown(s.sock, -1, gid)
    assert os.stat(s.sock).st_mode & 0o777 == 0o660, oct(os.stat(s.sock).st_mode)


def attacker(s, n):
    """The attacker, as nobody; stopped by closing its stdin."""
    p = subprocess.Popen(NOBODY + [sys.executable, "-c", ATTACKER, s.sock, str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         start_new_session=True)
    h._spawned.append(p)  # killed at exit, whatever happens
    return p


def target_as_nobody(mib):
    """A process of the scope's user with mib MiB of heap (its full dump
    outgrows every buffer between the responder and a client)."""
    p = h.spawn(NOBODY + [sys.executable, "-c", du.HEAP_SCRIPT, str(mib)])
    words = h.read_line(p, timeout=30).split()
    assert words[0] == "ready", words
    pid = int(words[1])
    h.settle(pid)
    assert h.proc_uid(pid) == 65534
    return p, pid


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "connection closed after %r" % head
        head += chunk
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k:
            headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers


def read_all(sock):
    n = 0
    first = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return n, first
        if len(first) < 4:
            first += chunk[:4 - len(first)]
        n += len(chunk)


def test_stalled_connections_hold_no_worker():
    """10 x threads connections without a key, kept open, some sending
    nothing after FCGI_BEGIN_REQUEST and some a byte at a time: requests
    with a key through nginx are answered all along, and each stalled
    connection is closed at request_read_timeout."""
    threads = 4
    n = 10 * threads
    t = h.sleep_as_nobody()
    with h.Stack(confined=True, threads=threads,
                 config_lines=["scope = nobody", "request_read_timeout = 2"]) as s:
        socket_for_group(s)
        a = attacker(s, n)
        try:
            assert h.read_line(a, timeout=30).strip() == "open"
            # While the attacker holds its n connections (reopening each
            # one closed), 2 x threads clients at once, 5 requests each.
            results, errors = [], []

            def client():
                try:
                    for _ in range(5):
                        r = s.get("/api/processes/%d" % t.pid, timeout=30)
                        results.append(r.status)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

            clients = [threading.Thread(target=client) for _ in range(2 * threads)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            assert not errors, errors[:3]
            assert results == [200] * (10 * threads), sorted(set(results))
            # Every one of the first n is closed by the responder (the
            # attacker counts the closes it sees; it reopens each).
            closed = 0
            while closed < n:
                words = h.read_line(a, timeout=30).split()
                assert words[0] == "closed", words
                closed = int(words[1])
            assert s.pd.poll() is None, "the responder died"
        finally:
            a.stdin.close()
            tail = a.stdout.read().decode()
            a.wait(timeout=10)
        assert "opened" in tail, tail
        assert "sent no complete request within request_read_timeout" in s.stderr(), \
            s.stderr()[-2000:]
        # And still answered once the attack stops.
        assert s.get("/api/processes/%d" % t.pid).status == 200


def test_requests_sent_without_reading_the_answers_hold_no_worker():
    """Without a key, 2 x threads connections each send 2000 requests one
    after the other on a kept connection (FCGI_KEEP_CONN) and read none of the
    answers: once the socket's buffer filled up, each would hold the worker
    writing its next 401 for send_timeout (an hour here), and the rest of
    the requests would never be read. They are closed instead, and
    requests with a key through nginx are answered."""
    threads = 2
    t = h.sleep_as_nobody()
    with h.Stack(confined=True, threads=threads,
                 config_lines=["scope = nobody", "send_timeout = 3600"]) as s:
        socket_for_group(s)
        req = (h.fcgi_begin(keep_conn=True) +
               h.fcgi_record(h.FCGI_PARAMS, h.fcgi_pairs(
                   h.fcgi_params_for("GET", "/api/processes/%d" % t.pid))) +
               h.fcgi_record(h.FCGI_PARAMS) + h.fcgi_record(h.FCGI_STDIN))
        a = subprocess.Popen(NOBODY + [sys.executable, "-c", PIPELINER, s.sock,
                                       str(2 * threads), "2000"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             start_new_session=True)
        h._spawned.append(a)
        try:
            a.stdin.write(req)
            a.stdin.close()
            # Every connection was closed by the responder: none of its
            # 2000 requests could all be sent.
            line = h.read_line(a, timeout=60).split()
            assert line == ["closed", str(2 * threads)], line
            for _ in range(10):
                r = s.get("/api/processes/%d" % t.pid, timeout=30)
                assert r.status == 200, r
        finally:
            a.kill()
            a.wait()
        assert s.get("/api/processes/%d" % t.pid).status == 200


def test_slow_download_is_cut_and_gives_back_slot_and_spool():
    """A client reading a full dump at a few KB/s, far below
    download_min_rate: the download is cut (the client gets fewer bytes
    than Content-Length), the dump slot and its spool are given back at
    once (the next dump is taken: max_dumps is 1), and the target was
    never stopped by the slow download."""
    p, pid = target_as_nobody(48)
    with h.Stack(confined=True, threads=2,
                 config_lines=["scope = nobody", "max_dumps = 1", "send_timeout = 1",
                               "download_min_rate = 16M"]) as s:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=120)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                      "Connection: close\r\n\r\n" % (du.dump_url(pid, "dumpType=Full"),
                                                      s.key)).encode())
        status, headers = read_head(sock)
        assert status == 200, (status, headers)
        length = int(headers["content-length"])
        assert length > 48 << 20, length
        # The target runs again once the dump is spooled, before a byte of
        # the body goes out.
        du.assert_resumed(pid)
        got = 0
        sock.settimeout(0.05)
        while "cut=download_min_rate" not in s.stderr():
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                chunk = None
            if chunk == b"":
                break
            got += len(chunk or b"")
            # Never stopped while it is sent, however slowly.
            assert du.not_stopped(pid), h.proc_stat(pid)
            time.sleep(0.02)
        h.wait_until(lambda: "cut=download_min_rate" in s.stderr(), 60,
                     "the responder to cut the slow download (got %d of %d; log %s)" %
                     (got, length, s.stderr()[-600:]))
        # The slot and the spool are back already, whatever nginx still
        # holds for this client.
        assert not du.spool_fds(s.pd.pid, "/var/tmp"), du.spool_fds(s.pd.pid, "/var/tmp")
        r = s.get(du.dump_url(pid, "dumpType=Mini"), timeout=60)
        assert r.status == 200 and r.body[:4] == b"\x7fELF", r
        sock.settimeout(60)
        rest, _ = read_all(sock)
        sock.close()
        assert got + rest < length, (got, rest, length)
        assert du.not_stopped(pid) and h.alive(pid)
        line = [l for l in s.stderr().splitlines() if "cut=download_min_rate" in l]
        assert len(line) == 1 and "/dump " in line[0], line
    p.kill()


def test_sigterm_lets_a_download_finish_and_answers_503():
    """SIGTERM during a download: the download goes on to its last byte;
    a request that arrives meanwhile is answered 503 with Retry-After (a
    problem document, from procdiag: nginx would say 502); the responder
    exits 0 once the download is done."""
    p, pid = target_as_nobody(32)
    s = h.Stack(confined=True, threads=2,
                config_lines=["scope = nobody", "drain_timeout = 120"]).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        conn.request("GET", du.dump_url(pid, "dumpType=Full"),
                     headers={"Authorization": "Bearer " + s.key})
        r = conn.getresponse()
        assert r.status == 200, r.status
        length = int(r.getheader("Content-Length"))
        first = r.read(4096)
        assert first[:4] == b"\x7fELF", first[:16]
        # The rest is not read yet: the download is in flight.
        s.terminated = True
        s.pd.send_signal(signal.SIGTERM)
        h.wait_until(lambda: "stopping" in s.stderr(), 10, "the responder to see SIGTERM")
        late = s.get("/api/processes/%d" % pid)
        doc = h.assert_problem(late, 503)
        retry = late.header("Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) >= 1, late.headers
        assert "shutting down" in doc["detail"], doc
        assert s.pd.poll() is None, "exited with a download in flight"
        body = first + r.read()
        assert len(body) == length, (len(body), length)
        conn.close()
        rc = s.pd.wait(timeout=60)
        assert rc == 0, (rc, s.stderr()[-1000:])
        err = s.stderr()
        assert "answered 1 request(s) 503 while stopping" in err, err[-1000:]
        assert "cut" not in err.split("stopping", 1)[1], err[-1000:]
    finally:
        problems = s.stop()
        p.kill()
    assert not problems, problems


def test_sigterm_cuts_a_download_at_drain_timeout():
    """A download whose client stops reading is cut at drain_timeout, and
    the responder still exits 0."""
    p, pid = target_as_nobody(32)
    s = h.Stack(confined=True, threads=2,
                config_lines=["scope = nobody", "drain_timeout = 1"]).start()
    try:
        sock, status, _ = du.start_download(s, du.dump_url(pid, "dumpType=Full"))
        assert status == 200, status
        s.terminated = True
        s.pd.send_signal(signal.SIGTERM)
        rc = s.pd.wait(timeout=60)
        assert rc == 0, (rc, s.stderr()[-1000:])
        assert "drain over: cut 1 unfinished request(s)" in s.stderr(), s.stderr()[-1000:]
        sock.close()
    finally:
        s.stop()
        p.kill()


if __name__ == "__main__":
    h.main(globals())
