#!/usr/bin/env python3
"""Memory rules on a real kernel (docs/TRIGGERS.md, lib/cgroupstat.h):
`cgroup_memory_above P` and `pressure_above some V` fire on a target that
runs short of memory in a cgroup the test makes, and the dump is in the
store while the target is still alive, before the OOM killer takes it; a
target below the thresholds never fires.

The test finds what the machine has and never assumes it: where cgroupfs
is mounted (/proc/self/mountinfo), whether the memory controller is in a v1
hierarchy (hybrid) or in v2, whether there is PSI (/proc/pressure). Without
PSI, or without cgroup v2 (a cgroup's memory.pressure exists only there),
the pressure rule must say why in GET /api/rules instead of passing with
nothing to see. Every cgroup it makes is removed in a `finally`.

How pressure is made: a memory limit with no swap stalls a task only while
the kernel reclaims; the hot target fills most of its limit with anonymous
memory and then reads a file larger than what is left, so its page cache
is reclaimed and refaulted over and over (thrashing: PSI counts it). On v2
memory.high is also set below memory.max, which throttles instead of
killing. The hot target then waits for the test's word before it leaks on
to the OOM kill: the test proves the order of events, not a race."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

MiB = 1 << 20
HOT_LIMIT = 64 * MiB   # the hot target's limit: anon + thrashed file cache fill it
QUIET_LIMIT = 512 * MiB  # the quiet target stays far below 70 % of this
PERIOD_MS = 200

# The target. argv: token anon_mb file file_mb gofile. Writes its file of
# file_mb MiB (unless "-"), leaks anon_mb MiB in 1 MiB steps (every page
# touched), says "ready", then reads its file in a loop (or sleeps when it
# has none) until gofile exists; then leaks 1 MiB a step until the kernel
# kills it.
TARGET = r'''
import os, sys, time
token, anon_mb, path, file_mb, gofile = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
blocks = []
def leak(n):
    for _ in range(n):
        b = bytearray(1 << 20)
        for j in range(0, 1 << 20, 4096):
            b[j] = 1
        blocks.append(b)
        time.sleep(0.01)
fd = -1
if path != "-":
    # Written here, so that its page cache is charged to this cgroup.
    with open(path, "wb") as f:
        for _ in range(file_mb):
            f.write(os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
leak(anon_mb)
print("ready", flush=True)
while not os.path.exists(gofile):
    if fd < 0:
        time.sleep(0.05)
        continue
    off = 0
    while off < file_mb << 20 and not os.path.exists(gofile):
        os.pread(fd, 1 << 20, off)
        off += 1 << 20
while True:
    leak(1)
'''


# -- what the machine has ------------------------------------------------------

def unescape(s):
    """mountinfo's \\ooo escapes."""
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and len(s[i + 1:i + 4]) == 3 and s[i + 1:i + 4].isdigit():
            out += chr(int(s[i + 1:i + 4], 8))
            i += 4
        else:
            out += s[i]
            i += 1
    return out


def cgroup_mounts():
    """{"v2": dir or None, "v1mem": dir or None}, from /proc/self/mountinfo."""
    found = {"v2": None, "v1mem": None}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields, rfields = left.split(" "), right.split(" ")
            root, mnt = unescape(fields[3]), unescape(fields[4])
            fstype, superopts = rfields[0], rfields[2] if len(rfields) > 2 else ""
            if root != "/":
                continue  # a bind mount of a subtree: not ours to make cgroups in
            if fstype == "cgroup2" and not found["v2"]:
                found["v2"] = mnt
            elif fstype == "cgroup" and "memory" in superopts.split(",") and not found["v1mem"]:
                found["v1mem"] = mnt
    return found


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Cgroups:
    """The test's cgroups: for each name, one in the hierarchy that holds
    the memory controller (with the limit) and, on a hybrid machine, one in
    v2 too (where a cgroup's PSI is). remove() undoes everything."""

    def __init__(self):
        self.mounts = cgroup_mounts()
        self.made = []            # directories, removed in reverse
        self.subtree_added = None  # v2: the subtree_control we added +memory to
        v2, v1 = self.mounts["v2"], self.mounts["v1mem"]
        if v1:
            self.memory = "v1"
        elif v2 and "memory" in read(os.path.join(v2, "cgroup.controllers")).split():
            self.memory = "v2"
        else:
            self.memory = None
        self.psi = os.path.exists("/proc/pressure/memory") and v2 is not None
        self.prefix = "pdtest-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])

    def make(self, name, limit, high=None):
        """The cgroup directories for name; returns the one with the limit."""
        v2, v1 = self.mounts["v2"], self.mounts["v1mem"]
        dirs = {}
        if self.memory == "v2":
            sub = os.path.join(v2, "cgroup.subtree_control")
            if "memory" not in read(sub).split():
                write(sub, "+memory")
                self.subtree_added = sub
        for kind, mnt in (("v1", v1 if self.memory == "v1" else None), ("v2", v2)):
            if mnt:
                d = os.path.join(mnt, self.prefix + "-" + name)
                os.mkdir(d)
                self.made.append(d)
                dirs[kind] = d
        if self.memory == "v1":
            write(os.path.join(dirs["v1"], "memory.limit_in_bytes"), str(limit))
            return dirs["v1"], dirs
        write(os.path.join(dirs["v2"], "memory.max"), str(limit))
        if high:
            write(os.path.join(dirs["v2"], "memory.high"), str(high))
        return dirs["v2"], dirs

    def oom_kills(self, memdir):
        """The cgroup's OOM-kill count (v2 memory.events, v1 memory.oom_control)."""
        f = "memory.events" if self.memory == "v2" else "memory.oom_control"
        for line in read(os.path.join(memdir, f)).splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        raise AssertionError("no oom_kill line in %s/%s" % (memdir, f))

    def usage(self, memdir):
        f = "memory.current" if self.memory == "v2" else "memory.usage_in_bytes"
        return int(read(os.path.join(memdir, f)))

    def remove(self):
        for d in reversed(self.made):
            # Whatever is left inside goes first (killed, then waited for).
            for _ in range(100):
                try:
                    pids = [int(p) for p in read(os.path.join(d, "cgroup.procs")).split()]
                except FileNotFoundError:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                h.diag("could not remove cgroup %s" % d)
        self.made = []
        if self.subtree_added:
            write(self.subtree_added, "-memory")
            self.subtree_added = None


def join_argv(dirs):
    """A shell prefix that moves itself into dirs, then execs the rest."""
    cmd = "".join("echo $$ > '%s/cgroup.procs' && " % d for d in dirs.values())
    return ["sh", "-c", cmd + 'exec "$@"', "sh"]


# -- the store and the rules over HTTP ---------------------------------------------

def dumps(stack):
    r = stack.get("/api/dumps")
    assert r.status == 200, r
    doc = r.json()
    return doc["dumps"] if isinstance(doc, dict) and "dumps" in doc else doc


def created_epoch(entry):
    c = entry.get("created")
    if isinstance(c, (int, float)):
        return float(c)
    # ISO 8601 UTC ("2026-12-05T07:15:00Z", fractions allowed)
    import datetime
    c = c.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(c).timestamp()


def rules_doc(stack):
    r = stack.get("/api/rules")
    assert r.status == 200, r
    doc = r.json()
    return doc["rules"] if isinstance(doc, dict) and "rules" in doc else doc


def rule_config(name, token, trigger, extra=()):
    return ["[rule %s]" % name, "cmdline = " + token, "trigger = " + trigger,
            "action = dump", "dump_type = Mini", "count = 1", "interval = 1h"] + list(extra)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# -- the test ----------------------------------------------------------------------

def test_memory_and_pressure_fire_before_the_oom_kill():
    """Proves: `cgroup_memory_above 70` and `pressure_above some 2` each
    fire once (count = 1) on the target whose cgroup is near its limit and
    thrashing, and their dumps are listed in the store while the target is
    alive; the target then dies by the OOM killer (the cgroup's oom_kill
    count goes up by one, after the dumps' creation times); the same rules
    on a target far below its limit and under no pressure never fire. With
    no PSI on the machine, the pressure rule's state says so."""
    cg = Cgroups()
    if not cg.memory:
        raise h.Skip("no cgroup hierarchy with the memory controller on this machine")
    work = tempfile.mkdtemp(prefix="pd-rulesmem-", dir="/var/tmp")
    script = os.path.join(work, "leak.py")
    write(script, TARGET)
    gofile = os.path.join(work, "go")
    thrash = os.path.join(work, "thrash.bin")
    hot_tok = "pdmemhot-" + uuid.uuid4().hex
    quiet_tok = "pdmemquiet-" + uuid.uuid4().hex
    store = os.path.join(work, "store")
    os.mkdir(store)
    config = ["store_dir = " + store, "store_max_count = 0", "rules_interval_ms = %d" % PERIOD_MS]
    for tok, tag in ((hot_tok, "hot"), (quiet_tok, "quiet")):
        config += rule_config("cgmem-" + tag, tok, "cgroup_memory_above 70", ["for = 1s"])
        config += rule_config("psi-" + tag, tok, "pressure_above some 2")
    hot = quiet = None
    try:
        hot_mem, hot_dirs = cg.make("hot", HOT_LIMIT, high=HOT_LIMIT * 7 // 8)
        quiet_mem, quiet_dirs = cg.make("quiet", QUIET_LIMIT)
        with h.Stack(config_lines=config) as s:
            # hot: 40 MiB of anon + python, then 40 MiB of file read over and
            # over in a 64 MiB limit. quiet: 20 MiB in 512 MiB, no file.
            hot = h.spawn(join_argv(hot_dirs) + ["python3", script, hot_tok, "40", thrash,
                                                 "40", gofile])
            quiet = h.spawn(join_argv(quiet_dirs) + ["python3", script, quiet_tok, "20", "-",
                                                     "0", gofile + ".never"])
            assert h.read_line(hot, timeout=60).strip() == "ready"
            assert h.read_line(quiet, timeout=60).strip() == "ready"
            oom_before = cg.oom_kills(hot_mem)

            want = {"cgmem-hot"} | ({"psi-hot"} if cg.psi else set())
            deadline = time.monotonic() + 120
            got = {}
            while time.monotonic() < deadline:
                got = {}
                for e in dumps(s):
                    got.setdefault(e.get("rule"), []).append(e)
                if want <= set(got):
                    break
                assert hot.poll() is None, "the hot target died before its dumps: %s" % got
                time.sleep(0.2)
            assert want <= set(got), ("rules did not fire", sorted(got),
                                      [(r.get("name"), r.get("state")) for r in rules_doc(s)],
                                      "usage %d of %d" % (cg.usage(hot_mem), HOT_LIMIT))
            for name in sorted(want):
                e = got[name][0]
                h.diag("%s: %s" % (name, {k: e.get(k) for k in ("id", "pid", "rule", "created",
                                                               "trigger", "value", "dumpType")}))
            # Listed while the target lives: before any OOM kill.
            assert alive(hot.pid), "target gone when its dumps were listed"
            assert cg.oom_kills(hot_mem) == oom_before, "an OOM kill before the dumps"
            for name in want:
                assert len(got[name]) == 1, (name, got[name])
                assert got[name][0].get("pid") == hot.pid, got[name]

            if not cg.psi:
                # No PSI: the pressure rule never fired and its state says why.
                rules = {r.get("name"): r for r in rules_doc(s)}
                text = json.dumps(rules["psi-hot"])
                assert "PSI" in text or "cgroup v2" in text, rules["psi-hot"]
                assert "psi-hot" not in got, got

            # Now the leak goes on to the OOM kill.
            write(gofile, "go")
            try:
                hot.wait(timeout=120)
            except subprocess.TimeoutExpired:
                raise AssertionError("the hot target was not OOM-killed (usage %d of %d)" %
                                     (cg.usage(hot_mem), HOT_LIMIT))
            died = time.time()
            assert hot.returncode == -signal.SIGKILL, hot.returncode
            assert cg.oom_kills(hot_mem) == oom_before + 1, cg.oom_kills(hot_mem)
            for name in want:
                assert created_epoch(got[name][0]) < died, got[name]

            # The quiet target: alive, far below its limit, never fired.
            # Several periods more, so that a late firing would show.
            time.sleep(PERIOD_MS / 1000.0 * 10 + 1)
            assert quiet.poll() is None
            assert cg.usage(quiet_mem) < QUIET_LIMIT * 7 // 10
            listed = dumps(s)
            assert not [e for e in listed if e.get("pid") == quiet.pid
                        or e.get("rule") in ("cgmem-quiet", "psi-quiet")], listed
            # count = 1: still one dump per hot rule, though the
            # conditions held until the kill.
            for name in want:
                assert len([e for e in listed if e.get("rule") == name]) == 1, listed
    finally:
        for p in (hot, quiet):
            if p is not None and p.poll() is None:
                h.kill_tree(p)
        cg.remove()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    h.main(globals(), timeout=400)
