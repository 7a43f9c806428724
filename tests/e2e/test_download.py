#!/usr/bin/env python3
"""Dump downloads (docs/DUMPS.md, "Downloads"): the spool sent with its
exact length in large FastCGI records through the shipped nginx snippet; a
download its client broke off resumed with Range and If-Range from the very
same spool; a client that goes away leaves no spool (once resume_timeout is
over) and no busy worker; the responder answers others meanwhile."""
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from dumputil import (dump_url, helper_children, spool_fds, assert_resumed, EU_READELF,  # noqa: E402
                      Tmpfs, used_bytes, script_target)

# Pages that each start with a magic and their index: a core whose pieces
# were joined at the wrong offset loses or repeats one.
PAGES_SCRIPT = ("import os, struct, sys, time\n"
                "n = int(sys.argv[1]) * 256\n"
                "buf = bytearray(n * 4096)\n"
                "for i in range(n):\n"
                "    buf[i * 4096:i * 4096 + 16] = b'PDPAGE!!' + struct.pack('<Q', i)\n"
                "    buf[i * 4096 + 16:i * 4096 + 48] = os.urandom(32)\n"
                "print('ready', os.getpid(), flush=True)\n"
                "time.sleep(600)\n")


def pages_target(mib):
    p, pid = script_target(PAGES_SCRIPT, mib)
    return p, pid, mib * 256


def assert_pages(core, n):
    """The target's buffer, whole: its n pages at 4096-byte steps, each with
    its own index (stray copies of the magic elsewhere do not count)."""
    def page(at, i):
        return core[at:at + 16] == b"PDPAGE!!" + i.to_bytes(8, "little")

    starts = [m.start() for m in re.finditer(re.escape(b"PDPAGE!!" + bytes(8)), core)
              if page(m.start() + 4096, 1)]
    assert len(starts) == 1, starts
    bad = [i for i in range(n) if not page(starts[0] + i * 4096, i)]
    assert not bad, (len(bad), bad[:5])


def open_download(s, pid, query="dumpType=Full", headers=()):
    """A GET on a plain socket: (socket, status, headers dict, first body bytes)."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    extra = "".join("%s: %s\r\n" % kv for kv in headers)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n%s"
                  "Connection: close\r\n\r\n" % (dump_url(pid, query), s.key, extra)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return sock, status, hdrs, body


def read_n(sock, have, n):
    """have plus more bytes from sock until n (or the end)."""
    parts, got = [have], len(have)
    while got < n:
        chunk = sock.recv(min(1 << 20, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def log_lines(s, pid):
    return re.findall(r"GET /api/processes/%d/dump status=.*" % pid, s.stderr())


def break_off(s, pid, nbytes):
    """A full dump's download broken off after nbytes: (length, etag, the
    bytes got), once the responder has kept its spool."""
    sock, status, hd, body = open_download(s, pid)
    assert status == 200, (status, hd)
    got = read_n(sock, body, nbytes)
    sock.close()
    h.wait_until(lambda: any("spool=kept" in l for l in log_lines(s, pid)), 30,
                 "the broken-off download's spool to be kept")
    return int(hd["content-length"]), hd["etag"], got


def test_download_has_its_length_and_a_validator():
    """Proves: a full dump of a 48 MiB buffer (many 1 MiB batches of 64 KiB
    records) arrives whole through nginx, as long as Content-Length says,
    every page in order; it carries a strong ETag and Accept-Ranges;
    eu-readelf reads it; the spool is gone once it is sent."""
    p, pid, n = pages_target(48)
    with h.Stack() as s:
        r = s.get(dump_url(pid, "dumpType=Full"), timeout=120)
        assert r.status == 200, r
        assert int(r.header("Content-Length")) == len(r.body) > 48 << 20, r.headers
        assert re.fullmatch(r'"[0-9a-f]{32}"', r.header("ETag") or ""), r.headers
        assert r.header("Accept-Ranges") == "bytes", r.headers
        assert r.body[:4] == b"\x7fELF", r.body[:16]
        assert_pages(r.body, n)
        path = os.path.join(s.dir, "core")
        with open(path, "wb") as f:
            f.write(r.body)
        out = subprocess.run([EU_READELF, "-n", path], capture_output=True, text=True)
        assert out.returncode == 0 and "CORE" in out.stdout, out.stderr[-500:]
        os.unlink(path)
        assert not spool_fds(s.pd.pid, "/var/tmp"), spool_fds(s.pd.pid, "/var/tmp")
    h.kill_tree(p)


def test_interrupted_download_resumes_byte_identical():
    """Proves: a download broken off by its client keeps its spool; Range
    with If-Range naming its ETag gets 206 and the rest of the same bytes,
    without a new dump (the process is not stopped again); broken off again
    it is kept again; a Range past the end is 416 and keeps it; the pieces
    joined are the same bytes as a whole 206 from the same spool, a core
    with every page in order; once sent whole the spool is gone, and the
    same If-Range then gets a new dump (200, another ETag)."""
    p, pid, n = pages_target(32)
    with Tmpfs("256m") as spool:
        lines = ["spool_dir = " + spool.path, "spool_memory_max = 0", "resume_timeout = 600"]
        with h.Stack(config_lines=lines) as s:
            baseline = used_bytes(spool.path)
            length, etag, first = break_off(s, pid, 5 << 20)
            assert len(spool_fds(s.pd.pid, spool.path)) == 1, spool_fds(s.pd.pid, spool.path)
            assert_resumed(pid)
            dumps = s.stderr().count("stopped_us=")

            # Past the end: 416, and the spool stays.
            sock, status, hd, body = open_download(
                s, pid, headers=[("Range", "bytes=%d-" % length), ("If-Range", etag)])
            assert status == 416 and hd["content-range"] == "bytes */%d" % length, (status, hd)
            sock.close()
            # Its log line (written once the answer is out) says it kept it.
            h.wait_until(lambda: sum("spool=kept" in l for l in log_lines(s, pid)) == 2, 30,
                         "the 416 to keep the spool")

            # Resumed at once (no 429: the 416 gave its slot back before it
            # answered), broken off again.
            kept = 2
            sock, status, hd, body = open_download(
                s, pid, headers=[("Range", "bytes=%d-" % len(first)), ("If-Range", etag)])
            assert status == 206, (status, hd)
            assert hd["content-range"] == "bytes %d-%d/%d" % (len(first), length - 1, length), hd
            assert int(hd["content-length"]) == length - len(first), hd
            assert hd["etag"] == etag, hd
            second = read_n(sock, body, 5 << 20)
            sock.close()
            h.wait_until(lambda: sum("spool=kept" in l for l in log_lines(s, pid)) == kept + 1, 30,
                         "the spool to be kept again")

            # The rest, to its end.
            sock, status, hd, body = open_download(
                s, pid, headers=[("Range", "bytes=%d-" % (len(first) + len(second))),
                                 ("If-Range", etag)])
            assert status == 206, (status, hd)
            rest = read_n(sock, body, length)
            sock.close()
            core = first + second + rest
            assert len(core) == length, (len(core), length)
            assert core[:4] == b"\x7fELF"
            assert_pages(core, n)
            # No dump was taken for the resumes: the process was not stopped.
            assert s.stderr().count("stopped_us=") == dumps, s.stderr()[-800:]
            h.wait_until(lambda: not spool_fds(s.pd.pid, spool.path), 10,
                         "the spool sent whole to be closed")
            h.wait_until(lambda: used_bytes(spool.path) <= baseline, 10, "its space back")

            # Gone: the same If-Range is a new dump, whole.
            sock, status, hd, body = open_download(
                s, pid, headers=[("Range", "bytes=%d-" % len(first)), ("If-Range", etag)])
            assert status == 200 and hd["etag"] != etag, (status, hd)
            again = read_n(sock, body, int(hd["content-length"]))
            sock.close()
            assert len(again) == int(hd["content-length"])
            assert_pages(again, n)
    h.kill_tree(p)


def test_resume_of_the_same_spool_whole():
    """Proves: the pieces of a broken-off download are the bytes of the spool
    itself: fetched whole with Range bytes=0- and its If-Range, the spool gives
    exactly the prefix the first request got."""
    p, pid, n = pages_target(16)
    with h.Stack(config_lines=["resume_timeout = 600"]) as s:
        length, etag, first = break_off(s, pid, 3 << 20)
        sock, status, hd, body = open_download(
            s, pid, headers=[("Range", "bytes=0-"), ("If-Range", etag)])
        assert status == 206 and hd["content-range"] == "bytes 0-%d/%d" % (length - 1, length)
        whole = read_n(sock, body, length)
        sock.close()
        assert len(whole) == length and whole[:len(first)] == first
        assert_pages(whole, n)
    h.kill_tree(p)


def test_a_kept_spool_answers_only_its_own_dump():
    """Proves: the ETag of a full dump's kept spool does not resume another
    dump type of the process (a new mini dump, 200 with its own ETag), and
    the full dump's spool is still there for its own resume (206)."""
    p, pid, n = pages_target(16)
    with h.Stack(config_lines=["resume_timeout = 600"]) as s:
        length, etag, first = break_off(s, pid, 3 << 20)
        sock, status, hd, body = open_download(
            s, pid, query="dumpType=Mini", headers=[("Range", "bytes=%d-" % len(first)),
                                                    ("If-Range", etag)])
        assert status == 200 and hd["etag"] != etag, (status, hd)
        mini = read_n(sock, body, int(hd["content-length"]))
        sock.close()
        assert mini[:4] == b"\x7fELF" and len(mini) < length
        sock, status, hd, body = open_download(
            s, pid, headers=[("Range", "bytes=%d-" % len(first)), ("If-Range", etag)])
        assert status == 206, (status, hd)
        rest = read_n(sock, body, length - len(first))
        sock.close()
        assert_pages(first + rest, n)
    h.kill_tree(p)


def test_client_gone_mid_download_leaves_no_spool_and_no_busy_worker():
    """Proves: with resume_timeout = 0 a client that goes away mid-download
    leaves no spool; with resume_timeout = 1 the spool is kept and then
    closed by itself; either way no helper is left, the slot is free
    (max_dumps 1: the next dump is taken), and with 2 threads the
    responder still answers."""
    p, pid, n = pages_target(32)
    for keep in (0, 1):
        with Tmpfs("256m") as spool:
            lines = ["spool_dir = " + spool.path, "spool_memory_max = 0",
                     "resume_timeout = %d" % keep, "max_dumps = 1"]
            with h.Stack(threads=2, config_lines=lines) as s:
                baseline = used_bytes(spool.path)
                sock, status, hd, body = open_download(s, pid)
                assert status == 200, (status, hd)
                read_n(sock, body, 2 << 20)
                sock.close()
                h.wait_until(lambda: log_lines(s, pid), 30, "the download's log line")
                line = log_lines(s, pid)[-1]
                assert "client_gone" in line, line
                if keep:
                    assert "spool=kept" in line, line
                else:
                    assert "spool=kept" not in line, line
                    assert not spool_fds(s.pd.pid, spool.path), spool_fds(s.pd.pid, spool.path)
                h.wait_until(lambda: not spool_fds(s.pd.pid, spool.path), 30,
                             "the spool to be closed")
                h.wait_until(lambda: used_bytes(spool.path) <= baseline, 10, "its space back")
                assert not helper_children(s.pd.pid, "dump-helper")
                assert s.get("/api/processes").status == 200
                r = s.get(dump_url(pid), timeout=60)
                assert r.status == 200 and r.body[:4] == b"\x7fELF", r
    h.kill_tree(p)


def test_others_are_answered_during_a_download():
    """Proves: while a download is under way (its client not reading, so the
    responder's worker waits on the socket), the list, the detail and a
    mini dump of another process are answered; then the download ends
    whole."""
    p, pid, n = pages_target(64)
    with h.Stack(threads=3, config_lines=["max_dumps = 2"]) as s:
        sock, status, hd, body = open_download(s, pid)
        assert status == 200, (status, hd)
        length = int(hd["content-length"])
        got = read_n(sock, body, 1 << 20)
        assert len(got) < length
        assert s.get("/api/processes").status == 200
        assert s.json("/api/processes/%d" % pid)["id"] == pid
        t = h.target()
        r = s.get(dump_url(t.pid), timeout=60)
        assert r.status == 200 and r.body[:4] == b"\x7fELF", r
        # The download is still open, and ends whole.
        assert not log_lines(s, pid), log_lines(s, pid)
        whole = read_n(sock, got, length)
        sock.close()
        assert len(whole) == length
        assert_pages(whole, n)
    h.kill_tree(p)


if __name__ == "__main__":
    h.main(globals())
