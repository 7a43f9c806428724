#!/usr/bin/env python3
"""Operations and the filesystem egress provider (docs/OPERATIONS-API.md)
through nginx: dotnet-monitor's /dump?egressProvider= and Kudu's
?egressProvider= / ?async=true answer 202 + Location, the operation runs
to Succeeded with the dump whole in the egress directory (a core gdb and
eu-readelf load; a zstd that decompresses to one), GET /operations with
its pid and tags filters, cancel leaving nothing, a SIGKILLed responder's
Running operation Failed after the restart, a client gone after the 202,
async into the store, 429 beyond max_dumps, bad input, and no secret in
any answer or log line; stacks as operations (dotnet-monitor's /stacks and
Kudu's stacks route, to an egress or into the store), store entries copied
to an egress (POST /api/dumps/{id}/egress and the CLI's push)."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import dumputil as du  # noqa: E402

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SAS = "sv=2099-01-01&ss=b&srt=co&sp=rwdlac&sig=PdOpsSecretSasTokenZZ9"
RULETARGET = os.path.join(h.BUILDDIR, "tests", "targets", "ruletarget")
KEY = "UGRPcHNTZWNyZXRBY2NvdW50S2V5Wlo5UGRPcHNTZWNyZXQ="


class Egress:
    """A temp dir with an egress directory and a config file of [egress]
    sections: share (filesystem), sas and key (azureBlobStorage on a port
    nothing listens on, with a SAS token / an account key from a file)."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="pd-e2e-ops-")
        self.dir = os.path.join(self.tmp, "egress")
        self.store = os.path.join(self.tmp, "store")
        keyfile = os.path.join(self.tmp, "account.key")
        with open(keyfile, "w") as f:
            f.write(KEY + "\n")
        self.conf = ("[egress share]\ntype = filesystem\ndirectory = %s\n"
                     "[egress sas]\ntype = azureBlobStorage\n"
                     "account_url = http://127.0.0.1:9/devstoreaccount1\ncontainer = dumps\n"
                     "sas_token = %s\n"
                     "[egress key]\ntype = azureBlobStorage\n"
                     "account_url = http://127.0.0.1:9/devstoreaccount1\ncontainer = dumps\n"
                     "account_key_file = %s\n" % (self.dir, SAS, keyfile))

    def stack(self, *lines, store=False, **kw):
        cl = list(lines) + (["store_dir = " + self.store] if store else [])
        return h.Stack(config_lines=cl, config_files=[self.conf], **kw)

    def started(self, env, *lines, store=False, **kw):
        # spools on disk: a memory spool the core outgrows is dumped twice,
        # and the test build would wait on the FIFO twice
        cl = ["spool_memory_max = 0"] + list(lines) + (["store_dir = " + self.store] if store else [])
        return du.started(env, config_lines=cl, config_files=[self.conf], **kw)

    def files(self):
        """Every file under the egress directory, hidden ones too."""
        out = []
        for root, _, names in os.walk(self.dir):
            out.extend(os.path.join(root, n) for n in names)
        return sorted(out)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def start(s, path):
    """A request that must start an operation: (id, Location, body)."""
    r = s.get(path, timeout=60)
    assert r.status == 202, r
    loc = r.header("Location")
    m = re.match(r"^%s/operations/(.+)$" % re.escape(s.base), loc or "")
    assert m and UUID_RE.match(m.group(1)), (loc, r.headers)
    doc = r.json()
    assert doc["operationId"] == m.group(1) and doc["status"] == "Running", doc
    return m.group(1), loc, doc


def status(s, oid):
    r = s.get("/operations/" + oid)
    assert r.status in (200, 201), r
    assert r.content_type == "application/json", r
    doc = r.json()
    # dotnet-monitor answers 201 Created once Succeeded, 200 otherwise
    assert (r.status == 201) == (doc["status"] == "Succeeded"), (r.status, doc)
    return doc


def wait_end(s, oid, timeout=120):
    return h.wait_until(lambda: (lambda d: d if d["status"] != "Running" else None)(
        status(s, oid)), timeout, "operation %s to end" % oid)


def rule(st, name):
    """The rule called name of GET /api/rules."""
    return [r for r in st.json("/api/rules")["rules"] if r["name"] == name][0]


def wait_frozen(fifo, timeout=30):
    """The write end of PD_TEST_FROZEN_WAIT's FIFO once the dump helper
    waits on it (its target frozen)."""
    def opened():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None
    return h.wait_until(opened, timeout, "the helper to freeze the target")


def frozen_setup():
    """An Egress, a FIFO for PD_TEST_FROZEN_WAIT in it, a target."""
    e = Egress()
    fifo = os.path.join(e.tmp, "frozen.fifo")
    os.mkfifo(fifo)
    return e, fifo, h.target("threads", 1)


def test_egress_dump_succeeds_whole_in_the_directory():
    """Proves: /dump?pid=&egressProvider=share answers 202 with Location
    {base}/operations/{uuid} and the Running operation; polling it ends
    Succeeded (201) with resourceLocation the file under
    {directory}/{host}/{site}/, a core of that pid eu-readelf and gdb load,
    its bytes and the dump's method and stop time in the record; Kudu's
    route with compress=zstd lands a .zst that zstd decompresses to a core;
    nothing else (no temp) is in the directory."""
    e = Egress()
    t = h.target("threads", 2)
    try:
        with e.stack() as s:
            oid, loc, doc = start(s, "/dump?pid=%d&egressProvider=share&tags=a,b" % t.pid)
            assert doc["egressProviderName"] == "share" and doc["process"]["pid"] == t.pid, doc
            assert sorted(doc["tags"]) == ["a", "b"], doc
            doc = wait_end(s, oid)
            assert doc["status"] == "Succeeded", doc
            path = doc["resourceLocation"]
            host = socket.gethostname()
            assert path.startswith(os.path.join(e.dir, host, "default") + "/core.%d." % t.pid), doc
            assert e.files() == [path], e.files()
            assert doc["dump"]["bytes"] == os.path.getsize(path) > 0, doc
            assert doc["dump"]["method"] and doc["dump"]["stopped_us"] > 0, doc
            assert du.readelf_type(path).startswith("CORE"), path
            du.gdb_core(h.PDTARGET, path, "info threads", pid=t.pid)
            # Kudu's route, zstd
            oid2, _, _ = start(s, du.dump_url(t.pid, "egressProvider=share&compress=zstd"))
            doc2 = wait_end(s, oid2)
            assert doc2["status"] == "Succeeded" and doc2["resourceLocation"].endswith(".zst"), doc2
            core = os.path.join(e.tmp, "unzst")
            subprocess.run(["zstd", "-q", "-d", doc2["resourceLocation"], "-o", core], check=True,
                           timeout=120)
            assert du.readelf_type(core).startswith("CORE")
            assert e.files() == sorted([path, doc2["resourceLocation"]]), e.files()
    finally:
        t.kill()
        e.close()


def test_list_with_pid_and_tags_filters():
    """Proves: GET /operations lists OperationSummary records (operationId,
    createdDateTime, status, process, egressProviderName, isStoppable,
    tags; no resourceLocation), ?pid= keeps that process's, ?tags= those
    having every tag named; a bad pid is a 400 naming pid."""
    e = Egress()
    t1, t2 = h.target("threads", 1), h.target("threads", 1)
    try:
        with e.stack("max_dumps = 2", threads=4) as s:
            a, _, _ = start(s, "/dump?pid=%d&egressProvider=share&tags=red,x" % t1.pid)
            wait_end(s, a)
            b, _, _ = start(s, du.dump_url(t2.pid, "egressProvider=share&tags=blue,x"))
            wait_end(s, b)
            every = s.json("/operations")
            assert [o["operationId"] for o in every] == [a, b], every
            assert set(every[0]) == {"operationId", "createdDateTime", "status", "process",
                                     "egressProviderName", "isStoppable", "tags"}, every[0]
            assert [o["operationId"] for o in s.json("/operations?pid=%d" % t2.pid)] == [b]
            assert [o["operationId"] for o in s.json("/operations?tags=red")] == [a]
            assert [o["operationId"] for o in s.json("/operations?tags=x")] == [a, b]
            assert s.json("/operations?tags=red,blue") == []
            h.assert_problem(s.get("/operations?pid=abc"), 400, "pid")
    finally:
        t1.kill()
        t2.kill()
        e.close()


def test_bad_input():
    """Proves: an unknown egressProvider is a 400 naming egressProvider
    (and no operation starts); a malformed operationId is a 400 naming
    operationId; an unknown one a 404 problem for GET and DELETE, and
    stop=maybe a 400 naming stop; async=
    maybe is a 400 naming async, async=true without a store a 400 too;
    store=true with an egressProvider a 400 naming store; without the key
    the routes are 401. The stacks routes (dotnet-monitor's and Kudu's)
    answer the same for egressProvider and async, a 400 naming format for
    a format of neither, and a 404 for an unknown pid; nothing starts and
    no file is written."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack() as s:
            kudu_stacks = "/api/processes/%d/stacks?" % t.pid
            for path in ("/dump?pid=%d&" % t.pid, du.dump_url(t.pid) + "?",
                         "/stacks?pid=%d&" % t.pid, kudu_stacks):
                doc = h.assert_problem(s.get(path + "egressProvider=nope"), 400,
                                       "egressProvider")
                assert "nope" in doc["detail"], doc
            # stacks: a format of neither route, async
            for path in ("/stacks?pid=%d&" % t.pid, kudu_stacks):
                h.assert_problem(s.get(path + "egressProvider=share&format=xml"), 400, "format")
            h.assert_problem(s.get(kudu_stacks + "async=maybe"), 400, "async")
            h.assert_problem(s.get(kudu_stacks + "async=true"), 400, "async")
            h.assert_problem(s.get("/api/processes/%d/stacks?egressProvider=share"
                                   % h.unused_pid()), 404)
            assert s.json("/operations") == []
            h.assert_problem(s.get("/operations/not-a-guid"), 400, "operationId")
            h.assert_problem(s.delete("/operations/not-a-guid"), 400, "operationId")
            unknown = "0b0e6c1e-5c1a-4d2b-9e3f-0123456789ab"
            h.assert_problem(s.get("/operations/" + unknown), 404)
            h.assert_problem(s.delete("/operations/" + unknown), 404)
            h.assert_problem(s.delete("/operations/%s?stop=maybe" % unknown), 400, "stop")
            h.assert_problem(s.get(du.dump_url(t.pid, "async=maybe")), 400, "async")
            h.assert_problem(s.get(du.dump_url(t.pid, "async=true")), 400, "async")
            h.assert_problem(s.get(du.dump_url(t.pid, "egressProvider=share&store=true")), 400,
                             "store")
            assert s.get("/operations", auth=False).status == 401
            assert s.get("/operations/" + unknown, auth=False).status == 401
            assert e.files() == []
    finally:
        t.kill()
        e.close()


def cancel_leaves_nothing(s, e, oid, pid):
    """DELETE of Running operation oid answers 200 with it Cancelled, the
    target pid runs again, the egress directory holds nothing."""
    r = s.delete("/operations/" + oid)
    assert r.status == 200, r
    assert r.json()["status"] == "Cancelled", r.json()
    assert status(s, oid)["status"] == "Cancelled"
    du.assert_resumed(pid, timeout=10)
    assert e.files() == [], e.files()


def test_cancel_leaves_nothing():
    """Proves: DELETE /operations/{id} on a Running operation (its target
    held frozen by the test build) answers 200 once the job stopped, the
    record says Cancelled, the target runs again, and the egress directory
    holds nothing (no file, no temp); a second DELETE is a 400 (not
    running)."""
    e, fifo, t = frozen_setup()
    wfd = None
    try:
        with e.started({"PD_TEST_FROZEN_WAIT": fifo}) as s:
            oid, _, _ = start(s, "/dump?pid=%d&egressProvider=share" % t.pid)
            wfd = wait_frozen(fifo)
            cancel_leaves_nothing(s, e, oid, t.pid)
            h.assert_problem(s.delete("/operations/" + oid), 400, "operationId")
    finally:
        if wfd is not None:
            os.close(wfd)
        t.kill()
        e.close()


def test_restart_shows_the_running_operation_failed():
    """Proves: a responder SIGKILLed while an operation runs leaves its
    record in store_dir/.operations.json; the next responder on that store
    lists it Failed, its error saying it was interrupted by a restart, and
    the egress directory has nothing of it."""
    e, fifo, t = frozen_setup()
    wfd = None
    s = e.started({"PD_TEST_FROZEN_WAIT": fifo}, store=True).stack
    try:
        oid, _, _ = start(s, "/dump?pid=%d&egressProvider=share" % t.pid)
        wfd = wait_frozen(fifo)
        s.terminated = True
        os.kill(s.pd.pid, signal.SIGKILL)
        s.pd.wait()
        os.close(wfd)
        wfd = None
        du.assert_resumed(t.pid, timeout=10)
        with e.stack(store=True) as s2:
            doc = status(s2, oid)
            assert doc["status"] == "Failed", doc
            assert "interrupted by a restart" in doc["error"]["message"], doc
            assert doc["error"]["detail"] == doc["error"]["message"], doc
            assert [o["status"] for o in s2.json("/operations")] == ["Failed"]
            assert e.files() == [], e.files()
    finally:
        if wfd is not None:
            os.close(wfd)
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
        du.reap_our_zombies({s.pd.pid})
        t.kill()
        e.close()


def test_client_gone_after_202_still_gets_it_done():
    """Proves: a client that reads the 202's status line and hangs up (the
    dump held frozen meanwhile) does not stop the operation: it ends
    Succeeded with the file in the directory."""
    e, fifo, t = frozen_setup()
    wfd = None
    try:
        with e.started({"PD_TEST_FROZEN_WAIT": fifo}) as s:
            sock = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            sock.sendall(("GET /dump?pid=%d&egressProvider=share HTTP/1.1\r\nHost: x\r\n"
                          "Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
                          % (t.pid, s.key)).encode())
            head = sock.recv(200).decode("latin-1")
            assert head.startswith("HTTP/1.1 202"), head
            sock.close()
            wfd = wait_frozen(fifo)
            os.close(wfd)
            wfd = None
            ops = s.json("/operations")
            assert len(ops) == 1, ops
            doc = wait_end(s, ops[0]["operationId"])
            assert doc["status"] == "Succeeded", doc
            assert e.files() == [doc["resourceLocation"]], e.files()
    finally:
        if wfd is not None:
            os.close(wfd)
        t.kill()
        e.close()


def test_async_lands_in_the_store():
    """Proves: Kudu's ?async=true (no egress) answers 202 + Location; the
    operation ends Succeeded with resourceLocation the store entry's URL
    ({base}/api/dumps/{id}), which /api/dumps lists (trigger manual) and
    whose download is a core."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack(store=True) as s:
            oid, _, doc = start(s, du.dump_url(t.pid, "async=true"))
            assert doc["egressProviderName"] is None, doc
            doc = wait_end(s, oid)
            assert doc["status"] == "Succeeded", doc
            m = re.match(r"^%s/api/dumps/(\S+)$" % re.escape(s.base), doc["resourceLocation"])
            assert m, doc
            entries = s.json("/api/dumps")
            assert [x["id"] for x in entries] == [m.group(1)], entries
            assert entries[0]["trigger"] == "manual" and entries[0]["pid"] == t.pid, entries
            r = s.get("/api/dumps/" + m.group(1), timeout=60)
            assert r.status == 200 and r.body[:4] == b"\x7fELF", r
            assert e.files() == []
    finally:
        t.kill()
        e.close()


def test_429_beyond_max_dumps():
    """Proves: with max_dumps = 1 and an operation holding its slot (its
    target frozen), a second operation, a live dump and a stacks operation
    (both routes) are 429 with Retry-After; once the first ended, the slot
    is free again, and a stacks operation gives it back when it ends."""
    e, fifo, t = frozen_setup()
    wfd = None
    try:
        with e.started({"PD_TEST_FROZEN_WAIT": fifo}, "max_dumps = 1") as s:
            oid, _, _ = start(s, "/dump?pid=%d&egressProvider=share" % t.pid)
            wfd = wait_frozen(fifo)
            for path in ("/dump?pid=%d&egressProvider=share" % t.pid, du.dump_url(t.pid),
                         "/stacks?pid=%d&egressProvider=share" % t.pid,
                         "/api/processes/%d/stacks?egressProvider=share" % t.pid):
                r = s.get(path)
                h.assert_problem(r, 429)
                assert r.header("Retry-After"), r.headers
            os.close(wfd)
            wfd = None
            assert wait_end(s, oid)["status"] == "Succeeded"
            # a stacks operation takes the free slot and gives it back
            sid, _, _ = start(s, "/stacks?pid=%d&egressProvider=share" % t.pid)
            assert wait_end(s, sid)["status"] == "Succeeded"
            oid2, _, _ = start(s, "/dump?pid=%d&egressProvider=share" % t.pid)
            wfd = wait_frozen(fifo)
            os.close(wfd)
            wfd = None
            assert wait_end(s, oid2)["status"] == "Succeeded"
    finally:
        if wfd is not None:
            os.close(wfd)
        t.kill()
        e.close()


def test_no_secret_in_any_answer_or_log():
    """Proves: with a SAS token inline and an account key from a file in
    the config, an operation to each of those providers ends Failed with a
    reason (nothing listens on their port, or the provider is not built
    in), and neither secret appears in any answer (202, status, list,
    the index, /info, /api/rules) nor in the responder's stderr."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack() as s:
            bodies = []
            for name in ("sas", "key"):
                r = s.get("/dump?pid=%d&egressProvider=%s" % (t.pid, name), timeout=60)
                assert r.status == 202, r
                bodies.append(r.body + str(r.headers).encode())
                oid = r.json()["operationId"]
                doc = wait_end(s, oid)
                assert doc["status"] == "Failed" and doc["error"]["message"], doc
                bodies.append(s.get("/operations/" + oid).body)
            for path in ("/operations", "/", "/info", "/api/rules"):
                r = s.get(path)
                bodies.append(r.body + str(r.headers).encode())
            err = s.stderr()
            for secret in (SAS, "PdOpsSecretSasTokenZZ9", KEY):
                for b in bodies:
                    assert secret.encode() not in b, "a secret is in an answer"
                assert secret not in err, "a secret is in the responder's log"
    finally:
        t.kill()
        e.close()


def test_rule_with_egress_uploads_instead_of_storing():
    """Proves: a rule with egress = share sends its dump to the provider
    (a core of the rule's process in {directory}/{host}/default/, gdb
    loads it) and nothing into the store; /api/rules shows the egress and
    a result whose detail names the file; a rule naming an egress that is
    not configured stops the responder at start, naming it."""
    e = Egress()
    t = "rt-%08x" % random.getrandbits(32)
    rules = "[rule up]\ncmdline = %s\ntrigger = timer 1\ndump_type = Mini\negress = share\n" % t
    try:
        st = h.Stack(config_lines=["rules_interval_ms = 200", "store_dir = " + e.store],
                     config_files=[e.conf, rules])
        with st:
            rt = h.spawn([RULETARGET, "0", "idle", t])
            try:
                words = h.read_line(rt).split()
                assert words[0] == "ready", words
                pid = int(words[1])
                r = h.wait_until(lambda: (lambda x: x if x["state"]["status"] == "exhausted"
                                          else None)(rule(st, "up")), 60, "the rule to fire")
                assert r["action"]["egress"] == "share", r
                files = e.files()
                assert len(files) == 1, files
                assert files[0].startswith(os.path.join(e.dir, socket.gethostname(), "default",
                                                        "core.%d." % pid)), files
                assert r["state"]["last"]["result"] == "stored", r
                assert files[0] in r["state"]["last"]["detail"], r
                du.gdb_threads(RULETARGET, files[0], pid=pid)
                assert st.json("/api/dumps") == []
            finally:
                h.kill_tree(rt)
        bad = h.Stack(config_lines=["store_dir = " + e.store],
                      config_files=[rules.replace("share", "elsewhere")])
        try:
            bad.start()
            raise AssertionError("a rule naming an unknown egress started")
        except AssertionError as ex:
            assert "egress 'elsewhere'" in str(ex), ex
        finally:
            bad.stop()
    finally:
        e.close()


STACKS_NAME_RE = re.compile(r"^\d{8}_\d{6}_\d{3}_(\d+)\.stacks\.(json|txt)$")


def tids(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


def test_stacks_as_operations_upload_in_the_format_asked():
    """Proves: dotnet-monitor's /stacks?pid=&egressProvider=share answers
    202 + Location with a record of kind stacks; it ends Succeeded (201)
    with resourceLocation {directory}/{host}/default/{stamp}_{pid}.stacks.json
    (dotnet-monitor's name) holding a CallStackResult with every thread of
    the target; Accept: text/plain uploads its text (.txt), format=speedscope
    a speedscope file; Kudu's /api/processes/{id}/stacks?egressProvider=
    uploads procdiag's document (state words, no link), Accept: text/plain
    its text; the record's stacks figures give threads and the file's
    bytes; nothing else is in the directory; a HEAD starts nothing."""
    e = Egress()
    t = h.target("threads", 2)
    try:
        with e.stack() as s:
            base = os.path.join(e.dir, socket.gethostname(), "default")
            # a HEAD starts nothing
            assert s.head("/stacks?pid=%d&egressProvider=share" % t.pid).status == 200
            assert s.json("/operations") == [] and e.files() == []
            oid, _, doc = start(s, "/stacks?pid=%d&egressProvider=share&tags=st" % t.pid)
            first = oid
            assert doc["kind"] == "stacks" and doc["egressProviderName"] == "share", doc
            assert "dump" not in doc and doc["stacks"]["format"] == "text", doc
            doc = wait_end(s, oid)
            assert doc["status"] == "Succeeded", doc
            path = doc["resourceLocation"]
            assert os.path.dirname(path) == base, doc
            m = STACKS_NAME_RE.match(os.path.basename(path))
            assert m and int(m.group(1)) == t.pid and m.group(2) == "txt", path
            with open(path) as f:
                text = f.read()
            assert text.startswith("Thread: (0x"), text[:200]
            assert doc["stacks"]["bytes"] == os.path.getsize(path) > 0, doc
            assert doc["stacks"]["threads"] == len(tids(t.pid)), doc
            got = {}
            for fmt, hdr, query in (("json", {"Accept": "application/json"}, ""),
                                    ("speedscope", None, "&format=speedscope")):
                r = s.get("/stacks?pid=%d&egressProvider=share%s" % (t.pid, query), headers=hdr)
                assert r.status == 202, r
                d = wait_end(s, r.json()["operationId"])
                assert d["status"] == "Succeeded" and d["stacks"]["format"] == fmt, d
                assert d["resourceLocation"].endswith(".stacks.json"), d
                with open(d["resourceLocation"]) as f:
                    got[fmt] = json.load(f)
            assert sorted(x["threadId"] for x in got["json"]["stacks"]) == tids(t.pid), got["json"]
            assert "speedscope" in got["speedscope"]["$schema"], got["speedscope"]
            assert len(got["speedscope"]["profiles"]) == len(tids(t.pid))
            # Kudu's route: procdiag's own document, or its text
            oid, _, _ = start(s, "/api/processes/%d/stacks?egressProvider=share" % t.pid)
            d = wait_end(s, oid)
            assert d["status"] == "Succeeded" and d["stacks"]["format"] == "procdiag", d
            with open(d["resourceLocation"]) as f:
                kd = json.load(f)
            assert kd["id"] == t.pid and "process" not in kd, kd.keys()
            assert sorted(x["id"] for x in kd["threads"]) == tids(t.pid), kd
            assert all(len(x["state"]) > 1 for x in kd["threads"]), kd["threads"]
            r = s.get("/api/processes/%d/stacks?egressProvider=share" % t.pid,
                      headers={"Accept": "text/plain"})
            assert r.status == 202, r
            d = wait_end(s, r.json()["operationId"])
            assert d["resourceLocation"].endswith(".stacks.txt"), d
            with open(d["resourceLocation"]) as f:
                assert f.read().startswith("PID %d" % t.pid)
            assert len(e.files()) == 5, e.files()
            assert all(os.path.dirname(f) == base for f in e.files()), e.files()
            assert [o["operationId"] for o in s.json("/operations?tags=st")] == [first]
    finally:
        t.kill()
        e.close()


def test_stacks_async_into_the_store_as_rules_store_them():
    """Proves: Kudu's /api/processes/{id}/stacks?async=true answers 202; the
    operation ends Succeeded with resourceLocation the store entry's URL;
    the entry is kind stacks (trigger manual) with stacks.json (procdiag's
    document: the target's threads) and stacks.txt, as a rule's stacks
    action stores them; nothing goes to the egress directory."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack(store=True) as s:
            oid, _, doc = start(s, "/api/processes/%d/stacks?async=true" % t.pid)
            assert doc["kind"] == "stacks" and doc["egressProviderName"] is None, doc
            doc = wait_end(s, oid)
            assert doc["status"] == "Succeeded", doc
            m = re.match(r"^%s/api/dumps/(\S+)$" % re.escape(s.base), doc["resourceLocation"])
            assert m and doc["storeId"] == m.group(1), doc
            entries = s.json("/api/dumps")
            assert [x["id"] for x in entries] == [m.group(1)], entries
            x = entries[0]
            assert x["kind"] == "stacks" and x["trigger"] == "manual" and x["pid"] == t.pid, x
            assert sorted(f["name"] for f in x["files"]) == ["stacks.json", "stacks.txt"], x
            r = s.get("/api/dumps/%s?file=stacks.json" % x["id"])
            assert sorted(th["id"] for th in json.loads(r.body)["threads"]) == tids(t.pid)
            assert s.get("/api/dumps/%s?file=stacks.txt" % x["id"]).body.startswith(b"PID ")
            assert e.files() == []
    finally:
        t.kill()
        e.close()


def test_stacks_operation_cancel_uploads_nothing():
    """Proves: DELETE on a Running stacks operation (the stacks helper holds
    the target frozen for 3 s in the test build) answers 200 with the
    record Cancelled once the snapshot ended, nothing is uploaded, and the
    target runs again."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.started({"PD_TEST_STACKS_FROZEN_SLEEP_MS": "3000"}) as s:
            oid, _, _ = start(s, "/stacks?pid=%d&egressProvider=share" % t.pid)
            cancel_leaves_nothing(s, e, oid, t.pid)
    finally:
        t.kill()
        e.close()


def confs(s):
    """The CLI's --config arguments for the files of Stack s."""
    return ["--config", s.conf, "--config", os.path.join(s.dir, "extra-0.conf")]


def stored_stacks(s, pid):
    """A stacks entry in the store (async=true): its id."""
    oid, _, _ = start(s, "/api/processes/%d/stacks?async=true" % pid)
    doc = wait_end(s, oid)
    assert doc["status"] == "Succeeded", doc
    return doc["storeId"]


def test_store_entry_copied_to_an_egress_as_an_operation():
    """Proves: POST /api/dumps/{id}/egress?egressProvider=share answers 202 +
    Location with a record of kind copy (storeId, file); it ends Succeeded
    with resourceLocation {directory}/{host}/default/{id}-{file}, byte for
    byte the entry's main file (file=stacks.txt: that file); a second copy
    of the same file ends Failed (the name exists, the first copy is left
    as it was); `procdiag dumps push ID --egress share --file NAME` (the
    same lib/ function) lands the same name in the same directory."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack(store=True) as s:
            sid = stored_stacks(s, t.pid)
            base = os.path.join(e.dir, socket.gethostname(), "default")
            r = s.post("/api/dumps/%s/egress?egressProvider=share&tags=cp" % sid)
            assert r.status == 202, r
            doc = r.json()
            assert r.header("Location") == "%s/operations/%s" % (s.base, doc["operationId"]), r
            assert doc["kind"] == "copy" and doc["copy"]["storeId"] == sid, doc
            assert doc["process"]["pid"] == t.pid and doc["egressProviderName"] == "share", doc
            doc = wait_end(s, doc["operationId"])
            assert doc["status"] == "Succeeded", doc
            path = os.path.join(base, "%s-stacks.json" % sid)
            assert doc["resourceLocation"] == path, doc
            want = s.get("/api/dumps/%s" % sid).body
            with open(path, "rb") as f:
                assert f.read() == want
            assert doc["copy"]["bytes"] == len(want), doc
            r = s.post("/api/dumps/%s/egress?egressProvider=share&file=stacks.txt" % sid)
            assert r.status == 202, r
            d2 = wait_end(s, r.json()["operationId"])
            assert d2["status"] == "Succeeded", d2
            with open(os.path.join(base, "%s-stacks.txt" % sid), "rb") as f:
                assert f.read() == s.get("/api/dumps/%s?file=stacks.txt" % sid).body
            # the same copy again: refused, the first one kept
            r = s.post("/api/dumps/%s/egress?egressProvider=share" % sid)
            d3 = wait_end(s, r.json()["operationId"])
            assert d3["status"] == "Failed" and "exists" in d3["error"]["message"], d3
            with open(path, "rb") as f:
                assert f.read() == want
            # the CLI's push: the same function, the same place
            sid2 = stored_stacks(s, t.pid)
            p = subprocess.run([h.PROCDIAG, "dumps"] + confs(s) + ["push", sid2,
                                "--egress", "share", "--file", "stacks.txt"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            assert p.returncode == 0, p.stderr
            out = os.path.join(base, "%s-stacks.txt" % sid2)
            assert p.stdout.decode().strip() == out, p.stdout
            with open(out, "rb") as f:
                assert f.read() == s.get("/api/dumps/%s?file=stacks.txt" % sid2).body
            assert [o["operationId"] for o in s.json("/operations?tags=cp")] == \
                [s.json("/operations")[1]["operationId"]]
    finally:
        t.kill()
        e.close()


def test_store_copy_bad_input_changes_nothing():
    """Proves: POST /api/dumps/{id}/egress with a malformed id is a 400
    naming id, an unknown id a 404 naming id, no egressProvider or an
    unknown one a 400 naming egressProvider, a bad file name a 400 naming
    file, a file the entry lacks a 404 naming file, async=true a 400
    naming async; without a store a 404; none starts an operation or writes
    a file; the CLI's push of an unknown entry exits 3."""
    e = Egress()
    t = h.target("threads", 1)
    try:
        with e.stack(store=True) as s:
            sid = stored_stacks(s, t.pid)
            n = len(s.json("/operations"))
            h.assert_problem(s.post("/api/dumps/not-an-id/egress?egressProvider=share"), 400,
                             "id")
            unknown = "20200101T000000Z-1-abcd"
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=share" % unknown), 404,
                             "id")
            h.assert_problem(s.post("/api/dumps/%s/egress" % sid), 400, "egressProvider")
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=nope" % sid), 400,
                             "egressProvider")
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=share&file=..%%2Fx"
                                    % sid), 400, "file")
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=share&file=core.1"
                                    % sid), 404, "file")
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=share&async=true"
                                    % sid), 400, "async")
            assert len(s.json("/operations")) == n
            assert e.files() == []
            p = subprocess.run([h.PROCDIAG, "dumps"] + confs(s) + ["push", unknown,
                                "--egress", "share"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            assert p.returncode == 3, (p.returncode, p.stderr)
            assert e.files() == []
        with e.stack() as s:
            h.assert_problem(s.post("/api/dumps/%s/egress?egressProvider=share" % sid), 404)
    finally:
        t.kill()
        e.close()


FOREIGN = {"notes.txt": b"mine\n", "core.1234": b"not procdiag's\n",
           "20200101_000000_000_1.stacks.csv": b"near miss\n", "core.1.20200101T000000Z.x": b"x\n"}


def retention_setup(e, **limits):
    """[egress NAME] sections in a config of their own, each a filesystem
    directory under e.tmp with the given max_* keys; each directory's
    {host}/default/ made with FOREIGN's files in it, 40 days old."""
    conf, dirs = "", {}
    for name, keys in limits.items():
        d = os.path.join(e.tmp, name)
        conf += "[egress %s]\ntype = filesystem\ndirectory = %s\n%s" % (
            name, d, "".join("%s = %s\n" % kv for kv in keys.items()))
        sub = os.path.join(d, socket.gethostname(), "default")
        os.makedirs(sub)
        old = 1577836800  # 2020-01-01
        for fn, body in FOREIGN.items():
            with open(os.path.join(sub, fn), "wb") as f:
                f.write(body)
            os.utime(os.path.join(sub, fn), (old, old))
        dirs[name] = sub
    return conf, dirs


def ours(d):
    return sorted(n for n in os.listdir(d) if n not in FOREIGN)


def foreign_intact(d):
    for fn, body in FOREIGN.items():
        with open(os.path.join(d, fn), "rb") as f:
            assert f.read() == body, fn


def test_filesystem_egress_retention_evicts_oldest_first_and_never_a_foreign_file():
    """Proves: [egress NAME] max_count = 3 keeps the 3 newest files procdiag
    wrote (a dump, a store copy, stacks: all its names count), evicting the
    oldest first at each commit; max_bytes keeps the allocated bytes of
    procdiag's files within the bound, oldest out first; max_age = 1d
    removes an old file of procdiag's name at the next upload; a file
    larger than max_bytes alone is refused (Failed 507, nothing written,
    nothing evicted); files of other names (near misses of procdiag's
    patterns too), 40 days old, are never counted or touched; a retention
    key on an azureBlobStorage section, or a bad value, stops the start."""
    e = Egress()
    t = h.target("threads", 1)
    conf, dirs = retention_setup(e, cnt={"max_count": 3}, byt={"max_bytes": "12K"},
                                 aged={"max_age": "1d"}, tiny={"max_bytes": "1K"})
    try:
        aged_old = os.path.join(dirs["aged"], "core.77.20200101T000000Z.0badcafe.zst")
        with open(aged_old, "wb") as f:
            f.write(b"old dump")
        os.utime(aged_old, (1577836800, 1577836800))
        tiny_old = os.path.join(dirs["tiny"], "20200101_000000_000_1.stacks.txt")
        with open(tiny_old, "wb") as f:
            f.write(b"x")
        st = h.Stack(config_lines=["store_dir = " + e.store, "spool_memory_max = 0"],
                     config_files=[e.conf, conf])
        with st as s:
            seq = []

            def landed(path, provider):
                r = s.get(path, timeout=60) if not path.startswith("POST ") else \
                    s.post(path[5:])
                assert r.status == 202, r
                d = wait_end(s, r.json()["operationId"])
                assert d["status"] == "Succeeded", d
                assert os.path.dirname(d["resourceLocation"]) == dirs[provider], d
                return os.path.basename(d["resourceLocation"])

            # count: a dump, a copy, then stacks; the oldest go first
            seq.append(landed(du.dump_url(t.pid, "egressProvider=cnt&dumpType=2"), "cnt"))
            sid = stored_stacks(s, t.pid)
            seq.append(landed("POST /api/dumps/%s/egress?egressProvider=cnt" % sid, "cnt"))
            seq.append(landed("/stacks?pid=%d&egressProvider=cnt" % t.pid, "cnt"))
            assert ours(dirs["cnt"]) == sorted(seq), (ours(dirs["cnt"]), seq)
            for i in range(3):
                seq.append(landed("/stacks?pid=%d&egressProvider=cnt" % t.pid, "cnt"))
                assert ours(dirs["cnt"]) == sorted(seq[-3:]), (i, ours(dirs["cnt"]), seq)
            foreign_intact(dirs["cnt"])
            # bytes: within 12K of allocated bytes, the newest kept
            got = []
            for i in range(6):
                got.append(landed("/stacks?pid=%d&egressProvider=byt&format=json" % t.pid,
                                  "byt"))
                names = ours(dirs["byt"])
                used = sum(os.stat(os.path.join(dirs["byt"], n)).st_blocks * 512 for n in names)
                assert used <= 12 * 1024, (names, used)
                k = len(names)
                assert names == sorted(got[-k:]) and got[-1] in names, (names, got)
            assert len(ours(dirs["byt"])) < 6
            foreign_intact(dirs["byt"])
            # age: the old file of procdiag's name goes at the next upload
            new = landed("/stacks?pid=%d&egressProvider=aged" % t.pid, "aged")
            assert ours(dirs["aged"]) == [new], ours(dirs["aged"])
            foreign_intact(dirs["aged"])
            # too big for max_bytes alone: refused, nothing evicted
            r = s.get("/stacks?pid=%d&egressProvider=tiny" % t.pid)
            d = wait_end(s, r.json()["operationId"])
            assert d["status"] == "Failed" and d["error"]["status"] == 507, d
            assert "max_bytes" in d["error"]["message"], d
            assert ours(dirs["tiny"]) == [os.path.basename(tiny_old)], os.listdir(dirs["tiny"])
            foreign_intact(dirs["tiny"])
        for bad, word in (("[egress az]\ntype = azureBlobStorage\naccount_url = "
                           "http://127.0.0.1:9/a\ncontainer = c\nsas_token = x\n"
                           "max_count = 2\n", "lifecycle"),
                          ("[egress f]\ntype = filesystem\ndirectory = /tmp\n"
                           "max_count = -1\n", "max_count")):
            b = h.Stack(config_files=[bad])
            try:
                b.start()
                raise AssertionError("started with " + bad)
            except AssertionError as ex:
                assert word in str(ex), ex
            finally:
                b.stop()
    finally:
        t.kill()
        e.close()


def problem_of(s, method, path):
    """The answer to method path and its problem document (None if not one)."""
    r = s.get(path) if method == "GET" else (s.delete(path) if method == "DELETE"
                                             else s.post(path))
    return r, r.json() if r.content_type == "application/problem+json" else None


def assert_hidden_like_unknown(s, method, path, oid, parameter):
    """method path (naming oid) answers 404 problem+json naming parameter,
    identical but for the id to the answer for an id nobody has."""
    fake = "0badc0de-0000-4000-8000-%012x" % random.getrandbits(48) if parameter == "operationId" \
        else "20200101T000000Z-%d-%04x" % (random.randint(2, 99999), random.getrandbits(16))
    r, doc = problem_of(s, method, path)
    h.assert_problem(r, 404, parameter)
    r2, doc2 = problem_of(s, method, path.replace(oid, fake))
    h.assert_problem(r2, 404, parameter)
    assert json.loads(json.dumps(doc).replace(oid, fake)) == doc2, (doc, doc2)


def test_scope_narrowed_hides_operations_and_store_entries():
    """Proves: records made under scope all (a dump and a stacks operation
    to an egress, a stacks operation into the store, a copy of that entry)
    carry the owner uid of the target's /proc/PID (ownerUid; the entry's
    meta uid); a responder restarted on the same store with scope 65534
    (not the target's uid) answers as if none of them existed: GET
    /operations (plain, ?pid=, ?tags=) is [], GET and DELETE
    /operations/{id} are the 404 problem of an unknown id, /api/dumps is
    [] and the entry's GET (with or without file=), DELETE and POST
    .../egress are the 404 of an unknown id, and nothing is removed; with
    the target's uid in scope again (self) all of them are back. Records
    without a uid (a state file and a meta.json from before it existed)
    are hidden under scope self and shown under scope all."""
    e = Egress()
    t = h.target("threads", 1)
    me = os.getuid()
    try:
        with e.stack("scope = all", store=True) as s:
            oids = []
            for path in ("/dump?pid=%d&egressProvider=share&tags=sc" % t.pid,
                         "/stacks?pid=%d&egressProvider=share&tags=sc" % t.pid):
                oid, _, doc = start(s, path)
                assert doc["ownerUid"] == me, doc
                assert wait_end(s, oid)["status"] == "Succeeded"
                oids.append(oid)
            sid = stored_stacks(s, t.pid)
            oids.append(s.json("/operations")[-1]["operationId"])
            (entry,) = s.json("/api/dumps")
            assert entry["id"] == sid and entry["uid"] == me, entry
            r = s.post("/api/dumps/%s/egress?egressProvider=share&tags=sc" % sid)
            assert r.status == 202, r
            assert r.json()["ownerUid"] == me, r.json()
            oids.append(r.json()["operationId"])
            assert wait_end(s, oids[-1])["status"] == "Succeeded"
            assert [o["operationId"] for o in s.json("/operations")] == oids
        landed = e.files()
        assert len(landed) == 3, landed
        with e.stack("scope = 65534", store=True) as s:
            assert s.json("/operations") == []
            assert s.json("/operations?pid=%d" % t.pid) == []
            assert s.json("/operations?tags=sc") == []
            for oid in oids:
                assert_hidden_like_unknown(s, "GET", "/operations/" + oid, oid, "operationId")
                assert_hidden_like_unknown(s, "DELETE", "/operations/" + oid, oid,
                                           "operationId")
            assert s.json("/api/dumps") == []
            for method, path in (("GET", "/api/dumps/%s" % sid),
                                 ("GET", "/api/dumps/%s?file=stacks.txt" % sid),
                                 ("GET", "/api/dumps/%s?file=nosuch.txt" % sid),
                                 ("DELETE", "/api/dumps/%s" % sid),
                                 ("POST", "/api/dumps/%s/delete" % sid),
                                 ("POST", "/api/dumps/%s/egress?egressProvider=share" % sid)):
                assert_hidden_like_unknown(s, method, path, sid, "id")
            assert s.json("/operations") == []  # the POST started nothing
        assert os.path.isdir(os.path.join(e.store, sid))
        assert e.files() == landed
        with e.stack(store=True) as s:  # scope self: the target's uid
            assert [o["operationId"] for o in s.json("/operations")] == oids
            assert [o["operationId"] for o in s.json("/operations?tags=sc")] == \
                [oids[0], oids[1], oids[3]]
            for oid in oids:
                assert status(s, oid)["status"] == "Succeeded"
            assert [x["id"] for x in s.json("/api/dumps")] == [sid]
            assert s.get("/api/dumps/%s?file=stacks.txt" % sid).status == 200
        # records from before the uid: out of scope but for scope all
        state = os.path.join(e.store, ".operations.json")
        with open(state) as f:
            recs = json.load(f)
        for rec in recs:
            del rec["ownerUid"]
        with open(state, "w") as f:
            json.dump(recs, f)
        meta = os.path.join(e.store, sid, "meta.json")
        with open(meta) as f:
            m = json.load(f)
        del m["uid"]
        with open(meta, "w") as f:
            json.dump(m, f)
        with e.stack(store=True) as s:
            assert s.json("/operations") == []
            assert s.json("/api/dumps") == []
            h.assert_problem(s.get("/operations/" + oids[0]), 404, "operationId")
            h.assert_problem(s.get("/api/dumps/" + sid), 404, "id")
        with e.stack("scope = all", store=True) as s:
            assert [o["operationId"] for o in s.json("/operations")] == oids
            assert [x["id"] for x in s.json("/api/dumps")] == [sid]
    finally:
        t.kill()
        e.close()


def test_records_of_another_users_process_follow_its_uid():
    """Proves: a stacks operation into the store of a process running as
    uid 65534, started by a responder of scope all, records ownerUid 65534
    (the entry uid 65534); a responder of scope self (root, not 65534) on
    that store hides the operation and the entry as unknown ids, and one
    of scope 65534 shows both (the uid judged is the process's, not the
    responder's)."""
    e = Egress()
    p = h.sleep_as_nobody()
    try:
        with e.stack("scope = all", store=True) as s:
            oid, _, doc = start(s, "/api/processes/%d/stacks?async=true&tags=nb" % p.pid)
            assert doc["ownerUid"] == 65534, doc
            doc = wait_end(s, oid)
            assert doc["status"] == "Succeeded", doc
            sid = doc["storeId"]
            (entry,) = s.json("/api/dumps")
            assert entry["id"] == sid and entry["uid"] == 65534 and entry["pid"] == p.pid, entry
        with e.stack(store=True) as s:  # scope self: root
            assert os.getuid() != 65534
            assert s.json("/operations") == [] and s.json("/operations?tags=nb") == []
            assert_hidden_like_unknown(s, "GET", "/operations/" + oid, oid, "operationId")
            assert s.json("/api/dumps") == []
            assert_hidden_like_unknown(s, "GET", "/api/dumps/" + sid, sid, "id")
        with e.stack("scope = 65534", store=True) as s:
            assert [o["operationId"] for o in s.json("/operations?pid=%d" % p.pid)] == [oid]
            assert status(s, oid)["storeId"] == sid
            assert [x["id"] for x in s.json("/api/dumps")] == [sid]
            r = s.get("/api/dumps/%s?file=stacks.txt" % sid)
            assert r.status == 200 and r.body, r
    finally:
        p.kill()
        e.close()


if __name__ == "__main__":
    h.main(globals())
