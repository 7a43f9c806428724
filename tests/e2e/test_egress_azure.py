#!/usr/bin/env python3
"""The azureBlobStorage egress provider (lib/egress_azure.c) against a real
Azurite (tests/e2e/azurite.py), driven through `procdiag dumps push ID
--egress NAME` and `procdiag dumps --egress NAME list|get`: a stored entry
uploaded in blocks and read back byte-identical through the REST API (this
test's own SharedKey signer), its metadata, a SAS token, a wrong key, a
connection cut mid-upload (retried and whole; cut every time: failed and
absent), a cancelled push (nothing committed), a real dump made through
nginx and the responder, and no secret in any output."""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import dumputil as du  # noqa: E402
import azurite as az  # noqa: E402
import test_operations as ops  # noqa: E402

CONTAINER = "dumps"
PREFIX = "fleet"
HOST = socket.gethostname()
ENTRY = "20261205T071500Z-4242-ab12"
FILE = "core.4242"
BLOB = "%s/%s/default/%s-%s" % (PREFIX, HOST, ENTRY, FILE)


def make_entry(store, data):
    """A store entry written as lib/store.c leaves one (docs/STORE.md):
    store/<id>/{core, meta.json}."""
    d = os.path.join(store, ENTRY)
    os.makedirs(d)
    with open(os.path.join(d, FILE), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump({"id": ENTRY, "kind": "dump", "pid": 4242, "process": "pdtarget",
                   "file": FILE, "trigger": "rule", "rule": "highcpu", "dumpType": "Full",
                   "method": "cow", "created": "2026-12-05T07:15:00Z"}, f)


class Env:
    """A temporary directory with a store holding one entry of data, and a
    configuration with [egress az] pointing at url."""

    def __init__(self, data):
        self.dir = tempfile.mkdtemp(prefix="pd-e2e-egress-")
        self.store = os.path.join(self.dir, "store")
        make_entry(self.store, data)
        self.conf = os.path.join(self.dir, "procdiag.conf")

    def configure(self, url, key=None, sas=None, block_size=65536, parallel=4, key_file=False):
        lines = ["store_dir = " + self.store, "", "[egress az]", "type = azureBlobStorage",
                 "account_url = " + url, "container = " + CONTAINER, "blob_prefix = " + PREFIX,
                 "block_size = %d" % block_size, "parallel = %d" % parallel]
        if key and key_file:
            kf = os.path.join(self.dir, "key")
            with open(kf, "w") as f:
                f.write(key + "\n")
            lines.append("account_key_file = " + kf)
        elif key:
            lines.append("account_key = " + key)
        if sas:
            lines.append("sas_token = " + sas)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def cli(self, *args, timeout=120):
        return subprocess.run([h.PROCDIAG, "dumps", "--config", self.conf] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def push(self, timeout=120):
        return self.cli("push", ENTRY, "--egress", "az", timeout=timeout)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def no_secret(secrets_, *outputs):
    for s in secrets_:
        for o in outputs:
            # the message names no secret, and says so without echoing it
            assert s not in o, "a secret appears in procdiag's output (%d chars)" % len(o)


@contextlib.contextmanager
def proxied(data, **proxy):
    """(env, azurite, proxy): an entry of data, a running Azurite with the
    container, a Proxy(**proxy) in front of it and [egress az] through it."""
    e = Env(data)
    p = None
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            p = az.Proxy(a.port, **proxy)
            e.configure("http://127.0.0.1:%d/%s" % (p.port, a.account), key=a.key,
                        parallel=2)
            yield e, a, p
    finally:
        if p:
            p.close()
        e.close()


def assert_whole(a, data):
    assert a.blob_names(CONTAINER) == [BLOB], a.blob_names(CONTAINER)
    st, hd, body = a.get_blob(CONTAINER, BLOB)
    assert st == 200, st
    assert len(body) == len(data) and body == data, "blob differs: %d bytes vs %d" % (len(body), len(data))
    return hd


def test_roundtrip_shared_key():
    """Proves: a 1.3 MiB entry goes up in 64 KiB blocks, 4 in flight, and
    reads back byte-identical through the REST API (this test's signer);
    the blob is named {prefix}/{host}/{site}/{id}-{file} and carries the
    entry's metadata (x-ms-meta-*); push prints its URL (no secret);
    `dumps --egress list` lists it with size and metadata, `get` fetches
    it byte-identical; a second push of the same name is refused
    (BlobAlreadyExists) and leaves the first blob as it was; the key (read
    from account_key_file) is in no output."""
    data = secrets.token_bytes(1300000 + 17)
    e = Env(data)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            e.configure(a.url, key=a.key, key_file=True)
            r = e.push()
            assert r.returncode == 0, r.stderr
            assert r.stdout.strip() == "%s/%s/%s" % (a.url, CONTAINER, BLOB), r.stdout
            hd = assert_whole(a, data)
            meta = {k.lower()[len("x-ms-meta-"):]: v for k, v in hd.items()
                    if k.lower().startswith("x-ms-meta-")}
            assert meta == {"host": HOST, "pid": "4242", "process": "pdtarget",
                            "dumptype": "Full", "method": "cow", "trigger": "rule",
                            "rule": "highcpu"}, meta
            # 20 blocks of 64 KiB were committed: the block list says so
            st, _, body = a.request("GET", "/%s/%s" % (CONTAINER, BLOB),
                                    {"comp": "blocklist", "blocklisttype": "committed"})
            assert st == 200 and len(re.findall(r"<Block>", body.decode())) == 20, body[:300]
            ls = e.cli("--egress", "az", "--json", "list")
            assert ls.returncode == 0, ls.stderr
            listed = json.loads(ls.stdout)
            assert [b["name"] for b in listed] == [BLOB] and listed[0]["size"] == len(data), listed
            assert listed[0]["metadata"]["rule"] == "highcpu", listed
            out = os.path.join(e.dir, "back")
            g = e.cli("--egress", "az", "get", BLOB, "-o", out)
            assert g.returncode == 0, g.stderr
            with open(out, "rb") as f:
                assert f.read() == data
            g2 = e.cli("--egress", "az", "get", PREFIX + "/nope", "-o", out + "2")
            assert g2.returncode == 3 and "BlobNotFound" in g2.stderr, g2
            assert not os.path.exists(out + "2")
            # the same name again: refused (If-None-Match: *), the first stays
            r2 = e.push()
            assert r2.returncode == 1 and "BlobAlreadyExists" in r2.stderr, r2
            assert_whole(a, data)
            no_secret([a.key], r.stdout, r.stderr, ls.stdout, ls.stderr, g.stderr, g2.stderr,
                      r2.stderr)
    finally:
        e.close()


def test_sas_token():
    """Proves: with a SAS token (an account SAS made by this test) instead
    of a key the same upload is whole and listed; the URL push prints has
    no query, and neither the token nor its signature appears anywhere."""
    data = secrets.token_bytes(200001)
    e = Env(data)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            sas, sig = a.account_sas()
            e.configure(a.url, sas="?" + sas)
            r = e.push()
            assert r.returncode == 0, r.stderr
            assert "?" not in r.stdout and "sig=" not in r.stdout, r.stdout
            assert_whole(a, data)
            ls = e.cli("--egress", "az", "list")
            assert ls.returncode == 0 and BLOB in ls.stdout, ls
            # a read-only token cannot write: said so, nothing new left
            ro, rosig = a.account_sas(permissions="rl")
            e.configure(a.url, sas=ro)
            e2 = e.cli("push", ENTRY, "--egress", "az")
            assert e2.returncode == 1, e2
            assert "the SAS token does not permit this operation" in e2.stderr, e2.stderr
            assert a.blob_names(CONTAINER) == [BLOB]
            # a token signed with another key is refused
            bad = re.sub(r"sig=[^&]+", "sig=" + az.urllib.parse.quote(
                az.base64.b64encode(secrets.token_bytes(32)).decode(), safe=""), sas)
            e.configure(a.url, sas=bad)
            e3 = e.cli("push", ENTRY, "--egress", "az")
            assert e3.returncode == 1, e3
            assert "the account key or SAS token was refused" in e3.stderr, e3.stderr
            no_secret([sas, sig, ro, rosig, bad, az.urllib.parse.quote(sig, safe="")],
                      r.stdout, r.stderr, ls.stdout, ls.stderr, e2.stdout, e2.stderr,
                      e3.stdout, e3.stderr)
    finally:
        e.close()


def test_wrong_key():
    """Proves: a wrong account key fails the push with the sentence that
    says the key was refused and the service's code; no blob exists
    afterwards, and neither key appears in the output."""
    data = secrets.token_bytes(300000)
    e = Env(data)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            wrong = az.base64.b64encode(secrets.token_bytes(64)).decode()
            e.configure(a.url, key=wrong)
            r = e.push()
            assert r.returncode == 1, r
            assert "the account key or SAS token was refused" in r.stderr, r.stderr
            assert "HTTP 403" in r.stderr and "nothing left there" in r.stderr, r.stderr
            assert a.blob_names(CONTAINER) == []
            st, _, _ = a.get_blob(CONTAINER, BLOB)
            assert st == 404, st
            no_secret([wrong, a.key], r.stdout, r.stderr)
    finally:
        e.close()


def test_connection_cut_once_is_retried():
    """Proves: a connection cut in the middle of a block (a proxy in front
    of the real Azurite closes it once, 200 KB into the upload) is retried:
    the push succeeds and the blob is whole and byte-identical."""
    data = secrets.token_bytes(1000000)
    with proxied(data, cut_once_after=200000) as (e, a, p):
        r = e.push()
        assert p.cuts == 1, p.cuts
        assert r.returncode == 0, r.stderr
        assert_whole(a, data)
        no_secret([a.key], r.stdout, r.stderr)


def test_connection_cut_every_time_fails_absent():
    """Proves: when every connection is cut (the proxy closes each after
    20 KB: no Put Block can pass, 3 tries each), the push fails naming the
    connection error and no blob exists: failed and absent, never partial."""
    data = secrets.token_bytes(500000)
    with proxied(data, cut_every_after=20000) as (e, a, p):
        r = e.push()
        assert r.returncode == 1, r
        assert "try 3 of 3" in r.stderr, r.stderr
        assert p.cuts >= 3, p.cuts
        assert a.blob_names(CONTAINER) == []
        assert a.get_blob(CONTAINER, BLOB)[0] == 404
        no_secret([a.key], r.stdout, r.stderr)


def test_azurite_killed_and_restarted():
    """Proves: Azurite killed (SIGTERM) while blocks are in flight (the
    proxy holds the upload after 300 KB; the test kills Azurite there,
    opens the gate and restarts Azurite on the same port and location)
    ends either whole and byte-identical (the retries, 1 s then 4 s later,
    reached the new Azurite: what this machine shows) or failed with no
    blob: never a partial or empty blob."""
    data = secrets.token_bytes(1200000)
    e = Env(data)
    p = None
    a = az.Azurite()
    try:
        a.start()
        a.create_container(CONTAINER)
        a.stop(signal.SIGTERM)  # the container saved: it outlives the SIGKILL below
        a.start()
        p = az.Proxy(a.port, gate_after=300000)
        e.configure("http://127.0.0.1:%d/%s" % (p.port, a.account), key=a.key, parallel=2)
        proc = subprocess.Popen([h.PROCDIAG, "dumps", "--config", e.conf, "push", ENTRY,
                                 "--egress", "az"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # The gate, or the push's end (then its words say why it ended first).
        h.wait_until(lambda: p.gated.is_set() or proc.poll() is not None, 120,
                     "the upload to reach the gate")
        if not p.gated.is_set():
            out, err = proc.communicate()
            raise AssertionError("the push ended before the gate (%s): %s%s\nAzurite: %s"
                                 % (proc.returncode, out, err, a.tail()))
        # SIGTERM: Azurite saves its metadata (SIGKILL would lose the last
        # 5 s of it, blocks and blobs alike) and drops the connections
        os.killpg(a.proc.pid, signal.SIGTERM)
        p.open_gate()
        a.stop(signal.SIGTERM)
        a.start()
        out, err = proc.communicate(timeout=120)
        names = a.blob_names(CONTAINER)
        h.diag("after the restart: %s" % ("whole" if proc.returncode == 0 else err.strip()))
        if proc.returncode == 0:
            assert_whole(a, data)
        else:
            assert names == [], names
            assert "nothing left there" in err, err
        no_secret([a.key], out, err)
    finally:
        if p:
            p.close()
        a.close()
        e.close()


def test_cancel_leaves_nothing():
    """Proves: a push interrupted (SIGINT) while blocks are in flight is
    aborted: it fails saying cancelled, blocks were sent but none was
    committed (Get Block List shows them uncommitted) and no blob exists;
    the service garbage-collects the uncommitted blocks."""
    data = secrets.token_bytes(1000000)
    with proxied(data, gate_after=150000) as (e, a, p):
        proc = subprocess.Popen([h.PROCDIAG, "dumps", "--config", e.conf, "push", ENTRY,
                                 "--egress", "az"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert p.gated.wait(60), "the upload never reached the gate"
        proc.send_signal(signal.SIGINT)
        p.open_gate()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, (proc.returncode, out, err)
        assert "cancelled" in err, err
        assert a.blob_names(CONTAINER) == []
        assert a.get_blob(CONTAINER, BLOB)[0] == 404
        assert len(a.uncommitted(CONTAINER, BLOB)) >= 1
        no_secret([a.key], out, err)


def test_real_dump_through_the_responder():
    """Proves: a dump taken through nginx and the responder into the store
    (store=true) pushes to Azurite and reads back byte-identical to the
    store's own download of it."""
    d = tempfile.mkdtemp(prefix="pd-e2e-egress-real-")
    store = os.path.join(d, "store")
    t = h.target("threads", 1)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            with h.Stack(config_lines=["store_dir = " + store]) as s:
                r = s.get(du.dump_url(t.pid, "store=true"), timeout=120)
                assert r.status == 200, r
                sid = r.header("X-Dump-Store-Id")
                dl = s.get("/api/dumps/" + sid, timeout=120)
                assert dl.status == 200, dl
            conf = os.path.join(d, "c.conf")
            with open(conf, "w") as f:
                f.write("store_dir = %s\n[egress az]\ntype = azureBlobStorage\n"
                        "account_url = %s\ncontainer = %s\naccount_key = %s\n"
                        % (store, a.url, CONTAINER, a.key))
            p = subprocess.run([h.PROCDIAG, "dumps", "--config", conf, "push", sid, "--egress",
                                "az"], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            names = a.blob_names(CONTAINER)
            assert len(names) == 1 and names[0].startswith("%s/default/%s-" % (HOST, sid)), names
            st, hd, body = a.get_blob(CONTAINER, names[0])
            assert st == 200 and body == dl.body, (st, len(body), len(dl.body))
            assert hd.get("x-ms-meta-pid") == str(t.pid), hd
            no_secret([a.key], p.stdout, p.stderr)
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_operation_uploads_to_azurite():
    """Proves: dotnet-monitor's /dump?pid=&egressProvider=az through nginx
    and the responder ends Succeeded with resourceLocation the blob's URL
    (no secret), and the blob read back through the REST API is a core of
    that pid with the dump's metadata; an operation with a wrong key ends
    Failed, its error says the key was refused, no blob is left, and the
    key is neither in any answer nor in the responder's log."""
    d = tempfile.mkdtemp(prefix="pd-e2e-egress-ops-")
    t = h.target("threads", 1)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            wrong = az.base64.b64encode(secrets.token_bytes(64)).decode()
            conf = ("[egress az]\ntype = azureBlobStorage\naccount_url = %s\ncontainer = %s\n"
                    "blob_prefix = %s\naccount_key = %s\nblock_size = 65536\n"
                    "[egress bad]\ntype = azureBlobStorage\naccount_url = %s\n"
                    "container = %s\nblob_prefix = bad\naccount_key = %s\n"
                    % (a.url, CONTAINER, PREFIX, a.key, a.url, CONTAINER, wrong))
            with h.Stack(config_files=[conf]) as s:
                oid, _, _ = ops.start(s, "/dump?pid=%d&egressProvider=az" % t.pid)
                doc = ops.wait_end(s, oid)
                assert doc["status"] == "Succeeded", doc
                loc = doc["resourceLocation"]
                names = a.blob_names(CONTAINER)
                assert len(names) == 1 and loc == "%s/%s/%s" % (a.url, CONTAINER, names[0]), (loc, names)
                assert names[0].startswith("%s/%s/default/" % (PREFIX, HOST)), names
                st, hd, body = a.get_blob(CONTAINER, names[0])
                assert st == 200 and len(body) == doc["dump"]["bytes"], (st, len(body), doc)
                core = os.path.join(d, "core")
                with open(core, "wb") as f:
                    f.write(body)
                assert du.readelf_type(core).startswith("CORE")
                assert hd.get("x-ms-meta-pid") == str(t.pid) and hd.get("x-ms-meta-host") == HOST, hd
                oid2, _, _ = ops.start(s, "/dump?pid=%d&egressProvider=bad" % t.pid)
                doc2 = ops.wait_end(s, oid2)
                assert doc2["status"] == "Failed", doc2
                assert "the account key or SAS token was refused" in json.dumps(doc2), doc2
                assert a.blob_names(CONTAINER) == names
                every = s.get("/operations").body.decode()
                no_secret([a.key, wrong], json.dumps(doc), json.dumps(doc2), every, s.stderr())
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


def test_stacks_operation_and_store_copy_to_azurite():
    """Proves: /stacks?pid=&egressProvider=az with Accept: application/json
    ends Succeeded with resourceLocation the blob
    {prefix}/{host}/default/{stamp}_{pid}.stacks.json, whose body read back
    is the CallStackResult of the target's threads and whose metadata says
    pid and dumptype stacks; POST /api/dumps/{id}/egress?egressProvider=az
    of a stored entry lands {prefix}/{host}/default/{id}-{file} byte for
    byte; no key in any answer or the log."""
    d = tempfile.mkdtemp(prefix="pd-e2e-egress-stk-")
    t = h.target("threads", 2)
    try:
        with az.Azurite() as a:
            a.create_container(CONTAINER)
            conf = ("[egress az]\ntype = azureBlobStorage\naccount_url = %s\ncontainer = %s\n"
                    "blob_prefix = %s\naccount_key = %s\nblock_size = 65536\n"
                    % (a.url, CONTAINER, PREFIX, a.key))
            store = os.path.join(d, "store")
            with h.Stack(config_lines=["store_dir = " + store], config_files=[conf]) as s:
                r = s.get("/stacks?pid=%d&egressProvider=az" % t.pid,
                          headers={"Accept": "application/json"})
                assert r.status == 202, r
                doc = ops.wait_end(s, r.json()["operationId"])
                assert doc["status"] == "Succeeded" and doc["kind"] == "stacks", doc
                names = a.blob_names(CONTAINER)
                assert len(names) == 1 and doc["resourceLocation"] == "%s/%s/%s" % (
                    a.url, CONTAINER, names[0]), (doc, names)
                base = names[0].rsplit("/", 1)
                assert base[0] == "%s/%s/default" % (PREFIX, HOST), names
                m = ops.STACKS_NAME_RE.match(base[1])
                assert m and int(m.group(1)) == t.pid and m.group(2) == "json", names
                st, hd, body = a.get_blob(CONTAINER, names[0])
                assert st == 200 and len(body) == doc["stacks"]["bytes"], (st, len(body), doc)
                got = sorted(x["threadId"] for x in json.loads(body)["stacks"])
                assert got == ops.tids(t.pid), got
                assert hd.get("x-ms-meta-pid") == str(t.pid), hd
                assert hd.get("x-ms-meta-dumptype") == "stacks", hd
                sid = ops.stored_stacks(s, t.pid)
                r = s.post("/api/dumps/%s/egress?egressProvider=az" % sid)
                assert r.status == 202, r
                doc2 = ops.wait_end(s, r.json()["operationId"])
                assert doc2["status"] == "Succeeded", doc2
                blob = "%s/%s/default/%s-stacks.json" % (PREFIX, HOST, sid)
                assert doc2["resourceLocation"] == "%s/%s/%s" % (a.url, CONTAINER, blob), doc2
                st, hd, body = a.get_blob(CONTAINER, blob)
                assert st == 200 and body == s.get("/api/dumps/" + sid).body
                no_secret([a.key], json.dumps(doc), json.dumps(doc2),
                          s.get("/operations").body.decode(), s.stderr())
    finally:
        t.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    h.main(globals())
