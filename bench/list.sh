#!/usr/bin/env bash
# bench/list.sh — the process list, side by side with its anchors, in one run:
#
#   1. wrk against GET /api/processes through nginx -> procdiag (with a key),
#      and against nginx serving the very same body as a static file;
#   2. the cost per process of procdiag's /proc scan against a bare C loop
#      (open+read+close of /proc/PID/stat and a stat() per pid: bench/scanbench);
#   3. the same against `ps -e -o pid,user,comm`.
#
# Usage: bench/list.sh [-o FILE]    (run from a built tree: ./dev bench does it)
# Environment: PROCS (processes to have running, default 200), DURATION (wrk
# seconds per run, default 10), CONNS (wrk connections, default 16),
# THREADS (procdiag worker threads, default 16), MAX_AGE (list_max_age_ms of
# the second stack, default 250), NGINX (default /usr/sbin/nginx).
# Prints a Markdown section on stdout (and into FILE with -o).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
PROCS=${PROCS:-200}
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
THREADS=${THREADS:-16}
MAX_AGE=${MAX_AGE:-250}
NGINX=${NGINX:-/usr/sbin/nginx}
OUT=
[ "${1:-}" = -o ] && OUT=$2

for tool in wrk curl ps "$NGINX"; do
	command -v "$tool" >/dev/null || { echo "bench/list.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/scanbench ] || { echo "bench/list.sh: build first (make)" >&2; exit 1; }

. bench/lib.sh
bench_init list
count_procs() { local p=(/proc/[0-9]*); echo ${#p[@]}; }

# --- ~PROCS processes running (sleepers of our own uid fill the gap) --------
have=$(count_procs)
for ((i = have; i < PROCS; i++)); do
	sleep 3600 &
	bench_pids+=($!)
done

start_stack a "list_max_age_ms = 0"
start_stack b "list_max_age_ms = $MAX_AGE"
url="http://127.0.0.1:$port_a"
curl -fsS -H "Authorization: Bearer $key" "$url/api/processes" > "$run/html/static.json"
bytes=$(wc -c < "$run/html/static.json")
items=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$run/html/static.json")
curl -fso /dev/null "$url/static.json"

# One warm-up each, then the measured runs, alternating.
wrk -t1 -c2 -d1s -H "Authorization: Bearer $key" "$url/api/processes" >/dev/null
wrk -t1 -c2 -d1s "$url/static.json" >/dev/null
read -r pd_rps pd_p50 pd_p99 pd_err < <(wrk_run procdiag "$url/api/processes" "$CONNS" "$DURATION")
read -r st_rps st_p50 st_p99 st_err < <(wrk_run static "$url/static.json" "$CONNS" "$DURATION")
read -r ag_rps ag_p50 ag_p99 ag_err < <(wrk_run aged "http://127.0.0.1:$port_b/api/processes" "$CONNS" "$DURATION")
# A single client: every request waits for its own answer (the scan is
# shared only between requests that overlap).
read -r one_rps one_p50 one_p99 one_err < <(wrk_run single "$url/api/processes" 1 "$DURATION")

# --- per-process cost: procdiag's scan vs the bare loop vs ps --------------
scan=$(bench/scanbench 200)
bare_ns=$(awk '$1=="bare_loop"{print $4}' <<<"$scan")
bare_n=$(awk '$1=="bare_loop"{print $3}' <<<"$scan")
pd_ns=$(awk '$1=="pd_snapshot_scan"{print $4}' <<<"$scan")
# ps: the best of 50 runs of the whole list.
ps_time() { python3 - "$@" <<'EOF'
import subprocess, sys, time
best = None
for _ in range(50):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
    d = time.perf_counter() - t
    best = d if best is None or d < best else best
print("%.0f" % (best * 1e9))
EOF
}
ps_all=$(ps_time ps -e -o pid,user,comm)
nprocs=$(count_procs)
ps_per=$(( ps_all / nprocs ))

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }

report=$(cat <<EOF
### Process list (\`bench/list.sh\`)

$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r); ${nprocs} processes running, the list
holding ${items} of them (${bytes} bytes of JSON); wrk -t2 -c${CONNS} -d${DURATION}s,
procdiag with ${THREADS} worker threads, nginx with 2 workers, all on this machine.

| what | req/s | p50 ms | p99 ms | errors | ratio |
|---|---:|---:|---:|---:|---|
| GET /api/processes through nginx → procdiag, c=${CONNS} | ${pd_rps} | ${pd_p50} | ${pd_p99} | ${pd_err} | $(ratio "$pd_rps" "$st_rps") of static |
| nginx serving the same ${bytes} bytes as a static file, c=${CONNS} | ${st_rps} | ${st_p50} | ${st_p99} | ${st_err} | 1 |
| GET /api/processes, one client (c=1) | ${one_rps} | ${one_p50} | ${one_p99} | ${one_err} | |
| GET /api/processes with \`list_max_age_ms = ${MAX_AGE}\`, c=${CONNS} | ${ag_rps} | ${ag_p50} | ${ag_p99} | ${ag_err} | $(ratio "$ag_rps" "$st_rps") of static |

| per process | ns | ratio |
|---|---:|---|
| bare C loop: open+read+close stat, stat() (${bare_n} pids) | ${bare_ns} | 1 |
| procdiag's fresh scan (pd_snapshot_scan) | ${pd_ns} | $(ratio "$pd_ns" "$bare_ns") of the bare loop |
| \`ps -e -o pid,user,comm\` (best of 50 runs, start-up included) / processes | ${ps_per} | $(ratio "$ps_per" "$pd_ns") × procdiag's scan |

Reproduce: \`./dev bench\` or, in a built tree, \`bench/list.sh\`
(PROCS=${PROCS} DURATION=${DURATION} CONNS=${CONNS} THREADS=${THREADS} MAX_AGE=${MAX_AGE}).
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
