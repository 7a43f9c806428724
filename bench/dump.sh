#!/usr/bin/env bash
# bench/dump.sh — procdiag's dumps side by side with gdb's gcore, in one run.
#
# Targets (bench/hbtarget: parked threads, touched heap, and a heartbeat that
# measures from the inside how long the process was stopped):
#   A  32 threads, 1 GiB of touched heap
#   B  32 threads, 4 GiB of touched heap
#   C  1000 threads (8 MiB stacks, as glibc gives), 16 MiB of heap
# For each: `procdiag dump --type Full` to a file and `gcore` (wall time, time
# the target was stopped as its heartbeat saw it, core size and blocks on
# disk, the dumper's peak RSS); a mini dump (time, stop, size); and, on A, the
# zip bundle (`--type Full --zip`: time and size).
# On A and B also the copy-on-write clone's floor (docs/DUMPS.md): a bare
# fork() of the same memory (bench/forkfloor), procdiag's stop by the
# heartbeat and by the dump helper's own figures (method, freezing, frozen,
# copy time, bytes, extra memory), gcore's stop, and the ratios; and A with a
# writer thread (200 MB/s of page writes: WRITE_MBPS) for the extra memory
# the clone costs.
#
# Usage: bench/dump.sh [-o FILE]     (in a built tree; ./dev bench runs it)
# Environment: TARGETS=S is a quick 128 MiB check; DUMP_DIR (where the cores go; default a temp dir under /var/tmp,
# it needs ~10 GiB free), TARGETS (default "A B C"), RUNS (default 1).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2

. bench/lib.sh
dump_bench_ready dump

report=$(python3 - "$ROOT" <<'EOF'
import os, re, shutil, signal, subprocess, sys, tempfile, time

root = sys.argv[1]
procdiag = os.path.join(root, "procdiag")
hbtarget = os.path.join(root, "bench", "hbtarget")
forkfloor = os.path.join(root, "bench", "forkfloor")
write_mbps = os.environ.get("WRITE_MBPS", "200")
base = os.environ.get("DUMP_DIR") or "/var/tmp"
work = tempfile.mkdtemp(prefix="pd-bench-dump-", dir=base)
runs = int(os.environ.get("RUNS", "1"))
targets = {
    "A": ("32 threads, 1 GiB heap", ["32", "1024"]),
    "B": ("32 threads, 4 GiB heap", ["32", "4096"]),
    "C": ("1000 threads, 8 MiB stacks, 16 MiB heap", ["1000", "16"]),
    "S": ("32 threads, 128 MiB heap", ["32", "128"]),  # a quick check, not in the default
}
chosen = os.environ.get("TARGETS", "A B C").split()


class Target:
    def __init__(self, args):
        self.args = args
        self.p = subprocess.Popen([hbtarget] + args, stdout=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        assert line.startswith("ready"), line
        self.pid = int(line.split()[1])
        time.sleep(0.5)
        self.gap()  # start the measurement afresh

    def gap(self):
        os.kill(self.pid, signal.SIGUSR1)
        line = self.p.stdout.readline().decode()
        assert line.startswith("gap_us"), line
        return int(line.split()[1])

    def close(self):
        self.p.kill()
        self.p.wait()


def measured(argv, t):
    """Runs argv; returns wall s, stop ms seen by the target, peak RSS MiB, stderr."""
    t.gap()
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (argv[0], p.returncode, err[-500:]))
    return wall, t.gap() / 1000.0, ru.ru_maxrss / 1024.0, err


def helper_dump(t, out):
    """The dump helper run directly (the engine the CLI and the server
    run): (stop ms by the heartbeat, its done event)."""
    import json
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    r, w = os.pipe()
    t.gap()
    p = subprocess.Popen([procdiag, "dump-helper", "--pid", str(t.pid), "--start-time", "0",
                          "--content", "8", "--out-fd", str(fd), "--status-fd", str(w)],
                         pass_fds=(fd, w), stdout=subprocess.DEVNULL)
    os.close(fd)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        events = [json.loads(x) for x in f.read().decode().splitlines()]
    p.wait()
    os.unlink(out)
    if p.returncode != 0 or events[-1]["event"] != "done":
        raise SystemExit("dump-helper failed: %r" % events[-1:])
    return t.gap() / 1000.0, events[-1]


def fork_floor(args):
    out = subprocess.run([forkfloor, args[0], args[1]], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[1]) / 1000.0, int(out[2]) / 1000.0


def size_of(path):
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def mib(n):
    return "%.0f" % (n / 1048576.0)


def best(results):
    return min(results, key=lambda r: r[0])


rows, minis, zips, clones = [], [], [], []
for key in chosen:
    label, args = targets[key]
    t = Target(args)
    try:
        pd, gc, mini = [], [], []
        # One untimed dump first: on a VM, memory the guest has never
        # touched is slow to fault in the first time, and whichever dumper
        # ran first would pay for it (the page cache of its output) alone.
        out = os.path.join(work, "warmup.core")
        measured([procdiag, "dump", "-p", str(t.pid), "--type", "Full", "-q", "-o", out], t)
        os.unlink(out)
        for i in range(runs):
            out = os.path.join(work, "pd.core")
            wall, stop, rss, err = measured([procdiag, "dump", "-p", str(t.pid), "--type", "Full",
                                             "-q", "-o", out], t)
            pd.append((wall, stop, rss) + size_of(out))
            os.unlink(out)
            prefix = os.path.join(work, "gcore")
            wall, stop, rss, err = measured(["gcore", "-o", prefix, str(t.pid)], t)
            path = "%s.%d" % (prefix, t.pid)
            gc.append((wall, stop, rss) + size_of(path))
            os.unlink(path)
            out = os.path.join(work, "mini.core")
            wall, stop, rss, err = measured([procdiag, "dump", "-p", str(t.pid), "-q", "-o", out], t)
            mini.append((wall, stop, rss) + size_of(out))
            os.unlink(out)
        if key == "A":
            out = os.path.join(work, "full.zip")
            wall, stop, rss, err = measured([procdiag, "dump", "-p", str(t.pid), "--type", "Full",
                                             "--zip", "-q", "-o", out], t)
            zips.append((label, wall, stop, rss, os.stat(out).st_size))
            os.unlink(out)
        if key in ("A", "B", "S"):
            cl = [helper_dump(t, os.path.join(work, "helper.core")) for i in range(runs)]
    finally:
        t.close()
    if key in ("A", "B", "S"):
        fl = fork_floor(args)
        c = min(cl, key=lambda x: x[0])
        clones.append((label, fl, c, best(gc)[1]))
        if key in ("A", "S"):
            t = Target(args[:2] + ["0", write_mbps])
            try:
                c = min((helper_dump(t, os.path.join(work, "helper.core")) for i in range(runs)),
                        key=lambda x: x[0])
            finally:
                t.close()
            clones.append((label + ", writer %s MB/s" % write_mbps, fl, c, None))
    p, g, m = best(pd), best(gc), best(mini)
    rows.append((label, p, g))
    minis.append((label, m))
shutil.rmtree(work, ignore_errors=True)

def ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"

print("### Dumps (`bench/dump.sh`)\n")
print("%s; best of %d run(s) each; cores written to %s. \"stopped\" is the longest gap the" % (
    time.strftime("%Y-%m-%d", time.gmtime()), runs, base))
print("target's own 1 ms heartbeat saw while the dumper ran (so it is measured the same way")
print("for both); size is the file's length, \"on disk\" its allocated blocks. Each target")
print("first gets one untimed full dump, so that neither dumper pays alone for memory the VM")
print("has never touched.\n")
print("| target | dumper | wall s | stopped ms | size MiB | on disk MiB | peak RSS MiB | wall vs gcore | stopped vs gcore |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for label, p, g in rows:
    print("| %s | procdiag dump --type Full | %.2f | %.1f | %s | %s | %.0f | %s | %s |" % (
        label, p[0], p[1], mib(p[3]), mib(p[4]), p[2], ratio(p[0], g[0]), ratio(p[1], g[1])))
    print("| %s | gcore | %.2f | %.1f | %s | %s | %.0f | 1 | 1 |" % (
        label, g[0], g[1], mib(g[3]), mib(g[4]), g[2]))
print("\n| target | mini dump (dumpType 0) | wall ms | stopped ms | size KiB |")
print("|---|---|---:|---:|---:|")
for label, m in minis:
    print("| %s | procdiag dump | %.0f | %.1f | %.0f |" % (label, m[0] * 1000, m[1], m[3] / 1024.0))
if zips:
    print("\n| target | zip bundle (`--type Full --zip`) | wall s | stopped ms | peak RSS MiB | size MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for label, wall, stop, rss, size in zips:
        print("| %s | procdiag dump --zip | %.2f | %.1f | %.0f | %s |" % (label, wall, stop, rss, mib(size)))
if clones:
    print("\nCopy-on-write clone (docs/DUMPS.md): fork() floor is bench/forkfloor, a bare fork() of")
    print("the same threads and memory (best / median of 9); the stop by the target's heartbeat")
    print("and by the dump helper's own figure (frozen), run directly; gcore's stop from the table")
    print("above. Goal: stop <= 1.5x fork.\n")
    print("| target | fork() ms best / median | method | stop ms (heartbeat) | frozen ms (own) | freezing ms | copy s | copied MiB | extra memory MiB | gcore stop ms | stop vs fork (best) | stop vs gcore |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, fl, (stop, e), gstop in clones:
        print("| %s | %.1f / %.1f | %s%s | %.1f | %.1f | %.1f | %.2f | %s | %s | %s | %s | %s |" % (
            label, fl[0], fl[1], e.get("method", "?"),
            (" (" + e["reason"] + ")") if e.get("reason") else "", stop,
            e.get("frozen_us", 0) / 1000.0, e.get("freezing_us", 0) / 1000.0,
            e.get("copy_us", 0) / 1e6, mib(e.get("copied_bytes", 0)),
            mib(e.get("extra_memory", 0)), "%.1f" % gstop if gstop else "-",
            ratio(stop, fl[0]), ratio(stop, gstop) if gstop else "-"))
print("\nReproduce: `bench/dump.sh` in a built tree (TARGETS=\"%s\" RUNS=%d WRITE_MBPS=%s)." % (" ".join(chosen), runs, write_mbps))
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
