#!/usr/bin/env bash
# bench/profile.sh — what profiling costs the profiled process, side by side
# in one run.
#
# The target is tests/targets/hottarget bench 8: 8 threads spinning in
# hot_alpha_spin(), counting the iterations they make (SIGUSR1 makes it
# print the total). Windows of WINDOW seconds alternate: no profiler, then
# `procdiag profile PID --seconds WINDOW --hz HZ --method perf`, no profiler,
# `... --method ptrace`, ROUNDS times. A window's rate is the iterations
# the target made per second in it; a profiled window's ratio is its rate
# over the mean of the two unprofiled windows around it, so a drift of the
# machine (other load) cancels out. Slowdown = 1 - ratio. Where other load
# makes that ratio noisy, "cost" adds up what was measured apart from it:
# work lost per CPU-second the target ran, the share of the window it was
# stopped (the profile's stopped_us), and the profiler's CPU (rusage) over
# all the cores. The profiler's own
# CPU time (unwinding, in the CLI process) is included: it competes with the
# target for the same cores, as it would in production. The CLI runs the
# same lib/ job (lib/profile.h) the server's profile helper runs.
#
# Usage: bench/profile.sh [-o FILE]   (from a built tree: make, make check TESTS=)
# Environment: HZ (49), THREADS (8), WINDOW (2 s), ROUNDS (10).
# Prints a Markdown section on stdout (and into FILE with -o).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2
export HZ=${HZ:-49} THREADS=${THREADS:-8} WINDOW=${WINDOW:-2} ROUNDS=${ROUNDS:-10}
[ -x ./procdiag ] || { echo "bench/profile.sh: build first (make)" >&2; exit 1; }
make -s tests/targets/hottarget >&2

report=$(python3 - <<'PYEOF'
import json, os, platform, resource, signal, statistics, subprocess, sys, time

HZ, THREADS, WINDOW, ROUNDS = (int(os.environ[k]) for k in ("HZ", "THREADS", "WINDOW", "ROUNDS"))
target = subprocess.Popen(["tests/targets/hottarget", "bench", str(THREADS)],
                          stdout=subprocess.PIPE, text=True)
pid = int(target.stdout.readline().split()[1])


TICK = os.sysconf("SC_CLK_TCK")


def cpu():
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


def work():
    os.kill(pid, signal.SIGUSR1)
    line = target.stdout.readline().split()
    return int(line[1]), time.monotonic(), cpu()


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def window(method):
    """(wall rate, samples, work per target CPU-second, profiler CPU s,
    stopped s, window s)"""
    w0, t0, c0 = work()
    samples, prof_cpu, stopped = "-", 0.0, 0.0
    if method:
        p0 = children_cpu()
        r = subprocess.run(["./procdiag", "profile", str(pid), "--seconds", str(WINDOW),
                            "--hz", str(HZ), "--method", method, "--format", "speedscope"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
        prof_cpu = children_cpu() - p0
        meta = json.loads(r.stdout)["procdiag"]
        samples, stopped = meta["samples"], meta["stopped_us"] / 1e6
    else:
        time.sleep(WINDOW)
    w1, t1, c1 = work()
    return ((w1 - w0) / (t1 - t0), samples, (w1 - w0) / max(c1 - c0, 1e-9), prof_cpu, stopped,
            t1 - t0)


try:
    time.sleep(1)
    rows = []
    w = window(None)
    base, base_cpu = [w[0]], [w[2]]
    for rnd in range(ROUNDS):
        for method in ("perf", "ptrace"):
            rate, samples, per_cpu, prof_cpu, stopped, secs = window(method)
            w = window(None)
            base.append(w[0])
            base_cpu.append(w[2])
            ratio = rate / ((base[-2] + base[-1]) / 2)
            cpu_ratio = per_cpu / ((base_cpu[-2] + base_cpu[-1]) / 2)
            ncpu = os.cpu_count()
            # What the profile took from the target, each part measured
            # apart from the machine's other load: work lost per CPU-second
            # the target ran, the wall time it was stopped, and the CPU the
            # profiler used (of all the cores the target could fill).
            cost = (1 - cpu_ratio) + stopped / secs + prof_cpu / (ncpu * secs)
            rows.append((rnd + 1, method, rate, samples, ratio, cpu_ratio, stopped / secs,
                         prof_cpu / (ncpu * secs), cost))
finally:
    target.kill()
    target.wait()

print("### Profiling: the target's slowdown (`bench/profile.sh`)\n")
print(f"`bench/profile.sh` on {platform.machine()}, {os.cpu_count()} CPUs, Linux "
      f"{platform.release()}: `hottarget bench {THREADS}` ({THREADS} CPU-bound threads), "
      f"{WINDOW} s windows at {HZ} Hz, profiled windows between unprofiled ones.\n")
print(f"Load average at the end: {open('/proc/loadavg').read().split()[0]}.\n")
print("| round | method | rate while profiled (iterations/s) | samples | wall ratio to unprofiled | work per target CPU-s, ratio | stopped | profiler CPU of the machine | cost |")
print("|---|---|---|---|---|---|---|---|---|")
for rnd, method, rate, samples, ratio, cpu_ratio, stop, pcpu, cost in rows:
    print(f"| {rnd} | {method} | {rate:,.0f} | {samples} | {ratio:.3f} | {cpu_ratio:.3f} | "
          f"{100 * stop:.1f} % | {100 * pcpu:.1f} % | {100 * cost:.1f} % |")
print()
for method in ("perf", "ptrace"):
    sel = [x for x in rows if x[1] == method]
    med = lambda i: statistics.median(x[i] for x in sel)  # noqa: E731
    print(f"- **{method}**: slowdown by the wall ratio (median) {100 * (1 - med(4)):.1f} % "
          f"(ratios {min(x[4] for x in sel):.3f}..{max(x[4] for x in sel):.3f}); "
          f"cost (median) {100 * med(8):.1f} % = work lost per CPU-second "
          f"{100 * (1 - med(5)):.1f} % + stopped {100 * med(6):.1f} % + profiler CPU "
          f"{100 * med(7):.1f} %")
print(f"- unprofiled rates: {', '.join(f'{b:,.0f}' for b in base)} iterations/s")
PYEOF
)
printf '%s\n' "$report"
[ -n "$OUT" ] && printf '%s\n' "$report" > "$OUT"
exit 0
