#!/usr/bin/env bash
# bench/stacks.sh — native stacks of a 32-thread process, side by side in one run:
#
#   1. procdiag through nginx (GET /api/processes/PID/stacks): cold (a new
#      responder, so a new stacks helper, and a process it never saw) and
#      warm (the same process again: served from the helper's caches); with
#      source lines (the default) and with ?source=false;
#   2. `procdiag stacks -p PID` (the CLI: always cold, one process per call);
#   3. `eu-stack -p PID`, and `eu-stack -s -p PID` (with source lines, as
#      procdiag gives them);
#   4. `gdb -batch -ex 'thread apply all bt' -p PID`.
#
# The target is tests/targets/stacktarget bench 32: 32 threads parked in
# bench_parked_here() plus a heartbeat thread that wakes every millisecond
# and remembers its longest gap; SIGUSR1 makes it report (and reset) that gap.
# "stopped" is that gap, measured from inside the target, for every tool;
# for procdiag also its own stopped_us (first PTRACE_INTERRUPT to last
# PTRACE_DETACH). eu-stack stops one thread at a time (PTRACE_ATTACH per
# thread), so its gap is how long the heartbeat thread itself was held; gdb
# and procdiag stop all threads at once.
#
# Usage: bench/stacks.sh [-o FILE]   (run from a built tree: ./dev bench does it)
# Environment: THREADS (default 32), RUNS (warm/eu-stack/CLI runs, default 10),
# COLD (cold runs, each on a new responder and a new target, default 3),
# GDB_RUNS (default 2), NGINX (default /usr/sbin/nginx).
# Prints a Markdown section on stdout (and into FILE with -o).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2
export THREADS=${THREADS:-32} RUNS=${RUNS:-10} COLD=${COLD:-3} GDB_RUNS=${GDB_RUNS:-2}
export PD_NGINX=${NGINX:-/usr/sbin/nginx} PD_BUILDDIR=$ROOT PD_SRCDIR=$ROOT
unset DEBUGINFOD_URLS

for tool in eu-stack gdb curl "$PD_NGINX"; do
	command -v "$tool" >/dev/null || { echo "bench/stacks.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] || { echo "bench/stacks.sh: build first (make)" >&2; exit 1; }
make -s tests/targets/stacktarget tests/targets/libstkpark.so >&2

report=$(python3 - <<'EOF'
import json, os, platform, re, signal, statistics, subprocess, sys, time
sys.path.insert(0, "tests/e2e")
import harness as h

THREADS, RUNS, COLD, GDB_RUNS = (int(os.environ[k]) for k in ("THREADS", "RUNS", "COLD", "GDB_RUNS"))
TARGET = os.path.join(h.BUILDDIR, "tests", "targets", "stacktarget")


class Target:
    def __init__(self):
        self.proc = h.spawn([TARGET, "bench", str(THREADS)])
        self.pid = int(h.read_line(self.proc).split()[1])
        h.settle(self.pid)
        self.gap()  # start a clean measurement

    def gap(self):
        """The heartbeat's longest gap since the last call, in microseconds."""
        time.sleep(0.01)  # one more beat after whatever ran last
        os.kill(self.pid, signal.SIGUSR1)
        words = h.read_line(self.proc).split()
        assert words[0] == "gap_us", words
        return int(words[1])

    def stop(self):
        h.kill_tree(self.proc)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def run_tool(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if r.returncode != 0 and b"TID" not in r.stdout and b"Thread" not in r.stdout:
        raise SystemExit("%s failed: %s" % (argv, r.stderr[-500:]))
    return r.stdout


def check_frames(kind, text, pid):
    n = text.count(b"bench_parked_here")
    assert n >= THREADS, "%s shows bench_parked_here %d times, not %d" % (kind, n, THREADS)


rows = {}


def add(name, wall_ms, gap_us, stopped_us=None):
    rows.setdefault(name, []).append((wall_ms, gap_us, stopped_us))


# procdiag cold: a new responder (and helper) and a new target each time.
for _ in range(COLD):
    t = Target()
    with h.Stack() as s:
        ms, r = timed(lambda: s.get("/api/processes/%d/stacks" % t.pid))
        assert r.status == 200, r
        doc = r.json()
        check_frames("procdiag", r.body, t.pid)
        add("procdiag cold", ms, t.gap(), doc["stopped_us"])
        # warm: the same process again, same helper
        for _ in range(RUNS):
            ms, r = timed(lambda: s.get("/api/processes/%d/stacks" % t.pid))
            doc = r.json()
            assert doc["process_cached"], doc
            add("procdiag warm", ms, t.gap(), doc["stopped_us"])
        # text/plain, warm
        for _ in range(RUNS):
            ms, r = timed(lambda: s.get("/api/processes/%d/stacks" % t.pid,
                                        headers={"Accept": "text/plain"}))
            assert r.status == 200
            add("procdiag warm, text/plain", ms, t.gap())
        # a second process of the same binary: Elf handles cached, Dwfl new
        t2 = Target()
        ms, r = timed(lambda: s.get("/api/processes/%d/stacks" % t2.pid))
        doc = r.json()
        add("procdiag, new process, helper warm", ms, t2.gap(), doc["stopped_us"])
        t2.stop()
    t.stop()
    # the same without source lines (?source=false: no DWARF is loaded)
    t = Target()
    with h.Stack() as s:
        ms, r = timed(lambda: s.get("/api/processes/%d/stacks?source=false" % t.pid))
        assert r.status == 200, r
        check_frames("procdiag", r.body, t.pid)
        add("procdiag cold, `?source=false`", ms, t.gap(), r.json()["stopped_us"])
        for _ in range(RUNS):
            ms, r = timed(lambda: s.get("/api/processes/%d/stacks?source=false" % t.pid))
            add("procdiag warm, `?source=false`", ms, t.gap(), r.json()["stopped_us"])
    t.stop()

t = Target()
for _ in range(RUNS):
    ms, out = timed(lambda: run_tool([h.PROCDIAG, "stacks", "-p", str(t.pid)]))
    check_frames("procdiag stacks", out, t.pid)
    add("`procdiag stacks -p` (CLI)", ms, t.gap())
for _ in range(RUNS):
    ms, out = timed(lambda: run_tool(["eu-stack", "-p", str(t.pid)]))
    check_frames("eu-stack", out, t.pid)
    add("`eu-stack -p`", ms, t.gap())
for _ in range(RUNS):
    ms, out = timed(lambda: run_tool(["eu-stack", "-s", "-p", str(t.pid)]))
    add("`eu-stack -s -p` (source lines)", ms, t.gap())
for _ in range(GDB_RUNS):
    ms, out = timed(lambda: run_tool(["gdb", "-q", "-nx", "-batch", "-ex", "thread apply all bt",
                                      "-p", str(t.pid)]))
    check_frames("gdb", out, t.pid)
    add("`gdb -batch -ex 'thread apply all bt'`", ms, t.gap())
t.stop()


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


eu = med([r[0] for r in rows["`eu-stack -p`"]])
gdb = med([r[0] for r in rows["`gdb -batch -ex 'thread apply all bt'`"]])
lines = []
for name, rs in rows.items():
    wall = med([r[0] for r in rs])
    gap = med([r[1] for r in rs])
    st = med([r[2] for r in rs])
    lines.append("| %s | %d | %.1f | %.2f× | %.3f× | %s | %.1f |" % (
        name, len(rs), wall, wall / eu, wall / gdb,
        "%.2f" % (st / 1000) if st is not None else "—", gap / 1000))

cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
print("### Native stacks (`bench/stacks.sh`)\n")
print("%s, %d cores (%s), %s; target: `stacktarget bench %d` (%d threads parked in "
      "bench_parked_here() + a heartbeat thread + main), libc6-dbg installed. "
      "Medians; wall is the client's time (curl-like HTTP through nginx for the API, "
      "the whole command for the others, start-up included).\n" % (
          time.strftime("%Y-%m-%d", time.gmtime()), os.cpu_count(), cpu, platform.release(),
          THREADS, THREADS))
print("| what | runs | wall ms | vs eu-stack | vs gdb | stopped ms (own) | heartbeat gap ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
print("\n".join(lines))
print("""
- *cold*: a new responder, so a new stacks helper (exec included), and a process it has
  never seen: every module opened, every symbol table and DWARF line table loaded.
  *warm*: the same process again; the helper reuses its Dwfl (mappings unchanged).
- *stopped (own)*: procdiag's `stopped_us`, first PTRACE_INTERRUPT to last PTRACE_DETACH;
  every thread is stopped for exactly that long, once.
- *heartbeat gap*: the longest time the target's heartbeat thread did not run (it wakes
  every 1 ms, so ~1.1 ms is "never stopped"). gdb stops every thread for its whole run;
  eu-stack attaches one thread at a time, so the gap is the heartbeat thread's own stop,
  and the other threads were stopped at other moments (no consistent snapshot).

Reproduce: `./dev bench` or, in a built tree, `bench/stacks.sh`
(THREADS=%d RUNS=%d COLD=%d GDB_RUNS=%d).""" % (THREADS, RUNS, COLD, GDB_RUNS))
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
