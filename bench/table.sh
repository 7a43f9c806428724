#!/usr/bin/env bash
# bench/table.sh — the browser's live process table (issue 14), side by side
# with its anchors in one run:
#
#   1. bytes: the table's page and its light JSON (?view=table) for PROCS
#      processes, against the list's JSON (GET /api/processes);
#   2. the floors: bench/rulesfloor run alone, its CPU per scan: list /proc
#      and open/read/close every /proc/PID/stat; the same with the stat fds
#      kept (pread); and what the table reads with kept fds (pread of stat
#      plus an fstatat of /proc/PID/fd under a kept /proc/PID);
#   3. server CPU (the responder's threads' schedstat run time, ns) per
#      ?view=table: a refresh that scans (1 poller, polls 300 ms apart, more
#      than PD_TOP_MIN_GAP_NS), 4 pollers polling together (300 ms apart
#      each), and back-to-back polls (5 ms apart: they reuse a reading);
#      with ANCHOR=path/to/an/older/procdiag, the same against it, the two
#      stacks measured alternately (A B A B), the better round of each;
#   4. the list page (HTML of /api/processes): server CPU and wall time per
#      request, and its bytes, against the issue's 100 ms and 300 KB.
#
# Usage: bench/table.sh [-o FILE]   Environment: PROCS (default 500), N
# (requests per measure, default 200; the scanning measures use N/5),
# THREADS, NGINX, ANCHOR.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
PROCS=${PROCS:-500}
N=${N:-200}
THREADS=${THREADS:-4}
NGINX=${NGINX:-/usr/sbin/nginx}
ANCHOR=${ANCHOR:-}
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
# The floors alone (nothing else of ours running): 20 ms apart for 4 s each.
bench/rulesfloor 20 4 > "$run/floor.txt"
bench/rulesfloor 20 4 keep > "$run/floor-keep.txt"
bench/rulesfloor 20 4 table > "$run/floor-table.txt"

start_stack a "list_max_age_ms = 0"
url="http://127.0.0.1:$port_a"
burl=- bpid=0
if [ -n "$ANCHOR" ]; then
	PD_BIN=$ANCHOR start_stack b "list_max_age_ms = 0"
	burl="http://127.0.0.1:$port_b" bpid=$pd_b
fi

python3 - "$url" "$key" "$pd_a" "$N" "$run" "$burl" "$bpid" > "$run/table.md" <<'PY'
import http.client, json, os, sys, threading, time
url, key, pid, n, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stacks = {"A": (url, pid)}
if sys.argv[6] != "-":
    stacks["B"] = (sys.argv[6], int(sys.argv[7]))

def floor(name):
    fl = open(os.path.join(run, name)).read().split()
    return float(fl[1]) * 1000 / (4000 / 20), int(fl[2])
floor_ms, floor_n = floor("floor.txt")
keep_ms, _ = floor("floor-keep.txt")
tab_ms, _ = floor("floor-table.txt")
host, port = url.split("//")[1].split(":")

def get(path, accept="application/json", where=None):
    h, p = (where or url).split("//")[1].split(":")
    c = http.client.HTTPConnection(h, int(p))
    c.request("GET", path, headers={"Authorization": "Bearer " + key, "Accept": accept})
    body = c.getresponse().read()
    c.close()
    return body

def cpu(p=None):
    """The responder's CPU time, seconds: its threads' schedstat run time
    (ns; the clock ticks of stat are too coarse for a few ms a request)."""
    p = p or pid
    t = 0
    for tid in os.listdir("/proc/%d/task" % p):
        try:
            t += int(open("/proc/%d/task/%s/schedstat" % (p, tid)).read().split()[0])
        except (OSError, ValueError):
            pass
    return t / 1e9

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
print("| responder CPU per request, 5 ms apart (the table: a reused reading) (ms) | %.2f | %.2f | %.2f |" % (t[0], l[0], t[0] / max(l[0], 1e-9)))
print("| wall time per request through nginx (ms) | %.2f | %.2f | %.2f |" % (t[1], l[1], t[1] / l[1]))

def polls(name, k, per, gap):
    """CPU ms of the responder per request: k pollers, each per requests
    of ?view=table gap seconds apart."""
    where, p = stacks[name]
    def run():
        for _ in range(per):
            get("/api/processes?view=table", where=where)
            time.sleep(gap)
    get("/api/processes?view=table", where=where)
    time.sleep(0.3)
    c0 = cpu(p)
    ts = [threading.Thread(target=run) for _ in range(k)]
    for x in ts: x.start()
    for x in ts: x.join()
    return (cpu(p) - c0) / (k * per) * 1000

kinds = [("a refresh that scans: 1 poller, polls 300 ms apart", 1, max(n // 5, 10), 0.3),
         ("4 pollers together, each 300 ms apart", 4, max(n // 20, 5), 0.3),
         ("back-to-back polls, 5 ms apart (they reuse a reading)", 1, n, 0.005)]
res = {}
for rnd in range(2):  # alternating A B A B
    for kind in kinds:
        for name in stacks:
            res.setdefault((kind[0], name), []).append(polls(name, *kind[1:]))
pc, pw = [], []
for _ in range(3):
    c0, t0 = cpu(), time.monotonic()
    for _ in range(n // 4):
        get("/api/processes", "text/html")
    pc.append((cpu() - c0) / (n // 4) * 1000)
    pw.append((time.monotonic() - t0) / (n // 4) * 1000)
print()
print("| the refresh against its floors and goal | ms per scan or request%s | ratio to the floor | goal |"
      % (" (this build; anchor)" if "B" in stacks else ""))
print("|---|---|---|---|")
print("| floor: `bench/rulesfloor` alone, list /proc + open/read/close every /proc/PID/stat (%d pids) | %.2f | 1 | |" % (floor_n, floor_ms))
print("| kept-fd floor: the same, stat fds kept (`rulesfloor keep`: pread) | %.2f | %.2f | |" % (keep_ms, keep_ms / floor_ms))
print("| the table's kept-fd floor: pread of stat + fstatat of /proc/PID/fd under a kept /proc/PID (`rulesfloor table`) | %.2f | %.2f | |" % (tab_ms, tab_ms / floor_ms))
for kind in kinds:
    a = min(res[(kind[0], "A")])
    cell = "%.2f" % a
    if "B" in stacks:
        b = min(res[(kind[0], "B")])
        cell += "; anchor %.2f (runs %s; %s)" % (b, ", ".join("%.2f" % x for x in res[(kind[0], "A")]),
                                                 ", ".join("%.2f" % x for x in res[(kind[0], "B")]))
    print("| responder CPU per `?view=table`, %s | %s | %.2f | 2 ms: %s |" % (kind[0], cell, a / floor_ms, "met" if a <= 2 else "NOT met"))
print("| the list page (HTML of `/api/processes`): responder CPU per request | %.2f | %.1f | |" % (min(pc), min(pc) / floor_ms))
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
