#!/usr/bin/env bash
# bench/rules.sh — the rule engine's own CPU (issue 12: at most 1 % of one
# core with 500 processes on the host and 10 rules), side by side with two
# anchors measured over the same seconds in the same run:
#
#   1. procdiag serve with 10 rules (a mix of triggers and filters, none of
#      which fires), its utime+stime from /proc/PID/stat over DURATION;
#   2. bench/rulesfloor: the least a sampler can do at the same period
#      (list /proc, open+read+close every /proc/PID/stat), its own CPU; and
#      the same with every stat file kept open and read again with pread
#      (what a sampler keeping fds could reach);
#   3. `ps -e -o pid,stat,pcpu,rss,nlwp,comm` run once per period (what a
#      watchdog script would run), the CPU of those children.
#
# Usage: bench/rules.sh [-o FILE]     (run from a built tree)
# Environment: PROCS (idle processes to start, default 500), DURATION
# (seconds measured, default 30), PERIOD_MS (rules_interval_ms, default
# 1000), WARMUP (seconds before measuring, default 3), NGINX.
# Prints a Markdown section on stdout (and into FILE with -o).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
PROCS=${PROCS:-500}
DURATION=${DURATION:-30}
PERIOD_MS=${PERIOD_MS:-1000}
WARMUP=${WARMUP:-3}
NGINX=${NGINX:-/usr/sbin/nginx}
OUT=
[ "${1:-}" = -o ] && OUT=$2

for tool in curl ps python3 "$NGINX"; do
	command -v "$tool" >/dev/null || { echo "bench/rules.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/rulesfloor ] || { echo "bench/rules.sh: build first (make)" >&2; exit 1; }

. bench/lib.sh
bench_init rules
count_procs() { local p=(/proc/[0-9]*); echo ${#p[@]}; }

# --- PROCS idle processes -------------------------------------------------------
for ((i = 0; i < PROCS; i++)); do
	sleep 3600 &
	bench_pids+=($!)
done

# --- the responder with 10 rules, none firing ------------------------------------
# Filters: none (every process), by name, by command line, by regex, by
# cgroup; triggers: every sampled kind (crash rules cost nothing here:
# the kernel's core_pattern acts on them). Thresholds no process meets (not
# even a busy compiler on the same machine: cpu_above 5000 is 50 cores), so
# every rule is judged on every process it matches and none fires.
mkdir -p "$run/store"
rules=(
	"store_dir = $run/store"
	"rules_interval_ms = $PERIOD_MS"
	"[rule cpu-all]" "trigger = cpu_above 5000" "for = 10s"
	"[rule cpu-machine]" "name = sleep" "trigger = cpu_above 90 machine"
	"[rule cpu-low]" "cmdline = no-such-service --pool" "trigger = cpu_below 1" "for = 30s"
	"[rule rss-all]" "trigger = rss_above 64G"
	"[rule threads-all]" "trigger = threads_above 100000"
	"[rule fds-sleep]" "name = sleep" "trigger = fds_above 100000"
	"[rule cgmem-sleep]" "name = sleep" "trigger = cgroup_memory_above 99.5"
	"[rule psi-cgroup]" "cmdline_regex = ^sleep 3600$" "trigger = pressure_above full 99"
	"[rule psi-system]" "name = sleep" "trigger = pressure_above some 99 system"
	"[rule rss-cgroup]" "cgroup = /no/such/cgroup" "trigger = rss_above 1G"
)
start_stack a "${rules[@]}"
pd=$pd_a
nprocs=$(count_procs)

# utime+stime of a pid in seconds (fields 14 and 15, after the comm).
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"; }

sleep "$WARMUP"
kill -0 "$pd" || { echo "bench/rules.sh: procdiag exited: $(cat "$run/a/procdiag.log")" >&2; exit 1; }

# All three over the same DURATION seconds, side by side.
bench/rulesfloor "$PERIOD_MS" "$DURATION" > "$run/floor.txt" &
floor_pid=$!
bench/rulesfloor "$PERIOD_MS" "$DURATION" keep > "$run/keep.txt" &
keep_pid=$!
python3 - "$PERIOD_MS" "$DURATION" > "$run/ps.txt" <<'PY' &
import resource, subprocess, sys, time
period, secs = int(sys.argv[1]) / 1000.0, float(sys.argv[2])
end = time.monotonic() + secs
nxt = time.monotonic()
runs = 0
while time.monotonic() < end:
    subprocess.run(["ps", "-e", "-o", "pid,stat,pcpu,rss,nlwp,comm"], stdout=subprocess.DEVNULL, check=True)
    runs += 1
    nxt += period
    time.sleep(max(0.0, nxt - time.monotonic()))
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.4f %d" % (ru.ru_utime + ru.ru_stime, runs))
PY
ps_pid=$!
pd0=$(cpu_s "$pd")
t0=$(date +%s.%N)
wait "$floor_pid" "$keep_pid" "$ps_pid"
pd1=$(cpu_s "$pd")
t1=$(date +%s.%N)
kill -0 "$pd" || { echo "bench/rules.sh: procdiag exited: $(cat "$run/a/procdiag.log")" >&2; exit 1; }
fired=$(find "$run/store" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l)

read -r _ floor_s floor_n < "$run/floor.txt"
read -r _ keep_s keep_n < "$run/keep.txt"
read -r ps_s ps_runs < "$run/ps.txt"
pct() { python3 -c "import sys; print('%.2f' % (100 * float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
wall=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1")
pd_cpu=$(python3 -c "import sys; print('%.4f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$pd0" "$pd1")
pd_pct=$(pct "$pd_cpu" "$wall")
floor_pct=$(pct "$floor_s" "$DURATION")
keep_pct=$(pct "$keep_s" "$DURATION")
ps_pct=$(pct "$ps_s" "$DURATION")
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
verdict=$(python3 -c "import sys; print('meets' if float(sys.argv[1]) <= 1.0 else 'MISSES')" "$pd_pct")

report=$(cat <<EOF
### Rule engine (\`bench/rules.sh\`)

$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); ${nprocs} processes running (${PROCS} of
them idle \`sleep\`s started for this), procdiag serve with 10 rules (every sampled
trigger kind; filters: none, name, cmdline, regex, cgroup; none fires: ${fired} dumps in
the store afterwards), rules_interval_ms = ${PERIOD_MS}; each row's CPU (user + system) over
the same ${DURATION} s, side by side. Goal: ≤ 1 % of one core (${verdict} it).

| what, once per ${PERIOD_MS} ms | CPU s in ${DURATION} s | % of one core | ratio |
|---|---:|---:|---:|
| procdiag serve: the rule engine, 10 rules (/proc/PID/stat of the responder) | ${pd_cpu} | ${pd_pct} | $(ratio "$pd_pct" "$floor_pct") × the floor |
| floor: list /proc, read every /proc/PID/stat (\`bench/rulesfloor\`, ${floor_n} pids) | ${floor_s} | ${floor_pct} | 1 |
| floor with the stat files kept open, read again with pread (\`bench/rulesfloor … keep\`) | ${keep_s} | ${keep_pct} | $(ratio "$keep_pct" "$floor_pct") × the floor |
| \`ps -e -o pid,stat,pcpu,rss,nlwp,comm\` (${ps_runs} runs) | ${ps_s} | ${ps_pct} | $(ratio "$ps_pct" "$pd_pct") × procdiag |

Reproduce: \`bench/rules.sh\` in a built tree (PROCS=${PROCS} DURATION=${DURATION} PERIOD_MS=${PERIOD_MS}).
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
