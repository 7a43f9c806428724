#!/usr/bin/env python3
"""The dump store (docs/STORE.md) through nginx and the CLI: store=true on
the live dump routes, GET/DELETE /api/dumps, downloads judged by bytes,
eu-readelf and gdb, Range, the quotas (count, bytes, age) evicting oldest
first, refusal of what cannot fit with nothing partial listed, the sweep
of a dead writer's .new-* (a SIGKILLed writer, a SIGKILLed responder
mid-dump), bad ids, auth and the browser's Dumps page."""
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import dumputil as du  # noqa: E402

ID_RE = re.compile(r"^\d{8}T\d{6}Z-\d+-[0-9a-f]{4}$")


def store_stack(store, *lines, **kw):
    return h.Stack(config_lines=["store_dir = " + store] + list(lines), **kw)


def new_store():
    """A store directory (not yet made: the responder makes it) in a
    temporary directory; returns (tmpdir, store)."""
    d = tempfile.mkdtemp(prefix="pd-e2e-store-")
    return d, os.path.join(d, "store")


def ls(store):
    """Every name in the store directory, hidden ones too."""
    return sorted(os.listdir(store)) if os.path.isdir(store) else []


def store_dump(s, pid, query=""):
    """A live dump with store=true: (response, stored id)."""
    q = "store=true" + ("&" + query if query else "")
    r = s.get(du.dump_url(pid, q), timeout=120)
    assert r.status == 200, r
    sid = r.header("X-Dump-Store-Id")
    assert sid and ID_RE.match(sid), r.headers
    return r, sid


def listed(s):
    return s.json("/api/dumps")


def ids(s):
    return [e["id"] for e in listed(s)]


def cli(s, *args):
    r = subprocess.run([h.PROCDIAG, "dumps", "--config", s.conf] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def test_without_store_dir_the_routes_say_so():
    """Proves: with no store_dir, /api/dumps and a stored id are 404
    problem+json saying no store is configured, and store=true is a 400
    naming store (nothing dumped)."""
    s = h.shared()
    doc = h.assert_problem(s.get("/api/dumps"), 404)
    assert "store_dir" in doc["detail"], doc
    doc = h.assert_problem(s.get("/api/dumps/20261205T071500Z-1-ab12"), 404)
    assert "store_dir" in doc["detail"], doc
    h.assert_problem(s.delete("/api/dumps/20261205T071500Z-1-ab12"), 404)
    t = h.target("threads", 1)
    h.assert_problem(s.get(du.dump_url(t.pid, "store=true")), 400, "store")
    h.assert_problem(s.get(du.dump_url(t.pid, "store=maybe")), 400, "store")
    assert "dumps" not in s.json("/")["links"]


def test_stored_dump_lists_downloads_and_deletes():
    """Proves: store=true streams the dump and keeps the same bytes in the
    store (X-Dump-Store-Id); GET /api/dumps lists it with its facts; its
    download is byte-identical to the live answer and to the file in the
    store, eu-readelf and gdb open it with every thread; Range, If-Range
    and a 416 work; the CLI lists and gets it; DELETE removes it (204),
    then 404, and nothing is left in the directory."""
    d, store = new_store()
    t = h.target("threads", 3)
    try:
        with store_stack(store) as s:
            r, sid = store_dump(s, t.pid)
            du.assert_core_response(r, "pdtarget")
            du.assert_resumed(t.pid)
            assert "dumps" in s.json("/")["links"]
            entries = listed(s)
            assert [e["id"] for e in entries] == [sid], entries
            e = entries[0]
            assert e["href"] == s.base + "/api/dumps/" + sid, e
            assert e["kind"] == "dump" and e["trigger"] == "manual" and e["rule"] is None, e
            assert e["process"] == "pdtarget" and e["pid"] == t.pid, e
            assert e["dumpType"] == "Mini" or e["dumpTypeBits"] == "0x0", e
            assert e["format"] == "raw" and e["method"], e
            assert e["figures"]["threads"] == 4, e
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", e["created"]), e
            assert e["size"] == len(r.body), (e["size"], len(r.body))
            assert e["file"] == "core.%d" % t.pid, e
            assert [f["name"] for f in e["files"]] == [e["file"]], e
            assert 0 < e["bytes"] <= os.stat(os.path.join(store, sid, e["file"])).st_blocks * 512
            # Only the entry: no .new-*, no scratch.
            assert ls(store) == [sid], ls(store)
            assert sorted(os.listdir(os.path.join(store, sid))) == [e["file"], "meta.json"]

            g = s.get("/api/dumps/" + sid, timeout=120)
            assert g.status == 200, g
            assert g.body == r.body
            with open(os.path.join(store, sid, e["file"]), "rb") as f:
                assert f.read() == r.body
            assert g.content_type == "application/octet-stream", g
            assert int(g.header("Content-Length")) == len(r.body)
            assert g.header("X-Dump-Store-Id") == sid
            assert g.header("X-Dump-Threads") == "4", g.headers
            assert g.header("X-Dump-Type") == "0x0", g.headers
            assert g.header("Accept-Ranges") == "bytes", g.headers
            assert sid in g.header("Content-Disposition"), g.headers
            etag = g.header("ETag")
            assert etag and etag.startswith('"') and etag.endswith('"'), g.headers
            core = du.save(g.body, d)
            assert du.readelf_type(core).startswith("CORE")
            n, out = du.gdb_threads(h.PDTARGET, core)
            assert n == 4, out[-2000:]

            p = s.get("/api/dumps/" + sid, headers={"Range": "bytes=100-4195"})
            assert p.status == 206, p
            assert p.body == r.body[100:4196]
            assert p.header("Content-Range") == "bytes 100-4195/%d" % len(r.body), p.headers
            p = s.get("/api/dumps/" + sid, headers={"Range": "bytes=-10", "If-Range": etag})
            assert p.status == 206 and p.body == r.body[-10:], p
            p = s.get("/api/dumps/" + sid, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
            assert p.status == 200 and p.body == r.body, p
            p = s.get("/api/dumps/" + sid, headers={"Range": "bytes=%d-" % len(r.body)})
            assert p.status == 416, p
            hd = s.head("/api/dumps/" + sid)
            assert hd.status == 200 and int(hd.header("Content-Length")) == len(r.body), hd

            rc, out, err = cli(s, "list")
            assert rc == 0 and sid.encode() in out and b"pdtarget(%d)" % t.pid in out, (out, err)
            rc, out, err = cli(s, "--json", "list")
            assert rc == 0 and json.loads(out)[0]["id"] == sid, (out, err)
            got = os.path.join(d, "got.core")
            rc, out, err = cli(s, "get", sid, "-o", got)
            assert rc == 0, err
            with open(got, "rb") as f:
                assert f.read() == r.body
            rc, out, err = cli(s, "get", sid, "-o", "-")
            assert rc == 0 and out == r.body, (rc, len(out), err)
            rc, out, err = cli(s, "get", sid, "--file", "stacks.txt", "-o", got + "2")
            assert rc == 3 and not os.path.exists(got + "2"), (rc, err)
            rc, out, err = cli(s, "get", "../etc")
            assert rc == 2, (rc, err)

            dl = s.delete("/api/dumps/" + sid)
            assert dl.status == 204, dl
            assert listed(s) == []
            h.assert_problem(s.get("/api/dumps/" + sid), 404, "id")
            h.assert_problem(s.delete("/api/dumps/" + sid), 404, "id")
            assert ls(store) == [], ls(store)
            rc, out, err = cli(s, "rm", sid)
            assert rc == 3, (rc, err)
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_other_formats_and_the_monitor_route():
    """Proves: a zip and a zstd dump are stored as their final file only
    (the core they were made of is scratch, never linked), downloaded as
    the live answer was; dotnet-monitor's /dump takes store=true too."""
    d, store = new_store()
    t = h.target("threads", 1)
    try:
        with store_stack(store) as s:
            rz, zid = store_dump(s, t.pid, "format=zip")
            rs, sid = store_dump(s, t.pid, "compress=zstd")
            rm = s.get("/dump?pid=%d&type=Mini&store=true" % t.pid, timeout=120)
            assert rm.status == 200, rm
            mid = rm.header("X-Dump-Store-Id")
            assert mid and ID_RE.match(mid), rm.headers
            by = {e["id"]: e for e in listed(s)}
            assert list(by) == [mid, sid, zid], list(by)  # newest first
            assert [f["name"] for f in by[zid]["files"]] == ["core.%d.zip" % t.pid]
            assert [f["name"] for f in by[sid]["files"]] == ["core.%d.zst" % t.pid]
            assert by[zid]["format"] == "zip" and by[sid]["format"] == "zstd"
            g = s.get("/api/dumps/" + zid, timeout=120)
            assert g.status == 200 and g.body == rz.body, g
            assert g.content_type == "application/zip", g
            g = s.get("/api/dumps/" + sid, timeout=120)
            assert g.status == 200 and g.body == rs.body, g
            assert g.content_type == "application/zstd", g
            g = s.get("/api/dumps/" + mid, timeout=120)
            assert g.status == 200 and g.body == rm.body, g
            for i in (zid, sid, mid):
                assert sorted(os.listdir(os.path.join(store, i)))[-1] == "meta.json"
                assert len(os.listdir(os.path.join(store, i))) == 2
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_cancelled_dump_leaves_nothing():
    """Proves: a store=true dump whose client goes away while it is being
    compressed is not kept: no entry, no .new-*, no file of the store left
    open in the responder."""
    d, store = new_store()
    p, pid = du.heap_target(384)  # random bytes: zstd takes a while over them
    try:
        with store_stack(store) as s:
            phase = du.gone_after_the_copy(s, pid, "store=true&dumpType=Full&compress=zstd")
            assert phase == "compress", phase
            du.assert_resumed(pid)
            h.wait_until(lambda: ls(store) == [], 10, "the entry's .new-* to go")
            fds = os.listdir("/proc/%d/fd" % s.pd.pid)
            held = [os.readlink("/proc/%d/fd/%s" % (s.pd.pid, f)) for f in fds
                    if os.path.exists("/proc/%d/fd/%s" % (s.pd.pid, f))]
            assert not [x for x in held if x.startswith(store + "/")], held
            assert listed(s) == []
    finally:
        h.kill_tree(p)
        shutil.rmtree(d, ignore_errors=True)


def test_bad_ids_and_files_are_400():
    """Proves: ids are validated strictly (400 naming id) on GET and
    DELETE, a bad file name is a 400 naming file, an unknown file of an
    existing entry a 404 naming file; nothing is removed."""
    d, store = new_store()
    t = h.target("threads", 1)
    try:
        with store_stack(store) as s:
            _, sid = store_dump(s, t.pid)
            for bad in ("nope", "20261205T071500Z-1-AB12", "20261205T071500Z-1-ab12x",
                        "...", ".new-" + sid, "meta.json",
                        # the random part in upper case (it may be all digits)
                        sid[:-4] + "ABCD"):
                h.assert_problem(s.get("/api/dumps/" + bad), 400, "id")
                h.assert_problem(s.delete("/api/dumps/" + bad), 400, "id")
            h.assert_problem(s.get("/api/dumps/%s?file=..%%2fx" % sid), 400, "file")
            h.assert_problem(s.get("/api/dumps/%s?file=meta.json" % sid), 400, "file")
            h.assert_problem(s.get("/api/dumps/%s?file=stacks.txt" % sid), 404, "file")
            h.assert_problem(s.get("/api/dumps/20261205T071500Z-1-ab12"), 404, "id")
            assert ids(s) == [sid]
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_auth_is_required():
    """Proves: the store's routes want the key like every other: 401
    without it, and the entry is still there after an unauthenticated
    DELETE."""
    d, store = new_store()
    t = h.target("threads", 1)
    try:
        with store_stack(store) as s:
            _, sid = store_dump(s, t.pid)
            for method, path in (("GET", "/api/dumps"), ("GET", "/api/dumps/" + sid),
                                 ("DELETE", "/api/dumps/" + sid),
                                 ("POST", "/api/dumps/%s/delete" % sid)):
                r = s.request(method, path, auth=False)
                assert r.status == 401, r
                r = s.request(method, path, auth="Bearer " + "0" * 43)
                assert r.status == 401, r
            assert ids(s) == [sid]
            assert os.path.isdir(os.path.join(store, sid))
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_count_quota_evicts_oldest_first():
    """Proves: with store_max_count = 2, a third dump evicts the first one
    (oldest first), the two newest stay, and the directory holds exactly
    them."""
    d, store = new_store()
    t = h.target("threads", 1)
    try:
        with store_stack(store, "store_max_count = 2") as s:
            made = [store_dump(s, t.pid)[1] for _ in range(3)]
            assert ids(s) == [made[2], made[1]], (ids(s), made)
            h.assert_problem(s.get("/api/dumps/" + made[0]), 404, "id")
            assert ls(store) == sorted(made[1:]), ls(store)
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_bytes_quota_evicts_oldest_and_refuses_what_cannot_fit():
    """Proves: store_max_bytes counts allocated blocks; with room for two
    mini dumps a third evicts the oldest; a full dump larger than the
    whole bound is refused with a 507 naming store, evicts nothing, and
    leaves nothing partial (no entry, no .new-*)."""
    d, store = new_store()
    t = h.target("threads", 1)
    big, big_pid = du.heap_target(32)
    try:
        with store_stack(store, "store_max_count = 0") as s:
            _, first = store_dump(s, t.pid)
            one = listed(s)[0]["bytes"]
            s.delete("/api/dumps/" + first)
        # Room for two of them, not three (mini dumps of one target vary
        # a little: a quarter of one in slack).
        bound = 2 * one + one // 4
        with store_stack(store, "store_max_count = 0", "store_max_bytes = %d" % bound) as s:
            made = [store_dump(s, t.pid)[1] for _ in range(3)]
            assert ids(s) == [made[2], made[1]], (ids(s), made)
            assert sum(e["bytes"] for e in listed(s)) <= bound
            r = s.get(du.dump_url(big_pid, "store=true&dumpType=Full"), timeout=120)
            doc = h.assert_problem(r, 507, "store")
            assert "store_max_bytes" in doc["detail"], doc
            assert r.header("X-Dump-Store-Id") is None
            du.assert_resumed(big_pid)
            assert ids(s) == [made[2], made[1]], ids(s)
            assert ls(store) == sorted(made[1:]), ls(store)
    finally:
        t.kill()
        big.kill()
        big.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_age_quota():
    """Proves: an entry older than store_max_age is removed (never listed)
    when the list is read, the younger one stays. The age is the entry's
    recorded creation time, made two hours old here rather than waited
    for."""
    d, store = new_store()
    t = h.target("threads", 1)
    try:
        with store_stack(store, "store_max_age = 1h") as s:
            _, old = store_dump(s, t.pid)
            _, young = store_dump(s, t.pid)
            meta = os.path.join(store, old, "meta.json")
            with open(meta) as f:
                m = json.load(f)
            m["created_ns"] -= 2 * 3600 * 10**9
            with open(meta, "w") as f:
                json.dump(m, f)
            assert ids(s) == [young], ids(s)
            assert ls(store) == [young], ls(store)
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


# A writer of the store as lib/store.c is one: its .new-<id> directory,
# flocked, a file half written; it prints "ready" and waits to be killed.
WRITER = ("import fcntl, os, sys, time\n"
          "d = os.path.join(sys.argv[1], '.new-' + sys.argv[2])\n"
          "os.makedirs(d)\n"
          "fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)\n"
          "fcntl.flock(fd, fcntl.LOCK_EX)\n"
          "with open(os.path.join(d, '.tmp-core'), 'wb') as f:\n"
          "    f.write(b'half a core')\n"
          "print('ready', flush=True)\n"
          "time.sleep(600)\n")


def test_dead_writers_new_dir_is_swept_at_start():
    """Proves: a .new-* left by a SIGKILLed writer is removed when the
    responder opens the store (no orphan), while one a live writer holds
    is left alone; neither is ever listed."""
    d, store = new_store()
    os.makedirs(store)
    dead = h.spawn([sys.executable, "-c", WRITER, store, "20261205T071500Z-1-dead"])
    live = h.spawn([sys.executable, "-c", WRITER, store, "20261205T071500Z-2-0a0a"])
    try:
        assert h.read_line(dead).strip() == "ready"
        assert h.read_line(live).strip() == "ready"
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        assert ls(store) == [".new-20261205T071500Z-1-dead", ".new-20261205T071500Z-2-0a0a"]
        with store_stack(store) as s:
            assert ls(store) == [".new-20261205T071500Z-2-0a0a"], ls(store)
            assert listed(s) == []
        live.send_signal(signal.SIGKILL)
        live.wait()
        with store_stack(store) as s:
            assert ls(store) == [], ls(store)
    finally:
        for p in (dead, live):
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_responder_killed_mid_dump_leaves_no_orphan():
    """Proves: a responder SIGKILLed while a store=true dump is being
    written (its entry's .new-* there, the target frozen) leaves no orphan:
    the next responder on the store removes the .new-*, lists nothing, and
    the directory is empty."""
    d, store = new_store()
    fifo = os.path.join(d, "frozen.fifo")
    os.mkfifo(fifo)
    t = h.target("threads", 1)
    s = du.started({"PD_TEST_FROZEN_WAIT": fifo}, config_lines=["store_dir = " + store]).stack
    res = {}
    th = threading.Thread(target=lambda: res.update(
        r=s.get(du.dump_url(t.pid, "store=true"), timeout=120)), daemon=True)
    wfd = None
    try:
        th.start()
        wfd = du.hold_frozen(fifo, th, res)
        news = [n for n in ls(store) if n.startswith(".new-")]
        assert len(news) == 1, ls(store)
        s.terminated = True
        os.kill(s.pd.pid, signal.SIGKILL)
        s.pd.wait()
        os.close(wfd)
        wfd = None
        th.join(60)
        du.assert_resumed(t.pid, timeout=10)
        with store_stack(store) as s2:
            assert ls(store) == [], ls(store)
            assert listed(s2) == []
    finally:
        if wfd is not None:
            os.close(wfd)
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
        du.reap_our_zombies({s.pd.pid})
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_dumps_page():
    """Proves: a browser gets the Dumps page at /api/dumps: a row per entry
    with its time, process, trigger, size in human units (exact bytes on
    hover), a download link and a delete button whose script runs under
    the page's CSP nonce; the button's POST removes the entry and sends
    the browser back to the list (303); the index links the page."""
    d, store = new_store()
    t = h.target("threads", 1)
    html = {"Accept": "text/html,application/xhtml+xml"}
    try:
        with store_stack(store) as s:
            _, sid = store_dump(s, t.pid)
            e = listed(s)[0]
            r = s.get("/api/dumps", headers=html)
            assert r.status == 200 and r.content_type == "text/html", r
            page = r.body.decode()
            assert 'href="%s/api/dumps/%s"' % (s.base, sid) in page, page
            form = re.search(r'<form class="del" method="(\w+)" action="([^"]+)"', page)
            assert form and form.group(2) == "%s/api/dumps/%s/delete" % (s.base, sid), page
            assert 'title="%d bytes' % e["size"] in page, page
            assert re.search(r">\d+(\.\d)? (KiB|MiB|GiB)</td>", page), page
            assert e["created"] in page and "pdtarget" in page and "manual" in page
            csp = r.header("Content-Security-Policy")
            nonce = re.search(r"script-src 'nonce-([0-9a-f]+)'", csp).group(1)
            assert '<script nonce="%s">' % nonce in page and "form.del" in page
            idx = s.get("/", headers=html).body.decode()
            assert "/api/dumps" in idx, idx
            # The button's request, as the page's form makes it.
            p = s.request(form.group(1).upper(), form.group(2)[len(s.base):],
                          headers=dict(html, **{"Origin": s.base}), body=b"")
            assert p.status == 303, p
            assert p.header("Location") == s.base + "/api/dumps", p.headers
            assert listed(s) == []
            r = s.get("/api/dumps", headers=html)
            assert "No stored dumps" in r.body.decode()
            # Another site's page cannot post it.
            _, sid = store_dump(s, t.pid)
            p = s.post("/api/dumps/%s/delete" % sid,
                       headers=dict(html, **{"Origin": "http://evil.example"}))
            assert p.status == 403, p
            assert ids(s) == [sid]
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
