#!/usr/bin/env bash
# bench/table.sh — the browser's live process table (issue 14), side by side
# with its anchor, the list's JSON (GET /api/processes), in one run:
#
#   1. bytes: the table's page and its light JSON (?view=table) for PROCS
#      processes, against the list's JSON;
#   2. server CPU per request: the responder's utime+stime (/proc/PID/stat)
#      over N sequential requests of ?view=table (what every open page asks
#      every 2 s), against N of the list's JSON;
#   3. wall time per request through nginx (curl), both;
#   4. the floor: bench/rulesfloor (list /proc, read every /proc/PID/stat
#      once) run alone, its CPU per scan; the table's CPU as a ratio of it;
#   5. sharing: responder CPU per request with 1 and with 4 concurrent
#      pollers of ?view=table;
#   6. the list page (HTML of /api/processes): server CPU and wall time per
#      request, and its bytes, against the issue's 100 ms and 300 KB.
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
[ -x ./procdiag ] && [ -x bench/rulesfloor ] || { echo "bench/table.sh: build first (make)" >&2; exit 1; }

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

# The floor alone (nothing else of ours running): 20 ms apart for 4 s.
bench/rulesfloor 20 4 > "$run/floor.txt"

python3 - "$url" "$key" "$pd_a" "$N" "$run/floor.txt" > "$run/table.md" <<'PY'
import http.client, json, os, sys, threading, time
url, key, pid, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fl = open(sys.argv[5]).read().split()
floor_ms, floor_n = float(fl[1]) * 1000 / (4000 / 20), int(fl[2])
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

def pollers(k, per):
    def run():
        for _ in range(per):
            get("/api/processes?view=table")
            time.sleep(0.005)
    c0 = cpu()
    ts = [threading.Thread(target=run) for _ in range(k)]
    for x in ts: x.start()
    for x in ts: x.join()
    return (cpu() - c0) / (k * per) * 1000

one = min(pollers(1, n // 2) for _ in range(2))
four = min(pollers(4, n // 2) for _ in range(2))
pc, pw = [], []
for _ in range(3):
    c0, t0 = cpu(), time.monotonic()
    for _ in range(n // 4):
        get("/api/processes", "text/html")
    pc.append((cpu() - c0) / (n // 4) * 1000)
    pw.append((time.monotonic() - t0) / (n // 4) * 1000)
print()
print("| the refresh against its floor and goal | ms per scan or request | ratio to the floor | goal |")
print("|---|---|---|---|")
print("| floor: `bench/rulesfloor` alone, list /proc + read every /proc/PID/stat (%d pids) | %.2f | 1 | |" % (floor_n, floor_ms))
print("| responder CPU per `?view=table`, 1 poller | %.2f | %.1f | 2 ms: %s |" % (one, one / floor_ms, "met" if one <= 2 else "NOT met"))
print("| responder CPU per `?view=table`, 4 concurrent pollers | %.2f | %.1f | 2 ms: %s |" % (four, four / floor_ms, "met" if four <= 2 else "NOT met"))
print("| the list page (HTML of `/api/processes`): responder CPU per request (0.00: under the clock tick over N/4 requests) | %.2f | %.1f | |" % (min(pc), min(pc) / floor_ms))
print("| the list page: wall time per request through nginx (server time) | %.2f (runs %s) | | 100 ms: %s |" % (min(pw), ", ".join("%.1f" % x for x in pw), "met" if min(pw) <= 100 else "NOT met"))
print("| the list page: bytes, the HTML alone | %d | | |" % page)
print("| the list page: bytes, the HTML + its first `?view=table` (what the page loads for its rows) | %d | | 300 KB: %s |" % (page + light, "met" if page + light <= 300 * 1024 else "NOT met"))
print("| the list page's server time: HTML + its first `?view=table`, wall through nginx | %.2f | | 100 ms: %s |" % (min(pw) + t[1], "met" if min(pw) + t[1] <= 100 else "NOT met"))
PY
{
	echo "### The live process table (bench/table.sh, PROCS=$PROCS, N=$N)"
	echo
	cat "$run/table.md"
} | tee ${OUT:+"$OUT"}
