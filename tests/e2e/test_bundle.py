#!/usr/bin/env python3
"""The zip bundle (lib/bundle.c) judged by its real consumers: unzip -t,
python's zipfile, and gdb opening the extracted folder on its own.

Cores are gdb's gcore of targets this test starts (the bundle reads any
ELF core with NT_FILE); tests/tools/pdbundle calls pd_bundle_write()."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402

PDBUNDLE = os.path.join(h.BUILDDIR, "tests", "tools", "pdbundle")
PDLIBTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "pdlibtarget")
LIB1 = os.path.join(h.BUILDDIR, "tests", "targets", "libpdlib1.so")
LIB2 = os.path.join(h.BUILDDIR, "tests", "targets", "libpdlib2.so")


def tmpdir():
    d = tempfile.mkdtemp(prefix="pdbundle-")
    _dirs.append(d)
    return d


_dirs = []


def cleanup():
    for d in _dirs:
        subprocess.run(["umount", "-l", d], stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)
    _dirs.clear()


def gdb_env(home):
    env = dict(os.environ, HOME=home)
    env.pop("DEBUGINFOD_URLS", None)  # never the network
    return env


def gcore(pid, path):
    home = tmpdir()
    r = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid), "-ex", "gcore " + path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=gdb_env(home),
                       timeout=120)
    assert r.returncode == 0 and os.path.getsize(path) > 0, r.stdout.decode(errors="replace")
    assert h.alive(pid), "gcore left the target dead"


def bundle(pid, core, out, start_time=None):
    extra = ["--start-time", str(start_time)] if start_time is not None else []
    r = subprocess.run([PDBUNDLE, "--pid", str(pid), "--core", core, "-o", out, "--type", "gcore"]
                       + extra,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    line = r.stdout.decode().strip()
    res = json.loads(line) if line.startswith("{") else {"rc": None, "error": line}
    res["exit"] = r.returncode
    res["stderr"] = r.stderr.decode(errors="replace")
    return res


def build_id(path):
    out = subprocess.run(["eu-readelf", "-n", path], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=True).stdout.decode()
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def core_modules(core):
    """{base address: (build-id, name)} of the modules eu-unstrip finds in
    the core's own memory (their ELF headers and build-id notes as the
    process had them): a judge independent of procdiag's core reader."""
    r = subprocess.run(["eu-unstrip", "-n", "--core", core], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    mods = {}
    for line in out.splitlines():
        # START+SIZE BUILDID@ADDR FILE DEBUGFILE NAME (NAME may have spaces)
        where, bid, _, _, name = line.split(None, 4)
        mods[int(where.split("+")[0], 16)] = (bid.split("@")[0] if bid != "-" else None, name)
    assert mods, out
    return mods


def link_map_names(exe, core, pid):
    """The link_map names of the shared libraries gdb finds in the core
    (`info sharedlibrary` with the machine's own files)."""
    out = du.gdb_core(exe, core, "info sharedlibrary", pid=pid)
    names = re.findall(r"^(?:0x[0-9a-f]+\s+0x[0-9a-f]+)?\s+(?:Yes|No)\s*(?:\(\*\))?\s+(\S.*?)\s*$",
                       out, re.M)
    assert names, out
    return names


def assert_modules_as_the_core_says(man, core, exe, pid):
    """Every build-id and link_map name the manifest takes from procdiag's
    own core reader, judged again by eu-unstrip and gdb."""
    inmem = core_modules(core)
    mods = man["modules"]
    for m in mods:
        assert m["build_id"] and m["base"] in inmem, ("eu-unstrip finds no module at %#x"
                                                      % m["base"], m, inmem)
        assert inmem[m["base"]][0] == m["build_id"], (m, inmem[m["base"]])
    vdso = {b for b, (_, name) in inmem.items() if name.startswith("linux-vdso")}
    assert set(inmem) - vdso == {m["base"] for m in mods}, (inmem, [m["base"] for m in mods])
    want = sorted(link_map_names(exe, core, pid))
    have = sorted(m.get("link_map_name", m["path"]) for m in mods if not m.get("main_executable"))
    assert have == want, (have, want)


def check_zip(path):
    """unzip -t passes, zipfile reads every entry with a good CRC, no entry
    name is absolute or climbs; returns (ZipFile names, manifest)."""
    r = subprocess.run(["unzip", "-t", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == 0 and b"No errors detected" in r.stdout, r.stdout.decode()
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
    assert len(names) == len(set(names)), "duplicate entries"
    for n in names:
        assert not n.startswith("/") and ".." not in n.split("/") and "." not in n.split("/"), n
    for want in ("manifest.json", "open-core.gdb", "README.txt"):
        assert want in names, (want, names)
    return names, manifest


def extract(path):
    d = tmpdir()
    r = subprocess.run(["unzip", "-q", path, "-d", d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert r.returncode == 0, r.stdout.decode()
    return d


def gdb_bundle(folder, cwd, script, *cmds):
    """gdb with nothing but the bundle: no ~/.gdbinit (HOME is empty), no
    debuginfod; returns its stdout (its warnings, on stderr, are never
    parsed)."""
    home = tmpdir()
    argv = ["gdb", "-batch", "-x", script]
    for c in cmds:
        argv += ["-ex", c]
    # The script must have loaded the core (gdb exits 0 when it did not).
    argv += ["-ex", "python assert gdb.selected_inferior().pid > 0, 'no core loaded'"]
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=gdb_env(home), timeout=120)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + "\n--- stderr:\n" + r.stderr.decode(errors="replace")
    return out


def shared_libraries(out, folder):
    """The paths of `info sharedlibrary`, each checked to be in folder."""
    libs = re.findall(r"^0x[0-9a-f]+\s+0x[0-9a-f]+\s+(?:Yes|No)\s*(?:\(\*\))?\s+(\S+)$",
                      out, re.M)
    assert libs, out
    for lib in libs:
        assert lib.startswith(os.path.realpath(folder) + "/sysroot/") or \
            lib.startswith(folder + "/sysroot/"), "gdb read %s from outside the bundle" % lib
    return libs


def test_gcore_bundle_opens_in_gdb_with_symbols():
    t = h.target("threads", 3)
    d = tmpdir()
    core, out = os.path.join(d, "core"), os.path.join(d, "bundle.zip")
    gcore(t.pid, core)
    res = bundle(t.pid, core, out)
    assert res["rc"] == 0 and res["exit"] == 0, res
    h.diag("gcore %d bytes -> zip %d bytes in %.0f ms; %d modules, %d binaries, %d debug"
           % (os.path.getsize(core), res["size"], res["ms"], res["modules"], res["binaries"],
              res["debug_files"]))
    assert res["size"] == os.path.getsize(out)
    names, man = check_zip(out)
    assert man["process"]["pid"] == t.pid and man["process"]["name"] == "pdtarget"
    assert man["dump"]["type"] == "gcore" and man["dump"]["core"] == "core.%d" % t.pid
    assert "core.%d" % t.pid in names
    mods = {m["path"]: m for m in man["modules"]}
    exe = os.path.realpath(h.PDTARGET)
    libc = [p for p in mods if os.path.basename(p).startswith("libc.so")]
    assert exe in mods and mods[exe].get("main_executable") and len(libc) == 1, mods.keys()
    # Every module: a build-id, the one the file on disk has, and the binary.
    for p, m in mods.items():
        assert m["binary_included"], m
        assert m["build_id"] and m["build_id"] == build_id(p), (m, build_id(p))
        assert m["build_id_in_core"], m
        for e in m["entries"]:
            assert e in names, e
    # libc is found by gdb under its link_map name (/lib/...), which differs.
    assert mods[libc[0]].get("link_map_name", "").startswith("/lib"), mods[libc[0]]
    # libc6-dbg is installed (./dev): its debug file is in by build-id.
    lm = mods[libc[0]]
    assert lm["debug_included"], lm
    assert lm["debug_entry"] == "sysroot/usr/lib/debug/.build-id/%s/%s.debug" % (
        lm["build_id"][:2], lm["build_id"][2:]), lm

    assert_modules_as_the_core_says(man, core, h.PDTARGET, t.pid)

    folder = extract(out)
    # The files in the bundle, read by eu-readelf: each binary has the
    # build-id the core has for it, each debug file too.
    for m in mods.values():
        for e in m["entries"]:
            assert build_id(os.path.join(folder, e)) == m["build_id"], (e, m)
        if m["debug_included"]:
            assert build_id(os.path.join(folder, m["debug_entry"])) == m["build_id"], m
    elsewhere = tmpdir()
    # From another directory, by the script's path ...
    bt = gdb_bundle(folder, elsewhere, os.path.join(folder, "open-core.gdb"),
                    "info sharedlibrary", "thread apply all bt")
    libs = shared_libraries(bt, folder)
    assert any("libc.so" in x for x in libs), libs
    assert len(re.findall(r"^Thread \d+ ", bt, re.M)) == 4, bt
    # Function names from the target and from libc (an inlined frame has no
    # " in ", just its name after the frame number).
    for fn in ("blocked", "forever", "main", r"\w*pause", "start_thread"):
        assert re.search(r"(?: in |^#\d+\s+)%s \(" % fn, bt, re.M), (fn, bt)
    assert "No symbol table" not in bt and " in ?? " not in bt, bt
    # ... and in the folder itself, as the README says.
    bt2 = gdb_bundle(folder, folder, "open-core.gdb", "info sharedlibrary", "bt")
    shared_libraries(bt2, folder)
    assert "forever" in bt2, bt2
    t.kill()


def test_replaced_and_deleted_libraries_are_bundled_as_loaded():
    d = tmpdir()
    libdir, dotnet = os.path.join(d, "lib"), os.path.join(d, "dotnet")
    os.makedirs(libdir)
    os.makedirs(dotnet)
    replaced = os.path.join(libdir, "libpdreplaced.so")
    deleted = os.path.join(libdir, "libpddeleted.so")
    coreclr = os.path.join(dotnet, "libcoreclr.so")
    # Loaded by a name with "..": ld.so keeps it so in the link_map, and
    # gdb looks up sysroot + that name, which needs the "sub" directory.
    os.makedirs(os.path.join(libdir, "sub"))
    dotdot = os.path.join(libdir, "libpddotdot.so")
    dotdot_name = os.path.join(libdir, "sub", "..", "libpddotdot.so")
    for dst in (replaced, deleted, coreclr, dotdot):
        shutil.copy(LIB1, dst)
    dac = {"libmscordaccore.so": b"dac " * 1000, "libmscordbi.so": b"dbi " * 1000}
    for n, data in dac.items():
        with open(os.path.join(dotnet, n), "wb") as f:
            f.write(data)
    p = h.spawn([PDLIBTARGET, replaced, deleted, coreclr, dotdot_name])
    line = h.read_line(p)
    assert line.startswith("ready "), line
    pid = int(line.split()[1])
    h.settle(pid)
    loaded = build_id(LIB1)
    # Replace as package managers do (a new inode renamed over the path),
    # and delete the other one.
    shutil.copy(LIB2, replaced + ".new")
    os.rename(replaced + ".new", replaced)
    os.unlink(deleted)
    assert build_id(replaced) != loaded

    core, out = os.path.join(d, "core"), os.path.join(d, "b.zip")
    gcore(pid, core)
    res = bundle(pid, core, out)
    assert res["rc"] == 0, res
    names, man = check_zip(out)
    mods = {m["path"]: m for m in man["modules"]}
    for path in (replaced, deleted, coreclr, dotdot):
        m = mods[path]
        assert m["binary_included"] and m["build_id"] == loaded, m
    assert mods[deleted].get("deleted"), mods[deleted]
    assert mods[dotdot]["link_map_name"] == dotdot_name, mods[dotdot]
    assert_modules_as_the_core_says(man, core, PDLIBTARGET, pid)
    assert dotdot_name in link_map_names(PDLIBTARGET, core, pid)
    assert "sysroot%s/sub/" % libdir in names, names
    folder = extract(out)
    for path in (replaced, deleted, coreclr):
        inzip = os.path.join(folder, "sysroot" + path)
        assert build_id(inzip) == loaded, path
        with open(inzip, "rb") as a, open(LIB1, "rb") as b:
            assert a.read() == b.read(), path
    # The DAC beside libcoreclr.so, byte for byte.
    dacs = {os.path.basename(x["path"]): x for x in mods[coreclr]["dac"]}
    for n, data in dac.items():
        assert dacs[n]["included"], dacs
        with open(os.path.join(folder, "sysroot" + dotnet, n), "rb") as f:
            assert f.read() == data
    # gdb symbolizes frames in the replaced and the deleted library.
    bt = gdb_bundle(folder, folder, "open-core.gdb", "info sharedlibrary", "thread apply all bt")
    libs = shared_libraries(bt, folder)
    assert any(x.endswith("/libpdreplaced.so") for x in libs), libs
    assert any(x.endswith("/sub/../libpddotdot.so") for x in libs), libs
    assert len(re.findall(r" in pdlib_park \(", bt)) == 4, bt
    assert "target_main_park" in bt, bt
    h.kill_tree(p)


def test_full_disk_is_enospc_and_leaves_nothing():
    t = h.target("threads", 1)
    d = tmpdir()
    core = os.path.join(d, "core")
    gcore(t.pid, core)
    small = tmpdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "pdbundle", small],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode == 0, "mounting a tmpfs needs root: %s" % r.stdout.decode()
    try:
        res = bundle(t.pid, core, os.path.join(small, "b.zip"))
        assert res["rc"] == -28 and res["exit"] == 1, res
        assert "No space" in res["error"], res
        assert os.listdir(small) == [], os.listdir(small)
        st = os.statvfs(small)
        assert st.f_bfree == st.f_blocks, "the spool still holds blocks"
    finally:
        subprocess.run(["umount", small])
    t.kill()


def test_gone_target_and_bad_core_are_errors():
    t = h.target()
    d = tmpdir()
    core = os.path.join(d, "core")
    gcore(t.pid, core)
    # Not a core: -EINVAL, and the output is left empty.
    notcore = os.path.join(d, "notcore")
    shutil.copy(h.PDTARGET, notcore)
    out = os.path.join(d, "x.zip")
    res = bundle(t.pid, notcore, out)
    assert res["rc"] == -22, res
    assert not os.path.exists(out) or os.path.getsize(out) == 0
    # A pid that now names another run of a process (another start time):
    # -ESRCH, never that process's files under the old core.
    start = h.proc_stat(t.pid)["starttime"]
    res = bundle(t.pid, core, out, start_time=start + 1)
    assert res["rc"] == -3, res
    res = bundle(t.pid, core, out, start_time=start)
    assert res["rc"] == 0 and res["exit"] == 0, res
    assert zipfile.is_zipfile(out), res
    t.kill()
    h.wait_gone([t.pid])
    res = bundle(t.pid, core, out)
    assert res["rc"] == -3, res


if __name__ == "__main__":
    try:
        h.main(globals())
    finally:
        cleanup()
