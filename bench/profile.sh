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
# machine (other load) cancels out. Slowdown = 1 - ratio. The profiler's own
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
import os, platform, signal, statistics, subprocess, sys, time

HZ, THREADS, WINDOW, ROUNDS = (int(os.environ[k]) for k in ("HZ", "THREADS", "WINDOW", "ROUNDS"))
target = subprocess.Popen(["tests/targets/hottarget", "bench", str(THREADS)],
                          stdout=subprocess.PIPE, text=True)
pid = int(target.stdout.readline().split()[1])


def work():
    os.kill(pid, signal.SIGUSR1)
    line = target.stdout.readline().split()
    return int(line[1]), time.monotonic()


def window(method):
    w0, t0 = work()
    samples = "-"
    if method:
        r = subprocess.run(["./procdiag", "profile", str(pid), "--seconds", str(WINDOW),
                            "--hz", str(HZ), "--method", method],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        samples = r.stderr.split()[2]
    else:
        time.sleep(WINDOW)
    w1, t1 = work()
    return (w1 - w0) / (t1 - t0), samples


try:
    time.sleep(1)
    rows = []
    base = [window(None)[0]]
    for rnd in range(ROUNDS):
        for method in ("perf", "ptrace"):
            rate, samples = window(method)
            base.append(window(None)[0])
            ratio = rate / ((base[-2] + base[-1]) / 2)
            rows.append((rnd + 1, method, rate, samples, ratio))
finally:
    target.kill()
    target.wait()

print("## Profile: the target's slowdown while profiled (bench/profile.sh)\n")
print(f"`bench/profile.sh` on {platform.machine()}, {os.cpu_count()} CPUs, Linux "
      f"{platform.release()}: `hottarget bench {THREADS}` ({THREADS} CPU-bound threads), "
      f"{WINDOW} s windows at {HZ} Hz, profiled windows between unprofiled ones.\n")
print("| round | method | target's rate while profiled (iterations/s) | samples | ratio to unprofiled | slowdown |")
print("|---|---|---|---|---|---|")
for rnd, method, rate, samples, ratio in rows:
    print(f"| {rnd} | {method} | {rate:,.0f} | {samples} | {ratio:.3f} | {100 * (1 - ratio):.1f} % |")
print()
for method in ("perf", "ptrace"):
    r = [x[4] for x in rows if x[1] == method]
    print(f"- {method}: median slowdown {100 * (1 - statistics.median(r)):.1f} % "
          f"(ratios {', '.join(f'{x:.3f}' for x in r)})")
print(f"- unprofiled rates: {', '.join(f'{b:,.0f}' for b in base)} iterations/s")
PYEOF
)
printf '%s\n' "$report"
[ -n "$OUT" ] && printf '%s\n' "$report" > "$OUT"
exit 0
