#!/usr/bin/env bash
# bench/zeropages.sh — the stop of a full dump of a many-threaded process that
# gdb's gcore has read once, against gcore's own stop, in one run.
#
# gcore reads every thread's whole stack through /proc/PID/mem; the pages it
# reads but the process never wrote then map the kernel's zero page (or, on a
# kernel that never maps it, are allocated zeroed: see the "kernel" line).
# The target is bench/hbtarget (THREADS parked threads, 16 MiB of heap, a
# 1 ms heartbeat that measures from the inside how long it was stopped):
#   1. procdiag's full dump before gcore ever ran (the stacks untouched)
#   2. gcore, once: its stop is the anchor
#   3. procdiag's full dump again (the stacks read by gcore)
# procdiag runs as `procdiag dump-helper` (the engine `procdiag dump` and the
# server run), which reports the bytes it read, the zero-page bytes it left
# as holes and how it found them.
#
# On a kernel that never maps the zero page (a VM guest booted with
# pvm_no_zero_page=1: a read allocates a zeroed page) there is nothing to
# skip; with KSM=1 (root, CONFIG_KSM) a second target then runs with KSM's
# use_zero_pages standing in: its stacks are mergeable (HB_KSM=1) and KSM
# maps the zero page over the zeroed pages gcore left, before step 3. KSM's
# settings are restored afterwards.
#
# Usage: bench/zeropages.sh [-o FILE]     (in a built tree)
# Environment: THREADS (default 1000), STACK_KIB (default 8192, glibc's),
# KSM (default 0), DUMP_DIR (where the cores go; default /var/tmp; gcore's
# core is as large as the stacks).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2

. bench/lib.sh
dump_bench_ready zeropages

report=$(python3 - ./procdiag bench/hbtarget "${DUMP_DIR:-/var/tmp}" <<'EOF'
import json, os, shutil, signal, subprocess, sys, tempfile, time

procdiag, hbtarget, base = (os.path.abspath(a) for a in sys.argv[1:4])
threads = int(os.environ.get("THREADS", "1000"))
stack_kib = int(os.environ.get("STACK_KIB", "8192"))
work = tempfile.mkdtemp(prefix="pd-bench-zero-", dir=base)


def rollup_rss(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) * 1024
    return 0


class Target:
    def __init__(self, ksm=False):
        env = dict(os.environ, HB_KSM="1" if ksm else "0")
        self.p = subprocess.Popen([hbtarget, str(threads), "16", str(stack_kib)],
                                  stdout=subprocess.PIPE, env=env)
        line = self.p.stdout.readline().decode()
        assert line.startswith("ready"), line
        self.pid = int(line.split()[1])
        time.sleep(0.5)
        self.gap()

    def gap(self):
        os.kill(self.pid, signal.SIGUSR1)
        line = self.p.stdout.readline().decode()
        assert line.startswith("gap_us"), line
        return int(line.split()[1]) / 1000.0

    def close(self):
        self.p.kill()
        self.p.wait()


def helper(t):
    """procdiag's full dump: (wall s, stop ms by the heartbeat, the helper's
    done event)."""
    path = os.path.join(work, "pd.core")
    out = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    r, w = os.pipe()
    t.gap()
    start = time.monotonic()
    p = subprocess.Popen([procdiag, "dump-helper", "--pid", str(t.pid), "--content", "15",
                          "--out-fd", str(out), "--status-fd", str(w)], pass_fds=(out, w))
    os.close(out)
    os.close(w)
    with os.fdopen(r) as f:
        events = [json.loads(x) for x in f.read().splitlines()]
    rc = p.wait()
    wall = time.monotonic() - start
    stop = t.gap()
    os.unlink(path)
    if rc != 0 or events[-1]["event"] != "done":
        raise SystemExit("procdiag dump-helper failed: %r" % events[-1:])
    return wall, stop, events[-1]


def gcore(t):
    prefix = os.path.join(work, "gcore")
    t.gap()
    start = time.monotonic()
    subprocess.run(["gcore", "-o", prefix, str(t.pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, cwd=work)
    wall = time.monotonic() - start
    stop = t.gap()
    os.unlink("%s.%d" % (prefix, t.pid))
    return wall, stop


KSM_DIR = "/sys/kernel/mm/ksm"
KSM_KNOBS = ("run", "use_zero_pages", "pages_to_scan", "sleep_millisecs")


def ksm_zero_pages(pid):
    try:
        with open("/proc/%d/ksm_stat" % pid) as f:
            for line in f:
                if line.startswith("ksm_zero_pages"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def case(ksm):
    t = Target(ksm)
    try:
        rss0 = rollup_rss(t.pid)
        before = helper(t)
        g = gcore(t)
        rss1 = rollup_rss(t.pid)
        if ksm:
            # KSM maps the zero page over the zeroed stack pages gcore read.
            want = (rss1 - rss0) // os.sysconf("SC_PAGE_SIZE") * 9 // 10
            deadline = time.monotonic() + 300
            while ksm_zero_pages(t.pid) < want and time.monotonic() < deadline:
                time.sleep(0.2)
        after = helper(t)
    finally:
        t.close()
    return before, g, after, rss1 - rss0


cases = [("", case(False))]
if os.environ.get("KSM") == "1":
    saved = {}
    try:
        for k in KSM_KNOBS:
            with open(os.path.join(KSM_DIR, k)) as f:
                saved[k] = f.read().strip()
        for k, v in (("use_zero_pages", "1"), ("pages_to_scan", "100000"),
                     ("sleep_millisecs", "10"), ("run", "1")):
            with open(os.path.join(KSM_DIR, k), "w") as f:
                f.write(v)
        cases.append((" (KSM stand-in)", case(True)))
    finally:
        for k, v in saved.items():
            with open(os.path.join(KSM_DIR, k), "w") as f:
                f.write(v)
shutil.rmtree(work, ignore_errors=True)


def mib(n):
    return "%.0f" % (n / 1048576.0)


print("### Zero pages after gcore (`bench/zeropages.sh`)\n")
print("%s; one run. \"stopped\" is the longest gap the target's own 1 ms heartbeat saw" %
      time.strftime("%Y-%m-%d", time.gmtime()))
print("while the dumper ran; \"read\" what procdiag copied from the target, \"zero\" the")
print("bytes of the kernel's zero page it left as holes (and how it told them). Goal")
print("(issue 11): procdiag's stop after gcore <= 0.02x gcore's.\n")
print("| target | dumper | wall s | stopped ms | read MiB | zero MiB | method | stopped vs gcore |")
print("|---|---|---:|---:|---:|---:|---|---:|")
for tag, (before, g, after, grew) in cases:
    label = "%d threads, %d KiB stacks%s" % (threads, stack_kib, tag)
    for name, (wall, stop, ev) in (("procdiag, before gcore", before),
                                   ("procdiag, after gcore", after)):
        print("| %s | %s | %.2f | %.1f | %s | %s | %s | %.3f |" % (
            label, name, wall, stop, mib(ev["copied_bytes"]), mib(ev["zero_bytes"]),
            ev["zero_method"], stop / g[1] if g[1] else 0))
    print("| %s | gcore | %.2f | %.1f | | | | 1 |" % (label, g[0], g[1]))
grew = cases[0][1][3]
print("\nThe target's resident set grew by %s MiB while gcore read it%s." % (
    mib(grew), ": this kernel allocates zeroed pages for a debugger's reads instead of "
    "mapping the zero page, so without KSM there is no zero page to skip and those "
    "pages are read" if grew > (threads * stack_kib << 10) // 2 else
    " (zero pages are not resident)"))
print("\nReproduce: `THREADS=%d STACK_KIB=%d KSM=%s bench/zeropages.sh` in a built tree." % (
    threads, stack_kib, os.environ.get("KSM", "0")))
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
