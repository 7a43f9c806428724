#!/usr/bin/env bash
# bench/table.sh — the browser's live process table (issue 14), side by side
# with its anchor, the list's JSON (GET /api/processes), in one run:
#
#   1. bytes: the table's page and its light JSON (?view=table) for PROCS
#      processes, against the list's JSON;
#   2. server CPU per request: the responder's utime+stime (/proc/PID/stat)
#      over N sequential requests of ?view=table (what every open page asks
#      every 2 s), against N of the list's JSON;
#   3. wall time per request through nginx (curl), both.
#
# Usage: bench/table.sh [-o FILE]   Environment: PROCS (default 500), N
# (requests per measure, default 200), THREADS, NGINX.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
PROCS=${PROCS:-500}
N=${N:-200}
THREADS=${THREADS:-4}
NGINX=${NGINX:-/usr/sbin/nginx}
OUT=
[ "${1:-}" = -o ] && OUT=$2
for tool in curl python3 "$NGINX"; do
	command -v "$tool" >/dev/null || { echo "bench/table.sh: $tool missing" >&2; exit 1; }
done
[ -x ./procdiag ] || { echo "bench/table.sh: build first (make)" >&2; exit 1; }

. bench/lib.sh
bench_init table
count_procs() { local p=(/proc/[0-9]*); echo ${#p[@]}; }
have=$(count_procs)
for ((i = have; i < PROCS; i++)); do
	sleep 3600 &
	bench_pids+=($!)
done
start_stack a "list_max_age_ms = 0"
url="http://127.0.0.1:$port_a"

python3 - "$url" "$key" "$pd_a" "$N" > "$run/table.md" <<'PY'
import http.client, json, os, sys, time
url, key, pid, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = url.split("//")[1].split(":")
tick = os.sysconf("SC_CLK_TCK")

def get(path, accept="application/json"):
    c = http.client.HTTPConnection(host, int(port))
    c.request("GET", path, headers={"Authorization": "Bearer " + key, "Accept": accept})
    body = c.getresponse().read()
    c.close()
    return body

def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def measure(path):
    get(path)
    c0, t0 = cpu(), time.monotonic()
    for _ in range(n):
        get(path)
        time.sleep(0.005)  # polls are apart, as pages' are
    wall = time.monotonic() - t0 - n * 0.005
    return (cpu() - c0) / n * 1000, wall / n * 1000

rows = len(json.loads(get("/api/processes?view=table"))["processes"])
page = len(get("/api/processes", "text/html"))
light = len(get("/api/processes?view=table"))
lst = len(get("/api/processes"))
m = {}
for path in ("/api/processes?view=table", "/api/processes") * 2:  # alternating
    cpu_ms, wall_ms = measure(path)
    m.setdefault(path, []).append((cpu_ms, wall_ms))
best = {k: (min(a for a, _ in v), min(b for _, b in v)) for k, v in m.items()}
t, l = best["/api/processes?view=table"], best["/api/processes"]
print("| what | the table (`?view=table`) | the list's JSON (anchor) | ratio |")
print("|---|---|---|---|")
print("| processes in the answer | %d | %d | |" % (rows, rows))
print("| bytes of the answer | %d | %d | %.2f |" % (light, lst, light / lst))
print("| bytes of the page (`Accept: text/html`, rows come from the JSON) | %d | | |" % page)
print("| responder CPU per request (ms) | %.2f | %.2f | %.2f |" % (t[0], l[0], t[0] / max(l[0], 1e-9)))
print("| wall time per request through nginx (ms) | %.2f | %.2f | %.2f |" % (t[1], l[1], t[1] / l[1]))
PY
{
	echo "### The live process table (bench/table.sh, PROCS=$PROCS, N=$N)"
	echo
	cat "$run/table.md"
} | tee ${OUT:+"$OUT"}
