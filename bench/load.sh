#!/usr/bin/env bash
# bench/load.sh — the list and the detail under load while a full dump of a
# large process streams: errors, rates and the responder's RSS over time.
#
#   wrk, LOAD_SECONDS (default 60) each, at 16 connections on the list and 16
#   on one process's detail (32 in all), started together with a full dump
#   (dumpType=2) of a process with HEAP_MIB (default 4096) MiB of touched heap,
#   downloaded through nginx by curl; procdiag's VmRSS sampled every second.
#
# Usage: bench/load.sh [-o FILE]   (in a built tree; ./dev bench runs it)
# The dump is spooled in /var/tmp (it needs HEAP_MIB of free space).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
LOAD_SECONDS=${LOAD_SECONDS:-60}
HEAP_MIB=${HEAP_MIB:-4096}
THREADS=${THREADS:-16}
OUT=
[ "${1:-}" = -o ] && OUT=$2
for tool in wrk curl; do
	command -v "$tool" >/dev/null || { echo "bench/load.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/hbtarget ] || { echo "bench/load.sh: build first (make)" >&2; exit 1; }

. bench/lib.sh
bench_init load
LOG_REQUESTS=true start_stack s "spool_memory_max = 0"
url="http://127.0.0.1:$port_s"

exec 3< <(bench/hbtarget 4 "$HEAP_MIB")
read -r _ target <&3
bench_pids+=("$target")

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pd_s/status"; }
fds() { local f=(/proc/"$pd_s"/fd/*); echo ${#f[@]}; }

# Warm up every worker thread (and its malloc arena), then the baseline.
wrk -t2 -c32 -d2s -H "Authorization: Bearer $key" "$url/api/processes" >/dev/null
wrk -t2 -c32 -d2s -H "Authorization: Bearer $key" "$url/api/processes/$target" >/dev/null
sleep 1
rss0=$(rss_kib)
fd0=$(fds)

(
	while :; do rss_kib; sleep 1; done
) > "$run/rss.txt" &
bench_pids+=($!)
start=$(date +%s.%N)
(
	curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' \
		-H "Authorization: Bearer $key" "$url/api/processes/$target/dump?dumpType=2" \
		> "$run/dump.txt" 2>&1
) &
dump_job=$!
wrk_run list "$url/api/processes" 16 "$LOAD_SECONDS" > "$run/list.res" &
list_job=$!
wrk_run detail "$url/api/processes/$target" 16 "$LOAD_SECONDS" > "$run/detail.res"
wait "$list_job"
wait "$dump_job"
kill "${bench_pids[-1]}" 2>/dev/null || true
read -r l_rps l_p50 l_p99 l_err < "$run/list.res"
read -r d_rps d_p50 d_p99 d_err < "$run/detail.res"
read -r code size secs < "$run/dump.txt"
sleep 1
rss1=$(rss_kib)
fd1=$(fds)
rmax=$(sort -n "$run/rss.txt" | tail -1)
stopped=$(grep -o 'stopped_us=[0-9]*' "$run/s/procdiag.log" | tail -1 | cut -d= -f2 || true)
[ -n "$stopped" ] || stopped=n/a

report=$(cat <<EOF
### Load while a dump streams (\`bench/load.sh\`)

$(date -u +%Y-%m-%d); ${LOAD_SECONDS} s of wrk, 16 connections on the list and 16 on
one process's detail, while a full dump of a process with ${HEAP_MIB} MiB of touched
heap downloads through nginx; procdiag with ${THREADS} worker threads.

| what | req/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|
| GET /api/processes | ${l_rps} | ${l_p50} | ${l_p99} | ${l_err} |
| GET /api/processes/{id} | ${d_rps} | ${d_p50} | ${d_p99} | ${d_err} |

| the dump | status | bytes | seconds | target stopped µs |
|---|---:|---:|---:|---:|
| GET /api/processes/{id}/dump?dumpType=2 | ${code} | ${size} | ${secs} | ${stopped} |

| procdiag | before | largest during | after |
|---|---:|---:|---:|
| VmRSS KiB | ${rss0} | ${rmax} | ${rss1} |
| open fds | ${fd0} | | ${fd1} |

Reproduce: \`bench/load.sh\` (LOAD_SECONDS=${LOAD_SECONDS} HEAP_MIB=${HEAP_MIB}).
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
