#!/usr/bin/env python3
"""Zero pages are not data (docs/DUMPS.md, "Zero pages"): after gcore has
read a process once, the pages it read but the process never wrote map the
kernel's zero page. The dump helper leaves them holes, never read, while
what only looks like them to pagemap (pages shared with a fork child, a KSM
page, file pages) is in the core byte for byte, as gdb reads it. Both ways
of telling them apart are run: PAGEMAP_SCAN (Linux >= 6.7) and move_pages(2)
(older kernels; forced through the test build's PD_TEST_ZERO_PAGES).

Some kernels never map the zero page (a VM guest booted with
pvm_no_zero_page=1: a read allocates a zeroed page). There the test, as
root, has KSM map it (use_zero_pages) over the pages gcore read; it saves
and restores KSM's settings. Without either, the zero-page tests skip."""
import contextlib
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dumputil as du  # noqa: E402
import harness as h  # noqa: E402
import test_dump_engine as de  # noqa: E402

ZEROTARGET = os.path.join(h.BUILDDIR, "tests", "targets", "zerotarget")
PAGE = os.sysconf("SC_PAGE_SIZE")
NTHREADS = 32
UNTOUCHED_MIB = 64
MIXED, FORKED, KSM = 64, 16, 16  # pages, as tests/targets/zerotarget.c has them
KSM_DIR = "/sys/kernel/mm/ksm"
PM_PRESENT = 1 << 63


class Target:
    def __init__(self):
        self.file = os.path.join(de.tmpdir(), "zerotarget.data")
        with open(self.file, "wb") as f:
            f.write(os.urandom(2 * PAGE))
        self.proc = h.spawn([ZEROTARGET, str(NTHREADS), str(UNTOUCHED_MIB), self.file])
        line = h.read_line(self.proc, timeout=30)
        m = re.match(r"ready (\d+) (\d+) untouched=(\S+) mixed=(\S+) forked=(\S+) ksm=(\S+) "
                     r"file=(\S+) thread=(\S+)$", line)
        assert m, "zerotarget said %r" % line
        self.pid, self.child = int(m.group(1)), int(m.group(2))
        self.untouched, self.mixed, self.forked, self.ksm, self.filemap = (
            int(m.group(i), 16) for i in range(3, 8))
        self.marks = [int(x, 16) for x in m.group(8).split(",")]
        h.settle(self.pid)


def pagemap(pid, addr, npages):
    with open("/proc/%d/pagemap" % pid, "rb") as f:
        f.seek(addr // PAGE * 8)
        data = f.read(npages * 8)
    return struct.unpack("<%dQ" % npages, data)


def rss(pid, addr):
    """smaps' Rss of the mapping at addr, in bytes: it counts no zero page."""
    with open("/proc/%d/smaps" % pid) as f:
        text = f.read()
    m = re.search(r"^%x-[0-9a-f]+ .*?\nRss:\s+(\d+) kB" % addr, text, re.M | re.S)
    assert m, "no mapping at %#x" % addr
    return int(m.group(1)) * 1024


def zero_pages(pid, addr, npages):
    """How many pages of the mapping at addr map the zero page: present in
    pagemap, not in Rss (the mapping is exactly npages long)."""
    present = sum(1 for e in pagemap(pid, addr, npages) if e & PM_PRESENT)
    return present - rss(pid, addr) // PAGE


def gcore_once(pid):
    out = os.path.join(de.tmpdir(), "gcore")
    r = subprocess.run(["gcore", "-o", out, str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    for name in os.listdir(de.tmpdir()):
        if name.startswith("gcore"):
            os.unlink(os.path.join(de.tmpdir(), name))


def ksm_value(name):
    with open(os.path.join(KSM_DIR, name)) as f:
        return f.read().strip()


def ksm_set(name, value):
    with open(os.path.join(KSM_DIR, name), "w") as f:
        f.write(value)


@contextlib.contextmanager
def ksm_running():
    """KSM on, with use_zero_pages, when we may (root, CONFIG_KSM); its
    settings as they were afterwards. Yields whether it runs."""
    names = ("run", "use_zero_pages", "pages_to_scan", "sleep_millisecs")
    try:
        saved = {n: ksm_value(n) for n in names}
        ksm_set("use_zero_pages", "1")
        ksm_set("pages_to_scan", "4096")
        ksm_set("sleep_millisecs", "10")
        ksm_set("run", "1")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        for n in names:
            try:
                ksm_set(n, saved[n])
            except OSError:
                pass


def ksm_merged(pid):
    try:
        with open("/proc/%d/ksm_merging_pages" % pid) as f:
            return int(f.read())
    except OSError:
        return 0


def zero_page_target(ksm_on):
    """A zerotarget that gcore has read once, with its untouched buffer and
    the odd pages of its mixed buffer on the zero page (KSM's help waited
    for where the kernel never maps it)."""
    t = Target()
    gcore_once(t.pid)
    upages = UNTOUCHED_MIB << 20 >> 12 if PAGE == 4096 else (UNTOUCHED_MIB << 20) // PAGE
    want = lambda: (zero_pages(t.pid, t.untouched, upages) == upages and  # noqa: E731
                    zero_pages(t.pid, t.mixed, MIXED) == MIXED // 2)
    if not want():
        if not ksm_on:
            raise h.NeedsOwnStack("this kernel maps no zero page for a read, and KSM "
                                  "cannot stand in (not root, or no CONFIG_KSM)")
        h.wait_until(want, 60, "KSM to map the zero page over the pages gcore read")
    if ksm_on:
        h.wait_until(lambda: ksm_merged(t.pid) >= KSM or not os.path.exists(
            "/proc/%d/ksm_merging_pages" % t.pid), 60, "KSM to merge zt_ksm")
    # The fork-shared pages: present, not the zero page, not ours alone.
    for e in pagemap(t.pid, t.forked, FORKED):
        assert e & PM_PRESENT and not e & (1 << 56), hex(e)
    return t


def loads(core):
    out = subprocess.run([du.EU_READELF, "-l", core], stdout=subprocess.PIPE,
                         timeout=60).stdout.decode()
    segs = re.findall(r"^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+"
                      r"(0x[0-9a-f]+)\s+(0x[0-9a-f]+)", out, re.M)
    assert segs, out
    return [tuple(int(x, 16) for x in s) for s in segs]


def file_range(core, addr, length):
    """(offset, length) in core of [addr, addr + length), or None when the
    core holds none of it (p_filesz 0: left out, as never-touched memory)."""
    for off, vaddr, filesz, memsz in loads(core):
        if vaddr <= addr < vaddr + memsz:
            if addr + length > vaddr + filesz:
                assert addr >= vaddr + filesz, "only part of %#x in the core" % addr
                return None
            return off + addr - vaddr, length
    raise AssertionError("no PT_LOAD covers %#x" % addr)


def is_hole(fd, off, length):
    """No data in [off, off + length) of fd (SEEK_DATA)."""
    try:
        return os.lseek(fd, off, os.SEEK_DATA) >= off + length
    except OSError:  # ENXIO: no data up to the end
        return True


def gdb_strings(t, core):
    """What gdb reads in core at every place zerotarget wrote: exact."""
    cmds, want = [], []
    for i in range(0, MIXED, 2):
        cmds.append("printf \"<%%s>\\n\", (char *)%d" % (t.mixed + i * PAGE))
        want.append("ZT-MIXED-%d-%d" % (t.pid, i))
    for i in range(FORKED):
        cmds.append("printf \"<%%s>\\n\", (char *)%d" % (t.forked + i * PAGE))
        want.append("ZT-FORKED-%d-%d" % (t.pid, i))
    for i in range(KSM):
        cmds.append("printf \"<%%s>\\n\", (char *)%d" % (t.ksm + i * PAGE))
        want.append("ZT-KSM-%d" % t.pid)
    cmds.append("printf \"<%%s>\\n\", (char *)%d" % (t.filemap + PAGE))
    want.append("ZT-FILECOPY-%d" % t.pid)
    for i, a in enumerate(t.marks):
        cmds.append("printf \"<%%s>\\n\", (char *)%d" % a)
        want.append("ZT-THREAD-%d-%d" % (t.pid, i))
    out = du.gdb_core(ZEROTARGET, core, *cmds, pid=t.pid)
    got = re.findall(r"^<(.*)>$", out, re.M)
    assert got == want, "gdb read:\n%s\nwanted:\n%s" % (got, want)
    # The file's own page, byte for byte; an odd page of zt_mixed, zeros.
    out = du.gdb_core(ZEROTARGET, core,
                      "python print('FILE ' + bytes(gdb.selected_inferior().read_memory("
                      "%d, %d)).hex())" % (t.filemap, PAGE),
                      "python print('ODD ' + bytes(gdb.selected_inferior().read_memory("
                      "%d, %d)).hex())" % (t.mixed + PAGE, PAGE), pid=t.pid)
    with open(t.file, "rb") as f:
        assert "FILE " + f.read(PAGE).hex() in out, out[-2000:]
    assert "ODD " + "00" * PAGE in out, out[-2000:]


def check_zero_page_dump(env, method, extra=()):
    with ksm_running() as ksm_on:
        t = zero_page_target(ksm_on)
        hp = de.dump(t.pid, 15, env=env, extra=extra, name="core.zero.%s" % method)
    f = hp.final
    assert f["zero_method"] == method, f
    # Only the mixed buffer's odd pages are counted: the untouched buffer,
    # all zero pages, is left out as a never-touched mapping is.
    assert f["zero_bytes"] == MIXED // 2 * PAGE, f
    assert file_range(hp.path, t.untouched, UNTOUCHED_MIB << 20) is None
    # Read: the threads' stacks and the data, not the untouched buffer.
    assert f["copied_bytes"] < UNTOUCHED_MIB << 20, f
    gdb_strings(t, hp.path)
    assert len(du.gdb_thread_info(ZEROTARGET, hp.path, t.pid)) == NTHREADS + 1
    r = subprocess.run(["eu-stack", "--core", hp.path, "-e", ZEROTARGET],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    assert len(re.findall(r"^TID \d+:", out, re.M)) == NTHREADS + 1, out[-3000:]
    assert re.search(r"^#\d+\s+0x[0-9a-f]+ park$", out, re.M), out[-3000:]
    de.assert_running(t.pid)
    return t, hp


def assert_odd_pages_are_holes(t, core):
    """The zero pages of zt_mixed are holes in the core file (SEEK_DATA),
    its written pages data. Only where the engine writes with pwrite (the
    RAM and direct paths): through the mapped output a file system with
    large folios (ext4 since 6.x) may make a written page's neighbours
    page cache too."""
    fd = os.open(core, os.O_RDONLY)
    try:
        for i in range(MIXED):
            off, n = file_range(core, t.mixed + i * PAGE, PAGE)
            assert is_hole(fd, off, n) == (i % 2 == 1), "page %d of zt_mixed" % i
    finally:
        os.close(fd)


def test_zero_pages_are_holes():
    """Proves: after gcore read the target once, the pages on the zero
    page are neither read nor written (zero_bytes, copied_bytes, holes in
    the core), through PAGEMAP_SCAN where the kernel has it; every page
    with data (fork-shared, KSM, file, thread stacks) is in the core, as
    gdb reads it."""
    method = "pagemap_scan" if du.kernel_version() >= (6, 7) else "move_pages"
    check_zero_page_dump(None, method)


def test_the_answer_says_what_was_skipped():
    """Proves: a dump through nginx names its zero-page figures in
    X-Dump-Zero-Bytes and X-Dump-Zero-Method: the odd pages of the mixed
    buffer (the untouched buffer is left out as a never-touched mapping),
    found by the method this kernel has."""
    method = "pagemap_scan" if du.kernel_version() >= (6, 7) else "move_pages"
    with ksm_running() as ksm_on:
        t = zero_page_target(ksm_on)
        with h.Stack() as s:
            r = s.get(du.dump_url(t.pid, "dumpType=Full"), timeout=120)
    assert r.status == 200, r
    assert r.header("X-Dump-Zero-Method") == method, r.headers
    assert r.header("X-Dump-Zero-Bytes") == str(MIXED // 2 * PAGE), r.headers
    de.assert_running(t.pid)


def test_zero_pages_without_pagemap_scan():
    """Proves: on a kernel without PAGEMAP_SCAN (forced: PD_TEST_ZERO_PAGES=
    move_pages) move_pages(2) tells the zero page from data just as well;
    here through the direct path (a memory budget of one page), where the
    core's holes are the file system's."""
    t, hp = check_zero_page_dump({"PD_TEST_ZERO_PAGES": "move_pages"}, "move_pages",
                                 extra=("--mem-budget", str(PAGE), "--trace"))
    assert re.search(r"^dump-trace direct ", hp.stderr, re.M), hp.stderr
    assert_odd_pages_are_holes(t, hp.path)


def test_without_a_method_every_page_is_read():
    """Proves: where neither method works, zero pages are read as before
    (nothing is taken for a hole that the kernel did not name), and the
    core holds the same data."""
    with ksm_running() as ksm_on:
        t = zero_page_target(ksm_on)
        hp = de.dump(t.pid, 15, env={"PD_TEST_ZERO_PAGES": "none"}, name="core.zero.none")
    assert hp.final["zero_method"] == "none" and hp.final["zero_bytes"] == 0, hp.final
    assert hp.final["copied_bytes"] > UNTOUCHED_MIB << 20, hp.final
    gdb_strings(t, hp.path)


if __name__ == "__main__":
    h.main(globals())
